//! The binary as a user runs it: exit codes, configuration errors, secrets, log lines, service
//! mode and signals, and a SIGKILL in the middle of a delivery.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{gzip, spawn_app, unique_name, ChildGuard, TestApp, BIN};

/// Trust auth ignores the password, so it can be set to prove it is never printed.
const PG_PASSWORD: &str = "Pg-Secret-771";

pub fn command(app: &TestApp, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &app.env {
        cmd.env(k, v);
    }
    cmd.env(
        "TARGET",
        format!("{} password={PG_PASSWORD}", app.env["TARGET"]),
    );
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

fn strategies(n: usize) -> String {
    (1..=n)
        .map(|i| format!("{i},S-{i},Strategy {i},ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,{i}\n"))
        .collect()
}

pub fn orders(n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "{i},{},c0a8e8a2-0000-4000-8000-{i:012},US0378331005,BUY,LIMIT,DAY,100.5,187.25,,USD,NEW,2022-09-22 09:58:53.{:06},2022-09-22 09:58:53,{i}\n",
                i % 90,
                i % 1_000_000
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_loads_everything_and_exits_0_with_the_replaced_services_log_lines() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(5))
        .await;
    let key = app
        .put_csv("orders", "LOAD00000001.csv.gz", &orders(25_000))
        .await;
    let out = command(&app, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(app.count("orders").await, 25_000);
    assert_eq!(app.count("strategies").await, 5);
    let id = app.ledger(&key).await.unwrap().id;
    let shape = |line: &str| {
        // 2022-09-22 09:58:53 INFO [loader.rs:370]: Delivery 24: persisted to postgres.
        let b = line.as_bytes();
        line.len() > 30
            && b[4] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && line[20..].starts_with("INFO [loader.rs:")
    };
    for expected in [
        format!("Delivery {id}: process_dbo {key}."),
        format!("Delivery {id}: processed 10000/"),
        format!("Delivery {id}: orders (create: 25000, amend: 0, remove: 0)."),
        format!("Delivery {id}: persisted to postgres."),
        format!("Delivery {id}: prometheus counters incremented."),
        format!("Delivery {id}: processed (0:00:"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&expected))
            .unwrap_or_else(|| panic!("no line with `{expected}` in:\n{stderr}"));
        assert!(shape(line), "line shape: {line}");
    }
    let progress = stderr
        .lines()
        .find(|l| l.contains(&format!("Delivery {id}: processed 10000/")))
        .unwrap();
    assert!(
        progress.ends_with("%)...") && progress.contains(" ("),
        "progress says a percentage: {progress}"
    );
    for secret in [PG_PASSWORD, "testing-secret-KEY9"] {
        assert!(!stderr.contains(secret), "secret {secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line() {
    let app = spawn_app().await;
    let key = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &strategies(3))
        .await;
    let out = command(&app, &[("LOG_FORMAT", "json")]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let id = app.ledger(&key).await.unwrap().id;
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 5, "{stderr}");
    for line in &lines {
        for field in ["timestamp", "level", "target", "source", "message"] {
            assert!(line.get(field).is_some(), "no {field} in {line}");
        }
    }
    let persisted = lines
        .iter()
        .find(|l| l["message"] == format!("Delivery {id}: persisted to postgres."))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(persisted["delivery_id"], id);
    let started = lines
        .iter()
        .find(|l| l["message"].as_str().unwrap().contains("process_dbo"))
        .unwrap();
    assert_eq!(started["table"], "strategies");
    assert_eq!(started["key"], key.as_str());
    assert_eq!(persisted["level"], "INFO");
    assert!(persisted["source"]
        .as_str()
        .unwrap()
        .starts_with("loader.rs:"));
    assert!(!stderr.contains(PG_PASSWORD), "no secret in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_exits_non_zero_when_a_delivery_fails() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", "1,too,few\n")
        .await;
    let out = command(&app, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("expected 10 fields, found 3"), "{stderr}");
    // Run again: the stream is still stopped at the bad file, so the backfill is still incomplete.
    let out = command(&app, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_name_the_variable_exit_2_and_hide_secrets() {
    let app = spawn_app().await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("SOURCE", "")], "SOURCE"),
        (
            &[(
                "SOURCE",
                "bucket_id=x bucket_key=Very-Secret-S3 bucket_name=b junk",
            )],
            "SOURCE",
        ),
        (
            &[(
                "TARGET",
                "user=u password=Pg-Secret-771 host=h port=notaport",
            )],
            "TARGET",
        ),
        (
            &[
                ("NATS", "nats://u:Nats-Secret-5@h:xx"),
                ("NOTIFICATIONS", "true"),
            ],
            "NATS",
        ),
        (&[("NOTIFICATIONS", "true")], "NATS"),
        (&[("RUN_AS_SERVICE", "sometimes")], "RUN_AS_SERVICE"),
        (&[("MIN_SLEEP", "soon")], "MIN_SLEEP"),
        (&[("MAX_SLEEP", "-3")], "MAX_SLEEP"),
        (&[("DRY_RUN", "2")], "DRY_RUN"),
    ];
    for (env, var) in cases {
        let out = command(&app, env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(&format!("{var}: ")), "{env:?}: {stderr}");
        for secret in [
            "Very-Secret-S3",
            "Pg-Secret-771",
            "Nats-Secret-5",
            "testing-secret-KEY9",
        ] {
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "{secret}: {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_file_configures_the_loader_like_docker_run() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(3))
        .await;
    let path = std::env::temp_dir().join(format!("{}.env", app.database));
    let mut file = String::from("# as for docker run --env-file\n");
    for (k, v) in &app.env {
        file.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(&path, file).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--env-file")
        .arg(&path);
    let out = cmd.output().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.count("strategies").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_picks_up_new_files_and_stops_on_sigterm() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(3))
        .await;
    let mut child = ChildGuard(
        command(
            &app,
            &[
                ("RUN_AS_SERVICE", "true"),
                ("MIN_SLEEP", "0.2"),
                ("MAX_SLEEP", "0.5"),
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let wait_for = |table: &'static str, n: i64| {
        let app = &app;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if app.try_count(table).await == Some(n) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(wait_for("strategies", 3).await);
    app.put_csv(
        "strategies",
        "20220922-095853123.csv.gz",
        "I,4,S-4,Strategy 4,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,4\n",
    )
    .await;
    assert!(wait_for("strategies", 4).await, "a new file is picked up");
    send_signal(child.0.id(), "TERM");
    let status = wait_with_timeout(&mut child.0, Duration::from_secs(20));
    assert_eq!(status, Some(0), "exits 0 on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_leaves_nothing_and_a_restart_loads_exactly_once() {
    let app = spawn_app().await;
    let key = app.key("orders", "LOAD00000001.csv.gz");
    app.put(&key, gzip(orders(300_000).as_bytes())).await;
    let mut child = ChildGuard(command(&app, &[]).stderr(Stdio::piped()).spawn().unwrap());
    let stderr = child.0.stderr.take().unwrap();
    let mut saw_progress = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains("processed 20000/") {
            saw_progress = true;
            break;
        }
    }
    assert!(saw_progress, "the delivery started");
    send_signal(child.0.id(), "KILL");
    child.0.wait().unwrap();
    // Killed mid-transaction: nothing of the file, no ledger row.
    assert_eq!(app.count("orders").await, 0);
    assert!(app.ledger(&key).await.is_none());

    let out = command(&app, &[]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.count("orders").await, 300_000);
    let row = app.ledger(&key).await.unwrap();
    assert_eq!(
        (row.status.as_str(), row.creates, row.rows),
        ("SUCCESS", 300_000, 300_000)
    );
    // And a third run has nothing to do.
    let out = command(&app, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(app.count("orders").await, 300_000);
}

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn wait_with_timeout(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_on_logs_in_the_replaced_services_order_and_hides_nats_credentials() {
    let app = spawn_app().await;
    let key = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &strategies(4))
        .await;
    let ds = unique_name("peo-log");
    let out = command(
        &app,
        &[
            ("NOTIFICATIONS", "true"),
            ("NATS", "nats://peo:Nats-Pass-42@127.0.0.1:4222"),
            ("NOTIFICATION_DATASOURCE", &ds),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Nats-Pass-42"), "{stderr}");
    let id = app.ledger(&key).await.unwrap().id;
    let position = |text: String| {
        stderr
            .find(&text)
            .unwrap_or_else(|| panic!("no `{text}` in:\n{stderr}"))
    };
    let order = [
        position(format!("Delivery {id}: process_dbo {key}.")),
        position(format!("Delivery {id}: persisted to postgres.")),
        position(format!("Delivery {id}: messages published.")),
        position(format!("Delivery {id}: prometheus counters incremented.")),
        position(format!("Delivery {id}: processed (")),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stderr}");
    let published: Option<String> = app
        .db
        .query_one(
            "SELECT published_at::text FROM paper_engine.loader_outbox WHERE delivery_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(published.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_table_folders_are_skipped_with_one_warning_each() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(2))
        .await;
    app.put_csv("positions", "LOAD00000001.csv.gz", "1,2,3\n")
        .await;
    app.put_csv("positions", "20220922-095853123.csv.gz", "I,1,2,3\n")
        .await;
    app.put_csv("fills", "LOAD00000001.csv.gz", "1\n").await;
    let out = command(&app, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(app.count("strategies").await, 2);
    for table in ["positions", "fills"] {
        let warnings = stderr
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains(&format!("dbo/{table}")))
            .count();
        assert_eq!(warnings, 1, "{table}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_the_configuration_ends_start_up_with_exit_2_and_its_own_message() {
    let app = spawn_app().await;
    let target = app.env["TARGET"].replace(
        &format!("dbname={}", app.database),
        "dbname=no_such_database_peo",
    );
    assert_ne!(target, app.env["TARGET"]);
    for service in ["false", "true"] {
        let started = Instant::now();
        let mut child = ChildGuard(
            command(&app, &[("TARGET", &target), ("RUN_AS_SERVICE", service)])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let status = wait_with_timeout(&mut child.0, Duration::from_secs(20));
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status, Some(2), "RUN_AS_SERVICE={service}:\n{stderr}");
        assert!(started.elapsed() < Duration::from_secs(15), "not retried");
        let line = stderr
            .lines()
            .find(|l| l.contains("Cannot start:"))
            .unwrap_or_else(|| panic!("no start-up error in:\n{stderr}"));
        assert!(line.contains("does not exist"), "{line}");
        assert!(line.contains("SQLSTATE 3D000"), "{line}");
        assert!(line.contains("Next step: check TARGET"), "{line}");
        assert!(!stderr.contains(PG_PASSWORD), "no password in the log");
        assert!(!stderr.contains("db error\n"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_ends_start_up_with_exit_2_and_an_unreachable_one_is_said_in_words() {
    let app = spawn_app().await;
    let missing = app.env["SOURCE"].replace(
        &format!("bucket_name={}", app.s3.bucket()),
        "bucket_name=no-such-bucket-peo",
    );
    assert_ne!(missing, app.env["SOURCE"]);
    let out = command(&app, &[("SOURCE", &missing)]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HeadBucket of no-such-bucket-peo failed (HTTP 404)"),
        "{stderr}"
    );
    assert!(stderr.contains("Next step: check SOURCE"), "{stderr}");
    assert!(!stderr.contains("Connected:"), "{stderr}");

    // Nothing listens on this port: the bucket does not answer; said in words, no debug dump.
    let port = crate::helpers::free_port();
    let unreachable = app.env["SOURCE"].replace(
        &crate::helpers::s3_endpoint(),
        &format!("http://127.0.0.1:{port}"),
    );
    assert_ne!(unreachable, app.env["SOURCE"]);
    let mut child = ChildGuard(
        command(&app, &[("SOURCE", &unreachable)])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_with_timeout(&mut child.0, Duration::from_secs(60));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("does not answer yet"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("DispatchFailure("),
        "no debug dump:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_refuses_a_bucket_path_that_holds_objects_unless_forced() {
    use paper_engine_orders::source::Source;
    let app = spawn_app().await;
    let sample = |force: bool| {
        let mut cmd = command(&app, &[]);
        cmd.args(["sample", "--scale", "0.001", "--cdc-files", "1"]);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    // The bucket path already holds something (a real bucket, say): refused, nothing written.
    app.put(&app.key("orders", "notes.txt"), b"kept".to_vec())
        .await;
    let load = app.key("strategies", "LOAD00000001.csv.gz");
    let out = sample(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to write the sample"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(app.s3.head(&load).await.unwrap(), None, "nothing written");
    // Forced: written.
    let out = sample(true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(app.s3.head(&load).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_that_is_not_utf8_is_an_error_naming_it_not_unset() {
    use std::os::unix::ffi::OsStrExt;
    let app = spawn_app().await;
    let mut cmd = command(&app, &[]);
    cmd.env("RUN_AS_SERVICE", std::ffi::OsStr::from_bytes(b"fal\xffse"));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("RUN_AS_SERVICE: is not valid UTF-8"),
        "{stderr}"
    );
    let out = command(&app, &[("MAX_SLEEP", "1e300")]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MAX_SLEEP"), "{stderr}");
}
