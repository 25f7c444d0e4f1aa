//! The hand-written `psql` references the loader is measured against: `\copy` for the full load,
//! the staged SQL upsert for CDC, run as shell pipelines in one or more streams.
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::ctx::Ctx;
use crate::postgres::TableDef;
use crate::s3::{Dataset, Kind};
use crate::util::quote;
use crate::{REF, TABLES};

impl TableDef {
    /// The reference table: the migration's DDL without the lineage columns.
    pub fn reference_ddl(&self) -> String {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|(c, ty, not_null)| {
                format!(
                    "{} {ty}{}",
                    quote(c),
                    if *not_null { " NOT NULL" } else { "" }
                )
            })
            .collect();
        cols.push(format!("PRIMARY KEY ({})", self.key_list()));
        let mut sql = format!(
            "CREATE TABLE {REF}.{} ({}) WITH (autovacuum_enabled = off);\n",
            quote(&self.name),
            cols.join(", ")
        );
        for index in &self.indexes {
            sql.push_str(index);
            sql.push_str(";\n");
        }
        sql
    }

    /// The hand-written staged upsert of one CDC file, for `psql -1 -f` with the decompressed
    /// file on stdin (`\copy ... FROM pstdin`).
    pub fn reference_cdc_script(&self) -> String {
        let cols = self.column_list();
        let keys = self.key_list();
        let stage_cols = self
            .columns
            .iter()
            .map(|(c, ty, _)| format!("{} {ty}", quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let join = self
            .key
            .iter()
            .map(|k| format!("t.{k} = l.{k}", k = quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let set = self
            .columns
            .iter()
            .filter(|(c, _, _)| !self.key.contains(c))
            .map(|(c, _, _)| format!("{c} = EXCLUDED.{c}", c = quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let table = format!("{REF}.{}", quote(&self.name));
        format!(
            "CREATE TEMP TABLE stage (op text, {stage_cols}, \
             seq bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DROP;\n\
             \\copy stage (op, {cols}) FROM pstdin (FORMAT csv)\n\
             WITH last AS (SELECT DISTINCT ON ({keys}) * FROM stage ORDER BY {keys}, seq DESC),\n\
             \x20    removed AS (DELETE FROM {table} t USING last l WHERE l.op = 'D' AND {join})\n\
             INSERT INTO {table} ({cols}) SELECT {cols} FROM last WHERE op <> 'D'\n\
             \x20   ON CONFLICT ({keys}) DO UPDATE SET {set};\n"
        )
    }
}

impl Ctx {
    /// `gunzip -c FILE | psql -c "\copy T FROM STDIN (FORMAT csv)"` per LOAD file, each table's
    /// files in order; the tables one after the other, or concurrently with `streams > 1`.
    pub fn reference_full(&self, db: &str, ds: &Dataset, streams: usize) -> Result<f64> {
        let dsn = self.dsn(db);
        let jobs: Vec<Vec<(PathBuf, String)>> = TABLES
            .iter()
            .map(|t| {
                ds.files(Kind::Load, t)
                    .into_iter()
                    .map(|f| {
                        (
                            f.path.clone(),
                            format!("\\copy {REF}.{t} FROM STDIN (FORMAT csv)"),
                        )
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        run_streams(jobs, streams, |(path, copy)| {
            shell_pipeline(
                "set -o pipefail; \
                 gunzip -c \"$1\" | psql -X -q -v ON_ERROR_STOP=1 -d \"$2\" -c \"$3\"",
                &[path.to_str().unwrap_or_default(), &dsn, copy],
            )
        })?;
        Ok(started.elapsed().as_secs_f64())
    }

    /// The staged SQL upsert of each CDC file, one `psql -1` transaction per file, each table's
    /// files in commit order, the tables one after the other.
    pub fn reference_cdc(
        &self,
        db: &str,
        ds: &Dataset,
        defs: &[TableDef],
        streams: usize,
    ) -> Result<f64> {
        let dsn = self.dsn(db);
        let mut jobs = Vec::new();
        for def in defs {
            let script = self.work.join(format!("reference-cdc-{}.sql", def.name));
            fs::write(&script, def.reference_cdc_script())?;
            jobs.push(
                ds.files(Kind::Cdc, &def.name)
                    .into_iter()
                    .map(|f| (f.path.clone(), script.clone()))
                    .collect::<Vec<_>>(),
            );
        }
        let started = Instant::now();
        run_streams(jobs, streams, |(path, script)| {
            shell_pipeline(
                "set -o pipefail; \
                 gunzip -c \"$1\" | psql -X -q -v ON_ERROR_STOP=1 -1 -d \"$2\" -f \"$3\"",
                &[
                    path.to_str().unwrap_or_default(),
                    &dsn,
                    script.to_str().unwrap_or_default(),
                ],
            )
        })?;
        Ok(started.elapsed().as_secs_f64())
    }
}

/// Runs `bash -c SCRIPT bash ARGS...`, failing with its stderr.
pub fn shell_pipeline(script: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run bash")?;
    if !out.status.success() {
        bail!(
            "reference command failed ({}): {script} {args:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs each stream's jobs in order; up to `streams` streams at once.
pub fn run_streams<J: Send + Sync>(
    jobs: Vec<Vec<J>>,
    streams: usize,
    run: impl Fn(&J) -> Result<()> + Sync,
) -> Result<()> {
    if streams <= 1 {
        for job in jobs.iter().flatten() {
            run(job)?;
        }
        return Ok(());
    }
    let queue = std::sync::Mutex::new(jobs.into_iter());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..streams)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let next = queue.lock().expect("not poisoned").next();
                        let Some(stream) = next else {
                            return Ok(());
                        };
                        for job in &stream {
                            run(job)?;
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| anyhow!("a reference stream panicked"))?
        })
    })
}
