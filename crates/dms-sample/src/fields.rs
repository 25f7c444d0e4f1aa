//! One rendered row: the exact text of every value (numerics at their scale, timestamps as
//! Postgres prints them), an empty field being NULL.

use std::fmt::Write as _;

/// One rendered row: the text of each field, an empty field being NULL.
#[derive(Default)]
pub(super) struct Fields {
    buf: String,
    ends: Vec<usize>,
}

impl Fields {
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }
    fn end(&mut self) {
        self.ends.push(self.buf.len());
    }
    pub(super) fn null(&mut self) {
        self.end();
    }
    pub(super) fn str(&mut self, s: &str) {
        debug_assert!(!s.is_empty(), "empty strings are never written");
        self.buf.push_str(s);
        self.end();
    }
    pub(super) fn fmt(&mut self, args: std::fmt::Arguments<'_>) {
        self.buf.write_fmt(args).expect("write to String");
        self.end();
    }
    pub(super) fn int(&mut self, v: i64) {
        self.fmt(format_args!("{v}"));
    }
    pub(super) fn num(&mut self, v: i64, scale: u32) {
        debug_assert!(v >= 0);
        let p = 10i64.pow(scale);
        self.fmt(format_args!("{}.{:0w$}", v / p, v % p, w = scale as usize));
    }
    pub(super) fn opt_num(&mut self, v: Option<i64>, scale: u32) {
        match v {
            Some(v) => self.num(v, scale),
            None => self.null(),
        }
    }
    pub(super) fn ts(&mut self, t: i64) {
        super::record::write_timestamp(&mut self.buf, t);
        self.end();
    }
    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
    /// Field `i`, if the row has that many.
    pub(super) fn field(&self, i: usize) -> Option<&[u8]> {
        (i < self.ends.len()).then(|| self.get(i).as_bytes())
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.ends.len()).map(move |i| self.get(i).as_bytes())
    }
    pub(super) fn values(&self) -> Vec<Option<String>> {
        (0..self.ends.len())
            .map(|i| {
                Some(self.get(i))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect()
    }
}
