//! The entry point: builds the history, then hands over the LOAD files and the CDC batches.

use std::collections::BTreeMap;

use dms_naming::cdc_file_name;

use super::clock::{cdc_commit_micros, datetime};
use super::dialect::{CdcOps, FileDialect};
use super::emit::{dump, Emitter};
use super::fields::Fields;
use super::sim::Sim;
use super::spec::{order_count, strategy_count, SampleFile, SampleManifest, SampleSpec};

/// Generates the dataset, handing each file to `sink` in delivery order (all LOAD files of all tables first, then CDC batches in commit order). Only one file body is in memory at a time.
pub fn generate<E>(
    spec: &SampleSpec,
    sink: impl FnMut(SampleFile) -> Result<(), E>,
) -> Result<SampleManifest, E> {
    generate_in(spec, &FileDialect::default(), sink)
}

/// [`generate`], the files written as a DMS endpoint with these settings writes them.
pub fn generate_in<E>(
    spec: &SampleSpec,
    dialect: &FileDialect,
    mut sink: impl FnMut(SampleFile) -> Result<(), E>,
) -> Result<SampleManifest, E> {
    let mut sim = Sim::new(spec.seed);
    sim.build_history(strategy_count(spec.scale), order_count(spec.scale));

    let prefix = spec.bucket_path.trim_matches('/').to_string();
    let limit = spec.load_rows_per_file.max(1);
    let mut out = Emitter {
        prefix,
        fields: Fields::default(),
        files: Vec::new(),
        dialect: dialect.clone(),
        model: (dialect.cdc_ops != CdcOps::All).then(Default::default),
    };
    out.load(&sim.cx, "strategies", &sim.st, limit, &mut sink)?;
    out.load(&sim.cx, "orders", &sim.ord, limit, &mut sink)?;
    out.load(&sim.cx, "executions", &sim.ex, limit, &mut sink)?;

    let target = spec.cdc_rows_per_file.max(1);
    for b in 0..spec.cdc_files {
        let logs = sim.run_batch(b, target);
        let commit = cdc_commit_micros(b);
        let at = datetime(commit);
        let name = format!(
            "{}{}",
            dialect.folders(b, at),
            dialect.file_name(&cdc_file_name(at, false))
        );
        let name = (name.as_str(), commit);
        let last = b + 1 == spec.cdc_files;
        out.cdc(
            &sim.cx,
            "strategies",
            name,
            &logs.s,
            &sim.st,
            None,
            &mut sink,
        )?;
        // (Half of the records the file holds: the operations the endpoint writes.)
        let kept = logs
            .o
            .ops
            .iter()
            .filter(|(op, _)| dialect.cdc_ops.keeps(*op))
            .count();
        let split = last.then_some(kept / 2).filter(|&n| n > 0);
        out.cdc(&sim.cx, "orders", name, &logs.o, &sim.ord, split, &mut sink)?;
        out.cdc(
            &sim.cx,
            "executions",
            name,
            &logs.e,
            &sim.ex,
            None,
            &mut sink,
        )?;
    }

    let mut tables = BTreeMap::new();
    if let (true, Some(model)) = (spec.keep_state, out.model.take()) {
        // (Change files without some operations: the target's contents are the truth.)
        for (table, rows) in model {
            tables.insert(table, rows.into_values().collect());
        }
    } else if spec.keep_state {
        tables.insert("strategies".to_string(), dump(&sim.cx, &sim.st));
        tables.insert("orders".to_string(), dump(&sim.cx, &sim.ord));
        tables.insert("executions".to_string(), dump(&sim.cx, &sim.ex));
    }
    Ok(SampleManifest {
        files: out.files,
        tables,
    })
}
