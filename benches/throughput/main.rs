//! Throughput benchmark: the loader end to end (S3 -> Postgres, ledger included), run as the
//! real release binary in one-shot mode, against a hand-written `psql` reference on the same
//! Postgres, in one run.
//!
//! ```text
//! just bench [OPTIONS]
//! cargo bench --bench throughput -- [OPTIONS]   # the same; --help lists the options
//! ```
//!
//! Per scale it generates the sample dataset (`paper_engine_orders::sample`) into a moto S3
//! server it starts itself, then measures, in alternating rounds with a fresh database each
//! round:
//!
//! - **full load**: the `LOAD*` files of `orders` and `executions` into empty tables; the
//!   reference is `gunzip -c FILE | psql -c "\copy T FROM STDIN (FORMAT csv)"` into a table
//!   with the same DDL (primary key and indexes, no lineage columns);
//! - **CDC**: the CDC files of both tables applied to the loaded tables; the reference is the
//!   staged SQL upsert, one transaction per file: COPY into a temp table, `DISTINCT ON` the
//!   key by file position, `DELETE` the `D` keys, `INSERT ... ON CONFLICT DO UPDATE` the rest;
//! - the full load again with `PARALLELISM=2` against two concurrent `psql` streams;
//! - optionally (`--rss-check`) one big file, for the loader's peak RSS.
//!
//! After every loader run the loaded tables must equal the reference tables (`EXCEPT` both
//! ways, source columns only) or the benchmark fails. Figures go to `docs/benchmarks.md`
//! (between the `bench:begin`/`bench:end` markers; the rest of the file is kept) and a plot to
//! `docs/benchmarks.png` (drawn by `benches/plot.py` with matplotlib).
//!
//! The modules: `options` (the command line), `s3` (moto, the bucket, the dataset), `postgres`
//! (bench databases, table definitions, the correctness check), `reference` (the `psql`
//! references), `ctx` (the run context and loader runs), `scale` (one scale's measurements),
//! `full_load` and `cdc` (the two phases), `rss` (peak RSS), `report` (`docs/benchmarks.md`, the
//! JSON figures and the plot) and `util`.
//!
//! Two more sections, each on its own flag and with its own block of `docs/benchmarks.md`:
//! `--history` (`history`, with the counting S3 proxy `proxy`: idle service passes, new-file
//! latency and start-up listing as the delivered history grows) and `--small-files`
//! (`small_files`: many small change files, the loader against psql and Python loops);
//! `sections` renders their blocks. Given alone they skip the full-load and CDC phases.
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use tokio::runtime::Runtime;
use tokio_postgres::NoTls;

use ctx::Ctx;
use options::{repo_dir, Options, USAGE};
use report::{environment, render, results_json, write_report};
use rss::rss_check;
use s3::Moto;
use scale::bench_scale;
use util::{command_output, on_path};

/// The measured tables, in the order the references load them.
const TABLES: [&str; 2] = ["orders", "executions"];
/// The loader's schema in the bench database.
const SCHEMA: &str = "paper_engine";
/// The reference tables' schema, in the same database.
const REF: &str = "reference";
/// The lineage columns the loader adds (left out of the reference tables and comparisons).
const LINEAGE: [&str; 2] = ["_delivery_id", "_loaded_at"];

/// A progress line on stderr, with the time. Defined before the modules, which all use it.
macro_rules! say {
    ($($arg:tt)*) => {{
        eprintln!("[bench {}] {}", chrono::Local::now().format("%H:%M:%S"), format_args!($($arg)*));
    }};
}

mod cdc;
mod ctx;
mod events;
mod full_load;
mod history;
mod instances;
mod options;
mod postgres;
mod proxy;
mod reference;
mod report;
mod rss;
mod s3;
mod scale;
mod sections;
mod small_files;
mod util;

fn preflight(opts: &Options, rt: &Runtime) -> Result<()> {
    for (program, hint) in [
        (
            "psql",
            "install the Postgres client (apt-get install postgresql-client)",
        ),
        ("gunzip", "install gzip"),
        ("bash", "install bash"),
        (
            "moto_server",
            "install it with `pip install 'moto[server]'` (scripts/lib.sh does)",
        ),
    ] {
        ensure!(
            on_path(program).is_some(),
            "`{program}` is not on PATH: {hint}"
        );
    }
    ensure!(
        command_output("psql", &["--version"]).is_some(),
        "`psql --version` failed: is the Postgres client installed?"
    );
    let dsn = opts.admin_dsn.clone();
    rt.block_on(async {
        let connect = tokio_postgres::connect(&dsn, NoTls);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow!(
                "Postgres is not answering at `{dsn}` ({e}): start it (scripts/lib.sh \
                 ensure_services does) or pass --pg"
            )),
            Err(_) => Err(anyhow!("Postgres did not answer at `{dsn}` within 10 s")),
        }
    })?;
    if opts.plot.is_some() && (opts.full || opts.cdc || opts.rss_check.is_some()) {
        ensure!(
            Command::new("python3")
                .args(["-c", "import matplotlib"])
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false),
            "python3 with matplotlib is needed for the plot: `pip install matplotlib` \
             (or pass --no-report)"
        );
    }
    Ok(())
}

/// The loader binary: built with cargo unless given.
fn loader_binary(opts: &Options) -> Result<PathBuf> {
    if let Some(bin) = &opts.loader_bin {
        ensure!(
            bin.is_file(),
            "--loader-bin {} does not exist",
            bin.display()
        );
        return Ok(bin.clone());
    }
    // This bench runs from <target>/release/deps/: the loader is <target>/release/.
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("cannot locate the target directory from {}", exe.display()))?;
    let bin = release.join("paper-engine-orders");
    if opts.build {
        say!("building the loader: cargo build --release --bin paper-engine-orders");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = release
            .parent()
            .ok_or_else(|| anyhow!("no target directory above {}", release.display()))?;
        let status = Command::new(cargo)
            .args(["build", "--release", "--bin", "paper-engine-orders"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(repo_dir())
            .status()
            .context("cannot run cargo")?;
        ensure!(
            status.success(),
            "cargo build --release of the loader failed"
        );
    }
    ensure!(
        bin.is_file(),
        "{} does not exist: run cargo build --release --bin paper-engine-orders",
        bin.display()
    );
    Ok(bin)
}

fn run() -> Result<()> {
    let Some(opts) = Options::parse(std::env::args().skip(1).collect())? else {
        print!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    preflight(&opts, &rt)?;
    let loader = loader_binary(&opts)?;
    let work = loader
        .parent()
        .map(|p| p.join("bench"))
        .unwrap_or_else(|| std::env::temp_dir().join("peo-bench"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let moto = Moto::start(&work)?;
    say!(
        "moto_server at {}; work directory {}",
        moto.endpoint,
        work.display()
    );
    let ctx = Ctx {
        opts: opts.clone(),
        rt,
        loader,
        work: work.clone(),
        moto,
        runs: std::cell::Cell::new(0),
        noisy: std::cell::Cell::new(0),
    };
    let env = environment(&ctx)?;
    let load: f64 = env
        .load_before
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    if load > 0.5 {
        say!(
            "WARNING: load average {} before the run: something else is using the CPU; every \
             timed run waits for an idle machine (--wait-idle)",
            env.load_before
        );
    }
    let mut results = Vec::new();
    if opts.full || opts.cdc {
        for (i, scale) in opts.scales.iter().enumerate() {
            results.push(bench_scale(&ctx, i, *scale)?);
        }
    }
    let rss = match opts.rss_check {
        Some(rows) => Some(rss_check(&ctx, rows)?),
        None => None,
    };
    extra_sections(&ctx, &env)?;
    if !(opts.full || opts.cdc || rss.is_some()) {
        if !opts.keep {
            ctx.drop_db(&opts.db);
        }
        say!(
            "done in {:.1} minutes",
            started.elapsed().as_secs_f64() / 60.0
        );
        return Ok(());
    }
    if !opts.keep {
        ctx.drop_db(&opts.db);
    }
    let elapsed = started.elapsed();
    let json_path = work.join("results.json");
    fs::write(
        &json_path,
        serde_json::to_string_pretty(&results_json(&env, &results, rss.as_ref()))?,
    )?;
    let block = render(
        &opts,
        &env,
        &results,
        rss.as_ref(),
        elapsed,
        ctx.noisy.get(),
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{block}")?;
    if let Some(report) = &opts.report {
        write_report(report, &block)?;
        say!("wrote {}", report.display());
    }
    if let Some(plot) = opts.plot.as_ref().filter(|_| !results.is_empty()) {
        report::plot(&json_path, plot)?;
    }
    let misses: Vec<String> = results
        .iter()
        .flat_map(|r| {
            [("full load", &r.full), ("CDC", &r.cdc)]
                .into_iter()
                .filter(|(_, s)| s.measured() && s.ratio() < 1.5)
                .map(move |(p, s)| format!("scale {} {p} x{:.2}", r.scale, s.ratio()))
        })
        .collect();
    if !misses.is_empty() {
        say!(
            "below the issue's 1.5x target (reported, not a failure): {}",
            misses.join(", ")
        );
    }
    say!(
        "done in {:.1} minutes; raw figures in {}",
        elapsed.as_secs_f64() / 60.0,
        json_path.display()
    );
    Ok(())
}

/// `--history`, `--events`, `--small-files` and `--instances`: each measured, printed and written
/// to its own block.
fn extra_sections(ctx: &Ctx, env: &report::Environment) -> Result<()> {
    let opts = &ctx.opts;
    if let Some(ns) = &opts.history {
        let started = Instant::now();
        let window = Duration::from_secs(opts.history_window);
        let noisy = ctx.noisy.get();
        let points = history::bench_history(ctx, ns, window)?;
        let noisy = ctx.noisy.get() - noisy;
        let block = sections::render_history(opts, env, &points, started.elapsed(), noisy);
        println!("\n{block}");
        if let Some(report) = &opts.report {
            sections::write_block(report, sections::HISTORY_MARKS, &block)?;
            say!("wrote {}", report.display());
        }
    }
    if let Some(files) = opts.events {
        let started = Instant::now();
        let noisy = ctx.noisy.get();
        let result = events::bench_events(ctx, files)?;
        let noisy = ctx.noisy.get() - noisy;
        say!(
            "events: PUT to commit median {:.0} ms, p95 {:.0} ms; burst of {} events: {} passes",
            result.median_ms(),
            result.p95_ms(),
            result.burst_events,
            result.burst_passes
        );
        let block = sections::render_events(opts, env, &result, started.elapsed(), noisy);
        println!("\n{block}");
        if let Some(report) = &opts.report {
            sections::write_block(report, sections::EVENTS_MARKS, &block)?;
            say!("wrote {}", report.display());
        }
    }
    if let Some(max) = opts.instances {
        let started = Instant::now();
        let noisy = ctx.noisy.get();
        let result = instances::bench_instances(ctx, max)?;
        let noisy = ctx.noisy.get() - noisy;
        let block = sections::render_instances(opts, env, &result, started.elapsed(), noisy);
        println!("\n{block}");
        if let Some(report) = &opts.report {
            sections::write_block(report, sections::INSTANCES_MARKS, &block)?;
            say!("wrote {}", report.display());
        }
    }
    if let Some(files) = opts.small_files {
        let started = Instant::now();
        let noisy = ctx.noisy.get();
        let result = small_files::bench_small_files(ctx, files, opts.small_scale)?;
        let noisy = ctx.noisy.get() - noisy;
        let block = sections::render_small_files(opts, env, &result, started.elapsed(), noisy);
        println!("\n{block}");
        if let Some(report) = &opts.report {
            sections::write_block(report, sections::SMALL_MARKS, &block)?;
            say!("wrote {}", report.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[bench] FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}
