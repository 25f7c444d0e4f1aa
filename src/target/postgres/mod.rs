//! [`PgTarget`]: the Target on Postgres, through a deadpool connection pool.
//!
//! By role: [`session`] (a stream's connection, the dry run's one transaction), [`catalog`] (the
//! replicated tables), [`apply`] (a delivery in its transaction, the staged apply), [`bulk`] (a
//! full load straight into its table, the replay of a change file's set-aside inserts) and
//! [`outbox`] (the relay's reads). This file holds [`PgTarget`] itself and the [`Target`] trait's
//! methods, which delegate to them.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::queries;
use super::{
    DeliveryPlan, DeliveryResult, DeliveryStatus, Encoding, LedgerEntry, ReloadFacts, Rows, Target,
    TargetError,
};
use crate::dms::TableSpec;

mod apply;
mod bulk;
mod catalog;
mod operate;
mod outbox;
mod runs;

pub use runs::StepFacts;
mod session;
mod statements;
mod tls;

use apply::cdc_encoding;
use catalog::read_table_specs;
pub use session::PgSession;
use session::{begin_dry_run, DryRun};
use statements::Statements;

/// The loader's Postgres database.
#[derive(Clone)]
pub struct PgTarget {
    pool: Pool,
    /// The connection settings (the relay's lock has a connection of its own).
    config: tokio_postgres::Config,
    /// TLS as `sslmode` asks (`None`: `disable`).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// The connection holding the outbox publisher's lock, while this process holds it.
    publisher_lock: Arc<tokio::sync::Mutex<Option<tokio_postgres::Client>>>,
    schema: String,
    tables: HashMap<String, Arc<TableSpec>>,
    /// Tables whose columns a delivery added since start-up (schema drift taken in).
    drifted: Arc<std::sync::RwLock<HashMap<String, Arc<TableSpec>>>>,
    /// The statements of each table and of the ledger, built once.
    statements: Arc<Statements>,
    host: String,
    /// In a dry run: the one transaction everything happens in, rolled back by
    /// [`Target::finish`].
    dry_run: Option<Arc<DryRun>>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("schema", &self.schema)
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A failure to get a connection: Postgres's own answer (message and SQLSTATE, or the refused
/// connection) when there is one, the pool's otherwise.
fn pool_error(e: deadpool_postgres::PoolError) -> TargetError {
    match e {
        deadpool_postgres::PoolError::Backend(source) => TargetError::Postgres {
            context: "connect",
            source,
        },
        other => TargetError::Pool(other.to_string()),
    }
}

impl PgTarget {
    /// Connects, applies the migrations and reads the replicated tables from the catalog.
    ///
    /// With `dry_run`, nothing is ever committed: one transaction is opened and kept, the
    /// migrations the database lacks (the whole schema, on an empty database) are applied inside
    /// it, and every later read and delivery happens in it, until [`Target::finish`] rolls it
    /// back.
    pub async fn connect(
        target: &crate::config::TargetConfig,
        schema: &str,
        pool_size: usize,
        dry_run: bool,
    ) -> Result<Self, TargetError> {
        let mut config = target.pg.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let tls = tls::connector(target)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
            None => Manager::from_config(config.clone(), NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .recycle_timeout(Some(std::time::Duration::from_secs(5)))
            .wait_timeout(Some(std::time::Duration::from_secs(60)))
            .build()
            .map_err(|e| TargetError::Pool(e.to_string()))?;
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
            config,
            tls,
            publisher_lock: Arc::new(tokio::sync::Mutex::new(None)),
            schema: schema.to_string(),
            statements: Arc::new(Statements::new(schema, &tables)),
            tables,
            drifted: Default::default(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            dry_run,
        })
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

    fn table(&self, name: &str) -> Option<Arc<TableSpec>> {
        let drifted = self.drifted.read().expect("not poisoned");
        drifted.get(name).or_else(|| self.tables.get(name)).cloned()
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

    async fn refresh_table(&self, name: &str) -> Result<Option<Arc<TableSpec>>, TargetError> {
        if self.dry_run.is_some() {
            // (The dry run's one connection is held by its session: the columns stay as read.)
            return Ok(self.table(name));
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let specs = read_table_specs(&client, &self.schema).await?;
        let spec = specs.get(name).cloned();
        if let Some(spec) = &spec {
            self.drifted
                .write()
                .expect("not poisoned")
                .insert(name.to_string(), spec.clone());
        }
        Ok(spec)
    }

    async fn next_delivery_id(&self) -> Result<i64, TargetError> {
        if let Some(dry) = &self.dry_run {
            return Ok(dry.take_delivery_id());
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let next = client
            .prepare_cached(&queries::next_delivery_id(&self.schema))
            .await
            .map_err(TargetError::pg("next delivery id"))?;
        let row = client
            .query_one(&next, &[])
            .await
            .map_err(TargetError::pg("next delivery id"))?;
        Ok(row.get(0))
    }

    async fn open_session(&self, table: &TableSpec) -> Result<PgSession, TargetError> {
        let mut session = PgSession::open(&self.pool, self.dry_run.as_deref()).await?;
        if !session.is_dry_run() {
            let stream = &self
                .statements
                .table(&self.schema, table, Default::default())
                .stream;
            if !session.take_lease(stream).await? {
                return Err(TargetError::Busy(table.name.clone()));
            }
        }
        Ok(session)
    }

    async fn apply(
        &self,
        session: &mut PgSession,
        plan: &DeliveryPlan,
        rows: Rows,
    ) -> Result<DeliveryResult, TargetError> {
        if !plan.direct_allowed {
            let sql = self
                .statements
                .table(&self.schema, &plan.table, plan.stage_shape());
            session.ensure_stage(&sql.stage, &sql.create_stage).await?;
        }
        let result = self.apply_in_session(session, plan, rows).await;
        if result.is_err() {
            session.roll_back_delivery().await;
        } else if !plan.add_columns.is_empty() && self.dry_run.is_none() {
            // Committed with the new columns: later files are read with them.
            self.drifted
                .write()
                .expect("not poisoned")
                .insert(plan.table.name.clone(), plan.table.clone());
        }
        result
    }

    async fn close_session(&self, mut session: PgSession) {
        // A real run's session is between transactions here; a dry run's stays in the dry run's
        // transaction until `finish`.
        session.release_lease().await;
        drop(session);
    }

    async fn finish(&self) {
        if let Some(dry) = &self.dry_run {
            dry.roll_back().await;
        }
    }

    async fn record_failure(&self, plan: &DeliveryPlan, error: &str) -> Result<(), TargetError> {
        if self.dry_run.is_some() {
            return Ok(());
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        self.write_failure(&client, plan, error).await
    }

    async fn reload_facts(
        &self,
        session: Option<&PgSession>,
        table: &str,
        key: &str,
        etag: &str,
    ) -> Result<Option<ReloadFacts>, TargetError> {
        let sql = &self.statements.ledger.reload_facts;
        let row = match (session, &self.dry_run) {
            (Some(session), _) => session.client().query_one(sql, &[&key, &table]).await,
            (None, Some(dry)) => {
                dry.connection
                    .lock()
                    .await
                    .query_one(sql, &[&key, &table])
                    .await
            }
            (None, None) => {
                let client = self.pool.get().await.map_err(pool_error)?;
                client.query_one(sql, &[&key, &table]).await
            }
        }
        .map_err(TargetError::pg("read the ledger"))?;
        let id: Option<i64> = row.get(0);
        let delivered_etag: Option<String> = row.get(1);
        let status: Option<String> = row.get(2);
        let open: Option<String> = row.get(4);
        let changes_delivered: bool = row.get(5);
        let done = matches!(status.as_deref(), Some("SUCCESS" | "SKIPPED"));
        let facts = |previous| ReloadFacts {
            previous,
            approved: open.as_deref() == Some("APPROVED"),
        };
        Ok(if open.is_some() {
            Some(facts(None))
        } else if done {
            // Delivered: a re-run only if DMS wrote it again (an unknown ETag is no evidence).
            match (&id, &delivered_etag) {
                (Some(id), Some(old)) if old != etag => Some(facts(Some((*id, Some(old.clone()))))),
                _ => None,
            }
        } else if changes_delivered {
            // Never delivered, after change files: a new full load.
            Some(facts(None))
        } else {
            None
        })
    }

    async fn record_reload_stop(
        &self,
        plan: &DeliveryPlan,
        error: &str,
    ) -> Result<(), TargetError> {
        if self.dry_run.is_some() {
            return Ok(());
        }
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client
            .transaction()
            .await
            .map_err(TargetError::pg("record the full load's re-run"))?;
        tx.execute(
            &self.statements.ledger.detect_reload,
            &[&plan.table.name, &plan.key, &plan.etag],
        )
        .await
        .map_err(TargetError::pg("record the full load's re-run"))?;
        self.write_failure(&tx, plan, error).await?;
        tx.commit()
            .await
            .map_err(TargetError::pg("record the full load's re-run"))
    }

    async fn last_successes(&self) -> Result<HashMap<String, DateTime<Utc>>, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let sql = queries::last_success(&self.schema);
        let mut out = HashMap::new();
        for table in self.tables.keys() {
            let at: Option<DateTime<Utc>> = client
                .query_one(&sql, &[table])
                .await
                .map_err(TargetError::pg("read the last deliveries"))?
                .get(0);
            if let Some(at) = at {
                out.insert(table.clone(), at);
            }
        }
        Ok(out)
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

impl PgTarget {
    /// The ERROR row of a failed delivery (replacing an earlier ERROR row of the key) and its
    /// `loader_failures` row, on `client` (a pooled connection or a transaction).
    async fn write_failure(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        plan: &DeliveryPlan,
        error: &str,
    ) -> Result<(), TargetError> {
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
}
