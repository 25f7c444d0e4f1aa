//! Hardening through the binary: the Dockerfile's HEALTHCHECK, run as Docker runs it
//! (`/bin/sh -c` in the container's environment) on a port other than 9100; and a flood of
//! slow clients, which must neither stop loading nor exhaust the file descriptors.
use crate::helpers::spawn_app;
use crate::service::spawn_service;

/// The HEALTHCHECK's shell command, as written in the Dockerfile.
fn healthcheck() -> String {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let line = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .find(|l| l.trim_start().starts_with("CMD"))
        .expect("a HEALTHCHECK CMD");
    let array: Vec<String> =
        serde_json::from_str(line.trim_start().trim_start_matches("CMD").trim()).unwrap();
    assert_eq!(&array[..2], ["/bin/sh", "-c"]);
    array[2].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_follows_the_configured_metrics_port() {
    let app = spawn_app().await;
    let service = spawn_service(&app, &[("METRICS_BIND", "0.0.0.0")]).await;
    let port = service.port.to_string();
    let check = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("-c")
            .arg(healthcheck());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap().status.success()
    };
    assert!(
        check(&[("METRICS_PORT", &port)]),
        "healthy on METRICS_PORT={port}"
    );
    assert!(check(&[
        ("METRICS_PORT", &port),
        ("METRICS_BIND", "127.0.0.1")
    ]));
    assert!(
        !check(&[("METRICS_PORT", "9")]),
        "unhealthy where nothing listens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_flood_neither_stops_loading_nor_exhausts_file_descriptors() {
    let app = spawn_app().await;
    let service = spawn_service(&app, &[("MIN_SLEEP", "0.2"), ("MAX_SLEEP", "0.2")]).await;
    // 200 clients that start a request and never finish it.
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", service.port)).await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
            idle.push(s);
        }
    }
    let key = app
        .put_csv(
            "strategies",
            "LOAD00000001.csv.gz",
            "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
        )
        .await;
    let started = std::time::Instant::now();
    while app.ledger(&key).await.is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "loading stopped under the flood: {}",
            service.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let fds = std::fs::read_dir(format!("/proc/{}/fd", service.pid()))
        .unwrap()
        .count();
    assert!(
        fds < 150,
        "{fds} file descriptors open under a flood of 200 clients"
    );
    // The slow clients time out; the server answers again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let answered = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            crate::service::http(service.port, "GET", "/healthz", None, None),
        )
        .await;
        if let Ok((200, _)) = answered {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never answered again"
        );
    }
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_look_like_sql_arrive_as_data() {
    let app = spawn_app().await;
    let evil = [
        "'); DROP TABLE orders; --",
        "Robert'); DELETE FROM paper_engine.loader_deliveries; --",
        "$1 $$ \\\\ E'\\\\x00' ;",
    ];
    let mut csv = String::new();
    for (i, name) in evil.iter().enumerate() {
        let id = i + 1;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        csv.push_str(&format!(
            "{id},S-{id},{quoted},ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,{id}\n"
        ));
    }
    let key = app.put_csv("strategies", "LOAD00000001.csv.gz", &csv).await;
    let (code, _, stderr) = crate::operate::run(&app, &[], &[]);
    assert_eq!(code, 0, "{stderr}");
    let names = app
        .rows("SELECT name FROM paper_engine.strategies ORDER BY strategy_id")
        .await;
    let names: Vec<String> = names.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(
        names,
        evil.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(app.ledger(&key).await.unwrap().status, "SUCCESS");
    assert!(
        app.try_count("orders").await.is_some(),
        "orders is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_settings_are_honoured_or_refused_at_start_up_never_misread() {
    let app = spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
    )
    .await;
    // A setting that changes the files: refused, exit 2, the key named.
    let (code, _, stderr) = crate::operate::run(
        &app,
        &[],
        &[(
            "DMS_SETTINGS",
            r#"{"PreserveTransactions": true, "DataFormat": "csv"}"#,
        )],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("DMS_SETTINGS: PreserveTransactions = true is not supported"),
        "{stderr}"
    );
    // A delimiter the files do not have: the file fails whole, naming the line, never mis-read.
    let (code, _, stderr) =
        crate::operate::run(&app, &[], &[("DMS_SETTINGS", r#"{"CsvDelimiter": ";"}"#)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("line 1: expected 10 fields, found 1"),
        "{stderr}"
    );
    assert_eq!(app.count("strategies").await, 0);
    let (code, _, stderr) = crate::operate::run(
        &app,
        &["retry", &app.key("strategies", "LOAD00000001.csv.gz")],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(app.count("strategies").await, 1);
    // describe-endpoints' answer in a file: BucketFolder gives the path, an unknown key a warning.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("endpoint.json");
    std::fs::write(
        &file,
        r#"{"Endpoints": [{"S3Settings": {"BucketFolder": "data", "CompressionType": "GZIP",
            "CsvDelimiter": ",", "DatePartitionEnabled": false, "Shiny": true}}]}"#,
    )
    .unwrap();
    let source = app.env["SOURCE"].replace("bucket_path=data", "");
    let (code, _, stderr) = crate::operate::run(
        &app,
        &[],
        &[
            ("SOURCE", source.as_str()),
            ("DMS_SETTINGS_FILE", file.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("ignoring keys that are not DMS S3Settings: Shiny"),
        "{stderr}"
    );
    assert_eq!(app.count("strategies").await, 1);
}
