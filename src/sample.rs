//! Deterministic generator of a realistic AWS DMS dataset for a paper-trading engine.
//!
//! It simulates the source database (strategies send orders to a broker, executions come
//! back) and emits the gzip CSV files DMS would have written: a full load (`LOAD0000000N`
//! files, no `Op` column) followed by CDC batches (`YYYYMMDD-HHMMSSmmm` files with a leading
//! `I`/`U`/`D` column). Alongside the files it reports the ground truth: the net effect of
//! every file per key, and optionally the final contents of every table.
//!
//! Everything is a pure function of [`SampleSpec`]: the same spec yields byte-identical files.
//!
//! Value text: numerics are written with exactly their declared scale (`100.0000`,
//! `101.250000`, `250000.00`) and timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` (no fraction
//! when it is zero; the generator never produces a fraction ending in `0`), so every value's
//! text is also exactly what Postgres prints for it with `::text`. The manifest's table
//! contents use the same text as the files.
//!
//! Bodies are compressed with `flate2` at `Compression::new(6)` (the zlib default).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Weekday};
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The replicated tables, in delivery order.
pub const TABLES: [&str; 3] = ["strategies", "orders", "executions"];

/// Column names per table, in file order (without the CDC `Op` column).
pub const STRATEGY_COLUMNS: [&str; 10] = [
    "strategy_id",
    "code",
    "name",
    "owner",
    "broker",
    "status",
    "max_notional",
    "created_at",
    "updated_at",
    "event_id",
];
/// Column names of `orders`, in file order.
pub const ORDER_COLUMNS: [&str; 15] = [
    "order_id",
    "strategy_id",
    "client_order_id",
    "isin",
    "side",
    "order_type",
    "time_in_force",
    "quantity",
    "limit_price",
    "stop_price",
    "currency",
    "status",
    "created_at",
    "updated_at",
    "event_id",
];
/// Column names of `executions`, in file order.
pub const EXECUTION_COLUMNS: [&str; 12] = [
    "execution_id",
    "order_id",
    "broker_exec_id",
    "exec_type",
    "last_qty",
    "last_price",
    "cum_qty",
    "leaves_qty",
    "venue",
    "text",
    "transact_time",
    "event_id",
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct SampleSpec {
    /// Size factor: 1.0 is 90 strategies, 160,000 orders and about 1.5M executions.
    pub scale: f64,
    pub seed: u64,
    /// Key prefix inside the bucket (may be empty; leading/trailing `/` are ignored).
    pub bucket_path: String,
    /// Row limit of one LOAD file.
    pub load_rows_per_file: usize,
    /// Number of CDC batches.
    pub cdc_files: usize,
    /// Target rows of one CDC file of `orders` and of `executions` (the `strategies` file of
    /// a batch stays small: a handful of changes).
    pub cdc_rows_per_file: usize,
    /// Report the final table contents in [`SampleManifest::tables`].
    pub keep_state: bool,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            scale: 1.0,
            seed: 42,
            bucket_path: "data".to_string(),
            load_rows_per_file: 500_000,
            cdc_files: 6,
            cdc_rows_per_file: 2_000,
            keep_state: false,
        }
    }
}

/// Net effect of one file, counted per distinct key: the same type the Target reports.
pub use crate::target::NetCounts;

/// Ground truth about one generated file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileSummary {
    pub key: String,
    pub table: String,
    /// Number of records in the file.
    pub rows: u64,
    pub counts: NetCounts,
    /// Largest `event_id` over the file's records.
    pub max_event_id: Option<i64>,
    /// Size of the (gzip) body.
    pub bytes: u64,
}

/// One generated object.
pub struct SampleFile {
    pub summary: FileSummary,
    /// gzip bytes.
    pub body: Vec<u8>,
}

/// What [`generate`] reports once every file was handed over.
pub struct SampleManifest {
    /// Every file, in delivery order.
    pub files: Vec<FileSummary>,
    /// final contents per table when keep_state: rows as text values in file column order, None = NULL, sorted by primary key
    pub tables: BTreeMap<String, Vec<Vec<Option<String>>>>,
}

/// Number of strategies at a scale.
pub fn strategy_count(scale: f64) -> usize {
    ((90.0 * scale).round() as usize).max(3)
}

/// Number of orders (in the full load) at a scale.
pub fn order_count(scale: f64) -> usize {
    ((160_000.0 * scale).round() as usize).max(10)
}

/// Commit time of CDC batch `batch` (0-based), in microseconds since the Unix epoch (UTC).
pub fn cdc_commit_micros(batch: usize) -> i64 {
    first_commit() + batch as i64 * BATCH_STEP
}

/// Generates the dataset, handing each file to `sink` in delivery order (all LOAD files of all tables first, then CDC batches in commit order). Only one file body is in memory at a time.
pub fn generate<E>(
    spec: &SampleSpec,
    mut sink: impl FnMut(SampleFile) -> Result<(), E>,
) -> Result<SampleManifest, E> {
    let mut sim = Sim::new(spec.seed);
    sim.build_history(strategy_count(spec.scale), order_count(spec.scale));

    let prefix = spec.bucket_path.trim_matches('/').to_string();
    let limit = spec.load_rows_per_file.max(1);
    let mut out = Emitter {
        prefix,
        fields: Fields::default(),
        files: Vec::new(),
    };
    out.load(&sim.cx, "strategies", &sim.st, limit, &mut sink)?;
    out.load(&sim.cx, "orders", &sim.ord, limit, &mut sink)?;
    out.load(&sim.cx, "executions", &sim.ex, limit, &mut sink)?;

    let target = spec.cdc_rows_per_file.max(1);
    for b in 0..spec.cdc_files {
        let logs = sim.run_batch(b, target);
        let name = cdc_name(cdc_commit_micros(b), b % 2 == 1);
        let last = b + 1 == spec.cdc_files;
        out.cdc(
            &sim.cx,
            "strategies",
            &name,
            &logs.s,
            &sim.st,
            None,
            &mut sink,
        )?;
        let split = last.then_some(logs.o.ops.len() / 2).filter(|&n| n > 0);
        out.cdc(
            &sim.cx, "orders", &name, &logs.o, &sim.ord, split, &mut sink,
        )?;
        out.cdc(
            &sim.cx,
            "executions",
            &name,
            &logs.e,
            &sim.ex,
            None,
            &mut sink,
        )?;
    }

    let mut tables = BTreeMap::new();
    if spec.keep_state {
        tables.insert("strategies".to_string(), dump(&sim.cx, &sim.st));
        tables.insert("orders".to_string(), dump(&sim.cx, &sim.ord));
        tables.insert("executions".to_string(), dump(&sim.cx, &sim.ex));
    }
    Ok(SampleManifest {
        files: out.files,
        tables,
    })
}

// ---------------------------------------------------------------------------------------
// Time

const SEC: i64 = 1_000_000;
const MS: i64 = 1_000;
const MINUTE: i64 = 60 * SEC;
const HOUR: i64 = 60 * MINUTE;
const BATCH_STEP: i64 = MINUTE;

fn micros(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_milli_opt(h, mi, s, ms))
        .expect("valid constant date")
        .and_utc()
        .timestamp_micros()
}

fn history_start() -> i64 {
    micros(2022, 9, 1, 0, 0, 0, 0)
}

fn first_commit() -> i64 {
    micros(2022, 9, 22, 9, 58, 53, 123)
}

/// End of the simulated history: the full load is a snapshot at this instant.
fn snapshot() -> i64 {
    first_commit() - BATCH_STEP
}

/// Keeps a microsecond fraction from ending in `0`, so the 6-digit text equals Postgres'.
fn norm(t: i64) -> i64 {
    let sub = t.rem_euclid(SEC);
    if sub != 0 && sub % 10 == 0 {
        t + 1
    } else {
        t
    }
}

fn datetime(t: i64) -> chrono::NaiveDateTime {
    DateTime::from_timestamp_micros(t)
        .expect("timestamp in range")
        .naive_utc()
}

fn cdc_name(commit: i64, dated: bool) -> String {
    let dt = datetime(commit);
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}{:03}.csv.gz",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.nanosecond() / 1_000_000
    );
    if dated {
        format!("{:04}/{:02}/{:02}/{stamp}", dt.year(), dt.month(), dt.day())
    } else {
        stamp
    }
}

/// Trading sessions (weekdays 07:00-20:30 UTC) of the history, to place order creations.
struct Sessions {
    spans: Vec<(i64, i64)>,
    cum: Vec<i64>,
}

impl Sessions {
    fn new(start: i64, end: i64) -> Sessions {
        let mut day = datetime(start).date();
        let mut spans = Vec::new();
        loop {
            let s = day
                .and_hms_opt(7, 0, 0)
                .expect("time")
                .and_utc()
                .timestamp_micros();
            if s >= end {
                break;
            }
            let e = day
                .and_hms_opt(20, 30, 0)
                .expect("time")
                .and_utc()
                .timestamp_micros()
                .min(end);
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && s < e {
                spans.push((s, e));
            }
            day = day.succ_opt().expect("date in range");
        }
        let mut cum = Vec::with_capacity(spans.len());
        let mut total = 0;
        for (s, e) in &spans {
            total += e - s;
            cum.push(total);
        }
        Sessions { spans, cum }
    }

    /// The instant at fraction `f` (0..1) of the total trading time.
    fn at(&self, f: f64) -> i64 {
        let total = *self.cum.last().expect("at least one session");
        let target = ((f * total as f64) as i64).clamp(0, total - 1);
        let i = self.cum.partition_point(|&c| c <= target);
        let before = if i == 0 { 0 } else { self.cum[i - 1] };
        self.spans[i].0 + (target - before)
    }
}

// ---------------------------------------------------------------------------------------
// Vocabulary

const STRATEGY_STATUSES: [&str; 3] = ["ACTIVE", "PAUSED", "RETIRED"];
const S_ACTIVE: u8 = 0;
const S_PAUSED: u8 = 1;
const S_RETIRED: u8 = 2;

const SIDES: [&str; 2] = ["BUY", "SELL"];
const BUY: u8 = 0;

const ORDER_TYPES: [&str; 4] = ["MARKET", "LIMIT", "STOP", "STOP_LIMIT"];
const MARKET: u8 = 0;
const LIMIT: u8 = 1;
const STOP: u8 = 2;
const STOP_LIMIT: u8 = 3;

const TIFS: [&str; 4] = ["DAY", "GTC", "IOC", "FOK"];
const DAY: u8 = 0;
const GTC: u8 = 1;
const IOC: u8 = 2;
const FOK: u8 = 3;

const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
const USD: u8 = 0;
const EUR: u8 = 1;
const GBP: u8 = 2;

const ORDER_STATUSES: [&str; 6] = [
    "NEW",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELED",
    "REJECTED",
    "EXPIRED",
];
const O_NEW: u8 = 0;
const O_PARTIAL: u8 = 1;
const O_FILLED: u8 = 2;
const O_CANCELED: u8 = 3;
const O_REJECTED: u8 = 4;
const O_EXPIRED: u8 = 5;

const EXEC_TYPES: [&str; 5] = ["NEW", "TRADE", "CANCELED", "REJECTED", "EXPIRED"];
const X_NEW: u8 = 0;
const X_TRADE: u8 = 1;
const X_CANCELED: u8 = 2;
const X_REJECTED: u8 = 3;
const X_EXPIRED: u8 = 4;
/// Kind of text for an execution correction (not an exec type).
const T_CORRECTION: u8 = 5;

const BROKERS: [&str; 5] = ["IBKR", "ALPACA", "SAXO", "LMAX", "TRADESTATION"];

const OWNERS: [&str; 12] = [
    "a.okafor",
    "b.lindqvist",
    "c.moreau",
    "d.nakamura",
    "e.rossi",
    "f.dupont",
    "g.schmidt",
    "h.kowalski",
    "i.garcia",
    "j.chen",
    "k.müller",
    "l.françois",
];

const STYLES: [&str; 11] = [
    "Momentum",
    "Mean Reversion",
    "Pairs",
    "Stat Arb",
    "Trend Following",
    "Breakout",
    "VWAP Tracker",
    "Market Making",
    "Carry",
    "Event Driven",
    "Low Vol",
];
const UNIVERSES: [&str; 10] = [
    "US Large Cap",
    "US Tech",
    "EU Banks",
    "FTSE 100",
    "DAX",
    "CAC 40",
    "Euro Stoxx 50",
    "Nasdaq 100",
    "S&P 500 Energy",
    "UK Mid Cap",
];
const HORIZONS: [&str; 6] = ["1m", "5m", "15m", "1h", "daily", "intraday"];

const VENUES: [&str; 13] = [
    "XNYS", "XNAS", "ARCX", "BATS", "IEXG", "EDGX", "XLON", "CHIX", "TRQX", "AQXE", "XETR", "XPAR",
    "XAMS",
];

fn venues_for(currency: u8) -> &'static [u8] {
    match currency {
        USD => &[0, 1, 2, 3, 4, 5],
        GBP => &[6, 7, 8, 9],
        _ => &[10, 11, 12, 7, 8],
    }
}

const ISIN_POOL: usize = 200;

struct Isin {
    code: [u8; 12],
    currency: u8,
    /// Reference price in micro units.
    price: i64,
}

/// ISIN check digit (letters to numbers, then Luhn from the right).
fn isin_check_digit(body: &[u8]) -> u8 {
    let mut digits = Vec::with_capacity(22);
    for &c in body {
        if c.is_ascii_digit() {
            digits.push(u32::from(c - b'0'));
        } else {
            let v = u32::from(c - b'A') + 10;
            digits.push(v / 10);
            digits.push(v % 10);
        }
    }
    let mut sum = 0;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut x = d;
        if i % 2 == 0 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// Immutable context: reference data drawn once from the seed.
struct Ctx {
    isins: Vec<Isin>,
    salt: u64,
}

impl Ctx {
    fn new(rng: &mut StdRng) -> Ctx {
        const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
        let mut seen = HashSet::new();
        let mut isins = Vec::with_capacity(ISIN_POOL);
        while isins.len() < ISIN_POOL {
            let r: f64 = rng.random();
            let (country, currency): (&[u8; 2], u8) = if r < 0.5 {
                (b"US", USD)
            } else if r < 0.62 {
                (b"GB", GBP)
            } else if r < 0.74 {
                (b"DE", EUR)
            } else if r < 0.86 {
                (b"FR", EUR)
            } else if r < 0.93 {
                (b"NL", EUR)
            } else {
                (b"IE", if rng.random_bool(0.5) { EUR } else { USD })
            };
            let mut code = [b'0'; 12];
            code[..2].copy_from_slice(country);
            for (i, c) in code[2..11].iter_mut().enumerate() {
                // mostly digits, with the odd letter as in real national numbers
                *c = if i >= 5 && rng.random_bool(0.15) {
                    ALNUM[rng.random_range(10..ALNUM.len())]
                } else {
                    b'0' + rng.random_range(0..10u8)
                };
            }
            code[11] = isin_check_digit(&code[..11]);
            if !seen.insert(code) {
                continue;
            }
            let price =
                (5.0f64 * (180.0f64).powf(rng.random::<f64>()) * 100.0).round() as i64 * 10_000;
            isins.push(Isin {
                code,
                currency,
                price,
            });
        }
        Ctx {
            isins,
            salt: rng.random(),
        }
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------
// Rows

const STRATEGY_BASE: i64 = 0;
const ORDER_BASE: i64 = 10_000_000;
const EXEC_BASE: i64 = 700_000_000;
/// Keys of the deliberate deletes of never-seen rows (one per batch, never allocated).
const STRATEGY_PHANTOM: i64 = 2_000_000_000;
const ORDER_PHANTOM: i64 = 9_000_000_000;
const EXEC_PHANTOM: i64 = 90_000_000_000;

/// Scales of the numeric columns (quantities in 1e-4 units, prices in 1e-6, money in cents).
const QTY_SCALE: u32 = 4;
const PRICE_SCALE: u32 = 6;
const MONEY_SCALE: u32 = 2;
const SHARE: i64 = 10_000;
const CENT: i64 = 10_000;

trait Row: Clone + PartialEq {
    fn key(&self) -> i64;
    fn event_id(&self) -> i64;
    fn render(&self, cx: &Ctx, out: &mut Fields);
}

#[derive(Clone, Debug, PartialEq)]
struct Strategy {
    id: i64,
    name: Box<str>,
    owner: u8,
    broker: u8,
    status: u8,
    max_notional: Option<i64>,
    created_at: i64,
    updated_at: i64,
    event_id: i64,
}

impl Row for Strategy {
    fn key(&self) -> i64 {
        self.id
    }
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn render(&self, _cx: &Ctx, out: &mut Fields) {
        out.int(self.id);
        out.fmt(format_args!("STRAT-{:04}", self.id));
        out.str(&self.name);
        out.str(OWNERS[self.owner as usize]);
        out.str(BROKERS[self.broker as usize]);
        out.str(STRATEGY_STATUSES[self.status as usize]);
        out.opt_num(self.max_notional, MONEY_SCALE);
        out.ts(self.created_at);
        out.ts(self.updated_at);
        out.int(self.event_id);
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Order {
    id: i64,
    strategy_id: i64,
    client_order_id: u128,
    isin: u16,
    side: u8,
    order_type: u8,
    tif: u8,
    quantity: i64,
    limit_price: Option<i64>,
    stop_price: Option<i64>,
    currency: u8,
    status: u8,
    created_at: i64,
    updated_at: i64,
    event_id: i64,
    /// Filled quantity so far (simulation state, not a column; it only changes together with
    /// `status`/`updated_at`/`event_id`, so comparing it never hides or invents a change).
    cum: i64,
}

impl Row for Order {
    fn key(&self) -> i64 {
        self.id
    }
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn render(&self, cx: &Ctx, out: &mut Fields) {
        let u = self.client_order_id;
        out.int(self.id);
        out.int(self.strategy_id);
        out.fmt(format_args!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (u >> 96) as u32,
            (u >> 80) as u16,
            (u >> 64) as u16,
            (u >> 48) as u16,
            u & 0xffff_ffff_ffff
        ));
        out.str(std::str::from_utf8(&cx.isins[self.isin as usize].code).expect("ascii isin"));
        out.str(SIDES[self.side as usize]);
        out.str(ORDER_TYPES[self.order_type as usize]);
        out.str(TIFS[self.tif as usize]);
        out.num(self.quantity, QTY_SCALE);
        out.opt_num(self.limit_price, PRICE_SCALE);
        out.opt_num(self.stop_price, PRICE_SCALE);
        out.str(CURRENCIES[self.currency as usize]);
        out.str(ORDER_STATUSES[self.status as usize]);
        out.ts(self.created_at);
        out.ts(self.updated_at);
        out.int(self.event_id);
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Exec {
    id: i64,
    order_id: i64,
    exec_type: u8,
    last_qty: i64,
    last_price: Option<i64>,
    cum_qty: i64,
    leaves_qty: i64,
    venue: Option<u8>,
    text: Option<Box<str>>,
    transact_time: i64,
    event_id: i64,
}

impl Row for Exec {
    fn key(&self) -> i64 {
        self.id
    }
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn render(&self, cx: &Ctx, out: &mut Fields) {
        let h = mix64(cx.salt ^ self.id as u64);
        out.int(self.id);
        out.int(self.order_id);
        out.fmt(format_args!(
            "{:08x}.{:08x}.{:02}.01",
            (h >> 32) as u32,
            h as u32,
            self.id.rem_euclid(100)
        ));
        out.str(EXEC_TYPES[self.exec_type as usize]);
        out.num(self.last_qty, QTY_SCALE);
        out.opt_num(self.last_price, PRICE_SCALE);
        out.num(self.cum_qty, QTY_SCALE);
        out.num(self.leaves_qty, QTY_SCALE);
        match self.venue {
            Some(v) => out.str(VENUES[v as usize]),
            None => out.null(),
        }
        match &self.text {
            Some(t) => out.str(t),
            None => out.null(),
        }
        out.ts(self.transact_time);
        out.int(self.event_id);
    }
}

/// One rendered row: the text of each field, an empty field being NULL.
#[derive(Default)]
struct Fields {
    buf: String,
    ends: Vec<usize>,
}

impl Fields {
    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }
    fn end(&mut self) {
        self.ends.push(self.buf.len());
    }
    fn null(&mut self) {
        self.end();
    }
    fn str(&mut self, s: &str) {
        debug_assert!(!s.is_empty(), "empty strings are never written");
        self.buf.push_str(s);
        self.end();
    }
    fn fmt(&mut self, args: std::fmt::Arguments<'_>) {
        self.buf.write_fmt(args).expect("write to String");
        self.end();
    }
    fn int(&mut self, v: i64) {
        self.fmt(format_args!("{v}"));
    }
    fn num(&mut self, v: i64, scale: u32) {
        debug_assert!(v >= 0);
        let p = 10i64.pow(scale);
        self.fmt(format_args!("{}.{:0w$}", v / p, v % p, w = scale as usize));
    }
    fn opt_num(&mut self, v: Option<i64>, scale: u32) {
        match v {
            Some(v) => self.num(v, scale),
            None => self.null(),
        }
    }
    fn ts(&mut self, t: i64) {
        let dt = datetime(t);
        let sub = t.rem_euclid(SEC);
        write!(
            self.buf,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
        .expect("write to String");
        if sub != 0 {
            write!(self.buf, ".{sub:06}").expect("write to String");
        }
        self.end();
    }
    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.ends.len()).map(move |i| self.get(i).as_bytes())
    }
    fn values(&self) -> Vec<Option<String>> {
        (0..self.ends.len())
            .map(|i| {
                Some(self.get(i))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect()
    }
}

/// Current rows of one table, indexed by key (keys are allocated densely from `base + 1`).
struct Table<R> {
    base: i64,
    rows: Vec<Option<R>>,
}

impl<R: Row> Table<R> {
    fn new(base: i64) -> Self {
        Table {
            base,
            rows: Vec::new(),
        }
    }
    fn index(&self, id: i64) -> Option<usize> {
        let i = id - self.base - 1;
        (i >= 0 && (i as usize) < self.rows.len()).then_some(i as usize)
    }
    fn get(&self, id: i64) -> Option<&R> {
        self.index(id).and_then(|i| self.rows[i].as_ref())
    }
    fn next_id(&self) -> i64 {
        self.base + self.rows.len() as i64 + 1
    }
    fn push(&mut self, row: R) {
        assert_eq!(row.key(), self.next_id(), "keys are allocated in order");
        self.rows.push(Some(row));
    }
    fn set(&mut self, row: R) {
        let i = self.index(row.key()).expect("update of an allocated key");
        self.rows[i] = Some(row);
    }
    fn take(&mut self, id: i64) -> Option<R> {
        self.index(id).and_then(|i| self.rows[i].take())
    }
    /// A random existing key with index below `below` (exclusive), if one is found quickly.
    fn random_key(&self, rng: &mut StdRng, below: usize, ok: impl Fn(&R) -> bool) -> Option<i64> {
        let n = below.min(self.rows.len());
        if n == 0 {
            return None;
        }
        for _ in 0..64 {
            if let Some(r) = &self.rows[rng.random_range(0..n)] {
                if ok(r) {
                    return Some(r.key());
                }
            }
        }
        None
    }
}

const OP_I: u8 = b'I';
const OP_U: u8 = b'U';
const OP_D: u8 = b'D';

/// The records of one CDC file and, per key touched, the row before the file.
struct Log<R> {
    ops: Vec<(u8, R)>,
    before: HashMap<i64, Option<R>>,
}

impl<R> Default for Log<R> {
    fn default() -> Self {
        Log {
            ops: Vec::new(),
            before: HashMap::new(),
        }
    }
}

impl<R: Row> Log<R> {
    fn touch(&mut self, t: &Table<R>, key: i64) {
        self.before
            .entry(key)
            .or_insert_with(|| t.get(key).cloned());
    }
    fn touched(&self, key: i64) -> bool {
        self.before.contains_key(&key)
    }
    fn counts(&self, t: &Table<R>) -> NetCounts {
        let mut c = NetCounts::default();
        for (&k, before) in &self.before {
            match (before, t.get(k)) {
                (None, Some(_)) => c.creates += 1,
                (Some(b), Some(a)) if b != a => c.amends += 1,
                (Some(_), None) => c.removes += 1,
                _ => c.unchanged += 1,
            }
        }
        c
    }
}

fn insert<R: Row>(t: &mut Table<R>, log: &mut Log<R>, row: R) {
    log.touch(t, row.key());
    t.push(row.clone());
    log.ops.push((OP_I, row));
}

fn update<R: Row>(t: &mut Table<R>, log: &mut Log<R>, row: R) {
    log.touch(t, row.key());
    t.set(row.clone());
    log.ops.push((OP_U, row));
}

fn delete<R: Row>(t: &mut Table<R>, log: &mut Log<R>, key: i64) {
    log.touch(t, key);
    let row = t.take(key).expect("delete of an existing row");
    log.ops.push((OP_D, row));
}

/// A delete whose before image names a key the table never had.
fn phantom_delete<R: Row>(t: &Table<R>, log: &mut Log<R>, row: R) {
    debug_assert!(t.get(row.key()).is_none());
    log.touch(t, row.key());
    log.ops.push((OP_D, row));
}

#[derive(Default)]
struct Logs {
    s: Log<Strategy>,
    o: Log<Order>,
    e: Log<Exec>,
}

// ---------------------------------------------------------------------------------------
// Simulation

const EV_S_INS: u8 = 0;
const EV_S_UPD: u8 = 1;
const EV_O_INS: u8 = 2;
const EV_O_UPD: u8 = 3;
const EV_X_INS: u8 = 4;
const EV_X_INS_O_UPD: u8 = 5;

/// A historical change, replayed in time order to allocate event and execution ids.
struct Ev {
    time: i64,
    idx: u32,
    exec: u32,
    kind: u8,
}

/// Mean number of fills of a fully filled order, by order type.
const MEAN_FILLS_MARKET: f64 = 5.0;
const MEAN_FILLS_RESTING: f64 = 17.4;

/// Sentinels in a lifecycle plan.
const NONE: u8 = u8::MAX;

struct Sim {
    rng: StdRng,
    cx: Ctx,
    st: Table<Strategy>,
    ord: Table<Order>,
    ex: Table<Exec>,
    /// Order-flow weight of each strategy (index = strategy_id - 1).
    weights: Vec<f64>,
    /// Last event_id assigned.
    event: i64,
    /// Orders that were open when listed (checked lazily).
    open: Vec<i64>,
    /// Rotation through the message templates, per kind.
    text_rot: [usize; 6],
}

/// Deliberate and scheduled changes of a CDC batch.
#[derive(Clone, Copy, Debug)]
enum Edge {
    StrategyUpdate,
    StrategyNew,
    StrategyInsDel,
    StrategyDel(i64),
    /// An update to identical values of a key picked at the start of the batch.
    Same(u8, Option<i64>),
    StrategyPhantom,
    OrderInsDel,
    OrderCancelTemp(i64),
    OrderDel(i64),
    OrderPhantom,
    ExecInsDel,
    ExecDel(i64),
    ExecPhantom,
}

struct Batch {
    b: usize,
    logs: Logs,
    reserved: HashSet<(u8, i64)>,
    hot: Vec<i64>,
    start: i64,
    end: i64,
    last_t: i64,
    target: usize,
    /// Executions with an index below this existed before the batch.
    exec_floor: usize,
}

impl Batch {
    fn progress(&self) -> f64 {
        (self.logs.o.ops.len() + self.logs.e.ops.len()) as f64 / (2 * self.target) as f64
    }
}

const T_STRAT: u8 = 0;
const T_ORDER: u8 = 1;
const T_EXEC: u8 = 2;

fn weighted_pick(rng: &mut StdRng, weights: &[f64], ok: impl Fn(usize) -> bool) -> Option<usize> {
    let total: f64 = (0..weights.len())
        .filter(|&i| ok(i))
        .map(|i| weights[i])
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut r = rng.random::<f64>() * total;
    let mut last = None;
    for (i, &w) in weights.iter().enumerate() {
        if !ok(i) || w <= 0.0 {
            continue;
        }
        last = Some(i);
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    last
}

/// Splits `lots` into at most `k` positive pieces.
fn split(rng: &mut StdRng, lots: i64, k: usize) -> Vec<i64> {
    let k = (k as i64).clamp(1, lots.max(1));
    if k == 1 {
        return vec![lots];
    }
    let mut cuts: Vec<i64> = if k == lots {
        (1..lots).collect()
    } else {
        (0..k - 1).map(|_| rng.random_range(1..lots)).collect()
    };
    cuts.sort_unstable();
    cuts.dedup();
    let mut prev = 0;
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    for c in cuts {
        pieces.push(c - prev);
        prev = c;
    }
    pieces.push(lots - prev);
    pieces
}

fn round_to(v: f64, tick: i64) -> i64 {
    (((v / tick as f64).round() as i64) * tick).max(tick)
}

/// Groups thousands: `12500` -> `12,500` (broker messages carry commas this way).
fn grouped(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn price_text(p: i64) -> String {
    let s = format!("{}.{:06}", p / 1_000_000, p % 1_000_000);
    let t = s.trim_end_matches('0');
    // keep at least two decimals
    let dot = t.find('.').expect("has a dot");
    if t.len() - dot < 3 {
        s[..dot + 3].to_string()
    } else {
        t.to_string()
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let cx = Ctx::new(&mut rng);
        Sim {
            rng,
            cx,
            st: Table::new(STRATEGY_BASE),
            ord: Table::new(ORDER_BASE),
            ex: Table::new(EXEC_BASE),
            weights: Vec::new(),
            event: 0,
            open: Vec::new(),
            text_rot: [0; 6],
        }
    }

    fn next_event(&mut self) -> i64 {
        self.event += 1;
        self.event
    }

    fn strategy_name(&mut self) -> Box<str> {
        let style = STYLES[self.rng.random_range(0..STYLES.len())];
        let uni = UNIVERSES[self.rng.random_range(0..UNIVERSES.len())];
        let hz = HORIZONS[self.rng.random_range(0..HORIZONS.len())];
        let r: f64 = self.rng.random();
        let name = if r < 0.6 {
            format!("{style} {uni} {hz}")
        } else if r < 0.75 {
            format!("{style}, {uni} ({hz})")
        } else if r < 0.85 {
            format!("{style} \"{uni}\" v{}", self.rng.random_range(2..9))
        } else {
            format!("Stratégie {style} — {uni}")
        };
        name.into_boxed_str()
    }

    fn new_strategy(&mut self, id: i64, created: i64) -> Strategy {
        let max_notional = if id % 5 == 3 || self.rng.random_bool(0.1) {
            None
        } else {
            Some(self.rng.random_range(50..5_000i64) * 1_000 * 100)
        };
        Strategy {
            id,
            name: self.strategy_name(),
            owner: self.rng.random_range(0..OWNERS.len()) as u8,
            broker: self.rng.random_range(0..BROKERS.len()) as u8,
            status: S_ACTIVE,
            max_notional,
            created_at: created,
            updated_at: created,
            event_id: 0,
        }
    }

    fn new_order(&mut self, id: i64, strategy_id: i64, t: i64) -> Order {
        let rng = &mut self.rng;
        let u: f64 = rng.random();
        let isin = ((u * u) * ISIN_POOL as f64) as u16;
        let info = &self.cx.isins[isin as usize];
        let side = if rng.random_bool(0.52) { BUY } else { 1 };
        let r: f64 = rng.random();
        let order_type = if r < 0.35 {
            MARKET
        } else if r < 0.83 {
            LIMIT
        } else if r < 0.90 {
            STOP
        } else {
            STOP_LIMIT
        };
        let r: f64 = rng.random();
        let tif = match order_type {
            MARKET if r < 0.7 => DAY,
            MARKET if r < 0.95 => IOC,
            MARKET => FOK,
            LIMIT if r < 0.5 => DAY,
            LIMIT if r < 0.85 => GTC,
            LIMIT if r < 0.95 => IOC,
            LIMIT => FOK,
            _ if r < 0.6 => DAY,
            _ => GTC,
        };
        let quantity = if rng.random_bool(0.07) {
            rng.random_range(SHARE..50 * SHARE)
        } else {
            const LOTS: [i64; 23] = [
                1, 2, 5, 10, 15, 20, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000,
                1500, 2000, 2500, 5000, 10000,
            ];
            let u: f64 = rng.random();
            let i = (((u * 0.8 + 0.2 * u * u) * LOTS.len() as f64) as usize).min(LOTS.len() - 1);
            LOTS[i] * SHARE
        };
        let market = info.price as f64 * (1.0 + rng.random_range(-0.02..0.02));
        let dir = if side == BUY { 1.0 } else { -1.0 };
        let stop = matches!(order_type, STOP | STOP_LIMIT)
            .then(|| round_to(market * (1.0 + dir * rng.random_range(0.005..0.03)), CENT));
        let limit_price = match order_type {
            LIMIT => Some(round_to(
                market * (1.0 - dir * rng.random_range(-0.002..0.008)),
                CENT,
            )),
            STOP_LIMIT => Some(round_to(
                stop.expect("stop set") as f64 * (1.0 + dir * rng.random_range(0.001..0.005)),
                CENT,
            )),
            _ => None,
        };
        let mut coid: u128 = rng.random();
        coid = (coid & !(0xf << 76)) | (0x4 << 76);
        coid = (coid & !(0x3 << 62)) | (0x2 << 62);
        Order {
            id,
            strategy_id,
            client_order_id: coid,
            isin,
            side,
            order_type,
            tif,
            quantity,
            limit_price,
            stop_price: stop,
            currency: info.currency,
            status: O_NEW,
            created_at: t,
            updated_at: t,
            event_id: 0,
            cum: 0,
        }
    }

    fn trade_price(&mut self, o: &Order) -> i64 {
        let base = self.cx.isins[o.isin as usize].price as f64;
        let mut px = match (o.order_type, o.stop_price) {
            (STOP, Some(s)) => s as f64 * (1.0 + self.rng.random_range(-0.002..0.002)),
            _ => base * (1.0 + self.rng.random_range(-0.006..0.006)),
        };
        if let Some(l) = o.limit_price {
            let l = l as f64;
            px = if o.side == BUY { px.min(l) } else { px.max(l) };
        }
        let r: f64 = self.rng.random();
        let tick = if r < 0.96 {
            CENT
        } else if r < 0.99 {
            100
        } else {
            1
        };
        round_to(px, tick)
    }

    fn venue(&mut self, currency: u8) -> u8 {
        let v = venues_for(currency);
        v[self.rng.random_range(0..v.len())]
    }

    fn text(&mut self, kind: u8, o: &Order, x: &Exec) -> Box<str> {
        let rot = self.text_rot[kind as usize];
        self.text_rot[kind as usize] += 1;
        let venue = x.venue.map_or("SMART", |v| VENUES[v as usize]);
        let qty = grouped(x.last_qty / SHARE);
        let leaves = grouped(x.leaves_qty / SHARE);
        let px = x.last_price.map(price_text).unwrap_or_else(|| "n/a".into());
        let bps = self.rng.random_range(1..25);
        let isin = std::str::from_utf8(&self.cx.isins[o.isin as usize].code)
            .expect("ascii")
            .to_string();
        let s = match kind {
            X_NEW => match rot % 3 {
                0 => "Order accepted by broker, routed to \"SMART\"".to_string(),
                1 => "Ordre accepté — en attente d'exécution".to_string(),
                _ => "受付済み\n注文は市場に送信されました".to_string(),
            },
            X_TRADE => match rot % 5 {
                0 => format!("Filled {qty} @ {px}, venue {venue}, liquidity=ADD"),
                1 => format!("Broker note: \"price improved by {bps} bps\", routed via {venue}"),
                2 => format!("Ordre exécuté — prix amélioré de {bps} pb"),
                3 => format!("約定: {qty} 株 @ {px}"),
                _ => format!("Ausführung bestätigt: Kurs {px}, Handelsplatz {venue}\nAbrechnung T+2"),
            },
            X_CANCELED => match rot % 5 {
                0 => format!(
                    "Cancel requested by strategy STRAT-{:04}\nreason: risk limit breached, notional > max",
                    o.strategy_id
                ),
                1 => format!(
                    "Canceled by user \"{}\", unfilled qty {leaves}",
                    OWNERS[(o.strategy_id as usize) % OWNERS.len()]
                ),
                2 => format!("Annulé à la demande du client — quantité restante {leaves}"),
                3 => format!("取消済み（残数量 {leaves}）"),
                _ => {
                    let mut s = format!(
                        "Cancel acknowledged by broker after pre-trade risk check. Details: isin={isin}, side={}, \
                         leaves={leaves}; note: \"client requested cancel\", desk=EMEA, session=REGULAR; \
                         commentaire: annulation confirmée — merci. 取消確認済み。 ",
                        SIDES[o.side as usize]
                    );
                    while s.chars().count() < 256 {
                        s.push_str("Ref ");
                        s.push_str(&isin);
                        s.push_str(", ");
                    }
                    s.chars().take(256).collect()
                }
            },
            X_EXPIRED => match rot % 3 {
                0 => format!("Order expired at end of session; unfilled qty={leaves}"),
                1 => format!("Expiré : fin de séance, ordre \"{}\"", TIFS[o.tif as usize]),
                _ => "期限切れ\nセッション終了".to_string(),
            },
            X_REJECTED => match rot % 3 {
                0 => "Rejected: \"Cancel request rejected\", order already filled".to_string(),
                1 => "Rejet de l'annulation — ordre déjà exécuté".to_string(),
                _ => "Too late to cancel\nbroker code 2015, \"order filled\"".to_string(),
            },
            _ => match rot % 2 {
                0 => format!("Trade corrected by broker, previous price {px}"),
                _ => format!("Prix corrigé — ancien prix {px}"),
            },
        };
        s.into_boxed_str()
    }

    /// An execution of `o` (whose `cum` is the filled quantity before it).
    fn make_exec(&mut self, o: &Order, exec_type: u8, last_qty: i64, time: i64) -> Exec {
        let cum = o.cum + last_qty;
        let (last_price, venue) = if exec_type == X_TRADE {
            let px = self.trade_price(o);
            let v = (!self.rng.random_bool(0.04)).then(|| self.venue(o.currency));
            (Some(px), v)
        } else {
            (None, None)
        };
        let leaves = match exec_type {
            X_CANCELED | X_EXPIRED => 0,
            _ => o.quantity - cum,
        };
        let mut x = Exec {
            id: 0,
            order_id: o.id,
            exec_type,
            last_qty,
            last_price,
            cum_qty: cum,
            leaves_qty: leaves,
            venue,
            text: None,
            transact_time: time,
            event_id: 0,
        };
        let p = match exec_type {
            X_NEW => 0.01,
            X_TRADE => 0.03,
            X_CANCELED => 0.5,
            X_EXPIRED => 0.6,
            _ => 1.0,
        };
        if self.rng.random_bool(p) {
            x.text = Some(self.text(exec_type, o, &x));
        }
        x
    }

    fn fill_count(&mut self, o: &Order) -> usize {
        let mean = if o.order_type == MARKET {
            MEAN_FILLS_MARKET
        } else {
            MEAN_FILLS_RESTING
        };
        let u: f64 = self.rng.random();
        (1.0 - (1.0 - u).ln() * (mean - 1.0)).min(80.0) as usize
    }

    fn fill_gap(&mut self, o: &Order) -> i64 {
        if o.order_type == MARKET {
            self.rng.random_range(MS..1_500 * MS)
        } else {
            (10f64.powf(self.rng.random_range(-1.0..2.6)) * SEC as f64) as i64
        }
    }

    /// Builds the full-load state: the history of strategies, orders and executions up to
    /// the snapshot, with ids and event ids allocated in time order.
    fn build_history(&mut self, n_strat: usize, n_orders: usize) {
        let snap = snapshot();
        let mut events: Vec<Ev> = Vec::with_capacity(n_orders * 12 + 2 * n_strat);
        let mut strategies = Vec::with_capacity(n_strat);
        let mut changed_at: Vec<Option<i64>> = Vec::with_capacity(n_strat);
        for i in 0..n_strat {
            let id = i as i64 + 1;
            let created = norm(history_start() + self.rng.random_range(0..6 * HOUR));
            let mut s = self.new_strategy(id, created);
            events.push(Ev {
                time: created,
                idx: i as u32,
                exec: 0,
                kind: EV_S_INS,
            });
            let r: f64 = self.rng.random();
            let status = if id == 1 || r >= 0.22 {
                S_ACTIVE
            } else if r < 0.12 {
                S_PAUSED
            } else {
                S_RETIRED
            };
            let mut at = None;
            if status != S_ACTIVE || self.rng.random_bool(0.3) {
                let t = norm(self.rng.random_range(history_start() + 24 * HOUR..snap));
                s.status = status;
                s.updated_at = t;
                if let Some(m) = s.max_notional.as_mut() {
                    *m = (*m / 2 + self.rng.random_range(0..*m)) / 100_000 * 100_000;
                    *m = (*m).max(100_000);
                }
                events.push(Ev {
                    time: t,
                    idx: i as u32,
                    exec: 0,
                    kind: EV_S_UPD,
                });
                at = Some(t);
            }
            changed_at.push(at);
            let u: f64 = self.rng.random();
            self.weights.push(0.1 + 4.0 * u.powi(4));
            strategies.push(s);
        }

        let sessions = Sessions::new(history_start(), snap);
        let snap_day = datetime(snap)
            .date()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        let mut orders: Vec<Order> = Vec::with_capacity(n_orders);
        let mut drafts: Vec<Exec> = Vec::with_capacity(n_orders * 10);
        let mut plan: Vec<(i64, u8, i64, u8)> = Vec::new();
        for i in 0..n_orders {
            let id = ORDER_BASE + 1 + i as i64;
            let f = (i as f64 + self.rng.random::<f64>()) / n_orders as f64;
            let t = norm(sessions.at(f));
            let k = weighted_pick(&mut self.rng, &self.weights, |k| {
                strategies[k].status == S_ACTIVE || changed_at[k].is_none_or(|c| c > t)
            })
            .unwrap_or(0);
            let mut o = self.new_order(id, k as i64 + 1, t);
            events.push(Ev {
                time: t,
                idx: i as u32,
                exec: 0,
                kind: EV_O_INS,
            });
            self.plan_history(&o, &mut plan);
            for &(time, xt, q, status) in &plan {
                if time > snap {
                    break;
                }
                let mut kind = EV_O_UPD;
                let mut exec = 0;
                if xt != NONE {
                    let x = self.make_exec(&o, xt, q, time);
                    o.cum = x.cum_qty;
                    exec = drafts.len() as u32;
                    drafts.push(x);
                    kind = if status == NONE {
                        EV_X_INS
                    } else {
                        EV_X_INS_O_UPD
                    };
                }
                if status != NONE {
                    o.status = status;
                    o.updated_at = time;
                }
                events.push(Ev {
                    time,
                    idx: i as u32,
                    exec,
                    kind,
                });
            }
            if matches!(o.status, O_NEW | O_PARTIAL) && o.created_at < snap_day && o.tif != GTC {
                // still working after its day: only a good-till-canceled order does that
                o.tif = GTC;
            }
            orders.push(o);
        }

        // Replay in time order (stable: same-instant changes keep their causal order).
        events.sort_by_key(|e| e.time);
        self.ex.rows.reserve(drafts.len());
        for ev in &events {
            let i = ev.idx as usize;
            match ev.kind {
                EV_S_INS | EV_S_UPD => strategies[i].event_id = self.next_event(),
                EV_O_INS | EV_O_UPD => orders[i].event_id = self.next_event(),
                _ => {
                    let mut x = std::mem::take(&mut drafts[ev.exec as usize]);
                    x.id = self.ex.next_id();
                    x.event_id = self.next_event();
                    self.ex.push(x);
                    if ev.kind == EV_X_INS_O_UPD {
                        orders[i].event_id = self.next_event();
                    }
                }
            }
        }
        drop(drafts);
        drop(events);
        for s in strategies {
            self.st.push(s);
        }
        for o in orders {
            if matches!(o.status, O_NEW | O_PARTIAL) {
                self.open.push(o.id);
            }
            self.ord.push(o);
        }
    }

    /// The lifecycle an order would have if nothing stopped it: (time, exec type or NONE,
    /// fill quantity, new order status or NONE).
    fn plan_history(&mut self, o: &Order, plan: &mut Vec<(i64, u8, i64, u8)>) {
        plan.clear();
        let r: f64 = self.rng.random();
        let mut intended = if r < 0.80 {
            O_FILLED
        } else if r < 0.88 {
            O_CANCELED
        } else if r < 0.91 {
            O_EXPIRED
        } else if r < 0.95 {
            O_REJECTED
        } else if r < 0.97 {
            O_PARTIAL
        } else {
            O_NEW
        };
        let resting_ok = matches!(o.tif, DAY | GTC) && o.order_type != MARKET;
        if matches!(intended, O_PARTIAL | O_NEW) && !resting_ok {
            intended = O_FILLED;
        }
        if intended == O_EXPIRED && (matches!(o.tif, IOC | FOK) || o.order_type == MARKET) {
            intended = O_CANCELED;
        }
        let mut t = o.created_at;
        if intended == O_REJECTED {
            plan.push((
                norm(t + self.rng.random_range(MS..250 * MS)),
                NONE,
                0,
                O_REJECTED,
            ));
            return;
        }
        t = norm(t + self.rng.random_range(2 * MS..400 * MS));
        plan.push((t, X_NEW, 0, NONE));
        let gran = if o.quantity % SHARE == 0 { SHARE } else { 1 };
        let lots = o.quantity / gran;
        let k = self.fill_count(o);
        let pieces = match intended {
            O_FILLED => split(&mut self.rng, lots, k),
            O_PARTIAL | O_CANCELED | O_EXPIRED => {
                let j = if intended == O_PARTIAL {
                    self.rng.random_range(1..=k)
                } else {
                    self.rng.random_range(0..=k / 2)
                };
                let j = j.min(lots as usize - 1);
                if j == 0 {
                    Vec::new()
                } else {
                    let mut p = split(&mut self.rng, lots, j + 1);
                    p.truncate(j.min(p.len() - 1));
                    p
                }
            }
            _ => Vec::new(),
        };
        let mut cum = 0;
        for p in pieces {
            t = norm(t + self.fill_gap(o));
            cum += p * gran;
            let status = if cum == o.quantity {
                O_FILLED
            } else {
                O_PARTIAL
            };
            plan.push((t, X_TRADE, p * gran, status));
        }
        match intended {
            O_CANCELED => {
                t = norm(t + self.fill_gap(o) * self.rng.random_range(1..20));
                plan.push((t, X_CANCELED, 0, O_CANCELED));
            }
            O_EXPIRED => {
                t = norm(t + self.rng.random_range(30 * MINUTE..8 * HOUR));
                plan.push((t, X_EXPIRED, 0, O_EXPIRED));
            }
            O_FILLED if self.rng.random_bool(0.03) => {
                t = norm(t + self.rng.random_range(50 * MS..2 * SEC));
                plan.push((t, X_REJECTED, 0, NONE));
            }
            _ => {}
        }
    }

    // ----- CDC -----

    fn tick(&mut self, bt: &mut Batch) -> i64 {
        let span = bt.end - bt.start;
        let f = bt.progress().min(1.0);
        let base = bt.start + MS + (f * (span - 2 * MS) as f64) as i64;
        let t = (base + self.rng.random_range(0..500))
            .max(bt.last_t + 1)
            .min(bt.end - 1);
        let t = norm(t);
        bt.last_t = t;
        t
    }

    fn run_batch(&mut self, b: usize, target: usize) -> Logs {
        let end = cdc_commit_micros(b);
        let mut bt = Batch {
            b,
            logs: Logs::default(),
            reserved: HashSet::new(),
            hot: Vec::new(),
            start: end - BATCH_STEP,
            end,
            last_t: end - BATCH_STEP,
            target,
            exec_floor: self.ex.rows.len(),
        };
        for _ in 0..30 {
            if let Some(id) = self.pick_open_from_all(&bt) {
                bt.hot.push(id);
            }
        }
        let mut pending: Vec<(f64, Edge)> = Vec::new();
        let same_s = self.pick_same(&mut bt, T_STRAT);
        let same_o = self.pick_same(&mut bt, T_ORDER);
        let same_e = self.pick_same(&mut bt, T_EXEC);
        for e in [
            Edge::StrategyInsDel,
            Edge::Same(T_STRAT, same_s),
            Edge::StrategyPhantom,
            Edge::OrderInsDel,
            Edge::Same(T_ORDER, same_o),
            Edge::OrderPhantom,
            Edge::ExecInsDel,
            Edge::Same(T_EXEC, same_e),
            Edge::ExecPhantom,
        ] {
            pending.push((self.rng.random_range(0.0..0.9), e));
        }
        for _ in 0..self.rng.random_range(1..=3) {
            pending.push((self.rng.random(), Edge::StrategyUpdate));
        }
        if self.rng.random_bool(0.25) {
            pending.push((self.rng.random(), Edge::StrategyNew));
        }
        loop {
            let progress = bt.progress();
            self.run_due(&mut bt, &mut pending, progress);
            if bt.logs.o.ops.len() >= target && bt.logs.e.ops.len() >= target {
                break;
            }
            self.random_action(&mut bt);
        }
        self.run_due(&mut bt, &mut pending, f64::INFINITY);
        bt.logs
    }

    fn run_due(&mut self, bt: &mut Batch, pending: &mut Vec<(f64, Edge)>, upto: f64) {
        loop {
            let mut best: Option<usize> = None;
            for (i, (at, _)) in pending.iter().enumerate() {
                if *at <= upto && best.is_none_or(|b| *at < pending[b].0) {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            let (at, e) = pending.remove(i);
            if let Some(next) = self.edge(bt, e) {
                let later = at + self.rng.random::<f64>() * (1.0 - at).max(0.0);
                pending.push((later.max(at), next));
            }
        }
    }

    /// Performs a scheduled change; may return a follow-up to schedule later in the batch.
    fn edge(&mut self, bt: &mut Batch, e: Edge) -> Option<Edge> {
        let t = self.tick(bt);
        match e {
            Edge::StrategyUpdate => self.strategy_update(bt, t),
            Edge::StrategyNew => {
                let id = self.st.next_id();
                let mut s = self.new_strategy(id, t);
                s.event_id = self.next_event();
                self.weights.push(0.5 + self.rng.random::<f64>());
                insert(&mut self.st, &mut bt.logs.s, s);
            }
            Edge::StrategyInsDel => {
                let id = self.st.next_id();
                let mut s = self.new_strategy(id, t);
                s.name = "Scratch strategy (created by mistake)".into();
                s.status = S_PAUSED;
                s.event_id = self.next_event();
                self.weights.push(0.0);
                bt.reserved.insert((T_STRAT, id));
                insert(&mut self.st, &mut bt.logs.s, s);
                return Some(Edge::StrategyDel(id));
            }
            Edge::StrategyDel(id) => delete(&mut self.st, &mut bt.logs.s, id),
            Edge::StrategyPhantom => {
                let id = STRATEGY_PHANTOM + bt.b as i64;
                let created = norm(t - self.rng.random_range(HOUR..20 * 24 * HOUR));
                let mut s = self.new_strategy(id, created);
                s.status = S_RETIRED;
                s.updated_at = norm(created + self.rng.random_range(0..HOUR));
                s.event_id = self.rng.random_range(1..=self.event);
                phantom_delete(&self.st, &mut bt.logs.s, s);
            }
            Edge::OrderInsDel => {
                let sid = self.pick_active_strategy();
                let id = self.ord.next_id();
                let mut o = self.new_order(id, sid, t);
                o.event_id = self.next_event();
                bt.reserved.insert((T_ORDER, id));
                insert(&mut self.ord, &mut bt.logs.o, o);
                return Some(if self.rng.random_bool(0.5) {
                    Edge::OrderCancelTemp(id)
                } else {
                    Edge::OrderDel(id)
                });
            }
            Edge::OrderCancelTemp(id) => {
                let mut o = self.ord.get(id).expect("exists").clone();
                o.status = O_CANCELED;
                o.updated_at = t;
                o.event_id = self.next_event();
                update(&mut self.ord, &mut bt.logs.o, o);
                return Some(Edge::OrderDel(id));
            }
            Edge::OrderDel(id) => delete(&mut self.ord, &mut bt.logs.o, id),
            Edge::OrderPhantom => {
                let id = ORDER_PHANTOM + bt.b as i64;
                let created = norm(t - self.rng.random_range(HOUR..20 * 24 * HOUR));
                let mut o = self.new_order(id, 1, created);
                o.status = O_CANCELED;
                o.updated_at = norm(created + self.rng.random_range(SEC..HOUR));
                o.event_id = self.rng.random_range(1..=self.event);
                phantom_delete(&self.ord, &mut bt.logs.o, o);
            }
            Edge::ExecInsDel => {
                let reserved = &bt.reserved;
                let order_id = self
                    .ord
                    .random_key(&mut self.rng, usize::MAX, |o| {
                        !reserved.contains(&(T_ORDER, o.id))
                    })
                    .or_else(|| self.ord.random_key(&mut self.rng, usize::MAX, |_| true))
                    .expect("orders exist");
                let o = self.ord.get(order_id).expect("exists").clone();
                let mut x = self.make_exec(&o, X_NEW, 0, t);
                x.cum_qty = o.cum;
                x.leaves_qty = o.quantity - o.cum;
                x.text = Some("Duplicate acknowledgement, purged by reconciliation".into());
                x.id = self.ex.next_id();
                x.event_id = self.next_event();
                bt.reserved.insert((T_EXEC, x.id));
                let id = x.id;
                insert(&mut self.ex, &mut bt.logs.e, x);
                return Some(Edge::ExecDel(id));
            }
            Edge::ExecDel(id) => delete(&mut self.ex, &mut bt.logs.e, id),
            Edge::Same(table, id) => {
                let id = id.or_else(|| self.pick_same(bt, table))?;
                match table {
                    T_STRAT => {
                        let row = self.st.get(id).expect("reserved rows stay").clone();
                        update(&mut self.st, &mut bt.logs.s, row);
                    }
                    T_ORDER => {
                        let row = self.ord.get(id).expect("reserved rows stay").clone();
                        update(&mut self.ord, &mut bt.logs.o, row);
                    }
                    _ => {
                        let row = self.ex.get(id).expect("reserved rows stay").clone();
                        update(&mut self.ex, &mut bt.logs.e, row);
                    }
                }
            }
            Edge::ExecPhantom => {
                let order_id = self
                    .ord
                    .random_key(&mut self.rng, usize::MAX, |_| true)
                    .expect("orders exist");
                let o = self.ord.get(order_id).expect("exists").clone();
                let when = norm(t - self.rng.random_range(SEC..HOUR));
                let mut x = self.make_exec(&o, X_CANCELED, 0, when);
                x.id = EXEC_PHANTOM + bt.b as i64;
                x.event_id = self.rng.random_range(1..=self.event);
                phantom_delete(&self.ex, &mut bt.logs.e, x);
            }
        }
        None
    }

    /// Picks (and reserves, so nothing else touches it in the batch) the key of the
    /// deliberate update to identical values; preferably a row untouched so far.
    fn pick_same(&mut self, bt: &mut Batch, table: u8) -> Option<i64> {
        let logs = &bt.logs;
        let reserved = &bt.reserved;
        let pick = match table {
            T_STRAT => self
                .st
                .random_key(&mut self.rng, usize::MAX, |s| {
                    !logs.s.touched(s.id) && !reserved.contains(&(T_STRAT, s.id))
                })
                .or_else(|| self.st.random_key(&mut self.rng, usize::MAX, |_| true)),
            T_ORDER => {
                let free =
                    |o: &Order| !logs.o.touched(o.id) && !reserved.contains(&(T_ORDER, o.id));
                self.ord
                    .random_key(&mut self.rng, usize::MAX, |o| {
                        free(o) && !matches!(o.status, O_NEW | O_PARTIAL)
                    })
                    .or_else(|| self.ord.random_key(&mut self.rng, usize::MAX, free))
                    .or_else(|| self.ord.random_key(&mut self.rng, usize::MAX, |_| true))
            }
            _ => {
                let free = |x: &Exec| !logs.e.touched(x.id) && !reserved.contains(&(T_EXEC, x.id));
                self.ex
                    .random_key(&mut self.rng, bt.exec_floor, free)
                    .or_else(|| self.ex.random_key(&mut self.rng, usize::MAX, free))
                    .or_else(|| self.ex.random_key(&mut self.rng, usize::MAX, |_| true))
            }
        }?;
        bt.reserved.insert((table, pick));
        Some(pick)
    }

    fn strategy_update(&mut self, bt: &mut Batch, t: i64) {
        let reserved = &bt.reserved;
        let Some(id) = self.st.random_key(&mut self.rng, usize::MAX, |s| {
            !reserved.contains(&(T_STRAT, s.id))
        }) else {
            return;
        };
        let mut s = self.st.get(id).expect("exists").clone();
        let r: f64 = self.rng.random();
        match s.status {
            S_ACTIVE if id != 1 && r < 0.3 => s.status = S_PAUSED,
            S_PAUSED if r < 0.5 => s.status = S_ACTIVE,
            _ if r < 0.75 && s.max_notional.is_some() => {
                let m = s.max_notional.expect("some");
                s.max_notional =
                    Some((m / 2 + self.rng.random_range(0..m)).max(100_000) / 100_000 * 100_000);
            }
            _ => s.name = self.strategy_name(),
        }
        s.updated_at = t.max(s.updated_at);
        s.event_id = self.next_event();
        update(&mut self.st, &mut bt.logs.s, s);
    }

    fn pick_active_strategy(&mut self) -> i64 {
        let st = &self.st;
        weighted_pick(&mut self.rng, &self.weights, |i| {
            st.rows[i].as_ref().is_some_and(|s| s.status == S_ACTIVE)
        })
        .or_else(|| weighted_pick(&mut self.rng, &self.weights, |i| st.rows[i].is_some()))
        .map_or(1, |i| i as i64 + 1)
    }

    fn is_open(&self, bt: &Batch, id: i64) -> bool {
        !bt.reserved.contains(&(T_ORDER, id))
            && self
                .ord
                .get(id)
                .is_some_and(|o| matches!(o.status, O_NEW | O_PARTIAL))
    }

    fn pick_open_from_all(&mut self, bt: &Batch) -> Option<i64> {
        for _ in 0..16 {
            if self.open.is_empty() {
                return None;
            }
            let i = self.rng.random_range(0..self.open.len());
            let id = self.open[i];
            if self.is_open(bt, id) {
                return Some(id);
            }
            if self
                .ord
                .get(id)
                .is_none_or(|o| !matches!(o.status, O_NEW | O_PARTIAL))
            {
                self.open.swap_remove(i);
            }
        }
        None
    }

    fn pick_open(&mut self, bt: &mut Batch) -> Option<i64> {
        if self.rng.random_bool(0.7) {
            for _ in 0..8 {
                if bt.hot.is_empty() {
                    break;
                }
                let i = self.rng.random_range(0..bt.hot.len());
                let id = bt.hot[i];
                if self.is_open(bt, id) {
                    return Some(id);
                }
                bt.hot.swap_remove(i);
            }
        }
        self.pick_open_from_all(bt)
    }

    fn random_action(&mut self, bt: &mut Batch) {
        let r = self.rng.random_range(0..100);
        let done = match r {
            0..24 => false,
            24..70 | 96..100 => self.act_trade(bt),
            70..76 => self.act_close(bt, X_CANCELED, O_CANCELED),
            76..78 => self.act_close(bt, X_EXPIRED, O_EXPIRED),
            78..83 => self.act_amend(bt),
            83..86 => self.act_cancel_reject(bt),
            86..93 => self.act_correct(bt),
            _ => self.act_bust(bt),
        };
        if !done {
            self.act_new_order(bt);
        }
    }

    fn act_new_order(&mut self, bt: &mut Batch) {
        let t = self.tick(bt);
        let sid = self.pick_active_strategy();
        let id = self.ord.next_id();
        let mut o = self.new_order(id, sid, t);
        o.event_id = self.next_event();
        insert(&mut self.ord, &mut bt.logs.o, o.clone());
        let t = self.tick(bt);
        if self.rng.random_bool(0.04) {
            o.status = O_REJECTED;
            o.updated_at = t;
            o.event_id = self.next_event();
            update(&mut self.ord, &mut bt.logs.o, o);
            return;
        }
        let mut x = self.make_exec(&o, X_NEW, 0, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        insert(&mut self.ex, &mut bt.logs.e, x);
        self.open.push(id);
        bt.hot.push(id);
    }

    fn act_trade(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_open(bt) else {
            return false;
        };
        let t = self.tick(bt);
        let mut o = self.ord.get(id).expect("open order exists").clone();
        let gran = if o.quantity % SHARE == 0 { SHARE } else { 1 };
        let leaves = (o.quantity - o.cum) / gran;
        let lots =
            if o.order_type == MARKET || o.tif == FOK || leaves <= 1 || self.rng.random_bool(0.3) {
                leaves
            } else {
                ((leaves as f64 * self.rng.random_range(0.1..0.6)) as i64).clamp(1, leaves)
            };
        let mut x = self.make_exec(&o, X_TRADE, lots * gran, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        o.cum = x.cum_qty;
        insert(&mut self.ex, &mut bt.logs.e, x);
        o.status = if o.cum == o.quantity {
            O_FILLED
        } else {
            O_PARTIAL
        };
        o.updated_at = t;
        o.event_id = self.next_event();
        let ioc_rest = o.status == O_PARTIAL && o.tif == IOC;
        update(&mut self.ord, &mut bt.logs.o, o.clone());
        if ioc_rest {
            // immediate-or-cancel: the unfilled rest is canceled right away
            let t = self.tick(bt);
            let mut x = self.make_exec(&o, X_CANCELED, 0, t);
            x.id = self.ex.next_id();
            x.event_id = self.next_event();
            insert(&mut self.ex, &mut bt.logs.e, x);
            o.status = O_CANCELED;
            o.updated_at = t;
            o.event_id = self.next_event();
            update(&mut self.ord, &mut bt.logs.o, o);
        }
        true
    }

    fn act_close(&mut self, bt: &mut Batch, exec_type: u8, status: u8) -> bool {
        let Some(id) = self.pick_open(bt) else {
            return false;
        };
        let t = self.tick(bt);
        let mut o = self.ord.get(id).expect("open order exists").clone();
        let mut x = self.make_exec(&o, exec_type, 0, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        insert(&mut self.ex, &mut bt.logs.e, x);
        o.status = status;
        o.updated_at = t;
        o.event_id = self.next_event();
        update(&mut self.ord, &mut bt.logs.o, o);
        true
    }

    fn act_amend(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_open(bt) else {
            return false;
        };
        let mut o = self.ord.get(id).expect("open order exists").clone();
        let f = 1.0 + self.rng.random_range(-0.005..0.005);
        if let Some(l) = o.limit_price {
            o.limit_price = Some(round_to(l as f64 * f, CENT));
        } else if let Some(s) = o.stop_price {
            o.stop_price = Some(round_to(s as f64 * f, CENT));
        } else {
            return false;
        }
        o.updated_at = self.tick(bt);
        o.event_id = self.next_event();
        update(&mut self.ord, &mut bt.logs.o, o);
        true
    }

    fn act_cancel_reject(&mut self, bt: &mut Batch) -> bool {
        let reserved = &bt.reserved;
        let hot_filled = (0..4).find_map(|_| {
            let id = *bt.hot.get(self.rng.random_range(0..bt.hot.len().max(1)))?;
            self.ord
                .get(id)
                .filter(|o| o.status == O_FILLED)
                .map(|o| o.id)
        });
        let Some(id) = hot_filled.or_else(|| {
            self.ord.random_key(&mut self.rng, usize::MAX, |o| {
                o.status == O_FILLED && !reserved.contains(&(T_ORDER, o.id))
            })
        }) else {
            return false;
        };
        let t = self.tick(bt);
        let o = self.ord.get(id).expect("exists").clone();
        let mut x = self.make_exec(&o, X_REJECTED, 0, t);
        x.id = self.ex.next_id();
        x.event_id = self.next_event();
        insert(&mut self.ex, &mut bt.logs.e, x);
        true
    }

    fn pick_old_exec(&mut self, bt: &Batch) -> Option<i64> {
        let reserved = &bt.reserved;
        self.ex.random_key(&mut self.rng, bt.exec_floor, |x| {
            !reserved.contains(&(T_EXEC, x.id))
        })
    }

    fn act_correct(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_old_exec(bt) else {
            return false;
        };
        let mut x = self.ex.get(id).expect("exists").clone();
        let Some(o) = self.ord.get(x.order_id).cloned() else {
            return false;
        };
        if x.exec_type == X_TRADE && self.rng.random_bool(0.6) {
            // price correction; the message quotes the previous price
            let p = x.last_price.expect("a trade has a price");
            x.text = Some(self.text(T_CORRECTION, &o, &x));
            let delta = if self.rng.random_bool(0.5) {
                CENT
            } else {
                -CENT
            };
            x.last_price = Some((p + delta).max(CENT));
        } else if x.exec_type == X_TRADE {
            let v = self.venue(o.currency);
            x.venue = Some(v);
            x.text = Some(
                format!(
                    "Correction: venue changed to {}, \"late report\"",
                    VENUES[v as usize]
                )
                .into(),
            );
        } else {
            let r = self.rng.random_range(10_000..100_000);
            x.text = Some(format!("Amended by broker ops, ref {r}").into());
        }
        x.event_id = self.next_event();
        update(&mut self.ex, &mut bt.logs.e, x);
        true
    }

    fn act_bust(&mut self, bt: &mut Batch) -> bool {
        let Some(id) = self.pick_old_exec(bt) else {
            return false;
        };
        delete(&mut self.ex, &mut bt.logs.e, id);
        true
    }
}

// ---------------------------------------------------------------------------------------
// Files

struct Emitter {
    prefix: String,
    fields: Fields,
    files: Vec<FileSummary>,
}

impl Emitter {
    fn key(&self, table: &str, name: &str) -> String {
        if self.prefix.is_empty() {
            format!("dbo/{table}/{name}")
        } else {
            format!("{}/dbo/{table}/{name}", self.prefix)
        }
    }

    fn load<R: Row, E>(
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
            let key = self.key(table, &format!("LOAD{n:08X}.csv.gz"));
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
    fn cdc<R: Row, E>(
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

type CsvOut = csv::Writer<GzEncoder<Vec<u8>>>;

fn csv_writer(buf: Vec<u8>) -> CsvOut {
    csv::WriterBuilder::new()
        .has_headers(false)
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(GzEncoder::new(buf, Compression::new(6)))
}

fn finish(w: CsvOut) -> Vec<u8> {
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|gz| gz.finish())
        .expect("in-memory gzip")
}

/// Writes rows (with an optional Op) as one gzip body; with `split`, the rows from that
/// index on go into a second gzip member. Returns (body, rows, max event_id).
fn encode<'a, R: Row + 'a>(
    cx: &Ctx,
    fields: &mut Fields,
    rows: impl Iterator<Item = (Option<u8>, &'a R)>,
    split: Option<usize>,
) -> (Vec<u8>, u64, Option<i64>) {
    let mut w = csv_writer(Vec::new());
    let mut count = 0u64;
    let mut max_event: Option<i64> = None;
    for (op, row) in rows {
        if split == Some(count as usize) && count > 0 {
            w = csv_writer(finish(w));
        }
        fields.clear();
        row.render(cx, fields);
        let op_field: Option<[u8; 1]> = op.map(|o| [o]);
        let record = op_field.iter().map(|o| &o[..]).chain(fields.iter());
        w.write_record(record).expect("in-memory csv");
        count += 1;
        max_event = max_event.max(Some(row.event_id()));
    }
    (finish(w), count, max_event)
}

fn dump<R: Row>(cx: &Ctx, t: &Table<R>) -> Vec<Vec<Option<String>>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Read;

    type Rec = Vec<Option<String>>;

    fn small(scale: f64, seed: u64) -> SampleSpec {
        SampleSpec {
            scale,
            seed,
            bucket_path: "sample/run".to_string(),
            load_rows_per_file: 50,
            cdc_files: 5,
            cdc_rows_per_file: 60,
            keep_state: true,
        }
    }

    fn collect(spec: &SampleSpec) -> (Vec<(FileSummary, Vec<u8>)>, SampleManifest) {
        let mut files = Vec::new();
        let manifest = generate(spec, |f: SampleFile| {
            files.push((f.summary, f.body));
            Ok::<(), std::convert::Infallible>(())
        })
        .expect("infallible");
        (files, manifest)
    }

    fn gunzip_all(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    }

    fn records(body: &[u8]) -> Vec<Rec> {
        let text = gunzip_all(body);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&text[..]);
        rdr.records()
            .map(|r| {
                r.expect("csv")
                    .iter()
                    .map(|f| (!f.is_empty()).then(|| f.to_string()))
                    .collect()
            })
            .collect()
    }

    fn is_load(key: &str) -> bool {
        key.rsplit('/').next().unwrap().starts_with("LOAD")
    }

    fn columns(table: &str) -> &'static [&'static str] {
        match table {
            "strategies" => &STRATEGY_COLUMNS,
            "orders" => &ORDER_COLUMNS,
            _ => &EXECUTION_COLUMNS,
        }
    }

    fn nullable(table: &str, col: &str) -> bool {
        matches!(
            (table, col),
            ("strategies", "max_notional")
                | ("orders", "limit_price" | "stop_price")
                | ("executions", "last_price" | "venue" | "text")
        )
    }

    #[test]
    fn isin_check_digit_matches_known_isins() {
        assert_eq!(isin_check_digit(b"US037833100"), b'5');
        assert_eq!(isin_check_digit(b"DE000BAY001"), b'7');
        assert_eq!(isin_check_digit(b"GB000263494"), b'6');
    }

    #[test]
    fn deterministic_per_seed() {
        let spec = small(0.001, 7);
        let (a, _) = collect(&spec);
        let (b, _) = collect(&spec);
        assert_eq!(a.len(), b.len());
        for ((sa, ba), (sb, bb)) in a.iter().zip(&b) {
            assert_eq!(sa.key, sb.key);
            assert_eq!(ba, bb, "{}", sa.key);
        }
        let (c, _) = collect(&small(0.001, 8));
        let same = a.iter().zip(&c).filter(|(x, y)| x.1 == y.1).count();
        assert!(same < a.len().min(c.len()), "another seed gives other data");
    }

    #[test]
    fn keys_are_named_and_ordered_like_dms() {
        let mut spec = small(0.001, 1);
        spec.load_rows_per_file = 10;
        let (files, manifest) = collect(&spec);
        assert_eq!(manifest.files.len(), files.len());
        let keys: Vec<&str> = files.iter().map(|(s, _)| s.key.as_str()).collect();
        let first_cdc = keys.iter().position(|k| !is_load(k)).unwrap();
        assert!(
            keys[first_cdc..].iter().all(|k| !is_load(k)),
            "LOAD files come first"
        );
        // LOAD files: per table in TABLES order, numbered 1.. in 8 uppercase hex digits
        let mut pos = 0;
        for table in TABLES {
            let mut n = 0;
            while pos < first_cdc && files[pos].0.table == table {
                n += 1;
                let want = format!("sample/run/dbo/{table}/LOAD{n:08X}.csv.gz");
                assert_eq!(keys[pos], want);
                assert!(files[pos].0.rows <= 10 && files[pos].0.rows > 0);
                pos += 1;
            }
            assert!(n > 0, "{table} has LOAD files");
        }
        assert_eq!(pos, first_cdc);
        assert!(keys.contains(&"sample/run/dbo/executions/LOAD0000000A.csv.gz"));
        // CDC: per batch, one file per table, stamped with the commit time, every other
        // batch under date folders
        let cdc = &files[first_cdc..];
        assert_eq!(cdc.len(), spec.cdc_files * 3);
        let mut prev_stamp = String::new();
        for (b, chunk) in cdc.chunks(3).enumerate() {
            let dt = datetime(cdc_commit_micros(b));
            let stamp = format!(
                "{}{:03}",
                dt.format("%Y%m%d-%H%M%S"),
                dt.and_utc().timestamp_subsec_millis()
            );
            assert!(stamp > prev_stamp);
            prev_stamp = stamp.clone();
            for (table, (s, _)) in TABLES.iter().zip(chunk) {
                let want = if b % 2 == 1 {
                    format!(
                        "sample/run/dbo/{table}/{}/{stamp}.csv.gz",
                        dt.format("%Y/%m/%d")
                    )
                } else {
                    format!("sample/run/dbo/{table}/{stamp}.csv.gz")
                };
                assert_eq!(s.key, want);
                assert_eq!(s.table, *table);
            }
        }
        assert_eq!(
            cdc[0].0.key,
            "sample/run/dbo/strategies/20220922-095853123.csv.gz"
        );
        assert_eq!(
            cdc[3].0.key,
            "sample/run/dbo/strategies/2022/09/22/20220922-095953123.csv.gz"
        );

        // an empty bucket path yields keys starting at dbo/, and slashes are trimmed
        spec.bucket_path = String::new();
        spec.cdc_files = 1;
        let (files, _) = collect(&spec);
        assert!(files.iter().all(|(s, _)| s.key.starts_with("dbo/")));
        spec.bucket_path = "/x/y/".to_string();
        let (files, _) = collect(&spec);
        assert!(files.iter().all(|(s, _)| s.key.starts_with("x/y/dbo/")));
    }

    /// Replays every file on a simple model and checks the reported ground truth, the
    /// deliberate edge cases of each CDC file and the final contents.
    fn check_ground_truth(spec: &SampleSpec) {
        let (files, manifest) = collect(spec);
        let mut model: HashMap<String, HashMap<String, Rec>> = HashMap::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut load_max = 0i64;
        for (summary, body) in &files {
            let table = summary.table.clone();
            let load = is_load(&summary.key);
            let recs = records(body);
            assert_eq!(summary.rows, recs.len() as u64, "{}", summary.key);
            assert_eq!(summary.bytes, body.len() as u64);
            let m = model.entry(table.clone()).or_default();
            let mut before: HashMap<String, Option<Rec>> = HashMap::new();
            let mut inserted: HashSet<String> = HashSet::new();
            let (mut insdel, mut same, mut phantom) = (false, false, false);
            let mut max_event = None;
            let mut last_assigned = load_max;
            for rec in recs {
                let (op, row) = if load {
                    ("I".to_string(), rec)
                } else {
                    (rec[0].clone().unwrap(), rec[1..].to_vec())
                };
                assert_eq!(row.len(), columns(&table).len(), "{}", summary.key);
                let key = row[0].clone().unwrap();
                let event: i64 = row.last().unwrap().as_ref().unwrap().parse().unwrap();
                max_event = max_event.max(Some(event));
                before
                    .entry(key.clone())
                    .or_insert_with(|| m.get(&key).cloned());
                let current = m.get(&key).cloned();
                match op.as_str() {
                    "I" => {
                        assert!(current.is_none(), "insert of an existing key {key}");
                        if !load {
                            assert!(event > last_assigned, "event ids increase");
                            last_assigned = event;
                        }
                        inserted.insert(key.clone());
                        m.insert(key.clone(), row);
                    }
                    "U" => {
                        let cur = current.expect("update of an existing key");
                        if cur == row {
                            same = true;
                        } else {
                            assert!(event > last_assigned, "event ids increase");
                            last_assigned = event;
                        }
                        m.insert(key.clone(), row);
                    }
                    "D" => {
                        match current {
                            Some(cur) => {
                                assert_eq!(cur, row, "a delete carries the current row");
                                if inserted.contains(&key) {
                                    insdel = true;
                                }
                            }
                            None => {
                                if !seen.contains(&(table.clone(), key.clone())) {
                                    phantom = true;
                                }
                            }
                        }
                        m.remove(&key);
                    }
                    other => panic!("bad op {other}"),
                }
                seen.insert((table.clone(), key));
            }
            let mut counts = NetCounts::default();
            for (k, b) in &before {
                match (b, m.get(k)) {
                    (None, Some(_)) => counts.creates += 1,
                    (Some(b), Some(a)) if b != a => counts.amends += 1,
                    (Some(_), None) => counts.removes += 1,
                    _ => counts.unchanged += 1,
                }
            }
            assert_eq!(summary.counts, counts, "{}", summary.key);
            assert_eq!(summary.counts.keys(), before.len() as u64);
            assert_eq!(summary.max_event_id, max_event, "{}", summary.key);
            if load {
                assert_eq!(counts.creates, summary.rows);
                load_max = load_max.max(max_event.unwrap_or(0));
            } else {
                assert!(insdel, "insert then delete in {}", summary.key);
                assert!(same, "identical update in {}", summary.key);
                assert!(phantom, "delete of a never-seen key in {}", summary.key);
                assert!(counts.unchanged >= 3);
            }
        }
        assert_eq!(manifest.tables.len(), 3);
        for table in TABLES {
            let mut rows: Vec<(i64, Rec)> = model[table]
                .iter()
                .map(|(k, r)| (k.parse().unwrap(), r.clone()))
                .collect();
            rows.sort_by_key(|(k, _)| *k);
            let rows: Vec<Rec> = rows.into_iter().map(|(_, r)| r).collect();
            assert_eq!(manifest.tables[table], rows, "{table}");
        }
    }

    #[test]
    fn ground_truth_matches_a_replay() {
        check_ground_truth(&small(0.001, 42));
        check_ground_truth(&small(0.0002, 3));
        let mut spec = small(0.0002, 5);
        spec.cdc_rows_per_file = 1;
        spec.cdc_files = 3;
        check_ground_truth(&spec);
    }

    #[test]
    fn cdc_orders_progress_within_a_file() {
        let (files, _) = collect(&small(0.001, 42));
        for (s, body) in files
            .iter()
            .filter(|(s, _)| s.table == "orders" && !is_load(&s.key))
        {
            let recs = records(body);
            let mut per_key: HashMap<String, usize> = HashMap::new();
            for r in &recs {
                *per_key.entry(r[1].clone().unwrap()).or_default() += 1;
            }
            assert!(per_key.values().any(|&n| n >= 3), "{}", s.key);
            assert!(recs.iter().any(|r| r[0].as_deref() == Some("I")));
            assert!(s.counts.creates > 0 && s.counts.amends > 0);
            assert!(s.rows >= 60, "{}: {} rows", s.key, s.rows);
        }
    }

    #[test]
    fn last_orders_file_is_multi_member_gzip() {
        let spec = small(0.001, 42);
        let (files, _) = collect(&spec);
        let last_orders = files
            .iter()
            .rposition(|(s, _)| s.table == "orders")
            .unwrap();
        for (i, (s, body)) in files.iter().enumerate() {
            let all = gunzip_all(body);
            let mut first = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut first)
                .unwrap();
            if i == last_orders {
                assert!(!is_load(&s.key));
                assert!(first.len() < all.len(), "two members");
                assert!(first.ends_with(b"\n"), "split at a row boundary");
                assert!(all.starts_with(&first));
            } else {
                assert_eq!(first, all, "{} is a single member", s.key);
            }
        }
    }

    #[test]
    fn values_respect_the_dialect_and_the_schema() {
        let (files, _) = collect(&small(0.001, 42));
        let mut nulls: HashSet<(String, &str)> = HashSet::new();
        let (mut comma, mut quote, mut newline, mut non_ascii) = (false, false, false, false);
        for (s, body) in &files {
            let text = gunzip_all(body);
            let text = String::from_utf8(text).expect("utf-8");
            // an empty quoted field would be `""` standing alone
            assert!(!text.contains(",\"\",") && !text.contains(",\"\"\n"));
            assert!(!text.lines().any(|l| l.starts_with("\"\",")));
            let cols = columns(&s.table);
            for rec in records(body) {
                let row = if is_load(&s.key) { &rec[..] } else { &rec[1..] };
                assert_eq!(row.len(), cols.len());
                let mut at: HashMap<&str, &str> = HashMap::new();
                for (col, v) in cols.iter().zip(row) {
                    match v {
                        None => {
                            assert!(nullable(&s.table, col), "{}.{col} NULL", s.table);
                            nulls.insert((s.table.clone(), col));
                        }
                        Some(v) => {
                            at.insert(col, v.as_str());
                        }
                    }
                }
                for (col, v) in &at {
                    if col.ends_with("_at") || *col == "transact_time" {
                        assert!(v.len() == 19 || v.len() == 26, "{col}={v}");
                        assert!(*v >= "2022-09-01", "{v}");
                        assert!(!(v.len() == 26 && v.ends_with('0')), "{v}");
                    }
                    let scale = match *col {
                        "quantity" | "last_qty" | "cum_qty" | "leaves_qty" => Some(4),
                        "limit_price" | "stop_price" | "last_price" => Some(6),
                        "max_notional" => Some(2),
                        _ => None,
                    };
                    if let Some(scale) = scale {
                        let (_, frac) = v.split_once('.').expect("fraction");
                        assert_eq!(frac.len(), scale, "{col}={v}");
                    }
                }
                if let (Some(c), Some(u)) = (at.get("created_at"), at.get("updated_at")) {
                    assert!(u >= c, "updated_at >= created_at");
                }
                match s.table.as_str() {
                    "strategies" => {
                        assert!(at["code"].starts_with("STRAT-"));
                        assert!(at["name"].chars().count() <= 128);
                    }
                    "orders" => {
                        assert_eq!(at["isin"].len(), 12);
                        assert_eq!(at["client_order_id"].len(), 36);
                        let ty = at["order_type"];
                        assert_eq!(
                            at.contains_key("limit_price"),
                            matches!(ty, "LIMIT" | "STOP_LIMIT")
                        );
                        assert_eq!(
                            at.contains_key("stop_price"),
                            matches!(ty, "STOP" | "STOP_LIMIT")
                        );
                    }
                    _ => {
                        assert_eq!(at.contains_key("last_price"), at["exec_type"] == "TRADE");
                        let q = |c: &str| -> f64 { at[c].parse().unwrap() };
                        assert!(q("leaves_qty") >= 0.0 && q("cum_qty") >= q("last_qty"));
                        if let Some(t) = at.get("text") {
                            assert!(t.chars().count() <= 256);
                            comma |= t.contains(',');
                            quote |= t.contains('"');
                            newline |= t.contains('\n');
                            non_ascii |= !t.is_ascii();
                        }
                    }
                }
            }
        }
        assert!(comma && quote && newline && non_ascii);
        for (table, col) in [
            ("strategies", "max_notional"),
            ("orders", "limit_price"),
            ("orders", "stop_price"),
            ("executions", "last_price"),
            ("executions", "venue"),
            ("executions", "text"),
        ] {
            assert!(
                nulls.contains(&(table.to_string(), col)),
                "{table}.{col} has NULLs"
            );
        }
    }

    #[test]
    fn sizes_scale_linearly() {
        assert_eq!(strategy_count(1.0), 90);
        assert_eq!(order_count(1.0), 160_000);
        assert_eq!(strategy_count(0.001), 3);
        assert_eq!(order_count(0.0002), 32);
        assert_eq!(order_count(0.00001), 10);
        assert_eq!(order_count(2.0), 320_000);
    }

    /// `cargo test --release --lib sample::tests::full_scale -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn full_scale() {
        let start = std::time::Instant::now();
        let spec = SampleSpec::default();
        let mut bytes = 0u64;
        let manifest = generate(&spec, |f: SampleFile| {
            bytes += f.body.len() as u64;
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
        let elapsed = start.elapsed();
        for table in TABLES {
            let load: u64 = manifest
                .files
                .iter()
                .filter(|f| f.table == table && is_load(&f.key))
                .map(|f| f.rows)
                .sum();
            let cdc: Vec<(u64, NetCounts)> = manifest
                .files
                .iter()
                .filter(|f| f.table == table && !is_load(&f.key))
                .map(|f| (f.rows, f.counts))
                .collect();
            println!("{table}: load {load} rows, cdc (rows, counts) per file {cdc:?}");
        }
        println!(
            "{} files, {} MB gzip, {:.2?}",
            manifest.files.len(),
            bytes / 1_000_000,
            elapsed
        );
    }
}
