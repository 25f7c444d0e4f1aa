//! The operator's commands through the binary: `status` (text, `--json`, exit codes),
//! `deliveries`, `retry` and `skip`, with the service stopped; and `GET /status` and `GET /`
//! of a running service.
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{http_get, spawn_app, TestApp, BIN};

/// Runs the binary with the test's environment: (exit code, stdout, stderr).
pub fn run(app: &TestApp, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, String) {
    run_with(&app.env, args, extra)
}

/// [`run`] with an environment.
pub fn run_with(
    env: &std::collections::HashMap<String, String>,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USER", "ops-tester")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const STRATEGY: &str =
    "1,S-1,Strategy 1,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n";

/// `strategies` loaded, then a change file whose `code` is too long for `varchar(32)` (fixable
/// in the table), and a good change file behind it; `orders` gets a bad file too (fixable only by
/// skipping), `executions` nothing. Returns (strategies' bad key, its good key, orders' bad key).
pub async fn two_stopped_streams(app: &TestApp) -> (String, String, String) {
    app.put_csv("strategies", "LOAD00000001.csv.gz", STRATEGY)
        .await;
    let long = "L".repeat(40);
    let bad = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &format!("I,2,{long},Two,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,2\n"),
        )
        .await;
    let after = app
        .put_csv(
            "strategies",
            "20220922-110000000.csv.gz",
            "U,1,S-1,Strategy One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-02 10:00:00,3\n",
        )
        .await;
    let orders_bad = app
        .put_csv(
            "orders",
            "20220922-100000000.csv.gz",
            "I,1,not-enough-fields\n",
        )
        .await;
    (bad, after, orders_bad)
}

fn stream<'a>(status: &'a Value, table: &str) -> &'a Value {
    status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == table)
        .unwrap_or_else(|| panic!("no stream {table} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_deliveries_retry_and_skip_work_with_the_service_stopped() {
    let app = spawn_app().await;
    let (bad, after, orders_bad) = two_stopped_streams(&app).await;
    let (code, _, stderr) = run(&app, &[], &[]);
    assert_eq!(
        code, 1,
        "a one-shot run with stopped streams exits 1: {stderr}"
    );
    assert!(
        stderr.contains(&format!("paper-engine-orders retry {bad}")),
        "the error says the next step: {stderr}"
    );

    // status: text, then JSON; exit 1 while a stream is stopped.
    let (code, text, stderr) = run(&app, &["status"], &[]);
    assert_eq!(code, 1, "{text}{stderr}");
    assert!(text.contains("2 of 3 streams stopped"), "{text}");
    assert!(
        text.contains(&format!("paper-engine-orders retry {bad}")),
        "{text}"
    );
    assert!(
        text.contains("column 2 (code)"),
        "the reason names the column: {text}"
    );
    let (code, json, _) = run(&app, &["status", "--json"], &[]);
    assert_eq!(code, 1);
    let status: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["ok"], false);
    assert_eq!(status["stopped_streams"], 2);
    let strategies = stream(&status, "strategies");
    assert_eq!(strategies["state"], "error");
    assert_eq!(strategies["pending_files"], 2);
    assert_eq!(strategies["stopped"]["key"], bad.as_str());
    assert_eq!(strategies["stopped"]["files_waiting"], 1);
    assert_eq!(
        strategies["last_delivery"]["key"],
        app.key("strategies", "LOAD00000001.csv.gz").as_str()
    );
    assert_eq!(strategies["rows_today"]["creates"], 1);
    assert_eq!(stream(&status, "executions")["state"], "preliminary");
    assert_eq!(stream(&status, "orders")["state"], "error");

    // deliveries: the failure with its history.
    let (code, json, stderr) = run(
        &app,
        &[
            "deliveries",
            "--table",
            "strategies",
            "--status",
            "error",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&json).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["key"], bad.as_str());
    assert_eq!(listed[0]["failures"].as_array().unwrap().len(), 1);
    let (code, text, _) = run(&app, &["deliveries", "--limit", "10"], &[]);
    assert_eq!(code, 0);
    assert!(text.contains("SUCCESS") && text.contains("ERROR"), "{text}");

    // Refused: a delivered key, an unknown one, a skip without a reason.
    let load = app.key("strategies", "LOAD00000001.csv.gz");
    let (code, _, stderr) = run(&app, &["retry", &load], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not a stopped file"), "{stderr}");
    let (code, _, stderr) = run(
        &app,
        &["skip", "data/dbo/orders/nope.csv.gz", "--reason", "x"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("is not in the ledger"), "{stderr}");
    let (code, _, _) = run(&app, &["skip", &orders_bad], &[]);
    assert_eq!(code, 2, "--reason is required");

    // retry after the operator fixed the table: the file and the one behind it are delivered.
    app.db
        .batch_execute("ALTER TABLE paper_engine.strategies ALTER COLUMN code TYPE varchar(64)")
        .await
        .unwrap();
    let (code, out, stderr) = run(&app, &["retry", &bad, "--reason", "widened code"], &[]);
    assert_eq!(code, 0, "{out}{stderr}");
    assert!(out.contains("is delivered"), "{out}");
    assert_eq!(app.ledger(&bad).await.unwrap().status, "SUCCESS");
    assert_eq!(app.ledger(&after).await.unwrap().status, "SUCCESS");
    assert_eq!(app.count("strategies").await, 2);
    assert!(
        app.ledger(&orders_bad).await.unwrap().status == "ERROR",
        "retry runs its stream only"
    );

    // skip: the orders stream goes on; who, when and why are in the ledger.
    let (code, out, stderr) = run(
        &app,
        &["skip", &orders_bad, "--reason", "garbage from a test"],
        &[],
    );
    assert_eq!(code, 0, "{out}{stderr}");
    assert_eq!(app.ledger(&orders_bad).await.unwrap().status, "SKIPPED");
    let actions = app
        .rows("SELECT action, object_key, actor, via, reason FROM paper_engine.loader_actions ORDER BY id")
        .await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0][0].as_deref(), Some("RETRY"));
    assert_eq!(actions[1][0].as_deref(), Some("SKIP"));
    assert!(
        actions[1][2].as_deref().unwrap().starts_with("ops-tester@"),
        "{actions:?}"
    );
    assert_eq!(actions[1][3].as_deref(), Some("cli"));
    assert_eq!(actions[1][4].as_deref(), Some("garbage from a test"));
    let failures = app
        .rows("SELECT count(*) FROM paper_engine.loader_failures")
        .await;
    assert_eq!(
        failures[0][0].as_deref(),
        Some("2"),
        "the history of failures stays"
    );

    let (code, json, _) = run(&app, &["status", "--json"], &[]);
    assert_eq!(code, 0, "no stream stopped: {json}");
    let status: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(stream(&status, "strategies")["state"], "success");
    let orders = stream(&status, "orders");
    assert_eq!(
        orders["state"], "preliminary",
        "nothing of orders was delivered"
    );
    assert_eq!(orders["skipped"][0]["key"], orders_bad.as_str());
    assert_eq!(orders["skipped"][0]["reason"], "garbage from a test");
}

/// A service with one good and one stopped stream, and its HTTP port.
pub async fn service_with_a_stopped_stream(
    app: &TestApp,
) -> (crate::service::Service, u16, String) {
    app.put_csv("strategies", "LOAD00000001.csv.gz", STRATEGY)
        .await;
    app.put_csv(
        "strategies",
        "20220922-110000000.csv.gz",
        "U,1,S-1,Strategy One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-02 10:00:00,3\n",
    )
    .await;
    let orders_bad = app
        .put_csv(
            "orders",
            "20220922-100000000.csv.gz",
            "I,1,not-enough-fields\n",
        )
        .await;
    let service =
        crate::service::spawn_service(app, &[("MIN_SLEEP", "0.2"), ("MAX_SLEEP", "0.3")]).await;
    for _ in 0..150 {
        let (_, status) = service.call("GET", "/status", None, None).await;
        if status["stopped_streams"] == 1 && stream(&status, "strategies")["pending_files"] == 0 {
            let port = service.port;
            return (service, port, orders_bad);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service never showed one stopped stream");
}

/// The body of a raw HTTP/1.1 response.
fn body_of(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_serves_status_json_and_a_page_and_picks_up_a_skip() {
    let app = spawn_app().await;
    let (_child, port, orders_bad) = service_with_a_stopped_stream(&app).await;
    let (code, body) = http_get(port, "/status").await;
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(body_of(&body)).unwrap();
    assert_eq!(status["mode"], "service");
    assert_eq!(status["ok"], false);
    assert_eq!(status["outbox"]["pending"], 0);
    let recent = status["recent_deliveries"].as_array().unwrap();
    assert_eq!(
        recent.len(),
        3,
        "2 strategies files and the failed orders file: {recent:?}"
    );
    assert!(recent
        .iter()
        .all(|d| d["seconds"].is_number() && d["rows"].is_number()));
    let orders = stream(&status, "orders");
    assert_eq!(orders["state"], "error");
    assert_eq!(orders["stopped"]["key"], orders_bad.as_str());

    let (code, page) = http_get(port, "/").await;
    assert_eq!(code, 200);
    let page = body_of(&page);
    assert!(
        page.contains(&format!("paper-engine-orders skip {orders_bad}")),
        "{page}"
    );
    assert!(page.contains("http-equiv=\"refresh\""));

    // The running service picks up an operator's skip on its next pass.
    let (code, out, stderr) = run(&app, &["skip", &orders_bad, "--reason", "bad export"], &[]);
    assert_eq!(code, 0, "{out}{stderr}");
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, body) = http_get(port, "/status").await;
        let status: Value = serde_json::from_str(body_of(&body)).unwrap();
        if status["ok"] == true {
            ok = true;
            break;
        }
    }
    assert!(ok, "the service saw the skip");
}
