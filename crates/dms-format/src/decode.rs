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
    /// there is none).
    timestamp: Stamp,
    /// Staging tuples end with the `_unsupplied` marks (see [`RowDecoder::set_unsupplied`]).
    marks: bool,
    /// DMS's `CsvNoSupValue` (with `UseCsvNoSupValue`): an unquoted field equal to it is a
    /// column DMS could not supply.
    no_sup_value: Option<Vec<u8>>,
    /// The marks of the row being decoded: bit `i` (byte `i / 8`, bit `i % 8` from the least
    /// significant) set when column `i` was not supplied, as Postgres's `get_bit` reads a
    /// `bytea`. Empty while no column of the row is unsupplied.
    mask: Vec<u8>,
}

/// What becomes of DMS's commit-time column (`TimestampColumnName`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stamp {
    /// The records have none.
    None,
    /// The table has no such column: the field is skipped.
    Skip,
    /// The table's column at this index takes it (wherever it is in the table).
    Into(usize),
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
            timestamp: Stamp::None,
            marks: false,
            no_sup_value: None,
            mask: Vec::new(),
        }
    }

    /// With `marks`, every staging tuple ends with one more field, the staging table's
    /// `_unsupplied bytea`: NULL when the row supplied every column, else one bit per column
    /// (see [`StagingTuple`]) set for each field equal to `no_sup_value` (DMS's `CsvNoSupValue`,
    /// unquoted), which is written as NULL whatever the column's nullability (the apply keeps the
    /// table's value there). A key column cannot be unsupplied. Without `marks` (or in the
    /// direct layout), `no_sup_value` is not looked for.
    pub fn set_unsupplied(&mut self, marks: bool, no_sup_value: Option<Vec<u8>>) {
        self.marks = marks;
        self.no_sup_value = no_sup_value.filter(|t| !t.is_empty());
    }

    /// Records carry DMS's commit-time column (`TimestampColumnName`) named `name` right after
    /// the Op column (first when there is none). A table column of that name (any case) takes
    /// it, wherever it is in the table (the records carry the table's other columns in order);
    /// without one it is skipped.
    pub fn set_timestamp_column(&mut self, name: Option<&str>) {
        self.timestamp = match name {
            None => Stamp::None,
            Some(name) => match self.spec.column_named(name) {
                Some(i) => Stamp::Into(i),
                None => Stamp::Skip,
            },
        };
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
        // The commit-time field, and the table column that takes it.
        let (stamp, stamp_into) = match self.timestamp {
            Stamp::None => (0, None),
            Stamp::Skip => (1, None),
            Stamp::Into(i) => (1, Some(i)),
        };
        // The fields besides the Op column.
        let fields = ncols - usize::from(stamp_into.is_some()) + stamp;
        let has_op = match self.has_op_column() {
            Some(has) => has,
            None => {
                let has = if rec.len() == fields + 1 && rec.field(0) == b"I" {
                    true
                } else if rec.len() == fields {
                    false
                } else {
                    return Err(DecodeError::FieldCount {
                        line: rec.line(),
                        expected: fields,
                        found: rec.len(),
                    });
                };
                self.detected = Some(has);
                has
            }
        };
        let offset = usize::from(has_op) + stamp;
        if rec.len() != fields + usize::from(has_op) {
            return Err(DecodeError::FieldCount {
                line: rec.line(),
                expected: fields + usize::from(has_op),
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

        let marks = self.marks && self.layout == TupleLayout::Staging;
        self.mask.clear();
        match self.layout {
            TupleLayout::Staging if marks => StagingTuple::write_marked_header(out, ncols, seq, op),
            TupleLayout::Staging => StagingTuple::write_header(out, ncols, seq, op),
            TupleLayout::Direct { .. } if op == Op::Delete => {
                return Err(DecodeError::NeedsStaging { line: rec.line() });
            }
            TupleLayout::Direct { .. } => StagingTuple::write_table_header(out, ncols),
        }

        let mut event_id = None;
        for (i, col) in self.spec.columns.iter().enumerate() {
            let f = match stamp_into {
                Some(s) if i == s => usize::from(has_op),
                Some(s) if i > s => i + offset - 1,
                _ => i + offset,
            };
            let mut value = rec.field(f);
            let field_err = |reason: String| DecodeError::Field {
                line: rec.line(),
                column: i + 1,
                name: col.name.clone(),
                reason,
            };
            if marks {
                if let Some(token) = &self.no_sup_value {
                    if !rec.is_quoted(f) && value == &token[..] {
                        if self.spec.key.contains(&i) {
                            return Err(field_err(format!(
                                "{} (DMS's CsvNoSupValue) in a key column",
                                quote(value)
                            )));
                        }
                        if self.mask.is_empty() {
                            self.mask.resize(ncols.div_ceil(8), 0);
                        }
                        self.mask[i / 8] |= 1 << (i % 8);
                        out.extend_from_slice(&(-1i32).to_be_bytes());
                        continue;
                    }
                }
            }
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
        } else if marks {
            StagingTuple::write_marks(out, &self.mask);
        }
        Ok(DecodedRow { op, event_id })
    }
}

#[cfg(test)]
mod tests;
