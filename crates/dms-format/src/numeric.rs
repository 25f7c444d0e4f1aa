//! Decimal strings to Postgres binary `numeric`.

use super::error::quote;

/// Largest display scale Postgres accepts.
const NUMERIC_MAX_DSCALE: usize = 0x3fff;
/// Most digits Postgres accepts before the decimal point.
const NUMERIC_MAX_INT_DIGITS: usize = 131_072;

/// Encodes a decimal string as Postgres binary `numeric`.
///
/// With a scale, excess fraction digits are refused unless they are all zeros (then they are
/// dropped, which is exact); `numeric(p)` means scale 0.
pub(super) fn encode_numeric(
    value: &[u8],
    precision: Option<u16>,
    scale: Option<u16>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let invalid = || format!("invalid numeric {}", quote(value));
    let (neg, body) = match value.first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let (int_part, frac_part) = match memchr::memchr(b'.', body) {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(invalid());
    }
    if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let first_sig = int_part
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(int_part.len());
    let int_digits = &int_part[first_sig..];
    let mut frac_digits = frac_part;

    let scale = scale.or(precision.map(|_| 0));
    if let Some(s) = scale {
        let s = usize::from(s);
        if frac_digits.len() > s {
            if frac_digits[s..].iter().any(|&c| c != b'0') {
                return Err(format!(
                    "numeric value {} has more than {s} fraction digits",
                    quote(value)
                ));
            }
            frac_digits = &frac_digits[..s];
        }
        if let Some(p) = precision {
            // Position of the leading significant digit: n for an n-digit integer part,
            // -z for a fraction with z leading zeros.
            let magnitude = if !int_digits.is_empty() {
                Some(int_digits.len() as i64)
            } else {
                frac_digits
                    .iter()
                    .position(|&c| c != b'0')
                    .map(|z| -(z as i64))
            };
            if magnitude.is_some_and(|m| m > i64::from(p) - s as i64) {
                return Err(format!(
                    "numeric field overflow: {} does not fit numeric({p},{s})",
                    quote(value)
                ));
            }
        }
    }
    if frac_digits.len() > NUMERIC_MAX_DSCALE || int_digits.len() > NUMERIC_MAX_INT_DIGITS {
        return Err(format!("numeric value {} out of range", quote(value)));
    }
    let dscale = frac_digits.len() as u16;

    // Lay the digits out on a grid of base-10000 groups aligned at the decimal point: `pad`
    // zeros, the integer digits, the fraction digits, zeros up to a group boundary.
    let pad = (4 - int_digits.len() % 4) % 4;
    let int_end = pad + int_digits.len();
    let int_groups = int_end / 4;
    let digit_at = |pos: usize| -> u16 {
        if pos < pad {
            0
        } else if pos < int_end {
            u16::from(int_digits[pos - pad] - b'0')
        } else if pos < int_end + frac_digits.len() {
            u16::from(frac_digits[pos - int_end] - b'0')
        } else {
            0
        }
    };
    let first_nonzero = if !int_digits.is_empty() {
        Some(pad)
    } else {
        frac_digits
            .iter()
            .position(|&c| c != b'0')
            .map(|i| int_end + i)
    };
    let Some(first_nonzero) = first_nonzero else {
        // Zero: no digits, weight 0, positive, keeping the written scale.
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        return Ok(());
    };
    let last_nonzero = match frac_digits.iter().rposition(|&c| c != b'0') {
        Some(i) => int_end + i,
        None => pad + int_digits.iter().rposition(|&c| c != b'0').unwrap_or(0),
    };
    let first_group = first_nonzero / 4;
    let last_group = last_nonzero / 4;
    let ndigits = last_group - first_group + 1;
    let weight = int_groups as i64 - 1 - first_group as i64;
    let ndigits16 = i16::try_from(ndigits)
        .map_err(|_| format!("numeric value {} out of range", quote(value)))?;
    let len = 8 + 2 * ndigits as i32;

    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&ndigits16.to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&(if neg { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in first_group..=last_group {
        let base = g * 4;
        let group = digit_at(base) * 1000
            + digit_at(base + 1) * 100
            + digit_at(base + 2) * 10
            + digit_at(base + 3);
        out.extend_from_slice(&group.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{bad, csv, numeric, numeric_ps, ok};
    use crate::ColumnType;

    const NUMERIC: ColumnType = ColumnType::Numeric {
        precision: None,
        scale: None,
    };

    #[test]
    fn numeric_encodings() {
        let cases: &[(&str, Vec<u8>)] = &[
            ("12345.678", numeric(3, 1, false, 3, &[1, 2345, 6780])),
            ("0.0001", numeric(1, -1, false, 4, &[1])),
            ("0.00000001", numeric(1, -2, false, 8, &[1])),
            ("0.00010002", numeric(2, -1, false, 8, &[1, 2])),
            ("-123.4500", numeric(2, 0, true, 4, &[123, 4500])),
            ("0.5", numeric(1, -1, false, 1, &[5000])),
            (".5", numeric(1, -1, false, 1, &[5000])),
            ("+.5", numeric(1, -1, false, 1, &[5000])),
            ("7", numeric(1, 0, false, 0, &[7])),
            ("7.", numeric(1, 0, false, 0, &[7])),
            ("-7", numeric(1, 0, true, 0, &[7])),
            ("100", numeric(1, 0, false, 0, &[100])),
            ("10000", numeric(1, 1, false, 0, &[1])),
            ("100000000", numeric(1, 2, false, 0, &[1])),
            ("100000001", numeric(3, 2, false, 0, &[1, 0, 1])),
            ("1.0001", numeric(2, 0, false, 4, &[1, 1])),
            ("10000.0001", numeric(3, 1, false, 4, &[1, 0, 1])),
            ("00123.00", numeric(1, 0, false, 2, &[123])),
            ("9999.9999", numeric(2, 0, false, 4, &[9999, 9999])),
            (
                "-9223372036854775808",
                numeric(5, 4, true, 0, &[922, 3372, 368, 5477, 5808]),
            ),
            // Zero: no digits, weight 0, positive, scale as written.
            ("0", numeric(0, 0, false, 0, &[])),
            ("-0", numeric(0, 0, false, 0, &[])),
            ("0.00", numeric(0, 0, false, 2, &[])),
            ("-0.00", numeric(0, 0, false, 2, &[])),
            ("000", numeric(0, 0, false, 0, &[])),
            (".0", numeric(0, 0, false, 1, &[])),
        ];
        for (input, expected) in cases {
            let got = ok(NUMERIC, input);
            assert_eq!(&got, expected, "{input}");
        }
    }

    #[test]
    fn numeric_precision_and_scale() {
        let ty = numeric_ps(5, 2);
        assert_eq!(
            ok(ty.clone(), "123.45"),
            numeric(2, 0, false, 2, &[123, 4500])
        );
        assert_eq!(
            ok(ty.clone(), "-999.99"),
            numeric(2, 0, true, 2, &[999, 9900])
        );
        assert_eq!(
            ok(ty.clone(), "000123.4"),
            numeric(2, 0, false, 1, &[123, 4000])
        );
        // Extra fraction zeros are dropped, exactly.
        assert_eq!(
            ok(ty.clone(), "1.2300"),
            numeric(2, 0, false, 2, &[1, 2300])
        );
        assert_eq!(ok(ty.clone(), "0.000"), numeric(0, 0, false, 2, &[]));
        assert_eq!(
            bad(ty.clone(), "1000.5"),
            "numeric field overflow: \"1000.5\" does not fit numeric(5,2)"
        );
        assert_eq!(
            bad(ty.clone(), "1.234"),
            "numeric value \"1.234\" has more than 2 fraction digits"
        );
        assert_eq!(
            bad(ty.clone(), "1.2301"),
            "numeric value \"1.2301\" has more than 2 fraction digits"
        );
        // numeric(p) has scale 0.
        let ty = ColumnType::Numeric {
            precision: Some(3),
            scale: None,
        };
        assert_eq!(ok(ty.clone(), "-999"), numeric(1, 0, true, 0, &[999]));
        assert_eq!(ok(ty.clone(), "5.0"), numeric(1, 0, false, 0, &[5]));
        assert!(bad(ty.clone(), "1000").starts_with("numeric field overflow"));
        assert!(bad(ty, "1.5").contains("more than 0 fraction digits"));
        // Scale larger than precision: only small fractions fit.
        let ty = numeric_ps(2, 3);
        assert_eq!(ok(ty.clone(), "0.012"), numeric(1, -1, false, 3, &[120]));
        assert!(bad(ty, "0.1").starts_with("numeric field overflow"));
    }

    #[test]
    fn numeric_rejects_garbage() {
        for v in [
            ".", "-", "+", "-.", "1e5", "1E5", "1.2.3", "1,5", " 1", "1 ", "NaN", "--1", "0x1",
            "1-",
        ] {
            assert_eq!(bad(NUMERIC, &csv(v)), format!("invalid numeric \"{v}\""));
        }
        let huge_scale = format!("0.{}1", "0".repeat(NUMERIC_MAX_DSCALE));
        assert!(bad(NUMERIC, &huge_scale).contains("out of range"));
    }
}
