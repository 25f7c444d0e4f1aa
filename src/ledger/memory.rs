//! [`MemoryLedger`]: a ledger in memory, for unit tests of discovery and the stream-head rule.
//! It counts the queries it answers and the keys it was last asked about.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{DeliveryStatus, LedgerEntry, LedgerStore};
use crate::dms::TableSpec;
use crate::target::TargetError;

#[derive(Default)]
pub struct MemoryLedger {
    tables: HashMap<String, Arc<TableSpec>>,
    entries: Mutex<HashMap<String, LedgerEntry>>,
    queries: AtomicU64,
    asked_last: AtomicU64,
    fail_next: std::sync::atomic::AtomicBool,
}

impl MemoryLedger {
    /// An empty ledger of a target with these tables.
    pub fn new(tables: impl IntoIterator<Item = Arc<TableSpec>>) -> Self {
        MemoryLedger {
            tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
            ..MemoryLedger::default()
        }
    }

    /// The target's tables.
    pub fn tables(&self) -> HashMap<String, Arc<TableSpec>> {
        self.tables.clone()
    }

    /// Records `key` with `status` (an `ERROR` for the object with ETag `etag`).
    pub fn set(&self, key: &str, status: DeliveryStatus, etag: Option<&str>) {
        let mut entries = self.entries.lock().expect("not poisoned");
        let id = entries.len() as i64 + 1;
        entries.insert(
            key.to_string(),
            LedgerEntry {
                id,
                status,
                etag: etag.map(str::to_string),
                error: (status == DeliveryStatus::Error).then(|| format!("{key}: line 1: bad")),
            },
        );
    }

    /// Makes the next query fail as if Postgres were away.
    pub fn fail_next(&self) {
        self.fail_next.store(true, Ordering::Relaxed);
    }

    /// Queries answered so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// How many keys the last query asked about.
    pub fn asked_last(&self) -> u64 {
        self.asked_last.load(Ordering::Relaxed)
    }
}

impl LedgerStore for MemoryLedger {
    async fn entries(&self, keys: &[String]) -> Result<HashMap<String, LedgerEntry>, TargetError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        if self.fail_next.swap(false, Ordering::Relaxed) {
            return Err(TargetError::Pool("the ledger is away (injected)".into()));
        }
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.asked_last.store(keys.len() as u64, Ordering::Relaxed);
        let entries = self.entries.lock().expect("not poisoned");
        Ok(keys
            .iter()
            .filter_map(|k| entries.get(k).map(|e| (k.clone(), e.clone())))
            .collect())
    }
}
