//! `UseCsvNoSupValue` with `CsvNoSupValue`, through the binary: a change file's column DMS could
//! not supply (written as the `CsvNoSupValue` text) keeps the value the key had: its latest value
//! supplied earlier in the file, else the table's.
use crate::helpers::{spawn_app, TestApp};
use crate::operate::run;

const SETTINGS: &str = r#"{"UseCsvNoSupValue": true, "CsvNoSupValue": "~NS~"}"#;

/// A strategy change record: the Op, the key, then the nine other columns (`~NS~`: unsupplied).
fn change(op: &str, id: u32, columns: [&str; 9]) -> String {
    format!("{op},{id},{}\n", columns.join(","))
}

/// Every column not named is unsupplied.
const NS: &str = "~NS~";

async fn strategies(app: &TestApp) -> Vec<String> {
    app.rows(
        "SELECT concat_ws(',', strategy_id, code, name, owner, broker, status,
                          coalesce(max_notional::text, '<null>'), created_at, updated_at, event_id)
           FROM paper_engine.strategies ORDER BY strategy_id",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupplied_columns_keep_their_values() {
    let app = spawn_app().await;
    let load_row = |id: u32| {
        format!("{id},S-{id},Strategy {id},ops,IBKR,ACTIVE,100.00,2022-09-01 10:00:00,2022-09-01 10:00:00,{id}\n")
    };
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        &[load_row(1), load_row(2), load_row(3)].concat(),
    )
    .await;
    let first = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &[
                // 1: status, then name, each update supplying only what it changed.
                change(
                    "U",
                    1,
                    [
                        NS,
                        NS,
                        NS,
                        NS,
                        "PAUSED",
                        NS,
                        NS,
                        "2022-09-22 10:00:00",
                        "11",
                    ],
                ),
                change("U", 1, [NS, "Renamed", NS, NS, NS, NS, NS, NS, "12"]),
                // 2: an update that changed nothing DMS could supply.
                change("U", 2, [NS; 9]),
                // 4: inserted whole, then its owner changed.
                "I,4,S-4,Four,ops,IBKR,ACTIVE,,2022-09-22 10:00:00,2022-09-22 10:00:00,13
"
                .to_string(),
                change("U", 4, [NS, NS, "desk", NS, NS, NS, NS, NS, "14"]),
                // 3: deleted (its before image may hold the text too).
                change("D", 3, [NS; 9]),
            ]
            .concat(),
        )
        .await;
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", SETTINGS)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        strategies(&app).await,
        [
            "1,S-1,Renamed,ops,IBKR,PAUSED,100.00,2022-09-01 10:00:00,2022-09-22 10:00:00,12",
            "2,S-2,Strategy 2,ops,IBKR,ACTIVE,100.00,2022-09-01 10:00:00,2022-09-01 10:00:00,2",
            "4,S-4,Four,desk,IBKR,ACTIVE,<null>,2022-09-22 10:00:00,2022-09-22 10:00:00,14",
        ]
    );
    let ledger = app.ledger(&first).await.unwrap();
    assert_eq!(ledger.status, "SUCCESS");
    assert_eq!(
        ledger.counts(),
        (6, 1, 1, 1, 1),
        "rows, and per key: 4 created, 1 amended, 3 removed, 2 unchanged"
    );

    // A late file (guarded): key 1 was written by a later file and stays; key 2 takes its one
    // supplied column. A dry run first keeps nothing.
    let late = app
        .put_csv(
            "strategies",
            "20220922-090000000.csv.gz",
            &[
                change("U", 1, [NS, "Late name", NS, NS, NS, NS, NS, NS, "5"]),
                change("U", 2, [NS, NS, NS, NS, "RETIRED", NS, NS, NS, "6"]),
            ]
            .concat(),
        )
        .await;
    let before = strategies(&app).await;
    let (code, out, err) = run(
        &app,
        &[],
        &[("DMS_SETTINGS", SETTINGS), ("DRY_RUN", "true")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("(create: 0, amend: 1, remove: 0)"), "{err}");
    assert_eq!(strategies(&app).await, before, "a dry run keeps nothing");
    let (code, out, err) = run(&app, &[], &[("DMS_SETTINGS", SETTINGS)]);
    assert_eq!(code, 0, "{out}{err}");
    let rows = strategies(&app).await;
    assert_eq!(rows[0], before[0], "written by a later file: kept");
    assert_eq!(
        rows[1],
        "2,S-2,Strategy 2,ops,IBKR,RETIRED,100.00,2022-09-01 10:00:00,2022-09-01 10:00:00,6"
    );
    assert_eq!(app.ledger(&late).await.unwrap().counts(), (2, 0, 1, 0, 1));

    // A key DMS did not supply is an error naming the line and the column; nothing is kept.
    let bad = app
        .put_csv(
            "strategies",
            "20220922-110000000.csv.gz",
            &[
                change("U", 4, [NS, NS, NS, NS, "PAUSED", NS, NS, NS, "20"]),
                format!("U,{NS},{}\n", [NS; 9].join(",")),
            ]
            .concat(),
        )
        .await;
    let (code, _, err) = run(&app, &[], &[("DMS_SETTINGS", SETTINGS)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 2, column 1 (strategy_id)") && err.contains("CsvNoSupValue"),
        "{err}"
    );
    assert_eq!(app.ledger(&bad).await.unwrap().status, "ERROR");
    assert_eq!(strategies(&app).await, rows, "nothing of the file kept");

    // Without the setting the text is a value, and not a number: the setting matters.
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &load_row(1))
        .await;
    app.put_csv(
        "strategies",
        "20220922-100000000.csv.gz",
        &change("U", 1, [NS, NS, NS, NS, "PAUSED", NS, NS, NS, "11"]),
    )
    .await;
    let (code, _, err) = run(&app, &[], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("column 7 (max_notional)"), "{err}");

    // `UseCsvNoSupValue` without a text: DMS writes NULL, which the operator is told.
    let (_, _, err) = run(
        &app,
        &[],
        &[("DMS_SETTINGS", r#"{"UseCsvNoSupValue": true}"#)],
    );
    assert!(
        err.contains("UseCsvNoSupValue is true without a CsvNoSupValue"),
        "{err}"
    );
}
