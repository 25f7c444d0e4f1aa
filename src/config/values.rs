//! Values: [`Secret`] (never printed), [`ConfigError`] and the parsers of single values.

use std::fmt;

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
    pub(crate) fn new(var: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            var,
            reason: reason.into(),
        }
    }
}

pub(super) fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(
            var,
            format!("`{value}` is not a boolean (use true/false, 1/0 or yes/no)"),
        )),
    }
}

/// The longest wait any `*_SLEEP`/`*_INTERVAL`/`*_WAIT` variable may ask for: one week.
pub(super) const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

pub(super) fn parse_seconds(var: &'static str, value: &str) -> Result<f64, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > MAX_SECONDS => Err(ConfigError::new(
            var,
            format!("`{value}` seconds is more than a week ({MAX_SECONDS} s)"),
        )),
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(ConfigError::new(
            var,
            format!("`{value}` is not a non-negative number of seconds"),
        )),
    }
}
