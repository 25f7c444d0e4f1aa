//! Small helpers: libpq strings, identifiers, programs on PATH, formatting, the machine's load.
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

/// A libpq key=value string with `dbname` replaced.
pub fn with_db(dsn: &str, db: &str) -> String {
    dsn.split_whitespace()
        .filter(|kv| !kv.starts_with("dbname="))
        .chain(std::iter::once(format!("dbname={db}").as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn fmt_rate(rows_per_sec: f64) -> String {
    if rows_per_sec >= 1e6 {
        format!("{:.2}M", rows_per_sec / 1e6)
    } else {
        format!("{:.0}k", rows_per_sec / 1e3)
    }
}

pub fn fmt_rows(rows: u64) -> String {
    let s = rows.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The machine's CPU busy fraction over `period` (all cores, from `/proc/stat`).
pub fn cpu_busy(period: Duration) -> f64 {
    fn sample() -> Option<(u64, u64)> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some((fields.iter().sum(), idle))
    }
    let Some((total0, idle0)) = sample() else {
        return 0.0;
    };
    std::thread::sleep(period);
    let Some((total1, idle1)) = sample() else {
        return 0.0;
    };
    let total = total1.saturating_sub(total0).max(1) as f64;
    1.0 - idle1.saturating_sub(idle0) as f64 / total
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
