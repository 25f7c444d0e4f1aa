//! The DMS CSV dialect as the generator writes it (DMS's defaults: `,` between fields, `\n`
//! after a record, RFC 4180 quoting): NULL is an empty unquoted field, the empty string is `""`,
//! a field holding `,`, `"`, `\r` or `\n` is quoted with its quotes doubled. Public so the
//! decoder's property tests read back exactly what the generator writes.

/// Appends one record: its fields (`None` = NULL), then the row delimiter.
pub fn write_record<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = Option<&'a [u8]>>) {
    super::dialect::write_record_in(out, fields, &super::dialect::FileDialect::default());
}

/// A timestamp (microseconds since the Unix epoch, UTC) as DMS writes a `timestamp` column:
/// `YYYY-MM-DD HH:MM:SS`, then `.ffffff` when the fraction is not zero.
pub fn timestamp_text(micros: i64) -> String {
    let mut out = String::new();
    write_timestamp(&mut out, micros);
    out
}

pub(crate) fn write_timestamp(out: &mut String, micros: i64) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write as _;
    let dt = super::clock::datetime(micros);
    let sub = micros.rem_euclid(super::clock::SEC);
    write!(
        out,
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
        write!(out, ".{sub:06}").expect("write to String");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_empty_and_quoted_fields_are_written_as_dms_does() {
        let mut out = Vec::new();
        let fields: [Option<&[u8]>; 5] = [
            Some(b"I"),
            None,
            Some(b""),
            Some(b"a,\"b\"\nc"),
            Some("é".as_bytes()),
        ];
        write_record(&mut out, fields);
        assert_eq!(out, "I,,\"\",\"a,\"\"b\"\"\nc\",é\n".as_bytes());
        assert_eq!(timestamp_text(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp_text(1_500_001), "1970-01-01 00:00:01.500001");
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999999");
    }
}
