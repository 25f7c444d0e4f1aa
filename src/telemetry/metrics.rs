//! Prometheus metrics, all in one registry, named `paper_engine_loader_<name>_<unit>[_total]`.
//! Recorded once per delivery (or once per loop), never per row.
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::target::NetCounts;

const NS: &str = "paper_engine_loader";

/// Every metric the loader exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Deliveries by table and status (`success`, `error`, `dry_run`).
    pub deliveries: IntCounterVec,
    /// Rows by table and net effect (`create`, `amend`, `remove`, `unchanged`), per key.
    pub rows: IntCounterVec,
    /// Compressed bytes read from the bucket, by table.
    pub read_bytes: IntCounterVec,
    /// Time from the start of a delivery to its commit, by table.
    pub delivery_duration: HistogramVec,
    /// Files waiting to be delivered, by table (refreshed each loop).
    pub pending_files: IntGaugeVec,
    /// 1 while the table's stream is stopped at a file that failed, 0 otherwise.
    pub stream_stopped: IntGaugeVec,
    /// Files found behind a stream's cursor by a periodic full listing, by table.
    pub late_files: IntCounterVec,
    /// Objects under the bucket path that are not DMS file names (each counted once per process).
    pub unrecognized_objects: IntCounter,
    /// Messages received on EVENTS_SUBJECT (source `bucket`) and TRIGGER_SUBJECT (source
    /// `trigger`), by what was done with them (outcome `accepted`, `ignored`, `malformed`,
    /// `failed`).
    pub events: IntCounterVec,
    /// Unix time of the last successful delivery, by table.
    pub last_success: GaugeVec,
    /// Notifications in the outbox that NATS has not acknowledged yet.
    pub outbox_pending: IntGauge,
    pub notifications_published: IntCounter,
    pub notifications_failed: IntCounter,
    /// Errors by kind (`source`, `target`, `input`, `notifier`).
    pub errors: IntCounterVec,
    /// Always 1, labelled with the version.
    pub build_info: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NS);
        let deliveries = IntCounterVec::new(
            opts("deliveries_total", "Deliveries by table and status."),
            &["table", "status"],
        )
        .expect("metric");
        let rows = IntCounterVec::new(
            opts(
                "rows_total",
                "Keys by table and net effect of their delivery (create, amend, remove, unchanged).",
            ),
            &["table", "op"],
        )
        .expect("metric");
        let read_bytes = IntCounterVec::new(
            opts(
                "read_bytes_total",
                "Compressed bytes read from the bucket, by table.",
            ),
            &["table"],
        )
        .expect("metric");
        let delivery_duration = HistogramVec::new(
            HistogramOpts::new(
                "delivery_duration_seconds",
                "Duration of a delivery from its start to its commit, by table.",
            )
            .namespace(NS)
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ]),
            &["table"],
        )
        .expect("metric");
        let pending_files = IntGaugeVec::new(
            opts(
                "pending_files",
                "Files in the bucket not yet delivered, by table, a stopped stream's included (refreshed each pass).",
            ),
            &["table"],
        )
        .expect("metric");
        let stream_stopped = IntGaugeVec::new(
            opts(
                "stream_stopped",
                "1 while the table's stream is stopped at a file that failed (until the object is replaced or an operator acts), 0 otherwise.",
            ),
            &["table"],
        )
        .expect("metric");
        let late_files = IntCounterVec::new(
            opts(
                "late_files_total",
                "Files that appeared behind a stream's listing cursor (found by a periodic full listing), by table.",
            ),
            &["table"],
        )
        .expect("metric");
        let unrecognized_objects = IntCounter::with_opts(opts(
            "unrecognized_objects_total",
            "Objects under the bucket path whose names are not DMS file names (logged and counted once per process, never loaded).",
        ))
        .expect("metric");
        let events = IntCounterVec::new(
            opts(
                "events_total",
                "Messages received on EVENTS_SUBJECT (source bucket) and TRIGGER_SUBJECT (source trigger), by outcome: accepted (woke the loop or started a run), ignored (another bucket, prefix or event name), malformed, failed (the run could not start).",
            ),
            &["source", "outcome"],
        )
        .expect("metric");
        let last_success = GaugeVec::new(
            opts(
                "last_success_timestamp_seconds",
                "Unix time of the last successful delivery, by table.",
            ),
            &["table"],
        )
        .expect("metric");
        let outbox_pending = IntGauge::with_opts(opts(
            "outbox_pending_messages",
            "Change notifications waiting in the outbox for NATS to acknowledge them.",
        ))
        .expect("metric");
        let notifications_published = IntCounter::with_opts(opts(
            "notifications_published_total",
            "Change notifications acknowledged by NATS.",
        ))
        .expect("metric");
        let notifications_failed = IntCounter::with_opts(opts(
            "notifications_failed_total",
            "Attempts to publish a change notification that failed (it stays in the outbox).",
        ))
        .expect("metric");
        let errors = IntCounterVec::new(
            opts(
                "errors_total",
                "Errors by kind (source, target, input, notifier).",
            ),
            &["kind"],
        )
        .expect("metric");
        let build_info = Gauge::with_opts(
            opts(
                "build_info",
                "Always 1; labelled with the loader's version.",
            )
            .const_label("version", crate::VERSION),
        )
        .expect("metric");
        build_info.set(1.0);
        for m in [
            Box::new(deliveries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rows.clone()),
            Box::new(read_bytes.clone()),
            Box::new(delivery_duration.clone()),
            Box::new(pending_files.clone()),
            Box::new(stream_stopped.clone()),
            Box::new(late_files.clone()),
            Box::new(events.clone()),
            Box::new(unrecognized_objects.clone()),
            Box::new(last_success.clone()),
            Box::new(outbox_pending.clone()),
            Box::new(notifications_published.clone()),
            Box::new(notifications_failed.clone()),
            Box::new(errors.clone()),
            Box::new(build_info.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        Metrics {
            registry,
            deliveries,
            rows,
            read_bytes,
            delivery_duration,
            pending_files,
            stream_stopped,
            late_files,
            events,
            unrecognized_objects,
            last_success,
            outbox_pending,
            notifications_published,
            notifications_failed,
            errors,
            build_info,
        }
    }

    /// Records one finished delivery.
    pub fn record_delivery(
        &self,
        table: &str,
        status: &str,
        counts: &NetCounts,
        bytes: u64,
        seconds: f64,
    ) {
        self.deliveries.with_label_values(&[table, status]).inc();
        for (op, n) in [
            ("create", counts.creates),
            ("amend", counts.amends),
            ("remove", counts.removes),
            ("unchanged", counts.unchanged),
        ] {
            self.rows.with_label_values(&[table, op]).inc_by(n);
        }
        self.read_bytes.with_label_values(&[table]).inc_by(bytes);
        self.delivery_duration
            .with_label_values(&[table])
            .observe(seconds);
        if status == "success" {
            self.last_success
                .with_label_values(&[table])
                .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}
