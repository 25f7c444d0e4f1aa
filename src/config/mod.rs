//! Typed configuration, parsed once from the environment (`Config::from_env`) and validated.
//!
//! Every error names the variable and what is wrong with it, and never echoes a secret: the
//! secret parts (`bucket_key`, passwords in `TARGET` and `NATS`) are wrapped in [`Secret`],
//! whose `Debug` and `Display` print `***`.
//!
//! One concept per submodule:
//! - this module: [`Config`], read by [`Config::from_env`] / [`Config::from_lookup`] and checked
//!   by [`Config::validate`].
//! - `connections`: the connection strings `SOURCE` ([`SourceConfig`]), `TARGET`
//!   ([`TargetConfig`]) and `NATS` ([`NatsConfig`]).
//! - `values`: [`Secret`], [`ConfigError`] and the parsers of single values (booleans, seconds).
//! - `env_file`: [`read_env_file`], the `docker run --env-file` format.
//! - `tests`: [`Config::from_lookup`] end to end: defaults, errors, secrets.

mod connections;
mod env_file;
mod values;

pub use crate::dms::DmsSettings;
pub use connections::{NatsConfig, PgTls, SourceConfig, TargetConfig};
pub use env_file::read_env_file;
pub use values::{ConfigError, Secret};

use values::{parse_bool, parse_seconds};

/// The whole configuration of the loader.
#[derive(Clone, Debug)]
pub struct Config {
    pub run_as_service: bool,
    pub min_sleep: f64,
    pub max_sleep: f64,
    /// Seconds between full listings of the bucket path (besides the one at start-up).
    pub full_list_interval: f64,
    /// `ONE_SHOT_WAIT` (default 600 s): how long a one-shot run waits for streams another
    /// instance is delivering before it gives up on them.
    pub one_shot_wait: f64,
    /// `SHUTDOWN_GRACE` (default 30 s): on SIGTERM/SIGINT, how long the deliveries in hand may
    /// take to finish before they are rolled back.
    pub shutdown_grace: f64,
    pub dry_run: bool,
    pub notifications: bool,
    pub nats: Option<NatsConfig>,
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub target_schema: String,
    pub log_level: String,
    /// How many table streams load at once (`PARALLELISM`, default: the number of cores).
    pub parallelism: usize,
    /// Where the HTTP server (/metrics, /healthz, /readyz) listens: `METRICS_BIND` (default
    /// 0.0.0.0) and `METRICS_PORT` (default 9100; 0 picks a free port).
    pub metrics_addr: std::net::SocketAddr,
    /// `NOTIFICATION_DATASOURCE` (default `paper-engine`): the `ds` of notifications and the first
    /// token of their subject.
    pub notification_datasource: String,
    /// `NOTIFICATION_PROCESS` (default `orders`): the `id` of notifications; the subject is
    /// `<datasource>.meta.<process>.change`.
    pub notification_process: String,
    /// `LOG_FORMAT`: `text` (default, the replaced service's line shape) or `json` (one object
    /// per line, for log pipelines).
    pub log_format: crate::logging::LogFormat,
    /// Deliver only these tables' streams (not an environment variable: the `retry` command
    /// sets it to the stream it retries). `None`: every table.
    pub only_tables: Option<std::collections::BTreeSet<String>>,
    /// `EVENTS_SUBJECT`: a NATS subject carrying the bucket's S3 event notifications; an event
    /// for the bucket path wakes the loop at once.
    pub events_subject: Option<String>,
    /// `EVENTS_DURABLE` (default `paper-engine-orders`): the durable consumer's name when a
    /// JetStream stream captures `EVENTS_SUBJECT`.
    pub events_durable: String,
    /// `TRIGGER_SUBJECT`: a NATS subject on which a scheduler asks for a run.
    pub trigger_subject: Option<String>,
    /// `API_TOKEN`: turns the `/api` endpoints on; every request needs it as a bearer token.
    pub api_token: Option<Secret>,
    /// `DMS_SETTINGS` / `DMS_SETTINGS_FILE`: the S3 target endpoint's settings (checked).
    pub dms_settings: DmsSettings,
    /// `LATE_FILE_POLICY` (`apply-guarded`, the default, or `stop`).
    pub late_file_policy: crate::loader::LateFilePolicy,
    /// `RELOAD_POLICY` (`stop`, the default, or `reload`).
    pub reload_policy: crate::loader::ReloadPolicy,
    /// `SCHEMA_DRIFT_POLICY` (`stop`, the default, or `add-columns`).
    pub schema_drift_policy: crate::loader::SchemaDriftPolicy,
}

/// Every variable the loader reads.
pub const VARIABLES: &[&str] = &[
    "RUN_AS_SERVICE",
    "MIN_SLEEP",
    "MAX_SLEEP",
    "FULL_LIST_INTERVAL",
    "ONE_SHOT_WAIT",
    "SHUTDOWN_GRACE",
    "DRY_RUN",
    "NOTIFICATIONS",
    "NATS",
    "SOURCE",
    "TARGET",
    "TARGET_SCHEMA",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "PARALLELISM",
    "METRICS_PORT",
    "METRICS_BIND",
    "NOTIFICATION_DATASOURCE",
    "NOTIFICATION_PROCESS",
    "EVENTS_SUBJECT",
    "EVENTS_DURABLE",
    "TRIGGER_SUBJECT",
    "API_TOKEN",
    "DMS_SETTINGS",
    "DMS_SETTINGS_FILE",
    "LATE_FILE_POLICY",
    "RELOAD_POLICY",
    "SCHEMA_DRIFT_POLICY",
    "AWS_CA_BUNDLE",
];

/// Default for `PARALLELISM`: the number of cores.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl Config {
    /// Reads the process environment. A variable of the loader's that is not valid UTF-8 is an
    /// error naming it (never taken for unset).
    pub fn from_env() -> Result<Self, ConfigError> {
        for var in VARIABLES {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(var) {
                return Err(ConfigError::new(var, "is not valid UTF-8"));
            }
        }
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `lookup` (a variable name to its value), so tests need not
    /// touch the process environment. An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let boolean = |var: &'static str, default: bool| match get(var) {
            Some(v) => parse_bool(var, &v),
            None => Ok(default),
        };
        let seconds = |var: &'static str, default: f64| match get(var) {
            Some(v) => parse_seconds(var, &v),
            None => Ok(default),
        };
        let run_as_service = boolean("RUN_AS_SERVICE", true)?;
        let min_sleep = seconds("MIN_SLEEP", 15.0)?;
        let max_sleep = seconds("MAX_SLEEP", 30.0)?;
        let full_list_interval = seconds("FULL_LIST_INTERVAL", 3600.0)?;
        let one_shot_wait = seconds("ONE_SHOT_WAIT", 600.0)?;
        let shutdown_grace = seconds("SHUTDOWN_GRACE", 30.0)?;
        let dry_run = boolean("DRY_RUN", false)?;
        let notifications = boolean("NOTIFICATIONS", true)?;
        let mut source = SourceConfig::parse(
            &get("SOURCE").ok_or_else(|| ConfigError::new("SOURCE", "is not set"))?,
        )?;
        source.load_ca(get("AWS_CA_BUNDLE"))?;
        let dms_settings = match (get("DMS_SETTINGS"), get("DMS_SETTINGS_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "DMS_SETTINGS",
                    "is set, and so is DMS_SETTINGS_FILE: give one of them",
                ))
            }
            (Some(json), None) => DmsSettings::parse(&json)?,
            (None, Some(path)) => {
                let json = std::fs::read_to_string(path.trim()).map_err(|e| {
                    ConfigError::new("DMS_SETTINGS_FILE", format!("{}: {e}", path.trim()))
                })?;
                DmsSettings::parse(&json)?
            }
            (None, None) => DmsSettings::default(),
        };
        if let Some(name) = &dms_settings.bucket_name {
            if *name != source.bucket {
                return Err(ConfigError::new(
                    "DMS_SETTINGS",
                    format!(
                        "BucketName `{name}` is not SOURCE's bucket_name `{}`",
                        source.bucket
                    ),
                ));
            }
        }
        if let Some(folder) = &dms_settings.bucket_folder {
            if source.path.is_empty() {
                source.path = folder.clone();
            } else if *folder != source.path {
                return Err(ConfigError::new(
                    "DMS_SETTINGS",
                    format!(
                        "BucketFolder `{folder}` is not SOURCE's bucket_path `{}`",
                        source.path
                    ),
                ));
            }
        }
        let target = TargetConfig::parse(
            &get("TARGET").ok_or_else(|| ConfigError::new("TARGET", "is not set"))?,
        )?;
        let nats = get("NATS").map(|v| NatsConfig::parse(&v)).transpose()?;
        let target_schema = get("TARGET_SCHEMA").unwrap_or_else(|| "paper_engine".into());
        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        let parallelism = match get("PARALLELISM") {
            None => default_parallelism(),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(ConfigError::new(
                        "PARALLELISM",
                        format!("`{v}` is not a whole number of at least 1"),
                    ))
                }
            },
        };
        let metrics_port = match get("METRICS_PORT") {
            None => 9100,
            Some(v) => v.trim().parse::<u16>().map_err(|_| {
                ConfigError::new(
                    "METRICS_PORT",
                    format!("`{v}` is not a port number (0-65535)"),
                )
            })?,
        };
        let metrics_bind = match get("METRICS_BIND") {
            None => std::net::IpAddr::from([0, 0, 0, 0]),
            Some(v) => v.trim().parse::<std::net::IpAddr>().map_err(|_| {
                ConfigError::new("METRICS_BIND", format!("`{v}` is not an IP address"))
            })?,
        };
        let token = |var: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = get(var).unwrap_or_else(|| default.to_string());
            let value = value.trim().to_string();
            if value
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
            {
                return Err(ConfigError::new(
                    var,
                    format!(
                        "`{value}` cannot be a NATS subject token (no spaces, '.', '*' or '>')"
                    ),
                ));
            }
            Ok(value)
        };
        let notification_datasource = token("NOTIFICATION_DATASOURCE", "paper-engine")?;
        let notification_process = token("NOTIFICATION_PROCESS", "orders")?;
        let log_format = match get("LOG_FORMAT") {
            None => crate::logging::LogFormat::Text,
            Some(v) => crate::logging::LogFormat::parse(&v).ok_or_else(|| {
                ConfigError::new("LOG_FORMAT", format!("`{v}` is not `text` or `json`"))
            })?,
        };
        let subject = |var: &'static str| -> Result<Option<String>, ConfigError> {
            match get(var) {
                None => Ok(None),
                Some(v) if v.trim().chars().any(char::is_whitespace) => Err(ConfigError::new(
                    var,
                    format!("`{}` is not a NATS subject (no spaces)", v.trim()),
                )),
                Some(v) => Ok(Some(v.trim().to_string())),
            }
        };
        let events_subject = subject("EVENTS_SUBJECT")?;
        let trigger_subject = subject("TRIGGER_SUBJECT")?;
        let events_durable = get("EVENTS_DURABLE")
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "paper-engine-orders".into());
        if !events_durable
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::new(
                "EVENTS_DURABLE",
                format!("`{events_durable}` is not a consumer name (letters, digits, - and _)"),
            ));
        }
        let api_token = match get("API_TOKEN") {
            None => None,
            Some(v) if v.trim().len() < 16 => {
                return Err(ConfigError::new(
                    "API_TOKEN",
                    "is shorter than 16 characters (use a long random value, e.g. `openssl rand -hex 32`)",
                ))
            }
            Some(v) => Some(Secret::new(v.trim())),
        };
        let late_file_policy = match get("LATE_FILE_POLICY") {
            None => crate::loader::LateFilePolicy::default(),
            Some(v) => crate::loader::LateFilePolicy::parse(&v).ok_or_else(|| {
                ConfigError::new(
                    "LATE_FILE_POLICY",
                    format!("`{}` is not `apply-guarded` or `stop`", v.trim()),
                )
            })?,
        };
        let reload_policy = match get("RELOAD_POLICY") {
            None => crate::loader::ReloadPolicy::default(),
            Some(v) => crate::loader::ReloadPolicy::parse(&v).ok_or_else(|| {
                ConfigError::new(
                    "RELOAD_POLICY",
                    format!("`{}` is not `stop` or `reload`", v.trim()),
                )
            })?,
        };
        let schema_drift_policy = match get("SCHEMA_DRIFT_POLICY") {
            None => crate::loader::SchemaDriftPolicy::default(),
            Some(v) => crate::loader::SchemaDriftPolicy::parse(&v).ok_or_else(|| {
                ConfigError::new(
                    "SCHEMA_DRIFT_POLICY",
                    format!("`{}` is not `stop` or `add-columns`", v.trim()),
                )
            })?,
        };
        let config = Config {
            run_as_service,
            min_sleep,
            max_sleep,
            full_list_interval,
            one_shot_wait,
            shutdown_grace,
            dry_run,
            notifications,
            nats,
            source,
            target,
            target_schema,
            log_level,
            parallelism,
            metrics_addr: std::net::SocketAddr::new(metrics_bind, metrics_port),
            notification_datasource,
            notification_process,
            log_format,
            only_tables: None,
            events_subject,
            events_durable,
            trigger_subject,
            api_token,
            dms_settings,
            late_file_policy,
            reload_policy,
            schema_drift_policy,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules that involve more than one variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_sleep > self.max_sleep {
            return Err(ConfigError::new(
                "MIN_SLEEP",
                format!(
                    "{} is greater than MAX_SLEEP ({})",
                    self.min_sleep, self.max_sleep
                ),
            ));
        }
        let schema = &self.target_schema;
        if schema.len() > 63
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || schema.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(ConfigError::new(
                "TARGET_SCHEMA",
                format!("`{schema}` is not a lower-case SQL identifier of at most 63 characters"),
            ));
        }
        let level = self.log_level.trim().to_ascii_lowercase();
        let is_level = matches!(
            level.as_str(),
            "error" | "warn" | "warning" | "info" | "debug" | "trace" | "off"
        );
        // Beyond a plain level, env-filter directives such as `info,paper_engine_orders=debug`.
        let is_directive =
            level.contains('=') && tracing_subscriber::EnvFilter::try_new(&level).is_ok();
        if !is_level && !is_directive {
            return Err(ConfigError::new(
                "LOG_LEVEL",
                format!(
                    "`{}` is not a level (error, warn, info, debug, trace)",
                    self.log_level
                ),
            ));
        }
        if self.notifications && !self.dry_run && self.nats.is_none() {
            return Err(ConfigError::new(
                "NATS",
                "is not set, but NOTIFICATIONS is on (set NATS=nats://host:4222 or NOTIFICATIONS=false)",
            ));
        }
        for (var, set) in [
            ("EVENTS_SUBJECT", self.events_subject.is_some()),
            ("TRIGGER_SUBJECT", self.trigger_subject.is_some()),
        ] {
            if set && self.nats.is_none() {
                return Err(ConfigError::new(
                    var,
                    "is set, but NATS is not (set NATS=nats://host:4222)",
                ));
            }
        }
        Ok(())
    }

    /// Whether change notifications are written and published.
    pub fn publishes(&self) -> bool {
        self.notifications && !self.dry_run
    }
}

#[cfg(test)]
mod tests;
