//! The loop around passes: service mode (sleep when idle, wake early on a hook), one-shot mode
//! (until nothing more is delivered) and the dry run (exactly one pass).
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, Notify};
use tracing::info;

use super::events::{Event, PassFailed};
use super::outcome::{Failed, RunSummary};
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

    pub(crate) async fn run_passes(&self, mut stop: watch::Receiver<bool>) -> RunSummary {
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
                _ = self.wake.notified() => info!("Woken up: looking for new files now."),
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
