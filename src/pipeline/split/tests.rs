//! The split and the Target's replay of what it set aside, end to end.
use std::io::Read;
use std::sync::Arc;

use super::keys::TupleHead;
use super::*;
use crate::dms::{ColumnType, CsvScanner, OpColumn, RawRecord, RowDecoder, StagingTuple};
use crate::target::direct::Replay;
use crate::target::Chunk;

/// Reads one binary COPY tuple (field count, then length-prefixed fields) into `out`.
fn read_tuple(reader: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    out.clear();
    let mut count = [0u8; 2];
    reader.read_exact(&mut count)?;
    out.extend_from_slice(&count);
    for _ in 0..i16::from_be_bytes(count).max(0) {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len)?;
        out.extend_from_slice(&len);
        let n = i32::from_be_bytes(len);
        if n > 0 {
            let start = out.len();
            out.resize(start + n as usize, 0);
            reader.read_exact(&mut out[start..])?;
        }
    }
    Ok(())
}

/// The fields of one binary COPY tuple (`None`: NULL).
fn fields(tuple: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut rest = &tuple[2..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = i32::from_be_bytes(rest[..4].try_into().unwrap());
        let end = 4 + len.max(0) as usize;
        out.push((len >= 0).then(|| rest[4..end].to_vec()));
        rest = &rest[end..];
    }
    assert_eq!(out.len(), i16::from_be_bytes([tuple[0], tuple[1]]) as usize);
    out
}

fn spec() -> Arc<TableSpec> {
    Arc::new(crate::target::direct::tests::spec())
}

fn head_of(spec: &Arc<TableSpec>, line: &str, seq: i64) -> TupleHead {
    let keys = KeyFields::new(spec);
    let mut decoder = RowDecoder::new(spec.clone(), OpColumn::Present);
    let mut scanner = CsvScanner::new(line.as_bytes());
    let mut rec = RawRecord::new();
    assert!(scanner.next_record(&mut rec).unwrap());
    let mut tuple = Vec::new();
    decoder.decode(&rec, seq, &mut tuple).unwrap();
    keys.head(&tuple).unwrap()
}

#[test]
fn key_ids_are_exact_for_short_keys_and_fingerprints_for_long_ones() {
    let ints = spec();
    let a = head_of(&ints, "I,x,42\n", 7);
    assert_eq!(a.seq, 7);
    assert_eq!(a.key, head_of(&ints, "D,other value,42\n", 9).key);
    assert_ne!(a.key, head_of(&ints, "I,x,43\n", 7).key);
    // A text key longer than 15 bytes is fingerprinted; never equal to a packed one.
    let mut text = (*spec()).clone();
    text.columns[1].ty = ColumnType::Text;
    let text = Arc::new(text);
    let long = head_of(&text, "I,x,a-rather-long-client-order-id\n", 1);
    let short = head_of(&text, "I,x,short\n", 1);
    assert_eq!(long.key.0 & 0xff, 0xff);
    assert!(short.key.0 & 0xff <= 15);
    let same = head_of(&text, "U,y,a-rather-long-client-order-id\n", 2);
    assert_eq!(long.key, same.key);
    let other = head_of(&text, "U,y,a-rather-long-client-order-iD\n", 2);
    assert_ne!(long.key, other.key);
}

/// Encodes `rows` (op, v, k) as the decoder would and routes them; returns the split (not
/// finished) and the positions (1-based) that stayed staged.
fn route(rows: &[(&str, Option<&str>, i64)]) -> (InsertSplit, Vec<i64>) {
    let spec = spec();
    let mut decoder = RowDecoder::new(spec.clone(), OpColumn::Present);
    let mut split = InsertSplit::new(&spec, 0);
    let mut staged = Vec::new();
    for (seq, (op, v, k)) in rows.iter().enumerate() {
        let line = format!("{op},{},{k}\n", v.unwrap_or(""));
        let mut scanner = CsvScanner::new(line.as_bytes());
        let mut rec = RawRecord::new();
        assert!(scanner.next_record(&mut rec).unwrap());
        let mut tuple = Vec::new();
        let row = decoder.decode(&rec, seq as i64 + 1, &mut tuple).unwrap();
        if !split.route(row.op, &tuple).unwrap() {
            staged.push(seq as i64 + 1);
        }
    }
    (split, staged)
}

/// A split's end: the set-aside rows, and the positions and ops of those it staged after all.
fn finish(split: InsertSplit) -> (Option<DirectInserts>, Vec<(i64, Op)>) {
    let mut leftovers = Vec::new();
    let inserts = split
        .finish(|tuple| {
            let row = StagingTuple::read(tuple).unwrap();
            leftovers.push((row.seq(), row.op()));
            Ok(true)
        })
        .unwrap();
    (inserts, leftovers)
}

/// [`route`], then [`finish`]: the positions staged while routing, the set-aside rows, and the
/// positions staged at the end.
fn split(rows: &[(&str, Option<&str>, i64)]) -> (Vec<i64>, Option<DirectInserts>, Vec<(i64, Op)>) {
    let (split, staged) = route(rows);
    let (inserts, leftovers) = finish(split);
    (staged, inserts, leftovers)
}

async fn replayed(inserts: &Arc<DirectInserts>, mode: Replay) -> Vec<Vec<u8>> {
    let mut rx = inserts.replay(mode, 64);
    let mut bytes = Vec::new();
    loop {
        match rx.recv().await.unwrap() {
            Chunk::Data(b) => bytes.extend_from_slice(&b),
            Chunk::End(summary) => {
                let mut tuples = Vec::new();
                let mut reader = &bytes[..];
                while !reader.is_empty() {
                    let mut t = Vec::new();
                    read_tuple(&mut reader, &mut t).unwrap();
                    tuples.push(t);
                }
                assert_eq!(tuples.len() as u64, summary.rows);
                return tuples;
            }
            Chunk::Failed(f) => panic!("{}", f.message),
            Chunk::Inserts(_) => panic!("a replay sends no set-aside inserts"),
        }
    }
}

fn seq(tuple: &[u8]) -> i64 {
    StagingTuple::read(tuple).unwrap().seq()
}

/// A table tuple (v, k, _delivery_id, _loaded_at) as (v, k, delivery, loaded).
fn table_row(t: &[u8]) -> (Option<String>, i64, i64, i64) {
    let f = fields(t);
    assert_eq!(f.len(), 4);
    let int = |i: usize| i64::from_be_bytes(f[i].as_deref().unwrap().try_into().unwrap());
    let v = f[0].clone().map(|v| String::from_utf8(v).unwrap());
    (v, int(1), int(2), int(3))
}

#[tokio::test]
async fn new_keys_go_straight_in_with_their_last_row_and_the_rest_is_staged() {
    let (staged, inserts, leftovers) = split(&[
        ("U", Some("a"), 1), // 1: starts with an update: staged
        ("I", Some("b"), 1), // 2: a staged key: staged
        ("I", Some("c"), 2), // 3: new key 2, superseded by 4
        ("U", Some("d"), 2), // 4: key 2's last row: straight in
        ("I", None, 3),      // 5: new key 3, inserted once: straight in
        ("D", Some("e"), 4), // 6: starts with a delete: staged
        ("I", Some("f"), 5), // 7: new key 5, superseded by 8
        ("I", Some("g"), 5), // 8: key 5's last row: straight in
        ("I", Some("h"), 6), // 9: new key 6, superseded by 10
        ("D", Some("h"), 6), // 10: key 6's last row is a delete: staged
    ]);
    assert_eq!(staged, vec![1, 2, 6]);
    let inserts = Arc::new(inserts.unwrap());
    assert_eq!(inserts.rows(), 7);
    // Key 6's last row, a delete, is staged at the end of the file, with the other staged rows.
    assert_eq!(leftovers, vec![(10, Op::Delete)]);

    let direct = replayed(
        &inserts,
        Replay::Direct {
            delivery_id: 77,
            loaded_at: 123,
        },
    )
    .await;
    assert_eq!(
        direct.iter().map(|t| table_row(t)).collect::<Vec<_>>(),
        vec![
            (Some("d".into()), 2, 77, 123),
            (None, 3, 77, 123),
            (Some("g".into()), 5, 77, 123)
        ]
    );

    // The fallback stages every set-aside row not staged yet: each row is staged once.
    let all = replayed(&inserts, Replay::All).await;
    assert_eq!(
        all.iter().map(|t| seq(t)).collect::<Vec<_>>(),
        vec![3, 4, 5, 7, 8, 9]
    );
}

#[tokio::test]
async fn a_staged_key_takes_its_set_aside_rows_with_it() {
    let (mut split, staged) = route(&[("I", Some("a"), 1), ("I", Some("b"), 2)]);
    assert!(staged.is_empty());
    // As if the filter answered "staged" for key 1 (a false positive, or a full map).
    let hash = head_of(&spec(), "I,a,1\n", 1).key.mixed();
    split.staged.insert(hash);
    let (inserts, leftovers) = finish(split);
    // Key 1's row goes to the staging table at the end of the file.
    assert_eq!(leftovers, vec![(1, Op::Insert)]);
    let inserts = Arc::new(inserts.unwrap());
    let direct = replayed(
        &inserts,
        Replay::Direct {
            delivery_id: 1,
            loaded_at: 0,
        },
    )
    .await;
    assert_eq!(direct.len(), 1);
    assert_eq!(table_row(&direct[0]).1, 2);
    let all = replayed(&inserts, Replay::All).await;
    assert_eq!(all.iter().map(|t| seq(t)).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn a_file_without_inserts_sets_nothing_aside() {
    let (staged, inserts, leftovers) = split(&[("U", Some("a"), 1), ("D", None, 2)]);
    assert_eq!(staged, vec![1, 2]);
    assert!(inserts.is_none());
    assert!(leftovers.is_empty());
}
