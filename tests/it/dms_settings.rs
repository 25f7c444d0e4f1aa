//! The S3 target endpoint's settings honoured through the binary (`DMS_SETTINGS`), each on files
//! written as DMS writes them under that setting.
use crate::helpers::{active_strategy, spawn_app};
use crate::operate::run;
use paper_engine_orders::sample::STRATEGY_COLUMNS;

/// `AddColumnName`: every file starts with a header row, `Op` first in change files. Checked
/// against the table's columns and skipped; a header that lacks a column (or names one the table
/// lacks) fails the file whole, naming the columns, and the stream stops there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_column_name_header_rows_are_checked_against_the_table_and_skipped() {
    let app = spawn_app().await;
    let settings = r#"{"AddColumnName": true, "CompressionType": "GZIP"}"#;
    let header = STRATEGY_COLUMNS.join(",");
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &format!("{header}\n{}{}", active_strategy(1), active_strategy(2)),
    )
    .await;
    app.put_csv(
        "strategies",
        "20220922-095853123.csv.gz",
        &format!("Op,{header}\nI,{}", active_strategy(3)),
    )
    .await;
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        app.count("strategies").await,
        3,
        "the header rows are not rows"
    );
    let load = app
        .ledger(&app.key("strategies", "LOAD00000001.csv.gz"))
        .await
        .unwrap();
    assert_eq!((load.rows, load.creates), (2, 2));

    // A header without the `name` column: the file fails whole, naming it.
    let without: Vec<&str> = STRATEGY_COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "name")
        .collect();
    let key = app
        .put_csv(
            "strategies",
            "20220922-095854123.csv.gz",
            &format!(
                "Op,{}\nI,4,S-4,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,4\n",
                without.join(",")
            ),
        )
        .await;
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("line 1: header row: table strategies has column(s) the file lacks: name"),
        "{err}"
    );
    assert_eq!(app.ledger(&key).await.unwrap().status, "ERROR");
    assert_eq!(app.count("strategies").await, 3, "nothing of the file kept");

    // Without the setting, the same header is read as a row and refused: the setting matters.
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &format!("{header}\n{}", active_strategy(1)),
    )
    .await;
    let (code, _, err) = run(&app, &[], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 1, column 1 (strategy_id)"), "{err}");
}

/// `CsvDelimiter`, `CsvNullValue`, `AddTrailingPaddingCharacter`, `CdcInsertsAndUpdates` without
/// `IncludeOpForFullLoad` (change files without the Op column, rows applied as upserts) and
/// `YYYYMMDDHH` date folders with `DASH`, together, as DMS writes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimiter_null_text_padding_op_less_changes_and_dashed_hour_folders() {
    let app = spawn_app().await;
    let settings = r#"{"CsvDelimiter": "|", "CsvNullValue": "NULL", "AddTrailingPaddingCharacter": true,
        "CdcInsertsAndUpdates": true, "IncludeOpForFullLoad": false, "DatePartitionEnabled": true,
        "DatePartitionSequence": "YYYYMMDDHH", "DatePartitionDelimiter": "DASH"}"#;
    let row = |id: u32, name: &str, owner: &str, status: &str, notional: &str, event: u32| {
        format!("{id}|S-{id}|{name}|{owner}|IBKR|{status}|{notional}|2022-09-01 10:00:00|2022-09-01 10:00:00|{event}\n")
    };
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &[
            row(1, "Strategy 1   ", "ops", "ACTIVE", "NULL", 1),
            row(2, "\"a|b\"", "", "ACTIVE", "12.50", 2),
        ]
        .concat(),
    )
    .await;
    let change = app
        .put_csv(
            "strategies",
            "2022-09-22-09/20220922-095853123.csv.gz",
            &[
                row(1, "Strategy 1", "ops", "PAUSED", "NULL", 11),
                row(3, "Three", "desk  ", "ACTIVE", "NULL", 3),
            ]
            .concat(),
        )
        .await;
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !err.contains("Ignoring"),
        "the dated key is a DMS name:\n{err}"
    );
    let rows = app
        .rows("SELECT strategy_id, name, owner, status, max_notional FROM paper_engine.strategies ORDER BY 1")
        .await;
    let text = |r: &Vec<Option<String>>| {
        r.iter()
            .map(|v| v.as_deref().unwrap_or("<null>").to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(
        rows.iter().map(text).collect::<Vec<_>>(),
        [
            "1,Strategy 1,ops,PAUSED,<null>",
            "2,a|b,,ACTIVE,12.50",
            "3,Three,desk,ACTIVE,<null>",
        ]
    );
    let ledger = app.ledger(&change).await.unwrap();
    assert_eq!(ledger.status, "SUCCESS");
    assert_eq!(
        ledger.counts(),
        (2, 1, 1, 0, 0),
        "an upsert: 3 created, 1 amended"
    );

    // A date-folder sequence DMS does not have is refused at start-up, saying why.
    let (code, _, err) = run(
        &app,
        &[],
        &[(
            "DMS_SETTINGS",
            r#"{"DatePartitionEnabled": true, "DatePartitionSequence": "DDYYYYMM"}"#,
        )],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("DatePartitionSequence"), "{err}");
    assert!(
        err.contains("YYYYMMDD, YYYYMMDDHH, YYYYMM, MMYYYYDD or DDMMYYYY"),
        "{err}"
    );
}

/// `TimestampColumnName` with `AddColumnName` and `IncludeOpForFullLoad`: the commit-time column
/// after Op is named in the header and skipped in every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_column_after_op_is_named_in_the_header_and_skipped() {
    let app = spawn_app().await;
    let settings = r#"{"TimestampColumnName": "commit_ts", "AddColumnName": true,
        "IncludeOpForFullLoad": true}"#;
    let header = format!("Op,commit_ts,{}", STRATEGY_COLUMNS.join(","));
    let ts = "2022-09-22 09:58:53.123456";
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &format!(
            "{header}\nI,{ts},{}I,{ts},{}",
            active_strategy(1),
            active_strategy(2)
        ),
    )
    .await;
    let change = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &format!("{header}\nD,{ts},{}", active_strategy(2)),
        )
        .await;
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app.count("strategies").await, 1);
    assert_eq!(app.ledger(&change).await.unwrap().counts(), (1, 0, 0, 1, 0));

    // A header without it: the file fails whole, naming the column.
    let bad = app
        .put_csv(
            "strategies",
            "20220922-110000000.csv.gz",
            &format!(
                "Op,{}\nI,{}",
                STRATEGY_COLUMNS.join(","),
                active_strategy(3)
            ),
        )
        .await;
    let (code, _, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the timestamp column `commit_ts` (TimestampColumnName)"),
        "{err}"
    );
    assert_eq!(app.ledger(&bad).await.unwrap().status, "ERROR");
}

/// The sample generator writes what an endpoint with `DMS_SETTINGS` writes (through the binary's
/// `sample` command), and the loader with the same settings loads it into exactly the generator's
/// ground truth, whatever the dialect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_data_in_each_endpoint_dialect_loads_to_the_ground_truth() {
    use crate::loader::ground_truth::differences;
    use paper_engine_orders::sample::{self, SampleSpec};
    for (settings, expect_in_keys) in [
        (
            r#"{"CsvDelimiter": "|", "CsvRowDelimiter": "~", "CsvNullValue": "NULL", "AddColumnName": true,
                "IncludeOpForFullLoad": true, "TimestampColumnName": "commit_ts",
                "CompressionType": "NONE", "DatePartitionEnabled": true,
                "DatePartitionSequence": "YYYYMMDDHH", "DatePartitionDelimiter": "UNDERSCORE"}"#,
            "/2022_",
        ),
        (
            r#"{"CsvDelimiter": ";", "DatePartitionEnabled": false, "CdcPath": "changes",
                "AddTrailingPaddingCharacter": true}"#,
            "/changes/dbo/",
        ),
        // Day folders that do not sort in time order.
        (
            r#"{"DatePartitionEnabled": true, "DatePartitionSequence": "DDMMYYYY"}"#,
            "/22/09/2022/",
        ),
        // Updates that supply only the columns they changed.
        (
            r#"{"UseCsvNoSupValue": true, "CsvNoSupValue": "**unsupplied**"}"#,
            "/dbo/orders/",
        ),
        // Change files of inserts and updates without the Op column (no deletes reach the
        // target), and of inserts only with it.
        (r#"{"CdcInsertsAndUpdates": true}"#, "/dbo/orders/"),
        (
            r#"{"CdcInsertsOnly": true, "IncludeOpForFullLoad": true}"#,
            "/dbo/orders/",
        ),
    ] {
        let app = spawn_app().await;
        let dir = tempfile::tempdir().unwrap();
        let listed = dir.path().join("files.json");
        let (code, out, err) = run(
            &app,
            &[
                "sample",
                "--scale",
                "0.02",
                "--seed",
                "3",
                "--format",
                "csv",
                "--manifest",
                listed.to_str().unwrap(),
            ],
            &[("DMS_SETTINGS", settings)],
        );
        assert_eq!(code, 0, "{out}{err}");
        let files: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&listed).unwrap()).unwrap();
        let files = files.as_array().unwrap();
        assert!(
            files
                .iter()
                .any(|f| f["key"].as_str().unwrap().contains(expect_in_keys)),
            "{settings}: {files:?}"
        );
        let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", settings)]);
        assert_eq!(code, 0, "{settings}:\n{out}{err}");
        // The ground truth: the same spec and settings, kept in memory (with change files that
        // leave operations out, the target's contents, not the source's).
        let spec = SampleSpec {
            scale: 0.02,
            seed: 3,
            keep_state: true,
            ..SampleSpec::default()
        };
        let dialect = paper_engine_orders::dms::DmsSettings::parse(settings)
            .unwrap()
            .sample_dialect();
        let manifest = sample::generate_in(&spec, &dialect, |_| Ok::<(), ()>(())).unwrap();
        for table in sample::TABLES {
            let expected = &manifest.tables[table];
            assert_eq!(app.count(table).await, expected.len() as i64, "{table}");
            assert_eq!(
                differences(&app, table, expected).await,
                (0, 0),
                "{settings}: {table}"
            );
        }
        // Every file delivered, with the generator's counts.
        for file in files {
            let ledger = app.ledger(file["key"].as_str().unwrap()).await;
            let ledger = ledger.unwrap_or_else(|| panic!("{settings}: {file} not delivered"));
            let c = &file["counts"];
            assert_eq!(
                ledger.counts(),
                (
                    file["rows"].as_i64().unwrap(),
                    c["creates"].as_i64().unwrap(),
                    c["amends"].as_i64().unwrap(),
                    c["removes"].as_i64().unwrap(),
                    c["unchanged"].as_i64().unwrap()
                ),
                "{settings}: {file}"
            );
        }
    }
}

/// A running service with `DDMMYYYY` day folders (which do not sort in time order) finds a change
/// file in today's folder by its incremental pass (the full listing is an hour away), and one
/// later in the same day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_finds_new_files_in_day_first_folders_without_a_full_listing() {
    use crate::service::spawn_service;
    use chrono::Utc;
    let app = spawn_app().await;
    let today = Utc::now().date_naive();
    let file = |day: chrono::NaiveDate, hhmmss: &str| {
        format!(
            "{}/{}-{hhmmss}000.csv.gz",
            day.format("%d/%m/%Y"),
            day.format("%Y%m%d")
        )
    };
    app.put_csv("strategies", "LOAD00000001.csv.gz", &active_strategy(1))
        .await;
    // The stream's last change file is from New Year's Eve: `31/12/<last year>/` sorts after
    // today's folder (all year but on 31 December), so a listing after the cursor misses it.
    let new_years_eve =
        chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&today) - 1, 12, 31).unwrap();
    app.put_csv(
        "strategies",
        &file(new_years_eve, "100000"),
        &format!("I,{}", active_strategy(2)),
    )
    .await;
    let service = spawn_service(
        &app,
        &[
            (
                "DMS_SETTINGS",
                r#"{"DatePartitionEnabled": true, "DatePartitionSequence": "DDMMYYYY"}"#,
            ),
            ("MIN_SLEEP", "0.2"),
            ("MAX_SLEEP", "0.2"),
            ("FULL_LIST_INTERVAL", "3600"),
        ],
    )
    .await;
    let until = |n: i64| {
        let app = &app;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while app.count("strategies").await < n && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            app.count("strategies").await
        }
    };
    assert_eq!(until(2).await, 2, "{}", service.log_text());
    // Today's first file (its folder sorts anywhere), then a later one in the same folder.
    app.put_csv(
        "strategies",
        &file(today, "000001"),
        &format!("I,{}", active_strategy(3)),
    )
    .await;
    assert_eq!(until(3).await, 3, "{}", service.log_text());
    app.put_csv(
        "strategies",
        &file(today, "000002"),
        &format!("I,{}", active_strategy(4)),
    )
    .await;
    assert_eq!(until(4).await, 4, "{}", service.log_text());
}
