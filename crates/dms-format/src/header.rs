//! The header row DMS writes first in every file when the endpoint sets `AddColumnName`: the
//! source's column names, in the file's order (`Op` first where the file has an Op column).
//! Checked against the table before any row is read, so a file whose columns are not the table's
//! is refused whole, naming the columns.

use super::decode::OpColumn;
use super::error::DecodeError;
use super::scanner::RawRecord;
use super::table::TableSpec;

/// Checks a header record against `spec`'s columns (names compared without regard to case, as
/// DMS may upper-case them); an `Op` field first is allowed where `op_column` allows one.
pub fn check_header(
    spec: &TableSpec,
    record: &RawRecord,
    op_column: OpColumn,
    timestamp_column: Option<&str>,
) -> Result<(), DecodeError> {
    let names: Vec<String> = (0..record.len())
        .map(|i| String::from_utf8_lossy(record.field(i)).trim().to_string())
        .collect();
    let has_op = op_column != OpColumn::Absent
        && names.first().is_some_and(|n| n.eq_ignore_ascii_case("op"));
    let mut names = if has_op { &names[1..] } else { &names[..] };
    if let Some(stamp) = timestamp_column {
        // DMS's commit-time column (`TimestampColumnName`) comes next.
        match names.first() {
            Some(n) if n.eq_ignore_ascii_case(stamp) => names = &names[1..],
            found => {
                return Err(DecodeError::Header {
                    line: record.line(),
                    reason: format!(
                        "the timestamp column `{stamp}` (TimestampColumnName) is not where DMS writes it (after Op, or first); found `{}`",
                        found.map(String::as_str).unwrap_or_default()
                    ),
                })
            }
        }
    }
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if let Some(stamp) = timestamp_column.filter(|s| names.iter().any(|n| same(n, s))) {
        return Err(DecodeError::Header {
            line: record.line(),
            reason: format!(
                "`{stamp}` names both DMS's commit-time column (TimestampColumnName) and a source column: give TimestampColumnName a name no source column has"
            ),
        });
    }
    // (A table column named as the commit-time column takes it: it is not among the others.)
    let columns: Vec<&str> = spec
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .filter(|c| timestamp_column.is_none_or(|stamp| !same(c, stamp)))
        .collect();
    let missing: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|c| !names.iter().any(|n| same(n, c)))
        .collect();
    let extra: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !columns.iter().any(|c| same(n, c)))
        .collect();
    if missing.is_empty()
        && !extra.is_empty()
        && names.len() > columns.len()
        && columns.iter().zip(names.iter()).all(|(c, n)| same(c, n))
    {
        return Err(DecodeError::Drift {
            line: record.line(),
            table: spec.name.clone(),
            extra: names[columns.len()..].to_vec(),
        });
    }
    let reason = if !missing.is_empty() || !extra.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "table {} has column(s) the file lacks: {}",
                spec.name,
                missing.join(", ")
            ));
        }
        if !extra.is_empty() {
            parts.push(format!(
                "the file has column(s) table {} lacks: {} (a source column added: add it to the table with a migration, then retry the file)",
                spec.name,
                extra.join(", ")
            ));
        }
        parts.join("; ")
    } else if let Some(i) = (0..columns.len()).find(|&i| !same(&names[i], columns[i])) {
        format!(
            "the header row's column {} is `{}`, table {}'s column {} is `{}`: the file's columns are in another order",
            i + 1,
            names[i],
            spec.name,
            i + 1,
            columns[i]
        )
    } else {
        return Ok(());
    };
    Err(DecodeError::Header {
        line: record.line(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{col, spec};
    use crate::{ColumnType, CsvScanner};

    fn header(text: &str) -> RawRecord {
        let mut scanner = CsvScanner::new(text.as_bytes());
        let mut record = RawRecord::new();
        assert!(scanner.next_record(&mut record).unwrap());
        record
    }

    fn table() -> std::sync::Arc<TableSpec> {
        spec(vec![
            col("id", ColumnType::Int8, false),
            col("name", ColumnType::Text, true),
        ])
    }

    #[test]
    fn a_header_naming_the_table_s_columns_passes_with_or_without_op() {
        let t = table();
        check_header(&t, &header("id,name\n"), OpColumn::Absent, None).unwrap();
        check_header(&t, &header("Op,ID,Name\n"), OpColumn::Present, None).unwrap();
        check_header(&t, &header("Op,id,name\n"), OpColumn::Detect, None).unwrap();
    }

    #[test]
    fn the_timestamp_column_is_expected_after_op() {
        let t = table();
        check_header(
            &t,
            &header("Op,ts,id,name\n"),
            OpColumn::Present,
            Some("TS"),
        )
        .unwrap();
        check_header(&t, &header("ts,id,name\n"), OpColumn::Detect, Some("ts")).unwrap();
        let e = check_header(&t, &header("Op,id,name\n"), OpColumn::Present, Some("ts"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the timestamp column `ts`"), "{e}");
        // A table with a column of that name: the header names it after Op, not in its place.
        let with = spec(vec![
            col("id", ColumnType::Int8, false),
            col("ts", ColumnType::Timestamp, true),
            col("name", ColumnType::Text, true),
        ]);
        check_header(
            &with,
            &header("Op,ts,id,name\n"),
            OpColumn::Present,
            Some("ts"),
        )
        .unwrap();
        let e = check_header(
            &with,
            &header("Op,ts,id,ts,name\n"),
            OpColumn::Present,
            Some("ts"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("names both DMS's commit-time column"), "{e}");
    }

    #[test]
    fn missing_extra_and_reordered_columns_are_named() {
        let t = table();
        let e = check_header(&t, &header("id\n"), OpColumn::Absent, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "line 1: header row: table orders has column(s) the file lacks: name"
        );
        // Columns added at the end: schema drift, named.
        let e = check_header(
            &t,
            &header("Op,id,name,venue,fee\n"),
            OpColumn::Present,
            None,
        )
        .unwrap_err();
        match &e {
            DecodeError::Drift { extra, .. } => assert_eq!(extra, &["venue", "fee"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "line 1: header row: the file has column(s) at its end that table orders lacks: venue, fee (DMS added source columns)"
        );
        // An extra column elsewhere is not drift DMS makes.
        let e = check_header(&t, &header("Op,venue,id,name\n"), OpColumn::Present, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the file has column(s) table orders lacks: venue"),
            "{e}"
        );
        let e = check_header(&t, &header("name,id\n"), OpColumn::Absent, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column 1 is `name`, table orders's column 1 is `id`"),
            "{e}"
        );
        // An Op field where the file cannot have one is a column the table lacks.
        let e = check_header(&t, &header("Op,id,name\n"), OpColumn::Absent, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks: Op"), "{e}");
    }
}
