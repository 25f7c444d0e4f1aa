//! Typed configuration, parsed once from the environment (`Config::from_env`) and validated.
//!
//! Every error names the variable and what is wrong with it, and never echoes a secret: the
//! secret parts (`bucket_key`, passwords in `TARGET` and `NATS`) are wrapped in [`Secret`],
//! whose `Debug` and `Display` print `***`.
use std::fmt;
use std::str::FromStr;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for handing to a client library. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A start-up configuration error: the variable and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(var: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            var,
            reason: reason.into(),
        }
    }
}

/// Where the DMS files are: the `SOURCE` variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceConfig {
    /// `bucket_endpoint`: an S3-compatible endpoint URL; `None` means AWS itself.
    pub endpoint: Option<String>,
    /// `bucket_id`: the access key id.
    pub access_key_id: String,
    /// `bucket_key`: the secret access key.
    pub secret_access_key: Secret,
    /// `bucket_name`.
    pub bucket: String,
    /// `bucket_path`: the prefix under which `<schema>/<table>/` folders live, without slashes at
    /// either end (may be empty).
    pub path: String,
    /// `bucket_region`, default `us-east-1`.
    pub region: String,
}

impl SourceConfig {
    /// Parses `bucket_endpoint=... bucket_id=... bucket_key=... bucket_name=... bucket_path=...`.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::new("SOURCE", reason);
        let mut endpoint = None;
        let mut id = None;
        let mut key = None;
        let mut name = None;
        let mut path = None;
        let mut region = None;
        for token in value.split_whitespace() {
            let Some((k, v)) = token.split_once('=') else {
                return Err(err(format!(
                    "expected key=value pairs, found a token without '=' (near `{}`)",
                    token.split_at(token.len().min(16)).0
                )));
            };
            let slot = match k {
                "bucket_endpoint" => &mut endpoint,
                "bucket_id" => &mut id,
                "bucket_key" => &mut key,
                "bucket_name" => &mut name,
                "bucket_path" => &mut path,
                "bucket_region" => &mut region,
                other => {
                    return Err(err(format!(
                        "unknown key `{other}` (expected bucket_endpoint, bucket_id, bucket_key, \
                         bucket_name, bucket_path, bucket_region)"
                    )))
                }
            };
            if slot.is_some() {
                return Err(err(format!("`{k}` is given twice")));
            }
            *slot = Some(v.to_string());
        }
        let bucket = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("bucket_name is missing".into()))?;
        let access_key_id = id
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("bucket_id (the access key id) is missing".into()))?;
        let secret = key
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("bucket_key (the secret access key) is missing".into()))?;
        let endpoint = match endpoint.filter(|e| !e.is_empty()) {
            None => None,
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => Some(e),
            Some(e) if e.contains("://") => {
                return Err(err(
                    "bucket_endpoint must be an http:// or https:// URL".into()
                ))
            }
            Some(e) => Some(format!("https://{e}")),
        };
        Ok(SourceConfig {
            endpoint,
            access_key_id,
            secret_access_key: Secret::new(secret),
            bucket,
            path: path.unwrap_or_default().trim_matches('/').to_string(),
            region: region
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into()),
        })
    }
}

/// The Postgres connection: the `TARGET` variable.
#[derive(Clone)]
pub struct TargetConfig {
    pub pg: tokio_postgres::Config,
}

impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetConfig")
            .field("user", &self.pg.get_user())
            .field("dbname", &self.pg.get_dbname())
            .field("password", &self.pg.get_password().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl TargetConfig {
    /// Parses a libpq `key=value` string or a `postgres://` URL.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let pg = tokio_postgres::Config::from_str(value).map_err(|e| {
            // tokio-postgres' parse errors name the option, never its value.
            ConfigError::new("TARGET", format!("not a valid connection string ({e})"))
        })?;
        if pg.get_hosts().is_empty() {
            return Err(ConfigError::new("TARGET", "no host given (host=...)"));
        }
        if pg.get_user().is_none() {
            return Err(ConfigError::new("TARGET", "no user given (user=...)"));
        }
        Ok(TargetConfig { pg })
    }

    /// The database name (defaults to the user name, as libpq does).
    pub fn dbname(&self) -> &str {
        self.pg
            .get_dbname()
            .or(self.pg.get_user())
            .unwrap_or("postgres")
    }
}

/// The NATS server: the `NATS` variable, `nats://user:password@host:4222`.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port` with the credentials removed: safe to log.
    pub server: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

impl NatsConfig {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let err = |reason: &str| ConfigError::new("NATS", reason.to_string());
        let (scheme, rest) = value
            .split_once("://")
            .ok_or_else(|| err("expected a URL like nats://user:password@host:4222"))?;
        if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
            return Err(err(
                "the URL scheme must be nats:// (or tls://, ws://, wss://)",
            ));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let hostport = hostport.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') || hostport.contains(' ') {
            return Err(err("the URL has no valid host[:port]"));
        }
        if let Some((_, port)) = hostport.rsplit_once(':') {
            if port.parse::<u16>().is_err() {
                return Err(err("the port is not a number from 0 to 65535"));
            }
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(user.to_string()), Some(Secret::new(pass))),
                None => (Some(u.to_string()), None),
            },
        };
        Ok(NatsConfig {
            server: format!("{scheme}://{hostport}"),
            user,
            password,
        })
    }
}

/// The whole configuration of the loader.
#[derive(Clone, Debug)]
pub struct Config {
    pub run_as_service: bool,
    pub min_sleep: f64,
    pub max_sleep: f64,
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
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(
            var,
            format!("`{value}` is not a boolean (use true/false, 1/0 or yes/no)"),
        )),
    }
}

fn parse_seconds(var: &'static str, value: &str) -> Result<f64, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(ConfigError::new(
            var,
            format!("`{value}` is not a non-negative number of seconds"),
        )),
    }
}

/// Default for `PARALLELISM`: the number of cores.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
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
        let dry_run = boolean("DRY_RUN", false)?;
        let notifications = boolean("NOTIFICATIONS", true)?;
        let source = SourceConfig::parse(
            &get("SOURCE").ok_or_else(|| ConfigError::new("SOURCE", "is not set"))?,
        )?;
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
        let config = Config {
            run_as_service,
            min_sleep,
            max_sleep,
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
        Ok(())
    }

    /// Whether change notifications are written and published.
    pub fn publishes(&self) -> bool {
        self.notifications && !self.dry_run
    }
}

/// Reads a `docker run --env-file` style file: `NAME=value` lines, `#` comments and blank lines
/// ignored, no quote processing (as Docker does). Returns the pairs in file order.
pub fn read_env_file(path: &std::path::Path) -> std::io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => pairs.push((k.trim().to_string(), v.to_string())),
            // `NAME` alone takes the value from the caller's environment, as Docker does.
            None => {
                if let Ok(v) = std::env::var(line.trim()) {
                    pairs.push((line.trim().to_string(), v));
                }
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SOURCE: &str = "bucket_endpoint=http://127.0.0.1:5000 bucket_id=AKID bucket_key=s3cr3tKEY bucket_name=dms bucket_path=data/";
    const TARGET: &str =
        "user=loader password=pgPASSw0rd host=localhost port=5432 dbname=paper_engine";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = HashMap::new();
        map.insert("SOURCE".into(), SOURCE.into());
        map.insert("TARGET".into(), TARGET.into());
        map.insert("NATS".into(), "nats://nuser:natsPASS@127.0.0.1:4222".into());
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_match_the_replaced_service() {
        let c = Config::from_lookup(env(&[])).unwrap();
        assert!(c.run_as_service);
        assert_eq!((c.min_sleep, c.max_sleep), (15.0, 30.0));
        assert!(!c.dry_run);
        assert!(c.notifications);
        assert_eq!(c.target_schema, "paper_engine");
        assert_eq!(c.log_level, "info");
        assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:9100");
        assert_eq!(c.notification_datasource, "paper-engine");
        assert_eq!(c.notification_process, "orders");
        assert_eq!(c.source.bucket, "dms");
        assert_eq!(c.source.path, "data");
        assert_eq!(c.source.region, "us-east-1");
        assert_eq!(c.source.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.target.dbname(), "paper_engine");
        let nats = c.nats.unwrap();
        assert_eq!(nats.server, "nats://127.0.0.1:4222");
        assert_eq!(nats.user.as_deref(), Some("nuser"));
        assert_eq!(nats.password.unwrap().expose(), "natsPASS");
    }

    #[test]
    fn booleans_accept_every_spelling() {
        for (v, expected) in [
            ("true", true),
            ("TRUE", true),
            ("True", true),
            ("1", true),
            ("yes", true),
            ("YES", true),
            ("false", false),
            ("False", false),
            ("0", false),
            ("no", false),
            ("No", false),
        ] {
            let c = Config::from_lookup(env(&[("RUN_AS_SERVICE", v), ("DRY_RUN", v)])).unwrap();
            assert_eq!(c.run_as_service, expected, "{v}");
            assert_eq!(c.dry_run, expected, "{v}");
        }
        let e = Config::from_lookup(env(&[("DRY_RUN", "maybe")])).unwrap_err();
        assert_eq!(e.var, "DRY_RUN");
        assert!(e
            .to_string()
            .starts_with("DRY_RUN: `maybe` is not a boolean"));
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SOURCE", "")], "SOURCE"),
            (&[("TARGET", "")], "TARGET"),
            (&[("MIN_SLEEP", "abc")], "MIN_SLEEP"),
            (&[("MAX_SLEEP", "-1")], "MAX_SLEEP"),
            (&[("MIN_SLEEP", "40")], "MIN_SLEEP"),
            (&[("NATS", "http://x")], "NATS"),
            (&[("NATS", "")], "NATS"),
            (&[("TARGET_SCHEMA", "Bad-Name")], "TARGET_SCHEMA"),
            (&[("LOG_LEVEL", "loud!!")], "LOG_LEVEL"),
            (&[("PARALLELISM", "0")], "PARALLELISM"),
            (&[("METRICS_PORT", "99999")], "METRICS_PORT"),
            (&[("METRICS_BIND", "localhost:1")], "METRICS_BIND"),
            (
                &[("NOTIFICATION_DATASOURCE", "a.b")],
                "NOTIFICATION_DATASOURCE",
            ),
            (&[("NOTIFICATION_PROCESS", "x y")], "NOTIFICATION_PROCESS"),
            (&[("SOURCE", "bucket_id=a bucket_key=b")], "SOURCE"),
            (&[("SOURCE", "bucket_name=x bucket_key=b")], "SOURCE"),
            (&[("SOURCE", "bucket_name=x bucket_id=a")], "SOURCE"),
            (
                &[("SOURCE", "bucket_name=x bucket_id=a bucket_key=b oops")],
                "SOURCE",
            ),
            (
                &[(
                    "SOURCE",
                    "bucket_name=x bucket_id=a bucket_key=b colour=red",
                )],
                "SOURCE",
            ),
            (
                &[("TARGET", "host=localhost port=notaport user=u")],
                "TARGET",
            ),
            (&[("TARGET", "user=u dbname=x")], "TARGET"),
        ];
        for (pairs, var) in cases {
            let e = Config::from_lookup(env(pairs)).unwrap_err();
            assert_eq!(e.var, *var, "{pairs:?} gave {e}");
            assert!(e.to_string().starts_with(&format!("{var}: ")), "{e}");
        }
    }

    #[test]
    fn notifications_off_or_dry_run_need_no_nats() {
        let c = Config::from_lookup(env(&[("NATS", ""), ("NOTIFICATIONS", "false")])).unwrap();
        assert!(c.nats.is_none() && !c.publishes());
        let c = Config::from_lookup(env(&[("NATS", ""), ("DRY_RUN", "yes")])).unwrap();
        assert!(!c.publishes());
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::from_lookup(env(&[])).unwrap();
        let debug = format!("{c:?}");
        for secret in ["s3cr3tKEY", "pgPASSw0rd", "natsPASS"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        // Errors about a variable that holds a secret do not echo it either.
        for (var, value) in [
            (
                "SOURCE",
                "bucket_name=x bucket_id=a bucket_key=s3cr3tKEY junk",
            ),
            (
                "SOURCE",
                "bucket_name=x bucket_id=a bucket_key=s3cr3tKEY bucket_endpoint=ftp://h",
            ),
            ("TARGET", "user=u password=pgPASSw0rd host=h port=x"),
            ("TARGET", "postgres://u:pgPASSw0rd@h:badport/db"),
            ("NATS", "nats://u:natsPASS@h:notaport"),
        ] {
            let e = Config::from_lookup(env(&[(var, value)])).unwrap_err();
            let text = format!("{e} {e:?}");
            for secret in ["s3cr3tKEY", "pgPASSw0rd", "natsPASS"] {
                assert!(!text.contains(secret), "{secret} leaked in {text}");
            }
        }
    }

    #[test]
    fn source_endpoint_without_scheme_means_https_and_url_target_works() {
        let c = Config::from_lookup(env(&[
            ("SOURCE", "bucket_endpoint=s3.example.com bucket_id=a bucket_key=b bucket_name=n bucket_region=eu-west-1"),
            ("TARGET", "postgres://u:p@db.example.com:5433/orders"),
        ]))
        .unwrap();
        assert_eq!(c.source.endpoint.as_deref(), Some("https://s3.example.com"));
        assert_eq!(c.source.region, "eu-west-1");
        assert_eq!(c.source.path, "");
        assert_eq!(c.target.dbname(), "orders");
    }

    #[test]
    fn env_file_is_read_like_docker() {
        let dir = std::env::temp_dir().join(format!("peo-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.env");
        std::fs::write(&path, "# comment\n\nA=1\nB = two=2\nC=\"q\"\n").unwrap();
        let pairs = read_env_file(&path).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), " two=2".to_string()),
                ("C".to_string(), "\"q\"".to_string())
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
