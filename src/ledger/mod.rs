//! The ledger: what the target has done with each DMS object, and the rules that follow from it.
//!
//! One row per object in `loader_deliveries` with a [`DeliveryStatus`]; every failed attempt also
//! in `loader_failures` (a later success does not erase it). The rules:
//! - an object is *done* when its status is `SUCCESS` or `SKIPPED`, *pending* otherwise;
//! - a stream's *head* is its first pending object in delivery order; a stream *stops* at a head
//!   whose `ERROR` row has the object's current ETag, until the object is replaced (new ETag) or
//!   an operator acts (`retry`: the `ERROR` row is removed; `skip`: it becomes `SKIPPED`; both
//!   recorded in `loader_actions`, see [`Action`]).
//!
//! The store is the [`crate::target::Target`]: it answers for a set of keys
//! ([`crate::target::Target::ledger_entries`]), never for the whole history.

mod history;
mod memory;

pub use history::{
    Action, ActionDone, ActionError, ActionRecord, ActionRefused, Actor, DeliveryQuery,
    DeliveryRecord, FailedHead, FailureRecord, LastDelivery, SkippedFile, TableFacts, Today,
};
pub use memory::MemoryLedger;

use std::collections::HashMap;
use std::future::Future;

use crate::target::TargetError;

/// Where the ledger is kept (the target's database; in unit tests, memory).
pub trait LedgerStore: Send + Sync {
    /// The entries of `keys` (keys without a row are absent). Its cost depends on the number of
    /// keys asked about, not on the size of the ledger; no keys, no query.
    fn entries(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, LedgerEntry>, TargetError>> + Send;
}

impl<T: crate::target::Target> LedgerStore for T {
    fn entries(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, LedgerEntry>, TargetError>> + Send {
        self.ledger_entries(keys)
    }
}

/// What the ledger records of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Its data is in the tables (written in the same transaction as this row).
    Success,
    /// Its last attempt failed for good (bad input); nothing of it is in the tables.
    Error,
    /// An operator let the stream go past it; nothing of it is in the tables.
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Success => "SUCCESS",
            DeliveryStatus::Error => "ERROR",
            DeliveryStatus::Skipped => "SKIPPED",
        }
    }

    /// The status of a ledger row's `status` text (`None` for anything else).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SUCCESS" => Some(DeliveryStatus::Success),
            "ERROR" => Some(DeliveryStatus::Error),
            "SKIPPED" => Some(DeliveryStatus::Skipped),
            _ => None,
        }
    }
}

/// What the ledger knows of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    pub status: DeliveryStatus,
    pub etag: Option<String>,
    pub error: Option<String>,
}

impl LedgerEntry {
    /// Delivered or skipped: the stream goes on past it.
    pub fn is_done(&self) -> bool {
        matches!(
            self.status,
            DeliveryStatus::Success | DeliveryStatus::Skipped
        )
    }
}

/// Where a stream stands at its head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// The head may be delivered.
    Open,
    /// The head failed before and the object was not replaced since: the stream waits.
    Stopped { delivery_id: i64, reason: String },
}

/// The stream-head rule: given the ledger's entry for the head object (if any) and the object's
/// current ETag, may the stream deliver it?
pub fn head(entry: Option<&LedgerEntry>, current_etag: &str) -> Head {
    match entry {
        Some(e) if e.status == DeliveryStatus::Error && e.etag.as_deref() == Some(current_etag) => {
            Head::Stopped {
                delivery_id: e.id,
                reason: e.error.clone().unwrap_or_default(),
            }
        }
        _ => Head::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: DeliveryStatus, etag: &str) -> LedgerEntry {
        LedgerEntry {
            id: 7,
            status,
            etag: Some(etag.into()),
            error: Some("k: line 2, column 3 (x): bad".into()),
        }
    }

    #[test]
    fn a_stream_stops_at_a_failed_head_until_its_object_changes() {
        assert_eq!(head(None, "e1"), Head::Open);
        assert_eq!(
            head(Some(&entry(DeliveryStatus::Error, "e1")), "e1"),
            Head::Stopped {
                delivery_id: 7,
                reason: "k: line 2, column 3 (x): bad".into()
            }
        );
        // Replaced in the bucket: tried again.
        assert_eq!(
            head(Some(&entry(DeliveryStatus::Error, "e1")), "e2"),
            Head::Open
        );
    }

    #[test]
    fn success_and_skipped_are_done_error_is_not() {
        assert!(entry(DeliveryStatus::Success, "e").is_done());
        assert!(entry(DeliveryStatus::Skipped, "e").is_done());
        assert!(!entry(DeliveryStatus::Error, "e").is_done());
        for s in [
            DeliveryStatus::Success,
            DeliveryStatus::Error,
            DeliveryStatus::Skipped,
        ] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("PENDING"), None);
    }
}
