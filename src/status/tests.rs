use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::*;
use crate::ledger::{FailedHead, LastDelivery, TableFacts};
use crate::loader::{Stopped, StreamStatus};

fn facts() -> BTreeMap<String, TableFacts> {
    let at = Utc.with_ymd_and_hms(2026, 12, 2, 4, 0, 0).unwrap();
    let mut f = BTreeMap::new();
    f.insert(
        "orders".to_string(),
        TableFacts {
            last_delivery: Some(LastDelivery {
                delivery_id: 3,
                key: "dms/dbo/orders/LOAD00000001.csv.gz".into(),
                finished_at: at,
            }),
            ..TableFacts::default()
        },
    );
    f.insert(
        "executions".to_string(),
        TableFacts {
            last_delivery: Some(LastDelivery {
                delivery_id: 2,
                key: "dms/dbo/executions/LOAD00000001.csv.gz".into(),
                finished_at: at,
            }),
            failed: vec![FailedHead {
                key: "dms/dbo/executions/20220922-095853123.csv.gz".into(),
                delivery_id: 9,
                reason: "bad <value>".into(),
                since: at,
                attempts: 2,
            }],
            ..TableFacts::default()
        },
    );
    f.insert("strategies".to_string(), TableFacts::default());
    f
}

fn streams() -> BTreeMap<String, StreamStatus> {
    let mut s = BTreeMap::new();
    s.insert(
        "executions".to_string(),
        StreamStatus {
            table: "executions".into(),
            pending: 4,
            head: Some("dms/dbo/executions/20220922-095853123.csv.gz".into()),
            stopped: Some(Stopped {
                table: "executions".into(),
                key: "dms/dbo/executions/20220922-095853123.csv.gz".into(),
                delivery_id: 9,
                reason: "bad <value>".into(),
                since: Utc::now(),
            }),
            in_flight: None,
            cursor: None,
        },
    );
    s
}

#[test]
fn states_follow_the_ledger_and_the_streams() {
    let report = StatusReport::build(&streams(), facts());
    let by: BTreeMap<_, _> = report
        .streams
        .iter()
        .map(|s| (s.table.as_str(), s))
        .collect();
    assert_eq!(by["orders"].state, StreamState::Success);
    assert_eq!(by["strategies"].state, StreamState::Preliminary);
    let executions = by["executions"];
    assert_eq!(executions.state, StreamState::Error);
    let stopped = executions.stopped.as_ref().unwrap();
    assert_eq!(stopped.files_waiting, 3);
    assert_eq!(stopped.attempts, 2);
    // The ledger's failure time, not when this process first saw it.
    assert_eq!(
        stopped.since,
        Utc.with_ymd_and_hms(2026, 12, 2, 4, 0, 0).unwrap()
    );
    assert_eq!(
        stopped.retry_command,
        "paper-engine-orders retry dms/dbo/executions/20220922-095853123.csv.gz"
    );
    assert!(!report.ok);
    assert_eq!(report.stopped_streams, 1);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["streams"][0]["state"], "error");
    assert!(json.get("mode").is_none(), "mode is for GET /status only");
}

#[test]
fn text_and_page_name_the_stopped_file_and_the_commands() {
    let report = StatusReport::build(&streams(), facts());
    let text = report.to_text();
    assert!(text.contains("1 of 3 streams stopped"), "{text}");
    assert!(text.contains("paper-engine-orders retry dms/dbo/executions/20220922-095853123.csv.gz"));
    assert!(text.contains("3 files wait behind it"), "{text}");
    let page = html::render(&report);
    assert!(page.contains("bad &lt;value&gt;"), "reasons are escaped");
    assert!(!page.contains("<script"), "no JavaScript");
    assert!(page.contains("http-equiv=\"refresh\""));
}

#[test]
fn keys_become_shell_words() {
    assert_eq!(
        shell_word("dms/dbo/orders/LOAD00000001.csv.gz"),
        "dms/dbo/orders/LOAD00000001.csv.gz"
    );
    assert_eq!(shell_word("a b's"), "'a b'\\''s'");
    assert_eq!(
        html::escape("<a href='x'>&"),
        "&lt;a href=&#39;x&#39;&gt;&amp;"
    );
}
