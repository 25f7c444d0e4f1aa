//! The integration tests, one binary (`cargo test --test it`): the loader, the binary and its
//! HTTP server against the machine's Postgres and NATS and an S3-compatible server (moto, started
//! once for the whole binary by `helpers` unless `PEO_S3_ENDPOINT` names one). Every test gets
//! its own database and bucket, so they run in parallel.
mod helpers;

mod api;
mod bad_input;
mod discovery;
mod dms_settings;
mod dry_run;
mod events;
mod faults;
mod hardening;
mod instances;
mod loader;
mod metrics_http;
mod no_sup_value;
mod notifications;
mod operate;
mod outbox_one_shot;
mod parquet;
mod process;
mod reloads;
mod restarts;
mod s3_tls;
mod schema_drift;
mod service;
mod shutdown;
mod status_page;
mod tls;
