//! The `Notifier`: change notifications on NATS, never lost.
//!
//! A delivery with net changes writes its notification to the outbox table in the same
//! transaction as its data (see `target`). The [`OutboxRelay`] sends pending outbox rows, in
//! order, through a [`Notifier`] and marks each one published only once the server acknowledged
//! it. NATS down: loading goes on, the outbox grows, and the relay catches up when NATS is back.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::config::NatsConfig;
use crate::metrics::Metrics;
use crate::target::{DeliveryFacts, Outbox, OutboxMessage, OutboxRow, OutboxWriter};

/// Waits between publishing attempts while NATS fails.
const RELAY_BACKOFF: crate::policy::Backoff =
    crate::policy::Backoff::new(Duration::from_millis(400), Duration::from_millis(5_000));

/// Where notifications go and what they say about their origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationSettings {
    /// The data source name (`ds`), `paper-engine`.
    pub datasource: String,
    /// The process name (`id`), `orders`.
    pub process: String,
    /// This machine's host name.
    pub host: String,
}

impl NotificationSettings {
    /// `<datasource>.meta.<process>.change`, e.g. `paper-engine.meta.orders.change`.
    pub fn subject(&self) -> String {
        format!("{}.meta.{}.change", self.datasource, self.process)
    }
}

#[derive(Serialize)]
struct Stats {
    #[serde(rename = "AMEND")]
    amend: u64,
    #[serde(rename = "CREATE")]
    create: u64,
    #[serde(rename = "REMOVE")]
    remove: u64,
}

#[derive(Serialize)]
struct DeliveryRef<'a> {
    id: i64,
    key: &'a str,
    rows: u64,
}

/// The message, field for field as the replaced service published it, plus `delivery`.
#[derive(Serialize)]
struct ChangeNotification<'a> {
    v: u32,
    ds: &'a str,
    id: &'a str,
    host: &'a str,
    utcts: String,
    stats: BTreeMap<&'a str, Stats>,
    max_event_id: Option<i64>,
    delivery: DeliveryRef<'a>,
}

impl OutboxWriter for NotificationSettings {
    fn row(&self, facts: &DeliveryFacts<'_>) -> Option<OutboxRow> {
        change_notification(self, facts, chrono::Utc::now()).map(|payload| OutboxRow {
            subject: self.subject(),
            payload,
        })
    }
}

/// The JSON notification of a delivery, or `None` when it changed nothing (no message then).
pub fn change_notification(
    settings: &NotificationSettings,
    change: &DeliveryFacts<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let c = change.counts;
    if !c.changed() {
        return None;
    }
    let mut stats = BTreeMap::new();
    stats.insert(
        change.table,
        Stats {
            amend: c.amends,
            create: c.creates,
            remove: c.removes,
        },
    );
    let message = ChangeNotification {
        v: 1,
        ds: &settings.datasource,
        id: &settings.process,
        host: &settings.host,
        utcts: now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        stats,
        max_event_id: change.max_event_id,
        delivery: DeliveryRef {
            id: change.delivery_id,
            key: change.key,
            rows: change.rows,
        },
    };
    Some(serde_json::to_string(&message).expect("the notification serializes"))
}

/// A failure to publish; always worth trying again later.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("NATS is not connected")]
    Unavailable,
    #[error("publishing to NATS failed: {0}")]
    Publish(String),
    #[error("NATS did not acknowledge within {0:?}")]
    Timeout(Duration),
}

impl NotifierError {
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// The message broker as the loader sees it.
pub trait Notifier: Send + Sync + 'static {
    /// Publishes one message and returns once the server acknowledged it. `msg_id` goes in the
    /// `Nats-Msg-Id` header, so JetStream drops a replayed duplicate.
    fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), NotifierError>> + Send;
}

/// NATS through async-nats. Connects in the background and reconnects for ever, so a NATS outage
/// never stops the loader.
#[derive(Clone)]
pub struct NatsNotifier {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    /// Whether a JetStream stream captures a subject, looked up at most every 30 s.
    streams: Arc<Mutex<HashMap<String, (bool, Instant)>>>,
    ack_timeout: Duration,
}

impl NatsNotifier {
    /// Starts connecting; returns at once even if NATS is down.
    pub async fn connect(config: &NatsConfig) -> Result<Self, NotifierError> {
        let mut options = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(5)))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((250 * attempts as u64).min(5_000))
            })
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => info!("NATS connected."),
                    async_nats::Event::Disconnected => warn!("NATS disconnected."),
                    other => tracing::debug!("NATS: {other}"),
                }
            });
        if let Some(user) = &config.user {
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            options = options.user_and_password(user.clone(), password);
        }
        // The server address without credentials: nothing secret reaches the client's errors.
        let client = options
            .connect(config.server.as_str())
            .await
            .map_err(|e| NotifierError::Publish(e.to_string()))?;
        let jetstream = async_nats::jetstream::new(client.clone());
        Ok(NatsNotifier {
            client,
            jetstream,
            streams: Arc::new(Mutex::new(HashMap::new())),
            ack_timeout: Duration::from_secs(5),
        })
    }

    async fn stream_captures(&self, subject: &str) -> bool {
        if let Some((captured, at)) = self.streams.lock().expect("not poisoned").get(subject) {
            if at.elapsed() < Duration::from_secs(30) {
                return *captured;
            }
        }
        // No stream, or JetStream unavailable: a core publish plus flush. (JetStream still stores
        // a core-published message on a captured subject and honours Nats-Msg-Id.)
        let captured = self.jetstream.stream_by_subject(subject).await.is_ok();
        self.streams
            .lock()
            .expect("not poisoned")
            .insert(subject.to_string(), (captured, Instant::now()));
        captured
    }
}

impl Notifier for NatsNotifier {
    async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), NotifierError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            // async-nats would buffer the message while disconnected; a retry could then send it
            // twice. Wait for the connection instead.
            return Err(NotifierError::Unavailable);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        if self.stream_captures(subject).await {
            let ack = self
                .jetstream
                .publish_with_headers(subject.to_string(), headers, payload)
                .await
                .map_err(|e| NotifierError::Publish(e.to_string()))?;
            tokio::time::timeout(self.ack_timeout, std::future::IntoFuture::into_future(ack))
                .await
                .map_err(|_| NotifierError::Timeout(self.ack_timeout))?
                .map_err(|e| NotifierError::Publish(e.to_string()))?;
        } else {
            self.client
                .publish_with_headers(subject.to_string(), headers, payload)
                .await
                .map_err(|e| NotifierError::Publish(e.to_string()))?;
            tokio::time::timeout(self.ack_timeout, self.client.flush())
                .await
                .map_err(|_| NotifierError::Timeout(self.ack_timeout))?
                .map_err(|e| NotifierError::Publish(e.to_string()))?;
        }
        Ok(())
    }
}

/// Shared between the loader and the relay: the loader wakes the relay after a commit and waits
/// (briefly) to log that its delivery's message went out.
#[derive(Clone, Default)]
pub struct RelayHandle {
    wake: Arc<Notify>,
    published: Arc<Notify>,
    recent: Arc<Mutex<VecDeque<i64>>>,
}

impl RelayHandle {
    /// Asks the relay to look at the outbox now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn record(&self, delivery_id: i64) {
        let mut recent = self.recent.lock().expect("not poisoned");
        recent.push_back(delivery_id);
        while recent.len() > 4096 {
            recent.pop_front();
        }
        drop(recent);
        self.published.notify_waiters();
    }

    fn was_published(&self, delivery_id: i64) -> bool {
        self.recent
            .lock()
            .expect("not poisoned")
            .contains(&delivery_id)
    }

    /// Waits up to `timeout` for the delivery's notification to be acknowledged.
    pub async fn wait_published(&self, delivery_id: i64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.was_published(delivery_id) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.was_published(delivery_id);
            }
        }
    }
}

/// Sends the outbox to the notifier, in order.
pub struct OutboxRelay<O: Outbox, N: Notifier> {
    outbox: Arc<O>,
    notifier: N,
    metrics: Arc<Metrics>,
    handle: RelayHandle,
    /// Pause between looks at the outbox when nothing woke the relay.
    pub idle: Duration,
}

impl<O: Outbox, N: Notifier> OutboxRelay<O, N> {
    pub fn new(outbox: Arc<O>, notifier: N, metrics: Arc<Metrics>) -> Self {
        OutboxRelay {
            outbox,
            notifier,
            metrics,
            handle: RelayHandle::default(),
            idle: Duration::from_secs(2),
        }
    }

    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Publishes every pending message in order; stops at the first failure (order is kept).
    /// Returns how many were published.
    pub async fn publish_pending(&self) -> Result<usize, String> {
        let mut published = 0;
        let result = loop {
            let batch: Vec<OutboxMessage> = match self.outbox.pending_messages(100).await {
                Ok(b) => b,
                Err(e) => break Err(e.to_string()),
            };
            if batch.is_empty() {
                break Ok(published);
            }
            let mut failed = None;
            for message in batch {
                let sent = self
                    .notifier
                    .publish(
                        &message.subject,
                        &message.delivery_id.to_string(),
                        Bytes::from(message.payload.clone()),
                    )
                    .await;
                match sent {
                    Ok(()) => {
                        if let Err(e) = self.outbox.mark_published(message.id).await {
                            failed = Some(e.to_string());
                            break;
                        }
                        self.metrics.notifications_published.inc();
                        self.handle.record(message.delivery_id);
                        published += 1;
                    }
                    Err(e) => {
                        self.metrics.notifications_failed.inc();
                        self.metrics.errors.with_label_values(&["notifier"]).inc();
                        let _ = self.outbox.mark_failed(message.id, &e.to_string()).await;
                        failed = Some(format!(
                            "delivery {}: {e}; {} and later messages wait in the outbox",
                            message.delivery_id, message.id
                        ));
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
        };
        if let Ok(n) = self.outbox.pending_count().await {
            self.metrics.outbox_pending.set(n);
        }
        result
    }

    /// Runs until `stop` turns true: publishes whenever woken, and every `idle` otherwise,
    /// backing off while NATS is unavailable.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut last_warning: Option<Instant> = None;
        loop {
            let wait = match self.publish_pending().await {
                Ok(_) => {
                    failures = 0;
                    self.idle
                }
                Err(e) => {
                    failures += 1;
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        warn!("Notifications wait in the outbox: {e}");
                        last_warning = Some(Instant::now());
                    }
                    RELAY_BACKOFF.delay(failures)
                }
            };
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = self.handle.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {
                    // One last attempt, so a one-shot run leaves nothing it could send.
                    let _ = self.publish_pending().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::NetCounts;

    fn settings() -> NotificationSettings {
        NotificationSettings {
            datasource: "paper-engine".into(),
            process: "orders".into(),
            host: "hostname".into(),
        }
    }

    #[test]
    fn the_message_has_the_replaced_services_shape_then_delivery() {
        let now = chrono::DateTime::parse_from_rfc3339("2021-12-09T08:31:04.824890Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let json = change_notification(
            &settings(),
            &DeliveryFacts {
                delivery_id: 26,
                key: "data/dbo/orders/LOAD00000001.csv.gz",
                table: "orders",
                rows: 159967,
                counts: NetCounts {
                    creates: 159967,
                    amends: 0,
                    removes: 0,
                    unchanged: 0,
                },
                max_event_id: Some(1020487673),
            },
            now,
        )
        .unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"ds":"paper-engine","id":"orders","host":"hostname","utcts":"2021-12-09T08:31:04.824890","stats":{"orders":{"AMEND":0,"CREATE":159967,"REMOVE":0}},"max_event_id":1020487673,"delivery":{"id":26,"key":"data/dbo/orders/LOAD00000001.csv.gz","rows":159967}}"#
        );
        assert_eq!(settings().subject(), "paper-engine.meta.orders.change");
    }

    #[test]
    fn no_net_change_means_no_message() {
        let change = DeliveryFacts {
            delivery_id: 1,
            key: "k",
            table: "orders",
            rows: 3,
            counts: NetCounts {
                unchanged: 3,
                ..NetCounts::default()
            },
            max_event_id: None,
        };
        assert!(change_notification(&settings(), &change, chrono::Utc::now()).is_none());
    }

    #[tokio::test]
    async fn the_handle_reports_publication() {
        let handle = RelayHandle::default();
        assert!(!handle.wait_published(5, Duration::from_millis(10)).await);
        let h = handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            h.record(5);
        });
        assert!(handle.wait_published(5, Duration::from_secs(2)).await);
    }
}
