use super::*;
use crate::clock::datetime;

#[test]
fn keys_are_named_and_ordered_like_dms() {
    let mut spec = small(0.001, 1);
    spec.load_rows_per_file = 10;
    let (files, manifest) = collect(&spec);
    assert_eq!(manifest.files.len(), files.len());
    let keys: Vec<&str> = files.iter().map(|(s, _)| s.key.as_str()).collect();
    let first_cdc = keys.iter().position(|k| !is_load(k)).unwrap();
    assert!(
        keys[first_cdc..].iter().all(|k| !is_load(k)),
        "LOAD files come first"
    );
    // LOAD files: per table in TABLES order, numbered 1.. in 8 uppercase hex digits
    let mut pos = 0;
    for table in TABLES {
        let mut n = 0;
        while pos < first_cdc && files[pos].0.table == table {
            n += 1;
            let want = format!("sample/run/dbo/{table}/LOAD{n:08X}.csv.gz");
            assert_eq!(keys[pos], want);
            assert!(files[pos].0.rows <= 10 && files[pos].0.rows > 0);
            pos += 1;
        }
        assert!(n > 0, "{table} has LOAD files");
    }
    assert_eq!(pos, first_cdc);
    assert!(keys.contains(&"sample/run/dbo/executions/LOAD0000000A.csv.gz"));
    // CDC: per batch, one file per table, stamped with the commit time, every other
    // batch under date folders
    let cdc = &files[first_cdc..];
    assert_eq!(cdc.len(), spec.cdc_files * 3);
    let mut prev_stamp = String::new();
    for (b, chunk) in cdc.chunks(3).enumerate() {
        let dt = datetime(cdc_commit_micros(b));
        let stamp = format!(
            "{}{:03}",
            dt.format("%Y%m%d-%H%M%S"),
            dt.and_utc().timestamp_subsec_millis()
        );
        assert!(stamp > prev_stamp);
        prev_stamp = stamp.clone();
        for (table, (s, _)) in TABLES.iter().zip(chunk) {
            let want = if b % 2 == 1 {
                format!(
                    "sample/run/dbo/{table}/{}/{stamp}.csv.gz",
                    dt.format("%Y/%m/%d")
                )
            } else {
                format!("sample/run/dbo/{table}/{stamp}.csv.gz")
            };
            assert_eq!(s.key, want);
            assert_eq!(s.table, *table);
        }
    }
    assert_eq!(
        cdc[0].0.key,
        "sample/run/dbo/strategies/20220922-095853123.csv.gz"
    );
    assert_eq!(
        cdc[3].0.key,
        "sample/run/dbo/strategies/2022/09/22/20220922-095953123.csv.gz"
    );

    // an empty bucket path yields keys starting at dbo/, and slashes are trimmed
    spec.bucket_path = String::new();
    spec.cdc_files = 1;
    let (files, _) = collect(&spec);
    assert!(files.iter().all(|(s, _)| s.key.starts_with("dbo/")));
    spec.bucket_path = "/x/y/".to_string();
    let (files, _) = collect(&spec);
    assert!(files.iter().all(|(s, _)| s.key.starts_with("x/y/dbo/")));
}
