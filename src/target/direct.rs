//! Direct inserts: the rows of a change file that can go straight into their table.
//!
//! Most rows of an append-heavy table's change file (`executions`) insert a key that does not
//! exist yet and that the file never touches again. Staging such a row (COPY into the temp table,
//! sort, upsert by speculative insertion) costs Postgres two passes more than a plain COPY into
//! the table. So, while it decodes a CDC file, the decoder:
//!
//! - sets every `I` row aside in a temporary file ([`InsertSplit::route`]), unless a staged row of
//!   the same key came before it;
//! - sends every other row to the staging table as usual, and remembers its key in a fixed-size
//!   Bloom filter ([`KeyFilter`]).
//!
//! At the end of the file the Target replays the set-aside rows ([`DirectInserts::replay`]): those
//! whose key was staged after them go to the staging table as well (with their position in the
//! file, so the last change per key still wins); the others are COPYed straight into the table
//! with their lineage. Their keys are disjoint from the staged keys, so the order between the two
//! parts does not matter, and each of them is one CREATE. If one of them exists already (the
//! primary key answers 23505), the direct COPY is rolled back to its savepoint and every
//! set-aside row is staged: the staged apply stays the reference behaviour. A false positive of
//! the filter only stages a row that could have gone straight in.
//!
//! Memory stays bounded whatever the file size: the filter is 4 MiB and the set-aside rows are
//! on disk (`TMPDIR`), as binary COPY tuples.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Chunk, ChunkFailure, StreamSummary};
use crate::dms::{ColumnType, Op, TableSpec};

/// Bits in the key filter: 2^25 (4 MiB). With 4 probes a key, one million staged keys give a
/// false-positive rate of about 0.02%, five million about 5%.
const FILTER_BITS_LOG2: u32 = 25;
const PROBES: u64 = 4;

/// Bytes of a staging tuple before its first column: the field count (2), `_seq` (4 + 8) and
/// `_op` (4 + 1).
const STAGE_PREFIX: usize = 2 + 12 + 5;

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

/// A Bloom filter of keys (their 64-bit hashes): "maybe seen" or "certainly not seen".
pub struct KeyFilter {
    bits: Vec<u64>,
    mask: u64,
}

impl KeyFilter {
    fn new(bits_log2: u32) -> Self {
        KeyFilter {
            bits: vec![0; 1 << (bits_log2 - 6)],
            mask: (1u64 << bits_log2) - 1,
        }
    }

    fn probes(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        let step = hash.rotate_left(32) | 1;
        (0..PROBES).map(move |i| hash.wrapping_add(i.wrapping_mul(step)) & self.mask)
    }

    pub fn insert(&mut self, hash: u64) {
        let step = hash.rotate_left(32) | 1;
        for i in 0..PROBES {
            let bit = hash.wrapping_add(i.wrapping_mul(step)) & self.mask;
            self.bits[(bit >> 6) as usize] |= 1 << (bit & 63);
        }
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.probes(hash)
            .all(|bit| self.bits[(bit >> 6) as usize] & (1 << (bit & 63)) != 0)
    }
}

/// Where the key columns are in a staging tuple.
#[derive(Clone, Debug)]
struct KeyFields {
    /// Column indexes of the key, in key order.
    key: Vec<usize>,
    /// The highest of them: fields after it need not be walked.
    last: usize,
}

impl KeyFields {
    fn new(spec: &TableSpec) -> Self {
        KeyFields {
            key: spec.key.clone(),
            last: spec.key.iter().copied().max().unwrap_or(0),
        }
    }

    /// The hash of the key of a staging tuple (`_seq`, `_op`, columns...), from the bytes of its
    /// key fields (length and value). `None` if the tuple is cut short.
    fn hash(&self, tuple: &[u8]) -> Option<u64> {
        let mut spans = [(0usize, 0usize); 8];
        let mut many = Vec::new();
        let mut pos = STAGE_PREFIX;
        for column in 0..=self.last {
            let len = i32::from_be_bytes(tuple.get(pos..pos + 4)?.try_into().ok()?);
            let end = pos + 4 + len.max(0) as usize;
            if end > tuple.len() {
                return None;
            }
            if column < spans.len() {
                spans[column] = (pos, end);
            } else {
                many.resize(column + 1, (0, 0));
                many[column] = (pos, end);
            }
            pos = end;
        }
        let mut h = Fnv::default();
        for &k in &self.key {
            let (start, end) = if k < spans.len() { spans[k] } else { many[k] };
            h.write(&tuple[start..end]);
        }
        Some(h.finish())
    }
}

/// FNV-1a, then a SplitMix64 finaliser so every bit of the hash depends on every input byte.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The decoder's side: routes each staging tuple either to the staging COPY or aside.
pub struct InsertSplit {
    keys: KeyFields,
    filter: KeyFilter,
    spill: BufWriter<File>,
    rows: u64,
}

impl InsertSplit {
    /// A split for one file of `spec`'s table; the set-aside rows go to an anonymous temporary
    /// file (deleted when dropped).
    pub fn new(spec: &TableSpec) -> std::io::Result<Self> {
        Ok(InsertSplit {
            keys: KeyFields::new(spec),
            filter: KeyFilter::new(FILTER_BITS_LOG2),
            spill: BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?),
            rows: 0,
        })
    }

    /// Routes one staging tuple: `true` if it was set aside (the caller drops it from its staging
    /// chunk), `false` if it stays staged.
    pub fn route(&mut self, op: Op, tuple: &[u8]) -> std::io::Result<bool> {
        let Some(hash) = self.keys.hash(tuple) else {
            return Ok(false);
        };
        if op == Op::Insert && !self.filter.contains(hash) {
            self.spill.write_all(tuple)?;
            self.rows += 1;
            Ok(true)
        } else {
            self.filter.insert(hash);
            Ok(false)
        }
    }

    /// The set-aside rows, once the file is read: `None` if there are none.
    pub fn finish(self) -> std::io::Result<Option<DirectInserts>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let mut file = self.spill.into_inner().map_err(|e| e.into_error())?;
        file.flush()?;
        Ok(Some(DirectInserts {
            file,
            rows: self.rows,
            keys: self.keys,
            filter: self.filter,
        }))
    }
}

impl std::fmt::Debug for InsertSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsertSplit")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Which of the set-aside rows a replay sends, and for which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The rows whose key was never staged, as tuples of the table itself with their lineage.
    Direct { delivery_id: i64, loaded_at: i64 },
    /// The rows whose key was staged after them, as staging tuples.
    Staged,
    /// Every row, as staging tuples (the fallback when the direct COPY met an existing key).
    All,
}

/// The Target's side: the set-aside rows of one file and the filter of its staged keys.
pub struct DirectInserts {
    file: File,
    rows: u64,
    keys: KeyFields,
    filter: KeyFilter,
}

impl std::fmt::Debug for DirectInserts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectInserts")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl DirectInserts {
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
        let mut handle = self.file.try_clone()?;
        handle.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(256 * 1024, handle);
        let mut tuple = Vec::with_capacity(4096);
        let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + 64 * 1024);
        let mut sent = 0u64;
        for _ in 0..self.rows {
            read_tuple(&mut reader, &mut tuple)?;
            let staged_later = match mode {
                Replay::All => true,
                _ => {
                    let hash = self.keys.hash(&tuple).ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "a cut tuple")
                    })?;
                    self.filter.contains(hash)
                }
            };
            match mode {
                Replay::Direct {
                    delivery_id,
                    loaded_at,
                } if !staged_later => {
                    // Same field count: `_seq` and `_op` out, `_delivery_id` and `_loaded_at` in.
                    buf.extend_from_slice(&tuple[..2]);
                    buf.extend_from_slice(&tuple[STAGE_PREFIX..]);
                    buf.extend_from_slice(&8i32.to_be_bytes());
                    buf.extend_from_slice(&delivery_id.to_be_bytes());
                    buf.extend_from_slice(&8i32.to_be_bytes());
                    buf.extend_from_slice(&loaded_at.to_be_bytes());
                }
                Replay::Staged | Replay::All if staged_later => buf.extend_from_slice(&tuple),
                _ => continue,
            }
            sent += 1;
            if buf.len() >= chunk_bytes {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(chunk_bytes + 64 * 1024));
                if tx.blocking_send(Chunk::Data(Bytes::from(full))).is_err() {
                    return Ok(None);
                }
            }
        }
        if !buf.is_empty() && tx.blocking_send(Chunk::Data(Bytes::from(buf))).is_err() {
            return Ok(None);
        }
        Ok(Some(sent))
    }
}

/// Reads one binary COPY tuple (field count, then length-prefixed fields) into `out`.
fn read_tuple(reader: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    out.clear();
    let mut count = [0u8; 2];
    reader.read_exact(&mut count)?;
    out.extend_from_slice(&count);
    for _ in 0..i16::from_be_bytes(count).max(0) {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len)?;
        out.extend_from_slice(&len);
        let n = i32::from_be_bytes(len);
        if n > 0 {
            let start = out.len();
            out.resize(start + n as usize, 0);
            reader.read_exact(&mut out[start..])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dms::{Column, RawRecord, RowDecoder};

    fn spec() -> Arc<TableSpec> {
        Arc::new(TableSpec {
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
        })
    }

    #[test]
    fn only_exact_binary_key_types_take_the_split() {
        assert!(key_is_canonical(&spec()));
        let mut numeric = (*spec()).clone();
        numeric.columns[1].ty = ColumnType::Numeric {
            precision: None,
            scale: None,
        };
        assert!(!key_is_canonical(&numeric));
        let mut bpchar = (*spec()).clone();
        bpchar.columns[1].ty = ColumnType::Bpchar(Some(3));
        assert!(!key_is_canonical(&bpchar));
    }

    #[test]
    fn the_filter_never_forgets_a_key() {
        let mut filter = KeyFilter::new(16);
        for k in 0..5_000u64 {
            filter.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        for k in 0..5_000u64 {
            assert!(filter.contains(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        }
        let false_positives = (5_000..105_000u64)
            .filter(|k| filter.contains(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .count();
        // 5,000 keys in 65,536 bits with 4 probes: about 0.1% expected.
        assert!(false_positives < 1_000, "{false_positives}");
    }

    /// Encodes `rows` (op, v, k) as the decoder would, routes them, and returns what each replay
    /// mode sends (decoded back to (seq or delivery, v, k) triples).
    fn split(rows: &[(&str, Option<&str>, i64)]) -> (Vec<i64>, Option<DirectInserts>) {
        let spec = spec();
        let mut decoder = RowDecoder::new(spec.clone(), crate::dms::OpColumn::Present);
        let mut split = InsertSplit::new(&spec).unwrap();
        let mut staged = Vec::new();
        for (seq, (op, v, k)) in rows.iter().enumerate() {
            let line = format!("{op},{},{k}\n", v.unwrap_or(""));
            let mut scanner = crate::dms::CsvScanner::new(line.as_bytes());
            let mut rec = RawRecord::new();
            assert!(scanner.next_record(&mut rec).unwrap());
            let mut tuple = Vec::new();
            let row = decoder.decode(&rec, seq as i64 + 1, &mut tuple).unwrap();
            if !split.route(row.op, &tuple).unwrap() {
                staged.push(seq as i64 + 1);
            }
        }
        (staged, split.finish().unwrap())
    }

    async fn replayed(inserts: &Arc<DirectInserts>, mode: Replay) -> (Vec<Vec<u8>>, u64) {
        let mut rx = inserts.replay(mode, 64);
        let mut bytes = Vec::new();
        loop {
            match rx.recv().await.unwrap() {
                Chunk::Data(b) => bytes.extend_from_slice(&b),
                Chunk::End(summary) => {
                    let mut tuples = Vec::new();
                    let mut reader = &bytes[..];
                    while !reader.is_empty() {
                        let mut t = Vec::new();
                        read_tuple(&mut reader, &mut t).unwrap();
                        tuples.push(t);
                    }
                    assert_eq!(tuples.len() as u64, summary.rows);
                    return (tuples, summary.rows);
                }
                Chunk::Failed(f) => panic!("{}", f.message),
                Chunk::Inserts(_) => panic!("a replay sends no set-aside inserts"),
            }
        }
    }

    fn last_i64(tuple: &[u8]) -> i64 {
        i64::from_be_bytes(tuple[tuple.len() - 8..].try_into().unwrap())
    }

    fn seq(tuple: &[u8]) -> i64 {
        i64::from_be_bytes(tuple[6..14].try_into().unwrap())
    }

    #[tokio::test]
    async fn inserts_of_keys_staged_before_them_stay_staged() {
        // key 1: U then I (the insert must come after the staged update: staged);
        // key 2: I then U (set aside, staged at replay with its position);
        // key 3: I only (direct); key 4: D (staged); key 5: I, I (both aside, direct: 23505 later).
        let (staged, inserts) = split(&[
            ("U", Some("a"), 1),
            ("I", Some("b"), 1),
            ("I", Some("c"), 2),
            ("U", Some("d"), 2),
            ("I", None, 3),
            ("D", Some("e"), 4),
            ("I", Some("f"), 5),
            ("I", Some("g"), 5),
        ]);
        assert_eq!(staged, vec![1, 2, 4, 6]);
        let inserts = Arc::new(inserts.unwrap());
        assert_eq!(inserts.rows(), 4);

        let (direct, n) = replayed(
            &inserts,
            Replay::Direct {
                delivery_id: 77,
                loaded_at: 123,
            },
        )
        .await;
        assert_eq!(n, 3);
        // Table tuples: v, k, _delivery_id, _loaded_at.
        let keys: Vec<i64> = direct
            .iter()
            .map(|t| i64::from_be_bytes(t[t.len() - 32..t.len() - 24].try_into().unwrap()))
            .collect();
        assert_eq!(keys, vec![3, 5, 5]);
        assert!(direct.iter().all(|t| last_i64(t) == 123));
        assert!(direct.iter().all(|t| t[0..2] == 4i16.to_be_bytes()));
        // v is NULL for key 3.
        assert_eq!(direct[0][2..6], (-1i32).to_be_bytes());

        let (later, n) = replayed(&inserts, Replay::Staged).await;
        assert_eq!(n, 1);
        assert_eq!(seq(&later[0]), 3);
        assert_eq!(last_i64(&later[0]), 2);

        let (all, n) = replayed(&inserts, Replay::All).await;
        assert_eq!(n, 4);
        assert_eq!(
            all.iter().map(|t| seq(t)).collect::<Vec<_>>(),
            vec![3, 5, 7, 8]
        );
    }

    #[test]
    fn a_file_without_inserts_sets_nothing_aside() {
        let (staged, inserts) = split(&[("U", Some("a"), 1), ("D", None, 2)]);
        assert_eq!(staged, vec![1, 2]);
        assert!(inserts.is_none());
    }
}
