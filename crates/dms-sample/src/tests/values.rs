use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::*;

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
