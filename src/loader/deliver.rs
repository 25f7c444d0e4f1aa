//! Delivering one file: attempts, retries with backoff, the outcome, its log lines and metrics.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::events::{DeliveryCompleted, DeliveryFailed, Event, RetryScheduled};
use super::outcome::{Delivered, Failed, FileOutcome, LoaderError, PendingFile};
use super::read::Prefetch;
use super::settings::{LateFilePolicy, SchemaDriftPolicy};
use super::Loader;
use crate::dms::TableSpec;
use crate::policy::{Directive, ErrorKind};
use crate::source::{display_key, Source};
use crate::target::{DeliveryPlan, DeliveryResult, Target, TargetError};

impl<S: Source, T: Target> Loader<S, T> {
    /// Delivers one file, retrying transient faults with backoff.
    pub(crate) async fn deliver(
        &self,
        session: &mut Option<T::Session>,
        file: &PendingFile,
        mut ahead: Option<Prefetch>,
    ) -> FileOutcome {
        let mut table = self
            .target
            .table(&file.object.table)
            .expect("discovery lists only the target's tables");
        // Columns the file added, once SCHEMA_DRIFT_POLICY=add-columns took them.
        let mut add_columns: Vec<String> = Vec::new();
        // Whether the table's columns were read again after a file named new ones.
        let mut refreshed = false;
        if file.late && self.settings.late_file_policy == LateFilePolicy::Stop {
            let id = self.target.next_delivery_id().await.unwrap_or(0);
            let message = format!(
                "{}: a late change file: its commit time is before the last change file delivered to {}. LATE_FILE_POLICY=stop",
                display_key(&file.info.key),
                table.name
            );
            let err = LoaderError::Policy {
                kind: ErrorKind::LateFile,
                message,
            };
            return self.failed(id, file, &table, err, true).await;
        }
        if let Some(outcome) = self.rerun(session, file, &table).await {
            return outcome;
        }
        let mut attempt = 0;
        // A full-load file goes straight into its table unless it turns out it cannot.
        // (Not in a dry run: the direct path may rebuild indexes, locking the table until the dry
        // run ends; the staged apply counts the same.)
        let mut direct_allowed = file.object.kind.is_load() && !self.settings.dry_run;
        loop {
            attempt += 1;
            let started = Instant::now();
            let id = match self.target.next_delivery_id().await {
                Ok(id) => id,
                Err(e) => {
                    let err = LoaderError::Target(e);
                    if attempt < self.settings.retry.attempts && err.is_retryable() {
                        self.retry_later(&file.info.key, 0, attempt, &err).await;
                        continue;
                    }
                    return self.failed(0, file, &table, err, false).await;
                }
            };
            info!(
                table = %table.name,
                key = %file.info.key,
                "Delivery {id}: process_{} {}.",
                file.object.schema,
                file.info.key
            );
            if file.late {
                info!(
                    "Delivery {id}: {} arrived late (its commit time is before the last change file delivered to {}); each row applies only where no later change file wrote the table's row (LATE_FILE_POLICY=apply-guarded).",
                    display_key(&file.info.key),
                    table.name
                );
            }
            self.set_in_flight(&table.name, Some(id));
            let _ = self.progress.send(super::Progress::FileStarted {
                table: table.name.clone(),
                key: file.info.key.clone(),
                delivery_id: id,
            });
            let mut plan = self.plan_for(id, file, &table, direct_allowed);
            plan.add_columns = add_columns.clone();
            // Only the first attempt uses what was decoded ahead; a retry reads the file again.
            let result = self
                .attempt(session, &mut plan, &file.object, ahead.take())
                .await;
            if matches!(&result, Err(e) if e.is_retryable()) {
                // The connection may be gone: the next attempt starts a new session.
                if let Some(old) = session.take() {
                    self.target.close_session(old).await;
                }
            }
            let err = match result {
                Ok((result, bytes)) => {
                    self.announce(&plan, &result).await;
                    return self.delivered(plan, result, bytes, started.elapsed());
                }
                Err(err) => err,
            };
            if let LoaderError::Target(TargetError::Input(failure)) = &err {
                // New columns named: an operator's migration may have added them since start-up.
                if let (Some(extra), false) = (&failure.added_columns, refreshed) {
                    refreshed = true;
                    if let Ok(Some(fresh)) = self.target.refresh_table(&table.name).await {
                        let has_them = extra.iter().all(|(n, _)| {
                            fresh.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n))
                        });
                        if has_them && fresh.columns.len() > table.columns.len() {
                            info!(
                                "Delivery {id}: table {} has the file's new column(s) {} now; reading the file with them.",
                                table.name,
                                extra
                                    .iter()
                                    .map(|(n, _)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            );
                            table = fresh;
                            attempt -= 1;
                            continue;
                        }
                    }
                }
                if let (Some(extra), SchemaDriftPolicy::AddColumns, true) = (
                    &failure.added_columns,
                    self.settings.schema_drift_policy,
                    add_columns.is_empty(),
                ) {
                    // (Names the table has already: another delivery or loader added them.)
                    let new: Vec<(String, crate::dms::ColumnType)> = extra
                        .iter()
                        .filter(|(n, _)| {
                            !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n))
                        })
                        .cloned()
                        .collect();
                    if !new.is_empty() {
                        let names: Vec<&str> = new.iter().map(|(n, _)| n.as_str()).collect();
                        let types = if new.iter().all(|(_, t)| *t == crate::dms::ColumnType::Text) {
                            "text, nullable".to_string()
                        } else {
                            format!(
                                "nullable; {}",
                                new.iter()
                                    .map(|(n, t)| format!(
                                        "{} {}",
                                        n.to_ascii_lowercase(),
                                        crate::target::queries::sql_type(t)
                                    ))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        info!(
                            "Delivery {id}: {} has new column(s) at its end: {}; adding them to {} ({types}) in the delivery's transaction (SCHEMA_DRIFT_POLICY=add-columns).",
                            display_key(&file.info.key),
                            names.join(", "),
                            table.name
                        );
                        table = Arc::new(table.with_columns(&new));
                        add_columns = names.iter().map(|n| n.to_ascii_lowercase()).collect();
                        attempt -= 1;
                        continue;
                    }
                }
            }
            // What to do is the policy's decision (src/policy.rs), one directive per kind.
            match err.policy().directive {
                Directive::LeaveStream => {
                    info!(
                        "Delivery {id}: another loader is delivering {} now; leaving the stream to it.",
                        table.name
                    );
                    return FileOutcome::LeftToAnother(table.name.clone());
                }
                Directive::Restage => {
                    info!(
                        "Delivery {id}: the full load repeats a key, meets an existing one or has a delete; applying it through staging."
                    );
                    direct_allowed = false;
                    attempt -= 1;
                }
                Directive::NextFile => {
                    info!(
                        "Delivery {id}: {} was delivered by another loader.",
                        plan.key
                    );
                    return FileOutcome::AlreadyDelivered;
                }
                Directive::RetryWithBackoff if attempt < self.settings.retry.attempts => {
                    self.retry_later(&plan.key, id, attempt, &err).await;
                }
                Directive::RetryWithBackoff => {
                    return self.failed(id, file, &table, err, false).await;
                }
                Directive::StopStream => {
                    return self.failed(id, file, &table, err, true).await;
                }
            }
        }
    }

    /// A delivery of `file` starting now.
    pub(crate) fn plan_for(
        &self,
        id: i64,
        file: &PendingFile,
        table: &Arc<TableSpec>,
        direct_allowed: bool,
    ) -> DeliveryPlan {
        DeliveryPlan {
            id,
            key: file.info.key.clone(),
            etag: file.info.etag.clone(),
            size: file.info.size,
            table: table.clone(),
            kind: if file.object.kind.is_load() {
                "LOAD"
            } else {
                "CDC"
            },
            started_at: chrono::Utc::now(),
            notification: self
                .settings
                .notification
                .clone()
                .map(|n| n as Arc<dyn crate::target::OutboxWriter>),
            direct_allowed,
            late: match file.object.kind {
                crate::dms::FileKind::Cdc { stamp } if file.late => Some(stamp),
                _ => None,
            },
            reload: None,
            upserts_only: self.settings.csv.cdc_without_op,
            keep_unsupplied: self.settings.csv.no_sup_value.is_some(),
            commit_column: self
                .settings
                .csv
                .timestamp_column
                .as_ref()
                .and_then(|name| table.column_named(name)),
            add_columns: Vec::new(),
        }
    }

    pub(crate) async fn retry_later(&self, key: &str, id: i64, attempt: u32, err: &LoaderError) {
        let wait = self.settings.retry.backoff.delay(attempt);
        RetryScheduled {
            id,
            attempt,
            wait,
            kind: err.kind(),
            message: &err.describe(key),
        }
        .emit(&self.metrics);
        tokio::time::sleep(wait).await;
    }

    /// Logs the counts and what became of the change notification.
    pub(crate) async fn announce(&self, plan: &DeliveryPlan, result: &DeliveryResult) {
        let id = plan.id;
        let c = result.counts;
        info!(
            "Delivery {id}: {} (create: {}, amend: {}, remove: {}).",
            plan.table.name, c.creates, c.amends, c.removes
        );
        if self.settings.dry_run {
            info!(
                "Delivery {id}: dry run: {} rows would apply ({} keys unchanged); rolled back, nothing persisted.",
                result.rows, c.unchanged
            );
            return;
        }
        info!("Delivery {id}: persisted to postgres.");
        if plan.notification.is_none() {
            return;
        }
        if !c.changed() {
            info!("Delivery {id}: no net change, no message to publish.");
            return;
        }
        let Some(relay) = &self.relay else {
            info!("Delivery {id}: message written to the outbox.");
            return;
        };
        relay.wake();
        if relay.is_standby() {
            info!("Delivery {id}: message written to the outbox; another loader publishes it.");
            return;
        }
        if relay.is_failing() {
            // NATS is known to be away: no waiting (a backlog would wait for each file); the
            // message goes out, in order, when NATS answers.
            warn!("Delivery {id}: NATS is unavailable; the message waits in the outbox and goes out when NATS answers.");
            return;
        }
        if relay.wait_published(id, self.settings.publish_wait).await {
            info!("Delivery {id}: messages published.");
        } else if relay.is_failing() {
            warn!("Delivery {id}: NATS has not acknowledged the message yet; it waits in the outbox and goes out when NATS answers.");
        } else {
            // NATS answers; the relay is still sending earlier messages (a backlog), in order.
            info!("Delivery {id}: message queued in the outbox behind earlier ones; it goes out in order.");
        }
    }

    pub(crate) fn delivered(
        &self,
        plan: DeliveryPlan,
        result: DeliveryResult,
        bytes: u64,
        elapsed: Duration,
    ) -> FileOutcome {
        let id = plan.id;
        let table = &plan.table.name;
        let c = result.counts;
        DeliveryCompleted {
            id,
            table,
            counts: c,
            bytes,
            elapsed,
            dry_run: self.settings.dry_run,
        }
        .emit(&self.metrics);
        FileOutcome::Delivered(Delivered {
            id,
            key: plan.key,
            table: table.clone(),
            result,
            elapsed,
        })
    }

    pub(crate) async fn failed(
        &self,
        id: i64,
        file: &PendingFile,
        table: &Arc<TableSpec>,
        err: LoaderError,
        record: bool,
    ) -> FileOutcome {
        self.failed_as(id, file, table, err, record, false).await
    }

    /// [`Loader::failed`]; `rerun`: the file re-runs the table's full load, so its ERROR row takes
    /// the place of its earlier delivery's row and the re-run is recorded (see `reload`).
    pub(crate) async fn failed_as(
        &self,
        id: i64,
        file: &PendingFile,
        table: &Arc<TableSpec>,
        err: LoaderError,
        record: bool,
        rerun: bool,
    ) -> FileOutcome {
        let message = err.describe(&file.info.key);
        let retryable = err.is_retryable();
        DeliveryFailed {
            id,
            table: &table.name,
            kind: err.kind(),
            message: &message,
        }
        .emit(&self.metrics);
        if record && !self.settings.dry_run {
            let plan = self.plan_for(id, file, table, false);
            let recorded = if rerun {
                self.target.record_reload_stop(&plan, &message).await
            } else {
                self.target.record_failure(&plan, &message).await
            };
            match recorded {
                Ok(()) => error!(
                    "Delivery {id}: recorded as ERROR; stream {} stops at this file. Next step: {}; then run: {} (or let the stream go on without it: {}).",
                    table.name,
                    err.policy().solution,
                    crate::status::retry_command(&file.info.key),
                    crate::status::skip_command(&file.info.key)
                ),
                Err(e) => error!("Delivery {id}: could not record the failure: {e}"),
            }
        } else if retryable {
            warn!(
                "Delivery {id}: {} stays pending and will be tried again.",
                file.info.key
            );
        }
        FileOutcome::Failed(Failed {
            id,
            key: file.info.key.clone(),
            table: table.name.clone(),
            error: message,
            retryable,
        })
    }
}
