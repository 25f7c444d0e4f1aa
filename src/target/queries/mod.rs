//! Named SQL. Values are always bound (`$1`, ...); the only text put into SQL is identifiers, and
//! those come from the Postgres catalog and are quoted with [`quote_ident`].
use crate::dms::{ColumnType, TableSpec};

pub use apply::{apply_stage, apply_stage_guarded, StageShape};

mod apply;
pub mod operate;
pub mod reload;
pub mod runs;

/// Quotes an SQL identifier (`"` doubled), whatever it holds.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The SQL spelling of a column type.
pub fn sql_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int2 => "int2".into(),
        ColumnType::Int4 => "int4".into(),
        ColumnType::Int8 => "int8".into(),
        ColumnType::Numeric {
            precision: Some(p),
            scale,
        } => format!("numeric({p},{})", scale.unwrap_or(0)),
        ColumnType::Numeric { .. } => "numeric".into(),
        ColumnType::Varchar(Some(n)) => format!("varchar({n})"),
        ColumnType::Varchar(None) => "varchar".into(),
        ColumnType::Bpchar(Some(n)) => format!("char({n})"),
        ColumnType::Bpchar(None) => "bpchar".into(),
        ColumnType::Text => "text".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::Timestamptz => "timestamptz".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Bool => "bool".into(),
        ColumnType::Float4 => "float4".into(),
        ColumnType::Float8 => "float8".into(),
    }
}

/// The replicated tables of a schema (those with a `_delivery_id` column) with their columns in
/// order, their types and whether each is part of the primary key (and where).
pub const TABLE_COLUMNS: &str = "
SELECT c.relname::text, a.attname::text, t.typname::text, a.atttypmod, a.attnotnull,
       array_position(i.indkey::int2[], a.attnum) AS key_position
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
 WHERE n.nspname = $1
   AND c.relkind IN ('r', 'p')
   AND EXISTS (SELECT 1 FROM pg_attribute d
                WHERE d.attrelid = c.oid AND d.attname = '_delivery_id' AND NOT d.attisdropped)
   AND a.attname NOT IN ('_delivery_id', '_loaded_at')
 ORDER BY c.relname, a.attnum";

/// The ledger rows of the keys in `$1` (key, id, status, etag, error): served by the
/// `object_key` unique index, whatever the size of the ledger.
pub fn ledger_entries(schema: &str) -> String {
    format!(
        "SELECT object_key, id, status, etag, error FROM {} WHERE object_key = ANY($1)",
        qualified(schema, "loader_deliveries")
    )
}

pub fn next_delivery_id(schema: &str) -> String {
    format!(
        "SELECT nextval(pg_get_serial_sequence('{}', 'id'))",
        qualified(schema, "loader_deliveries").replace('\'', "''")
    )
}

/// Serializes deliveries of one table stream across loaders: `$1` is `schema.table`.
/// When table `$1`'s last successful delivery finished (NULL if none).
pub fn last_success(schema: &str) -> String {
    format!(
        "SELECT max(finished_at) FROM {} WHERE table_name = $1 AND status = 'SUCCESS'",
        qualified(schema, "loader_deliveries")
    )
}

/// The id `next_delivery_id` would return, without taking it (a dry run's first id).
pub fn peek_delivery_id(schema: &str) -> String {
    format!(
        "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {}",
        qualified(schema, "loader_deliveries_id_seq")
    )
}

/// Whether a table stream (`$1`: `schema.table`) is free, checked inside an operator's
/// transaction: taken for that transaction only, it fails while a loader holds the stream's lease.
pub const LOCK_STREAM: &str = "SELECT pg_try_advisory_xact_lock(1885434985, hashtext($1))";

/// A table stream's lease (`$1`: `schema.table`): a session lock on the connection that delivers
/// the stream, held until [`RELEASE_STREAM`] or until the connection ends (a dead loader's
/// connection closing frees its streams for the others).
pub const LEASE_STREAM: &str = "SELECT pg_try_advisory_lock(1885434985, hashtext($1))";

/// Gives a table stream's lease back.
pub const RELEASE_STREAM: &str = "SELECT pg_advisory_unlock(1885434985, hashtext($1))";

/// Makes one outbox relay per schema (`$1`) the publisher: a session lock, held while the
/// relay's own connection lives.
pub const LOCK_PUBLISHER: &str =
    "SELECT pg_try_advisory_lock(1885434985, hashtext('publisher:' || $1::text))";

pub fn is_delivered(schema: &str) -> String {
    format!(
        "SELECT 1 FROM {} WHERE object_key = $1 AND status IN ('SUCCESS', 'SKIPPED')",
        qualified(schema, "loader_deliveries")
    )
}

/// The name of the staging table of `spec`'s layout (`marked`: with the `_unsupplied` marks):
/// `_peo_stage_` and a hash of its columns and types, so a connection keeps one per layout and
/// two layouts never share one.
pub fn stage_name(spec: &TableSpec, marked: bool) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    if marked {
        for byte in b"_unsupplied\0bytea\0" {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    for column in &spec.columns {
        for byte in column
            .name
            .bytes()
            .chain([0])
            .chain(sql_type(&column.ty).bytes())
            .chain([0])
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("_peo_stage_{hash:016x}")
}

/// The staging table `name` of `spec`: `_seq`, `_op`, then the table's columns, same types, and
/// when `marked`, `_unsupplied` (one bit per column DMS did not supply, see
/// [`crate::dms::StagingTuple`]). `persistent`: created once per connection (outside a delivery) and emptied by every commit;
/// otherwise created inside the delivery's transaction and dropped with it (a dry run, whose
/// transaction never commits).
pub fn create_stage(name: &str, spec: &TableSpec, marked: bool, persistent: bool) -> String {
    let mut columns = vec!["\"_seq\" int8".to_string(), "\"_op\" text".to_string()];
    columns.extend(
        spec.columns
            .iter()
            .map(|c| format!("{} {}", quote_ident(&c.name), sql_type(&c.ty))),
    );
    if marked {
        columns.push("\"_unsupplied\" bytea".to_string());
    }
    let name = quote_ident(name);
    let columns = columns.join(", ");
    if persistent {
        // In its own transaction, so a delivery that rolls back cannot take it away; quiet when
        // the pooled connection has it already.
        format!(
            "BEGIN; SET LOCAL client_min_messages = warning; \
             CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS; COMMIT"
        )
    } else {
        format!("CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP")
    }
}

/// COPY into the staging table `name`.
pub fn copy_stage(name: &str) -> String {
    format!("COPY {} FROM STDIN (FORMAT binary)", quote_ident(name))
}

/// Whether a full-load file should be COPYed with the table's indexes dropped and rebuilt after
/// it: when the table is empty, or when the file holds about as many rows as the table or more
/// (one sort of everything beats a b-tree insert per row then). The file's rows are estimated from
/// its size (`$1`, bytes) and the rows per byte of the table's earlier full-load files (`$2` is the
/// table's name in the ledger); the table's from `pg_class.reltuples` (unknown: no rebuild); `$3`
/// is `"schema"."table"`.
pub fn rebuild_indexes(schema: &str, table: &str) -> String {
    let target = qualified(schema, table);
    let ledger = qualified(schema, "loader_deliveries");
    format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {target})
             OR coalesce($1::float8 * (SELECT sum(rows)::float8 / nullif(sum(size), 0)
                                         FROM {ledger}
                                        WHERE table_name = $2 AND kind = 'LOAD'
                                          AND status = 'SUCCESS'), 0)
                >= (SELECT CASE WHEN reltuples < 0 THEN 'Infinity'::float8 ELSE reltuples END
                      FROM pg_class WHERE oid = $3::text::regclass)"
    )
}

/// The table's primary key and unique constraints (name, definition) and its other indexes
/// (schema-qualified name, full CREATE INDEX statement), as the catalog prints them: what a bulk
/// load into an empty table drops and rebuilds. `$1` is `"schema"."table"`.
pub const TABLE_INDEXES: &str = "
SELECT 'constraint', quote_ident(c.conname), pg_get_constraintdef(c.oid)
  FROM pg_constraint c
 WHERE c.conrelid = $1::text::regclass AND c.contype IN ('p', 'u')
UNION ALL
SELECT 'index', quote_ident(n.nspname) || '.' || quote_ident(i.relname), pg_get_indexdef(i.oid)
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_namespace n ON n.oid = i.relnamespace
 WHERE x.indrelid = $1::text::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)";

/// COPY straight into the table (a full-load file), lineage columns included.
pub fn copy_direct(schema: &str, spec: &TableSpec) -> String {
    let mut cols: Vec<String> = spec.columns.iter().map(|c| quote_ident(&c.name)).collect();
    cols.push("\"_delivery_id\"".into());
    cols.push("\"_loaded_at\"".into());
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        qualified(schema, &spec.name),
        cols.join(", ")
    )
}

/// Removes an earlier ERROR row of a key, before its SUCCESS row is written (same transaction);
/// the failure stays in `loader_failures`.
pub fn clear_failure(schema: &str) -> String {
    format!(
        "DELETE FROM {} WHERE object_key = $1 AND status = 'ERROR'",
        qualified(schema, "loader_deliveries")
    )
}

/// `spec`'s last `added` columns added to its table (a schema drift taken in), nullable.
pub fn add_columns(schema: &str, spec: &TableSpec, added: usize) -> String {
    let columns = &spec.columns[spec.columns.len() - added..];
    format!(
        "ALTER TABLE {} {}",
        qualified(schema, &spec.name),
        columns
            .iter()
            .map(|c| format!(
                "ADD COLUMN IF NOT EXISTS {} {}",
                quote_ident(&c.name),
                sql_type(&c.ty)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The SUCCESS row, written in the delivery's own transaction.
pub fn record_success(schema: &str) -> String {
    let ledger = qualified(schema, "loader_deliveries");
    format!(
        "INSERT INTO {ledger} (id, object_key, etag, size, table_name, kind, status, rows, creates,
                               amends, removes, unchanged, max_event_id, started_at, finished_at,
                               error, host, loader_version, late, added_columns)
         VALUES ($1, $2, $3, $4, $5, $6, 'SUCCESS', $7, $8, $9, $10, $11, $12, $13,
                 clock_timestamp(), NULL, $14, $15, $16, $17)"
    )
}

/// A change notification, written in the delivery's own transaction.
pub fn insert_outbox(schema: &str) -> String {
    format!(
        "INSERT INTO {} (delivery_id, subject, payload) VALUES ($1, $2, $3)",
        qualified(schema, "loader_outbox")
    )
}

pub fn outbox_pending(schema: &str) -> String {
    format!(
        "SELECT id, delivery_id, subject, payload, msg_id::text FROM {} WHERE published_at IS NULL ORDER BY id LIMIT $1",
        qualified(schema, "loader_outbox")
    )
}

pub fn outbox_published(schema: &str) -> String {
    format!(
        "UPDATE {} SET published_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL WHERE id = $1",
        qualified(schema, "loader_outbox")
    )
}

pub fn outbox_failed(schema: &str) -> String {
    format!(
        "UPDATE {} SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
        qualified(schema, "loader_outbox")
    )
}

pub fn outbox_count(schema: &str) -> String {
    format!(
        "SELECT count(*) FROM {} WHERE published_at IS NULL",
        qualified(schema, "loader_outbox")
    )
}

/// The ERROR row, written after the delivery's transaction rolled back, together with its
/// entry in the history of failures (`$1`..`$10` as for the ERROR row).
pub fn record_failure(schema: &str) -> String {
    let ledger = qualified(schema, "loader_deliveries");
    let failures = qualified(schema, "loader_failures");
    format!(
        "WITH history AS (
            INSERT INTO {failures} (delivery_id, object_key, etag, size, table_name, kind,
                                    started_at, error, host, loader_version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         )
         INSERT INTO {ledger} AS d (id, object_key, etag, size, table_name, kind, status, started_at,
                                   finished_at, error, host, loader_version)
         VALUES ($1, $2, $3, $4, $5, $6, 'ERROR', $7, clock_timestamp(), $8, $9, $10)
         ON CONFLICT (object_key) DO UPDATE
            SET id = EXCLUDED.id, etag = EXCLUDED.etag, size = EXCLUDED.size,
                started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
                error = EXCLUDED.error, host = EXCLUDED.host,
                loader_version = EXCLUDED.loader_version
          WHERE d.status = 'ERROR'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("orders"), "\"orders\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(qualified("s", "t"), "\"s\".\"t\"");
    }
}
