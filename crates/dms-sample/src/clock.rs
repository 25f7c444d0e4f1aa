//! Simulated time (microseconds since the Unix epoch, UTC): the history's span, the CDC
//! commit instants and the trading sessions.

use chrono::{DateTime, Datelike, NaiveDate, Weekday};

pub(super) const SEC: i64 = 1_000_000;
pub(super) const MS: i64 = 1_000;
pub(super) const MINUTE: i64 = 60 * SEC;
pub(super) const HOUR: i64 = 60 * MINUTE;
pub(super) const BATCH_STEP: i64 = MINUTE;

fn micros(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_milli_opt(h, mi, s, ms))
        .expect("valid constant date")
        .and_utc()
        .timestamp_micros()
}

pub(super) fn history_start() -> i64 {
    micros(2022, 9, 1, 0, 0, 0, 0)
}

fn first_commit() -> i64 {
    micros(2022, 9, 22, 9, 58, 53, 123)
}

/// End of the simulated history: the full load is a snapshot at this instant.
pub(super) fn snapshot() -> i64 {
    first_commit() - BATCH_STEP
}

/// Keeps a microsecond fraction from ending in `0`, so the 6-digit text equals Postgres'.
pub(super) fn norm(t: i64) -> i64 {
    let sub = t.rem_euclid(SEC);
    if sub != 0 && sub % 10 == 0 {
        t + 1
    } else {
        t
    }
}

pub(super) fn datetime(t: i64) -> chrono::NaiveDateTime {
    DateTime::from_timestamp_micros(t)
        .expect("timestamp in range")
        .naive_utc()
}

/// Commit time of CDC batch `batch` (0-based), in microseconds since the Unix epoch (UTC).
pub fn cdc_commit_micros(batch: usize) -> i64 {
    first_commit() + batch as i64 * BATCH_STEP
}

/// Trading sessions (weekdays 07:00-20:30 UTC) of the history, to place order creations.
pub(super) struct Sessions {
    spans: Vec<(i64, i64)>,
    cum: Vec<i64>,
}

impl Sessions {
    pub(super) fn new(start: i64, end: i64) -> Sessions {
        let mut day = datetime(start).date();
        let mut spans = Vec::new();
        loop {
            let s = day
                .and_hms_opt(7, 0, 0)
                .expect("time")
                .and_utc()
                .timestamp_micros();
            if s >= end {
                break;
            }
            let e = day
                .and_hms_opt(20, 30, 0)
                .expect("time")
                .and_utc()
                .timestamp_micros()
                .min(end);
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && s < e {
                spans.push((s, e));
            }
            day = day.succ_opt().expect("date in range");
        }
        let mut cum = Vec::with_capacity(spans.len());
        let mut total = 0;
        for (s, e) in &spans {
            total += e - s;
            cum.push(total);
        }
        Sessions { spans, cum }
    }

    /// The instant at fraction `f` (0..1) of the total trading time.
    pub(super) fn at(&self, f: f64) -> i64 {
        let total = *self.cum.last().expect("at least one session");
        let target = ((f * total as f64) as i64).clamp(0, total - 1);
        let i = self.cum.partition_point(|&c| c <= target);
        let before = if i == 0 { 0 } else { self.cum[i - 1] };
        self.spans[i].0 + (target - before)
    }
}
