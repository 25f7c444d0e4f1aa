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
            trailing_padding: s.trailing_padding,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::dms::{parse_object_key, DmsSettings, FileKind};
    use crate::sample::{generate_in, SampleFile, SampleSpec};

    /// Every `DatePartitionSequence` with every `DatePartitionDelimiter`: the keys the generator
    /// writes as such an endpoint does are all read as DMS files of their table, the change files
    /// below date folders of that layout with their commit time.
    #[test]
    fn every_date_partition_layout_of_generated_files_is_read() {
        for sequence in ["YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"] {
            for (delimiter, sep) in [
                ("SLASH", "/"),
                ("UNDERSCORE", "_"),
                ("DASH", "-"),
                ("NONE", ""),
            ] {
                let settings = DmsSettings::parse(&format!(
                    r#"{{"DatePartitionEnabled": true, "DatePartitionSequence": "{sequence}",
                        "DatePartitionDelimiter": "{delimiter}"}}"#
                ))
                .unwrap();
                let spec = SampleSpec {
                    scale: 0.0005,
                    seed: 1,
                    bucket_path: "data".into(),
                    load_rows_per_file: 1000,
                    cdc_files: 3,
                    cdc_rows_per_file: 20,
                    keep_state: false,
                };
                let mut keys = Vec::new();
                generate_in(&spec, &settings.sample_dialect(), |f: SampleFile| {
                    keys.push(f.summary.key);
                    Ok::<(), ()>(())
                })
                .unwrap();
                let mut changes = 0;
                for key in &keys {
                    let o = parse_object_key("data", key)
                        .unwrap_or_else(|| panic!("{sequence} {delimiter}: {key} not read"));
                    let FileKind::Cdc { stamp } = o.kind else {
                        continue;
                    };
                    changes += 1;
                    // The folders spell the commit time's date in the sequence's order.
                    let stamp = stamp.to_string();
                    let (y, m, d, h) = (&stamp[..4], &stamp[4..6], &stamp[6..8], &stamp[8..10]);
                    let parts: Vec<&str> = match sequence {
                        "YYYYMMDDHH" => vec![y, m, d, h],
                        "YYYYMM" => vec![y, m],
                        "MMYYYYDD" => vec![m, y, d],
                        "DDMMYYYY" => vec![d, m, y],
                        _ => vec![y, m, d],
                    };
                    let folders = format!("/{}/", parts.join(sep));
                    assert!(key.contains(&folders), "{sequence} {delimiter}: {key}");
                }
                assert!(changes >= 3, "{sequence} {delimiter}: {keys:?}");
            }
        }
    }
}
