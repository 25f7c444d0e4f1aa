//! Binary COPY encoding: stream header and trailer, and one field of each column type.

use super::calendar::{days_since_2000, parse_date, parse_timestamp};
use super::error::quote;
use super::numeric::encode_numeric;
use super::table::ColumnType;
use super::value::{parse_bool, parse_float, parse_int_checked};

/// The header of a `COPY ... (FORMAT binary)` stream: signature, flags 0, no extension.
pub const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The trailer of a `COPY ... (FORMAT binary)` stream: a field count of -1.
pub const COPY_BINARY_TRAILER: &[u8] = &[0xff, 0xff];

/// Appends the length-prefixed binary encoding of a non-NULL `value` of type `ty`. Errors are
/// the `reason` of a field error.
pub(super) fn encode_value(ty: &ColumnType, value: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match ty {
        ColumnType::Int2 => {
            let v = parse_int_checked(value, i64::from(i16::MIN), i64::from(i16::MAX), "smallint")?;
            out.extend_from_slice(&2i32.to_be_bytes());
            out.extend_from_slice(&(v as i16).to_be_bytes());
        }
        ColumnType::Int4 => {
            let v = parse_int_checked(value, i64::from(i32::MIN), i64::from(i32::MAX), "integer")?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&(v as i32).to_be_bytes());
        }
        ColumnType::Int8 => {
            let v = parse_int_checked(value, i64::MIN, i64::MAX, "bigint")?;
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        ColumnType::Float4 => {
            let v: f32 = parse_float(value, "real")?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        ColumnType::Float8 => {
            let v: f64 = parse_float(value, "double precision")?;
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        ColumnType::Bool => {
            let v = parse_bool(value).ok_or_else(|| format!("invalid boolean {}", quote(value)))?;
            out.extend_from_slice(&1i32.to_be_bytes());
            out.push(u8::from(v));
        }
        ColumnType::Text => encode_text(value, None, "text", out)?,
        ColumnType::Varchar(max) => encode_text(value, *max, "varchar", out)?,
        ColumnType::Bpchar(max) => encode_text(value, *max, "char", out)?,
        ColumnType::Date => {
            let (y, m, d) = (value.len() == 10)
                .then(|| parse_date(value))
                .flatten()
                .ok_or_else(|| format!("invalid date {}", quote(value)))?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&(days_since_2000(y, m, d) as i32).to_be_bytes());
        }
        ColumnType::Timestamp | ColumnType::Timestamptz => {
            let v = parse_timestamp(value)
                .ok_or_else(|| format!("invalid timestamp {}", quote(value)))?;
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        ColumnType::Numeric { precision, scale } => {
            encode_numeric(value, *precision, *scale, out)?;
        }
    }
    Ok(())
}

fn encode_text(
    value: &[u8],
    max_chars: Option<u32>,
    type_name: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if std::str::from_utf8(value).is_err() {
        return Err(format!("invalid UTF-8 in {}", quote(value)));
    }
    if memchr::memchr(0, value).is_some() {
        return Err(format!("NUL byte in {}", quote(value)));
    }
    if let Some(max) = max_chars {
        let max = max as usize;
        if value.len() > max {
            // Count characters: every byte that is not a UTF-8 continuation byte starts one.
            let chars = value.iter().filter(|&&b| (b & 0xc0) != 0x80).count();
            if chars > max {
                return Err(format!(
                    "value too long for {type_name}({max}): {chars} characters {}",
                    quote(value)
                ));
            }
        }
    }
    let len = i32::try_from(value.len()).map_err(|_| "value too long".to_string())?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{bad, col, encode_one, ok, spec};
    use crate::{CsvScanner, OpColumn, RawRecord, RowDecoder};

    #[test]
    fn copy_header_and_trailer() {
        assert_eq!(COPY_BINARY_HEADER.len(), 19);
        assert_eq!(&COPY_BINARY_HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&COPY_BINARY_HEADER[11..], &[0u8; 8]);
        assert_eq!(COPY_BINARY_TRAILER, &[0xff, 0xff]);
    }

    #[test]
    fn null_handling() {
        // NULL in a nullable column of any type.
        for ty in [
            ColumnType::Int4,
            ColumnType::Text,
            ColumnType::Date,
            ColumnType::Numeric {
                precision: None,
                scale: None,
            },
        ] {
            assert_eq!(encode_one(ty, "").unwrap(), None);
        }
        // "" is the empty string for text types...
        assert_eq!(ok(ColumnType::Text, "\"\""), b"");
        assert_eq!(ok(ColumnType::Varchar(Some(3)), "\"\""), b"");
        assert_eq!(ok(ColumnType::Bpchar(Some(3)), "\"\""), b"");
        // ...and an invalid value for the others.
        assert_eq!(bad(ColumnType::Int4, "\"\""), "invalid integer \"\"");
        assert_eq!(bad(ColumnType::Bool, "\"\""), "invalid boolean \"\"");
        assert_eq!(bad(ColumnType::Date, "\"\""), "invalid date \"\"");
        assert_eq!(bad(ColumnType::Timestamp, "\"\""), "invalid timestamp \"\"");
        assert_eq!(bad(ColumnType::Float8, "\"\""), "invalid float \"\"");
        assert_eq!(
            bad(
                ColumnType::Numeric {
                    precision: None,
                    scale: None
                },
                "\"\""
            ),
            "invalid numeric \"\""
        );
        // A quoted non-empty value is fine for any type.
        assert_eq!(ok(ColumnType::Int4, "\"5\""), 5i32.to_be_bytes());
    }

    #[test]
    fn text_types() {
        assert_eq!(ok(ColumnType::Text, "hello world"), b"hello world");
        assert_eq!(ok(ColumnType::Text, "\"a,\"\"b\"\"\nc\""), b"a,\"b\"\nc");
        assert_eq!(ok(ColumnType::Text, "日本語"), "日本語".as_bytes());
        // Lengths count characters, not bytes.
        assert_eq!(
            ok(ColumnType::Varchar(Some(3)), "日本語"),
            "日本語".as_bytes()
        );
        assert_eq!(ok(ColumnType::Bpchar(Some(2)), "éé"), "éé".as_bytes());
        assert_eq!(ok(ColumnType::Varchar(None), "long text"), b"long text");
        assert_eq!(ok(ColumnType::Bpchar(None), "x"), b"x");
        assert_eq!(
            bad(ColumnType::Varchar(Some(3)), "日本語x"),
            "value too long for varchar(3): 4 characters \"日本語x\""
        );
        assert_eq!(
            bad(ColumnType::Bpchar(Some(1)), "ab"),
            "value too long for char(1): 2 characters \"ab\""
        );
    }

    #[test]
    fn text_rejects_bad_utf8_and_nul() {
        let s = spec(vec![col("t", ColumnType::Text, true)]);
        let mut decoder = RowDecoder::new(s, OpColumn::Absent);
        let mut rec = RawRecord::new();
        let mut out = Vec::new();

        let mut scanner = CsvScanner::new(&b"ab\xffcd\n"[..]);
        scanner.next_record(&mut rec).unwrap();
        let err = decoder.decode(&rec, 1, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1 (t): invalid UTF-8 in \"ab\u{fffd}cd\""
        );

        let mut scanner = CsvScanner::new(&b"ab\0cd\n"[..]);
        scanner.next_record(&mut rec).unwrap();
        let err = decoder.decode(&rec, 1, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1 (t): NUL byte in \"ab\\0cd\""
        );
        assert!(out.is_empty());
    }
}
