//! The loader end to end against a real S3-compatible server and a real Postgres, one module per
//! theme.
mod direct_path_and_faults;
pub mod ground_truth;
mod net_effect;
mod sessions;
