//! The `Target`: the Postgres database the loader keeps in step with the bucket.
//!
//! The loader talks to it through the narrow [`Target`] trait; [`PgTarget`] is the real one.
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::dms::{TableSpec, TupleLayout};

pub mod direct;
pub mod migrations;
mod postgres;
pub mod queries;
pub mod spool;

pub use postgres::{PgTarget, StepFacts};

pub use crate::ledger::{DeliveryStatus, LedgerEntry};

/// One file about to be applied.
#[derive(Clone, Debug)]
pub struct DeliveryPlan {
    pub id: i64,
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub table: Arc<TableSpec>,
    /// `LOAD` or `CDC`.
    pub kind: &'static str,
    pub started_at: DateTime<Utc>,
    /// Writes the delivery's row of the outbox (a change notification), in its transaction.
    pub notification: Option<Arc<dyn OutboxWriter>>,
    /// A full-load file may COPY straight into its table (one pass); it falls back to the staged
    /// apply when a key repeats or already exists.
    pub direct_allowed: bool,
    /// A change file that arrived late (`LATE_FILE_POLICY=apply-guarded`): its commit stamp
    /// (`YYYYMMDDHHMMSSmmm`); its rows are applied only over rows no later change file wrote.
    pub late: Option<u64>,
    /// A re-run of the table's full load: the table is replaced by these files' rows (read one
    /// after the other as this delivery's rows) in this delivery's transaction.
    pub reload: Option<Arc<ReloadPlan>>,
    /// A change file without the Op column (every row an insert or an update): its rows are
    /// all staged (no insert goes straight into the table).
    pub upserts_only: bool,
    /// The stream's change files may leave columns unsupplied (DMS's `UseCsvNoSupValue` with a
    /// `CsvNoSupValue`): its rows are all staged with their marks, and a column a row did not
    /// supply takes the key's latest supplied value in the file, else keeps the table's.
    pub keep_unsupplied: bool,
    /// The index in `table` of the column holding DMS's commit time (`TimestampColumnName`),
    /// if the table has one: a late file's rows are judged by it.
    pub commit_column: Option<usize>,
    /// Columns to add to the table first, in the delivery's transaction
    /// (`SCHEMA_DRIFT_POLICY=add-columns`; `table` has them already, nullable `text`).
    pub add_columns: Vec<String>,
}

impl DeliveryPlan {
    /// How the file is staged and judged.
    pub fn stage_shape(&self) -> queries::StageShape {
        queries::StageShape {
            marked: self.keep_unsupplied,
            commit_column: self.commit_column,
        }
    }
}

/// A full-load re-run applied as one delivery.
#[derive(Clone, Debug)]
pub struct ReloadPlan {
    /// Every full-load file of the stream, in order (the delivery's own key among them), with
    /// the delivery id of its ledger row (the delivery's own id for its own key).
    pub parts: Vec<ReloadPart>,
    pub facts: ReloadFacts,
}

/// One full-load file of a re-run.
#[derive(Clone, Debug)]
pub struct ReloadPart {
    pub id: i64,
    pub key: String,
    pub etag: String,
    pub size: u64,
}

/// Why delivering a full-load file is a re-run of the table's full load
/// ([`Target::reload_facts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadFacts {
    /// The delivery of this file's earlier content, and its ETag (none: a new full load after
    /// change files were delivered).
    pub previous: Option<(i64, Option<String>)>,
    /// An operator approved it (`retry` of the stream stopped at it).
    pub approved: bool,
}

/// Net effect of a delivery, per distinct key of the file (from the `dms-naming` crate: the
/// sample generator's ground truth uses the same type).
pub use dms_naming::NetCounts;

/// What the decoder saw once the whole file was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    pub rows: u64,
    pub max_event_id: Option<i64>,
}

/// How the decoder encodes a file: the Target decides it inside the delivery's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    pub layout: TupleLayout,
    /// Set the `I` rows aside for a COPY straight into the table ([`direct`]); with
    /// [`TupleLayout::Staging`] only.
    pub split_inserts: bool,
    /// Staging tuples end with the `_unsupplied` marks (see [`DeliveryPlan::keep_unsupplied`]);
    /// with [`TupleLayout::Staging`] and without `split_inserts` only.
    pub unsupplied_marks: bool,
}

impl Encoding {
    pub fn staging() -> Self {
        Encoding {
            layout: TupleLayout::Staging,
            split_inserts: false,
            unsupplied_marks: false,
        }
    }

    /// Staged, every tuple with its `_unsupplied` marks.
    pub fn marked() -> Self {
        Encoding {
            unsupplied_marks: true,
            ..Encoding::staging()
        }
    }
}

/// A message from the decoding thread to the COPY: binary tuples, then, with
/// [`Encoding::split_inserts`], the set-aside inserts (if any), then exactly one `End` or
/// `Failed`.
#[derive(Debug)]
pub enum Chunk {
    Data(Bytes),
    Inserts(direct::DirectInserts),
    End(StreamSummary),
    /// The file is bad (or could not be read): the message names the file, line and column.
    Failed(ChunkFailure),
}

/// A file's rows, opened by the target once it knows their [`Encoding`]: calling it starts
/// decoding (or replaying what was decoded ahead) and returns the binary COPY chunks, which end
/// with exactly one `End` or `Failed`.
pub type Rows = Box<dyn FnOnce(Encoding) -> mpsc::Receiver<Chunk> + Send>;

/// Why the decoding thread stopped early.
#[derive(Debug, Clone)]
pub struct ChunkFailure {
    pub message: String,
    /// A fault in reading (the connection to the bucket), not in the file itself.
    pub retryable: bool,
    /// Not a fault: the file cannot go straight into the table (a delete in a full load).
    pub needs_staging: bool,
    /// Not a fault of the rows: the file's header names columns the table lacks, at its end
    /// (DMS added source columns), named here with the type each is created as (the Parquet
    /// schema's; `text` for CSV) (see `SCHEMA_DRIFT_POLICY`).
    pub added_columns: Option<Vec<(String, crate::dms::ColumnType)>>,
}

/// The outcome of a committed (or, in dry run, rolled back) delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryResult {
    pub counts: NetCounts,
    pub rows: u64,
    pub max_event_id: Option<i64>,
    /// Rows COPYed straight into the table (one pass), not through the staging table.
    pub direct_rows: u64,
}

/// A failure at the Postgres edge.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("postgres: {context}: {}", describe_pg_error(.source))]
    Postgres {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("postgres: no connection: {0}")]
    Pool(String),
    #[error("{}", .0.message)]
    Input(ChunkFailure),
    #[error("another loader is delivering to table {0} right now")]
    Busy(String),
    #[error("{0} was delivered already (by another loader)")]
    AlreadyDelivered(String),
    #[error("postgres schema: {0}")]
    Schema(String),
    /// The full load could not go straight into the table (a key repeated or already there, or a
    /// delete):
    /// nothing was kept; apply it again through the staging table.
    #[error("{0}: the full load needs the staged apply")]
    NeedsStaging(String),
}

/// The database error's message, detail and position, without anything from the connection
/// string.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                s.push_str(&format!("; {detail}"));
            }
            if let Some(place) = db.where_() {
                s.push_str(&format!("; {place}"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(inner) => format!("{e}: {inner}"),
            None => e.to_string(),
        },
    }
}

impl TargetError {
    pub(crate) fn pg(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> TargetError {
        move |source| TargetError::Postgres { context, source }
    }

    /// The SQLSTATE of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            TargetError::Postgres { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// Whether trying the same delivery again later may succeed (see [`crate::policy`]: lost or
    /// refused connections, serialization failures and deadlocks, a stream another loader holds).
    pub fn is_retryable(&self) -> bool {
        crate::policy::policy(crate::policy::target_kind(self))
            .directive
            .is_transient()
    }
}

/// The database as the loader sees it.
///
/// Deliveries of one table stream go through one [`Target::Session`] (a connection): in a real run
/// each file is its own transaction; in a dry run everything (the streams one after the other) is
/// one transaction, each file under a savepoint, rolled back by [`Target::finish`], so every file
/// is counted against the effect of the files before it, exactly as a real run would count it,
/// and nothing persists.
pub trait Target: Send + Sync + 'static {
    type Session: Send;
    /// The replicated tables by name.
    fn tables(&self) -> &HashMap<String, Arc<TableSpec>>;
    /// Table `name` as the target knows it now: its columns at start-up, or since a delivery
    /// added columns to it (`SCHEMA_DRIFT_POLICY=add-columns`).
    fn table(&self, name: &str) -> Option<Arc<TableSpec>> {
        self.tables().get(name).cloned()
    }
    /// Reads table `name`'s columns from the catalog again (a migration may have added some
    /// since start-up); from then on [`Target::table`] answers with them. `None`: no such table.
    fn refresh_table(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Arc<TableSpec>>, TargetError>> + Send;
    /// The ledger's entries for `keys` (keys it has no row for are absent). Its cost depends on
    /// the number of keys asked about, not on the size of the ledger.
    fn ledger_entries(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, LedgerEntry>, TargetError>> + Send;
    /// A fresh delivery id.
    fn next_delivery_id(&self) -> impl Future<Output = Result<i64, TargetError>> + Send;
    /// Opens a session for the deliveries of `table`'s stream, holding the stream's lease until
    /// [`Target::close_session`] (or until the session's connection ends, e.g. when its loader
    /// dies): one writer per stream among every loader on the database. `TargetError::Busy` when
    /// another loader holds it. A dry run takes no lease (it writes nothing).
    fn open_session(
        &self,
        table: &TableSpec,
    ) -> impl Future<Output = Result<Self::Session, TargetError>> + Send;
    /// Applies one file in one transaction together with its SUCCESS ledger row (in a dry run,
    /// under a savepoint of the session's transaction). Once it knows how the rows must be
    /// encoded (for the table itself, or for staging), it opens them by calling `rows`. On error
    /// nothing of the file remains.
    fn apply(
        &self,
        session: &mut Self::Session,
        plan: &DeliveryPlan,
        rows: Rows,
    ) -> impl Future<Output = Result<DeliveryResult, TargetError>> + Send;
    /// The encoding [`Target::apply`] will ask for a change file of `table`, when it is known
    /// before the transaction opens, so the loader may decode the file ahead of its turn (while
    /// the file before it is applied). `None`: decode it only when its turn comes.
    fn cdc_encoding(&self, table: &TableSpec) -> Option<Encoding>;
    /// Ends a session, giving the stream's lease back.
    fn close_session(&self, session: Self::Session) -> impl Future<Output = ()> + Send;
    /// Ends the target's work: a dry run's target rolls back everything it did (the schema too,
    /// if the dry run had to create it); a real one has nothing left to do.
    fn finish(&self) -> impl Future<Output = ()> + Send;
    /// Records a failed delivery (an ERROR ledger row) so the stream stops at this file.
    fn record_failure(
        &self,
        plan: &DeliveryPlan,
        error: &str,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Whether delivering the full-load file `key` (its current `etag`) of `table` re-runs the
    /// table's full load: the file was delivered with another ETag, a re-run of it is recorded
    /// and not applied yet, or the table has delivered change files (a new full load). `None`:
    /// an ordinary full-load file. Asked on the stream's `session` when there is one (in a dry
    /// run it holds the dry run's one connection).
    fn reload_facts(
        &self,
        session: Option<&Self::Session>,
        table: &str,
        key: &str,
        etag: &str,
    ) -> impl Future<Output = Result<Option<ReloadFacts>, TargetError>> + Send;
    /// Records a re-run the stream stops at (or whose full load failed): the re-run as
    /// DETECTED, and an ERROR row for the file in place of its earlier delivery's row, in one
    /// transaction. Nothing of the table changes.
    fn record_reload_stop(
        &self,
        plan: &DeliveryPlan,
        error: &str,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Answers whether the database is reachable (for readiness).
    fn ping(&self) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// When each table's last successful delivery finished (tables never delivered are absent),
    /// one index lookup per table.
    fn last_successes(
        &self,
    ) -> impl Future<Output = Result<HashMap<String, DateTime<Utc>>, TargetError>> + Send;
}

/// What a delivery did, known once its rows are applied: what an outbox row is made from.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryFacts<'a> {
    pub delivery_id: i64,
    pub key: &'a str,
    pub table: &'a str,
    pub rows: u64,
    pub counts: NetCounts,
    pub max_event_id: Option<i64>,
    /// Columns the delivery added to the table (schema drift), if any.
    pub added_columns: &'a [String],
}

/// A row for the outbox: opaque to the target, which stores it with the delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    pub subject: String,
    pub payload: String,
}

/// Makes a delivery's outbox row (the notifier's business: the target only stores it).
pub trait OutboxWriter: Send + Sync + std::fmt::Debug {
    /// The row to store with this delivery, or `None` for no message (e.g. no net change).
    fn row(&self, facts: &DeliveryFacts<'_>) -> Option<OutboxRow>;
}

/// A change notification waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub delivery_id: i64,
    pub subject: String,
    pub payload: String,
    /// The `Nats-Msg-Id` (a UUID of the row: unique across reloads and databases, kept by a
    /// replay, so JetStream drops a replayed duplicate and nothing else).
    pub msg_id: String,
}

/// The outbox of change notifications, written with the deliveries and read by the relay.
pub trait Outbox: Send + Sync + 'static {
    /// Takes, or checks that this process still holds, the lock that makes its relay the only
    /// one publishing the outbox (several loaders share a database). `false`: another loader's
    /// relay holds it and publishes.
    fn hold_publisher_lock(&self) -> impl Future<Output = Result<bool, TargetError>> + Send;
    /// The oldest unpublished messages, in order.
    fn pending_messages(
        &self,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<OutboxMessage>, TargetError>> + Send;
    fn mark_published(&self, id: i64) -> impl Future<Output = Result<(), TargetError>> + Send;
    fn mark_failed(
        &self,
        id: i64,
        error: &str,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;
    fn pending_count(&self) -> impl Future<Output = Result<i64, TargetError>> + Send;
}
