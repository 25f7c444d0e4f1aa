//! What the loader does when DMS re-runs a table's full load (`RELOAD_POLICY`) or a change file
//! arrives late (`LATE_FILE_POLICY`); see docs/reliability.md, "Full-load re-runs and late
//! files".
//!
//! A re-run is recognised when a full-load file is delivered ([`Target::reload_facts`]): the
//! ledger has it with another ETag, or the table has delivered change files already (a new full
//! load), or an earlier re-run of it is recorded and not applied. With `stop` (or before an
//! operator's `retry`), the stream stops at the file, recorded as ERROR and the re-run as
//! DETECTED, and nothing of the table changes. With `reload` (or once approved), the table is
//! replaced by every full-load file of the stream, read one after the other into one staged
//! apply, in one transaction: the keys the full load lacks are removed.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use super::outcome::{FileOutcome, LoaderError, PendingFile};
use super::settings::ReloadPolicy;
use super::Loader;
use crate::dms::{self, TableSpec};
use crate::policy::{Directive, ErrorKind};
use crate::source::{display_key, list_all, Source, SourceError};
use crate::target::{ReloadFacts, ReloadPart, ReloadPlan, Target};

impl<S: Source, T: Target> Loader<S, T> {
    /// A full-load file whose delivery re-runs the table's full load is delivered here, by
    /// `RELOAD_POLICY`. `None`: not a re-run (an ordinary file, delivered as usual).
    pub(crate) async fn rerun(
        &self,
        session: &mut Option<T::Session>,
        file: &PendingFile,
        table: &Arc<TableSpec>,
    ) -> Option<FileOutcome> {
        if !file.object.kind.is_load() {
            return None;
        }
        let facts = match self
            .target
            .reload_facts(
                session.as_ref(),
                &table.name,
                &file.info.key,
                &file.info.etag,
            )
            .await
        {
            Ok(Some(facts)) => facts,
            Ok(None) => return None,
            Err(e) => return Some(self.failed(0, file, table, e.into(), false).await),
        };
        let id = match self.target.next_delivery_id().await {
            Ok(id) => id,
            Err(e) => return Some(self.failed(0, file, table, e.into(), false).await),
        };
        let key = display_key(&file.info.key);
        let what = match &facts.previous {
            Some((previous, Some(etag))) => format!(
                "{key} was delivered by delivery {previous} with ETag {etag}, and DMS wrote it again (ETag {})",
                file.info.etag
            ),
            _ if facts.approved => format!("{key} re-runs the full load"),
            _ => format!("{key} is a full-load file that came after change files were delivered"),
        };
        if self.settings.reload_policy == ReloadPolicy::Stop && !facts.approved {
            let message = format!(
                "{key}: DMS re-ran the full load of {}: {what}. RELOAD_POLICY=stop: the table is left as it is",
                table.name
            );
            let err = LoaderError::Policy {
                kind: ErrorKind::FullLoadRerun,
                message,
            };
            return Some(self.failed_as(id, file, table, err, true, true).await);
        }
        info!(
            "Delivery {id}: DMS re-ran the full load of {}: {what}; replacing the table by its full load in one transaction.",
            table.name
        );
        Some(self.reload(session, id, file, table, facts).await)
    }

    /// Replaces `table` by every full-load file of the stream, in one delivery (`id`).
    async fn reload(
        &self,
        session: &mut Option<T::Session>,
        id: i64,
        file: &PendingFile,
        table: &Arc<TableSpec>,
        facts: ReloadFacts,
    ) -> FileOutcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let outcome = async {
                let loads = self.full_load_files(file).await?;
                let mut parts = Vec::with_capacity(loads.len());
                for load in &loads {
                    let part_id = if load.info.key == file.info.key {
                        id
                    } else {
                        self.target.next_delivery_id().await?
                    };
                    parts.push(ReloadPart {
                        id: part_id,
                        key: load.info.key.clone(),
                        etag: load.info.etag.clone(),
                        size: load.info.size,
                    });
                }
                info!(
                    "Delivery {id}: reading {} full-load file(s) of {}: {}.",
                    loads.len(),
                    table.name,
                    loads
                        .iter()
                        .map(|l| display_key(&l.info.key).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut plan = self.plan_for(id, file, table, false);
                plan.reload = Some(Arc::new(ReloadPlan {
                    parts,
                    facts: facts.clone(),
                }));
                self.set_in_flight(&table.name, Some(id));
                let read = Arc::new(AtomicU64::new(0));
                let result = self
                    .apply_rows(session, &plan, self.reload_rows(loads, table, id, &read))
                    .await?;
                Ok::<_, LoaderError>((plan, result, read.load(Ordering::Relaxed)))
            }
            .await;
            let err = match outcome {
                Ok((plan, result, bytes)) => {
                    self.announce(&plan, &result).await;
                    return self.delivered(plan, result, bytes, started.elapsed());
                }
                Err(err) => err,
            };
            if err.is_retryable() {
                if let Some(old) = session.take() {
                    self.target.close_session(old).await;
                }
            }
            match err.policy().directive {
                Directive::LeaveStream => return FileOutcome::LeftToAnother(table.name.clone()),
                Directive::NextFile => return FileOutcome::AlreadyDelivered,
                Directive::RetryWithBackoff if attempt < self.settings.retry.attempts => {
                    self.retry_later(&file.info.key, id, attempt, &err).await;
                }
                Directive::RetryWithBackoff => {
                    return self.failed(id, file, table, err, false).await;
                }
                Directive::StopStream | Directive::Restage => {
                    return self.failed_as(id, file, table, err, true, true).await;
                }
            }
        }
    }

    /// The stream's full-load files as the bucket lists them now, in order (they sort after
    /// every change file of the folder, so the listing starts at them).
    async fn full_load_files(&self, file: &PendingFile) -> Result<Vec<PendingFile>, SourceError> {
        let key = &file.info.key;
        let folder = &key[..key.rfind('/').map_or(0, |i| i + 1)];
        let start = format!("{folder}LOAD");
        let mut loads = Vec::new();
        for info in list_all(&*self.source, folder, Some(&start)).await? {
            if info.key[folder.len()..].contains('/') {
                continue;
            }
            if let Some(object) = dms::parse_object_key(self.source.path(), &info.key) {
                if object.kind.is_load() && object.table == file.object.table {
                    loads.push(PendingFile {
                        object,
                        info,
                        late: false,
                    });
                }
            }
        }
        if !loads.iter().any(|l| l.info.key == file.info.key) {
            loads.push(file.clone());
        }
        loads.sort_by(|a, b| a.object.stream_order().cmp(&b.object.stream_order()));
        Ok(loads)
    }
}
