//! Keys with spaces, plus signs and control characters in the bucket.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_spaces_plus_signs_and_newlines_do_not_break_listing_or_forge_log_lines() {
    let app = spawn_app().await;
    let normal = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &strategies(3))
        .await;
    let odd = [
        "data/dbo/strat egies+x/LOAD00000001.csv.gz",
        "data/dbo/orders\nINFO forged/LOAD00000001.csv.gz",
        // Not DMS file names: ignored, whatever characters they hold.
        "data/dbo/strategies/LOAD00000002 copy+1.csv.gz",
        "data/dbo/strategies/notes\nINFO forged.csv.gz",
    ];
    for key in odd {
        put_any_key(&app, key, gzip(strategies(1).as_bytes())).await;
    }
    let (code, log) = run_once(&app);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(status(&app, &normal).await.as_deref(), Some("SUCCESS"));
    assert_eq!(app.count("strategies").await, 3);
    assert_eq!(
        app.rows("SELECT count(*) FROM paper_engine.loader_deliveries")
            .await[0][0]
            .as_deref(),
        Some("1"),
        "only the normal file is a delivery"
    );
    for folder in ["dbo/strat egies+x", "dbo/orders\\nINFO forged"] {
        let warnings = log
            .lines()
            .filter(|l| {
                l.contains(" WARN ") && l.contains(&format!("Skipping table folder {folder}:"))
            })
            .count();
        assert_eq!(warnings, 1, "{folder}:\n{log}");
    }
    for line in log.lines() {
        assert!(
            !line.starts_with("INFO forged"),
            "forged line: {line}\n{log}"
        );
        assert!(
            line.len() > 20 && line.as_bytes()[4] == b'-' && line.as_bytes()[13] == b':',
            "every line is a log line: {line:?}\n{log}"
        );
    }
    // A second run has nothing to do and still does not fail on those keys.
    let (code, log) = run_once(&app);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(app.count("strategies").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_that_are_not_dms_names_are_logged_once_and_counted() {
    let app = crate::helpers::spawn_app().await;
    app.put_csv(
        "strategies",
        "LOAD00000001.csv.gz",
        "1,S-1,One,ops,IBKR,ACTIVE,,2022-09-01 10:00:00,2022-09-01 10:00:00,1\n",
    )
    .await;
    app.put("data/dbo/strategies/notes.txt", b"hello".to_vec())
        .await;
    app.put("data/manifest.json", b"{}".to_vec()).await;
    let service = crate::service::spawn_service(
        &app,
        &[
            ("MIN_SLEEP", "0.2"),
            ("MAX_SLEEP", "0.2"),
            ("FULL_LIST_INTERVAL", "0.5"),
        ],
    )
    .await;
    // Several passes, full listings among them.
    service
        .wait_for_log("Nothing pending", 6, std::time::Duration::from_secs(30))
        .await;
    let log = service.log_text();
    assert_eq!(
        log.matches("Ignoring data/dbo/strategies/notes.txt: not a DMS file name")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("Ignoring data/manifest.json").count(),
        1,
        "{log}"
    );
    assert_eq!(
        service
            .metric("paper_engine_loader_unrecognized_objects_total")
            .await,
        2.0
    );
    assert_eq!(app.count("strategies").await, 1);
}
