//! [`Application`]: the loader service put together (HTTP server, Postgres target, bucket,
//! notification relay, loader), as `main` runs it and as tests start it.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::app::{build_loader, ready_check};
use crate::config::Config;
use crate::http;
use crate::ledger::DeliveryQuery;
use crate::loader::{Loader, RunSummary};
use crate::metrics::Metrics;
use crate::notifier::{NatsNotifier, NotificationSettings, OutboxRelay};
use crate::source::S3Source;
use crate::status::{OutboxReport, StatusReport};
use crate::target::{Outbox, PgTarget};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("Cannot listen on {addr} (METRICS_BIND/METRICS_PORT): {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Target(#[from] crate::target::TargetError),
    #[error("the bucket: {0}")]
    Bucket(crate::source::SourceError),
    #[error("Cannot set up NATS: {0}")]
    Nats(String),
}

/// `GET /status` and `GET /`: the loader's stream states with what the ledger knows.
fn status_source(loader: &Loader<S3Source, PgTarget>, mode: &'static str) -> http::StatusSource {
    let streams = loader.streams();
    let target = loader.target().clone();
    Arc::new(move || {
        let streams = streams.borrow().clone();
        let target = target.clone();
        Some(Box::pin(async move {
            let facts = target.table_facts().await.map_err(|e| e.to_string())?;
            let recent = target
                .deliveries(&DeliveryQuery::default())
                .await
                .map_err(|e| e.to_string())?;
            let outbox = Outbox::pending_count(&target).await.ok();
            let mut report = StatusReport::build(&streams, facts);
            report.mode = Some(mode.to_string());
            report.outbox = outbox.map(|pending| OutboxReport { pending });
            report.recent_deliveries = Some(recent);
            Ok(report)
        }))
    })
}

/// The running parts of the service, built by [`Application::build`].
pub struct Application {
    port: u16,
    loader: Arc<Loader<S3Source, PgTarget>>,
    metrics: Arc<Metrics>,
    runs: crate::runs::Runs,
    server: JoinHandle<()>,
    relay: Option<JoinHandle<()>>,
    stop_tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
}

impl Application {
    /// Binds the HTTP server (first, so `/healthz` answers while Postgres is being reached),
    /// connects to Postgres (applying the migrations; retried while the failure is transient),
    /// and to NATS when notifications are on.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new());
        let (stop_tx, stop) = watch::channel(false);
        let target_slot = Arc::new(std::sync::OnceLock::new());
        let status_slot: Arc<std::sync::OnceLock<http::StatusSource>> =
            Arc::new(std::sync::OnceLock::new());
        let source = S3Source::new(&config.source).await;
        let api_slot = http::ApiSlot::new(config.api_token.clone());
        let status = {
            let slot = status_slot.clone();
            Arc::new(move || slot.get().and_then(|source| source())) as http::StatusSource
        };
        let (addr, server) = http::serve(
            config.metrics_addr,
            metrics.clone(),
            ready_check(target_slot.clone(), source),
            status,
            api_slot.clone(),
            stop.clone(),
        )
        .await
        .map_err(|source| StartError::Listen {
            addr: config.metrics_addr,
            source,
        })?;
        let mut loader = build_loader(&config, metrics.clone()).await?;
        let target = loader.target().clone();
        let _ = target_slot.set(target.clone());
        let mode = if config.run_as_service {
            "service"
        } else {
            "one-shot"
        };
        let _ = status_slot.set(status_source(&loader, mode));
        let mut relay = None;
        // One NATS connection for notifications, runs' callbacks, bucket events and triggers.
        let notifier = match &config.nats {
            Some(nats) => Some(
                NatsNotifier::connect(nats)
                    .await
                    .map_err(|e| StartError::Nats(e.to_string()))?,
            ),
            None => None,
        };
        let client = notifier.as_ref().map(NatsNotifier::client);
        if let (true, Some(nats), Some(notifier)) = (config.publishes(), &config.nats, notifier) {
            let outbox_relay = OutboxRelay::new(Arc::new(target), notifier, metrics.clone());
            loader = loader.with_relay(outbox_relay.handle());
            relay = Some(tokio::spawn(outbox_relay.run(stop.clone())));
            let subject = NotificationSettings {
                datasource: config.notification_datasource.clone(),
                process: config.notification_process.clone(),
                host: String::new(),
            }
            .subject();
            info!("Notifications go to {} on subject {subject}.", nats.server);
        }
        let loader = Arc::new(loader);
        let runs = crate::runs::Runs::new(loader.clone(), config.clone(), client.clone());
        tokio::spawn(runs.clone().follow(stop.clone()));
        if config.api_token.is_some() {
            let _ = api_slot.api.set(http::Api { runs: runs.clone() });
            info!(
                "API on: /api (bearer token required); runs are published on {}.",
                runs.subject()
            );
        }
        if let (Some(client), Some(subject)) = (&client, &config.events_subject) {
            let events = crate::events::BucketEvents {
                client: client.clone(),
                subject: subject.clone(),
                durable: config.events_durable.clone(),
                bucket: config.source.bucket.clone(),
                prefix: crate::source::root_prefix(&config.source.path),
            };
            tokio::spawn(events.run(loader.clone(), metrics.clone(), stop.clone()));
        }
        if let (Some(client), Some(subject)) = (&client, &config.trigger_subject) {
            tokio::spawn(crate::events::triggers(
                client.clone(),
                subject.clone(),
                runs.clone(),
                metrics.clone(),
                stop.clone(),
            ));
        }
        Ok(Application {
            port: addr.port(),
            loader,
            metrics,
            runs,
            server,
            relay,
            stop_tx,
            stop,
        })
    }

    /// The port the HTTP server (metrics, health) listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn loader(&self) -> &Loader<S3Source, PgTarget> {
        &self.loader
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Sending `true` stops the service after the deliveries in hand.
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop_tx.clone()
    }

    /// Runs the loader as configured (service: until stopped; one-shot: until nothing is left),
    /// then stops the relay (which publishes what it can first) and the HTTP server.
    pub async fn run_until_stopped(self) -> RunSummary {
        self.runs.resume().await;
        let mut summary = self.loader.run_until_stopped(self.stop.clone()).await;
        let _ = self.stop_tx.send(true);
        if let Some(task) = self.relay {
            // The relay empties the outbox first (bounded: `FLUSH_TIMEOUT` while NATS is away).
            if tokio::time::timeout(
                crate::notifier::FLUSH_TIMEOUT + Duration::from_secs(5),
                task,
            )
            .await
            .is_err()
            {
                warn!(
                    "The notification relay did not stop in time; pending messages stay in the outbox."
                );
            }
            summary.outbox_left = Outbox::pending_count(self.loader.target()).await.ok();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        summary
    }
}
