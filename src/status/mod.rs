//! The status an operator reads: per table stream its state, last delivery, pending files,
//! today's counts, the file it is stopped at (with the commands that fix it) and the files
//! skipped. One [`StatusReport`] serves the `status` command (text and `--json`), `GET /status`
//! (the same JSON plus recent deliveries, the outbox backlog and the mode) and `GET /` (the
//! [`html`] page).
//!
//! The states are the words of file pipelines: `preliminary` (nothing delivered yet), `success`
//! (the last delivery applied, nothing stopped), `error` (stopped at a file).
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ledger::{DeliveryRecord, LastDelivery, SkippedFile, TableFacts, Today};
use crate::loader::StreamStatus;

pub mod html;
mod text;

pub use text::deliveries_text;

/// A stream's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Nothing delivered yet.
    Preliminary,
    /// The last delivery applied; nothing stopped.
    Success,
    /// Stopped at a file.
    Error,
}

impl StreamState {
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamState::Preliminary => "preliminary",
            StreamState::Success => "success",
            StreamState::Error => "error",
        }
    }
}

/// Where a stream is stopped, and how to go on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoppedAt {
    pub key: String,
    pub delivery_id: i64,
    pub reason: String,
    /// When the file failed (its last attempt).
    pub since: DateTime<Utc>,
    /// Failed attempts in the history.
    pub attempts: i64,
    /// Files of the stream waiting behind it.
    pub files_waiting: usize,
    /// The command that attempts it again (after the table or the object was fixed).
    pub retry_command: String,
    /// The command that lets the stream go on without it.
    pub skip_command: String,
}

/// One table stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamReport {
    pub table: String,
    pub state: StreamState,
    pub last_delivery: Option<LastDelivery>,
    /// Files not delivered yet, the stopped one included.
    pub pending_files: usize,
    /// The delivery under way (service only).
    pub in_flight: Option<i64>,
    /// What the deliveries since midnight UTC did.
    pub rows_today: Today,
    pub stopped: Option<StoppedAt>,
    pub skipped: Vec<SkippedFile>,
}

/// The outbox of change notifications.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxReport {
    /// Messages not published yet.
    pub pending: i64,
}

/// Every stream's status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    /// No stream is stopped.
    pub ok: bool,
    pub stopped_streams: usize,
    pub streams: Vec<StreamReport>,
    /// `service` or `one-shot` (`GET /status` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `GET /status` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox: Option<OutboxReport>,
    /// The last deliveries, newest first (`GET /status` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_deliveries: Option<Vec<DeliveryRecord>>,
}

impl StatusReport {
    /// Puts together the streams' state (from discovery: pending files, where each is stopped)
    /// and what the ledger knows (last delivery, today, failures, skipped files). Every table of
    /// the target appears, discovered or not.
    pub fn build(
        streams: &BTreeMap<String, StreamStatus>,
        mut facts: BTreeMap<String, TableFacts>,
    ) -> Self {
        let mut tables: Vec<String> = facts.keys().cloned().collect();
        tables.extend(streams.keys().filter(|t| !facts.contains_key(*t)).cloned());
        tables.sort();
        let streams: Vec<StreamReport> = tables
            .into_iter()
            .map(|table| {
                let fact = facts.remove(&table).unwrap_or_default();
                let status = streams.get(&table);
                let stopped = status.and_then(|s| s.stopped.as_ref()).map(|stopped| {
                    let failed = fact.failed.iter().find(|f| f.key == stopped.key);
                    StoppedAt {
                        key: stopped.key.clone(),
                        delivery_id: stopped.delivery_id,
                        reason: stopped.reason.clone(),
                        since: failed.map(|f| f.since).unwrap_or(stopped.since),
                        attempts: failed.map(|f| f.attempts).unwrap_or(1),
                        files_waiting: status.map(|s| s.pending).unwrap_or(1).saturating_sub(1),
                        retry_command: retry_command(&stopped.key),
                        skip_command: skip_command(&stopped.key),
                    }
                });
                let state = if stopped.is_some() {
                    StreamState::Error
                } else if fact.last_delivery.is_some() {
                    StreamState::Success
                } else {
                    StreamState::Preliminary
                };
                StreamReport {
                    state,
                    last_delivery: fact.last_delivery,
                    pending_files: status.map(|s| s.pending).unwrap_or(0),
                    in_flight: status.and_then(|s| s.in_flight),
                    rows_today: fact.today,
                    stopped,
                    skipped: fact.skipped,
                    table,
                }
            })
            .collect();
        let stopped_streams = streams.iter().filter(|s| s.stopped.is_some()).count();
        StatusReport {
            generated_at: Utc::now(),
            ok: stopped_streams == 0,
            stopped_streams,
            streams,
            mode: None,
            outbox: None,
            recent_deliveries: None,
        }
    }

    /// The text the `status` command prints.
    pub fn to_text(&self) -> String {
        text::render(self)
    }
}

/// A time as the status shows it (UTC, to the second).
pub(crate) fn utc_time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A key as a shell word: as it is when it holds only safe characters, single-quoted otherwise.
pub fn shell_word(key: &str) -> String {
    let safe = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=+:@%,".contains(c));
    if safe {
        key.to_string()
    } else {
        format!("'{}'", key.replace('\'', "'\\''"))
    }
}

/// `paper-engine-orders retry <key>`.
pub fn retry_command(key: &str) -> String {
    format!("paper-engine-orders retry {}", shell_word(key))
}

/// `paper-engine-orders skip <key> --reason "..."`.
pub fn skip_command(key: &str) -> String {
    format!(
        "paper-engine-orders skip {} --reason \"<why>\"",
        shell_word(key)
    )
}

#[cfg(test)]
mod tests;
