//! What to generate and what comes out: the spec, the files with their ground truth, the
//! manifest; the tables' column names and their sizes per scale.

use std::collections::BTreeMap;

use dms_naming::NetCounts;

/// The replicated tables, in delivery order.
pub const TABLES: [&str; 3] = ["strategies", "orders", "executions"];

/// Column names per table, in file order (without the CDC `Op` column).
pub const STRATEGY_COLUMNS: [&str; 10] = [
    "strategy_id",
    "code",
    "name",
    "owner",
    "broker",
    "status",
    "max_notional",
    "created_at",
    "updated_at",
    "event_id",
];
/// Column names of `orders`, in file order.
pub const ORDER_COLUMNS: [&str; 15] = [
    "order_id",
    "strategy_id",
    "client_order_id",
    "isin",
    "side",
    "order_type",
    "time_in_force",
    "quantity",
    "limit_price",
    "stop_price",
    "currency",
    "status",
    "created_at",
    "updated_at",
    "event_id",
];
/// Column names of `executions`, in file order.
pub const EXECUTION_COLUMNS: [&str; 12] = [
    "execution_id",
    "order_id",
    "broker_exec_id",
    "exec_type",
    "last_qty",
    "last_price",
    "cum_qty",
    "leaves_qty",
    "venue",
    "text",
    "transact_time",
    "event_id",
];

/// The declared length of a table's character column (`varchar(n)`, `char(n)`), by its index in
/// the file: what DMS pads a value to with `AddTrailingPaddingCharacter`. `None` for the other
/// columns.
pub fn text_width(table: &str, column: usize) -> Option<usize> {
    let widths: &[(usize, usize)] = match table {
        "strategies" => &[(1, 32), (2, 128), (3, 64), (4, 32), (5, 16)],
        "orders" => &[(2, 36), (3, 12), (4, 4), (5, 16), (6, 3), (10, 3), (11, 16)],
        _ => &[(2, 40), (3, 16), (8, 16), (9, 256)],
    };
    widths.iter().find(|(i, _)| *i == column).map(|(_, w)| *w)
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SampleSpec {
    /// Size factor: 1.0 is 90 strategies, 160,000 orders and about 1.5M executions.
    pub scale: f64,
    pub seed: u64,
    /// Key prefix inside the bucket (may be empty; leading/trailing `/` are ignored).
    pub bucket_path: String,
    /// Row limit of one LOAD file.
    pub load_rows_per_file: usize,
    /// Number of CDC batches.
    pub cdc_files: usize,
    /// Target rows of one CDC file of `orders` and of `executions` (the `strategies` file of
    /// a batch stays small: a handful of changes).
    pub cdc_rows_per_file: usize,
    /// Report the final table contents in [`SampleManifest::tables`].
    pub keep_state: bool,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            scale: 1.0,
            seed: 42,
            bucket_path: "data".to_string(),
            load_rows_per_file: 500_000,
            cdc_files: 6,
            cdc_rows_per_file: 2_000,
            keep_state: false,
        }
    }
}

/// Ground truth about one generated file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileSummary {
    pub key: String,
    pub table: String,
    /// Number of records in the file.
    pub rows: u64,
    pub counts: NetCounts,
    /// Largest `event_id` over the file's records.
    pub max_event_id: Option<i64>,
    /// Size of the (gzip) body.
    pub bytes: u64,
}

/// One generated object.
pub struct SampleFile {
    pub summary: FileSummary,
    /// gzip bytes.
    pub body: Vec<u8>,
}

/// What [`generate`](super::generate) reports once every file was handed over.
pub struct SampleManifest {
    /// Every file, in delivery order.
    pub files: Vec<FileSummary>,
    /// final contents per table when keep_state: rows as text values in file column order, None = NULL, sorted by primary key
    pub tables: BTreeMap<String, Vec<Vec<Option<String>>>>,
}

/// Number of strategies at a scale.
pub fn strategy_count(scale: f64) -> usize {
    ((90.0 * scale).round() as usize).max(3)
}

/// Number of orders (in the full load) at a scale.
pub fn order_count(scale: f64) -> usize {
    ((160_000.0 * scale).round() as usize).max(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_linearly() {
        assert_eq!(strategy_count(1.0), 90);
        assert_eq!(order_count(1.0), 160_000);
        assert_eq!(strategy_count(0.001), 3);
        assert_eq!(order_count(0.0002), 32);
        assert_eq!(order_count(0.00001), 10);
        assert_eq!(order_count(2.0), 320_000);
    }
}
