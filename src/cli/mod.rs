//! The command line: the loader (no command), `sample`, and the operator's commands `status`,
//! `deliveries`, `retry` and `skip`. `main` only calls [`main`]; each command is a function of
//! this module's children that returns the process exit code.
//!
//! Exit codes: 0 done (for `status`: no stream stopped), 1 failed (for `status`: a stream is
//! stopped; for `retry`: the file failed again), 2 a usage or configuration error.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::exit;
use crate::config::{read_env_file, Config};
use crate::ledger::DeliveryStatus;

mod operate;
mod sample;

/// Loads AWS DMS full-load and change files from an S3 bucket into Postgres, exactly once.
///
/// Without a command, runs the loader (service, one-shot or dry run), configured by environment
/// variables (see config.env.sample). The operator's commands read the same variables.
#[derive(Debug, Parser)]
#[command(name = "paper-engine-orders", version, about, long_about = None)]
pub struct Cli {
    /// Read variables from this file first, as `docker run --env-file` does (variables already
    /// set in the environment win).
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the loader (the default when no command is given).
    Run,
    /// Write the deterministic sample DMS dataset to the SOURCE bucket (scale 1 = 90 strategies,
    /// 160k orders, 1.5M executions). Refuses when the bucket path already holds objects, unless
    /// --force.
    Sample(SampleArgs),
    /// Per table: state (preliminary, success, error), last delivery, files pending, rows today
    /// by op, and the file a stream is stopped at with its reason. Exit code 0 when no stream is
    /// stopped, 1 otherwise. Works with the service stopped (reads the ledger and the bucket).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the ledger, newest first, each file with its failed attempts and operators' actions.
    Deliveries {
        /// Only this table's files.
        #[arg(long, value_name = "T")]
        table: Option<String>,
        /// Only files with this status: SUCCESS, ERROR or SKIPPED.
        #[arg(long, value_name = "S", value_parser = parse_status)]
        status: Option<DeliveryStatus>,
        /// At most this many files.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Attempt a file its stream stopped at again, now (after the table or the object was
    /// fixed): recorded in the ledger, then the stream is delivered. Exit code 0 when the file
    /// is delivered (or left to the running loader that holds its stream), 1 when it failed again.
    Retry {
        /// The object key the stream is stopped at (as `status` shows it).
        key: String,
        /// Why (recorded in the ledger).
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        /// Only record the retry; the running service (or the next run) attempts the file.
        #[arg(long)]
        no_deliver: bool,
    },
    /// Mark a file its stream stopped at SKIPPED, so the stream goes on without it (nothing of
    /// the file is applied). Recorded in the ledger with who, when and why.
    Skip {
        /// The object key the stream is stopped at (as `status` shows it).
        key: String,
        /// Why the file is skipped (required; recorded in the ledger).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// `sample`'s options.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Size of the dataset (1 = 90 strategies, 160k orders, 1.5M executions).
    #[arg(long, value_parser = parse_scale)]
    pub scale: Option<f64>,
    /// Seed of the generator (the same seed, the same files).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Change files per table.
    #[arg(long)]
    pub cdc_files: Option<usize>,
    /// Changed rows per change file.
    #[arg(long)]
    pub cdc_rows: Option<usize>,
    /// Rows per full-load file.
    #[arg(long, value_parser = parse_rows_per_file)]
    pub load_rows_per_file: Option<usize>,
    /// Write the list of files (key, rows, bytes) to this JSON file.
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// Write even when the bucket path already holds objects.
    #[arg(long)]
    pub force: bool,
    /// The files' format: `csv` or `parquet` (DMS's `DataFormat`; by default the one of
    /// `DMS_SETTINGS`, else csv).
    #[arg(long, value_parser = ["csv", "parquet"])]
    pub format: Option<String>,
}

fn parse_status(text: &str) -> Result<DeliveryStatus, String> {
    DeliveryStatus::parse(&text.to_ascii_uppercase())
        .ok_or_else(|| format!("`{text}` is not SUCCESS, ERROR or SKIPPED"))
}

fn parse_scale(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && s.is_finite())
        .ok_or_else(|| format!("`{text}` is not a positive number"))
}

fn parse_rows_per_file(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a whole number above 0"))
}

/// Reads `--env-file` into the environment: variables already set win.
fn load_env_file(path: &std::path::Path) -> Result<(), String> {
    let pairs = read_env_file(path).map_err(|e| format!("--env-file {}: {e}", path.display()))?;
    for (k, v) in pairs {
        if std::env::var_os(&k).is_none() {
            std::env::set_var(k, v);
        }
    }
    Ok(())
}

/// The configuration from the environment, or the exit code of its error (printed).
pub(crate) fn config() -> Result<Config, i32> {
    Config::from_env().map_err(|e| {
        eprintln!("configuration error: {e}");
        exit::CONFIG
    })
}

/// The program: parses the arguments, reads `--env-file`, runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.env_file {
        if let Err(e) = load_env_file(path) {
            eprintln!("{e}");
            return ExitCode::from(exit::CONFIG as u8);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => match config() {
                Ok(config) => {
                    crate::logging::init(&config.log_level, config.log_format);
                    crate::app::run(config).await
                }
                Err(code) => code,
            },
            Command::Sample(args) => sample::run(args).await,
            Command::Status { json } => operate::status(json).await,
            Command::Deliveries {
                table,
                status,
                limit,
                json,
            } => {
                let query = crate::ledger::DeliveryQuery {
                    table,
                    status,
                    limit,
                };
                operate::deliveries(query, json).await
            }
            Command::Retry {
                key,
                reason,
                no_deliver,
            } => operate::retry(&key, &reason, !no_deliver).await,
            Command::Skip { key, reason } => operate::skip(&key, &reason).await,
        }
    });
    // Some tasks (the SDK's, a relay) may still hold the runtime: do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        Cli::command_for_tests().debug_assert();
        let cli = Cli::try_parse_from([
            "paper-engine-orders",
            "deliveries",
            "--table",
            "orders",
            "--status",
            "error",
            "--limit",
            "5",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Deliveries {
                table,
                status,
                limit,
                ..
            }) => {
                assert_eq!(table.as_deref(), Some("orders"));
                assert_eq!(status, Some(DeliveryStatus::Error));
                assert_eq!(limit, 5);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["paper-engine-orders", "skip", "k"]).is_err());
        assert!(Cli::try_parse_from(["paper-engine-orders", "sample", "--scale", "-1"]).is_err());
    }

    impl Cli {
        fn command_for_tests() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
