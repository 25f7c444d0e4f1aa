//! Finding files: the incremental listing after each stream's cursor, the full listing and late files, and what an idle pass costs.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_change_file_is_found_by_the_full_listing_delivered_counted_and_logged() {
    let app = spawn_app().await;
    app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(3))
        .await;
    let later = app
        .put_csv(
            "strategies",
            "20220922-100000000.csv.gz",
            &change("I", 4, "ACTIVE", 4),
        )
        .await;
    // The debug line `Full listing: ...` marks each full listing in the log.
    let mut service = Service::start_with(
        &app,
        "2",
        &[("LOG_LEVEL", "info,paper_engine_orders=debug")],
    );
    wait_status(&app, &service, &later, "SUCCESS", Duration::from_secs(15)).await;
    assert_eq!(app.count("strategies").await, 4);
    // Nothing is late yet.
    assert!(
        eventually(Duration::from_secs(5), || async {
            !service.metrics().await.is_empty()
        })
        .await,
        "/metrics answers"
    );
    assert_eq!(
        service
            .metric(&series("late_files_total", "strategies"))
            .await
            .unwrap_or(0.0),
        0.0
    );

    // DMS (or a re-upload) puts a file behind the stream's cursor: S3 StartAfter hides it from
    // the incremental passes; the periodic full listing finds it.
    let late = app
        .put_csv(
            "strategies",
            "20220922-090000000.csv.gz",
            &change("I", 5, "PAUSED", 5),
        )
        .await;
    wait_status(&app, &service, &late, "SUCCESS", Duration::from_secs(15)).await;
    assert_eq!(
        strategy_rows(&app).await,
        vec![
            (1, "ACTIVE".into(), 1),
            (2, "ACTIVE".into(), 2),
            (3, "ACTIVE".into(), 3),
            (4, "ACTIVE".into(), 4),
            (5, "PAUSED".into(), 5),
        ]
    );
    let late_series = series("late_files_total", "strategies");
    assert!(
        eventually(Duration::from_secs(5), || async {
            service.metric(&late_series).await == Some(1.0)
        })
        .await,
        "{late_series}: {:?}",
        service.metric(&late_series).await
    );
    // Delivered once and counted once: a full listing after the delivery sees it done.
    let full_listings = |log: &str| log.matches("Full listing:").count();
    let before = full_listings(&service.log());
    assert!(
        before >= 2,
        "start-up and periodic full listings:\n{}",
        service.log()
    );
    assert!(
        eventually(Duration::from_secs(8), || async {
            full_listings(&service.log()) > before
        })
        .await,
        "another full listing within 8 s:\n{}",
        service.log()
    );
    assert_eq!(service.metric(&late_series).await, Some(1.0));
    assert_eq!(
        service.metric(&series("pending_files", "strategies")).await,
        Some(0.0)
    );
    let log = service.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(&format!("Late file {late}:")))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one Late file warning naming the key:\n{log}"
    );
    assert!(warnings[0].contains("strategies"), "{}", warnings[0]);
    assert_eq!(
        log.matches("Late file").count(),
        1,
        "only the late file is late:\n{log}"
    );
    let deliveries = app
        .rows("SELECT count(*) FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'")
        .await;
    assert_eq!(deliveries[0][0].as_deref(), Some("3"));

    assert_eq!(
        service.terminate(),
        Some(0),
        "exits 0 on SIGTERM:\n{}",
        service.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_flat_change_files_are_found_after_the_cursor_without_a_full_listing() {
    let app = spawn_app().await;
    let mut service = incremental_service(&app).await;
    let limit = Duration::from_secs(6);
    for (name, id) in [
        ("20220922-110000000.csv.gz", 4),
        ("20220923-000000000.csv.gz", 5),
    ] {
        let key = app
            .put_csv(
                "strategies",
                name,
                &change("I", id, "ACTIVE", i64::from(id)),
            )
            .await;
        wait_status(&app, &service, &key, "SUCCESS", limit).await;
    }
    assert_eq!(app.count("strategies").await, 5);
    assert_one_full_listing(&service);
    let log = service.log();
    assert!(!log.contains("Late file"), "{log}");
    assert_eq!(service.terminate(), Some(0));
}

/// A stream with both namings (flat names and date folders, as when DMS's DatePartitionEnabled
/// was switched on once): later files of either naming are found by the incremental listing
/// (one listing per naming). A stream that has only ever had flat names and then gets its
/// first date-folder file cannot see it incrementally (`2022/...` sorts before `20220922-...`):
/// the next full listing finds it, counted as late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_folder_and_flat_change_files_are_found_incrementally_once_both_namings_are_known() {
    let app = spawn_app().await;
    // Start-up: both namings already in the stream.
    app.put_csv(
        "strategies",
        "2022/09/22/20220922-110000000.csv.gz",
        &change("I", 10, "ACTIVE", 10),
    )
    .await;
    let mut service = incremental_service(&app).await;
    let limit = Duration::from_secs(6);
    for (name, id) in [
        ("2022/09/23/20220923-010000000.csv.gz", 4),
        ("20220923-020000000.csv.gz", 5),
        ("2022/09/23/20220923-030000000.csv.gz", 6),
    ] {
        let key = app
            .put_csv(
                "strategies",
                name,
                &change("I", id, "ACTIVE", i64::from(id)),
            )
            .await;
        wait_status(&app, &service, &key, "SUCCESS", limit).await;
    }
    assert_eq!(app.count("strategies").await, 7);
    assert_one_full_listing(&service);
    assert_eq!(service.terminate(), Some(0));
}

/// A first `YYYY/` date folder sorts before the flat names of its year: the incremental pass also
/// lists that year's folder, so the file is found at once, in order, not late. Only when the
/// endpoint's settings say DMS writes no date folders is it left to the full listing (late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_date_folder_after_flat_names_is_found_at_once_unless_the_settings_rule_it_out() {
    for (settings, full_list, late_expected) in [
        ("", "3600", 0.0),
        (r#"{"DatePartitionEnabled": false}"#, "3", 1.0),
    ] {
        let app = spawn_app().await;
        app.put_csv("strategies", "LOAD00000001.csv.gz", &strategies(2))
            .await;
        let first = app
            .put_csv(
                "strategies",
                "20220922-100000000.csv.gz",
                &change("I", 3, "ACTIVE", 3),
            )
            .await;
        let mut service = Service::start_with(&app, full_list, &[("DMS_SETTINGS", settings)]);
        wait_status(&app, &service, &first, "SUCCESS", Duration::from_secs(15)).await;
        let dated = app
            .put_csv(
                "strategies",
                "2022/09/23/20220923-010000000.csv.gz",
                &change("I", 4, "ACTIVE", 4),
            )
            .await;
        // (With FULL_LIST_INTERVAL=3600 only an incremental pass can find it.)
        wait_status(&app, &service, &dated, "SUCCESS", Duration::from_secs(15)).await;
        let late = series("late_files_total", "strategies");
        assert!(
            eventually(Duration::from_secs(5), || async {
                service.metric(&late).await.unwrap_or(0.0) == late_expected
            })
            .await,
            "{settings}: {late} is {late_expected}:\n{}",
            service.log()
        );
        assert_eq!(service.terminate(), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_incremental_passes_do_not_query_the_ledger() {
    let app = spawn_app().await;
    let queries = queries_of_idle_passes(
        &app,
        &["20220922-100000000.csv.gz", "20220922-110000000.csv.gz"],
    )
    .await;
    assert_eq!(queries, Vec::<String>::new());
}

/// With both a flat and a date-folder cursor, each naming is listed after its own cursor, so an
/// idle pass neither lists the other naming's history again nor asks the ledger about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_incremental_passes_do_not_query_the_ledger_with_both_namings() {
    let app = spawn_app().await;
    let queries = queries_of_idle_passes(
        &app,
        &[
            "20220922-100000000.csv.gz",
            "20220922-110000000.csv.gz",
            "2022/09/22/20220922-120000000.csv.gz",
        ],
    )
    .await;
    assert_eq!(queries, Vec::<String>::new());
}

/// The wake-up hook: a service sleeping a minute between passes looks at the bucket at once
/// when woken (what a bucket notification will do), and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_service_looks_at_the_bucket_at_once() {
    let app = spawn_app().await;
    let config = app.config(&[
        ("RUN_AS_SERVICE", "true"),
        ("MIN_SLEEP", "60"),
        ("MAX_SLEEP", "60"),
    ]);
    let service = paper_engine_orders::startup::Application::build(config)
        .await
        .unwrap();
    let waker = service.loader().waker();
    let stop = service.stop_handle();
    let running = tokio::spawn(service.run_until_stopped());
    // Let the first (empty) pass end and the service fall asleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key = app
        .put_csv("strategies", "LOAD00000001.csv.gz", &strategies(2))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&app, &key).await, None, "asleep: not seen yet");
    waker.wake();
    // (Generous: the whole suite runs in parallel on two cores; asleep, it would take 60 s.)
    assert!(
        eventually(Duration::from_secs(20), || async {
            status(&app, &key).await.as_deref() == Some("SUCCESS")
        })
        .await,
        "delivered once woken"
    );
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops")
        .unwrap();
}
