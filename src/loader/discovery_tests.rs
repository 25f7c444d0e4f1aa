//! Discovery against an in-memory bucket and ledger: what a pass lists, asks and finds.
use std::sync::Arc;

use super::*;
use crate::dms::{Column, ColumnType, TableSpec};
use crate::ledger::DeliveryStatus;
use crate::ledger::MemoryLedger;
use crate::source::MemorySource;

fn spec(name: &str) -> Arc<TableSpec> {
    Arc::new(TableSpec {
        name: name.into(),
        columns: vec![Column {
            name: "id".into(),
            ty: ColumnType::Int8,
            nullable: false,
        }],
        key: vec![0],
    })
}

fn setup() -> (MemorySource, MemoryLedger) {
    let source = MemorySource::new("data");
    let ledger = MemoryLedger::new([spec("orders"), spec("strategies")]);
    (source, ledger)
}

fn keys(plan: &Plan, table: &str) -> Vec<String> {
    plan.streams
        .get(table)
        .map(|files| files.iter().map(|f| f.info.key.clone()).collect())
        .unwrap_or_default()
}

const O: &str = "data/dbo/orders/";

#[tokio::test]
async fn pending_files_come_in_delivery_order_and_done_ones_are_left_out() {
    let (source, ledger) = setup();
    for name in [
        "20220922-100000000.csv.gz",
        "LOAD00000002.csv.gz",
        "2022/09/21/20220921-120000000.csv.gz",
        "LOAD00000001.csv.gz",
        "notes.txt",
    ] {
        source.put(&format!("{O}{name}"), vec![1]);
    }
    ledger.set(
        &format!("{O}LOAD00000001.csv.gz"),
        DeliveryStatus::Success,
        None,
    );
    let mut d = Discovery::new(Duration::from_secs(3600));
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.full);
    assert_eq!(
        keys(&plan, "orders"),
        [
            format!("{O}LOAD00000002.csv.gz"),
            format!("{O}2022/09/21/20220921-120000000.csv.gz"),
            format!("{O}20220922-100000000.csv.gz"),
        ]
    );
}

#[tokio::test]
async fn an_idle_pass_makes_one_request_per_stream_plus_one_and_no_ledger_query() {
    let (source, ledger) = setup();
    // A year of history in one stream, all delivered.
    for i in 0..3000u32 {
        let key = format!("{O}{}.csv.gz", stamp(i));
        source.put(&key, vec![1]);
        ledger.set(&key, DeliveryStatus::Success, None);
    }
    source.put("data/dbo/strategies/LOAD00000001.csv.gz", vec![1]);
    ledger.set(
        "data/dbo/strategies/LOAD00000001.csv.gz",
        DeliveryStatus::Success,
        None,
    );
    let mut d = Discovery::new(Duration::from_secs(3600));
    d.pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    let (requests, queries) = (source.requests(), ledger.queries());
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(!plan.full);
    assert!(plan.streams.is_empty());
    // 1 folder listing + 2 streams (orders, strategies) of one schema folder, + the year folder
    // of orders, whose change files have flat names (a first date folder would sort before them).
    assert_eq!(source.requests() - requests, 4);
    assert_eq!(
        ledger.queries() - queries,
        0,
        "nothing new: no ledger query"
    );
    // A new change file: listed after the cursor, asked about once.
    let new = format!("{O}{}.csv.gz", stamp(5000));
    source.put(&new, vec![1]);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert_eq!(keys(&plan, "orders"), std::slice::from_ref(&new));
    assert_eq!(ledger.asked_last(), 1, "only the new key is asked about");
    d.settle(&plan.streams["orders"][0]);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.streams.is_empty(), "{plan:?}");
}

/// A change-file stamp `i` minutes after 2022-01-01 00:00.
fn stamp(i: u32) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2022, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        + chrono::Duration::minutes(i64::from(i));
    t.format("%Y%m%d-%H%M%S000").to_string()
}

#[tokio::test]
async fn a_file_behind_the_cursor_is_found_by_the_next_full_listing_as_late() {
    let (source, ledger) = setup();
    source.put(&format!("{O}{}.csv.gz", stamp(10)), vec![1]);
    let mut d = Discovery::new(Duration::from_secs(3600));
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert_eq!(plan.streams["orders"].len(), 1);
    assert!(plan.late.is_empty(), "start-up finds nothing late");
    d.settle(&plan.streams["orders"][0]);
    ledger.set(
        &format!("{O}{}.csv.gz", stamp(10)),
        DeliveryStatus::Success,
        None,
    );
    // Written late, with an earlier time stamp: an incremental pass cannot see it.
    let late = format!("{O}{}.csv.gz", stamp(5));
    source.put(&late, vec![1]);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.streams.is_empty());
    d.full_interval = Duration::ZERO;
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.full);
    assert_eq!(plan.late, [("orders".to_string(), late.clone())]);
    assert_eq!(keys(&plan, "orders"), [late]);
}

/// A stream of two change files whose first failed (an ERROR row with its ETag): discovery,
/// the keys of the bad and the next file, and the pass that finds the stream stopped.
async fn stopped_stream() -> (MemorySource, MemoryLedger, Discovery, String, String, Plan) {
    let (source, ledger) = setup();
    let bad = format!("{O}{}.csv.gz", stamp(1));
    let next = format!("{O}{}.csv.gz", stamp(2));
    source.put(&bad, vec![1]);
    source.put(&next, vec![1]);
    let mut d = Discovery::new(Duration::from_secs(3600));
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    let etag = plan.streams["orders"][0].info.etag.clone();
    ledger.set(&bad, DeliveryStatus::Error, Some(&etag));
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    (source, ledger, d, bad, next, plan)
}

#[tokio::test]
async fn a_stream_stops_at_a_failed_head_until_the_object_is_replaced() {
    let (source, ledger, mut d, bad, next, plan) = stopped_stream().await;
    assert!(plan.streams.is_empty());
    assert_eq!(plan.stopped.len(), 1);
    assert_eq!(plan.stopped[0].key, bad);
    assert_eq!(
        d.statuses()["orders"].pending,
        2,
        "a stopped stream's files still count"
    );
    // A dry run checks the failed head again.
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, false)
        .await
        .unwrap();
    assert_eq!(keys(&plan, "orders"), [bad.clone(), next.clone()]);
    // Replaced (new ETag): the stream goes on.
    source.put(&bad, vec![2]);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.stopped.is_empty());
    assert_eq!(keys(&plan, "orders"), [bad, next]);
}

#[tokio::test]
async fn a_skipped_head_is_done_and_the_stream_goes_on() {
    let (source, ledger) = setup();
    let bad = format!("{O}{}.csv.gz", stamp(1));
    let next = format!("{O}{}.csv.gz", stamp(2));
    source.put(&bad, vec![1]);
    source.put(&next, vec![1]);
    let mut d = Discovery::new(Duration::from_secs(3600));
    d.pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    ledger.set(&bad, DeliveryStatus::Skipped, None);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert_eq!(keys(&plan, "orders"), [next]);
}

#[tokio::test]
async fn unknown_table_folders_are_reported_and_keys_with_control_characters_are_harmless() {
    let (source, ledger) = setup();
    source.put("data/dbo/trades/LOAD00000001.csv.gz", vec![1]);
    source.put("data/dbo/orders\nINFO forged/LOAD00000001.csv.gz", vec![1]);
    let mut d = Discovery::new(Duration::from_secs(3600));
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.streams.is_empty());
    assert!(plan
        .unknown_tables
        .contains(&("dbo".to_string(), "trades".to_string())));
    assert!(plan
        .unknown_tables
        .contains(&("dbo".to_string(), "orders\nINFO forged".to_string())));
}

#[tokio::test]
async fn with_both_namings_each_is_listed_after_its_own_cursor() {
    let (source, ledger) = setup();
    let mut history = Vec::new();
    for i in 0..50u32 {
        let s = stamp(i);
        history.push(format!("{O}{s}.csv.gz"));
        history.push(format!(
            "{O}{}/{}/{}/{s}.csv.gz",
            &s[..4],
            &s[4..6],
            &s[6..8]
        ));
    }
    for key in &history {
        source.put(key, vec![1]);
        ledger.set(key, DeliveryStatus::Success, None);
    }
    let mut d = Discovery::new(Duration::from_secs(3600));
    d.pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    let queries = ledger.queries();
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.streams.is_empty());
    assert_eq!(
        ledger.queries(),
        queries,
        "an idle pass asks the ledger nothing"
    );
    // New files of both namings are found without a full listing.
    let s = stamp(100);
    let flat = format!("{O}{s}.csv.gz");
    let dated = format!("{O}{}/{}/{}/{s}.csv.gz", &s[..4], &s[4..6], &s[6..8]);
    source.put(&flat, vec![1]);
    source.put(&dated, vec![1]);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(!plan.full);
    let mut found = keys(&plan, "orders");
    found.sort();
    assert_eq!(found, [dated, flat]);
    assert_eq!(
        ledger.asked_last(),
        2,
        "only the two new keys are asked about"
    );
}

#[tokio::test]
async fn at_a_year_boundary_both_namings_find_their_new_files_in_one_pass() {
    let (source, ledger) = setup();
    for key in [
        format!("{O}20221231-235000000.csv.gz"),
        format!("{O}2022/12/31/20221231-235000000.csv.gz"),
    ] {
        source.put(&key, vec![1]);
        ledger.set(&key, DeliveryStatus::Success, None);
    }
    let mut d = Discovery::new(Duration::from_secs(3600));
    d.pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    let a = format!("{O}2022/12/31/20221231-235959000.csv.gz");
    let b = format!("{O}2023/01/01/20230101-000010000.csv.gz");
    source.put(&a, vec![1]);
    source.put(&b, vec![1]);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(!plan.full);
    assert_eq!(keys(&plan, "orders"), [a, b], "both, in order, none late");
}

#[tokio::test]
async fn a_failed_ledger_query_leaves_new_files_to_the_next_pass() {
    let (source, ledger) = setup();
    source.put(&format!("{O}{}.csv.gz", stamp(1)), vec![1]);
    ledger.set(
        &format!("{O}{}.csv.gz", stamp(1)),
        DeliveryStatus::Success,
        None,
    );
    let mut d = Discovery::new(Duration::from_secs(3600));
    d.pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    let new = format!("{O}{}.csv.gz", stamp(2));
    source.put(&new, vec![1]);
    ledger.fail_next();
    assert!(d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .is_err());
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert_eq!(keys(&plan, "orders"), [new]);
}

#[tokio::test]
async fn a_stopped_head_deleted_from_the_bucket_no_longer_stops_its_stream() {
    let (source, ledger, mut d, bad, next, plan) = stopped_stream().await;
    assert_eq!(plan.stopped.len(), 1);
    source.delete(&bad);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.stopped.is_empty());
    assert_eq!(keys(&plan, "orders"), [next]);
}

#[tokio::test]
async fn with_cdc_path_change_files_come_from_their_own_folder_after_the_full_load() {
    let (source, ledger) = setup();
    const C: &str = "data/changes/dbo/orders/";
    source.put(&format!("{O}LOAD00000001.csv.gz"), vec![1]);
    source.put(&format!("{C}{}.csv.gz", stamp(1)), vec![1]);
    // Not read below CdcPath: a full-load file there, a change file of a table the target lacks.
    source.put(&format!("{C}LOAD00000009.csv.gz"), vec![1]);
    source.put(
        &format!("data/changes/dbo/nope/{}.csv.gz", stamp(1)),
        vec![1],
    );
    let mut d = Discovery::new(Duration::from_secs(3600)).cdc_path(Some("changes".into()));
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert_eq!(
        keys(&plan, "orders"),
        [
            format!("{O}LOAD00000001.csv.gz"),
            format!("{C}{}.csv.gz", stamp(1))
        ]
    );
    assert_eq!(plan.unrecognized, [format!("{C}LOAD00000009.csv.gz")]);
    assert!(plan
        .unknown_tables
        .contains(&("dbo".to_string(), "nope".to_string())));
    for file in &plan.streams["orders"] {
        d.settle(file);
        ledger.set(&file.info.key, DeliveryStatus::Success, None);
    }
    // An incremental pass lists the CdcPath stream folder after its cursor: the new change file.
    let new = format!("{C}{}.csv.gz", stamp(2));
    source.put(&new, vec![1]);
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(!plan.full);
    assert_eq!(keys(&plan, "orders"), [new]);
}

#[tokio::test]
async fn day_first_folders_are_named_per_day_not_listed_after_the_cursor() {
    use chrono::{Days, Utc};
    let (source, ledger) = setup();
    let days = DayFolders::from_settings("DDMMYYYY", Some("SLASH")).unwrap();
    let today = Utc::now().date_naive();
    // A change file of `day` at `hhmmss`, below its day folder (`DD/MM/YYYY/`).
    let file = |day: chrono::NaiveDate, hhmmss: &str| {
        format!(
            "{O}{}{}-{hhmmss}000.csv.gz",
            days.folder(day),
            day.format("%Y%m%d")
        )
    };
    let (d2, d1) = (today - Days::new(2), today - Days::new(1));
    source.put(&format!("{O}LOAD00000001.csv.gz"), vec![1]);
    // (On the 1st of a month, yesterday's folder sorts after today's: key order is not time.)
    let older = [file(d2, "100000"), file(d1, "100000")];
    for key in &older {
        source.put(key, vec![1]);
    }
    let mut d = Discovery::new(Duration::from_secs(3600)).day_folders(Some(days.clone()));
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    let mut expected = vec![format!("{O}LOAD00000001.csv.gz")];
    expected.extend(older.iter().cloned());
    assert_eq!(keys(&plan, "orders"), expected);
    for f in &plan.streams["orders"] {
        d.settle(f);
        ledger.set(&f.info.key, DeliveryStatus::Success, None);
    }
    // Idle: the full-load files, the cursor's day after the cursor, today and tomorrow; nothing
    // is asked of the ledger.
    let (requests, queries) = (source.requests(), ledger.queries());
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(plan.streams.is_empty(), "{plan:?}");
    assert_eq!(ledger.queries() - queries, 0);
    // 1 folder listing, strategies' whole folder, and orders: 2 + today + tomorrow.
    assert_eq!(source.requests() - requests, 1 + 1 + 4);
    // New files in the cursor's day and in today's: found in one incremental pass, in time order.
    let new = [file(d1, "230000"), file(today, "000001")];
    for key in new.iter().rev() {
        source.put(key, vec![1]);
    }
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert!(!plan.full);
    assert_eq!(keys(&plan, "orders"), new);
    for f in &plan.streams["orders"] {
        d.settle(f);
        ledger.set(&f.info.key, DeliveryStatus::Success, None);
    }
    // A file written late into an earlier day: behind the cursor (by time), found by the full
    // listing as late.
    let late = file(d2, "120000");
    source.put(&late, vec![1]);
    d.full_interval = Duration::ZERO;
    let plan = d
        .pass(&source, &ledger.tables(), &ledger, true)
        .await
        .unwrap();
    assert_eq!(plan.late, [("orders".to_string(), late.clone())]);
    assert_eq!(keys(&plan, "orders"), [late]);
}
