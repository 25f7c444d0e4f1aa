//! A stream's connection ([`PgSession`]) and the dry run's one transaction ([`DryRun`]).
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;

use super::catalog::read_table_specs;
use super::pool_error;
use crate::dms::TableSpec;
use crate::target::{describe_pg_error, queries, TargetError};

/// A dry run's state: one connection inside one transaction (the migrations, the catalog, the
/// ledger reads and every delivery under its savepoint), and the delivery ids a real run would
/// take next, counted here because a sequence's `nextval` is never rolled back.
pub(super) struct DryRun {
    /// The dry run's connection, in its transaction.
    pub(super) connection: Arc<tokio::sync::Mutex<deadpool_postgres::ClientWrapper>>,
    next_id: std::sync::atomic::AtomicI64,
}

impl DryRun {
    /// The next delivery id a real run would take.
    pub(super) fn take_delivery_id(&self) -> i64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Rolls back everything the dry run did.
    pub(super) async fn roll_back(&self) {
        let client = self.connection.lock().await;
        match client.batch_execute("ROLLBACK").await {
            Ok(()) => tracing::info!("Dry run: everything rolled back; nothing persisted."),
            // The connection is gone, and with it the transaction.
            Err(e) => tracing::warn!(
                "Dry run: the rollback failed ({}); the connection is closed, which rolls back as well.",
                describe_pg_error(&e)
            ),
        }
    }
}

/// Opens the dry run's transaction on `client`, applies the missing migrations in it, and reads
/// the catalog and the next delivery id from it.
pub(super) async fn begin_dry_run(
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
    let applied = crate::target::migrations::apply(&client, schema).await?;
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

/// One stream's connection. It tracks whether a transaction is open: a session dropped inside
/// one takes its connection out of the pool (closing it rolls the transaction back), so a pooled
/// connection is never handed out mid-transaction. Statements are prepared once per connection
/// (deadpool's statement cache), and the staging tables it knows exist on the connection are
/// remembered.
pub struct PgSession {
    client: Option<SessionClient>,
    dry_run: bool,
    /// Set before a transaction is begun, cleared once it is committed or rolled back: `true`
    /// whenever the state is unknown.
    in_transaction: AtomicBool,
    /// The persistent staging tables (by name) known to exist on this connection.
    stages: HashSet<String>,
    /// The stream (`schema.table`) whose lease this connection holds, until released.
    lease: Option<String>,
}

/// A session's connection: its own from the pool, or, in a dry run, the dry run's one (held
/// for as long as the session lasts, so streams take turns).
enum SessionClient {
    Pooled(Box<deadpool_postgres::Object>),
    DryRun(tokio::sync::OwnedMutexGuard<deadpool_postgres::ClientWrapper>),
}

impl PgSession {
    /// A session on a connection of `pool`, or in a dry run on the dry run's connection (held
    /// until the session is dropped).
    pub(super) async fn open(pool: &Pool, dry_run: Option<&DryRun>) -> Result<Self, TargetError> {
        let client = match dry_run {
            Some(dry) => SessionClient::DryRun(dry.connection.clone().lock_owned().await),
            None => SessionClient::Pooled(Box::new(pool.get().await.map_err(pool_error)?)),
        };
        Ok(PgSession {
            client: Some(client),
            dry_run: dry_run.is_some(),
            in_transaction: AtomicBool::new(false),
            stages: HashSet::new(),
            lease: None,
        })
    }

    /// Tries to take `stream`'s lease on this connection; `false` if another session (another
    /// loader) holds it.
    pub(super) async fn take_lease(&mut self, stream: &str) -> Result<bool, TargetError> {
        let statement = self
            .client()
            .prepare_cached(queries::LEASE_STREAM)
            .await
            .map_err(TargetError::pg("take the stream's lease"))?;
        let taken: bool = self
            .client()
            .query_one(&statement, &[&stream])
            .await
            .map_err(TargetError::pg("take the stream's lease"))?
            .get(0);
        if taken {
            self.lease = Some(stream.to_string());
        }
        Ok(taken)
    }

    /// Gives the stream's lease back. If that fails the connection is broken: it is closed
    /// when the session is dropped, which frees the lease too.
    pub(super) async fn release_lease(&mut self) {
        let Some(stream) = self.lease.as_deref() else {
            return;
        };
        let released = self
            .client()
            .query_one(queries::RELEASE_STREAM, &[&stream])
            .await
            .map(|row| row.get::<_, bool>(0));
        if matches!(released, Ok(true)) {
            self.lease = None;
        }
    }

    /// Whether this is a dry run's session (deliveries are savepoints of one transaction).
    pub(super) fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The statements that begin, commit and roll back a delivery: a transaction, or in a dry
    /// run a savepoint of the dry run's transaction.
    fn delivery_statements(&self) -> (&'static str, &'static str, &'static str) {
        if self.dry_run {
            (
                "SAVEPOINT delivery",
                "RELEASE SAVEPOINT delivery",
                "ROLLBACK TO SAVEPOINT delivery; RELEASE SAVEPOINT delivery",
            )
        } else {
            ("BEGIN", "COMMIT", "ROLLBACK")
        }
    }

    /// Makes sure the persistent staging table `name` exists on this connection (`create`:
    /// [`crate::target::queries::create_stage`]): one statement the first time a session needs
    /// it, none after. Never in a dry run (its staging tables live in each delivery).
    pub(super) async fn ensure_stage(
        &mut self,
        name: &str,
        create: &str,
    ) -> Result<(), TargetError> {
        if self.dry_run || self.stages.contains(name) {
            return Ok(());
        }
        if let Err(e) = self.run(create, "create the staging table").await {
            // The batch's transaction may be left open (aborted): end it.
            let _ = self.run("ROLLBACK", "roll back").await;
            return Err(e);
        }
        self.stages.insert(name.to_string());
        Ok(())
    }

    /// Begins a delivery. It may be polled together with the delivery's first statements, which
    /// are then sent in the same round trip (they run after it, in order).
    pub(super) async fn begin_delivery(&self) -> Result<(), TargetError> {
        let (begin, _, _) = self.delivery_statements();
        self.run(begin, "begin the delivery").await
    }

    /// Commits a delivery; may be polled together with the delivery's last statements (an
    /// error in one of them makes Postgres roll the whole transaction back at this commit).
    pub(super) async fn commit_delivery(&self) -> Result<(), TargetError> {
        let (_, commit, _) = self.delivery_statements();
        self.run(commit, "commit").await
    }

    /// Best effort: if this fails too the connection is broken and is not reused.
    pub(super) async fn roll_back_delivery(&self) {
        let (_, _, rollback) = self.delivery_statements();
        let _ = self.run(rollback, "roll back").await;
    }

    pub(super) fn client(&self) -> &deadpool_postgres::ClientWrapper {
        match self
            .client
            .as_ref()
            .expect("a session has its connection until dropped")
        {
            SessionClient::Pooled(object) => object,
            SessionClient::DryRun(guard) => guard,
        }
    }

    async fn run(&self, sql: &str, context: &'static str) -> Result<(), TargetError> {
        let opens = sql == "BEGIN" || sql.starts_with("BEGIN;");
        if opens {
            // Unknown until Postgres answers: never hand this connection back meanwhile.
            self.in_transaction.store(true, Ordering::Relaxed);
        }
        let result = self
            .client()
            .batch_execute(sql)
            .await
            .map_err(TargetError::pg(context));
        match &result {
            // Every statement of a real session's batch that ends a transaction ends it.
            Ok(()) if !self.dry_run && (sql == "COMMIT" || sql == "ROLLBACK" || opens) => {
                let open = sql == "BEGIN";
                self.in_transaction.store(open, Ordering::Relaxed);
            }
            Ok(()) => {}
            // The transaction state is unknown: never give this connection back to the pool.
            Err(_) if !self.dry_run => self.in_transaction.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // Inside a transaction, or still holding a lease (a session dropped before it was
        // closed, e.g. at a stop): the connection is closed, never handed back to the pool.
        if *self.in_transaction.get_mut() || self.lease.is_some() {
            if let Some(SessionClient::Pooled(client)) = self.client.take() {
                drop(deadpool_postgres::Object::take(*client));
            }
        }
    }
}
