//! End-to-end checks of generated datasets: determinism, DMS naming and ordering, the ground
//! truth against a replay, the CSV dialect and the schema.

mod ground_truth;
mod keys;
mod values;

use std::io::Read;

use super::*;

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

/// Whether `key` names a full-load file, read with the loader's own naming (`dms-naming`).
fn is_load(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap();
    dms_naming::parse_file_name(name)
        .unwrap_or_else(|| panic!("{key} is not a DMS file name"))
        .0
        .is_load()
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

/// `cargo test --release -p dms-sample --lib tests::full_scale -- --ignored --nocapture`
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
