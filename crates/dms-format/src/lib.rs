//! The AWS DMS file format: the CSV dialect, and row decoding into Postgres binary COPY tuples.
//!
//! Everything here is pure (no I/O beyond `std::io::Read`) so it can be unit-tested and fuzzed
//! (`fuzz/` builds on this crate alone). The loader re-exports it as `paper_engine_orders::dms`,
//! together with the endpoint settings (`DmsSettings`, which need the loader's configuration).
//!
//! One concept per file:
//! - `table.rs`: the target table layout, [`TableSpec`], [`Column`] and [`ColumnType`].
//! - DMS object keys and their order, [`DmsObject`], [`parse_object_key`], [`FileKind`],
//!   [`Compression`] and [`OpColumn`], live in the `dms-naming` crate (shared with the sample
//!   generator) and are re-exported here.
//! - `header.rs`: the header row of `AddColumnName` files, [`check_header`].
//! - `error.rs`: [`DecodeError`], and the quoting of values in error messages.
//! - `scanner.rs`: the streaming CSV scanner, [`CsvScanner`] and [`RawRecord`]: buffering,
//!   input errors and the fast path for lines without quotes.
//! - `scan_slow.rs`: the scanner's general state machine (quoted fields, embedded line ends,
//!   CSV syntax errors).
//! - `decode.rs`: row decoding, [`RowDecoder`], [`TupleLayout`], [`OpColumn`], [`Op`] and
//!   [`DecodedRow`].
//! - `copy.rs`: binary COPY encoding, [`COPY_BINARY_HEADER`], [`COPY_BINARY_TRAILER`] and the
//!   writer of one field per column type (text types included).
//! - `value.rs`: parsing of integer, float and boolean values.
//! - `calendar.rs`: dates and timestamps (calendar arithmetic from the Postgres epoch).
//! - `numeric.rs`: decimal strings to Postgres binary `numeric`.
//! - `parquet.rs`: DMS's Parquet files as records, [`ParquetRows`], and what both formats'
//!   readers are, [`Records`].

mod calendar;
mod copy;
mod decode;
mod error;
mod header;
mod numeric;
mod parquet;
#[cfg(test)]
mod roundtrip_prop_tests;
mod scan_slow;
mod scanner;
#[cfg(test)]
mod scanner_prop_tests;
mod table;
mod value;

pub use copy::{COPY_BINARY_HEADER, COPY_BINARY_TRAILER};
pub use decode::{DecodedRow, Op, OpColumn, RowDecoder, StagingTuple, TupleLayout};
pub use dms_naming::{parse_object_key, Compression, DayFolders, DmsObject, FileKind};
pub use error::DecodeError;
pub use header::check_header;
pub use parquet::{ParquetRows, Records};
pub use scanner::{CsvScanner, RawRecord, DEFAULT_SCAN_BUFFER};
pub use table::{Column, ColumnType, TableSpec};

// Helpers shared by the submodules' tests, and a test of the whole pipeline.
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    pub(super) fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
        Column {
            name: name.to_string(),
            ty,
            nullable,
        }
    }

    pub(super) fn spec(columns: Vec<Column>) -> Arc<TableSpec> {
        Arc::new(TableSpec {
            name: "orders".to_string(),
            columns,
            key: vec![0],
        })
    }

    /// Decodes every record of `csv`, returning the rows and the concatenated tuples.
    pub(super) fn decode_all(
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

    /// Splits concatenated tuples into their fields (None = NULL).
    pub(super) fn parse_tuples(mut bytes: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
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
    pub(super) fn encode_one(
        ty: ColumnType,
        csv_field: &str,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        let mut decoder = RowDecoder::new(spec(vec![col("v", ty, true)]), OpColumn::Absent);
        let (_, out) = decode_all(&mut decoder, &format!("{csv_field}\n"))?;
        let mut tuples = parse_tuples(&out);
        assert_eq!(tuples.len(), 1);
        assert_eq!(tuples[0].len(), 3);
        Ok(tuples[0].pop().unwrap())
    }

    /// `v` as a CSV field: quoted when it holds a comma.
    pub(super) fn csv(v: &str) -> String {
        if v.contains(',') {
            format!("\"{v}\"")
        } else {
            v.to_string()
        }
    }

    pub(super) fn ok(ty: ColumnType, csv_field: &str) -> Vec<u8> {
        encode_one(ty.clone(), csv_field)
            .unwrap_or_else(|e| panic!("{ty:?} {csv_field:?}: {e}"))
            .unwrap_or_else(|| panic!("{ty:?} {csv_field:?} gave NULL"))
    }

    /// The reason of the field error for a bad value.
    pub(super) fn bad(ty: ColumnType, csv_field: &str) -> String {
        match encode_one(ty.clone(), csv_field) {
            Err(DecodeError::Field { reason, column, .. }) => {
                assert_eq!(column, 1);
                reason
            }
            other => panic!("{ty:?} {csv_field:?}: expected a field error, got {other:?}"),
        }
    }

    pub(super) fn micros(v: i64) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    /// Expected Postgres binary numeric.
    pub(super) fn numeric(
        ndigits: i16,
        weight: i16,
        negative: bool,
        dscale: u16,
        digits: &[u16],
    ) -> Vec<u8> {
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

    pub(super) fn numeric_ps(p: u16, s: u16) -> ColumnType {
        ColumnType::Numeric {
            precision: Some(p),
            scale: Some(s),
        }
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
