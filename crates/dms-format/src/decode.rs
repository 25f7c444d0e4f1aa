//! Row decoding: DMS records to binary COPY tuples for the staging or the target table.

use super::copy::encode_value;
use super::error::{quote, DecodeError};
use super::scanner::RawRecord;
use super::table::{ColumnType, TableSpec};
use super::value::parse_int;

mod tuple;
pub use tuple::StagingTuple;

/// A change operation, from the DMS `Op` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new row (every row of a full load without an Op column).
    Insert,
    /// The row carries the after image.
    Update,
    /// The row carries the before image.
    Delete,
}

impl Op {
    /// `"I"`, `"U"` or `"D"`, as written to the staging table's `_op` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Insert => "I",
            Op::Update => "U",
            Op::Delete => "D",
        }
    }
}

/// Whether a file's records start with the DMS `Op` column (from the `dms-naming` crate:
/// [`FileKind::op_column`](crate::FileKind::op_column) gives it per kind of file).
pub use dms_naming::OpColumn;

/// What [`RowDecoder::decode`] learned about a row besides its tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedRow {
    /// The row's operation.
    pub op: Op,
    /// The value of the table's `event_id` column, if it has one and it is not NULL.
    pub event_id: Option<i64>,
}

/// Turns [`RawRecord`]s of one file into binary COPY tuples for the staging table
/// `(_seq int8, _op text, <spec columns...>)` (laid out by [`StagingTuple`]).
pub struct RowDecoder {
    spec: std::sync::Arc<TableSpec>,
    op_column: OpColumn,
    detected: Option<bool>,
    event_id: Option<usize>,
    layout: TupleLayout,
    /// DMS's `CsvNullValue`: an unquoted field equal to it is NULL (and an empty one is the
    /// empty string). `None`: NULL is an empty unquoted field.
    null_value: Option<Vec<u8>>,
    /// DMS's `AddTrailingPaddingCharacter`: trailing spaces of text values are padding.
    trim_padding: bool,
    /// DMS's `TimestampColumnName`: a commit-time column follows the Op column (or leads when
    /// there is none); it is not a table column and is skipped.
    timestamp_column: bool,
}

/// Which table the tuples are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TupleLayout {
    /// The staging table: `_seq`, `_op`, then every column.
    Staging,
    /// The target table itself (a full-load file): every column, then the lineage
    /// columns `_delivery_id` and `_loaded_at` (microseconds since 2000-01-01 UTC). Only inserts
    /// can go straight in: a `D` row is a [`DecodeError::NeedsStaging`].
    Direct { delivery_id: i64, loaded_at: i64 },
}

impl RowDecoder {
    /// A decoder for one file of `spec`'s table. Use a new decoder per file when `op_column`
    /// is [`OpColumn::Detect`].
    pub fn new(spec: std::sync::Arc<TableSpec>, op_column: OpColumn) -> Self {
        let event_id = spec.event_id_index();
        RowDecoder {
            spec,
            op_column,
            detected: None,
            event_id,
            layout: TupleLayout::Staging,
            null_value: None,
            trim_padding: false,
            timestamp_column: false,
        }
    }

    /// Records carry DMS's commit-time column (`TimestampColumnName`) right after the Op column
    /// (first when there is none); it is skipped.
    pub fn set_timestamp_column(&mut self, on: bool) {
        self.timestamp_column = on;
    }

    /// Reads NULL as the unquoted field `token` (DMS's `CsvNullValue`); an empty unquoted field
    /// is then the empty string. `None` (the default): NULL is an empty unquoted field.
    pub fn set_null_value(&mut self, token: Option<Vec<u8>>) {
        self.null_value = token.filter(|t| !t.is_empty());
    }

    /// Trims trailing spaces from text values (DMS's `AddTrailingPaddingCharacter`).
    pub fn set_trim_padding(&mut self, on: bool) {
        self.trim_padding = on;
    }

    /// Chooses the table the tuples are for (staging by default).
    pub fn set_layout(&mut self, layout: TupleLayout) {
        self.layout = layout;
    }

    /// The table spec this decoder encodes for.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Whether records carry an Op column; `None` while it is still to be detected.
    pub fn has_op_column(&self) -> Option<bool> {
        match self.op_column {
            OpColumn::Present => Some(true),
            OpColumn::Absent => Some(false),
            OpColumn::Detect => self.detected,
        }
    }

    /// Appends one binary COPY tuple for the staging table to `out`: `_seq` = `seq`, `_op`,
    /// then every spec column. On error `out` is left as it was.
    pub fn decode(
        &mut self,
        rec: &RawRecord,
        seq: i64,
        out: &mut Vec<u8>,
    ) -> Result<DecodedRow, DecodeError> {
        let mark = out.len();
        let result = self.decode_inner(rec, seq, out);
        if result.is_err() {
            out.truncate(mark);
        }
        result
    }

    fn decode_inner(
        &mut self,
        rec: &RawRecord,
        seq: i64,
        out: &mut Vec<u8>,
    ) -> Result<DecodedRow, DecodeError> {
        let ncols = self.spec.columns.len();
        let stamp = usize::from(self.timestamp_column);
        let has_op = match self.has_op_column() {
            Some(has) => has,
            None => {
                let has = if rec.len() == ncols + stamp + 1 && rec.field(0) == b"I" {
                    true
                } else if rec.len() == ncols + stamp {
                    false
                } else {
                    return Err(DecodeError::FieldCount {
                        line: rec.line(),
                        expected: ncols + stamp,
                        found: rec.len(),
                    });
                };
                self.detected = Some(has);
                has
            }
        };
        let offset = usize::from(has_op) + stamp;
        if rec.len() != ncols + offset {
            return Err(DecodeError::FieldCount {
                line: rec.line(),
                expected: ncols + offset,
                found: rec.len(),
            });
        }

        let op = if has_op {
            match rec.field(0) {
                b"I" => Op::Insert,
                b"U" => Op::Update,
                b"D" => Op::Delete,
                other => {
                    return Err(DecodeError::Op {
                        line: rec.line(),
                        reason: format!("invalid op {} (expected I, U or D)", quote(other)),
                    })
                }
            }
        } else {
            Op::Insert
        };

        match self.layout {
            TupleLayout::Staging => StagingTuple::write_header(out, ncols, seq, op),
            TupleLayout::Direct { .. } if op == Op::Delete => {
                return Err(DecodeError::NeedsStaging { line: rec.line() });
            }
            TupleLayout::Direct { .. } => StagingTuple::write_table_header(out, ncols),
        }

        let mut event_id = None;
        for (i, col) in self.spec.columns.iter().enumerate() {
            let f = i + offset;
            let mut value = rec.field(f);
            let field_err = |reason: String| DecodeError::Field {
                line: rec.line(),
                column: i + 1,
                name: col.name.clone(),
                reason,
            };
            let null = match &self.null_value {
                None => rec.is_null(f),
                Some(token) => !rec.is_quoted(f) && value == &token[..],
            };
            if self.trim_padding
                && matches!(
                    col.ty,
                    ColumnType::Text | ColumnType::Varchar(_) | ColumnType::Bpchar(_)
                )
            {
                while let [rest @ .., b' '] = value {
                    value = rest;
                }
            }
            if null {
                if !col.nullable {
                    return Err(field_err("NULL in non-nullable column".to_string()));
                }
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            encode_value(&col.ty, value, out).map_err(field_err)?;
            if Some(i) == self.event_id {
                match parse_int(value) {
                    Ok(v) => event_id = Some(v),
                    Err(_) => return Err(field_err(format!("invalid event_id {}", quote(value)))),
                }
            }
        }
        if let TupleLayout::Direct {
            delivery_id,
            loaded_at,
        } = self.layout
        {
            StagingTuple::write_lineage(out, delivery_id, loaded_at);
        }
        Ok(DecodedRow { op, event_id })
    }
}

#[cfg(test)]
mod tests {
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
        decoder.set_timestamp_column(true);
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
        decoder.set_timestamp_column(true);
        let (_, out) = decode_all(&mut decoder, "2022-09-22 09:58:53.123456,7,x\n").unwrap();
        assert_eq!(parse_tuples(&out)[0][2], Some(7i64.to_be_bytes().to_vec()));
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
}
