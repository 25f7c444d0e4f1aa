//! Discovery: which files of which table stream are pending, at a cost that does not grow with
//! history.
//!
//! Each table stream keeps, in memory, its listing cursors and its pending files. An incremental
//! pass makes one request for the schema folders, then lists each stream's folder starting after
//! its cursor (S3 `StartAfter`), and asks the ledger about the new keys and the pending ones only.
//! A full listing (at start-up and every `FULL_LIST_INTERVAL`) rebuilds everything from the bucket
//! and the ledger page by page, and finds the *late* files: objects that appeared behind a
//! cursor, which an incremental pass cannot see.
//!
//! Cursor: S3 lists in byte order, in which DMS change files sort by time within each naming
//! (flat `20220922-095853123.csv.gz` or dated `2022/09/22/20220922-...`), and every full-load file
//! `LOAD...` sorts after every change file. A folder's cursor is the greatest change-file key
//! listed, per naming; the listing starts after the smaller of the two, so the full-load files are
//! listed on every pass (they are few, and finished ones are remembered as settled). A first
//! `YYYY/` date folder sorts before the flat names of its year, so a stream with only flat names
//! also lists its cursor's year folder (unless `DatePartitionEnabled` is known to be false):
//! otherwise a change file there would be found only by the next full listing, after later files.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

mod cursor;

use super::outcome::{LoaderError, PendingFile};
use crate::dms::{self, DayFolders, DmsObject, FileKind};
use crate::ledger::{self, Head, LedgerEntry, LedgerStore};
use crate::source::{list_all, root_prefix, ObjectInfo, Source};
use cursor::Cursor;

/// The target's tables by name.
pub(crate) type Tables = HashMap<String, std::sync::Arc<crate::dms::TableSpec>>;

/// Why a stream does not deliver: its head failed and was not replaced since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    pub table: String,
    pub key: String,
    pub delivery_id: i64,
    pub reason: String,
    /// When this loader first saw the stream stopped there.
    pub since: DateTime<Utc>,
}

/// A table stream as the metrics and the status page see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStatus {
    pub table: String,
    /// Files not delivered yet (a stopped stream's included).
    pub pending: usize,
    /// The first of them, in delivery order.
    pub head: Option<String>,
    pub stopped: Option<Stopped>,
    /// The delivery under way, if any.
    pub in_flight: Option<i64>,
    /// Greatest change-file key listed (where the next listing starts).
    pub cursor: Option<String>,
}

type Order = (String, FileKind, String);

fn order(object: &DmsObject) -> Order {
    (object.schema.clone(), object.kind, object.key.clone())
}

/// One table's stream.
#[derive(Debug, Default)]
struct Stream {
    /// Cursors by stream folder (`<path>/<schema>/<table>/`).
    cursors: BTreeMap<String, Cursor>,
    /// Undelivered files, in delivery order.
    pending: BTreeMap<Order, PendingFile>,
    /// Full-load files known to be done, with the ETag delivered (listed on every pass, asked
    /// about once; a new ETag is a full-load re-run, see [`settles`]).
    settled_loads: HashMap<String, String>,
    /// Time stamp of the latest change file known to be done: a pending change file before it
    /// arrived late.
    last_change: Option<u64>,
    stopped: Option<Stopped>,
}

/// What a pass found: per table its pending files in delivery order (stopped streams
/// excluded), the stopped streams, and the late files.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub streams: BTreeMap<String, Vec<PendingFile>>,
    pub stopped: Vec<Stopped>,
    /// `(table, key)` of files found behind a cursor by a periodic full listing.
    pub late: Vec<(String, String)>,
    /// Table folders with no table in the target: `(schema, table)`.
    pub unknown_tables: BTreeSet<(String, String)>,
    /// Keys under the bucket path that are not DMS file names.
    pub unrecognized: Vec<String>,
    /// Whether this pass was a full listing.
    pub full: bool,
}

/// Every stream's state, and when the last full listing ran.
#[derive(Debug)]
pub(crate) struct Discovery {
    streams: BTreeMap<String, Stream>,
    /// Schema folders seen (`<path>/<schema>/`).
    schema_folders: BTreeSet<String>,
    last_full: Option<Instant>,
    full_interval: Duration,
    /// Look for a first date folder in streams with flat change-file names (see
    /// [`Cursor::listings`]); off when the endpoint's settings say DMS does not partition by date.
    watch_dated: bool,
    /// `CdcPath`: change files are below `<path>/<cdc path>/<schema>/<table>/`.
    cdc_path: Option<String>,
    /// Day folders that do not sort in time order (`MMYYYYDD`, `DDMMYYYY`): named per day
    /// instead of listed after a cursor (see [`Cursor::day_listings`]).
    days: Option<DayFolders>,
}

impl Discovery {
    pub fn new(full_interval: Duration) -> Self {
        Discovery {
            streams: BTreeMap::new(),
            schema_folders: BTreeSet::new(),
            last_full: None,
            full_interval,
            watch_dated: true,
            cdc_path: None,
            days: None,
        }
    }

    /// DMS's `DatePartitionSequence` `MMYYYYDD` or `DDMMYYYY`: change files are below day
    /// folders of this layout.
    pub fn day_folders(mut self, days: Option<DayFolders>) -> Self {
        if days.is_some() {
            self.watch_dated = false;
        }
        self.days = days;
        self
    }

    /// DMS's `CdcPath`: change files are below `<path>/<cdc_path>/<schema>/<table>/` (and only
    /// change files are read there), full-load files where they always are. Each stream then
    /// has two folders, each with its own cursors.
    pub fn cdc_path(mut self, cdc_path: Option<String>) -> Self {
        self.cdc_path = cdc_path;
        self
    }

    /// The bucket path of the change files: `<path>/<cdc path>` with `CdcPath`.
    fn cdc_root(&self, source_path: &str) -> Option<String> {
        self.cdc_path
            .as_ref()
            .map(|c| format!("{}{c}/", root_prefix(source_path)))
    }

    /// Whether streams with flat change-file names are watched for a first date folder (one
    /// more listing per such stream and pass); `false` when DMS is known not to partition by date.
    pub fn watch_dated_folders(mut self, on: bool) -> Self {
        self.watch_dated = on;
        self
    }

    /// One discovery pass. `tables` are the target's tables; `stop_at_failures` applies the
    /// stream-head rule (a dry run checks a failed head again instead).
    pub async fn pass<S: Source, L: LedgerStore>(
        &mut self,
        source: &S,
        tables: &Tables,
        ledger: &L,
        stop_at_failures: bool,
    ) -> Result<Plan, LoaderError> {
        let full = self
            .last_full
            .is_none_or(|at| at.elapsed() >= self.full_interval);
        let mut plan = Plan {
            full,
            ..Plan::default()
        };
        // The ledger entries of the pending files, read while listing: the head rule needs no
        // query of its own.
        let entries = if full {
            let entries = self.full_listing(source, tables, ledger, &mut plan).await?;
            self.last_full = Some(Instant::now());
            entries
        } else {
            self.incremental(source, tables, ledger, &mut plan).await?
        };
        self.apply_head_rule(source, &entries, stop_at_failures, &mut plan)
            .await?;
        Ok(plan)
    }

    /// Lists the whole bucket path, page by page, asking the ledger about each page's keys.
    async fn full_listing<S: Source, L: LedgerStore>(
        &mut self,
        source: &S,
        tables: &Tables,
        ledger: &L,
        plan: &mut Plan,
    ) -> Result<HashMap<String, LedgerEntry>, LoaderError> {
        let root = root_prefix(source.path());
        let cdc_root = self.cdc_root(source.path());
        let first = self.last_full.is_none();
        let mut pending_entries = HashMap::new();
        let mut fresh: BTreeMap<String, Stream> = BTreeMap::new();
        let mut token = None;
        loop {
            let page = source.list_page(&root, None, token).await?;
            let objects = parse(source, tables, cdc_root.as_deref(), page.objects, plan);
            let keys: Vec<String> = objects.iter().map(|(o, _)| o.key.clone()).collect();
            let entries = ledger.entries(&keys).await?;
            for (object, info) in objects {
                let folder = stream_folder(&object, &root, cdc_root.as_deref());
                self.schema_folders
                    .insert(folder[..folder.len() - object.table.len() - 1].to_string());
                let stream = fresh.entry(object.table.clone()).or_default();
                stream.cursors.entry(folder.clone()).or_default().advance(
                    &object,
                    &folder,
                    self.days.as_ref(),
                );
                if settles(entries.get(&object.key), &object, &info) {
                    stream.note_done(&object, &info);
                    continue;
                }
                if !first {
                    let known = self.streams.get(&object.table);
                    let was_pending =
                        known.is_some_and(|s| s.pending.contains_key(&order(&object)));
                    let behind = known.and_then(|s| s.cursors.get(&folder)).is_some_and(|c| {
                        c.is_behind(&object.key, &folder, self.watch_dated, self.days.as_ref())
                    });
                    if behind && !was_pending {
                        plan.late.push((object.table.clone(), object.key.clone()));
                    }
                }
                if let Some(entry) = entries.get(&object.key) {
                    pending_entries.insert(object.key.clone(), entry.clone());
                }
                stream.pending.insert(
                    order(&object),
                    PendingFile {
                        object,
                        info,
                        late: false,
                    },
                );
            }
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        // Keep what only this process knows: since when a stream is stopped.
        for (table, stream) in fresh.iter_mut() {
            stream.stopped = self.streams.get(table).and_then(|s| s.stopped.clone());
        }
        self.streams = fresh;
        Ok(pending_entries)
    }

    /// Lists each stream folder after its cursor; asks the ledger about new and pending keys.
    async fn incremental<S: Source, L: LedgerStore>(
        &mut self,
        source: &S,
        tables: &Tables,
        ledger: &L,
        plan: &mut Plan,
    ) -> Result<HashMap<String, LedgerEntry>, LoaderError> {
        let root = root_prefix(source.path());
        let cdc_root = self.cdc_root(source.path());
        for folder in source.list_folders(&root).await? {
            // (The CdcPath folder holds schema folders: listed below, not a schema itself.)
            if Some(&folder) != cdc_root.as_ref() {
                self.schema_folders.insert(folder);
            }
        }
        if let Some(cdc_root) = &cdc_root {
            for folder in source.list_folders(cdc_root).await? {
                self.schema_folders.insert(folder);
            }
        }
        let mut names: Vec<&String> = tables.keys().collect();
        names.sort();
        let today = chrono::Utc::now().date_naive();
        let mut listed = Vec::new();
        for schema_folder in &self.schema_folders {
            for table in &names {
                let folder = format!("{schema_folder}{table}/");
                let listings = self
                    .streams
                    .get(*table)
                    .and_then(|s| s.cursors.get(&folder))
                    .map(|c| match &self.days {
                        Some(days) => c.day_listings(&folder, days, today),
                        None => c.listings(&folder, self.watch_dated),
                    })
                    .unwrap_or_else(|| vec![(folder.clone(), None)]);
                for (prefix, start_after) in listings {
                    listed.extend(list_all(source, &prefix, start_after.as_deref()).await?);
                }
            }
        }
        let objects = parse(source, tables, cdc_root.as_deref(), listed, plan);
        // Judged against the cursors as they were when the pass started (the listings of one
        // folder may come in any order), and moved only once the ledger has answered: a failed
        // query leaves everything to be listed again.
        let mut new = Vec::new();
        let mut listed_objects = Vec::new();
        for (object, info) in objects {
            let folder = stream_folder(&object, &root, cdc_root.as_deref());
            let stream = self.streams.get(&object.table);
            // A change file behind a cursor was seen before (done or pending), or is late and
            // left to the full listing: never asked about again here.
            let seen = !object.kind.is_load()
                && stream
                    .and_then(|s| s.cursors.get(&folder))
                    .is_some_and(|c| {
                        c.is_behind(&object.key, &folder, self.watch_dated, self.days.as_ref())
                    });
            let known = seen
                || stream.is_some_and(|s| {
                    s.settled_loads.get(&object.key) == Some(&info.etag)
                        || s.pending.contains_key(&order(&object))
                });
            listed_objects.push((folder, object.clone()));
            if !known {
                new.push(PendingFile {
                    object,
                    info,
                    late: false,
                });
            }
        }
        // One ledger query: the new keys and the pending ones (another loader or an operator may
        // have settled them since).
        let mut keys: Vec<String> = new.iter().map(|f| f.info.key.clone()).collect();
        for stream in self.streams.values() {
            keys.extend(stream.pending.values().map(|f| f.info.key.clone()));
        }
        let entries = ledger.entries(&keys).await?;
        for (folder, object) in listed_objects {
            self.streams
                .entry(object.table.clone())
                .or_default()
                .cursors
                .entry(folder.clone())
                .or_default()
                .advance(&object, &folder, self.days.as_ref());
        }
        for stream in self.streams.values_mut() {
            let done: Vec<PendingFile> = stream
                .pending
                .values()
                .filter(|f| settles(entries.get(&f.info.key), &f.object, &f.info))
                .cloned()
                .collect();
            for file in done {
                stream.pending.remove(&order(&file.object));
                stream.note_done(&file.object, &file.info);
            }
        }
        for file in new {
            let stream = self.streams.entry(file.object.table.clone()).or_default();
            if settles(entries.get(&file.info.key), &file.object, &file.info) {
                stream.note_done(&file.object, &file.info);
                continue;
            }
            stream.pending.insert(order(&file.object), file);
        }
        Ok(entries)
    }

    /// Applies the stream-head rule to every stream and fills the plan.
    async fn apply_head_rule<S: Source>(
        &mut self,
        source: &S,
        entries: &HashMap<String, LedgerEntry>,
        stop_at_failures: bool,
        plan: &mut Plan,
    ) -> Result<(), LoaderError> {
        for (table, stream) in self.streams.iter_mut() {
            let mut rule = Head::Open;
            while let Some(head) = stream.pending.values_mut().next() {
                rule = ledger::head(entries.get(&head.info.key), &head.info.etag);
                if !matches!(rule, Head::Stopped { .. }) {
                    break;
                }
                // Replaced in the bucket since it was listed, or deleted? (One request per
                // stopped stream.) A failed request keeps this stream stopped, no other.
                match source.head(&head.info.key).await {
                    Ok(Some(current)) => {
                        if current.etag != head.info.etag {
                            head.info = current;
                            rule = ledger::head(entries.get(&head.info.key), &head.info.etag);
                        }
                        break;
                    }
                    Ok(None) => {
                        let key = head.info.key.clone();
                        tracing::info!(
                            "{}: no longer in the bucket; stream {table} goes on without it.",
                            crate::source::display_key(&key)
                        );
                        stream.pending.retain(|_, f| f.info.key != key);
                        rule = Head::Open;
                    }
                    Err(e) => {
                        tracing::warn!(
                            "Stream {table}: cannot check whether its stopped file was replaced: {e}"
                        );
                        break;
                    }
                }
            }
            let Some(head) = stream.pending.values().next() else {
                stream.stopped = None;
                continue;
            };
            match rule {
                Head::Stopped {
                    delivery_id,
                    reason,
                } if stop_at_failures => {
                    let since = match &stream.stopped {
                        Some(s) if s.key == head.info.key && s.delivery_id == delivery_id => {
                            s.since
                        }
                        _ => Utc::now(),
                    };
                    let stopped = Stopped {
                        table: table.clone(),
                        key: head.info.key.clone(),
                        delivery_id,
                        reason,
                        since,
                    };
                    stream.stopped = Some(stopped.clone());
                    plan.stopped.push(stopped);
                }
                _ => {
                    stream.stopped = None;
                    let last_change = stream.last_change;
                    let files = stream
                        .pending
                        .values()
                        .map(|f| PendingFile {
                            late: match f.object.kind {
                                FileKind::Cdc { stamp } => last_change.is_some_and(|l| stamp < l),
                                FileKind::Load { .. } => false,
                            },
                            ..f.clone()
                        })
                        .collect();
                    plan.streams.insert(table.clone(), files);
                }
            }
        }
        Ok(())
    }

    /// A file failed for good and was recorded as ERROR: its stream is stopped there now (the
    /// next pass's head rule says the same, keeping `since`), so the status and the gauges show
    /// it at once rather than after the next pass.
    pub fn stop_at(&mut self, object: &DmsObject, delivery_id: i64, reason: &str) {
        if let Some(stream) = self.streams.get_mut(&object.table) {
            stream.stopped = Some(Stopped {
                table: object.table.clone(),
                key: object.key.clone(),
                delivery_id,
                reason: reason.to_string(),
                since: Utc::now(),
            });
        }
    }

    /// A file was delivered (or found delivered): it is no longer pending.
    pub fn settle(&mut self, file: &PendingFile) {
        if let Some(stream) = self.streams.get_mut(&file.object.table) {
            stream.pending.remove(&order(&file.object));
            stream.note_done(&file.object, &file.info);
        }
    }

    /// A stream's pending files' keys, in delivery order (a stopped stream's head first).
    pub fn pending_keys(&self, table: &str) -> Vec<String> {
        self.streams
            .get(table)
            .map(|s| s.pending.values().map(|f| f.info.key.clone()).collect())
            .unwrap_or_default()
    }

    /// Every stream's status, by table.
    pub fn statuses(&self) -> BTreeMap<String, StreamStatus> {
        self.streams
            .iter()
            .map(|(table, s)| {
                let cursor = s
                    .cursors
                    .values()
                    .filter_map(|c| c.flat.clone().max(c.dated.clone()))
                    .max();
                (
                    table.clone(),
                    StreamStatus {
                        table: table.clone(),
                        pending: s.pending.len(),
                        head: s.pending.values().next().map(|f| f.info.key.clone()),
                        stopped: s.stopped.clone(),
                        in_flight: None,
                        cursor,
                    },
                )
            })
            .collect()
    }
}

impl Stream {
    /// A file of this stream is done: a full-load file is settled with its ETag, a change file
    /// moves the stream's last change.
    fn note_done(&mut self, object: &DmsObject, info: &ObjectInfo) {
        match object.kind {
            FileKind::Load { .. } => {
                self.settled_loads
                    .insert(object.key.clone(), info.etag.clone());
            }
            FileKind::Cdc { stamp } => {
                self.last_change = Some(self.last_change.map_or(stamp, |l| l.max(stamp)));
            }
        }
    }
}

/// Whether a listed object is done with: delivered or skipped, except a full-load file whose
/// ETag is not the one delivered (DMS re-ran the full load: it is pending again, and its delivery
/// decides what the re-run means, see `RELOAD_POLICY`).
fn settles(entry: Option<&LedgerEntry>, object: &DmsObject, info: &ObjectInfo) -> bool {
    match entry {
        Some(e) if e.is_done() => {
            !(object.kind.is_load() && e.etag.as_deref().is_some_and(|etag| etag != info.etag))
        }
        _ => false,
    }
}

/// Parses listed objects into DMS objects of the target's tables; notes the others. With
/// `CdcPath` (`cdc_root`), the keys below it are change files of `<cdc root><schema>/<table>/`.
fn parse<S: Source>(
    source: &S,
    tables: &Tables,
    cdc_root: Option<&str>,
    objects: Vec<ObjectInfo>,
    plan: &mut Plan,
) -> Vec<(DmsObject, ObjectInfo)> {
    objects
        .into_iter()
        .filter_map(|info| {
            let object = match cdc_root {
                Some(cdc) if info.key.starts_with(cdc) => {
                    dms::parse_object_key(cdc, &info.key).filter(|o| !o.kind.is_load())
                }
                _ => dms::parse_object_key(source.path(), &info.key),
            };
            let Some(object) = object else {
                plan.unrecognized.push(info.key);
                return None;
            };
            if !tables.contains_key(&object.table) {
                plan.unknown_tables
                    .insert((object.schema.clone(), object.table.clone()));
                return None;
            }
            Some((object, info))
        })
        .collect()
}

/// `<path>/<schema>/<table>/` of an object (`<path>/<cdc path>/<schema>/<table>/` for a change
/// file below `CdcPath`).
fn stream_folder(object: &DmsObject, root: &str, cdc_root: Option<&str>) -> String {
    match cdc_root {
        Some(cdc) if object.key.starts_with(cdc) => {
            format!("{cdc}{}/{}/", object.schema, object.table)
        }
        _ => format!("{root}{}/{}/", object.schema, object.table),
    }
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
