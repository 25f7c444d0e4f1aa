//! The connection strings: `SOURCE` (the bucket), `TARGET` (Postgres) and `NATS`.

use std::fmt;
use std::str::FromStr;

use super::values::{ConfigError, Secret};

/// Static S3 keys: `bucket_id` and `bucket_key` (S3-compatible servers, or keys of a user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticCredentials {
    /// `bucket_id`: the access key id.
    pub access_key_id: String,
    /// `bucket_key`: the secret access key.
    pub secret_access_key: Secret,
}

/// A CA bundle for the S3 endpoint: where it was read from, and its PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// The file, as configured.
    pub path: String,
    /// Its PEM text (at least one certificate).
    pub pem: Vec<u8>,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaBundle({})", self.path)
    }
}

/// Where the DMS files are: the `SOURCE` variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceConfig {
    /// `bucket_endpoint`: an S3-compatible endpoint URL; `None` means AWS itself.
    pub endpoint: Option<String>,
    /// `bucket_id` and `bucket_key`, given together; `None`: the AWS default credential chain
    /// (environment, shared config and credentials files, web identity, ECS, instance profile).
    pub credentials: Option<StaticCredentials>,
    /// `bucket_ca` (else `AWS_CA_BUNDLE`): PEM certificates trusted for an `https` endpoint, in
    /// addition to the system's roots. Read by [`SourceConfig::load_ca`].
    pub ca: Option<CaBundle>,
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
        let mut ca = None;
        // Nothing of a token is ever echoed: after a stray space it may be (part of) the secret.
        let mut previous: Option<&str> = None;
        for token in value.split_whitespace() {
            let Some((k, v)) = token.split_once('=') else {
                return Err(err(match previous {
                    Some(p) => format!(
                        "expected key=value pairs separated by spaces, found a token without '=' after `{p}=...` (a value cannot contain spaces)"
                    ),
                    None => "expected key=value pairs separated by spaces, found a token without '=' at the start".to_string(),
                }));
            };
            if previous == Some("bucket_key")
                && !matches!(
                    k,
                    "bucket_endpoint"
                        | "bucket_id"
                        | "bucket_key"
                        | "bucket_name"
                        | "bucket_path"
                        | "bucket_region"
                        | "bucket_ca"
                )
            {
                return Err(err(
                    "an unknown key follows `bucket_key=...` (a value cannot contain spaces; the key is not shown, it may be part of the secret)".to_string(),
                ));
            }
            let slot = match k {
                "bucket_endpoint" => &mut endpoint,
                "bucket_id" => &mut id,
                "bucket_key" => &mut key,
                "bucket_name" => &mut name,
                "bucket_path" => &mut path,
                "bucket_region" => &mut region,
                "bucket_ca" => &mut ca,
                other => {
                    return Err(err(format!(
                        "unknown key `{other}` (expected bucket_endpoint, bucket_id, bucket_key, \
                         bucket_name, bucket_path, bucket_region, bucket_ca)"
                    )))
                }
            };
            if slot.is_some() {
                return Err(err(format!("`{k}` is given twice")));
            }
            *slot = Some(v.to_string());
            previous = Some(match k {
                "bucket_endpoint" => "bucket_endpoint",
                "bucket_id" => "bucket_id",
                "bucket_key" => "bucket_key",
                "bucket_name" => "bucket_name",
                "bucket_path" => "bucket_path",
                "bucket_ca" => "bucket_ca",
                _ => "bucket_region",
            });
        }
        let bucket = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("bucket_name is missing".into()))?;
        let credentials = match (id.filter(|n| !n.is_empty()), key.filter(|n| !n.is_empty())) {
            (Some(access_key_id), Some(secret)) => Some(StaticCredentials {
                access_key_id,
                secret_access_key: Secret::new(secret),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(err(
                    "bucket_id is given without bucket_key (give both, or neither for the AWS default credential chain)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "bucket_key is given without bucket_id (give both, or neither for the AWS default credential chain)".into(),
                ))
            }
        };
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
            credentials,
            ca: ca.filter(|c| !c.is_empty()).map(|path| CaBundle {
                path,
                pem: Vec::new(),
            }),
            bucket,
            path: path.unwrap_or_default().trim_matches('/').to_string(),
            region: region
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into()),
        })
    }
}

impl SourceConfig {
    /// Reads the CA bundle: `bucket_ca` if `SOURCE` names one, else `aws_ca_bundle` (the
    /// `AWS_CA_BUNDLE` variable). A file that cannot be read or holds no PEM certificate is an
    /// error naming the setting and the file.
    pub fn load_ca(&mut self, aws_ca_bundle: Option<String>) -> Result<(), ConfigError> {
        let (var, path) = match (&self.ca, aws_ca_bundle) {
            (Some(ca), _) => ("SOURCE", ca.path.clone()),
            (None, Some(path)) => ("AWS_CA_BUNDLE", path.trim().to_string()),
            (None, None) => return Ok(()),
        };
        let what = if var == "SOURCE" { "bucket_ca " } else { "" };
        let pem = std::fs::read(&path)
            .map_err(|e| ConfigError::new(var, format!("{what}`{path}` cannot be read: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        for (n, certificate) in rustls_pemfile::certs(&mut pem.as_slice()).enumerate() {
            let added = certificate
                .map_err(|e| e.to_string())
                .and_then(|der| roots.add(der).map_err(|e| e.to_string()));
            if let Err(e) = added {
                return Err(ConfigError::new(
                    var,
                    format!("{what}`{path}`: certificate {} is not valid: {e}", n + 1),
                ));
            }
        }
        if roots.is_empty() {
            return Err(ConfigError::new(
                var,
                format!("{what}`{path}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            ));
        }
        self.ca = Some(CaBundle { path, pem });
        Ok(())
    }
}

/// The `sslmode` values, for errors.
const SSL_MODES: &str = "disable, prefer, require, verify-ca or verify-full";

/// TLS to Postgres: libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgTls {
    Disable,
    /// TLS when the server offers it (libpq's default), the certificate not checked.
    Prefer,
    /// TLS or no connection, the certificate not checked.
    Require,
    /// TLS, the certificate chained to `sslrootcert`.
    VerifyCa,
    /// TLS, the certificate chained to `sslrootcert` and naming the host.
    VerifyFull,
}

/// The Postgres connection: the `TARGET` variable.
#[derive(Clone)]
pub struct TargetConfig {
    pub pg: tokio_postgres::Config,
    /// `sslmode` (default `prefer`, as libpq).
    pub tls: PgTls,
    /// `sslrootcert` (default `~/.postgresql/root.crt`, as libpq).
    pub root_cert: Option<std::path::PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of a libpq `key=value` string or a URL's query (the
/// Postgres client library knows neither `verify-*` nor `sslrootcert`): (the rest, sslmode,
/// sslrootcert).
fn split_tls(value: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    if let Some((base, query)) = value
        .split_once('?')
        .filter(|_| value.starts_with("postgres://") || value.starts_with("postgresql://"))
    {
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = Some(v.to_string()),
                Some(("sslrootcert", v)) => {
                    root = Some(
                        percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .into_owned(),
                    )
                }
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, mode, root);
    }
    let mut kept = Vec::new();
    for token in value.split_whitespace() {
        if let Some(v) = token.strip_prefix("sslmode=") {
            mode = Some(v.trim_matches('\'').to_string());
        } else if let Some(v) = token.strip_prefix("sslrootcert=") {
            root = Some(v.trim_matches('\'').to_string());
        } else {
            kept.push(token);
        }
    }
    (kept.join(" "), mode, root)
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
        let (rest, mode, root_cert) = split_tls(value);
        let tls = match mode.as_deref() {
            None | Some("prefer") => PgTls::Prefer,
            Some("disable") => PgTls::Disable,
            Some("require") => PgTls::Require,
            Some("verify-ca") => PgTls::VerifyCa,
            Some("verify-full") => PgTls::VerifyFull,
            Some(other) => {
                let why = format!("sslmode `{other}` is not {SSL_MODES}");
                return Err(ConfigError::new("TARGET", why));
            }
        };
        let mut pg = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // tokio-postgres' parse errors name the option, never its value.
            ConfigError::new("TARGET", format!("not a valid connection string ({e})"))
        })?;
        if pg.get_hosts().is_empty() {
            return Err(ConfigError::new("TARGET", "no host given (host=...)"));
        }
        if pg.get_user().is_none() {
            return Err(ConfigError::new("TARGET", "no user given (user=...)"));
        }
        // Operators see which loader holds what in pg_stat_activity (and its locks in pg_locks):
        // the program and its process id, unless TARGET names the application itself.
        if pg.get_application_name().is_none() {
            pg.application_name(format!("paper-engine-orders pid {}", std::process::id()));
        }
        pg.ssl_mode(match tls {
            PgTls::Disable => tokio_postgres::config::SslMode::Disable,
            PgTls::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(TargetConfig {
            pg,
            tls,
            root_cert: root_cert.map(std::path::PathBuf::from),
        })
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
