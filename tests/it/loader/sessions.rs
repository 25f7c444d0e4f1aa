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
async fn a_held_stream_or_a_delivered_file_abandons_the_copy_and_the_session_goes_on() {
    let app = spawn_app().await;
    let loader = app.loader(&[]).await;
    let target = loader.target();
    let table = target.tables()["strategies"].clone();
    let key = |n: u32| app.key("strategies", &format!("20220922-0958{n:02}000.csv.gz"));
    let mut session = target.open_session().await.unwrap();

    // Another loader holds the stream: left to it, nothing recorded.
    let lock = "pg_advisory_lock(1885434985, hashtext('paper_engine.strategies'))";
    app.db
        .batch_execute(&format!("SELECT {lock}"))
        .await
        .unwrap();
    let held = target
        .apply(&mut session, &plan(1, &key(1), &table), no_rows())
        .await;
    assert!(matches!(held, Err(TargetError::Busy(_))), "{held:?}");
    assert_eq!(app.ledger(&key(1)).await, None);

    // Released: the same session delivers it.
    app.db
        .batch_execute(&format!("SELECT {}", lock.replace("_lock", "_unlock")))
        .await
        .unwrap();
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
    target.close_session(session).await;
}
