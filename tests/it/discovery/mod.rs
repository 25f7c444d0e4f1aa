//! Discovery through the binary as a user runs it: files that appear behind a stream's listing
//! cursor (late files, found by the periodic full listing), new files found by the incremental
//! listing alone (flat and date-folder change files), the failure history of a file that was
//! fixed, an operator's SKIPPED, and keys whose characters could break a listing or a log line.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paper_engine_orders::source::Source;

use crate::helpers::{free_port, gzip, spawn_app, try_http_get, ChildGuard, TestApp, BIN};

pub(super) use crate::helpers::strategy;

/// Full-load rows `1..=n`.
pub(super) fn strategies(n: u32) -> String {
    (1..=n)
        .map(|i| strategy(i, "ACTIVE", i64::from(i)))
        .collect()
}

/// A change-file row: `op` (`I`, `U`, `D`) before the 10 columns.
pub(super) fn change(op: &str, id: u32, status: &str, event: i64) -> String {
    format!("{op},{}", strategy(id, status, event))
}

/// The binary with this test's environment and `extra` on top.
pub(super) fn command(app: &TestApp, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &app.env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// A one-shot run: (exit code, standard error).
pub(super) fn run_once(app: &TestApp) -> (Option<i32>, String) {
    let out = command(app, &[]).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The binary in service mode, its standard error going to a file the test reads at any time.
pub(super) struct Service {
    child: ChildGuard,
    log: PathBuf,
    port: u16,
}

impl Service {
    /// Starts the binary with RUN_AS_SERVICE=true, short sleeps, /metrics on a free port and the
    /// given FULL_LIST_INTERVAL.
    pub(super) fn start(app: &TestApp, full_list_interval: &str) -> Service {
        Service::start_with(app, full_list_interval, &[])
    }

    /// As [`Service::start`], with `extra` variables on top.
    pub(super) fn start_with(
        app: &TestApp,
        full_list_interval: &str,
        extra: &[(&str, &str)],
    ) -> Service {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{}.stderr.log", app.database));
        let file = std::fs::File::create(&log).unwrap();
        let port_text = port.to_string();
        let mut env = vec![
            ("RUN_AS_SERVICE", "true"),
            ("MIN_SLEEP", "0.2"),
            ("MAX_SLEEP", "0.5"),
            ("FULL_LIST_INTERVAL", full_list_interval),
            ("METRICS_PORT", port_text.as_str()),
            ("METRICS_BIND", "127.0.0.1"),
            ("NOTIFICATIONS", "false"),
        ];
        env.extend_from_slice(extra);
        let child = command(app, &env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Service {
            child: ChildGuard(child),
            log,
            port,
        }
    }

    /// Everything the binary logged so far.
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The current /metrics samples (`series -> value`), or an empty map while nothing answers.
    pub(super) async fn metrics(&self) -> HashMap<String, f64> {
        match try_http_get(self.port, "/metrics").await {
            Some((200, text)) => samples(&text),
            _ => HashMap::new(),
        }
    }

    /// One series' value, if exported.
    pub(super) async fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().await.get(series).copied()
    }

    /// SIGTERM, then the exit code (None if it did not exit within 20 s).
    pub(super) fn terminate(&mut self) -> Option<i32> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Prometheus text samples: `name{labels} value` lines.
pub(super) fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

pub(super) fn series(name: &str, table: &str) -> String {
    format!("paper_engine_loader_{name}{{table=\"{table}\"}}")
}

/// Polls `check` every 100 ms until it returns true or `limit` passes.
pub(super) async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ledger status of a key, or None while it has no row (or the ledger does not exist yet).
pub(super) async fn status(app: &TestApp, key: &str) -> Option<String> {
    app.db
        .query_opt(
            "SELECT status FROM paper_engine.loader_deliveries WHERE object_key = $1",
            &[&key],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
}

/// Waits until `key` has the ledger status `expected`; panics with the log otherwise.
pub(super) async fn wait_status(
    app: &TestApp,
    service: &Service,
    key: &str,
    expected: &str,
    limit: Duration,
) {
    let reached = eventually(limit, || async {
        status(app, key).await.as_deref() == Some(expected)
    })
    .await;
    assert!(
        reached,
        "{key} is not {expected} after {limit:?} (ledger: {:?}); log:\n{}",
        status(app, key).await,
        service.log()
    );
}

/// The strategies rows as `(strategy_id, status, event_id)`.
pub(super) async fn strategy_rows(app: &TestApp) -> Vec<(i32, String, i64)> {
    app.db
        .query(
            "SELECT strategy_id, status, event_id FROM paper_engine.strategies ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Starts a service with an hour between full listings, so only the incremental listing can
/// find the files put after start-up; returns it once the start-up files are delivered.
pub(super) async fn incremental_service(app: &TestApp) -> Service {
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(2))
        .await;
    let first = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &change("I", 3, "ACTIVE", 3),
        )
        .await;
    // The debug line `Full listing: ...` marks each full listing in the log.
    let service = Service::start_with(
        app,
        "3600",
        &[("LOG_LEVEL", "info,paper_engine_orders=debug")],
    );
    wait_status(app, &service, &first, "SUCCESS", Duration::from_secs(15)).await;
    service
}

/// Asserts the service made its start-up full listing and no other.
pub(super) fn assert_one_full_listing(service: &Service) {
    let log = service.log();
    assert_eq!(
        log.matches("Full listing:").count(),
        1,
        "only the start-up full listing:\n{log}"
    );
}

/// Writes an object whatever its key holds. moto's server cannot route a PUT whose key has a
/// newline (its key pattern is `.+`), so such a key goes in as an S3 POST Object form upload,
/// which carries the key in the body.
pub(super) async fn put_any_key(app: &TestApp, key: &str, body: Vec<u8>) {
    if app.s3.put(key, body.clone()).await.is_ok() {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let endpoint = crate::helpers::s3_endpoint();
    let authority = endpoint
        .strip_prefix("http://")
        .expect("an http:// S3 endpoint for the POST upload")
        .trim_end_matches('/');
    let boundary = "peo-boundary-5f3a9c";
    let mut form = Vec::new();
    form.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend_from_slice(&body);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut request = format!(
        "POST /{} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.s3.bucket(),
        form.len()
    )
    .into_bytes();
    request.extend_from_slice(&form);
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 20") || response.starts_with("HTTP/1.0 20"),
        "POST upload of {key:?}: {response}"
    );
    // (HEAD cannot reach it either: the listing shows it.)
    let listed = app.s3.list_page(key, None, None).await.unwrap();
    assert!(
        listed.objects.iter().any(|o| o.key == key),
        "{key:?} is in the bucket: {listed:?}"
    );
}

/// Starts a service with an hour between full listings over a LOAD file and the given change
/// files, waits until they are delivered and the service idles, then watches a few idle passes:
/// returns the queries the loader's connections started meanwhile (`pg_stat_activity` shows each
/// backend's latest query, so any query after the mark shows).
pub(super) async fn queries_of_idle_passes(app: &TestApp, change_files: &[&str]) -> Vec<String> {
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(2))
        .await;
    let mut keys = Vec::new();
    for (i, name) in change_files.iter().enumerate() {
        let id = 10 + i as u32;
        keys.push(
            app.put_csv(
                "strategies",
                name,
                &change("I", id, "ACTIVE", i64::from(id)),
            )
            .await,
        );
    }
    let service = Service::start(app, "3600");
    for key in &keys {
        wait_status(app, &service, key, "SUCCESS", Duration::from_secs(15)).await;
    }
    let idle_passes = || service.log().matches("Nothing pending").count();
    // One idle pass after the deliveries, then the mark, then four more idle passes.
    let first = idle_passes() + 1;
    assert!(eventually(Duration::from_secs(5), || async { idle_passes() >= first }).await);
    let mark: chrono::DateTime<chrono::Utc> = app
        .db
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .unwrap()
        .get(0);
    let enough = idle_passes() + 4;
    assert!(
        eventually(Duration::from_secs(10), || async {
            idle_passes() >= enough
        })
        .await
    );
    app.db
        .query(
            "SELECT query FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND backend_type = 'client backend' AND query_start > $1",
            &[&mark],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

mod failures;
mod keys;
mod listing;
