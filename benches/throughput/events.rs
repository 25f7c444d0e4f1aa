//! `--events [FILES]`: event-driven loading. The release binary in service mode with
//! `MIN_SLEEP`/`MAX_SLEEP` at 60 s and `EVENTS_SUBJECT` set: for each of FILES new one-row
//! change files (default 20), the time from its PUT (followed at once by its S3 event on NATS) to
//! its SUCCESS ledger row; then a burst of 100 events for one new file, counting the passes it
//! caused. Without events the same file would wait for the next poll (up to 60 s here).
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::ctx::Ctx;
use crate::history::{body, key, LogWatch, Service, PATH};
use crate::s3::NOTHING;
use crate::util::{median, tail};
use crate::SCHEMA;

/// What `--events` measured.
#[derive(Clone, Debug, Default)]
pub struct EventsResult {
    /// PUT to commit of each file, ms, in order.
    pub latencies_ms: Vec<f64>,
    /// Events published in the burst, and the passes they caused.
    pub burst_events: usize,
    pub burst_passes: usize,
    /// The burst's file: PUT to commit, ms.
    pub burst_latency_ms: f64,
}

impl EventsResult {
    pub fn median_ms(&self) -> f64 {
        median(&self.latencies_ms)
    }

    pub fn p95_ms(&self) -> f64 {
        let mut v = self.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }
}

/// An S3 event notification for `key`, as MinIO's NATS target publishes it.
fn event(bucket: &str, key: &str) -> Vec<u8> {
    let encoded =
        percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string();
    serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{bucket}/{key}"),
        "Records": [{"eventName": "s3:ObjectCreated:Put",
                     "s3": {"bucket": {"name": bucket}, "object": {"key": encoded, "size": 1}}}]
    })
    .to_string()
    .into_bytes()
}

pub fn bench_events(ctx: &Ctx, files: usize) -> Result<EventsResult> {
    let db = format!("{}_events", ctx.opts.db);
    let bucket = "peo-events".to_string();
    let subject = format!("peo-bench.events.{}", std::process::id());
    ctx.reset_db(&db, None)?;
    let s3 = ctx.s3(&bucket, PATH)?;
    ctx.rt.block_on(s3.ensure_bucket())?;
    ctx.run_loader(&db, &bucket, NOTHING, 1, "events-migrate")?;
    let nats = ctx
        .rt
        .block_on(async_nats::connect("127.0.0.1:4222"))
        .context("NATS at 127.0.0.1:4222")?;
    let source = ctx.source(&bucket, PATH);
    let (mut cmd, log) = ctx.loader_command(&db, &source, "events")?;
    cmd.env("RUN_AS_SERVICE", "true")
        .env("MIN_SLEEP", "60")
        .env("MAX_SLEEP", "60")
        .env("NATS", "nats://127.0.0.1:4222")
        .env("EVENTS_SUBJECT", &subject)
        .env("LOG_LEVEL", "info");
    let watch = LogWatch::start(log.clone());
    let service = Service(cmd.spawn().context("cannot start the loader")?);
    let fail = |e: anyhow::Error| anyhow!("{e}; log {}:\n{}", log.display(), tail(&log, 15));
    watch
        .wait_next("Nothing pending", 0, Duration::from_secs(120))
        .map_err(fail)?;
    watch
        .wait_next("Bucket events: subscribed", 0, Duration::from_secs(30))
        .map_err(fail)?;
    let dsn = ctx.dsn(&db);
    let client = ctx.rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        anyhow::Ok(client)
    })?;
    let bucket_name = s3.bucket().to_string();
    let deliver = |k: &str, events: usize| -> Result<f64> {
        let b = body(2_000_000 + events as u64 * 7919 + k.len() as u64)?;
        let put_at = Instant::now();
        ctx.rt.block_on(async {
            s3.put(k, b).await?;
            for _ in 0..events {
                nats.publish(subject.clone(), event(&bucket_name, k).into())
                    .await?;
            }
            nats.flush().await?;
            anyhow::Ok(())
        })?;
        let sql = format!(
            "SELECT count(*) FROM {SCHEMA}.loader_deliveries WHERE object_key = '{k}' AND \
             status = 'SUCCESS'"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let row = ctx.rt.block_on(client.query_one(sql.as_str(), &[]))?;
            if row.get::<_, i64>(0) == 1 {
                return Ok(put_at.elapsed().as_secs_f64() * 1000.0);
            }
            if Instant::now() > deadline {
                bail!("{k} not delivered within 60 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let mut result = EventsResult::default();
    for i in 0..files {
        std::thread::sleep(Duration::from_millis(250));
        let ms = deliver(&key(10 + i), 1).map_err(fail)?;
        result.latencies_ms.push(ms);
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = watch.times("Woken up").len();
    result.burst_events = 100;
    result.burst_latency_ms = deliver(&key(10 + files + 1), 100).map_err(fail)?;
    std::thread::sleep(Duration::from_secs(2));
    result.burst_passes = watch.times("Woken up").len() - before;
    drop(service);
    drop(watch);
    if !ctx.opts.keep {
        ctx.drop_db(&db);
    }
    Ok(result)
}
