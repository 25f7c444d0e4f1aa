//! The S3 side: the moto server started for the run, the bucket as `S3Source`, and the sample
//! dataset generated to disk and uploaded under one prefix per phase.
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use paper_engine_orders::config::SourceConfig;
use paper_engine_orders::dms;
use paper_engine_orders::sample::{self, SampleSpec};
use paper_engine_orders::source::S3Source;

use crate::ctx::Ctx;
use crate::util::{free_port, on_path, tail};

/// The S3 server, started for this run: a watchdog shell ends it if the bench dies.
pub struct Moto {
    shell: Child,
    pid_file: PathBuf,
    pub endpoint: String,
}

impl Moto {
    pub fn start(work: &Path) -> Result<Moto> {
        ensure!(
            on_path("moto_server").is_some(),
            "moto_server is not on PATH: install it with `pip install 'moto[server]'` \
             (scripts/lib.sh ensure_moto_installed does)"
        );
        let port = free_port()?;
        let pid_file = work.join("moto.pid");
        let log = work.join("moto.log");
        let script = format!(
            "moto_server -H 127.0.0.1 -p {port} >'{log}' 2>&1 & m=$!; echo $m >'{pid}'; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; \
             kill $m 2>/dev/null",
            log = log.display(),
            pid = pid_file.display(),
            parent = std::process::id()
        );
        let shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start moto_server")?;
        let mut moto = Moto {
            shell,
            pid_file,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || moto.shell.try_wait()?.is_some() {
                bail!(
                    "moto_server did not start on port {port}: {}",
                    tail(&log, 5)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Load,
    Cdc,
}

#[derive(Clone, Debug)]
pub struct DataFile {
    pub table: String,
    pub kind: Kind,
    /// The gzip body on disk (the bytes uploaded).
    pub path: PathBuf,
    /// The object key in the bucket.
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
}

pub struct Dataset {
    pub bucket: String,
    pub files: Vec<DataFile>,
}

impl Dataset {
    pub fn files(&self, kind: Kind, table: &str) -> Vec<&DataFile> {
        self.files
            .iter()
            .filter(|f| f.kind == kind && f.table == table)
            .collect()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.files.iter().filter(|f| f.kind == kind).count()
    }

    pub fn rows(&self, kind: Kind) -> u64 {
        self.files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.rows)
            .sum()
    }

    pub fn bytes(&self, kind: Kind) -> u64 {
        self.files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.bytes)
            .sum()
    }
}

/// The bucket prefixes: LOAD files under `full/`, CDC files under `cdc/`, so each phase's
/// loader run sees only its own files (the ledger keeps the full load's keys).
pub const FULL: &str = "full";
pub const CDC: &str = "cdc";
/// An empty prefix: a loader run there only applies the migrations.
pub const NOTHING: &str = "nothing";

/// Generates a dataset, keeps the files of `keep(table, kind, n)` on disk and in the bucket
/// (`n`: the file's index among its table's files of its kind).
pub fn generate(
    ctx: &Ctx,
    spec: SampleSpec,
    bucket: &str,
    dir: &Path,
    keep: impl Fn(&str, Kind, usize) -> bool,
) -> Result<Dataset> {
    generate_in(
        ctx,
        spec,
        &sample::FileDialect::default(),
        bucket,
        dir,
        keep,
    )
}

/// [`generate`], the files written as a DMS endpoint with `dialect` writes them.
pub fn generate_in(
    ctx: &Ctx,
    spec: SampleSpec,
    dialect: &sample::FileDialect,
    bucket: &str,
    dir: &Path,
    keep: impl Fn(&str, Kind, usize) -> bool,
) -> Result<Dataset> {
    let dialect = dialect.clone();
    fs::create_dir_all(dir)?;
    let s3 = ctx.s3(bucket, FULL)?;
    let dir = dir.to_path_buf();
    let bucket_path = spec.bucket_path.clone();
    let prefix = format!("{}/dbo/", spec.bucket_path);
    let files = ctx.rt.block_on(async move {
        s3.ensure_bucket().await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<sample::SampleFile>(2);
        let generator = tokio::task::spawn_blocking(move || {
            sample::generate_in(&spec, &dialect, |file| {
                tx.blocking_send(file).map_err(|_| ())
            })
        });
        let mut files = Vec::new();
        let mut seen: Vec<(String, Kind)> = Vec::new();
        while let Some(file) = rx.recv().await {
            let key = file.summary.key.clone();
            // The table and the kind of file as the loader reads the key.
            let object = dms::parse_object_key(&bucket_path, &key)
                .ok_or_else(|| anyhow!("unexpected sample key {key}"))?;
            let table = object.table.as_str();
            let kind = if object.kind.is_load() {
                Kind::Load
            } else {
                Kind::Cdc
            };
            // The file name below the table folder, date folders included.
            let name = key
                .strip_prefix(&format!("{prefix}{table}/"))
                .ok_or_else(|| anyhow!("unexpected sample key {key}"))?;
            let n = seen
                .iter()
                .filter(|(t, k)| t == table && *k == kind)
                .count();
            seen.push((table.to_string(), kind));
            if !keep(table, kind, n) {
                continue;
            }
            let path = dir.join(format!(
                "{}-{table}-{}",
                if kind == Kind::Load { FULL } else { CDC },
                name.replace('/', "-")
            ));
            tokio::fs::write(&path, &file.body).await?;
            let object = format!(
                "{}/dbo/{table}/{name}",
                if kind == Kind::Load { FULL } else { CDC }
            );
            s3.put(&object, file.body)
                .await
                .with_context(|| format!("upload {object}"))?;
            files.push(DataFile {
                table: table.to_string(),
                kind,
                path,
                key: object,
                rows: file.summary.rows,
                bytes: file.summary.bytes,
            });
        }
        generator
            .await?
            .map_err(|()| anyhow!("the sample generator stopped"))?;
        anyhow::Ok(files)
    })?;
    Ok(Dataset {
        bucket: bucket.to_string(),
        files,
    })
}

impl Ctx {
    pub fn source(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "bucket_endpoint={} bucket_id=bench bucket_key=bench-secret-key bucket_name={bucket} \
             bucket_path={prefix}",
            self.moto.endpoint
        )
    }

    pub fn s3(&self, bucket: &str, prefix: &str) -> Result<S3Source> {
        let config = SourceConfig::parse(&self.source(bucket, prefix))
            .map_err(|e| anyhow!("SOURCE: {e}"))?;
        Ok(self.rt.block_on(S3Source::new(&config)))
    }
}
