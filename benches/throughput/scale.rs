//! One scale: its dataset generated and uploaded, the full-load and CDC measurements, and what
//! they share (a measurement over the rounds, the alternating round order).
use std::fs;

use anyhow::Result;
use paper_engine_orders::sample::SampleSpec;
use serde_json::{json, Value};

use crate::ctx::{Ctx, LoaderRun};
use crate::s3::{generate, generate_in, Kind};
use crate::util::{fmt_rate, fmt_rows, median};
use crate::{cdc, full_load, TABLES};

/// One measurement over the rounds.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub rows: u64,
    pub loader: Vec<LoaderRun>,
    pub reference: Vec<f64>,
}

impl Series {
    pub fn loader_rate(&self) -> f64 {
        median(
            &self
                .loader
                .iter()
                .map(|r| self.rows as f64 / r.secs)
                .collect::<Vec<_>>(),
        )
    }

    pub fn reference_rate(&self) -> f64 {
        median(
            &self
                .reference
                .iter()
                .map(|s| self.rows as f64 / s)
                .collect::<Vec<_>>(),
        )
    }

    pub fn ratio(&self) -> f64 {
        self.loader_rate() / self.reference_rate()
    }

    /// Whether this measurement ran (see --phase).
    pub fn measured(&self) -> bool {
        !self.loader.is_empty()
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.loader
            .iter()
            .map(|r| r.peak_rss_kib)
            .max()
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rows": self.rows,
            "loader_secs": self.loader.iter().map(|r| r.secs).collect::<Vec<_>>(),
            "loader_delivery_secs": self.loader.iter().map(|r| r.delivery_secs).collect::<Vec<_>>(),
            "loader_deliveries": self.loader.iter().map(|r| r.deliveries).collect::<Vec<_>>(),
            "loader_peak_rss_kib": self.loader.iter().map(|r| r.peak_rss_kib).collect::<Vec<_>>(),
            "reference_secs": self.reference,
            "loader_rows_per_sec": self.loader_rate(),
            "reference_rows_per_sec": self.reference_rate(),
            "ratio": self.ratio(),
        })
    }

    pub fn summary(&self) -> String {
        format!(
            "loader {}/s vs reference {}/s: x{:.2}, loader peak RSS {:.1} MiB",
            fmt_rate(self.loader_rate()),
            fmt_rate(self.reference_rate()),
            self.ratio(),
            self.peak_rss_kib() as f64 / 1024.0
        )
    }
}

pub struct ScaleResult {
    pub scale: f64,
    pub spec: SampleSpec,
    pub full_files: usize,
    pub full_bytes: u64,
    pub cdc_files: usize,
    pub cdc_bytes: u64,
    pub full: Series,
    pub full_p2: Option<Series>,
    pub cdc: Series,
    /// The same dataset as Parquet files (`DataFormat=parquet`), unless `--no-parquet`: the
    /// loader's full load and CDC against the same psql references; the files' bytes.
    pub parquet: Option<(Series, Series, u64, u64)>,
}

pub fn bench_scale(ctx: &Ctx, index: usize, scale: f64) -> Result<ScaleResult> {
    let o = &ctx.opts;
    let spec = SampleSpec {
        scale,
        seed: 42,
        bucket_path: "data".into(),
        load_rows_per_file: o.load_rows_per_file,
        cdc_files: o.cdc_files,
        cdc_rows_per_file: o.cdc_rows(scale),
        keep_state: false,
    };
    say!(
        "scale {scale}: generating the dataset (LOAD files of {} rows, {} CDC files of ~{} rows \
         per table)",
        spec.load_rows_per_file,
        spec.cdc_files,
        spec.cdc_rows_per_file
    );
    let dir = ctx.work.join(format!("data-{scale}"));
    let ds = generate(
        ctx,
        spec.clone(),
        &format!("peo-bench-{index}"),
        &dir,
        |table, _, _| TABLES.contains(&table),
    )?;
    let full_rows = ds.rows(Kind::Load);
    let cdc_rows = ds.rows(Kind::Cdc);
    let n_full = ds.count(Kind::Load);
    let n_cdc = ds.count(Kind::Cdc);
    say!(
        "scale {scale}: {n_full} LOAD files ({} rows), {n_cdc} CDC files ({} rows) in s3://{}",
        fmt_rows(full_rows),
        fmt_rows(cdc_rows),
        ds.bucket
    );
    let (full, full_p2) = full_load::measure(ctx, scale, &ds, (&ds, "csv"), true)?;
    let cdc = cdc::measure(ctx, scale, &ds, (&ds, "csv"))?;
    let parquet = if o.parquet && (o.full || o.cdc) {
        say!("scale {scale}: generating the same dataset as Parquet files");
        let pq_dir = ctx.work.join(format!("data-{scale}-parquet"));
        let dialect = paper_engine_orders::sample::FileDialect {
            parquet: true,
            ..Default::default()
        };
        let pq = generate_in(
            ctx,
            spec.clone(),
            &dialect,
            &format!("peo-bench-{index}-parquet"),
            &pq_dir,
            |table, _, _| TABLES.contains(&table),
        )?;
        anyhow::ensure!(
            pq.rows(Kind::Load) == full_rows && pq.rows(Kind::Cdc) == cdc_rows,
            "the Parquet dataset has other rows than the CSV one"
        );
        let (pq_full, _) = full_load::measure(ctx, scale, &ds, (&pq, "parquet"), false)?;
        let pq_cdc = cdc::measure(ctx, scale, &ds, (&pq, "parquet"))?;
        if !o.keep {
            let _ = fs::remove_dir_all(&pq_dir);
        }
        Some((pq_full, pq_cdc, pq.bytes(Kind::Load), pq.bytes(Kind::Cdc)))
    } else {
        None
    };
    if !o.keep {
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(ScaleResult {
        scale,
        spec,
        full_files: n_full,
        full_bytes: ds.bytes(Kind::Load),
        cdc_files: n_cdc,
        cdc_bytes: ds.bytes(Kind::Cdc),
        full,
        full_p2,
        cdc,
        parquet,
    })
}

/// Runs the loader and the reference of one round, the loader first in even rounds and the
/// reference first in odd ones, so neither always meets the other's after-effects.
pub fn in_turn(
    round: usize,
    loader: &mut impl FnMut() -> Result<()>,
    reference: &mut impl FnMut() -> Result<()>,
) -> Result<()> {
    if round.is_multiple_of(2) {
        loader()?;
        reference()
    } else {
        reference()?;
        loader()
    }
}
