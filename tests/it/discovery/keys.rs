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
