//! paper-engine-orders: keeps Postgres in step with AWS DMS files in an S3 bucket.
pub mod dms;
