//! The CDC measurement: the change files against the loaded tables (a vacuumed template database
//! copied each round), the loader against the staged SQL upsert.
use anyhow::Result;

use crate::ctx::Ctx;
use crate::s3::{Dataset, Kind, CDC, FULL};
use crate::scale::{in_turn, Series};
use crate::util::fmt_rate;

/// The CDC rounds of one scale (none without `--phase cdc` or both); the template database is
/// dropped afterwards unless `--keep`. The loader reads `files` (the dataset as CSV, or as
/// Parquet: `format` says which), the reference `ds`'s CSV.
pub fn measure(
    ctx: &Ctx,
    scale: f64,
    ds: &Dataset,
    (files, format): (&Dataset, &str),
) -> Result<Series> {
    let o = &ctx.opts;
    let db = o.db.clone();
    let (full_rows, n_full) = (ds.rows(Kind::Load), ds.count(Kind::Load));
    let (cdc_rows, n_cdc) = (ds.rows(Kind::Cdc), ds.count(Kind::Cdc));
    // (b) CDC against the loaded tables: a template database holds both loaded (untimed) and
    // vacuumed; every round starts from a copy of it.
    let template = format!("{db}_loaded");
    let mut cdc = Series {
        rows: cdc_rows,
        ..Series::default()
    };
    let mut defs = Vec::new();
    if o.cdc {
        say!(
            "scale {scale}: loading the template database {template} for the CDC rounds (untimed)"
        );
        defs = ctx.fresh_db(&template, &ds.bucket)?;
        ctx.run_loader(&template, &files.bucket, FULL, 2, "template")?;
        ctx.reference_full(&template, ds, 2)?;
        ctx.check(&template, &defs, Some(full_rows), FULL, n_full)?;
        ctx.pg().exec(&ctx.dsn(&template), "VACUUM ANALYZE")?;
    }
    for round in 0..if o.cdc { o.rounds } else { 0 } {
        ctx.reset_db(&db, Some(&template))?;
        let mut run_loader = || -> Result<()> {
            ctx.checkpoint(&db)?;
            let run = ctx.run_loader(&db, &files.bucket, CDC, o.cdc_streams, "cdc")?;
            say!(
                "scale {scale} CDC, round {}: loader on {format} {:.2}s ({}/s, peak RSS {:.1} MiB)",
                round + 1,
                run.secs,
                fmt_rate(cdc_rows as f64 / run.secs),
                run.peak_rss_kib as f64 / 1024.0
            );
            cdc.loader.push(run);
            Ok(())
        };
        let mut secs = 0.0;
        let mut run_reference = || -> Result<()> {
            ctx.checkpoint(&db)?;
            secs = ctx.reference_cdc(&db, ds, &defs, o.cdc_streams)?;
            say!(
                "scale {scale} CDC, round {}: staged SQL upsert {secs:.2}s ({}/s)",
                round + 1,
                fmt_rate(cdc_rows as f64 / secs)
            );
            Ok(())
        };
        in_turn(round, &mut run_loader, &mut run_reference)?;
        cdc.reference.push(secs);
        ctx.check(&db, &defs, None, CDC, n_cdc)?;
    }
    if cdc.measured() {
        say!("scale {scale} CDC ({format}): {}", cdc.summary());
    }
    if !o.keep {
        ctx.drop_db(&template);
    }
    Ok(cdc)
}
