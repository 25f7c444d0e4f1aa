//! DMS object keys written: the names [`parse_object_key`](crate::parse_object_key) recognises,
//! as DMS writes them (gzip CSV, upper-case hexadecimal sequence numbers).

use chrono::{Datelike, NaiveDateTime, Timelike};

/// The name of full-load file number `seq`: `LOAD` and 8 upper-case hexadecimal digits,
/// `.csv.gz` (DMS numbers a table's full-load files from 1).
pub fn load_file_name(seq: u32) -> String {
    format!("LOAD{seq:08X}.csv.gz")
}

/// The name of the change file DMS writes for a commit at `at` (UTC):
/// `YYYYMMDD-HHMMSSmmm.csv.gz` (milliseconds truncated); with `dated`, below the date folders
/// `YYYY/MM/DD/` of the same day (DMS's `DatePartitionEnabled`).
pub fn cdc_file_name(at: NaiveDateTime, dated: bool) -> String {
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}{:03}.csv.gz",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.nanosecond() / 1_000_000
    );
    if dated {
        format!("{:04}/{:02}/{:02}/{stamp}", at.year(), at.month(), at.day())
    } else {
        stamp
    }
}

/// The key of file `name` (a name from [`load_file_name`] or [`cdc_file_name`]) of
/// `schema.table` below `bucket_path`: `<bucket_path>/<schema>/<table>/<name>`. `bucket_path`
/// may be empty, and leading or trailing `/` on it are ignored, as by `parse_object_key`.
pub fn object_key(bucket_path: &str, schema: &str, table: &str, name: &str) -> String {
    let prefix = bucket_path.trim_matches('/');
    if prefix.is_empty() {
        format!("{schema}/{table}/{name}")
    } else {
        format!("{prefix}/{schema}/{table}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::{parse_file_name, parse_object_key, Compression, DmsObject, FileKind};

    fn at(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_micro_opt(h, mi, s, micros))
            .expect("valid date and time")
    }

    /// `YYYYMMDDHHMMSSmmm` as a number, the way `FileKind::Cdc` holds it.
    fn stamp(t: NaiveDateTime) -> u64 {
        t.format("%Y%m%d%H%M%S%3f").to_string().parse().unwrap()
    }

    const BUCKET_PATHS: [&str; 4] = ["", "data", "/data/", "a/b"];

    #[test]
    fn names_as_dms_writes_them() {
        assert_eq!(load_file_name(1), "LOAD00000001.csv.gz");
        assert_eq!(load_file_name(10), "LOAD0000000A.csv.gz");
        assert_eq!(load_file_name(u32::MAX), "LOADFFFFFFFF.csv.gz");
        let t = at(2022, 9, 22, 9, 58, 53, 123_456);
        assert_eq!(cdc_file_name(t, false), "20220922-095853123.csv.gz");
        assert_eq!(
            cdc_file_name(t, true),
            "2022/09/22/20220922-095853123.csv.gz"
        );
        assert_eq!(
            cdc_file_name(at(2024, 2, 29, 0, 0, 0, 0), true),
            "2024/02/29/20240229-000000000.csv.gz"
        );
        assert_eq!(object_key("", "dbo", "orders", "x"), "dbo/orders/x");
        assert_eq!(object_key("/", "dbo", "orders", "x"), "dbo/orders/x");
        assert_eq!(
            object_key("data", "dbo", "orders", "x"),
            "data/dbo/orders/x"
        );
        assert_eq!(
            object_key("/a/b/", "dbo", "orders", "x"),
            "a/b/dbo/orders/x"
        );
    }

    #[test]
    fn load_names_round_trip() {
        for seq in [0, 1, 9, 10, 15, 16, 255, 0x1234_ABCD, u32::MAX] {
            let name = load_file_name(seq);
            let kind = FileKind::Load { seq };
            assert_eq!(parse_file_name(&name), Some((kind, Compression::Gzip)));
            for bp in BUCKET_PATHS {
                let key = object_key(bp, "dbo", "orders", &name);
                let o = parse_object_key(bp, &key).unwrap_or_else(|| panic!("{key} parses"));
                assert_eq!(o.key, key);
                assert_eq!((o.schema.as_str(), o.table.as_str()), ("dbo", "orders"));
                assert_eq!((o.kind, o.compression), (kind, Compression::Gzip));
            }
        }
    }

    #[test]
    fn cdc_names_round_trip() {
        let times = [
            at(2022, 9, 22, 9, 58, 53, 123_456),
            at(2022, 9, 22, 9, 58, 53, 123_999),
            at(2024, 2, 29, 23, 59, 59, 999_999),
            at(2022, 12, 31, 0, 0, 0, 0),
            at(2023, 1, 1, 0, 0, 0, 1_000),
            at(1, 1, 1, 1, 2, 3, 4_000),
            at(9999, 12, 31, 23, 59, 59, 999_000),
        ];
        for t in times {
            for dated in [false, true] {
                let name = cdc_file_name(t, dated);
                let file = name.rsplit('/').next().unwrap();
                let kind = FileKind::Cdc { stamp: stamp(t) };
                assert_eq!(
                    parse_file_name(file),
                    Some((kind, Compression::Gzip)),
                    "{name}"
                );
                for bp in BUCKET_PATHS {
                    let key = object_key(bp, "dbo", "orders", &name);
                    let o = parse_object_key(bp, &key).unwrap_or_else(|| panic!("{key} parses"));
                    assert_eq!(o.key, key);
                    assert_eq!((o.schema.as_str(), o.table.as_str()), ("dbo", "orders"));
                    assert_eq!((o.kind, o.compression), (kind, Compression::Gzip));
                }
            }
        }
    }

    #[test]
    fn formatted_names_apply_in_time_order() {
        // Full-load files by number, then change files by time, whatever their folders.
        let mut expected: Vec<String> = (1..=20).map(load_file_name).collect();
        let mut t = at(2022, 9, 21, 23, 59, 58, 0);
        for i in 0..50 {
            expected.push(cdc_file_name(t, i % 2 == 1));
            t += chrono::Duration::milliseconds(37 * i + 1);
        }
        let mut objects: Vec<DmsObject> = expected
            .iter()
            .rev()
            .map(|name| parse_object_key("data", &object_key("data", "s", "t", name)).unwrap())
            .collect();
        objects.sort();
        let sorted: Vec<&str> = objects
            .iter()
            .map(|o| &o.key["data/s/t/".len()..])
            .collect();
        assert_eq!(sorted, expected);
    }
}
