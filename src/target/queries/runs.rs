//! Named SQL of `loader_runs`.
use super::qualified;

/// Inserts or replaces a run: `$1` id, `$2` name, `$3` mode, `$4` status, `$5` the run's JSON.
pub fn save_run(schema: &str) -> String {
    format!(
        "INSERT INTO {} AS r (id, name, mode, status, document)
         VALUES ($1::text::uuid, $2, $3, $4, $5::text::jsonb)
         ON CONFLICT (id) DO UPDATE
            SET status = EXCLUDED.status, document = EXCLUDED.document,
                updated_at = clock_timestamp()",
        qualified(schema, "loader_runs")
    )
}

/// A run's JSON by id (`$1`, text).
pub fn get_run(schema: &str) -> String {
    format!(
        "SELECT document::text FROM {} WHERE id = $1::text::uuid",
        qualified(schema, "loader_runs")
    )
}

/// The latest runs' JSON, newest first (`$1` limit).
pub fn list_runs(schema: &str) -> String {
    format!(
        "SELECT document::text FROM {} ORDER BY created_at DESC LIMIT $1",
        qualified(schema, "loader_runs")
    )
}

/// The runs left in progress (a restart finishes them), oldest first.
pub fn runs_in_progress(schema: &str) -> String {
    format!(
        "SELECT document::text FROM {} WHERE status = 'IN_PROGRESS' ORDER BY created_at",
        qualified(schema, "loader_runs")
    )
}

/// What the ledger says of the keys in `$1`: key, id, status, error, rows and counts.
pub fn ledger_counts(schema: &str) -> String {
    format!(
        "SELECT object_key, id, status, error, rows, creates, amends, removes, unchanged
           FROM {} WHERE object_key = ANY($1)",
        qualified(schema, "loader_deliveries")
    )
}
