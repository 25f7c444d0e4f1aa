//! [`NatsNotifier`]: NATS through async-nats.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::{Notifier, NotifierError};
use crate::config::NatsConfig;

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

    /// The connection, for the loader's other NATS traffic (runs, bucket events, triggers).
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
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
