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
