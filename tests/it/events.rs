//! Event-driven loading through the binary: a bucket notification on `EVENTS_SUBJECT` loads a
//! new file within a second (the loop sleeps 60 s otherwise); a burst of events makes a handful
//! of passes; other buckets' events and malformed ones are counted, never fatal; a JetStream
//! consumer acknowledges events after the pass; a trigger message starts a run and gets replies.
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::active_strategy as strategy;
use crate::helpers::{spawn_app, unique_name, TestApp};
use crate::service::{spawn_service, Service};

const NATS: &str = "nats://127.0.0.1:4222";

/// An S3 event notification as MinIO publishes it (key URL-encoded).
fn s3_event(name: &str, bucket: &str, key: &str) -> Vec<u8> {
    let encoded =
        percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string();
    serde_json::json!({
        "EventName": name,
        "Key": format!("{bucket}/{key}"),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "eventName": name,
            "s3": {"bucket": {"name": bucket}, "object": {"key": encoded, "eTag": "x", "size": 1}}
        }]
    })
    .to_string()
    .into_bytes()
}

fn bucket(app: &TestApp) -> String {
    app.env["SOURCE"]
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("bucket_name="))
        .unwrap()
        .to_string()
}

async fn idle(service: &Service, passes: usize) {
    service
        .wait_for_log("Nothing pending: sleeping", passes, Duration::from_secs(30))
        .await;
}

/// Waits until the service listens on its subjects (core NATS drops what nobody listens to).
async fn listening(service: &Service, what: &str) {
    service.wait_for_log(what, 1, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_event_loads_a_new_file_within_a_second() {
    let app = spawn_app().await;
    let subject = unique_name("peo-events");
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    let service = spawn_service(
        &app,
        &[("NATS", NATS), ("EVENTS_SUBJECT", subject.as_str())],
    )
    .await;
    idle(&service, 1).await;
    listening(&service, "Bucket events: subscribed").await;
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let mut latencies = Vec::new();
    for i in 2..=4u32 {
        let name = format!("20220922-09585{i}123.csv.gz");
        let started = Instant::now();
        let key = app
            .put_csv("strategies", &name, &format!("I,{}", strategy(i)))
            .await;
        nats.publish(
            subject.clone(),
            s3_event("s3:ObjectCreated:Put", &bucket(&app), &key).into(),
        )
        .await
        .unwrap();
        nats.flush().await.unwrap();
        while app.ledger(&key).await.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{}",
                service.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(started.elapsed());
        idle(&service, i as usize).await;
    }
    latencies.sort();
    assert!(
        latencies[1] < Duration::from_secs(1),
        "PUT to commit, median of 3: {latencies:?}"
    );
    assert_eq!(app.count("strategies").await, 4);
    assert_eq!(
        service
            .metric("paper_engine_loader_events_total{outcome=\"accepted\",source=\"bucket\"}")
            .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_events_makes_a_handful_of_passes_and_strangers_are_counted() {
    let app = spawn_app().await;
    let subject = unique_name("peo-burst");
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    let service = spawn_service(
        &app,
        &[("NATS", NATS), ("EVENTS_SUBJECT", subject.as_str())],
    )
    .await;
    idle(&service, 1).await;
    listening(&service, "Bucket events: subscribed").await;
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let key = app
        .put_csv(
            "strategies",
            "20220922-095852123.csv.gz",
            &format!("I,{}", strategy(2)),
        )
        .await;
    let bucket = bucket(&app);
    for _ in 0..100 {
        nats.publish(
            subject.clone(),
            s3_event("s3:ObjectCreated:Put", &bucket, &key).into(),
        )
        .await
        .unwrap();
    }
    nats.publish(
        subject.clone(),
        s3_event("s3:ObjectCreated:Put", "another-bucket", &key).into(),
    )
    .await
    .unwrap();
    nats.publish(
        subject.clone(),
        s3_event("s3:ObjectRemoved:Delete", &bucket, &key).into(),
    )
    .await
    .unwrap();
    nats.publish(subject.clone(), "{not json".into())
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while service
        .metric("paper_engine_loader_events_total{outcome=\"malformed\",source=\"bucket\"}")
        .await
        < 1.0
    {
        assert!(Instant::now() < deadline, "{}", service.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.ledger(&key).await.unwrap().status, "SUCCESS");
    let wakes = service.log_text().matches("Woken up").count();
    assert!((1..=10).contains(&wakes), "100 events, {wakes} passes");
    let metric = |outcome: &str| {
        format!("paper_engine_loader_events_total{{outcome=\"{outcome}\",source=\"bucket\"}}")
    };
    assert_eq!(service.metric(&metric("accepted")).await, 100.0);
    assert_eq!(service.metric(&metric("ignored")).await, 2.0);
    assert_eq!(service.metric(&metric("malformed")).await, 1.0);
    assert_eq!(
        crate::service::http(service.port, "GET", "/healthz", None, None)
            .await
            .0,
        200,
        "never fatal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jetstream_a_durable_consumer_acknowledges_events_after_the_pass() {
    let app = spawn_app().await;
    let subject = unique_name("peo-js");
    let (js, stream_name) = crate::helpers::jetstream_capturing(&subject).await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    // Published while no loader runs: the stream keeps it for the durable consumer.
    let early = app.key("strategies", "LOAD00000001.csv.gz");
    js.publish(
        subject.clone(),
        s3_event("s3:ObjectCreated:Put", &bucket(&app), &early).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let durable = unique_name("peo-durable").replace('.', "_");
    let service = spawn_service(
        &app,
        &[
            ("NATS", NATS),
            ("EVENTS_SUBJECT", subject.as_str()),
            ("EVENTS_DURABLE", durable.as_str()),
        ],
    )
    .await;
    idle(&service, 1).await;
    let key = app
        .put_csv(
            "strategies",
            "20220922-095852123.csv.gz",
            &format!("I,{}", strategy(2)),
        )
        .await;
    js.publish(
        subject.clone(),
        s3_event("s3:ObjectCreated:Put", &bucket(&app), &key).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let started = Instant::now();
    while app.ledger(&key).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            service.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both events acknowledged once a pass after them ended.
    let mut stream = js.get_stream(&stream_name).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(&durable).await.unwrap();
        let info = consumer.cached_info().clone();
        if info.ack_floor.stream_sequence == 2 && info.num_ack_pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{info:?}\n{}",
            service.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = stream.info().await;
    }
    assert!(service
        .log_text()
        .contains(&format!("durable consumer {durable}")));
    js.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_message_starts_a_run_and_gets_its_id_then_its_result() {
    let app = spawn_app().await;
    let subject = unique_name("peo-trigger");
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    let service = spawn_service(
        &app,
        &[("NATS", NATS), ("TRIGGER_SUBJECT", subject.as_str())],
    )
    .await;
    idle(&service, 1).await;
    listening(&service, "Triggers: listening").await;
    let key = app
        .put_csv(
            "strategies",
            "20220922-095852123.csv.gz",
            &format!("I,{}", strategy(2)),
        )
        .await;
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(inbox.clone()).await.unwrap();
    // Until the server has the loader's subscription, it answers "no responders" (no payload).
    let first: Value = loop {
        nats.publish_with_reply(
            subject.clone(),
            inbox.clone(),
            r#"{"jobId": "job-7", "trigger": "end-of-day", "userIds": ["u1"], "extra": 1}"#.into(),
        )
        .await
        .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .unwrap()
            .unwrap();
        if !m.payload.is_empty() {
            break serde_json::from_slice(&m.payload).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(first["status"], "IN_PROGRESS", "{first}");
    assert_eq!(first["trigger"]["jobId"], "job-7");
    assert_eq!(first["steps"][0]["name"], key.as_str());
    let last: Value = serde_json::from_slice(
        &tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .unwrap()
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(last["run_id"], first["run_id"]);
    assert_eq!(last["status"], "SUCCESSFUL", "{last}");
    assert_eq!(app.ledger(&key).await.unwrap().status, "SUCCESS");
    // A malformed trigger is counted and answered, never fatal.
    let answer = nats
        .request(subject.clone(), "{\"no\": \"jobId\"}".into())
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert!(answer["error"].is_string(), "{answer}");
    assert_eq!(
        service
            .metric("paper_engine_loader_events_total{outcome=\"malformed\",source=\"trigger\"}")
            .await,
        1.0
    );
    assert_eq!(
        service
            .metric("paper_engine_loader_events_total{outcome=\"accepted\",source=\"trigger\"}")
            .await,
        1.0
    );
}
