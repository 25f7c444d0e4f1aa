//! The end-of-run summary: per table, what the run delivered (or, in a dry run, what a real run
//! would deliver), as pgloader prints at the end of a load.
use std::collections::BTreeMap;

use crate::target::DeliveryResult;

/// One table's totals over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableTotals {
    /// Files applied (or, in a dry run, that would apply).
    pub files: u64,
    pub rows: u64,
    pub creates: u64,
    pub amends: u64,
    pub removes: u64,
    pub unchanged: u64,
    /// Files that failed (bad input, or a fault that outlasted the retries).
    pub errors: u64,
    /// Time spent delivering the table's files (their deliveries, summed), in microseconds.
    pub micros: u64,
}

impl TableTotals {
    pub fn add_delivery(&mut self, result: &DeliveryResult, elapsed: std::time::Duration) {
        self.files += 1;
        self.micros += elapsed.as_micros() as u64;
        self.rows += result.rows;
        self.creates += result.counts.creates;
        self.amends += result.counts.amends;
        self.removes += result.counts.removes;
        self.unchanged += result.counts.unchanged;
    }

    fn add(&mut self, other: &TableTotals) {
        self.files += other.files;
        self.rows += other.rows;
        self.creates += other.creates;
        self.amends += other.amends;
        self.removes += other.removes;
        self.unchanged += other.unchanged;
        self.errors += other.errors;
        self.micros += other.micros;
    }
}

/// Per-table totals, by table name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub tables: BTreeMap<String, TableTotals>,
}

impl RunTotals {
    pub fn table(&mut self, name: &str) -> &mut TableTotals {
        self.tables.entry(name.to_string()).or_default()
    }

    /// The sum over every table.
    pub fn total(&self) -> TableTotals {
        let mut total = TableTotals::default();
        for t in self.tables.values() {
            total.add(t);
        }
        total
    }

    /// The summary as aligned text lines: a header, one line per table, a total line.
    pub fn lines(&self) -> Vec<String> {
        const HEADERS: [&str; 9] = [
            "table",
            "files",
            "rows",
            "creates",
            "amends",
            "removes",
            "unchanged",
            "errors",
            "seconds",
        ];
        let row = |name: &str, t: &TableTotals| -> [String; 9] {
            [
                name.to_string(),
                t.files.to_string(),
                t.rows.to_string(),
                t.creates.to_string(),
                t.amends.to_string(),
                t.removes.to_string(),
                t.unchanged.to_string(),
                t.errors.to_string(),
                format!("{:.2}", t.micros as f64 / 1e6),
            ]
        };
        let mut cells: Vec<[String; 9]> = vec![HEADERS.map(String::from)];
        cells.extend(self.tables.iter().map(|(name, t)| row(name, t)));
        cells.push(row("total", &self.total()));
        let widths: Vec<usize> = (0..9)
            .map(|i| cells.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        cells
            .iter()
            .map(|r| {
                let mut line = format!("{:<w$}", r[0], w = widths[0]);
                for i in 1..9 {
                    line.push_str(&format!("  {:>w$}", r[i], w = widths[i]));
                }
                line
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::NetCounts;

    #[test]
    fn totals_add_up_per_table_and_in_all() {
        let ms = std::time::Duration::from_millis;
        let mut totals = RunTotals::default();
        let result = |c, a, r, u, rows| DeliveryResult {
            counts: NetCounts {
                creates: c,
                amends: a,
                removes: r,
                unchanged: u,
            },
            rows,
            ..DeliveryResult::default()
        };
        totals
            .table("orders")
            .add_delivery(&result(10, 0, 0, 0, 10), ms(500));
        totals
            .table("orders")
            .add_delivery(&result(1, 2, 3, 4, 12), ms(250));
        totals.table("orders").errors += 1;
        totals
            .table("executions")
            .add_delivery(&result(5, 0, 0, 0, 5), ms(10));
        assert_eq!(
            totals.tables["orders"],
            TableTotals {
                files: 2,
                rows: 22,
                creates: 11,
                amends: 2,
                removes: 3,
                unchanged: 4,
                errors: 1,
                micros: 750_000,
            }
        );
        let total = totals.total();
        assert_eq!((total.files, total.rows, total.errors), (3, 27, 1));
        let lines = totals.lines();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("table "), "{}", lines[0]);
        assert!(lines[0].ends_with("errors  seconds"));
        // Tables in name order, then the total; numbers right-aligned under their headers.
        assert!(lines[1].starts_with("executions"));
        assert!(lines[2].starts_with("orders"));
        assert!(lines[3].starts_with("total"));
        assert!(lines[2].ends_with("     1     0.75"), "{}", lines[2]);
        assert!(lines[3].ends_with("     0.76"), "{}", lines[3]);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
    }
}
