//! Direct inserts, the Target's side: the hand-over of a change file's set-aside rows
//! ([`DirectInserts`]) and their replay into the table.
//!
//! Most keys of a change file are new: an order is inserted and then updated a few times within
//! the minute, an execution is inserted once. Staging their rows (COPY into the temp table, sort,
//! upsert by speculative insertion) costs Postgres two passes more than a plain COPY of each new
//! key's last version into the table. So, while it decodes a CDC file, the decoder thread sorts
//! keys in two kinds, by their first row in the file (`crate::pipeline::split`):
//!
//! - a **new** key starts with an `I`: all its rows are set aside in a temporary file and an
//!   exact map remembers the position of its last row;
//! - any other key starts with a `U` or `D` (it exists already, or should): all its rows go to the
//!   staging table as usual, and its key goes into a fixed-size Bloom filter.
//!
//! The decoder hands the set-aside rows over as a [`DirectInserts`]: the [`SetAsideRecord`]s and
//! what it learnt of their keys ([`SetAsideKeys`]). For each new key only the last row counts:
//! an `I` or `U` is COPYed straight into the table with its lineage (one CREATE), a `D` goes to
//! the staging table (a delete of a key that should not exist: counted as unchanged, exactly as
//! the staged apply counts an insert-then-delete). Rows of a key the filter says was staged (a
//! false positive, or the map was full) all go to the staging table with their position in the
//! file, so the last change per key still wins. The rows bound for the staging table are known
//! once the file is read: the decoder sends them with the file's other staged rows
//! ([`DirectInserts::stage_leftovers`]), in the same COPY; then the Target replays the rest
//! ([`DirectInserts::replay`]). The two parts touch disjoint keys, so their order does not
//! matter. If a key of the direct COPY exists already (the source sent an `I` for an existing
//! row; the primary key answers 23505), that COPY is rolled back to its savepoint and every
//! set-aside row not staged yet is staged: the staged apply is always the reference behaviour,
//! and the fallback for anything unexpected.
//!
//! Memory stays bounded whatever the file size, and follows it for small files: the filter is
//! sized from the object's size (at most 1 MiB), the map of new keys grows with them (at most
//! 6 MiB: 393,216 keys of a single integer column, 229,376 of other keys; a file's further new
//! keys are staged), both are freed with the delivery's hand-over, and the set-aside rows are
//! binary COPY tuples in a [`Spool`](super::spool::Spool) (memory up to 256 KiB, then disk).
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::spool::Spooled;
use super::{Chunk, ChunkFailure, StreamSummary};
use crate::dms::{ColumnType, Op, StagingTuple, TableSpec};

/// Whether rows of this table can be told apart by the bytes of their binary key: true when every
/// key column's type has one binary form per value (integers, text, dates, timestamps, booleans).
/// `numeric` (`1.0` = `1.00`), `char(n)` (trailing blanks) and floats (`-0` = `0`) do not, so
/// tables keyed on them always take the staged apply.
pub fn key_is_canonical(spec: &TableSpec) -> bool {
    spec.key.iter().all(|&i| {
        matches!(
            spec.columns[i].ty,
            ColumnType::Int2
                | ColumnType::Int4
                | ColumnType::Int8
                | ColumnType::Text
                | ColumnType::Varchar(_)
                | ColumnType::Date
                | ColumnType::Timestamp
                | ColumnType::Timestamptz
                | ColumnType::Bool
        )
    })
}

/// A set-aside row's key as the decoder identified it (128 bits): opaque to the Target, which
/// only hands it back to [`SetAsideKeys::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowKey(pub u64, pub u64);

/// What the decoder learnt of a set-aside row's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownKey {
    /// Rows of the key may have gone to the staging table (the filter says so).
    Staged,
    /// A new key: its last row in the file is at position `last` (`_seq`).
    New { last: i64 },
    /// Neither (never for a row the decoder set aside).
    Unknown,
}

/// The decoder's knowledge of a file's keys, asked by the `Direct` replay.
pub trait SetAsideKeys: Send + Sync {
    fn lookup(&self, key: RowKey) -> KnownKey;
}

/// The records of the set-aside file: `[u32 LE tuple length][key: 2 x u64 LE][staging tuple]`.
pub struct SetAsideRecord;

impl SetAsideRecord {
    /// Appends one record (the decoder's side).
    pub fn write(out: &mut impl Write, key: RowKey, tuple: &[u8]) -> std::io::Result<()> {
        out.write_all(&(tuple.len() as u32).to_le_bytes())?;
        out.write_all(&key.0.to_le_bytes())?;
        out.write_all(&key.1.to_le_bytes())?;
        out.write_all(tuple)
    }

    /// Reads the next record: its key, and its tuple into `tuple`.
    fn read(input: &mut impl Read, tuple: &mut Vec<u8>) -> std::io::Result<RowKey> {
        let mut record = [0u8; 20];
        input.read_exact(&mut record)?;
        let len = u32::from_le_bytes(record[..4].try_into().expect("4 bytes")) as usize;
        let key = RowKey(
            u64::from_le_bytes(record[4..12].try_into().expect("8 bytes")),
            u64::from_le_bytes(record[12..].try_into().expect("8 bytes")),
        );
        tuple.resize(len, 0);
        input.read_exact(tuple)?;
        Ok(key)
    }
}

/// Which of the set-aside rows a replay sends, and for which table. Neither sends the rows
/// [`DirectInserts::stage_leftovers`] staged (every row of a key the filter says was staged, and
/// the last row of each new key when it is a `D`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The last row of each new key when it is an `I` or `U`, as a tuple of the table itself
    /// with its lineage.
    Direct { delivery_id: i64, loaded_at: i64 },
    /// Every other row, as staging tuples (the fallback when the direct COPY met an existing
    /// key).
    All,
}

/// Where one set-aside row goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Destination {
    Direct,
    Staged,
    /// A new key's earlier version, superseded by a later row in the file.
    Nowhere,
}

fn destination(keys: &dyn SetAsideKeys, key: RowKey, row: &StagingTuple<'_>) -> Destination {
    match keys.lookup(key) {
        KnownKey::Staged => Destination::Staged,
        KnownKey::New { last } if last == row.seq() => {
            if row.op() == Op::Delete {
                Destination::Staged
            } else {
                Destination::Direct
            }
        }
        KnownKey::New { .. } => Destination::Nowhere,
        // Every set-aside key is in the map; a row without one is staged, to be safe.
        KnownKey::Unknown => Destination::Staged,
    }
}

/// The hand-over from the decoder thread to the Target: the set-aside rows of one file and what
/// the decoder learnt of their keys.
pub struct DirectInserts {
    /// [`SetAsideRecord`]s.
    records: Spooled,
    rows: u64,
    new_keys: usize,
    /// What the decoder learnt of the keys.
    keys: Box<dyn SetAsideKeys>,
}

impl std::fmt::Debug for DirectInserts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectInserts")
            .field("rows", &self.rows)
            .field("new_keys", &self.new_keys)
            .finish_non_exhaustive()
    }
}

impl DirectInserts {
    /// The hand-over of `rows` [`SetAsideRecord`]s written to `records`, of `new_keys` new keys
    /// that `keys` knows.
    pub fn new(records: Spooled, rows: u64, new_keys: usize, keys: Box<dyn SetAsideKeys>) -> Self {
        DirectInserts {
            records,
            rows,
            new_keys,
            keys,
        }
    }

    /// Reads the set-aside rows back in order: `each` gets every row's tuple and destination
    /// until it returns `Ok(false)`; `Ok(false)` then.
    fn each(
        &self,
        mut each: impl FnMut(&[u8], &StagingTuple<'_>, Destination) -> std::io::Result<bool>,
    ) -> std::io::Result<bool> {
        let mut reader = self.records.reader()?;
        let mut tuple = Vec::with_capacity(4096);
        for _ in 0..self.rows {
            let key = SetAsideRecord::read(&mut reader, &mut tuple)?;
            let Some(row) = StagingTuple::read(&tuple) else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a cut tuple",
                ));
            };
            if !each(&tuple, &row, destination(&*self.keys, key, &row))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The decoder's side, once the file is read: hands the staging tuples of the set-aside
    /// rows bound for the staging table to `stage` (which sends them with the file's other
    /// staged rows); returns how many. `stage` returning `Ok(false)` stops it.
    pub fn stage_leftovers(
        &self,
        mut stage: impl FnMut(&[u8]) -> std::io::Result<bool>,
    ) -> std::io::Result<u64> {
        let mut staged = 0;
        self.each(|tuple, _, to| {
            if to != Destination::Staged {
                return Ok(true);
            }
            staged += 1;
            stage(tuple)
        })?;
        Ok(staged)
    }

    /// How many rows were set aside.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Streams the rows `mode` selects as COPY chunks of about `chunk_bytes`, from a blocking
    /// thread, ending with `End` (its `rows` = the rows sent) or `Failed`.
    pub fn replay(self: &Arc<Self>, mode: Replay, chunk_bytes: usize) -> mpsc::Receiver<Chunk> {
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let message = match this.replay_blocking(mode, chunk_bytes, &tx) {
                Ok(Some(rows)) => Chunk::End(StreamSummary {
                    rows,
                    max_event_id: None,
                }),
                Ok(None) => return,
                Err(e) => Chunk::Failed(ChunkFailure {
                    message: format!("reading the set-aside inserts back from TMPDIR: {e}"),
                    retryable: true,
                    needs_staging: false,
                    added_columns: None,
                }),
            };
            let _ = tx.blocking_send(message);
        });
        rx
    }

    /// `Ok(None)` if the receiver went away.
    fn replay_blocking(
        &self,
        mode: Replay,
        chunk_bytes: usize,
        tx: &mpsc::Sender<Chunk>,
    ) -> std::io::Result<Option<u64>> {
        // A table tuple is a staging tuple with the lineage instead of `_seq` and `_op`: about
        // as long. Records in memory size the first chunk; a file's fill whole chunks.
        let first = self
            .records
            .len_in_memory()
            .map_or(chunk_bytes, |n| n.min(chunk_bytes));
        let mut buf: Vec<u8> = Vec::with_capacity(first + 64 * 1024);
        let mut sent = 0u64;
        let complete = self.each(|tuple, row, to| {
            match (mode, to) {
                (
                    Replay::Direct {
                        delivery_id,
                        loaded_at,
                    },
                    Destination::Direct,
                ) => row.write_table_tuple(&mut buf, delivery_id, loaded_at),
                (Replay::All, Destination::Direct | Destination::Nowhere) => {
                    buf.extend_from_slice(tuple)
                }
                _ => return Ok(true),
            }
            sent += 1;
            if buf.len() < chunk_bytes {
                return Ok(true);
            }
            let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk_bytes + 64 * 1024));
            Ok(tx.blocking_send(Chunk::Data(Bytes::from(full))).is_ok())
        })?;
        if !complete
            || (!buf.is_empty() && tx.blocking_send(Chunk::Data(Bytes::from(buf))).is_err())
        {
            return Ok(None);
        }
        Ok(Some(sent))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dms::Column;

    /// A table of a nullable text column and an int8 key (also the split's tests' table).
    pub(crate) fn spec() -> TableSpec {
        TableSpec {
            name: "t".into(),
            columns: vec![
                Column {
                    name: "v".into(),
                    ty: ColumnType::Text,
                    nullable: true,
                },
                Column {
                    name: "k".into(),
                    ty: ColumnType::Int8,
                    nullable: false,
                },
            ],
            key: vec![1],
        }
    }

    #[test]
    fn only_exact_binary_key_types_take_the_split() {
        assert!(key_is_canonical(&spec()));
        let mut numeric = spec();
        numeric.columns[1].ty = ColumnType::Numeric {
            precision: None,
            scale: None,
        };
        assert!(!key_is_canonical(&numeric));
        let mut bpchar = spec();
        bpchar.columns[1].ty = ColumnType::Bpchar(Some(3));
        assert!(!key_is_canonical(&bpchar));
    }

    #[test]
    fn records_read_back_as_written() {
        let mut file = Vec::new();
        SetAsideRecord::write(&mut file, RowKey(1, u64::MAX), b"first").unwrap();
        SetAsideRecord::write(&mut file, RowKey(0, 2), b"").unwrap();
        let mut reader = &file[..];
        let mut tuple = Vec::new();
        let key = SetAsideRecord::read(&mut reader, &mut tuple).unwrap();
        assert_eq!((key, &tuple[..]), (RowKey(1, u64::MAX), &b"first"[..]));
        let key = SetAsideRecord::read(&mut reader, &mut tuple).unwrap();
        assert_eq!((key, &tuple[..]), (RowKey(0, 2), &b""[..]));
        assert!(reader.is_empty());
    }

    /// Keys answered from a list.
    struct Known(Vec<(RowKey, KnownKey)>);

    impl SetAsideKeys for Known {
        fn lookup(&self, key: RowKey) -> KnownKey {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(KnownKey::Unknown, |(_, known)| *known)
        }
    }

    #[test]
    fn a_new_key_s_last_row_goes_straight_in_unless_it_is_a_delete() {
        let keys = Known(vec![
            (RowKey(1, 0), KnownKey::New { last: 5 }),
            (RowKey(2, 0), KnownKey::Staged),
        ]);
        let tuple = |seq: i64, op: Op| {
            let mut out = Vec::new();
            StagingTuple::write_header(&mut out, 0, seq, op);
            out
        };
        let to = |key: u64, seq: i64, op: Op| {
            let bytes = tuple(seq, op);
            destination(&keys, RowKey(key, 0), &StagingTuple::read(&bytes).unwrap())
        };
        assert_eq!(to(1, 5, Op::Insert), Destination::Direct);
        assert_eq!(to(1, 5, Op::Update), Destination::Direct);
        assert_eq!(to(1, 5, Op::Delete), Destination::Staged);
        assert_eq!(to(1, 4, Op::Insert), Destination::Nowhere);
        assert_eq!(to(2, 5, Op::Insert), Destination::Staged);
        assert_eq!(to(3, 5, Op::Insert), Destination::Staged);
    }
}
