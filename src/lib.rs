//! paper-engine-orders: keeps Postgres in step with AWS DMS files in an S3 bucket.
//!
//! The concepts, one module each (docs/architecture.md has the map): [`config`] (the
//! environment), [`dms`] (object naming, CSV, row decoding, COPY encoding), [`source`] (the
//! bucket), [`pipeline`] (decoding a file, decode-ahead), [`target`] (Postgres), [`ledger`]
//! (statuses and the stream-head rule), [`loader`] (discovery, delivery, the service loop),
//! [`policy`] (what to do about each failure), [`notify`] (change notifications),
//! [`telemetry`] (metrics, logging), [`http`], [`report`] (end-of-run summary), [`startup`]
//! (the [`startup::Application`]), [`app`] (run modes and exit codes) and [`sample`] (the
//! deterministic sample dataset: the `dms-sample` crate of the workspace, re-exported).
pub mod app;
pub mod cli;
pub mod config;
pub mod dms;
pub mod events;
pub mod http;
pub mod ledger;
pub mod loader;
pub mod notify;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod runs;
pub mod source;
pub mod startup;
pub mod status;
pub mod target;
pub mod telemetry;

pub use dms_sample as sample;
pub use notify as notifier;
pub use telemetry::{logging, metrics};

/// The loader's version, recorded in the ledger and in `build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
