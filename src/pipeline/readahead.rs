//! Decode-ahead: the next change file of a stream is read and decoded into a temporary file
//! while the current one is applied, then replayed to the COPY when its turn comes.
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::decode::ChunkSink;
use crate::target::spool::{Spool, Spooled, SPOOL_MEMORY};
use crate::target::{Chunk, ChunkFailure, Encoding};

/// A change file being read and decoded ahead of its turn. Dropping it cancels the decoding.
pub(crate) struct Prefetch {
    pub encoding: Encoding,
    /// The table's columns it was decoded for (a delivery that added columns makes it stale).
    pub spec: Arc<crate::dms::TableSpec>,
    pub etag: String,
    pub size: u64,
    pub bytes_read: Arc<AtomicU64>,
    pub cancel: Arc<AtomicBool>,
    pub tape: tokio::task::JoinHandle<std::io::Result<Tape>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// What a decoder sent, kept for later: the tuples (in memory, or a temporary file when they are
/// many), then the rest (the set-aside inserts, and `End` or `Failed`) as sent.
pub(crate) struct Tape {
    pub data: Spooled,
    pub tail: Vec<Chunk>,
}

/// Records a decoder's chunks into a [`Tape`], on the decoder's thread: the tuples in a
/// [`Spool`], the rest as sent. Stops the decoder once cancelled or if the spool fails.
pub(crate) struct Recorder {
    data: Spool,
    tail: Vec<Chunk>,
    cancel: Arc<AtomicBool>,
    failed: Option<std::io::Error>,
}

impl Recorder {
    pub(crate) fn new(cancel: Arc<AtomicBool>) -> Self {
        Recorder {
            data: Spool::new(SPOOL_MEMORY),
            tail: Vec::new(),
            cancel,
            failed: None,
        }
    }

    /// The tape, once the decoder is done.
    pub(crate) fn finish(self) -> std::io::Result<Tape> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled"));
        }
        Ok(Tape {
            data: self.data.finish()?,
            tail: self.tail,
        })
    }
}

impl ChunkSink for &mut Recorder {
    fn put(&mut self, chunk: Chunk) -> bool {
        if self.failed.is_some() || self.cancel.load(Ordering::Relaxed) {
            return false;
        }
        match chunk {
            Chunk::Data(bytes) => match self.data.write_all(&bytes) {
                Ok(()) => true,
                Err(e) => {
                    self.failed = Some(e);
                    false
                }
            },
            other => {
                self.tail.push(other);
                true
            }
        }
    }
}

impl Tape {
    /// Runs on a blocking thread: sends the tuples in chunks of `chunk_bytes`, then the rest, as
    /// the decoder would have; a Target asking for another encoding gets a retryable failure.
    pub(crate) fn play(
        mut self,
        encoding: Encoding,
        asked: Encoding,
        tx: mpsc::Sender<Chunk>,
        chunk_bytes: usize,
    ) {
        if asked != encoding {
            let _ = tx.blocking_send(Chunk::Failed(ChunkFailure {
                message: "the file was decoded ahead for another table layout".into(),
                retryable: true,
                needs_staging: false,
                added_columns: None,
            }));
            return;
        }
        match self.data.send(chunk_bytes, &tx) {
            Ok(true) => {
                for chunk in self.tail {
                    if tx.blocking_send(chunk).is_err() {
                        return;
                    }
                }
            }
            Ok(false) => {}
            Err(e) => {
                let _ = tx.blocking_send(Chunk::Failed(ChunkFailure {
                    message: format!("reading the file decoded ahead back from TMPDIR: {e}"),
                    retryable: true,
                    needs_staging: false,
                    added_columns: None,
                }));
            }
        }
    }
}
