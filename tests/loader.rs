//! The loader end to end against a real S3-compatible server and a real Postgres.
mod common;

use common::{spawn_app, TestApp};
use paper_engine_orders::sample::{self, SampleSpec};

/// Column names of a replicated table, in order, without the lineage columns.
async fn columns(app: &TestApp, table: &str) -> Vec<String> {
    app.db
        .query(
            "SELECT column_name::text FROM information_schema.columns
              WHERE table_schema = $1 AND table_name = $2
                AND column_name NOT IN ('_delivery_id', '_loaded_at')
              ORDER BY ordinal_position",
            &[&app.schema, &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Rows of `table` that differ from `expected` (text values in column order), both ways.
async fn differences(app: &TestApp, table: &str, expected: &[Vec<Option<String>>]) -> (i64, i64) {
    let cols = columns(app, table).await;
    let json = serde_json::Value::Array(
        expected
            .iter()
            .map(|row| {
                serde_json::Value::Object(
                    cols.iter()
                        .cloned()
                        .zip(row.iter().map(|v| match v {
                            Some(s) => serde_json::Value::String(s.clone()),
                            None => serde_json::Value::Null,
                        }))
                        .collect(),
                )
            })
            .collect(),
    )
    .to_string();
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let expected_table = format!("expected_{table}");
    app.db
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {expected_table};
             CREATE TEMP TABLE {expected_table} AS SELECT {list} FROM {s}.{table} WITH NO DATA",
            s = app.schema
        ))
        .await
        .unwrap();
    app.db
        .execute(
            &format!(
                "INSERT INTO {expected_table} SELECT * FROM json_populate_recordset(NULL::{expected_table}, $1::text::json)"
            ),
            &[&json],
        )
        .await
        .unwrap();
    let count =
        |sql: String| async move { app.db.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) };
    let missing = count(format!(
        "SELECT count(*) FROM (SELECT * FROM {expected_table} EXCEPT ALL SELECT {list} FROM {s}.{table}) d",
        s = app.schema
    ))
    .await;
    let extra = count(format!(
        "SELECT count(*) FROM (SELECT {list} FROM {s}.{table} EXCEPT ALL SELECT * FROM {expected_table}) d",
        s = app.schema
    ))
    .await;
    (missing, extra)
}

fn small_sample(seed: u64) -> SampleSpec {
    SampleSpec {
        scale: 0.002,
        seed,
        bucket_path: "data".into(),
        load_rows_per_file: 300,
        cdc_files: 4,
        cdc_rows_per_file: 60,
        keep_state: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_load_then_cdc_reaches_the_source_state_exactly() {
    let app = spawn_app().await;
    let manifest = paper_engine_orders::app::upload_sample(&app.s3, small_sample(7))
        .await
        .unwrap();
    assert!(
        manifest
            .files
            .iter()
            .any(|f| f.key.ends_with("LOAD0000000A.csv.gz")),
        "the sample should span hex LOAD numbers"
    );
    let loader = app.loader(&[]).await;
    let passes = app.drain(&loader).await;
    let delivered: usize = passes.iter().map(|p| p.delivered.len()).sum();
    assert_eq!(delivered, manifest.files.len());
    assert!(passes.iter().all(|p| p.failed.is_empty()), "{passes:?}");

    for table in sample::TABLES {
        let expected = &manifest.tables[table];
        assert_eq!(app.count(table).await, expected.len() as i64, "{table}");
        assert_eq!(differences(&app, table, expected).await, (0, 0), "{table}");
    }
    for file in &manifest.files {
        let row = app.ledger(&file.key).await.expect("a ledger row per file");
        assert_eq!(row.status, "SUCCESS", "{}", file.key);
        assert_eq!(row.rows as u64, file.rows, "{}", file.key);
        assert_eq!(
            (
                row.creates as u64,
                row.amends as u64,
                row.removes as u64,
                row.unchanged as u64
            ),
            (
                file.counts.creates,
                file.counts.amends,
                file.counts.removes,
                file.counts.unchanged
            ),
            "{}",
            file.key
        );
        assert_eq!(row.max_event_id, file.max_event_id, "{}", file.key);
    }
    // Files of one table were delivered in stream order: ledger ids increase along it.
    for table in sample::TABLES {
        let mut last = 0;
        for file in manifest.files.iter().filter(|f| f.table == table) {
            let id = app.ledger(&file.key).await.unwrap().id;
            assert!(id > last, "{} delivered out of order", file.key);
            last = id;
        }
    }

    // A second pass, and a restarted loader, find nothing to do.
    let again = loader.poll_once().await.unwrap();
    assert!(again.is_idle() && again.pending == 0, "{again:?}");
    let restarted = app.loader(&[]).await;
    let again = restarted.poll_once().await.unwrap();
    assert!(again.is_idle() && again.pending == 0, "{again:?}");
    let ledger_rows: i64 = app
        .db
        .query_one("SELECT count(*) FROM paper_engine.loader_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger_rows, manifest.files.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_counts_are_the_net_effect_per_key() {
    let app = spawn_app().await;
    let s = |id: i32, status: &str, event: i64| {
        format!("{id},S-{id},Strategy {id},ops,IBKR,{status},1000.50,2022-09-01 10:00:00,2022-09-01 10:00:00,{event}\n")
    };
    let load = format!(
        "{}{}{}",
        s(1, "ACTIVE", 1),
        s(2, "ACTIVE", 2),
        s(3, "ACTIVE", 3)
    );
    let load_key = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &load)
        .await;
    // key 1 amended; key 2 updated to identical values; key 3 removed; key 4 inserted then
    // deleted; key 99 deleted though absent; key 5 inserted then updated twice.
    let cdc = format!(
        "U,{}U,{}D,{}I,{}D,{}D,{}I,{}U,{}U,{}",
        s(1, "PAUSED", 10),
        s(2, "ACTIVE", 2),
        s(3, "ACTIVE", 3),
        s(4, "ACTIVE", 11),
        s(4, "ACTIVE", 11),
        s(99, "ACTIVE", 12),
        s(5, "ACTIVE", 13),
        s(5, "PAUSED", 14),
        s(5, "RETIRED", 15),
    );
    let cdc_key = app
        .put_csv("strategies", "2022/09/22/20220922-095853123.csv.gz", &cdc)
        .await;
    let loader = app.loader(&[]).await;
    app.drain(&loader).await;

    let load_row = app.ledger(&load_key).await.unwrap();
    assert_eq!(
        (
            load_row.rows,
            load_row.creates,
            load_row.amends,
            load_row.removes,
            load_row.unchanged
        ),
        (3, 3, 0, 0, 0)
    );
    let row = app.ledger(&cdc_key).await.unwrap();
    assert_eq!(row.status, "SUCCESS");
    assert_eq!(row.rows, 9);
    assert_eq!(
        (row.creates, row.amends, row.removes, row.unchanged),
        (1, 1, 1, 3),
        "create 5, amend 1, remove 3; unchanged 2, 4, 99"
    );
    assert_eq!(row.max_event_id, Some(15));
    assert_eq!(
        app.rows("SELECT strategy_id, status, event_id, max_notional FROM paper_engine.strategies ORDER BY 1")
            .await,
        vec![
            vec![Some("1".into()), Some("PAUSED".into()), Some("10".into()), Some("1000.50".into())],
            vec![Some("2".into()), Some("ACTIVE".into()), Some("2".into()), Some("1000.50".into())],
            vec![Some("5".into()), Some("RETIRED".into()), Some("15".into()), Some("1000.50".into())],
        ]
    );
    // Lineage: an unchanged row keeps the delivery that last wrote it.
    let lineage = app
        .rows("SELECT strategy_id, _delivery_id FROM paper_engine.strategies ORDER BY 1")
        .await;
    let (load_id, cdc_id) = (load_row.id.to_string(), row.id.to_string());
    assert_eq!(lineage[0][1].as_deref(), Some(cdc_id.as_str()));
    assert_eq!(lineage[1][1].as_deref(), Some(load_id.as_str()));
    assert_eq!(lineage[2][1].as_deref(), Some(cdc_id.as_str()));

    // A full-load file for existing keys is an upsert: amend when different, else unchanged.
    let reload = format!("{}{}", s(1, "PAUSED", 10), s(2, "RETIRED", 20));
    let reload_key = app
        .put_csv("strategies", "LOAD00000002.csv.gz", &reload)
        .await;
    app.drain(&loader).await;
    let row = app.ledger(&reload_key).await.unwrap();
    assert_eq!(row.status, "SUCCESS");
    assert_eq!(
        (row.creates, row.amends, row.removes, row.unchanged),
        (0, 1, 0, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_dialect_round_trips_into_postgres() {
    let app = spawn_app().await;
    // NULL (empty) vs "" (empty string); commas, quotes, newlines and non-ASCII in quotes;
    // CRLF line ends; uncompressed .csv; a LOAD file with the includeOpForFullLoad Op column.
    let csv = "I,1,7,B-1,TRADE,10.5,101.25,10.5,0,XNYS,\"Filled, \"\"fast\"\"\nsecond line — ü 約定\",2022-09-22 09:58:53.123456,100\r\n\
               I,2,7,B-2,NEW,0,,0,10,,\"\",2022-09-22 09:58:54,101\r\n";
    let key = app.key("executions", "LOAD00000001.csv");
    app.put(&key, csv.as_bytes().to_vec()).await;
    let loader = app.loader(&[]).await;
    app.drain(&loader).await;
    assert_eq!(app.ledger(&key).await.unwrap().status, "SUCCESS");
    assert_eq!(
        app.rows("SELECT execution_id, last_price, venue, text, transact_time FROM paper_engine.executions ORDER BY 1")
            .await,
        vec![
            vec![
                Some("1".into()),
                Some("101.250000".into()),
                Some("XNYS".into()),
                Some("Filled, \"fast\"\nsecond line — ü 約定".into()),
                Some("2022-09-22 09:58:53.123456".into())
            ],
            vec![
                Some("2".into()),
                None,
                None,
                Some("".into()),
                Some("2022-09-22 09:58:54".into())
            ],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_persists_nothing_and_reports_the_counts_of_a_real_run() {
    let app = spawn_app().await;
    let manifest = paper_engine_orders::app::upload_sample(&app.s3, small_sample(11))
        .await
        .unwrap();
    let before = app.database_state().await;
    let dry = app.loader(&[("DRY_RUN", "true")]).await;
    let outcome = dry.poll_once().await.unwrap();
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    paper_engine_orders::target::Target::finish(dry.target()).await;
    drop(dry);
    // Nothing persisted: not the rows, not the ledger, not even the schema the dry run created
    // inside its transaction.
    assert_eq!(app.database_state().await, before);

    // A dry run applies each stream's files in order inside one rolled-back transaction, so
    // every file (CDC included) reports exactly what the real run then records.
    let real = app.loader(&[]).await;
    app.drain(&real).await;
    for d in &outcome.delivered {
        let row = app.ledger(&d.key).await.unwrap();
        let file = manifest.files.iter().find(|f| f.key == d.key).unwrap();
        let dry = d.result.counts;
        assert_eq!(
            (
                dry.creates,
                dry.amends,
                dry.removes,
                dry.unchanged,
                d.result.rows
            ),
            (
                row.creates as u64,
                row.amends as u64,
                row.removes as u64,
                row.unchanged as u64,
                row.rows as u64
            ),
            "{}",
            d.key
        );
        assert_eq!(dry, file.counts, "{}", d.key);
        assert_eq!(d.result.max_event_id, row.max_event_id, "{}", d.key);
    }
    assert_eq!(outcome.delivered.len(), manifest.files.len());
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
async fn loaders_starting_together_apply_the_migrations_once() {
    let app = spawn_app().await;
    let (a, b, c) = tokio::join!(app.loader(&[]), app.loader(&[]), app.loader(&[]));
    for loader in [&a, &b, &c] {
        assert_eq!(
            paper_engine_orders::target::Target::tables(loader.target()).len(),
            3
        );
    }
    let applied = app
        .rows("SELECT version, name FROM paper_engine.schema_migrations ORDER BY 1")
        .await;
    assert_eq!(
        applied,
        vec![
            vec![Some("1".into()), Some("0001_initial".into())],
            vec![Some("2".into()), Some("0002_outbox".into())],
        ]
    );
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_connection_lost_mid_copy_is_retried_and_leaves_one_complete_delivery() {
    let app = spawn_app().await;
    let proxy = common::Proxy::start(5432, true).await;
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
