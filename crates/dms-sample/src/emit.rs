//! The files: their DMS object keys (named by `dms-naming`), and the CSV (gzip) encoding of their
//! bodies.

use dms_naming::{load_file_name, object_key, NetCounts};
use flate2::write::GzEncoder;
use flate2::Compression;

use std::io::Write as _;

use super::fields::Fields;
use super::record::write_record;
use super::reference::Ctx;
use super::rows::Row;
use super::spec::{FileSummary, SampleFile};
use super::state::{Log, Table};

pub(super) struct Emitter {
    /// The bucket path the keys start with (may be empty).
    pub(super) prefix: String,
    pub(super) fields: Fields,
    pub(super) files: Vec<FileSummary>,
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
        let mut rows = t.rows.iter().flatten().peekable();
        let mut n = 0u32;
        while rows.peek().is_some() {
            n += 1;
            let key = self.key(table, &load_file_name(n));
            let chunk = rows.by_ref().take(limit).map(|r| (None, r));
            let (body, count, max_event_id) = encode(cx, &mut self.fields, chunk, None);
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
        name: &str,
        log: &Log<R>,
        t: &Table<R>,
        split: Option<usize>,
        sink: &mut impl FnMut(SampleFile) -> Result<(), E>,
    ) -> Result<(), E> {
        if log.ops.is_empty() {
            return Ok(());
        }
        let key = self.key(table, name);
        let rows = log.ops.iter().map(|(op, r)| (Some(*op), r));
        let (body, count, max_event_id) = encode(cx, &mut self.fields, rows, split);
        self.emit(key, table, body, count, log.counts(t), max_event_id, sink)
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

/// Writes rows (with an optional Op) as one gzip body; with `split`, the rows from that
/// index on go into a second gzip member. Returns (body, rows, max event_id).
fn encode<'a, R: Row + 'a>(
    cx: &Ctx,
    fields: &mut Fields,
    rows: impl Iterator<Item = (Option<u8>, &'a R)>,
    split: Option<usize>,
) -> (Vec<u8>, u64, Option<i64>) {
    let mut w = gzip_writer(Vec::new());
    let mut record = Vec::with_capacity(512);
    let mut count = 0u64;
    let mut max_event: Option<i64> = None;
    for (op, row) in rows {
        if split == Some(count as usize) && count > 0 {
            w = gzip_writer(finish(w));
        }
        fields.clear();
        row.render(cx, fields);
        let op_field: Option<[u8; 1]> = op.map(|o| [o]);
        // The generator never writes an empty string: an empty field is NULL.
        let values = op_field
            .iter()
            .map(|o| &o[..])
            .chain(fields.iter())
            .map(|f| (!f.is_empty()).then_some(f));
        record.clear();
        write_record(&mut record, values);
        w.write_all(&record).expect("in-memory gzip");
        count += 1;
        max_event = max_event.max(Some(row.event_id()));
    }
    (finish(w), count, max_event)
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
