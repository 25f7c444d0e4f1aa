//! `--history`: the cost of an idle service pass, of a new file's delivery and of the start-up
//! listing as the number of already delivered files grows.
//!
//! Per N: a fresh database (migrations applied by a one-shot run on an empty prefix) and a fresh
//! bucket; N tiny change files of `orders` uploaded (flat names, one per minute, 32 uploads in
//! flight) and their SUCCESS ledger rows inserted in SQL; then the release binary in service
//! mode (`MIN_SLEEP=MAX_SLEEP=0.5`, `FULL_LIST_INTERVAL=3600`) with its `bucket_endpoint` on the
//! counting proxy (`proxy`). Measured: the start-up (S3 requests, S3 time, time to the first
//! idle pass), five PUT-to-commit latencies, then the idle passes over a window (S3 requests, S3 time, Postgres transactions,
//! ledger scans and active time from `pg_stat_database`/`pg_stat_user_tables`, and the pass
//! time: mean time between two `Nothing pending` lines less the 0.5 s sleep; the latencies:
//! the ledger polled every 5 ms for the new key's SUCCESS row), and the loader's VmHWM.
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::NaiveDate;
use futures::StreamExt as _;

use crate::ctx::Ctx;
use crate::proxy::{Counts, Proxy};
use crate::rss::vm_hwm_kib;
use crate::s3::NOTHING;
use crate::util::{median, tail};
use crate::SCHEMA;

/// The bucket path of the history files.
pub(crate) const PATH: &str = "hist";
/// The idle-pass sleep (MIN_SLEEP = MAX_SLEEP).
const SLEEP: f64 = 0.5;
/// PUT-to-commit probes per N.
const PROBES: usize = 5;

#[derive(Clone, Debug, Default)]
pub struct HistoryPoint {
    pub n: usize,
    pub upload_secs: f64,
    /// Spawn to the first `Nothing pending` line.
    pub startup_secs: f64,
    pub startup: Counts,
    pub passes: usize,
    pub window_secs: f64,
    pub window: Counts,
    /// Mean pass time (cycle less the sleep), ms.
    pub pass_ms: f64,
    pub xacts: i64,
    pub ledger_scans: i64,
    pub pg_active_ms: f64,
    pub latencies_ms: Vec<f64>,
    pub peak_rss_kib: u64,
    /// The S3 request lines of the window's last idle pass.
    pub pass_lines: Vec<String>,
}

impl HistoryPoint {
    pub fn per_pass(&self, x: f64) -> f64 {
        x / self.passes.max(1) as f64
    }

    pub fn latency_ms(&self) -> f64 {
        median(&self.latencies_ms)
    }
}

/// The change-file key of minute `i` of the history.
pub(crate) fn key(i: usize) -> String {
    let t = NaiveDate::from_ymd_opt(2022, 9, 22)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("valid date")
        + chrono::Duration::minutes(i as i64);
    format!("{PATH}/dbo/orders/{}.csv.gz", t.format("%Y%m%d-%H%M%S%3f"))
}

/// A one-row `orders` change file (an insert of `order_id`), gzip.
pub(crate) fn body(order_id: u64) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let row = format!(
        "I,{order_id},1,bench-{order_id},US0378331005,BUY,LIMIT,DAY,100,10.5,,USD,NEW,\
         2022-09-22 09:58:53.123456,2022-09-22 09:58:53.123456,{order_id}\r\n"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(row.as_bytes())?;
    Ok(gz.finish()?)
}

/// Lines of a growing log file with the time this process first saw them (polled every 2 ms).
pub(crate) struct LogWatch {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWatch {
    pub(crate) fn start(path: PathBuf) -> LogWatch {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut pos = 0u64;
            let mut partial = String::new();
            while !s.load(Ordering::Relaxed) {
                let mut chunk = String::new();
                if let Ok(mut f) = fs::File::open(&path) {
                    let _ = f.seek(SeekFrom::Start(pos));
                    if let Ok(n) = f.read_to_string(&mut chunk) {
                        pos += n as u64;
                    }
                }
                if !chunk.is_empty() {
                    let now = Instant::now();
                    partial.push_str(&chunk);
                    let mut seen = l.lock().expect("not poisoned");
                    while let Some(i) = partial.find('\n') {
                        seen.push((now, partial[..i].to_string()));
                        partial.drain(..=i);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        LogWatch {
            lines,
            stop,
            thread: Some(thread),
        }
    }

    /// Times of the lines containing `text`.
    pub(crate) fn times(&self, text: &str) -> Vec<Instant> {
        let seen = self.lines.lock().expect("not poisoned");
        seen.iter()
            .filter(|(_, l)| l.contains(text))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Waits for the next line containing `text` after the `after`-th one; its time.
    pub(crate) fn wait_next(&self, text: &str, after: usize, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self.times(text).get(after) {
                return Ok(*t);
            }
            if Instant::now() > deadline {
                bail!("no `{text}` line within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The service-mode loader, ended (SIGTERM, then killed) when dropped.
pub(crate) struct Service(pub(crate) Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (xact_commit, active_time ms) of `db`, and the ledger's seq + idx scans.
fn pg_stats(ctx: &Ctx, db: &str) -> Result<(i64, f64, i64)> {
    let pg = ctx.pg();
    let row = pg.rows(
        ctx.admin(),
        &format!("SELECT xact_commit, active_time FROM pg_stat_database WHERE datname = '{db}'"),
    )?;
    let row = row
        .first()
        .ok_or_else(|| anyhow!("no pg_stat_database row"))?;
    let num =
        |v: &Option<String>| -> Result<f64> { Ok(v.as_deref().unwrap_or("0").parse::<f64>()?) };
    let scans = pg.count(
        &ctx.dsn(db),
        &format!(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables \
             WHERE schemaname = '{SCHEMA}' AND relname = 'loader_deliveries'"
        ),
    )?;
    Ok((num(&row[0])? as i64, num(&row[1])?, scans as i64))
}

pub fn bench_history(ctx: &Ctx, ns: &[usize], window: Duration) -> Result<Vec<HistoryPoint>> {
    let mut points = Vec::new();
    for &n in ns {
        let point = one(ctx, n, window)?;
        say!(
            "history N={n}: idle pass {:.1} ms, {:.2} S3 requests and {:.1} Postgres \
             transactions per pass; PUT-to-commit {:.0} ms; peak RSS {:.1} MiB",
            point.pass_ms,
            point.per_pass(point.window.total() as f64),
            point.per_pass(point.xacts as f64),
            point.latency_ms(),
            point.peak_rss_kib as f64 / 1024.0
        );
        points.push(point);
    }
    Ok(points)
}

fn one(ctx: &Ctx, n: usize, window: Duration) -> Result<HistoryPoint> {
    let db = format!("{}_history", ctx.opts.db);
    let bucket = format!("peo-history-{n}");
    let mut point = HistoryPoint {
        n,
        ..HistoryPoint::default()
    };
    ctx.reset_db(&db, None)?;
    let s3 = ctx.s3(&bucket, PATH)?;
    ctx.rt.block_on(s3.ensure_bucket())?;
    ctx.run_loader(&db, &bucket, NOTHING, 1, "history-migrate")?;
    say!("history N={n}: uploading {n} change files (32 in flight)");
    let started = Instant::now();
    let tiny = body(1)?;
    ctx.rt.block_on(async {
        let mut puts = futures::stream::iter(0..n)
            .map(|i| {
                let (s3, body, key) = (&s3, tiny.clone(), key(i));
                async move {
                    s3.put(&key, body)
                        .await
                        .with_context(|| format!("put {key}"))
                }
            })
            .buffer_unordered(32);
        while let Some(r) = puts.next().await {
            r?;
        }
        anyhow::Ok(())
    })?;
    point.upload_secs = started.elapsed().as_secs_f64();
    say!(
        "history N={n}: uploaded in {:.1}s; inserting the ledger rows",
        point.upload_secs
    );
    let dsn = ctx.dsn(&db);
    ctx.pg().exec(
        &dsn,
        &format!(
            "INSERT INTO {SCHEMA}.loader_deliveries (object_key, etag, size, table_name, kind, \
             status, rows, creates, started_at, finished_at, host, loader_version) \
             SELECT '{PATH}/dbo/orders/' || to_char(timestamp '2022-09-22' + i * interval '1 \
             minute', 'YYYYMMDD-HH24MISSMS') || '.csv.gz', NULL, {size}, 'orders', 'CDC', \
             'SUCCESS', 1, 1, now(), now(), 'bench', 'bench' \
             FROM generate_series(0, {last}) i",
            size = tiny.len(),
            last = n as i64 - 1
        ),
    )?;
    ctx.pg()
        .exec(&dsn, &format!("VACUUM ANALYZE {SCHEMA}.loader_deliveries"))?;
    let check = ctx.pg().value(
        &dsn,
        &format!(
            "SELECT object_key FROM {SCHEMA}.loader_deliveries ORDER BY object_key DESC LIMIT 1"
        ),
    );
    if n > 0 {
        let last = check?;
        if last != key(n - 1) {
            bail!(
                "ledger keys differ from the object keys: {last} vs {}",
                key(n - 1)
            );
        }
    }
    ctx.checkpoint(&db)?;
    // The loader in service mode, through the counting proxy.
    let proxy = Proxy::start(&ctx.rt, &ctx.moto.endpoint)?;
    let source = ctx
        .source(&bucket, PATH)
        .replace(&ctx.moto.endpoint, &proxy.endpoint);
    let (mut cmd, log) = ctx.loader_command(&db, &source, &format!("history-{n}"))?;
    cmd.env("RUN_AS_SERVICE", "true")
        .env("MIN_SLEEP", SLEEP.to_string())
        .env("MAX_SLEEP", SLEEP.to_string())
        .env("FULL_LIST_INTERVAL", "3600")
        // The endpoint's settings as a DMS task without date folders has them: no date folder
        // to watch for in the flat-named streams (one listing per stream and pass).
        .env("DMS_SETTINGS", r#"{"DatePartitionEnabled": false}"#)
        .env("LOG_LEVEL", "info,paper_engine_orders=debug");
    let watch = LogWatch::start(log.clone());
    let spawned = Instant::now();
    let service = Service(cmd.spawn().context("cannot start the loader")?);
    let pid = service.0.id();
    let idle = "Nothing pending";
    let first = watch
        .wait_next(idle, 0, Duration::from_secs(300))
        .map_err(|e| anyhow!("{e}; log {}:\n{}", log.display(), tail(&log, 15)))?;
    point.startup_secs = first.duration_since(spawned).as_secs_f64();
    point.startup = proxy.counts();
    for p in 0..PROBES {
        let k = key(n + 10 + p);
        let probe = body(1_000_000 + p as u64)?;
        std::thread::sleep(Duration::from_millis(300 + 137 * p as u64));
        let put_at = Instant::now();
        ctx.rt.block_on(s3.put(&k, probe))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let sql = format!(
            "SELECT count(*) FROM {SCHEMA}.loader_deliveries WHERE object_key = '{k}' AND \
             status = 'SUCCESS'"
        );
        let client = ctx.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            anyhow::Ok(client)
        })?;
        loop {
            let row = ctx.rt.block_on(client.query_one(sql.as_str(), &[]))?;
            if row.get::<_, i64>(0) == 1 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{k} not delivered within 60 s; log {}:\n{}",
                    log.display(),
                    tail(&log, 15)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        point
            .latencies_ms
            .push(put_at.elapsed().as_secs_f64() * 1000.0);
    }
    // The idle window, after the probes (so the table folders exist for every N, the bucket
    // holding N + 5 delivered files), from one idle line to another.
    let k0 = watch.times(idle).len() + 2;
    let t0 = watch.wait_next(idle, k0, Duration::from_secs(60))?;
    let (c0, pg0) = (proxy.counts(), pg_stats(ctx, &db)?);
    std::thread::sleep(window);
    let k1 = watch.times(idle).len();
    let t1 = watch.wait_next(idle, k1, Duration::from_secs(60))?;
    let (c1, pg1) = (proxy.counts(), pg_stats(ctx, &db)?);
    let idle_times = watch.times(idle);
    if k1 >= 1 {
        point.pass_lines = proxy.lines_between(idle_times[k1 - 1], idle_times[k1]);
    }
    point.passes = k1 - k0;
    point.window_secs = t1.duration_since(t0).as_secs_f64();
    point.window = c1.since(&c0);
    point.pass_ms = (point.window_secs / point.passes as f64 - SLEEP) * 1000.0;
    // Less this bench's own transaction in the database (the pg_stat_user_tables query).
    point.xacts = pg1.0 - pg0.0 - 1;
    point.pg_active_ms = pg1.1 - pg0.1;
    point.ledger_scans = pg1.2 - pg0.2;
    point.peak_rss_kib = vm_hwm_kib(pid).unwrap_or(0);
    drop(service);
    drop(watch);
    if !ctx.opts.keep {
        ctx.drop_db(&db);
    }
    Ok(point)
}
