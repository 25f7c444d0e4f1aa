//! The staged apply: one statement that takes a staged file's net change per key into its table
//! and counts it.
//!
//! Its parts, as CTEs, each reading the one before:
//!
//! - `last`: one row per key: the key's last row in the file (by `_seq`). In a *marked* stage
//!   (DMS's `CsvNoSupValue`, see [`crate::dms::StagingTuple`]) a row may leave columns
//!   unsupplied: `last` then takes, per column, the latest value the file supplied for the key,
//!   and whether it supplied one at all (`_supplied_<i>`).
//! - `applicable` (a late file's guarded apply only): the keys no later change file wrote.
//! - `merged` (marked only): a column the file never supplied for a key takes the table's value.
//! - `removed`, `upserted`: the `D` keys deleted, the others upserted, a row rewritten only when
//!   it differs (so the counts say what changed).
use super::{qualified, quote_ident, reload};
use crate::dms::TableSpec;

/// How a table's files are staged and judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageShape {
    /// The stage has the `_unsupplied` marks (see the module's doc).
    pub marked: bool,
    /// The index of the table's column holding DMS's commit time (`TimestampColumnName`), if it
    /// has one: a late file's rows are judged by it.
    pub commit_column: Option<usize>,
}

/// The set-based apply of the staged file, in one statement: keep the last change per key, delete
/// the `D` keys, upsert the others (rewriting a row only when it differs), and count. `$1` is the
/// delivery id, `$2` its start time (the rows' `_loaded_at`). Returns (keys, creates, amends,
/// removes).
pub fn apply_stage(schema: &str, spec: &TableSpec, stage: &str, shape: StageShape) -> String {
    Apply::new(schema, spec, stage, shape).sql(false)
}

/// [`apply_stage`] for a change file that arrived late (`LATE_FILE_POLICY=apply-guarded`): a key
/// whose row in the table is newer is left as it is, and counts as unchanged. Newer: by the
/// commit-time column when the table has one and both rows hold it (the table's later than the
/// file's row), else by lineage: the row was written by a later change file (see
/// [`reload::newer_changes`], `$3` the late file's commit stamp, `$4` the table).
pub fn apply_stage_guarded(
    schema: &str,
    spec: &TableSpec,
    stage: &str,
    shape: StageShape,
) -> String {
    Apply::new(schema, spec, stage, shape).sql(true)
}

/// The names an apply statement is made of.
struct Apply<'a> {
    schema: &'a str,
    spec: &'a TableSpec,
    /// `"schema"."table"`.
    target: String,
    stage: String,
    marked: bool,
    /// The commit-time column, quoted.
    commit_column: Option<String>,
    /// Every column, quoted, in the table's order.
    cols: Vec<String>,
    /// The key columns, quoted.
    keys: Vec<String>,
}

impl<'a> Apply<'a> {
    fn new(schema: &'a str, spec: &'a TableSpec, stage: &str, shape: StageShape) -> Self {
        Apply {
            schema,
            spec,
            target: qualified(schema, &spec.name),
            stage: quote_ident(stage),
            marked: shape.marked,
            commit_column: shape
                .commit_column
                .and_then(|i| spec.columns.get(i))
                .map(|c| quote_ident(&c.name)),
            cols: spec.columns.iter().map(|c| quote_ident(&c.name)).collect(),
            keys: spec
                .key
                .iter()
                .map(|&i| quote_ident(&spec.columns[i].name))
                .collect(),
        }
    }

    /// The non-key columns, quoted, with their index in the table.
    fn non_keys(&self) -> impl Iterator<Item = (usize, &String)> {
        self.cols
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.spec.key.contains(i))
    }

    /// `t.k = l.k AND ...`.
    fn key_join(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("t.{k} = l.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `last`: one row per key.
    fn last(&self) -> String {
        let key_list = self.keys.join(", ");
        if !self.marked {
            return format!(
                "SELECT DISTINCT ON ({key_list}) * FROM {} ORDER BY {key_list}, \"_seq\" DESC",
                self.stage
            );
        }
        // A value counts only after the key's last delete in the file (a row deleted and
        // inserted again does not get its old values back).
        let mut select = vec![
            key_list.clone(),
            "(array_agg(\"_op\" ORDER BY \"_seq\" DESC))[1] AS \"_op\"".to_string(),
            "bool_or(\"_op\" = 'D') AS \"_deleted\"".to_string(),
        ];
        for (i, c) in self.non_keys() {
            let supplied = format!(
                "((\"_unsupplied\" IS NULL OR get_bit(\"_unsupplied\", {i}) = 0) \
                 AND \"_seq\" > coalesce(\"_last_delete\", 0))"
            );
            select.push(format!(
                "(array_agg({c} ORDER BY \"_seq\" DESC) FILTER (WHERE {supplied}))[1] AS {c}"
            ));
            select.push(format!("bool_or({supplied}) AS \"_supplied_{i}\""));
        }
        format!(
            "SELECT {} FROM (SELECT s.*, max(CASE WHEN \"_op\" = 'D' THEN \"_seq\" END) \
                 OVER (PARTITION BY {key_list}) AS \"_last_delete\" FROM {} s) s \
             GROUP BY {key_list}",
            select.join(", "),
            self.stage
        )
    }

    /// `merged` (marked): the columns never supplied take the table's values.
    fn merged(&self, from: &str) -> String {
        let mut select = vec!["l.\"_op\"".to_string()];
        select.extend(self.keys.iter().map(|k| format!("l.{k}")));
        for (i, c) in self.non_keys() {
            // (A key the file deleted has no value left to keep.)
            select.push(format!(
                "CASE WHEN l.\"_supplied_{i}\" THEN l.{c} WHEN l.\"_deleted\" THEN NULL \
                 ELSE t.{c} END AS {c}"
            ));
        }
        format!(
            "SELECT {} FROM {from} l LEFT JOIN {} t ON {}",
            select.join(", "),
            self.target,
            self.key_join()
        )
    }

    fn sql(&self, guarded: bool) -> String {
        let target = &self.target;
        let key_join = self.key_join();
        let key_list = self.keys.join(", ");
        let non_keys: Vec<&String> = self.non_keys().map(|(_, c)| c).collect();
        let mut set: Vec<String> = non_keys
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        set.push("\"_delivery_id\" = EXCLUDED.\"_delivery_id\"".into());
        set.push("\"_loaded_at\" = EXCLUDED.\"_loaded_at\"".into());
        let differs = if non_keys.is_empty() {
            "false".to_string()
        } else {
            let side = |alias: &str| {
                non_keys
                    .iter()
                    .map(|c| format!("{alias}.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "ROW({}) IS DISTINCT FROM ROW({})",
                side("t"),
                side("EXCLUDED")
            )
        };
        let mut ctes = vec![format!("last AS ({})", self.last())];
        let mut applied = "last";
        if guarded {
            let by_lineage = "t.\"_delivery_id\" IN (SELECT id FROM newer)";
            let newer_row = match &self.commit_column {
                // (The same commit time, to the unit the source keeps: lineage decides.)
                Some(c) => format!(
                    "CASE WHEN t.{c} IS NOT NULL AND l.{c} IS NOT NULL \
                     THEN t.{c} > l.{c} OR (t.{c} = l.{c} AND {by_lineage}) \
                     ELSE {by_lineage} END"
                ),
                None => by_lineage.to_string(),
            };
            ctes.push(format!("newer AS ({})", reload::newer_changes(self.schema)));
            ctes.push(format!(
                "applicable AS (
            SELECT l.* FROM last l
             WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {key_join} AND {newer_row})
         )"
            ));
            applied = "applicable";
        }
        if self.marked {
            ctes.push(format!("merged AS ({})", self.merged(applied)));
            applied = "merged";
        }
        format!(
            "WITH {},
         removed AS (
            DELETE FROM {target} t USING {applied} l WHERE l.\"_op\" = 'D' AND {key_join} RETURNING 1
         ),
         upserted AS (
            INSERT INTO {target} AS t ({cols}, \"_delivery_id\", \"_loaded_at\")
            SELECT {cols}, $1::int8, $2::timestamptz FROM {applied} WHERE \"_op\" <> 'D'
            ON CONFLICT ({key_list}) DO UPDATE SET {set}
            WHERE {differs}
            RETURNING (t.xmax = 0) AS created
         )
         SELECT (SELECT count(*) FROM last),
                (SELECT count(*) FROM upserted WHERE created),
                (SELECT count(*) FROM upserted WHERE NOT created),
                (SELECT count(*) FROM removed)",
            ctes.join(",\n         "),
            cols = self.cols.join(", "),
            set = set.join(", "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dms::{Column, ColumnType};

    fn kv() -> TableSpec {
        TableSpec {
            name: "kv".into(),
            columns: vec![
                Column {
                    name: "k".into(),
                    ty: ColumnType::Int4,
                    nullable: false,
                },
                Column {
                    name: "v".into(),
                    ty: ColumnType::Text,
                    nullable: true,
                },
            ],
            key: vec![0],
        }
    }

    #[test]
    fn single_value_column_uses_row_constructor() {
        let sql = apply_stage("s", &kv(), "_peo_stage_0", StageShape::default());
        assert!(
            sql.contains("ROW(t.\"v\") IS DISTINCT FROM ROW(EXCLUDED.\"v\")"),
            "{sql}"
        );
    }

    #[test]
    fn a_marked_apply_takes_the_latest_supplied_value_else_the_tables() {
        let marked = StageShape {
            marked: true,
            commit_column: None,
        };
        let sql = apply_stage_guarded("s", &kv(), "_peo_stage_0", marked);
        assert!(sql.contains("GROUP BY \"k\""), "{sql}");
        assert!(
            sql.contains(
                "FILTER (WHERE ((\"_unsupplied\" IS NULL OR get_bit(\"_unsupplied\", 1) = 0) AND \"_seq\" > coalesce(\"_last_delete\", 0)))"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("CASE WHEN l.\"_supplied_1\" THEN l.\"v\" WHEN l.\"_deleted\" THEN NULL ELSE t.\"v\" END"),
            "{sql}"
        );
        // The guard reads `last`, the merge the guarded keys, the writes the merge.
        assert!(sql.contains("SELECT l.* FROM last l"), "{sql}");
        assert!(sql.contains("FROM applicable l LEFT JOIN"), "{sql}");
        assert!(sql.contains("USING merged l"), "{sql}");
        let plain = apply_stage("s", &kv(), "_peo_stage_0", StageShape::default());
        assert!(
            !plain.contains("_unsupplied") && !plain.contains("merged"),
            "{plain}"
        );
    }

    #[test]
    fn a_late_row_is_judged_by_the_commit_time_column_when_both_rows_hold_it() {
        let shape = StageShape {
            marked: false,
            commit_column: Some(1),
        };
        let sql = apply_stage_guarded("s", &kv(), "_peo_stage_0", shape);
        assert!(
            sql.contains("CASE WHEN t.\"v\" IS NOT NULL AND l.\"v\" IS NOT NULL THEN t.\"v\" > l.\"v\" OR (t.\"v\" = l.\"v\" AND t.\"_delivery_id\" IN (SELECT id FROM newer)) ELSE t.\"_delivery_id\" IN (SELECT id FROM newer) END"),
            "{sql}"
        );
        let by_lineage = apply_stage_guarded("s", &kv(), "_peo_stage_0", StageShape::default());
        assert!(
            by_lineage.contains(
                "WHERE t.\"k\" = l.\"k\" AND t.\"_delivery_id\" IN (SELECT id FROM newer)"
            ),
            "{by_lineage}"
        );
    }
}
