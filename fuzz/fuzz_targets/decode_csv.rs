//! DMS bytes to typed rows: any input, scanned with any buffer size and decoded against a table
//! of every column type, with or without an Op column, ends in rows or in an error naming the
//! line and column, never in a panic, and every tuple it writes is well formed.
#![no_main]

use std::sync::Arc;

use dms_format::{Column, ColumnType, CsvScanner, OpColumn, RawRecord, RowDecoder, TableSpec};
use libfuzzer_sys::fuzz_target;

fn types() -> [ColumnType; 14] {
    [
        ColumnType::Int8,
        ColumnType::Int2,
        ColumnType::Int4,
        ColumnType::Float4,
        ColumnType::Float8,
        ColumnType::Bool,
        ColumnType::Numeric {
            precision: Some(12),
            scale: Some(4),
        },
        ColumnType::Numeric {
            precision: None,
            scale: None,
        },
        ColumnType::Varchar(Some(5)),
        ColumnType::Bpchar(Some(3)),
        ColumnType::Text,
        ColumnType::Timestamp,
        ColumnType::Timestamptz,
        ColumnType::Date,
    ]
}

fuzz_target!(|data: &[u8]| {
    // Two bytes of settings: the Op column mode and how many columns; one for the buffer size.
    let [mode, width, capacity, rest @ ..] = data else {
        return;
    };
    let op_column = match mode % 3 {
        0 => OpColumn::Present,
        1 => OpColumn::Absent,
        _ => OpColumn::Detect,
    };
    let types = types();
    let columns: Vec<Column> = (0..=(*width as usize % types.len()))
        .map(|i| Column {
            name: if i == 1 { "event_id".into() } else { format!("c{i}") },
            ty: if i == 1 { ColumnType::Int8 } else { types[i].clone() },
            nullable: i % 2 == 1,
        })
        .collect();
    let ncols = columns.len();
    let spec = Arc::new(TableSpec {
        name: "fuzz".into(),
        columns,
        key: vec![0],
    });
    let mut decoder = RowDecoder::new(spec, op_column);
    let mut scanner = CsvScanner::with_capacity(rest, 1 + *capacity as usize);
    let mut record = RawRecord::new();
    let mut out = Vec::new();
    let mut seq = 0;
    loop {
        match scanner.next_record(&mut record) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
        let mark = out.len();
        match decoder.decode(&record, seq, &mut out) {
            Ok(_) => {
                // A tuple: the field count (staging columns), then each field's length and bytes.
                let tuple = &out[mark..];
                let fields = i16::from_be_bytes([tuple[0], tuple[1]]) as usize;
                assert_eq!(fields, ncols + 2);
            }
            Err(e) => {
                assert_eq!(out.len(), mark, "a refused row leaves no bytes");
                let _ = e.to_string();
                break;
            }
        }
        seq += 1;
    }
});
