//! The binary in service mode as other systems see it: its HTTP port, its log, and a small HTTP
//! client for the API.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, try_http_get, ChildGuard, TestApp, BIN};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running service: killed when dropped.
pub struct Service {
    _child: ChildGuard,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts the binary in service mode (`MIN_SLEEP`/`MAX_SLEEP` 60 s unless `extra` says
/// otherwise, the API on with [`TOKEN`]), and waits until the loader is up (`/status` answers).
pub async fn spawn_service(app: &TestApp, extra: &[(&str, &str)]) -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("service.log");
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &app.env {
        cmd.env(k, v);
    }
    cmd.env("RUN_AS_SERVICE", "true")
        .env("MIN_SLEEP", "60")
        .env("MAX_SLEEP", "60")
        .env("API_TOKEN", TOKEN)
        .env("METRICS_PORT", port.to_string());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = ChildGuard(cmd.spawn().unwrap());
    let service = Service {
        _child: child,
        port,
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, _)) = try_http_get(port, "/status").await {
            return service;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service did not answer: {}", service.log_text());
}

impl Service {
    pub fn pid(&self) -> u32 {
        self._child.0.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `count` lines containing `text`.
    pub async fn wait_for_log(&self, text: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().matches(text).count() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {count} lines with {text:?} in:\n{}", self.log_text());
    }

    /// An HTTP request with the API token (or `token`): (status, parsed JSON body or Null).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (status, text) = http(self.port, method, path, token, body).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        self.call(method, path, Some(TOKEN), body).await
    }

    /// A metric's value from `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = http(self.port, "GET", "/metrics", None, None).await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// A plain HTTP/1.1 request: (status, body).
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if method != "GET" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
