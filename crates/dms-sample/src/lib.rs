//! Deterministic generator of a realistic AWS DMS dataset for a paper-trading engine.
//!
//! It simulates the source database (strategies send orders to a broker, executions come
//! back) and emits the gzip CSV files DMS would have written: a full load (`LOAD0000000N`
//! files, no `Op` column) followed by CDC batches (`YYYYMMDD-HHMMSSmmm` files with a leading
//! `I`/`U`/`D` column). Alongside the files it reports the ground truth: the net effect of
//! every file per key, and optionally the final contents of every table.
//!
//! Everything is a pure function of [`SampleSpec`]: the same spec yields byte-identical files.
//!
//! Value text: numerics are written with exactly their declared scale (`100.0000`,
//! `101.250000`, `250000.00`) and timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` (no fraction
//! when it is zero; the generator never produces a fraction ending in `0`), so every value's
//! text is also exactly what Postgres prints for it with `::text`. The manifest's table
//! contents use the same text as the files.
//!
//! Bodies are compressed with `flate2` at `Compression::new(6)` (the zlib default).
//!
//! One concept per submodule:
//! - `spec`: what to generate ([`SampleSpec`]), what comes out ([`SampleFile`], [`FileSummary`],
//!   [`SampleManifest`]), the tables' column names and their sizes per scale.
//! - `generate`: the entry point [`generate`]: the history, then the LOAD files, then the CDC
//!   batches.
//! - `clock`: simulated time: the history's span, the CDC commit instants, trading sessions.
//! - `vocab`: the enumerations and word lists the rows draw from.
//! - `reference`: reference data drawn once from the seed (the ISIN pool).
//! - `rows`: the three row types (strategies, orders, executions) and their file fields.
//! - `fields`: one rendered row: the exact text of every value.
//! - `state`: the current tables and, per CDC file, its records and the rows before it (the
//!   ground truth's net counts).
//! - `sim`: the simulation state; drawing new strategies, orders and executions.
//! - `text`: the broker messages of executions.
//! - `history`: the full-load history, order lifecycles replayed in time order.
//! - `cdc`: one CDC batch: its deliberate edge cases and its schedule.
//! - `actions`: the random changes of a CDC batch (orders, trades, cancels, corrections, busts).
//! - `emit`: the files' DMS object keys (named by the `dms-naming` crate, the naming the loader
//!   reads); CSV and gzip encoding of the bodies.
//! - `parquet`: the bodies as Parquet files (`DataFormat=parquet`): typed columns, row groups.
//! - `tests`: end-to-end checks of generated datasets (determinism, naming, ground truth,
//!   dialect).

mod actions;
mod cdc;
mod clock;
mod dialect;
mod emit;
mod fields;
mod generate;
mod history;
mod parquet;
mod record;
mod reference;
mod rows;
mod sim;
mod spec;
mod state;
mod text;
mod vocab;

pub use clock::cdc_commit_micros;
pub use dialect::{write_record_in, CdcOps, DateFolders, FileDialect};
pub use generate::{generate, generate_in};
pub use parquet::{parquet_file, ROW_GROUP_ROWS};
pub use record::{timestamp_text, write_record};
pub use spec::{
    order_count, strategy_count, text_width, FileSummary, SampleFile, SampleManifest, SampleSpec,
    EXECUTION_COLUMNS, ORDER_COLUMNS, STRATEGY_COLUMNS, TABLES,
};

/// Net effect of one file, counted per distinct key: the same type the Target reports.
pub use dms_naming::NetCounts;

#[cfg(test)]
mod tests;
