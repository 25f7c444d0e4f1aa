//! Property tests of the CSV scanner: any record DMS can write, with any text (quotes, commas,
//! line ends, non-ASCII), NULL (an empty unquoted field) or `""` (an empty string), reads back
//! exactly, whatever the buffer size and the line ending.
use proptest::prelude::*;

use super::{CsvScanner, RawRecord};

/// A field as DMS writes it: NULL is nothing, a string is quoted when it must be (and the empty
/// string always, so it differs from NULL), quotes doubled.
fn write_field(out: &mut Vec<u8>, value: &Option<String>) {
    let Some(text) = value else { return };
    let quote = text.is_empty()
        || text.contains([',', '"', '\n', '\r'])
        || text.starts_with(' ')
        || text.ends_with(' ');
    if quote {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        6 => "[a-zA-Z0-9 ,\"\r\n\t'é日本€;|\\\\]{1,24}".prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_dms_record_reads_back_exactly(
        records in prop::collection::vec(prop::collection::vec(value(), 1..8), 1..20),
        crlf in any::<bool>(),
        capacity in 1usize..64,
    ) {
        let mut csv = Vec::new();
        for record in &records {
            for (i, v) in record.iter().enumerate() {
                if i > 0 {
                    csv.push(b',');
                }
                write_field(&mut csv, v);
            }
            csv.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        let mut scanner = CsvScanner::with_capacity(&csv[..], capacity);
        let mut rec = RawRecord::new();
        for (n, record) in records.iter().enumerate() {
            prop_assert!(scanner.next_record(&mut rec).unwrap(), "record {} missing", n + 1);
            prop_assert_eq!(rec.len(), record.len());
            for (i, v) in record.iter().enumerate() {
                match v {
                    None => prop_assert!(rec.is_null(i), "field {} of record {} is NULL", i, n + 1),
                    Some(text) => {
                        prop_assert!(!rec.is_null(i));
                        prop_assert_eq!(rec.field(i), text.as_bytes());
                    }
                }
            }
        }
        prop_assert!(!scanner.next_record(&mut rec).unwrap());
    }
}
