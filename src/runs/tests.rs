use std::collections::BTreeSet;

use super::*;

fn known() -> BTreeSet<String> {
    ["executions", "orders", "strategies"]
        .into_iter()
        .map(String::from)
        .collect()
}

#[test]
fn a_request_names_the_field_at_fault() {
    let ok = RunRequest::parse(
        br#"{"mode": "once", "tables": ["orders"], "name": "n", "x": 1}"#,
        &known(),
    )
    .unwrap();
    assert_eq!(ok.mode, RunMode::Once);
    assert_eq!(ok.tables.unwrap().len(), 1);
    assert_eq!(ok.name.as_deref(), Some("n"));
    let dry = RunRequest::parse(br#"{"mode": "dry_run"}"#, &known()).unwrap();
    assert_eq!((dry.mode, dry.tables), (RunMode::DryRun, None));
    for (body, field) in [
        (&b"{nope"[..], "body"),
        (b"[1]", "body"),
        (b"{}", "mode"),
        (br#"{"mode": "twice"}"#, "mode"),
        (br#"{"mode": 3}"#, "mode"),
        (br#"{"mode": "once", "tables": ["nope"]}"#, "tables"),
        (br#"{"mode": "once", "tables": "orders"}"#, "tables"),
        (br#"{"mode": "once", "tables": []}"#, "tables"),
        (br#"{"mode": "once", "name": 5}"#, "name"),
    ] {
        let err = RunRequest::parse(body, &known()).unwrap_err();
        assert_eq!(err.field, field, "{}: {err}", String::from_utf8_lossy(body));
    }
}

#[test]
fn a_trigger_message_is_a_once_run_of_every_table() {
    let r = RunRequest::from_trigger(
        br#"{"jobId": "j-1", "trigger": "eod", "userIds": [7], "extra": true}"#,
    )
    .unwrap();
    assert_eq!(r.mode, RunMode::Once);
    assert_eq!(r.tables, None);
    assert_eq!(r.name.as_deref(), Some("eod"));
    assert_eq!(r.trigger.unwrap().job_id, "j-1");
    assert!(RunRequest::from_trigger(b"{}").is_err());
    assert!(RunRequest::from_trigger(br#"{"jobId": " "}"#).is_err());
    assert!(RunRequest::from_trigger(b"not json").is_err());
}

#[test]
fn a_run_succeeds_only_when_every_step_does() {
    let step = |status| Step {
        name: "k".into(),
        table: "orders".into(),
        status,
        counts: None,
        error: None,
        delivery_id: None,
    };
    let mut run = Run {
        run_id: "r".into(),
        name: None,
        status: RunStatus::InProgress,
        mode: RunMode::Once,
        tables: None,
        trigger: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        finished_at: None,
        steps: vec![step(StepStatus::Successful)],
    };
    run.close();
    assert_eq!(run.status, RunStatus::Successful);
    run.steps.push(step(StepStatus::Failed));
    run.close();
    assert_eq!(run.status, RunStatus::Failed);
    let json = serde_json::to_value(&run).unwrap();
    assert_eq!(json["status"], "FAILED");
    assert_eq!(json["mode"], "once");
    assert_eq!(json["steps"][1]["status"], "FAILED");
    assert!(json["steps"][0]["counts"].is_null());
}
