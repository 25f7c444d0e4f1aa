//! Property test of the whole read path against the sample generator's writer: random rows
//! (text with quotes, commas, line ends and non-ASCII, NULL vs `""`, integers, timestamps, with
//! or without the Op column), written by `dms_sample::write_record` exactly as the generator
//! writes its files, then scanned and decoded, come back as the same values in the binary COPY
//! tuples, whatever the scanner's buffer size.
use proptest::prelude::*;

use crate::tests::{col, parse_tuples, spec};
use crate::{ColumnType, CsvScanner, Op, OpColumn, RawRecord, RowDecoder};

/// Microseconds from the Unix epoch to the Postgres epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

#[derive(Clone, Debug)]
struct Row {
    op: Op,
    id: i64,
    name: Option<String>,
    note: Option<String>,
    at: Option<i64>,
    event_id: Option<i64>,
}

fn text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        6 => "[a-zA-Z0-9 ,\"\r\n\t'é日本€;|\\\\]{1,24}".prop_map(Some),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop_oneof![Just(Op::Insert), Just(Op::Update), Just(Op::Delete)],
        any::<i64>(),
        text(),
        text(),
        // 1900-01-01 .. 2100-01-01, any microsecond.
        prop::option::of(-2_208_988_800_000_000i64..4_102_444_800_000_000),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(op, id, name, note, at, event_id)| Row {
            op,
            id,
            name,
            note,
            at,
            event_id,
        })
}

fn op_letter(op: Op) -> &'static [u8] {
    match op {
        Op::Insert => b"I",
        Op::Update => b"U",
        Op::Delete => b"D",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn what_the_generator_writes_decodes_to_the_same_values(
        rows in prop::collection::vec(row(), 1..30),
        with_op in any::<bool>(),
        capacity in 1usize..96,
    ) {
        let mut file = Vec::new();
        for r in &rows {
            let id = r.id.to_string();
            let at = r.at.map(dms_sample::timestamp_text);
            let event_id = r.event_id.map(|e| e.to_string());
            let op = with_op.then(|| op_letter(r.op));
            let fields = op.into_iter().map(Some).chain([
                Some(id.as_bytes()),
                r.name.as_deref().map(str::as_bytes),
                r.note.as_deref().map(str::as_bytes),
                at.as_deref().map(str::as_bytes),
                event_id.as_deref().map(str::as_bytes),
            ]);
            dms_sample::write_record(&mut file, fields);
        }
        let table = spec(vec![
            col("id", ColumnType::Int8, false),
            col("name", ColumnType::Text, true),
            col("note", ColumnType::Text, true),
            col("at", ColumnType::Timestamp, true),
            col("event_id", ColumnType::Int8, true),
        ]);
        let op_column = if with_op { OpColumn::Present } else { OpColumn::Absent };
        let mut decoder = RowDecoder::new(table, op_column);
        let mut scanner = CsvScanner::with_capacity(file.as_slice(), capacity);
        let mut record = RawRecord::new();
        let mut out = Vec::new();
        let mut decoded = Vec::new();
        let mut seq = 0;
        while scanner.next_record(&mut record).unwrap() {
            decoded.push(decoder.decode(&record, seq, &mut out).unwrap());
            seq += 1;
        }
        prop_assert_eq!(decoded.len(), rows.len());
        let tuples = parse_tuples(&out);
        prop_assert_eq!(tuples.len(), rows.len());
        for (i, ((r, d), t)) in rows.iter().zip(&decoded).zip(&tuples).enumerate() {
            let op = if with_op { r.op } else { Op::Insert };
            prop_assert_eq!(d.op, op, "row {}", i);
            prop_assert_eq!(d.event_id, r.event_id, "row {}", i);
            prop_assert_eq!(t.len(), 7);
            prop_assert_eq!(t[0].clone(), Some((i as i64).to_be_bytes().to_vec()));
            prop_assert_eq!(t[2].clone(), Some(r.id.to_be_bytes().to_vec()));
            prop_assert_eq!(t[3].clone(), r.name.clone().map(String::into_bytes));
            prop_assert_eq!(t[4].clone(), r.note.clone().map(String::into_bytes));
            prop_assert_eq!(
                t[5].clone(),
                r.at.map(|m| (m - PG_EPOCH_MICROS).to_be_bytes().to_vec())
            );
            prop_assert_eq!(t[6].clone(), r.event_id.map(|e| e.to_be_bytes().to_vec()));
        }
    }
}
