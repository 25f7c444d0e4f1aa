//! What the ledger tells an operator: the deliveries with their failed attempts and the actions
//! taken on them, each table's last delivery and today's counts, and the two actions an operator
//! takes on a stream stopped at a failed file (`retry`, `skip`).
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::DeliveryStatus;

/// One ledger row as `deliveries` and `GET /status` list it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub delivery_id: i64,
    pub key: String,
    pub table: String,
    /// `LOAD` or `CDC`.
    pub kind: String,
    /// `SUCCESS`, `ERROR` or `SKIPPED`.
    pub status: &'static str,
    pub rows: i64,
    pub creates: i64,
    pub amends: i64,
    pub removes: i64,
    pub unchanged: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
    /// The error of an `ERROR` row; the operator's reason of a `SKIPPED` one.
    pub error: Option<String>,
    pub host: String,
    /// Every failed attempt of this object, oldest first (kept after a later success).
    pub failures: Vec<FailureRecord>,
    /// What operators did about it, oldest first.
    pub actions: Vec<ActionRecord>,
}

/// A failed attempt (a row of `loader_failures`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureRecord {
    pub delivery_id: i64,
    pub failed_at: DateTime<Utc>,
    pub error: String,
    pub host: String,
}

/// An operator's action (a row of `loader_actions`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionRecord {
    /// `RETRY` or `SKIP`.
    pub action: String,
    pub delivery_id: i64,
    pub reason: String,
    pub actor: String,
    /// `cli` or `api`.
    pub via: String,
    pub at: DateTime<Utc>,
}

/// Which ledger rows `deliveries` lists: newest first, at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub table: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: i64,
}

impl Default for DeliveryQuery {
    fn default() -> Self {
        DeliveryQuery {
            table: None,
            status: None,
            limit: 50,
        }
    }
}

/// A table's last successful delivery.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastDelivery {
    pub delivery_id: i64,
    pub key: String,
    pub finished_at: DateTime<Utc>,
}

/// What a table's deliveries did since midnight (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Today {
    pub files: i64,
    pub rows: i64,
    pub creates: i64,
    pub amends: i64,
    pub removes: i64,
    pub unchanged: i64,
}

/// A failed file that stops its stream (an `ERROR` row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedHead {
    pub key: String,
    pub delivery_id: i64,
    pub reason: String,
    /// When it failed (last attempt).
    pub since: DateTime<Utc>,
    /// Attempts recorded in the history of failures.
    pub attempts: i64,
}

/// A file an operator skipped.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedFile {
    pub key: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub by: Option<String>,
}

/// What the ledger knows of one table, for the status.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TableFacts {
    pub last_delivery: Option<LastDelivery>,
    pub today: Today,
    pub failed: Vec<FailedHead>,
    pub skipped: Vec<SkippedFile>,
}

/// An operator's action on a stopped file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Attempt the file again (its `ERROR` row is removed; the history stays).
    Retry,
    /// Let the stream go on without it (its row becomes `SKIPPED`).
    Skip,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Retry => "RETRY",
            Action::Skip => "SKIP",
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Skip => "skip",
        }
    }
}

/// Who asks for an action, and through what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    /// `cli` or `api`.
    pub via: &'static str,
}

impl Actor {
    /// The user running this command on this host (`$USER@host`).
    pub fn cli() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(user_of_process)
            .unwrap_or_else(|| "unknown".into());
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        Actor {
            name: format!("{user}@{host}"),
            via: "cli",
        }
    }
}

/// The name of this process's user, from `/etc/passwd` (containers often set no `$USER`).
fn user_of_process() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut parts = line.split(':');
        let name = parts.next()?;
        let id = parts.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// What an action did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionDone {
    pub action: &'static str,
    pub key: String,
    pub table: String,
    /// The failed delivery acted on.
    pub delivery_id: i64,
}

/// Why an action was refused (nothing changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionRefused {
    #[error("{key} is not in the ledger: only a file its stream stopped at can be retried or skipped (see `paper-engine-orders status`)")]
    Unknown { key: String },
    #[error("{key} is not a stopped file: its ledger status is {status} (only a file whose delivery failed, status ERROR, can be retried or skipped)")]
    NotStopped { key: String, status: &'static str },
    #[error("a loader is delivering table {table} right now; try again in a moment")]
    Busy { table: String },
    #[error("a reason is needed (--reason TEXT): the ledger records why a file was skipped")]
    NoReason,
}

/// Why an action did not happen: refused (the file is not stopped, ...) or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Refused(#[from] ActionRefused),
    #[error("{0}")]
    Target(#[from] crate::target::TargetError),
}
