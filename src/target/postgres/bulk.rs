//! The bulk paths: a full load COPYed straight into its table (its indexes dropped and rebuilt
//! around the COPY), and the replay of a change file's set-aside inserts
//! ([`crate::target::direct`]).
use std::sync::Arc;

use deadpool_postgres::ClientWrapper;

use super::apply::copy_chunks;
use super::statements::TableSql;
use super::PgTarget;
use crate::dms::{TableSpec, TupleLayout};
use crate::target::direct::{DirectInserts, Replay};
use crate::target::{queries, DeliveryPlan, Encoding, NetCounts, Rows, StreamSummary, TargetError};

/// Size of the COPY chunks of a replay of set-aside inserts.
const CHUNK_BYTES: usize = 512 * 1024;

/// Microseconds from the Unix epoch to Postgres' (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The rows' `_loaded_at` (the delivery's start) in binary COPY form: microseconds since
/// 2000-01-01 UTC.
fn loaded_at(plan: &DeliveryPlan) -> i64 {
    plan.started_at.timestamp_micros() - POSTGRES_EPOCH_MICROS
}

impl PgTarget {
    /// A full-load file COPYed straight into its table, in the delivery's transaction: every
    /// row is a CREATE. A key that exists already or repeats (23505) is a
    /// [`TargetError::NeedsStaging`]. Returns the decoder's summary, the counts and the rows that
    /// went straight in (all).
    pub(super) async fn apply_direct(
        &self,
        client: &ClientWrapper,
        sql: &TableSql,
        plan: &DeliveryPlan,
        rows: Rows,
    ) -> Result<(StreamSummary, NetCounts, u64), TargetError> {
        let spec = &plan.table;
        // Into an empty table, or one no bigger than the file, the indexes are dropped and
        // rebuilt after the COPY (in this transaction): one sort beats a B-tree insert per
        // row. It locks the table against readers for the length of this file's load.
        let rebuild = if client
            .query_one(
                &sql.rebuild_indexes,
                &[&(plan.size as f64), &spec.name, &sql.qualified],
            )
            .await
            .map_err(TargetError::pg("check whether to rebuild the indexes"))?
            .get::<_, bool>(0)
        {
            self.drop_indexes(client, spec).await?
        } else {
            Vec::new()
        };
        let loaded_at = loaded_at(plan);
        let chunks = rows(Encoding {
            layout: TupleLayout::Direct {
                delivery_id: plan.id,
                loaded_at,
            },
            split_inserts: false,
            unsupplied_marks: false,
        });
        let (summary, _) = copy_chunks(client, &sql.copy_direct, chunks, plan)
            .await
            .map_err(|e| match e.sqlstate() {
                // A key twice in the file: it needs the staged apply after all.
                Some("23505") => TargetError::NeedsStaging(plan.key.clone()),
                _ => e,
            })?;
        for create in &rebuild {
            client.batch_execute(create).await.map_err(|e| {
                match e.code().map(|c| c.code()) {
                    // A key twice in the file: staged apply after all.
                    Some("23505") => TargetError::NeedsStaging(plan.key.clone()),
                    _ => TargetError::Postgres {
                        context: "rebuild an index",
                        source: e,
                    },
                }
            })?;
        }
        let counts = NetCounts {
            creates: summary.rows,
            ..NetCounts::default()
        };
        Ok((summary, counts, summary.rows))
    }

    /// COPYs the inserts the decoder set aside straight into the table (those bound for the
    /// staging table went there with the file's other staged rows); returns how many went
    /// straight in. If one of their keys exists already, that COPY is undone and the rest of
    /// them is staged.
    pub(super) async fn copy_inserts(
        &self,
        client: &ClientWrapper,
        sql: &TableSql,
        plan: &DeliveryPlan,
        inserts: Arc<DirectInserts>,
    ) -> Result<u64, TargetError> {
        let loaded_at = loaded_at(plan);
        let direct = Replay::Direct {
            delivery_id: plan.id,
            loaded_at,
        };
        // The savepoint goes out with the COPY (one round trip). It is not released after a
        // successful COPY: the delivery's commit keeps what it holds, as a release would.
        let savepoint = async {
            client
                .batch_execute("SAVEPOINT direct_inserts")
                .await
                .map_err(TargetError::pg("open a savepoint"))
        };
        let copy = copy_chunks(
            client,
            &sql.copy_direct,
            inserts.replay(direct, CHUNK_BYTES),
            plan,
        );
        let (opened, copied) = futures::join!(savepoint, copy);
        opened?;
        let direct_rows = match copied {
            Ok((summary, _)) => summary.rows,
            Err(e) if e.sqlstate() == Some("23505") => {
                // A key that exists already: stage them all.
                client
                    .batch_execute(
                        "ROLLBACK TO SAVEPOINT direct_inserts; RELEASE SAVEPOINT direct_inserts",
                    )
                    .await
                    .map_err(TargetError::pg("roll back to a savepoint"))?;
                copy_chunks(
                    client,
                    &sql.copy_stage,
                    inserts.replay(Replay::All, CHUNK_BYTES),
                    plan,
                )
                .await?;
                0
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(
            "Delivery {}: {direct_rows} of {} set-aside rows straight into the table.",
            plan.id,
            inserts.rows()
        );
        Ok(direct_rows)
    }

    /// Drops the table's indexes and unique constraints; returns the statements that rebuild
    /// them, from the catalog's own definitions.
    async fn drop_indexes(
        &self,
        client: &ClientWrapper,
        spec: &TableSpec,
    ) -> Result<Vec<String>, TargetError> {
        let table = queries::qualified(&self.schema, &spec.name);
        let rows = client
            .query(queries::TABLE_INDEXES, &[&table])
            .await
            .map_err(TargetError::pg("read the table's indexes"))?;
        let mut rebuild = Vec::new();
        for row in rows {
            let (kind, name, definition): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            let (drop, create) = if kind == "constraint" {
                (
                    format!("ALTER TABLE {table} DROP CONSTRAINT {name}"),
                    format!("ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"),
                )
            } else {
                (format!("DROP INDEX {name}"), definition)
            };
            client
                .batch_execute(&drop)
                .await
                .map_err(TargetError::pg("drop an index for the bulk load"))?;
            rebuild.push(create);
        }
        Ok(rebuild)
    }
}
