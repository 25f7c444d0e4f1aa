//! Several loaders on one bucket and database, through the binary: every file applied once, and
//! one outbox publisher (a session lock), so even a core NATS subscriber gets each message once.
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::helpers::active_strategy as strategy;
use crate::helpers::{spawn_app, unique_name};
use crate::service::spawn_service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_apply_each_file_once_and_publish_each_message_once() {
    let app = spawn_app().await;
    let ds = unique_name("peo-two");
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let mut sub = nats
        .subscribe(format!("{ds}.meta.orders.change"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    let env = [
        ("NOTIFICATIONS", "true"),
        ("NATS", "nats://127.0.0.1:4222"),
        ("NOTIFICATION_DATASOURCE", ds.as_str()),
        ("MIN_SLEEP", "0.1"),
        ("MAX_SLEEP", "0.3"),
    ];
    let a = spawn_service(&app, &env).await;
    let b = spawn_service(&app, &env).await;
    let mut keys = Vec::new();
    for i in 2..=13u32 {
        keys.push(
            app.put_csv(
                "strategies",
                &format!("20220922-0958{i:02}123.csv.gz"),
                &format!("I,{}", strategy(i)),
            )
            .await,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for key in &keys {
        while app.ledger(key).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "{}\n{}",
                a.log_text(),
                b.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(app.count("strategies").await, 13);
    let successes = app
        .rows("SELECT count(*) FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'")
        .await;
    assert_eq!(successes[0][0].as_deref(), Some("13"), "each file once");
    let mut ids = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        let json: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        ids.push(json["delivery"]["id"].as_i64().unwrap());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 13, "one message per delivery: {ids:?}");
    assert_eq!(unique.len(), 13);
    let standby = [a.log_text(), b.log_text()]
        .iter()
        .filter(|l| l.contains("another loader publishes the outbox"))
        .count();
    assert_eq!(standby, 1, "one publisher, one standby");
}

/// The pid of the loader (its `application_name`) holding a table stream's lease, if any.
async fn lease_holder(app: &crate::helpers::TestApp, table: &str) -> Option<u32> {
    let rows = app
        .rows(&format!(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
              WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1885434985 \
                AND l.objid::bigint = (hashtext('paper_engine.{table}')::bigint & 4294967295) \
                AND a.datname = '{}'",
            app.database
        ))
        .await;
    let name = rows.first()?.first()?.clone()?;
    name.strip_prefix("paper-engine-orders pid ")?.parse().ok()
}

/// Three loaders in service mode on one bucket and database, killed (SIGKILL) at moments and in
/// an order a seeded generator picks and restarted, while change files keep arriving: each file
/// is applied once, each notification is in JetStream once; and when the loader holding a
/// stream's lease dies, a survivor takes the stream over within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_killed_at_random_apply_each_file_once_and_hand_streams_over() {
    use crate::faults::assert_exactly_once;
    use crate::helpers::{ChildGuard, BIN};
    use paper_engine_orders::sample::{self, SampleSpec};
    use rand::{Rng, SeedableRng};

    const KILLS: usize = 12;
    let app = spawn_app().await;
    let spec = SampleSpec {
        scale: 0.05,
        seed: 12,
        bucket_path: "data".into(),
        load_rows_per_file: 2_000,
        cdc_files: 24,
        cdc_rows_per_file: 1_500,
        keep_state: true,
    };
    let (manifest, files) = crate::helpers::sample_in_memory(&spec);
    let (loads, mut changes): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(key, _)| key.rsplit('/').next().unwrap().starts_with("LOAD"));
    for (key, body) in loads {
        app.put(&key, body).await;
    }
    let ds = unique_name("peo-three");
    let (js, stream_name) =
        crate::helpers::jetstream_capturing(&format!("{ds}.meta.orders.change")).await;
    let start = || {
        let mut cmd = std::process::Command::new(BIN);
        cmd.env_clear();
        for (k, v) in &app.env {
            cmd.env(k, v);
        }
        cmd.env("RUN_AS_SERVICE", "true")
            .env("NOTIFICATIONS", "true")
            .env("NATS", "nats://127.0.0.1:4222")
            .env("NOTIFICATION_DATASOURCE", &ds)
            .env("MIN_SLEEP", "0.1")
            .env("MAX_SLEEP", "0.2")
            .env("PARALLELISM", "2")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        ChildGuard(cmd.spawn().unwrap())
    };
    let mut loaders: Vec<ChildGuard> = (0..3).map(|_| start()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261203);
    // Half of the change files arrive during the storm, a few before each kill.
    let storm_files = changes.len() / 2;
    let per_kill = storm_files.div_ceil(KILLS);
    for _ in 0..KILLS {
        for (key, body) in changes.drain(..per_kill.min(changes.len())) {
            app.put(&key, body).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1200))).await;
        let victim = rng.random_range(0..loaders.len());
        loaders[victim].0.kill().unwrap();
        loaders[victim].0.wait().unwrap();
        loaders[victim] = start();
    }
    // The rest arrive at once; the loader that takes a stream's lease for them is killed and not
    // restarted: a survivor must take the stream over within seconds.
    for (key, body) in changes.drain(..) {
        app.put(&key, body).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let (table, holder) = loop {
        let mut found = None;
        for table in sample::TABLES {
            if let Some(pid) = lease_holder(&app, table).await {
                found = Some((table, pid));
                break;
            }
        }
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no loader took a stream's lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let victim = loaders
        .iter()
        .position(|l| l.0.id() == holder)
        .expect("the lease holder is one of the loaders");
    let mut dead = loaders.remove(victim);
    dead.0.kill().unwrap();
    dead.0.wait().unwrap();
    let killed = Instant::now();
    let handed_over = loop {
        match lease_holder(&app, table).await {
            Some(pid) if pid != holder => break killed.elapsed(),
            _ => {}
        }
        // The stream may also be finished by then (nothing left to lease).
        let pending = app
            .rows(&format!(
                "SELECT {} - count(*) FROM paper_engine.loader_deliveries \
                  WHERE status = 'SUCCESS' AND table_name = '{table}'",
                manifest.files.iter().filter(|f| f.table == table).count()
            ))
            .await;
        if pending[0][0].as_deref() == Some("0") {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no survivor took {table} over within 10 s of its holder's death"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("{table}: taken over {handed_over:?} after its lease holder was killed");
    // The two survivors finish everything.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = app
            .rows("SELECT count(*) FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'")
            .await;
        let unpublished = app
            .rows("SELECT count(*) FROM paper_engine.loader_outbox WHERE published_at IS NULL")
            .await;
        if done[0][0].as_deref() == Some(manifest.files.len().to_string().as_str())
            && unpublished[0][0].as_deref() == Some("0")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the survivors did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(loaders);
    assert_exactly_once(&app, &manifest, &js, &stream_name).await;
}
