//! DMS full-load re-runs (`RELOAD_POLICY`) and late change files (`LATE_FILE_POLICY`), through
//! the binary: what the table, the ledger and the operator tools show.
use crate::helpers::{spawn_app, strategy, TestApp};
use crate::operate::run;

fn change(op: &str, id: u32, status: &str, event: i64) -> String {
    format!("{op},{}", strategy(id, status, event))
}

async fn rows(app: &TestApp) -> Vec<(String, String)> {
    app.rows("SELECT strategy_id, status FROM paper_engine.strategies ORDER BY 1")
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect()
}

fn pairs(list: &[(u32, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(id, s)| (id.to_string(), s.to_string()))
        .collect()
}

/// Strategies 1-3 loaded, then a change file pausing 1: delivered by a one-shot run.
async fn loaded(app: &TestApp) -> String {
    let load = app
        .put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            &(1..=3)
                .map(|i| strategy(i, "ACTIVE", i64::from(i)))
                .collect::<String>(),
        )
        .await;
    app.put_csv(
        "strategies",
        "20220922-100000000.csv.gz",
        &change("U", 1, "PAUSED", 10),
    )
    .await;
    let (code, out, err) = run(app, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        rows(app).await,
        pairs(&[(1, "PAUSED"), (2, "ACTIVE"), (3, "ACTIVE")])
    );
    load
}

/// DMS re-runs the full load: the same name, new content (3 gone, 5 new, 2 changed).
async fn rerun(app: &TestApp) -> String {
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &[
            strategy(1, "PAUSED", 10),
            strategy(2, "CLOSED", 20),
            strategy(5, "ACTIVE", 50),
        ]
        .concat(),
    )
    .await
}

async fn reloads(app: &TestApp) -> Vec<Vec<Option<String>>> {
    app.rows(
        "SELECT status, files, creates, amends, removes, unchanged, previous_delivery_id IS NOT NULL
           FROM paper_engine.loader_reloads ORDER BY id",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_load_rerun_stops_the_stream_by_default_until_retry_replaces_the_table() {
    let app = spawn_app().await;
    let load = loaded(&app).await;
    rerun(&app).await;
    let later = app
        .put_csv(
            "strategies",
            "20220923-100000000.csv.gz",
            &change("I", 6, "ACTIVE", 60),
        )
        .await;

    // Stopped: nothing of the table changes, the stream waits, the operator is told what to do.
    let (code, out, err) = run(&app, &[], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("DMS re-ran the full load of strategies"),
        "{err}"
    );
    assert!(err.contains("RELOAD_POLICY=stop"), "{err}");
    assert!(err.contains(&format!("retry {load}")), "{err}");
    assert_eq!(
        rows(&app).await,
        pairs(&[(1, "PAUSED"), (2, "ACTIVE"), (3, "ACTIVE")])
    );
    assert_eq!(app.ledger(&load).await.unwrap().status, "ERROR");
    assert!(app.ledger(&later).await.is_none(), "the stream waits");
    let detected = reloads(&app).await;
    assert_eq!(detected.len(), 1, "{detected:?}");
    assert_eq!(detected[0][0].as_deref(), Some("DETECTED"));
    assert_eq!(
        detected[0][6].as_deref(),
        Some("t"),
        "the earlier delivery is kept"
    );
    let (code, status, _) = run(&app, &["status"], &[]);
    assert_eq!(code, 1, "a stream is stopped:\n{status}");
    assert!(status.contains("DMS re-ran the full load"), "{status}");

    // Another run changes nothing: still stopped at the same file.
    let (code, _, _) = run(&app, &[], &[]);
    assert_eq!(code, 1);
    assert_eq!(reloads(&app).await.len(), 1);

    // retry: the operator's go-ahead; the table is the new full load, then the stream goes on.
    let (code, out, err) = run(&app, &["retry", &load, "--reason", "DMS reload"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        rows(&app).await,
        pairs(&[(1, "PAUSED"), (2, "CLOSED"), (5, "ACTIVE"), (6, "ACTIVE")])
    );
    let row = app.ledger(&load).await.unwrap();
    assert_eq!(row.status, "SUCCESS");
    // 5 created, 2 amended, 3 removed, 1 unchanged.
    assert_eq!(row.counts(), (3, 1, 1, 1, 1));
    assert_eq!(app.ledger(&later).await.unwrap().status, "SUCCESS");
    let applied = reloads(&app).await;
    assert_eq!(applied.len(), 1);
    assert_eq!(
        applied[0][..6]
            .iter()
            .map(|v| v.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["APPLIED", "1", "1", "1", "1", "1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reload_policy_the_table_is_replaced_by_every_full_load_file_in_one_delivery() {
    let app = spawn_app().await;
    // A full load in two files.
    let first = app
        .put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            &[strategy(1, "ACTIVE", 1), strategy(2, "ACTIVE", 2)].concat(),
        )
        .await;
    let second = app
        .put_csv(
            "strategies",
            "LOAD00000002.csv.gz",
            &strategy(3, "ACTIVE", 3),
        )
        .await;
    app.put_csv(
        "strategies",
        "20220922-100000000.csv.gz",
        &change("I", 4, "ACTIVE", 4),
    )
    .await;
    let (code, out, err) = run(&app, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app.count("strategies").await, 4);

    // DMS re-runs it: the second file is rewritten (3 changed); 4, which only a change file
    // brought, is not in the new full load... DMS would have it there; here its absence shows
    // the table is replaced, not merged.
    app.put_csv(
        "strategies",
        "LOAD00000002.csv.gz",
        &strategy(3, "PAUSED", 30),
    )
    .await;
    let (code, out, err) = run(&app, &[], &[("RELOAD_POLICY", "reload")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("replacing the table by its full load in one transaction"),
        "{err}"
    );
    assert_eq!(
        rows(&app).await,
        pairs(&[(1, "ACTIVE"), (2, "ACTIVE"), (3, "PAUSED")])
    );
    let row = app.ledger(&second).await.unwrap();
    assert_eq!(row.status, "SUCCESS");
    // 3 keys read: 1 amended, 4 removed, 2 unchanged.
    assert_eq!(row.counts(), (3, 0, 1, 1, 2));
    assert_eq!(app.ledger(&first).await.unwrap().status, "SUCCESS");
    let applied = reloads(&app).await;
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0][0].as_deref(), Some("APPLIED"));
    assert_eq!(applied[0][1].as_deref(), Some("2"), "both files read");

    // Nothing more to do: a second run delivers nothing and changes nothing.
    let (code, _, _) = run(&app, &[], &[("RELOAD_POLICY", "reload")]);
    assert_eq!(code, 0);
    assert_eq!(reloads(&app).await.len(), 1);
    assert_eq!(app.count("strategies").await, 3);

    // A new full-load file after change files is a re-run too.
    let third = app
        .put_csv(
            "strategies",
            "LOAD00000003.csv.gz",
            &strategy(7, "ACTIVE", 7),
        )
        .await;
    let (code, out, err) = run(&app, &[], &[("RELOAD_POLICY", "reload")]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app.ledger(&third).await.unwrap().status, "SUCCESS");
    assert_eq!(
        rows(&app).await,
        pairs(&[(1, "ACTIVE"), (2, "ACTIVE"), (3, "PAUSED"), (7, "ACTIVE")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_rerun_keeps_the_table_and_the_stream_goes_on() {
    let app = spawn_app().await;
    let load = loaded(&app).await;
    rerun(&app).await;
    let (code, _, _) = run(&app, &[], &[]);
    assert_eq!(code, 1);
    let (code, out, err) = run(&app, &["skip", &load, "--reason", "keep ours"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&app, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        rows(&app).await,
        pairs(&[(1, "PAUSED"), (2, "ACTIVE"), (3, "ACTIVE")])
    );
    assert_eq!(app.ledger(&load).await.unwrap().status, "SKIPPED");
    assert_eq!(reloads(&app).await[0][0].as_deref(), Some("DISMISSED"));
}

/// A change file older than the last delivered one: by default its rows apply only where no
/// later change file wrote the row; with `stop` the stream stops at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_change_file_is_applied_guarded_or_stops_the_stream() {
    let app = spawn_app().await;
    loaded(&app).await;
    // Commit time 09:00, before the delivered 10:00 file: it closes 1 (paused at 10:00, so
    // kept), pauses 2, adds 4 and removes 3.
    let late_body = [
        change("U", 1, "CLOSED", 5),
        change("U", 2, "PAUSED", 6),
        change("I", 4, "ACTIVE", 7),
        change("D", 3, "ACTIVE", 3),
    ]
    .concat();
    let late = app
        .put_csv("strategies", "20220922-090000000.csv.gz", &late_body)
        .await;

    let (code, out, err) = run(&app, &[], &[("LATE_FILE_POLICY", "stop")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("a late change file"), "{err}");
    assert_eq!(app.ledger(&late).await.unwrap().status, "ERROR");
    assert_eq!(app.count("strategies").await, 3, "nothing of it applied");

    let (code, out, err) = run(&app, &["retry", &late, "--reason", "apply it guarded"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("arrived late"), "{err}");
    assert_eq!(
        rows(&app).await,
        pairs(&[(1, "PAUSED"), (2, "PAUSED"), (4, "ACTIVE")])
    );
    let row = app.ledger(&late).await.unwrap();
    assert_eq!(row.status, "SUCCESS");
    assert_eq!(row.counts(), (4, 1, 1, 1, 1), "1 kept is unchanged");
    let flagged = app
        .rows(&format!(
            "SELECT late FROM paper_engine.loader_deliveries WHERE object_key = '{late}'"
        ))
        .await;
    assert_eq!(flagged[0][0].as_deref(), Some("t"));
}

/// With `TimestampColumnName` and a table column of that name, the table keeps each row's commit
/// time, and a late file's rows are judged by it, row by row: a row newer than the table's is
/// applied even where a later file wrote the key (which the file names alone would refuse), an
/// older one is kept out, and at the same commit time the file names decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_file_s_rows_are_judged_by_the_commit_time_the_table_keeps() {
    let app = spawn_app().await;
    let settings = r#"{"TimestampColumnName": "commit_ts"}"#;
    // The schema first, then the column (a migration of the user's).
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{out}{err}");
    app.rows("ALTER TABLE paper_engine.strategies ADD COLUMN commit_ts timestamp")
        .await;
    let at = |time: &str, record: String| format!("2022-09-22 {time},{record}");
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &(1..=3)
            .map(|i| at("08:00:00", strategy(i, "ACTIVE", i64::from(i))))
            .collect::<String>(),
    )
    .await;
    // A batch DMS wrote at 10:00 with commits from 09:10 on.
    app.put_csv(
        "strategies",
        "20220922-100000000.csv.gz",
        &[
            format!("U,{}", at("09:10:00", strategy(1, "PAUSED", 11))),
            format!("U,{}", at("09:50:00", strategy(2, "PAUSED", 12))),
            format!("U,{}", at("09:29:00", strategy(3, "PAUSED", 13))),
        ]
        .concat(),
    )
    .await;
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{out}{err}");
    // The 09:30 batch, late: its 09:29 commits are newer than 1's, older than 2's, and at the
    // same time as 3's (which the later-named file wrote: it stays).
    let late = app
        .put_csv(
            "strategies",
            "20220922-093000000.csv.gz",
            &(1..=3)
                .map(|i| {
                    format!(
                        "U,{}",
                        at("09:29:00", strategy(i, "CLOSED", 20 + i64::from(i)))
                    )
                })
                .collect::<String>(),
        )
        .await;
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("arrived late"), "{err}");
    assert_eq!(
        app.rows("SELECT strategy_id, status, commit_ts FROM paper_engine.strategies ORDER BY 1")
            .await,
        [
            ["1", "CLOSED", "2022-09-22 09:29:00"],
            ["2", "PAUSED", "2022-09-22 09:50:00"],
            ["3", "PAUSED", "2022-09-22 09:29:00"],
        ]
        .map(|r| r.map(|v| Some(v.to_string())).to_vec())
    );
    let row = app.ledger(&late).await.unwrap();
    assert_eq!(row.counts(), (3, 0, 1, 0, 2), "2 and 3 kept are unchanged");
}
