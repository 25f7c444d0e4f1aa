//! What a pass, a file's delivery and a whole run come to.
use crate::dms::DmsObject;
use crate::policy::{policy, source_kind, target_kind, ErrorKind, Policy};
use crate::report::RunTotals;
use crate::source::{ObjectInfo, SourceError};
use crate::target::{DeliveryResult, TargetError};

/// A delivered file.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub id: i64,
    pub key: String,
    pub table: String,
    pub result: DeliveryResult,
    /// From the delivery's start to its commit.
    pub elapsed: std::time::Duration,
}

/// A file that could not be delivered.
#[derive(Clone, Debug)]
pub struct Failed {
    pub id: i64,
    pub key: String,
    pub table: String,
    /// Names the file and, for bad input, the line and column.
    pub error: String,
    /// A transient fault: the file stays pending and is tried again on a later pass.
    pub retryable: bool,
}

/// The result of one pass over the bucket.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub delivered: Vec<Delivered>,
    pub failed: Vec<Failed>,
    /// Streams stopped at a file that failed earlier (key, recorded error).
    pub blocked: Vec<(String, String)>,
    /// Files pending when the pass started (blocked streams excluded).
    pub pending: usize,
    /// Tables whose stream another loader was delivering: left to it this pass.
    pub held: Vec<String>,
}

impl Outcome {
    /// Nothing was attempted: nothing is pending (apart from blocked streams).
    pub fn is_idle(&self) -> bool {
        self.delivered.is_empty() && self.failed.is_empty()
    }
}

/// Totals over a one-shot run or a dry run.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub delivered: usize,
    pub failed: Vec<Failed>,
    pub blocked: Vec<(String, String)>,
    /// Per table: files, rows, net counts and errors.
    pub totals: RunTotals,
    /// Notifications still in the outbox when the run ended (`None`: notifications off, or not
    /// known).
    pub outbox_left: Option<i64>,
    /// A one-shot run's final check (the bucket and the ledger, after the last pass): each
    /// stream still holding undelivered files, said as a sentence. `None`: not checked (a dry
    /// run, a service).
    pub unfinished: Option<Vec<String>>,
    /// The run was stopped (SIGTERM/SIGINT) before it ended.
    pub interrupted: bool,
}

impl RunSummary {
    /// A one-shot run succeeded when every file it found is delivered (by it or by another
    /// instance), as the ledger says at the end; a file that failed and was delivered later in
    /// the run does not count against it. Without the final check: nothing failed and no stream
    /// is stopped.
    pub fn is_success(&self) -> bool {
        match &self.unfinished {
            Some(unfinished) => unfinished.is_empty() && !self.interrupted,
            None => self.failed.is_empty() && self.blocked.is_empty(),
        }
    }

    /// Adds a pass's deliveries and (in one-shot and dry runs) its failures.
    pub(crate) fn add(&mut self, outcome: &Outcome, with_failures: bool) {
        self.delivered += outcome.delivered.len();
        for d in &outcome.delivered {
            self.totals
                .table(&d.table)
                .add_delivery(&d.result, d.elapsed);
        }
        if with_failures {
            for f in &outcome.failed {
                self.totals.table(&f.table).errors += 1;
            }
            self.failed.extend(outcome.failed.iter().cloned());
        }
        self.blocked = outcome.blocked.clone();
    }
}

/// A failure at the bucket or at Postgres: a pass that could not list the bucket or read the
/// ledger, or one attempt of a file's delivery.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The stream stops at the file by the operator's policy (the message names the file).
    #[error("{message}")]
    Policy { kind: ErrorKind, message: String },
}

impl LoaderError {
    pub fn is_retryable(&self) -> bool {
        self.policy().directive.is_transient()
    }

    /// What this failure is, and so (see [`crate::policy`]) what to do about it.
    pub fn policy(&self) -> &'static Policy {
        policy(match self {
            LoaderError::Source(e) => source_kind(e),
            LoaderError::Target(e) => target_kind(e),
            LoaderError::Policy { kind, .. } => *kind,
        })
    }

    /// The `kind` label of `errors_total`.
    pub(crate) fn kind(&self) -> &'static str {
        self.policy().metric
    }

    /// The message recorded in the ledger and logged for a file's delivery: always names the
    /// file.
    pub(crate) fn describe(&self, key: &str) -> String {
        match self {
            // Input failures already start with the key.
            LoaderError::Target(TargetError::Input(f)) => f.message.clone(),
            LoaderError::Target(e) => format!("{key}: {e}"),
            LoaderError::Source(e) => format!("{key}: {e}"),
            LoaderError::Policy { message, .. } => message.clone(),
        }
    }
}

/// A file of a stream, as listed.
#[derive(Clone, Debug)]
pub(crate) struct PendingFile {
    pub object: DmsObject,
    pub info: ObjectInfo,
    /// A change file whose commit time is before the stream's last delivered change file (it
    /// arrived late; see `LATE_FILE_POLICY`).
    pub late: bool,
}

/// How a file's delivery ended.
pub(crate) enum FileOutcome {
    Delivered(Delivered),
    Failed(Failed),
    /// Another loader holds the stream, or delivered the file already: leave the stream to it.
    /// Another loader holds the table's stream (the table's name).
    LeftToAnother(String),
    /// Delivered by another loader meanwhile: go on with the next file.
    AlreadyDelivered,
}
