//! `sample`: the deterministic sample dataset, written to the SOURCE bucket.
use crate::app::{self, exit};
use crate::config::SourceConfig;
use crate::dms::DmsSettings;
use crate::sample::{FileDialect, SampleSpec};
use crate::source::{display_key, root_prefix, S3Source, Source};

use super::SampleArgs;

pub(super) async fn run(args: SampleArgs) -> i32 {
    crate::logging::init(
        &std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into()),
        std::env::var("LOG_FORMAT")
            .ok()
            .and_then(|f| crate::logging::LogFormat::parse(&f))
            .unwrap_or_default(),
    );
    let source = match std::env::var("SOURCE") {
        Ok(v) => match SourceConfig::parse(&v) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("configuration error: {e}");
                return exit::CONFIG;
            }
        },
        Err(_) => {
            eprintln!("configuration error: SOURCE: is not set");
            return exit::CONFIG;
        }
    };
    // The files as the DMS endpoint of DMS_SETTINGS writes them (the loader reads the same);
    // --format over its DataFormat.
    let dialect = match dialect_from_env() {
        Ok(mut d) => {
            if let Some(format) = &args.format {
                d.parquet = format == "parquet";
            }
            d
        }
        Err(e) => {
            eprintln!("configuration error: {e}");
            return exit::CONFIG;
        }
    };
    let mut spec = SampleSpec::default();
    if let Some(v) = args.scale {
        spec.scale = v;
    }
    if let Some(v) = args.seed {
        spec.seed = v;
    }
    if let Some(v) = args.cdc_files {
        spec.cdc_files = v;
    }
    if let Some(v) = args.cdc_rows {
        spec.cdc_rows_per_file = v;
    }
    if let Some(v) = args.load_rows_per_file {
        spec.load_rows_per_file = v;
    }
    spec.bucket_path = source.path.clone();
    let s3 = S3Source::new(&source).await;
    // Never over a real bucket by mistake: the sample's keys would mix with (or replace) DMS's.
    let prefix = root_prefix(&source.path);
    if !args.force {
        if let Ok(page) = s3.list_page(&prefix, None, None).await {
            if let Some(first) = page.objects.first() {
                tracing::error!(
                    "Sample: bucket {} already holds objects under '{prefix}' (e.g. {}): refusing to write the sample over them. Use --force to write anyway.",
                    s3.bucket(),
                    display_key(&first.key)
                );
                return exit::FAILED;
            }
        }
    }
    match app::upload_sample_in(&s3, spec, dialect).await {
        Ok(manifest) => {
            let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
            tracing::info!(
                "Sample: {} files, {rows} rows written to bucket {}.",
                manifest.files.len(),
                s3.bucket()
            );
            if let Some(path) = args.manifest {
                let json = serde_json::to_string_pretty(&manifest.files).expect("serializable");
                if let Err(e) = std::fs::write(&path, json) {
                    eprintln!("--manifest {}: {e}", path.display());
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

/// The generator's file dialect from `DMS_SETTINGS` / `DMS_SETTINGS_FILE` (the default dialect
/// when neither is set).
fn dialect_from_env() -> Result<FileDialect, crate::config::ConfigError> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let settings = match (get("DMS_SETTINGS"), get("DMS_SETTINGS_FILE")) {
        (Some(json), _) => DmsSettings::parse(&json)?,
        (None, Some(path)) => {
            let json = std::fs::read_to_string(path.trim()).map_err(|e| {
                crate::config::ConfigError::new(
                    "DMS_SETTINGS_FILE",
                    format!("{}: {e}", path.trim()),
                )
            })?;
            DmsSettings::parse(&json)?
        }
        (None, None) => return Ok(FileDialect::default()),
    };
    Ok(settings.sample_dialect())
}
