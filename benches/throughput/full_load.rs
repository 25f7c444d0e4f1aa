//! The full-load measurement: the LOAD files into empty tables, the loader at `PARALLELISM=1`
//! (and 2) against `psql \copy` with one stream (and two).
use anyhow::Result;

use crate::ctx::Ctx;
use crate::s3::{Dataset, Kind, FULL};
use crate::scale::{in_turn, Series};
use crate::util::fmt_rate;

/// The full-load rounds of one scale: the series at one stream, and at two unless
/// `--no-parallel` or `!parallel` (none without `--phase full` or both). The loader reads
/// `files` (the dataset as CSV, or as Parquet: `format` says which), the reference `ds`'s CSV.
pub fn measure(
    ctx: &Ctx,
    scale: f64,
    ds: &Dataset,
    (files, format): (&Dataset, &str),
    parallel: bool,
) -> Result<(Series, Option<Series>)> {
    let o = &ctx.opts;
    let db = o.db.clone();
    let full_rows = ds.rows(Kind::Load);
    let n_full = ds.count(Kind::Load);
    // (a) Full load, one stream each.
    let mut full = Series {
        rows: full_rows,
        ..Series::default()
    };
    let mut full_p2 = (parallel && o.parallel && o.full).then(|| Series {
        rows: full_rows,
        ..Series::default()
    });
    for round in 0..if o.full { o.rounds } else { 0 } {
        for (streams, series) in [(1usize, Some(&mut full)), (2, full_p2.as_mut())] {
            let Some(series) = series else { continue };
            let defs = ctx.fresh_db(&db, &ds.bucket)?;
            let mut run_loader = || -> Result<()> {
                ctx.checkpoint(&db)?;
                let run = ctx.run_loader(&db, &files.bucket, FULL, streams, "full")?;
                say!(
                    "scale {scale} full load, {streams} stream(s), round {}: loader on {format} \
                     {:.2}s ({}/s, peak RSS {:.1} MiB)",
                    round + 1,
                    run.secs,
                    fmt_rate(full_rows as f64 / run.secs),
                    run.peak_rss_kib as f64 / 1024.0
                );
                series.loader.push(run);
                Ok(())
            };
            let mut secs = 0.0;
            let mut run_reference = || -> Result<()> {
                ctx.checkpoint(&db)?;
                secs = ctx.reference_full(&db, ds, streams)?;
                say!(
                    "scale {scale} full load, {streams} stream(s), round {}: psql \\copy \
                     {secs:.2}s ({}/s)",
                    round + 1,
                    fmt_rate(full_rows as f64 / secs)
                );
                Ok(())
            };
            in_turn(round, &mut run_loader, &mut run_reference)?;
            series.reference.push(secs);
            ctx.check(&db, &defs, Some(full_rows), FULL, n_full)?;
        }
    }
    if full.measured() {
        say!(
            "scale {scale} full load (1 stream, {format}): {}",
            full.summary()
        );
    }
    if let Some(p2) = &full_p2 {
        say!("scale {scale} full load (2 streams): {}", p2.summary());
    }
    Ok((full, full_p2))
}
