//! The files: their DMS object keys (named by `dms-naming`), and the CSV (gzip) encoding of their
//! bodies.

use dms_naming::{load_file_name, object_key, NetCounts};
use flate2::write::GzEncoder;
use flate2::Compression;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use super::dialect::{write_record_in, FileDialect};
use super::fields::Fields;
use super::parquet::ParquetFile;
use super::reference::Ctx;
use super::rows::Row;
use super::spec::{FileSummary, SampleFile, EXECUTION_COLUMNS, ORDER_COLUMNS, STRATEGY_COLUMNS};
use super::state::{Log, Table};

pub(super) struct Emitter {
    /// The bucket path the keys start with (may be empty).
    pub(super) prefix: String,
    pub(super) fields: Fields,
    pub(super) files: Vec<FileSummary>,
    /// How the endpoint's settings shape the files.
    pub(super) dialect: FileDialect,
    /// When change files leave operations out (`CdcInsertsOnly`, `CdcInsertsAndUpdates`): what
    /// the target holds, per table and key (rendered), so the counts and the final contents are
    /// the target's.
    pub(super) model: Option<Model>,
}

/// Per table, each key's row as rendered.
pub(super) type Model = HashMap<String, BTreeMap<i64, Vec<Option<String>>>>;

/// Applies a change file's operations to the target's `rows` (a delete removes, an insert or an
/// update upserts) and returns the net counts.
fn replay<'a, R: Row + 'a>(
    cx: &Ctx,
    rows: &mut BTreeMap<i64, Vec<Option<String>>>,
    ops: impl Iterator<Item = &'a (u8, R)>,
) -> NetCounts {
    let mut fields = Fields::default();
    let mut before: HashMap<i64, Option<Vec<Option<String>>>> = HashMap::new();
    for (op, r) in ops {
        let key = r.key();
        before.entry(key).or_insert_with(|| rows.get(&key).cloned());
        if *op == b'D' {
            rows.remove(&key);
        } else {
            fields.clear();
            r.render(cx, &mut fields);
            rows.insert(key, fields.values());
        }
    }
    let mut c = NetCounts::default();
    for (key, was) in &before {
        c.count(was.as_ref(), rows.get(key));
    }
    c
}

/// A table's column names, in file order.
fn columns(table: &str) -> &'static [&'static str] {
    match table {
        "strategies" => &STRATEGY_COLUMNS,
        "orders" => &ORDER_COLUMNS,
        _ => &EXECUTION_COLUMNS,
    }
}

/// DMS's commit-time column text: `yyyy-MM-dd HH:mm:ss.SSSSSS`.
fn commit_text(micros: i64) -> String {
    let dt = super::clock::datetime(micros);
    format!(
        "{}.{:06}",
        dt.format("%Y-%m-%d %H:%M:%S"),
        micros.rem_euclid(1_000_000)
    )
}

impl Emitter {
    fn key(&self, table: &str, name: &str) -> String {
        object_key(&self.prefix, "dbo", table, name)
    }

    pub(super) fn load<R: Row, E>(
        &mut self,
        cx: &Ctx,
        table: &str,
        t: &Table<R>,
        limit: usize,
        sink: &mut impl FnMut(SampleFile) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(model) = &mut self.model {
            let mut fields = Fields::default();
            let rows = model.entry(table.to_string()).or_default();
            for r in t.rows.iter().flatten() {
                fields.clear();
                r.render(cx, &mut fields);
                rows.insert(r.key(), fields.values());
            }
        }
        let mut rows = t.rows.iter().flatten().peekable();
        let mut n = 0u32;
        while rows.peek().is_some() {
            n += 1;
            let key = self.key(table, &self.dialect.file_name(&load_file_name(n)));
            let op = self.dialect.op_in_full_load.then_some(b'I');
            let chunk = rows.by_ref().take(limit).map(|r| (op, r, None));
            let file = FileShape {
                dialect: &self.dialect,
                table,
                columns: columns(table),
                op: op.is_some(),
                commit: commit_text(super::clock::snapshot()),
            };
            let (body, count, max_event_id) = encode(cx, &mut self.fields, chunk, None, &file);
            let counts = NetCounts {
                creates: count,
                ..NetCounts::default()
            };
            self.emit(key, table, body, count, counts, max_event_id, sink)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn cdc<R: Row, E>(
        &mut self,
        cx: &Ctx,
        table: &str,
        (name, commit): (&str, i64),
        log: &Log<R>,
        t: &Table<R>,
        split: Option<usize>,
        sink: &mut impl FnMut(SampleFile) -> Result<(), E>,
    ) -> Result<(), E> {
        // (Only the operations the endpoint writes; no file when none is left.)
        let cdc_ops = self.dialect.cdc_ops;
        let kept = || log.ops.iter().filter(move |(op, _)| cdc_ops.keeps(*op));
        if kept().next().is_none() {
            return Ok(());
        }
        let counts = match &mut self.model {
            Some(model) => replay(cx, model.entry(table.to_string()).or_default(), kept()),
            None => log.counts(t),
        };
        let op_column = self.dialect.cdc_op_column();
        // (With `CdcPath`, below `<prefix>/<cdc path>/`.)
        let key = match &self.dialect.cdc_path {
            Some(cdc) => object_key(&format!("{}/{cdc}", self.prefix), "dbo", table, name),
            None => self.key(table, name),
        };
        // With `CsvNoSupValue`, an update comes with the key's row before it (in this file, or
        // before the file), so the columns it did not change are written as unsupplied.
        let no_sup = self.dialect.no_sup_value.is_some() && !self.dialect.parquet;
        let mut current: HashMap<i64, Option<&R>> = HashMap::new();
        let rows = kept().map(move |(op, r)| {
            let op_field = op_column.then_some(*op);
            if !no_sup {
                return (op_field, r, None);
            }
            let key = r.key();
            let before = current
                .get(&key)
                .copied()
                .unwrap_or_else(|| log.before(key));
            current.insert(key, (*op != b'D').then_some(r));
            (op_field, r, before.filter(|_| *op == b'U'))
        });
        let file = FileShape {
            dialect: &self.dialect,
            table,
            columns: columns(table),
            op: op_column,
            commit: commit_text(commit),
        };
        let (body, count, max_event_id) = encode(cx, &mut self.fields, rows, split, &file);
        self.emit(key, table, body, count, counts, max_event_id, sink)
    }

    #[allow(clippy::too_many_arguments)]
    fn emit<E>(
        &mut self,
        key: String,
        table: &str,
        body: Vec<u8>,
        rows: u64,
        counts: NetCounts,
        max_event_id: Option<i64>,
        sink: &mut impl FnMut(SampleFile) -> Result<(), E>,
    ) -> Result<(), E> {
        let summary = FileSummary {
            key,
            table: table.to_string(),
            rows,
            counts,
            max_event_id,
            bytes: body.len() as u64,
        };
        self.files.push(summary.clone());
        sink(SampleFile { summary, body })
    }
}

fn gzip_writer(buf: Vec<u8>) -> GzEncoder<Vec<u8>> {
    GzEncoder::new(buf, Compression::new(6))
}

fn finish(w: GzEncoder<Vec<u8>>) -> Vec<u8> {
    w.finish().expect("in-memory gzip")
}

/// What one file's records look like besides their rows.
struct FileShape<'a> {
    dialect: &'a FileDialect,
    table: &'a str,
    columns: &'static [&'static str],
    /// The records start with the Op column.
    op: bool,
    /// The commit-time column's text (`TimestampColumnName`).
    commit: String,
}

/// A body being written: gzip members, or plain CSV.
enum Body {
    Gzip(Box<GzEncoder<Vec<u8>>>),
    Plain(Vec<u8>),
}

impl Body {
    fn write(&mut self, bytes: &[u8]) {
        match self {
            Body::Gzip(w) => w.write_all(bytes).expect("in-memory gzip"),
            Body::Plain(v) => v.extend_from_slice(bytes),
        }
    }

    /// Ends the current gzip member and starts another (DMS may write several).
    fn next_member(self) -> Self {
        match self {
            Body::Gzip(w) => Body::Gzip(Box::new(gzip_writer(finish(*w)))),
            plain => plain,
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Body::Gzip(w) => finish(*w),
            Body::Plain(v) => v,
        }
    }
}

/// Where a file's records go: CSV in the file's dialect (a header row first if it has one), or
/// one Parquet file (`DataFormat=parquet`; its schema names the columns).
enum Records<'d> {
    Csv {
        body: Body,
        record: Vec<u8>,
        dialect: &'d FileDialect,
    },
    Parquet(Box<ParquetFile>),
}

impl<'d> Records<'d> {
    fn new(file: &FileShape<'d>) -> Self {
        let dialect = file.dialect;
        let names = dialect.header_names(file.op, file.columns);
        if dialect.parquet {
            return Records::Parquet(Box::new(ParquetFile::new(
                file.table,
                &names,
                dialect.timestamp_column.as_deref(),
                dialect.parquet_millis,
                dialect.gzip,
            )));
        }
        let body = if dialect.gzip {
            Body::Gzip(Box::new(gzip_writer(Vec::new())))
        } else {
            Body::Plain(Vec::new())
        };
        let mut out = Records::Csv {
            body,
            record: Vec::with_capacity(512),
            dialect,
        };
        if dialect.header {
            out.push(names.iter().map(|n| Some(n.as_bytes())));
        }
        out
    }

    fn push<'a>(&mut self, values: impl Iterator<Item = Option<&'a [u8]>>) {
        match self {
            Records::Csv {
                body,
                record,
                dialect,
            } => {
                record.clear();
                write_record_in(record, values, dialect);
                body.write(record);
            }
            Records::Parquet(file) => file.push(values),
        }
    }

    /// A second gzip member from here on (CSV with gzip only).
    fn next_member(self) -> Self {
        match self {
            Records::Csv {
                body,
                record,
                dialect,
            } => Records::Csv {
                body: body.next_member(),
                record,
                dialect,
            },
            parquet => parquet,
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Records::Csv { body, .. } => body.finish(),
            Records::Parquet(file) => file.finish(),
        }
    }
}

/// Writes rows (with an optional Op, and for an update with `CsvNoSupValue` the key's row before
/// it) as one body in the file's dialect (CSV or Parquet); with `split` (and gzip CSV), the rows
/// from that index on go into a second gzip member. Returns (body, rows, max event_id).
fn encode<'a, R: Row + 'a>(
    cx: &Ctx,
    fields: &mut Fields,
    rows: impl Iterator<Item = (Option<u8>, &'a R, Option<&'a R>)>,
    split: Option<usize>,
    file: &FileShape<'_>,
) -> (Vec<u8>, u64, Option<i64>) {
    let mut out = Records::new(file);
    let stamp = file
        .dialect
        .timestamp_column
        .as_ref()
        .map(|_| file.commit.as_bytes());
    let no_sup = file.dialect.no_sup_value.as_deref().map(str::as_bytes);
    let pad = file.dialect.trailing_padding && !file.dialect.parquet;
    let mut padded: Vec<Vec<u8>> = Vec::new();
    let mut before_fields = Fields::default();
    let mut count = 0u64;
    let mut max_event: Option<i64> = None;
    for (op, row, before) in rows {
        if split == Some(count as usize) && count > 0 {
            out = out.next_member();
        }
        fields.clear();
        row.render(cx, fields);
        before_fields.clear();
        if let Some(before) = before.filter(|_| no_sup.is_some()) {
            before.render(cx, &mut before_fields);
        }
        let op_field: Option<[u8; 1]> = op.map(|o| [o]);
        // The generator never writes an empty string: an empty field is NULL. A non-key column
        // (the key is the first) an update left as it was is unsupplied.
        // With padding, character values are padded to their column's length.
        if pad {
            padded.clear();
            padded.extend(fields.iter().enumerate().map(|(i, f)| {
                let mut v = f.to_vec();
                if let (Some(width), false) = (super::spec::text_width(file.table, i), f.is_empty())
                {
                    let chars = String::from_utf8_lossy(f).chars().count();
                    v.resize(v.len() + width.saturating_sub(chars), b' ');
                }
                v
            }));
        }
        let values = fields.iter().zip(0..).map(|(f, i)| {
            let written = if pad { &padded[i][..] } else { f };
            match (no_sup, before_fields.field(i)) {
                (Some(token), Some(was)) if i > 0 && was == f => Some(token),
                _ => (!written.is_empty()).then_some(written),
            }
        });
        out.push(
            op_field
                .iter()
                .map(|o| Some(&o[..]))
                .chain(stamp.map(Some))
                .chain(values),
        );
        count += 1;
        max_event = max_event.max(Some(row.event_id()));
    }
    (out.finish(), count, max_event)
}

pub(super) fn dump<R: Row>(cx: &Ctx, t: &Table<R>) -> Vec<Vec<Option<String>>> {
    let mut f = Fields::default();
    t.rows
        .iter()
        .flatten()
        .map(|r| {
            f.clear();
            r.render(cx, &mut f);
            f.values()
        })
        .collect()
}
