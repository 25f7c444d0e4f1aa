//! Schema drift (`SCHEMA_DRIFT_POLICY`): DMS added source columns at the end of a table, which a
//! header row (`AddColumnName`) names. By default the stream stops, naming them and the migration;
//! with `add-columns` they are added in the file's own transaction, recorded and announced.
use crate::helpers::{active_strategy, spawn_app, TestApp};
use crate::operate::run;
use paper_engine_orders::sample::STRATEGY_COLUMNS;

const SETTINGS: &str = r#"{"AddColumnName": true}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_source_columns_stop_the_stream_by_default_or_are_added_in_the_files_transaction() {
    let app = spawn_app().await;
    let header = STRATEGY_COLUMNS.join(",");
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &format!("{header}\n{}{}", active_strategy(1), active_strategy(2)),
    )
    .await;
    let wider = format!("Op,{header},venue,Fee");
    let drifted = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &format!(
                "{wider}\nI,{},NYSE,1.5\nU,{},,\n",
                active_strategy(3).trim_end(),
                active_strategy(1).trim_end()
            ),
        )
        .await;
    let after = app
        .put_csv(
            "strategies",
            "20220922-110000000.csv.gz",
            &format!("{wider}\nI,{},LSE,2\n", active_strategy(4).trim_end()),
        )
        .await;
    // Default: the stream stops at the file, naming the columns and the migration.
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", SETTINGS)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            "the file has column(s) at its end that table strategies lacks: venue, Fee (DMS added source columns)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            r#"ALTER TABLE strategies ADD COLUMN "venue" <its type>, ADD COLUMN "fee" <its type>"#
        ),
        "{err}"
    );
    assert!(err.contains("SCHEMA_DRIFT_POLICY=add-columns"), "{err}");
    assert_eq!(app.ledger(&drifted).await.unwrap().status, "ERROR");
    assert_eq!(app.count("strategies").await, 2);
    assert!(drift_columns(&app).await.is_empty(), "no column added");

    // add-columns: retried, the columns are added (nullable text) with the file's rows; the
    // next file with them is delivered as usual.
    let drift = [
        ("DMS_SETTINGS", SETTINGS),
        ("SCHEMA_DRIFT_POLICY", "add-columns"),
        ("NOTIFICATIONS", "true"),
        ("NATS", "nats://127.0.0.1:4222"),
    ];
    let (code, out, err) = run(
        &app,
        &["retry", &drifted, "--reason", "new columns"],
        &drift,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("adding them to strategies (text, nullable)"),
        "{err}"
    );
    assert_eq!(
        drift_columns(&app).await,
        vec![
            vec![
                Some("venue".into()),
                Some("text".into()),
                Some("YES".into())
            ],
            vec![Some("fee".into()), Some("text".into()), Some("YES".into())],
        ]
    );
    assert_eq!(
        app.rows("SELECT strategy_id, venue, fee FROM paper_engine.strategies ORDER BY 1")
            .await,
        vec![
            vec![Some("1".into()), None, None],
            vec![Some("2".into()), None, None],
            vec![Some("3".into()), Some("NYSE".into()), Some("1.5".into())],
            vec![Some("4".into()), Some("LSE".into()), Some("2".into())],
        ]
    );
    let row = app.ledger(&drifted).await.unwrap();
    assert_eq!(row.status, "SUCCESS");
    let recorded = app
        .rows(&format!(
            "SELECT added_columns::text FROM paper_engine.loader_deliveries WHERE object_key IN ('{drifted}', '{after}') ORDER BY id"
        ))
        .await;
    assert_eq!(
        recorded,
        vec![vec![Some("{venue,fee}".into())], vec![None]],
        "recorded on the delivery that added them"
    );
    let payload = app
        .rows(&format!(
            "SELECT payload FROM paper_engine.loader_outbox WHERE delivery_id = {}",
            row.id
        ))
        .await;
    assert!(
        payload[0][0]
            .as_deref()
            .unwrap()
            .contains(r#""added_columns":["venue","fee"]"#),
        "{payload:?}"
    );
}

/// The columns `venue` and `fee` of `strategies`: name, type, nullable.
async fn drift_columns(app: &TestApp) -> Vec<Vec<Option<String>>> {
    app.rows(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns
          WHERE table_schema = 'paper_engine' AND table_name = 'strategies'
            AND column_name IN ('venue', 'fee') ORDER BY ordinal_position",
    )
    .await
}

/// The documented way out of a stop: a migration adds the columns while the loader runs; the
/// running loader reads the table's columns again when a file names new ones, and delivers it
/// with them (typed as the migration says), without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_loader_reads_columns_a_migration_added_since_it_started() {
    let app = spawn_app().await;
    let header = STRATEGY_COLUMNS.join(",");
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &format!("{header}\n{}", active_strategy(1)),
    )
    .await;
    let loader = app.loader(&[("DMS_SETTINGS", SETTINGS)]).await;
    app.drain(&loader).await;
    assert_eq!(app.count("strategies").await, 1);
    app.db
        .batch_execute("ALTER TABLE paper_engine.strategies ADD COLUMN risk_limit numeric(10,2)")
        .await
        .unwrap();
    let wider = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &format!(
                "Op,{header},risk_limit\nI,{},12.50\n",
                active_strategy(2).trim_end()
            ),
        )
        .await;
    app.drain(&loader).await;
    assert_eq!(app.ledger(&wider).await.unwrap().status, "SUCCESS");
    assert_eq!(
        app.rows("SELECT strategy_id, risk_limit FROM paper_engine.strategies ORDER BY 1")
            .await,
        vec![
            vec![Some("1".into()), None],
            vec![Some("2".into()), Some("12.50".into())],
        ]
    );
}
