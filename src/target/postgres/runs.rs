//! `loader_runs` on Postgres: where the runs of [`crate::runs`] are kept.
use std::collections::HashMap;

use super::{pool_error, PgTarget};
use crate::runs::{Run, StepCounts};
use crate::target::queries::runs as sql;
use crate::target::{DeliveryStatus, TargetError};

/// What the ledger says of a run's step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFacts {
    pub delivery_id: i64,
    pub status: DeliveryStatus,
    pub error: Option<String>,
    pub counts: StepCounts,
}

fn parse(text: String) -> Result<Run, TargetError> {
    serde_json::from_str(&text).map_err(|e| {
        TargetError::Schema(format!("loader_runs holds a run that does not parse: {e}"))
    })
}

impl PgTarget {
    /// Stores a run as it is now.
    pub async fn save_run(&self, run: &Run) -> Result<(), TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let document = serde_json::to_string(run).expect("a run serializes");
        client
            .execute(
                &sql::save_run(&self.schema),
                &[
                    &run.run_id,
                    &run.name,
                    &run.mode.as_str(),
                    &run.status.as_str(),
                    &document,
                ],
            )
            .await
            .map_err(TargetError::pg("save the run"))?;
        Ok(())
    }

    /// A run by id (`None`: no such run, or not an id).
    pub async fn run(&self, id: &str) -> Result<Option<Run>, TargetError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(&sql::get_run(&self.schema), &[&id])
            .await
            .map_err(TargetError::pg("read the run"))?;
        row.map(|r| parse(r.get(0))).transpose()
    }

    /// The latest runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<Run>, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query(&sql::list_runs(&self.schema), &[&limit])
            .await
            .map_err(TargetError::pg("read the runs"))?
            .into_iter()
            .map(|r| parse(r.get(0)))
            .collect()
    }

    /// The runs left in progress.
    pub async fn runs_in_progress(&self) -> Result<Vec<Run>, TargetError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query(&sql::runs_in_progress(&self.schema), &[])
            .await
            .map_err(TargetError::pg("read the runs"))?
            .into_iter()
            .map(|r| parse(r.get(0)))
            .collect()
    }

    /// The ledger's rows for `keys`, with their counts.
    pub async fn step_facts(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, StepFacts>, TargetError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(&sql::ledger_counts(&self.schema), &[&keys])
            .await
            .map_err(TargetError::pg("read the ledger"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let status = DeliveryStatus::parse(&r.get::<_, String>(2))?;
                let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
                Some((
                    r.get(0),
                    StepFacts {
                        delivery_id: r.get(1),
                        status,
                        error: r.get(3),
                        counts: StepCounts {
                            rows: n(4),
                            creates: n(5),
                            amends: n(6),
                            removes: n(7),
                            unchanged: n(8),
                        },
                    },
                ))
            })
            .collect())
    }
}
