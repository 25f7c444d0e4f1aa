//! Runs: a pass asked for by another system (`POST /api/runs`, a message on `TRIGGER_SUBJECT`),
//! followed step by step. A run's steps are the files pending in its tables when it was asked
//! for; each goes `PENDING` -> `IN_PROGRESS` -> `SUCCESSFUL` or `FAILED`, and the run is
//! `SUCCESSFUL` when every step is, `FAILED` otherwise.
//!
//! A `once` run is carried out by the service loop itself (it is woken for it), so a run never
//! delivers a file twice or out of order with the loop: the [`coordinator`] follows the loop's
//! [`crate::loader::Progress`] and closes the run when the first pass that started after it
//! ends, checking every step it did not see in the ledger. A `dry_run` run validates its files in
//! a dry-run loader of its own (one transaction, rolled back). Every change is stored in
//! `loader_runs` (every instance answers for every run; a run survives a restart) and published
//! on `<NOTIFICATION_DATASOURCE>.meta.<NOTIFICATION_PROCESS>.run`.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod coordinator;

pub use coordinator::Runs;

/// How a run works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Deliver the pending files (the service loop does it, now).
    Once,
    /// Check that every pending file would apply; nothing persists.
    DryRun,
}

impl RunMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunMode::Once => "once",
            RunMode::DryRun => "dry_run",
        }
    }
}

/// A run's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    InProgress,
    Successful,
    Failed,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::InProgress => "IN_PROGRESS",
            RunStatus::Successful => "SUCCESSFUL",
            RunStatus::Failed => "FAILED",
        }
    }
}

/// A step's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Pending,
    InProgress,
    Successful,
    Failed,
}

impl StepStatus {
    pub fn is_open(&self) -> bool {
        matches!(self, StepStatus::Pending | StepStatus::InProgress)
    }
}

/// What a step's delivery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    pub rows: u64,
    pub creates: u64,
    pub amends: u64,
    pub removes: u64,
    pub unchanged: u64,
}

/// One file of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The object key.
    pub name: String,
    pub table: String,
    pub status: StepStatus,
    pub counts: Option<StepCounts>,
    pub error: Option<String>,
    pub delivery_id: Option<i64>,
}

/// What a trigger message said (`TRIGGER_SUBJECT`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(rename = "jobId")]
    pub job_id: String,
    pub trigger: Option<String>,
    #[serde(rename = "userIds", default, skip_serializing_if = "Option::is_none")]
    pub user_ids: Option<Vec<serde_json::Value>>,
}

/// A run, exactly as the API returns it and NATS carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub name: Option<String>,
    pub status: RunStatus,
    pub mode: RunMode,
    /// The tables asked for (`null`: every table).
    pub tables: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub steps: Vec<Step>,
}

impl Run {
    /// Closes the run once no step is open: `SUCCESSFUL` when every step is, `FAILED` otherwise.
    pub fn close(&mut self) {
        let now = Utc::now();
        self.status = if self
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Successful)
        {
            RunStatus::Successful
        } else {
            RunStatus::Failed
        };
        self.finished_at = Some(now);
        self.updated_at = now;
    }
}

/// A request for a run (`POST /api/runs`'s body, or a trigger message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRequest {
    pub mode: RunMode,
    pub tables: Option<BTreeSet<String>>,
    pub name: Option<String>,
    pub trigger: Option<Trigger>,
}

/// A request that cannot be carried out: the field at fault and why (`400`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadRequest {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> BadRequest {
    BadRequest {
        field,
        message: message.into(),
    }
}

impl RunRequest {
    /// Reads `POST /api/runs`'s body: `{"mode": "once" | "dry_run", "tables": [...], "name": ...}`
    /// (`tables` and `name` optional, unknown fields ignored), checking the tables against
    /// `known`.
    pub fn parse(body: &[u8], known: &BTreeSet<String>) -> Result<Self, BadRequest> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| bad("body", format!("not valid JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("body", "not a JSON object"))?;
        let mode = match object.get("mode") {
            None | Some(serde_json::Value::Null) => {
                return Err(bad("mode", "is required: \"once\" or \"dry_run\""))
            }
            Some(serde_json::Value::String(m)) if m == "once" => RunMode::Once,
            Some(serde_json::Value::String(m)) if m == "dry_run" => RunMode::DryRun,
            Some(other) => {
                return Err(bad(
                    "mode",
                    format!("{other} is not \"once\" or \"dry_run\""),
                ))
            }
        };
        let tables = match object.get("tables") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Array(items)) => {
                let mut tables = BTreeSet::new();
                for item in items {
                    let name = item
                        .as_str()
                        .ok_or_else(|| bad("tables", format!("{item} is not a table name")))?;
                    if !known.contains(name) {
                        return Err(bad(
                            "tables",
                            format!(
                                "no replicated table {name:?} (known: {})",
                                known.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    tables.insert(name.to_string());
                }
                if tables.is_empty() {
                    return Err(bad("tables", "is empty (leave it out for every table)"));
                }
                Some(tables)
            }
            Some(other) => return Err(bad("tables", format!("{other} is not a list of names"))),
        };
        let name = match object.get("name") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(n)) if n.chars().count() <= 200 => Some(n.clone()),
            Some(serde_json::Value::String(_)) => {
                return Err(bad("name", "is longer than 200 characters"))
            }
            Some(other) => return Err(bad("name", format!("{other} is not a string"))),
        };
        Ok(RunRequest {
            mode,
            tables,
            name,
            trigger: None,
        })
    }

    /// Reads a trigger message: `{"jobId": "...", "trigger": "...", "userIds": [...]}`
    /// (`userIds` optional, unknown fields ignored): a `once` run of every table.
    pub fn from_trigger(body: &[u8]) -> Result<Self, BadRequest> {
        let trigger: Trigger = serde_json::from_slice(body)
            .map_err(|e| bad("body", format!("not a trigger message: {e}")))?;
        if trigger.job_id.trim().is_empty() {
            return Err(bad("jobId", "is empty"));
        }
        Ok(RunRequest {
            mode: RunMode::Once,
            tables: None,
            name: Some(
                trigger
                    .trigger
                    .clone()
                    .unwrap_or_else(|| trigger.job_id.clone()),
            ),
            trigger: Some(trigger),
        })
    }
}

#[cfg(test)]
mod tests;
