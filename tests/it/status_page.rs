//! `GET /` as a person sees it: the page of a running loader with one good and one stopped
//! stream, rendered by headless Chromium (Debian's `chromium`, installed by scripts/test.sh).
//! The rendered DOM is checked, and a screenshot is taken; with `PEO_STATUS_SCREENSHOT=<path>`
//! it is kept there (how docs/status_page.png is made).
use std::process::Command;

use crate::helpers::spawn_app;
use crate::operate::service_with_a_stopped_stream;

/// Chromium as the project runs it: headless, no sandbox (root in CI), no network of its own.
fn chromium(args: &[&str], profile: &std::path::Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium is installed (scripts/test.sh installs Debian's chromium)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_the_stopped_stream_and_the_commands_that_fix_it() {
    let app = spawn_app().await;
    let (_child, port, orders_bad) = service_with_a_stopped_stream(&app).await;
    let url = format!("http://127.0.0.1:{port}/");
    let profile = tempfile::tempdir().unwrap();

    // What the browser made of the page (no JavaScript on it: the DOM is the page).
    let out = chromium(&["--dump-dom", &url], profile.path());
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("1 of 3 streams stopped at a bad file"),
        "{dom}"
    );
    assert!(
        dom.contains("class=\"summary bad\""),
        "the summary is highlighted: {dom}"
    );
    assert!(
        dom.contains("<tr class=\"error\" id=\"stream-orders\">"),
        "{dom}"
    );
    assert!(
        dom.contains("<tr class=\"success\" id=\"stream-strategies\">"),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("orders is stopped at <code>{orders_bad}</code>")),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("paper-engine-orders retry {orders_bad}")),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            "paper-engine-orders skip {orders_bad} --reason \"&lt;why&gt;\""
        )),
        "{dom}"
    );
    assert!(
        dom.contains("expected 16 fields, found 3"),
        "the reason: {dom}"
    );
    assert!(!dom.contains("<script"), "readable without JavaScript");

    // The screenshot.
    let shot = profile.path().join("status_page.png");
    let out = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,860",
            &url,
        ],
        profile.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a page, not a blank: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("PEO_STATUS_SCREENSHOT") {
        std::fs::write(keep, png).unwrap();
    }
}
