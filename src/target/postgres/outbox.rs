//! The outbox of change notifications, as the relay reads it.
use super::{pool_error, PgTarget};
use crate::target::{queries, Outbox, OutboxMessage, TargetError};

impl Outbox for PgTarget {
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
