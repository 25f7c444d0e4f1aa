//! A stream's session on the real Postgres: the delivery's checks go out together with the COPY
//! into the staging table, so a stream another loader holds, or a file delivered meanwhile,
//! abandons that COPY; nothing of it stays, and the session goes on with the next file.
use std::sync::Arc;

use paper_engine_orders::dms::TableSpec;
use paper_engine_orders::target::{Chunk, DeliveryPlan, Rows, StreamSummary, Target, TargetError};
use tokio::sync::mpsc;

use crate::helpers::spawn_app;

/// A change file of `table` with no rows.
fn plan(id: i64, key: &str, table: &Arc<TableSpec>) -> DeliveryPlan {
    DeliveryPlan {
        id,
        key: key.to_string(),
        etag: "\"etag\"".into(),
        size: 20,
        table: table.clone(),
        kind: "CDC",
        started_at: chrono::Utc::now(),
        notification: None,
        direct_allowed: false,
        late: None,
        reload: None,
        upserts_only: false,
        keep_unsupplied: false,
        commit_column: None,
        add_columns: Vec::new(),
    }
}

fn no_rows() -> Rows {
    Box::new(|_| {
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(Chunk::End(StreamSummary::default())).unwrap();
        rx
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_stream_is_refused_a_session_and_a_delivered_file_leaves_the_session_going() {
    let app = spawn_app().await;
    let loader = app.loader(&[]).await;
    let target = loader.target();
    let table = target.tables()["strategies"].clone();
    let key = |n: u32| app.key("strategies", &format!("20220922-0958{n:02}000.csv.gz"));

    // Another loader holds the stream's lease: no session, nothing recorded.
    let lock = "pg_advisory_lock(1885434985, hashtext('paper_engine.strategies'))";
    app.db
        .batch_execute(&format!("SELECT {lock}"))
        .await
        .unwrap();
    let held = target.open_session(&table).await;
    assert!(matches!(held, Err(TargetError::Busy(_))), "held");
    assert_eq!(app.ledger(&key(1)).await, None);

    // Released: a session takes the lease, and holds it while it lasts (an operator's check,
    // or a second session, finds the stream busy).
    app.db
        .batch_execute(&format!("SELECT {}", lock.replace("_lock", "_unlock")))
        .await
        .unwrap();
    let mut session = target.open_session(&table).await.unwrap();
    assert!(matches!(
        target.open_session(&table).await,
        Err(TargetError::Busy(_))
    ));
    let free = "SELECT pg_try_advisory_xact_lock(1885434985, hashtext('paper_engine.strategies'))";
    assert_eq!(app.rows(free).await[0][0].as_deref(), Some("f"));
    target
        .apply(&mut session, &plan(2, &key(1), &table), no_rows())
        .await
        .unwrap();
    assert_eq!(app.ledger(&key(1)).await.unwrap().id, 2);

    // Delivered already: nothing done again, the ledger row is the first delivery's.
    let again = target
        .apply(&mut session, &plan(3, &key(1), &table), no_rows())
        .await;
    assert!(
        matches!(again, Err(TargetError::AlreadyDelivered(_))),
        "{again:?}"
    );
    assert_eq!(app.ledger(&key(1)).await.unwrap().id, 2);

    // And the session goes on with the next file.
    target
        .apply(&mut session, &plan(4, &key(2), &table), no_rows())
        .await
        .unwrap();
    assert_eq!(app.ledger(&key(2)).await.unwrap().status, "SUCCESS");
    // Closed: the lease is free again.
    target.close_session(session).await;
    assert_eq!(app.rows(free).await[0][0].as_deref(), Some("t"));
    let again = target.open_session(&table).await.unwrap();
    // Dropped without being closed (a stop): the connection is closed, freeing the lease.
    drop(again);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.rows(free).await[0][0].as_deref() != Some("t") {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease outlived its session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
