//! Parsing of integer, float and boolean values.

use super::error::quote;

/// Why an integer did not parse.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum IntError {
    Invalid,
    Range,
}

/// Parses a decimal integer with an optional sign into an i64.
pub(super) fn parse_int(value: &[u8]) -> Result<i64, IntError> {
    let (neg, digits) = match value.first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if digits.is_empty() {
        return Err(IntError::Invalid);
    }
    let mut acc: u64 = 0;
    let mut overflow = false;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(IntError::Invalid);
        }
        match acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(d)))
        {
            Some(a) => acc = a,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(IntError::Range);
    }
    if neg {
        if acc <= 1u64 << 63 {
            Ok((acc as i64).wrapping_neg())
        } else {
            Err(IntError::Range)
        }
    } else {
        i64::try_from(acc).map_err(|_| IntError::Range)
    }
}

pub(super) fn parse_int_checked(
    value: &[u8],
    min: i64,
    max: i64,
    type_name: &str,
) -> Result<i64, String> {
    match parse_int(value) {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) | Err(IntError::Range) => Err(format!(
            "value {} out of range for {type_name}",
            quote(value)
        )),
        Err(IntError::Invalid) => Err(format!("invalid integer {}", quote(value))),
    }
}

/// Parses a float with Rust's correctly rounded parser (which also takes `inf`, `infinity` and
/// `nan` in any case); finite input that overflows to infinity is out of range.
pub(super) fn parse_float<F>(value: &[u8], type_name: &str) -> Result<F, String>
where
    F: std::str::FromStr + Copy + Into<f64>,
{
    let invalid = || format!("invalid float {}", quote(value));
    let text = std::str::from_utf8(value).map_err(|_| invalid())?;
    let v: F = text.parse().map_err(|_| invalid())?;
    if v.into().is_infinite() {
        let word = text.trim_start_matches(['+', '-']);
        if !word.eq_ignore_ascii_case("inf") && !word.eq_ignore_ascii_case("infinity") {
            return Err(format!(
                "value {} out of range for {type_name}",
                quote(value)
            ));
        }
    }
    Ok(v)
}

pub(super) fn parse_bool(value: &[u8]) -> Option<bool> {
    match value {
        [b] => match b.to_ascii_lowercase() {
            b't' | b'1' => Some(true),
            b'f' | b'0' => Some(false),
            _ => None,
        },
        _ if value.eq_ignore_ascii_case(b"true") => Some(true),
        _ if value.eq_ignore_ascii_case(b"false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{bad, ok};
    use crate::ColumnType;

    #[test]
    fn integers() {
        assert_eq!(ok(ColumnType::Int2, "-32768"), (-32768i16).to_be_bytes());
        assert_eq!(ok(ColumnType::Int2, "+32767"), 32767i16.to_be_bytes());
        assert_eq!(ok(ColumnType::Int2, "0"), [0, 0]);
        assert_eq!(ok(ColumnType::Int4, "-2147483648"), i32::MIN.to_be_bytes());
        assert_eq!(ok(ColumnType::Int4, "2147483647"), i32::MAX.to_be_bytes());
        assert_eq!(ok(ColumnType::Int4, "007"), 7i32.to_be_bytes());
        assert_eq!(ok(ColumnType::Int4, "-0"), 0i32.to_be_bytes());
        assert_eq!(
            ok(ColumnType::Int8, "-9223372036854775808"),
            i64::MIN.to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Int8, "9223372036854775807"),
            i64::MAX.to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Int8, "00000000000000000000000000042"),
            42i64.to_be_bytes()
        );

        assert_eq!(
            bad(ColumnType::Int2, "32768"),
            "value \"32768\" out of range for smallint"
        );
        assert_eq!(
            bad(ColumnType::Int2, "-32769"),
            "value \"-32769\" out of range for smallint"
        );
        assert_eq!(
            bad(ColumnType::Int4, "2147483648"),
            "value \"2147483648\" out of range for integer"
        );
        assert_eq!(
            bad(ColumnType::Int8, "9223372036854775808"),
            "value \"9223372036854775808\" out of range for bigint"
        );
        assert_eq!(
            bad(ColumnType::Int8, "-9223372036854775809"),
            "value \"-9223372036854775809\" out of range for bigint"
        );
        assert_eq!(
            bad(ColumnType::Int8, "99999999999999999999999"),
            "value \"99999999999999999999999\" out of range for bigint"
        );
        for v in [
            "12x", "-", "+", "1.0", " 1", "1 ", "1e3", "--1", "0x10", "٣",
        ] {
            assert_eq!(
                bad(ColumnType::Int4, v),
                format!("invalid integer {}", quote(v.as_bytes()))
            );
        }
    }

    #[test]
    fn floats() {
        assert_eq!(
            ok(ColumnType::Float4, "1.5"),
            1.5f32.to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float4, "-0.1"),
            (-0.1f32).to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float8, "0.1"),
            0.1f64.to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float8, "1.5E+10"),
            1.5e10f64.to_bits().to_be_bytes()
        );
        assert_eq!(ok(ColumnType::Float8, "+2"), 2f64.to_bits().to_be_bytes());
        assert_eq!(
            ok(ColumnType::Float8, "-Infinity"),
            f64::NEG_INFINITY.to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float4, "inf"),
            f32::INFINITY.to_bits().to_be_bytes()
        );
        let nan = ok(ColumnType::Float8, "NaN");
        assert!(f64::from_bits(u64::from_be_bytes(nan.try_into().unwrap())).is_nan());
        // 1e40 fits a double but not a real.
        assert_eq!(
            ok(ColumnType::Float8, "1e40"),
            1e40f64.to_bits().to_be_bytes()
        );
        assert_eq!(
            bad(ColumnType::Float4, "1e40"),
            "value \"1e40\" out of range for real"
        );
        assert_eq!(
            bad(ColumnType::Float8, "-1e400"),
            "value \"-1e400\" out of range for double precision"
        );
        assert_eq!(bad(ColumnType::Float8, "\"1,5\""), "invalid float \"1,5\"");
        assert_eq!(bad(ColumnType::Float8, "abc"), "invalid float \"abc\"");
        assert_eq!(bad(ColumnType::Float8, " 1"), "invalid float \" 1\"");
    }

    #[test]
    fn booleans() {
        for v in ["t", "T", "true", "TRUE", "True", "1"] {
            assert_eq!(ok(ColumnType::Bool, v), [1], "{v}");
        }
        for v in ["f", "F", "false", "FALSE", "fAlSe", "0"] {
            assert_eq!(ok(ColumnType::Bool, v), [0], "{v}");
        }
        for v in ["yes", "2", "tru", "truee", " t"] {
            assert_eq!(bad(ColumnType::Bool, v), format!("invalid boolean \"{v}\""));
        }
    }
}
