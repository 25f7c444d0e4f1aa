//! TLS to Postgres through the binary, against the machine's Postgres (which serves TLS with its
//! own self-signed certificate, `ssl_cert_file`): `sslmode=require` encrypts, `verify-full`
//! with that certificate as `sslrootcert` connects by the name it carries and refuses another
//! name with exit code 2, `verify-ca` checks the chain only.
use crate::helpers::spawn_app;
use crate::operate::run;
use crate::service::spawn_service;

const STRATEGY: &str = "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n";

/// The server's certificate file and the name it is valid for (`localhost` on Debian).
async fn server_certificate(app: &crate::helpers::TestApp) -> String {
    let rows = app
        .rows("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
        .await;
    assert_eq!(
        rows[0][0].as_deref(),
        Some("on"),
        "the machine's Postgres serves TLS"
    );
    rows[0][1].clone().unwrap()
}

fn with(target: &str, host: &str, tls: &str) -> String {
    let rest: Vec<&str> = target
        .split_whitespace()
        .filter(|kv| !kv.starts_with("host="))
        .collect();
    format!("host={host} {} {tls}", rest.join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured_through_rustls() {
    let app = spawn_app().await;
    let cert = server_certificate(&app).await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", STRATEGY)
        .await;
    let target = app.env["TARGET"].clone();

    // require: the loader's connections are encrypted.
    let require = with(&target, "127.0.0.1", "sslmode=require");
    let service = spawn_service(&app, &[("TARGET", require.as_str())]).await;
    service
        .wait_for_log("Nothing pending", 1, std::time::Duration::from_secs(30))
        .await;
    let encrypted = app
        .rows(&format!(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
               JOIN pg_stat_activity a USING (pid) \
              WHERE a.datname = '{}' AND a.pid <> pg_backend_pid()",
            app.database
        ))
        .await;
    assert_ne!(encrypted[0][0].as_deref(), Some("0"), "{encrypted:?}");
    assert_eq!(
        encrypted[0][0], encrypted[0][1],
        "every connection encrypted"
    );
    drop(service);
    assert_eq!(app.count("strategies").await, 1);

    // verify-full by the certificate's name: connects; by another name: refused, exit 2.
    let root = format!("sslrootcert={cert}");
    let full = with(&target, "localhost", &format!("sslmode=verify-full {root}"));
    let (code, out, err) = run(&app, &["status", "--json"], &[("TARGET", full.as_str())]);
    assert_eq!(code, 0, "{out}{err}");
    let wrong = with(&target, "127.0.0.1", &format!("sslmode=verify-full {root}"));
    let (code, _, err) = run(&app, &["status"], &[("TARGET", wrong.as_str())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(
        err.contains("sslmode and sslrootcert"),
        "the next step: {err}"
    );
    // verify-ca: the chain only, whatever the name.
    let ca = with(&target, "127.0.0.1", &format!("sslmode=verify-ca {root}"));
    let (code, out, err) = run(&app, &["status", "--json"], &[("TARGET", ca.as_str())]);
    assert_eq!(code, 0, "{out}{err}");
    // A root certificate that is not there: refused at once, exit 2.
    let missing = with(
        &target,
        "127.0.0.1",
        "sslmode=verify-ca sslrootcert=/nonexistent/root.crt",
    );
    let (code, _, err) = run(&app, &["status"], &[("TARGET", missing.as_str())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslrootcert /nonexistent/root.crt"), "{err}");
}
