//! DMS object keys: recognising data files in the bucket and the order they apply in.

use chrono::NaiveDate;

/// How a DMS data file is compressed, from its name suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `*.csv.gz`
    Gzip,
    /// `*.csv`
    None,
    /// `*.parquet` (`DataFormat=parquet`: Apache Parquet, compressed inside the file if at all).
    Parquet,
}

/// Whether a file's records start with the DMS `Op` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpColumn {
    /// Always (change files).
    Present,
    /// Never: every row is an insert.
    Absent,
    /// Decide on the first record (full-load files): `ncols + 1` fields with `I` first means
    /// present, `ncols` fields means absent; later records must have the same layout.
    Detect,
}

/// What a DMS data file holds.
///
/// The derived ordering puts every `Load` before every `Cdc`, loads by sequence number and
/// change files by time stamp, which is the order a table's stream must be applied in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A full-load file `LOADxxxxxxxx.csv[.gz]`; `seq` is the hexadecimal file number.
    Load { seq: u32 },
    /// A change file `YYYYMMDD-HHMMSSmmm.csv[.gz]`; `stamp` is `YYYYMMDDHHMMSSmmm` read as a
    /// decimal number (so numeric order is time order).
    Cdc { stamp: u64 },
}

impl FileKind {
    /// True for a full-load file.
    pub fn is_load(&self) -> bool {
        matches!(self, FileKind::Load { .. })
    }

    /// How the Op column of this kind of file should be handled by the row decoder: change
    /// files always carry one, full-load files only when DMS's `includeOpForFullLoad` was on, so
    /// it has to be detected.
    pub fn op_column(&self) -> OpColumn {
        match self {
            FileKind::Load { .. } => OpColumn::Detect,
            FileKind::Cdc { .. } => OpColumn::Present,
        }
    }
}

/// A DMS data file in the bucket, recognised from its key by [`parse_object_key`].
///
/// Equality and ordering use `(schema, table, kind, key)`: sorting a list of objects groups
/// them by table and, within a table, gives the order in which they must be applied (all full
/// load files by number, then change files by time stamp, ties broken by key).
#[derive(Clone, Debug)]
pub struct DmsObject {
    /// The full S3 key.
    pub key: String,
    /// The schema folder.
    pub schema: String,
    /// The table folder.
    pub table: String,
    /// Full-load or change file, with its position in the stream.
    pub kind: FileKind,
    /// From the name suffix.
    pub compression: Compression,
}

impl DmsObject {
    /// The position of this file within its table's stream: compare only objects of the same
    /// `(schema, table)`.
    pub fn stream_order(&self) -> (FileKind, &str) {
        (self.kind, self.key.as_str())
    }

    fn order_key(&self) -> (&str, &str, FileKind, &str) {
        (&self.schema, &self.table, self.kind, &self.key)
    }
}

impl PartialEq for DmsObject {
    fn eq(&self, other: &Self) -> bool {
        self.order_key() == other.order_key()
    }
}

impl Eq for DmsObject {}

impl PartialOrd for DmsObject {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DmsObject {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

/// Recognises a DMS data file key below `bucket_path`.
///
/// Accepted layouts (with `.csv.gz`, `.csv` or `.parquet`):
/// - `<bucket_path>/<schema>/<table>/LOAD<8 hex digits>.csv.gz`
/// - `<bucket_path>/<schema>/<table>/YYYYMMDD-HHMMSSmmm.csv.gz`
/// - `<bucket_path>/<schema>/<table>/YYYY/MM/DD/YYYYMMDD-HHMMSSmmm.csv.gz`
///
/// `bucket_path` may be empty, and leading or trailing `/` on it are ignored. The date folders
/// must be 4, 2 and 2 digits (they are not compared with the file name: DMS may partition by
/// another time zone). The time stamp in a change file name must be a valid date and time.
/// Returns `None` for anything else.
pub fn parse_object_key(bucket_path: &str, key: &str) -> Option<DmsObject> {
    let prefix = bucket_path.trim_matches('/');
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };

    let mut parts = rest.split('/');
    let schema = parts.next()?;
    let table = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if schema.is_empty() || table.is_empty() {
        return None;
    }
    let (file, folders) = rest.split_last()?;
    let (kind, compression) = parse_file_name(file)?;
    // Only change files go under date folders.
    if !folders.is_empty() && (kind.is_load() || !is_date_folder(folders)) {
        return None;
    }

    Some(DmsObject {
        key: key.to_string(),
        schema: schema.to_string(),
        table: table.to_string(),
        kind,
        compression,
    })
}

/// Whether `folders` are DMS date-partition folders: every `DatePartitionSequence` (`YYYYMMDD`,
/// `YYYYMMDDHH`, `YYYYMM`, and `MMYYYYDD`, `DDMMYYYY`) with any `DatePartitionDelimiter`: `SLASH`
/// (`2022/09/22/`, `22/09/2022/`), `UNDERSCORE` (`2022_09_22/`), `DASH` (`2022-09-22/`) or `NONE`
/// (`20220922/`, `22092022/`). Only the year-first ones sort in time order (see
/// [`DayFolders`] for the others).
pub fn is_date_folder(folders: &[&str]) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts = |parts: &[&str]| {
        let year_first = parts.len() >= 2
            && parts.len() <= 4
            && digits(parts[0], 4)
            && parts[1..].iter().all(|p| digits(p, 2));
        // MM/YYYY/DD and DD/MM/YYYY.
        let year_inside = parts.len() == 3
            && parts.iter().filter(|p| digits(p, 4)).count() == 1
            && parts.iter().filter(|p| digits(p, 2)).count() == 2
            && (digits(parts[1], 4) || digits(parts[2], 4));
        year_first || year_inside
    };
    match folders {
        [one] => {
            let split: Vec<&str> = if one.contains('_') {
                one.split('_').collect()
            } else {
                one.split('-').collect()
            };
            match split.as_slice() {
                [whole] => matches!(whole.len(), 6 | 8 | 10) && digits(whole, whole.len()),
                more => parts(more),
            }
        }
        more => parts(more),
    }
}

/// Recognises a DMS data file name (the last part of a key): `LOAD<8 hex digits>` or
/// `YYYYMMDD-HHMMSSmmm` (a valid date and time), with `.csv.gz`, `.csv` or `.parquet`. Returns `None` for
/// anything else.
pub fn parse_file_name(name: &str) -> Option<(FileKind, Compression)> {
    let (stem, compression) = if let Some(stem) = name.strip_suffix(".csv.gz") {
        (stem, Compression::Gzip)
    } else if let Some(stem) = name.strip_suffix(".csv") {
        (stem, Compression::None)
    } else if let Some(stem) = name.strip_suffix(".parquet") {
        (stem, Compression::Parquet)
    } else {
        return None;
    };

    let kind = if let Some(hex) = stem.strip_prefix("LOAD") {
        if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        FileKind::Load {
            seq: u32::from_str_radix(hex, 16).ok()?,
        }
    } else {
        FileKind::Cdc {
            stamp: parse_cdc_stamp(stem.as_bytes())?,
        }
    };
    Some((kind, compression))
}

/// Parses and validates `YYYYMMDD-HHMMSSmmm` into the number `YYYYMMDDHHMMSSmmm`.
fn parse_cdc_stamp(s: &[u8]) -> Option<u64> {
    if s.len() != 18 || s[8] != b'-' {
        return None;
    }
    let mut stamp: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        if i == 8 {
            continue;
        }
        if !b.is_ascii_digit() {
            return None;
        }
        stamp = stamp * 10 + u64::from(b - b'0');
    }
    let year = num(&s[0..4]) as i32;
    let month = num(&s[4..6]);
    let day = num(&s[6..8]);
    let (hour, min, sec) = (num(&s[9..11]), num(&s[11..13]), num(&s[13..15]));
    // A valid proleptic Gregorian date (month 1-12, day within the month, 29 February only in
    // leap years) of year 1 or later.
    if year < 1 || NaiveDate::from_ymd_opt(year, month, day).is_none() {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    Some(stamp)
}

/// Decimal value of a run of ASCII digits already known to be digits.
fn num(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bucket_path: &str, key: &str) -> DmsObject {
        parse_object_key(bucket_path, key).unwrap_or_else(|| panic!("{key} should parse"))
    }

    #[test]
    fn every_year_first_date_partition_layout_is_read() {
        for folders in [
            "2022/09/22/",
            "2022/09/22/09/",
            "2022/09/",
            "2022_09_22/",
            "2022_09_22_09/",
            "2022_09/",
            "2022-09-22/",
            "2022-09-22-09/",
            "2022-09/",
            "20220922/",
            "2022092209/",
            "202209/",
        ] {
            let key = format!("data/dbo/orders/{folders}20220922-095853123.csv.gz");
            let o = parse_object_key("data", &key).unwrap_or_else(|| panic!("{key}"));
            assert_eq!(
                o.kind,
                FileKind::Cdc {
                    stamp: 20220922095853123
                }
            );
        }
    }

    #[test]
    fn load_keys_parse_hex_sequence() {
        let o = key("data", "data/dbo/orders/LOAD00000001.csv.gz");
        assert_eq!(o.key, "data/dbo/orders/LOAD00000001.csv.gz");
        assert_eq!(o.schema, "dbo");
        assert_eq!(o.table, "orders");
        assert_eq!(o.kind, FileKind::Load { seq: 1 });
        assert_eq!(o.compression, Compression::Gzip);
        assert!(o.kind.is_load());
        assert_eq!(o.kind.op_column(), OpColumn::Detect);

        assert_eq!(
            key("", "s/t/LOAD0000000A.csv.gz").kind,
            FileKind::Load { seq: 10 }
        );
        assert_eq!(
            key("", "s/t/LOAD0000000a.csv.gz").kind,
            FileKind::Load { seq: 10 }
        );
        assert_eq!(
            key("", "s/t/LOADFFFFFFFF.csv.gz").kind,
            FileKind::Load { seq: u32::MAX }
        );
    }

    #[test]
    fn load_files_order_by_hex_value() {
        let mut objs: Vec<DmsObject> = [
            "s/t/LOAD00000010.csv.gz",
            "s/t/LOAD0000000A.csv.gz",
            "s/t/LOAD00000009.csv.gz",
            "s/t/LOAD00000001.csv.gz",
            "s/t/LOAD0000000B.csv.gz",
        ]
        .iter()
        .map(|k| key("", k))
        .collect();
        objs.sort();
        let names: Vec<&str> = objs.iter().map(|o| &o.key[4..16]).collect();
        assert_eq!(
            names,
            [
                "LOAD00000001",
                "LOAD00000009",
                "LOAD0000000A",
                "LOAD0000000B",
                "LOAD00000010"
            ]
        );
    }

    #[test]
    fn cdc_keys_with_and_without_date_folders() {
        let o = key("data", "data/dbo/orders/20220922-095853123.csv.gz");
        assert_eq!(
            o.kind,
            FileKind::Cdc {
                stamp: 20220922095853123
            }
        );
        assert_eq!(o.compression, Compression::Gzip);
        assert_eq!(o.kind.op_column(), OpColumn::Present);
        assert!(!o.kind.is_load());

        let o = key(
            "data",
            "data/dbo/orders/2022/09/22/20220922-095853123.csv.gz",
        );
        assert_eq!((o.schema.as_str(), o.table.as_str()), ("dbo", "orders"));
        assert_eq!(
            o.kind,
            FileKind::Cdc {
                stamp: 20220922095853123
            }
        );

        // Folders follow DMS's partition time zone, so they need not match the file name.
        let o = key("", "dbo/orders/2022/09/21/20220922-005853123.csv");
        assert_eq!(
            o.kind,
            FileKind::Cdc {
                stamp: 20220922005853123
            }
        );
        assert_eq!(o.compression, Compression::None);

        // Leap day and the edges of every field.
        assert!(parse_object_key("", "s/t/20240229-000000000.csv.gz").is_some());
        assert!(parse_object_key("", "s/t/20221231-235959999.csv.gz").is_some());
    }

    #[test]
    fn uncompressed_csv_is_accepted() {
        let o = key("data/", "data/s/t/LOAD00000002.csv");
        assert_eq!(o.compression, Compression::None);
        assert_eq!(o.kind, FileKind::Load { seq: 2 });
    }

    #[test]
    fn parquet_files_are_accepted_and_sort_like_csv() {
        let o = key("data/", "data/s/t/LOAD0000000A.parquet");
        assert_eq!(o.compression, Compression::Parquet);
        assert_eq!(o.kind, FileKind::Load { seq: 10 });
        let c = key("", "s/t/2022/09/22/20220922-095853123.parquet");
        assert_eq!(c.compression, Compression::Parquet);
        assert!(o < c);
    }

    #[test]
    fn bucket_path_variants() {
        for (bp, k) in [
            ("", "dbo/orders/LOAD00000001.csv.gz"),
            ("/", "dbo/orders/LOAD00000001.csv.gz"),
            ("data", "data/dbo/orders/LOAD00000001.csv.gz"),
            ("data/", "data/dbo/orders/LOAD00000001.csv.gz"),
            ("/data/", "data/dbo/orders/LOAD00000001.csv.gz"),
            ("a/b", "a/b/dbo/orders/LOAD00000001.csv.gz"),
            (
                "a/b/",
                "a/b/dbo/orders/2022/01/02/20220102-030405006.csv.gz",
            ),
        ] {
            let o = parse_object_key(bp, k).unwrap_or_else(|| panic!("{bp:?} {k:?}"));
            assert_eq!((o.schema.as_str(), o.table.as_str()), ("dbo", "orders"));
            assert_eq!(o.key, k);
        }
    }

    #[test]
    fn rejected_keys() {
        for (bp, k) in [
            // Wrong prefix.
            ("data", "other/dbo/orders/LOAD00000001.csv.gz"),
            ("data", "database/dbo/orders/LOAD00000001.csv.gz"),
            ("data", "dbo/orders/LOAD00000001.csv.gz"),
            ("a/b", "a/dbo/orders/LOAD00000001.csv.gz"),
            // Nested too shallow or too deep.
            ("", "dbo/orders/x/LOAD00000001.csv.gz"),
            ("", "orders/LOAD00000001.csv.gz"),
            ("", "LOAD00000001.csv.gz"),
            ("", "dbo//LOAD00000001.csv.gz"),
            ("", "/dbo/orders/LOAD00000001.csv.gz"),
            ("", "dbo/orders/2022/09/22/x/20220922-095853123.csv.gz"),
            // Other files.
            ("", "dbo/orders/LOAD00000001.json"),
            ("", "dbo/orders/LOAD00000001.csv.gz.tmp"),
            ("", "dbo/orders/LOAD00000001.parquet.gz"),
            ("", "dbo/orders/LOAD00000001"),
            ("", "dbo/orders/20220922-095853123.json"),
            ("", "dbo/orders/"),
            ("", "dbo/orders/README.csv"),
            // Malformed LOAD names.
            ("", "dbo/orders/LOAD0000001.csv.gz"),
            ("", "dbo/orders/LOAD000000001.csv.gz"),
            ("", "dbo/orders/LOAD0000000G.csv.gz"),
            ("", "dbo/orders/load00000001.csv.gz"),
            ("", "dbo/orders/LOAD+0000001.csv.gz"),
            ("", "dbo/orders/2022/09/22/LOAD00000001.csv.gz"),
            // Malformed or invalid CDC names.
            ("", "dbo/orders/20220922095853123.csv.gz"),
            ("", "dbo/orders/20220922-09585312.csv.gz"),
            ("", "dbo/orders/20220922-0958531234.csv.gz"),
            ("", "dbo/orders/2022092a-095853123.csv.gz"),
            ("", "dbo/orders/20221322-095853123.csv.gz"),
            ("", "dbo/orders/20220022-095853123.csv.gz"),
            ("", "dbo/orders/20220900-095853123.csv.gz"),
            ("", "dbo/orders/20220931-095853123.csv.gz"),
            ("", "dbo/orders/20230229-095853123.csv.gz"),
            ("", "dbo/orders/20220922-245853123.csv.gz"),
            ("", "dbo/orders/20220922-096053123.csv.gz"),
            ("", "dbo/orders/20220922-095860123.csv.gz"),
            ("", "dbo/orders/00000922-095853123.csv.gz"),
            // Bad date folders.
            ("", "dbo/orders/22/09/22/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/9/22/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/09/2/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/09/xx/20220922-095853123.csv.gz"),
            ("", "dbo/orders/22/2022/09/2022/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/09/2022/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022_09-22/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022092/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/09/22/10/11/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/20220922-095853123.csv.gz"),
        ] {
            assert!(
                parse_object_key(bp, k).is_none(),
                "{bp:?} {k:?} should be rejected"
            );
        }
    }

    #[test]
    fn stream_order_loads_then_cdc_then_key() {
        let keys = [
            "s/t/2022/09/22/20220922-095853123.csv.gz",
            "s/t/20220101-000000000.csv.gz",
            "s/t/LOAD00000002.csv.gz",
            "s/t/20220922-095853123.csv",
            "s/t/LOAD00000001.csv.gz",
            "s/a/20200101-000000000.csv.gz",
            "r/z/LOAD00000003.csv.gz",
            "s/t/20220922-095853122.csv.gz",
        ];
        let mut objs: Vec<DmsObject> = keys.iter().map(|k| key("", k)).collect();
        objs.sort();
        let sorted: Vec<&str> = objs.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            sorted,
            [
                "r/z/LOAD00000003.csv.gz",
                "s/a/20200101-000000000.csv.gz",
                "s/t/LOAD00000001.csv.gz",
                "s/t/LOAD00000002.csv.gz",
                "s/t/20220101-000000000.csv.gz",
                "s/t/20220922-095853122.csv.gz",
                // Same stamp: by key.
                "s/t/2022/09/22/20220922-095853123.csv.gz",
                "s/t/20220922-095853123.csv",
            ]
        );

        let load = key("", "s/t/LOADFFFFFFFF.csv.gz");
        let cdc = key("", "s/t/00010101-000000000.csv.gz");
        assert!(load < cdc);
        assert!(load.stream_order() < cdc.stream_order());
        assert_eq!(load, load.clone());
        assert_ne!(load, cdc);
    }
}
