//! The statements of full-load re-runs (`RELOAD_POLICY`) and late change files
//! (`LATE_FILE_POLICY`). See `db/0007_reloads_and_late_files.sql`.
use super::{qualified, quote_ident};
use crate::dms::TableSpec;

/// What decides whether delivering the full-load file `$1` of table `$2` re-runs the table's
/// full load: the file's ledger row (id, etag, status), its open re-run (id, status), and whether
/// a change file of the table was delivered. Always one row.
pub fn reload_facts(schema: &str) -> String {
    let ledger = qualified(schema, "loader_deliveries");
    let reloads = qualified(schema, "loader_reloads");
    format!(
        "SELECT d.id, d.etag, d.status, r.id, r.status,
                EXISTS (SELECT 1 FROM {ledger} c
                         WHERE c.table_name = $2 AND c.kind = 'CDC' AND c.status = 'SUCCESS')
           FROM (SELECT 1) AS one
           LEFT JOIN {ledger} d ON d.object_key = $1
           LEFT JOIN LATERAL (SELECT id, status FROM {reloads}
                               WHERE object_key = $1 AND status IN ('DETECTED', 'APPROVED')
                               ORDER BY id DESC LIMIT 1) r ON true"
    )
}

/// A re-run the stream stops at (or whose full load failed): the file's delivered row leaves the
/// ledger (it is kept as the re-run's `previous_*`) and the re-run is recorded as DETECTED unless
/// one is open already. `$1` table, `$2` key, `$3` new ETag. Followed by the ERROR row.
pub fn detect_reload(schema: &str) -> String {
    let ledger = qualified(schema, "loader_deliveries");
    let reloads = qualified(schema, "loader_reloads");
    format!(
        "WITH old AS (
            DELETE FROM {ledger} WHERE object_key = $2 AND status IN ('SUCCESS', 'SKIPPED')
            RETURNING id, etag
         )
         INSERT INTO {reloads} (table_name, object_key, etag, previous_etag, previous_delivery_id)
         SELECT $1, $2, $3, old.etag, old.id FROM (SELECT 1) AS one LEFT JOIN old ON true
          WHERE NOT EXISTS (SELECT 1 FROM {reloads}
                             WHERE object_key = $2 AND status IN ('DETECTED', 'APPROVED'))"
    )
}

/// A re-run is applied: every full-load file's earlier ledger row goes (`$1`: their keys), their
/// SUCCESS rows follow.
pub fn clear_loads(schema: &str) -> String {
    format!(
        "DELETE FROM {} WHERE object_key = ANY($1)",
        qualified(schema, "loader_deliveries")
    )
}

/// The applied re-run: its open row becomes APPLIED, or (none open: RELOAD_POLICY=reload) a new
/// APPLIED row is written. `$1` delivery id, `$2` files, `$3` rows, `$4`..`$7` creates, amends,
/// removes, unchanged, `$8` key, `$9` table, `$10` ETag, `$11` previous ETag, `$12` previous
/// delivery id.
pub fn record_reload(schema: &str) -> String {
    let reloads = qualified(schema, "loader_reloads");
    format!(
        "WITH open AS (
            UPDATE {reloads}
               SET status = 'APPLIED', etag = $10, delivery_id = $1, files = $2, rows = $3,
                   creates = $4, amends = $5, removes = $6, unchanged = $7,
                   finished_at = clock_timestamp()
             WHERE object_key = $8 AND status IN ('DETECTED', 'APPROVED')
            RETURNING id
         )
         INSERT INTO {reloads} (table_name, object_key, etag, previous_etag, previous_delivery_id,
                                status, delivery_id, files, rows, creates, amends, removes,
                                unchanged, finished_at)
         SELECT $9, $8, $10, $11, $12, 'APPLIED', $1, $2, $3, $4, $5, $6, $7, clock_timestamp()
          WHERE NOT EXISTS (SELECT 1 FROM open)"
    )
}

/// Whether `$1` was delivered with ETag `$2` (a re-run another loader applied already).
pub fn is_delivered_as(schema: &str) -> String {
    format!(
        "SELECT 1 FROM {} WHERE object_key = $1 AND etag IS NOT DISTINCT FROM $2
            AND status IN ('SUCCESS', 'SKIPPED')",
        qualified(schema, "loader_deliveries")
    )
}

/// A re-run replaces the table: the rows whose key is not in the staged full load go. Returns
/// their number.
pub fn remove_absent(schema: &str, spec: &TableSpec, stage: &str) -> String {
    let key_join = spec
        .key
        .iter()
        .map(|&i| {
            let k = quote_ident(&spec.columns[i].name);
            format!("l.{k} = t.{k}")
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "DELETE FROM {} t WHERE NOT EXISTS (SELECT 1 FROM {} l WHERE {key_join})",
        qualified(schema, &spec.name),
        quote_ident(stage)
    )
}

/// For a late change file's guarded apply: the deliveries of change files of table `$4` whose
/// commit time (from the key's name) is after `$3` (`YYYYMMDDHHMMSSmmm`), whose rows the late
/// file must not overwrite.
pub fn newer_changes(schema: &str) -> String {
    format!(
        r"SELECT id FROM {} WHERE table_name = $4 AND kind = 'CDC' AND status = 'SUCCESS'
            AND regexp_replace(object_key, '^.*/([0-9]{{8}})-([0-9]{{9}})[^/]*$', '\1\2') > $3::text",
        qualified(schema, "loader_deliveries")
    )
}
