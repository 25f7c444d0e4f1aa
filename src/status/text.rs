//! The `status` command's text: one aligned line per table, then for each stopped stream the
//! file, the reason and the commands that go on.
use std::fmt::Write;

use super::utc_time;
use super::StatusReport;
use crate::ledger::DeliveryRecord;
use crate::source::display_key;

pub(super) fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Status at {} UTC: {} of {} streams stopped.",
        utc_time(&report.generated_at),
        report.stopped_streams,
        report.streams.len()
    );
    let header = [
        "table",
        "state",
        "pending",
        "last delivery (UTC)",
        "files today",
        "rows today",
        "creates",
        "amends",
        "removes",
        "last file",
    ];
    let rows: Vec<Vec<String>> = report
        .streams
        .iter()
        .map(|s| {
            let (when, file) = match &s.last_delivery {
                Some(d) => (utc_time(&d.finished_at), display_key(&d.key).into_owned()),
                None => ("-".to_string(), "-".to_string()),
            };
            vec![
                s.table.clone(),
                s.state.as_str().to_string(),
                s.pending_files.to_string(),
                when,
                s.rows_today.files.to_string(),
                s.rows_today.rows.to_string(),
                s.rows_today.creates.to_string(),
                s.rows_today.amends.to_string(),
                s.rows_today.removes.to_string(),
                file,
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Text columns align left, numbers right; the last column is not padded.
    let numeric = [
        false, false, true, false, true, true, true, true, true, false,
    ];
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else if numeric[i] {
                let _ = write!(l, "{cell:>w$}", w = widths[i]);
            } else {
                let _ = write!(l, "{cell:<w$}", w = widths[i]);
            }
        }
        l.trim_end().to_string()
    };
    out.push('\n');
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(out, "{}", line(&header));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    for s in &report.streams {
        if let Some(stopped) = &s.stopped {
            let _ = writeln!(
                out,
                "\n{}: stopped at {} since {} UTC (delivery {}, {} failed attempt{}); {} file{} wait{} behind it.",
                s.table,
                display_key(&stopped.key),
                utc_time(&stopped.since),
                stopped.delivery_id,
                stopped.attempts,
                if stopped.attempts == 1 { "" } else { "s" },
                stopped.files_waiting,
                if stopped.files_waiting == 1 { "" } else { "s" },
                if stopped.files_waiting == 1 { "s" } else { "" },
            );
            let _ = writeln!(out, "  reason: {}", stopped.reason);
            let _ = writeln!(
                out,
                "  fix the table or the object, then run: {}",
                stopped.retry_command
            );
            let _ = writeln!(
                out,
                "  or let the stream go on without it: {}",
                stopped.skip_command
            );
        }
        for skipped in &s.skipped {
            let _ = writeln!(
                out,
                "{}: skipped {} at {} UTC{}: {}",
                s.table,
                display_key(&skipped.key),
                utc_time(&skipped.at),
                skipped
                    .by
                    .as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default(),
                skipped.reason
            );
        }
    }
    out
}

/// One line per ledger row, its failures and actions indented under it.
pub fn deliveries_text(records: &[DeliveryRecord]) -> String {
    let mut out = String::new();
    if records.is_empty() {
        out.push_str("No deliveries match.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>8}  {:<19}  {:<12}  {:<7}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9}  {:>8}  file",
        "delivery",
        "finished (UTC)",
        "table",
        "status",
        "rows",
        "creates",
        "amends",
        "removes",
        "unchanged",
        "seconds"
    );
    for d in records {
        let _ = writeln!(
            out,
            "{:>8}  {:<19}  {:<12}  {:<7}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9}  {:>8.2}  {}",
            d.delivery_id,
            utc_time(&d.finished_at),
            d.table,
            d.status,
            d.rows,
            d.creates,
            d.amends,
            d.removes,
            d.unchanged,
            d.seconds,
            display_key(&d.key)
        );
        if let Some(error) = &d.error {
            let what = if d.status == "SKIPPED" {
                "reason"
            } else {
                "error"
            };
            let _ = writeln!(out, "          {what}: {error}");
        }
        for f in &d.failures {
            let _ = writeln!(
                out,
                "          failed {} (delivery {} on {}): {}",
                utc_time(&f.failed_at),
                f.delivery_id,
                f.host,
                f.error
            );
        }
        for a in &d.actions {
            let _ = writeln!(
                out,
                "          {} by {} via {} at {}{}",
                a.action,
                a.actor,
                a.via,
                utc_time(&a.at),
                if a.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.reason)
                }
            );
        }
    }
    out
}
