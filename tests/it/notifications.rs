//! Change notifications on the real NATS at 127.0.0.1:4222: one message per delivery with net
//! changes, in the replaced service's shape; never lost while NATS is away; never duplicated in
//! a JetStream stream when the outbox is replayed.
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{spawn_app, strategy, unique_name, Proxy, TestApp};
use futures::StreamExt;
use paper_engine_orders::loader::Loader;
use paper_engine_orders::metrics::Metrics;
use paper_engine_orders::notifier::{NatsNotifier, OutboxRelay};
use paper_engine_orders::source::S3Source;
use paper_engine_orders::target::PgTarget;
use tokio::sync::watch;

const NATS: &str = "nats://127.0.0.1:4222";

struct Running {
    loader: Loader<S3Source, PgTarget>,
    stop: watch::Sender<bool>,
    relay: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

/// A loader with its outbox relay, in this process, publishing to `nats_url`.
async fn start(app: &TestApp, datasource: &str, nats_url: &str) -> Running {
    let config = app.config(&[
        ("NOTIFICATIONS", "true"),
        ("NATS", nats_url),
        ("NOTIFICATION_DATASOURCE", datasource),
    ]);
    let metrics = Arc::new(Metrics::new());
    let loader = paper_engine_orders::app::build_loader(&config, metrics.clone())
        .await
        .unwrap();
    let notifier = NatsNotifier::connect(config.nats.as_ref().unwrap())
        .await
        .unwrap();
    let mut relay = OutboxRelay::new(Arc::new(loader.target().clone()), notifier, metrics.clone());
    relay.idle = Duration::from_millis(100);
    let loader = loader.with_relay(relay.handle());
    let (stop, stop_rx) = watch::channel(false);
    let relay = tokio::spawn(relay.run(stop_rx));
    Running {
        loader,
        stop,
        relay,
        metrics,
    }
}

impl Running {
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        self.relay.await.unwrap();
    }
}

async fn outbox_pending(app: &TestApp) -> i64 {
    app.db
        .query_one(
            "SELECT count(*) FROM paper_engine.loader_outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn next_message(
    sub: &mut async_nats::Subscriber,
    wait: Duration,
) -> Option<async_nats::Message> {
    tokio::time::timeout(wait, sub.next()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_per_delivery_with_net_changes_in_the_replaced_services_shape() {
    let app = spawn_app().await;
    let ds = unique_name("peo-ds");
    let subject = format!("{ds}.meta.orders.change");
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let mut sub = nats.subscribe(subject.clone()).await.unwrap();
    nats.flush().await.unwrap();

    let load = app
        .put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            &format!("{}{}", strategy(1, "ACTIVE", 1), strategy(2, "ACTIVE", 2)),
        )
        .await;
    let change = app
        .put_csv(
            "strategies",
            "20220922-095853123.csv.gz",
            &format!(
                "U,{}D,{}I,{}",
                strategy(1, "PAUSED", 7),
                strategy(2, "ACTIVE", 2),
                strategy(3, "NEW", 9)
            ),
        )
        .await;
    // Only an update to identical values: no net change, so no message.
    let nothing = app
        .put_csv(
            "strategies",
            "20220922-095953123.csv.gz",
            &format!("U,{}", strategy(1, "PAUSED", 7)),
        )
        .await;
    let running = start(&app, &ds, NATS).await;
    app.drain(&running.loader).await;

    let mut messages = Vec::new();
    while let Some(m) = next_message(&mut sub, Duration::from_secs(3)).await {
        messages.push(m);
    }
    assert_eq!(messages.len(), 2, "one per delivery with net changes");
    for (message, key, expected) in [
        (&messages[0], &load, (0, 2, 0)),
        (&messages[1], &change, (1, 1, 1)),
    ] {
        let ledger = app.ledger(key).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let raw = std::str::from_utf8(&message.payload).unwrap();
        let positions: Vec<usize> = [
            "v",
            "ds",
            "id",
            "host",
            "utcts",
            "stats",
            "max_event_id",
            "delivery",
        ]
        .iter()
        .map(|f| {
            raw.find(&format!("\"{f}\":"))
                .unwrap_or_else(|| panic!("{f} in {raw}"))
        })
        .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "the replaced service's fields in order, then delivery: {raw}"
        );
        assert_eq!(json.as_object().unwrap().len(), 8, "{raw}");
        assert_eq!(json["v"], 1);
        assert_eq!(json["ds"], ds.as_str());
        assert_eq!(json["id"], "orders");
        assert!(!json["host"].as_str().unwrap().is_empty());
        let utcts = json["utcts"].as_str().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(utcts, "%Y-%m-%dT%H:%M:%S%.6f").is_ok()
                && utcts.len() == 26,
            "{utcts}"
        );
        assert_eq!(
            json["stats"],
            serde_json::json!({"strategies": {"AMEND": expected.0, "CREATE": expected.1, "REMOVE": expected.2}})
        );
        assert_eq!(
            (ledger.amends, ledger.creates, ledger.removes),
            expected,
            "the message's counts are the ledger's"
        );
        assert_eq!(json["max_event_id"], serde_json::json!(ledger.max_event_id));
        assert_eq!(
            json["delivery"],
            serde_json::json!({"id": ledger.id, "key": key, "rows": ledger.rows})
        );
        let headers = message.headers.as_ref().unwrap();
        let msg_id = headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .unwrap_or_else(|| panic!("{headers:?}"));
        let row_msg_id: String = app
            .db
            .query_one(
                "SELECT msg_id::text FROM paper_engine.loader_outbox WHERE delivery_id = $1",
                &[&ledger.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(msg_id.as_str(), row_msg_id, "the outbox row's UUID");
    }
    assert_eq!(app.ledger(&nothing).await.unwrap().status, "SUCCESS");
    assert_eq!(outbox_pending(&app).await, 0);
    assert_eq!(running.metrics.notifications_published.get(), 2);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_outbox_leaves_no_duplicates_in_a_jetstream_stream() {
    let app = spawn_app().await;
    let ds = unique_name("peo-js");
    let subject = format!("{ds}.meta.orders.change");
    let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await.unwrap());
    let stream_name = ds.replace('-', "_");
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject.clone()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    for (i, name) in [
        "LOAD00000001.csv.gz",
        "20220922-095853123.csv.gz",
        "20220922-095953123.csv.gz",
    ]
    .iter()
    .enumerate()
    {
        let i = i as u32 + 1;
        app.put_csv(
            "strategies",
            name,
            &format!(
                "{}{}",
                if i > 1 { "I," } else { "" },
                strategy(i, "ACTIVE", i as i64)
            ),
        )
        .await;
    }
    let running = start(&app, &ds, NATS).await;
    app.drain(&running.loader).await;
    let mut waited = 0;
    while stream.info().await.unwrap().state.messages < 3 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    running.shutdown().await;

    // A crash after publishing but before marking: a restarted loader sends them all again.
    app.db
        .execute(
            "UPDATE paper_engine.loader_outbox SET published_at = NULL",
            &[],
        )
        .await
        .unwrap();
    let restarted = start(&app, &ds, NATS).await;
    let mut waited = 0;
    while outbox_pending(&app).await > 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(outbox_pending(&app).await, 0, "the replay went out");
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        3,
        "JetStream dropped the replayed duplicates (Nats-Msg-Id)"
    );
    restarted.shutdown().await;
    js.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_away_loading_goes_on_and_every_message_arrives_in_order_when_it_is_back() {
    let app = spawn_app().await;
    let ds = unique_name("peo-out");
    let subject = format!("{ds}.meta.orders.change");
    let proxy = Proxy::start(4222, false).await;
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let mut sub = nats.subscribe(subject.clone()).await.unwrap();
    nats.flush().await.unwrap();

    let mut keys = vec![
        app.put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            &strategy(1, "ACTIVE", 1),
        )
        .await,
    ];
    for i in 2..=5u32 {
        keys.push(
            app.put_csv(
                "strategies",
                &format!("20220922-09585{i}123.csv.gz"),
                &format!("I,{}", strategy(i, "ACTIVE", i as i64)),
            )
            .await,
        );
    }
    let running = start(&app, &ds, &format!("nats://127.0.0.1:{}", proxy.port)).await;
    let passes = app.drain(&running.loader).await;
    assert!(passes.iter().all(|p| p.failed.is_empty()));
    assert_eq!(
        app.count("strategies").await,
        5,
        "loading goes on without NATS"
    );
    assert_eq!(
        outbox_pending(&app).await,
        5,
        "the messages wait in the outbox"
    );
    assert!(next_message(&mut sub, Duration::from_millis(500))
        .await
        .is_none());

    proxy.set_up(true);
    let mut ids = Vec::new();
    while let Some(m) = next_message(&mut sub, Duration::from_secs(20)).await {
        let json: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        ids.push(json["delivery"]["id"].as_i64().unwrap());
        if ids.len() == 5 {
            break;
        }
    }
    let mut expected = Vec::new();
    for key in &keys {
        expected.push(app.ledger(key).await.unwrap().id);
    }
    assert_eq!(ids, expected, "every message, in delivery order");
    assert!(
        next_message(&mut sub, Duration::from_millis(500))
            .await
            .is_none(),
        "no duplicates"
    );
    let mut waited = 0;
    while outbox_pending(&app).await > 0 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(outbox_pending(&app).await, 0);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_off_or_dry_run_write_and_publish_nothing() {
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &strategy(1, "ACTIVE", 1),
    )
    .await;
    let dry = app
        .loader(&[
            ("DRY_RUN", "true"),
            ("NOTIFICATIONS", "true"),
            ("NATS", NATS),
        ])
        .await;
    dry.poll_once().await.unwrap();
    // The dry run's transaction holds its locks until it is rolled back.
    paper_engine_orders::target::Target::finish(dry.target()).await;
    drop(dry);
    let off = app.loader(&[("NOTIFICATIONS", "false")]).await;
    app.drain(&off).await;
    assert_eq!(app.count("strategies").await, 1);
    let outbox: i64 = app
        .db
        .query_one("SELECT count(*) FROM paper_engine.loader_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbox, 0);
}
