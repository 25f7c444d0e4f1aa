//! Servers that go away mid-delivery, through the binary: the loader's own Postgres server
//! restarted (`pg_ctl restart`, every session terminated, transactions rolled back) and its S3
//! server killed (SIGKILL) and started again, while files load. Each test runs its own server
//! (a scratch Postgres cluster, a moto on its own port), so the suite's shared ones are never
//! touched. Then: the loader reconnected by itself (backoff with jitter), every file applied once,
//! the tables exactly the sample's final state.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, spawn_app, wait_for_port, ChildGuard, Proxy, TestApp, BIN};
use crate::loader::ground_truth::differences;
use paper_engine_orders::config::SourceConfig;
use paper_engine_orders::sample::{self, SampleManifest, SampleSpec};
use paper_engine_orders::source::S3Source;

/// A Postgres cluster of the test's own in a scratch folder, run as the `postgres` user.
pub struct ScratchPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Server settings (`-c name=value`) beyond the port and listen address.
    settings: String,
}

impl ScratchPostgres {
    pub fn start() -> ScratchPostgres {
        Self::start_with(&[])
    }

    /// A cluster with server `settings` (`name=value`), e.g. its own TLS certificate.
    pub fn start_with(settings: &[&str]) -> ScratchPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/<version>/bin");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        as_postgres(
            &["chown", "-R", "postgres", &dir.path().display().to_string()],
            true,
        );
        let data = dir.path().join("data");
        let initdb = bin.join("initdb").display().to_string();
        as_postgres(
            &[
                &initdb,
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
            false,
        );
        let settings = settings
            .iter()
            .map(|s| format!(" -c {s}"))
            .collect::<String>();
        let pg = ScratchPostgres {
            dir,
            bin,
            port,
            settings,
        };
        pg.ctl("start");
        pg
    }

    pub fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off{}",
            self.port, self.settings
        );
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        as_postgres(
            &[
                &pg_ctl, "-D", &data, "-l", &log, "-o", &options, "-m", "fast", "-w", action,
            ],
            false,
        );
    }

    pub fn target(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &pg_ctl,
                "-D",
                &data,
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `args` as the `postgres` user (`root_first`: the first step, as root).
pub fn as_postgres(args: &[&str], root_first: bool) {
    let mut cmd = if root_first {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    } else {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).args(args);
        c
    };
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A moto server of the test's own, on its own port (killed when dropped).
struct ScratchMoto {
    port: u16,
    child: Option<ChildGuard>,
}

impl ScratchMoto {
    fn start(port: u16) -> ScratchMoto {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]')");
        assert!(
            wait_for_port(port, Duration::from_secs(30)),
            "moto did not start"
        );
        ScratchMoto {
            port,
            child: Some(ChildGuard(child)),
        }
    }

    fn kill(&mut self) {
        drop(self.child.take());
    }
}

/// A sample with big enough files that a fault lands inside a delivery.
fn sample_files() -> (SampleManifest, Vec<(String, Vec<u8>)>) {
    let spec = SampleSpec {
        scale: 0.1,
        seed: 21,
        bucket_path: "data".into(),
        load_rows_per_file: 20_000,
        cdc_files: 8,
        cdc_rows_per_file: 10_000,
        keep_state: true,
    };
    crate::helpers::sample_in_memory(&spec)
}

fn loader(env: &std::collections::HashMap<String, String>, log: &Path) -> ChildGuard {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("RUN_AS_SERVICE", "true")
        .env("MIN_SLEEP", "0.2")
        .env("MAX_SLEEP", "0.4")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    ChildGuard(cmd.spawn().unwrap())
}

/// Waits until the loader has a transaction open on `db` (a delivery in hand).
async fn wait_for_delivery_in_hand(db: &tokio_postgres::Client, dbname: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                  AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
                &[&dbname],
            )
            .await
            .unwrap()
            .get(0);
        if busy > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery started: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every file of `manifest` has its SUCCESS row, then checks the tables and the
/// ledger exactly.
async fn assert_all_delivered_once(app: &TestApp, manifest: &SampleManifest, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let want = manifest.files.len().to_string();
    loop {
        let done = app
            .try_rows(
                "SELECT count(*) FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'",
            )
            .await;
        if done.as_ref().and_then(|r| r[0][0].as_deref()) == Some(want.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every file was delivered: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = app
        .rows("SELECT count(*) FROM paper_engine.loader_deliveries")
        .await;
    assert_eq!(
        rows[0][0].as_deref(),
        Some(want.as_str()),
        "one ledger row per file"
    );
    for table in sample::TABLES {
        let expected = &manifest.tables[table];
        assert_eq!(app.count(table).await, expected.len() as i64, "{table}");
        assert_eq!(differences(app, table, expected).await, (0, 0), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_server_restarted_mid_delivery_twice_ends_with_every_file_applied_once() {
    let mut app = spawn_app().await;
    let pg = ScratchPostgres::start();
    let (manifest, files) = sample_files();
    for (key, body) in files {
        app.put(&key, body).await;
    }
    app.env.insert("TARGET".into(), pg.target());
    let mut db = connect(&pg.target()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("loader.log");
    let _loader = loader(&app.env, &log);
    for _ in 0..2 {
        wait_for_delivery_in_hand(&db, "postgres", &log).await;
        pg.ctl("restart");
        // The test's own connection went with the restart.
        db = connect(&pg.target()).await;
        // Let the loader meet the restart and reconnect before the next one.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.db = db;
    assert_all_delivered_once(&app, &manifest, &log).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("retrying in"), "a retry was logged: {text}");
}

/// The S3 server killed (SIGKILL) mid-stream and a new one started with the same objects (as a
/// server that keeps its data comes back): moto keeps its objects in memory, so the new one is
/// filled before the loader's address (a proxy) leads to it; while neither runs, connections
/// to that address are cut at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_server_killed_mid_stream_and_started_again_ends_with_every_file_applied_once() {
    let mut app = spawn_app().await;
    let (manifest, files) = sample_files();
    let bucket = unique_bucket();
    let source = |port: u16| {
        format!(
            "bucket_endpoint=http://127.0.0.1:{port} bucket_id=testing \
             bucket_key=testing-secret-KEY9 bucket_name={bucket} bucket_path=data"
        )
    };
    let start_filled = |files: Vec<(String, Vec<u8>)>| {
        let source = &source;
        async move {
            let moto = ScratchMoto::start(free_port());
            let s3 = S3Source::new(&SourceConfig::parse(&source(moto.port)).unwrap()).await;
            s3.ensure_bucket().await.unwrap();
            for (key, body) in files {
                s3.put(&key, body).await.unwrap();
            }
            moto
        }
    };
    let mut moto = start_filled(files.clone()).await;
    let address = Proxy::start(moto.port, true).await;
    app.env.insert("SOURCE".into(), source(address.port));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("loader.log");
    let _loader = loader(&app.env, &log);
    for _ in 0..2 {
        wait_for_delivery_in_hand(&app.db, &app.database, &log).await;
        address.set_up(false);
        moto.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        moto = start_filled(files.clone()).await;
        address.set_target(moto.port);
        address.set_up(true);
    }
    assert_all_delivered_once(&app, &manifest, &log).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("retrying in"), "a retry was logged: {text}");
}

async fn connect(target: &str) -> tokio_postgres::Client {
    let (db, conn) = tokio_postgres::connect(target, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db
}

fn unique_bucket() -> String {
    crate::helpers::unique_name("peo-kill")
}
