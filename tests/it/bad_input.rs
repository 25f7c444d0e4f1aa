//! Each kind of bad file: a clear error naming file, line and column, nothing of the file
//! persisted, an ERROR ledger row, its stream stopped there while other tables go on.
use crate::helpers::{gzip, spawn_app};

fn strategy(id: &str, status: &str, event: i64) -> String {
    format!("{id},S-{id},Strategy {id},ops,IBKR,{status},1000.50,2022-09-01 10:00:00,2022-09-01 10:00:00,{event}\n")
}

const ORDER: &str = "1,1,c0a8e8a2-0000-4000-8000-000000000001,US0378331005,BUY,LIMIT,DAY,100,187.5,,USD,NEW,2022-09-22 09:58:53,2022-09-22 09:58:53,5\n";

/// Loads a good LOAD file, then the bad CDC file, then a good later CDC file of the same table;
/// an orders file goes alongside. Returns the error recorded for the bad file.
async fn check_bad_file(name: &str, bad_body: Vec<u8>, expected: &[&str]) {
    let app = spawn_app().await;
    let load = format!(
        "{}{}",
        strategy("1", "ACTIVE", 1),
        strategy("2", "ACTIVE", 2)
    );
    app.put_csv("strategies", "LOAD00000001.csv.gz", &load)
        .await;
    let loader = app.loader(&[]).await;
    app.drain(&loader).await;
    let before = app
        .rows("SELECT * FROM paper_engine.strategies ORDER BY 1")
        .await;

    let bad_key = app.key("strategies", "20220922-100000000.csv.gz");
    app.put(&bad_key, bad_body).await;
    let later_key = app
        .put_csv(
            "strategies",
            "20220922-100100000.csv.gz",
            &format!("U,{}", strategy("1", "PAUSED", 9)),
        )
        .await;
    let orders_key = app.put_csv("orders", "LOAD00000001.csv.gz", ORDER).await;

    let outcome = loader.poll_once().await.unwrap();
    assert_eq!(outcome.failed.len(), 1, "{name}: {outcome:?}");
    let failed = &outcome.failed[0];
    assert_eq!(failed.key, bad_key);
    assert!(!failed.retryable, "{name}: {failed:?}");
    assert!(
        outcome.delivered.iter().any(|d| d.key == orders_key),
        "{name}: other tables go on"
    );

    let row = app.ledger(&bad_key).await.expect("an ERROR ledger row");
    assert_eq!(row.status, "ERROR", "{name}");
    let error = row.error.unwrap();
    assert!(error.starts_with(&bad_key), "{name}: {error}");
    for part in expected {
        assert!(error.contains(part), "{name}: `{part}` not in `{error}`");
    }
    assert_eq!(failed.error, error);
    // Nothing of the bad file was persisted, and the stream waits at it.
    assert_eq!(
        app.rows("SELECT * FROM paper_engine.strategies ORDER BY 1")
            .await,
        before,
        "{name}"
    );
    assert!(app.ledger(&later_key).await.is_none(), "{name}");
    assert_eq!(app.count("orders").await, 1);

    // The next pass does not retry it: the stream is reported blocked.
    let again = loader.poll_once().await.unwrap();
    assert!(again.is_idle(), "{name}: {again:?}");
    assert_eq!(again.blocked.len(), 1, "{name}");
    assert_eq!(again.blocked[0].0, bad_key);

    // Replacing the file (a new ETag) unblocks the stream.
    app.put_csv(
        "strategies",
        "20220922-100000000.csv.gz",
        &format!("U,{}", strategy("2", "RETIRED", 8)),
    )
    .await;
    let fixed = loader.poll_once().await.unwrap();
    assert_eq!(fixed.delivered.len(), 2, "{name}: {fixed:?}");
    assert_eq!(app.ledger(&bad_key).await.unwrap().status, "SUCCESS");
    assert_eq!(app.ledger(&later_key).await.unwrap().status, "SUCCESS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_gzip() {
    check_bad_file(
        "not gzip",
        b"U,1,S-1,this is plain text\n".to_vec(),
        &["line 1", "gzip"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_gzip() {
    let body: String = (0..2000)
        .map(|i| format!("U,{}", strategy("1", "ACTIVE", 100 + i)))
        .collect();
    let gz = gzip(body.as_bytes());
    check_bad_file("truncated", gz[..gz.len() / 2].to_vec(), &["line ", "gzip"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_field_count() {
    let body = format!("U,{}U,1,S-1,Strategy 1,ops\n", strategy("2", "PAUSED", 3));
    check_bad_file(
        "field count",
        gzip(body.as_bytes()),
        &["line 2", "expected 11 fields, found 5"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_value() {
    let body = format!(
        "U,{}U,2,S-2,Strategy 2,ops,IBKR,ACTIVE,12x.5,2022-09-01 10:00:00,2022-09-01 10:00:00,4\n",
        strategy("1", "PAUSED", 3)
    );
    check_bad_file(
        "unparsable",
        gzip(body.as_bytes()),
        &["line 2", "column 7 (max_notional)", "12x.5"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timestamp() {
    let body = "U,2,S-2,Strategy 2,ops,IBKR,ACTIVE,,2022-02-30 10:00:00,2022-09-01 10:00:00,4\n";
    check_bad_file(
        "timestamp",
        gzip(body.as_bytes()),
        &["line 1", "column 8 (created_at)", "2022-02-30 10:00:00"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_op() {
    let body = format!(
        "U,{}X,{}",
        strategy("1", "PAUSED", 3),
        strategy("2", "PAUSED", 4)
    );
    check_bad_file(
        "unknown op",
        gzip(body.as_bytes()),
        &["line 2", "column Op", "\"X\""],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_key() {
    let body = format!(
        "U,{}I,{}",
        strategy("1", "PAUSED", 3),
        strategy("", "NEW", 4)
    );
    check_bad_file(
        "null key",
        gzip(body.as_bytes()),
        &["line 2", "column 1 (strategy_id)", "NULL"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_too_long_for_its_column() {
    let long = "X".repeat(17);
    let body =
        format!("U,2,S-2,Strategy 2,ops,IBKR,{long},,2022-09-01 10:00:00,2022-09-01 10:00:00,4\n");
    check_bad_file(
        "too long",
        gzip(body.as_bytes()),
        &["line 1", "column 6 (status)"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_records_nothing_for_a_bad_file() {
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
    )
    .await;
    // Loaded once for real, so the ledger exists; the bad file comes after.
    let real = app.loader(&[]).await;
    app.drain(&real).await;
    let key = app
        .put_csv(
            "strategies",
            "20220922-095853123.csv.gz",
            "I,1,not enough\n",
        )
        .await;
    let before = app.database_state().await;
    let loader = app.loader(&[("DRY_RUN", "true")]).await;
    let outcome = loader.poll_once().await.unwrap();
    paper_engine_orders::target::Target::finish(loader.target()).await;
    assert_eq!(outcome.failed.len(), 1);
    assert!(outcome.failed[0].error.contains("line 1"));
    assert!(app.ledger(&key).await.is_none());
    assert_eq!(app.database_state().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_state_shows_a_stopped_stream_its_head_reason_and_waiting_files() {
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &strategy("1", "ACTIVE", 1),
    )
    .await;
    let bad = app
        .put_csv("strategies", "20220922-095853123.csv.gz", "I,2,too,few\n")
        .await;
    app.put_csv(
        "strategies",
        "20220922-100000000.csv.gz",
        &format!("I,{}", strategy("3", "ACTIVE", 3)),
    )
    .await;
    app.put_csv("orders", "LOAD00000001.csv.gz", ORDER).await;
    let loader = app.loader(&[]).await;
    let streams = loader.streams();
    app.drain(&loader).await;
    let state = streams.borrow().clone();
    let strategies = &state["strategies"];
    assert_eq!(strategies.pending, 2, "the bad file and the one behind it");
    assert_eq!(strategies.head.as_deref(), Some(bad.as_str()));
    let stopped = strategies.stopped.as_ref().expect("stopped");
    assert_eq!(stopped.key, bad);
    assert!(stopped.reason.contains("line 1"), "{}", stopped.reason);
    assert_eq!(strategies.in_flight, None);
    let orders = &state["orders"];
    assert_eq!((orders.pending, orders.stopped.is_none()), (0, true));
    // The same state is in the gauges.
    let m = loader.metrics();
    assert_eq!(m.pending_files.with_label_values(&["strategies"]).get(), 2);
    assert_eq!(m.stream_stopped.with_label_values(&["strategies"]).get(), 1);
    assert_eq!(m.stream_stopped.with_label_values(&["orders"]).get(), 0);
}
