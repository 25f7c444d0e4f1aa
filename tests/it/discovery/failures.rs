//! A stopped stream: the failure history that survives a fix, and an operator's skip.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_file_is_delivered_and_its_failed_attempt_stays_in_loader_failures() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(2))
        .await;
    let mut service = Service::start(&app, "3600");
    let load = app.key("strategies", "LOAD00000001.csv.gz");
    wait_status(&app, &service, &load, "SUCCESS", Duration::from_secs(15)).await;

    // Line 2, column 7 (max_notional) is not a number.
    let bad_body = format!(
        "{}I,11,S-11,Strategy 11,ops,IBKR,ACTIVE,12x.5,2022-09-01 10:00:00,2022-09-01 10:00:00,11\n",
        change("I", 10, "ACTIVE", 10)
    );
    let bad = app
        .put_csv("strategies", "20220922-100000000.csv.gz", &bad_body)
        .await;
    let good = app
        .put_csv(
            "strategies",
            "20220922-100100000.csv.gz",
            &change("U", 1, "PAUSED", 12),
        )
        .await;
    wait_status(&app, &service, &bad, "ERROR", Duration::from_secs(10)).await;
    let bad_etag: String = app
        .db
        .query_one(
            "SELECT etag FROM paper_engine.loader_deliveries WHERE object_key = $1",
            &[&bad],
        )
        .await
        .unwrap()
        .get(0);

    // The stream is stopped at the bad file; both it and the good file after it are pending.
    let (stopped, pending) = (
        series("stream_stopped", "strategies"),
        series("pending_files", "strategies"),
    );
    let reached = eventually(Duration::from_secs(10), || async {
        let m = service.metrics().await;
        m.get(&stopped) == Some(&1.0) && m.get(&pending) == Some(&2.0)
    })
    .await;
    let m = service.metrics().await;
    assert!(
        reached,
        "stopped {:?}, pending {:?}; log:\n{}",
        m.get(&stopped),
        m.get(&pending),
        service.log()
    );
    assert_eq!(status(&app, &good).await, None, "the later file waits");
    assert_eq!(app.count("strategies").await, 2, "nothing of the bad file");
    let failures = app
        .db
        .query(
            "SELECT object_key, etag, error, table_name, kind FROM paper_engine.loader_failures",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(failures.len(), 1, "one failed attempt, not one per pass");
    // The stream shows stopped as soon as the file fails; the warning comes with the next
    // pass, and only once however many passes follow.
    let warnings = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains(" WARN ")
                    && l.contains(&format!("Stream strategies is stopped at {bad} "))
            })
            .count()
    };
    eventually(Duration::from_secs(10), || async {
        warnings(&service.log()) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = service.log();
    assert_eq!(warnings(&log), 1, "warned once:\n{log}");

    // The operator fixes the file in the bucket (a new body, so a new ETag).
    let fixed = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &format!(
                "{}{}",
                change("I", 10, "ACTIVE", 10),
                change("I", 11, "ACTIVE", 11)
            ),
        )
        .await;
    assert_eq!(fixed, bad);
    wait_status(&app, &service, &bad, "SUCCESS", Duration::from_secs(10)).await;
    wait_status(&app, &service, &good, "SUCCESS", Duration::from_secs(10)).await;
    assert_eq!(
        strategy_rows(&app).await,
        vec![
            (1, "PAUSED".into(), 12),
            (2, "ACTIVE".into(), 2),
            (10, "ACTIVE".into(), 10),
            (11, "ACTIVE".into(), 11),
        ]
    );
    let row = app
        .db
        .query_one(
            "SELECT status, etag, error FROM paper_engine.loader_deliveries WHERE object_key = $1",
            &[&bad],
        )
        .await
        .unwrap();
    let (new_status, new_etag, new_error): (String, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(new_status, "SUCCESS");
    assert_ne!(
        new_etag, bad_etag,
        "the ledger row holds the fixed object's ETag"
    );
    assert_eq!(new_error, None, "a delivered file has no current error");

    // The failed attempt is still there, as it was.
    let failures = app
        .db
        .query(
            "SELECT object_key, etag, error, table_name, kind FROM paper_engine.loader_failures",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    let (key, etag, error, table, kind): (String, Option<String>, String, String, String) =
        (f.get(0), f.get(1), f.get(2), f.get(3), f.get(4));
    assert_eq!(key, bad);
    assert_eq!(etag.as_deref(), Some(bad_etag.as_str()));
    assert_eq!((table.as_str(), kind.as_str()), ("strategies", "CDC"));
    for part in ["line 2", "column 7 (max_notional)", "12x.5"] {
        assert!(error.contains(part), "`{part}` not in `{error}`");
    }

    let reached = eventually(Duration::from_secs(10), || async {
        let m = service.metrics().await;
        m.get(&stopped) == Some(&0.0) && m.get(&pending) == Some(&0.0)
    })
    .await;
    let m = service.metrics().await;
    assert!(
        reached,
        "stopped {:?}, pending {:?}",
        m.get(&stopped),
        m.get(&pending)
    );
    assert_eq!(service.terminate(), Some(0), "{}", service.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_skips_a_bad_file_and_the_next_run_goes_on_without_its_data() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(2))
        .await;
    // Line 1 is good (a new strategy 20), line 2 has too few fields: nothing of it may apply.
    let bad = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &format!("{}I,21,S-21,too few\n", change("I", 20, "ACTIVE", 20)),
        )
        .await;
    let later = app
        .put_csv(
            "strategies",
            "20220922-100100000.csv.gz",
            &format!(
                "{}{}",
                change("U", 2, "PAUSED", 22),
                change("I", 30, "ACTIVE", 30)
            ),
        )
        .await;

    let (code, log) = run_once(&app);
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(status(&app, &bad).await.as_deref(), Some("ERROR"));
    assert_eq!(status(&app, &later).await, None, "{log}");
    // Still stopped on a second run.
    let (code, log) = run_once(&app);
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(status(&app, &later).await, None, "{log}");

    let updated = app
        .db
        .execute(
            "UPDATE paper_engine.loader_deliveries SET status = 'SKIPPED' WHERE object_key = $1",
            &[&bad],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);

    let (code, log) = run_once(&app);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(status(&app, &later).await.as_deref(), Some("SUCCESS"));
    assert_eq!(status(&app, &bad).await.as_deref(), Some("SKIPPED"));
    assert_eq!(
        strategy_rows(&app).await,
        vec![
            (1, "ACTIVE".into(), 1),
            (2, "PAUSED".into(), 22),
            (30, "ACTIVE".into(), 30),
        ],
        "strategy 20 (from the skipped file) is not there"
    );
    let failures = app
        .rows("SELECT object_key FROM paper_engine.loader_failures")
        .await;
    assert_eq!(failures, vec![vec![Some(bad.clone())]]);
    // The skipped file is never attempted again.
    let (code, log) = run_once(&app);
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains(&bad), "{log}");
    assert_eq!(status(&app, &bad).await.as_deref(), Some("SKIPPED"));
}
