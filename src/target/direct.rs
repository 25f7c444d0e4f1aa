//! Direct inserts: the rows of a change file that can go straight into their table.
//!
//! Most keys of a change file are new: an order is inserted and then updated a few times within
//! the minute, an execution is inserted once. Staging their rows (COPY into the temp table, sort,
//! upsert by speculative insertion) costs Postgres two passes more than a plain COPY of each new
//! key's last version into the table. So, while it decodes a CDC file, the decoder sorts keys in
//! two kinds, by their first row in the file:
//!
//! - a **new** key starts with an `I`: all its rows are set aside in a temporary file
//!   ([`InsertSplit::route`]) and an exact map remembers the position of its last row;
//! - any other key starts with a `U` or `D` (it exists already, or should): all its rows go to the
//!   staging table as usual, and its key goes into a fixed-size Bloom filter ([`KeyFilter`]).
//!
//! At the end of the file the Target replays the set-aside rows ([`DirectInserts::replay`]). For
//! each new key only the last row counts: an `I` or `U` is COPYed straight into the table with its
//! lineage (one CREATE), a `D` goes to the staging table (a delete of a key that should not exist:
//! counted as unchanged, exactly as the staged apply counts an insert-then-delete). Rows of a key
//! the filter says was staged (a false positive, or the map was full) all go to the staging table
//! with their position in the file, so the last change per key still wins. The two parts touch
//! disjoint keys, so their order does not matter. If a key of the direct COPY exists already (the
//! source sent an `I` for an existing row; the primary key answers 23505), that COPY is rolled
//! back to its savepoint and every set-aside row is staged: the staged apply is always the
//! reference behaviour, and the fallback for anything unexpected.
//!
//! Memory stays bounded whatever the file size: the filter is 1 MiB, the map of new keys at most
//! 6 MiB (393,216 keys of a single integer column, 229,376 of other keys; a file's further new
//! keys are staged), both are freed once the direct COPY is sent, and the set-aside rows are on
//! disk (`TMPDIR`), as binary COPY tuples.
use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Chunk, ChunkFailure, StreamSummary};
use crate::dms::{ColumnType, Op, TableSpec};

/// Words (64 bits each) in the key filter: 2^17, 1 MiB. 300,000 staged keys set about 9 of a
/// word's 64 bits: a false positive (a new key staged for nothing) about once in 2,500 keys.
const FILTER_WORDS_LOG2: u32 = 17;

/// Slots of the map of new keys of a single integer column: 2^19 (12 bytes each, 6 MiB), filled
/// to 3/4 at most.
const INT_SLOTS_LOG2: u32 = 19;
const INT_MAX_KEYS: usize = (1 << INT_SLOTS_LOG2) / 4 * 3;

/// The most new keys of other kinds one file tracks: 7/8 of 2^18, so the map never grows past
/// 2^18 buckets (~6.5 MiB).
const WIDE_MAX_KEYS: usize = (1 << 18) / 8 * 7;

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

/// A key's identity: its binary fields themselves when they fit in 15 bytes (every integer key),
/// else two independent 64-bit hashes of them (a 128-bit fingerprint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KeyId(u64, u64);

impl Hash for KeyId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.mixed());
    }
}

impl KeyId {
    fn mixed(&self) -> u64 {
        splitmix(self.0 ^ self.1.rotate_left(29))
    }
}

/// The map's hasher: `KeyId` hashes itself well, this only passes the value on.
#[derive(Default)]
struct PassHasher(u64);

impl Hasher for PassHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The new keys of a file and the position of their last row so far (positions start at 1).
enum NewKeys {
    /// A single integer key column (the usual case): an open-addressing table of values.
    Int {
        keys: Vec<u64>,
        /// 0: an empty slot.
        last: Vec<u32>,
        len: usize,
    },
    Wide(HashMap<KeyId, u32, BuildHasherDefault<PassHasher>>),
}

/// What [`NewKeys::touch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Touch {
    /// The key was new already: its last row is now this one.
    Updated,
    /// The key is new from this row on.
    Inserted,
    /// The key is not (and could not be made) a new key.
    Absent,
}

impl NewKeys {
    fn new(int_key: bool) -> Self {
        if int_key {
            NewKeys::Int {
                keys: vec![0; 1 << INT_SLOTS_LOG2],
                last: vec![0; 1 << INT_SLOTS_LOG2],
                len: 0,
            }
        } else {
            NewKeys::Wide(HashMap::default())
        }
    }

    fn len(&self) -> usize {
        match self {
            NewKeys::Int { len, .. } => *len,
            NewKeys::Wide(map) => map.len(),
        }
    }

    /// Records `seq` as the last row of `key` if it is a new key, or makes it one when `insert`
    /// (there is room and the row is an insert).
    fn touch(&mut self, key: KeyId, seq: u32, insert: bool) -> Touch {
        match self {
            NewKeys::Int { keys, last, len } => {
                let mask = keys.len() - 1;
                let mut i = (splitmix(key.0) as usize) & mask;
                while last[i] != 0 {
                    if keys[i] == key.0 {
                        last[i] = seq;
                        return Touch::Updated;
                    }
                    i = (i + 1) & mask;
                }
                if insert && *len < INT_MAX_KEYS {
                    keys[i] = key.0;
                    last[i] = seq;
                    *len += 1;
                    Touch::Inserted
                } else {
                    Touch::Absent
                }
            }
            NewKeys::Wide(map) => {
                if let Some(l) = map.get_mut(&key) {
                    *l = seq;
                    Touch::Updated
                } else if insert && map.len() < WIDE_MAX_KEYS {
                    map.insert(key, seq);
                    Touch::Inserted
                } else {
                    Touch::Absent
                }
            }
        }
    }

    /// The position of the last row of a new key.
    fn last(&self, key: KeyId) -> Option<u32> {
        match self {
            NewKeys::Int { keys, last, .. } => {
                let mask = keys.len() - 1;
                let mut i = (splitmix(key.0) as usize) & mask;
                while last[i] != 0 {
                    if keys[i] == key.0 {
                        return Some(last[i]);
                    }
                    i = (i + 1) & mask;
                }
                None
            }
            NewKeys::Wide(map) => map.get(&key).copied(),
        }
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = seed;
    for part in parts {
        for &b in *part {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    splitmix(h)
}

/// A blocked Bloom filter of keys: "maybe seen" or "certainly not seen". The four bits of a key
/// are in one 64-bit word, so a lookup costs one cache miss.
pub struct KeyFilter {
    words: Vec<u64>,
    mask: u64,
}

impl KeyFilter {
    fn new(words_log2: u32) -> Self {
        KeyFilter {
            words: vec![0; 1 << words_log2],
            mask: (1u64 << words_log2) - 1,
        }
    }

    fn locate(&self, hash: u64) -> (usize, u64) {
        let word = ((hash >> 32) & self.mask) as usize;
        let bits = (0..4).fold(0u64, |acc, i| acc | 1 << ((hash >> (6 * i)) & 63));
        (word, bits)
    }

    fn insert(&mut self, hash: u64) {
        let (word, bits) = self.locate(hash);
        self.words[word] |= bits;
    }

    fn contains(&self, hash: u64) -> bool {
        let (word, bits) = self.locate(hash);
        self.words[word] & bits == bits
    }
}

/// What a replay needs of a staging tuple.
struct TupleHead {
    key: KeyId,
    seq: i64,
}

/// Where the key columns are in a staging tuple.
#[derive(Clone, Debug)]
struct KeyFields {
    /// Column indexes of the key, in key order.
    key: Vec<usize>,
    /// The highest of them: fields after it need not be walked.
    last: usize,
    /// One integer column: its value is the key's id.
    int_key: bool,
}

impl KeyFields {
    fn new(spec: &TableSpec) -> Self {
        KeyFields {
            key: spec.key.clone(),
            last: spec.key.iter().copied().max().unwrap_or(0),
            int_key: spec.key.len() == 1
                && matches!(
                    spec.columns[spec.key[0]].ty,
                    ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8
                ),
        }
    }

    /// The key and position of a staging tuple (`_seq`, `_op`, columns...). `None` if the
    /// tuple is cut short.
    fn head(&self, tuple: &[u8]) -> Option<TupleHead> {
        let seq = i64::from_be_bytes(tuple.get(6..14)?.try_into().ok()?);
        let mut spans = [(0usize, 0usize); 4];
        let mut more = Vec::new();
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
                more.resize(column + 1, (0, 0));
                more[column] = (pos, end);
            }
            pos = end;
        }
        let field = |k: usize| {
            let (start, end) = if k < spans.len() { spans[k] } else { more[k] };
            &tuple[start..end]
        };
        let total: usize = self.key.iter().map(|&k| field(k).len()).sum();
        let key = if self.int_key {
            // The value, sign-extended (a key column is never NULL).
            let f = field(self.key[0]);
            let v = match f.len() - 4 {
                2 => i64::from(i16::from_be_bytes(f[4..].try_into().ok()?)),
                4 => i64::from(i32::from_be_bytes(f[4..].try_into().ok()?)),
                8 => i64::from_be_bytes(f[4..].try_into().ok()?),
                _ => return None,
            };
            KeyId(v as u64, 0)
        } else if total <= 15 {
            // Exact: the length, then the bytes (length prefixes included), in 16 bytes.
            let mut packed = [0u8; 16];
            packed[0] = total as u8;
            let mut at = 1;
            for &k in &self.key {
                let f = field(k);
                packed[at..at + f.len()].copy_from_slice(f);
                at += f.len();
            }
            KeyId(
                u64::from_le_bytes(packed[..8].try_into().ok()?),
                u64::from_le_bytes(packed[8..].try_into().ok()?),
            )
        } else {
            let parts: Vec<&[u8]> = self.key.iter().map(|&k| field(k)).collect();
            // Low byte 0xff: never equal to a packed id (whose low byte is at most 15).
            KeyId(
                fnv(0xcbf2_9ce4_8422_2325, &parts) | 0xff,
                fnv(0x84222325_cbf29ce4, &parts),
            )
        };
        Some(TupleHead { key, seq })
    }
}

/// The decoder's side: routes each staging tuple either to the staging COPY or aside.
pub struct InsertSplit {
    keys: KeyFields,
    staged: KeyFilter,
    new_keys: NewKeys,
    spill: BufWriter<File>,
    rows: u64,
}

impl InsertSplit {
    /// A split for one file of `spec`'s table; the set-aside rows go to an anonymous temporary
    /// file (deleted when dropped).
    pub fn new(spec: &TableSpec) -> std::io::Result<Self> {
        Ok(InsertSplit {
            keys: KeyFields::new(spec),
            staged: KeyFilter::new(FILTER_WORDS_LOG2),
            new_keys: NewKeys::new(KeyFields::new(spec).int_key),
            spill: BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?),
            rows: 0,
        })
    }

    /// Routes one staging tuple: `true` if it was set aside (the caller drops it from its staging
    /// chunk), `false` if it stays staged.
    pub fn route(&mut self, op: Op, tuple: &[u8]) -> std::io::Result<bool> {
        let Some(head) = self.keys.head(tuple) else {
            return Ok(false);
        };
        let Ok(seq) = u32::try_from(head.seq) else {
            // Past 4 billion rows: stage the rest (their keys too, so no row of a set-aside key
            // is left behind).
            self.staged.insert(head.key.mixed());
            return Ok(false);
        };
        let hash = head.key.mixed();
        let aside = !self.staged.contains(hash)
            && self.new_keys.touch(head.key, seq, op == Op::Insert) != Touch::Absent;
        if aside {
            // A record: the tuple's length and key, then the tuple.
            self.spill.write_all(&(tuple.len() as u32).to_le_bytes())?;
            self.spill.write_all(&head.key.0.to_le_bytes())?;
            self.spill.write_all(&head.key.1.to_le_bytes())?;
            self.spill.write_all(tuple)?;
            self.rows += 1;
        } else {
            self.staged.insert(hash);
        }
        Ok(aside)
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
            new_keys: self.new_keys.len(),
            keys: std::sync::Mutex::new(Some(Keys {
                staged: self.staged,
                new_keys: self.new_keys,
            })),
            leftovers: std::sync::Mutex::new(None),
        }))
    }
}

impl std::fmt::Debug for InsertSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsertSplit")
            .field("rows", &self.rows)
            .field("new_keys", &self.new_keys.len())
            .finish_non_exhaustive()
    }
}

/// Which of the set-aside rows a replay sends, and for which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The last row of each new key when it is an `I` or `U`, as a tuple of the table itself
    /// with its lineage.
    Direct { delivery_id: i64, loaded_at: i64 },
    /// Every row of a key the filter says was staged, and the last row of each new key when it
    /// is a `D`, as staging tuples.
    Staged,
    /// Every row, as staging tuples (the fallback when the direct COPY met an existing key).
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

/// The Target's side: the set-aside rows of one file and what the decoder learnt of their keys.
pub struct DirectInserts {
    /// Records of `[u32 LE tuple length][key id: 2 x u64 LE][staging tuple]`.
    file: File,
    rows: u64,
    new_keys: usize,
    /// What the decoder learnt of the keys; taken (and freed) by the `Direct` replay.
    keys: std::sync::Mutex<Option<Keys>>,
    /// Written by the `Direct` replay: the staging tuples of the rows bound for the staging
    /// table, and how many, for the `Staged` replay.
    leftovers: std::sync::Mutex<Option<(File, u64)>>,
}

/// The staged keys (maybe) and the new keys (exactly) of a file.
struct Keys {
    staged: KeyFilter,
    new_keys: NewKeys,
}

impl Keys {
    fn destination(&self, key: KeyId, tuple: &[u8]) -> Destination {
        if self.staged.contains(key.mixed()) {
            return Destination::Staged;
        }
        let seq = i64::from_be_bytes(tuple[6..14].try_into().expect("8 bytes"));
        match self.new_keys.last(key) {
            Some(last) if i64::from(last) == seq => {
                if tuple[18] == b'D' {
                    Destination::Staged
                } else {
                    Destination::Direct
                }
            }
            Some(_) => Destination::Nowhere,
            // Every set-aside key is in the map; a row without one is staged, to be safe.
            None => Destination::Staged,
        }
    }
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
        let send = |buf: &mut Vec<u8>| {
            let full = std::mem::replace(buf, Vec::with_capacity(chunk_bytes + 64 * 1024));
            tx.blocking_send(Chunk::Data(Bytes::from(full))).is_ok()
        };
        let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + 64 * 1024);
        if mode == Replay::Staged {
            // The leftovers are staging tuples already: send them as they are.
            let taken = self.leftovers.lock().expect("not poisoned").take();
            let Some((mut file, rows)) = taken else {
                return Err(std::io::Error::other(
                    "the staged replay ran before the direct one",
                ));
            };
            let sent = super::send_file(&mut file, chunk_bytes, tx)?;
            return Ok(sent.then_some(rows));
        }
        let mut handle = self.file.try_clone()?;
        handle.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(256 * 1024, handle);
        let keys = match mode {
            Replay::Direct { .. } => Some(
                self.keys
                    .lock()
                    .expect("not poisoned")
                    .take()
                    .ok_or_else(|| std::io::Error::other("the direct replay ran twice"))?,
            ),
            _ => None,
        };
        let mut leftovers = match mode {
            Replay::Direct { .. } => {
                Some(BufWriter::with_capacity(64 * 1024, tempfile::tempfile()?))
            }
            _ => None,
        };
        let mut left = 0u64;
        let mut record = [0u8; 20];
        let mut tuple = Vec::with_capacity(4096);
        let mut sent = 0u64;
        for _ in 0..self.rows {
            reader.read_exact(&mut record)?;
            let len = u32::from_le_bytes(record[..4].try_into().expect("4 bytes")) as usize;
            let key = KeyId(
                u64::from_le_bytes(record[4..12].try_into().expect("8 bytes")),
                u64::from_le_bytes(record[12..].try_into().expect("8 bytes")),
            );
            tuple.resize(len, 0);
            reader.read_exact(&mut tuple)?;
            if tuple.len() < STAGE_PREFIX {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a cut tuple",
                ));
            }
            match mode {
                Replay::All => buf.extend_from_slice(&tuple),
                Replay::Direct {
                    delivery_id,
                    loaded_at,
                } => match keys.as_ref().expect("taken above").destination(key, &tuple) {
                    Destination::Direct => {
                        // Same field count: `_seq` and `_op` out, `_delivery_id` and
                        // `_loaded_at` in.
                        buf.extend_from_slice(&tuple[..2]);
                        buf.extend_from_slice(&tuple[STAGE_PREFIX..]);
                        buf.extend_from_slice(&8i32.to_be_bytes());
                        buf.extend_from_slice(&delivery_id.to_be_bytes());
                        buf.extend_from_slice(&8i32.to_be_bytes());
                        buf.extend_from_slice(&loaded_at.to_be_bytes());
                    }
                    Destination::Staged => {
                        if let Some(w) = leftovers.as_mut() {
                            w.write_all(&tuple)?;
                        }
                        left += 1;
                        continue;
                    }
                    Destination::Nowhere => continue,
                },
                Replay::Staged => unreachable!(),
            }
            sent += 1;
            if buf.len() >= chunk_bytes && !send(&mut buf) {
                return Ok(None);
            }
        }
        if !buf.is_empty() && !send(&mut buf) {
            return Ok(None);
        }
        if let Some(w) = leftovers {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            *self.leftovers.lock().expect("not poisoned") = Some((file, left));
        }
        Ok(Some(sent))
    }

    /// Whether the `Direct` replay left rows for the staging table (the `Staged` replay).
    pub fn stages_some(&self) -> bool {
        matches!(*self.leftovers.lock().expect("not poisoned"), Some((_, n)) if n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dms::{Column, RawRecord, RowDecoder};

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
        let mut filter = KeyFilter::new(12);
        let hash = |k: u64| splitmix(k);
        for k in 0..2_000u64 {
            filter.insert(hash(k));
        }
        assert!((0..2_000u64).all(|k| filter.contains(hash(k))));
        let false_positives = (2_000..102_000u64)
            .filter(|&k| filter.contains(hash(k)))
            .count();
        // 2,000 keys in 4,096 words, 4 bits each: about 0.01% expected.
        assert!(false_positives < 100, "{false_positives}");
    }

    fn head_of(spec: &Arc<TableSpec>, line: &str, seq: i64) -> TupleHead {
        let keys = KeyFields::new(spec);
        let mut decoder = RowDecoder::new(spec.clone(), crate::dms::OpColumn::Present);
        let mut scanner = crate::dms::CsvScanner::new(line.as_bytes());
        let mut rec = RawRecord::new();
        assert!(scanner.next_record(&mut rec).unwrap());
        let mut tuple = Vec::new();
        decoder.decode(&rec, seq, &mut tuple).unwrap();
        keys.head(&tuple).unwrap()
    }

    #[test]
    fn key_ids_are_exact_for_short_keys_and_fingerprints_for_long_ones() {
        let ints = spec();
        let a = head_of(&ints, "I,x,42\n", 7);
        assert_eq!(a.seq, 7);
        assert_eq!(a.key, head_of(&ints, "D,other value,42\n", 9).key);
        assert_ne!(a.key, head_of(&ints, "I,x,43\n", 7).key);
        // A text key longer than 15 bytes is fingerprinted; never equal to a packed one.
        let mut text = (*spec()).clone();
        text.columns[1].ty = ColumnType::Text;
        let text = Arc::new(text);
        let long = head_of(&text, "I,x,a-rather-long-client-order-id\n", 1);
        let short = head_of(&text, "I,x,short\n", 1);
        assert_eq!(long.key.0 & 0xff, 0xff);
        assert!(short.key.0 & 0xff <= 15);
        let same = head_of(&text, "U,y,a-rather-long-client-order-id\n", 2);
        assert_eq!(long.key, same.key);
        let other = head_of(&text, "U,y,a-rather-long-client-order-iD\n", 2);
        assert_ne!(long.key, other.key);
    }

    /// Encodes `rows` (op, v, k) as the decoder would and routes them; returns the positions
    /// (1-based) that stayed staged and the set-aside rows.
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

    async fn replayed(inserts: &Arc<DirectInserts>, mode: Replay) -> Vec<Vec<u8>> {
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
                    return tuples;
                }
                Chunk::Failed(f) => panic!("{}", f.message),
                Chunk::Inserts(_) => panic!("a replay sends no set-aside inserts"),
            }
        }
    }

    fn seq(tuple: &[u8]) -> i64 {
        i64::from_be_bytes(tuple[6..14].try_into().unwrap())
    }

    /// A table tuple (v, k, _delivery_id, _loaded_at) as (v, k, delivery, loaded).
    fn table_row(t: &[u8]) -> (Option<String>, i64, i64, i64) {
        let n = t.len();
        let int = |at: usize| i64::from_be_bytes(t[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(t[2..6].try_into().unwrap());
        let v = (len >= 0).then(|| String::from_utf8(t[6..6 + len as usize].to_vec()).unwrap());
        (v, int(n - 32), int(n - 20), int(n - 8))
    }

    #[tokio::test]
    async fn new_keys_go_straight_in_with_their_last_row_and_the_rest_is_staged() {
        let (staged, inserts) = split(&[
            ("U", Some("a"), 1), // 1: starts with an update: staged
            ("I", Some("b"), 1), // 2: a staged key: staged
            ("I", Some("c"), 2), // 3: new key 2, superseded by 4
            ("U", Some("d"), 2), // 4: key 2's last row: straight in
            ("I", None, 3),      // 5: new key 3, inserted once: straight in
            ("D", Some("e"), 4), // 6: starts with a delete: staged
            ("I", Some("f"), 5), // 7: new key 5, superseded by 8
            ("I", Some("g"), 5), // 8: key 5's last row: straight in
            ("I", Some("h"), 6), // 9: new key 6, superseded by 10
            ("D", Some("h"), 6), // 10: key 6's last row is a delete: staged
        ]);
        assert_eq!(staged, vec![1, 2, 6]);
        let inserts = Arc::new(inserts.unwrap());
        assert_eq!(inserts.rows(), 7);

        let direct = replayed(
            &inserts,
            Replay::Direct {
                delivery_id: 77,
                loaded_at: 123,
            },
        )
        .await;
        assert_eq!(
            direct.iter().map(|t| table_row(t)).collect::<Vec<_>>(),
            vec![
                (Some("d".into()), 2, 77, 123),
                (None, 3, 77, 123),
                (Some("g".into()), 5, 77, 123)
            ]
        );
        assert!(direct.iter().all(|t| t[0..2] == 4i16.to_be_bytes()));
        assert!(inserts.stages_some());

        let later = replayed(&inserts, Replay::Staged).await;
        assert_eq!(later.iter().map(|t| seq(t)).collect::<Vec<_>>(), vec![10]);
        assert_eq!(later[0][18], b'D');

        let all = replayed(&inserts, Replay::All).await;
        assert_eq!(
            all.iter().map(|t| seq(t)).collect::<Vec<_>>(),
            vec![3, 4, 5, 7, 8, 9, 10]
        );
    }

    #[tokio::test]
    async fn a_staged_key_takes_its_set_aside_rows_with_it() {
        let (staged, inserts) = split(&[("I", Some("a"), 1), ("I", Some("b"), 2)]);
        assert!(staged.is_empty());
        let mut inserts = inserts.unwrap();
        // As if the filter answered "staged" for key 1 (a false positive, or a full map).
        let hash = head_of(&spec(), "I,a,1\n", 1).key.mixed();
        let keys = inserts.keys.get_mut().unwrap().as_mut().unwrap();
        keys.staged.insert(hash);
        let inserts = Arc::new(inserts);
        let direct = replayed(
            &inserts,
            Replay::Direct {
                delivery_id: 1,
                loaded_at: 0,
            },
        )
        .await;
        assert_eq!(direct.len(), 1);
        assert_eq!(table_row(&direct[0]).1, 2);
        assert!(inserts.stages_some());
        let later = replayed(&inserts, Replay::Staged).await;
        assert_eq!(later.iter().map(|t| seq(t)).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn the_map_of_new_keys_is_exact_and_bounded() {
        for int_key in [true, false] {
            let mut keys = NewKeys::new(int_key);
            let id = |k: u64| KeyId(k.wrapping_mul(if int_key { 1 } else { 0x9e37 }), k);
            let max = if int_key { INT_MAX_KEYS } else { WIDE_MAX_KEYS };
            // Not an insert: never becomes a new key.
            assert_eq!(keys.touch(id(5), 1, false), Touch::Absent);
            for k in 0..max as u64 {
                assert_eq!(keys.touch(id(k), 1 + k as u32, true), Touch::Inserted);
            }
            assert_eq!(keys.len(), max);
            // Full: no more new keys, but known ones still move on.
            assert_eq!(keys.touch(id(max as u64), 1, true), Touch::Absent);
            assert_eq!(keys.touch(id(7), 4_000_000, false), Touch::Updated);
            assert_eq!(keys.last(id(7)), Some(4_000_000));
            assert_eq!(keys.last(id(8)), Some(9));
            assert_eq!(keys.last(id(max as u64)), None);
            // Negative values are keys like any other.
            let mut keys = NewKeys::new(int_key);
            assert_eq!(keys.touch(id(-1i64 as u64), 3, true), Touch::Inserted);
            assert_eq!(keys.last(id(-1i64 as u64)), Some(3));
            assert_eq!(keys.last(id(1)), None);
        }
    }

    #[test]
    fn a_file_without_inserts_sets_nothing_aside() {
        let (staged, inserts) = split(&[("U", Some("a"), 1), ("D", None, 2)]);
        assert_eq!(staged, vec![1, 2]);
        assert!(inserts.is_none());
    }
}
