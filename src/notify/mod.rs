//! The `Notifier`: change notifications on NATS, never lost.
//!
//! A delivery with net changes writes its notification to the outbox table in the same
//! transaction as its data (see `target`). The [`OutboxRelay`] sends pending outbox rows, in
//! order, through a [`Notifier`] and marks each one published only once the server acknowledged
//! it. NATS down: loading goes on, the outbox grows, and the relay catches up when NATS is back.
//!
//! Files: [`message`] (what a notification says, and the outbox row it becomes), [`relay`] (the
//! outbox relay and the handle the loader waits on), [`nats`] (NATS through async-nats).
mod message;
mod nats;
mod relay;

pub use message::{change_notification, NotificationSettings};
pub use nats::NatsNotifier;
pub use relay::{OutboxRelay, RelayHandle, FLUSH_TIMEOUT};

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

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
