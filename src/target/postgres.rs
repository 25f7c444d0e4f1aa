//! [`PgTarget`]: the Target on Postgres, through a deadpool connection pool.
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::SinkExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use super::direct::{self, DirectInserts, Replay};
use super::queries;
use super::{
    Chunk, DeliveryPlan, DeliveryResult, DeliveryStatus, Encoding, LedgerEntry, NetCounts,
    StreamSummary, Target, TargetError,
};
use crate::dms::{
    Column, ColumnType, TableSpec, TupleLayout, COPY_BINARY_HEADER, COPY_BINARY_TRAILER,
};

/// The loader's Postgres database.
#[derive(Clone)]
pub struct PgTarget {
    pool: Pool,
    schema: String,
    tables: HashMap<String, Arc<TableSpec>>,
    host: String,
    /// In a dry run: the one transaction everything happens in, rolled back by
    /// [`Target::finish`].
    dry_run: Option<Arc<DryRun>>,
}

/// A dry run's state: one connection inside one transaction (the migrations, the catalog, the
/// ledger reads and every delivery under its savepoint), and the delivery ids a real run would
/// take next, counted here because a sequence's `nextval` is never rolled back.
struct DryRun {
    connection: Arc<tokio::sync::Mutex<deadpool_postgres::ClientWrapper>>,
    next_id: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("schema", &self.schema)
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn pool_error(e: impl std::fmt::Display) -> TargetError {
    TargetError::Pool(e.to_string())
}

impl PgTarget {
    /// Connects, applies the migrations and reads the replicated tables from the catalog.
    ///
    /// With `dry_run`, nothing is ever committed: one transaction is opened and kept, the
    /// migrations the database lacks (the whole schema, on an empty database) are applied inside
    /// it, and every later read and delivery happens in it, until [`Target::finish`] rolls it
    /// back.
    pub async fn connect(
        config: &tokio_postgres::Config,
        schema: &str,
        pool_size: usize,
        dry_run: bool,
    ) -> Result<Self, TargetError> {
        let mut config = config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .recycle_timeout(Some(std::time::Duration::from_secs(5)))
            .wait_timeout(Some(std::time::Duration::from_secs(60)))
            .build()
            .map_err(pool_error)?;
        let client = pool.get().await.map_err(pool_error)?;
        let (tables, dry_run) = if dry_run {
            let (tables, dry) = begin_dry_run(client, schema).await?;
            (tables, Some(Arc::new(dry)))
        } else {
            super::migrations::migrate(&client, schema).await?;
            (read_table_specs(&client, schema).await?, None)
        };
        Ok(PgTarget {
            pool,
            schema: schema.to_string(),
            tables,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            dry_run,
        })
    }
}

/// Opens the dry run's transaction on `client`, applies the missing migrations in it, and reads
/// the catalog and the next delivery id from it.
async fn begin_dry_run(
    client: deadpool_postgres::Object,
    schema: &str,
) -> Result<(HashMap<String, Arc<TableSpec>>, DryRun), TargetError> {
    // Never handed back to the pool: it is closed (and its transaction rolled back) with the
    // target, whatever happens in between.
    let client = deadpool_postgres::Object::take(client);
    client
        .batch_execute("BEGIN")
        .await
        .map_err(TargetError::pg("begin the dry run"))?;
    let applied = super::migrations::apply(&client, schema).await?;
    if !applied.is_empty() {
        let names: Vec<&str> = applied.iter().map(|m| m.name).collect();
        tracing::info!(
            "Dry run: the database lacks migrations {}; they are applied inside the dry run's transaction and rolled back with it.",
            names.join(", ")
        );
    }
    let tables = read_table_specs(&client, schema).await?;
    let next_id: i64 = client
        .query_one(&queries::peek_delivery_id(schema), &[])
        .await
        .map_err(TargetError::pg("read the next delivery id"))?
        .get(0);
    Ok((
        tables,
        DryRun {
            connection: Arc::new(tokio::sync::Mutex::new(client)),
            next_id: std::sync::atomic::AtomicI64::new(next_id),
        },
    ))
}

/// Maps a catalog type (name and typmod) to a [`ColumnType`].
fn column_type(typname: &str, typmod: i32) -> Option<ColumnType> {
    let modifier = (typmod >= 4).then(|| typmod - 4);
    Some(match typname {
        "int2" => ColumnType::Int2,
        "int4" => ColumnType::Int4,
        "int8" => ColumnType::Int8,
        "numeric" => ColumnType::Numeric {
            precision: modifier.map(|m| ((m >> 16) & 0xffff) as u16),
            scale: modifier.map(|m| (m & 0xffff) as u16),
        },
        "varchar" => ColumnType::Varchar(modifier.map(|m| m as u32)),
        "bpchar" => ColumnType::Bpchar(modifier.map(|m| m as u32)),
        "text" => ColumnType::Text,
        "timestamp" => ColumnType::Timestamp,
        "timestamptz" => ColumnType::Timestamptz,
        "date" => ColumnType::Date,
        "bool" => ColumnType::Bool,
        "float4" => ColumnType::Float4,
        "float8" => ColumnType::Float8,
        _ => return None,
    })
}

async fn read_table_specs(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<HashMap<String, Arc<TableSpec>>, TargetError> {
    let rows = client
        .query(queries::TABLE_COLUMNS, &[&schema])
        .await
        .map_err(TargetError::pg("read table columns"))?;
    let mut specs: HashMap<String, (TableSpec, Vec<(i32, usize)>)> = HashMap::new();
    for row in rows {
        let table: String = row.get(0);
        let name: String = row.get(1);
        let typname: String = row.get(2);
        let typmod: i32 = row.get(3);
        let not_null: bool = row.get(4);
        let key_position: Option<i32> = row.get(5);
        let ty = column_type(&typname, typmod).ok_or_else(|| {
            TargetError::Schema(format!(
                "column {table}.{name} has type {typname}, which the loader cannot decode"
            ))
        })?;
        let (spec, keys) = specs.entry(table.clone()).or_insert_with(|| {
            (
                TableSpec {
                    name: table.clone(),
                    columns: Vec::new(),
                    key: Vec::new(),
                },
                Vec::new(),
            )
        });
        if let Some(p) = key_position {
            keys.push((p, spec.columns.len()));
        }
        spec.columns.push(Column {
            name,
            ty,
            nullable: !not_null,
        });
    }
    let mut out = HashMap::new();
    for (name, (mut spec, mut keys)) in specs {
        if keys.is_empty() {
            return Err(TargetError::Schema(format!(
                "table {name} has no primary key: the loader needs one to apply changes"
            )));
        }
        keys.sort();
        spec.key = keys.into_iter().map(|(_, i)| i).collect();
        out.insert(name, Arc::new(spec));
    }
    Ok(out)
}

/// One stream's connection. It tracks whether a transaction is open: a session dropped inside
/// one takes its connection out of the pool (closing it rolls the transaction back), so a pooled
/// connection is never handed out mid-transaction.
pub struct PgSession {
    client: Option<SessionClient>,
    dry_run: bool,
    in_transaction: bool,
}

/// A session's connection: its own from the pool, or, in a dry run, the dry run's one (held
/// for as long as the session lasts, so streams take turns).
enum SessionClient {
    Pooled(Box<deadpool_postgres::Object>),
    DryRun(tokio::sync::OwnedMutexGuard<deadpool_postgres::ClientWrapper>),
}

impl PgSession {
    fn client(&self) -> &tokio_postgres::Client {
        match self
            .client
            .as_ref()
            .expect("a session has its connection until dropped")
        {
            SessionClient::Pooled(object) => object,
            SessionClient::DryRun(guard) => guard,
        }
    }

    async fn run(&mut self, sql: &'static str, context: &'static str) -> Result<(), TargetError> {
        let result = self
            .client()
            .batch_execute(sql)
            .await
            .map_err(TargetError::pg(context));
        match (sql, &result) {
            ("BEGIN", Ok(())) => self.in_transaction = true,
            ("COMMIT" | "ROLLBACK", Ok(())) => self.in_transaction = false,
            _ => {}
        }
        if result.is_err() && !sql.starts_with("SAVEPOINT") && !sql.starts_with("RELEASE") {
            // The transaction state is unknown: never give this connection back to the pool.
            self.in_transaction = true;
        }
        result
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        if self.in_transaction {
            if let Some(SessionClient::Pooled(client)) = self.client.take() {
                drop(deadpool_postgres::Object::take(*client));
            }
        }
    }
}

/// Size of the COPY chunks of a replay of set-aside inserts.
const CHUNK_BYTES: usize = 512 * 1024;

/// Microseconds from the Unix epoch to Postgres' (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The rows' `_loaded_at` (the delivery's start) in binary COPY form: microseconds since
/// 2000-01-01 UTC.
fn loaded_at(plan: &DeliveryPlan) -> i64 {
    plan.started_at.timestamp_micros() - POSTGRES_EPOCH_MICROS
}

/// Streams the decoder's tuples into `COPY <sql>` and returns the decoder's summary and the
/// inserts it set aside, if any.
async fn copy_chunks(
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
                return Err(TargetError::Input(super::ChunkFailure {
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
    async fn apply_in_transaction(
        &self,
        client: &tokio_postgres::Client,
        plan: &DeliveryPlan,
        encoding: oneshot::Sender<Encoding>,
        chunks: mpsc::Receiver<Chunk>,
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
            // Into an empty table, or one no bigger than the file, the indexes are dropped and
            // rebuilt after the COPY (in this transaction): one sort beats a B-tree insert per
            // row. It locks the table against readers for the length of this file's load.
            let rebuild = if client
                .query_one(
                    &queries::rebuild_indexes(&self.schema, &spec.name),
                    &[
                        &(plan.size as f64),
                        &spec.name,
                        &queries::qualified(&self.schema, &spec.name),
                    ],
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
            let _ = encoding.send(Encoding {
                layout: TupleLayout::Direct {
                    delivery_id: plan.id,
                    loaded_at,
                },
                split_inserts: false,
            });
            let (summary, _) = copy_chunks(
                client,
                &queries::copy_direct(&self.schema, spec),
                chunks,
                plan,
            )
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
            return self
                .finish(client, plan, summary, counts, summary.rows)
                .await;
        }
        // A change file's new keys go straight into the table (see `direct`); everything else,
        // and any file when the key cannot be compared by its bytes, takes the staged apply.
        let _ = encoding.send(if plan.kind == "CDC" {
            cdc_encoding(spec)
        } else {
            Encoding::staging()
        });
        client
            .batch_execute(&queries::create_stage(spec))
            .await
            .map_err(TargetError::pg("create the staging table"))?;
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
        self.finish(client, plan, summary, counts, direct_rows)
            .await
    }

    /// COPYs the inserts the decoder set aside straight into the table (those whose key was
    /// staged after them go to the staging table instead); returns how many went straight in.
    /// If one of their keys exists already, that COPY is undone and they are all staged.
    async fn copy_inserts(
        &self,
        client: &tokio_postgres::Client,
        plan: &DeliveryPlan,
        inserts: Arc<DirectInserts>,
    ) -> Result<u64, TargetError> {
        let spec = &plan.table;
        let loaded_at = loaded_at(plan);
        let direct = Replay::Direct {
            delivery_id: plan.id,
            loaded_at,
        };
        client
            .batch_execute("SAVEPOINT direct_inserts")
            .await
            .map_err(TargetError::pg("open a savepoint"))?;
        let copied = copy_chunks(
            client,
            &queries::copy_direct(&self.schema, spec),
            inserts.replay(direct, CHUNK_BYTES),
            plan,
        )
        .await;
        // Which set-aside rows go to the staging table after all: those the direct COPY left
        // (`Staged`), or every one if it met an existing key (`All`).
        let (direct_rows, restage) = match copied {
            Ok((summary, _)) => {
                client
                    .batch_execute("RELEASE SAVEPOINT direct_inserts")
                    .await
                    .map_err(TargetError::pg("release a savepoint"))?;
                (
                    summary.rows,
                    inserts.stages_some().then_some(Replay::Staged),
                )
            }
            Err(e) if e.sqlstate() == Some("23505") => {
                // A key that exists already: stage them all.
                client
                    .batch_execute(
                        "ROLLBACK TO SAVEPOINT direct_inserts; RELEASE SAVEPOINT direct_inserts",
                    )
                    .await
                    .map_err(TargetError::pg("roll back to a savepoint"))?;
                (0, Some(Replay::All))
            }
            Err(e) => return Err(e),
        };
        if let Some(mode) = restage {
            copy_chunks(
                client,
                queries::COPY_STAGE,
                inserts.replay(mode, CHUNK_BYTES),
                plan,
            )
            .await?;
        }
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
        client: &tokio_postgres::Client,
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

    /// The end of every delivery: its ledger row (replacing an earlier ERROR row) and its change
    /// notification in the outbox.
    async fn finish(
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
            let facts = super::DeliveryFacts {
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
fn cdc_encoding(spec: &TableSpec) -> Encoding {
    Encoding {
        layout: TupleLayout::Staging,
        split_inserts: direct::key_is_canonical(spec),
    }
}

impl Target for PgTarget {
    type Session = PgSession;

    fn cdc_encoding(&self, table: &TableSpec) -> Option<Encoding> {
        Some(cdc_encoding(table))
    }

    fn tables(&self) -> &HashMap<String, Arc<TableSpec>> {
        &self.tables
    }

    async fn ledger_entries(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerEntry>, TargetError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = queries::ledger_entries(&self.schema);
        let rows = match &self.dry_run {
            Some(dry) => dry.connection.lock().await.query(&sql, &[&keys]).await,
            None => {
                let client = self.pool.get().await.map_err(pool_error)?;
                client.query(&sql, &[&keys]).await
            }
        }
        .map_err(TargetError::pg("read the ledger"))?;
        rows.into_iter()
            .map(|r| {
                let status: String = r.get(2);
                let status = DeliveryStatus::parse(&status).ok_or_else(|| {
                    TargetError::Schema(format!("the ledger holds an unknown status {status:?}"))
                })?;
                Ok((
                    r.get::<_, String>(0),
                    LedgerEntry {
                        id: r.get(1),
                        status,
                        etag: r.get(3),
                        error: r.get(4),
                    },
                ))
            })
            .collect()
    }

    async fn next_delivery_id(&self) -> Result<i64, TargetError> {
        if let Some(dry) = &self.dry_run {
            return Ok(dry
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_one(&queries::next_delivery_id(&self.schema), &[])
            .await
            .map_err(TargetError::pg("next delivery id"))?;
        Ok(row.get(0))
    }

    async fn open_session(&self) -> Result<PgSession, TargetError> {
        let client = match &self.dry_run {
            Some(dry) => SessionClient::DryRun(dry.connection.clone().lock_owned().await),
            None => SessionClient::Pooled(Box::new(self.pool.get().await.map_err(pool_error)?)),
        };
        Ok(PgSession {
            client: Some(client),
            dry_run: self.dry_run.is_some(),
            in_transaction: false,
        })
    }

    async fn apply(
        &self,
        session: &mut PgSession,
        plan: &DeliveryPlan,
        encoding: oneshot::Sender<Encoding>,
        chunks: mpsc::Receiver<Chunk>,
    ) -> Result<DeliveryResult, TargetError> {
        let (begin, commit, rollback) = if session.dry_run {
            (
                "SAVEPOINT delivery",
                "RELEASE SAVEPOINT delivery",
                "ROLLBACK TO SAVEPOINT delivery; RELEASE SAVEPOINT delivery",
            )
        } else {
            ("BEGIN", "COMMIT", "ROLLBACK")
        };
        session.run(begin, "begin the delivery").await?;
        match self
            .apply_in_transaction(session.client(), plan, encoding, chunks)
            .await
        {
            Ok(result) => {
                session.run(commit, "commit").await?;
                Ok(result)
            }
            Err(e) => {
                // Best effort: if this fails too the connection is broken and is not reused.
                let _ = session.run(rollback, "roll back").await;
                Err(e)
            }
        }
    }

    async fn close_session(&self, session: PgSession) {
        // A real run's session is between transactions here; a dry run's stays in the dry run's
        // transaction until `finish`.
        drop(session);
    }

    async fn finish(&self) {
        if let Some(dry) = &self.dry_run {
            let client = dry.connection.lock().await;
            match client.batch_execute("ROLLBACK").await {
                Ok(()) => tracing::info!("Dry run: everything rolled back; nothing persisted."),
                // The connection is gone, and with it the transaction.
                Err(e) => tracing::warn!(
                    "Dry run: the rollback failed ({}); the connection is closed, which rolls back as well.",
                    super::describe_pg_error(&e)
                ),
            }
        }
    }

    async fn record_failure(&self, plan: &DeliveryPlan, error: &str) -> Result<(), TargetError> {
        if self.dry_run.is_some() {
            return Ok(());
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                &queries::record_failure(&self.schema),
                &[
                    &plan.id,
                    &plan.key,
                    &plan.etag,
                    &(plan.size as i64),
                    &plan.table.name,
                    &plan.kind,
                    &plan.started_at,
                    &error,
                    &self.host,
                    &crate::VERSION,
                ],
            )
            .await
            .map_err(TargetError::pg("record the failure"))?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(TargetError::pg("ping"))?;
        Ok(())
    }
}

impl super::Outbox for PgTarget {
    async fn pending_messages(&self, limit: i64) -> Result<Vec<super::OutboxMessage>, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(&queries::outbox_pending(&self.schema), &[&limit])
            .await
            .map_err(TargetError::pg("read the outbox"))?;
        Ok(rows
            .iter()
            .map(|r| super::OutboxMessage {
                id: r.get(0),
                delivery_id: r.get(1),
                subject: r.get(2),
                payload: r.get(3),
            })
            .collect())
    }

    async fn mark_published(&self, id: i64) -> Result<(), TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(&queries::outbox_published(&self.schema), &[&id])
            .await
            .map_err(TargetError::pg("mark a notification published"))?;
        Ok(())
    }

    async fn mark_failed(&self, id: i64, error: &str) -> Result<(), TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(&queries::outbox_failed(&self.schema), &[&id, &error])
            .await
            .map_err(TargetError::pg("record a publishing failure"))?;
        Ok(())
    }

    async fn pending_count(&self) -> Result<i64, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        Ok(client
            .query_one(&queries::outbox_count(&self.schema), &[])
            .await
            .map_err(TargetError::pg("count the outbox"))?
            .get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_types_map_with_their_modifiers() {
        // numeric(18,4): typmod = ((18 << 16) | 4) + 4
        assert_eq!(
            column_type("numeric", ((18 << 16) | 4) + 4),
            Some(ColumnType::Numeric {
                precision: Some(18),
                scale: Some(4)
            })
        );
        assert_eq!(
            column_type("numeric", -1),
            Some(ColumnType::Numeric {
                precision: None,
                scale: None
            })
        );
        assert_eq!(
            column_type("varchar", 36),
            Some(ColumnType::Varchar(Some(32)))
        );
        assert_eq!(
            column_type("bpchar", 16),
            Some(ColumnType::Bpchar(Some(12)))
        );
        assert_eq!(column_type("jsonb", -1), None);
    }
}
