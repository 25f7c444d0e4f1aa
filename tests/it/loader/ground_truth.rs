//! Ground truth and ordering: a full load then CDC reaches the sample's final state exactly, in
//! stream order; a dry run reports the counts of the real run; concurrent starts migrate once.
use crate::helpers::{small_sample, spawn_app, TestApp};
use paper_engine_orders::sample;

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
pub async fn differences(
    app: &TestApp,
    table: &str,
    expected: &[Vec<Option<String>>],
) -> (i64, i64) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_load_then_cdc_reaches_the_source_state_exactly() {
    let app = spawn_app().await;
    let manifest = paper_engine_orders::app::upload_sample(&app.s3, small_sample(7, true))
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
async fn dry_run_persists_nothing_and_reports_the_counts_of_a_real_run() {
    let app = spawn_app().await;
    let manifest = paper_engine_orders::app::upload_sample(&app.s3, small_sample(11, true))
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
            vec![Some("3".into()), Some("0003_ledger_history".into())],
            vec![Some("4".into()), Some("0004_operator_actions".into())],
            vec![Some("5".into()), Some("0005_runs".into())],
            vec![Some("6".into()), Some("0006_outbox_message_id".into())],
            vec![Some("7".into()), Some("0007_reloads_and_late_files".into())],
            vec![Some("8".into()), Some("0008_schema_drift".into())],
        ]
    );
}
