//! Versioned schema migrations from `db/*.sql`, applied at start-up, idempotently, in one
//! transaction under an advisory lock (so several loaders starting at once apply them once).
use tracing::info;

use super::queries::quote_ident;
use super::TargetError;

/// A migration: its version, its name and its SQL.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Add new files to `db/` and here; never edit an applied one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../../db/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_outbox",
        sql: include_str!("../../db/0002_outbox.sql"),
    },
    Migration {
        version: 3,
        name: "0003_ledger_history",
        sql: include_str!("../../db/0003_ledger_history.sql"),
    },
    Migration {
        version: 4,
        name: "0004_operator_actions",
        sql: include_str!("../../db/0004_operator_actions.sql"),
    },
    Migration {
        version: 5,
        name: "0005_runs",
        sql: include_str!("../../db/0005_runs.sql"),
    },
    Migration {
        version: 6,
        name: "0006_outbox_message_id",
        sql: include_str!("../../db/0006_outbox_message_id.sql"),
    },
    Migration {
        version: 7,
        name: "0007_reloads_and_late_files",
        sql: include_str!("../../db/0007_reloads_and_late_files.sql"),
    },
    Migration {
        version: 8,
        name: "0008_schema_drift",
        sql: include_str!("../../db/0008_schema_drift.sql"),
    },
];

/// FNV-1a of the migration text: detects an applied migration that was edited afterwards.
pub fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Applies the migrations not yet applied to `schema` in a transaction of their own, under an
/// advisory lock; returns how many it applied.
pub async fn migrate(client: &tokio_postgres::Client, schema: &str) -> Result<usize, TargetError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(TargetError::pg("begin migrations"))?;
    let applied = async {
        client
            .execute(
                "SELECT pg_advisory_xact_lock(1885434985, hashtext('migrate:' || $1::text))",
                &[&schema],
            )
            .await
            .map_err(TargetError::pg("lock for migrations"))?;
        apply(client, schema).await
    }
    .await;
    match applied {
        Ok(done) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(TargetError::pg("commit migrations"))?;
            for m in &done {
                info!(
                    "Migration {} ({}) applied to schema {schema}.",
                    m.version, m.name
                );
            }
            Ok(done.len())
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Applies the migrations not yet applied to `schema` inside the transaction the caller opened
/// (a dry run opens one it rolls back, so nothing of the schema persists); returns those it
/// applied.
pub async fn apply(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<Vec<&'static Migration>, TargetError> {
    let s = quote_ident(schema);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             SET LOCAL search_path TO {s};
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 checksum   text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(TargetError::pg("create schema_migrations"))?;
    let applied = client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await
        .map_err(TargetError::pg("read schema_migrations"))?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        match applied.iter().find(|r| r.get::<_, i32>(0) == m.version) {
            Some(row) => {
                let recorded: String = row.get(1);
                if recorded != sum {
                    return Err(TargetError::Schema(format!(
                        "migration {} was changed after it was applied (checksum {recorded} in \
                         the database, {sum} in db/{}.sql)",
                        m.version, m.name
                    )));
                }
            }
            None => {
                client
                    .batch_execute(m.sql)
                    .await
                    .map_err(TargetError::pg("apply migration"))?;
                client
                    .execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        &[&m.version, &m.name, &sum],
                    )
                    .await
                    .map_err(TargetError::pg("record migration"))?;
                done.push(m);
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_match_their_files() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/db"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sql")
            })
            .count();
        assert_eq!(files, MIGRATIONS.len(), "every db/*.sql must be listed");
    }

    #[test]
    fn checksum_is_stable() {
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_ne!(checksum("a"), checksum("b"));
    }
}
