//! The run context, and loader runs: the release binary in one-shot mode, its peak RSS sampled
//! until it exits, its per-delivery times read from its log.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::runtime::Runtime;

use crate::options::Options;
use crate::postgres::Pg;
use crate::rss::vm_hwm_kib;
use crate::s3::Moto;
use crate::util::{cpu_busy, tail, with_db};

/// Everything a run shares: the options, the runtime, the loader binary, the work directory and
/// moto; counters of loader runs and of noisy timed runs.
pub struct Ctx {
    pub opts: Options,
    pub rt: Runtime,
    pub loader: PathBuf,
    pub work: PathBuf,
    pub moto: Moto,
    pub runs: std::cell::Cell<usize>,
    /// Timed runs started while the machine was busy with other work.
    pub noisy: std::cell::Cell<usize>,
}

#[derive(Clone, Debug)]
pub struct LoaderRun {
    pub secs: f64,
    pub peak_rss_kib: u64,
    /// Sum of the deliveries' own times, from the log ("processed (H:MM:SS.ffffff seconds)").
    pub delivery_secs: f64,
    pub deliveries: usize,
}

impl Ctx {
    pub fn pg(&self) -> Pg<'_> {
        Pg { rt: &self.rt }
    }

    pub fn admin(&self) -> &str {
        &self.opts.admin_dsn
    }

    pub fn dsn(&self, db: &str) -> String {
        with_db(&self.opts.admin_dsn, db)
    }

    /// Before a timed run: a checkpoint (no dirty buffers or WAL debt left by the previous
    /// run), then wait (up to --wait-idle) for other work on the machine to stop.
    pub fn checkpoint(&self, db: &str) -> Result<()> {
        self.pg().exec(&self.dsn(db), "CHECKPOINT")?;
        if self.opts.wait_idle == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(self.opts.wait_idle);
        let mut warned = false;
        loop {
            let busy = cpu_busy(Duration::from_secs(1));
            if busy < 0.15 {
                return Ok(());
            }
            if Instant::now() > deadline {
                say!(
                    "WARNING: the machine is still {:.0}% busy with other work after {} s: \
                     measuring anyway, figures will be noisy",
                    busy * 100.0,
                    self.opts.wait_idle
                );
                self.noisy.set(self.noisy.get() + 1);
                return Ok(());
            }
            if !warned {
                say!(
                    "waiting for the machine to be idle ({:.0}% busy)",
                    busy * 100.0
                );
                warned = true;
            }
        }
    }

    /// The release binary's command for one run, its output to a new log file: `SOURCE` on
    /// `source`, `TARGET` on `db`, notifications off, the metrics server on a free local port.
    /// The caller sets `RUN_AS_SERVICE` and what else it needs.
    pub fn loader_command(
        &self,
        db: &str,
        source: &str,
        label: &str,
    ) -> Result<(Command, PathBuf)> {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let log = self.work.join(format!("loader-{n:03}-{label}.log"));
        let file = fs::File::create(&log)?;
        let mut cmd = Command::new(&self.loader);
        for var in [
            "DRY_RUN",
            "NATS",
            "TARGET_SCHEMA",
            "MIN_SLEEP",
            "MAX_SLEEP",
            "RUST_LOG",
            "PARALLELISM",
            "FULL_LIST_INTERVAL",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("SOURCE", source)
            .env("TARGET", self.dsn(db))
            .env("NOTIFICATIONS", "false")
            .env("LOG_LEVEL", &self.opts.log_level)
            // The metrics server on a free local port: never in the way of another loader.
            .env("METRICS_BIND", "127.0.0.1")
            .env("METRICS_PORT", "0")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        Ok((cmd, log))
    }

    /// Runs the release binary once (one-shot), polling its VmHWM until it exits.
    pub fn run_loader(
        &self,
        db: &str,
        bucket: &str,
        prefix: &str,
        parallelism: usize,
        label: &str,
    ) -> Result<LoaderRun> {
        let (mut cmd, log) = self.loader_command(db, &self.source(bucket, prefix), label)?;
        cmd.env("RUN_AS_SERVICE", "false")
            .env("PARALLELISM", parallelism.to_string());
        self.run_one_shot(cmd, &log, &format!("{bucket}/{prefix} into {db}"))
    }

    /// Runs a one-shot loader command to its end, polling its VmHWM; fails if it fails.
    pub fn run_one_shot(&self, mut cmd: Command, log: &Path, what: &str) -> Result<LoaderRun> {
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", self.loader.display()))?;
        let pid = child.id();
        let mut peak = 0u64;
        let status: ExitStatus = loop {
            if let Some(kib) = vm_hwm_kib(pid) {
                peak = peak.max(kib);
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let secs = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!(
                "the loader failed ({status}) on {what}; log {}:\n{}",
                log.display(),
                tail(log, 15)
            );
        }
        let (deliveries, delivery_secs) = delivery_times(log);
        Ok(LoaderRun {
            secs,
            peak_rss_kib: peak,
            delivery_secs,
            deliveries,
        })
    }
}

/// Sums the loader log's per-delivery times.
pub fn delivery_times(log: &Path) -> (usize, f64) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut n = 0;
    let mut secs = 0.0;
    for line in text.lines() {
        let Some(rest) = line.split(": processed (").nth(1) else {
            continue;
        };
        let Some(t) = rest.split(' ').next() else {
            continue;
        };
        let parts: Vec<f64> = t.split(':').filter_map(|p| p.parse().ok()).collect();
        if parts.len() == 3 {
            n += 1;
            secs += parts[0] * 3600.0 + parts[1] * 60.0 + parts[2];
        }
    }
    (n, secs)
}
