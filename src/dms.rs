//! The AWS DMS file contract: object naming and ordering, the CSV dialect, and row decoding
//! into Postgres binary COPY tuples.
//!
//! Everything here is pure (no I/O beyond `std::io::Read`) so it can be unit-tested and fuzzed.

/// A target column type, as read from the Postgres catalog (`format_type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int2,
    Int4,
    Int8,
    /// `numeric(precision, scale)`; both `None` for an unconstrained `numeric`.
    Numeric {
        precision: Option<u16>,
        scale: Option<u16>,
    },
    /// `varchar(n)`; `None` for unbounded.
    Varchar(Option<u32>),
    /// `char(n)` (bpchar).
    Bpchar(Option<u32>),
    Text,
    /// `timestamp without time zone`, microsecond precision.
    Timestamp,
    /// `timestamp with time zone`; DMS values carry no zone and are taken as UTC.
    Timestamptz,
    Date,
    Bool,
    Float4,
    Float8,
}

/// One column of a target table, in source-file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// A replicated table: its columns in source-file order (lineage columns excluded) and the
/// indices into `columns` of its primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub key: Vec<usize>,
}

impl TableSpec {
    /// Index of the `event_id` column, if the table has one.
    pub fn event_id_index(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.name == "event_id")
    }
}

// ---------------------------------------------------------------------------------------------
// Object keys and ordering
// ---------------------------------------------------------------------------------------------

/// How a DMS data file is compressed, from its name suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `*.csv.gz`
    Gzip,
    /// `*.csv`
    None,
}

/// What a DMS data file holds.
///
/// The derived ordering puts every `Load` before every `Cdc`, loads by sequence number and
/// change files by time stamp, which is the order a table's stream must be applied in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A full-load file `LOADxxxxxxxx.csv[.gz]`; `seq` is the hexadecimal file number.
    Load { seq: u32 },
    /// A change file `YYYYMMDD-HHMMSSmmm.csv[.gz]`; `stamp` is `YYYYMMDDHHMMSSmmm` read as a
    /// decimal number (so numeric order is time order).
    Cdc { stamp: u64 },
}

impl FileKind {
    /// True for a full-load file.
    pub fn is_load(&self) -> bool {
        matches!(self, FileKind::Load { .. })
    }

    /// How the Op column of this kind of file should be handled by [`RowDecoder`]: change files
    /// always carry one, full-load files only when DMS's `includeOpForFullLoad` was on, so it
    /// has to be detected.
    pub fn op_column(&self) -> OpColumn {
        match self {
            FileKind::Load { .. } => OpColumn::Detect,
            FileKind::Cdc { .. } => OpColumn::Present,
        }
    }
}

/// A DMS data file in the bucket, recognised from its key by [`parse_object_key`].
///
/// Equality and ordering use `(schema, table, kind, key)`: sorting a list of objects groups
/// them by table and, within a table, gives the order in which they must be applied (all full
/// load files by number, then change files by time stamp, ties broken by key).
#[derive(Clone, Debug)]
pub struct DmsObject {
    /// The full S3 key.
    pub key: String,
    /// The schema folder.
    pub schema: String,
    /// The table folder.
    pub table: String,
    /// Full-load or change file, with its position in the stream.
    pub kind: FileKind,
    /// From the name suffix.
    pub compression: Compression,
}

impl DmsObject {
    /// The position of this file within its table's stream: compare only objects of the same
    /// `(schema, table)`.
    pub fn stream_order(&self) -> (FileKind, &str) {
        (self.kind, self.key.as_str())
    }

    fn order_key(&self) -> (&str, &str, FileKind, &str) {
        (&self.schema, &self.table, self.kind, &self.key)
    }
}

impl PartialEq for DmsObject {
    fn eq(&self, other: &Self) -> bool {
        self.order_key() == other.order_key()
    }
}

impl Eq for DmsObject {}

impl PartialOrd for DmsObject {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DmsObject {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

/// Recognises a DMS data file key below `bucket_path`.
///
/// Accepted layouts (with `.csv.gz` or `.csv`):
/// - `<bucket_path>/<schema>/<table>/LOAD<8 hex digits>.csv.gz`
/// - `<bucket_path>/<schema>/<table>/YYYYMMDD-HHMMSSmmm.csv.gz`
/// - `<bucket_path>/<schema>/<table>/YYYY/MM/DD/YYYYMMDD-HHMMSSmmm.csv.gz`
///
/// `bucket_path` may be empty, and leading or trailing `/` on it are ignored. The date folders
/// must be 4, 2 and 2 digits (they are not compared with the file name: DMS may partition by
/// another time zone). The time stamp in a change file name must be a valid date and time.
/// Returns `None` for anything else.
pub fn parse_object_key(bucket_path: &str, key: &str) -> Option<DmsObject> {
    let prefix = bucket_path.trim_matches('/');
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };

    let mut parts = rest.split('/');
    let schema = parts.next()?;
    let table = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if schema.is_empty() || table.is_empty() {
        return None;
    }
    let (folders, file) = match rest.as_slice() {
        [file] => (None, *file),
        [y, m, d, file] => (Some((*y, *m, *d)), *file),
        _ => return None,
    };

    let (stem, compression) = if let Some(stem) = file.strip_suffix(".csv.gz") {
        (stem, Compression::Gzip)
    } else if let Some(stem) = file.strip_suffix(".csv") {
        (stem, Compression::None)
    } else {
        return None;
    };

    let kind = if let Some(hex) = stem.strip_prefix("LOAD") {
        if folders.is_some() || hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        FileKind::Load {
            seq: u32::from_str_radix(hex, 16).ok()?,
        }
    } else {
        if let Some((y, m, d)) = folders {
            let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
            if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
                return None;
            }
        }
        FileKind::Cdc {
            stamp: parse_cdc_stamp(stem.as_bytes())?,
        }
    };

    Some(DmsObject {
        key: key.to_string(),
        schema: schema.to_string(),
        table: table.to_string(),
        kind,
        compression,
    })
}

/// Parses and validates `YYYYMMDD-HHMMSSmmm` into the number `YYYYMMDDHHMMSSmmm`.
fn parse_cdc_stamp(s: &[u8]) -> Option<u64> {
    if s.len() != 18 || s[8] != b'-' {
        return None;
    }
    let mut stamp: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        if i == 8 {
            continue;
        }
        if !b.is_ascii_digit() {
            return None;
        }
        stamp = stamp * 10 + u64::from(b - b'0');
    }
    let year = num(&s[0..4]) as i32;
    let month = num(&s[4..6]);
    let day = num(&s[6..8]);
    let (hour, min, sec) = (num(&s[9..11]), num(&s[11..13]), num(&s[13..15]));
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    Some(stamp)
}

/// Decimal value of a run of ASCII digits already known to be digits.
fn num(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a file could not be scanned or a record decoded. Lines are 1-based physical lines of the
/// (decompressed) file; columns are 1-based field positions within the record, the Op column
/// (when present) being column 1.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A field's value is invalid for its column.
    #[error("line {line}, column {column} ({name}): {reason}")]
    Field {
        /// Line on which the record starts.
        line: u64,
        /// 1-based field position in the record (the Op column, if any, is 1).
        column: usize,
        /// Column name (`Op` for the Op column).
        name: String,
        /// What is wrong, quoting the value (cut to 40 characters).
        reason: String,
    },
    /// A record has the wrong number of fields.
    #[error("line {line}: expected {expected} fields, found {found}")]
    FieldCount {
        /// Line on which the record starts.
        line: u64,
        /// Fields expected, counting the Op column if the file has one.
        expected: usize,
        /// Fields found.
        found: usize,
    },
    /// The file is not valid CSV.
    #[error("line {line}: {reason}")]
    Syntax {
        /// Line of the error (for an unterminated quoted field, where the field starts).
        line: u64,
        /// What is wrong, naming the 1-based field number.
        reason: String,
    },
    /// Reading the input failed, e.g. corrupt or truncated gzip data.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not an error in the file: a delete in a full load cannot go straight into the table.
    #[error("line {line}: a delete in a full-load file needs the staged apply")]
    NeedsStaging { line: u64 },
    /// Not an error in the file: the temporary file for a change file's inserts could not be
    /// written (`TMPDIR` full or missing).
    #[error("setting inserts aside in TMPDIR failed: {0}")]
    Spill(std::io::Error),
}

// ---------------------------------------------------------------------------------------------
// CSV scanner
// ---------------------------------------------------------------------------------------------

/// Default size of the scanner's read buffer.
pub const DEFAULT_SCAN_BUFFER: usize = 256 * 1024;

#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    quoted: bool,
}

/// One CSV record as scanned: raw field bytes (quoted fields already unescaped) and whether
/// each field was quoted. Reuse one `RawRecord` across [`CsvScanner::next_record`] calls so its
/// buffers are allocated once.
#[derive(Clone, Debug, Default)]
pub struct RawRecord {
    data: Vec<u8>,
    fields: Vec<Span>,
    line: u64,
}

impl RawRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True if the record has no fields (only before it is first filled: a scanned record
    /// always has at least one field).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The bytes of field `i` (0-based). Panics if `i >= self.len()`.
    pub fn field(&self, i: usize) -> &[u8] {
        let s = self.fields[i];
        &self.data[s.start..s.end]
    }

    /// Whether field `i` was quoted in the file. An unquoted empty field is NULL; a quoted empty
    /// field is the empty string. Panics if `i >= self.len()`.
    pub fn is_quoted(&self, i: usize) -> bool {
        self.fields[i].quoted
    }

    /// True if field `i` is NULL (unquoted and empty).
    pub fn is_null(&self, i: usize) -> bool {
        let s = self.fields[i];
        !s.quoted && s.start == s.end
    }

    /// The 1-based physical line on which the record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    fn clear(&mut self) {
        self.data.clear();
        self.fields.clear();
    }

    fn push(&mut self, start: usize, end: usize, quoted: bool) {
        self.fields.push(Span { start, end, quoted });
    }
}

/// A streaming scanner for the DMS CSV dialect (RFC 4180 with `,`, `"` and `\n` or `\r\n` line
/// ends, no header). It keeps the distinction between an unquoted empty field (NULL) and `""`.
///
/// Memory use is bounded by the read buffer plus the current record. After an error the
/// scanner's position is unspecified and it should not be used further.
pub struct CsvScanner<R: std::io::Read> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    line: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScanState {
    FieldStart,
    Unquoted,
    Quoted,
    /// Saw a `"` inside a quoted field: either an escaped quote or the closing quote.
    QuoteSeen,
    /// Saw `\r` right after a closing quote.
    AfterQuoteCr,
}

impl<R: std::io::Read> CsvScanner<R> {
    /// A scanner with a [`DEFAULT_SCAN_BUFFER`]-byte read buffer.
    pub fn new(reader: R) -> Self {
        Self::with_capacity(reader, DEFAULT_SCAN_BUFFER)
    }

    /// A scanner with a read buffer of `capacity` bytes (at least 1). Records longer than the
    /// buffer are handled, just more slowly.
    pub fn with_capacity(reader: R, capacity: usize) -> Self {
        CsvScanner {
            reader,
            buf: vec![0; capacity.max(1)],
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
        }
    }

    /// The 1-based physical line the scanner is at: where the next record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next record into `rec`, replacing its contents. Returns `Ok(false)` at the end
    /// of the input (an empty input has no records; a final line end is optional).
    pub fn next_record(&mut self, rec: &mut RawRecord) -> Result<bool, DecodeError> {
        rec.clear();
        rec.line = self.line;
        if self.pos == self.end && self.fill()? == 0 {
            return Ok(false);
        }

        // Fast path: the whole line is buffered and contains no quote, so fields are just the
        // pieces between commas.
        let mut searched = self.pos;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let nl = searched + i;
                let line = &self.buf[self.pos..nl];
                if memchr::memchr(b'"', line).is_some() {
                    break;
                }
                rec.data.extend_from_slice(line);
                let mut start = 0;
                for comma in memchr::memchr_iter(b',', line) {
                    rec.push(start, comma, false);
                    start = comma + 1;
                }
                let mut end = line.len();
                if end > start && line[end - 1] == b'\r' {
                    end -= 1;
                }
                rec.push(start, end, false);
                self.pos = nl + 1;
                self.line += 1;
                return Ok(true);
            }
            if self.eof || (self.pos == 0 && self.end == self.buf.len()) {
                break;
            }
            let scanned = self.end - self.pos;
            if self.fill()? == 0 {
                break;
            }
            searched = self.pos + scanned;
        }

        self.scan_slow(rec)?;
        Ok(true)
    }

    /// Moves unconsumed bytes to the front of the buffer and reads more after them. Returns the
    /// number of bytes read (0 at end of input or when the buffer is full).
    fn fill(&mut self) -> std::io::Result<usize> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.eof || self.end == self.buf.len() {
            return Ok(0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn syntax(&self, line: u64, reason: String) -> DecodeError {
        DecodeError::Syntax { line, reason }
    }

    /// The general state machine, used for records with quotes, records not wholly in the
    /// buffer, and the last record when it has no line end. Consumed bytes are copied into
    /// `rec` as it goes, so the buffer can be refilled at any point. Called with at least one
    /// byte buffered and `rec` empty.
    fn scan_slow(&mut self, rec: &mut RawRecord) -> Result<(), DecodeError> {
        let mut state = ScanState::FieldStart;
        let mut field_start = 0;
        let mut quote_line = self.line;
        loop {
            if self.pos == self.end && self.fill()? == 0 {
                let len = rec.data.len();
                match state {
                    // After a trailing comma: one more, empty field.
                    ScanState::FieldStart => rec.push(len, len, false),
                    ScanState::Unquoted => rec.push(field_start, len, false),
                    ScanState::QuoteSeen | ScanState::AfterQuoteCr => {
                        rec.push(field_start, len, true)
                    }
                    ScanState::Quoted => {
                        return Err(self.syntax(
                            quote_line,
                            format!("unterminated quoted field (field {})", rec.len() + 1),
                        ))
                    }
                }
                return Ok(());
            }
            match state {
                ScanState::FieldStart => {
                    field_start = rec.data.len();
                    match self.buf[self.pos] {
                        b'"' => {
                            self.pos += 1;
                            quote_line = self.line;
                            state = ScanState::Quoted;
                        }
                        b',' => {
                            self.pos += 1;
                            rec.push(field_start, field_start, false);
                        }
                        b'\n' => {
                            self.pos += 1;
                            rec.push(field_start, field_start, false);
                            self.line += 1;
                            return Ok(());
                        }
                        _ => state = ScanState::Unquoted,
                    }
                }
                ScanState::Unquoted => {
                    let avail = &self.buf[self.pos..self.end];
                    match memchr::memchr3(b',', b'\n', b'"', avail) {
                        None => {
                            rec.data.extend_from_slice(avail);
                            self.pos = self.end;
                        }
                        Some(i) => {
                            rec.data.extend_from_slice(&avail[..i]);
                            let b = avail[i];
                            self.pos += i + 1;
                            match b {
                                b',' => {
                                    rec.push(field_start, rec.data.len(), false);
                                    state = ScanState::FieldStart;
                                }
                                b'\n' => {
                                    let mut end = rec.data.len();
                                    if end > field_start && rec.data[end - 1] == b'\r' {
                                        end -= 1;
                                        rec.data.truncate(end);
                                    }
                                    rec.push(field_start, end, false);
                                    self.line += 1;
                                    return Ok(());
                                }
                                _ => {
                                    return Err(self.syntax(
                                        self.line,
                                        format!(
                                            "quote character in unquoted field (field {})",
                                            rec.len() + 1
                                        ),
                                    ))
                                }
                            }
                        }
                    }
                }
                ScanState::Quoted => {
                    let avail = &self.buf[self.pos..self.end];
                    match memchr::memchr2(b'"', b'\n', avail) {
                        None => {
                            rec.data.extend_from_slice(avail);
                            self.pos = self.end;
                        }
                        Some(i) => {
                            if avail[i] == b'\n' {
                                rec.data.extend_from_slice(&avail[..=i]);
                                self.line += 1;
                            } else {
                                rec.data.extend_from_slice(&avail[..i]);
                                state = ScanState::QuoteSeen;
                            }
                            self.pos += i + 1;
                        }
                    }
                }
                ScanState::QuoteSeen => {
                    let b = self.buf[self.pos];
                    self.pos += 1;
                    match b {
                        b'"' => {
                            rec.data.push(b'"');
                            state = ScanState::Quoted;
                        }
                        b',' => {
                            rec.push(field_start, rec.data.len(), true);
                            state = ScanState::FieldStart;
                        }
                        b'\n' => {
                            rec.push(field_start, rec.data.len(), true);
                            self.line += 1;
                            return Ok(());
                        }
                        b'\r' => state = ScanState::AfterQuoteCr,
                        _ => return Err(self.after_quote_error(rec, b)),
                    }
                }
                ScanState::AfterQuoteCr => {
                    let b = self.buf[self.pos];
                    self.pos += 1;
                    if b != b'\n' {
                        return Err(self.after_quote_error(rec, b'\r'));
                    }
                    rec.push(field_start, rec.data.len(), true);
                    self.line += 1;
                    return Ok(());
                }
            }
        }
    }

    fn after_quote_error(&self, rec: &RawRecord, b: u8) -> DecodeError {
        self.syntax(
            self.line,
            format!(
                "unexpected {:?} after closing quote (field {})",
                char::from(b),
                rec.len() + 1
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Binary COPY encoding
// ---------------------------------------------------------------------------------------------

/// The header of a `COPY ... (FORMAT binary)` stream: signature, flags 0, no extension.
pub const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The trailer of a `COPY ... (FORMAT binary)` stream: a field count of -1.
pub const COPY_BINARY_TRAILER: &[u8] = &[0xff, 0xff];

/// A change operation, from the DMS `Op` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new row (every row of a full load without an Op column).
    Insert,
    /// The row carries the after image.
    Update,
    /// The row carries the before image.
    Delete,
}

impl Op {
    /// `"I"`, `"U"` or `"D"`, as written to the staging table's `_op` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Insert => "I",
            Op::Update => "U",
            Op::Delete => "D",
        }
    }
}

/// Whether a file's records start with the DMS `Op` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpColumn {
    /// Always (change files).
    Present,
    /// Never: every row is an insert.
    Absent,
    /// Decide on the first record (full-load files): `ncols + 1` fields with `I` first means
    /// present, `ncols` fields means absent; later records must have the same layout.
    Detect,
}

/// What [`RowDecoder::decode`] learned about a row besides its tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedRow {
    /// The row's operation.
    pub op: Op,
    /// The value of the table's `event_id` column, if it has one and it is not NULL.
    pub event_id: Option<i64>,
}

/// Turns [`RawRecord`]s of one file into binary COPY tuples for the staging table
/// `(_seq int8, _op text, <spec columns...>)`.
pub struct RowDecoder {
    spec: std::sync::Arc<TableSpec>,
    op_column: OpColumn,
    detected: Option<bool>,
    event_id: Option<usize>,
    layout: TupleLayout,
}

/// Which table the tuples are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TupleLayout {
    /// The staging table: `_seq`, `_op`, then every column.
    Staging,
    /// The target table itself (a full-load file): every column, then the lineage
    /// columns `_delivery_id` and `_loaded_at` (microseconds since 2000-01-01 UTC). Only inserts
    /// can go straight in: a `D` row is a [`DecodeError::NeedsStaging`].
    Direct { delivery_id: i64, loaded_at: i64 },
}

/// The name reported for the Op column in errors.
const OP_NAME: &str = "Op";

impl RowDecoder {
    /// A decoder for one file of `spec`'s table. Use a new decoder per file when `op_column`
    /// is [`OpColumn::Detect`].
    pub fn new(spec: std::sync::Arc<TableSpec>, op_column: OpColumn) -> Self {
        let event_id = spec.event_id_index();
        RowDecoder {
            spec,
            op_column,
            detected: None,
            event_id,
            layout: TupleLayout::Staging,
        }
    }

    /// Chooses the table the tuples are for (staging by default).
    pub fn set_layout(&mut self, layout: TupleLayout) {
        self.layout = layout;
    }

    /// The table spec this decoder encodes for.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Whether records carry an Op column; `None` while it is still to be detected.
    pub fn has_op_column(&self) -> Option<bool> {
        match self.op_column {
            OpColumn::Present => Some(true),
            OpColumn::Absent => Some(false),
            OpColumn::Detect => self.detected,
        }
    }

    /// Appends one binary COPY tuple for the staging table to `out`: `_seq` = `seq`, `_op`,
    /// then every spec column. On error `out` is left as it was.
    pub fn decode(
        &mut self,
        rec: &RawRecord,
        seq: i64,
        out: &mut Vec<u8>,
    ) -> Result<DecodedRow, DecodeError> {
        let mark = out.len();
        let result = self.decode_inner(rec, seq, out);
        if result.is_err() {
            out.truncate(mark);
        }
        result
    }

    fn decode_inner(
        &mut self,
        rec: &RawRecord,
        seq: i64,
        out: &mut Vec<u8>,
    ) -> Result<DecodedRow, DecodeError> {
        let ncols = self.spec.columns.len();
        let has_op = match self.has_op_column() {
            Some(has) => has,
            None => {
                let has = if rec.len() == ncols + 1 && rec.field(0) == b"I" {
                    true
                } else if rec.len() == ncols {
                    false
                } else {
                    return Err(DecodeError::FieldCount {
                        line: rec.line(),
                        expected: ncols,
                        found: rec.len(),
                    });
                };
                self.detected = Some(has);
                has
            }
        };
        let offset = usize::from(has_op);
        if rec.len() != ncols + offset {
            return Err(DecodeError::FieldCount {
                line: rec.line(),
                expected: ncols + offset,
                found: rec.len(),
            });
        }

        let op = if has_op {
            match rec.field(0) {
                b"I" => Op::Insert,
                b"U" => Op::Update,
                b"D" => Op::Delete,
                other => {
                    return Err(DecodeError::Field {
                        line: rec.line(),
                        column: 1,
                        name: OP_NAME.to_string(),
                        reason: format!("invalid op {} (expected I, U or D)", quote(other)),
                    })
                }
            }
        } else {
            Op::Insert
        };

        // A Postgres table has at most 1600 columns, so this fits.
        out.extend_from_slice(&((ncols + 2) as i16).to_be_bytes());
        match self.layout {
            TupleLayout::Staging => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(op.as_str().as_bytes());
            }
            TupleLayout::Direct { .. } if op == Op::Delete => {
                return Err(DecodeError::NeedsStaging { line: rec.line() });
            }
            TupleLayout::Direct { .. } => {}
        }

        let mut event_id = None;
        for (i, col) in self.spec.columns.iter().enumerate() {
            let f = i + offset;
            let value = rec.field(f);
            let field_err = |reason: String| DecodeError::Field {
                line: rec.line(),
                column: f + 1,
                name: col.name.clone(),
                reason,
            };
            if rec.is_null(f) {
                if !col.nullable {
                    return Err(field_err("NULL in non-nullable column".to_string()));
                }
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            encode_value(&col.ty, value, out).map_err(field_err)?;
            if Some(i) == self.event_id {
                match parse_int(value) {
                    Ok(v) => event_id = Some(v),
                    Err(_) => return Err(field_err(format!("invalid event_id {}", quote(value)))),
                }
            }
        }
        if let TupleLayout::Direct {
            delivery_id,
            loaded_at,
        } = self.layout
        {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&delivery_id.to_be_bytes());
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&loaded_at.to_be_bytes());
        }
        Ok(DecodedRow { op, event_id })
    }
}

/// `"value"` for error messages: lossy UTF-8, escaped, cut to 40 characters (then `...`).
fn quote(value: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(value);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{:?}", text),
    }
}

/// Appends the length-prefixed binary encoding of a non-NULL `value` of type `ty`. Errors are
/// the `reason` of a field error.
fn encode_value(ty: &ColumnType, value: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match ty {
        ColumnType::Int2 => {
            let v = parse_int_checked(value, i64::from(i16::MIN), i64::from(i16::MAX), "smallint")?;
            out.extend_from_slice(&2i32.to_be_bytes());
            out.extend_from_slice(&(v as i16).to_be_bytes());
        }
        ColumnType::Int4 => {
            let v = parse_int_checked(value, i64::from(i32::MIN), i64::from(i32::MAX), "integer")?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&(v as i32).to_be_bytes());
        }
        ColumnType::Int8 => {
            let v = parse_int_checked(value, i64::MIN, i64::MAX, "bigint")?;
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        ColumnType::Float4 => {
            let v: f32 = parse_float(value, "real")?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        ColumnType::Float8 => {
            let v: f64 = parse_float(value, "double precision")?;
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        ColumnType::Bool => {
            let v = parse_bool(value).ok_or_else(|| format!("invalid boolean {}", quote(value)))?;
            out.extend_from_slice(&1i32.to_be_bytes());
            out.push(u8::from(v));
        }
        ColumnType::Text => encode_text(value, None, "text", out)?,
        ColumnType::Varchar(max) => encode_text(value, *max, "varchar", out)?,
        ColumnType::Bpchar(max) => encode_text(value, *max, "char", out)?,
        ColumnType::Date => {
            let (y, m, d) = (value.len() == 10)
                .then(|| parse_date(value))
                .flatten()
                .ok_or_else(|| format!("invalid date {}", quote(value)))?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&(days_since_2000(y, m, d) as i32).to_be_bytes());
        }
        ColumnType::Timestamp | ColumnType::Timestamptz => {
            let v = parse_timestamp(value)
                .ok_or_else(|| format!("invalid timestamp {}", quote(value)))?;
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        ColumnType::Numeric { precision, scale } => {
            encode_numeric(value, *precision, *scale, out)?;
        }
    }
    Ok(())
}

/// Why an integer did not parse.
#[derive(Debug, PartialEq, Eq)]
enum IntError {
    Invalid,
    Range,
}

/// Parses a decimal integer with an optional sign into an i64.
fn parse_int(value: &[u8]) -> Result<i64, IntError> {
    let (neg, digits) = match value.first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if digits.is_empty() {
        return Err(IntError::Invalid);
    }
    let mut acc: u64 = 0;
    let mut overflow = false;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(IntError::Invalid);
        }
        match acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(d)))
        {
            Some(a) => acc = a,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(IntError::Range);
    }
    if neg {
        if acc <= 1u64 << 63 {
            Ok((acc as i64).wrapping_neg())
        } else {
            Err(IntError::Range)
        }
    } else {
        i64::try_from(acc).map_err(|_| IntError::Range)
    }
}

fn parse_int_checked(value: &[u8], min: i64, max: i64, type_name: &str) -> Result<i64, String> {
    match parse_int(value) {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) | Err(IntError::Range) => Err(format!(
            "value {} out of range for {type_name}",
            quote(value)
        )),
        Err(IntError::Invalid) => Err(format!("invalid integer {}", quote(value))),
    }
}

/// Parses a float with Rust's correctly rounded parser (which also takes `inf`, `infinity` and
/// `nan` in any case); finite input that overflows to infinity is out of range.
fn parse_float<F>(value: &[u8], type_name: &str) -> Result<F, String>
where
    F: std::str::FromStr + Copy + Into<f64>,
{
    let invalid = || format!("invalid float {}", quote(value));
    let text = std::str::from_utf8(value).map_err(|_| invalid())?;
    let v: F = text.parse().map_err(|_| invalid())?;
    if v.into().is_infinite() {
        let word = text.trim_start_matches(['+', '-']);
        if !word.eq_ignore_ascii_case("inf") && !word.eq_ignore_ascii_case("infinity") {
            return Err(format!(
                "value {} out of range for {type_name}",
                quote(value)
            ));
        }
    }
    Ok(v)
}

fn parse_bool(value: &[u8]) -> Option<bool> {
    match value {
        [b] => match b.to_ascii_lowercase() {
            b't' | b'1' => Some(true),
            b'f' | b'0' => Some(false),
            _ => None,
        },
        _ if value.eq_ignore_ascii_case(b"true") => Some(true),
        _ if value.eq_ignore_ascii_case(b"false") => Some(false),
        _ => None,
    }
}

fn encode_text(
    value: &[u8],
    max_chars: Option<u32>,
    type_name: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if std::str::from_utf8(value).is_err() {
        return Err(format!("invalid UTF-8 in {}", quote(value)));
    }
    if memchr::memchr(0, value).is_some() {
        return Err(format!("NUL byte in {}", quote(value)));
    }
    if let Some(max) = max_chars {
        let max = max as usize;
        if value.len() > max {
            // Count characters: every byte that is not a UTF-8 continuation byte starts one.
            let chars = value.iter().filter(|&&b| (b & 0xc0) != 0x80).count();
            if chars > max {
                return Err(format!(
                    "value too long for {type_name}({max}): {chars} characters {}",
                    quote(value)
                ));
            }
        }
    }
    let len = i32::try_from(value.len()).map_err(|_| "value too long".to_string())?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Calendar
// ---------------------------------------------------------------------------------------------

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 2000-01-01 (the Postgres epoch) to the given proleptic Gregorian date.
fn days_since_2000(year: i32, month: u32, day: u32) -> i64 {
    // Count from a year that starts on March 1st, so the leap day is the last day of the year,
    // and in 400-year cycles of 146097 days.
    let (y, m) = if month <= 2 {
        (i64::from(year) - 1, i64::from(month) + 9)
    } else {
        (i64::from(year), i64::from(month) - 3)
    };
    let cycle = y.div_euclid(400);
    let year_of_cycle = y.rem_euclid(400);
    // Days before month m (0 = March) in a March-based year: month lengths go
    // 31 30 31 30 31 31 30 31 30 31 31 (29), which this formula reproduces.
    let day_of_year = (153 * m + 2) / 5 + i64::from(day) - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    // 0000-03-01 is day 0 of this count; 2000-01-01 is day 730425.
    cycle * 146_097 + day_of_cycle - 730_425
}

/// Two ASCII digits.
fn two_digits(b: &[u8]) -> Option<u32> {
    let (h, l) = (b[0].wrapping_sub(b'0'), b[1].wrapping_sub(b'0'));
    (h <= 9 && l <= 9).then(|| u32::from(h) * 10 + u32::from(l))
}

/// Parses and validates `YYYY-MM-DD` at the start of `b` (at least 10 bytes).
fn parse_date(b: &[u8]) -> Option<(i32, u32, u32)> {
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(&b[0..2])? * 100 + two_digits(&b[2..4])?;
    let month = two_digits(&b[5..7])?;
    let day = two_digits(&b[8..10])?;
    let year = year as i32;
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`) into microseconds since
/// 2000-01-01 00:00:00.
fn parse_timestamp(b: &[u8]) -> Option<i64> {
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = parse_date(b)?;
    let hour = two_digits(&b[11..13])?;
    let minute = two_digits(&b[14..16])?;
    let second = two_digits(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut micros: i64 = 0;
    if b.len() > 19 {
        let frac = &b[20..];
        if b[19] != b'.' || frac.is_empty() || frac.len() > 6 {
            return None;
        }
        for &c in frac {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            micros = micros * 10 + i64::from(d);
        }
        micros *= 10i64.pow(6 - frac.len() as u32);
    }
    let seconds =
        days_since_2000(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(seconds * 1_000_000 + micros)
}

// ---------------------------------------------------------------------------------------------
// Numeric
// ---------------------------------------------------------------------------------------------

/// Largest display scale Postgres accepts.
const NUMERIC_MAX_DSCALE: usize = 0x3fff;
/// Most digits Postgres accepts before the decimal point.
const NUMERIC_MAX_INT_DIGITS: usize = 131_072;

/// Encodes a decimal string as Postgres binary `numeric`.
///
/// With a scale, excess fraction digits are refused unless they are all zeros (then they are
/// dropped, which is exact); `numeric(p)` means scale 0.
fn encode_numeric(
    value: &[u8],
    precision: Option<u16>,
    scale: Option<u16>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let invalid = || format!("invalid numeric {}", quote(value));
    let (neg, body) = match value.first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let (int_part, frac_part) = match memchr::memchr(b'.', body) {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(invalid());
    }
    if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let first_sig = int_part
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(int_part.len());
    let int_digits = &int_part[first_sig..];
    let mut frac_digits = frac_part;

    let scale = scale.or(precision.map(|_| 0));
    if let Some(s) = scale {
        let s = usize::from(s);
        if frac_digits.len() > s {
            if frac_digits[s..].iter().any(|&c| c != b'0') {
                return Err(format!(
                    "numeric value {} has more than {s} fraction digits",
                    quote(value)
                ));
            }
            frac_digits = &frac_digits[..s];
        }
        if let Some(p) = precision {
            // Position of the leading significant digit: n for an n-digit integer part,
            // -z for a fraction with z leading zeros.
            let magnitude = if !int_digits.is_empty() {
                Some(int_digits.len() as i64)
            } else {
                frac_digits
                    .iter()
                    .position(|&c| c != b'0')
                    .map(|z| -(z as i64))
            };
            if magnitude.is_some_and(|m| m > i64::from(p) - s as i64) {
                return Err(format!(
                    "numeric field overflow: {} does not fit numeric({p},{s})",
                    quote(value)
                ));
            }
        }
    }
    if frac_digits.len() > NUMERIC_MAX_DSCALE || int_digits.len() > NUMERIC_MAX_INT_DIGITS {
        return Err(format!("numeric value {} out of range", quote(value)));
    }
    let dscale = frac_digits.len() as u16;

    // Lay the digits out on a grid of base-10000 groups aligned at the decimal point: `pad`
    // zeros, the integer digits, the fraction digits, zeros up to a group boundary.
    let pad = (4 - int_digits.len() % 4) % 4;
    let int_end = pad + int_digits.len();
    let int_groups = int_end / 4;
    let digit_at = |pos: usize| -> u16 {
        if pos < pad {
            0
        } else if pos < int_end {
            u16::from(int_digits[pos - pad] - b'0')
        } else if pos < int_end + frac_digits.len() {
            u16::from(frac_digits[pos - int_end] - b'0')
        } else {
            0
        }
    };
    let first_nonzero = if !int_digits.is_empty() {
        Some(pad)
    } else {
        frac_digits
            .iter()
            .position(|&c| c != b'0')
            .map(|i| int_end + i)
    };
    let Some(first_nonzero) = first_nonzero else {
        // Zero: no digits, weight 0, positive, keeping the written scale.
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        return Ok(());
    };
    let last_nonzero = match frac_digits.iter().rposition(|&c| c != b'0') {
        Some(i) => int_end + i,
        None => pad + int_digits.iter().rposition(|&c| c != b'0').unwrap_or(0),
    };
    let first_group = first_nonzero / 4;
    let last_group = last_nonzero / 4;
    let ndigits = last_group - first_group + 1;
    let weight = int_groups as i64 - 1 - first_group as i64;
    let ndigits16 = i16::try_from(ndigits)
        .map_err(|_| format!("numeric value {} out of range", quote(value)))?;
    let len = 8 + 2 * ndigits as i32;

    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&ndigits16.to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&(if neg { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in first_group..=last_group {
        let base = g * 4;
        let group = digit_at(base) * 1000
            + digit_at(base + 1) * 100
            + digit_at(base + 2) * 10
            + digit_at(base + 3);
        out.extend_from_slice(&group.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    // -----------------------------------------------------------------------------------------
    // Keys
    // -----------------------------------------------------------------------------------------

    fn key(bucket_path: &str, key: &str) -> DmsObject {
        parse_object_key(bucket_path, key).unwrap_or_else(|| panic!("{key} should parse"))
    }

    #[test]
    fn load_keys_parse_hex_sequence() {
        let o = key("data", "data/dbo/orders/LOAD00000001.csv.gz");
        assert_eq!(o.key, "data/dbo/orders/LOAD00000001.csv.gz");
        assert_eq!(o.schema, "dbo");
        assert_eq!(o.table, "orders");
        assert_eq!(o.kind, FileKind::Load { seq: 1 });
        assert_eq!(o.compression, Compression::Gzip);
        assert!(o.kind.is_load());
        assert_eq!(o.kind.op_column(), OpColumn::Detect);

        assert_eq!(
            key("", "s/t/LOAD0000000A.csv.gz").kind,
            FileKind::Load { seq: 10 }
        );
        assert_eq!(
            key("", "s/t/LOAD0000000a.csv.gz").kind,
            FileKind::Load { seq: 10 }
        );
        assert_eq!(
            key("", "s/t/LOADFFFFFFFF.csv.gz").kind,
            FileKind::Load { seq: u32::MAX }
        );
    }

    #[test]
    fn load_files_order_by_hex_value() {
        let mut objs: Vec<DmsObject> = [
            "s/t/LOAD00000010.csv.gz",
            "s/t/LOAD0000000A.csv.gz",
            "s/t/LOAD00000009.csv.gz",
            "s/t/LOAD00000001.csv.gz",
            "s/t/LOAD0000000B.csv.gz",
        ]
        .iter()
        .map(|k| key("", k))
        .collect();
        objs.sort();
        let names: Vec<&str> = objs.iter().map(|o| &o.key[4..16]).collect();
        assert_eq!(
            names,
            [
                "LOAD00000001",
                "LOAD00000009",
                "LOAD0000000A",
                "LOAD0000000B",
                "LOAD00000010"
            ]
        );
    }

    #[test]
    fn cdc_keys_with_and_without_date_folders() {
        let o = key("data", "data/dbo/orders/20220922-095853123.csv.gz");
        assert_eq!(
            o.kind,
            FileKind::Cdc {
                stamp: 20220922095853123
            }
        );
        assert_eq!(o.compression, Compression::Gzip);
        assert_eq!(o.kind.op_column(), OpColumn::Present);
        assert!(!o.kind.is_load());

        let o = key(
            "data",
            "data/dbo/orders/2022/09/22/20220922-095853123.csv.gz",
        );
        assert_eq!((o.schema.as_str(), o.table.as_str()), ("dbo", "orders"));
        assert_eq!(
            o.kind,
            FileKind::Cdc {
                stamp: 20220922095853123
            }
        );

        // Folders follow DMS's partition time zone, so they need not match the file name.
        let o = key("", "dbo/orders/2022/09/21/20220922-005853123.csv");
        assert_eq!(
            o.kind,
            FileKind::Cdc {
                stamp: 20220922005853123
            }
        );
        assert_eq!(o.compression, Compression::None);

        // Leap day and the edges of every field.
        assert!(parse_object_key("", "s/t/20240229-000000000.csv.gz").is_some());
        assert!(parse_object_key("", "s/t/20221231-235959999.csv.gz").is_some());
    }

    #[test]
    fn uncompressed_csv_is_accepted() {
        let o = key("data/", "data/s/t/LOAD00000002.csv");
        assert_eq!(o.compression, Compression::None);
        assert_eq!(o.kind, FileKind::Load { seq: 2 });
    }

    #[test]
    fn bucket_path_variants() {
        for (bp, k) in [
            ("", "dbo/orders/LOAD00000001.csv.gz"),
            ("/", "dbo/orders/LOAD00000001.csv.gz"),
            ("data", "data/dbo/orders/LOAD00000001.csv.gz"),
            ("data/", "data/dbo/orders/LOAD00000001.csv.gz"),
            ("/data/", "data/dbo/orders/LOAD00000001.csv.gz"),
            ("a/b", "a/b/dbo/orders/LOAD00000001.csv.gz"),
            (
                "a/b/",
                "a/b/dbo/orders/2022/01/02/20220102-030405006.csv.gz",
            ),
        ] {
            let o = parse_object_key(bp, k).unwrap_or_else(|| panic!("{bp:?} {k:?}"));
            assert_eq!((o.schema.as_str(), o.table.as_str()), ("dbo", "orders"));
            assert_eq!(o.key, k);
        }
    }

    #[test]
    fn rejected_keys() {
        for (bp, k) in [
            // Wrong prefix.
            ("data", "other/dbo/orders/LOAD00000001.csv.gz"),
            ("data", "database/dbo/orders/LOAD00000001.csv.gz"),
            ("data", "dbo/orders/LOAD00000001.csv.gz"),
            ("a/b", "a/dbo/orders/LOAD00000001.csv.gz"),
            // Nested too shallow or too deep.
            ("", "dbo/orders/x/LOAD00000001.csv.gz"),
            ("", "orders/LOAD00000001.csv.gz"),
            ("", "LOAD00000001.csv.gz"),
            ("", "dbo//LOAD00000001.csv.gz"),
            ("", "/dbo/orders/LOAD00000001.csv.gz"),
            ("", "dbo/orders/2022/09/22/x/20220922-095853123.csv.gz"),
            // Other files.
            ("", "dbo/orders/LOAD00000001.json"),
            ("", "dbo/orders/LOAD00000001.csv.gz.tmp"),
            ("", "dbo/orders/LOAD00000001.parquet"),
            ("", "dbo/orders/LOAD00000001"),
            ("", "dbo/orders/20220922-095853123.json"),
            ("", "dbo/orders/"),
            ("", "dbo/orders/README.csv"),
            // Malformed LOAD names.
            ("", "dbo/orders/LOAD0000001.csv.gz"),
            ("", "dbo/orders/LOAD000000001.csv.gz"),
            ("", "dbo/orders/LOAD0000000G.csv.gz"),
            ("", "dbo/orders/load00000001.csv.gz"),
            ("", "dbo/orders/LOAD+0000001.csv.gz"),
            ("", "dbo/orders/2022/09/22/LOAD00000001.csv.gz"),
            // Malformed or invalid CDC names.
            ("", "dbo/orders/20220922095853123.csv.gz"),
            ("", "dbo/orders/20220922-09585312.csv.gz"),
            ("", "dbo/orders/20220922-0958531234.csv.gz"),
            ("", "dbo/orders/2022092a-095853123.csv.gz"),
            ("", "dbo/orders/20221322-095853123.csv.gz"),
            ("", "dbo/orders/20220022-095853123.csv.gz"),
            ("", "dbo/orders/20220900-095853123.csv.gz"),
            ("", "dbo/orders/20220931-095853123.csv.gz"),
            ("", "dbo/orders/20230229-095853123.csv.gz"),
            ("", "dbo/orders/20220922-245853123.csv.gz"),
            ("", "dbo/orders/20220922-096053123.csv.gz"),
            ("", "dbo/orders/20220922-095860123.csv.gz"),
            ("", "dbo/orders/00000922-095853123.csv.gz"),
            // Bad date folders.
            ("", "dbo/orders/22/09/22/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/9/22/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/09/2/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/09/xx/20220922-095853123.csv.gz"),
            ("", "dbo/orders/2022/09/20220922-095853123.csv.gz"),
        ] {
            assert!(
                parse_object_key(bp, k).is_none(),
                "{bp:?} {k:?} should be rejected"
            );
        }
    }

    #[test]
    fn stream_order_loads_then_cdc_then_key() {
        let keys = [
            "s/t/2022/09/22/20220922-095853123.csv.gz",
            "s/t/20220101-000000000.csv.gz",
            "s/t/LOAD00000002.csv.gz",
            "s/t/20220922-095853123.csv",
            "s/t/LOAD00000001.csv.gz",
            "s/a/20200101-000000000.csv.gz",
            "r/z/LOAD00000003.csv.gz",
            "s/t/20220922-095853122.csv.gz",
        ];
        let mut objs: Vec<DmsObject> = keys.iter().map(|k| key("", k)).collect();
        objs.sort();
        let sorted: Vec<&str> = objs.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            sorted,
            [
                "r/z/LOAD00000003.csv.gz",
                "s/a/20200101-000000000.csv.gz",
                "s/t/LOAD00000001.csv.gz",
                "s/t/LOAD00000002.csv.gz",
                "s/t/20220101-000000000.csv.gz",
                "s/t/20220922-095853122.csv.gz",
                // Same stamp: by key.
                "s/t/2022/09/22/20220922-095853123.csv.gz",
                "s/t/20220922-095853123.csv",
            ]
        );

        let load = key("", "s/t/LOADFFFFFFFF.csv.gz");
        let cdc = key("", "s/t/00010101-000000000.csv.gz");
        assert!(load < cdc);
        assert!(load.stream_order() < cdc.stream_order());
        assert_eq!(load, load.clone());
        assert_ne!(load, cdc);
    }

    // -----------------------------------------------------------------------------------------
    // Scanner
    // -----------------------------------------------------------------------------------------

    /// (line, fields as (text, quoted)) per record.
    type Scanned = Vec<(u64, Vec<(String, bool)>)>;

    fn scan_with(input: &[u8], capacity: usize) -> Result<Scanned, DecodeError> {
        let mut scanner = CsvScanner::with_capacity(input, capacity);
        let mut rec = RawRecord::new();
        let mut out = Vec::new();
        while scanner.next_record(&mut rec)? {
            let fields = (0..rec.len())
                .map(|i| {
                    (
                        String::from_utf8(rec.field(i).to_vec()).unwrap(),
                        rec.is_quoted(i),
                    )
                })
                .collect();
            out.push((rec.line(), fields));
        }
        // Once at the end, stays at the end.
        assert!(!scanner.next_record(&mut rec)?);
        Ok(out)
    }

    /// Scans with several buffer sizes (so records straddle refills at every offset) and
    /// checks they all agree.
    fn scan(input: &str) -> Result<Scanned, DecodeError> {
        let reference = scan_with(input.as_bytes(), DEFAULT_SCAN_BUFFER);
        for cap in [1, 2, 3, 4, 5, 7, 8, 13, 64] {
            let other = scan_with(input.as_bytes(), cap);
            match (&reference, &other) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "capacity {cap}, input {input:?}"),
                (Err(a), Err(b)) => {
                    assert_eq!(
                        a.to_string(),
                        b.to_string(),
                        "capacity {cap}, input {input:?}"
                    )
                }
                _ => panic!("capacity {cap} disagrees: {reference:?} vs {other:?}"),
            }
        }
        reference
    }

    fn f(text: &str, quoted: bool) -> (String, bool) {
        (text.to_string(), quoted)
    }

    fn u(text: &str) -> (String, bool) {
        f(text, false)
    }

    fn q(text: &str) -> (String, bool) {
        f(text, true)
    }

    #[test]
    fn scan_plain_rows() {
        let got = scan("I,1,abc\nU,2,def\n").unwrap();
        assert_eq!(
            got,
            vec![
                (1, vec![u("I"), u("1"), u("abc")]),
                (2, vec![u("U"), u("2"), u("def")]),
            ]
        );
    }

    #[test]
    fn scan_empty_file_has_no_records() {
        assert_eq!(scan("").unwrap(), vec![]);
    }

    #[test]
    fn scan_missing_final_newline() {
        assert_eq!(
            scan("a,b\nc,d").unwrap(),
            vec![(1, vec![u("a"), u("b")]), (2, vec![u("c"), u("d")])]
        );
        assert_eq!(scan("a,\"b\"").unwrap(), vec![(1, vec![u("a"), q("b")])]);
        assert_eq!(scan("a,").unwrap(), vec![(1, vec![u("a"), u("")])]);
    }

    #[test]
    fn scan_null_versus_empty_string() {
        let got = scan(",\"\",x,\n\n\"\"\n").unwrap();
        assert_eq!(
            got,
            vec![
                (1, vec![u(""), q(""), u("x"), u("")]),
                (2, vec![u("")]),
                (3, vec![q("")]),
            ]
        );
        let mut scanner = CsvScanner::new(&b",\"\"\n"[..]);
        let mut rec = RawRecord::new();
        assert!(rec.is_empty());
        assert!(scanner.next_record(&mut rec).unwrap());
        assert!(!rec.is_empty());
        assert!(rec.is_null(0));
        assert!(!rec.is_null(1));
    }

    #[test]
    fn scan_quoted_commas_and_escaped_quotes() {
        let got = scan("\"a,b\",\"say \"\"hi\"\"\",\"\"\"\",\"\"\"\"\"\"\n").unwrap();
        assert_eq!(
            got,
            vec![(1, vec![q("a,b"), q("say \"hi\""), q("\""), q("\"\"")])]
        );
    }

    #[test]
    fn scan_unquoted_fields_are_verbatim() {
        let got = scan(" a , b\t,c\rd\n").unwrap();
        assert_eq!(got, vec![(1, vec![u(" a "), u(" b\t"), u("c\rd")])]);
    }

    #[test]
    fn scan_embedded_newlines_keep_line_numbers() {
        let input = "1,\"two\nlines\"\n2,\"three\r\nlines\nhere\"\n3,x\n4,\"\n\"\n5,y";
        let got = scan(input).unwrap();
        assert_eq!(
            got,
            vec![
                (1, vec![u("1"), q("two\nlines")]),
                (3, vec![u("2"), q("three\r\nlines\nhere")]),
                (6, vec![u("3"), u("x")]),
                (7, vec![u("4"), q("\n")]),
                (9, vec![u("5"), u("y")]),
            ]
        );
    }

    #[test]
    fn scan_crlf_rows() {
        let got = scan("a,b\r\n\"c\",\"d\"\r\n,\r\n\r\ne,\"f\ng\"\r\nh").unwrap();
        assert_eq!(
            got,
            vec![
                (1, vec![u("a"), u("b")]),
                (2, vec![q("c"), q("d")]),
                (3, vec![u(""), u("")]),
                (4, vec![u("")]),
                (5, vec![u("e"), q("f\ng")]),
                (7, vec![u("h")]),
            ]
        );
    }

    #[test]
    fn scan_multibyte_utf8() {
        let got = scan("ünïcödé,\"日本語, テキスト\",😀\n").unwrap();
        assert_eq!(
            got,
            vec![(1, vec![u("ünïcödé"), q("日本語, テキスト"), u("😀")])]
        );
    }

    #[test]
    fn scan_unterminated_quote() {
        let err = scan("a,b\nc,\"open\nstill open").unwrap_err();
        assert!(
            matches!(err, DecodeError::Syntax { line: 2, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "line 2: unterminated quoted field (field 2)"
        );
        assert!(scan("\"").is_err());
        assert!(scan("\"abc\"\"").is_err());
    }

    #[test]
    fn scan_stray_quote_in_unquoted_field() {
        let err = scan("a,b\nc,d\"e\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: quote character in unquoted field (field 2)"
        );
        // Also caught when the line otherwise looks plain.
        assert!(scan("ab\"\n").is_err());
    }

    #[test]
    fn scan_text_after_closing_quote() {
        let err = scan("x\n\"a\nb\"c,d\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: unexpected 'c' after closing quote (field 1)"
        );
        let err = scan("\"a\" ,b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: unexpected ' ' after closing quote (field 1)"
        );
        let err = scan("\"a\"\rb\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: unexpected '\\r' after closing quote (field 1)"
        );
    }

    #[test]
    fn scan_records_longer_than_buffer() {
        let long = "x".repeat(1000);
        let input = format!("{long},\"{long}\"\"\n{long}\"\nshort\n");
        let got = scan(&input).unwrap();
        assert_eq!(
            got,
            vec![
                (1, vec![u(&long), q(&format!("{long}\"\n{long}"))]),
                (3, vec![u("short")]),
            ]
        );
    }

    #[test]
    fn scan_many_records_across_default_buffer() {
        // About 1 MiB of rows, so several refills of the default buffer with rows straddling
        // the refill points; every third row has quotes to take the slow path.
        let mut input = String::new();
        for i in 0..40_000u64 {
            if i.is_multiple_of(3) {
                input.push_str(&format!("{i},\"q,{i}\",\r\n"));
            } else {
                input.push_str(&format!("{i},plain text {i},z\n"));
            }
        }
        let mut scanner = CsvScanner::new(input.as_bytes());
        let mut rec = RawRecord::new();
        let mut n = 0u64;
        while scanner.next_record(&mut rec).unwrap() {
            assert_eq!(rec.line(), n + 1);
            assert_eq!(rec.field(0), n.to_string().as_bytes());
            assert_eq!(rec.len(), 3);
            if n.is_multiple_of(3) {
                assert_eq!(rec.field(1), format!("q,{n}").as_bytes());
                assert!(rec.is_null(2));
            } else {
                assert_eq!(rec.field(1), format!("plain text {n}").as_bytes());
                assert_eq!(rec.field(2), b"z");
            }
            n += 1;
        }
        assert_eq!(n, 40_000);
        assert_eq!(scanner.line(), 40_001);
    }

    /// A reader handing out one byte per call, with an `Interrupted` error between calls.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            if self.data.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.data[0];
            self.data = &self.data[1..];
            Ok(1)
        }
    }

    #[test]
    fn scan_trickling_reader() {
        let input = b"a,\"b\nc\"\nd,e\n";
        let mut scanner = CsvScanner::new(Trickle {
            data: input,
            interrupt: false,
        });
        let mut rec = RawRecord::new();
        assert!(scanner.next_record(&mut rec).unwrap());
        assert_eq!((rec.field(0), rec.field(1)), (&b"a"[..], &b"b\nc"[..]));
        assert!(scanner.next_record(&mut rec).unwrap());
        assert_eq!(rec.line(), 3);
        assert_eq!((rec.field(0), rec.field(1)), (&b"d"[..], &b"e"[..]));
        assert!(!scanner.next_record(&mut rec).unwrap());
    }

    #[test]
    fn scan_io_errors_pass_through() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut scanner = CsvScanner::new(Broken);
        let err = scanner.next_record(&mut RawRecord::new()).unwrap_err();
        assert!(matches!(err, DecodeError::Io(_)));
        assert_eq!(err.to_string(), "disk on fire");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn scan_gzip_and_gzip_corruption() {
        let plain: String = (0..5000).map(|i| format!("{i},row {i}\n")).collect();
        let gz = gzip(plain.as_bytes());

        let mut scanner = CsvScanner::new(flate2::read::GzDecoder::new(&gz[..]));
        let mut rec = RawRecord::new();
        let mut n = 0;
        while scanner.next_record(&mut rec).unwrap() {
            n += 1;
        }
        assert_eq!(n, 5000);

        // Corrupt the deflate stream.
        let mut bad = gz.clone();
        for b in &mut bad[20..60] {
            *b ^= 0x55;
        }
        let mut scanner = CsvScanner::new(flate2::read::GzDecoder::new(&bad[..]));
        let err = loop {
            match scanner.next_record(&mut rec) {
                Ok(true) => continue,
                Ok(false) => panic!("corruption not detected"),
                Err(e) => break e,
            }
        };
        let DecodeError::Io(io) = &err else {
            panic!("expected an io error, got {err:?}");
        };
        assert_eq!(err.to_string(), io.to_string());

        // Truncated file.
        let truncated = &gz[..gz.len() / 2];
        let mut scanner = CsvScanner::new(flate2::read::GzDecoder::new(truncated));
        let err = loop {
            match scanner.next_record(&mut rec) {
                Ok(true) => continue,
                Ok(false) => panic!("truncation not detected"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, DecodeError::Io(_)), "{err:?}");
    }

    #[test]
    fn scanner_reuses_record_buffers() {
        let input = "aaaa,bbbb,cccc\n".repeat(100);
        let mut scanner = CsvScanner::new(input.as_bytes());
        let mut rec = RawRecord::new();
        assert!(scanner.next_record(&mut rec).unwrap());
        let (data_ptr, fields_ptr) = (rec.data.as_ptr(), rec.fields.as_ptr());
        while scanner.next_record(&mut rec).unwrap() {
            assert_eq!(rec.data.as_ptr(), data_ptr);
            assert_eq!(rec.fields.as_ptr(), fields_ptr);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Decoder
    // -----------------------------------------------------------------------------------------

    fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
        Column {
            name: name.to_string(),
            ty,
            nullable,
        }
    }

    fn spec(columns: Vec<Column>) -> Arc<TableSpec> {
        Arc::new(TableSpec {
            name: "orders".to_string(),
            columns,
            key: vec![0],
        })
    }

    /// Decodes every record of `csv`, returning the rows and the concatenated tuples.
    fn decode_all(
        decoder: &mut RowDecoder,
        csv: &str,
    ) -> Result<(Vec<DecodedRow>, Vec<u8>), DecodeError> {
        let mut scanner = CsvScanner::new(csv.as_bytes());
        let mut rec = RawRecord::new();
        let mut out = Vec::new();
        let mut rows = Vec::new();
        let mut seq = 100;
        while scanner.next_record(&mut rec)? {
            rows.push(decoder.decode(&rec, seq, &mut out)?);
            seq += 1;
        }
        Ok((rows, out))
    }

    #[test]
    fn direct_layout_writes_columns_then_lineage_and_refuses_deletes() {
        let spec = spec(vec![
            col("id", ColumnType::Int4, false),
            col("name", ColumnType::Text, true),
        ]);
        let mut decoder = RowDecoder::new(spec.clone(), OpColumn::Detect);
        decoder.set_layout(TupleLayout::Direct {
            delivery_id: 7,
            loaded_at: 1_000,
        });
        let (_, bytes) = decode_all(&mut decoder, "I,1,a\nU,2,\n").unwrap();
        let tuples = parse_tuples(&bytes);
        assert_eq!(tuples.len(), 2);
        for t in &tuples {
            assert_eq!(t.len(), 4, "columns, _delivery_id, _loaded_at");
            assert_eq!(t[2].as_deref(), Some(&7i64.to_be_bytes()[..]));
            assert_eq!(t[3].as_deref(), Some(&1_000i64.to_be_bytes()[..]));
        }
        assert_eq!(tuples[0][0].as_deref(), Some(&1i32.to_be_bytes()[..]));
        assert_eq!(tuples[1][1], None);

        let mut decoder = RowDecoder::new(spec, OpColumn::Detect);
        decoder.set_layout(TupleLayout::Direct {
            delivery_id: 7,
            loaded_at: 0,
        });
        match decode_all(&mut decoder, "I,1,a\nD,1,a\n") {
            Err(DecodeError::NeedsStaging { line: 2 }) => {}
            other => panic!("{other:?}"),
        }
    }

    /// Splits concatenated tuples into their fields (None = NULL).
    fn parse_tuples(mut bytes: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut tuples = Vec::new();
        while !bytes.is_empty() {
            let n = i16::from_be_bytes([bytes[0], bytes[1]]);
            bytes = &bytes[2..];
            let mut fields = Vec::new();
            for _ in 0..n {
                let len = i32::from_be_bytes(bytes[..4].try_into().unwrap());
                bytes = &bytes[4..];
                if len < 0 {
                    assert_eq!(len, -1);
                    fields.push(None);
                } else {
                    fields.push(Some(bytes[..len as usize].to_vec()));
                    bytes = &bytes[len as usize..];
                }
            }
            tuples.push(fields);
        }
        tuples
    }

    /// Encodes one field of type `ty` (written as CSV, quotes included) in a nullable
    /// one-column table and returns the value's bytes.
    fn encode_one(ty: ColumnType, csv_field: &str) -> Result<Option<Vec<u8>>, DecodeError> {
        let mut decoder = RowDecoder::new(spec(vec![col("v", ty, true)]), OpColumn::Absent);
        let (_, out) = decode_all(&mut decoder, &format!("{csv_field}\n"))?;
        let mut tuples = parse_tuples(&out);
        assert_eq!(tuples.len(), 1);
        assert_eq!(tuples[0].len(), 3);
        Ok(tuples[0].pop().unwrap())
    }

    /// `v` as a CSV field: quoted when it holds a comma.
    fn csv(v: &str) -> String {
        if v.contains(',') {
            format!("\"{v}\"")
        } else {
            v.to_string()
        }
    }

    fn ok(ty: ColumnType, csv_field: &str) -> Vec<u8> {
        encode_one(ty.clone(), csv_field)
            .unwrap_or_else(|e| panic!("{ty:?} {csv_field:?}: {e}"))
            .unwrap_or_else(|| panic!("{ty:?} {csv_field:?} gave NULL"))
    }

    /// The reason of the field error for a bad value.
    fn bad(ty: ColumnType, csv_field: &str) -> String {
        match encode_one(ty.clone(), csv_field) {
            Err(DecodeError::Field { reason, column, .. }) => {
                assert_eq!(column, 1);
                reason
            }
            other => panic!("{ty:?} {csv_field:?}: expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn copy_header_and_trailer() {
        assert_eq!(COPY_BINARY_HEADER.len(), 19);
        assert_eq!(&COPY_BINARY_HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&COPY_BINARY_HEADER[11..], &[0u8; 8]);
        assert_eq!(COPY_BINARY_TRAILER, &[0xff, 0xff]);
    }

    #[test]
    fn op_strings() {
        assert_eq!(Op::Insert.as_str(), "I");
        assert_eq!(Op::Update.as_str(), "U");
        assert_eq!(Op::Delete.as_str(), "D");
    }

    #[test]
    fn tuple_layout_with_seq_and_op() {
        let s = spec(vec![
            col("id", ColumnType::Int4, false),
            col("name", ColumnType::Text, true),
        ]);
        let mut decoder = RowDecoder::new(s, OpColumn::Present);
        assert_eq!(decoder.has_op_column(), Some(true));
        let (rows, out) = decode_all(&mut decoder, "I,7,ab\nU,8,\nD,9,\"\"\n").unwrap();
        assert_eq!(
            rows.iter().map(|r| r.op).collect::<Vec<_>>(),
            [Op::Insert, Op::Update, Op::Delete]
        );
        assert!(rows.iter().all(|r| r.event_id.is_none()));

        let mut expected = Vec::new();
        // Row 1.
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 100]);
        expected.extend_from_slice(&[0, 0, 0, 1, b'I']);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        // Row 2: NULL name.
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 101]);
        expected.extend_from_slice(&[0, 0, 0, 1, b'U']);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 8]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        // Row 3: empty-string name.
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 102]);
        expected.extend_from_slice(&[0, 0, 0, 1, b'D']);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 9]);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(out, expected);
    }

    #[test]
    fn negative_seq() {
        let mut decoder = RowDecoder::new(
            spec(vec![col("v", ColumnType::Int2, true)]),
            OpColumn::Absent,
        );
        let mut scanner = CsvScanner::new(&b"1\n"[..]);
        let mut rec = RawRecord::new();
        scanner.next_record(&mut rec).unwrap();
        let mut out = Vec::new();
        decoder.decode(&rec, -2, &mut out).unwrap();
        assert_eq!(
            parse_tuples(&out)[0][0],
            Some((-2i64).to_be_bytes().to_vec())
        );
    }

    #[test]
    fn absent_op_column_means_insert() {
        let s = spec(vec![col("a", ColumnType::Text, true)]);
        let mut decoder = RowDecoder::new(s, OpColumn::Absent);
        assert_eq!(decoder.has_op_column(), Some(false));
        let (rows, out) = decode_all(&mut decoder, "D\nU\n").unwrap();
        assert!(rows.iter().all(|r| r.op == Op::Insert));
        let tuples = parse_tuples(&out);
        assert_eq!(tuples[0][1], Some(b"I".to_vec()));
        assert_eq!(tuples[0][2], Some(b"D".to_vec()));
        assert_eq!(tuples[1][2], Some(b"U".to_vec()));
    }

    fn two_cols() -> Arc<TableSpec> {
        spec(vec![
            col("id", ColumnType::Int8, false),
            col("note", ColumnType::Text, true),
        ])
    }

    #[test]
    fn detect_op_column_present() {
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
        assert_eq!(decoder.has_op_column(), None);
        let (rows, out) = decode_all(&mut decoder, "I,1,a\nI,2,b\n").unwrap();
        assert_eq!(decoder.has_op_column(), Some(true));
        assert_eq!(rows.len(), 2);
        let tuples = parse_tuples(&out);
        assert_eq!(tuples[1][2], Some(2i64.to_be_bytes().to_vec()));
        assert_eq!(tuples[1][3], Some(b"b".to_vec()));

        // A later record without the Op column breaks the layout.
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
        let err = decode_all(&mut decoder, "I,1,a\n2,b\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: expected 3 fields, found 2");
    }

    #[test]
    fn detect_op_column_absent() {
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
        let (rows, out) = decode_all(&mut decoder, "1,a\n2,I\n").unwrap();
        assert_eq!(decoder.has_op_column(), Some(false));
        assert!(rows.iter().all(|r| r.op == Op::Insert));
        assert_eq!(parse_tuples(&out)[1][3], Some(b"I".to_vec()));

        // A later record with an extra field breaks the layout.
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
        let err = decode_all(&mut decoder, "1,a\nI,2,b\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: expected 2 fields, found 3");
    }

    #[test]
    fn detect_op_column_unrecognised_first_record() {
        // ncols + 1 fields but not starting with I: not a layout we know.
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
        let err = decode_all(&mut decoder, "X,1,a\n").unwrap_err();
        assert_eq!(err.to_string(), "line 1: expected 2 fields, found 3");
        assert_eq!(decoder.has_op_column(), None);

        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Detect);
        let err = decode_all(&mut decoder, "1\n").unwrap_err();
        assert!(matches!(
            err,
            DecodeError::FieldCount {
                line: 1,
                expected: 2,
                found: 1
            }
        ));
    }

    #[test]
    fn invalid_op() {
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
        let err = decode_all(&mut decoder, "I,1,a\nX,2,b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 1 (Op): invalid op \"X\" (expected I, U or D)"
        );
        let err = decode_all(&mut decoder, ",2,b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1 (Op): invalid op \"\" (expected I, U or D)"
        );
        let err = decode_all(&mut decoder, "ins,2,b\n").unwrap_err();
        assert!(matches!(err, DecodeError::Field { column: 1, ref name, .. } if name == "Op"));
    }

    #[test]
    fn field_count_mismatch() {
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
        let err = decode_all(&mut decoder, "I,1,a\n\nI,1,a,b\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: expected 3 fields, found 1");
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Absent);
        let err = decode_all(&mut decoder, "1,\"x\ny\"\n1,a,b\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: expected 2 fields, found 3");
    }

    #[test]
    fn null_handling() {
        // NULL in a nullable column of any type.
        for ty in [
            ColumnType::Int4,
            ColumnType::Text,
            ColumnType::Date,
            ColumnType::Numeric {
                precision: None,
                scale: None,
            },
        ] {
            assert_eq!(encode_one(ty, "").unwrap(), None);
        }
        // "" is the empty string for text types...
        assert_eq!(ok(ColumnType::Text, "\"\""), b"");
        assert_eq!(ok(ColumnType::Varchar(Some(3)), "\"\""), b"");
        assert_eq!(ok(ColumnType::Bpchar(Some(3)), "\"\""), b"");
        // ...and an invalid value for the others.
        assert_eq!(bad(ColumnType::Int4, "\"\""), "invalid integer \"\"");
        assert_eq!(bad(ColumnType::Bool, "\"\""), "invalid boolean \"\"");
        assert_eq!(bad(ColumnType::Date, "\"\""), "invalid date \"\"");
        assert_eq!(bad(ColumnType::Timestamp, "\"\""), "invalid timestamp \"\"");
        assert_eq!(bad(ColumnType::Float8, "\"\""), "invalid float \"\"");
        assert_eq!(
            bad(
                ColumnType::Numeric {
                    precision: None,
                    scale: None
                },
                "\"\""
            ),
            "invalid numeric \"\""
        );
        // A quoted non-empty value is fine for any type.
        assert_eq!(ok(ColumnType::Int4, "\"5\""), 5i32.to_be_bytes());
    }

    #[test]
    fn null_in_non_nullable_column() {
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
        let err = decode_all(&mut decoder, "I,1,a\nU,,b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 2 (id): NULL in non-nullable column"
        );
        // A non-nullable text column accepts "".
        let s = spec(vec![col("t", ColumnType::Text, false)]);
        let mut decoder = RowDecoder::new(s, OpColumn::Absent);
        assert!(decode_all(&mut decoder, "\"\"\n").is_ok());
        assert!(decode_all(&mut decoder, "\n").is_err());
    }

    #[test]
    fn error_leaves_output_untouched() {
        let mut decoder = RowDecoder::new(two_cols(), OpColumn::Present);
        let mut scanner = CsvScanner::new(&b"I,1,a\nI,x,b\n"[..]);
        let mut rec = RawRecord::new();
        let mut out = Vec::new();
        scanner.next_record(&mut rec).unwrap();
        decoder.decode(&rec, 1, &mut out).unwrap();
        let before = out.clone();
        scanner.next_record(&mut rec).unwrap();
        assert!(decoder.decode(&rec, 2, &mut out).is_err());
        assert_eq!(out, before);
    }

    #[test]
    fn error_columns_count_the_op_column() {
        let s = spec(vec![
            col("id", ColumnType::Int4, false),
            col("amount", ColumnType::Int2, true),
        ]);
        let mut decoder = RowDecoder::new(s.clone(), OpColumn::Present);
        let err = decode_all(&mut decoder, "I,1,2\n\nI,1,\"12x\"\n").unwrap_err();
        // (the blank line is a 1-field record, so it is reported first)
        assert_eq!(err.to_string(), "line 2: expected 3 fields, found 1");
        let err = decode_all(&mut decoder, "I,1,2\nI,1,12x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 3 (amount): invalid integer \"12x\""
        );
        let mut decoder = RowDecoder::new(s, OpColumn::Absent);
        let err = decode_all(&mut decoder, "\"multi\nline\",2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1 (id): invalid integer \"multi\\nline\""
        );
    }

    #[test]
    fn error_values_are_truncated() {
        let long = "9".repeat(45) + "x";
        let reason = bad(ColumnType::Int8, &long);
        assert_eq!(reason, format!("invalid integer \"{}\"...", "9".repeat(40)));
        // Exactly 40 characters: no ellipsis. Multi-byte characters count as one.
        let forty = "é".repeat(39) + "x";
        assert_eq!(
            bad(ColumnType::Int8, &forty),
            format!("invalid integer \"{forty}\"")
        );
    }

    #[test]
    fn integers() {
        assert_eq!(ok(ColumnType::Int2, "-32768"), (-32768i16).to_be_bytes());
        assert_eq!(ok(ColumnType::Int2, "+32767"), 32767i16.to_be_bytes());
        assert_eq!(ok(ColumnType::Int2, "0"), [0, 0]);
        assert_eq!(ok(ColumnType::Int4, "-2147483648"), i32::MIN.to_be_bytes());
        assert_eq!(ok(ColumnType::Int4, "2147483647"), i32::MAX.to_be_bytes());
        assert_eq!(ok(ColumnType::Int4, "007"), 7i32.to_be_bytes());
        assert_eq!(ok(ColumnType::Int4, "-0"), 0i32.to_be_bytes());
        assert_eq!(
            ok(ColumnType::Int8, "-9223372036854775808"),
            i64::MIN.to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Int8, "9223372036854775807"),
            i64::MAX.to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Int8, "00000000000000000000000000042"),
            42i64.to_be_bytes()
        );

        assert_eq!(
            bad(ColumnType::Int2, "32768"),
            "value \"32768\" out of range for smallint"
        );
        assert_eq!(
            bad(ColumnType::Int2, "-32769"),
            "value \"-32769\" out of range for smallint"
        );
        assert_eq!(
            bad(ColumnType::Int4, "2147483648"),
            "value \"2147483648\" out of range for integer"
        );
        assert_eq!(
            bad(ColumnType::Int8, "9223372036854775808"),
            "value \"9223372036854775808\" out of range for bigint"
        );
        assert_eq!(
            bad(ColumnType::Int8, "-9223372036854775809"),
            "value \"-9223372036854775809\" out of range for bigint"
        );
        assert_eq!(
            bad(ColumnType::Int8, "99999999999999999999999"),
            "value \"99999999999999999999999\" out of range for bigint"
        );
        for v in [
            "12x", "-", "+", "1.0", " 1", "1 ", "1e3", "--1", "0x10", "٣",
        ] {
            assert_eq!(
                bad(ColumnType::Int4, v),
                format!("invalid integer {}", quote(v.as_bytes()))
            );
        }
    }

    #[test]
    fn floats() {
        assert_eq!(
            ok(ColumnType::Float4, "1.5"),
            1.5f32.to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float4, "-0.1"),
            (-0.1f32).to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float8, "0.1"),
            0.1f64.to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float8, "1.5E+10"),
            1.5e10f64.to_bits().to_be_bytes()
        );
        assert_eq!(ok(ColumnType::Float8, "+2"), 2f64.to_bits().to_be_bytes());
        assert_eq!(
            ok(ColumnType::Float8, "-Infinity"),
            f64::NEG_INFINITY.to_bits().to_be_bytes()
        );
        assert_eq!(
            ok(ColumnType::Float4, "inf"),
            f32::INFINITY.to_bits().to_be_bytes()
        );
        let nan = ok(ColumnType::Float8, "NaN");
        assert!(f64::from_bits(u64::from_be_bytes(nan.try_into().unwrap())).is_nan());
        // 1e40 fits a double but not a real.
        assert_eq!(
            ok(ColumnType::Float8, "1e40"),
            1e40f64.to_bits().to_be_bytes()
        );
        assert_eq!(
            bad(ColumnType::Float4, "1e40"),
            "value \"1e40\" out of range for real"
        );
        assert_eq!(
            bad(ColumnType::Float8, "-1e400"),
            "value \"-1e400\" out of range for double precision"
        );
        assert_eq!(bad(ColumnType::Float8, "\"1,5\""), "invalid float \"1,5\"");
        assert_eq!(bad(ColumnType::Float8, "abc"), "invalid float \"abc\"");
        assert_eq!(bad(ColumnType::Float8, " 1"), "invalid float \" 1\"");
    }

    #[test]
    fn booleans() {
        for v in ["t", "T", "true", "TRUE", "True", "1"] {
            assert_eq!(ok(ColumnType::Bool, v), [1], "{v}");
        }
        for v in ["f", "F", "false", "FALSE", "fAlSe", "0"] {
            assert_eq!(ok(ColumnType::Bool, v), [0], "{v}");
        }
        for v in ["yes", "2", "tru", "truee", " t"] {
            assert_eq!(bad(ColumnType::Bool, v), format!("invalid boolean \"{v}\""));
        }
    }

    #[test]
    fn text_types() {
        assert_eq!(ok(ColumnType::Text, "hello world"), b"hello world");
        assert_eq!(ok(ColumnType::Text, "\"a,\"\"b\"\"\nc\""), b"a,\"b\"\nc");
        assert_eq!(ok(ColumnType::Text, "日本語"), "日本語".as_bytes());
        // Lengths count characters, not bytes.
        assert_eq!(
            ok(ColumnType::Varchar(Some(3)), "日本語"),
            "日本語".as_bytes()
        );
        assert_eq!(ok(ColumnType::Bpchar(Some(2)), "éé"), "éé".as_bytes());
        assert_eq!(ok(ColumnType::Varchar(None), "long text"), b"long text");
        assert_eq!(ok(ColumnType::Bpchar(None), "x"), b"x");
        assert_eq!(
            bad(ColumnType::Varchar(Some(3)), "日本語x"),
            "value too long for varchar(3): 4 characters \"日本語x\""
        );
        assert_eq!(
            bad(ColumnType::Bpchar(Some(1)), "ab"),
            "value too long for char(1): 2 characters \"ab\""
        );
    }

    #[test]
    fn text_rejects_bad_utf8_and_nul() {
        let s = spec(vec![col("t", ColumnType::Text, true)]);
        let mut decoder = RowDecoder::new(s, OpColumn::Absent);
        let mut rec = RawRecord::new();
        let mut out = Vec::new();

        let mut scanner = CsvScanner::new(&b"ab\xffcd\n"[..]);
        scanner.next_record(&mut rec).unwrap();
        let err = decoder.decode(&rec, 1, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1 (t): invalid UTF-8 in \"ab\u{fffd}cd\""
        );

        let mut scanner = CsvScanner::new(&b"ab\0cd\n"[..]);
        scanner.next_record(&mut rec).unwrap();
        let err = decoder.decode(&rec, 1, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1 (t): NUL byte in \"ab\\0cd\""
        );
        assert!(out.is_empty());
    }

    fn date_bytes(days: i32) -> Vec<u8> {
        days.to_be_bytes().to_vec()
    }

    #[test]
    fn dates() {
        assert_eq!(ok(ColumnType::Date, "2000-01-01"), date_bytes(0));
        assert_eq!(ok(ColumnType::Date, "2000-01-02"), date_bytes(1));
        assert_eq!(ok(ColumnType::Date, "1999-12-31"), date_bytes(-1));
        assert_eq!(ok(ColumnType::Date, "2000-03-01"), date_bytes(60));
        assert_eq!(ok(ColumnType::Date, "1970-01-01"), date_bytes(-10957));
        assert_eq!(ok(ColumnType::Date, "2022-09-22"), date_bytes(8300));
        assert_eq!(ok(ColumnType::Date, "0001-01-01"), date_bytes(-730119));
        assert_eq!(ok(ColumnType::Date, "2024-02-29"), date_bytes(8825));
        assert_eq!(ok(ColumnType::Date, "2000-02-29"), date_bytes(59));
        for v in [
            "2022-02-29",
            "1900-02-29",
            "2022-02-30",
            "2022-04-31",
            "2022-13-01",
            "2022-00-10",
            "2022-01-00",
            "0000-01-01",
            "2022-1-01",
            "2022/01/01",
            "22-01-01",
            "2022-01-01 00:00:00",
            "2022-01-01x",
        ] {
            assert_eq!(bad(ColumnType::Date, v), format!("invalid date \"{v}\""));
        }
    }

    #[test]
    fn calendar_matches_day_by_day_count() {
        let mut days = days_since_2000(1600, 1, 1);
        assert_eq!(days, -146_097);
        for year in 1600..2401 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(
                        days_since_2000(year, month, day),
                        days,
                        "{year}-{month}-{day}"
                    );
                    days += 1;
                }
            }
        }
        assert_eq!(days_since_2000(2401, 1, 1), days);
    }

    fn micros(v: i64) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    #[test]
    fn timestamps() {
        for ty in [ColumnType::Timestamp, ColumnType::Timestamptz] {
            assert_eq!(ok(ty.clone(), "2000-01-01 00:00:00"), micros(0));
            assert_eq!(ok(ty.clone(), "2000-01-01T00:00:01"), micros(1_000_000));
            // 8300 days, 9:58:53.123 (Unix 1663840733.123).
            assert_eq!(
                ok(ty.clone(), "2022-09-22 09:58:53.123"),
                micros(717_155_933_123_000)
            );
            assert_eq!(
                ok(ty.clone(), "2022-09-22T09:58:53.123000"),
                micros(717_155_933_123_000)
            );
            assert_eq!(ok(ty.clone(), "1999-12-31 23:59:59.999999"), micros(-1));
            assert_eq!(ok(ty.clone(), "2000-01-01 00:00:00.5"), micros(500_000));
            assert_eq!(ok(ty.clone(), "2000-01-01 00:00:00.000001"), micros(1));
            assert_eq!(
                ok(ty.clone(), "1970-01-01 00:00:00"),
                micros(-946_684_800_000_000)
            );
            assert_eq!(
                ok(ty.clone(), "2024-02-29 12:00:00"),
                micros((8825 * 86_400 + 12 * 3600) * 1_000_000)
            );
        }
        for v in [
            "2022-02-30 00:00:00",
            "2023-02-29 00:00:00",
            "2022-09-22 24:00:00",
            "2022-09-22 23:60:00",
            "2022-09-22 23:59:60",
            "2022-09-22 09:58:53.",
            "2022-09-22 09:58:53.1234567",
            "2022-09-22 09:58:53.12a",
            "2022-09-22 09:58:53,123",
            "2022-09-22 09:58:53Z",
            "2022-09-22 09:58:53+00",
            "2022-09-22 09:58",
            "2022-09-22",
            "2022-09-22x09:58:53",
            "2022-09-22 9:58:53",
        ] {
            assert_eq!(
                bad(ColumnType::Timestamp, &csv(v)),
                format!("invalid timestamp \"{v}\"")
            );
        }
    }

    /// Expected Postgres binary numeric.
    fn numeric(ndigits: i16, weight: i16, negative: bool, dscale: u16, digits: &[u16]) -> Vec<u8> {
        assert_eq!(ndigits as usize, digits.len());
        let mut v = Vec::new();
        v.extend_from_slice(&ndigits.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    const NUMERIC: ColumnType = ColumnType::Numeric {
        precision: None,
        scale: None,
    };

    fn numeric_ps(p: u16, s: u16) -> ColumnType {
        ColumnType::Numeric {
            precision: Some(p),
            scale: Some(s),
        }
    }

    #[test]
    fn numeric_encodings() {
        let cases: &[(&str, Vec<u8>)] = &[
            ("12345.678", numeric(3, 1, false, 3, &[1, 2345, 6780])),
            ("0.0001", numeric(1, -1, false, 4, &[1])),
            ("0.00000001", numeric(1, -2, false, 8, &[1])),
            ("0.00010002", numeric(2, -1, false, 8, &[1, 2])),
            ("-123.4500", numeric(2, 0, true, 4, &[123, 4500])),
            ("0.5", numeric(1, -1, false, 1, &[5000])),
            (".5", numeric(1, -1, false, 1, &[5000])),
            ("+.5", numeric(1, -1, false, 1, &[5000])),
            ("7", numeric(1, 0, false, 0, &[7])),
            ("7.", numeric(1, 0, false, 0, &[7])),
            ("-7", numeric(1, 0, true, 0, &[7])),
            ("100", numeric(1, 0, false, 0, &[100])),
            ("10000", numeric(1, 1, false, 0, &[1])),
            ("100000000", numeric(1, 2, false, 0, &[1])),
            ("100000001", numeric(3, 2, false, 0, &[1, 0, 1])),
            ("1.0001", numeric(2, 0, false, 4, &[1, 1])),
            ("10000.0001", numeric(3, 1, false, 4, &[1, 0, 1])),
            ("00123.00", numeric(1, 0, false, 2, &[123])),
            ("9999.9999", numeric(2, 0, false, 4, &[9999, 9999])),
            (
                "-9223372036854775808",
                numeric(5, 4, true, 0, &[922, 3372, 368, 5477, 5808]),
            ),
            // Zero: no digits, weight 0, positive, scale as written.
            ("0", numeric(0, 0, false, 0, &[])),
            ("-0", numeric(0, 0, false, 0, &[])),
            ("0.00", numeric(0, 0, false, 2, &[])),
            ("-0.00", numeric(0, 0, false, 2, &[])),
            ("000", numeric(0, 0, false, 0, &[])),
            (".0", numeric(0, 0, false, 1, &[])),
        ];
        for (input, expected) in cases {
            let got = ok(NUMERIC, input);
            assert_eq!(&got, expected, "{input}");
        }
    }

    #[test]
    fn numeric_precision_and_scale() {
        let ty = numeric_ps(5, 2);
        assert_eq!(
            ok(ty.clone(), "123.45"),
            numeric(2, 0, false, 2, &[123, 4500])
        );
        assert_eq!(
            ok(ty.clone(), "-999.99"),
            numeric(2, 0, true, 2, &[999, 9900])
        );
        assert_eq!(
            ok(ty.clone(), "000123.4"),
            numeric(2, 0, false, 1, &[123, 4000])
        );
        // Extra fraction zeros are dropped, exactly.
        assert_eq!(
            ok(ty.clone(), "1.2300"),
            numeric(2, 0, false, 2, &[1, 2300])
        );
        assert_eq!(ok(ty.clone(), "0.000"), numeric(0, 0, false, 2, &[]));
        assert_eq!(
            bad(ty.clone(), "1000.5"),
            "numeric field overflow: \"1000.5\" does not fit numeric(5,2)"
        );
        assert_eq!(
            bad(ty.clone(), "1.234"),
            "numeric value \"1.234\" has more than 2 fraction digits"
        );
        assert_eq!(
            bad(ty.clone(), "1.2301"),
            "numeric value \"1.2301\" has more than 2 fraction digits"
        );
        // numeric(p) has scale 0.
        let ty = ColumnType::Numeric {
            precision: Some(3),
            scale: None,
        };
        assert_eq!(ok(ty.clone(), "-999"), numeric(1, 0, true, 0, &[999]));
        assert_eq!(ok(ty.clone(), "5.0"), numeric(1, 0, false, 0, &[5]));
        assert!(bad(ty.clone(), "1000").starts_with("numeric field overflow"));
        assert!(bad(ty, "1.5").contains("more than 0 fraction digits"));
        // Scale larger than precision: only small fractions fit.
        let ty = numeric_ps(2, 3);
        assert_eq!(ok(ty.clone(), "0.012"), numeric(1, -1, false, 3, &[120]));
        assert!(bad(ty, "0.1").starts_with("numeric field overflow"));
    }

    #[test]
    fn numeric_rejects_garbage() {
        for v in [
            ".", "-", "+", "-.", "1e5", "1E5", "1.2.3", "1,5", " 1", "1 ", "NaN", "--1", "0x1",
            "1-",
        ] {
            assert_eq!(bad(NUMERIC, &csv(v)), format!("invalid numeric \"{v}\""));
        }
        let huge_scale = format!("0.{}1", "0".repeat(NUMERIC_MAX_DSCALE));
        assert!(bad(NUMERIC, &huge_scale).contains("out of range"));
    }

    #[test]
    fn event_id_is_returned() {
        let s = spec(vec![
            col("id", ColumnType::Int4, false),
            col("event_id", ColumnType::Int8, true),
        ]);
        let mut decoder = RowDecoder::new(s, OpColumn::Present);
        let (rows, _) = decode_all(&mut decoder, "I,1,42\nU,1,\nD,1,-9\n").unwrap();
        assert_eq!(
            rows,
            [
                DecodedRow {
                    op: Op::Insert,
                    event_id: Some(42)
                },
                DecodedRow {
                    op: Op::Update,
                    event_id: None
                },
                DecodedRow {
                    op: Op::Delete,
                    event_id: Some(-9)
                },
            ]
        );

        // An event_id stored as text must still be an integer.
        let s = spec(vec![col("event_id", ColumnType::Text, true)]);
        let mut decoder = RowDecoder::new(s, OpColumn::Absent);
        let (rows, _) = decode_all(&mut decoder, "17\n").unwrap();
        assert_eq!(rows[0].event_id, Some(17));
        let err = decode_all(&mut decoder, "abc\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1 (event_id): invalid event_id \"abc\""
        );
    }

    #[test]
    fn every_error_kind_displays_where() {
        let field = DecodeError::Field {
            line: 12,
            column: 3,
            name: "amount".to_string(),
            reason: "invalid integer \"12x\"".to_string(),
        };
        assert_eq!(
            field.to_string(),
            "line 12, column 3 (amount): invalid integer \"12x\""
        );
        let count = DecodeError::FieldCount {
            line: 4,
            expected: 5,
            found: 6,
        };
        assert_eq!(count.to_string(), "line 4: expected 5 fields, found 6");
        let syntax = DecodeError::Syntax {
            line: 9,
            reason: "unterminated quoted field (field 2)".to_string(),
        };
        assert_eq!(
            syntax.to_string(),
            "line 9: unterminated quoted field (field 2)"
        );
        let io: DecodeError =
            std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt deflate stream").into();
        assert_eq!(io.to_string(), "corrupt deflate stream");
    }

    #[test]
    fn full_copy_stream_round_trip() {
        // A realistic CDC file through gzip, scanner and decoder.
        let s = spec(vec![
            col("id", ColumnType::Int8, false),
            col("event_id", ColumnType::Int8, false),
            col("price", numeric_ps(12, 4), true),
            col("placed_at", ColumnType::Timestamptz, true),
            col("note", ColumnType::Varchar(Some(20)), true),
            col("active", ColumnType::Bool, true),
        ]);
        let csv = "I,1,100,12.5000,2022-09-22 09:58:53.123,\"hi, there\",t\r\n\
                   U,1,101,,2022-09-22 09:58:54,,f\r\n\
                   D,1,102,12.5,2022-09-22 09:58:55,\"\",\r\n";
        let gz = gzip(csv.as_bytes());
        let mut scanner = CsvScanner::new(flate2::read::GzDecoder::new(&gz[..]));
        let mut decoder = RowDecoder::new(s, OpColumn::Present);
        let mut rec = RawRecord::new();
        let mut out = COPY_BINARY_HEADER.to_vec();
        let mut rows = Vec::new();
        let mut seq = 0;
        while scanner.next_record(&mut rec).unwrap() {
            seq += 1;
            rows.push(decoder.decode(&rec, seq, &mut out).unwrap());
        }
        out.extend_from_slice(COPY_BINARY_TRAILER);

        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].event_id, Some(102));
        let body = &out[COPY_BINARY_HEADER.len()..out.len() - 2];
        let tuples = parse_tuples(body);
        assert_eq!(tuples.len(), 3);
        assert!(tuples.iter().all(|t| t.len() == 8));
        assert_eq!(tuples[0][4], Some(numeric(2, 0, false, 4, &[12, 5000])));
        assert_eq!(tuples[1][4], None);
        assert_eq!(tuples[0][5], Some(micros(717_155_933_123_000)));
        assert_eq!(tuples[0][6], Some(b"hi, there".to_vec()));
        assert_eq!(tuples[1][6], None);
        assert_eq!(tuples[2][6], Some(Vec::new()));
        assert_eq!(tuples[2][7], None);
        assert_eq!(tuples[1][1], Some(b"U".to_vec()));
    }
}
