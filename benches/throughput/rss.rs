//! Peak RSS: VmHWM of a running process, and the `--rss-check` with one big LOAD file.
use std::fs;

use anyhow::{anyhow, Result};
use paper_engine_orders::sample::SampleSpec;

use crate::ctx::Ctx;
use crate::postgres::TableDef;
use crate::s3::{generate, Kind, FULL};
use crate::scale::Series;
use crate::util::{fmt_rate, fmt_rows};

/// `/proc/<pid>/status` VmHWM in KiB, while the process is alive.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub struct RssResult {
    pub rows: u64,
    pub bytes: u64,
    pub scale: f64,
    pub series: Series,
}

/// One executions LOAD file of `rows` rows: the loader's peak RSS (and its rate, once).
pub fn rss_check(ctx: &Ctx, rows: usize) -> Result<RssResult> {
    // About 1.5M executions per unit of scale; a little more so the first file is full.
    let scale = (rows as f64 / 1_400_000.0 * 100.0).ceil() / 100.0;
    let spec = SampleSpec {
        scale,
        seed: 42,
        bucket_path: "data".into(),
        load_rows_per_file: rows,
        cdc_files: 0,
        cdc_rows_per_file: 1,
        keep_state: false,
    };
    say!("RSS check: generating one executions LOAD file of {rows} rows (scale {scale})");
    let dir = ctx.work.join("data-rss");
    let ds = generate(ctx, spec, "peo-bench-rss", &dir, |table, kind, n| {
        table == "executions" && kind == Kind::Load && n == 0
    })?;
    let file = ds
        .files
        .first()
        .ok_or_else(|| anyhow!("the RSS check file was not generated"))?
        .clone();
    say!(
        "RSS check: {} rows, {:.0} MiB gzip",
        fmt_rows(file.rows),
        file.bytes as f64 / 1048576.0
    );
    let db = ctx.opts.db.clone();
    let defs: Vec<TableDef> = ctx
        .fresh_db(&db, &ds.bucket)?
        .into_iter()
        .filter(|d| d.name == file.table)
        .collect();
    ctx.checkpoint(&db)?;
    let run = ctx.run_loader(&db, &ds.bucket, FULL, 1, "rss")?;
    say!(
        "RSS check: loader {:.1}s ({}/s), peak RSS {:.1} MiB",
        run.secs,
        fmt_rate(file.rows as f64 / run.secs),
        run.peak_rss_kib as f64 / 1024.0
    );
    ctx.checkpoint(&db)?;
    let secs = ctx.reference_full(&db, &ds, 1)?;
    say!(
        "RSS check: psql \\copy {secs:.1}s ({}/s)",
        fmt_rate(file.rows as f64 / secs)
    );
    ctx.check(&db, &defs, Some(file.rows), FULL, 1)?;
    if !ctx.opts.keep {
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(RssResult {
        rows: file.rows,
        bytes: file.bytes,
        scale,
        series: Series {
            rows: file.rows,
            loader: vec![run],
            reference: vec![secs],
        },
    })
}
