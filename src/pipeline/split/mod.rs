//! Direct inserts, the decoder thread's side: while it decodes a change file, [`InsertSplit`]
//! routes the rows of new keys aside, into a temporary file, and hands them over to the Target
//! as a [`DirectInserts`] (which the Target replays into the table: see
//! [`crate::target::direct`] for the whole scheme).
//!
//! Keys are sorted in two kinds by their first row in the file: a **new** key starts with an
//! `I`, and all its rows are set aside while an exact map (`keys.rs`) remembers the position of
//! its last row; any other key starts with a `U` or `D`, and all its rows stay staged while its
//! key goes into a fixed-size Bloom filter (`filter.rs`).
use crate::dms::{Op, TableSpec};
use crate::target::direct::{DirectInserts, KnownKey, RowKey, SetAsideKeys, SetAsideRecord};
use crate::target::spool::{Spool, SPOOL_MEMORY};

mod filter;
mod keys;
#[cfg(test)]
mod tests;

use filter::KeyFilter;
use keys::{KeyFields, KeyId, NewKeys, Touch};

/// Routes each staging tuple of a change file either to the staging COPY or aside.
pub struct InsertSplit {
    keys: KeyFields,
    staged: KeyFilter,
    new_keys: NewKeys,
    spill: Spool,
    rows: u64,
}

/// The most rows an object of `bytes` bytes is taken to hold, to size a file's key filter and
/// map: one per 4 bytes, ten times what a gzip DMS change file holds (~45 bytes a row in the
/// sample), so a small file gets small structures and a big one the largest (`bytes` 0: size
/// unknown, the largest). A file with more rows than this still loads exactly: the map grows,
/// and an overloaded filter only stages more new keys.
pub fn rows_for_size(bytes: u64) -> usize {
    if bytes == 0 {
        return usize::MAX;
    }
    usize::try_from(bytes / 4).unwrap_or(usize::MAX).max(1)
}

impl InsertSplit {
    /// A split for one file of `spec`'s table, of `size` bytes (0: unknown); the set-aside rows
    /// are kept in memory, or past 256 KiB in an anonymous temporary file (deleted when dropped).
    pub fn new(spec: &TableSpec, size: u64) -> Self {
        let rows = rows_for_size(size);
        let keys = KeyFields::new(spec);
        InsertSplit {
            staged: KeyFilter::for_rows(rows),
            new_keys: NewKeys::new(keys.int_key, rows),
            keys,
            spill: Spool::new(SPOOL_MEMORY),
            rows: 0,
        }
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
            SetAsideRecord::write(&mut self.spill, head.key.into(), tuple)?;
            self.rows += 1;
        } else {
            self.staged.insert(hash);
        }
        Ok(aside)
    }

    /// The set-aside rows, once the file is read: `None` if there are none. Those bound for
    /// the staging table after all are handed to `stage` first, to go with the file's other
    /// staged rows (see [`DirectInserts::stage_leftovers`]; `stage` returning `Ok(false)`
    /// stops it).
    pub fn finish(
        self,
        stage: impl FnMut(&[u8]) -> std::io::Result<bool>,
    ) -> std::io::Result<Option<DirectInserts>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let inserts = DirectInserts::new(
            self.spill.finish()?,
            self.rows,
            self.new_keys.len(),
            Box::new(Keys {
                staged: self.staged,
                new_keys: self.new_keys,
            }),
        );
        inserts.stage_leftovers(stage)?;
        Ok(Some(inserts))
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

/// The staged keys (maybe) and the new keys (exactly) of a file, handed over with its set-aside
/// rows.
struct Keys {
    staged: KeyFilter,
    new_keys: NewKeys,
}

impl SetAsideKeys for Keys {
    fn lookup(&self, key: RowKey) -> KnownKey {
        let key = KeyId::from(key);
        if self.staged.contains(key.mixed()) {
            return KnownKey::Staged;
        }
        match self.new_keys.last(key) {
            Some(last) => KnownKey::New {
                last: i64::from(last),
            },
            None => KnownKey::Unknown,
        }
    }
}
