use std::collections::{HashMap, HashSet};

use super::*;

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

/// With `CsvNoSupValue`, an update writes the columns it did not change as the token: replayed
/// with "an unsupplied column keeps its value", the files still give the final contents.
#[test]
fn unsupplied_columns_replay_to_the_final_contents() {
    const TOKEN: &str = "~NS~";
    let dialect = FileDialect {
        no_sup_value: Some(TOKEN.into()),
        ..FileDialect::default()
    };
    let mut files = Vec::new();
    let manifest = generate_in(&small(0.001, 42), &dialect, |f: SampleFile| {
        files.push((f.summary, f.body));
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("infallible");
    let mut model: HashMap<String, std::collections::BTreeMap<i64, Rec>> = HashMap::new();
    let mut unsupplied = 0;
    for (summary, body) in &files {
        let m = model.entry(summary.table.clone()).or_default();
        for rec in records(body) {
            let (op, row) = if is_load(&summary.key) {
                ("I".to_string(), rec)
            } else {
                (rec[0].clone().unwrap(), rec[1..].to_vec())
            };
            let key: i64 = row[0].as_deref().unwrap().parse().unwrap();
            let tokens = row.iter().filter(|v| v.as_deref() == Some(TOKEN)).count();
            match op.as_str() {
                "U" => {
                    let current = m.get(&key).expect("update of an existing key");
                    let row: Rec = row
                        .iter()
                        .zip(current)
                        .map(|(v, was)| {
                            if v.as_deref() == Some(TOKEN) {
                                was.clone()
                            } else {
                                v.clone()
                            }
                        })
                        .collect();
                    unsupplied += tokens;
                    m.insert(key, row);
                }
                "I" => {
                    assert_eq!(tokens, 0, "an insert supplies every column");
                    m.insert(key, row);
                }
                _ => {
                    assert_eq!(tokens, 0, "a delete carries the row");
                    m.remove(&key);
                }
            }
        }
    }
    assert!(unsupplied > 100, "{unsupplied} unsupplied columns");
    for table in TABLES {
        let rows: Vec<Rec> = model[table].values().cloned().collect();
        assert_eq!(manifest.tables[table], rows, "{table}");
    }
}

/// `CdcInsertsAndUpdates` without `IncludeOpForFullLoad`: change files hold inserts and updates,
/// without the Op column; the ground truth is the target's (the rows the source deleted stay).
#[test]
fn change_files_without_deletes_or_the_op_column() {
    let dialect = FileDialect {
        cdc_ops: CdcOps::InsertsAndUpdates,
        ..FileDialect::default()
    };
    let spec = small(0.001, 42);
    let mut files = Vec::new();
    let manifest = generate_in(&spec, &dialect, |f: SampleFile| {
        files.push((f.summary, f.body));
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("infallible");
    let (_, source) = collect(&spec);
    let mut model: HashMap<String, std::collections::BTreeMap<i64, Rec>> = HashMap::new();
    let mut amends = 0;
    for (summary, body) in &files {
        let m = model.entry(summary.table.clone()).or_default();
        for row in records(body) {
            // No Op column: every record is the table's row, applied as an upsert.
            assert_eq!(row.len(), columns(&summary.table).len(), "{}", summary.key);
            m.insert(row[0].as_deref().unwrap().parse().unwrap(), row);
        }
        assert_eq!(summary.counts.removes, 0, "{}", summary.key);
        amends += summary.counts.amends;
    }
    assert!(amends > 0);
    for table in TABLES {
        let rows: Vec<Rec> = model[table].values().cloned().collect();
        assert_eq!(manifest.tables[table], rows, "{table}");
        assert!(
            rows.len() >= source.tables[table].len(),
            "{table}: deleted rows stay"
        );
    }
    assert!(manifest.tables["orders"].len() > source.tables["orders"].len());
}

/// `AddTrailingPaddingCharacter`: character values are padded with spaces to their column's
/// length; trimmed, the files are the default dialect's.
#[test]
fn padded_character_values_trim_to_the_unpadded_files() {
    let dialect = FileDialect {
        trailing_padding: true,
        ..FileDialect::default()
    };
    let spec = small(0.001, 42);
    let mut padded = Vec::new();
    generate_in(&spec, &dialect, |f: SampleFile| {
        padded.push((f.summary, f.body));
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("infallible");
    let (plain, _) = collect(&spec);
    assert_eq!(padded.len(), plain.len());
    let mut widened = 0;
    for ((summary, body), (_, plain_body)) in padded.iter().zip(&plain) {
        let skip = usize::from(!is_load(&summary.key));
        for (row, plain_row) in records(body).iter().zip(records(plain_body)) {
            for (i, (v, p)) in row.iter().zip(&plain_row).enumerate() {
                match (
                    crate::spec::text_width(&summary.table, i.wrapping_sub(skip)),
                    v,
                ) {
                    (Some(width), Some(v)) => {
                        assert_eq!(v.chars().count(), width, "{}: {v:?}", summary.key);
                        widened += usize::from(v.ends_with(' '));
                        assert_eq!(Some(v.trim_end()), p.as_deref());
                    }
                    _ => assert_eq!(v, p),
                }
            }
        }
    }
    assert!(widened > 100);
}
