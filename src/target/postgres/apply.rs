//! A delivery in its transaction: the checks, the staged apply, and its ledger and outbox rows,
//! in as few round trips as the order of the statements allows.
use std::sync::Arc;

use bytes::Bytes;
use deadpool_postgres::ClientWrapper;
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::CopyInSink;

use super::statements::TableSql;
use super::{PgSession, PgTarget};
use crate::dms::{TableSpec, TupleLayout, COPY_BINARY_HEADER, COPY_BINARY_TRAILER};
use crate::target::direct::{self, DirectInserts};
use crate::target::queries;
use crate::target::{
    Chunk, DeliveryPlan, DeliveryResult, Encoding, NetCounts, Rows, StreamSummary, TargetError,
};

/// A binary COPY under way (its header sent).
pub(super) type CopySink = std::pin::Pin<Box<CopyInSink<Bytes>>>;

/// Starts `COPY <sql>` (prepared once per connection) and sends the binary header.
pub(super) async fn start_copy(client: &ClientWrapper, sql: &str) -> Result<CopySink, TargetError> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(TargetError::pg("start COPY"))?;
    let mut sink = Box::pin(
        client
            .copy_in::<_, Bytes>(&statement)
            .await
            .map_err(TargetError::pg("start COPY"))?,
    );
    sink.feed(Bytes::from_static(COPY_BINARY_HEADER))
        .await
        .map_err(TargetError::pg("COPY"))?;
    Ok(sink)
}

/// Streams the decoder's tuples and the binary trailer into a COPY, without ending it; returns
/// the decoder's summary and the inserts it set aside, if any.
pub(super) async fn stream_chunks(
    sink: &mut CopySink,
    mut chunks: mpsc::Receiver<Chunk>,
    plan: &DeliveryPlan,
) -> Result<(StreamSummary, Option<DirectInserts>), TargetError> {
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
                    added_columns: None,
                }))
            }
        }
    };
    sink.feed(Bytes::from_static(COPY_BINARY_TRAILER))
        .await
        .map_err(TargetError::pg("COPY"))?;
    Ok((summary, inserts))
}

/// Ends a COPY: sends what is left and waits for Postgres to take it.
pub(super) async fn finish_copy(mut sink: CopySink) -> Result<(), TargetError> {
    sink.as_mut()
        .finish()
        .await
        .map(drop)
        .map_err(TargetError::pg("COPY"))
}

/// Streams the decoder's tuples into `COPY <sql>` and returns the decoder's summary and the
/// inserts it set aside, if any.
pub(super) async fn copy_chunks(
    client: &ClientWrapper,
    sql: &str,
    chunks: mpsc::Receiver<Chunk>,
    plan: &DeliveryPlan,
) -> Result<(StreamSummary, Option<DirectInserts>), TargetError> {
    let mut sink = start_copy(client, sql).await?;
    let streamed = stream_chunks(&mut sink, chunks, plan).await?;
    finish_copy(sink).await?;
    Ok(streamed)
}

impl PgTarget {
    /// A delivery in its transaction (or, in a dry run, its savepoint), on the session that holds
    /// the stream's lease: begun together with the "already delivered" check, and for a change file the COPY into the
    /// staging table (one round trip), the rows applied, then the ledger and outbox rows written
    /// and the transaction committed (one round trip).
    pub(super) async fn apply_in_session(
        &self,
        session: &PgSession,
        plan: &DeliveryPlan,
        rows: Rows,
    ) -> Result<DeliveryResult, TargetError> {
        let client = session.client();
        let spec = &plan.table;
        let sql = self
            .statements
            .table(&self.schema, spec, plan.stage_shape());
        // A full-load re-run is done when the file's row has its new ETag.
        let (check_sql, as_etag) = match &plan.reload {
            Some(_) => (&self.statements.ledger.is_delivered_as, true),
            None => (&self.statements.ledger.is_delivered, false),
        };
        let is_delivered = client
            .prepare_cached(check_sql)
            .await
            .map_err(TargetError::pg("check the ledger"))?;
        let delivered = async {
            if as_etag {
                client
                    .query_opt(&is_delivered, &[&plan.key, &plan.etag])
                    .await
            } else {
                client.query_opt(&is_delivered, &[&plan.key]).await
            }
            .map_err(TargetError::pg("check the ledger"))
        };
        let add_columns = (!plan.add_columns.is_empty())
            .then(|| queries::add_columns(&self.schema, spec, plan.add_columns.len()));
        let checks = async {
            let ((), delivered) = futures::try_join!(session.begin_delivery(), delivered)?;
            if delivered.is_some() {
                return Err(TargetError::AlreadyDelivered(plan.key.clone()));
            }
            // A schema drift taken in: the table gets the file's new columns first, in the
            // delivery's transaction.
            if let Some(sql) = &add_columns {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(TargetError::pg("add the new columns"))?;
            }
            Ok(())
        };
        // A full-load file goes straight into its table: every row is a CREATE unless its key
        // exists already, which the primary key reports (23505) and which sends the file through
        // the staged apply instead. A normal full load (new keys, file after file) takes one pass.
        let (summary, counts, direct_rows) = if plan.direct_allowed {
            checks.await?;
            self.apply_direct(client, &sql, plan, rows).await?
        } else if session.is_dry_run() {
            // A dry run's staging table lives in the delivery: created after the checks.
            checks.await?;
            client
                .batch_execute(&sql.create_stage_in_delivery)
                .await
                .map_err(TargetError::pg("create the staging table"))?;
            let applied = self
                .apply_staged(session, &sql, plan, rows, async { Ok(()) })
                .await?;
            client
                .batch_execute(&sql.drop_stage)
                .await
                .map_err(TargetError::pg("drop the staging table"))?;
            applied
        } else if add_columns.is_some() {
            // (Not sent together with the COPY: the table changes first.)
            checks.await?;
            self.apply_staged(session, &sql, plan, rows, async { Ok(()) })
                .await?
        } else {
            self.apply_staged(session, &sql, plan, rows, checks).await?
        };
        self.finish_delivery(session, plan, summary, counts, direct_rows)
            .await
    }

    /// A change file's new keys go straight into the table (see `direct`); everything else,
    /// and any file when the key cannot be compared by its bytes, takes the staged apply (into
    /// the session's staging table, emptied by every commit). The COPY into the staging table
    /// goes out with `checks` (the delivery's first statements): if they fail, it is abandoned,
    /// which aborts it. Returns the decoder's summary, the counts and the rows that went
    /// straight in.
    async fn apply_staged(
        &self,
        session: &PgSession,
        sql: &TableSql,
        plan: &DeliveryPlan,
        rows: Rows,
        checks: impl std::future::Future<Output = Result<(), TargetError>>,
    ) -> Result<(StreamSummary, NetCounts, u64), TargetError> {
        let client = session.client();
        let spec = &plan.table;
        // A late file's inserts are guarded like its other rows: all of them are staged (so are
        // the rows of a stream whose columns may be unsupplied, with their marks).
        let chunks = rows(if plan.keep_unsupplied {
            Encoding::marked()
        } else if plan.kind == "CDC" && plan.late.is_none() && !plan.upserts_only {
            cdc_encoding(spec)
        } else {
            Encoding::staging()
        });
        let copy = async {
            let mut sink = start_copy(client, &sql.copy_stage).await?;
            let (summary, inserts) = stream_chunks(&mut sink, chunks, plan).await?;
            Ok((sink, summary, inserts))
        };
        let ((), (sink, summary, inserts)) = futures::try_join!(checks, copy)?;
        // The end of that COPY goes out with the start of the direct one.
        let direct_rows = match inserts {
            Some(inserts) => {
                let direct = self.copy_inserts(client, sql, plan, Arc::new(inserts));
                let (finished, direct) = futures::join!(finish_copy(sink), direct);
                finished?;
                direct?
            }
            None => {
                finish_copy(sink).await?;
                0
            }
        };
        let mut counts = NetCounts {
            creates: direct_rows,
            ..NetCounts::default()
        };
        if summary.rows > direct_rows {
            let row = match plan.late {
                None => {
                    let apply = client
                        .prepare_cached(&sql.apply_stage)
                        .await
                        .map_err(TargetError::pg("apply the staged rows"))?;
                    client
                        .query_one(&apply, &[&plan.id, &plan.started_at])
                        .await
                }
                Some(stamp) => {
                    let apply = client
                        .prepare_cached(&sql.apply_stage_guarded)
                        .await
                        .map_err(TargetError::pg("apply the staged rows"))?;
                    let stamp = format!("{stamp:017}");
                    client
                        .query_one(&apply, &[&plan.id, &plan.started_at, &stamp, &spec.name])
                        .await
                }
            }
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
        if plan.reload.is_some() {
            // The table is the new full load: what it lacks goes.
            let removed = client
                .execute(&sql.remove_absent, &[])
                .await
                .map_err(TargetError::pg("remove the rows the full load lacks"))?;
            counts.removes += removed;
        }
        Ok((summary, counts, direct_rows))
    }

    /// The end of every delivery: its ledger row (replacing an earlier ERROR row), its change
    /// notification in the outbox, and the commit, sent together (one round trip): if any of
    /// them fails, Postgres rolls the transaction back at the commit and the error is returned.
    async fn finish_delivery(
        &self,
        session: &PgSession,
        plan: &DeliveryPlan,
        summary: StreamSummary,
        counts: NetCounts,
        direct_rows: u64,
    ) -> Result<DeliveryResult, TargetError> {
        let client = session.client();
        let ledger = &self.statements.ledger;
        let spec = &plan.table;
        let clear = client
            .prepare_cached(&ledger.clear_failure)
            .await
            .map_err(TargetError::pg("clear an earlier failure"))?;
        let record = client
            .prepare_cached(&ledger.record_success)
            .await
            .map_err(TargetError::pg("record the delivery"))?;
        let added_columns: Option<Vec<String>> = (!plan.add_columns.is_empty()).then(|| {
            plan.table.columns[plan.table.columns.len() - plan.add_columns.len()..]
                .iter()
                .map(|c| c.name.clone())
                .collect()
        });
        let reload_sql = match &plan.reload {
            Some(_) => Some((
                client
                    .prepare_cached(&ledger.clear_loads)
                    .await
                    .map_err(TargetError::pg("clear the full load's earlier rows"))?,
                client
                    .prepare_cached(&ledger.record_reload)
                    .await
                    .map_err(TargetError::pg("record the full load's re-run"))?,
            )),
            None => None,
        };
        let facts = crate::target::DeliveryFacts {
            delivery_id: plan.id,
            key: &plan.key,
            table: &spec.name,
            rows: summary.rows,
            counts,
            max_event_id: summary.max_event_id,
            added_columns: &plan.add_columns,
        };
        let outbox_row = plan.notification.as_ref().and_then(|w| w.row(&facts));
        let outbox = match &outbox_row {
            Some(_) => Some(
                client
                    .prepare_cached(&ledger.insert_outbox)
                    .await
                    .map_err(TargetError::pg("write the notification to the outbox"))?,
            ),
            None => None,
        };
        let cleared = async {
            client
                .execute(&clear, &[&plan.key])
                .await
                .map_err(TargetError::pg("clear an earlier failure"))
        };
        let recorded = async {
            client
                .execute(
                    &record,
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
                        &plan.late.is_some(),
                        &added_columns,
                    ],
                )
                .await
                .map_err(TargetError::pg("record the delivery"))
        };
        let reload = async {
            match &reload_sql {
                Some((clear, record_reload)) => {
                    record_reload_parts(
                        client,
                        clear,
                        &record,
                        record_reload,
                        plan,
                        summary,
                        counts,
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let notified = async {
            match (&outbox, &outbox_row) {
                (Some(outbox), Some(row)) => client
                    .execute(outbox, &[&plan.id, &row.subject, &row.payload])
                    .await
                    .map(drop)
                    .map_err(TargetError::pg("write the notification to the outbox")),
                _ => Ok(()),
            }
        };
        // (A re-run's earlier rows go first, in `reload`, sent before the others: the statements
        // run in the order they are sent.)
        futures::try_join!(
            reload,
            cleared,
            recorded,
            notified,
            session.commit_delivery()
        )?;
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
        unsupplied_marks: false,
    }
}

/// A full-load re-run's ledger rows, all sent at once (so before the commit that follows them):
/// the full-load files' earlier rows go, the other files' SUCCESS rows (the re-run's counts are
/// on the delivery's own row, written after this), and the re-run's row.
async fn record_reload_parts(
    client: &ClientWrapper,
    clear: &tokio_postgres::Statement,
    record: &tokio_postgres::Statement,
    record_reload: &tokio_postgres::Statement,
    plan: &DeliveryPlan,
    summary: StreamSummary,
    counts: NetCounts,
) -> Result<(), TargetError> {
    let Some(reload) = &plan.reload else {
        return Ok(());
    };
    let keys: Vec<&str> = reload.parts.iter().map(|p| p.key.as_str()).collect();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let zero = 0i64;
    let none: Option<i64> = None;
    let late = false;
    let no_columns: Option<Vec<String>> = None;
    let files = reload.parts.len() as i32;
    let (rows, creates, amends, removes, unchanged) = (
        summary.rows as i64,
        counts.creates as i64,
        counts.amends as i64,
        counts.removes as i64,
        counts.unchanged as i64,
    );
    let previous_etag = reload.facts.previous.as_ref().and_then(|p| p.1.clone());
    let previous_id = reload.facts.previous.as_ref().map(|p| p.0);
    let others: Vec<_> = reload
        .parts
        .iter()
        .filter(|p| p.key != plan.key)
        .map(|p| (p, p.size as i64))
        .collect();
    let mut sent = Vec::new();
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    let params: Vec<Param> = vec![&keys];
    sent.push(client.execute_raw(clear, params));
    for (part, size) in &others {
        let params: Vec<Param> = vec![
            &part.id,
            &part.key,
            &part.etag,
            size,
            &plan.table.name,
            &"LOAD",
            &zero,
            &zero,
            &zero,
            &zero,
            &zero,
            &none,
            &plan.started_at,
            &host,
            &crate::VERSION,
            &late,
            &no_columns,
        ];
        sent.push(client.execute_raw(record, params));
    }
    let params: Vec<Param> = vec![
        &plan.id,
        &files,
        &rows,
        &creates,
        &amends,
        &removes,
        &unchanged,
        &plan.key,
        &plan.table.name,
        &plan.etag,
        &previous_etag,
        &previous_id,
    ];
    sent.push(client.execute_raw(record_reload, params));
    futures::future::try_join_all(sent)
        .await
        .map_err(TargetError::pg("record the full load's re-run"))?;
    Ok(())
}
