//! [`Runs`]: starts runs, follows the service loop's progress to move their steps along, closes
//! them, stores every change in `loader_runs` and publishes it on NATS.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use super::{BadRequest, Run, RunMode, RunRequest, RunStatus, Step, StepCounts, StepStatus};
use crate::config::Config;
use crate::loader::{Loader, Progress};
use crate::metrics::Metrics;
use crate::source::S3Source;
use crate::target::{DeliveryStatus, PgTarget, Target, TargetError};

type ServiceLoader = Loader<S3Source, PgTarget>;

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    BadRequest(#[from] BadRequest),
    #[error("cannot list the pending files: {0}")]
    Loader(String),
    #[error("{0}")]
    Target(#[from] TargetError),
}

/// A `once` run the loop is carrying out.
struct Active {
    run: Run,
    /// The first pass that started after the run: its end closes the run.
    covering: Option<u64>,
    /// A trigger message's reply subject: gets the run when it ends.
    reply: Option<String>,
}

struct Inner {
    loader: Arc<ServiceLoader>,
    config: Config,
    nats: Option<async_nats::Client>,
    /// `<datasource>.meta.<process>.run`.
    subject: String,
    active: Mutex<Vec<Active>>,
    progress: Mutex<Option<broadcast::Receiver<Progress>>>,
}

/// The runs of this process (cheap to clone).
#[derive(Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

fn counts(d: &crate::loader::Delivered) -> StepCounts {
    StepCounts {
        rows: d.result.rows,
        creates: d.result.counts.creates,
        amends: d.result.counts.amends,
        removes: d.result.counts.removes,
        unchanged: d.result.counts.unchanged,
    }
}

impl Runs {
    /// Follows `loader` (subscribes to its progress now, so nothing is missed).
    pub fn new(
        loader: Arc<ServiceLoader>,
        config: Config,
        nats: Option<async_nats::Client>,
    ) -> Self {
        let subject = format!(
            "{}.meta.{}.run",
            config.notification_datasource, config.notification_process
        );
        let progress = loader.progress();
        Runs {
            inner: Arc::new(Inner {
                loader,
                config,
                nats,
                subject,
                active: Mutex::new(Vec::new()),
                progress: Mutex::new(Some(progress)),
            }),
        }
    }

    /// Wakes the service loop (an operator's retry or skip takes effect at once).
    pub fn wake(&self) {
        self.inner.loader.waker().wake();
    }

    /// The subject every change of a run is published on.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The replicated tables.
    pub fn tables(&self) -> BTreeSet<String> {
        self.inner
            .loader
            .target()
            .tables()
            .keys()
            .cloned()
            .collect()
    }

    pub fn target(&self) -> &PgTarget {
        self.inner.loader.target()
    }

    /// Starts a run: its steps are the files pending now in its tables; a `once` run wakes the
    /// loop, a `dry_run` run validates them in a dry-run loader of its own. Returns the run as
    /// stored (`IN_PROGRESS`).
    pub async fn start(&self, request: RunRequest, reply: Option<String>) -> Result<Run, RunError> {
        let pending = self
            .inner
            .loader
            .pending_files(request.tables.as_ref())
            .await
            .map_err(|e| RunError::Loader(e.to_string()))?;
        let now = Utc::now();
        let run = Run {
            run_id: uuid::Uuid::new_v4().to_string(),
            name: request.name,
            status: RunStatus::InProgress,
            mode: request.mode,
            tables: request.tables.map(|t| t.into_iter().collect()),
            trigger: request.trigger,
            created_at: now,
            updated_at: now,
            finished_at: None,
            steps: pending
                .into_iter()
                .map(|(table, key)| Step {
                    name: key,
                    table,
                    status: StepStatus::Pending,
                    counts: None,
                    error: None,
                    delivery_id: None,
                })
                .collect(),
        };
        self.inner.target().save_run(&run).await?;
        info!(
            "Run {}: started ({} mode, {} files){}.",
            run.run_id,
            run.mode.as_str(),
            run.steps.len(),
            run.name
                .as_ref()
                .map(|n| format!(", name {n:?}"))
                .unwrap_or_default()
        );
        self.inner.publish(&run, None).await;
        self.carry_out(run.clone(), reply);
        Ok(run)
    }

    fn carry_out(&self, run: Run, reply: Option<String>) {
        match run.mode {
            RunMode::Once => {
                self.inner
                    .active
                    .lock()
                    .expect("not poisoned")
                    .push(Active {
                        run,
                        covering: None,
                        reply,
                    });
                self.inner.loader.waker().wake();
            }
            RunMode::DryRun => {
                let inner = self.inner.clone();
                tokio::spawn(async move { inner.dry_run(run, reply).await });
            }
        }
    }

    /// Finishes the runs a stopped process left in progress.
    pub async fn resume(&self) {
        match self.inner.target().runs_in_progress().await {
            Ok(runs) => {
                for run in runs {
                    info!("Run {}: resumed after a restart.", run.run_id);
                    self.carry_out(run, None);
                }
            }
            Err(e) => warn!("Cannot read the runs left in progress: {e}"),
        }
    }

    /// Follows the loop until `stop`: moves steps along and closes runs.
    pub async fn follow(self, mut stop: watch::Receiver<bool>) {
        let Some(mut progress) = self.inner.progress.lock().expect("not poisoned").take() else {
            return;
        };
        loop {
            let event = tokio::select! {
                event = progress.recv() => event,
                _ = crate::events::until_stopped(&mut stop) => return,
            };
            match event {
                Ok(event) => self.inner.on(event).await,
                // Missed events: the run's end checks every open step in the ledger anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

impl Inner {
    fn target(&self) -> &PgTarget {
        self.loader.target()
    }

    async fn publish(&self, run: &Run, reply: Option<&str>) {
        let Some(nats) = &self.nats else { return };
        let payload = bytes::Bytes::from(serde_json::to_vec(run).expect("a run serializes"));
        for subject in std::iter::once(self.subject.as_str()).chain(reply) {
            if let Err(e) = nats.publish(subject.to_string(), payload.clone()).await {
                warn!(
                    "Run {}: cannot publish its status on {subject}: {e}",
                    run.run_id
                );
            }
        }
    }

    async fn save_and_publish(&self, changed: Vec<(Run, Option<String>)>) {
        for (run, reply) in changed {
            if let Err(e) = self.target().save_run(&run).await {
                warn!("Run {}: cannot store its status: {e}", run.run_id);
            }
            self.publish(&run, reply.as_deref()).await;
        }
    }

    /// Applies one progress event to the active runs.
    async fn on(&self, event: Progress) {
        let mut changed = Vec::new();
        let mut closing = Vec::new();
        {
            let mut active = self.active.lock().expect("not poisoned");
            match &event {
                Progress::PassStarted { pass } => {
                    for a in active.iter_mut().filter(|a| a.covering.is_none()) {
                        a.covering = Some(*pass);
                    }
                }
                Progress::PassFinished { pass, ok, .. } => {
                    let mut i = 0;
                    while i < active.len() {
                        if active[i].covering == Some(*pass) {
                            if *ok {
                                closing.push(active.remove(i));
                                continue;
                            }
                            // The pass could not list or read the ledger: the next one covers it.
                            active[i].covering = None;
                        }
                        i += 1;
                    }
                }
                _ => {
                    for a in active.iter_mut().filter(|a| a.covering.is_some()) {
                        if a.apply(&event) {
                            changed.push((a.run.clone(), None));
                        }
                    }
                }
            }
        }
        self.save_and_publish(changed).await;
        if let Progress::PassFinished { blocked, .. } = &event {
            for a in closing {
                self.close(a, blocked).await;
            }
        }
    }

    /// Ends a run: each step the run did not see end is looked up in the ledger.
    async fn close(&self, mut a: Active, blocked: &[(String, String)]) {
        let open: Vec<String> = a
            .run
            .steps
            .iter()
            .filter(|s| s.status.is_open())
            .map(|s| s.name.clone())
            .collect();
        let facts = match self.target().step_facts(&open).await {
            Ok(f) => f,
            Err(e) => {
                warn!(
                    "Run {}: cannot read the ledger to close it: {e}",
                    a.run.run_id
                );
                Default::default()
            }
        };
        for step in a.run.steps.iter_mut().filter(|s| s.status.is_open()) {
            match facts.get(&step.name) {
                Some(f) if f.status == DeliveryStatus::Success => {
                    step.status = StepStatus::Successful;
                    step.counts = Some(f.counts);
                    step.delivery_id = Some(f.delivery_id);
                }
                Some(f) if f.status == DeliveryStatus::Skipped => {
                    step.status = StepStatus::Failed;
                    step.error = Some(format!(
                        "skipped by an operator: {}",
                        f.error.clone().unwrap_or_default()
                    ));
                }
                Some(f) => {
                    step.status = StepStatus::Failed;
                    step.delivery_id = Some(f.delivery_id);
                    step.error = f.error.clone();
                }
                None => {
                    step.status = StepStatus::Failed;
                    let folder = format!("/{}/", step.table);
                    let stopped = blocked.iter().find(|(key, _)| key.contains(&folder));
                    step.error = Some(match stopped {
                        Some((key, _)) => format!(
                            "not delivered: stream {} is stopped at {key}",
                            step.table
                        ),
                        None => "not delivered in this run (another loader holds its stream, or a transient fault outlasted the retries); see `paper-engine-orders status`".into(),
                    });
                }
            }
        }
        a.run.close();
        info!(
            "Run {}: {} ({} of {} files delivered).",
            a.run.run_id,
            a.run.status.as_str(),
            a.run
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Successful)
                .count(),
            a.run.steps.len()
        );
        self.save_and_publish(vec![(a.run, a.reply)]).await;
    }

    /// A `dry_run` run: one pass of a dry-run loader over the run's tables, rolled back.
    async fn dry_run(&self, mut run: Run, reply: Option<String>) {
        let mut config = self.config.clone();
        config.dry_run = true;
        config.run_as_service = false;
        config.only_tables = run.tables.as_ref().map(|t| t.iter().cloned().collect());
        let outcome = match crate::app::build_loader(&config, Arc::new(Metrics::new())).await {
            Ok(loader) => {
                let outcome = loader.poll_once().await;
                loader.target().finish().await;
                outcome.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(outcome) => {
                for step in run.steps.iter_mut() {
                    if let Some(d) = outcome.delivered.iter().find(|d| d.key == step.name) {
                        step.status = StepStatus::Successful;
                        step.counts = Some(counts(d));
                    } else if let Some(f) = outcome.failed.iter().find(|f| f.key == step.name) {
                        step.status = StepStatus::Failed;
                        step.error = Some(f.error.clone());
                    } else if let Some((_, why)) =
                        outcome.blocked.iter().find(|(k, _)| *k == step.name)
                    {
                        step.status = StepStatus::Failed;
                        step.error = Some(why.clone());
                    } else {
                        step.status = StepStatus::Failed;
                        step.error = Some("not checked by the dry run (delivered meanwhile, or its stream is stopped before it)".into());
                    }
                }
            }
            Err(e) => {
                for step in run.steps.iter_mut() {
                    step.status = StepStatus::Failed;
                    step.error = Some(format!("the dry run could not run: {e}"));
                }
            }
        }
        run.close();
        info!("Run {}: dry run {}.", run.run_id, run.status.as_str());
        self.save_and_publish(vec![(run, reply)]).await;
    }
}

impl Active {
    /// Moves a step along; whether anything changed.
    fn apply(&mut self, event: &Progress) -> bool {
        let key = match event {
            Progress::FileStarted { key, .. } => key,
            Progress::Delivered(d) => &d.key,
            Progress::Failed(f) => &f.key,
            _ => return false,
        };
        let Some(step) = self
            .run
            .steps
            .iter_mut()
            .find(|s| &s.name == key && s.status.is_open())
        else {
            return false;
        };
        match event {
            Progress::FileStarted { delivery_id, .. } => {
                step.status = StepStatus::InProgress;
                step.delivery_id = Some(*delivery_id);
            }
            Progress::Delivered(d) => {
                step.status = StepStatus::Successful;
                step.counts = Some(counts(d));
                step.delivery_id = Some(d.id);
            }
            Progress::Failed(f) => {
                step.status = StepStatus::Failed;
                step.error = Some(f.error.clone());
            }
            _ => {}
        }
        self.run.updated_at = Utc::now();
        true
    }
}
