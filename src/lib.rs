//! paper-engine-orders: keeps Postgres in step with AWS DMS files in an S3 bucket.
//!
//! The concepts, one module each: [`config`] (the environment), [`dms`] (file naming, ordering,
//! row decoding), [`source`] (the bucket), [`target`] (Postgres), [`loader`] (the loop),
//! [`metrics`], [`logging`], [`sample`] (the deterministic sample dataset) and [`app`] (wiring).
pub mod app;
pub mod config;
pub mod dms;
pub mod http;
pub mod ledger;
pub mod loader;
pub mod logging;
pub mod metrics;
pub mod notifier;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod sample;
pub mod source;
pub mod startup;
pub mod target;

/// The loader's version, recorded in the ledger and in `build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
