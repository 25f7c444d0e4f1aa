"""The documented model: the schema joined with docs/model.toml."""
from __future__ import annotations

import html
import json
import os
import re
import secrets
import subprocess
from pathlib import Path
from .common import tomllib  # noqa: F401
from .common import *  # noqa: F401,F403
from .schema import *  # noqa: F401,F403

# ---------------------------------------------------------------------------------------------
# Model: the schema joined with docs/model.toml
# ---------------------------------------------------------------------------------------------

def load_toml(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise DocsError(f"{path.relative_to(ROOT)}: {e}") from e


def build_model(tables: list[dict], notes: dict) -> dict:
    problems: list[str] = []
    by_name = {t["name"]: t for t in tables}
    meta = notes.get("tables", {})
    lineage = notes.get("lineage", {})
    for name in meta:
        if name not in by_name:
            problems.append(f"docs/model.toml: table `{name}` does not exist in db/*.sql")
    for t in tables:
        cols = [c["name"] for c in t["columns"]]
        t["replicated"] = "_delivery_id" in cols
        t["pk"] = next((c["columns"] for c in t["constraints"] if c["type"] == "p"), [])
        t["unique"] = [c["columns"] for c in t["constraints"] if c["type"] in ("p", "u")]
        entry = meta.get(t["name"])
        if entry is None:
            problems.append(f"docs/model.toml: table `{t['name']}` has no [tables.{t['name']}] entry")
            continue
        t["summary"] = " ".join(entry.get("summary", "").split())
        t["role"] = entry.get("role", "")
        if not t["summary"]:
            problems.append(f"docs/model.toml: table `{t['name']}` has no summary")
        meanings = entry.get("columns", {})
        for col in meanings:
            if col not in cols:
                problems.append(f"docs/model.toml: column `{t['name']}.{col}` does not exist")
            elif col in lineage and t["replicated"]:
                problems.append(f"docs/model.toml: `{t['name']}.{col}` is a lineage column: describe it under [lineage]")
        for c in t["columns"]:
            meaning = meanings.get(c["name"])
            if meaning is None and t["replicated"]:
                meaning = lineage.get(c["name"])
            if not meaning:
                problems.append(f"docs/model.toml: column `{t['name']}.{c['name']}` has no meaning")
            c["meaning"] = " ".join((meaning or "").split())
            if t["replicated"] and not c["name"].startswith("_"):
                c["source_type"], c["source_text"] = source_type(c)
        if not t["pk"]:
            problems.append(f"table `{t['name']}` has no primary key")
    replicated_lineage = {c["name"] for t in tables if t["replicated"] for c in t["columns"] if c["name"].startswith("_")}
    for col in lineage:
        if col not in replicated_lineage:
            problems.append(f"docs/model.toml: lineage column `{col}` is on no replicated table")
    rels = []
    for r in notes.get("relationships", []):
        try:
            (ft, fc), (tt, tc) = r["from"].split("."), r["to"].split(".")
        except (KeyError, ValueError):
            problems.append(f"docs/model.toml: relationship {r} needs from/to as table.column")
            continue
        fcol = next((c for c in by_name.get(ft, {}).get("columns", []) if c["name"] == fc), None)
        tcol = next((c for c in by_name.get(tt, {}).get("columns", []) if c["name"] == tc), None)
        if fcol is None or tcol is None:
            problems.append(f"docs/model.toml: relationship {r['from']} -> {r['to']} names a column that does not exist")
            continue
        if fcol["type"] != tcol["type"]:
            problems.append(f"docs/model.toml: relationship {r['from']} ({fcol['type']}) -> {r['to']} ({tcol['type']}): types differ")
        if [tc] not in by_name[tt]["unique"]:
            problems.append(f"docs/model.toml: relationship target {r['to']} is neither a primary key nor unique")
        if r.get("kind") not in ("domain", "lineage"):
            problems.append(f"docs/model.toml: relationship {r['from']} -> {r['to']}: kind must be domain or lineage")
        rels.append({"from_table": ft, "from_col": fc, "to_table": tt, "to_col": tc,
                     "kind": r.get("kind"), "label": r.get("label", ""),
                     "nullable": not fcol["not_null"], "unique": [fc] in by_name[ft]["unique"]})
    if problems:
        raise DocsError("\n".join(problems))
    order = {"replicated": 0, "ledger": 1, "outbox": 2, "migrations": 3}
    domain_order = ["strategies", "orders", "executions"]
    tables.sort(key=lambda t: (order.get(t["role"], 9), domain_order.index(t["name"]) if t["name"] in domain_order else 99, t["name"]))
    return {"tables": tables, "relationships": rels}
