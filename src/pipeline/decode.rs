//! The decoder thread: bucket bytes -> gzip -> CSV records (or a Parquet file's rows) -> binary
//! COPY tuples, sent in chunks to the COPY, with the new keys of a change file split off when
//! asked.
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::info;

use super::split::InsertSplit;
use crate::dms::{
    check_header, ColumnType, CsvScanner, DecodeError, OpColumn, ParquetRows, RawRecord, Records,
    RowDecoder, TableSpec,
};
use crate::target::{Chunk, ChunkFailure, Encoding, StreamSummary};

/// Everything the decoding thread needs.
pub(crate) struct DecodeJob {
    pub key: String,
    /// The delivery, for progress lines; `None` when decoding ahead (quiet).
    pub id: Option<i64>,
    pub size: u64,
    pub gzip: bool,
    /// A Parquet file (`.parquet`): set down in `TMPDIR`, then read row group by row group.
    pub parquet: bool,
    pub op_column: OpColumn,
    /// The file starts with a header row (`AddColumnName`): checked, then skipped.
    pub header: bool,
    /// The delimiter, the NULL text and the padding of the endpoint's CSV.
    pub csv: crate::loader::CsvOptions,
    pub spec: Arc<TableSpec>,
    pub chunk_bytes: usize,
    pub bytes_read: Arc<AtomicU64>,
}

/// A reader that remembers whether the bucket's stream itself failed (a transient fault), as
/// opposed to the bytes being bad (gzip or CSV errors).
pub(crate) struct WatchedReader<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for WatchedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }
}

/// Where the decoder's chunks go: the COPY's channel, or a [`Tape`](super::Tape) being
/// recorded on the decoder's own thread.
pub(crate) trait ChunkSink {
    /// Passes a chunk on; `false` if nobody wants the rest.
    fn put(&mut self, chunk: Chunk) -> bool;
}

impl ChunkSink for mpsc::Sender<Chunk> {
    fn put(&mut self, chunk: Chunk) -> bool {
        self.blocking_send(chunk).is_ok()
    }
}

/// A decoding error of a Parquet file in its words: rows for lines, the schema for the header.
fn parquet_words(e: &DecodeError) -> String {
    let text = e.to_string();
    match e {
        DecodeError::Header { .. } | DecodeError::Drift { .. } => {
            text.replacen("line 0: header row", "the Parquet schema", 1)
        }
        _ => match text.strip_prefix("line ") {
            Some(rest) => format!("row {rest}"),
            None => text,
        },
    }
}

/// The migration a schema drift asks for: `ALTER TABLE <table> ADD COLUMN "<name>" <type>, ...`,
/// with the types a Parquet schema gives (`types`, in order), else `<its type>`.
fn add_column_sql(table: &str, extra: &[String], types: &[ColumnType]) -> String {
    format!(
        "ALTER TABLE {table} {}",
        extra
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "ADD COLUMN {} {}",
                    crate::target::queries::quote_ident(&c.to_ascii_lowercase()),
                    types
                        .get(i)
                        .map(crate::target::queries::sql_type)
                        .unwrap_or_else(|| "<its type>".into())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl DecodeJob {
    /// A buffer for this file of at most `max` bytes: `max` for a big file or an unknown size,
    /// else about what the file decodes to (8 times its size, at least 16 KiB).
    fn buffer_bytes(&self, max: usize) -> usize {
        match usize::try_from(self.size) {
            Ok(size) if size > 0 => size.saturating_mul(8).clamp(16 * 1024, max.max(16 * 1024)),
            _ => max,
        }
    }

    /// Runs on a blocking thread: bucket bytes -> gzip -> CSV -> binary COPY tuples -> channel.
    pub(crate) fn run<R: Read>(self, reader: R, encoding: Encoding, mut tx: impl ChunkSink) {
        let source_failed = Arc::new(AtomicBool::new(false));
        let watched = WatchedReader {
            inner: reader,
            failed: source_failed.clone(),
        };
        let buffered = BufReader::with_capacity(self.buffer_bytes(256 * 1024), watched);
        // Where an error is: the line of a CSV file, the row of a Parquet file (in the message).
        let mut at_line = None;
        // The types of the columns a Parquet file adds (schema drift), from its schema.
        let mut drift_types = Vec::new();
        let result = if self.parquet {
            self.decode_parquet(buffered, encoding, &mut tx, &mut drift_types)
        } else {
            let input: Box<dyn Read> = if self.gzip {
                Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
            } else {
                Box::new(buffered)
            };
            let mut scanner = CsvScanner::new(input)
                .with_delimiter(self.csv.delimiter)
                .with_row_delimiter(self.csv.row_delimiter);
            let result = self.decode(&mut scanner, encoding, &mut tx);
            at_line = Some(scanner.line());
            result
        };
        let message = match result {
            Ok(Some(summary)) => Chunk::End(summary),
            // The receiver is gone: the transaction failed and says why.
            Ok(None) => return,
            Err(DecodeError::NeedsStaging { line }) => Chunk::Failed(ChunkFailure {
                message: format!("{}: line {line}: a delete in a full load", self.key),
                retryable: false,
                needs_staging: true,
                added_columns: None,
            }),
            Err(e) => {
                let retryable =
                    source_failed.load(Ordering::Relaxed) || matches!(e, DecodeError::Spill(_));
                let said = if self.parquet {
                    parquet_words(&e)
                } else {
                    e.to_string()
                };
                let message = match &e {
                    DecodeError::Io(io) if retryable => {
                        format!("{}: reading from the bucket failed: {io}", self.key)
                    }
                    DecodeError::Io(io) => match at_line {
                        Some(line) => {
                            format!("{}: line {line}: not a valid gzip stream ({io})", self.key)
                        }
                        None => format!("{}: not a readable Parquet file ({io})", self.key),
                    },
                    DecodeError::Drift { table, extra, .. } => format!(
                        "{}: {said}. SCHEMA_DRIFT_POLICY=stop: add them to the table with a migration ({}), then retry the file; or set SCHEMA_DRIFT_POLICY=add-columns",
                        self.key,
                        add_column_sql(table, extra, &drift_types)
                    ),
                    DecodeError::FieldCount {
                        expected, found, ..
                    } if found > expected => format!(
                        "{}: {said} (more fields than table {} has columns: if DMS added source columns, add them to the table with a migration, then retry the file; with AddColumnName=true the loader names them)",
                        self.key, self.spec.name
                    ),
                    _ => format!("{}: {said}", self.key),
                };
                let added_columns = match e {
                    DecodeError::Drift { extra, .. } => Some(
                        extra
                            .into_iter()
                            .enumerate()
                            .map(|(i, name)| {
                                (
                                    name,
                                    drift_types.get(i).cloned().unwrap_or(ColumnType::Text),
                                )
                            })
                            .collect(),
                    ),
                    _ => None,
                };
                Chunk::Failed(ChunkFailure {
                    message,
                    retryable,
                    needs_staging: false,
                    added_columns,
                })
            }
        };
        let _ = tx.put(message);
    }

    /// A Parquet file: its footer is at its end, so it is set down in a temporary file first
    /// (disk, not memory), then read row group by row group.
    fn decode_parquet(
        &self,
        mut body: impl Read,
        encoding: Encoding,
        tx: &mut impl ChunkSink,
        drift_types: &mut Vec<ColumnType>,
    ) -> Result<Option<StreamSummary>, DecodeError> {
        let mut file = tempfile::tempfile().map_err(DecodeError::Spill)?;
        std::io::copy(&mut body, &mut file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::StorageFull {
                DecodeError::Spill(e)
            } else {
                DecodeError::Io(e)
            }
        })?;
        let mut rows = ParquetRows::open(file)?;
        let result = self.decode(&mut rows, encoding, tx);
        if let Err(DecodeError::Drift { extra, .. }) = &result {
            drift_types.extend(
                extra
                    .iter()
                    .map(|name| rows.column_type(name).cloned().unwrap_or(ColumnType::Text)),
            );
        }
        result
    }

    pub(crate) fn decode(
        &self,
        scanner: &mut impl Records,
        encoding: Encoding,
        tx: &mut impl ChunkSink,
    ) -> Result<Option<StreamSummary>, DecodeError> {
        let mut record = RawRecord::new();
        if scanner.header(&mut record, self.header)? {
            check_header(
                &self.spec,
                &record,
                self.op_column,
                self.csv.timestamp_column.as_deref(),
            )?;
        }
        let mut decoder = RowDecoder::new(self.spec.clone(), self.op_column);
        decoder.set_layout(encoding.layout);
        // (NULL text and padding are CSV's: Parquet has nulls, and no padding.)
        if !self.parquet {
            decoder.set_null_value(self.csv.null_value.clone());
            decoder.set_trim_padding(self.csv.trim_padding);
        }
        decoder.set_unsupplied(
            encoding.unsupplied_marks,
            self.csv.no_sup_value.clone().filter(|_| !self.parquet),
        );
        decoder.set_timestamp_column(self.csv.timestamp_column.as_deref());
        let mut split = if encoding.split_inserts {
            Some(InsertSplit::new(&self.spec, self.size))
        } else {
            None
        };
        // A small file's tuples take a small buffer (it grows if they need more).
        let mut buf: Vec<u8> = Vec::with_capacity(self.buffer_bytes(self.chunk_bytes + 64 * 1024));
        let mut summary = StreamSummary::default();
        while scanner.next_record(&mut record)? {
            summary.rows += 1;
            let mark = buf.len();
            let row = decoder.decode(&record, summary.rows as i64, &mut buf)?;
            if let Some(split) = split.as_mut() {
                if split
                    .route(row.op, &buf[mark..])
                    .map_err(DecodeError::Spill)?
                {
                    buf.truncate(mark);
                }
            }
            if let Some(e) = row.event_id {
                summary.max_event_id = Some(summary.max_event_id.map_or(e, |m| m.max(e)));
            }
            if buf.len() >= self.chunk_bytes {
                let full =
                    std::mem::replace(&mut buf, Vec::with_capacity(self.chunk_bytes + 64 * 1024));
                if !tx.put(Chunk::Data(Bytes::from(full))) {
                    return Ok(None);
                }
            }
            if let (Some(id), true) = (self.id, summary.rows % 10_000 == 0) {
                let read = self.bytes_read.load(Ordering::Relaxed).max(1);
                let estimate = if let Some(total) = scanner.total() {
                    total
                } else if read >= self.size {
                    summary.rows
                } else {
                    (summary.rows as f64 * self.size as f64 / read as f64) as u64
                };
                // The total is the file's (Parquet), or estimated from the compressed bytes read
                // so far (CSV).
                let estimate = estimate.max(summary.rows);
                info!(
                    "Delivery {}: processed {}/{} ({}%)...",
                    id,
                    summary.rows,
                    estimate,
                    summary.rows * 100 / estimate.max(1)
                );
            }
        }
        // The set-aside rows bound for the staging table after all go with the rest.
        let mut gone = false;
        let inserts = match split {
            Some(split) => split
                .finish(|tuple| {
                    buf.extend_from_slice(tuple);
                    if buf.len() >= self.chunk_bytes {
                        let full = std::mem::replace(
                            &mut buf,
                            Vec::with_capacity(self.chunk_bytes + 64 * 1024),
                        );
                        gone = !tx.put(Chunk::Data(Bytes::from(full)));
                    }
                    Ok(!gone)
                })
                .map_err(DecodeError::Spill)?,
            None => None,
        };
        if gone || (!buf.is_empty() && !tx.put(Chunk::Data(Bytes::from(buf)))) {
            return Ok(None);
        }
        if let Some(inserts) = inserts {
            if !tx.put(Chunk::Inserts(inserts)) {
                return Ok(None);
            }
        }
        Ok(Some(summary))
    }
}
