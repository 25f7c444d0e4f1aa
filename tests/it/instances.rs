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
