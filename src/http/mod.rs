//! The loader's one HTTP server: `/metrics` (Prometheus text format), `/healthz` (the process is
//! alive), `/readyz` (Postgres and the bucket answer now; 503 otherwise), `/status` (every
//! stream's state as JSON, as `paper-engine-orders status --json` prints it, plus the last 50
//! deliveries, the outbox backlog and the mode) and `/` (the same as a page for a person). It
//! runs in both modes. With `API_TOKEN` set, `/api` too (see [`api`]).
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tracing::info;

use crate::metrics::Metrics;

pub mod api;

pub use api::{Api, ApiSlot};

/// A readiness probe: `Ok` when every dependency answered, else what did not.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The status report, once the loader is up (`None` while it starts).
pub type StatusSource = Arc<
    dyn Fn() -> Option<
            Pin<Box<dyn Future<Output = Result<crate::status::StatusReport, String>> + Send>>,
        > + Send
        + Sync,
>;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: ReadyCheck,
    status: StatusSource,
}

/// The report, or why there is none (503).
async fn report(state: &AppState) -> Result<crate::status::StatusReport, String> {
    match (state.status)() {
        None => Err("the loader is starting (Postgres not reached yet)".to_string()),
        Some(report) => match tokio::time::timeout(READY_TIMEOUT * 2, report).await {
            Ok(result) => result,
            Err(_) => Err("the ledger did not answer in time".to_string()),
        },
    }
}

async fn status_json(State(state): State<AppState>) -> Response {
    match report(&state).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": why })),
        )
            .into_response(),
    }
}

async fn status_page(State(state): State<AppState>) -> Response {
    match report(&state).await {
        Ok(report) => Html(crate::status::html::render(&report)).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(crate::status::html::unavailable(&why)),
        )
            .into_response(),
    }
}

/// How long `/readyz` waits for each dependency.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(READY_TIMEOUT * 2, (state.ready)()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_string()),
        Ok(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the checks timed out\n".to_string(),
        ),
    }
}

pub fn router(
    metrics: Arc<Metrics>,
    ready: ReadyCheck,
    status: StatusSource,
    api: Arc<ApiSlot>,
) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/status", get(status_json))
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            metrics,
            ready,
            status,
        })
        .merge(api::router(api))
}

/// At most this many HTTP connections at once; more wait in the kernel's accept queue (no file
/// descriptor is spent on them), so no client can starve the loader's own connections.
pub const MAX_CONNECTIONS: usize = 64;
/// A client has this long to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (request and answer, body included) ends after this long, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Binds `addr` and serves until `stop` turns true. Returns the bound address (port 0 picks a
/// free one) and the server task. One connection, one request (no keep-alive); at most
/// [`MAX_CONNECTIONS`] at once, each bounded by [`HEADER_TIMEOUT`] and [`CONNECTION_TIMEOUT`]:
/// slow or idle clients cannot exhaust the process's file descriptors, and loading never waits
/// for the HTTP server.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: ReadyCheck,
    status: StatusSource,
    api: Arc<ApiSlot>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(
        "Serving the status page (/), /status, /metrics, /healthz and /readyz on http://{bound}."
    );
    let app = router(metrics, ready, status, api);
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                permit = limit.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = crate::events::until_stopped(&mut stop) => return,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors or the like: wait, never spin.
                    Err(e) => {
                        tracing::debug!("HTTP accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = crate::events::until_stopped(&mut stop) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false);
                let connection =
                    builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
                drop(permit);
            });
        }
    });
    Ok((bound, task))
}
