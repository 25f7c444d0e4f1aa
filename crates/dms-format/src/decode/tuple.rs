//! [`StagingTuple`]: the one owner of the staging tuple's byte layout.
//!
//! A staging tuple is one binary COPY tuple for the staging table `(_seq int8, _op text,
//! <columns...>)`:
//!
//! ```text
//! [i16 field count = columns + 2]
//! [i32 8][i64 _seq]
//! [i32 1][u8 _op: b'I' | b'U' | b'D']
//! [i32 length or -1 for NULL][bytes]   (one per column, in the table's order)
//! ```
//!
//! A stream whose change files may leave columns unsupplied (DMS's `CsvNoSupValue`) stages
//! *marked* tuples: the same, with one more field at the end, `_unsupplied bytea` (NULL, or one
//! bit per column, column `i` at byte `i / 8`, bit `i % 8` from the least significant, as
//! Postgres's `get_bit` numbers them).
//!
//! A tuple of the table itself (the direct layout) has the same field count: the columns, then
//! the lineage `[i32 8][i64 _delivery_id][i32 8][i64 _loaded_at]` in place of `_seq` and `_op`.
//! Every byte offset into these tuples is computed here and nowhere else.
use super::Op;

/// Bytes of a staging tuple before its first column: the field count (2), `_seq` (4 + 8) and
/// `_op` (4 + 1).
const HEADER_LEN: usize = 2 + 12 + 5;
/// Where `_seq`'s value starts.
const SEQ_AT: usize = 2 + 4;
/// Where `_op`'s byte is.
const OP_AT: usize = 2 + 12 + 4;

/// A staging tuple, read: its `_seq`, its `_op` and its columns. The writers are associated
/// functions ([`StagingTuple::write_header`], and for the direct layout
/// [`StagingTuple::write_table_header`] and [`StagingTuple::write_lineage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagingTuple<'a> {
    bytes: &'a [u8],
    seq: i64,
    op: Op,
}

impl<'a> StagingTuple<'a> {
    /// Writes a staging tuple's header for a table of `columns` columns: the field count, `_seq`
    /// and `_op`. The caller then writes the columns.
    pub fn write_header(out: &mut Vec<u8>, columns: usize, seq: i64, op: Op) {
        // A Postgres table has at most 1600 columns, so this fits.
        out.extend_from_slice(&((columns + 2) as i16).to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(op.as_str().as_bytes());
    }

    /// [`StagingTuple::write_header`] for a marked tuple: the caller then writes the columns,
    /// then [`StagingTuple::write_marks`].
    pub fn write_marked_header(out: &mut Vec<u8>, columns: usize, seq: i64, op: Op) {
        Self::write_header(out, columns + 1, seq, op);
    }

    /// Ends a marked tuple: `mask` (one bit per unsupplied column), NULL when it is empty.
    pub fn write_marks(out: &mut Vec<u8>, mask: &[u8]) {
        if mask.is_empty() {
            out.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            out.extend_from_slice(&(mask.len() as i32).to_be_bytes());
            out.extend_from_slice(mask);
        }
    }

    /// Writes the field count of a tuple of the table itself (the direct layout) of `columns`
    /// columns: the columns and the two lineage columns. The caller then writes the columns,
    /// then [`StagingTuple::write_lineage`].
    pub fn write_table_header(out: &mut Vec<u8>, columns: usize) {
        out.extend_from_slice(&((columns + 2) as i16).to_be_bytes());
    }

    /// Writes the lineage columns that end a tuple of the table itself: `_delivery_id` and
    /// `_loaded_at` (microseconds since 2000-01-01 UTC).
    pub fn write_lineage(out: &mut Vec<u8>, delivery_id: i64, loaded_at: i64) {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&delivery_id.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&loaded_at.to_be_bytes());
    }

    /// Reads a staging tuple's header. `None` if the bytes are shorter than a header or its
    /// `_seq` and `_op` fields are not as [`StagingTuple::write_header`] writes them.
    pub fn read(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN
            || bytes[2..SEQ_AT] != 8i32.to_be_bytes()
            || bytes[SEQ_AT + 8..OP_AT] != 1i32.to_be_bytes()
        {
            return None;
        }
        let seq = i64::from_be_bytes(bytes[SEQ_AT..SEQ_AT + 8].try_into().ok()?);
        let op = match bytes[OP_AT] {
            b'I' => Op::Insert,
            b'U' => Op::Update,
            b'D' => Op::Delete,
            _ => return None,
        };
        Some(StagingTuple { bytes, seq, op })
    }

    /// The row's position in its file (`_seq`).
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// The row's operation (`_op`).
    pub fn op(&self) -> Op {
        self.op
    }

    /// The tuple's bytes, as read.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The column fields in the table's order, each with its 4-byte length prefix (a NULL is
    /// the prefix alone, `-1`). Ends early at a field cut short.
    pub fn columns(&self) -> Columns<'a> {
        Columns {
            rest: &self.bytes[HEADER_LEN..],
        }
    }

    /// The value of a field [`StagingTuple::columns`] yielded, without its length prefix;
    /// `None` for a NULL.
    pub fn field_value(field: &[u8]) -> Option<&[u8]> {
        let len = i32::from_be_bytes(field.get(..4)?.try_into().ok()?);
        if len < 0 {
            return None;
        }
        field.get(4..4 + len as usize)
    }

    /// Appends this row as a tuple of the table itself (the direct layout): the same field
    /// count, the columns as they are, then the lineage.
    pub fn write_table_tuple(&self, out: &mut Vec<u8>, delivery_id: i64, loaded_at: i64) {
        // Same field count: `_seq` and `_op` out, `_delivery_id` and `_loaded_at` in.
        out.extend_from_slice(&self.bytes[..2]);
        out.extend_from_slice(&self.bytes[HEADER_LEN..]);
        Self::write_lineage(out, delivery_id, loaded_at);
    }
}

/// The column fields of a staging tuple ([`StagingTuple::columns`]).
#[derive(Clone, Debug)]
pub struct Columns<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Columns<'a> {
    /// A field: its length prefix, then its bytes.
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = i32::from_be_bytes(self.rest.get(..4)?.try_into().ok()?);
        let end = 4 + len.max(0) as usize;
        if end > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let (field, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field as [`Columns`] yields it.
    fn field(value: Option<&[u8]>) -> Vec<u8> {
        match value {
            Some(v) => [&(v.len() as i32).to_be_bytes()[..], v].concat(),
            None => (-1i32).to_be_bytes().to_vec(),
        }
    }

    fn write(seq: i64, op: Op, columns: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        StagingTuple::write_header(&mut out, columns.len(), seq, op);
        for c in columns {
            out.extend_from_slice(&field(*c));
        }
        out
    }

    #[test]
    fn every_field_written_reads_back() {
        let columns: [Option<&[u8]>; 4] = [
            Some(&42i64.to_be_bytes()),
            None,
            Some(b""),
            Some(b"a longer text value"),
        ];
        for (seq, op) in [(1, Op::Insert), (-7, Op::Update), (i64::MAX, Op::Delete)] {
            let bytes = write(seq, op, &columns);
            let tuple = StagingTuple::read(&bytes).unwrap();
            assert_eq!(tuple.seq(), seq);
            assert_eq!(tuple.op(), op);
            assert_eq!(tuple.bytes(), &bytes[..]);
            assert_eq!(
                tuple.columns().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                columns.iter().map(|c| field(*c)).collect::<Vec<_>>()
            );
            assert_eq!(
                tuple
                    .columns()
                    .map(StagingTuple::field_value)
                    .collect::<Vec<_>>(),
                columns
            );
        }
    }

    #[test]
    fn a_table_tuple_keeps_the_columns_and_takes_the_lineage() {
        let columns: [Option<&[u8]>; 2] = [Some(b"v"), None];
        let bytes = write(3, Op::Update, &columns);
        let mut direct = Vec::new();
        StagingTuple::read(&bytes)
            .unwrap()
            .write_table_tuple(&mut direct, 77, 123);
        // The same tuple as the writers of the direct layout make it.
        let mut expected = Vec::new();
        StagingTuple::write_table_header(&mut expected, 2);
        expected.extend_from_slice(&field(Some(b"v")));
        expected.extend_from_slice(&field(None));
        StagingTuple::write_lineage(&mut expected, 77, 123);
        assert_eq!(direct, expected);
        assert_eq!(direct[..2], 4i16.to_be_bytes());
        assert!(direct.ends_with(
            &[
                field(Some(&77i64.to_be_bytes())),
                field(Some(&123i64.to_be_bytes()))
            ]
            .concat()
        ));
    }

    #[test]
    fn short_or_foreign_bytes_are_not_read() {
        let bytes = write(5, Op::Insert, &[Some(b"abc"), Some(b"de")]);
        assert!(StagingTuple::read(&bytes[..HEADER_LEN - 1]).is_none());
        // A header alone is a tuple without columns.
        let header = StagingTuple::read(&bytes[..HEADER_LEN]).unwrap();
        assert_eq!(header.columns().count(), 0);
        // A column cut short ends the columns.
        let cut = StagingTuple::read(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(
            cut.columns().collect::<Vec<_>>(),
            vec![&field(Some(b"abc"))[..]]
        );
        let mut bad_op = bytes.clone();
        bad_op[OP_AT] = b'X';
        assert!(StagingTuple::read(&bad_op).is_none());
        let mut bad_seq = bytes;
        bad_seq[5] = 4;
        assert!(StagingTuple::read(&bad_seq).is_none());
    }
}
