//! Net effect and the CSV dialect: per-key create/amend/remove/unchanged counts, lineage, and
//! DMS's CSV (NULL vs empty, quoting, CRLF, uncompressed files, the full-load Op column).
use crate::helpers::spawn_app;

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

    // A full-load file after change files is a re-run of the full load, not an upsert: by
    // default (RELOAD_POLICY=stop) the stream stops at it and nothing changes (tests/it/reloads.rs
    // covers the rest).
    let reload = format!("{}{}", s(1, "PAUSED", 10), s(2, "RETIRED", 20));
    let reload_key = app
        .put_csv("strategies", "LOAD00000002.csv.gz", &reload)
        .await;
    app.drain(&loader).await;
    let row = app.ledger(&reload_key).await.unwrap();
    assert_eq!(row.status, "ERROR");
    assert!(
        row.error
            .as_deref()
            .unwrap()
            .contains("DMS re-ran the full load of strategies"),
        "{:?}",
        row.error
    );
    assert_eq!(
        lineage,
        app.rows("SELECT strategy_id, _delivery_id FROM paper_engine.strategies ORDER BY 1")
            .await
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
