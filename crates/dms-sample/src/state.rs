//! The tables' current rows and, per CDC file, its records and the rows before it: what
//! the ground truth (the net counts per file) is computed from.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::Rng;

use dms_naming::NetCounts;

use super::rows::{Exec, Order, Row, Strategy};

/// Current rows of one table, indexed by key (keys are allocated densely from `base + 1`).
pub(super) struct Table<R> {
    base: i64,
    pub(super) rows: Vec<Option<R>>,
}

impl<R: Row> Table<R> {
    pub(super) fn new(base: i64) -> Self {
        Table {
            base,
            rows: Vec::new(),
        }
    }
    fn index(&self, id: i64) -> Option<usize> {
        let i = id - self.base - 1;
        (i >= 0 && (i as usize) < self.rows.len()).then_some(i as usize)
    }
    pub(super) fn get(&self, id: i64) -> Option<&R> {
        self.index(id).and_then(|i| self.rows[i].as_ref())
    }
    pub(super) fn next_id(&self) -> i64 {
        self.base + self.rows.len() as i64 + 1
    }
    pub(super) fn push(&mut self, row: R) {
        assert_eq!(row.key(), self.next_id(), "keys are allocated in order");
        self.rows.push(Some(row));
    }
    pub(super) fn set(&mut self, row: R) {
        let i = self.index(row.key()).expect("update of an allocated key");
        self.rows[i] = Some(row);
    }
    pub(super) fn take(&mut self, id: i64) -> Option<R> {
        self.index(id).and_then(|i| self.rows[i].take())
    }
    /// A random existing key with index below `below` (exclusive), if one is found quickly.
    pub(super) fn random_key(
        &self,
        rng: &mut StdRng,
        below: usize,
        ok: impl Fn(&R) -> bool,
    ) -> Option<i64> {
        let n = below.min(self.rows.len());
        if n == 0 {
            return None;
        }
        for _ in 0..64 {
            if let Some(r) = &self.rows[rng.random_range(0..n)] {
                if ok(r) {
                    return Some(r.key());
                }
            }
        }
        None
    }
}

const OP_I: u8 = b'I';
const OP_U: u8 = b'U';
const OP_D: u8 = b'D';

/// The records of one CDC file and, per key touched, the row before the file.
pub(super) struct Log<R> {
    pub(super) ops: Vec<(u8, R)>,
    before: HashMap<i64, Option<R>>,
}

impl<R> Default for Log<R> {
    fn default() -> Self {
        Log {
            ops: Vec::new(),
            before: HashMap::new(),
        }
    }
}

impl<R: Row> Log<R> {
    fn touch(&mut self, t: &Table<R>, key: i64) {
        self.before
            .entry(key)
            .or_insert_with(|| t.get(key).cloned());
    }
    /// The row of `key` before the file (`None`: absent, or not touched by the file).
    pub(super) fn before(&self, key: i64) -> Option<&R> {
        self.before.get(&key).and_then(Option::as_ref)
    }
    pub(super) fn touched(&self, key: i64) -> bool {
        self.before.contains_key(&key)
    }
    pub(super) fn counts(&self, t: &Table<R>) -> NetCounts {
        let mut c = NetCounts::default();
        for (&k, before) in &self.before {
            c.count(before.as_ref(), t.get(k));
        }
        c
    }
}

pub(super) fn insert<R: Row>(t: &mut Table<R>, log: &mut Log<R>, row: R) {
    log.touch(t, row.key());
    t.push(row.clone());
    log.ops.push((OP_I, row));
}

pub(super) fn update<R: Row>(t: &mut Table<R>, log: &mut Log<R>, row: R) {
    log.touch(t, row.key());
    t.set(row.clone());
    log.ops.push((OP_U, row));
}

pub(super) fn delete<R: Row>(t: &mut Table<R>, log: &mut Log<R>, key: i64) {
    log.touch(t, key);
    let row = t.take(key).expect("delete of an existing row");
    log.ops.push((OP_D, row));
}

/// A delete whose before image names a key the table never had.
pub(super) fn phantom_delete<R: Row>(t: &Table<R>, log: &mut Log<R>, row: R) {
    debug_assert!(t.get(row.key()).is_none());
    log.touch(t, row.key());
    log.ops.push((OP_D, row));
}

#[derive(Default)]
pub(super) struct Logs {
    pub(super) s: Log<Strategy>,
    pub(super) o: Log<Order>,
    pub(super) e: Log<Exec>,
}
