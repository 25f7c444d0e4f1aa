//! The AWS DMS file contract as the loader sees it.
//!
//! - The file format itself (the CSV dialect, the scanner, the row decoder to binary COPY tuples)
//!   is the `dms-format` crate, re-exported here whole; it is pure and fuzzed on its own.
//! - Object keys and their order ([`DmsObject`], [`parse_object_key`], [`FileKind`]) come from
//!   the `dms-naming` crate (shared with the sample generator), re-exported by `dms-format`.
//! - `settings.rs`: the S3 target endpoint's settings ([`DmsSettings`]), read or refused at
//!   start-up.

mod sample_dialect;
mod settings;

pub use dms_format::*;
pub use settings::DmsSettings;
