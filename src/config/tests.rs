//! [`Config::from_lookup`] end to end: defaults, value spellings, errors naming their
//! variable, secrets never printed.

use super::*;
use std::collections::HashMap;

const SOURCE: &str = "bucket_endpoint=http://127.0.0.1:5000 bucket_id=AKID bucket_key=s3cr3tKEY bucket_name=dms bucket_path=data/";
const TARGET: &str = "user=loader password=pgPASSw0rd host=localhost port=5432 dbname=paper_engine";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("SOURCE".into(), SOURCE.into());
    map.insert("TARGET".into(), TARGET.into());
    map.insert("NATS".into(), "nats://nuser:natsPASS@127.0.0.1:4222".into());
    for (k, v) in pairs {
        map.insert(k.to_string(), v.to_string());
    }
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_match_the_replaced_service() {
    let c = Config::from_lookup(env(&[])).unwrap();
    assert!(c.run_as_service);
    assert_eq!((c.min_sleep, c.max_sleep), (15.0, 30.0));
    assert_eq!(c.full_list_interval, 3600.0);
    assert!(!c.dry_run);
    assert!(c.notifications);
    assert_eq!(c.target_schema, "paper_engine");
    assert_eq!(c.log_level, "info");
    assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:9100");
    assert_eq!(c.notification_datasource, "paper-engine");
    assert_eq!(c.notification_process, "orders");
    assert_eq!(c.source.bucket, "dms");
    assert_eq!(c.source.path, "data");
    assert_eq!(c.source.region, "us-east-1");
    assert_eq!(c.source.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(c.target.dbname(), "paper_engine");
    let nats = c.nats.unwrap();
    assert_eq!(nats.server, "nats://127.0.0.1:4222");
    assert_eq!(nats.user.as_deref(), Some("nuser"));
    assert_eq!(nats.password.unwrap().expose(), "natsPASS");
}

#[test]
fn booleans_accept_every_spelling() {
    for (v, expected) in [
        ("true", true),
        ("TRUE", true),
        ("True", true),
        ("1", true),
        ("yes", true),
        ("YES", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("no", false),
        ("No", false),
    ] {
        let c = Config::from_lookup(env(&[("RUN_AS_SERVICE", v), ("DRY_RUN", v)])).unwrap();
        assert_eq!(c.run_as_service, expected, "{v}");
        assert_eq!(c.dry_run, expected, "{v}");
    }
    let e = Config::from_lookup(env(&[("DRY_RUN", "maybe")])).unwrap_err();
    assert_eq!(e.var, "DRY_RUN");
    assert!(e
        .to_string()
        .starts_with("DRY_RUN: `maybe` is not a boolean"));
}

#[test]
fn errors_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("SOURCE", "")], "SOURCE"),
        (&[("TARGET", "")], "TARGET"),
        (&[("MIN_SLEEP", "abc")], "MIN_SLEEP"),
        (&[("MAX_SLEEP", "-1")], "MAX_SLEEP"),
        (&[("FULL_LIST_INTERVAL", "hourly")], "FULL_LIST_INTERVAL"),
        (&[("MIN_SLEEP", "40")], "MIN_SLEEP"),
        (&[("NATS", "http://x")], "NATS"),
        (&[("NATS", "")], "NATS"),
        (&[("TARGET_SCHEMA", "Bad-Name")], "TARGET_SCHEMA"),
        (&[("LOG_LEVEL", "loud!!")], "LOG_LEVEL"),
        (&[("PARALLELISM", "0")], "PARALLELISM"),
        (&[("METRICS_PORT", "99999")], "METRICS_PORT"),
        (&[("METRICS_BIND", "localhost:1")], "METRICS_BIND"),
        (
            &[("NOTIFICATION_DATASOURCE", "a.b")],
            "NOTIFICATION_DATASOURCE",
        ),
        (&[("NOTIFICATION_PROCESS", "x y")], "NOTIFICATION_PROCESS"),
        (&[("SOURCE", "bucket_id=a bucket_key=b")], "SOURCE"),
        (&[("SOURCE", "bucket_name=x bucket_key=b")], "SOURCE"),
        (&[("SOURCE", "bucket_name=x bucket_id=a")], "SOURCE"),
        (
            &[("SOURCE", "bucket_name=x bucket_id=a bucket_key=b oops")],
            "SOURCE",
        ),
        (
            &[(
                "SOURCE",
                "bucket_name=x bucket_id=a bucket_key=b colour=red",
            )],
            "SOURCE",
        ),
        (
            &[("TARGET", "host=localhost port=notaport user=u")],
            "TARGET",
        ),
        (&[("TARGET", "user=u dbname=x")], "TARGET"),
    ];
    for (pairs, var) in cases {
        let e = Config::from_lookup(env(pairs)).unwrap_err();
        assert_eq!(e.var, *var, "{pairs:?} gave {e}");
        assert!(e.to_string().starts_with(&format!("{var}: ")), "{e}");
    }
}

#[test]
fn notifications_off_or_dry_run_need_no_nats() {
    let c = Config::from_lookup(env(&[("NATS", ""), ("NOTIFICATIONS", "false")])).unwrap();
    assert!(c.nats.is_none() && !c.publishes());
    let c = Config::from_lookup(env(&[("NATS", ""), ("DRY_RUN", "yes")])).unwrap();
    assert!(!c.publishes());
}

#[test]
fn secrets_never_print() {
    let c = Config::from_lookup(env(&[])).unwrap();
    let debug = format!("{c:?}");
    for secret in ["s3cr3tKEY", "pgPASSw0rd", "natsPASS"] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
    // Errors about a variable that holds a secret do not echo it either.
    for (var, value) in [
        (
            "SOURCE",
            "bucket_name=x bucket_id=a bucket_key=s3cr3tKEY junk",
        ),
        (
            "SOURCE",
            "bucket_name=x bucket_id=a bucket_key=s3cr3tKEY bucket_endpoint=ftp://h",
        ),
        ("TARGET", "user=u password=pgPASSw0rd host=h port=x"),
        ("TARGET", "postgres://u:pgPASSw0rd@h:badport/db"),
        ("NATS", "nats://u:natsPASS@h:notaport"),
    ] {
        let e = Config::from_lookup(env(&[(var, value)])).unwrap_err();
        let text = format!("{e} {e:?}");
        for secret in ["s3cr3tKEY", "pgPASSw0rd", "natsPASS"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[test]
fn source_endpoint_without_scheme_means_https_and_url_target_works() {
    let c = Config::from_lookup(env(&[
        ("SOURCE", "bucket_endpoint=s3.example.com bucket_id=a bucket_key=b bucket_name=n bucket_region=eu-west-1"),
        ("TARGET", "postgres://u:p@db.example.com:5433/orders"),
    ]))
    .unwrap();
    assert_eq!(c.source.endpoint.as_deref(), Some("https://s3.example.com"));
    assert_eq!(c.source.region, "eu-west-1");
    assert_eq!(c.source.path, "");
    assert_eq!(c.target.dbname(), "orders");
}

#[test]
fn a_malformed_source_never_prints_a_part_of_the_secret() {
    for source in [
        "bucket_id=AKID bucket_key= s3cr3tKEYwithMoreThan16chars bucket_name=dms",
        "bucket_id=AKID bucket_key=s3cr3t KEYtail bucket_name=dms",
        "bucket_id=AKID bucket_key=s3cr3t x=KEYtail bucket_name=dms",
        "s3cr3tKEY bucket_id=AKID",
    ] {
        let e = Config::from_lookup(env(&[("SOURCE", source)]))
            .unwrap_err()
            .to_string();
        for part in ["s3cr3t", "KEYtail", "KEYwith"] {
            assert!(!e.contains(part), "{e}");
        }
        assert!(e.starts_with("SOURCE: "), "{e}");
    }
}

#[test]
fn absurd_waits_are_refused_at_validation() {
    for (var, value) in [
        ("MAX_SLEEP", "1e300"),
        ("FULL_LIST_INTERVAL", "1e20"),
        ("MIN_SLEEP", "inf"),
    ] {
        let e = Config::from_lookup(env(&[(var, value)]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(var), "{e}");
    }
}

#[test]
fn sslmode_and_sslrootcert_are_read_in_both_spellings() {
    let c = Config::from_lookup(env(&[(
        "TARGET",
        "host=db user=u dbname=d sslmode=verify-full sslrootcert=/etc/ca.pem",
    )]))
    .unwrap();
    assert_eq!(c.target.tls, PgTls::VerifyFull);
    assert_eq!(
        c.target.root_cert.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    let c = Config::from_lookup(env(&[(
        "TARGET",
        "postgres://u:pw@db:5432/d?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
    )]))
    .unwrap();
    assert_eq!(c.target.tls, PgTls::VerifyCa);
    assert_eq!(
        c.target.root_cert.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    let c = Config::from_lookup(env(&[("TARGET", "host=db user=u sslmode=disable")])).unwrap();
    assert_eq!(c.target.tls, PgTls::Disable);
    let c = Config::from_lookup(env(&[("TARGET", "host=db user=u")])).unwrap();
    assert_eq!(c.target.tls, PgTls::Prefer, "libpq's default");
    let e = Config::from_lookup(env(&[("TARGET", "host=db user=u sslmode=allow-all")]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("TARGET: sslmode `allow-all`"), "{e}");
}

#[test]
fn without_static_keys_the_default_credential_chain_is_used_and_half_a_pair_is_refused() {
    let c = Config::from_lookup(env(&[("SOURCE", "bucket_name=dms bucket_path=data")])).unwrap();
    assert_eq!(c.source.credentials, None);
    let c = Config::from_lookup(env(&[])).unwrap();
    let keys = c.source.credentials.expect("static keys");
    assert_eq!(keys.access_key_id, "AKID");
    for source in [
        "bucket_name=x bucket_id=a",
        "bucket_name=x bucket_key=s3cr3tKEY",
    ] {
        let e = Config::from_lookup(env(&[("SOURCE", source)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("default credential chain"), "{e}");
        assert!(!e.contains("s3cr3tKEY"), "{e}");
    }
}

#[test]
fn a_ca_bundle_that_cannot_be_read_or_holds_no_certificate_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = Config::from_lookup(env(&[(
        "SOURCE",
        &format!("{SOURCE} bucket_ca={}", missing.display()),
    )]))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("SOURCE: bucket_ca `"), "{e}");
    assert!(e.contains("cannot be read"), "{e}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = Config::from_lookup(env(&[("AWS_CA_BUNDLE", empty.to_str().unwrap())]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("AWS_CA_BUNDLE: `"), "{e}");
    assert!(e.contains("holds no PEM certificate"), "{e}");
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = Config::from_lookup(env(&[("AWS_CA_BUNDLE", broken.to_str().unwrap())]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate 1 is not valid"), "{e}");
}
