//! The HTTP server: /metrics in the Prometheus text format with counters equal to the ledger,
//! /healthz, and /readyz turning 503 when Postgres is unreachable.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{free_port, http_get, spawn_app, try_http_get, ChildGuard, Proxy, BIN};
use paper_engine_orders::metrics::Metrics;
use paper_engine_orders::sample::SampleSpec;
use tokio::sync::watch;

/// Parses the Prometheus text exposition format strictly enough to catch malformed output:
/// `# HELP`/`# TYPE` lines, then `name{label="value",...} number` samples.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().expect("a metric name");
            assert!(matches!(kind, "HELP" | "TYPE"), "{line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(
                    matches!(t, "counter" | "gauge" | "histogram" | "summary" | "untyped"),
                    "{line}"
                );
                typed.insert(name.to_string());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

type TestLoader = paper_engine_orders::loader::Loader<
    paper_engine_orders::source::S3Source,
    paper_engine_orders::target::PgTarget,
>;

/// A loader and the HTTP server over its metrics and readiness, as `app::run` wires them.
async fn serve(
    config: &paper_engine_orders::config::Config,
) -> (TestLoader, std::net::SocketAddr, watch::Sender<bool>) {
    let metrics = Arc::new(Metrics::new());
    let loader = paper_engine_orders::app::build_loader(config, metrics.clone())
        .await
        .unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let slot = Arc::new(std::sync::OnceLock::new());
    slot.set(loader.target().clone()).unwrap();
    let ready = paper_engine_orders::app::ready_check(slot, loader.source().clone());
    let status: paper_engine_orders::http::StatusSource = Arc::new(|| None);
    let (addr, _server) = paper_engine_orders::http::serve(
        "127.0.0.1:0".parse().unwrap(),
        metrics,
        ready,
        status,
        paper_engine_orders::http::ApiSlot::new(None),
        stop,
    )
    .await
    .unwrap();
    (loader, addr, stop_tx)
}

fn promtool_check(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool is not installed: skipped its check (scripts/test.sh installs it)");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_equal_the_ledger_totals_after_a_load() {
    let app = spawn_app().await;
    let spec = SampleSpec {
        scale: 0.001,
        seed: 3,
        bucket_path: "data".into(),
        load_rows_per_file: 1000,
        cdc_files: 3,
        cdc_rows_per_file: 40,
        keep_state: false,
    };
    let manifest = paper_engine_orders::app::upload_sample(&app.s3, spec)
        .await
        .unwrap();
    let (loader, addr, _stop) = serve(&app.config(&[])).await;
    app.drain(&loader).await;
    // One more pass refreshes the backlog gauge.
    loader.poll_once().await.unwrap();

    let (status, text) = http_get(addr.port(), "/metrics").await;
    assert_eq!(status, 200);
    promtool_check(&text);
    let samples = parse_exposition(&text);
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
    };

    let totals = app
        .rows(
            "SELECT table_name, count(*), sum(creates), sum(amends), sum(removes), sum(unchanged), sum(size)
               FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS' GROUP BY 1 ORDER BY 1",
        )
        .await;
    assert_eq!(totals.len(), 3);
    for row in &totals {
        let table = row[0].as_deref().unwrap();
        let n = |i: usize| row[i].as_deref().unwrap().parse::<f64>().unwrap();
        assert_eq!(
            get(&format!(
                "paper_engine_loader_deliveries_total{{status=\"success\",table=\"{table}\"}}"
            )),
            n(1),
            "{table}"
        );
        for (op, i) in [("create", 2), ("amend", 3), ("remove", 4), ("unchanged", 5)] {
            assert_eq!(
                get(&format!(
                    "paper_engine_loader_rows_total{{op=\"{op}\",table=\"{table}\"}}"
                )),
                n(i),
                "{table} {op}"
            );
        }
        assert_eq!(
            get(&format!(
                "paper_engine_loader_read_bytes_total{{table=\"{table}\"}}"
            )),
            n(6),
            "compressed bytes read = object sizes"
        );
        assert_eq!(
            get(&format!(
                "paper_engine_loader_delivery_duration_seconds_count{{table=\"{table}\"}}"
            )),
            n(1)
        );
        assert_eq!(
            get(&format!(
                "paper_engine_loader_pending_files{{table=\"{table}\"}}"
            )),
            0.0
        );
        assert!(
            get(&format!(
                "paper_engine_loader_last_success_timestamp_seconds{{table=\"{table}\"}}"
            )) > 1.7e9
        );
    }
    let files: f64 = totals
        .iter()
        .map(|r| r[1].as_deref().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(files, manifest.files.len() as f64);
    assert_eq!(
        get(&format!(
            "paper_engine_loader_build_info{{version=\"{}\"}}",
            paper_engine_orders::VERSION
        )),
        1.0
    );
    assert_eq!(get("paper_engine_loader_outbox_pending_messages"), 0.0);
    assert_eq!(
        get("paper_engine_loader_notifications_published_total"),
        0.0
    );

    let (status, _) = http_get(addr.port(), "/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = http_get(addr.port(), "/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_postgres_is_unreachable() {
    let app = spawn_app().await;
    let proxy = Proxy::start(5432, true).await;
    let target = app.env["TARGET"].replace("port=5432", &format!("port={}", proxy.port));
    assert_ne!(target, app.env["TARGET"]);
    let (loader, addr, _stop) = serve(&app.config(&[("TARGET", &target)])).await;
    assert_eq!(http_get(addr.port(), "/readyz").await.0, 200);

    proxy.set_up(false);
    let (status, body) = http_get(addr.port(), "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("postgres"), "{body}");
    assert_eq!(
        http_get(addr.port(), "/healthz").await.0,
        200,
        "still alive"
    );
    // A poll that has a file to ask the ledger about fails meanwhile, retryably. (A pass with
    // nothing new in the bucket does not need Postgres.)
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
    )
    .await;
    let err = loader.poll_once().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");

    proxy.set_up(true);
    let mut status = 0;
    for _ in 0..50 {
        status = http_get(addr.port(), "/readyz").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again once postgres answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_metrics_health_and_readiness_in_service_mode() {
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        "1,S-1,Strategy 1,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
    )
    .await;
    let port = free_port();
    let mut cmd = std::process::Command::new(BIN);
    cmd.env_clear();
    for (k, v) in &app.env {
        cmd.env(k, v);
    }
    cmd.env("RUN_AS_SERVICE", "true")
        .env("MIN_SLEEP", "0.2")
        .env("MAX_SLEEP", "0.3")
        .env("METRICS_PORT", port.to_string())
        .stderr(std::process::Stdio::null());
    let _child = ChildGuard(cmd.spawn().unwrap());
    let mut delivered = 0.0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some((200, text)) = try_http_get(port, "/metrics").await {
            let samples = parse_exposition(&text);
            delivered = samples
                .get(
                    "paper_engine_loader_deliveries_total{status=\"success\",table=\"strategies\"}",
                )
                .copied()
                .unwrap_or(0.0);
            if delivered == 1.0 {
                break;
            }
        }
    }
    assert_eq!(delivered, 1.0);
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    assert_eq!(http_get(port, "/readyz").await.0, 200);
    assert_eq!(http_get(port, "/nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_tells_its_port_serves_it_while_built_and_runs_a_one_shot_load() {
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n\
         2,S-2,Two,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,2\n",
    )
    .await;
    let built = paper_engine_orders::startup::Application::build(app.config(&[]))
        .await
        .unwrap();
    let port = built.port();
    assert_ne!(
        port, 0,
        "METRICS_PORT=0 binds a free port, and the application says which"
    );
    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("paper_engine_loader_build_info"), "{body}");
    assert_eq!(http_get(port, "/readyz").await.0, 200);
    let summary = built.run_until_stopped().await;
    assert_eq!(summary.delivered, 1);
    assert!(summary.is_success());
    assert_eq!(summary.totals.tables["strategies"].creates, 2);
    assert_eq!(app.count("strategies").await, 2);
    // Stopped with the run: the port no longer answers.
    assert!(try_http_get(port, "/healthz").await.is_none());
}

/// The alerting rules of deploy/alerts.yml are valid, fire on a stuck stream and not on a healthy
/// one (deploy/alerts_test.yml, run by `promtool test rules`), and only use metrics the loader
/// exports (the user guide's generated metrics table lists every one).
#[test]
fn the_alert_rules_fire_on_a_stuck_stream_and_use_only_exported_metrics() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts_test.yml"][..],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&deploy)
            .output()
            .expect("promtool is installed (scripts/test.sh installs Debian's prometheus package)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = std::fs::read_to_string(deploy.join("alerts.yml")).unwrap();
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/user_guide.md"),
    )
    .unwrap();
    let mut used: Vec<&str> = rules
        .match_indices("paper_engine_loader_")
        .map(|(i, _)| {
            let rest = &rules[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 5, "{used:?}");
    for name in used {
        assert!(
            guide.contains(&format!("| `{name}` |")),
            "{name} is used by an alert but not exported"
        );
    }
}

/// After a restart, the gauges say what the ledger and the bucket say before anything new is
/// delivered: each table's last success, a stopped stream and the files waiting behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_loader_seeds_its_gauges_from_the_ledger_and_the_bucket() {
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
    )
    .await;
    app.put_csv("strategies", "20220922-095853123.csv.gz", "I,2,too,few\n")
        .await;
    app.put_csv(
        "strategies",
        "20220922-100000000.csv.gz",
        "I,3,S-3,Three,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,3\n",
    )
    .await;
    let first = app.loader(&[]).await;
    app.drain(&first).await;
    drop(first);

    // A new process: fresh metrics.
    let restarted = app.loader(&[]).await;
    let m = restarted.metrics().clone();
    assert_eq!(m.last_success.with_label_values(&["strategies"]).get(), 0.0);
    restarted.seed_metrics().await;
    let expected: f64 = app
        .rows(
            "SELECT extract(epoch FROM max(finished_at)) FROM paper_engine.loader_deliveries \
             WHERE table_name = 'strategies' AND status = 'SUCCESS'",
        )
        .await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let seeded = m.last_success.with_label_values(&["strategies"]).get();
    assert!((seeded - expected).abs() < 1e-3, "{seeded} vs {expected}");
    // The first pass (the start-up listing) sets the stream gauges; nothing is delivered.
    let outcome = restarted.poll_once().await.unwrap();
    assert!(outcome.delivered.is_empty());
    assert_eq!(m.stream_stopped.with_label_values(&["strategies"]).get(), 1);
    assert_eq!(m.pending_files.with_label_values(&["strategies"]).get(), 2);
}
