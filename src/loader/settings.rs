//! How the loader behaves beyond where the data is: run mode, parallelism, sleeps, retries.
use std::sync::Arc;
use std::time::Duration;

use crate::notifier::NotificationSettings;
use crate::policy::Backoff;

/// How hard to retry a delivery that failed for a transient reason.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

/// `LATE_FILE_POLICY`: what to do with a change file whose commit time is earlier than the
/// stream's last delivered change file (it arrived late).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LateFilePolicy {
    /// Apply each of its rows only where the table's row was not written by a later change
    /// file; the others count as unchanged.
    #[default]
    ApplyGuarded,
    /// Stop the stream at it (recorded as ERROR) until an operator acts.
    Stop,
}

impl LateFilePolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "apply-guarded" => Some(LateFilePolicy::ApplyGuarded),
            "stop" => Some(LateFilePolicy::Stop),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            LateFilePolicy::ApplyGuarded => "apply-guarded",
            LateFilePolicy::Stop => "stop",
        }
    }
}

/// `RELOAD_POLICY`: what to do when DMS re-runs a table's full load (a delivered `LOAD` object
/// with a new ETag, or a new full load after change files were delivered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReloadPolicy {
    /// Stop the stream at it (recorded as ERROR) until an operator retries (applies it) or
    /// skips it (keeps the table as it is).
    #[default]
    Stop,
    /// Replace the table by the new full load in one transaction, then go on.
    Reload,
}

impl ReloadPolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "stop" => Some(ReloadPolicy::Stop),
            "reload" => Some(ReloadPolicy::Reload),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadPolicy::Stop => "stop",
            ReloadPolicy::Reload => "reload",
        }
    }
}

/// `SCHEMA_DRIFT_POLICY`: what to do with a file whose header names columns the table lacks, at
/// its end (DMS added source columns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchemaDriftPolicy {
    /// The stream stops at the file (ERROR) with the columns named and the migration to write.
    #[default]
    Stop,
    /// The columns are added to the table (nullable `text`) in the file's own transaction.
    AddColumns,
}

impl SchemaDriftPolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "stop" => Some(SchemaDriftPolicy::Stop),
            "add-columns" => Some(SchemaDriftPolicy::AddColumns),
            _ => None,
        }
    }
}

/// What the loader does, beyond where the data is.
#[derive(Clone, Debug)]
pub struct LoaderSettings {
    pub run_as_service: bool,
    pub dry_run: bool,
    /// Table streams loading at once.
    pub parallelism: usize,
    pub min_sleep: Duration,
    pub max_sleep: Duration,
    pub retry: RetryPolicy,
    /// Bytes of binary COPY data per message from the decoding thread to the COPY.
    pub chunk_bytes: usize,
    /// Write change notifications to the outbox (None: notifications off, or dry run).
    pub notification: Option<Arc<NotificationSettings>>,
    /// How long a delivery waits for its notification to be acknowledged before it moves on
    /// (the message stays in the outbox and goes out later either way).
    pub publish_wait: Duration,
    /// How often the whole bucket path is listed (besides at start-up) to find files that
    /// appeared behind a stream's cursor.
    pub full_list_interval: Duration,
    /// Deliver only these tables' streams (`None`: every table). The others are still listed,
    /// and shown in the status, but not delivered.
    pub only_tables: Option<std::collections::BTreeSet<String>>,
    /// One-shot: how long to wait for streams another loader holds.
    pub one_shot_wait: Duration,
    /// On a stop request: how long the deliveries in hand may take before they are rolled back.
    pub shutdown_grace: Duration,
    /// Every file starts with a header row (the endpoint's `AddColumnName`), checked against
    /// the table's columns.
    pub header_row: bool,
    pub late_file_policy: LateFilePolicy,
    pub reload_policy: ReloadPolicy,
    pub schema_drift_policy: SchemaDriftPolicy,
    /// How DMS wrote the CSV (the endpoint's settings).
    pub csv: CsvOptions,
    /// DMS may write date folders (`DatePartitionEnabled` not known to be false).
    pub date_folders: bool,
    /// `DatePartitionSequence` `MMYYYYDD` or `DDMMYYYY`: change files are below day folders that
    /// do not sort in time order (see `Discovery::day_folders`).
    pub day_folders: Option<crate::dms::DayFolders>,
    /// `CdcPath`: change files are below `<bucket path>/<CdcPath>/` (see `Discovery::cdc_path`).
    pub cdc_path: Option<String>,
}

/// How the endpoint's settings shape the CSV files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// `CsvDelimiter`.
    pub delimiter: u8,
    /// `CsvRowDelimiter` (`\n`, with an optional `\r` before it, by default).
    pub row_delimiter: u8,
    /// `CsvNullValue` (`None`: an empty unquoted field).
    pub null_value: Option<Vec<u8>>,
    /// `AddTrailingPaddingCharacter`.
    pub trim_padding: bool,
    /// Change files have no Op column (`CdcInsertsOnly`/`CdcInsertsAndUpdates` without
    /// `IncludeOpForFullLoad`): every row is applied as an upsert.
    pub cdc_without_op: bool,
    /// `TimestampColumnName`: the commit-time column after the Op column (a header row must
    /// name it there): into the table's column of that name if it has one, else skipped.
    pub timestamp_column: Option<String>,
    /// `CsvNoSupValue` (with `UseCsvNoSupValue`): in a change file, a column DMS could not
    /// supply; it keeps its value in the table.
    pub no_sup_value: Option<Vec<u8>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            row_delimiter: b'\n',
            null_value: None,
            trim_padding: false,
            cdc_without_op: false,
            timestamp_column: None,
            no_sup_value: None,
        }
    }
}

impl CsvOptions {
    pub fn from_settings(dms: &crate::dms::DmsSettings) -> Self {
        CsvOptions {
            delimiter: dms.delimiter.unwrap_or(b','),
            row_delimiter: dms.row_delimiter.unwrap_or(b'\n'),
            null_value: dms.null_value.as_ref().map(|v| v.as_bytes().to_vec()),
            trim_padding: dms.trailing_padding,
            cdc_without_op: dms.cdc_without_op,
            timestamp_column: dms.timestamp_column.clone(),
            no_sup_value: dms.no_sup_value.as_ref().map(|v| v.as_bytes().to_vec()),
        }
    }
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings {
            run_as_service: true,
            dry_run: false,
            parallelism: crate::config::default_parallelism(),
            min_sleep: Duration::from_secs(15),
            max_sleep: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            chunk_bytes: 512 * 1024,
            notification: None,
            publish_wait: Duration::from_secs(2),
            full_list_interval: Duration::from_secs(3600),
            only_tables: None,
            one_shot_wait: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            header_row: false,
            late_file_policy: LateFilePolicy::default(),
            reload_policy: ReloadPolicy::default(),
            schema_drift_policy: SchemaDriftPolicy::default(),
            csv: CsvOptions::default(),
            date_folders: true,
            cdc_path: None,
            day_folders: None,
        }
    }
}

impl LoaderSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        LoaderSettings {
            run_as_service: config.run_as_service,
            dry_run: config.dry_run,
            parallelism: config.parallelism,
            min_sleep: Duration::from_secs_f64(config.min_sleep),
            max_sleep: Duration::from_secs_f64(config.max_sleep),
            full_list_interval: Duration::from_secs_f64(config.full_list_interval),
            only_tables: config.only_tables.clone(),
            one_shot_wait: Duration::from_secs_f64(config.one_shot_wait),
            shutdown_grace: Duration::from_secs_f64(config.shutdown_grace),
            header_row: config.dms_settings.add_column_name,
            late_file_policy: config.late_file_policy,
            reload_policy: config.reload_policy,
            schema_drift_policy: config.schema_drift_policy,
            csv: CsvOptions::from_settings(&config.dms_settings),
            date_folders: config.dms_settings.date_partition_enabled != Some(false),
            cdc_path: config.dms_settings.cdc_path.clone(),
            day_folders: match (
                config.dms_settings.date_partition_enabled,
                &config.dms_settings.date_partition_sequence,
            ) {
                (Some(true), Some(sequence)) => crate::dms::DayFolders::from_settings(
                    sequence,
                    config.dms_settings.date_partition_delimiter.as_deref(),
                ),
                _ => None,
            },
            notification: config.publishes().then(|| {
                Arc::new(NotificationSettings {
                    datasource: config.notification_datasource.clone(),
                    process: config.notification_process.clone(),
                    host: gethostname::gethostname().to_string_lossy().into_owned(),
                })
            }),
            ..LoaderSettings::default()
        }
    }
}
