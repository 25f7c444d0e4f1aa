//! The outbox of change notifications, as the relay reads it.
use super::{pool_error, PgTarget};
use crate::target::{queries, Outbox, OutboxMessage, TargetError};

impl Outbox for PgTarget {
    async fn hold_publisher_lock(&self) -> Result<bool, TargetError> {
        let mut held = self.publisher_lock.lock().await;
        if held.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(true);
        }
        *held = None;
        // A session lock on a connection of its own: it lasts while this process lives, and
        // Postgres releases it when the connection ends (the process stopped or died).
        let client = match &self.tls {
            Some(tls) => super::tls::connect_one(&self.config, tls.clone()).await,
            None => super::tls::connect_one(&self.config, tokio_postgres::NoTls).await,
        }
        .map_err(TargetError::pg("connect for the publisher lock"))?;
        let locked: bool = client
            .query_one(queries::LOCK_PUBLISHER, &[&self.schema])
            .await
            .map_err(TargetError::pg("take the publisher lock"))?
            .get(0);
        if locked {
            *held = Some(client);
        }
        Ok(locked)
    }

    async fn pending_messages(&self, limit: i64) -> Result<Vec<OutboxMessage>, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(&queries::outbox_pending(&self.schema), &[&limit])
            .await
            .map_err(TargetError::pg("read the outbox"))?;
        Ok(rows
            .iter()
            .map(|r| OutboxMessage {
                id: r.get(0),
                delivery_id: r.get(1),
                subject: r.get(2),
                payload: r.get(3),
                msg_id: r.get(4),
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
