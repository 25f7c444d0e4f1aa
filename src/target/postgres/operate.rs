//! The operator's view of the ledger on Postgres: what `status`, `deliveries`, `retry` and
//! `skip` read and write (see [`crate::ledger`] for the types and rules).
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::{pool_error, PgTarget};
use crate::ledger::{
    Action, ActionDone, ActionError, ActionRecord, ActionRefused, Actor, DeliveryQuery,
    DeliveryRecord, DeliveryStatus, FailedHead, FailureRecord, LastDelivery, SkippedFile,
    TableFacts, Today,
};
use crate::target::queries::operate as sql;
use crate::target::{Target, TargetError};

impl PgTarget {
    /// What the ledger knows of each replicated table: last delivery, today's counts (since
    /// midnight UTC), the failed file it is stopped at, the skipped files.
    pub async fn table_facts(&self) -> Result<BTreeMap<String, TableFacts>, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let tables: Vec<String> = Target::tables(self).keys().cloned().collect();
        let mut facts: BTreeMap<String, TableFacts> = tables
            .iter()
            .map(|t| (t.clone(), TableFacts::default()))
            .collect();
        let read = TargetError::pg("read the ledger");
        for r in client
            .query(&sql::last_deliveries(&self.schema), &[&tables])
            .await
            .map_err(read)?
        {
            if let Some(f) = facts.get_mut(&r.get::<_, String>(0)) {
                f.last_delivery = Some(LastDelivery {
                    delivery_id: r.get(1),
                    key: r.get(2),
                    finished_at: r.get(3),
                });
            }
        }
        let midnight: DateTime<Utc> = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        for r in client
            .query(&sql::counts_since(&self.schema), &[&midnight])
            .await
            .map_err(TargetError::pg("read the ledger"))?
        {
            if let Some(f) = facts.get_mut(&r.get::<_, String>(0)) {
                f.today = Today {
                    files: r.get(1),
                    rows: r.get(2),
                    creates: r.get(3),
                    amends: r.get(4),
                    removes: r.get(5),
                    unchanged: r.get(6),
                };
            }
        }
        for r in client
            .query(&sql::failed_heads(&self.schema), &[])
            .await
            .map_err(TargetError::pg("read the ledger"))?
        {
            if let Some(f) = facts.get_mut(&r.get::<_, String>(0)) {
                f.failed.push(FailedHead {
                    key: r.get(1),
                    delivery_id: r.get(2),
                    reason: r.get(3),
                    since: r.get(4),
                    attempts: r.get(5),
                });
            }
        }
        for r in client
            .query(&sql::skipped(&self.schema), &[&tables])
            .await
            .map_err(TargetError::pg("read the ledger"))?
        {
            if let Some(f) = facts.get_mut(&r.get::<_, String>(0)) {
                f.skipped.push(SkippedFile {
                    key: r.get(1),
                    reason: r.get(2),
                    at: r.get(3),
                    by: r.get(4),
                });
            }
        }
        Ok(facts)
    }

    /// Ledger rows, newest first, each with its failed attempts and the actions taken on it.
    pub async fn deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRecord>, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let status = query.status.map(|s| s.as_str());
        let rows = client
            .query(
                &sql::deliveries(&self.schema),
                &[&query.table, &status, &query.limit.max(0)],
            )
            .await
            .map_err(TargetError::pg("read the ledger"))?;
        let mut records: Vec<DeliveryRecord> = rows
            .iter()
            .map(|r| {
                let started_at: DateTime<Utc> = r.get(10);
                let finished_at: DateTime<Utc> = r.get(11);
                let status: String = r.get(4);
                DeliveryRecord {
                    delivery_id: r.get(0),
                    key: r.get(1),
                    table: r.get(2),
                    kind: r.get(3),
                    status: DeliveryStatus::parse(&status)
                        .map(|s| s.as_str())
                        .unwrap_or("UNKNOWN"),
                    rows: r.get(5),
                    creates: r.get(6),
                    amends: r.get(7),
                    removes: r.get(8),
                    unchanged: r.get(9),
                    seconds: (finished_at - started_at).num_microseconds().unwrap_or(0) as f64
                        / 1e6,
                    started_at,
                    finished_at,
                    error: r.get(12),
                    host: r.get(13),
                    failures: Vec::new(),
                    actions: Vec::new(),
                }
            })
            .collect();
        let keys: Vec<String> = records.iter().map(|d| d.key.clone()).collect();
        let mut failures: HashMap<String, Vec<FailureRecord>> = HashMap::new();
        for r in client
            .query(&sql::failures_of(&self.schema), &[&keys])
            .await
            .map_err(TargetError::pg("read the failures"))?
        {
            failures.entry(r.get(0)).or_default().push(FailureRecord {
                delivery_id: r.get(1),
                failed_at: r.get(2),
                error: r.get(3),
                host: r.get(4),
            });
        }
        let mut actions: HashMap<String, Vec<ActionRecord>> = HashMap::new();
        for r in client
            .query(&sql::actions_of(&self.schema), &[&keys])
            .await
            .map_err(TargetError::pg("read the actions"))?
        {
            actions.entry(r.get(0)).or_default().push(ActionRecord {
                action: r.get(1),
                delivery_id: r.get(2),
                reason: r.get(3),
                actor: r.get(4),
                via: r.get(5),
                at: r.get(6),
            });
        }
        for d in &mut records {
            d.failures = failures.remove(&d.key).unwrap_or_default();
            d.actions = actions.remove(&d.key).unwrap_or_default();
        }
        Ok(records)
    }

    /// `retry` or `skip` a file its stream stopped at (status `ERROR`), recorded in
    /// `loader_actions` in the same transaction. Refused for any other key, and while a loader
    /// holds the file's stream (it is delivering it).
    pub async fn act(
        &self,
        action: Action,
        key: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<ActionDone, ActionError> {
        let reason = reason.trim();
        if action == Action::Skip && reason.is_empty() {
            return Err(ActionRefused::NoReason.into());
        }
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client
            .transaction()
            .await
            .map_err(TargetError::pg("begin the action"))?;
        let Some(row) = tx
            .query_opt(&sql::lock_entry(&self.schema), &[&key])
            .await
            .map_err(TargetError::pg("read the ledger"))?
        else {
            return Err(ActionRefused::Unknown { key: key.into() }.into());
        };
        let table: String = row.get(0);
        let delivery_id: i64 = row.get(1);
        let status: String = row.get(2);
        let etag: Option<String> = row.get(3);
        match DeliveryStatus::parse(&status) {
            Some(DeliveryStatus::Error) => {}
            other => {
                return Err(ActionRefused::NotStopped {
                    key: key.into(),
                    status: other.map(|s| s.as_str()).unwrap_or("UNKNOWN"),
                }
                .into())
            }
        }
        let stream = format!("{}.{}", self.schema, table);
        let locked: bool = tx
            .query_one(crate::target::queries::LOCK_STREAM, &[&stream])
            .await
            .map_err(TargetError::pg("lock the table stream"))?
            .get(0);
        if !locked {
            return Err(ActionRefused::Busy { table }.into());
        }
        match action {
            Action::Retry => tx.execute(&sql::retry_entry(&self.schema), &[&key]).await,
            Action::Skip => {
                tx.execute(&sql::skip_entry(&self.schema), &[&key, &reason, &self.host])
                    .await
            }
        }
        .map_err(TargetError::pg("update the ledger"))?;
        tx.execute(
            &sql::record_action(&self.schema),
            &[
                &action.as_str(),
                &key,
                &table,
                &delivery_id,
                &etag,
                &reason,
                &actor.name,
                &actor.via,
            ],
        )
        .await
        .map_err(TargetError::pg("record the action"))?;
        tx.commit()
            .await
            .map_err(TargetError::pg("commit the action"))?;
        Ok(ActionDone {
            action: action.as_str(),
            key: key.into(),
            table,
            delivery_id,
        })
    }
}
