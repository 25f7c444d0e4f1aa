//! The row decoder's unit tests.
use super::*;
use crate::tests::{col, decode_all, parse_tuples, spec};
use crate::{ColumnType, CsvScanner};
use std::sync::Arc;

#[test]
fn direct_layout_writes_columns_then_lineage_and_refuses_deletes() {
    let spec = spec(vec![
        col("id", ColumnType::Int4, false),
        col("name", ColumnType::Text, true),
    ]);
    let mut decoder = RowDecoder::new(spec.clone(), OpColumn::Detect);
    decoder.set_layout(TupleLayout::Direct {
        delivery_id: 7,
        loaded_at: 1_000,
    });
    let (_, bytes) = decode_all(&mut decoder, "I,1,a\nU,2,\n").unwrap();
    let tuples = parse_tuples(&bytes);
    assert_eq!(tuples.len(), 2);
    for t in &tuples {
        assert_eq!(t.len(), 4, "columns, _delivery_id, _loaded_at");
        assert_eq!(t[2].as_deref(), Some(&7i64.to_be_bytes()[..]));
        assert_eq!(t[3].as_deref(), Some(&1_000i64.to_be_bytes()[..]));
    }
    assert_eq!(tuples[0][0].as_deref(), Some(&1i32.to_be_bytes()[..]));
    assert_eq!(tuples[1][1], None);

    let mut decoder = RowDecoder::new(spec, OpColumn::Detect);
    decoder.set_layout(TupleLayout::Direct {
        delivery_id: 7,
        loaded_at: 0,
    });
    match decode_all(&mut decoder, "I,1,a\nD,1,a\n") {
        Err(DecodeError::NeedsStaging { line: 2 }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_null_value_token_and_trailing_padding() {
    let s = spec(vec![
        col("id", ColumnType::Int4, false),
        col("name", ColumnType::Varchar(Some(8)), true),
        col("code", ColumnType::Bpchar(Some(4)), true),
    ]);
    let mut decoder = RowDecoder::new(s, OpColumn::Absent);
    decoder.set_null_value(Some(b"NULL".to_vec()));
    decoder.set_trim_padding(true);
    let (_, out) = decode_all(&mut decoder, "1,NULL,\n2,,\"NULL\"\n3,ab   ,x  \n").unwrap();
    let t = parse_tuples(&out);
    assert_eq!(t[0][3], None, "NULL token");
    assert_eq!(
        t[0][4],
        Some(Vec::new()),
        "empty unquoted is the empty string"
    );
    assert_eq!(t[1][3], Some(Vec::new()));
    assert_eq!(t[1][4], Some(b"NULL".to_vec()), "a quoted token is text");
    assert_eq!(t[2][3], Some(b"ab".to_vec()), "padding trimmed");
    assert_eq!(t[2][4], Some(b"x".to_vec()));
    // Without the settings: empty unquoted is NULL and spaces are kept.
    let s = spec(vec![
        col("id", ColumnType::Int4, false),
        col("name", ColumnType::Text, true),
    ]);
    let mut decoder = RowDecoder::new(s, OpColumn::Absent);
    let (_, out) = decode_all(&mut decoder, "1,\n2,a \n").unwrap();
    let t = parse_tuples(&out);
    assert_eq!(t[0][3], None);
    assert_eq!(t[1][3], Some(b"a ".to_vec()));
}

#[test]
fn a_timestamp_column_after_the_op_column_is_skipped() {
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
    decoder.set_timestamp_column(Some("commit_ts"));
    let (rows, out) = decode_all(
        &mut decoder,
        "I,2022-09-22 09:58:53.123456,1,a\nD,2022-09-22 09:58:54.000000,2,\n",
    )
    .unwrap();
    assert_eq!(rows[1].op, Op::Delete);
    let t = parse_tuples(&out);
    assert_eq!(t[0][2], Some(1i64.to_be_bytes().to_vec()));
    assert_eq!(t[0][3], Some(b"a".to_vec()));
    let err = decode_all(&mut decoder, "I,1,a\n").unwrap_err();
    assert_eq!(err.to_string(), "line 1: expected 4 fields, found 3");
    // A full load without the Op column: the timestamp leads.
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
    decoder.set_timestamp_column(Some("commit_ts"));
    let (_, out) = decode_all(&mut decoder, "2022-09-22 09:58:53.123456,7,x\n").unwrap();
    assert_eq!(parse_tuples(&out)[0][2], Some(7i64.to_be_bytes().to_vec()));
    assert_eq!(decoder.has_op_column(), Some(false));
}

#[test]
fn a_table_column_named_as_the_timestamp_column_takes_it() {
    // The table keeps the commit time in its last column; the records carry it after Op.
    let s = spec(vec![
        col("id", ColumnType::Int4, false),
        col("name", ColumnType::Text, true),
        col("Commit_TS", ColumnType::Timestamp, true),
    ]);
    let mut decoder = RowDecoder::new(s.clone(), OpColumn::Present);
    decoder.set_timestamp_column(Some("commit_ts"));
    let (_, out) = decode_all(
        &mut decoder,
        "U,2022-09-22 09:58:53.5,1,a
",
    )
    .unwrap();
    let t = parse_tuples(&out);
    assert_eq!(t[0].len(), 2 + 3);
    assert_eq!(t[0][2], Some(1i32.to_be_bytes().to_vec()));
    assert_eq!(t[0][3], Some(b"a".to_vec()));
    let expected = {
        let mut v = Vec::new();
        crate::copy::encode_value(&ColumnType::Timestamp, b"2022-09-22 09:58:53.5", &mut v)
            .unwrap();
        v[4..].to_vec()
    };
    assert_eq!(t[0][4], Some(expected));
    let err = decode_all(&mut decoder, "U,2022-09-22 09:58:53.5,1,a,x\n").unwrap_err();
    assert_eq!(err.to_string(), "line 1: expected 4 fields, found 5");
    // Detected without Op (a full load), in the direct layout too.
    let mut decoder = RowDecoder::new(s, OpColumn::Detect);
    decoder.set_timestamp_column(Some("COMMIT_TS"));
    decoder.set_layout(TupleLayout::Direct {
        delivery_id: 1,
        loaded_at: 0,
    });
    let (_, out) = decode_all(&mut decoder, "2022-09-22 09:58:53,7,x\n").unwrap();
    let t = parse_tuples(&out);
    assert_eq!(t[0][0], Some(7i32.to_be_bytes().to_vec()));
    assert!(t[0][2].is_some());
    assert_eq!(decoder.has_op_column(), Some(false));
}

#[test]
fn op_strings() {
    assert_eq!(Op::Insert.as_str(), "I");
    assert_eq!(Op::Update.as_str(), "U");
    assert_eq!(Op::Delete.as_str(), "D");
}

#[test]
fn tuple_layout_with_seq_and_op() {
    let s = spec(vec![
        col("id", ColumnType::Int4, false),
        col("name", ColumnType::Text, true),
    ]);
    let mut decoder = RowDecoder::new(s, OpColumn::Present);
    assert_eq!(decoder.has_op_column(), Some(true));
    let (rows, out) = decode_all(&mut decoder, "I,7,ab\nU,8,\nD,9,\"\"\n").unwrap();
    assert_eq!(
        rows.iter().map(|r| r.op).collect::<Vec<_>>(),
        [Op::Insert, Op::Update, Op::Delete]
    );
    assert!(rows.iter().all(|r| r.event_id.is_none()));

    let mut expected = Vec::new();
    // Row 1.
    expected.extend_from_slice(&[0, 4]);
    expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 100]);
    expected.extend_from_slice(&[0, 0, 0, 1, b'I']);
    expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 7]);
    expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
    // Row 2: NULL name.
    expected.extend_from_slice(&[0, 4]);
    expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 101]);
    expected.extend_from_slice(&[0, 0, 0, 1, b'U']);
    expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 8]);
    expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    // Row 3: empty-string name.
    expected.extend_from_slice(&[0, 4]);
    expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 102]);
    expected.extend_from_slice(&[0, 0, 0, 1, b'D']);
    expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 9]);
    expected.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(out, expected);
}

#[test]
fn staging_tuples_read_back_with_their_reader() {
    let s = spec(vec![
        col("id", ColumnType::Int4, false),
        col("name", ColumnType::Text, true),
    ]);
    let mut decoder = RowDecoder::new(s, OpColumn::Present);
    let mut scanner = CsvScanner::new(&b"I,7,ab\nU,8,\nD,9,\"\"\n"[..]);
    let mut rec = RawRecord::new();
    let names: [&[u8]; 3] = [&[0, 0, 0, 2, b'a', b'b'], &[0xff; 4], &[0, 0, 0, 0]];
    for (i, (op, name)) in [Op::Insert, Op::Update, Op::Delete]
        .into_iter()
        .zip(names)
        .enumerate()
    {
        assert!(scanner.next_record(&mut rec).unwrap());
        let mut out = Vec::new();
        let seq = 40 - i as i64;
        assert_eq!(decoder.decode(&rec, seq, &mut out).unwrap().op, op);
        let tuple = StagingTuple::read(&out).unwrap();
        assert_eq!(tuple.seq(), seq);
        assert_eq!(tuple.op(), op);
        let id = [&4i32.to_be_bytes()[..], &(7 + i as i32).to_be_bytes()].concat();
        assert_eq!(tuple.columns().collect::<Vec<_>>(), vec![&id[..], name]);
    }
}

#[test]
fn negative_seq() {
    let mut decoder = RowDecoder::new(
        spec(vec![col("v", ColumnType::Int2, true)]),
        OpColumn::Absent,
    );
    let mut scanner = CsvScanner::new(&b"1\n"[..]);
    let mut rec = RawRecord::new();
    scanner.next_record(&mut rec).unwrap();
    let mut out = Vec::new();
    decoder.decode(&rec, -2, &mut out).unwrap();
    assert_eq!(
        parse_tuples(&out)[0][0],
        Some((-2i64).to_be_bytes().to_vec())
    );
}

#[test]
fn absent_op_column_means_insert() {
    let s = spec(vec![col("a", ColumnType::Text, true)]);
    let mut decoder = RowDecoder::new(s, OpColumn::Absent);
    assert_eq!(decoder.has_op_column(), Some(false));
    let (rows, out) = decode_all(&mut decoder, "D\nU\n").unwrap();
    assert!(rows.iter().all(|r| r.op == Op::Insert));
    let tuples = parse_tuples(&out);
    assert_eq!(tuples[0][1], Some(b"I".to_vec()));
    assert_eq!(tuples[0][2], Some(b"D".to_vec()));
    assert_eq!(tuples[1][2], Some(b"U".to_vec()));
}

fn two_cols() -> Arc<TableSpec> {
    spec(vec![
        col("id", ColumnType::Int8, false),
        col("note", ColumnType::Text, true),
    ])
}

#[test]
fn detect_op_column_present() {
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
    assert_eq!(decoder.has_op_column(), None);
    let (rows, out) = decode_all(&mut decoder, "I,1,a\nI,2,b\n").unwrap();
    assert_eq!(decoder.has_op_column(), Some(true));
    assert_eq!(rows.len(), 2);
    let tuples = parse_tuples(&out);
    assert_eq!(tuples[1][2], Some(2i64.to_be_bytes().to_vec()));
    assert_eq!(tuples[1][3], Some(b"b".to_vec()));

    // A later record without the Op column breaks the layout.
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
    let err = decode_all(&mut decoder, "I,1,a\n2,b\n").unwrap_err();
    assert_eq!(err.to_string(), "line 2: expected 3 fields, found 2");
}

#[test]
fn detect_op_column_absent() {
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
    let (rows, out) = decode_all(&mut decoder, "1,a\n2,I\n").unwrap();
    assert_eq!(decoder.has_op_column(), Some(false));
    assert!(rows.iter().all(|r| r.op == Op::Insert));
    assert_eq!(parse_tuples(&out)[1][3], Some(b"I".to_vec()));

    // A later record with an extra field breaks the layout.
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
    let err = decode_all(&mut decoder, "1,a\nI,2,b\n").unwrap_err();
    assert_eq!(err.to_string(), "line 2: expected 2 fields, found 3");
}

#[test]
fn detect_op_column_unrecognised_first_record() {
    // ncols + 1 fields but not starting with I: not a layout we know.
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
    let err = decode_all(&mut decoder, "X,1,a\n").unwrap_err();
    assert_eq!(err.to_string(), "line 1: expected 2 fields, found 3");
    assert_eq!(decoder.has_op_column(), None);

    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
    let err = decode_all(&mut decoder, "1\n").unwrap_err();
    assert!(matches!(
        err,
        DecodeError::FieldCount {
            line: 1,
            expected: 2,
            found: 1
        }
    ));
}

#[test]
fn invalid_op() {
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
    let err = decode_all(&mut decoder, "I,1,a\nX,2,b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2, column Op: invalid op \"X\" (expected I, U or D)"
    );
    let err = decode_all(&mut decoder, ",2,b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, column Op: invalid op \"\" (expected I, U or D)"
    );
    let err = decode_all(&mut decoder, "ins,2,b\n").unwrap_err();
    assert!(matches!(err, DecodeError::Op { line: 1, .. }), "{err}");
}

#[test]
fn field_count_mismatch() {
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
    let err = decode_all(&mut decoder, "I,1,a\n\nI,1,a,b\n").unwrap_err();
    assert_eq!(err.to_string(), "line 2: expected 3 fields, found 1");
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Absent);
    let err = decode_all(&mut decoder, "1,\"x\ny\"\n1,a,b\n").unwrap_err();
    assert_eq!(err.to_string(), "line 3: expected 2 fields, found 3");
}

#[test]
fn null_in_non_nullable_column() {
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
    let err = decode_all(&mut decoder, "I,1,a\nU,,b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2, column 1 (id): NULL in non-nullable column"
    );
    // A non-nullable text column accepts "".
    let s = spec(vec![col("t", ColumnType::Text, false)]);
    let mut decoder = RowDecoder::new(s, OpColumn::Absent);
    assert!(decode_all(&mut decoder, "\"\"\n").is_ok());
    assert!(decode_all(&mut decoder, "\n").is_err());
}

#[test]
fn error_leaves_output_untouched() {
    let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
    let mut scanner = CsvScanner::new(&b"I,1,a\nI,x,b\n"[..]);
    let mut rec = RawRecord::new();
    let mut out = Vec::new();
    scanner.next_record(&mut rec).unwrap();
    decoder.decode(&rec, 1, &mut out).unwrap();
    let before = out.clone();
    scanner.next_record(&mut rec).unwrap();
    assert!(decoder.decode(&rec, 2, &mut out).is_err());
    assert_eq!(out, before);
}

#[test]
fn error_columns_are_numbered_as_in_the_data_specification_without_the_op_field() {
    let s = spec(vec![
        col("id", ColumnType::Int4, false),
        col("amount", ColumnType::Int2, true),
    ]);
    let mut decoder = RowDecoder::new(s.clone(), OpColumn::Present);
    let err = decode_all(&mut decoder, "I,1,2\n\nI,1,\"12x\"\n").unwrap_err();
    // (the blank line is a 1-field record, so it is reported first)
    assert_eq!(err.to_string(), "line 2: expected 3 fields, found 1");
    let err = decode_all(&mut decoder, "I,1,2\nI,1,12x\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2, column 2 (amount): invalid integer \"12x\""
    );
    let mut decoder = RowDecoder::new(s, OpColumn::Absent);
    let err = decode_all(&mut decoder, "\"multi\nline\",2\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, column 1 (id): invalid integer \"multi\\nline\""
    );
}

#[test]
fn event_id_is_returned() {
    let s = spec(vec![
        col("id", ColumnType::Int4, false),
        col("event_id", ColumnType::Int8, true),
    ]);
    let mut decoder = RowDecoder::new(s, OpColumn::Present);
    let (rows, _) = decode_all(&mut decoder, "I,1,42\nU,1,\nD,1,-9\n").unwrap();
    assert_eq!(
        rows,
        [
            DecodedRow {
                op: Op::Insert,
                event_id: Some(42)
            },
            DecodedRow {
                op: Op::Update,
                event_id: None
            },
            DecodedRow {
                op: Op::Delete,
                event_id: Some(-9)
            },
        ]
    );

    // An event_id stored as text must still be an integer.
    let s = spec(vec![col("event_id", ColumnType::Text, true)]);
    let mut decoder = RowDecoder::new(s, OpColumn::Absent);
    let (rows, _) = decode_all(&mut decoder, "17\n").unwrap();
    assert_eq!(rows[0].event_id, Some(17));
    let err = decode_all(&mut decoder, "abc\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, column 1 (event_id): invalid event_id \"abc\""
    );
}

#[test]
fn unsupplied_columns_are_marked_and_written_as_null() {
    // Nine columns, so the marks take two bytes.
    let mut columns = vec![col("id", ColumnType::Int4, false)];
    for i in 1..9 {
        columns.push(col(&format!("c{i}"), ColumnType::Text, i != 8));
    }
    let s = spec(columns);
    let mut decoder = RowDecoder::new(s.clone(), OpColumn::Present);
    decoder.set_unsupplied(true, Some(b"~NS~".to_vec()));
    let (_, out) = decode_all(
        &mut decoder,
        "I,1,a,b,c,d,e,f,g,h\nU,1,~NS~,b,c,d,e,f,g,~NS~\nU,1,a,b,\"~NS~\",d,e,f,g,h\n",
    )
    .unwrap();
    let t = parse_tuples(&out);
    assert!(t.iter().all(|t| t.len() == 2 + 9 + 1), "{t:?}");
    assert_eq!(t[0][11], None, "every column supplied: no marks");
    // Column 1 and column 8 (not nullable) unsupplied: NULL, bits 1 and 8.
    assert_eq!(t[1][3], None);
    assert_eq!(t[1][10], None);
    assert_eq!(t[1][11], Some(vec![0b0000_0010, 0b0000_0001]));
    assert_eq!(t[2][5], Some(b"~NS~".to_vec()), "a quoted token is text");
    assert_eq!(t[2][11], None);
    // A key column cannot be unsupplied.
    let mut decoder = RowDecoder::new(s.clone(), OpColumn::Present);
    decoder.set_unsupplied(true, Some(b"~NS~".to_vec()));
    match decode_all(&mut decoder, "U,~NS~,a,b,c,d,e,f,g,h\n") {
        Err(DecodeError::Field {
            line: 1,
            column: 1,
            reason,
            ..
        }) => {
            assert!(reason.contains("CsvNoSupValue"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Without marks the token is data (and the tuple has no marks field).
    let mut decoder = RowDecoder::new(s, OpColumn::Present);
    decoder.set_unsupplied(false, Some(b"~NS~".to_vec()));
    let (_, out) = decode_all(&mut decoder, "U,1,~NS~,b,c,d,e,f,g,h\n").unwrap();
    let t = parse_tuples(&out);
    assert_eq!(t[0].len(), 11);
    assert_eq!(t[0][3], Some(b"~NS~".to_vec()));
}
