//! The streaming CSV scanner: records, the read buffer and the fast path for lines without quotes.

use super::error::DecodeError;

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
    pub(super) data: Vec<u8>,
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

    /// Empties the record for a new one that starts on `line` (a reader of another format fills
    /// it with [`RawRecord::push_text`] and [`RawRecord::push_null`]).
    pub fn start(&mut self, line: u64) {
        self.clear();
        self.line = line;
    }

    /// Appends a field holding `text` (the empty text is the empty string, not NULL).
    pub fn push_text(&mut self, text: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(text);
        self.push(start, self.data.len(), true);
    }

    /// Appends a field whose text is written into the record's buffer by `write` (a number, a
    /// date: no allocation per field).
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        write(&mut self.data);
        self.push(start, self.data.len(), true);
    }

    /// Appends a NULL field.
    pub fn push_null(&mut self) {
        let at = self.data.len();
        self.push(at, at, false);
    }

    pub(super) fn push(&mut self, start: usize, end: usize, quoted: bool) {
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
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
    pub(super) end: usize,
    eof: bool,
    pub(super) line: u64,
    /// The field delimiter (`,` unless the endpoint's `CsvDelimiter` says otherwise).
    pub(super) delim: u8,
    /// The row delimiter (`\n`, after which a `\r` before it is dropped too, unless the
    /// endpoint's `CsvRowDelimiter` says otherwise).
    pub(super) row: u8,
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
            delim: b',',
            row: b'\n',
        }
    }

    /// Reads fields separated by `delim` instead of `,` (DMS's `CsvDelimiter`; not `"`, `\r` or
    /// `\n`).
    pub fn with_delimiter(mut self, delim: u8) -> Self {
        debug_assert!(!matches!(delim, b'"' | b'\r' | b'\n'));
        self.delim = delim;
        self
    }

    /// Ends records at `row` instead of a line end (DMS's `CsvRowDelimiter` of one character,
    /// not `"`, `\r` or the field delimiter). Lines are then counted in row delimiters.
    pub fn with_row_delimiter(mut self, row: u8) -> Self {
        debug_assert!(!matches!(row, b'"' | b'\r') && row != self.delim);
        self.row = row;
        self
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
            if let Some(i) = memchr::memchr(self.row, &self.buf[searched..self.end]) {
                let nl = searched + i;
                let line = &self.buf[self.pos..nl];
                if memchr::memchr(b'"', line).is_some() {
                    break;
                }
                rec.data.extend_from_slice(line);
                let mut start = 0;
                for comma in memchr::memchr_iter(self.delim, line) {
                    rec.push(start, comma, false);
                    start = comma + 1;
                }
                let mut end = line.len();
                if self.row == b'\n' && end > start && line[end - 1] == b'\r' {
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
    pub(super) fn fill(&mut self) -> std::io::Result<usize> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::gzip;
    use std::io::Read;

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
    fn another_delimiter_on_both_paths() {
        let input = "1;a,b;;\"x;y\"\n2|3\n";
        let mut scanner = CsvScanner::new(input.as_bytes()).with_delimiter(b';');
        let mut rec = RawRecord::new();
        assert!(scanner.next_record(&mut rec).unwrap());
        assert_eq!(rec.len(), 4);
        assert_eq!(rec.field(1), b"a,b");
        assert!(rec.is_null(2));
        assert_eq!((rec.field(3), rec.is_quoted(3)), (&b"x;y"[..], true));
        assert!(scanner.next_record(&mut rec).unwrap());
        assert_eq!((rec.len(), rec.field(0)), (1, &b"2|3"[..]));
        let mut scanner = CsvScanner::new(&b"1|\"a|b\"|\n"[..]).with_delimiter(b'|');
        assert!(scanner.next_record(&mut rec).unwrap());
        assert_eq!(rec.len(), 3);
        assert_eq!(rec.field(1), b"a|b");
        assert!(rec.is_null(2));
    }

    #[test]
    fn another_row_delimiter_on_both_paths_and_any_buffer() {
        // `~` ends rows; a line end is data (in a quoted field or not), `\r` is not dropped.
        let input = "1,a\nb,\"x~y\"~2,,\"q\"\"\"~3,z\r~4,\"\"";
        for capacity in [1, 2, 3, 5, 8, 64, DEFAULT_SCAN_BUFFER] {
            let mut scanner =
                CsvScanner::with_capacity(input.as_bytes(), capacity).with_row_delimiter(b'~');
            let mut rec = RawRecord::new();
            let mut rows = Vec::new();
            while scanner.next_record(&mut rec).unwrap() {
                rows.push((
                    rec.line(),
                    (0..rec.len())
                        .map(|i| {
                            (
                                String::from_utf8(rec.field(i).to_vec()).unwrap(),
                                rec.is_null(i),
                            )
                        })
                        .collect::<Vec<_>>(),
                ));
            }
            let f = |t: &str, null: bool| (t.to_string(), null);
            assert_eq!(
                rows,
                vec![
                    (1, vec![f("1", false), f("a\nb", false), f("x~y", false)]),
                    // (The `~` inside the quotes counted as a row delimiter passed.)
                    (3, vec![f("2", false), f("", true), f("q\"", false)]),
                    (4, vec![f("3", false), f("z\r", false)]),
                    (5, vec![f("4", false), f("", false)]),
                ],
                "buffer {capacity}"
            );
        }
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
}
