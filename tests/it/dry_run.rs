//! DRY_RUN through the binary, as a user runs it: one pass over every pending file, exact
//! per-file counts and a per-table summary, exit 0 or 1, and nothing persisted (not even the
//! schema), in one-shot and service mode alike.
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{small_sample, spawn_app, TestApp, BIN};
use paper_engine_orders::sample::SampleManifest;

/// A dry run of a few small files takes a second or two; a loop that never ends is caught well
/// before the test harness would be.
const BOUND: Duration = Duration::from_secs(60);

/// Runs the binary with the test's environment and `extra`, at most `BOUND`; returns its exit
/// code (None: still running at the bound, then killed) and its log.
fn run(app: &TestApp, extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &app.env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + BOUND;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(log.path()).unwrap())
}

/// The `Delivery N: process_dbo <key>.` lines, per key: (count, delivery ids).
fn processed(log: &str) -> BTreeMap<String, Vec<i64>> {
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in log.lines() {
        let Some(rest) = line.split("]: Delivery ").nth(1) else {
            continue;
        };
        let Some((id, key)) = rest.split_once(": process_dbo ") else {
            continue;
        };
        let key = key.trim_end_matches('.').to_string();
        seen.entry(key).or_default().push(id.parse().unwrap());
    }
    seen
}

/// The summary line of `table`, as numbers: files, rows, creates, amends, removes, unchanged,
/// errors (the seconds column, last, is left out).
fn summary_line(log: &str, table: &str) -> Vec<u64> {
    let after = log
        .split("Dry run summary")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let line = after
        .lines()
        .find_map(|l| {
            let cells: Vec<&str> = l.split("]: ").nth(1)?.split_whitespace().collect();
            (cells.first() == Some(&table)).then(|| {
                cells[1..cells.len() - 1]
                    .iter()
                    .map(|c| c.parse().unwrap())
                    .collect()
            })
        })
        .unwrap_or_else(|| panic!("no summary line for {table} in:\n{log}"));
    line
}

fn expected_summary(manifest: &SampleManifest, table: &str) -> Vec<u64> {
    let mut totals = vec![0u64; 7];
    for f in manifest.files.iter().filter(|f| f.table == table) {
        let c = f.counts;
        for (i, v) in [1, f.rows, c.creates, c.amends, c.removes, c.unchanged, 0]
            .into_iter()
            .enumerate()
        {
            totals[i] += v;
        }
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_checks_every_file_once_reports_the_real_counts_exits_0_and_persists_nothing() {
    let app = spawn_app().await;
    let manifest = paper_engine_orders::app::upload_sample(&app.s3, small_sample(5, false))
        .await
        .unwrap();
    assert!(manifest.files.len() >= 10, "{}", manifest.files.len());
    let empty = app.database_state().await;
    assert!(!empty.contains("paper_engine"), "a fresh database: {empty}");

    for service in ["false", "true"] {
        let (code, log) = run(
            &app,
            &[
                ("DRY_RUN", "true"),
                ("RUN_AS_SERVICE", service),
                ("MIN_SLEEP", "0"),
                ("MAX_SLEEP", "0"),
            ],
        );
        assert_eq!(code, Some(0), "RUN_AS_SERVICE={service}:\n{log}");
        let first = log.lines().next().unwrap_or_default();
        assert!(
            first.contains("dry run: one validation pass"),
            "the first line says what a dry run does: {first}"
        );
        if service == "true" {
            assert!(first.contains("not a service"), "{first}");
        }
        // Every file exactly once, in order, with consecutive ids from the (empty) ledger's next.
        let seen = processed(&log);
        assert_eq!(seen.len(), manifest.files.len(), "{log}");
        for f in &manifest.files {
            assert_eq!(seen.get(&f.key).map(Vec::len), Some(1), "{}:\n{log}", f.key);
        }
        // The counts a real run would record, file by file and per table.
        for f in &manifest.files {
            let id = seen[&f.key][0];
            let c = f.counts;
            let line = format!(
                "Delivery {id}: {} (create: {}, amend: {}, remove: {}).",
                f.table, c.creates, c.amends, c.removes
            );
            assert!(log.contains(&line), "`{line}` missing:\n{log}");
        }
        for table in ["strategies", "orders", "executions"] {
            assert_eq!(
                summary_line(&log, table),
                expected_summary(&manifest, table),
                "{table}:\n{log}"
            );
        }
        assert!(log.contains("every one would apply"), "{log}");
        assert!(!log.contains("persisted to postgres"), "{log}");
        // Not even the schema or the ledger was left behind.
        assert_eq!(
            app.database_state().await,
            empty,
            "RUN_AS_SERVICE={service}"
        );
    }

    // Loaded for real, then one more change file: a dry run checks only that file, against the
    // loaded state, with the id the real run then gives it; tables, ledger, outbox and sequences
    // are unchanged.
    let (code, log) = run(&app, &[]);
    assert_eq!(code, Some(0), "{log}");
    let key = app
        .put_csv(
            "strategies",
            "20991231-235959000.csv.gz",
            "U,1,S-1,Renamed,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n\
             I,9001,S-9001,New,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,9001\n",
        )
        .await;
    let loaded = app.database_state().await;
    let (code, log) = run(&app, &[("DRY_RUN", "true")]);
    assert_eq!(code, Some(0), "{log}");
    let seen = processed(&log);
    assert_eq!(seen.keys().collect::<Vec<_>>(), vec![&key], "{log}");
    assert!(
        log.contains("strategies (create: 1, amend: 1, remove: 0)."),
        "{log}"
    );
    assert_eq!(app.database_state().await, loaded);
    let (code, _) = run(&app, &[]);
    assert_eq!(code, Some(0));
    let real = app.ledger(&key).await.unwrap();
    assert_eq!(
        real.id, seen[&key][0],
        "the dry run showed the real run's id"
    );
    assert_eq!(real.counts(), (2, 1, 1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_with_a_bad_file_reports_it_checks_the_rest_exits_1_and_persists_nothing() {
    let app = spawn_app().await;
    let strategies = app
        .put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n\
             2,S-2,Two,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,2\n",
        )
        .await;
    // Line 2 has a value that is not a timestamp in column 8 (created_at).
    let bad = app
        .put_csv(
            "strategies",
            "20220922-095853123.csv.gz",
            "I,3,S-3,Three,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,3\n\
             I,4,S-4,Four,ops,IBKR,ACTIVE,,yesterday,2022-09-01 10:00:00,4\n",
        )
        .await;
    let later = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            "D,2,S-2,Two,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,2\n",
        )
        .await;
    let empty = app.database_state().await;
    for service in ["false", "true"] {
        let (code, log) = run(&app, &[("DRY_RUN", "true"), ("RUN_AS_SERVICE", service)]);
        assert_eq!(code, Some(1), "RUN_AS_SERVICE={service}:\n{log}");
        let seen = processed(&log);
        for key in [&strategies, &bad, &later] {
            assert_eq!(seen.get(key).map(Vec::len), Some(1), "{key}:\n{log}");
        }
        let error = log
            .lines()
            .find(|l| l.contains("failed:") && l.contains(&bad))
            .unwrap_or_else(|| panic!("no error naming {bad}:\n{log}"));
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("column"), "{error}");
        // The file after the bad one is still checked, against the files that would apply.
        assert!(
            log.contains("strategies (create: 0, amend: 0, remove: 1)."),
            "{log}"
        );
        assert_eq!(
            summary_line(&log, "strategies"),
            vec![2, 3, 2, 0, 1, 0, 1],
            "{log}"
        );
        assert!(log.contains("1 would fail"), "{log}");
        assert_eq!(
            app.database_state().await,
            empty,
            "RUN_AS_SERVICE={service}"
        );
    }
}
