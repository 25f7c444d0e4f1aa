//! The `Loader`: asks the Target what it has delivered, asks the Source what there is, and
//! delivers each pending file of each table stream, in order, one transaction per file.
//!
//! [`Loader::poll_once`] is one pass over the bucket (tests call it directly);
//! [`Loader::run_until_stopped`] loops around it in service mode, or drains once in one-shot
//! mode.

mod deliver;
mod discovery;
mod events;
mod outcome;
mod read;
mod reload;
mod service;
mod settings;

pub use discovery::{Stopped, StreamStatus};
pub use outcome::{Delivered, Failed, LoaderError, Outcome, RunSummary};
pub use service::{format_elapsed, Waker};
pub use settings::{
    CsvOptions, LateFilePolicy, LoaderSettings, ReloadPolicy, RetryPolicy, SchemaDriftPolicy,
};

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tracing::warn;

use crate::metrics::Metrics;
use crate::notifier::RelayHandle;
use crate::source::{display_key, Source};
use crate::target::Target;
use events::{Event, LateFileFound};
use outcome::{FileOutcome, PendingFile};
use read::Prefetch;

/// The loader: one per process.
pub struct Loader<S: Source, T: Target> {
    source: Arc<S>,
    target: Arc<T>,
    metrics: Arc<Metrics>,
    settings: LoaderSettings,
    relay: Option<RelayHandle>,
    warned: Mutex<HashSet<String>>,
    discovery: tokio::sync::Mutex<discovery::Discovery>,
    status: watch::Sender<BTreeMap<String, StreamStatus>>,
    wake: Arc<Notify>,
    progress: tokio::sync::broadcast::Sender<Progress>,
    passes: std::sync::atomic::AtomicU64,
    /// A stop was requested: the deliveries in hand finish, no new file starts.
    stopping: std::sync::atomic::AtomicBool,
}

/// What the loader is doing, as it happens (for runs and their callers; see [`Loader::progress`]).
#[derive(Clone, Debug)]
pub enum Progress {
    /// Pass number `pass` started (its discovery is next).
    PassStarted {
        pass: u64,
    },
    /// A file's delivery started.
    FileStarted {
        table: String,
        key: String,
        delivery_id: i64,
    },
    Delivered(Delivered),
    Failed(Failed),
    /// Pass `pass` ended (`ok`: it could list the bucket and read the ledger): the streams
    /// stopped at a failed file (key, reason).
    PassFinished {
        pass: u64,
        ok: bool,
        blocked: Vec<(String, String)>,
    },
}

impl<S: Source, T: Target> Loader<S, T> {
    pub fn new(source: S, target: T, metrics: Arc<Metrics>, settings: LoaderSettings) -> Self {
        Loader {
            source: Arc::new(source),
            target: Arc::new(target),
            metrics,
            relay: None,
            warned: Mutex::new(HashSet::new()),
            discovery: tokio::sync::Mutex::new(
                discovery::Discovery::new(settings.full_list_interval)
                    .watch_dated_folders(settings.date_folders)
                    .cdc_path(settings.cdc_path.clone())
                    .day_folders(settings.day_folders.clone()),
            ),
            status: watch::channel(BTreeMap::new()).0,
            wake: Arc::new(Notify::new()),
            progress: tokio::sync::broadcast::channel(4096).0,
            passes: std::sync::atomic::AtomicU64::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            settings,
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

    /// One pass: finds what is pending (see [`discovery`]), and delivers every pending file of
    /// every stream in order (up to `parallelism` streams at once). A stream stops at its first
    /// failure.
    pub async fn poll_once(&self) -> Result<Outcome, LoaderError> {
        let pass = self
            .passes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let _ = self.progress.send(Progress::PassStarted { pass });
        let result = self.pass().await;
        let blocked = match &result {
            Ok(outcome) => outcome.blocked.clone(),
            Err(_) => Vec::new(),
        };
        let _ = self.progress.send(Progress::PassFinished {
            pass,
            ok: result.is_ok(),
            blocked,
        });
        result
    }

    async fn pass(&self) -> Result<Outcome, LoaderError> {
        let mut plan = {
            let mut discovery = self.discovery.lock().await;
            let plan = discovery
                .pass(
                    &*self.source,
                    self.target.tables(),
                    &*self.target,
                    !self.settings.dry_run,
                )
                .await?;
            self.publish_status(&discovery);
            plan
        };
        if let Some(only) = &self.settings.only_tables {
            plan.streams.retain(|table, _| only.contains(table));
            plan.stopped.retain(|s| only.contains(&s.table));
        }
        self.report_plan(&plan);
        let pending = plan.streams.values().map(Vec::len).sum();
        // A dry run works in one transaction on one connection: its streams take turns.
        let parallelism = if self.settings.dry_run {
            1
        } else {
            self.settings.parallelism.max(1)
        };
        let results: Vec<Vec<FileOutcome>> = futures::stream::iter(plan.streams.into_values())
            .map(|files| self.deliver_stream(files))
            .buffer_unordered(parallelism)
            .collect()
            .await;
        let mut outcome = Outcome {
            blocked: plan
                .stopped
                .into_iter()
                .map(|s| (s.key, s.reason))
                .collect(),
            pending,
            ..Outcome::default()
        };
        for file in results.into_iter().flatten() {
            match file {
                FileOutcome::Delivered(d) => outcome.delivered.push(d),
                FileOutcome::Failed(f) => outcome.failed.push(f),
                FileOutcome::LeftToAnother(table) => outcome.held.push(table),
                FileOutcome::AlreadyDelivered => {}
            }
        }
        outcome.held.sort();
        outcome.held.dedup();
        outcome.delivered.sort_by_key(|d| d.id);
        if !self.settings.dry_run {
            self.publish_status(&*self.discovery.lock().await);
        }
        Ok(outcome)
    }

    /// What the loader does, as it happens: passes, files started, delivered and failed.
    pub fn progress(&self) -> tokio::sync::broadcast::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The number of passes started so far.
    pub fn passes_started(&self) -> u64 {
        self.passes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One discovery pass, then the pending files of `tables` (all when `None`), per table in
    /// delivery order, a stopped stream's head first: what a run asked for now would deliver.
    pub async fn pending_files(
        &self,
        tables: Option<&std::collections::BTreeSet<String>>,
    ) -> Result<Vec<(String, String)>, LoaderError> {
        let discovery = self.discover().await?;
        let mut names: Vec<&String> = self
            .target
            .tables()
            .keys()
            .filter(|t| tables.is_none_or(|only| only.contains(*t)))
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .flat_map(|t| {
                discovery
                    .pending_keys(t)
                    .into_iter()
                    .map(move |k| (t.clone(), k))
            })
            .collect())
    }

    /// One discovery pass that delivers nothing: every stream's state as of now, from the bucket
    /// and the ledger (what the `status` command shows; the service's own state is
    /// [`Loader::streams`]).
    pub async fn survey(&self) -> Result<BTreeMap<String, StreamStatus>, LoaderError> {
        let _discovery = self.discover().await?;
        Ok(self.status.borrow().clone())
    }

    /// One discovery pass (the stream-head rule applied) that delivers nothing, its state
    /// published; the discovery is returned still locked, for a caller that reads more of it.
    async fn discover(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, discovery::Discovery>, LoaderError> {
        let mut discovery = self.discovery.lock().await;
        discovery
            .pass(&*self.source, self.target.tables(), &*self.target, true)
            .await?;
        self.publish_status(&discovery);
        Ok(discovery)
    }

    /// Logs and counts what discovery found beyond the pending files.
    fn report_plan(&self, plan: &discovery::Plan) {
        if plan.full {
            tracing::debug!(
                "Full listing: {} streams with pending files, {} stopped.",
                plan.streams.len(),
                plan.stopped.len()
            );
        }
        for (schema, table) in &plan.unknown_tables {
            self.warn_once(&format!("table:{schema}/{table}"), || {
                format!(
                    "Skipping table folder {}/{}: no such table in the target schema.",
                    display_key(schema),
                    display_key(table)
                )
            });
        }
        for key in &plan.unrecognized {
            let mut warned = self.warned.lock().expect("not poisoned");
            if warned.insert(format!("unrecognized:{key}")) {
                drop(warned);
                self.metrics.unrecognized_objects.inc();
                warn!(
                    "Ignoring {}: not a DMS file name (LOAD<hex>.csv.gz or <yyyymmdd-hhmmssfff>.csv.gz under <schema>/<table>/, optionally in date folders).",
                    display_key(key)
                );
            }
        }
        for (table, key) in &plan.late {
            LateFileFound { table, key }.emit(&self.metrics);
        }
        for stopped in &plan.stopped {
            let (key, id, reason) = (&stopped.key, stopped.delivery_id, &stopped.reason);
            let table = &stopped.table;
            self.warn_once(&format!("blocked:{key}:{id}"), || {
                format!(
                    "Stream {table} is stopped at {} (delivery {id} failed: {reason}); \
                     later files of {table} wait. Fix it, then run: {} (or: {}).",
                    display_key(key),
                    crate::status::retry_command(key),
                    crate::status::skip_command(key)
                )
            });
        }
    }

    /// Publishes every stream's state on the status channel and in the gauges.
    fn publish_status(&self, discovery: &discovery::Discovery) {
        let statuses = discovery.statuses();
        for (table, status) in &statuses {
            self.metrics
                .pending_files
                .with_label_values(&[table])
                .set(status.pending as i64);
            self.metrics
                .stream_stopped
                .with_label_values(&[table])
                .set(i64::from(status.stopped.is_some()));
        }
        self.status.send_replace(statuses);
    }

    /// Marks the delivery under way in a stream's published state.
    fn set_in_flight(&self, table: &str, id: Option<i64>) {
        self.status
            .send_if_modified(|streams| match streams.get_mut(table) {
                Some(s) if s.in_flight != id => {
                    s.in_flight = id;
                    true
                }
                _ => false,
            });
    }

    /// Every table stream's state, updated after each discovery and each pass.
    pub fn streams(&self) -> watch::Receiver<BTreeMap<String, StreamStatus>> {
        self.status.subscribe()
    }

    async fn deliver_stream(&self, files: Vec<PendingFile>) -> Vec<FileOutcome> {
        let mut outcomes = Vec::new();
        // The stream's lease first, before anything is read ahead: a stream another loader
        // holds is left to it at once. Any other error is met again, with its retries, by the
        // first delivery (which opens the session if it is not open).
        let mut session = None;
        if let Some(first) = files.first() {
            let table = self
                .target
                .table(&first.object.table)
                .expect("discovery lists only the target's tables");
            match self.target.open_session(&table).await {
                Ok(s) => session = Some(s),
                Err(crate::target::TargetError::Busy(name)) => {
                    tracing::info!(
                        table = %name,
                        "Another loader is delivering {name} now; leaving the stream to it."
                    );
                    return vec![FileOutcome::LeftToAnother(name)];
                }
                Err(_) => {}
            }
        }
        let mut ahead: Option<Prefetch> = None;
        for (i, file) in files.iter().enumerate() {
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let current = ahead.take();
            // The next change file is requested, read and decoded while this one is applied
            // (Postgres is the busy side then; the bucket's answer is not waited for first); a
            // stop below drops it, which cancels it.
            let next = async {
                match files.get(i + 1) {
                    Some(next) => self.prefetch(next).await,
                    None => None,
                }
            };
            let (next, outcome) = futures::join!(next, self.deliver(&mut session, file, current));
            ahead = next;
            self.set_in_flight(&file.object.table, None);
            match &outcome {
                FileOutcome::Delivered(d) => {
                    let _ = self.progress.send(Progress::Delivered(d.clone()));
                }
                FileOutcome::Failed(f) => {
                    if !f.retryable && !self.settings.dry_run {
                        self.discovery
                            .lock()
                            .await
                            .stop_at(&file.object, f.id, &f.error);
                    }
                    let _ = self.progress.send(Progress::Failed(f.clone()));
                }
                FileOutcome::LeftToAnother(_) | FileOutcome::AlreadyDelivered => {}
            }
            if matches!(
                outcome,
                FileOutcome::Delivered(_) | FileOutcome::AlreadyDelivered
            ) && !self.settings.dry_run
            {
                self.discovery.lock().await.settle(file);
            }
            // A real run stops the stream at a failed file. A dry run goes on, so every pending
            // file is checked once, the later ones against the effect of the files that applied.
            let stop = match outcome {
                FileOutcome::Failed(_) => !self.settings.dry_run,
                FileOutcome::LeftToAnother(_) => true,
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
}
