//! The outbox relay: sends pending outbox rows to the [`Notifier`] in order and marks each
//! published once acknowledged; and the [`RelayHandle`] the loader wakes it with.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::warn;

use bytes::Bytes;

use super::Notifier;
use crate::metrics::Metrics;
use crate::target::{Outbox, OutboxMessage};

/// Waits between publishing attempts while NATS fails.
const RELAY_BACKOFF: crate::policy::Backoff =
    crate::policy::Backoff::new(Duration::from_millis(400), Duration::from_millis(5_000));

/// How long a stopping relay keeps trying to empty the outbox.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared between the loader and the relay: the loader wakes the relay after a commit and waits
/// (briefly) to log that its delivery's message went out.
#[derive(Clone, Default)]
pub struct RelayHandle {
    wake: Arc<Notify>,
    published: Arc<Notify>,
    recent: Arc<Mutex<VecDeque<i64>>>,
    /// The last publishing attempt failed (NATS away or refusing): a message not acknowledged
    /// yet is then waiting for NATS, not merely queued behind earlier ones.
    failing: Arc<std::sync::atomic::AtomicBool>,
    /// Another loader's relay publishes the outbox (it holds the publisher lock).
    standby: Arc<std::sync::atomic::AtomicBool>,
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

    /// Whether the relay's last attempt to publish failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether another loader's relay publishes the outbox (this one waits its turn).
    pub fn is_standby(&self) -> bool {
        self.standby.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::Relaxed);
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
    /// How long the relay keeps trying to empty the outbox once asked to stop (a one-shot run's
    /// end, a SIGTERM), while NATS does not answer.
    pub flush_timeout: Duration,
}

impl<O: Outbox, N: Notifier> OutboxRelay<O, N> {
    pub fn new(outbox: Arc<O>, notifier: N, metrics: Arc<Metrics>) -> Self {
        OutboxRelay {
            outbox,
            notifier,
            metrics,
            handle: RelayHandle::default(),
            idle: Duration::from_secs(2),
            flush_timeout: FLUSH_TIMEOUT,
        }
    }

    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Publishes every pending message in order; stops at the first failure (order is kept).
    /// Returns how many were published.
    pub async fn publish_pending(&self) -> Result<usize, String> {
        // One publisher per database: two relays never send the same row.
        match self.outbox.hold_publisher_lock().await {
            Ok(true) => {
                if self
                    .handle
                    .standby
                    .swap(false, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::info!("Notifications: this loader publishes the outbox now.");
                }
            }
            Ok(false) => {
                if !self
                    .handle
                    .standby
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::info!(
                        "Notifications: another loader publishes the outbox; this one takes over if it stops."
                    );
                }
                return Ok(0);
            }
            Err(e) => {
                self.handle.set_failing(true);
                return Err(e.to_string());
            }
        }
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
                        &message.msg_id,
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
                            "delivery {}: {e}; its message (outbox row {}) and the ones after it wait in the outbox",
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
        self.handle.set_failing(result.is_err());
        result
    }

    /// Publishes until the outbox is empty or `flush_timeout` passed (retrying while NATS fails).
    /// Returns whether the outbox is empty.
    pub async fn flush(&self) -> bool {
        let deadline = Instant::now() + self.flush_timeout;
        let mut failures = 0u32;
        loop {
            match self.publish_pending().await {
                Ok(_) => return true,
                Err(e) => {
                    failures += 1;
                    let wait = RELAY_BACKOFF.delay(failures);
                    if Instant::now() + wait > deadline {
                        warn!("Notifications wait in the outbox: {e}");
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
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
                self.flush().await;
                return;
            }
            tokio::select! {
                _ = self.handle.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {
                    // A stopping loader (one-shot end, SIGTERM) leaves nothing it could send:
                    // the relay keeps trying, for a bounded time, while NATS is briefly away.
                    self.flush().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{Notifier, NotifierError};
    use crate::target::TargetError;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An outbox in memory: messages with ids, published or not.
    #[derive(Default)]
    struct MemoryOutbox {
        messages: Mutex<Vec<(OutboxMessage, bool)>>,
    }

    impl MemoryOutbox {
        fn with(n: i64) -> Self {
            let outbox = MemoryOutbox::default();
            for id in 1..=n {
                outbox.messages.lock().unwrap().push((
                    OutboxMessage {
                        id,
                        delivery_id: id,
                        subject: "s".into(),
                        payload: "{}".into(),
                        msg_id: format!("m{id}"),
                    },
                    false,
                ));
            }
            outbox
        }
    }

    impl Outbox for MemoryOutbox {
        async fn hold_publisher_lock(&self) -> Result<bool, TargetError> {
            Ok(true)
        }
        async fn pending_messages(&self, limit: i64) -> Result<Vec<OutboxMessage>, TargetError> {
            Ok(self
                .messages
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, published)| !published)
                .take(limit as usize)
                .map(|(m, _)| m.clone())
                .collect())
        }
        async fn mark_published(&self, id: i64) -> Result<(), TargetError> {
            for (m, published) in self.messages.lock().unwrap().iter_mut() {
                if m.id == id {
                    *published = true;
                }
            }
            Ok(())
        }
        async fn mark_failed(&self, _id: i64, _error: &str) -> Result<(), TargetError> {
            Ok(())
        }
        async fn pending_count(&self) -> Result<i64, TargetError> {
            Ok(self
                .messages
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, p)| !p)
                .count() as i64)
        }
    }

    /// A broker that is up or down.
    struct Broker(Arc<AtomicBool>);

    impl Notifier for Broker {
        async fn publish(&self, _: &str, _: &str, _: Bytes) -> Result<(), NotifierError> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(NotifierError::Unavailable)
            }
        }
    }

    fn relay(outbox: MemoryOutbox, up: &Arc<AtomicBool>) -> OutboxRelay<MemoryOutbox, Broker> {
        let mut relay = OutboxRelay::new(
            Arc::new(outbox),
            Broker(up.clone()),
            Arc::new(Metrics::new()),
        );
        relay.flush_timeout = Duration::from_millis(1500);
        relay
    }

    #[tokio::test]
    async fn only_a_failing_broker_makes_an_unacknowledged_message_a_warning() {
        let up = Arc::new(AtomicBool::new(true));
        let relay = relay(MemoryOutbox::with(3), &up);
        let handle = relay.handle();
        // A backlog with NATS answering: not failing, whatever the wait.
        assert!(!handle.is_failing());
        assert_eq!(relay.publish_pending().await, Ok(3));
        assert!(!handle.is_failing());
        up.store(false, Ordering::SeqCst);
        relay.outbox.messages.lock().unwrap().push((
            OutboxMessage {
                id: 4,
                delivery_id: 4,
                subject: "s".into(),
                payload: "{}".into(),
                msg_id: "m4".into(),
            },
            false,
        ));
        assert!(relay.publish_pending().await.is_err());
        assert!(handle.is_failing(), "NATS away: the warning is true");
    }

    #[tokio::test]
    async fn a_stopping_relay_keeps_trying_while_nats_is_briefly_away() {
        let up = Arc::new(AtomicBool::new(false));
        let relay = relay(MemoryOutbox::with(2), &up);
        let flag = up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            flag.store(true, Ordering::SeqCst);
        });
        assert!(relay.flush().await, "emptied once NATS came back");
        assert_eq!(relay.outbox.pending_count().await.unwrap(), 0);
        // Away for longer than the flush timeout: gives up, says so.
        up.store(false, Ordering::SeqCst);
        let relay = self::relay(MemoryOutbox::with(1), &up);
        assert!(!relay.flush().await);
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
