//! How DMS's S3 endpoint settings shape the files the generator writes: the CSV dialect, a
//! header row, the Op and commit-time columns, compression and date folders.

use chrono::{Datelike, NaiveDateTime, Timelike};

/// The file-shaping settings of a DMS S3 target endpoint, as the generator writes them. The
/// default is what the generator always wrote: DMS's defaults, gzip, and every other change batch
/// below `YYYY/MM/DD/` date folders (so both namings are exercised).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDialect {
    /// `CsvDelimiter`.
    pub delimiter: u8,
    /// `CsvRowDelimiter` (`\n` by default).
    pub row_delimiter: u8,
    /// `CsvNullValue`: the text written for NULL (`None`: an empty unquoted field).
    pub null_value: Option<String>,
    /// `AddColumnName`: a header row first.
    pub header: bool,
    /// `IncludeOpForFullLoad`: full-load records start with `I`.
    pub op_in_full_load: bool,
    /// `TimestampColumnName`: a commit-time column after the Op column (first without one).
    pub timestamp_column: Option<String>,
    /// `CompressionType=GZIP` (`.csv.gz`), else `.csv`.
    pub gzip: bool,
    pub date_folders: DateFolders,
    /// `CdcPath`: change files below `<bucket path>/<cdc path>/` instead of next to the full load.
    pub cdc_path: Option<String>,
    /// `DataFormat=parquet`: `.parquet` files (then `gzip` is the pages' codec, and the CSV
    /// settings do not apply).
    pub parquet: bool,
    /// `ParquetTimestampInMillisecond`: timestamps in milliseconds, not microseconds.
    pub parquet_millis: bool,
    /// `CsvNoSupValue` with `UseCsvNoSupValue` (CSV only): in an update, every non-key column
    /// whose value the update did not change is written as this text, as DMS does for the
    /// columns a source logs only when they change (no value the generator writes equals it).
    pub no_sup_value: Option<String>,
    /// Which of the source's operations change files hold (`CdcInsertsOnly`,
    /// `CdcInsertsAndUpdates`); without `op_in_full_load` such files have no Op column.
    pub cdc_ops: CdcOps,
    /// `AddTrailingPaddingCharacter` (CSV only): character values padded with spaces to their
    /// column's declared length.
    pub trailing_padding: bool,
}

/// Which operations DMS writes to change files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CdcOps {
    /// Inserts, updates and deletes (DMS's default).
    #[default]
    All,
    /// `CdcInsertsOnly`: inserts.
    InsertsOnly,
    /// `CdcInsertsAndUpdates`: inserts and updates.
    InsertsAndUpdates,
}

impl CdcOps {
    /// Whether a change file holds operation `op` (`b'I'`, `b'U'` or `b'D'`).
    pub fn keeps(self, op: u8) -> bool {
        match self {
            CdcOps::All => true,
            CdcOps::InsertsOnly => op == b'I',
            CdcOps::InsertsAndUpdates => op != b'D',
        }
    }
}

/// Where change files go (`DatePartitionEnabled`, `DatePartitionSequence`,
/// `DatePartitionDelimiter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DateFolders {
    /// Every other batch below `YYYY/MM/DD/` (the generator's default, both namings).
    Alternate,
    /// No date folders (`DatePartitionEnabled=false`).
    Flat,
    /// Every change file below folders of this sequence (`YYYYMMDD`, `YYYYMMDDHH`, `YYYYMM`) and
    /// delimiter (`/`, `_`, `-` or none).
    Layout {
        sequence: String,
        delimiter: Option<char>,
    },
}

impl Default for FileDialect {
    fn default() -> Self {
        FileDialect {
            delimiter: b',',
            row_delimiter: b'\n',
            null_value: None,
            header: false,
            op_in_full_load: false,
            timestamp_column: None,
            gzip: true,
            date_folders: DateFolders::Alternate,
            cdc_path: None,
            parquet: false,
            parquet_millis: false,
            no_sup_value: None,
            cdc_ops: CdcOps::All,
            trailing_padding: false,
        }
    }
}

impl FileDialect {
    /// Whether change files start with the Op column: always, unless they hold only some
    /// operations and `IncludeOpForFullLoad` is off (DMS then writes none).
    pub(crate) fn cdc_op_column(&self) -> bool {
        self.cdc_ops == CdcOps::All || self.op_in_full_load
    }

    /// `name` (a `.csv.gz` name) with this dialect's suffix.
    pub(crate) fn file_name(&self, name: &str) -> String {
        if self.parquet {
            let stem = name.strip_suffix(".csv.gz").unwrap_or(name);
            return format!("{stem}.parquet");
        }
        match (self.gzip, name.strip_suffix(".gz")) {
            (false, Some(plain)) => plain.to_string(),
            _ => name.to_string(),
        }
    }

    /// The folders (ending in `/`, or empty) of change batch `batch` committed at `at`.
    pub(crate) fn folders(&self, batch: usize, at: NaiveDateTime) -> String {
        let part = |n: u32, w: usize| format!("{n:0w$}");
        let (y, m, d, h) = (
            part(at.year() as u32, 4),
            part(at.month(), 2),
            part(at.day(), 2),
            part(at.hour(), 2),
        );
        match &self.date_folders {
            DateFolders::Flat => String::new(),
            DateFolders::Alternate if batch % 2 == 1 => format!("{y}/{m}/{d}/"),
            DateFolders::Alternate => String::new(),
            DateFolders::Layout {
                sequence,
                delimiter,
            } => {
                let parts: Vec<String> = match sequence.as_str() {
                    "YYYYMMDDHH" => vec![y, m, d, h],
                    "YYYYMM" => vec![y, m],
                    "MMYYYYDD" => vec![m, y, d],
                    "DDMMYYYY" => vec![d, m, y],
                    _ => vec![y, m, d],
                };
                let sep = delimiter.map(String::from).unwrap_or_default();
                if sep == "/" {
                    format!("{}/", parts.join("/"))
                } else {
                    format!("{}/", parts.join(&sep))
                }
            }
        }
    }

    /// The header row's names: `Op` when the file has an Op column, the commit-time column, then
    /// the table's.
    pub(crate) fn header_names<'a>(&'a self, op: bool, columns: &[&'a str]) -> Vec<&'a str> {
        let mut names = Vec::new();
        if op {
            names.push("Op");
        }
        if let Some(ts) = &self.timestamp_column {
            names.push(ts.as_str());
        }
        names.extend(columns);
        names
    }
}

/// Appends one record in `dialect`: its fields (`None` = NULL), then the row delimiter. A field is
/// quoted when it holds the delimiter, the row delimiter, a quote or a line end, or equals the
/// NULL text; the empty string is `""`.
pub fn write_record_in<'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = Option<&'a [u8]>>,
    dialect: &FileDialect,
) {
    let null = dialect.null_value.as_deref().map(str::as_bytes);
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(dialect.delimiter);
        }
        let Some(text) = field else {
            out.extend_from_slice(null.unwrap_or_default());
            continue;
        };
        if text.is_empty() {
            out.extend_from_slice(b"\"\"");
        } else if Some(text) == null
            || text.iter().any(|&b| {
                b == dialect.delimiter
                    || b == dialect.row_delimiter
                    || matches!(b, b'"' | b'\r' | b'\n')
            })
        {
            out.push(b'"');
            for &b in text {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(text);
        }
    }
    out.push(dialect.row_delimiter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_folders_and_names_in_a_dialect() {
        let d = FileDialect {
            delimiter: b'|',
            null_value: Some("NULL".into()),
            header: true,
            op_in_full_load: true,
            timestamp_column: Some("ts".into()),
            gzip: false,
            date_folders: DateFolders::Layout {
                sequence: "YYYYMMDDHH".into(),
                delimiter: Some('-'),
            },
            ..FileDialect::default()
        };
        let mut out = Vec::new();
        let fields: [Option<&[u8]>; 4] = [Some(b"I"), None, Some(b"NULL"), Some(b"a|b")];
        write_record_in(&mut out, fields, &d);
        assert_eq!(out, b"I|NULL|\"NULL\"|\"a|b\"\n");
        let at = chrono::NaiveDate::from_ymd_opt(2022, 9, 22)
            .unwrap()
            .and_hms_opt(9, 58, 53)
            .unwrap();
        assert_eq!(d.folders(0, at), "2022-09-22-09/");
        assert_eq!(d.file_name("LOAD00000001.csv.gz"), "LOAD00000001.csv");
        assert_eq!(d.header_names(true, &["id"]), ["Op", "ts", "id"]);
        assert_eq!(FileDialect::default().folders(1, at), "2022/09/22/");
        assert_eq!(FileDialect::default().folders(2, at), "");
    }
}
