//! DMS's Parquet files (`DataFormat=parquet`) as records: [`ParquetRows`] reads a file row group
//! by row group and writes each value as the text DMS's CSV would hold, so the one row decoder
//! (types, NULLs, Op, errors by row and column) serves both formats.
//!
//! Memory: the reader keeps the file's footer and one batch of each column's values and pages
//! (not the file, not even a whole row group), whatever the file's size.

use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::error::DecodeError;
use super::scanner::{CsvScanner, RawRecord};
use super::table::ColumnType;

/// Where a file's records come from: the CSV scanner or a Parquet file's rows.
pub trait Records {
    /// The column names, into `rec`: the header row of a CSV file that has one (`header_row`:
    /// `AddColumnName`), a Parquet file's schema always. `false`: no names to check.
    fn header(&mut self, rec: &mut RawRecord, header_row: bool) -> Result<bool, DecodeError>;
    /// The next record, or `false` at the end.
    fn next_record(&mut self, rec: &mut RawRecord) -> Result<bool, DecodeError>;
    /// How many records the file holds, when the format says so up front (Parquet's footer).
    fn total(&self) -> Option<u64> {
        None
    }
}

impl<R: std::io::Read> Records for CsvScanner<R> {
    fn header(&mut self, rec: &mut RawRecord, header_row: bool) -> Result<bool, DecodeError> {
        Ok(header_row && CsvScanner::next_record(self, rec)?)
    }

    fn next_record(&mut self, rec: &mut RawRecord) -> Result<bool, DecodeError> {
        CsvScanner::next_record(self, rec)
    }
}

/// The rows of one Parquet file, read from `std::fs::File` (the footer is at its end, so the
/// file is on disk, not a stream). Row numbers are 1-based and stand where a CSV file's line
/// numbers stand in errors.
pub struct ParquetRows {
    names: Vec<String>,
    /// The Postgres type each column's Parquet type maps to.
    types: Vec<ColumnType>,
    total: u64,
    rows: columns::Columns,
    row: u64,
}

mod columns;

fn unreadable(row: u64, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Parquet(if row == 0 {
        e.to_string()
    } else {
        format!("row {row}: {e}")
    })
}

impl ParquetRows {
    /// Opens `file`: reads its footer (the schema and the row groups' places).
    pub fn open(file: std::fs::File) -> Result<Self, DecodeError> {
        let reader = SerializedFileReader::new(file).map_err(|e| unreadable(0, e))?;
        let total = u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        let fields = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .to_vec();
        let names = fields.iter().map(|f| f.name().to_string()).collect();
        let types = fields.iter().map(|f| postgres_type(f)).collect();
        Ok(ParquetRows {
            names,
            types,
            total,
            rows: columns::Columns::new(reader).map_err(|e| unreadable(0, e))?,
            row: 0,
        })
    }

    /// The Postgres type of column `name` (compared without regard to case), as its Parquet
    /// type maps: what a column DMS added is created as (`SCHEMA_DRIFT_POLICY=add-columns`).
    pub fn column_type(&self, name: &str) -> Option<&ColumnType> {
        let i = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))?;
        self.types.get(i)
    }
}

impl Records for ParquetRows {
    fn total(&self) -> Option<u64> {
        Some(self.total)
    }

    fn header(&mut self, rec: &mut RawRecord, _header_row: bool) -> Result<bool, DecodeError> {
        rec.start(0);
        for name in &self.names {
            rec.push_text(name.as_bytes());
        }
        Ok(true)
    }

    fn next_record(&mut self, rec: &mut RawRecord) -> Result<bool, DecodeError> {
        rec.start(self.row + 1);
        match self.rows.next_row(rec) {
            Ok(true) => {
                self.row += 1;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err((column, reason)) => {
                let row = self.row + 1;
                Err(DecodeError::Parquet(
                    match column.and_then(|i| self.names.get(i)) {
                        Some(name) => format!("row {row}, column `{name}`: {reason}"),
                        None => format!("row {row}: {reason}"),
                    },
                ))
            }
        }
    }
}

/// The Postgres type a Parquet column maps to (its logical type, else its converted type, else
/// its physical type; text when none says more).
fn postgres_type(field: &parquet::schema::types::Type) -> ColumnType {
    if !field.is_primitive() {
        return ColumnType::Text;
    }
    let numeric = |precision: i32, scale: i32| ColumnType::Numeric {
        precision: u16::try_from(precision).ok(),
        scale: u16::try_from(scale).ok(),
    };
    let info = field.get_basic_info();
    match info.logical_type_ref() {
        Some(LogicalType::Decimal(d)) => return numeric(d.precision, d.scale),
        Some(LogicalType::Timestamp(t)) if t.is_adjusted_to_u_t_c => {
            return ColumnType::Timestamptz
        }
        Some(LogicalType::Timestamp(_)) => return ColumnType::Timestamp,
        Some(LogicalType::Date) => return ColumnType::Date,
        // (An unsigned integer takes the next wider type: its values do not fit its own.)
        Some(LogicalType::Integer(i)) if !i.is_signed && i.bit_width <= 16 => {
            return ColumnType::Int4
        }
        Some(LogicalType::Integer(i)) if !i.is_signed && i.bit_width <= 32 => {
            return ColumnType::Int8
        }
        Some(LogicalType::Integer(i)) if !i.is_signed => {
            return ColumnType::Numeric {
                precision: Some(20),
                scale: Some(0),
            }
        }
        Some(LogicalType::Integer(i)) if i.bit_width <= 16 => return ColumnType::Int2,
        Some(LogicalType::Integer(i)) if i.bit_width <= 32 => return ColumnType::Int4,
        Some(LogicalType::Integer(_)) => return ColumnType::Int8,
        Some(LogicalType::String | LogicalType::Enum | LogicalType::Json) => {
            return ColumnType::Text
        }
        _ => {}
    }
    match info.converted_type() {
        ConvertedType::DECIMAL => return numeric(field.get_precision(), field.get_scale()),
        ConvertedType::TIMESTAMP_MILLIS | ConvertedType::TIMESTAMP_MICROS => {
            return ColumnType::Timestamp
        }
        ConvertedType::DATE => return ColumnType::Date,
        ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON => return ColumnType::Text,
        _ => {}
    }
    match field.get_physical_type() {
        PhysicalType::BOOLEAN => ColumnType::Bool,
        PhysicalType::INT32 => ColumnType::Int4,
        PhysicalType::INT64 => ColumnType::Int8,
        PhysicalType::INT96 => ColumnType::Timestamp,
        PhysicalType::FLOAT => ColumnType::Float4,
        PhysicalType::DOUBLE => ColumnType::Float8,
        _ => ColumnType::Text,
    }
}

/// An unscaled decimal value and its scale as decimal text.
fn write_unscaled(out: &mut Vec<u8>, value: i128, scale: u32) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value.unsigned_abs());
    let scale = scale as usize;
    if value < 0 {
        out.push(b'-');
    }
    if scale == 0 {
        out.extend_from_slice(digits.as_bytes());
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::data_type::{
        BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
        Int32Type, Int64Type,
    };
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;

    /// A file of every kind of column DMS (or another writer) may use: one row of values, one of
    /// NULLs, in two row groups; read back as the text DMS's CSV holds.
    #[test]
    fn values_are_written_as_dms_csv_holds_them() {
        let schema = parse_message_type(
            "message t {
                optional int64 long;
                optional int32 day (DATE);
                optional int64 micros (TIMESTAMP(MICROS,false));
                optional int64 millis (TIMESTAMP(MILLIS,true));
                optional int64 dec (DECIMAL(18,4));
                optional int32 small_dec (DECIMAL(9,3));
                optional fixed_len_byte_array(8) fixed_dec (DECIMAL(18,2));
                optional binary text (STRING);
                optional boolean flag;
                optional double real;
                optional int32 unsigned (INTEGER(32,false));
                optional int64 time (TIME(MICROS,false));
                required int32 id;
            }",
        )
        .unwrap();
        let mut file = tempfile::tempfile().unwrap();
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer =
            SerializedFileWriter::new(file.try_clone().unwrap(), Arc::new(schema), props).unwrap();
        for present in [true, false] {
            let defs = [i16::from(present)];
            let mut group = writer.next_row_group().unwrap();
            let mut column = 0;
            while let Some(mut c) = group.next_column().unwrap() {
                let defs = if column == 12 { None } else { Some(&defs[..]) };
                macro_rules! write {
                    ($ty:ty, $value:expr) => {{
                        let values = $value;
                        let values = if present || column == 12 {
                            &values[..]
                        } else {
                            &[]
                        };
                        c.typed::<$ty>().write_batch(values, defs, None).unwrap()
                    }};
                }
                match column {
                    0 => write!(Int64Type, [-42i64]),
                    1 => write!(Int32Type, [19257i32]),
                    2 => write!(Int64Type, [1_663_840_733_123_456i64]),
                    3 => write!(Int64Type, [1_663_840_733_123i64]),
                    4 => write!(Int64Type, [-12345i64]),
                    5 => write!(Int32Type, [5i32]),
                    6 => write!(
                        FixedLenByteArrayType,
                        [FixedLenByteArray::from(vec![
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x85
                        ])]
                    ),
                    7 => write!(ByteArrayType, [ByteArray::from("héllo, \"world\"")]),
                    8 => write!(BoolType, [true]),
                    9 => write!(DoubleType, [0.1f64]),
                    10 => write!(Int32Type, [-1i32]),
                    11 => write!(Int64Type, [3_723_000_001i64]),
                    _ => write!(Int32Type, [7i32]),
                };
                c.close().unwrap();
                column += 1;
            }
            group.close().unwrap();
        }
        writer.close().unwrap();
        use std::io::Seek as _;
        file.rewind().unwrap();

        let mut rows = ParquetRows::open(file).unwrap();
        assert_eq!(rows.total(), Some(2));
        assert_eq!(rows.column_type("MICROS"), Some(&ColumnType::Timestamp));
        assert_eq!(rows.column_type("millis"), Some(&ColumnType::Timestamptz));
        assert_eq!(rows.column_type("unsigned"), Some(&ColumnType::Int8));
        let mut rec = RawRecord::new();
        let text = |rec: &RawRecord| -> Vec<Option<String>> {
            (0..rec.len())
                .map(|i| {
                    (!rec.is_null(i)).then(|| String::from_utf8(rec.field(i).to_vec()).unwrap())
                })
                .collect()
        };
        assert!(rows.next_record(&mut rec).unwrap());
        assert_eq!(rec.line(), 1);
        assert_eq!(
            text(&rec),
            [
                "-42",
                "2022-09-22",
                "2022-09-22 09:58:53.123456",
                "2022-09-22 09:58:53.123000",
                "-1.2345",
                "0.005",
                "-1.23",
                "héllo, \"world\"",
                "true",
                "0.1",
                "4294967295",
                "01:02:03.000001",
                "7",
            ]
            .map(|v| Some(v.to_string()))
        );
        assert!(rows.next_record(&mut rec).unwrap());
        assert_eq!(rec.line(), 2);
        let nulls = text(&rec);
        assert!(nulls[..12].iter().all(Option::is_none), "{nulls:?}");
        assert_eq!(nulls[12].as_deref(), Some("7"));
        assert!(!rows.next_record(&mut rec).unwrap());
    }

    #[test]
    fn decimals_are_written_at_their_scale() {
        let text = |v: i128, scale: u32| {
            let mut out = Vec::new();
            write_unscaled(&mut out, v, scale);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(-12345, 4), "-1.2345");
        assert_eq!(text(5, 3), "0.005");
        assert_eq!(text(120, 0), "120");
        assert_eq!(text(-1, 2), "-0.01");
    }
}
