//! The sample generator's dialect for an endpoint's settings (`paper-engine-orders sample`, and
//! the tests' ground truth).
use super::DmsSettings;
use crate::sample::{CdcOps, DateFolders, FileDialect};

impl DmsSettings {
    /// What the sample generator writes for these settings: the files this endpoint writes.
    pub fn sample_dialect(&self) -> FileDialect {
        let s = self;
        let cdc_ops = if s.cdc_inserts_only {
            CdcOps::InsertsOnly
        } else if s.cdc_inserts_and_updates {
            CdcOps::InsertsAndUpdates
        } else {
            CdcOps::All
        };
        let date_folders = match s.date_partition_enabled {
            None => DateFolders::Alternate,
            Some(false) => DateFolders::Flat,
            Some(true) => DateFolders::Layout {
                sequence: s
                    .date_partition_sequence
                    .clone()
                    .unwrap_or_else(|| "YYYYMMDD".into()),
                delimiter: match s.date_partition_delimiter.as_deref() {
                    Some("UNDERSCORE") => Some('_'),
                    Some("DASH") => Some('-'),
                    Some("NONE") => None,
                    _ => Some('/'),
                },
            },
        };
        FileDialect {
            delimiter: s.delimiter.unwrap_or(b','),
            row_delimiter: s.row_delimiter.unwrap_or(b'\n'),
            null_value: s.null_value.clone(),
            header: s.add_column_name,
            op_in_full_load: s.include_op_for_full_load,
            timestamp_column: s.timestamp_column.clone(),
            gzip: !s.uncompressed,
            date_folders,
            cdc_path: s.cdc_path.clone(),
            parquet: s.parquet,
            parquet_millis: s.parquet_millis,
            no_sup_value: s.no_sup_value.clone(),
            cdc_ops,
        }
    }
}
