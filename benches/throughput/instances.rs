//! `--instances [MAX]`: scale-out across loader instances. One change-file backlog (all three
//! tables) is delivered by 1, 2, ... MAX one-shot loaders started together on one bucket and one
//! database, each run from a copy of the same fully loaded template. Each instance runs with
//! `PARALLELISM=1` (one stream at a time, as a small instance on a machine of its own would), so
//! the figure shows what adding instances adds. Every file is applied once whoever delivers it: a
//! table stream has one writer at a time (its lease), the others take the other streams or wait
//! for it. Reported: the time from the start until the ledger holds every file's SUCCESS row (the
//! loaders must then all exit 0), rows/s and the ratio to one instance; the final tables are
//! checked equal across the runs.
use std::process::Child;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::ctx::Ctx;
use crate::s3::{self, Kind, CDC, FULL};
use crate::util::{fmt_rate, median, tail};
use crate::SCHEMA;

/// One instance count's runs.
#[derive(Clone, Debug, Default)]
pub struct InstancesPoint {
    pub instances: usize,
    /// Wall seconds of each round.
    pub secs: Vec<f64>,
}

impl InstancesPoint {
    pub fn median_secs(&self) -> f64 {
        median(&self.secs)
    }
}

/// What `--instances` measured.
#[derive(Clone, Debug, Default)]
pub struct InstancesResult {
    pub files: usize,
    pub rows: u64,
    pub points: Vec<InstancesPoint>,
}

pub fn bench_instances(ctx: &Ctx, max: usize) -> Result<InstancesResult> {
    let o = &ctx.opts;
    let bucket = "peo-instances";
    let spec = paper_engine_orders::sample::SampleSpec {
        scale: 0.1,
        seed: 17,
        bucket_path: "data".into(),
        load_rows_per_file: 50_000,
        cdc_files: 60,
        cdc_rows_per_file: 2_000,
        keep_state: false,
    };
    let ds = s3::generate(ctx, spec, bucket, &ctx.work.join("instances"), |_, _, _| {
        true
    })?;
    let (files, rows) = (ds.count(Kind::Cdc), ds.rows(Kind::Cdc));
    let template = format!("{}_instances", o.db);
    let db = format!("{}_instances_run", o.db);
    say!("instances: loading the template database {template} (untimed)");
    ctx.fresh_db(&template, bucket)?;
    ctx.run_loader(&template, bucket, FULL, 2, "instances-template")?;
    ctx.pg().exec(&ctx.dsn(&template), "VACUUM ANALYZE")?;
    let mut result = InstancesResult {
        files,
        rows,
        points: Vec::new(),
    };
    let mut state: Option<Vec<i64>> = None;
    for instances in 1..=max {
        let mut point = InstancesPoint {
            instances,
            secs: Vec::new(),
        };
        for round in 0..o.rounds {
            ctx.reset_db(&db, Some(&template))?;
            ctx.checkpoint(&db)?;
            let mut loaders: Vec<(Child, std::path::PathBuf)> = Vec::new();
            let started = Instant::now();
            for i in 0..instances {
                let (mut cmd, log) = ctx.loader_command(
                    &db,
                    &ctx.source(bucket, CDC),
                    &format!("inst{instances}-{i}"),
                )?;
                cmd.env("RUN_AS_SERVICE", "false").env("PARALLELISM", "1");
                loaders.push((cmd.spawn()?, log));
            }
            let dsn = ctx.dsn(&db);
            let done_sql = format!(
                "SELECT count(*) FROM {SCHEMA}.loader_deliveries WHERE status = 'SUCCESS' \
                 AND object_key LIKE '{CDC}/%'"
            );
            let secs = loop {
                let done = ctx.pg().count(&dsn, &done_sql).unwrap_or(0);
                if done >= files as u64 {
                    break started.elapsed().as_secs_f64();
                }
                if started.elapsed().as_secs() > 600 {
                    bail!("{instances} instances: {done} of {files} files after 10 minutes");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            for (mut child, log) in loaders {
                let status = child.wait()?;
                if !status.success() {
                    bail!(
                        "a loader of {instances} failed ({status}); log {}:\n{}",
                        log.display(),
                        tail(&log, 15)
                    );
                }
            }
            let delivered = ctx.pg().count(&dsn, &done_sql)?;
            let ledger = ctx.pg().count(
                &dsn,
                &format!("SELECT count(*) FROM {SCHEMA}.loader_deliveries WHERE object_key LIKE '{CDC}/%'"),
            )?;
            if delivered != files as u64 || ledger != files as u64 {
                bail!("{instances} instances: {delivered} SUCCESS and {ledger} ledger rows for {files} files");
            }
            let mut counts = Vec::new();
            for table in paper_engine_orders::sample::TABLES {
                counts.push(
                    ctx.pg()
                        .count(&dsn, &format!("SELECT count(*) FROM {SCHEMA}.{table}"))?
                        as i64,
                );
            }
            match &state {
                None => state = Some(counts),
                Some(s) if *s != counts => {
                    bail!("{instances} instances ended with {counts:?} rows, one with {s:?}")
                }
                Some(_) => {}
            }
            say!(
                "instances: {instances}, round {}: {secs:.2}s ({}/s)",
                round + 1,
                fmt_rate(rows as f64 / secs)
            );
            point.secs.push(secs);
        }
        result.points.push(point);
    }
    if !o.keep {
        ctx.drop_db(&db);
        ctx.drop_db(&template);
    }
    Ok(result)
}
