//! The loader's operational events, one struct each (as vector's `internal_events`): emitting
//! one writes its log line and records its metrics together, so the two never drift apart and
//! every message of the delivery lifecycle is in this file.
use std::time::Duration;

use tracing::{error, info, warn};

use super::service::format_elapsed;
use crate::metrics::Metrics;
use crate::source::display_key;
use crate::target::NetCounts;

/// Something that happened, for the log and the metrics.
pub(crate) trait Event {
    fn emit(self, metrics: &Metrics);
}

/// A delivery committed (or, in a dry run, was applied and rolled back).
pub(crate) struct DeliveryCompleted<'a> {
    pub id: i64,
    pub table: &'a str,
    pub counts: NetCounts,
    /// Compressed bytes read from the bucket.
    pub bytes: u64,
    pub elapsed: Duration,
    pub dry_run: bool,
}

impl Event for DeliveryCompleted<'_> {
    fn emit(self, metrics: &Metrics) {
        let status = if self.dry_run { "dry_run" } else { "success" };
        metrics.record_delivery(
            self.table,
            status,
            &self.counts,
            self.bytes,
            self.elapsed.as_secs_f64(),
        );
        let id = self.id;
        if !self.dry_run {
            info!("Delivery {id}: prometheus counters incremented.");
        }
        info!(
            table = self.table,
            "Delivery {id}: processed ({} seconds).",
            format_elapsed(self.elapsed)
        );
    }
}

/// A delivery failed for good (bad input), or a transient fault outlasted its retries.
pub(crate) struct DeliveryFailed<'a> {
    pub id: i64,
    pub table: &'a str,
    /// The `errors_total{kind}` label.
    pub kind: &'static str,
    /// Names the file and, for bad input, the line and column.
    pub message: &'a str,
}

impl Event for DeliveryFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.errors.with_label_values(&[self.kind]).inc();
        metrics
            .deliveries
            .with_label_values(&[self.table, "error"])
            .inc();
        error!(
            table = self.table,
            "Delivery {}: failed: {}", self.id, self.message
        );
    }
}

/// A transient fault: the same file is tried again after `wait`.
pub(crate) struct RetryScheduled<'a> {
    pub id: i64,
    pub attempt: u32,
    pub wait: Duration,
    pub kind: &'static str,
    pub message: &'a str,
}

impl Event for RetryScheduled<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.errors.with_label_values(&[self.kind]).inc();
        warn!(
            "Delivery {}: attempt {} failed, retrying in {:.1}s: {}",
            self.id,
            self.attempt,
            self.wait.as_secs_f64(),
            self.message
        );
    }
}

/// A pass could not list the bucket or read the ledger.
pub(crate) struct PassFailed<'a> {
    pub kind: &'static str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for PassFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.errors.with_label_values(&[self.kind]).inc();
        error!("Polling failed: {}", self.error);
    }
}

/// A full listing found a file behind its stream's cursor.
pub(crate) struct LateFileFound<'a> {
    pub table: &'a str,
    pub key: &'a str,
}

impl Event for LateFileFound<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.late_files.with_label_values(&[self.table]).inc();
        warn!(
            "Late file {}: it appeared behind stream {}'s cursor (after later files were listed); it is delivered now, after them.",
            display_key(self.key),
            self.table
        );
    }
}
