//! One-shot runs and the outbox, through the binary: a run that ends while NATS is away says how
//! many messages are left; the next run publishes them (at its start) and says the outbox is
//! empty.
use std::time::Duration;

use futures::StreamExt;

use crate::helpers::active_strategy as strategy;
use crate::helpers::{spawn_app, unique_name, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_run_reports_what_is_left_and_the_next_one_sends_it() {
    let app = spawn_app().await;
    let ds = unique_name("peo-flush");
    let proxy = Proxy::start(4222, false).await;
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let mut sub = nats
        .subscribe(format!("{ds}.meta.orders.change"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    for i in 2..=3u32 {
        app.put_csv(
            "strategies",
            &format!("20220922-09585{i}123.csv.gz"),
            &format!("I,{}", strategy(i)),
        )
        .await;
    }
    let nats_url = format!("nats://127.0.0.1:{}", proxy.port);
    let env = [
        ("NOTIFICATIONS", "true"),
        ("NATS", nats_url.as_str()),
        ("NOTIFICATION_DATASOURCE", ds.as_str()),
    ];

    // NATS away for the whole run: the data is in, the messages wait, and the run says so.
    let (code, _, stderr) = tokio::task::spawn_blocking({
        let app_env = env.map(|(k, v)| (k.to_string(), v.to_string()));
        let app = app.env.clone();
        move || run_env(&app, &app_env)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "every file is delivered: {stderr}");
    assert_eq!(app.count("strategies").await, 3);
    assert!(
        stderr.contains("Notifications: 3 messages are left in the outbox"),
        "{stderr}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "nothing was published"
    );

    // NATS back two seconds into the next run, which has nothing to deliver: it sends them.
    let up = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.set_up(true);
        proxy
    });
    let (code, _, stderr) = tokio::task::spawn_blocking({
        let app_env = env.map(|(k, v)| (k.to_string(), v.to_string()));
        let app = app.env.clone();
        move || run_env(&app, &app_env)
    })
    .await
    .unwrap();
    let _proxy = up.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("Notifications: the outbox is empty"),
        "{stderr}"
    );
    let mut received = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        received += 1;
        if received == 3 {
            break;
        }
    }
    assert_eq!(received, 3, "every waiting message arrived");
    let pending: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM paper_engine.loader_outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
}

/// [`run`] with the test's environment given by value (for a blocking thread).
fn run_env(
    env: &std::collections::HashMap<String, String>,
    extra: &[(String, String); 3],
) -> (i32, String, String) {
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    crate::operate::run_with(env, &[], &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_from_scratch_is_not_taken_for_duplicates_by_jetstream() {
    let app = spawn_app().await;
    let ds = unique_name("peo-reload");
    let subject = format!("{ds}.meta.orders.change");
    let (js, stream_name) = crate::helpers::jetstream_capturing(&subject).await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    app.put_csv(
        "strategies",
        "20220922-095852123.csv.gz",
        &format!("I,{}", strategy(2)),
    )
    .await;
    let env = [
        ("NOTIFICATIONS", "true"),
        ("NATS", "nats://127.0.0.1:4222"),
        ("NOTIFICATION_DATASOURCE", ds.as_str()),
    ];
    let (code, _, stderr) = crate::operate::run(&app, &[], &env);
    assert_eq!(code, 0, "{stderr}");
    // A reload from scratch: the schema is dropped, delivery ids start at 1 again.
    app.db
        .batch_execute("DROP SCHEMA paper_engine CASCADE")
        .await
        .unwrap();
    let (code, _, stderr) = crate::operate::run(&app, &[], &env);
    assert_eq!(code, 0, "{stderr}");
    let mut stream = js.get_stream(&stream_name).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 4,
        "two deliveries, twice: none dropped as a duplicate"
    );
    js.delete_stream(&stream_name).await.unwrap();
}
