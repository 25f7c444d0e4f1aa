//! A Parquet file's columns, read a batch of rows at a time with the typed column readers (no
//! row objects, no allocation per value), each value written into the record as the text DMS's
//! CSV holds for it.
//!
//! Memory: one batch ([`BATCH`] rows) of each column's values and the pages being decoded.
use std::fs::File;

use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, FixedLenByteArray, Int96};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;

use super::{write_unscaled, RawRecord};
use crate::calendar::{write_date_since_1970, write_time_of_day, write_timestamp_since_1970};

/// Rows read at a time, per column.
const BATCH: usize = 4096;

/// How a column's values are written as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Render {
    Bool,
    Signed,
    Unsigned,
    /// Days since 1970-01-01.
    Date,
    TimeMillis,
    TimeMicros,
    TimeNanos,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    Decimal {
        scale: u32,
    },
    Float,
    Float16,
    /// Text or bytes, as they are.
    Bytes,
}

/// One batch of a column's non-null values.
enum Values {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    I96(Vec<Int96>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

struct Column {
    render: Render,
    /// The definition level of a value that is there (0: the column is required).
    max_def: i16,
    reader: Option<ColumnReader>,
    values: Values,
    defs: Vec<i16>,
    /// The next value of `values` to write.
    next_value: usize,
}

/// The rows of a flat Parquet file, column by column.
pub(super) struct Columns {
    file: SerializedFileReader<File>,
    columns: Vec<Column>,
    /// The next row group to open.
    group: usize,
    /// Rows of the open row group not read into a batch yet.
    left_in_group: usize,
    /// Rows in the current batch, and the next one to write.
    batch: usize,
    at: usize,
}

impl Columns {
    /// The columns of `file`; an error if a column is nested (DMS writes flat columns).
    pub(super) fn new(file: SerializedFileReader<File>) -> Result<Self, String> {
        let schema = file.metadata().file_metadata().schema_descr_ptr();
        if schema
            .root_schema()
            .get_fields()
            .iter()
            .any(|f| !f.is_primitive())
            || schema.columns().iter().any(|c| c.max_rep_level() > 0)
        {
            return Err("a nested value (struct, list or map): DMS writes flat columns".into());
        }
        let columns = schema
            .columns()
            .iter()
            .map(|descr| Column {
                render: render_of(descr),
                max_def: descr.max_def_level(),
                reader: None,
                values: match descr.physical_type() {
                    PhysicalType::BOOLEAN => Values::Bool(Vec::new()),
                    PhysicalType::INT32 => Values::I32(Vec::new()),
                    PhysicalType::INT64 => Values::I64(Vec::new()),
                    PhysicalType::INT96 => Values::I96(Vec::new()),
                    PhysicalType::FLOAT => Values::F32(Vec::new()),
                    PhysicalType::DOUBLE => Values::F64(Vec::new()),
                    PhysicalType::BYTE_ARRAY => Values::Bytes(Vec::new()),
                    PhysicalType::FIXED_LEN_BYTE_ARRAY => Values::Fixed(Vec::new()),
                },
                defs: Vec::new(),
                next_value: 0,
            })
            .collect();
        Ok(Columns {
            file,
            columns,
            group: 0,
            left_in_group: 0,
            batch: 0,
            at: 0,
        })
    }

    /// Appends the next row's values to `rec` (started by the caller); `false` at the end. An
    /// error names the column (0-based) when it is one column's.
    pub(super) fn next_row(
        &mut self,
        rec: &mut RawRecord,
    ) -> Result<bool, (Option<usize>, String)> {
        if self.at == self.batch && !self.read_batch()? {
            return Ok(false);
        }
        let row = self.at;
        self.at += 1;
        for column in &mut self.columns {
            if column.max_def > 0 && column.defs[row] < column.max_def {
                rec.push_null();
                continue;
            }
            let i = column.next_value;
            column.next_value += 1;
            push_value(rec, column.render, &column.values, i);
        }
        Ok(true)
    }

    /// Reads the next batch of every column (opening the next row group when the open one is
    /// read); `false` when no row is left.
    fn read_batch(&mut self) -> Result<bool, (Option<usize>, String)> {
        while self.left_in_group == 0 {
            if self.group == self.file.num_row_groups() {
                return Ok(false);
            }
            let group = self
                .file
                .get_row_group(self.group)
                .map_err(|e| (None, e.to_string()))?;
            self.left_in_group = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            for (i, column) in self.columns.iter_mut().enumerate() {
                column.reader = Some(
                    group
                        .get_column_reader(i)
                        .map_err(|e| (Some(i), e.to_string()))?,
                );
            }
            self.group += 1;
        }
        let rows = self.left_in_group.min(BATCH);
        for (i, column) in self.columns.iter_mut().enumerate() {
            column.read(rows).map_err(|e| (Some(i), e))?;
        }
        self.left_in_group -= rows;
        self.batch = rows;
        self.at = 0;
        Ok(true)
    }
}

impl Column {
    /// Reads the next `rows` rows' levels and values.
    fn read(&mut self, rows: usize) -> Result<(), String> {
        self.defs.clear();
        self.next_value = 0;
        let defs = (self.max_def > 0).then_some(&mut self.defs);
        let reader = self.reader.as_mut().ok_or("no row group open")?;
        macro_rules! read {
            ($reader:expr, $values:expr) => {{
                $values.clear();
                let mut defs = defs;
                let mut got = 0;
                while got < rows {
                    let (records, _, _) = $reader
                        .read_records(rows - got, defs.as_deref_mut(), None, $values)
                        .map_err(|e| e.to_string())?;
                    if records == 0 {
                        break;
                    }
                    got += records;
                }
                got
            }};
        }
        let got = match (reader, &mut self.values) {
            (ColumnReader::BoolColumnReader(r), Values::Bool(v)) => read!(r, v),
            (ColumnReader::Int32ColumnReader(r), Values::I32(v)) => read!(r, v),
            (ColumnReader::Int64ColumnReader(r), Values::I64(v)) => read!(r, v),
            (ColumnReader::Int96ColumnReader(r), Values::I96(v)) => read!(r, v),
            (ColumnReader::FloatColumnReader(r), Values::F32(v)) => read!(r, v),
            (ColumnReader::DoubleColumnReader(r), Values::F64(v)) => read!(r, v),
            (ColumnReader::ByteArrayColumnReader(r), Values::Bytes(v)) => read!(r, v),
            (ColumnReader::FixedLenByteArrayColumnReader(r), Values::Fixed(v)) => read!(r, v),
            _ => return Err("the column's reader is not of its physical type".into()),
        };
        if got < rows {
            return Err(format!("the row group ended after {got} of its rows"));
        }
        Ok(())
    }
}

/// How a column's values are written: by its logical type, else its converted type, else its
/// physical type.
fn render_of(descr: &ColumnDescriptor) -> Render {
    let unit = |unit: &TimeUnit, millis, micros, nanos| match unit {
        TimeUnit::MILLIS => millis,
        TimeUnit::MICROS => micros,
        TimeUnit::NANOS => nanos,
    };
    match descr.logical_type_ref() {
        Some(LogicalType::Decimal(d)) => {
            return Render::Decimal {
                scale: u32::try_from(d.scale).unwrap_or(0),
            }
        }
        Some(LogicalType::Timestamp(t)) => {
            return unit(
                &t.unit,
                Render::TimestampMillis,
                Render::TimestampMicros,
                Render::TimestampNanos,
            )
        }
        Some(LogicalType::Time(t)) => {
            return unit(
                &t.unit,
                Render::TimeMillis,
                Render::TimeMicros,
                Render::TimeNanos,
            )
        }
        Some(LogicalType::Date) => return Render::Date,
        Some(LogicalType::Integer(i)) if !i.is_signed => return Render::Unsigned,
        Some(LogicalType::Integer(_)) => return Render::Signed,
        Some(LogicalType::Float16) => return Render::Float16,
        Some(LogicalType::String | LogicalType::Enum | LogicalType::Json) => return Render::Bytes,
        _ => {}
    }
    match descr.converted_type() {
        ConvertedType::DECIMAL => {
            return Render::Decimal {
                scale: u32::try_from(descr.type_scale()).unwrap_or(0),
            }
        }
        ConvertedType::TIMESTAMP_MILLIS => return Render::TimestampMillis,
        ConvertedType::TIMESTAMP_MICROS => return Render::TimestampMicros,
        ConvertedType::DATE => return Render::Date,
        ConvertedType::TIME_MILLIS => return Render::TimeMillis,
        ConvertedType::TIME_MICROS => return Render::TimeMicros,
        ConvertedType::UINT_8
        | ConvertedType::UINT_16
        | ConvertedType::UINT_32
        | ConvertedType::UINT_64 => return Render::Unsigned,
        _ => {}
    }
    match descr.physical_type() {
        PhysicalType::BOOLEAN => Render::Bool,
        PhysicalType::INT32 | PhysicalType::INT64 => Render::Signed,
        PhysicalType::INT96 => Render::TimestampNanos,
        PhysicalType::FLOAT | PhysicalType::DOUBLE => Render::Float,
        PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY => Render::Bytes,
    }
}

/// An integer value of any width, as the column's values hold it.
fn integer(values: &Values, i: usize) -> Option<i64> {
    match values {
        Values::I32(v) => Some(i64::from(v[i])),
        Values::I64(v) => Some(v[i]),
        _ => None,
    }
}

/// Appends value `i` of `values` to `rec`, written as `render` says.
fn push_value(rec: &mut RawRecord, render: Render, values: &Values, i: usize) {
    let int = integer(values, i);
    match (render, values, int) {
        (_, Values::Bool(v), _) => rec.push_text(if v[i] { b"true" } else { b"false" }),
        (_, Values::I96(v), _) => {
            rec.push_with(|out| write_timestamp_since_1970(out, v[i].to_micros()))
        }
        (Render::Decimal { scale }, Values::Bytes(v), _) => {
            rec.push_with(|out| write_unscaled(out, big_endian(v[i].data()), scale))
        }
        (Render::Decimal { scale }, Values::Fixed(v), _) => {
            rec.push_with(|out| write_unscaled(out, big_endian(v[i].data()), scale))
        }
        (Render::Float16, Values::Fixed(v), _) => {
            let d = v[i].data();
            let bits = u16::from_le_bytes([
                d.first().copied().unwrap_or(0),
                d.get(1).copied().unwrap_or(0),
            ]);
            push_display(rec, f16_to_f32(bits))
        }
        (_, Values::Bytes(v), _) => rec.push_text(v[i].data()),
        (_, Values::Fixed(v), _) => rec.push_text(v[i].data()),
        (_, Values::F32(v), _) => push_display(rec, v[i]),
        (_, Values::F64(v), _) => push_display(rec, v[i]),
        (Render::Decimal { scale }, _, Some(n)) => {
            rec.push_with(|out| write_unscaled(out, i128::from(n), scale))
        }
        (Render::Date, _, Some(n)) => rec.push_with(|out| write_date_since_1970(out, n)),
        (Render::TimeMillis, _, Some(n)) => {
            rec.push_with(|out| write_time_of_day(out, n.saturating_mul(1000)))
        }
        (Render::TimeMicros, _, Some(n)) => rec.push_with(|out| write_time_of_day(out, n)),
        (Render::TimeNanos, _, Some(n)) => {
            rec.push_with(|out| write_time_of_day(out, n.div_euclid(1000)))
        }
        (Render::TimestampMillis, _, Some(n)) => {
            rec.push_with(|out| write_timestamp_since_1970(out, n.saturating_mul(1000)))
        }
        (Render::TimestampMicros, _, Some(n)) => {
            rec.push_with(|out| write_timestamp_since_1970(out, n))
        }
        (Render::TimestampNanos, _, Some(n)) => {
            rec.push_with(|out| write_timestamp_since_1970(out, n.div_euclid(1000)))
        }
        // An unsigned value is stored in a signed one of its width.
        (Render::Unsigned, Values::I32(v), _) => push_integer(rec, u64::from(v[i] as u32)),
        (Render::Unsigned, Values::I64(v), _) => push_integer(rec, v[i] as u64),
        (_, _, Some(n)) => push_integer(rec, n),
        (_, _, None) => rec.push_null(),
    }
}

fn push_integer(rec: &mut RawRecord, n: impl itoa::Integer) {
    let mut buffer = itoa::Buffer::new();
    rec.push_text(buffer.format(n).as_bytes());
}

fn push_display(rec: &mut RawRecord, v: impl std::fmt::Display) {
    use std::io::Write as _;
    rec.push_with(|out| {
        let _ = write!(out, "{v}");
    });
}

/// A big-endian two's complement value (at most 16 bytes are significant: precision 38).
fn big_endian(bytes: &[u8]) -> i128 {
    let mut value: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes.iter().rev().take(16).rev() {
        value = (value << 8) | i128::from(*b);
    }
    value
}

/// An IEEE half-precision value as `f32`.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f32::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f32.powi(-24),
        31 if fraction == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_and_big_endian_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(big_endian(&[0xff, 0x85]), -123);
        assert_eq!(big_endian(&[0x01, 0x00]), 256);
        assert_eq!(big_endian(&[]), 0);
    }
}
