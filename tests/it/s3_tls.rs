//! The bucket as AWS users and S3-compatible servers have it, through the binary: an `https`
//! endpoint whose certificate a private CA signed (trusted through `AWS_CA_BUNDLE` or
//! `bucket_ca=`, refused without it), and credentials from the AWS default chain when `SOURCE`
//! has no static keys (environment variables, a shared credentials file), with a clear error
//! when there are none.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{active_strategy, free_port, gzip, spawn_app, wait_for_port, ChildGuard};
use crate::operate::run;
use paper_engine_orders::config::SourceConfig;
use paper_engine_orders::source::S3Source;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 (`server.pem`, `server.key`).
pub fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=paper-engine-orders test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_signed_by_a_private_ca_is_trusted_through_aws_ca_bundle_or_bucket_ca() {
    let mut app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = free_port();
    let _moto = ChildGuard(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .arg("-c")
            .arg(dir.path().join("server.pem"))
            .arg("-k")
            .arg(dir.path().join("server.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server"),
    );
    assert!(wait_for_port(port, Duration::from_secs(30)));
    let ca = dir.path().join("ca.pem").display().to_string();
    let bucket = crate::helpers::unique_name("peo-tls");
    let source = format!(
        "bucket_endpoint=https://127.0.0.1:{port} bucket_id=testing bucket_key=testing-secret-KEY9 \
         bucket_name={bucket} bucket_path=data"
    );
    // The test's own client trusts the CA too.
    let mut config = SourceConfig::parse(&format!("{source} bucket_ca={ca}")).unwrap();
    config.load_ca(None).unwrap();
    let s3 = S3Source::new(&config).await;
    s3.ensure_bucket().await.unwrap();
    let put = |name: &str, text: String| {
        let s3 = s3.clone();
        let key = format!("data/dbo/strategies/{name}");
        let body = gzip(text.as_bytes());
        async move { s3.put(&key, body).await.unwrap() }
    };
    put("LOAD00000001.csv.gz", active_strategy(1)).await;
    app.env.insert("SOURCE".into(), source.clone());

    // Without the CA: refused, saying why, nothing loaded.
    let started = Instant::now();
    let (code, out, err) = run(&app, &[], &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "the TLS failure is named: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(app.try_count("strategies").await.unwrap_or(0), 0);

    // AWS_CA_BUNDLE, the variable every AWS SDK reads.
    let (code, out, err) = run(&app, &[], &[("AWS_CA_BUNDLE", ca.as_str())]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app.count("strategies").await, 1);

    // bucket_ca= in SOURCE (it wins over AWS_CA_BUNDLE).
    put(
        "20220922-095853123.csv.gz",
        format!("I,{}", active_strategy(2)),
    )
    .await;
    let with_ca = format!("{source} bucket_ca={ca}");
    let (code, out, err) = run(
        &app,
        &[],
        &[
            ("SOURCE", with_ca.as_str()),
            ("AWS_CA_BUNDLE", "/etc/hostname"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app.count("strategies").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_static_keys_the_aws_default_credential_chain_is_used() {
    let mut app = spawn_app().await;
    let home = tempfile::tempdir().unwrap();
    let keyless: String = app.env["SOURCE"]
        .split_whitespace()
        .filter(|kv| !kv.starts_with("bucket_id=") && !kv.starts_with("bucket_key="))
        .collect::<Vec<_>>()
        .join(" ");
    app.env.insert("SOURCE".into(), keyless);
    let home_dir = home.path().display().to_string();
    let isolated = [
        ("HOME", home_dir.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];

    // No credentials anywhere: a clear error naming both ways to give them, quickly.
    app.put_csv("strategies", "LOAD00000001.csv.gz", &active_strategy(1))
        .await;
    let started = Instant::now();
    let (code, out, err) = run(&app, &[], &isolated);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("no credentials found in chain"), "{err}");
    assert!(
        err.contains("next step: give bucket_id and bucket_key in SOURCE"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(app.try_count("strategies").await.unwrap_or(0), 0);

    // The environment's keys.
    let mut env = isolated.to_vec();
    env.extend([
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing-secret-KEY9"),
    ]);
    let (code, out, err) = run(&app, &[], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app.count("strategies").await, 1);

    // A shared credentials file's profile.
    let credentials = home.path().join("credentials");
    std::fs::write(
        &credentials,
        "[loader]\naws_access_key_id = testing\naws_secret_access_key = testing-secret-KEY9\n",
    )
    .unwrap();
    app.put_csv(
        "strategies",
        "20220922-095853123.csv.gz",
        &format!("I,{}", active_strategy(2)),
    )
    .await;
    let file = credentials.display().to_string();
    let mut env = isolated.to_vec();
    env.extend([
        ("AWS_SHARED_CREDENTIALS_FILE", file.as_str()),
        ("AWS_PROFILE", "loader"),
    ]);
    let (code, out, err) = run(&app, &[], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app.count("strategies").await, 2);
    let secret = "testing-secret-KEY9";
    assert!(!out.contains(secret) && !err.contains(secret));
}
