//! `DataFormat=parquet` through the binary: the sample generator writes the dataset as Parquet
//! (`sample --format parquet`), the loader loads it into the same tables and ledger counts as
//! the CSV of the same dataset; a bad value names the file, row and column and nothing of the
//! file is kept; a dry run checks a Parquet file and keeps nothing.
use crate::helpers::{spawn_app, TestApp};
use crate::loader::ground_truth::differences;
use crate::operate::run;
use paper_engine_orders::sample::{self, parquet_file, SampleSpec, STRATEGY_COLUMNS};

/// Generates the seed-5 dataset into `app`'s bucket with `args`/`settings`, loads it one-shot
/// with the same settings, and returns the ledger: (key without its suffix, rows, creates,
/// amends, removes, unchanged, max event id), by key.
async fn sample_and_load(app: &TestApp, format: &str, settings: &str) -> Vec<Vec<Option<String>>> {
    let (code, out, err) = run(
        app,
        &[
            "sample", "--scale", "0.02", "--seed", "5", "--format", format,
        ],
        &[("DMS_SETTINGS", settings)],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{format} {settings}:\n{out}{err}");
    app.rows(
        "SELECT regexp_replace(object_key, '\\.(parquet|csv\\.gz)$', ''), rows, creates, amends, \
         removes, unchanged, max_event_id, status FROM paper_engine.loader_deliveries \
         ORDER BY object_key",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_dataset_as_csv_and_as_parquet_loads_into_identical_tables_and_ledger_counts() {
    let spec = SampleSpec {
        scale: 0.02,
        seed: 5,
        keep_state: true,
        ..SampleSpec::default()
    };
    let truth = sample::generate(&spec, |_| Ok::<(), ()>(())).unwrap();
    let csv = spawn_app().await;
    let csv_ledger = sample_and_load(&csv, "csv", "{}").await;
    for (settings, parquet_keys) in [
        (r#"{"DataFormat": "parquet"}"#, true),
        // Op in the full load, DMS's commit-time column, uncompressed pages: the same rows.
        (
            r#"{"DataFormat": "parquet", "IncludeOpForFullLoad": true,
                "TimestampColumnName": "commit_ts", "CompressionType": "NONE"}"#,
            true,
        ),
    ] {
        let app = spawn_app().await;
        let ledger = sample_and_load(&app, "parquet", settings).await;
        let keys = app
            .rows("SELECT object_key FROM paper_engine.loader_deliveries")
            .await;
        assert_eq!(
            keys.iter()
                .all(|k| k[0].as_deref().unwrap().ends_with(".parquet")),
            parquet_keys,
            "{keys:?}"
        );
        assert_eq!(ledger, csv_ledger, "{settings}: the same counts per file");
        assert!(ledger.len() > 6, "LOAD and change files: {ledger:?}");
        for table in sample::TABLES {
            let expected = &truth.tables[table];
            assert_eq!(app.count(table).await, expected.len() as i64, "{table}");
            assert_eq!(
                differences(&app, table, expected).await,
                (0, 0),
                "{settings}: {table}"
            );
            assert_eq!(
                differences(&csv, table, expected).await,
                (0, 0),
                "csv: {table}"
            );
        }
    }
}

/// A strategy row as text fields (`code` given, so a test can make it too long).
fn strategy(id: &str, code: &str) -> Vec<Option<&'static [u8]>> {
    let leak = |s: String| -> &'static [u8] { Box::leak(s.into_boxed_str()).as_bytes() };
    vec![
        Some(leak(id.to_string())),
        Some(leak(code.to_string())),
        Some(b"Name"),
        Some(b"ops"),
        Some(b"IBKR"),
        Some(b"ACTIVE"),
        None,
        Some(b"2022-09-01 10:00:00.000001"),
        Some(b"2022-09-01 10:00:00"),
        Some(leak(id.to_string())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_parquet_value_names_file_row_and_column_and_nothing_of_the_file_is_kept() {
    let app = spawn_app().await;
    let settings = r#"{"DataFormat": "parquet"}"#;
    // Row 3's code is longer than varchar(32).
    let rows = vec![
        strategy("1", "S-1"),
        strategy("2", "S-2"),
        strategy("3", &"X".repeat(40)),
    ];
    let key = app.key("strategies", "LOAD00000001.parquet");
    app.put(&key, parquet_file("strategies", &STRATEGY_COLUMNS, rows))
        .await;
    // A dry run finds it and keeps nothing.
    let (code, out, err) = run(
        &app,
        &[],
        &[("DMS_SETTINGS", settings), ("DRY_RUN", "true")],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("row 3, column 2 (code)"), "{err}");
    assert_eq!(
        app.rows("SELECT count(*) FROM pg_tables WHERE schemaname = 'paper_engine'")
            .await,
        vec![vec![Some("0".to_string())]],
        "a dry run keeps nothing, not even the schema"
    );
    // The load fails the file whole, saying where and what to do.
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 1, "{out}{err}");
    let row = app.ledger(&key).await.unwrap();
    assert_eq!(row.status, "ERROR");
    let error = row.error.unwrap();
    assert!(
        error.contains("LOAD00000001.parquet: row 3, column 2 (code)"),
        "{error}"
    );
    assert!(err.contains("retry"), "the next step is said: {err}");
    assert_eq!(app.count("strategies").await, 0, "nothing of the file");

    // Fixed (DMS wrote it again): retried, and a change file in Parquet goes on from there.
    let fixed = vec![
        strategy("1", "S-1"),
        strategy("2", "S-2"),
        strategy("3", "S-3"),
    ];
    app.put(&key, parquet_file("strategies", &STRATEGY_COLUMNS, fixed))
        .await;
    let mut names = vec!["Op"];
    names.extend(STRATEGY_COLUMNS);
    let mut delete = strategy("2", "S-2");
    delete.insert(0, Some(b"D"));
    let mut insert = strategy("4", "S-4");
    insert.insert(0, Some(b"I"));
    app.put(
        &app.key("strategies", "20220922-095853123.parquet"),
        parquet_file("strategies", &names, vec![delete, insert]),
    )
    .await;
    let (code, out, err) = run(
        &app,
        &["retry", &key, "--reason", "rewritten"],
        &[("DMS_SETTINGS", settings)],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        app.rows(
            "SELECT strategy_id::text, created_at::text FROM paper_engine.strategies ORDER BY 1"
        )
        .await,
        vec![
            vec![Some("1".into()), Some("2022-09-01 10:00:00.000001".into())],
            vec![Some("3".into()), Some("2022-09-01 10:00:00.000001".into())],
            vec![Some("4".into()), Some("2022-09-01 10:00:00.000001".into())],
        ]
    );
}

/// Puts `strategies/LOAD00000001.parquet` of one row with columns `names`, loads one-shot, which
/// fails (exit 1): the key and the error its ledger row holds.
async fn a_failing_full_load(
    app: &TestApp,
    names: &[&str],
    row: Vec<Option<&'static [u8]>>,
) -> (String, String) {
    let key = app.key("strategies", "LOAD00000001.parquet");
    app.put(&key, parquet_file("strategies", names, vec![row]))
        .await;
    let (code, out, err) = run(app, &[], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let error = app.ledger(&key).await.unwrap().error.unwrap();
    (key, error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_schema_that_lacks_a_table_column_fails_naming_it() {
    let app = spawn_app().await;
    let names: Vec<&str> = STRATEGY_COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "owner")
        .collect();
    let mut row = strategy("1", "S-1");
    row.remove(3);
    let (_, error) = a_failing_full_load(&app, &names, row).await;
    assert!(error.contains("the Parquet schema"), "{error}");
    assert!(error.contains("owner"), "{error}");
}

/// Schema drift in Parquet: the new columns' types come from the file's schema. `stop` names the
/// migration with them; `add-columns` adds them so typed, in the file's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_parquet_columns_are_added_with_the_types_of_the_files_schema() {
    let app = spawn_app().await;
    let mut names: Vec<&str> = STRATEGY_COLUMNS.to_vec();
    // (The sample writer types these names as DMS types such source columns.)
    names.extend(["quantity", "transact_time", "venue"]);
    let mut row = strategy("1", "S-1");
    row.extend([
        Some(&b"12.5"[..]),
        Some(&b"2022-09-22 09:58:53.123456"[..]),
        None,
    ]);
    let (key, error) = a_failing_full_load(&app, &names, row).await;
    assert!(
        error.contains(
            r#"ADD COLUMN "quantity" numeric(18,4), ADD COLUMN "transact_time" timestamp, ADD COLUMN "venue" text"#
        ),
        "{error}"
    );
    let (code, out, err) = run(
        &app,
        &["retry", &key, "--reason", "take the new columns"],
        &[("SCHEMA_DRIFT_POLICY", "add-columns")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        app.rows(
            "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns \
             JOIN pg_attribute ON attrelid = 'paper_engine.strategies'::regclass \
             AND attname = column_name WHERE table_schema = 'paper_engine' \
             AND table_name = 'strategies' AND column_name IN ('quantity', 'transact_time', 'venue') \
             ORDER BY ordinal_position"
        )
        .await,
        vec![
            vec![Some("quantity".into()), Some("numeric(18,4)".into())],
            vec![
                Some("transact_time".into()),
                Some("timestamp without time zone".into())
            ],
            vec![Some("venue".into()), Some("text".into())],
        ]
    );
    assert_eq!(
        app.rows("SELECT quantity::text, transact_time::text, venue FROM paper_engine.strategies")
            .await,
        vec![vec![
            Some("12.5000".into()),
            Some("2022-09-22 09:58:53.123456".into()),
            None
        ]]
    );
}
