//! The CSV scanner's general state machine: quoted fields, embedded line ends, syntax errors.

use super::error::DecodeError;
use super::scanner::{CsvScanner, RawRecord};

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
    fn syntax(&self, line: u64, reason: String) -> DecodeError {
        DecodeError::Syntax { line, reason }
    }

    /// The general state machine, used for records with quotes, records not wholly in the
    /// buffer, and the last record when it has no line end. Consumed bytes are copied into
    /// `rec` as it goes, so the buffer can be refilled at any point. Called with at least one
    /// byte buffered and `rec` empty.
    pub(super) fn scan_slow(&mut self, rec: &mut RawRecord) -> Result<(), DecodeError> {
        let mut state = ScanState::FieldStart;
        let mut field_start = 0;
        let mut quote_line = self.line;
        let (delim, row) = (self.delim, self.row);
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
                        d if d == delim => {
                            self.pos += 1;
                            rec.push(field_start, field_start, false);
                        }
                        r if r == row => {
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
                    match memchr::memchr3(delim, row, b'"', avail) {
                        None => {
                            rec.data.extend_from_slice(avail);
                            self.pos = self.end;
                        }
                        Some(i) => {
                            rec.data.extend_from_slice(&avail[..i]);
                            let b = avail[i];
                            self.pos += i + 1;
                            match b {
                                d if d == delim => {
                                    rec.push(field_start, rec.data.len(), false);
                                    state = ScanState::FieldStart;
                                }
                                r if r == row => {
                                    let mut end = rec.data.len();
                                    if row == b'\n'
                                        && end > field_start
                                        && rec.data[end - 1] == b'\r'
                                    {
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
                    match memchr::memchr2(b'"', row, avail) {
                        None => {
                            rec.data.extend_from_slice(avail);
                            self.pos = self.end;
                        }
                        Some(i) => {
                            if avail[i] == row {
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
                        d if d == delim => {
                            rec.push(field_start, rec.data.len(), true);
                            state = ScanState::FieldStart;
                        }
                        r if r == row => {
                            rec.push(field_start, rec.data.len(), true);
                            self.line += 1;
                            return Ok(());
                        }
                        b'\r' if row == b'\n' => state = ScanState::AfterQuoteCr,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_SCAN_BUFFER;

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
}
