//! Key ids and the exact map of a file's new keys.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::dms::{ColumnType, StagingTuple, TableSpec};
use crate::target::direct::RowKey;

/// Slots of the map of new keys of a single integer column: at most 2^19 (12 bytes each, 6 MiB),
/// filled to 3/4 at most; it starts at the file's estimated rows (at least 2^8 slots) and doubles
/// as it fills.
const INT_SLOTS_LOG2: u32 = 19;
const INT_MIN_SLOTS_LOG2: u32 = 8;
pub(super) const INT_MAX_KEYS: usize = (1 << INT_SLOTS_LOG2) / 4 * 3;

/// The most new keys of other kinds one file tracks: 7/8 of 2^18, so the map never grows past
/// 2^18 buckets (~6.5 MiB).
pub(super) const WIDE_MAX_KEYS: usize = (1 << 18) / 8 * 7;

/// A key's identity: its binary fields themselves when they fit in 15 bytes (every integer key),
/// else two independent 64-bit hashes of them (a 128-bit fingerprint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KeyId(pub(super) u64, pub(super) u64);

impl Hash for KeyId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.mixed());
    }
}

impl KeyId {
    pub(super) fn mixed(&self) -> u64 {
        splitmix(self.0 ^ self.1.rotate_left(29))
    }
}

/// The id travels with its row in the hand-over file, and comes back from it unchanged.
impl From<KeyId> for RowKey {
    fn from(id: KeyId) -> Self {
        RowKey(id.0, id.1)
    }
}

impl From<RowKey> for KeyId {
    fn from(key: RowKey) -> Self {
        KeyId(key.0, key.1)
    }
}

/// The map's hasher: `KeyId` hashes itself well, this only passes the value on.
#[derive(Default)]
pub(super) struct PassHasher(u64);

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
pub(super) enum NewKeys {
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
pub(super) enum Touch {
    /// The key was new already: its last row is now this one.
    Updated,
    /// The key is new from this row on.
    Inserted,
    /// The key is not (and could not be made) a new key.
    Absent,
}

impl NewKeys {
    /// An empty map for a file of about `rows` rows at most.
    pub(super) fn new(int_key: bool, rows: usize) -> Self {
        if int_key {
            let slots = (rows.min(INT_MAX_KEYS) / 3 * 4 + 1)
                .next_power_of_two()
                .clamp(1 << INT_MIN_SLOTS_LOG2, 1 << INT_SLOTS_LOG2);
            NewKeys::Int {
                keys: vec![0; slots],
                last: vec![0; slots],
                len: 0,
            }
        } else {
            NewKeys::Wide(HashMap::default())
        }
    }

    /// Doubles an integer map, moving every key.
    fn grow(keys: &mut Vec<u64>, last: &mut Vec<u32>) {
        let slots = keys.len() * 2;
        let old_keys = std::mem::replace(keys, vec![0; slots]);
        let old_last = std::mem::replace(last, vec![0; slots]);
        let mask = slots - 1;
        for (key, seq) in old_keys.into_iter().zip(old_last).filter(|&(_, s)| s != 0) {
            let mut i = (splitmix(key) as usize) & mask;
            while last[i] != 0 {
                i = (i + 1) & mask;
            }
            keys[i] = key;
            last[i] = seq;
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            NewKeys::Int { len, .. } => *len,
            NewKeys::Wide(map) => map.len(),
        }
    }

    /// Records `seq` as the last row of `key` if it is a new key, or makes it one when `insert`
    /// (there is room and the row is an insert).
    pub(super) fn touch(&mut self, key: KeyId, seq: u32, insert: bool) -> Touch {
        match self {
            NewKeys::Int { keys, last, len } => {
                let mut mask = keys.len() - 1;
                let mut i = (splitmix(key.0) as usize) & mask;
                while last[i] != 0 {
                    if keys[i] == key.0 {
                        last[i] = seq;
                        return Touch::Updated;
                    }
                    i = (i + 1) & mask;
                }
                if insert && *len < INT_MAX_KEYS {
                    if *len + 1 > keys.len() / 4 * 3 {
                        // Full for its size (never at its largest: INT_MAX_KEYS is 3/4 of it):
                        // double it, and find the key's slot there.
                        Self::grow(keys, last);
                        mask = keys.len() - 1;
                        i = (splitmix(key.0) as usize) & mask;
                        while last[i] != 0 {
                            i = (i + 1) & mask;
                        }
                    }
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
    pub(super) fn last(&self, key: KeyId) -> Option<u32> {
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

pub(super) fn splitmix(x: u64) -> u64 {
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

/// What routing needs of a staging tuple.
pub(super) struct TupleHead {
    pub(super) key: KeyId,
    pub(super) seq: i64,
}

/// Which columns of a staging tuple make its key.
#[derive(Clone, Debug)]
pub(super) struct KeyFields {
    /// Column indexes of the key, in key order.
    key: Vec<usize>,
    /// The highest of them: fields after it need not be walked.
    last: usize,
    /// One integer column: its value is the key's id.
    pub(super) int_key: bool,
}

impl KeyFields {
    pub(super) fn new(spec: &TableSpec) -> Self {
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

    /// The key and position of a staging tuple. `None` if the tuple is cut short.
    pub(super) fn head(&self, tuple: &[u8]) -> Option<TupleHead> {
        let tuple = StagingTuple::read(tuple)?;
        let mut spans: [&[u8]; 4] = [&[]; 4];
        let mut more = Vec::new();
        let mut columns = tuple.columns();
        for column in 0..=self.last {
            let field = columns.next()?;
            if column < spans.len() {
                spans[column] = field;
            } else {
                more.resize(column + 1, &[][..]);
                more[column] = field;
            }
        }
        let field = |k: usize| if k < spans.len() { spans[k] } else { more[k] };
        let total: usize = self.key.iter().map(|&k| field(k).len()).sum();
        let key = if self.int_key {
            // The value, sign-extended (a key column is never NULL).
            let f = StagingTuple::field_value(field(self.key[0]))?;
            let v = match f.len() {
                2 => i64::from(i16::from_be_bytes(f.try_into().ok()?)),
                4 => i64::from(i32::from_be_bytes(f.try_into().ok()?)),
                8 => i64::from_be_bytes(f.try_into().ok()?),
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
        Some(TupleHead {
            key,
            seq: tuple.seq(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_of_new_keys_is_exact_and_bounded() {
        for int_key in [true, false] {
            // Sized for one row: it grows to its bound.
            let mut keys = NewKeys::new(int_key, 1);
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
            let mut keys = NewKeys::new(int_key, 1_000_000);
            assert_eq!(keys.touch(id(-1i64 as u64), 3, true), Touch::Inserted);
            assert_eq!(keys.last(id(-1i64 as u64)), Some(3));
            assert_eq!(keys.last(id(1)), None);
        }
    }

    #[test]
    fn key_ids_travel_through_the_hand_over_unchanged() {
        let id = KeyId(0x0123_4567_89ab_cdef, u64::MAX);
        assert_eq!(KeyId::from(RowKey::from(id)), id);
    }
}
