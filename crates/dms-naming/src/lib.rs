//! AWS DMS object naming, shared by the loader (which recognises and orders the files it finds
//! in the bucket) and the sample generator (which writes them), and the net counts of a file.
//!
//! A DMS data file's key is `<bucket path>/<schema>/<table>/<name>`, where the name is
//! `LOAD<8 hex digits>.csv[.gz]` for a full-load file and `YYYYMMDD-HHMMSSmmm.csv[.gz]` for a
//! change file, optionally below date folders `YYYY/MM/DD/`.
//!
//! One concept per file:
//! - `object.rs`: reading keys: [`parse_object_key`], [`parse_file_name`], [`DmsObject`] and its
//!   order, [`FileKind`], [`Compression`], [`OpColumn`].
//! - `format.rs`: writing keys: [`load_file_name`], [`cdc_file_name`], [`object_key`].
//! - `counts.rs`: [`NetCounts`], the net effect of a file per distinct key.
//! - `day_folders.rs`: date folders that do not start with the year, [`DayFolders`].

mod counts;
mod day_folders;
mod format;
mod object;

pub use counts::NetCounts;
pub use day_folders::{DayFolders, DaySequence};
pub use format::{cdc_file_name, load_file_name, object_key};
pub use object::{
    is_date_folder, parse_file_name, parse_object_key, Compression, DmsObject, FileKind, OpColumn,
};
