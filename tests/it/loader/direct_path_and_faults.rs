//! The direct path and faults: full loads and new CDC keys go straight into the table, falling
//! back to staging when they must; transient bucket faults and a Postgres connection lost
//! mid-COPY are retried to one complete delivery.
use crate::helpers::{spawn_app, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_loads_go_straight_in_and_fall_back_to_staging_when_they_must() {
    let app = spawn_app().await;
    let s = |id: i32, status: &str, event: i64| {
        format!("{id},S-{id},Strategy {id},ops,IBKR,{status},,2022-09-01 10:00:00,2022-09-01 10:00:00,{event}\n")
    };
    // Empty table, plain full load: straight in.
    let plain = app
        .put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            &format!("{}{}", s(1, "ACTIVE", 1), s(2, "ACTIVE", 2)),
        )
        .await;
    // Empty orders table, but a key twice: the direct COPY hits the primary key, so the file is
    // applied through staging instead, with the last row winning.
    let order = |id: i32, status: &str, event: i64| {
        format!("{id},1,c0a8e8a2-0000-4000-8000-{id:012},US0378331005,BUY,MARKET,DAY,5,,,USD,{status},2022-09-22 09:58:53,2022-09-22 09:58:53,{event}\n")
    };
    let repeated = app
        .put_csv(
            "orders",
            "LOAD00000001.csv.gz",
            &format!(
                "{}{}{}",
                order(1, "NEW", 1),
                order(2, "NEW", 2),
                order(1, "FILLED", 3)
            ),
        )
        .await;
    // includeOpForFullLoad with a delete: staged too.
    let exec = |id: i32, event: i64| {
        format!("{id},1,B-{id},TRADE,1,10,1,0,,,2022-09-22 09:58:53,{event}\n")
    };
    let with_delete = app
        .put_csv(
            "executions",
            "LOAD00000001.csv.gz",
            &format!("I,{}I,{}D,{}", exec(1, 1), exec(2, 2), exec(1, 1)),
        )
        .await;
    let loader = app.loader(&[]).await;
    let passes = app.drain(&loader).await;
    assert!(passes.iter().all(|p| p.failed.is_empty()), "{passes:?}");

    assert_eq!(app.ledger(&plain).await.unwrap().counts(), (2, 2, 0, 0, 0));
    assert_eq!(
        app.ledger(&repeated).await.unwrap().counts(),
        (3, 2, 0, 0, 0)
    );
    assert_eq!(
        app.rows("SELECT order_id, status FROM paper_engine.orders ORDER BY 1")
            .await,
        vec![
            vec![Some("1".into()), Some("FILLED".into())],
            vec![Some("2".into()), Some("NEW".into())]
        ]
    );
    assert_eq!(
        app.ledger(&with_delete).await.unwrap().counts(),
        (3, 1, 0, 0, 1)
    );
    assert_eq!(
        app.rows("SELECT execution_id FROM paper_engine.executions")
            .await,
        vec![vec![Some("2".into())]]
    );
    // The indexes dropped for the bulk loads are all back, and enforce the key.
    assert_eq!(
        app.rows(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'paper_engine'
                AND tablename IN ('strategies', 'orders', 'executions') ORDER BY 1"
        )
        .await,
        [
            "executions_order_id_idx",
            "executions_pkey",
            "orders_pkey",
            "orders_strategy_id_idx",
            "strategies_pkey"
        ]
        .iter()
        .map(|n| vec![Some(n.to_string())])
        .collect::<Vec<_>>()
    );
    assert!(app
        .db
        .batch_execute(
            "INSERT INTO paper_engine.strategies SELECT * FROM paper_engine.strategies LIMIT 1"
        )
        .await
        .is_err());
    // Both paths stamp the rows with their delivery and its start time.
    let mismatched = app
        .rows(
            "SELECT count(*) FROM (
                SELECT _delivery_id, _loaded_at FROM paper_engine.strategies
                UNION ALL SELECT _delivery_id, _loaded_at FROM paper_engine.orders
                UNION ALL SELECT _delivery_id, _loaded_at FROM paper_engine.executions) r
              LEFT JOIN paper_engine.loader_deliveries d
                ON d.id = r._delivery_id AND d.started_at = r._loaded_at
             WHERE d.id IS NULL",
        )
        .await;
    assert_eq!(mismatched, vec![vec![Some("0".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_load_file_as_big_as_its_table_rebuilds_the_indexes() {
    let app = spawn_app().await;
    let s = |id: i32| {
        format!("{id},S-{id},Strategy {id},ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,{id}\n")
    };
    let file = |ids: std::ops::RangeInclusive<i32>| ids.map(s).collect::<String>();
    let index_oids = || async {
        app.rows(
            "SELECT indexrelid::regclass::text || ':' || indexrelid::text FROM pg_index
              WHERE indrelid = 'paper_engine.strategies'::regclass ORDER BY 1",
        )
        .await
    };
    let loader = app.loader(&[]).await;
    let first = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &file(1..=200))
        .await;
    app.drain(&loader).await;
    let after_first = index_oids().await;
    // As many rows as the table holds: indexes dropped, COPY, rebuilt (new index OIDs).
    let second = app
        .put_csv("strategies", "LOAD00000002.csv.gz", &file(201..=450))
        .await;
    app.drain(&loader).await;
    let after_second = index_oids().await;
    assert_ne!(after_first, after_second);
    // A small file into a big table: indexes kept (same OIDs).
    let third = app
        .put_csv("strategies", "LOAD00000003.csv.gz", &file(451..=460))
        .await;
    app.drain(&loader).await;
    assert_eq!(index_oids().await, after_second);
    // A big file with a key the table holds: the rebuilt primary key refuses it, the file is
    // applied through staging instead (nothing of the first try kept), indexes back in place.
    let fourth = app
        .put_csv(
            "strategies",
            "LOAD00000004.csv.gz",
            &format!("{}{}", s(3), file(461..=1100)),
        )
        .await;
    let passes = app.drain(&loader).await;
    assert!(passes.iter().all(|p| p.failed.is_empty()), "{passes:?}");

    assert_eq!(
        app.ledger(&first).await.unwrap().counts(),
        (200, 200, 0, 0, 0)
    );
    assert_eq!(
        app.ledger(&second).await.unwrap().counts(),
        (250, 250, 0, 0, 0)
    );
    assert_eq!(
        app.ledger(&third).await.unwrap().counts(),
        (10, 10, 0, 0, 0)
    );
    assert_eq!(
        app.ledger(&fourth).await.unwrap().counts(),
        (641, 640, 0, 0, 1)
    );
    assert_eq!(delivered(&passes, &fourth).result.direct_rows, 0);
    assert_eq!(
        app.rows("SELECT count(*), count(DISTINCT strategy_id) FROM paper_engine.strategies")
            .await,
        vec![vec![Some("1100".into()), Some("1100".into())]]
    );
    let names: Vec<String> = index_oids()
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap().split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["paper_engine.strategies_pkey".to_string()]);
    assert!(app
        .db
        .batch_execute(
            "INSERT INTO paper_engine.strategies SELECT * FROM paper_engine.strategies LIMIT 1"
        )
        .await
        .is_err());
}

/// The delivery of `key` in a list of passes.
fn delivered<'a>(
    passes: &'a [paper_engine_orders::loader::Outcome],
    key: &str,
) -> &'a paper_engine_orders::loader::Delivered {
    passes
        .iter()
        .flat_map(|p| p.delivered.iter())
        .find(|d| d.key == key)
        .unwrap_or_else(|| panic!("{key} was not delivered: {passes:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_new_keys_go_straight_in_with_their_last_row_and_the_rest_is_staged() {
    let app = spawn_app().await;
    let exec = |id: i32, exec_type: &str, event: i64| {
        format!("{id},1,B-{id},{exec_type},1,10,1,0,,,2022-09-22 09:58:53,{event}\n")
    };
    let load = app
        .put_csv(
            "executions",
            "LOAD00000001.csv.gz",
            &format!("{}{}", exec(1, "NEW", 1), exec(2, "NEW", 2)),
        )
        .await;
    // New keys (first row an insert) go straight in with their last row: 3, 7, 8 inserted once,
    // 4 inserted then updated (the update's values). 5: an update of a missing key, then an
    // insert (not a new key: staged, the insert wins). 6: inserted then deleted (the delete is
    // staged: nothing, unchanged). 1: deleted.
    let first = app
        .put_csv(
            "executions",
            "20220922-095853123.csv.gz",
            &format!(
                "I,{}I,{}U,{}U,{}I,{}I,{}D,{}D,{}I,{}I,{}",
                exec(3, "TRADE", 10),
                exec(4, "NEW", 11),
                exec(4, "TRADE", 12),
                exec(5, "NEW", 13),
                exec(5, "TRADE", 14),
                exec(6, "NEW", 15),
                exec(6, "NEW", 15),
                exec(1, "NEW", 1),
                exec(7, "TRADE", 16),
                exec(8, "TRADE", 17),
            ),
        )
        .await;
    // 2 exists already: the direct COPY meets the primary key, is undone, and the whole file is
    // staged (2 amended, 9 created).
    let second = app
        .put_csv(
            "executions",
            "20220922-095900000.csv.gz",
            &format!("I,{}I,{}", exec(9, "TRADE", 18), exec(2, "TRADE", 19)),
        )
        .await;
    // An insert of the existing key 3 then its delete: the delete is staged and removes it;
    // 10 is new.
    let third = app
        .put_csv(
            "executions",
            "20220922-095910000.csv.gz",
            &format!(
                "I,{}D,{}I,{}",
                exec(3, "NEW", 20),
                exec(3, "NEW", 20),
                exec(10, "TRADE", 21)
            ),
        )
        .await;
    let loader = app.loader(&[]).await;
    let passes = app.drain(&loader).await;
    assert!(passes.iter().all(|p| p.failed.is_empty()), "{passes:?}");

    assert_eq!(delivered(&passes, &load).result.direct_rows, 2);
    assert_eq!(delivered(&passes, &first).result.direct_rows, 4);
    assert_eq!(delivered(&passes, &second).result.direct_rows, 0);
    assert_eq!(delivered(&passes, &third).result.direct_rows, 1);
    // rows, creates, amends, removes, unchanged
    assert_eq!(app.ledger(&first).await.unwrap().counts(), (10, 5, 0, 1, 1));
    assert_eq!(app.ledger(&second).await.unwrap().counts(), (2, 1, 1, 0, 0));
    assert_eq!(app.ledger(&third).await.unwrap().counts(), (3, 1, 0, 1, 0));
    assert_eq!(
        app.rows(
            "SELECT execution_id, exec_type, event_id FROM paper_engine.executions ORDER BY 1"
        )
        .await,
        [
            (2, "TRADE", 19),
            (4, "TRADE", 12),
            (5, "TRADE", 14),
            (7, "TRADE", 16),
            (8, "TRADE", 17),
            (9, "TRADE", 18),
            (10, "TRADE", 21)
        ]
        .iter()
        .map(|(id, t, e)| vec![
            Some(id.to_string()),
            Some(t.to_string()),
            Some(e.to_string())
        ])
        .collect::<Vec<_>>()
    );
    // Straight in or staged, rows carry their delivery and its start time.
    let lineage = app
        .rows(
            "SELECT e.execution_id, d.object_key FROM paper_engine.executions e
               JOIN paper_engine.loader_deliveries d
                 ON d.id = e._delivery_id AND d.started_at = e._loaded_at
              ORDER BY 1",
        )
        .await;
    let keys: Vec<&str> = lineage.iter().map(|r| r[1].as_deref().unwrap()).collect();
    assert_eq!(
        keys,
        vec![
            second.as_str(),
            first.as_str(),
            first.as_str(),
            first.as_str(),
            first.as_str(),
            second.as_str(),
            third.as_str()
        ]
    );
}

/// A bucket that fails the first opens: an HTTP 503, then a body cut off mid-stream.
struct FlakySource {
    inner: paper_engine_orders::source::S3Source,
    opens: std::sync::atomic::AtomicU32,
}

struct CutReader {
    inner: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    left: usize,
}

impl tokio::io::AsyncRead for CutReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by the bucket",
            )));
        }
        let mut tmp = vec![0u8; self.left.min(buf.remaining())];
        let mut limited = tokio::io::ReadBuf::new(&mut tmp);
        let poll = self.inner.as_mut().poll_read(cx, &mut limited);
        let n = limited.filled().len();
        buf.put_slice(&tmp[..n]);
        self.left -= n;
        poll
    }
}

impl paper_engine_orders::source::Source for FlakySource {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<String>,
    ) -> Result<paper_engine_orders::source::ListPage, paper_engine_orders::source::SourceError>
    {
        self.inner.list_page(prefix, start_after, token).await
    }
    async fn list_folders(
        &self,
        prefix: &str,
    ) -> Result<Vec<String>, paper_engine_orders::source::SourceError> {
        self.inner.list_folders(prefix).await
    }
    async fn head(
        &self,
        key: &str,
    ) -> Result<
        Option<paper_engine_orders::source::ObjectInfo>,
        paper_engine_orders::source::SourceError,
    > {
        self.inner.head(key).await
    }
    async fn open(
        &self,
        key: &str,
    ) -> Result<paper_engine_orders::source::ObjectBody, paper_engine_orders::source::SourceError>
    {
        let n = self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 0 {
            return Err(paper_engine_orders::source::SourceError::Request {
                op: "GetObject",
                what: key.to_string(),
                status: Some(503),
                code: Some("SlowDown".into()),
                message: "injected".into(),
            });
        }
        let mut body = self.inner.open(key).await?;
        if n == 1 {
            body.reader = Box::pin(CutReader {
                inner: body.reader,
                left: 3000,
            });
        }
        Ok(body)
    }
    fn path(&self) -> &str {
        paper_engine_orders::source::Source::path(&self.inner)
    }
    async fn ping(&self) -> Result<(), paper_engine_orders::source::SourceError> {
        self.inner.ping().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_bucket_faults_are_retried_and_the_file_loads_once() {
    let app = spawn_app().await;
    // Big enough that a cut after 3000 compressed bytes falls mid-file.
    let body: String = (1..=20_000)
        .map(|i| format!("{i},S-{i},Strategy {i},ops,IBKR,ACTIVE,{i}.25,2022-09-01 10:00:00,2022-09-01 10:00:00,{i}\n"))
        .collect();
    let key = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &body)
        .await;
    let base = app.loader(&[]).await;
    let flaky = FlakySource {
        inner: base.source().clone(),
        opens: std::sync::atomic::AtomicU32::new(0),
    };
    let loader = paper_engine_orders::loader::Loader::new(
        flaky,
        base.target().clone(),
        base.metrics().clone(),
        base.settings().clone(),
    );
    let outcome = loader.poll_once().await.unwrap();
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.delivered.len(), 1);
    assert_eq!(
        loader
            .source()
            .opens
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    let row = app.ledger(&key).await.unwrap();
    assert_eq!(
        (row.status.as_str(), row.creates, row.rows),
        ("SUCCESS", 20_000, 20_000)
    );
    assert_eq!(app.count("strategies").await, 20_000);
    assert_eq!(
        loader.metrics().errors.with_label_values(&["source"]).get(),
        2,
        "both faults were counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_connection_lost_mid_copy_is_retried_and_leaves_one_complete_delivery() {
    let app = spawn_app().await;
    let proxy = Proxy::start(5432, true).await;
    let body: String = (1..=400_000)
        .map(|i| format!("{i},S-{i},Strategy {i},ops,IBKR,ACTIVE,{i}.5,2022-09-01 10:00:00,2022-09-01 10:00:00,{i}\n"))
        .collect();
    let key = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &body)
        .await;
    let target = app.env["TARGET"].replace("port=5432", &format!("port={}", proxy.port));
    let loader = std::sync::Arc::new(app.loader(&[("TARGET", &target)]).await);
    let running = {
        let loader = loader.clone();
        tokio::spawn(async move { loader.poll_once().await })
    };
    // Cut every connection once the COPY is under way, then let them back in.
    let mut copying = false;
    for _ in 0..300 {
        let active: i64 = app
            .db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND query LIKE 'COPY%' AND state = 'active'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if active > 0 {
            copying = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(copying, "the COPY started");
    proxy.set_up(false);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    proxy.set_up(true);
    let outcome = running.await.unwrap().unwrap();
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.delivered.len(), 1);
    assert_eq!(
        app.ledger(&key).await.unwrap().counts(),
        (400_000, 400_000, 0, 0, 0)
    );
    assert_eq!(app.count("strategies").await, 400_000);
    assert!(loader.metrics().errors.with_label_values(&["target"]).get() >= 1);
}
