//! A delivery in its transaction: the checks, the staged apply, and its ledger and outbox rows.
use std::sync::Arc;

use bytes::Bytes;
use futures::SinkExt;
use tokio::sync::mpsc;

use super::PgTarget;
use crate::dms::{TableSpec, TupleLayout, COPY_BINARY_HEADER, COPY_BINARY_TRAILER};
use crate::target::direct::{self, DirectInserts};
use crate::target::{
    queries, Chunk, DeliveryPlan, DeliveryResult, Encoding, NetCounts, Rows, StreamSummary,
    TargetError,
};

/// Streams the decoder's tuples into `COPY <sql>` and returns the decoder's summary and the
/// inserts it set aside, if any.
pub(super) async fn copy_chunks(
    client: &tokio_postgres::Client,
    sql: &str,
    mut chunks: mpsc::Receiver<Chunk>,
    plan: &DeliveryPlan,
) -> Result<(StreamSummary, Option<DirectInserts>), TargetError> {
    let sink = client
        .copy_in::<_, Bytes>(sql)
        .await
        .map_err(TargetError::pg("start COPY"))?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(COPY_BINARY_HEADER))
        .await
        .map_err(TargetError::pg("COPY"))?;
    let mut inserts = None;
    let summary = loop {
        match chunks.recv().await {
            Some(Chunk::Data(bytes)) => sink.send(bytes).await.map_err(TargetError::pg("COPY"))?,
            Some(Chunk::Inserts(set_aside)) => inserts = Some(set_aside),
            Some(Chunk::End(summary)) => break summary,
            Some(Chunk::Failed(failure)) if failure.needs_staging => {
                return Err(TargetError::NeedsStaging(plan.key.clone()))
            }
            Some(Chunk::Failed(failure)) => return Err(TargetError::Input(failure)),
            None => {
                return Err(TargetError::Input(crate::target::ChunkFailure {
                    message: format!("{}: the decoder stopped without a result", plan.key),
                    retryable: true,
                    needs_staging: false,
                }))
            }
        }
    };
    sink.send(Bytes::from_static(COPY_BINARY_TRAILER))
        .await
        .map_err(TargetError::pg("COPY"))?;
    sink.as_mut()
        .finish()
        .await
        .map_err(TargetError::pg("COPY"))?;
    Ok((summary, inserts))
}

impl PgTarget {
    /// The body of a delivery, inside a transaction (or savepoint) the caller opened.
    pub(super) async fn apply_in_transaction(
        &self,
        client: &tokio_postgres::Client,
        plan: &DeliveryPlan,
        rows: Rows,
    ) -> Result<DeliveryResult, TargetError> {
        let spec = &plan.table;
        // A dry run writes nothing, so it takes no stream lock: a loader running meanwhile is
        // not made to leave its streams to it.
        if self.dry_run.is_none() {
            let stream = format!("{}.{}", self.schema, spec.name);
            let locked: bool = client
                .query_one(queries::LOCK_STREAM, &[&stream])
                .await
                .map_err(TargetError::pg("lock the table stream"))?
                .get(0);
            if !locked {
                return Err(TargetError::Busy(spec.name.clone()));
            }
        }
        if client
            .query_opt(&queries::is_delivered(&self.schema), &[&plan.key])
            .await
            .map_err(TargetError::pg("check the ledger"))?
            .is_some()
        {
            return Err(TargetError::AlreadyDelivered(plan.key.clone()));
        }
        // A full-load file goes straight into its table: every row is a CREATE unless its key
        // exists already, which the primary key reports (23505) and which sends the file through
        // the staged apply instead. A normal full load (new keys, file after file) takes one pass.
        if plan.direct_allowed {
            return self.apply_direct(client, plan, rows).await;
        }
        // A change file's new keys go straight into the table (see `direct`); everything else,
        // and any file when the key cannot be compared by its bytes, takes the staged apply.
        client
            .batch_execute(&queries::create_stage(spec))
            .await
            .map_err(TargetError::pg("create the staging table"))?;
        let chunks = rows(if plan.kind == "CDC" {
            cdc_encoding(spec)
        } else {
            Encoding::staging()
        });
        let (summary, inserts) = copy_chunks(client, queries::COPY_STAGE, chunks, plan).await?;
        let direct_rows = match inserts {
            Some(inserts) => self.copy_inserts(client, plan, Arc::new(inserts)).await?,
            None => 0,
        };
        let mut counts = NetCounts {
            creates: direct_rows,
            ..NetCounts::default()
        };
        if summary.rows > direct_rows {
            let row = client
                .query_one(
                    &queries::apply_stage(&self.schema, spec),
                    &[&plan.id, &plan.started_at],
                )
                .await
                .map_err(TargetError::pg("apply the staged rows"))?;
            let keys: i64 = row.get(0);
            let creates: i64 = row.get(1);
            let amends: i64 = row.get(2);
            let removes: i64 = row.get(3);
            counts.creates += creates as u64;
            counts.amends = amends as u64;
            counts.removes = removes as u64;
            counts.unchanged = (keys - creates - amends - removes).max(0) as u64;
        }
        client
            .batch_execute("DROP TABLE \"_peo_stage\"")
            .await
            .map_err(TargetError::pg("drop the staging table"))?;
        self.finish_delivery(client, plan, summary, counts, direct_rows)
            .await
    }

    /// The end of every delivery: its ledger row (replacing an earlier ERROR row) and its change
    /// notification in the outbox.
    pub(super) async fn finish_delivery(
        &self,
        client: &tokio_postgres::Client,
        plan: &DeliveryPlan,
        summary: StreamSummary,
        counts: NetCounts,
        direct_rows: u64,
    ) -> Result<DeliveryResult, TargetError> {
        let spec = &plan.table;
        client
            .execute(&queries::clear_failure(&self.schema), &[&plan.key])
            .await
            .map_err(TargetError::pg("clear an earlier failure"))?;
        client
            .execute(
                &queries::record_success(&self.schema),
                &[
                    &plan.id,
                    &plan.key,
                    &plan.etag,
                    &(plan.size as i64),
                    &spec.name,
                    &plan.kind,
                    &(summary.rows as i64),
                    &(counts.creates as i64),
                    &(counts.amends as i64),
                    &(counts.removes as i64),
                    &(counts.unchanged as i64),
                    &summary.max_event_id,
                    &plan.started_at,
                    &self.host,
                    &crate::VERSION,
                ],
            )
            .await
            .map_err(TargetError::pg("record the delivery"))?;
        if let Some(writer) = &plan.notification {
            let facts = crate::target::DeliveryFacts {
                delivery_id: plan.id,
                key: &plan.key,
                table: &spec.name,
                rows: summary.rows,
                counts,
                max_event_id: summary.max_event_id,
            };
            if let Some(row) = writer.row(&facts) {
                client
                    .execute(
                        &queries::insert_outbox(&self.schema),
                        &[&plan.id, &row.subject, &row.payload],
                    )
                    .await
                    .map_err(TargetError::pg("write the notification to the outbox"))?;
            }
        }
        Ok(DeliveryResult {
            counts,
            rows: summary.rows,
            max_event_id: summary.max_event_id,
            direct_rows,
        })
    }
}

/// How every change file of `spec`'s table is decoded.
pub(super) fn cdc_encoding(spec: &TableSpec) -> Encoding {
    Encoding {
        layout: TupleLayout::Staging,
        split_inserts: direct::key_is_canonical(spec),
    }
}
