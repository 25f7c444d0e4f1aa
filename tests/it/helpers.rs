//! Test harness: a real S3-compatible server (moto, started once for the test binary unless
//! `PEO_S3_ENDPOINT` names one), the machine's Postgres, and per test a uniquely named database
//! and bucket, so tests run in parallel and clean up after themselves.
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use paper_engine_orders::config::Config;
use paper_engine_orders::loader::{Loader, Outcome};
use paper_engine_orders::metrics::Metrics;
use paper_engine_orders::sample::SampleSpec;
use paper_engine_orders::source::S3Source;
use paper_engine_orders::target::PgTarget;
use tokio_postgres::NoTls;

/// The admin connection (libpq key=value) for creating test databases.
pub fn admin_dsn() -> String {
    std::env::var("PEO_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// The loader binary, built by cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_paper-engine-orders");

/// A local TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The S3 endpoint: `PEO_S3_ENDPOINT`, or a moto server started for this test binary (shared by
/// all its tests). The moto process is watched by a small shell loop that ends it once this test
/// process is gone.
pub fn s3_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(e) = std::env::var("PEO_S3_ENDPOINT") {
                return e;
            }
            let port = free_port();
            let script = format!(
                "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
                 while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
                parent = std::process::id()
            );
            // The watchdog shell outlives this process by design, so it is never waited for.
            #[allow(clippy::zombie_processes)]
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::null())
                .spawn()
                .expect(
                    "cannot start moto_server: install it with `pip install 'moto[server]'` \
                     (just test and .ci/run do)",
                );
            assert!(
                wait_for_port(port, Duration::from_secs(30)),
                "moto_server did not start on port {port}: is `pip install 'moto[server]'` done?"
            );
            format!("http://127.0.0.1:{port}")
        })
        .clone()
}

/// A small sample dataset (a few hundred rows per table, four CDC batches); `keep_state` for
/// the final table contents in the manifest.
pub fn small_sample(seed: u64, keep_state: bool) -> SampleSpec {
    SampleSpec {
        scale: 0.002,
        seed,
        bucket_path: "data".into(),
        load_rows_per_file: 300,
        cdc_files: 4,
        cdc_rows_per_file: 60,
        keep_state,
    }
}

/// A unique, lower-case name for a database or bucket.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

pub async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_dsn(), NoTls)
        .await
        .expect("postgres at 127.0.0.1:5432 (PEO_TEST_PG)");
    tokio::spawn(conn);
    client
}

/// One test's world: its database, schema and bucket.
pub struct TestApp {
    pub database: String,
    pub bucket_path: String,
    pub schema: String,
    pub s3: S3Source,
    pub db: tokio_postgres::Client,
    pub env: HashMap<String, String>,
}

pub async fn spawn_app() -> TestApp {
    let database = unique_name("peo_test").replace('-', "_");
    let bucket = unique_name("peo");
    let endpoint = s3_endpoint();
    admin()
        .await
        .batch_execute(&format!("CREATE DATABASE \"{database}\""))
        .await
        .unwrap();
    let admin_dsn = admin_dsn();
    let target = admin_dsn
        .split_whitespace()
        .filter(|kv| !kv.starts_with("dbname="))
        .chain(std::iter::once(format!("dbname={database}").as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    let (db, conn) = tokio_postgres::connect(&target, NoTls).await.unwrap();
    tokio::spawn(conn);
    let bucket_path = "data".to_string();
    let source = format!(
        "bucket_endpoint={endpoint} bucket_id=testing bucket_key=testing-secret-KEY9 bucket_name={bucket} bucket_path={bucket_path}"
    );
    let mut env = HashMap::new();
    env.insert("SOURCE".to_string(), source.clone());
    env.insert("TARGET".to_string(), target);
    env.insert("NOTIFICATIONS".to_string(), "false".to_string());
    env.insert("RUN_AS_SERVICE".to_string(), "false".to_string());
    env.insert("MIN_SLEEP".to_string(), "0".to_string());
    env.insert("MAX_SLEEP".to_string(), "0".to_string());
    env.insert("METRICS_PORT".to_string(), "0".to_string());
    env.insert("METRICS_BIND".to_string(), "127.0.0.1".to_string());
    let config = paper_engine_orders::config::SourceConfig::parse(&source).unwrap();
    let s3 = S3Source::new(&config).await;
    s3.ensure_bucket().await.unwrap();
    TestApp {
        database,
        bucket_path,
        schema: "paper_engine".into(),
        s3,
        db,
        env,
    }
}

impl TestApp {
    /// The configuration for this test's database and bucket, with `extra` variables on top.
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut env = self.env.clone();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| env.get(k).cloned()).expect("valid test configuration")
    }

    /// A loader with fast retries, built as `main` builds it.
    pub async fn loader(&self, extra: &[(&str, &str)]) -> Loader<S3Source, PgTarget> {
        let config = self.config(extra);
        let loader = paper_engine_orders::app::build_loader(&config, Arc::new(Metrics::new()))
            .await
            .expect("loader");
        let mut settings = loader.settings().clone();
        settings.retry.backoff = paper_engine_orders::policy::Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(200),
        );
        let (source, target, metrics) = (
            loader.source().clone(),
            loader.target().clone(),
            loader.metrics().clone(),
        );
        Loader::new(source, target, metrics, settings)
    }

    pub fn key(&self, table: &str, name: &str) -> String {
        format!("{}/dbo/{table}/{name}", self.bucket_path)
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3.put(key, body).await.unwrap();
    }

    /// Writes `text` gzip-compressed under `dbo/<table>/<name>`.
    pub async fn put_csv(&self, table: &str, name: &str, text: &str) -> String {
        let key = self.key(table, name);
        self.put(&key, gzip(text.as_bytes())).await;
        key
    }

    /// Rows of a query, every column as text (NULL as None).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_rows(sql).await.unwrap()
    }

    /// [`TestApp::rows`], `None` if the query fails (e.g. the table is not created yet).
    pub async fn try_rows(&self, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
        let messages = self.db.simple_query(sql).await.ok()?;
        let rows = messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect();
        Some(rows)
    }

    /// Everything a run could have persisted, as text: every schema, relation (with its kind
    /// and columns), the digest and count of every table's rows and the state of every sequence,
    /// outside the system schemas. Equal before and after means nothing persisted.
    pub async fn database_state(&self) -> String {
        let user = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";
        let mut state = String::new();
        for row in self
            .rows(&format!(
                "SELECT n.nspname, c.relname, c.relkind::text,
                        (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                           FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
                   FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid
                  WHERE {user} ORDER BY 1, 2"
            ))
            .await
        {
            state.push_str(&format!("{row:?}\n"));
            let (Some(schema), Some(name), Some(kind)) = (&row[0], &row[1], &row[2]) else {
                continue;
            };
            let relation = format!("\"{schema}\".\"{name}\"");
            let query = match kind.as_str() {
                "r" => format!(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {relation} t"
                ),
                "S" => format!("SELECT last_value, is_called FROM {relation}"),
                _ => continue,
            };
            state.push_str(&format!("  {:?}\n", self.rows(&query).await));
        }
        state
    }

    /// The row count, or None while the table does not exist yet.
    pub async fn try_count(&self, table: &str) -> Option<i64> {
        self.db
            .query_one(
                &format!("SELECT count(*) FROM {}.{table}", self.schema),
                &[],
            )
            .await
            .ok()
            .map(|r| r.get(0))
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.db
            .query_one(
                &format!("SELECT count(*) FROM {}.{table}", self.schema),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// The ledger row of a key: (status, rows, creates, amends, removes, unchanged, max_event_id, error).
    pub async fn ledger(&self, key: &str) -> Option<LedgerRow> {
        self.db
            .query_opt(
                &format!(
                    "SELECT status, rows, creates, amends, removes, unchanged, max_event_id, error, id
                       FROM {}.loader_deliveries WHERE object_key = $1",
                    self.schema
                ),
                &[&key],
            )
            .await
            .unwrap()
            .map(|r| LedgerRow {
                status: r.get(0),
                rows: r.get(1),
                creates: r.get(2),
                amends: r.get(3),
                removes: r.get(4),
                unchanged: r.get(5),
                max_event_id: r.get(6),
                error: r.get(7),
                id: r.get(8),
            })
    }

    /// Polls until a pass attempts nothing; returns every pass's outcome.
    pub async fn drain(&self, loader: &Loader<S3Source, PgTarget>) -> Vec<Outcome> {
        let mut passes = Vec::new();
        for _ in 0..50 {
            let outcome = loader.poll_once().await.expect("poll");
            let idle = outcome.is_idle() || outcome.delivered.is_empty();
            passes.push(outcome);
            if idle {
                return passes;
            }
        }
        panic!("the loader did not settle in 50 passes");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let database = self.database.clone();
        // Drop the database from a separate thread and runtime: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_dsn(), NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub status: String,
    pub rows: i64,
    pub creates: i64,
    pub amends: i64,
    pub removes: i64,
    pub unchanged: i64,
    pub max_event_id: Option<i64>,
    pub error: Option<String>,
    pub id: i64,
}

impl LedgerRow {
    /// (rows, creates, amends, removes, unchanged).
    pub fn counts(&self) -> (i64, i64, i64, i64, i64) {
        (
            self.rows,
            self.creates,
            self.amends,
            self.removes,
            self.unchanged,
        )
    }
}

/// One row of `strategies` (10 columns) as DMS writes it in a full-load file.
pub fn strategy(id: u32, status: &str, event: i64) -> String {
    format!("{id},S-{id},Strategy {id},ops,IBKR,{status},,2022-09-01 10:00:00,2022-09-01 10:00:00,{event}\n")
}

/// An `ACTIVE` strategy whose `event_id` is its id.
pub fn active_strategy(id: u32) -> String {
    strategy(id, "ACTIVE", i64::from(id))
}

/// A JetStream stream capturing `subject` on the machine's NATS (named after `subject`); the
/// context and the stream's name, to read and delete it.
pub async fn jetstream_capturing(subject: &str) -> (async_nats::jetstream::Context, String) {
    let name = subject.replace(['.', '-', '*', '>'], "_");
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(nats);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.to_string()],
        ..Default::default()
    })
    .await
    .unwrap();
    (js, name)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A child process that is killed when the test ends, whether it passes or panics.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP proxy to a local service that a test can take down and bring back, to play an outage
/// of one dependency without touching the shared service itself.
pub struct Proxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    target: Arc<std::sync::atomic::AtomicU16>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target_port: u16, up: bool) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up_flag = Arc::new(std::sync::atomic::AtomicBool::new(up));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (flag, conns) = (up_flag.clone(), connections.clone());
        let target = Arc::new(std::sync::atomic::AtomicU16::new(target_port));
        let to = target.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target_port = to.load(Ordering::SeqCst);
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            up: up_flag,
            target,
            connections,
            accept,
        }
    }

    /// Sends new connections to `port` from now on (a service started again elsewhere).
    pub fn set_target(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }

    /// Down: every open connection is cut and new ones are closed at once. Up: traffic flows.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for task in self.connections.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_up(false);
    }
}

/// A plain HTTP/1.1 GET: (status, body).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    try_http_get(port, path)
        .await
        .unwrap_or_else(|| panic!("GET {path} on port {port} failed"))
}

/// A plain HTTP/1.1 GET, or None if nothing answers.
pub async fn try_http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
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
    Some((status, body))
}

/// The sample dataset of `spec`, generated in memory: its manifest (the ground truth) and every
/// file as (object key, body), in the generator's order.
pub fn sample_in_memory(
    spec: &SampleSpec,
) -> (
    paper_engine_orders::sample::SampleManifest,
    Vec<(String, Vec<u8>)>,
) {
    let mut files = Vec::new();
    let manifest = paper_engine_orders::sample::generate(spec, |f| {
        files.push((f.summary.key.clone(), f.body));
        Ok::<(), ()>(())
    })
    .unwrap();
    (manifest, files)
}
