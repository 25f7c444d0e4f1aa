//! Reading a file for its delivery: live from the bucket through the decoder thread, or from
//! what was decoded ahead of its turn.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

use super::outcome::{LoaderError, PendingFile};
use super::Loader;
use crate::dms::{self, DmsObject, TableSpec};
use crate::pipeline::{DecodeJob, Recorder, Tape};
use crate::source::Source;
use crate::target::{Chunk, DeliveryPlan, DeliveryResult, Rows, Target, TargetError};

pub(crate) use crate::pipeline::Prefetch;

impl<S: Source, T: Target> Loader<S, T> {
    /// The decoding thread's job for `object` (`id`: the delivery, `None` when decoding ahead).
    pub(crate) fn decode_job(
        &self,
        key: &str,
        id: Option<i64>,
        size: u64,
        object: &DmsObject,
        spec: Arc<TableSpec>,
        bytes_read: &Arc<AtomicU64>,
    ) -> DecodeJob {
        DecodeJob {
            key: key.to_string(),
            id,
            size,
            gzip: matches!(object.compression, dms::Compression::Gzip),
            parquet: matches!(object.compression, dms::Compression::Parquet),
            op_column: match object.kind {
                dms::FileKind::Cdc { .. } if self.settings.csv.cdc_without_op => {
                    dms::OpColumn::Absent
                }
                kind => kind.op_column(),
            },
            header: self.settings.header_row,
            csv: crate::loader::CsvOptions {
                // (DMS writes it in change files only.)
                no_sup_value: match object.kind {
                    dms::FileKind::Cdc { .. } => self.settings.csv.no_sup_value.clone(),
                    _ => None,
                },
                ..self.settings.csv.clone()
            },
            spec,
            chunk_bytes: self.settings.chunk_bytes,
            bytes_read: bytes_read.clone(),
        }
    }

    /// Starts reading and decoding `file` ahead of its turn, when the Target can say now how it
    /// will want it (change files). `None` if not, or if the bucket does not answer now (the
    /// file is then read when its turn comes, with the usual retries).
    pub(crate) async fn prefetch(&self, file: &PendingFile) -> Option<Prefetch> {
        // (A late file, an Op-less change file and a file of a stream whose columns may be
        // unsupplied are staged whole: not the encoding read ahead.)
        if file.object.kind.is_load()
            || file.late
            || self.settings.csv.cdc_without_op
            || self.settings.csv.no_sup_value.is_some()
        {
            return None;
        }
        let table = self.target.table(&file.object.table)?;
        let encoding = self.target.cdc_encoding(&table)?;
        let spec = table.clone();
        let body = self.source.open(&file.info.key).await.ok()?;
        let cancel = Arc::new(AtomicBool::new(false));
        let job = self.decode_job(
            &file.info.key,
            None,
            body.size.max(file.info.size),
            &file.object,
            table,
            &body.bytes_read,
        );
        let reader = SyncIoBridge::new(body.reader);
        // Recorded on the decoder's thread: the tuples are kept in memory, or past
        // `SPOOL_MEMORY` in a temporary file (memory stays bounded whatever the file size).
        let stop = cancel.clone();
        let tape = tokio::task::spawn_blocking(move || -> std::io::Result<Tape> {
            let mut recorder = Recorder::new(stop);
            job.run(reader, encoding, &mut recorder);
            recorder.finish()
        });
        Some(Prefetch {
            encoding,
            spec,
            etag: body.etag,
            size: body.size,
            bytes_read: body.bytes_read,
            cancel,
            tape,
        })
    }

    /// One attempt: stream the object through the decoder into the Target's transaction (or
    /// play what was decoded ahead). Returns the result and the compressed bytes read.
    pub(crate) async fn attempt(
        &self,
        session: &mut Option<T::Session>,
        plan: &mut DeliveryPlan,
        object: &DmsObject,
        ahead: Option<Prefetch>,
    ) -> Result<(DeliveryResult, u64), LoaderError> {
        // (Decoded for other columns: a delivery before it added some. Read again.)
        if let Some(ahead) = ahead.filter(|a| a.spec == plan.table) {
            if let Some(played) = self.play(session, plan, ahead).await {
                return played;
            }
        }
        let body = self
            .source
            .open(&plan.key)
            .await
            .map_err(LoaderError::Source)?;
        if !body.etag.is_empty() {
            plan.etag = body.etag.clone();
        }
        if body.size > 0 {
            plan.size = body.size;
        }
        let bytes_read = body.bytes_read.clone();
        let job = self.decode_job(
            &plan.key,
            Some(plan.id),
            plan.size,
            object,
            plan.table.clone(),
            &bytes_read,
        );
        let reader = SyncIoBridge::new(body.reader);
        let (worker, slot) = worker_slot();
        // The decoder thread starts when the Target opens the rows with their encoding.
        let rows: Rows = Box::new(move |encoding| {
            let (tx, rx) = mpsc::channel::<Chunk>(4);
            slot(tokio::task::spawn_blocking(move || {
                job.run(reader, encoding, tx)
            }));
            rx
        });
        let result = self.apply(session, plan, rows).await;
        worker.finish().await;
        let result = result.map_err(LoaderError::Target)?;
        Ok((result, bytes_read.load(Ordering::Relaxed)))
    }

    /// Applies a file decoded ahead; `None` if the decoding ahead did not finish (then the file is
    /// read again).
    pub(crate) async fn play(
        &self,
        session: &mut Option<T::Session>,
        plan: &mut DeliveryPlan,
        mut ahead: Prefetch,
    ) -> Option<Result<(DeliveryResult, u64), LoaderError>> {
        let tape = (&mut ahead.tape).await.ok()?.ok()?;
        let (encoding, bytes_read) = (ahead.encoding, ahead.bytes_read.clone());
        if !ahead.etag.is_empty() {
            plan.etag = std::mem::take(&mut ahead.etag);
        }
        if ahead.size > 0 {
            plan.size = ahead.size;
        }
        let chunk_bytes = self.settings.chunk_bytes;
        let (worker, slot) = worker_slot();
        let rows: Rows = Box::new(move |asked| {
            let (tx, rx) = mpsc::channel::<Chunk>(4);
            slot(tokio::task::spawn_blocking(move || {
                tape.play(encoding, asked, tx, chunk_bytes)
            }));
            rx
        });
        let result = self.apply(session, plan, rows).await;
        worker.finish().await;
        Some(
            result
                .map(|r| (r, bytes_read.load(Ordering::Relaxed)))
                .map_err(LoaderError::Target),
        )
    }

    /// The Target's apply in the stream's session (opened on first use).
    pub(crate) async fn apply(
        &self,
        session: &mut Option<T::Session>,
        plan: &DeliveryPlan,
        rows: Rows,
    ) -> Result<DeliveryResult, TargetError> {
        match session {
            Some(s) => self.target.apply(s, plan, rows).await,
            None => match self.target.open_session(&plan.table).await {
                Ok(s) => self.target.apply(session.insert(s), plan, rows).await,
                Err(e) => Err(e),
            },
        }
    }
}

impl<S: Source, T: Target> Loader<S, T> {
    /// The rows of several files (a full-load re-run's), read and decoded one after the other
    /// as one file's: their tuples in order, then one `End` with the totals. A bad file ends
    /// them with its `Failed`, naming it. `read` counts the compressed bytes read.
    pub(crate) fn reload_rows(
        &self,
        files: Vec<PendingFile>,
        spec: &Arc<TableSpec>,
        id: i64,
        read: &Arc<AtomicU64>,
    ) -> (Rows, Worker) {
        let jobs: Vec<(String, DecodeJob)> = files
            .iter()
            .map(|f| {
                let job = self.decode_job(
                    &f.info.key,
                    Some(id),
                    f.info.size,
                    &f.object,
                    spec.clone(),
                    &Arc::new(AtomicU64::new(0)),
                );
                (f.info.key.clone(), job)
            })
            .collect();
        let source = self.source.clone();
        let read = read.clone();
        let (worker, slot) = worker_slot();
        let rows: Rows = Box::new(move |encoding| {
            let (tx, rx) = mpsc::channel::<Chunk>(4);
            slot(tokio::spawn(async move {
                let mut total = crate::target::StreamSummary::default();
                for (key, mut job) in jobs {
                    let body = match source.open(&key).await {
                        Ok(body) => body,
                        Err(e) => {
                            let retryable = crate::policy::source_kind(&e)
                                == crate::policy::ErrorKind::SourceUnavailable;
                            let _ = tx
                                .send(Chunk::Failed(crate::target::ChunkFailure {
                                    message: format!("{}: {e}", crate::source::display_key(&key)),
                                    retryable,
                                    needs_staging: false,
                                    added_columns: None,
                                }))
                                .await;
                            return;
                        }
                    };
                    job.size = job.size.max(body.size);
                    job.bytes_read = body.bytes_read.clone();
                    let reader = SyncIoBridge::new(body.reader);
                    let end = Arc::new(Mutex::new(None));
                    let sink = Forward {
                        tx: tx.clone(),
                        end: end.clone(),
                    };
                    let ran = tokio::task::spawn_blocking(move || job.run(reader, encoding, sink));
                    let _ = ran.await;
                    read.fetch_add(body.bytes_read.load(Ordering::Relaxed), Ordering::Relaxed);
                    let Some(summary) = end.lock().expect("not poisoned").take() else {
                        // The file failed (its `Failed` went on) or nobody wants the rest.
                        return;
                    };
                    total.rows += summary.rows;
                    total.max_event_id = total.max_event_id.max(summary.max_event_id);
                }
                let _ = tx.send(Chunk::End(total)).await;
            }));
            rx
        });
        (rows, worker)
    }

    /// [`Loader::apply`] of rows whose producer is `worker`, waited for before it returns.
    pub(crate) async fn apply_rows(
        &self,
        session: &mut Option<T::Session>,
        plan: &DeliveryPlan,
        (rows, worker): (Rows, Worker),
    ) -> Result<DeliveryResult, LoaderError> {
        let result = self.apply(session, plan, rows).await;
        worker.finish().await;
        result.map_err(LoaderError::Target)
    }
}

/// Passes a file's chunks on, keeping its `End` back (the files' totals end the rows).
struct Forward {
    tx: mpsc::Sender<Chunk>,
    end: Arc<Mutex<Option<crate::target::StreamSummary>>>,
}

impl crate::pipeline::ChunkSink for Forward {
    fn put(&mut self, chunk: Chunk) -> bool {
        match chunk {
            Chunk::End(summary) => {
                *self.end.lock().expect("not poisoned") = Some(summary);
                true
            }
            other => self.tx.blocking_send(other).is_ok(),
        }
    }
}

/// The blocking thread a `Rows` factory starts (if the Target opened the rows at all), so the
/// attempt can wait for it to end before it reports.
pub(crate) struct Worker(Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>);

impl Worker {
    async fn finish(self) {
        let handle = self.0.lock().expect("not poisoned").take();
        if let Some(handle) = handle {
            // It ends on its own once the channel is closed.
            let _ = handle.await;
        }
    }
}

fn worker_slot() -> (
    Worker,
    impl FnOnce(tokio::task::JoinHandle<()>) + Send + 'static,
) {
    let slot = Arc::new(Mutex::new(None));
    let setter = slot.clone();
    (Worker(slot), move |handle| {
        *setter.lock().expect("not poisoned") = Some(handle);
    })
}
