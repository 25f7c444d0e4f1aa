//! The Dockerfile's HEALTHCHECK, run as Docker runs it (`/bin/sh -c` in the container's
//! environment) against the binary on a port other than 9100.
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
