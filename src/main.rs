//! `paper-engine-orders`: the loader (default) and the sample data generator (`sample`).
//! Everything lives in the library; this only reads arguments and the environment.
use std::process::ExitCode;

use paper_engine_orders::app::{self, exit};
use paper_engine_orders::config::{read_env_file, Config, SourceConfig};
use paper_engine_orders::sample::SampleSpec;
use paper_engine_orders::source::S3Source;

const USAGE: &str = "\
Usage:
  paper-engine-orders [--env-file PATH]
      Run the loader, configured by environment variables (see config.env.sample).
  paper-engine-orders sample [--env-file PATH] [--scale X] [--seed N] [--cdc-files N]
                             [--cdc-rows N] [--load-rows-per-file N] [--manifest PATH]
                             [--force]
      Write the deterministic sample DMS dataset to the SOURCE bucket
      (scale 1 = 90 strategies, 160k orders, 1.5M executions). Refuses when the
      bucket path already holds objects, unless --force.
  paper-engine-orders --version | --help";

fn usage_error(message: &str) -> ExitCode {
    eprintln!("{message}\n{USAGE}");
    ExitCode::from(exit::CONFIG as u8)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("paper-engine-orders {}", paper_engine_orders::VERSION);
        return ExitCode::SUCCESS;
    }
    // --env-file: like `docker run --env-file`; variables already set in the environment win.
    if let Some(i) = args.iter().position(|a| a == "--env-file") {
        let Some(path) = args.get(i + 1).cloned() else {
            return usage_error("--env-file needs a path");
        };
        match read_env_file(std::path::Path::new(&path)) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    if std::env::var_os(&k).is_none() {
                        std::env::set_var(k, v);
                    }
                }
            }
            Err(e) => return usage_error(&format!("--env-file {path}: {e}")),
        }
        args.drain(i..i + 2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match args.first().map(String::as_str) {
        None => {
            let config = match Config::from_env() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("configuration error: {e}");
                    return ExitCode::from(exit::CONFIG as u8);
                }
            };
            paper_engine_orders::logging::init(&config.log_level);
            runtime.block_on(app::run(config))
        }
        Some("sample") => match sample_spec(&args[1..]) {
            Ok((spec, manifest_path, force)) => {
                runtime.block_on(sample(spec, manifest_path, force))
            }
            Err(e) => return usage_error(&e),
        },
        Some(other) => return usage_error(&format!("unknown command `{other}`")),
    };
    ExitCode::from(code as u8)
}

fn sample_spec(args: &[String]) -> Result<(SampleSpec, Option<String>, bool), String> {
    let mut spec = SampleSpec::default();
    let mut manifest = None;
    let mut force = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--force" {
            force = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let bad = |what: &str| format!("{flag}: `{value}` is not {what}");
        match flag.as_str() {
            "--scale" => {
                spec.scale = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| bad("a positive number"))?
            }
            "--seed" => spec.seed = value.parse().map_err(|_| bad("a whole number"))?,
            "--cdc-files" => spec.cdc_files = value.parse().map_err(|_| bad("a whole number"))?,
            "--cdc-rows" => {
                spec.cdc_rows_per_file = value.parse().map_err(|_| bad("a whole number"))?
            }
            "--load-rows-per-file" => {
                spec.load_rows_per_file = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a whole number above 0"))?
            }
            "--manifest" => manifest = Some(value),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok((spec, manifest, force))
}

async fn sample(mut spec: SampleSpec, manifest_path: Option<String>, force: bool) -> i32 {
    paper_engine_orders::logging::init(
        &std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into()),
    );
    let source = match std::env::var("SOURCE").map_err(|_| "SOURCE: is not set".to_string()) {
        Ok(v) => match SourceConfig::parse(&v) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("configuration error: {e}");
                return exit::CONFIG;
            }
        },
        Err(e) => {
            eprintln!("configuration error: {e}");
            return exit::CONFIG;
        }
    };
    spec.bucket_path = source.path.clone();
    let s3 = S3Source::new(&source);
    // Never over a real bucket by mistake: the sample's keys would mix with (or replace) DMS's.
    let prefix = paper_engine_orders::source::root_prefix(&source.path);
    if !force {
        use paper_engine_orders::source::Source;
        if let Ok(page) = s3.list_page(&prefix, None, None).await {
            if let Some(first) = page.objects.first() {
                tracing::error!(
                    "Sample: bucket {} already holds objects under '{prefix}' (e.g. {}): refusing to write the sample over them. Use --force to write anyway.",
                    s3.bucket(),
                    paper_engine_orders::source::display_key(&first.key)
                );
                return exit::FAILED;
            }
        }
    }
    match app::upload_sample(&s3, spec).await {
        Ok(manifest) => {
            let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
            tracing::info!(
                "Sample: {} files, {rows} rows written to bucket {}.",
                manifest.files.len(),
                s3.bucket()
            );
            if let Some(path) = manifest_path {
                let json = serde_json::to_string_pretty(&manifest.files).expect("serializable");
                if let Err(e) = std::fs::write(&path, json) {
                    eprintln!("--manifest {path}: {e}");
                    return exit::FAILED;
                }
            }
            exit::OK
        }
        Err(e) => {
            tracing::error!("Sample: {e}");
            exit::FAILED
        }
    }
}
