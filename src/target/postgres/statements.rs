//! The SQL texts a delivery sends, built once per table at start-up (from [`queries`]) rather
//! than once per file; each is prepared once per connection (deadpool's statement cache).
use std::collections::HashMap;
use std::sync::Arc;

use crate::dms::TableSpec;
use crate::target::queries::{self, StageShape};

/// The statements of the ledger and the outbox of the loader's schema.
#[derive(Debug)]
pub(super) struct LedgerSql {
    pub is_delivered: String,
    pub clear_failure: String,
    pub record_success: String,
    pub insert_outbox: String,
    pub is_delivered_as: String,
    pub reload_facts: String,
    pub detect_reload: String,
    pub clear_loads: String,
    pub record_reload: String,
}

/// The statements of one replicated table.
#[derive(Debug)]
pub(super) struct TableSql {
    /// `schema.table`: the stream's advisory lock.
    pub stream: String,
    /// `"schema"."table"`.
    pub qualified: String,
    /// The staging table of the table's layout.
    pub stage: String,
    /// Creates it once per connection, emptied by every commit.
    pub create_stage: String,
    /// Creates it inside a delivery, dropped with it (a dry run's).
    pub create_stage_in_delivery: String,
    pub drop_stage: String,
    pub copy_stage: String,
    pub copy_direct: String,
    pub apply_stage: String,
    /// A late change file's apply (`LATE_FILE_POLICY=apply-guarded`).
    pub apply_stage_guarded: String,
    /// A full-load re-run's removal of the keys it lacks.
    pub remove_absent: String,
    pub rebuild_indexes: String,
}

/// Every statement text of a target.
#[derive(Debug)]
pub(super) struct Statements {
    pub ledger: LedgerSql,
    tables: HashMap<String, Arc<TableSql>>,
}

impl Statements {
    pub(super) fn new(schema: &str, tables: &HashMap<String, Arc<TableSpec>>) -> Self {
        Statements {
            ledger: LedgerSql {
                is_delivered: queries::is_delivered(schema),
                clear_failure: queries::clear_failure(schema),
                record_success: queries::record_success(schema),
                insert_outbox: queries::insert_outbox(schema),
                is_delivered_as: queries::reload::is_delivered_as(schema),
                reload_facts: queries::reload::reload_facts(schema),
                detect_reload: queries::reload::detect_reload(schema),
                clear_loads: queries::reload::clear_loads(schema),
                record_reload: queries::reload::record_reload(schema),
            },
            tables: tables
                .iter()
                .map(|(name, spec)| {
                    (
                        name.clone(),
                        Arc::new(TableSql::new(schema, spec, StageShape::default())),
                    )
                })
                .collect(),
        }
    }

    /// The statements of `spec`'s table (built now if the table was not known at start-up, or
    /// for another shape than the default: see [`StageShape`]).
    pub(super) fn table(&self, schema: &str, spec: &TableSpec, shape: StageShape) -> Arc<TableSql> {
        match self.tables.get(&spec.name) {
            // (A table whose columns a delivery added has another layout: built now.)
            Some(sql)
                if shape == StageShape::default()
                    && sql.stage == queries::stage_name(spec, false) =>
            {
                sql.clone()
            }
            _ => Arc::new(TableSql::new(schema, spec, shape)),
        }
    }
}

impl TableSql {
    fn new(schema: &str, spec: &TableSpec, shape: StageShape) -> Self {
        let marked = shape.marked;
        let stage = queries::stage_name(spec, marked);
        TableSql {
            stream: format!("{schema}.{}", spec.name),
            qualified: queries::qualified(schema, &spec.name),
            create_stage: queries::create_stage(&stage, spec, marked, true),
            create_stage_in_delivery: queries::create_stage(&stage, spec, marked, false),
            drop_stage: format!("DROP TABLE {}", queries::quote_ident(&stage)),
            copy_stage: queries::copy_stage(&stage),
            copy_direct: queries::copy_direct(schema, spec),
            apply_stage: queries::apply_stage(schema, spec, &stage, shape),
            apply_stage_guarded: queries::apply_stage_guarded(schema, spec, &stage, shape),
            remove_absent: queries::reload::remove_absent(schema, spec, &stage),
            rebuild_indexes: queries::rebuild_indexes(schema, &spec.name),
            stage,
        }
    }
}
