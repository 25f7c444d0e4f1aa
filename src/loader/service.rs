//! The loop around passes: service mode (sleep when idle, wake early on a hook), one-shot mode
//! (until nothing more is delivered) and the dry run (exactly one pass).
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use super::events::{Event, PassFailed};
use super::outcome::{Failed, LoaderError, Outcome, RunSummary};
use super::Loader;
use crate::source::Source;
use crate::target::Target;

/// Wakes a sleeping loader for an early pass (e.g. when a bucket notification says a file
/// arrived). A wake-up while the loader is busy makes its next sleep end at once.
#[derive(Clone)]
pub struct Waker(pub(crate) Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

impl<S: Source, T: Target> Loader<S, T> {
    /// Seeds the gauges that only the ledger knows after a restart: each table's last successful
    /// delivery. (The stream gauges follow from the start-up listing, the first pass.)
    pub async fn seed_metrics(&self) {
        match self.target.last_successes().await {
            Ok(last) => {
                for (table, at) in last {
                    self.metrics
                        .last_success
                        .with_label_values(&[&table])
                        .set(at.timestamp_micros() as f64 / 1e6);
                }
            }
            // Not fatal: the first pass reports Postgres being away, with its retries.
            Err(e) => tracing::debug!("Seeding the metrics from the ledger failed: {e}"),
        }
    }

    /// A handle that wakes this loader from its sleep between passes.
    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    /// Runs as configured: in service mode, passes until `stop`, sleeping when idle; in one-shot
    /// mode, passes until nothing more is delivered; in a dry run (either mode), exactly one
    /// pass, then everything is rolled back.
    pub async fn run_until_stopped(&self, stop: watch::Receiver<bool>) -> RunSummary {
        if !self.settings.dry_run {
            self.seed_metrics().await;
        }
        let summary = self.run_passes(stop).await;
        self.target.finish().await;
        summary
    }

    pub(crate) async fn run_passes(&self, stop: watch::Receiver<bool>) -> RunSummary {
        let mut summary = self.passes_until_done(stop).await;
        // A one-shot run ends with the ledger's word: is every file it found delivered?
        if !self.settings.run_as_service && !self.settings.dry_run {
            summary.unfinished = Some(self.unfinished(&summary).await);
        }
        summary
    }

    /// One pass, finishing the deliveries in hand when a stop is requested (up to
    /// `SHUTDOWN_GRACE`; then they are rolled back). `None`: stopped (the pass's outcome, if it
    /// ended in time, is added to `summary`).
    async fn pass_or_stop(
        &self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Outcome, Option<LoaderError>> {
        let pass = self.poll_once();
        tokio::pin!(pass);
        tokio::select! {
            result = &mut pass => result.map_err(Some),
            _ = stop.changed() => {
                self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                let grace = self.settings.shutdown_grace;
                info!(
                    "Stop requested: finishing the deliveries in hand (up to {:.0} s, SHUTDOWN_GRACE); no new file starts.",
                    grace.as_secs_f64()
                );
                match tokio::time::timeout(grace, &mut pass).await {
                    Ok(result) => result.map_err(Some),
                    Err(_) => {
                        warn!(
                            "SHUTDOWN_GRACE ({:.0} s) passed: the deliveries in hand are rolled back (nothing of them is kept); they are delivered again at the next start.",
                            grace.as_secs_f64()
                        );
                        Err(None)
                    }
                }
            }
        }
    }

    async fn passes_until_done(&self, mut stop: watch::Receiver<bool>) -> RunSummary {
        let dry_run = self.settings.dry_run;
        let service = self.settings.run_as_service && !dry_run;
        let mut summary = RunSummary::default();
        let mut attempts_without_listing = 0u32;
        // One-shot: since when a stream has been held by another loader, with nothing delivered.
        let mut waiting_since: Option<std::time::Instant> = None;
        loop {
            if *stop.borrow() {
                info!("Stop requested: leaving after the current deliveries.");
                summary.interrupted = true;
                return summary;
            }
            let pass = match self.pass_or_stop(&mut stop).await {
                Ok(outcome) => Ok(outcome),
                Err(Some(e)) => Err(e),
                Err(None) => {
                    summary.interrupted = true;
                    return summary;
                }
            };
            let busy = match pass {
                Ok(outcome) => {
                    attempts_without_listing = 0;
                    let progressed = !outcome.delivered.is_empty();
                    summary.add(&outcome, !service);
                    if dry_run {
                        return summary;
                    }
                    if !service && !progressed {
                        if outcome.held.is_empty() {
                            return summary;
                        }
                        // Another instance is delivering some streams: wait for it (bounded),
                        // and take a stream over if its holder dies (its lock goes with it).
                        let since = *waiting_since.get_or_insert_with(std::time::Instant::now);
                        let wait = self.settings.one_shot_wait;
                        if since.elapsed() >= wait {
                            warn!(
                                "Another loader still holds {} after {:.0} s (ONE_SHOT_WAIT): not waiting longer.",
                                outcome.held.join(", "),
                                wait.as_secs_f64()
                            );
                            return summary;
                        }
                        info!(
                            "Another loader is delivering {}: waiting for it (up to {:.0} s more, ONE_SHOT_WAIT).",
                            outcome.held.join(", "),
                            (wait - since.elapsed()).as_secs_f64()
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                    if progressed {
                        waiting_since = None;
                    }
                    progressed
                }
                Err(e) => {
                    attempts_without_listing += 1;
                    PassFailed {
                        kind: e.policy().metric,
                        error: &e,
                    }
                    .emit(&self.metrics);
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
                        let wait = self.settings.retry.backoff.delay(attempts_without_listing);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    false
                }
            };
            // A stop that came during the pass was taken (`changed`) by `pass_or_stop`: the
            // sleep below would not see it again, so it is checked here (at the loop's top).
            if busy || *stop.borrow() {
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
                _ = self.wake.notified() => info!("Woken up: looking for new files now."),
            }
        }
    }

    /// After a one-shot run: each stream that still has undelivered files (bucket and ledger
    /// read again), said as a sentence; empty when every file found is delivered.
    async fn unfinished(&self, summary: &RunSummary) -> Vec<String> {
        match self.survey().await {
            Err(e) => vec![format!("the final check could not read the bucket or the ledger: {e}")],
            Ok(streams) => streams
                .values()
                .filter(|s| {
                    s.pending > 0
                        && self
                            .settings
                            .only_tables
                            .as_ref()
                            .is_none_or(|only| only.contains(&s.table))
                })
                .map(|s| match &s.stopped {
                    Some(stopped) => format!(
                        "{}: {} file(s) undelivered, the stream is stopped at {}",
                        s.table,
                        s.pending,
                        crate::source::display_key(&stopped.key)
                    ),
                    None if summary.failed.iter().any(|f| f.table == s.table) => format!(
                        "{}: {} file(s) undelivered after a failure that outlasted the retries",
                        s.table, s.pending
                    ),
                    None => format!(
                        "{}: {} file(s) undelivered (another loader holds the stream, or they arrived at the end)",
                        s.table, s.pending
                    ),
                })
                .collect(),
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
}
