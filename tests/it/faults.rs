//! A SIGKILL storm through the binary: the loader in service mode with notifications on (a
//! JetStream stream captures the subject), killed at 20 moments a seeded generator picks, spread
//! over listing, staging, applying, committing and publishing, and restarted each time. Then:
//! the tables equal the sample's final state, one SUCCESS ledger row per file with the right
//! counts, and the stream holds exactly one message per delivery with net changes.
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::helpers::{spawn_app, unique_name, ChildGuard, BIN};
use crate::loader::ground_truth::differences;
use paper_engine_orders::sample::{self, SampleSpec};

const KILLS: usize = 20;
const SEED: u64 = 20261202;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_storm_loses_nothing_doubles_nothing_and_sends_each_message_once() {
    let app = spawn_app().await;
    let spec = SampleSpec {
        scale: 0.1,
        seed: 11,
        bucket_path: "data".into(),
        load_rows_per_file: 5_000,
        cdc_files: 20,
        cdc_rows_per_file: 3_000,
        keep_state: true,
    };
    // The files, generated in memory: the full load is in the bucket from the start, the change
    // files arrive during the storm (a few before each start), so every loader has work.
    let (manifest, files) = crate::helpers::sample_in_memory(&spec);
    let (loads, mut changes): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(key, _)| key.rsplit('/').next().unwrap().starts_with("LOAD"));
    for (key, body) in loads {
        app.put(&key, body).await;
    }
    let per_start = changes.len().div_ceil(KILLS);
    let ds = unique_name("peo-storm");
    let subject = format!("{ds}.meta.orders.change");
    let (js, stream_name) = crate::helpers::jetstream_capturing(&subject).await;
    let command = |service: bool| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.env_clear();
        for (k, v) in &app.env {
            cmd.env(k, v);
        }
        cmd.env("RUN_AS_SERVICE", if service { "true" } else { "false" })
            .env("NOTIFICATIONS", "true")
            .env("NATS", "nats://127.0.0.1:4222")
            .env("NOTIFICATION_DATASOURCE", &ds)
            .env("MIN_SLEEP", "0.1")
            .env("MAX_SLEEP", "0.2")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let started = Instant::now();
    let mut mid_delivery = 0;
    for _ in 0..KILLS {
        for (key, body) in changes.drain(..per_start.min(changes.len())) {
            app.put(&key, body).await;
        }
        let mut child = ChildGuard(command(true).spawn().unwrap());
        // From right after start-up (listing, migrations) to well into a delivery.
        let at = Duration::from_millis(rng.random_range(30..900));
        tokio::time::sleep(at).await;
        // A delivery in hand: an ERROR-free ledger does not say it; the lineage does (rows of
        // an uncommitted delivery are invisible), so count kills with data in flight by the
        // server's view of the loader's transactions.
        let busy = app
            .rows(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
                 AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
                app.database
            ))
            .await[0][0]
            .clone()
            .unwrap_or_default();
        if busy != "0" {
            mid_delivery += 1;
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
    }
    eprintln!("{mid_delivery} of {KILLS} kills landed with a transaction open");
    assert!(mid_delivery >= 1, "some kills hit a delivery in hand");
    let during = app
        .rows("SELECT count(*) FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'")
        .await[0][0]
        .clone()
        .unwrap_or_default();
    eprintln!(
        "{KILLS} kills: {during} of {} files delivered between them",
        manifest.files.len()
    );
    assert_ne!(during, "0", "the killed loaders made progress");
    // Then a one-shot run to the end: exit 0 (every file delivered).
    let out = command(false)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(300));

    assert_exactly_once(&app, &manifest, &js, &stream_name).await;
}

/// The end state every fault test proves: the tables equal the sample's final state, one SUCCESS
/// ledger row per file with the right counts (and no other row), every outbox message published,
/// and the JetStream stream capturing the subject holds exactly one message per delivery with
/// net changes (it is deleted afterwards).
pub async fn assert_exactly_once(
    app: &crate::helpers::TestApp,
    manifest: &sample::SampleManifest,
    js: &async_nats::jetstream::Context,
    stream_name: &str,
) {
    for table in sample::TABLES {
        let expected = &manifest.tables[table];
        assert_eq!(app.count(table).await, expected.len() as i64, "{table}");
        assert_eq!(differences(app, table, expected).await, (0, 0), "{table}");
    }
    for file in &manifest.files {
        let row = app.ledger(&file.key).await.expect("a ledger row per file");
        assert_eq!(row.status, "SUCCESS", "{}", file.key);
        assert_eq!(
            (
                row.rows as u64,
                row.creates as u64,
                row.amends as u64,
                row.removes as u64
            ),
            (
                file.rows,
                file.counts.creates,
                file.counts.amends,
                file.counts.removes
            ),
            "{}",
            file.key
        );
    }
    let ledger_rows = app
        .rows("SELECT count(*) FROM paper_engine.loader_deliveries")
        .await;
    assert_eq!(
        ledger_rows[0][0].as_deref(),
        Some(manifest.files.len().to_string().as_str()),
        "exactly one ledger row per file"
    );
    // One message per delivery with net changes, each once, in JetStream.
    let with_changes = app
        .rows("SELECT count(*) FROM paper_engine.loader_outbox")
        .await[0][0]
        .clone()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let unpublished = app
        .rows("SELECT count(*) FROM paper_engine.loader_outbox WHERE published_at IS NULL")
        .await;
    assert_eq!(unpublished[0][0].as_deref(), Some("0"));
    let mut stream = js.get_stream(&stream_name).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, with_changes,
        "one message per delivery with net changes"
    );
    js.delete_stream(&stream_name).await.unwrap();
}
