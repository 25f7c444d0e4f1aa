//! `/api` through the binary: the token, errors as JSON, runs started and followed (HTTP and
//! NATS), dry-run runs, and the operator's actions.
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::active_strategy as strategy;
use crate::helpers::{spawn_app, unique_name};
use crate::service::{http, spawn_service, Service, TOKEN};

/// Waits until the run is no longer `IN_PROGRESS`.
async fn finished(service: &Service, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let (status, run) = service
            .api("GET", &format!("/api/runs/{run_id}"), None)
            .await;
        assert_eq!(status, 200, "{run}");
        if run["status"] != "IN_PROGRESS" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run_id} did not finish: {}", service.log_text());
}

async fn first_pass_done(service: &Service) {
    service
        .wait_for_log("Nothing pending: sleeping", 1, Duration::from_secs(30))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_its_token_and_answers_errors_as_json() {
    let app = spawn_app().await;
    let service = spawn_service(&app, &[]).await;
    for token in [None, Some("wrong-token-0123456789abcdef"), Some("")] {
        let (status, body) = service.call("GET", "/api/runs", token, None).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(body["error"].as_str().unwrap().contains("bearer token"));
    }
    let (status, body) = service
        .call("POST", "/api/runs", None, Some(r#"{"mode":"once"}"#))
        .await;
    assert_eq!(status, 401, "{body}");
    for (payload, field) in [
        ("{not json", "body"),
        (r#"{"mode": "sometimes"}"#, "mode"),
        (r#"{}"#, "mode"),
        (r#"{"mode": "once", "tables": ["nope"]}"#, "tables"),
    ] {
        let (status, body) = service.api("POST", "/api/runs", Some(payload)).await;
        assert_eq!(status, 400, "{payload}: {body}");
        assert_eq!(body["field"], field, "{payload}: {body}");
    }
    let (status, body) = service
        .api(
            "GET",
            "/api/runs/00000000-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        service.api("GET", "/api/runs/not-a-uuid", None).await.0,
        404
    );
    assert_eq!(service.api("GET", "/api/nope", None).await.0, 404);
    let (status, spec) = service.api("GET", "/api/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{spec}"
    );
    assert!(
        !service.log_text().contains(TOKEN),
        "the token is never logged"
    );

    // Without API_TOKEN the API is off.
    let off = spawn_service(&app, &[("API_TOKEN", "")]).await;
    let (status, body) = off.api("GET", "/api/runs", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("API_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_delivers_its_files_step_by_step_and_publishes_each_change() {
    let app = spawn_app().await;
    let ds = unique_name("peo-run");
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let mut sub = nats
        .subscribe(format!("{ds}.meta.orders.run"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    let service = spawn_service(
        &app,
        &[
            ("NATS", "nats://127.0.0.1:4222"),
            ("NOTIFICATION_DATASOURCE", ds.as_str()),
        ],
    )
    .await;
    first_pass_done(&service).await;
    assert_eq!(app.count("strategies").await, 1);
    // Two new change files: the loop sleeps 60 s, so only the run delivers them now.
    let mut keys = Vec::new();
    for i in 2..=3u32 {
        keys.push(
            app.put_csv(
                "strategies",
                &format!("20220922-09585{i}123.csv.gz"),
                &format!("I,{}", strategy(i)),
            )
            .await,
        );
    }
    let (status, run) = service
        .api(
            "POST",
            "/api/runs",
            Some(r#"{"mode": "once", "tables": ["strategies"], "name": "catch-up"}"#),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "IN_PROGRESS");
    assert_eq!(run["mode"], "once");
    assert_eq!(run["name"], "catch-up");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        keys.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(steps
        .iter()
        .all(|s| s["status"] == "PENDING" && s["counts"].is_null() && s["table"] == "strategies"));
    let run_id = run["run_id"].as_str().unwrap().to_string();

    let done = finished(&service, &run_id).await;
    assert_eq!(done["status"], "SUCCESSFUL", "{done}");
    for step in done["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "SUCCESSFUL", "{step}");
        assert_eq!(step["counts"]["creates"], 1, "{step}");
    }
    assert_eq!(app.count("strategies").await, 3);
    let (status, list) = service.api("GET", "/api/runs", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["run_id"], run_id.as_str());

    // The same JSON on NATS, for every change: first IN_PROGRESS, last SUCCESSFUL.
    let mut seen = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        let run: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(run["run_id"], run_id.as_str());
        let status = run["status"].as_str().unwrap().to_string();
        seen.push(status.clone());
        if status != "IN_PROGRESS" {
            break;
        }
    }
    assert_eq!(seen.first().map(String::as_str), Some("IN_PROGRESS"));
    assert_eq!(seen.last().map(String::as_str), Some("SUCCESSFUL"));
    assert!(
        seen.len() >= 3,
        "steps' changes are published too: {seen:?}"
    );

    // A dry-run run checks a pending file and persists nothing. After a pass that delivered,
    // the loop looks again at once: the file goes in only once that pass found nothing, or the
    // loop (not the dry run) would meet it.
    service
        .wait_for_log("Nothing pending: sleeping", 2, Duration::from_secs(30))
        .await;
    let bad = app
        .put_csv("strategies", "20220922-100000000.csv.gz", "I,9,too-few\n")
        .await;
    let (status, run) = service
        .api("POST", "/api/runs", Some(r#"{"mode": "dry_run"}"#))
        .await;
    assert_eq!(status, 202, "{run}");
    let done = finished(&service, run["run_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["steps"][0]["name"], bad.as_str());
    assert!(
        done["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{done}"
    );
    assert!(
        app.ledger(&bad).await.is_none(),
        "a dry run records nothing: {}",
        service.log_text()
    );
    assert_eq!(app.count("strategies").await, 3);
    let stored: i64 = app
        .db
        .query_one("SELECT count(*) FROM paper_engine.loader_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2, "runs are stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_skip_through_the_api() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    let bad = app
        .put_csv("strategies", "20220922-100000000.csv.gz", "I,9,too-few\n")
        .await;
    let after = app
        .put_csv(
            "strategies",
            "20220922-110000000.csv.gz",
            &format!("I,{}", strategy(2)),
        )
        .await;
    let service = spawn_service(&app, &[]).await;
    first_pass_done(&service).await;
    assert_eq!(app.ledger(&bad).await.unwrap().status, "ERROR");

    let body = |key: &str| format!(r#"{{"key": "{key}", "reason": "from the test"}}"#);
    // Refused: a key that is not stopped; unknown table; no key.
    let (status, answer) = service
        .api(
            "POST",
            "/api/streams/strategies/skip",
            Some(&body(&app.key("strategies", "LOAD00000001.csv.gz"))),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        service
            .api("POST", "/api/streams/nope/skip", Some(&body(&bad)))
            .await
            .0,
        404
    );
    let (status, answer) = service
        .api("POST", "/api/streams/strategies/skip", Some("{}"))
        .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("key")));
    // The skip: recorded, and the loop goes on at once (it sleeps 60 s otherwise).
    let (status, answer) = service
        .api("POST", "/api/streams/strategies/skip", Some(&body(&bad)))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["action"], "SKIP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.ledger(&after).await.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.ledger(&after).await.unwrap().status, "SUCCESS");
    let via = app
        .rows("SELECT via, actor, reason FROM paper_engine.loader_actions")
        .await;
    assert_eq!(
        via,
        vec![vec![
            Some("api".into()),
            Some("api".into()),
            Some("from the test".into())
        ]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_server_keeps_its_openapi_contract_and_never_crashes() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    app.put_csv("strategies", "20220922-100000000.csv.gz", "I,9,too-few\n")
        .await;
    let service = spawn_service(&app, &[]).await;
    first_pass_done(&service).await;
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("schemathesis")
        .current_dir(dir.path())
        .args([
            "run",
            &format!("http://127.0.0.1:{}/api/openapi.json", service.port),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--max-examples",
            "15",
            "--generation-deterministic",
            "--request-timeout",
            "20",
        ])
        .output()
        .expect("schemathesis is installed (scripts/test.sh installs it from PyPI)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("No issues found"), "{report}");
    assert_eq!(
        http(service.port, "GET", "/healthz", None, None).await.0,
        200,
        "still up"
    );
    assert!(
        !service.log_text().contains("panicked"),
        "{}",
        service.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_left_in_progress_is_finished_after_a_restart() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    // A first service creates the schema, then stops.
    let first = spawn_service(&app, &[]).await;
    first_pass_done(&first).await;
    drop(first);
    // A run a stopped loader left IN_PROGRESS, its one step a file that arrived since.
    let key = app
        .put_csv(
            "strategies",
            "20220922-095852123.csv.gz",
            &format!("I,{}", strategy(2)),
        )
        .await;
    let run_id = "6f1d1c3e-8a57-4c43-9a0e-0c4d6c8f2a11";
    let document = serde_json::json!({
        "run_id": run_id, "name": "left over", "status": "IN_PROGRESS", "mode": "once",
        "tables": null, "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
        "finished_at": null,
        "steps": [{"name": key, "table": "strategies", "status": "PENDING", "counts": null,
                   "error": null, "delivery_id": null}]
    });
    app.db
        .execute(
            "INSERT INTO paper_engine.loader_runs (id, name, mode, status, document) \
             VALUES ($1::text::uuid, 'left over', 'once', 'IN_PROGRESS', $2::text::jsonb)",
            &[&run_id, &document.to_string()],
        )
        .await
        .unwrap();
    let second = spawn_service(&app, &[]).await;
    let done = finished(&second, run_id).await;
    assert_eq!(done["status"], "SUCCESSFUL", "{done}");
    assert_eq!(done["steps"][0]["status"], "SUCCESSFUL");
    assert_eq!(app.ledger(&key).await.unwrap().status, "SUCCESS");
    assert!(second.log_text().contains("resumed after a restart"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_fails_shows_its_stream_stopped_at_once() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategy(1))
        .await;
    let service = spawn_service(&app, &[]).await;
    first_pass_done(&service).await;
    let bad = app
        .put_csv("strategies", "20220922-100000000.csv.gz", "I,9,too-few\n")
        .await;
    // A run wakes the loop; its pass fails the file and delivers nothing, so no other pass
    // follows for 60 s: the status must say so from this pass.
    let (status, run) = service
        .api("POST", "/api/runs", Some(r#"{"mode": "once"}"#))
        .await;
    assert_eq!(status, 202, "{run}");
    let done = finished(&service, run["run_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    let (_, status) = service.call("GET", "/status", None, None).await;
    assert_eq!(status["stopped_streams"], 1, "{status}");
    let strategies = &status["streams"][2];
    assert_eq!(strategies["state"], "error", "{status}");
    assert_eq!(strategies["stopped"]["key"], bad.as_str(), "{status}");
    assert_eq!(
        service
            .metric("paper_engine_loader_stream_stopped{table=\"strategies\"}")
            .await,
        1.0
    );
}
