//! TLS to Postgres through the binary, against the machine's Postgres (which serves TLS with its
//! own self-signed certificate, `ssl_cert_file`): `sslmode=require` encrypts, `verify-full`
//! with that certificate as `sslrootcert` connects by the name it carries and refuses another
//! name with exit code 2, `verify-ca` checks the chain only; and against a scratch cluster serving a
//! certificate the test setup made, verified by the CA that signed it.
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

/// `verify-full` and `verify-ca` against a server whose certificate the test's own CA signed (a
/// scratch Postgres cluster serving it): trusted by that CA, by the name and the address it
/// carries; refused with another CA, exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_made_by_the_test_setup_is_verified_by_its_ca() {
    use crate::restarts::{as_postgres, ScratchPostgres};
    let certs = tempfile::tempdir().unwrap();
    crate::s3_tls::make_certificates(certs.path());
    let dir = certs.path().display().to_string();
    as_postgres(&["chmod", "755", &dir], true);
    as_postgres(&["chown", "postgres", &format!("{dir}/server.key")], true);
    as_postgres(&["chmod", "600", &format!("{dir}/server.key")], true);
    let pg = ScratchPostgres::start_with(&[
        "ssl=on",
        &format!("ssl_cert_file={dir}/server.pem"),
        &format!("ssl_key_file={dir}/server.key"),
    ]);
    let mut env = std::collections::HashMap::new();
    let app = spawn_app().await;
    env.insert("SOURCE".to_string(), app.env["SOURCE"].clone());
    env.insert("RUN_AS_SERVICE".to_string(), "false".to_string());
    env.insert("NOTIFICATIONS".to_string(), "false".to_string());
    let ca = format!("sslrootcert={dir}/ca.pem");
    for (host, mode) in [
        ("127.0.0.1", "verify-full"),
        ("localhost", "verify-full"),
        ("127.0.0.1", "verify-ca"),
    ] {
        let target = with(&pg.target(), host, &format!("sslmode={mode} {ca}"));
        let (code, out, err) =
            crate::operate::run_with(&env, &["status", "--json"], &[("TARGET", target.as_str())]);
        assert_eq!(code, 0, "{host} {mode}: {out}{err}");
    }
    // Another CA (the machine's own self-signed certificate): refused.
    let other = server_certificate(&app).await;
    let target = with(
        &pg.target(),
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={other}"),
    );
    let (code, _, err) =
        crate::operate::run_with(&env, &["status"], &[("TARGET", target.as_str())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
}
