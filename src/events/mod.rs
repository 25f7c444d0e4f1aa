//! Event-driven loading: bucket notifications on `EVENTS_SUBJECT` wake the loop at once, and
//! trigger messages on `TRIGGER_SUBJECT` start runs.
//!
//! Bucket events: an event for the bucket and its path wakes the loop (events arriving together
//! make one wake-up: the waker keeps one permit); events for other buckets, prefixes or event
//! names are ignored and counted. When a JetStream stream captures the subject, a durable pull
//! consumer (`EVENTS_DURABLE`) reads it and an event is acknowledged only after the first pass
//! that started after it ended, so events published while the loader was down are not lost;
//! with core NATS, a plain subscription (what is missed is found by the polling and the periodic
//! full listing).
pub mod parse;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::loader::{Loader, Progress};
use crate::metrics::Metrics;
use crate::runs::{RunRequest, Runs};
use crate::source::S3Source;
use crate::target::PgTarget;
use parse::Classified;

type ServiceLoader = Loader<S3Source, PgTarget>;

/// Waits until `stop` turns true (or its sender is gone).
pub async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Where bucket events come from and what they are about.
pub struct BucketEvents {
    pub client: async_nats::Client,
    pub subject: String,
    pub durable: String,
    pub bucket: String,
    /// `<bucket_path>/` (empty: the whole bucket).
    pub prefix: String,
}

impl BucketEvents {
    /// Counts and classifies one message; `true` when it woke the loop.
    fn handle(&self, payload: &[u8], loader: &ServiceLoader, metrics: &Metrics) -> bool {
        let (outcome, woke) = match parse::classify(payload, &self.bucket, &self.prefix) {
            Classified::Accepted(keys) => {
                debug!(
                    "Bucket event: {} new object(s), e.g. {}: waking the loop.",
                    keys.len(),
                    crate::source::display_key(&keys[0])
                );
                loader.waker().wake();
                ("accepted", true)
            }
            Classified::Ignored(why) => {
                debug!("Bucket event ignored: {why}.");
                ("ignored", false)
            }
            Classified::Malformed(why) => {
                warn!("Bucket event on {} is malformed: {why}.", self.subject);
                ("malformed", false)
            }
        };
        metrics.events.with_label_values(&["bucket", outcome]).inc();
        woke
    }

    /// Reads events until `stop`: from a durable JetStream consumer when a stream captures the
    /// subject, else from a plain subscription.
    pub async fn run(
        self,
        loader: Arc<ServiceLoader>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let js = async_nats::jetstream::new(self.client.clone());
        let stream = match js.stream_by_subject(self.subject.clone()).await {
            Ok(name) => js.get_stream(&name).await.ok(),
            Err(_) => None,
        };
        if let Some(stream) = stream {
            let config = async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(self.durable.clone()),
                filter_subject: self.subject.clone(),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(300),
                ..Default::default()
            };
            match stream.get_or_create_consumer(&self.durable, config).await {
                Ok(consumer) => match consumer.messages().await {
                    Ok(messages) => {
                        info!(
                            "Bucket events: durable consumer {} of JetStream stream {} on {}.",
                            self.durable,
                            stream.cached_info().config.name,
                            self.subject
                        );
                        return self.durable_loop(messages, loader, metrics, stop).await;
                    }
                    Err(e) => warn!(
                        "Bucket events: cannot read consumer {}: {e}; using a plain subscription.",
                        self.durable
                    ),
                },
                Err(e) => warn!(
                    "Bucket events: cannot create consumer {}: {e}; using a plain subscription.",
                    self.durable
                ),
            }
        }
        let mut subscription = match self.client.subscribe(self.subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "Bucket events: cannot subscribe to {}: {e}; polling only.",
                    self.subject
                );
                return;
            }
        };
        info!("Bucket events: subscribed to {} (core NATS).", self.subject);
        loop {
            tokio::select! {
                message = subscription.next() => match message {
                    Some(m) => {
                        self.handle(&m.payload, &loader, &metrics);
                    }
                    None => return,
                },
                _ = crate::events::until_stopped(&mut stop) => return,
            }
        }
    }

    /// The JetStream consumer: an accepted event is acknowledged once a pass that started after
    /// it ended; the others at once.
    async fn durable_loop(
        &self,
        mut messages: async_nats::jetstream::consumer::pull::Stream,
        loader: Arc<ServiceLoader>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut progress = loader.progress();
        // (message, the pass whose end covers it)
        let mut held: Vec<(async_nats::jetstream::Message, u64)> = Vec::new();
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(Ok(m)) => {
                        let needed = loader.passes_started() + 1;
                        if self.handle(&m.payload, &loader, &metrics) {
                            held.push((m, needed));
                        } else if let Err(e) = m.ack().await {
                            debug!("Bucket events: ack failed: {e}");
                        }
                    }
                    Some(Err(e)) => {
                        warn!("Bucket events: the consumer failed: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    None => return,
                },
                event = progress.recv() => {
                    if let Ok(Progress::PassFinished { pass, ok: true, .. }) = event {
                        let (done, waiting): (Vec<_>, Vec<_>) =
                            held.drain(..).partition(|(_, needed)| *needed <= pass);
                        held = waiting;
                        for (m, _) in done {
                            if let Err(e) = m.ack().await {
                                debug!("Bucket events: ack failed: {e}");
                            }
                        }
                    }
                }
                _ = crate::events::until_stopped(&mut stop) => return,
            }
        }
    }
}

/// Reads trigger messages on `subject` until `stop`: each starts a `once` run of every table;
/// the run (with its id) is the reply, and the finished run goes to the reply subject too.
pub async fn triggers(
    client: async_nats::Client,
    subject: String,
    runs: Runs,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut subscription = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            warn!("Triggers: cannot subscribe to {subject}: {e}.");
            return;
        }
    };
    info!("Triggers: listening on {subject}.");
    loop {
        let message = tokio::select! {
            message = subscription.next() => match message {
                Some(m) => m,
                None => return,
            },
            _ = crate::events::until_stopped(&mut stop) => return,
        };
        let reply = message.reply.as_ref().map(|r| r.to_string());
        let answer = match RunRequest::from_trigger(&message.payload) {
            Err(e) => {
                warn!("Trigger on {subject} is malformed: {e}.");
                metrics
                    .events
                    .with_label_values(&["trigger", "malformed"])
                    .inc();
                serde_json::json!({ "error": e.to_string(), "field": e.field })
            }
            Ok(request) => match runs.start(request, reply.clone()).await {
                Ok(run) => {
                    metrics
                        .events
                        .with_label_values(&["trigger", "accepted"])
                        .inc();
                    serde_json::to_value(&run).expect("a run serializes")
                }
                Err(e) => {
                    warn!("Trigger on {subject}: the run could not start: {e}.");
                    metrics
                        .events
                        .with_label_values(&["trigger", "failed"])
                        .inc();
                    serde_json::json!({ "error": e.to_string() })
                }
            },
        };
        if let Some(reply) = reply {
            let payload = bytes::Bytes::from(answer.to_string());
            if let Err(e) = client.publish(reply, payload).await {
                debug!("Triggers: cannot reply: {e}");
            }
        }
    }
}
