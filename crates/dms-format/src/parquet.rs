//! DMS's Parquet files (`DataFormat=parquet`) as records: [`ParquetRows`] reads a file row group
//! by row group and writes each value as the text DMS's CSV would hold, so the one row decoder
//! (types, NULLs, Op, errors by row and column) serves both formats.
//!
//! Memory: the reader keeps the file's footer and one batch of each column's pages (not the
//! file, not even a whole row group), whatever the file's size.

use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::data_type::Decimal;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::Field;

use super::calendar::{write_date_since_1970, write_time_of_day, write_timestamp_since_1970};
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
    rows: RowIter<'static>,
    row: u64,
}

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
            rows: RowIter::from_file_into(Box::new(reader)),
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
        let Some(row) = self.rows.next() else {
            return Ok(false);
        };
        self.row += 1;
        let row = row.map_err(|e| unreadable(self.row, e))?;
        rec.start(self.row);
        for (name, field) in row.get_column_iter() {
            push_field(rec, field).map_err(|reason| {
                DecodeError::Parquet(format!("row {}, column `{name}`: {reason}", self.row))
            })?;
        }
        Ok(true)
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

/// Appends `field` as the text DMS's CSV holds for it.
fn push_field(rec: &mut RawRecord, field: &Field) -> Result<(), String> {
    fn display(rec: &mut RawRecord, v: impl std::fmt::Display) {
        use std::io::Write as _;
        rec.push_with(|out| {
            let _ = write!(out, "{v}");
        });
    }
    match field {
        Field::Null => rec.push_null(),
        Field::Bool(b) => rec.push_text(if *b { b"true" } else { b"false" }),
        Field::Byte(v) => display(rec, v),
        Field::Short(v) => display(rec, v),
        Field::Int(v) => display(rec, v),
        Field::Long(v) => display(rec, v),
        Field::UByte(v) => display(rec, v),
        Field::UShort(v) => display(rec, v),
        Field::UInt(v) => display(rec, v),
        Field::ULong(v) => display(rec, v),
        Field::Float16(v) => display(rec, f32::from(*v)),
        Field::Float(v) => display(rec, v),
        Field::Double(v) => display(rec, v),
        Field::Decimal(d) => rec.push_with(|out| write_decimal(out, d)),
        Field::Str(s) => rec.push_text(s.as_bytes()),
        Field::Bytes(b) => rec.push_text(b.data()),
        Field::Date(days) => rec.push_with(|out| write_date_since_1970(out, i64::from(*days))),
        Field::TimeMillis(ms) => rec.push_with(|out| write_time_of_day(out, i64::from(*ms) * 1000)),
        Field::TimeMicros(us) => rec.push_with(|out| write_time_of_day(out, *us)),
        Field::TimestampMillis(ms) => rec.push_with(|out| {
            write_timestamp_since_1970(out, ms.saturating_mul(1000));
        }),
        Field::TimestampMicros(us) => rec.push_with(|out| write_timestamp_since_1970(out, *us)),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
            return Err("a nested value (struct, list or map): DMS writes flat columns".into())
        }
    }
    Ok(())
}

/// A Parquet decimal (a big-endian two's complement unscaled value and a scale) as decimal text.
fn write_decimal(out: &mut Vec<u8>, d: &Decimal) {
    let bytes = d.data();
    // Precision 38 at most: 16 bytes, sign-extended.
    let mut value: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes.iter().rev().take(16).rev() {
        value = (value << 8) | i128::from(*b);
    }
    let digits = value.unsigned_abs().to_string();
    let scale = usize::try_from(d.scale()).unwrap_or(0);
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
    use super::*;

    fn text(field: Field) -> Option<String> {
        let mut rec = RawRecord::new();
        rec.start(1);
        push_field(&mut rec, &field).unwrap();
        (!rec.is_null(0)).then(|| String::from_utf8(rec.field(0).to_vec()).unwrap())
    }

    #[test]
    fn values_are_written_as_dms_csv_holds_them() {
        assert_eq!(text(Field::Null), None);
        assert_eq!(text(Field::Str(String::new())).as_deref(), Some(""));
        assert_eq!(text(Field::Long(-42)).as_deref(), Some("-42"));
        assert_eq!(text(Field::Bool(true)).as_deref(), Some("true"));
        assert_eq!(text(Field::Double(0.1)).as_deref(), Some("0.1"));
        assert_eq!(
            text(Field::Decimal(Decimal::from_i64(-12345, 18, 4))).as_deref(),
            Some("-1.2345")
        );
        assert_eq!(
            text(Field::Decimal(Decimal::from_i32(5, 9, 3))).as_deref(),
            Some("0.005")
        );
        assert_eq!(
            text(Field::Decimal(Decimal::from_bytes(
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x85].into(),
                20,
                2
            )))
            .as_deref(),
            Some("-1.23")
        );
        assert_eq!(text(Field::Date(19257)).as_deref(), Some("2022-09-22"));
        assert_eq!(text(Field::Date(-1)).as_deref(), Some("1969-12-31"));
        assert_eq!(
            text(Field::TimestampMicros(1_663_840_733_123_456)).as_deref(),
            Some("2022-09-22 09:58:53.123456")
        );
        assert_eq!(
            text(Field::TimestampMillis(1_663_840_733_123)).as_deref(),
            Some("2022-09-22 09:58:53.123000")
        );
        assert_eq!(
            text(Field::TimestampMicros(-1)).as_deref(),
            Some("1969-12-31 23:59:59.999999")
        );
        assert_eq!(
            text(Field::TimeMicros(3_723_000_001)).as_deref(),
            Some("01:02:03.000001")
        );
    }
}
