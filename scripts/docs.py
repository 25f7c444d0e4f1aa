#!/usr/bin/env python3
"""Generates the parts of the documentation that must not drift from the sources.

Run through scripts/docs.sh (which installs what this needs). What it does:

* applies db/*.sql (and the loader's own schema_migrations table, read from
  src/target/migrations.rs) to a scratch schema of a scratch Postgres database, the way the
  loader does, and reads the tables, columns, keys, constraints and indexes from pg_catalog;
* joins them with docs/model.toml (column meanings, logical relationships), failing when a
  column has no meaning, an entry names nothing, or a relationship does not fit the columns;
* reads every metric from src/telemetry/metrics.rs, every environment variable from src/config/
  (checked against docs/configuration.toml) and every user-facing message from src/ and the
  workspace's crates, crates/*/src/ (checked against docs/messages.toml);
* rewrites the generated blocks of docs/data_specification.md and docs/user_guide.md (between
  `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`) and writes the Graphviz
  sources docs/diagrams/*.dot.

`docs.py --out DIR` writes the results under DIR (same relative paths) instead of in place;
scripts/docs.sh --check uses that to compare with what is committed. Standard library only.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docsgen.diagrams import *  # noqa: E402,F401,F403  (every part, through its imports)

# ---------------------------------------------------------------------------------------------

OUTPUTS = {
    "docs/data_specification.md": ("tables", "value-formats", "relationships", "metrics"),
    "docs/user_guide.md": ("configuration", "troubleshooting", "metrics"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="write under this directory instead of in place")
    ap.add_argument("--pg", default=os.environ.get("DOCS_PG", "-h 127.0.0.1 -p 5432 -U postgres"),
                    help="psql connection options (default: $DOCS_PG or -h 127.0.0.1 -p 5432 -U postgres)")
    ap.add_argument("--admin-db", default=os.environ.get("DOCS_ADMIN_DB", "postgres"),
                    help="an existing database to create the scratch one from")
    args = ap.parse_args()
    out_root = args.out or ROOT
    try:
        notes = load_toml(ROOT / "docs/model.toml")
        model = build_model(introspect(ROOT, args.pg.split(), args.admin_db), notes)
        metrics = read_metrics(ROOT)
        blocks = {
            "tables": block_tables(model),
            "value-formats": block_value_formats(model),
            "relationships": block_relationships(model),
            "metrics": block_metrics(metrics),
            "configuration": block_configuration(config_variables(ROOT), load_toml(ROOT / "docs/configuration.toml")),
            "troubleshooting": block_troubleshooting(source_messages(ROOT), load_toml(ROOT / "docs/messages.toml")),
        }
        results = {
            "docs/diagrams/entity_relationship_model.dot": dot_erm(model),
            "docs/diagrams/table_diagram.dot": dot_tables(model),
        }
        for rel, names in OUTPUTS.items():
            results[rel] = fill_blocks(ROOT / rel, {n: blocks[n] for n in names})
    except DocsError as e:
        print(f"docs: {e}", file=sys.stderr)
        return 1
    for rel, text in results.items():
        target = out_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            if args.out is None:
                print(f"docs: wrote {target.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
