//! The operator's commands: `status`, `deliveries`, `retry`, `skip`. They read the same
//! configuration as the loader and work whether or not a loader is running (the ledger is in
//! Postgres; the stream locks keep a command and a loader from acting on one stream at once).
use std::sync::Arc;

use crate::app::{build_loader, connect_target, exit, start_failure};
use crate::config::Config;
use crate::ledger::{Action, ActionError, Actor, DeliveryQuery};
use crate::metrics::Metrics;
use crate::source::display_key;
use crate::startup::StartError;
use crate::status::StatusReport;
use crate::target::PgTarget;

/// Writes the command's output; a closed pipe (`status | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The configuration of a command: logs at `warn` unless `LOG_LEVEL` says otherwise (the
/// command's own output goes to standard output), never a service (start-up retries are
/// bounded).
fn command_config(default_level: &str) -> Result<Config, i32> {
    let mut config = super::config()?;
    if std::env::var_os("LOG_LEVEL").is_none() {
        config.log_level = default_level.into();
    }
    crate::logging::init(&config.log_level, config.log_format);
    config.run_as_service = false;
    config.dry_run = false;
    Ok(config)
}

async fn target(config: &Config) -> Result<PgTarget, i32> {
    connect_target(config)
        .await
        .map_err(|e| start_failure(&StartError::Target(e)))
}

/// `status [--json]`: exit 0 when no stream is stopped, 1 otherwise (or when the status could
/// not be read).
pub(super) async fn status(json: bool) -> i32 {
    let config = match command_config("warn") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let loader = match build_loader(&config, Arc::new(Metrics::new())).await {
        Ok(l) => l,
        Err(e) => return start_failure(&e),
    };
    let streams = match loader.survey().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Cannot read the bucket or the ledger: {e}");
            return exit::FAILED;
        }
    };
    let facts = match loader.target().table_facts().await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Cannot read the ledger: {e}");
            return exit::FAILED;
        }
    };
    let report = StatusReport::build(&streams, facts);
    if json {
        print_out(&(serde_json::to_string_pretty(&report).expect("serializable") + "\n"));
    } else {
        print_out(&report.to_text());
    }
    if report.ok {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// `deliveries [--table T] [--status S] [--limit N] [--json]`.
pub(super) async fn deliveries(query: DeliveryQuery, json: bool) -> i32 {
    let config = match command_config("warn") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let target = match target(&config).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    if let Some(table) = &query.table {
        if !crate::target::Target::tables(&target).contains_key(table) {
            eprintln!(
                "--table {table}: no such replicated table in schema {}",
                config.target_schema
            );
            return exit::CONFIG;
        }
    }
    match target.deliveries(&query).await {
        Ok(records) if json => {
            print_out(&(serde_json::to_string_pretty(&records).expect("serializable") + "\n"));
            exit::OK
        }
        Ok(records) => {
            print_out(&crate::status::deliveries_text(&records));
            exit::OK
        }
        Err(e) => {
            eprintln!("Cannot read the ledger: {e}");
            exit::FAILED
        }
    }
}

fn refused(action: Action, e: ActionError) -> i32 {
    match e {
        ActionError::Refused(r) => eprintln!("{} refused: {r}", action.verb()),
        ActionError::Target(e) => eprintln!("{} failed: {e}", action.verb()),
    }
    exit::FAILED
}

/// `retry KEY [--reason TEXT] [--no-deliver]`: records the retry, then (unless `--no-deliver`)
/// delivers the file's stream now, as a one-shot run of that table. Exit 0 when the file is
/// delivered or left to the loader that holds its stream, 1 when it failed again or the retry
/// was refused.
pub(super) async fn retry(key: &str, reason: &str, deliver: bool) -> i32 {
    let config = match command_config(if deliver { "info" } else { "warn" }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let target = match target(&config).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    let done = match target.act(Action::Retry, key, reason, &Actor::cli()).await {
        Ok(done) => done,
        Err(e) => return refused(Action::Retry, e),
    };
    println!(
        "Retry of {} recorded (stream {}, failed delivery {}).",
        display_key(key),
        done.table,
        done.delivery_id
    );
    if !deliver {
        println!(
            "The running loader attempts it on its next pass (or the next run does): see `paper-engine-orders status`."
        );
        return exit::OK;
    }
    // One-shot over this stream only, beside a service if one runs (no HTTP server of its own).
    let mut run = config.clone();
    run.only_tables = Some([done.table.clone()].into_iter().collect());
    run.metrics_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let code = crate::app::run(run).await;
    let entry = crate::target::Target::ledger_entries(&target, &[key.to_string()]).await;
    match entry.map(|mut e| e.remove(key)) {
        Ok(Some(e)) if e.is_done() => {
            println!(
                "Retried: {} is delivered (delivery {}).",
                display_key(key),
                e.id
            );
            exit::OK
        }
        Ok(Some(e)) => {
            println!(
                "Retried: {} failed again (delivery {}): {}",
                display_key(key),
                e.id,
                e.error.unwrap_or_default()
            );
            exit::FAILED
        }
        Ok(None) if code == exit::OK => {
            println!(
                "{} waits for the loader that holds stream {}: it attempts the file on its pass.",
                display_key(key),
                done.table
            );
            exit::OK
        }
        Ok(None) => exit::FAILED,
        Err(e) => {
            eprintln!("Cannot read the ledger: {e}");
            exit::FAILED
        }
    }
}

/// `skip KEY --reason TEXT`.
pub(super) async fn skip(key: &str, reason: &str) -> i32 {
    let config = match command_config("warn") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let target = match target(&config).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    match target.act(Action::Skip, key, reason, &Actor::cli()).await {
        Ok(done) => {
            println!(
                "Skipped {} (stream {}, failed delivery {}): the stream goes on with its next file (the running loader on its next pass, or the next run).",
                display_key(key),
                done.table,
                done.delivery_id
            );
            exit::OK
        }
        Err(e) => refused(Action::Skip, e),
    }
}
