//! The command line: `--help` text and options.
use std::path::PathBuf;

use anyhow::{anyhow, bail, ensure, Result};

pub const USAGE: &str = "\
Usage: just bench [OPTIONS]   (= cargo bench --bench throughput -- [OPTIONS])

Builds the release loader (cargo build --release --bin paper-engine-orders), starts moto_server,
and measures the loader against psql on the same Postgres; fails on any correctness mismatch.

  --scale X                 dataset scale (default 1: 160k orders, 1.5M executions)
  --scales A,B,...          several scales in one run (e.g. 0.25,0.5,1)
  --rounds N                rounds per measurement, alternating loader/reference (default 3)
  --load-rows-per-file N    rows per LOAD file (default 500000)
  --cdc-files N             CDC files per table (default 2)
  --cdc-rows N              rows per CDC file (default max(50000, 300000 x scale))
  --no-parallel             skip the PARALLELISM=1 vs 2 full-load measurement
  --no-parquet              skip the same full load and CDC as Parquet files (DataFormat=parquet;
                            the reference is still psql on the CSV files)
  --cdc-streams N           CDC phase with the loader at PARALLELISM=N and N concurrent psql
                            streams (default 1)
  --phase full|cdc|none     measure only the full load, only the CDC phase, or neither (with
                            --rss-check: only the RSS check); default both
  --rss-check [ROWS]        also load one executions LOAD file of ROWS rows (default 5000000)
                            and report the loader's peak RSS (about a minute more)
  --loader-bin PATH         loader binary (default: target/release/paper-engine-orders, built
                            first with cargo build --release --bin paper-engine-orders)
  --no-build                do not run cargo build first
  --report PATH             markdown report (default docs/benchmarks.md)
  --plot PATH               PNG plot (default docs/benchmarks.png)
  --no-report               write neither (figures are printed and saved as JSON anyway)
  --pg DSN                  admin connection (default $PEO_BENCH_PG or
                            host=127.0.0.1 port=5432 user=postgres dbname=test)
  --db NAME                 the bench database, dropped and re-created (default peo_bench)
  --log-level LEVEL         the loader's LOG_LEVEL (default info)
  --wait-idle SECS          before every timed run, wait up to SECS for the machine to be idle
                            (under 15% CPU busy over 1 s); 0 = do not wait (default 60)
  --keep                    keep the generated files and the databases

Extra sections (each writes its own block of docs/benchmarks.md; given alone, the full-load and
CDC measurements are skipped unless --phase asks for them):
  --history [N,N,...]       history scaling: idle service passes, PUT-to-commit latency and
                            start-up listing with N files already delivered (default
                            0,10000,50000); see benches/throughput/history.rs
  --history-window SECS     idle passes measured over SECS seconds (default 30)
  --small-files [FILES]     FILES small change files (default 2000) after a small full load:
                            the loader one-shot against psql and Python (boto3 + psycopg) loops
  --small-scale X           the small-files full load's scale (default 0.02)
  --instances [MAX]         scale-out: one change-file backlog delivered by 1..MAX one-shot
                            loaders started together on one bucket and database (default 3);
                            see benches/throughput/instances.rs
  --events [FILES]          event-driven loading: PUT-to-commit of FILES new files (default 20)
                            with bucket events on NATS (the loop sleeps 60 s), and a burst of
                            100 events; see benches/throughput/events.rs
";

#[derive(Clone, Debug)]
pub struct Options {
    pub scales: Vec<f64>,
    pub rounds: usize,
    pub load_rows_per_file: usize,
    pub cdc_files: usize,
    pub cdc_rows: Option<usize>,
    pub parallel: bool,
    /// The full load and CDC again from the dataset as Parquet files.
    pub parquet: bool,
    pub full: bool,
    pub cdc: bool,
    pub cdc_streams: usize,
    pub rss_check: Option<usize>,
    pub loader_bin: Option<PathBuf>,
    pub build: bool,
    pub report: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub admin_dsn: String,
    pub db: String,
    pub log_level: String,
    pub wait_idle: u64,
    pub keep: bool,
    pub history: Option<Vec<usize>>,
    pub history_window: u64,
    pub small_files: Option<usize>,
    /// `--events [FILES]`: event-driven loading (PUT to commit with bucket events).
    pub events: Option<usize>,
    /// `--instances [MAX]`: 1..MAX loader instances on one backlog.
    pub instances: Option<usize>,
    pub small_scale: f64,
    pub args: Vec<String>,
}

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Options {
    pub fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let mut o = Options {
            scales: vec![1.0],
            rounds: 3,
            load_rows_per_file: 500_000,
            cdc_files: 2,
            cdc_rows: None,
            parallel: true,
            parquet: true,
            full: true,
            cdc: true,
            cdc_streams: 1,
            rss_check: None,
            loader_bin: None,
            build: true,
            report: Some(repo_dir().join("docs/benchmarks.md")),
            plot: Some(repo_dir().join("docs/benchmarks.png")),
            admin_dsn: std::env::var("PEO_BENCH_PG")
                .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into()),
            db: "peo_bench".into(),
            log_level: "info".into(),
            wait_idle: 60,
            keep: false,
            history: None,
            history_window: 30,
            small_files: None,
            events: None,
            instances: None,
            small_scale: 0.02,
            args: Vec::new(),
        };
        // `cargo bench` passes `--bench` to every bench target.
        let args: Vec<String> = args.into_iter().filter(|a| a != "--bench").collect();
        o.args = args.clone();
        let mut it = args.into_iter().peekable();
        let mut phase = false;
        fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T> {
            let v = v.ok_or_else(|| anyhow!("{flag} needs a value"))?;
            v.replace('_', "")
                .parse()
                .map_err(|_| anyhow!("{flag}: `{v}` is not a valid number"))
        }
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--scale" | "--scales" => {
                    let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
                    o.scales = v
                        .split(',')
                        .map(|s| {
                            s.trim()
                                .parse::<f64>()
                                .ok()
                                .filter(|x| *x > 0.0 && x.is_finite())
                                .ok_or_else(|| anyhow!("{flag}: `{s}` is not a positive number"))
                        })
                        .collect::<Result<_>>()?;
                }
                "--rounds" => o.rounds = number(&flag, it.next())?,
                "--load-rows-per-file" => o.load_rows_per_file = number(&flag, it.next())?,
                "--cdc-files" => o.cdc_files = number(&flag, it.next())?,
                "--cdc-rows" => o.cdc_rows = Some(number(&flag, it.next())?),
                "--no-parallel" => o.parallel = false,
                "--no-parquet" => o.parquet = false,
                "--cdc-streams" => o.cdc_streams = number(&flag, it.next())?,
                "--phase" => match it.next().as_deref().inspect(|_| phase = true) {
                    Some("full") => o.cdc = false,
                    Some("cdc") => o.full = false,
                    Some("none") => (o.full, o.cdc) = (false, false),
                    Some("all") => {}
                    other => bail!("--phase: expected full, cdc, none or all, got {other:?}"),
                },
                "--rss-check" => {
                    let rows = match it.peek() {
                        Some(v) if v.replace('_', "").parse::<usize>().is_ok() => {
                            number(&flag, it.next())?
                        }
                        _ => 5_000_000,
                    };
                    o.rss_check = Some(rows);
                }
                "--loader-bin" => {
                    o.loader_bin = Some(PathBuf::from(
                        it.next().ok_or_else(|| anyhow!("{flag} needs a path"))?,
                    ))
                }
                "--no-build" => o.build = false,
                "--report" => {
                    o.report = Some(PathBuf::from(
                        it.next().ok_or_else(|| anyhow!("{flag} needs a path"))?,
                    ))
                }
                "--plot" => {
                    o.plot = Some(PathBuf::from(
                        it.next().ok_or_else(|| anyhow!("{flag} needs a path"))?,
                    ))
                }
                "--no-report" => {
                    o.report = None;
                    o.plot = None;
                }
                "--pg" => o.admin_dsn = it.next().ok_or_else(|| anyhow!("{flag} needs a DSN"))?,
                "--db" => o.db = it.next().ok_or_else(|| anyhow!("{flag} needs a name"))?,
                "--log-level" => {
                    o.log_level = it.next().ok_or_else(|| anyhow!("{flag} needs a level"))?
                }
                "--wait-idle" => o.wait_idle = number(&flag, it.next())?,
                "--keep" => o.keep = true,
                "--history" => {
                    let list = match it.peek() {
                        Some(v) if !v.starts_with("--") => it.next(),
                        _ => None,
                    };
                    o.history = Some(match list {
                        Some(v) => v
                            .split(',')
                            .map(|n| number(&flag, Some(n.trim().to_string())))
                            .collect::<Result<_>>()?,
                        None => vec![0, 10_000, 50_000],
                    });
                }
                "--history-window" => o.history_window = number(&flag, it.next())?,
                "--small-files" => {
                    let files = match it.peek() {
                        Some(v) if v.replace('_', "").parse::<usize>().is_ok() => {
                            number(&flag, it.next())?
                        }
                        _ => 2000,
                    };
                    o.small_files = Some(files);
                }
                "--events" => {
                    let files = match it.peek() {
                        Some(v) if v.parse::<usize>().is_ok() => number(&flag, it.next())?,
                        _ => 20,
                    };
                    o.events = Some(files.max(1));
                }
                "--instances" => {
                    let max = match it.peek() {
                        Some(v) if v.parse::<usize>().is_ok() => number(&flag, it.next())?,
                        _ => 3,
                    };
                    o.instances = Some(max.max(1));
                }
                "--small-scale" => o.small_scale = number(&flag, it.next())?,
                other => bail!("unknown option `{other}`"),
            }
        }
        let extra = o.history.is_some()
            || o.small_files.is_some()
            || o.events.is_some()
            || o.instances.is_some();
        if extra && !phase {
            (o.full, o.cdc) = (false, false);
        }
        ensure!(o.rounds >= 1, "--rounds must be at least 1");
        ensure!(
            o.history_window >= 5,
            "--history-window must be at least 5 seconds"
        );
        ensure!(o.cdc_streams >= 1, "--cdc-streams must be at least 1");
        ensure!(
            o.load_rows_per_file >= 1,
            "--load-rows-per-file must be at least 1"
        );
        ensure!(
            o.db.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "--db: use lower-case letters, digits and _"
        );
        Ok(Some(o))
    }

    pub fn cdc_rows(&self, scale: f64) -> usize {
        self.cdc_rows
            .unwrap_or_else(|| ((300_000.0 * scale).round() as usize).max(50_000))
    }
}
