//! `--small-files`: many small change files after a small full load; the per-file overhead of
//! the loader (one-shot, default `PARALLELISM`) against two loops a user would write: `psql`
//! with the staged SQL upsert per file (the CDC reference of `reference`), and Python with
//! boto3 + psycopg 3 (`small_files.py`, run in a venv under the work directory, psycopg
//! installed there if missing).
//!
//! The sample generator makes the files: `--small-scale` for the full load, ceil(files / 3) CDC
//! batches of ~40 rows per table (`strategies` files stay smaller). A template database holds the
//! loaded tables and two reference copies (`reference.*` for psql, `reference_py.*` for Python);
//! every round starts from a copy of it, runs the three (order rotated per round), and checks
//! both references against the loader's tables.
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, bail, ensure, Context, Result};
use paper_engine_orders::sample::{SampleSpec, TABLES as ALL_TABLES};
use serde_json::json;

use crate::ctx::{Ctx, LoaderRun};
use crate::postgres::TableDef;
use crate::s3::{generate, Dataset, Kind, CDC, FULL, NOTHING};
use crate::util::{median, quote};
use crate::{REF, SCHEMA};

/// The Python reference's schema.
const PY: &str = "reference_py";

#[derive(Clone, Debug, Default)]
pub struct SmallFilesResult {
    pub scale: f64,
    pub full_rows: u64,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub loader: Vec<LoaderRun>,
    pub psql: Vec<f64>,
    /// None: the Python reference could not run (the reason).
    pub python: Vec<f64>,
    pub python_skipped: Option<String>,
}

impl SmallFilesResult {
    pub fn loader_secs(&self) -> f64 {
        median(&self.loader.iter().map(|r| r.secs).collect::<Vec<_>>())
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.loader
            .iter()
            .map(|r| r.peak_rss_kib)
            .max()
            .unwrap_or(0)
    }

    /// (files/s, ms per file) of a time.
    pub fn rate(&self, secs: f64) -> (f64, f64) {
        (self.files as f64 / secs, secs * 1000.0 / self.files as f64)
    }
}

/// A Python with boto3 and psycopg: the system one, or a venv under the work directory.
fn python(ctx: &Ctx) -> Result<PathBuf> {
    let ok = |py: &str| {
        Command::new(py)
            .args(["-c", "import boto3, psycopg"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if ok("python3") {
        return Ok(PathBuf::from("python3"));
    }
    let venv = ctx.work.join("venv");
    let py = venv.join("bin/python");
    if !py.is_file() {
        say!(
            "small files: creating a venv for boto3 + psycopg in {}",
            venv.display()
        );
        let status = Command::new("python3")
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&venv)
            .status()?;
        ensure!(status.success(), "python3 -m venv failed");
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "boto3",
                "psycopg[binary]",
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "pip install boto3 psycopg[binary] failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ensure!(
        ok(py.to_str().unwrap_or_default()),
        "the venv lacks boto3 or psycopg"
    );
    Ok(py)
}

/// The template database: migrations, the full load (untimed), the two reference copies.
fn template(ctx: &Ctx, db: &str, ds: &Dataset) -> Result<Vec<TableDef>> {
    ctx.reset_db(db, None)?;
    ctx.run_loader(db, &ds.bucket, NOTHING, 1, "small-migrate")?;
    ctx.run_loader(db, &ds.bucket, FULL, 2, "small-full")?;
    let dsn = ctx.dsn(db);
    let pg = ctx.pg();
    let defs = ALL_TABLES
        .iter()
        .map(|t| TableDef::read(&pg, &dsn, t))
        .collect::<Result<Vec<_>>>()?;
    let mut sql = format!("CREATE SCHEMA {REF};\nCREATE SCHEMA {PY};\n");
    for def in &defs {
        let (t, cols) = (quote(&def.name), def.column_list());
        sql.push_str(&def.reference_ddl());
        let _ = writeln!(
            sql,
            "INSERT INTO {REF}.{t} ({cols}) SELECT {cols} FROM {SCHEMA}.{t};\n\
             CREATE TABLE {PY}.{t} (LIKE {REF}.{t} INCLUDING ALL) \
             WITH (autovacuum_enabled = off);\n\
             INSERT INTO {PY}.{t} SELECT * FROM {REF}.{t};\n\
             ALTER TABLE {SCHEMA}.{t} SET (autovacuum_enabled = off);"
        );
    }
    pg.exec(&dsn, &sql)?;
    pg.exec(&dsn, "VACUUM ANALYZE")?;
    Ok(defs)
}

/// The Python reference's job file: per table, its three statements and its keys in order.
fn python_job(ctx: &Ctx, db: &str, ds: &Dataset, defs: &[TableDef]) -> Result<PathBuf> {
    let tables = defs
        .iter()
        .map(|def| {
            let script = def
                .reference_cdc_script()
                .replace(&format!("{REF}.\""), &format!("{PY}.\""))
                .replace("\\copy stage", "COPY stage")
                .replace("FROM pstdin", "FROM STDIN");
            let lines: Vec<&str> = script.lines().collect();
            ensure!(lines.len() > 2, "unexpected reference script:\n{script}");
            Ok(json!({
                "sql": [lines[0], lines[1], lines[2..].join("\n")],
                "keys": ds.files(Kind::Cdc, &def.name).iter().map(|f| f.key.clone())
                    .collect::<Vec<_>>(),
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let job = json!({
        "endpoint": ctx.moto.endpoint,
        "key_id": "bench",
        "secret": "bench-secret-key",
        "bucket": ds.bucket,
        "prefix": format!("{CDC}/"),
        "dsn": ctx.dsn(db),
        "tables": tables,
    });
    let path = ctx.work.join("small-files-python.json");
    fs::write(&path, serde_json::to_string_pretty(&job)?)?;
    Ok(path)
}

/// `reference_py.*` equals the loader's tables (source columns, `EXCEPT` both ways).
fn check_python(ctx: &Ctx, db: &str, defs: &[TableDef]) -> Result<()> {
    let dsn = ctx.dsn(db);
    for def in defs {
        let (t, cols) = (quote(&def.name), def.column_list());
        let differ = ctx.pg().count(
            &dsn,
            &format!(
                "SELECT count(*) FROM ((SELECT {cols} FROM {PY}.{t} EXCEPT SELECT {cols} FROM \
                 {SCHEMA}.{t}) UNION ALL (SELECT {cols} FROM {SCHEMA}.{t} EXCEPT SELECT {cols} \
                 FROM {PY}.{t})) x"
            ),
        )?;
        ensure!(
            differ == 0,
            "CORRECTNESS: {PY}.{} differs from {SCHEMA}.{} in {differ} rows",
            def.name,
            def.name
        );
    }
    Ok(())
}

pub fn bench_small_files(ctx: &Ctx, files: usize, scale: f64) -> Result<SmallFilesResult> {
    let o = &ctx.opts;
    let batches = files.div_ceil(3).max(1);
    let spec = SampleSpec {
        scale,
        seed: 42,
        bucket_path: "data".into(),
        load_rows_per_file: o.load_rows_per_file,
        cdc_files: batches,
        cdc_rows_per_file: 40,
        keep_state: false,
    };
    say!("small files: generating scale {scale} with {batches} CDC batches of ~40 rows per table");
    let dir = ctx.work.join("data-small");
    let ds = generate(ctx, spec, "peo-bench-small", &dir, |_, _, _| true)?;
    let mut r = SmallFilesResult {
        scale,
        full_rows: ds.rows(Kind::Load),
        files: ds.count(Kind::Cdc),
        rows: ds.rows(Kind::Cdc),
        bytes: ds.bytes(Kind::Cdc),
        ..SmallFilesResult::default()
    };
    say!(
        "small files: {} LOAD rows; {} change files, {} rows, {:.1} KiB",
        r.full_rows,
        r.files,
        r.rows,
        r.bytes as f64 / 1024.0
    );
    let db = o.db.clone();
    let tpl = format!("{db}_small");
    let defs = template(ctx, &tpl, &ds)?;
    let py = match python(ctx) {
        Ok(py) => Some(py),
        Err(e) => {
            say!("small files: WARNING: no Python reference: {e:#}");
            r.python_skipped = Some(format!("{e:#}"));
            None
        }
    };
    let job = python_job(ctx, &db, &ds, &defs)?;
    for round in 0..o.rounds {
        ctx.reset_db(&db, Some(&tpl))?;
        for step in 0..3 {
            ctx.checkpoint(&db)?;
            match (round + step) % 3 {
                0 => {
                    let (mut cmd, log) =
                        ctx.loader_command(&db, &ctx.source(&ds.bucket, CDC), "small")?;
                    cmd.env("RUN_AS_SERVICE", "false");
                    let run = ctx.run_one_shot(cmd, &log, "the small files")?;
                    say!(
                        "small files, round {}: loader {:.2}s ({:.2} ms/file), peak RSS {:.1} MiB",
                        round + 1,
                        run.secs,
                        r.rate(run.secs).1,
                        run.peak_rss_kib as f64 / 1024.0
                    );
                    r.loader.push(run);
                }
                1 => {
                    let secs = ctx.reference_cdc(&db, &ds, &defs, 1)?;
                    say!(
                        "small files, round {}: psql loop {secs:.2}s ({:.2} ms/file)",
                        round + 1,
                        r.rate(secs).1
                    );
                    r.psql.push(secs);
                }
                _ => {
                    let Some(py) = &py else { continue };
                    let out = Command::new(py)
                        .arg(crate::options::repo_dir().join("benches/throughput/small_files.py"))
                        .arg(&job)
                        .output()
                        .context("cannot run small_files.py")?;
                    if !out.status.success() {
                        bail!(
                            "small_files.py failed: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    let secs: f64 = String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .parse()
                        .map_err(|_| anyhow!("small_files.py printed no time"))?;
                    say!(
                        "small files, round {}: Python loop {secs:.2}s ({:.2} ms/file)",
                        round + 1,
                        r.rate(secs).1
                    );
                    r.python.push(secs);
                }
            }
        }
        ctx.check(&db, &defs, None, CDC, r.files)?;
        if py.is_some() {
            check_python(ctx, &db, &defs)?;
        }
    }
    if !o.keep {
        ctx.drop_db(&tpl);
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(r)
}
