//! `GET /`: the status as a page for a person. No external assets and no JavaScript: it reads
//! as plain HTML, refreshes itself (`<meta http-equiv="refresh">`), highlights errors, and
//! gives each stopped stream the exact `retry`/`skip` commands.
use std::fmt::Write;

use super::utc_time;
use super::{StatusReport, StreamState};
use crate::source::display_key;

/// Seconds between the page's own refreshes.
pub const REFRESH_SECONDS: u32 = 10;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn key(k: &str) -> String {
    escape(&display_key(k))
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5rem;color:#1b1f24;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.summary{padding:.6rem .9rem;border-radius:6px;margin:.8rem 0;font-weight:600}
.summary.ok{background:#e6f4ea;color:#137333}.summary.bad{background:#fce8e6;color:#a50e0e}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.error td{background:#fff1f0}
.state{display:inline-block;padding:.05rem .5rem;border-radius:10px;font-weight:600;font-size:.8rem}
.state.success{background:#e6f4ea;color:#137333}.state.error{background:#a50e0e;color:#fff}
.state.preliminary{background:#eef1f4;color:#57606a}.state.skipped{background:#fff4e5;color:#8a4b00}
.stopped{border:2px solid #a50e0e;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0;background:#fffafa}
.stopped h3{margin:0 0 .4rem;font-size:1rem;color:#a50e0e}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:#f6f8fa;padding:.5rem .7rem;border-radius:4px;white-space:pre-wrap;word-break:break-all;margin:.3rem 0}
td.t{white-space:nowrap}.muted{color:#57606a;font-size:.85rem}.err{color:#a50e0e}
";

/// The page while no status can be read (503).
pub fn unavailable(why: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><title>UNAVAILABLE paper-engine-orders</title><style>{STYLE}</style></head><body><h1>paper-engine-orders</h1><div class=\"summary bad\" id=\"summary\">No status right now: {}.</div><p class=\"muted\">This page refreshes every {REFRESH_SECONDS} s; <a href=\"/readyz\">/readyz</a> says which side does not answer.</p></body></html>\n",
        escape(why)
    )
}

/// Renders the page.
pub fn render(report: &StatusReport) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} paper-engine-orders</title><style>{STYLE}</style></head><body>",
        if report.ok { "OK" } else { "STOPPED" }
    );
    let _ = writeln!(
        h,
        "<h1>paper-engine-orders</h1><div class=\"muted\">{} mode, version {}; as of {} UTC; this page refreshes every {REFRESH_SECONDS} s.</div>",
        escape(report.mode.as_deref().unwrap_or("service")),
        escape(crate::VERSION),
        utc_time(&report.generated_at)
    );
    if report.ok {
        let _ = writeln!(
            h,
            "<div class=\"summary ok\" id=\"summary\">All {} streams are delivering: none is stopped.</div>",
            report.streams.len()
        );
    } else {
        let _ = writeln!(
            h,
            "<div class=\"summary bad\" id=\"summary\">{} of {} streams stopped at a bad file: see below what to run.</div>",
            report.stopped_streams,
            report.streams.len()
        );
    }
    h.push_str("<h2>Streams</h2><table id=\"streams\"><thead><tr><th>Table</th><th>State</th><th>Pending files</th><th>Last delivery (UTC)</th><th>Last file</th><th>Files today</th><th>Rows today</th><th>Creates</th><th>Amends</th><th>Removes</th></tr></thead><tbody>\n");
    for s in &report.streams {
        let (when, file) = match &s.last_delivery {
            Some(d) => (
                format!("{} (delivery {})", utc_time(&d.finished_at), d.delivery_id),
                key(&d.key),
            ),
            None => ("&ndash;".to_string(), "&ndash;".to_string()),
        };
        let t = &s.rows_today;
        let _ = writeln!(
            h,
            "<tr class=\"{state}\" id=\"stream-{table}\"><td>{table}</td><td><span class=\"state {state}\">{state}</span></td><td class=\"n\">{}</td><td class=\"t\">{when}</td><td><code>{file}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            s.pending_files,
            t.files,
            t.rows,
            t.creates,
            t.amends,
            t.removes,
            state = s.state.as_str(),
            table = escape(&s.table),
        );
    }
    h.push_str("</tbody></table>\n");
    for s in report
        .streams
        .iter()
        .filter(|s| s.state == StreamState::Error)
    {
        let Some(stopped) = &s.stopped else { continue };
        let _ = writeln!(
            h,
            "<div class=\"stopped\" id=\"stopped-{table}\"><h3>{table} is stopped at <code>{file}</code></h3>\
             <div>Since {since} UTC (delivery {id}, {attempts} failed attempt{s}); {waiting} file{ws} wait{wv} behind it.</div>\
             <div class=\"err\">Reason: {reason}</div>\
             <div>Fix the table or the object, then run:</div><pre class=\"retry\">{retry}</pre>\
             <div>or let the stream go on without this file:</div><pre class=\"skip\">{skip}</pre></div>",
            table = escape(&s.table),
            file = key(&stopped.key),
            since = utc_time(&stopped.since),
            id = stopped.delivery_id,
            attempts = stopped.attempts,
            s = if stopped.attempts == 1 { "" } else { "s" },
            waiting = stopped.files_waiting,
            ws = if stopped.files_waiting == 1 { "" } else { "s" },
            wv = if stopped.files_waiting == 1 { "s" } else { "" },
            reason = escape(&stopped.reason),
            retry = escape(&stopped.retry_command),
            skip = escape(&stopped.skip_command),
        );
    }
    let skipped: Vec<_> = report
        .streams
        .iter()
        .flat_map(|s| s.skipped.iter().map(move |k| (&s.table, k)))
        .collect();
    if !skipped.is_empty() {
        h.push_str("<h2>Skipped files</h2><table id=\"skipped\"><thead><tr><th>Table</th><th>File</th><th>When (UTC)</th><th>By</th><th>Reason</th></tr></thead><tbody>\n");
        for (table, k) in skipped {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(table),
                key(&k.key),
                utc_time(&k.at),
                escape(k.by.as_deref().unwrap_or("")),
                escape(&k.reason)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if let Some(outbox) = &report.outbox {
        let _ = writeln!(
            h,
            "<h2>Notifications</h2><div id=\"outbox\">{} message{} waiting in the outbox.</div>",
            outbox.pending,
            if outbox.pending == 1 { "" } else { "s" }
        );
    }
    if let Some(recent) = &report.recent_deliveries {
        let _ = writeln!(
            h,
            "<h2>Last {} deliveries</h2><table id=\"deliveries\"><thead><tr><th>Delivery</th><th>Finished (UTC)</th><th>Table</th><th>Status</th><th>File</th><th>Rows</th><th>Creates</th><th>Amends</th><th>Removes</th><th>Seconds</th><th>Error</th></tr></thead><tbody>",
            recent.len()
        );
        for d in recent {
            let class = match d.status {
                "ERROR" => "error",
                "SKIPPED" => "skipped",
                _ => "success",
            };
            let _ = writeln!(
                h,
                "<tr class=\"{class}\"><td class=\"n\">{}</td><td class=\"t\">{}</td><td>{}</td><td><span class=\"state {class}\">{}</span></td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td class=\"err\">{}</td></tr>",
                d.delivery_id,
                utc_time(&d.finished_at),
                escape(&d.table),
                d.status,
                key(&d.key),
                d.rows,
                d.creates,
                d.amends,
                d.removes,
                d.seconds,
                escape(d.error.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("<p class=\"muted\">The same as JSON: <a href=\"/status\">/status</a>; metrics: <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n");
    h
}
