//! The `Loader`: asks the Target what it has delivered, asks the Source what there is, and
//! delivers each pending file of each table stream, in order, one transaction per file.
//!
//! [`Loader::poll_once`] is one pass over the bucket (tests call it directly);
//! [`Loader::run_until_stopped`] loops around it in service mode, or drains once in one-shot
//! mode.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::io::SyncIoBridge;
use tracing::{error, info, warn};

use crate::dms::{
    self, CsvScanner, DecodeError, DmsObject, OpColumn, RawRecord, RowDecoder, TableSpec,
};
use crate::metrics::Metrics;
use crate::notifier::{NotificationSettings, RelayHandle};
use crate::report::RunTotals;
use crate::source::{ObjectInfo, Source, SourceError};
use crate::target::direct::InsertSplit;
use crate::target::{
    send_file, Chunk, ChunkFailure, DeliveryPlan, DeliveryResult, DeliveryStatus, Encoding,
    LedgerEntry, StreamSummary, Target, TargetError,
};

/// How hard to retry a delivery that failed for a transient reason.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What the loader does, beyond where the data is.
#[derive(Clone, Debug)]
pub struct LoaderSettings {
    pub run_as_service: bool,
    pub dry_run: bool,
    /// Table streams loading at once.
    pub parallelism: usize,
    pub min_sleep: Duration,
    pub max_sleep: Duration,
    pub retry: RetryPolicy,
    /// Bytes of binary COPY data per message from the decoding thread to the COPY.
    pub chunk_bytes: usize,
    /// Write change notifications to the outbox (None: notifications off, or dry run).
    pub notification: Option<Arc<NotificationSettings>>,
    /// How long a delivery waits for its notification to be acknowledged before it moves on
    /// (the message stays in the outbox and goes out later either way).
    pub publish_wait: Duration,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings {
            run_as_service: true,
            dry_run: false,
            parallelism: crate::config::default_parallelism(),
            min_sleep: Duration::from_secs(15),
            max_sleep: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            chunk_bytes: 512 * 1024,
            notification: None,
            publish_wait: Duration::from_secs(2),
        }
    }
}

impl LoaderSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        LoaderSettings {
            run_as_service: config.run_as_service,
            dry_run: config.dry_run,
            parallelism: config.parallelism,
            min_sleep: Duration::from_secs_f64(config.min_sleep),
            max_sleep: Duration::from_secs_f64(config.max_sleep),
            notification: config.publishes().then(|| {
                Arc::new(NotificationSettings {
                    datasource: config.notification_datasource.clone(),
                    process: config.notification_process.clone(),
                    host: gethostname::gethostname().to_string_lossy().into_owned(),
                })
            }),
            ..LoaderSettings::default()
        }
    }
}

/// A delivered file.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub id: i64,
    pub key: String,
    pub table: String,
    pub result: DeliveryResult,
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
}

impl RunSummary {
    /// A one-shot run succeeded if nothing failed and no stream is stopped at a bad file.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.blocked.is_empty()
    }

    /// Adds a pass's deliveries and (in one-shot and dry runs) its failures.
    fn add(&mut self, outcome: &Outcome, with_failures: bool) {
        self.delivered += outcome.delivered.len();
        for d in &outcome.delivered {
            self.totals.table(&d.table).add_delivery(&d.result);
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

/// A pass could not even start: the bucket could not be listed or the ledger read.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl LoaderError {
    pub fn is_retryable(&self) -> bool {
        match self {
            LoaderError::Source(e) => e.is_retryable(),
            LoaderError::Target(e) => e.is_retryable(),
        }
    }
}

/// A file of a stream, as listed.
#[derive(Clone, Debug)]
struct PendingFile {
    object: DmsObject,
    info: ObjectInfo,
}

/// Why a delivery attempt failed.
enum AttemptError {
    Source(SourceError),
    Target(TargetError),
}

impl AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Source(e) => e.is_retryable(),
            AttemptError::Target(e) => e.is_retryable(),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            AttemptError::Source(_) => "source",
            AttemptError::Target(TargetError::Input(f)) if !f.retryable => "input",
            AttemptError::Target(TargetError::Input(_)) => "source",
            AttemptError::Target(_) => "target",
        }
    }
    /// The message recorded in the ledger and logged: always names the file.
    fn describe(&self, key: &str) -> String {
        match self {
            // Input failures already start with the key.
            AttemptError::Target(TargetError::Input(f)) => f.message.clone(),
            AttemptError::Target(e) => format!("{key}: {e}"),
            AttemptError::Source(e) => format!("{key}: {e}"),
        }
    }
}

/// How a file's delivery ended.
enum FileOutcome {
    Delivered(Delivered),
    Failed(Failed),
    /// Another loader holds the stream, or delivered the file already: leave the stream to it.
    LeftToAnother,
    /// Delivered by another loader meanwhile: go on with the next file.
    AlreadyDelivered,
}

/// The loader: one per process.
pub struct Loader<S: Source, T: Target> {
    source: Arc<S>,
    target: Arc<T>,
    metrics: Arc<Metrics>,
    settings: LoaderSettings,
    relay: Option<RelayHandle>,
    warned: Mutex<HashSet<String>>,
}

impl<S: Source, T: Target> Loader<S, T> {
    pub fn new(source: S, target: T, metrics: Arc<Metrics>, settings: LoaderSettings) -> Self {
        Loader {
            source: Arc::new(source),
            target: Arc::new(target),
            metrics,
            settings,
            relay: None,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Connects the loader to the outbox relay, so it can wake it after each commit.
    pub fn with_relay(mut self, relay: RelayHandle) -> Self {
        self.relay = Some(relay);
        self
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn target(&self) -> &T {
        &self.target
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn settings(&self) -> &LoaderSettings {
        &self.settings
    }

    /// Warns once per process about something (an unknown table folder, a blocked stream).
    fn warn_once(&self, what: &str, message: impl FnOnce() -> String) {
        let mut warned = self.warned.lock().expect("not poisoned");
        if warned.insert(what.to_string()) {
            warn!("{}", message());
        }
    }

    /// The pending files of every stream, in delivery order, and the streams stopped at a file
    /// that failed before.
    async fn plan(
        &self,
    ) -> Result<(BTreeMap<String, Vec<PendingFile>>, Vec<(String, String)>), LoaderError> {
        let listed = self.source.list().await?;
        let ledger: HashMap<String, LedgerEntry> = self.target.ledger().await?;
        let tables = self.target.tables();
        let mut streams: BTreeMap<String, Vec<PendingFile>> = BTreeMap::new();
        for info in listed {
            let Some(object) = dms::parse_object_key(self.source.path(), &info.key) else {
                continue;
            };
            if !tables.contains_key(&object.table) {
                let table = object.table.clone();
                self.warn_once(&format!("table:{table}"), || {
                    format!(
                        "Skipping table folder {}/{}: no such table in the target schema.",
                        object.schema, table
                    )
                });
                continue;
            }
            streams
                .entry(object.table.clone())
                .or_default()
                .push(PendingFile { object, info });
        }
        let mut blocked = Vec::new();
        for (table, files) in streams.iter_mut() {
            files.sort_by(|a, b| a.object.cmp(&b.object));
            files.retain(|f| {
                !matches!(
                    ledger.get(&f.info.key),
                    Some(LedgerEntry {
                        status: DeliveryStatus::Success,
                        ..
                    })
                )
            });
            // A stream stops at a file that failed, until the file is replaced (new ETag) or an
            // operator acts on it. A dry run checks the file again (the schema may have changed
            // since), as a validation should.
            if let Some(head) = files.first() {
                if let Some(entry) = ledger.get(&head.info.key) {
                    if entry.status == DeliveryStatus::Error
                        && entry.etag.as_deref() == Some(head.info.etag.as_str())
                    {
                        let reason = entry.error.clone().unwrap_or_default();
                        if self.settings.dry_run {
                            info!(
                                "Stream {table} is stopped at {} (delivery {} failed); the dry run checks it again.",
                                head.info.key, entry.id
                            );
                            continue;
                        }
                        self.warn_once(&format!("blocked:{}:{}", head.info.key, entry.id), || {
                            format!(
                                "Stream {table} is stopped at {} (delivery {} failed: {reason}); \
                                 later files of {table} wait.",
                                head.info.key, entry.id
                            )
                        });
                        blocked.push((head.info.key.clone(), reason));
                        files.clear();
                    }
                }
            }
            self.metrics
                .pending_files
                .with_label_values(&[table])
                .set(files.len() as i64);
        }
        streams.retain(|_, files| !files.is_empty());
        Ok((streams, blocked))
    }

    /// One pass: lists the bucket, reads the ledger, and delivers every pending file of every
    /// stream in order (up to `parallelism` streams at once). A stream stops at its first failure.
    pub async fn poll_once(&self) -> Result<Outcome, LoaderError> {
        let (streams, blocked) = self.plan().await?;
        let pending = streams.values().map(Vec::len).sum();
        // A dry run works in one transaction on one connection: its streams take turns.
        let parallelism = if self.settings.dry_run {
            1
        } else {
            self.settings.parallelism.max(1)
        };
        let results: Vec<Vec<FileOutcome>> = futures::stream::iter(streams.into_values())
            .map(|files| self.deliver_stream(files))
            .buffer_unordered(parallelism)
            .collect()
            .await;
        let mut outcome = Outcome {
            blocked,
            pending,
            ..Outcome::default()
        };
        for file in results.into_iter().flatten() {
            match file {
                FileOutcome::Delivered(d) => outcome.delivered.push(d),
                FileOutcome::Failed(f) => outcome.failed.push(f),
                FileOutcome::LeftToAnother | FileOutcome::AlreadyDelivered => {}
            }
        }
        outcome.delivered.sort_by_key(|d| d.id);
        Ok(outcome)
    }

    async fn deliver_stream(&self, files: Vec<PendingFile>) -> Vec<FileOutcome> {
        let mut outcomes = Vec::new();
        let mut session = None;
        let mut ahead: Option<Prefetch> = None;
        for (i, file) in files.iter().enumerate() {
            let current = ahead.take();
            // The next change file is read and decoded while this one is applied (Postgres
            // is the busy side then); a stop below drops it, which cancels it.
            if let Some(next) = files.get(i + 1) {
                ahead = self.prefetch(next).await;
            }
            let outcome = self.deliver(&mut session, file, current).await;
            // A real run stops the stream at a failed file. A dry run goes on, so every pending
            // file is checked once, the later ones against the effect of the files that applied.
            let stop = match outcome {
                FileOutcome::Failed(_) => !self.settings.dry_run,
                FileOutcome::LeftToAnother => true,
                FileOutcome::Delivered(_) | FileOutcome::AlreadyDelivered => false,
            };
            outcomes.push(outcome);
            if stop {
                break;
            }
        }
        if let Some(session) = session {
            self.target.close_session(session).await;
        }
        outcomes
    }

    /// Delivers one file, retrying transient faults with backoff.
    async fn deliver(
        &self,
        session: &mut Option<T::Session>,
        file: &PendingFile,
        mut ahead: Option<Prefetch>,
    ) -> FileOutcome {
        let table = self.target.tables()[&file.object.table].clone();
        let mut attempt = 0;
        // A full-load file goes straight into its table unless it turns out it cannot.
        let mut direct_allowed = file.object.kind.is_load();
        loop {
            attempt += 1;
            let started = Instant::now();
            let id = match self.target.next_delivery_id().await {
                Ok(id) => id,
                Err(e) => {
                    let err = AttemptError::Target(e);
                    if attempt < self.settings.retry.attempts && err.is_retryable() {
                        self.retry_later(&file.info.key, 0, attempt, &err).await;
                        continue;
                    }
                    return self.failed(0, file, &table, err, false).await;
                }
            };
            info!(
                "Delivery {id}: process_{} {}.",
                file.object.schema, file.info.key
            );
            let mut plan = self.plan_for(id, file, &table, direct_allowed);
            // Only the first attempt uses what was decoded ahead; a retry reads the file again.
            let result = self
                .attempt(session, &mut plan, &file.object, ahead.take())
                .await;
            if matches!(&result, Err(e) if e.is_retryable()) {
                // The connection may be gone: the next attempt starts a new session.
                if let Some(old) = session.take() {
                    self.target.close_session(old).await;
                }
            }
            match result {
                Ok((result, bytes)) => {
                    self.announce(&plan, &result).await;
                    return self.delivered(plan, result, bytes, started.elapsed());
                }
                Err(AttemptError::Target(TargetError::Busy(_))) => {
                    info!(
                        "Delivery {id}: another loader is delivering {} now; leaving the stream to it.",
                        table.name
                    );
                    return FileOutcome::LeftToAnother;
                }
                Err(AttemptError::Target(TargetError::NeedsStaging(_))) => {
                    info!(
                        "Delivery {id}: the full load repeats a key, meets an existing one or has a delete; applying it through staging."
                    );
                    direct_allowed = false;
                    attempt -= 1;
                }
                Err(AttemptError::Target(TargetError::AlreadyDelivered(_))) => {
                    info!(
                        "Delivery {id}: {} was delivered by another loader.",
                        plan.key
                    );
                    return FileOutcome::AlreadyDelivered;
                }
                Err(err) if err.is_retryable() && attempt < self.settings.retry.attempts => {
                    self.retry_later(&plan.key, id, attempt, &err).await;
                }
                Err(err) => {
                    let record = !err.is_retryable();
                    return self.failed(id, file, &table, err, record).await;
                }
            }
        }
    }

    /// A delivery of `file` starting now.
    fn plan_for(
        &self,
        id: i64,
        file: &PendingFile,
        table: &Arc<TableSpec>,
        direct_allowed: bool,
    ) -> DeliveryPlan {
        DeliveryPlan {
            id,
            key: file.info.key.clone(),
            etag: file.info.etag.clone(),
            size: file.info.size,
            table: table.clone(),
            kind: if file.object.kind.is_load() {
                "LOAD"
            } else {
                "CDC"
            },
            started_at: chrono::Utc::now(),
            notification: self.settings.notification.clone(),
            direct_allowed,
        }
    }

    async fn retry_later(&self, key: &str, id: i64, attempt: u32, err: &AttemptError) {
        let wait = self.settings.retry.backoff(attempt);
        self.metrics.errors.with_label_values(&[err.kind()]).inc();
        warn!(
            "Delivery {id}: attempt {attempt} failed, retrying in {:.1}s: {}",
            wait.as_secs_f64(),
            err.describe(key)
        );
        tokio::time::sleep(wait).await;
    }

    /// Logs the counts and what became of the change notification.
    async fn announce(&self, plan: &DeliveryPlan, result: &DeliveryResult) {
        let id = plan.id;
        let c = result.counts;
        info!(
            "Delivery {id}: {} (create: {}, amend: {}, remove: {}).",
            plan.table.name, c.creates, c.amends, c.removes
        );
        if self.settings.dry_run {
            info!(
                "Delivery {id}: dry run: {} rows would apply ({} keys unchanged); rolled back, nothing persisted.",
                result.rows, c.unchanged
            );
            return;
        }
        info!("Delivery {id}: persisted to postgres.");
        if plan.notification.is_none() {
            return;
        }
        if !c.changed() {
            info!("Delivery {id}: no net change, no message to publish.");
            return;
        }
        let Some(relay) = &self.relay else {
            info!("Delivery {id}: message written to the outbox.");
            return;
        };
        relay.wake();
        if relay.wait_published(id, self.settings.publish_wait).await {
            info!("Delivery {id}: messages published.");
        } else {
            warn!("Delivery {id}: NATS has not acknowledged the message yet; it waits in the outbox and goes out when NATS answers.");
        }
    }

    fn delivered(
        &self,
        plan: DeliveryPlan,
        result: DeliveryResult,
        bytes: u64,
        elapsed: Duration,
    ) -> FileOutcome {
        let id = plan.id;
        let table = &plan.table.name;
        let c = result.counts;
        let status = if self.settings.dry_run {
            "dry_run"
        } else {
            "success"
        };
        self.metrics
            .record_delivery(table, status, &c, bytes, elapsed.as_secs_f64());
        if !self.settings.dry_run {
            info!("Delivery {id}: prometheus counters incremented.");
        }
        info!(
            "Delivery {id}: processed ({} seconds).",
            format_elapsed(elapsed)
        );
        FileOutcome::Delivered(Delivered {
            id,
            key: plan.key,
            table: table.clone(),
            result,
        })
    }

    async fn failed(
        &self,
        id: i64,
        file: &PendingFile,
        table: &Arc<TableSpec>,
        err: AttemptError,
        record: bool,
    ) -> FileOutcome {
        let message = err.describe(&file.info.key);
        let retryable = err.is_retryable();
        self.metrics.errors.with_label_values(&[err.kind()]).inc();
        self.metrics
            .deliveries
            .with_label_values(&[&table.name, "error"])
            .inc();
        error!("Delivery {id}: failed: {message}");
        if record && !self.settings.dry_run {
            let plan = self.plan_for(id, file, table, false);
            match self.target.record_failure(&plan, &message).await {
                Ok(()) => info!(
                    "Delivery {id}: recorded as ERROR; stream {} stops at this file.",
                    table.name
                ),
                Err(e) => error!("Delivery {id}: could not record the failure: {e}"),
            }
        } else if retryable {
            warn!(
                "Delivery {id}: {} stays pending and will be tried again.",
                file.info.key
            );
        }
        FileOutcome::Failed(Failed {
            id,
            key: file.info.key.clone(),
            table: table.name.clone(),
            error: message,
            retryable,
        })
    }

    /// The decoding thread's job for `object` (`id`: the delivery, `None` when decoding ahead).
    fn decode_job(
        &self,
        key: &str,
        id: Option<i64>,
        size: u64,
        object: &DmsObject,
        spec: Arc<TableSpec>,
        bytes_read: &Arc<AtomicU64>,
    ) -> DecodeJob {
        DecodeJob {
            key: key.to_string(),
            id,
            size,
            gzip: matches!(object.compression, dms::Compression::Gzip),
            op_column: object.kind.op_column(),
            spec,
            chunk_bytes: self.settings.chunk_bytes,
            bytes_read: bytes_read.clone(),
        }
    }

    /// Starts reading and decoding `file` ahead of its turn, when the Target can say now how it
    /// will want it (change files). `None` if not, or if the bucket does not answer now (the
    /// file is then read when its turn comes, with the usual retries).
    async fn prefetch(&self, file: &PendingFile) -> Option<Prefetch> {
        if file.object.kind.is_load() {
            return None;
        }
        let table = self.target.tables().get(&file.object.table)?.clone();
        let encoding = self.target.cdc_encoding(&table)?;
        let body = self.source.open(&file.info.key).await.ok()?;
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::channel::<Chunk>(4);
        let (encoding_tx, encoding_rx) = oneshot::channel::<Encoding>();
        let _ = encoding_tx.send(encoding);
        let job = self.decode_job(
            &file.info.key,
            None,
            body.size.max(file.info.size),
            &file.object,
            table,
            &body.bytes_read,
        );
        let reader = SyncIoBridge::new(body.reader);
        tokio::task::spawn_blocking(move || job.run(reader, encoding_rx, tx));
        // The tuples go to a temporary file (memory stays bounded whatever the file size).
        let stop = cancel.clone();
        let tape = tokio::task::spawn_blocking(move || -> std::io::Result<Tape> {
            let mut data = std::io::BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?);
            let mut tail = Vec::new();
            while let Some(chunk) = rx.blocking_recv() {
                if stop.load(Ordering::Relaxed) {
                    return Err(std::io::Error::other("cancelled"));
                }
                match chunk {
                    Chunk::Data(bytes) => data.write_all(&bytes)?,
                    other => tail.push(other),
                }
            }
            let data = data.into_inner().map_err(|e| e.into_error())?;
            Ok(Tape { data, tail })
        });
        Some(Prefetch {
            encoding,
            etag: body.etag,
            size: body.size,
            bytes_read: body.bytes_read,
            cancel,
            tape,
        })
    }

    /// One attempt: stream the object through the decoder into the Target's transaction (or
    /// play what was decoded ahead). Returns the result and the compressed bytes read.
    async fn attempt(
        &self,
        session: &mut Option<T::Session>,
        plan: &mut DeliveryPlan,
        object: &DmsObject,
        ahead: Option<Prefetch>,
    ) -> Result<(DeliveryResult, u64), AttemptError> {
        if let Some(ahead) = ahead {
            if let Some(played) = self.play(session, plan, ahead).await {
                return played;
            }
        }
        let body = self
            .source
            .open(&plan.key)
            .await
            .map_err(AttemptError::Source)?;
        if !body.etag.is_empty() {
            plan.etag = body.etag.clone();
        }
        if body.size > 0 {
            plan.size = body.size;
        }
        let (tx, rx) = mpsc::channel::<Chunk>(4);
        let (layout_tx, layout_rx) = oneshot::channel::<Encoding>();
        let bytes_read = body.bytes_read.clone();
        let job = self.decode_job(
            &plan.key,
            Some(plan.id),
            plan.size,
            object,
            plan.table.clone(),
            &bytes_read,
        );
        let reader = SyncIoBridge::new(body.reader);
        let decoder = tokio::task::spawn_blocking(move || job.run(reader, layout_rx, tx));
        let result = self.apply(session, plan, layout_tx, rx).await;
        // The decoder ends on its own once the channel is closed.
        let _ = decoder.await;
        let result = result.map_err(AttemptError::Target)?;
        Ok((result, bytes_read.load(Ordering::Relaxed)))
    }

    /// Applies a file decoded ahead; `None` if the decoding ahead did not finish (then the file is
    /// read again).
    async fn play(
        &self,
        session: &mut Option<T::Session>,
        plan: &mut DeliveryPlan,
        mut ahead: Prefetch,
    ) -> Option<Result<(DeliveryResult, u64), AttemptError>> {
        let tape = (&mut ahead.tape).await.ok()?.ok()?;
        let (encoding, bytes_read) = (ahead.encoding, ahead.bytes_read.clone());
        if !ahead.etag.is_empty() {
            plan.etag = std::mem::take(&mut ahead.etag);
        }
        if ahead.size > 0 {
            plan.size = ahead.size;
        }
        let (tx, rx) = mpsc::channel::<Chunk>(4);
        let (layout_tx, layout_rx) = oneshot::channel::<Encoding>();
        let chunk_bytes = self.settings.chunk_bytes;
        let player =
            tokio::task::spawn_blocking(move || tape.play(encoding, layout_rx, tx, chunk_bytes));
        let result = self.apply(session, plan, layout_tx, rx).await;
        let _ = player.await;
        Some(
            result
                .map(|r| (r, bytes_read.load(Ordering::Relaxed)))
                .map_err(AttemptError::Target),
        )
    }

    /// The Target's apply in the stream's session (opened on first use).
    async fn apply(
        &self,
        session: &mut Option<T::Session>,
        plan: &DeliveryPlan,
        layout_tx: oneshot::Sender<Encoding>,
        rx: mpsc::Receiver<Chunk>,
    ) -> Result<DeliveryResult, TargetError> {
        match session {
            Some(s) => self.target.apply(s, plan, layout_tx, rx).await,
            None => match self.target.open_session().await {
                Ok(s) => {
                    self.target
                        .apply(session.insert(s), plan, layout_tx, rx)
                        .await
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Service mode: poll until `stop` turns true; no sleep while files are pending.
    /// One-shot mode: drain every pending file and return the totals.
    /// Runs as configured: in service mode, passes until `stop`, sleeping when idle; in one-shot
    /// mode, passes until nothing more is delivered; in a dry run (either mode), exactly one
    /// pass, then everything is rolled back.
    pub async fn run_until_stopped(&self, stop: watch::Receiver<bool>) -> RunSummary {
        let summary = self.run_passes(stop).await;
        self.target.finish().await;
        summary
    }

    async fn run_passes(&self, mut stop: watch::Receiver<bool>) -> RunSummary {
        let dry_run = self.settings.dry_run;
        let service = self.settings.run_as_service && !dry_run;
        let mut summary = RunSummary::default();
        let mut attempts_without_listing = 0u32;
        loop {
            if *stop.borrow() {
                info!("Stop requested: leaving after the current deliveries.");
                return summary;
            }
            let pass = tokio::select! {
                pass = self.poll_once() => pass,
                _ = stop.changed() => continue,
            };
            let busy = match pass {
                Ok(outcome) => {
                    attempts_without_listing = 0;
                    let progressed = !outcome.delivered.is_empty();
                    summary.add(&outcome, !service);
                    if dry_run || (!service && !progressed) {
                        return summary;
                    }
                    progressed
                }
                Err(e) => {
                    attempts_without_listing += 1;
                    self.metrics
                        .errors
                        .with_label_values(&[match &e {
                            LoaderError::Source(_) => "source",
                            LoaderError::Target(_) => "target",
                        }])
                        .inc();
                    error!("Polling failed: {e}");
                    if !service
                        && (!e.is_retryable()
                            || attempts_without_listing >= self.settings.retry.attempts)
                    {
                        summary.failed.push(Failed {
                            id: 0,
                            key: String::new(),
                            table: String::new(),
                            error: e.to_string(),
                            retryable: e.is_retryable(),
                        });
                        return summary;
                    }
                    if !service {
                        let wait = self.settings.retry.backoff(attempts_without_listing);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    false
                }
            };
            if busy {
                continue;
            }
            let wait = self.sleep_time();
            info!(
                "Nothing pending: sleeping {:.1} seconds.",
                wait.as_secs_f64()
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// A random time in [MIN_SLEEP, MAX_SLEEP].
    pub fn sleep_time(&self) -> Duration {
        let (lo, hi) = (self.settings.min_sleep, self.settings.max_sleep);
        if hi <= lo {
            return lo;
        }
        rand::rng().random_range(lo..=hi)
    }
}

/// `H:MM:SS.ffffff`, as Python prints a timedelta.
pub fn format_elapsed(d: Duration) -> String {
    let micros = d.as_micros();
    let secs = micros / 1_000_000;
    format!(
        "{}:{:02}:{:02}.{:06}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        micros % 1_000_000
    )
}

/// A change file being read and decoded ahead of its turn. Dropping it cancels the decoding.
struct Prefetch {
    encoding: Encoding,
    etag: String,
    size: u64,
    bytes_read: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    tape: tokio::task::JoinHandle<std::io::Result<Tape>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// What a decoder sent, kept for later: the tuples in a temporary file, then the rest (the
/// set-aside inserts, and `End` or `Failed`) as sent.
struct Tape {
    data: std::fs::File,
    tail: Vec<Chunk>,
}

impl Tape {
    /// Runs on a blocking thread: sends the tuples in chunks of `chunk_bytes`, then the rest, as
    /// the decoder would have; a Target asking for another encoding gets a retryable failure.
    fn play(
        mut self,
        encoding: Encoding,
        asked: oneshot::Receiver<Encoding>,
        tx: mpsc::Sender<Chunk>,
        chunk_bytes: usize,
    ) {
        let Ok(asked) = asked.blocking_recv() else {
            return;
        };
        if asked != encoding {
            let _ = tx.blocking_send(Chunk::Failed(ChunkFailure {
                message: "the file was decoded ahead for another table layout".into(),
                retryable: true,
                needs_staging: false,
            }));
            return;
        }
        match send_file(&mut self.data, chunk_bytes, &tx) {
            Ok(true) => {
                for chunk in self.tail {
                    if tx.blocking_send(chunk).is_err() {
                        return;
                    }
                }
            }
            Ok(false) => {}
            Err(e) => {
                let _ = tx.blocking_send(Chunk::Failed(ChunkFailure {
                    message: format!("reading the file decoded ahead back from TMPDIR: {e}"),
                    retryable: true,
                    needs_staging: false,
                }));
            }
        }
    }
}

/// Everything the decoding thread needs.
struct DecodeJob {
    key: String,
    /// The delivery, for progress lines; `None` when decoding ahead (quiet).
    id: Option<i64>,
    size: u64,
    gzip: bool,
    op_column: OpColumn,
    spec: Arc<TableSpec>,
    chunk_bytes: usize,
    bytes_read: Arc<AtomicU64>,
}

/// A reader that remembers whether the bucket's stream itself failed (a transient fault), as
/// opposed to the bytes being bad (gzip or CSV errors).
struct WatchedReader<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for WatchedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }
}

impl DecodeJob {
    /// Runs on a blocking thread: bucket bytes -> gzip -> CSV -> binary COPY tuples -> channel.
    fn run<R: Read>(
        self,
        reader: R,
        encoding: oneshot::Receiver<Encoding>,
        tx: mpsc::Sender<Chunk>,
    ) {
        // The Target decides, inside its transaction, which table the tuples are for.
        let Ok(encoding) = encoding.blocking_recv() else {
            return;
        };
        let source_failed = Arc::new(AtomicBool::new(false));
        let watched = WatchedReader {
            inner: reader,
            failed: source_failed.clone(),
        };
        let buffered = BufReader::with_capacity(256 * 1024, watched);
        let input: Box<dyn Read> = if self.gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        let mut scanner = CsvScanner::new(input);
        let result = self.decode(&mut scanner, encoding, &tx);
        let message = match result {
            Ok(Some(summary)) => Chunk::End(summary),
            // The receiver is gone: the transaction failed and says why.
            Ok(None) => return,
            Err(DecodeError::NeedsStaging { line }) => Chunk::Failed(ChunkFailure {
                message: format!("{}: line {line}: a delete in a full load", self.key),
                retryable: false,
                needs_staging: true,
            }),
            Err(e) => {
                let retryable =
                    source_failed.load(Ordering::Relaxed) || matches!(e, DecodeError::Spill(_));
                let message = match &e {
                    DecodeError::Io(io) if retryable => {
                        format!("{}: reading from the bucket failed: {io}", self.key)
                    }
                    DecodeError::Io(io) => format!(
                        "{}: line {}: not a valid gzip stream ({io})",
                        self.key,
                        scanner.line()
                    ),
                    other => format!("{}: {other}", self.key),
                };
                Chunk::Failed(ChunkFailure {
                    message,
                    retryable,
                    needs_staging: false,
                })
            }
        };
        let _ = tx.blocking_send(message);
    }

    fn decode<R: Read>(
        &self,
        scanner: &mut CsvScanner<R>,
        encoding: Encoding,
        tx: &mpsc::Sender<Chunk>,
    ) -> Result<Option<StreamSummary>, DecodeError> {
        let mut record = RawRecord::new();
        let mut decoder = RowDecoder::new(self.spec.clone(), self.op_column);
        decoder.set_layout(encoding.layout);
        let mut split = if encoding.split_inserts {
            Some(InsertSplit::new(&self.spec).map_err(DecodeError::Spill)?)
        } else {
            None
        };
        let mut buf: Vec<u8> = Vec::with_capacity(self.chunk_bytes + 64 * 1024);
        let mut summary = StreamSummary::default();
        while scanner.next_record(&mut record)? {
            summary.rows += 1;
            let mark = buf.len();
            let row = decoder.decode(&record, summary.rows as i64, &mut buf)?;
            if let Some(split) = split.as_mut() {
                if split
                    .route(row.op, &buf[mark..])
                    .map_err(DecodeError::Spill)?
                {
                    buf.truncate(mark);
                }
            }
            if let Some(e) = row.event_id {
                summary.max_event_id = Some(summary.max_event_id.map_or(e, |m| m.max(e)));
            }
            if buf.len() >= self.chunk_bytes {
                let full =
                    std::mem::replace(&mut buf, Vec::with_capacity(self.chunk_bytes + 64 * 1024));
                if tx.blocking_send(Chunk::Data(Bytes::from(full))).is_err() {
                    return Ok(None);
                }
            }
            if let (Some(id), true) = (self.id, summary.rows % 10_000 == 0) {
                let read = self.bytes_read.load(Ordering::Relaxed).max(1);
                let estimate = if read >= self.size {
                    summary.rows
                } else {
                    (summary.rows as f64 * self.size as f64 / read as f64) as u64
                };
                info!(
                    "Delivery {}: processed {}/{}...",
                    id,
                    summary.rows,
                    estimate.max(summary.rows)
                );
            }
        }
        if !buf.is_empty() && tx.blocking_send(Chunk::Data(Bytes::from(buf))).is_err() {
            return Ok(None);
        }
        if let Some(split) = split {
            if let Some(inserts) = split.finish().map_err(DecodeError::Spill)? {
                if tx.blocking_send(Chunk::Inserts(inserts)).is_err() {
                    return Ok(None);
                }
            }
        }
        Ok(Some(summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_prints_like_a_python_timedelta() {
        assert_eq!(
            format_elapsed(Duration::from_micros(46_061)),
            "0:00:00.046061"
        );
        assert_eq!(
            format_elapsed(Duration::from_secs(3723) + Duration::from_micros(5)),
            "1:02:03.000005"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
    }
}
