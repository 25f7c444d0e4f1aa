//! Wiring: builds the Source, Target and Loader from a [`Config`] and runs them.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::http;
use crate::loader::{Loader, LoaderSettings, RunSummary};
use crate::metrics::Metrics;
use crate::policy::Backoff;
use crate::source::S3Source;
use crate::source::Source;
use crate::startup::{Application, StartError};
use crate::target::Target;
use crate::target::{PgTarget, TargetError};

/// Process exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    /// A delivery failed, a stream is stopped at a bad file, or a component stayed unreachable.
    pub const FAILED: i32 = 1;
    /// The configuration is missing or malformed, or Postgres refuses it for good (a wrong
    /// password, no such role or database, no permission).
    pub const CONFIG: i32 = 2;
}

/// Logs why the loader could not start and returns the exit code: 2 when the bucket or Postgres
/// refused the configuration itself (retrying cannot help), 1 otherwise.
pub(crate) fn start_failure(e: &StartError) -> i32 {
    use crate::policy::{policy, source_kind, target_kind, ErrorKind};
    let kind = match e {
        StartError::Target(e) => target_kind(e),
        StartError::Bucket(e) => source_kind(e),
        StartError::Listen { .. } | StartError::Nats(_) => {
            error!("{e}");
            return exit::FAILED;
        }
    };
    let policy = policy(kind);
    error!("Cannot start: {e}. Next step: {}.", policy.solution);
    if matches!(kind, ErrorKind::AccessDenied | ErrorKind::SourceRefused) {
        exit::CONFIG
    } else {
        exit::FAILED
    }
}

/// Waits between tries to reach Postgres at start-up.
const CONNECT_BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(32));

/// Connects to Postgres (applying migrations), retrying while the failure is transient: for
/// ever in service mode, a few times in one-shot mode.
pub async fn connect_target(config: &Config) -> Result<PgTarget, TargetError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match PgTarget::connect(
            &config.target,
            &config.target_schema,
            config.parallelism + 2,
            config.dry_run,
        )
        .await
        {
            Ok(target) => return Ok(target),
            // Postgres refusing the configuration (AccessDenied) is transient for a delivery
            // (the file is not at fault) but final at start-up.
            Err(e)
                if e.is_retryable()
                    && crate::policy::target_kind(&e) != crate::policy::ErrorKind::AccessDenied
                    && ((config.run_as_service && !config.dry_run) || attempt < 5) =>
            {
                let wait = CONNECT_BACKOFF.delay(attempt);
                warn!(
                    "Cannot reach postgres (attempt {attempt}), retrying in {}s: {e}",
                    wait.as_secs()
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Builds the loader from the configuration.
pub async fn build_loader(
    config: &Config,
    metrics: Arc<Metrics>,
) -> Result<Loader<S3Source, PgTarget>, StartError> {
    let source = S3Source::new(&config.source).await;
    // A bucket that does not exist or refuses these credentials is a configuration error; one
    // that does not answer now is a fault the passes retry.
    if let Err(e) = Source::ping(&source).await {
        if e.is_retryable() {
            warn!("The bucket does not answer yet ({e}); the loader goes on and retries.");
        } else {
            return Err(StartError::Bucket(e));
        }
    }
    let target = connect_target(config).await?;
    info!(
        "Connected: bucket {} (path '{}'), postgres database {} (schema {}), tables: {}.",
        config.source.bucket,
        config.source.path,
        config.target.dbname(),
        config.target_schema,
        table_names(&target)
    );
    Ok(Loader::new(
        source,
        target,
        metrics,
        LoaderSettings::from_config(config),
    ))
}

/// Turns SIGINT and SIGTERM into a stop request on `stop`.
pub fn stop_on_signals(stop: watch::Sender<bool>) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("Signal received: stopping.");
        let _ = stop.send(true);
    });
}

/// The readiness probe: Postgres and the bucket both answer within [`http::READY_TIMEOUT`].
pub fn ready_check(
    target: Arc<std::sync::OnceLock<PgTarget>>,
    source: S3Source,
) -> http::ReadyCheck {
    Arc::new(move || {
        let target = target.clone();
        let source = source.clone();
        Box::pin(async move {
            let Some(target) = target.get() else {
                return Err("postgres: not connected yet".to_string());
            };
            let pg = tokio::time::timeout(http::READY_TIMEOUT, Target::ping(target));
            let s3 = tokio::time::timeout(http::READY_TIMEOUT, Source::ping(&source));
            let (pg, s3) = tokio::join!(pg, s3);
            let mut problems = Vec::new();
            match pg {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(e.to_string()),
                Err(_) => problems.push("postgres: no answer in time".to_string()),
            }
            match s3 {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(e.to_string()),
                Err(_) => problems.push("bucket: no answer in time".to_string()),
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        })
    })
}

/// Runs the loader as configured and returns the process exit code.
pub async fn run(config: Config) -> i32 {
    if !config.dms_settings.unknown.is_empty() {
        warn!(
            "DMS_SETTINGS: ignoring keys that are not DMS S3Settings: {}.",
            config.dms_settings.unknown.join(", ")
        );
    }
    if config.dms_settings.no_sup_without_value {
        warn!("DMS_SETTINGS: UseCsvNoSupValue is true without a CsvNoSupValue: DMS then writes NULL for a column it could not supply, which cannot be told from a NULL value, so such columns are written as NULL; set CsvNoSupValue on the endpoint (and here) to keep their values.");
    }
    if config.dry_run {
        info!(
            "paper-engine-orders {} starting: dry run: one validation pass over every pending file, then exit; nothing is persisted{}.",
            crate::VERSION,
            if config.run_as_service {
                " (a dry run is a validation, not a service: RUN_AS_SERVICE does not apply)"
            } else {
                ""
            }
        );
        return dry_run(config).await;
    }
    info!(
        "paper-engine-orders {} starting: {} mode{}.",
        crate::VERSION,
        if config.run_as_service {
            "service"
        } else {
            "one-shot"
        },
        if config.publishes() {
            ""
        } else {
            ", notifications off"
        },
    );
    let run_as_service = config.run_as_service;
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => return start_failure(&e),
    };
    stop_on_signals(app.stop_handle());
    let summary = app.run_until_stopped().await;
    if run_as_service {
        return exit::OK;
    }
    for (key, reason) in &summary.blocked {
        // The recorded reason starts with the key already.
        let reason = reason
            .strip_prefix(key.as_str())
            .and_then(|r| r.strip_prefix(": "))
            .unwrap_or(reason);
        error!(
            "Stopped at {key}: {reason}. Fix it, then run: {} (or: {}).",
            crate::status::retry_command(key),
            crate::status::skip_command(key)
        );
    }
    log_totals("Run summary", &summary);
    match summary.outbox_left {
        Some(0) => info!("Notifications: the outbox is empty, every message is published."),
        Some(left) => warn!(
            "Notifications: {left} messages are left in the outbox (NATS did not acknowledge them in time); the next run or the service publishes them, in order."
        ),
        None => {}
    }
    if summary.is_success() {
        info!(
            "Backfill complete: {} deliveries, nothing pending{}.",
            summary.delivered,
            if summary.failed.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} failed attempt(s) were delivered later in the run)",
                    summary.failed.len()
                )
            }
        );
        exit::OK
    } else {
        let unfinished = summary.unfinished.clone().unwrap_or_default();
        for line in &unfinished {
            error!("Not delivered: {line}.");
        }
        error!(
            "Backfill incomplete: {} deliveries; {} stream(s) with undelivered files{}.",
            summary.delivered,
            unfinished.len(),
            if summary.interrupted {
                "; the run was stopped before it ended"
            } else {
                ""
            }
        );
        exit::FAILED
    }
}

/// A dry run: one pass over every pending file, inside one transaction that is rolled back, then
/// the per-table summary. No HTTP server (a dry run is a command, not a service, and may run
/// beside one on the same port), no notifications. Exit 0 when every file would apply, 1 when any
/// would fail.
async fn dry_run(config: Config) -> i32 {
    let (stop_tx, stop) = watch::channel(false);
    stop_on_signals(stop_tx);
    let loader = match build_loader(&config, Arc::new(Metrics::new())).await {
        Ok(loader) => loader,
        Err(e) => return start_failure(&e),
    };
    let summary = loader.run_until_stopped(stop.clone()).await;
    log_totals("Dry run summary (what a real run would do)", &summary);
    let checked = summary.delivered + summary.failed.len();
    if *stop.borrow() {
        error!(
            "Dry run interrupted after {checked} files: the validation is incomplete; nothing persisted."
        );
        exit::FAILED
    } else if summary.failed.is_empty() {
        info!(
            "Dry run complete: {checked} files checked, every one would apply; nothing persisted."
        );
        exit::OK
    } else {
        error!(
            "Dry run complete: {checked} files checked, {} would fail (errors above); nothing persisted.",
            summary.failed.len()
        );
        exit::FAILED
    }
}

/// Logs the per-table totals of a run as an aligned table.
fn log_totals(title: &str, summary: &RunSummary) {
    if summary.totals.tables.is_empty() {
        return;
    }
    info!("{title}:");
    for line in summary.totals.lines() {
        info!("  {line}");
    }
}

fn table_names(target: &PgTarget) -> String {
    let mut names: Vec<&String> = Target::tables(target).keys().collect();
    names.sort();
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Generates the sample dataset and writes it to the bucket (created if missing). The generator
/// runs on a blocking thread; files are uploaded as they come, two at most in memory.
pub async fn upload_sample(
    source: &S3Source,
    spec: crate::sample::SampleSpec,
) -> Result<crate::sample::SampleManifest, crate::source::SourceError> {
    upload_sample_in(source, spec, crate::sample::FileDialect::default()).await
}

/// [`upload_sample`], the files written as a DMS endpoint with `dialect`'s settings writes them.
pub async fn upload_sample_in(
    source: &S3Source,
    spec: crate::sample::SampleSpec,
    dialect: crate::sample::FileDialect,
) -> Result<crate::sample::SampleManifest, crate::source::SourceError> {
    source.ensure_bucket().await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<crate::sample::SampleFile>(1);
    let generator = tokio::task::spawn_blocking(move || {
        crate::sample::generate_in(&spec, &dialect, |file| {
            tx.blocking_send(file).map_err(|_| ())
        })
    });
    let mut upload_error = None;
    while let Some(file) = rx.recv().await {
        if upload_error.is_some() {
            continue;
        }
        let summary = file.summary;
        match source.put(&summary.key, file.body).await {
            Ok(()) => info!(
                "Sample: wrote {} ({} rows, {} bytes).",
                summary.key, summary.rows, summary.bytes
            ),
            Err(e) => upload_error = Some(e),
        }
    }
    let manifest = generator.await.expect("the generator does not panic");
    if let Some(e) = upload_error {
        return Err(e);
    }
    Ok(manifest.expect("the sink only fails when uploads fail"))
}
