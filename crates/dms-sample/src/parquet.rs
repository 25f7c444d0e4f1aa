//! The sample's files as DMS writes them with `DataFormat=parquet`: one Parquet file per LOAD
//! part and per change batch, the Op and commit-time columns as columns, every column
//! optional, typed as DMS types the source's columns (integers, decimals, timestamps in micro-
//! or milliseconds, UTF-8 text), row groups of [`ROW_GROUP_ROWS`] rows.

use std::sync::Arc;

use chrono::NaiveDateTime;
use parquet::basic::{Compression, GzipLevel};
use parquet::data_type::{ByteArray, ByteArrayType, FixedLenByteArray, FixedLenByteArrayType};
use parquet::data_type::{Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Rows per row group: DMS's default `RowGroupLength`.
pub const ROW_GROUP_ROWS: usize = 10_000;

/// A column's Parquet type, as DMS maps the source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Int32,
    Int64,
    /// `DECIMAL(precision, scale)` in 16 bytes.
    Decimal(u8, u8),
    Timestamp,
}

/// The Parquet type of a sample table's column (the commit-time column is a timestamp).
fn kind(table: &str, column: &str, timestamp_column: Option<&str>) -> Kind {
    if Some(column) == timestamp_column {
        return Kind::Timestamp;
    }
    match (table, column) {
        ("strategies", "strategy_id") | ("orders", "strategy_id") => Kind::Int32,
        (_, "order_id" | "execution_id" | "event_id") => Kind::Int64,
        ("strategies", "max_notional") => Kind::Decimal(20, 2),
        (_, "quantity" | "last_qty" | "cum_qty" | "leaves_qty") => Kind::Decimal(18, 4),
        (_, "limit_price" | "stop_price" | "last_price") => Kind::Decimal(18, 6),
        (_, "created_at" | "updated_at" | "transact_time") => Kind::Timestamp,
        _ => Kind::Text,
    }
}

/// One Parquet file being written: rows are given as text fields (as the CSV holds them), kept
/// per column until a row group is full, then written typed.
pub(crate) struct ParquetFile {
    kinds: Vec<Kind>,
    millis: bool,
    columns: Vec<Vec<Option<Vec<u8>>>>,
    writer: SerializedFileWriter<Vec<u8>>,
}

impl ParquetFile {
    /// A file with these columns (`names`: Op and the commit-time column included, in order).
    pub(crate) fn new(
        table: &str,
        names: &[&str],
        timestamp_column: Option<&str>,
        millis: bool,
        gzip: bool,
    ) -> Self {
        let kinds: Vec<Kind> = names
            .iter()
            .map(|n| kind(table, n, timestamp_column))
            .collect();
        let unit = if millis { "MILLIS" } else { "MICROS" };
        let fields: Vec<String> = names
            .iter()
            .zip(&kinds)
            .map(|(name, k)| match k {
                Kind::Text => format!("OPTIONAL BYTE_ARRAY {name} (UTF8);"),
                Kind::Int32 => format!("OPTIONAL INT32 {name};"),
                Kind::Int64 => format!("OPTIONAL INT64 {name};"),
                Kind::Decimal(p, s) => {
                    format!("OPTIONAL FIXED_LEN_BYTE_ARRAY (16) {name} (DECIMAL({p},{s}));")
                }
                Kind::Timestamp => format!("OPTIONAL INT64 {name} (TIMESTAMP({unit},false));"),
            })
            .collect();
        let schema = parse_message_type(&format!("message dms {{ {} }}", fields.join(" ")))
            .expect("the sample's schema parses");
        let compression = if gzip {
            Compression::GZIP(GzipLevel::default())
        } else {
            Compression::UNCOMPRESSED
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .build();
        let writer = SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props))
            .expect("an in-memory Parquet writer");
        ParquetFile {
            columns: vec![Vec::new(); kinds.len()],
            kinds,
            millis,
            writer,
        }
    }

    /// Adds a row (`None`: NULL); a full row group is written.
    pub(crate) fn push<'a>(&mut self, fields: impl IntoIterator<Item = Option<&'a [u8]>>) {
        for (column, field) in self.columns.iter_mut().zip(fields) {
            column.push(field.map(<[u8]>::to_vec));
        }
        if self.columns[0].len() >= ROW_GROUP_ROWS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.columns[0].is_empty() {
            return;
        }
        let mut group = self.writer.next_row_group().expect("a row group");
        for (values, kind) in self.columns.iter_mut().zip(&self.kinds) {
            let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
            let present = values
                .iter()
                .flatten()
                .map(|v| std::str::from_utf8(v).expect("UTF-8"));
            let mut column = group
                .next_column()
                .expect("a column")
                .expect("columns left");
            match kind {
                Kind::Text => {
                    let v: Vec<ByteArray> = present
                        .map(|t| ByteArray::from(t.as_bytes().to_vec()))
                        .collect();
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&v, Some(&defs), None)
                }
                Kind::Int32 => {
                    let v: Vec<i32> = present.map(|t| t.parse().expect("an int")).collect();
                    column
                        .typed::<Int32Type>()
                        .write_batch(&v, Some(&defs), None)
                }
                Kind::Int64 => {
                    let v: Vec<i64> = present.map(|t| t.parse().expect("a bigint")).collect();
                    column
                        .typed::<Int64Type>()
                        .write_batch(&v, Some(&defs), None)
                }
                Kind::Decimal(_, scale) => {
                    let v: Vec<FixedLenByteArray> = present
                        .map(|t| {
                            let unscaled = unscaled(t, *scale);
                            FixedLenByteArray::from(unscaled.to_be_bytes().to_vec())
                        })
                        .collect();
                    column
                        .typed::<FixedLenByteArrayType>()
                        .write_batch(&v, Some(&defs), None)
                }
                Kind::Timestamp => {
                    let v: Vec<i64> = present
                        .map(|t| {
                            let at = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                                .expect("a timestamp")
                                .and_utc();
                            if self.millis {
                                at.timestamp_millis()
                            } else {
                                at.timestamp_micros()
                            }
                        })
                        .collect();
                    column
                        .typed::<Int64Type>()
                        .write_batch(&v, Some(&defs), None)
                }
            }
            .expect("the values fit their column");
            column.close().expect("a column");
            values.clear();
        }
        group.close().expect("a row group");
    }

    /// The file's bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.flush();
        self.writer.into_inner().expect("the Parquet footer")
    }
}

/// One Parquet file of a sample table's columns `names` (Op and a commit-time column named
/// `commit_ts` included where given), its rows as text fields (`None`: NULL), microsecond
/// timestamps, GZIP pages: a file as DMS writes it, for tests that need a particular one.
pub fn parquet_file<'a>(
    table: &str,
    names: &[&str],
    rows: impl IntoIterator<Item = Vec<Option<&'a [u8]>>>,
) -> Vec<u8> {
    let mut file = ParquetFile::new(table, names, Some("commit_ts"), false, true);
    for row in rows {
        file.push(row);
    }
    file.finish()
}

/// The unscaled value of decimal text at `scale` (`"-1.5"` at scale 2: -150).
fn unscaled(text: &str, scale: u8) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut value: i128 = 0;
    for b in int.bytes().chain(
        frac.bytes()
            .chain(std::iter::repeat(b'0'))
            .take(scale.into()),
    ) {
        value = value * 10 + i128::from(b - b'0');
    }
    if negative {
        -value
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_is_scaled() {
        assert_eq!(unscaled("12.5", 4), 125_000);
        assert_eq!(unscaled("-0.000001", 6), -1);
        assert_eq!(unscaled("7", 2), 700);
    }

    #[test]
    fn a_file_has_the_columns_types_and_row_groups() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let names = ["Op", "order_id", "quantity", "created_at", "side"];
        let mut file = ParquetFile::new("orders", &names, None, true, true);
        for i in 0..(ROW_GROUP_ROWS + 1) {
            let id = i.to_string();
            file.push([
                Some(&b"I"[..]),
                Some(id.as_bytes()),
                Some(&b"1.25"[..]),
                Some(&b"2022-09-22 09:58:53.123"[..]),
                None,
            ]);
        }
        let bytes = bytes::Bytes::from(file.finish());
        let reader = SerializedFileReader::new(bytes).unwrap();
        assert_eq!(reader.num_row_groups(), 2);
        let row = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
        assert_eq!(
            row.to_string(),
            "{Op: \"I\", order_id: 0, quantity: 1.2500, created_at: 2022-09-22 09:58:53.123 +00:00, side: null}"
        );
    }
}
