//! Named SQL of the operator's view of the ledger (`status`, `deliveries`, `retry`, `skip`).
//! Each is served by an index: what it costs depends on what it returns, not on the history.
use super::qualified;

/// Each table's last SUCCESS (`$1`: the table names): one index probe per table
/// (`loader_deliveries_last_success_idx`).
pub fn last_deliveries(schema: &str) -> String {
    format!(
        "SELECT t.name, d.id, d.object_key, d.finished_at
           FROM unnest($1::text[]) AS t(name)
           CROSS JOIN LATERAL (
                SELECT id, object_key, finished_at FROM {}
                 WHERE table_name = t.name AND status = 'SUCCESS'
                 ORDER BY finished_at DESC LIMIT 1) d",
        qualified(schema, "loader_deliveries")
    )
}

/// Per table, what the deliveries finished since `$1` did.
pub fn counts_since(schema: &str) -> String {
    format!(
        "SELECT table_name, count(*), coalesce(sum(rows), 0)::bigint,
                coalesce(sum(creates), 0)::bigint, coalesce(sum(amends), 0)::bigint,
                coalesce(sum(removes), 0)::bigint, coalesce(sum(unchanged), 0)::bigint
           FROM {} WHERE status = 'SUCCESS' AND finished_at >= $1
          GROUP BY table_name",
        qualified(schema, "loader_deliveries")
    )
}

/// The files streams are stopped at (`ERROR` rows, a partial index) with their attempt count.
pub fn failed_heads(schema: &str) -> String {
    format!(
        "SELECT d.table_name, d.object_key, d.id, coalesce(d.error, ''), d.finished_at,
                (SELECT count(*) FROM {failures} f WHERE f.object_key = d.object_key)
           FROM {ledger} d WHERE d.status = 'ERROR'
          ORDER BY d.table_name, d.object_key",
        ledger = qualified(schema, "loader_deliveries"),
        failures = qualified(schema, "loader_failures"),
    )
}

/// The files operators skipped (`$1`: the table names), with who skipped them last.
pub fn skipped(schema: &str) -> String {
    format!(
        "SELECT d.table_name, d.object_key, coalesce(d.error, ''), d.finished_at,
                (SELECT a.actor FROM {actions} a
                  WHERE a.object_key = d.object_key AND a.action = 'SKIP'
                  ORDER BY a.id DESC LIMIT 1)
           FROM {ledger} d
          WHERE d.table_name = ANY($1) AND d.status = 'SKIPPED'
          ORDER BY d.finished_at DESC LIMIT 100",
        ledger = qualified(schema, "loader_deliveries"),
        actions = qualified(schema, "loader_actions"),
    )
}

/// Ledger rows, newest first: `$1` table (or NULL), `$2` status (or NULL), `$3` limit.
pub fn deliveries(schema: &str) -> String {
    format!(
        "SELECT id, object_key, table_name, kind, status, rows, creates, amends, removes,
                unchanged, started_at, finished_at, error, host
           FROM {}
          WHERE ($1::text IS NULL OR table_name = $1) AND ($2::text IS NULL OR status = $2)
          ORDER BY finished_at DESC, id DESC LIMIT $3",
        qualified(schema, "loader_deliveries")
    )
}

/// The failed attempts of the keys in `$1`, oldest first.
pub fn failures_of(schema: &str) -> String {
    format!(
        "SELECT object_key, delivery_id, failed_at, error, host FROM {}
          WHERE object_key = ANY($1) ORDER BY object_key, id",
        qualified(schema, "loader_failures")
    )
}

/// The operators' actions on the keys in `$1`, oldest first.
pub fn actions_of(schema: &str) -> String {
    format!(
        "SELECT object_key, action, delivery_id, reason, actor, via, at FROM {}
          WHERE object_key = ANY($1) ORDER BY object_key, id",
        qualified(schema, "loader_actions")
    )
}

/// A key's ledger row, locked for an action: table, id, status, etag.
pub fn lock_entry(schema: &str) -> String {
    format!(
        "SELECT table_name, id, status, etag FROM {} WHERE object_key = $1 FOR UPDATE",
        qualified(schema, "loader_deliveries")
    )
}

/// `retry`: the ERROR row goes (the attempt history stays in `loader_failures`).
/// A full-load re-run the stream stopped at (`RELOAD_POLICY=stop`) is approved by it: the next
/// attempt replaces the table.
pub fn retry_entry(schema: &str) -> String {
    format!(
        "WITH approved AS (
            UPDATE {} SET status = 'APPROVED' WHERE object_key = $1 AND status = 'DETECTED'
         )
         DELETE FROM {} WHERE object_key = $1 AND status = 'ERROR'",
        qualified(schema, "loader_reloads"),
        qualified(schema, "loader_deliveries")
    )
}

/// `skip`: the ERROR row becomes SKIPPED with the operator's reason (`$2`) and host (`$3`).
/// A full-load re-run the stream stopped at is dismissed by it: the table stays as it is.
pub fn skip_entry(schema: &str) -> String {
    format!(
        "WITH dismissed AS (
            UPDATE {} SET status = 'DISMISSED', finished_at = clock_timestamp()
             WHERE object_key = $1 AND status IN ('DETECTED', 'APPROVED')
         )
         UPDATE {} SET status = 'SKIPPED', error = $2, finished_at = clock_timestamp(), host = $3
          WHERE object_key = $1 AND status = 'ERROR'",
        qualified(schema, "loader_reloads"),
        qualified(schema, "loader_deliveries")
    )
}

/// An operator's action: `$1` action, `$2` key, `$3` table, `$4` delivery id, `$5` etag,
/// `$6` reason, `$7` actor, `$8` via.
pub fn record_action(schema: &str) -> String {
    format!(
        "INSERT INTO {} (action, object_key, table_name, delivery_id, etag, reason, actor, via)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        qualified(schema, "loader_actions")
    )
}
