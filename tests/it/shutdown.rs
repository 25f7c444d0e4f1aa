//! Stopping and sharing, through the binary: SIGTERM finishes the delivery in hand within
//! `SHUTDOWN_GRACE` (or rolls it back whole after it, and says so); a one-shot run waits for a
//! stream another instance holds (`ONE_SHOT_WAIT`), takes it over when the holder lets go, and
//! otherwise exits 1 naming the stream.
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::{gzip, spawn_app, ChildGuard, TestApp};
use crate::process::{command, orders, send_signal, wait_with_timeout};

/// Starts a one-shot load of a big `orders` full load; returns once its progress is logged, with
/// the rest of the log collected on a thread.
fn start_big_load(
    app: &TestApp,
    extra: &[(&str, &str)],
) -> (ChildGuard, std::thread::JoinHandle<String>) {
    let mut child = ChildGuard(command(app, extra).stderr(Stdio::piped()).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("processed 20000/") {
            break;
        }
    }
    assert!(log.contains("processed 20000/"), "{log}");
    let rest = std::thread::spawn(move || {
        for line in lines {
            log.push_str(&line.unwrap_or_default());
            log.push('\n');
        }
        log
    });
    (child, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_delivery_in_hand_within_the_grace() {
    let app = spawn_app().await;
    let key = app.key("orders", "LOAD00000001.csv.gz");
    app.put(&key, gzip(orders(200_000).as_bytes())).await;
    let (mut child, log) = start_big_load(&app, &[("RUN_AS_SERVICE", "true")]);
    send_signal(child.0.id(), "TERM");
    let code = wait_with_timeout(&mut child.0, Duration::from_secs(120));
    let log = log.join().unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("finishing the deliveries in hand"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(app.ledger(&key).await.unwrap().status, "SUCCESS", "{log}");
    assert_eq!(app.count("orders").await, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_the_delivery_in_hand_is_rolled_back_whole_and_said_so() {
    let app = spawn_app().await;
    let key = app.key("orders", "LOAD00000001.csv.gz");
    app.put(&key, gzip(orders(200_000).as_bytes())).await;
    let (mut child, log) =
        start_big_load(&app, &[("RUN_AS_SERVICE", "true"), ("SHUTDOWN_GRACE", "0")]);
    send_signal(child.0.id(), "TERM");
    let code = wait_with_timeout(&mut child.0, Duration::from_secs(60));
    let log = log.join().unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("SHUTDOWN_GRACE (0 s) passed: the deliveries in hand are rolled back"),
        "{log}"
    );
    assert!(app.ledger(&key).await.is_none(), "nothing of it kept");
    assert_eq!(app.try_count("orders").await.unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_run_waits_for_a_stream_another_instance_holds_then_takes_it_over() {
    let app = spawn_app().await;
    let key = app
        .put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
        )
        .await;
    // Another instance holds the strategies stream (its transaction's advisory lock).
    let (holder, conn) = tokio_postgres::connect(&app.env["TARGET"], tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(conn);
    holder
        .batch_execute(
            "BEGIN; SELECT pg_advisory_xact_lock(1885434985, hashtext('paper_engine.strategies'))",
        )
        .await
        .unwrap();

    // Held beyond ONE_SHOT_WAIT: exit 1, naming the stream.
    let out = command(&app, &[("ONE_SHOT_WAIT", "2")]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Another loader still holds strategies"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Not delivered: strategies: 1 file(s) undelivered"),
        "{stderr}"
    );

    // The holder goes away two seconds into the next run: the run takes the stream over.
    let started = Instant::now();
    let mut child = ChildGuard(
        command(&app, &[("ONE_SHOT_WAIT", "60")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(holder);
    connection.abort();
    let code = wait_with_timeout(&mut child.0, Duration::from_secs(60));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut log).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("waiting for it"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(app.ledger(&key).await.unwrap().status, "SUCCESS");
}
