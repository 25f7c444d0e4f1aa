//! Dates and timestamps: parsing and calendar arithmetic from the Postgres epoch.

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(super) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 2000-01-01 (the Postgres epoch) to the given proleptic Gregorian date.
pub(super) fn days_since_2000(year: i32, month: u32, day: u32) -> i64 {
    // Count from a year that starts on March 1st, so the leap day is the last day of the year,
    // and in 400-year cycles of 146097 days.
    let (y, m) = if month <= 2 {
        (i64::from(year) - 1, i64::from(month) + 9)
    } else {
        (i64::from(year), i64::from(month) - 3)
    };
    let cycle = y.div_euclid(400);
    let year_of_cycle = y.rem_euclid(400);
    // Days before month m (0 = March) in a March-based year: month lengths go
    // 31 30 31 30 31 31 30 31 30 31 31 (29), which this formula reproduces.
    let day_of_year = (153 * m + 2) / 5 + i64::from(day) - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    // 0000-03-01 is day 0 of this count; 2000-01-01 is day 730425.
    cycle * 146_097 + day_of_cycle - 730_425
}

/// Two ASCII digits.
fn two_digits(b: &[u8]) -> Option<u32> {
    let (h, l) = (b[0].wrapping_sub(b'0'), b[1].wrapping_sub(b'0'));
    (h <= 9 && l <= 9).then(|| u32::from(h) * 10 + u32::from(l))
}

/// Parses and validates `YYYY-MM-DD` at the start of `b` (at least 10 bytes).
pub(super) fn parse_date(b: &[u8]) -> Option<(i32, u32, u32)> {
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(&b[0..2])? * 100 + two_digits(&b[2..4])?;
    let month = two_digits(&b[5..7])?;
    let day = two_digits(&b[8..10])?;
    let year = year as i32;
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`) into microseconds since
/// 2000-01-01 00:00:00.
pub(super) fn parse_timestamp(b: &[u8]) -> Option<i64> {
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = parse_date(b)?;
    let hour = two_digits(&b[11..13])?;
    let minute = two_digits(&b[14..16])?;
    let second = two_digits(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut micros: i64 = 0;
    if b.len() > 19 {
        let frac = &b[20..];
        if b[19] != b'.' || frac.is_empty() || frac.len() > 6 {
            return None;
        }
        for &c in frac {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            micros = micros * 10 + i64::from(d);
        }
        micros *= 10i64.pow(6 - frac.len() as u32);
    }
    let seconds =
        days_since_2000(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(seconds * 1_000_000 + micros)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (negative: before).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // The inverse of `days_since_2000`: March-based years in 400-year cycles.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `YYYY-MM-DD` for the date `days` after 1970-01-01.
pub(super) fn write_date_since_1970(out: &mut Vec<u8>, days: i64) {
    use std::io::Write as _;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
}

/// Writes `HH:MM:SS.ffffff` for `micros` after midnight.
pub(super) fn write_time_of_day(out: &mut Vec<u8>, micros: i64) {
    use std::io::Write as _;
    let secs = micros.div_euclid(1_000_000);
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros.rem_euclid(1_000_000)
    );
}

/// Writes `YYYY-MM-DD HH:MM:SS.ffffff` for `micros` after 1970-01-01 00:00:00.
pub(super) fn write_timestamp_since_1970(out: &mut Vec<u8>, micros: i64) {
    let day = micros.div_euclid(86_400_000_000);
    write_date_since_1970(out, day);
    out.push(b' ');
    write_time_of_day(out, micros.rem_euclid(86_400_000_000));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{bad, csv, micros, ok};
    use crate::ColumnType;

    fn date_bytes(days: i32) -> Vec<u8> {
        days.to_be_bytes().to_vec()
    }

    #[test]
    fn dates() {
        assert_eq!(ok(ColumnType::Date, "2000-01-01"), date_bytes(0));
        assert_eq!(ok(ColumnType::Date, "2000-01-02"), date_bytes(1));
        assert_eq!(ok(ColumnType::Date, "1999-12-31"), date_bytes(-1));
        assert_eq!(ok(ColumnType::Date, "2000-03-01"), date_bytes(60));
        assert_eq!(ok(ColumnType::Date, "1970-01-01"), date_bytes(-10957));
        assert_eq!(ok(ColumnType::Date, "2022-09-22"), date_bytes(8300));
        assert_eq!(ok(ColumnType::Date, "0001-01-01"), date_bytes(-730119));
        assert_eq!(ok(ColumnType::Date, "2024-02-29"), date_bytes(8825));
        assert_eq!(ok(ColumnType::Date, "2000-02-29"), date_bytes(59));
        for v in [
            "2022-02-29",
            "1900-02-29",
            "2022-02-30",
            "2022-04-31",
            "2022-13-01",
            "2022-00-10",
            "2022-01-00",
            "0000-01-01",
            "2022-1-01",
            "2022/01/01",
            "22-01-01",
            "2022-01-01 00:00:00",
            "2022-01-01x",
        ] {
            assert_eq!(bad(ColumnType::Date, v), format!("invalid date \"{v}\""));
        }
    }

    #[test]
    fn calendar_matches_day_by_day_count() {
        let mut days = days_since_2000(1600, 1, 1);
        assert_eq!(days, -146_097);
        for year in 1600..2401 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(
                        days_since_2000(year, month, day),
                        days,
                        "{year}-{month}-{day}"
                    );
                    days += 1;
                }
            }
        }
        assert_eq!(days_since_2000(2401, 1, 1), days);
    }

    #[test]
    fn timestamps() {
        for ty in [ColumnType::Timestamp, ColumnType::Timestamptz] {
            assert_eq!(ok(ty.clone(), "2000-01-01 00:00:00"), micros(0));
            assert_eq!(ok(ty.clone(), "2000-01-01T00:00:01"), micros(1_000_000));
            // 8300 days, 9:58:53.123 (Unix 1663840733.123).
            assert_eq!(
                ok(ty.clone(), "2022-09-22 09:58:53.123"),
                micros(717_155_933_123_000)
            );
            assert_eq!(
                ok(ty.clone(), "2022-09-22T09:58:53.123000"),
                micros(717_155_933_123_000)
            );
            assert_eq!(ok(ty.clone(), "1999-12-31 23:59:59.999999"), micros(-1));
            assert_eq!(ok(ty.clone(), "2000-01-01 00:00:00.5"), micros(500_000));
            assert_eq!(ok(ty.clone(), "2000-01-01 00:00:00.000001"), micros(1));
            assert_eq!(
                ok(ty.clone(), "1970-01-01 00:00:00"),
                micros(-946_684_800_000_000)
            );
            assert_eq!(
                ok(ty.clone(), "2024-02-29 12:00:00"),
                micros((8825 * 86_400 + 12 * 3600) * 1_000_000)
            );
        }
        for v in [
            "2022-02-30 00:00:00",
            "2023-02-29 00:00:00",
            "2022-09-22 24:00:00",
            "2022-09-22 23:60:00",
            "2022-09-22 23:59:60",
            "2022-09-22 09:58:53.",
            "2022-09-22 09:58:53.1234567",
            "2022-09-22 09:58:53.12a",
            "2022-09-22 09:58:53,123",
            "2022-09-22 09:58:53Z",
            "2022-09-22 09:58:53+00",
            "2022-09-22 09:58",
            "2022-09-22",
            "2022-09-22x09:58:53",
            "2022-09-22 9:58:53",
        ] {
            assert_eq!(
                bad(ColumnType::Timestamp, &csv(v)),
                format!("invalid timestamp \"{v}\"")
            );
        }
    }
}
