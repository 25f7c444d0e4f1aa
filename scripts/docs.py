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
import html
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "paper_engine"
METRIC_NAMESPACE = "paper_engine_loader"


class DocsError(Exception):
    """A problem the documentation's author has to fix."""


# ---------------------------------------------------------------------------------------------
# Rust source: string literals with the calls they sit in
# ---------------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*!?")
_RAW = re.compile(r'b?r(#*)"')
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'", "0": "\\0", "r": "\\r"}


def rust_literals(text: str):
    """Yields (line, value, callees) for each string literal of Rust source `text`.

    `callees` lists the enclosing open brackets from the outside in: the called path for a call
    (`ConfigError::new`, `error!`, `format!`), `#[` for an attribute, or the bracket itself.
    Comments (doc comments included) are skipped; `\\` line continuations are joined."""
    i, n, line = 0, len(text), 1
    stack: list[str] = []
    path, prev = "", ""
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += text[i] == "\n"
                    i += 1
            continue
        raw = _RAW.match(text, i)
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + raw.group(1)
            j = text.find(end, raw.end())
            value = text[raw.end() : j]
            yield line, value, list(stack)
            line += value.count("\n")
            i, path, prev = j + len(end), "", "lit"
            continue
        if c == '"' or (c == "b" and text.startswith('b"', i) and not text[i - 1].isalnum()):
            j = i + (2 if c == "b" else 1)
            start_line, buf = line, []
            while text[j] != '"':
                if text[j] == "\\":
                    nxt = text[j + 1]
                    if nxt == "\n":
                        line += 1
                        j += 2
                        while text[j] in " \t\n":
                            line += text[j] == "\n"
                            j += 1
                        continue
                    buf.append(_ESCAPES.get(nxt, "\\" + nxt))
                    j += 2
                    continue
                line += text[j] == "\n"
                buf.append(text[j])
                j += 1
            yield start_line, "".join(buf), list(stack)
            i, path, prev = j + 1, "", "lit"
            continue
        if c == "'":
            if text[i + 1] == "\\":
                i = text.find("'", i + 3 if text[i + 2] == "'" else i + 2) + 1
            elif i + 2 < n and text[i + 2] == "'":
                i += 3
            else:  # a lifetime
                i += 1
                continue
            prev = "lit"
            continue
        ident = _IDENT.match(text, i)
        if ident:
            tok = ident.group(0)
            path = path + tok if prev == "::" else tok
            prev, i = "ident", ident.end()
            continue
        if text.startswith("::", i):
            path, prev, i = path + "::", "::", i + 2
            continue
        if c in "([{":
            if c == "[" and prev == "#":
                stack.append("#[")
            elif c == "(" and prev == "ident":
                stack.append(path)
            else:
                stack.append(c)
        elif c in ")]}":
            if stack:
                stack.pop()
        prev, path, i = c, "", i + 1


def non_test_source(path: Path) -> str:
    """A source file without its `#[cfg(test)] mod tests` block (always last in this crate)."""
    text = path.read_text(encoding="utf-8")
    cut = re.search(r"\n#\[cfg\(test\)\]\s*\nmod tests", text)
    return text[: cut.start()] if cut else text


def is_test_file(rel: str) -> bool:
    """Whether a file of src/ or of a crate's crates/<name>/src/ (path relative to the root) holds
    only unit tests: a module's `tests.rs` or `*_tests.rs`, or a file under its `tests/` folder."""
    parts = rel.split("/")
    if parts[0] == "crates":
        parts = parts[2:]
    return bool(parts) and parts[0] == "src" and (
        parts[-1] == "tests.rs" or parts[-1].endswith("_tests.rs") or "tests" in parts[1:-1]
    )


# Calls whose string arguments are not messages a user can meet: progress lines, panics on
# broken invariants, and building blocks of other text.
_NOT_MESSAGES = {
    "info!", "tracing::info!", "debug!", "tracing::debug!", "trace!", "tracing::trace!",
    "expect", "println!", "assert!", "assert_eq!", "debug_assert!",
}
# Files whose literals are data (sample dataset), metric help texts or SQL: only their log
# macros can hold messages.
# The status module's files and the CLI's listings lay out output (tables, the page, commands to
# run), not messages.
_DATA_FILES = {
    "src/telemetry/metrics.rs", "src/target/queries/mod.rs", "src/target/queries/operate.rs",
    "src/status/mod.rs", "src/status/text.rs", "src/status/html.rs",
}
_DATA_DIRS = ("crates/dms-sample/src/",)
_SQL = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|SAVEPOINT|RELEASE|ROLLBACK|COMMIT|BEGIN|SET)\b")
_LOG_MACROS = {"error!", "warn!", "tracing::error!", "tracing::warn!"}


def source_messages(root: Path) -> dict[str, list[str]]:
    """Every literal in src/ and crates/*/src/ (tests excluded) that can reach a user: log errors
    and warnings, error types' texts, configuration and decoding errors, HTTP answers. Maps the
    text to where it is (`file:line`)."""
    found: dict[str, list[str]] = {}
    sources = sorted((root / "src").rglob("*.rs")) + sorted(root.glob("crates/*/src/**/*.rs"))
    for path in sources:
        rel = path.relative_to(root).as_posix()
        if is_test_file(rel):
            continue
        for line, value, callees in rust_literals(non_test_source(path)):
            if any(c in _NOT_MESSAGES for c in callees):
                continue
            data = rel in _DATA_FILES or rel.startswith(_DATA_DIRS)
            if data and not any(c in _LOG_MACROS for c in callees):
                continue
            if _SQL.match(value):
                continue
            words = re.sub(r"\{[^{}]*\}", " ", value)
            if not re.search(r"[A-Za-z]{2}", words) or " " not in value.strip():
                continue
            found.setdefault(value.strip(), []).append(f"{rel}:{line}")
    return found


def config_variables(root: Path) -> list[str]:
    """The environment variables src/config/ reads: its upper-case string literals."""
    names = []
    for path in sorted((root / "src/config").glob("*.rs")):
        if is_test_file(path.relative_to(root).as_posix()):
            continue
        for _, value, _ in rust_literals(non_test_source(path)):
            if re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+|[A-Z]{3,}", value) and value not in names:
                names.append(value)
    return names


def read_metrics(root: Path) -> list[dict]:
    """Every metric registered in src/telemetry/metrics.rs: name, kind, help, labels, buckets, doc."""
    text = non_test_source(root / "src/telemetry/metrics.rs")
    docs: dict[str, str] = {}
    struct = re.search(r"pub struct Metrics \{(.*?)\n\}", text, re.S)
    if not struct:
        raise DocsError("src/telemetry/metrics.rs: struct Metrics not found")
    pending: list[str] = []
    for raw_line in struct.group(1).splitlines():
        line = raw_line.strip()
        if line.startswith("///"):
            pending.append(line[3:].strip())
        elif m := re.match(r"pub (\w+):", line):
            docs[m.group(1)] = " ".join(pending)
            pending = []
    kinds = {
        "IntCounterVec": "counter", "IntCounter": "counter", "CounterVec": "counter",
        "Counter": "counter", "IntGaugeVec": "gauge", "IntGauge": "gauge", "GaugeVec": "gauge",
        "Gauge": "gauge", "HistogramVec": "histogram", "Histogram": "histogram",
    }
    metrics = []
    ctors = "|".join(sorted(kinds, key=len, reverse=True))
    pattern = rf"let (\w+) = ({ctors})::(?:new|with_opts)\((.*?)\.expect\(\"metric\"\);"
    for m in re.finditer(pattern, text, re.S):
        field, ctor, body = m.groups()
        lits = [v for _, v, _ in rust_literals(body)]
        name, help_text = lits[0], lits[1]
        labels = []
        if lm := re.search(r"&\[([^\]]*)\]\s*,?\s*\)\s*$", body.strip()):
            labels = re.findall(r'"([^"]+)"', lm.group(1))
        const = re.findall(r'const_label\("([^"]+)"', body)
        buckets = None
        if bm := re.search(r"\.buckets\(vec!\[([^\]]*)\]", body):
            buckets = [b.strip() for b in bm.group(1).split(",") if b.strip()]
        metrics.append({
            "field": field, "name": f"{METRIC_NAMESPACE}_{name}", "kind": kinds[ctor],
            "help": help_text, "labels": labels, "const_labels": const, "buckets": buckets,
            "doc": docs.get(field, ""),
        })
    registered = re.findall(r"Box::new\((\w+)\.clone\(\)\)", text)
    names = [m["field"] for m in metrics]
    if sorted(registered) != sorted(names):
        raise DocsError(
            f"src/telemetry/metrics.rs: metrics built {sorted(names)} differ from metrics registered "
            f"{sorted(registered)}: the parser in scripts/docs.py needs updating"
        )
    if not metrics:
        raise DocsError("src/telemetry/metrics.rs: no metric found")
    return metrics


# ---------------------------------------------------------------------------------------------
# The schema, from a scratch database
# ---------------------------------------------------------------------------------------------

CATALOG_QUERY = """
SELECT coalesce(json_agg(t ORDER BY t.name), '[]') FROM (
  SELECT c.relname AS name,
    (SELECT json_agg(json_build_object(
              'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
              'typname', ty.typname, 'typmod', a.atttypmod, 'not_null', a.attnotnull,
              'default', pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum)
       FROM pg_attribute a
       JOIN pg_type ty ON ty.oid = a.atttypid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
    (SELECT coalesce(json_agg(json_build_object(
              'name', co.conname, 'type', co.contype, 'def', pg_get_constraintdef(co.oid),
              'columns', (SELECT json_agg(a.attname ORDER BY k.ord)
                            FROM unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum))
              ORDER BY co.contype DESC, co.conname), '[]')
       FROM pg_constraint co WHERE co.conrelid = c.oid) AS constraints,
    (SELECT coalesce(json_agg(json_build_object('name', i.relname, 'def', pg_get_indexdef(i.oid))
              ORDER BY i.relname), '[]')
       FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
      WHERE x.indrelid = c.oid
        AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.oid)) AS indexes
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = :'schema' AND c.relkind IN ('r', 'p')
) t
"""


def psql(args: list[str], db: str, sql: str, variables: dict[str, str] | None = None) -> str:
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", *args, "-d", db]
    for k, v in (variables or {}).items():
        cmd += ["-v", f"{k}={v}"]
    done = subprocess.run(cmd, input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        raise DocsError(f"psql failed ({' '.join(cmd)}):\n{done.stderr.strip()}")
    return done.stdout


def migrations_sql(root: Path) -> str:
    """The loader's migrations in the order it applies them: schema_migrations (from
    src/target/migrations.rs), then db/*.sql as listed there."""
    rs = (root / "src/target/migrations.rs").read_text(encoding="utf-8")
    create = re.search(r"(CREATE TABLE IF NOT EXISTS schema_migrations \(.*?\);)", rs, re.S)
    if not create:
        raise DocsError("src/target/migrations.rs: the schema_migrations table was not found")
    listed = re.findall(r'include_str!\("\.\./\.\./(db/[^"]+\.sql)"\)', rs)
    on_disk = sorted(p.relative_to(root).as_posix() for p in (root / "db").glob("*.sql"))
    if sorted(listed) != on_disk:
        raise DocsError(f"db/*.sql {on_disk} differ from the migrations listed in src/target/migrations.rs {listed}")
    parts = [create.group(1)]
    parts += [(root / f).read_text(encoding="utf-8") for f in listed]
    return "\n".join(parts)


def introspect(root: Path, pg_args: list[str], admin_db: str) -> list[dict]:
    """Applies the migrations to a scratch database and returns its tables from pg_catalog."""
    scratch = f"peo_docs_{os.getpid()}_{secrets.token_hex(3)}"
    psql(pg_args, admin_db, f'CREATE DATABASE "{scratch}"')
    try:
        script = (
            f"BEGIN;\nCREATE SCHEMA {SCHEMA};\nSET LOCAL search_path TO {SCHEMA};\n"
            f"{migrations_sql(root)}\nCOMMIT;\n"
        )
        psql(pg_args, scratch, script)
        out = psql(pg_args, scratch, CATALOG_QUERY, {"schema": SCHEMA})
        tables = json.loads(out)
    finally:
        psql(pg_args, admin_db, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    if not tables:
        raise DocsError("the migrations created no table")
    return tables


def short_type(pg_type: str) -> str:
    t = pg_type
    t = t.replace("character varying", "varchar").replace("timestamp without time zone", "timestamp")
    t = t.replace("timestamp with time zone", "timestamptz")
    t = re.sub(r"^character\b", "char", t)
    return t


# How a value of each Postgres type is written in a DMS file, as src/dms.rs decodes it:
# (source type shown in the column tables, accepted text).
def source_type(col: dict) -> tuple[str, str]:
    name, mod = col["typname"], col["typmod"]
    n = mod - 4 if mod >= 4 else None
    if name == "int2":
        return "int16", "decimal integer, optional sign, -32768..32767"
    if name == "int4":
        return "int32", "decimal integer, optional sign, -2147483648..2147483647"
    if name == "int8":
        return "int64", "decimal integer, optional sign, 64-bit range"
    if name == "numeric":
        if n is None:
            return "decimal", "`[+-]digits[.digits]`, no exponent"
        p, s = (n >> 16) & 0xFFFF, n & 0xFFFF
        return (
            f"decimal({p},{s})",
            f"`[+-]digits[.digits]`, no exponent; at most {p - s} integer digits and {s} "
            "fraction digits (extra trailing zeros are dropped)",
        )
    if name in ("varchar", "bpchar"):
        if n is None:
            return "string", "UTF-8 text"
        return f"string({n})", f"UTF-8 text of at most {n} characters, no NUL"
    if name == "text":
        return "string", "UTF-8 text, no NUL"
    if name == "timestamp":
        return "datetime", "`YYYY-MM-DD HH:MM:SS[.ffffff]` (or `T` for the space), UTC, no zone suffix"
    if name == "timestamptz":
        return "datetime", "`YYYY-MM-DD HH:MM:SS[.ffffff]`, read as UTC"
    if name == "date":
        return "date", "`YYYY-MM-DD`"
    if name == "bool":
        return "boolean", "`t`/`f`, `true`/`false` (any case), `1`/`0`"
    if name in ("float4", "float8"):
        return name, "decimal or exponent notation, `inf`, `nan`"
    raise DocsError(f"column {col['name']} has type {col['type']}: add how DMS writes it to scripts/docs.py")


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


# ---------------------------------------------------------------------------------------------
# Markdown blocks
# ---------------------------------------------------------------------------------------------

def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    text = " ".join(text.split())
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def column_flags(t: dict, c: dict) -> str:
    flags = []
    if c["name"] in t["pk"]:
        flags.append("PK")
    elif [c["name"]] in t["unique"]:
        flags.append("unique")
    flags.append("NOT NULL" if c["not_null"] else "NULL")
    return ", ".join(flags)


def index_text(t: dict) -> list[str]:
    lines = []
    for con in t["constraints"]:
        if con["type"] == "c":
            lines.append(f"check `{con['def']}`")
        elif con["type"] == "u":
            lines.append(f"unique `({', '.join(con['columns'])})`")
    for ix in t["indexes"]:
        m = re.search(r"USING \w+ (\(.*?\))(?: WHERE (.*))?$", ix["def"])
        what = m.group(1) if m else ix["def"]
        where = f" where `{m.group(2)}`" if m and m.group(2) else ""
        lines.append(f"index `{ix['name']}` on `{what}`{where}")
    return lines


def block_tables(model: dict) -> str:
    out = []
    for t in model["tables"]:
        out.append(f"### `{t['name']}`\n")
        out.append(t["summary"] + "\n")
        facts = [f"Primary key: `{', '.join(t['pk'])}`."]
        if t["replicated"]:
            facts.append(f"Files: `<bucket_path>/dbo/{t['name']}/`.")
        out.append(" ".join(facts) + "\n")
        if t["replicated"]:
            out.append("| # | column | source type | Postgres type | null | meaning |")
            out.append("|---|---|---|---|---|---|")
            pos = 0
            for c in t["columns"]:
                if c["name"].startswith("_"):
                    src, num = "(added by the loader)", ""
                else:
                    pos += 1
                    src, num = f"`{c['source_type']}`", str(pos)
                out.append(f"| {num} | `{c['name']}` | {src} | `{short_type(c['type'])}` | "
                           f"{column_flags(t, c)} | {cell(c['meaning'])} |")
        else:
            out.append("| column | Postgres type | null | default | meaning |")
            out.append("|---|---|---|---|---|")
            for c in t["columns"]:
                default = c["default"] or ""
                if default.startswith("nextval("):
                    default = "a sequence (`serial`)" if c["typname"] == "int4" else "a sequence (`bigserial`)"
                elif default:
                    default = f"`{default}`"
                out.append(f"| `{c['name']}` | `{short_type(c['type'])}` | {column_flags(t, c)} | "
                           f"{cell(default)} | {cell(c['meaning'])} |")
        extra = index_text(t)
        if extra:
            out.append("")
            out.append("Constraints and indexes: " + "; ".join(extra) + ".")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def block_value_formats(model: dict) -> str:
    seen: dict[str, tuple[str, list[str]]] = {}
    for t in model["tables"]:
        for c in t["columns"]:
            if "source_type" in c:
                st = c["source_type"]
                seen.setdefault(st, (c["source_text"], []))[1].append(f"{t['name']}.{c['name']}")
    out = ["| source type | how a value is written | columns |", "|---|---|---|"]
    def order(st: str):
        return (re.sub(r"\(.*", "", st), [int(x) for x in re.findall(r"\d+", st)])

    for st in sorted(seen, key=order):
        text, cols = seen[st]
        out.append(f"| `{st}` | {cell(text)} | {len(cols)} |")
    return "\n".join(out) + "\n"


def block_relationships(model: dict) -> str:
    out = ["| from | to | kind | meaning |", "|---|---|---|---|"]
    for r in model["relationships"]:
        out.append(f"| `{r['from_table']}.{r['from_col']}` | `{r['to_table']}.{r['to_col']}` | "
                   f"{r['kind']} | {r['to_table']} 1 — {'0..1' if r['unique'] else 'n'} {r['from_table']}: {cell(r['label'])} |")
    return "\n".join(out) + "\n"


def block_metrics(metrics: list[dict]) -> str:
    out = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for m in metrics:
        labels = ", ".join(f"`{lab}`" for lab in m["labels"] + m["const_labels"]) or "—"
        meaning = m["help"]
        values = re.findall(r"`([^`]+)`", m["doc"])
        if values:
            meaning += " Label values: " + ", ".join(f"`{v}`" for v in values) + "."
        if m["buckets"]:
            meaning += f" Buckets (s): {', '.join(m['buckets'])}; exported as `_bucket`, `_sum`, `_count`."
        out.append(f"| `{m['name']}` | {m['kind']} | {labels} | {cell(meaning)} |")
    return "\n".join(out) + "\n"


def block_configuration(variables: list[str], conf: dict) -> str:
    problems = [f"docs/configuration.toml: `{v}` (read by src/config/) is not documented" for v in variables if v not in conf]
    problems += [f"docs/configuration.toml: `{v}` is not a variable src/config/ reads" for v in conf if v not in variables]
    for v, entry in conf.items():
        for key in ("type", "default", "meaning"):
            if not entry.get(key):
                problems.append(f"docs/configuration.toml: `{v}` has no {key}")
    if problems:
        raise DocsError("\n".join(problems))
    out = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for v, e in conf.items():
        out.append(f"| `{v}` | {cell(e['type'])} | {cell(e['default'])} | {cell(' '.join(e['meaning'].split()))} |")
    return "\n".join(out) + "\n"


_PLACEHOLDER_NAMES = {"e": "error", "k": "name", "v": "value", "r": "reason", "b": "who"}


def readable(text: str) -> str:
    """A format string as a reader sees the message: `{reason}` -> `<reason>`, an unnamed or
    formatted placeholder (`{}`, `{:.1}`, `{0:?}`) -> `…`; `{{`/`}}` -> braces."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if not name or name.isdigit():
            return "…"
        return f"<{_PLACEHOLDER_NAMES.get(name, name)}>"
    text = text.replace("{{", "\x00").replace("}}", "\x01")
    text = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*|\d*)(?::[^{}]*)?\}", one, text)
    return text.replace("\x00", "{").replace("\x01", "}")


def block_troubleshooting(found: dict[str, list[str]], catalogue: dict) -> str:
    problems = []
    documented: set[str] = set()
    entries = catalogue.get("entry", [])
    for i, e in enumerate(entries):
        for key in ("group", "messages", "cause", "action"):
            if not e.get(key):
                problems.append(f"docs/messages.toml: entry {i + 1} has no {key}")
        for text in e.get("messages", []) + e.get("parts", []):
            if text not in found:
                problems.append(f"docs/messages.toml: entry {i + 1}: {text!r} is not in src/ (any more?)")
            documented.add(text)
    ignored = set(catalogue.get("ignore", {}).get("texts", []))
    prefixes = tuple(catalogue.get("ignore", {}).get("prefixes", []))
    for text in ignored:
        if text not in found:
            problems.append(f"docs/messages.toml: ignored {text!r} is not in src/ (any more?)")
    for prefix in prefixes:
        if not any(text.startswith(prefix) for text in found):
            problems.append(f"docs/messages.toml: no text in src/ starts with the ignored prefix {prefix!r}")
    for text, where in sorted(found.items(), key=lambda kv: kv[1][0]):
        if text not in documented and text not in ignored and not text.startswith(prefixes):
            problems.append(f"{where[0]}: message {text!r} is not in docs/messages.toml")
    if problems:
        raise DocsError("\n".join(problems))
    out = []
    groups: list[str] = []
    for e in entries:
        if e["group"] not in groups:
            groups.append(e["group"])
    for g in groups:
        out.append(f"#### {g}\n")
        out.append("| message | cause | what to do |")
        out.append("|---|---|---|")
        for e in (e for e in entries if e["group"] == g):
            msgs = "<br>".join(code(readable(m)) for m in e["messages"])
            if e.get("parts"):
                msgs += "<br>where a `<...>` or `…` part is one of: " + ", ".join(
                    code(readable(p)) for p in e["parts"])
            out.append(f"| {msgs} | {cell(' '.join(e['cause'].split()))} | {cell(' '.join(e['action'].split()))} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: ([\w-]+) [^>]*-->\n)(.*?)(<!-- END GENERATED: \2 -->)", re.S)


def fill_blocks(path: Path, blocks: dict[str, str]) -> str:
    text = path.read_text(encoding="utf-8")
    used = set()

    def replace(m: re.Match) -> str:
        name = m.group(2)
        if name not in blocks:
            raise DocsError(f"{path.relative_to(ROOT)}: unknown generated block `{name}`")
        used.add(name)
        return m.group(1) + "\n" + blocks[name] + "\n" + m.group(4)

    text = _BLOCK.sub(replace, text)
    missing = set(blocks) - used
    if missing:
        raise DocsError(f"{path.relative_to(ROOT)}: missing generated blocks {sorted(missing)}")
    return text


# ---------------------------------------------------------------------------------------------
# Graphviz
# ---------------------------------------------------------------------------------------------

FONT = "DejaVu Sans"
COLOURS = {"replicated": "#dbe9f6", "ledger": "#e6f2dd", "outbox": "#fdf0d5", "migrations": "#eeeeee"}


def q(text: str) -> str:
    return html.escape(text, quote=True)


def wrap(text: str, width: int) -> list[str]:
    words, lines, cur = re.sub(r"`", "", text).split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return lines


def dot_erm(model: dict) -> str:
    tables = {t["name"]: t for t in model["tables"]}
    rels = [r for r in model["relationships"] if r["kind"] == "domain"]
    names = [t["name"] for t in model["tables"] if t["role"] == "replicated"]
    out = [
        "// Generated by scripts/docs.py from db/*.sql and docs/model.toml: do not edit.",
        "digraph entity_relationship_model {",
        f'  graph [rankdir=LR, fontname="{FONT}", fontsize=16, labelloc=t, nodesep=0.6, ranksep=1.4, pad=0.3,',
        '         label=<<b>paper-engine-orders: entity relationship model</b><br/><font point-size="11">'
        'logical relationships (no foreign keys: DMS does not order changes across tables)</font>>];',
        f'  node [shape=plain, fontname="{FONT}", fontsize=11];',
        f'  edge [fontname="{FONT}", fontsize=10, dir=both, color="#444444"];',
    ]
    for name in names:
        t = tables[name]
        fks = {r["from_col"] for r in rels if r["from_table"] == name}
        rows = [f'<tr><td bgcolor="#1f4e79"><font color="white"><b>{q(name)}</b></font></td></tr>']
        rows += [f'<tr><td align="left"><font point-size="9">{q(line)}</font></td></tr>' for line in wrap(t["summary"], 38)]
        for c in t["columns"]:
            if c["name"] in t["pk"]:
                rows.append(f'<tr><td align="left" port="{q(c["name"])}"><b>PK</b> {q(c["name"])}</td></tr>')
            elif c["name"] in fks:
                rows.append(f'<tr><td align="left" port="{q(c["name"])}"><i>FK</i> {q(c["name"])}</td></tr>')
        lineage = sum(c["name"].startswith("_") for c in t["columns"])
        more = len(t["columns"]) - len(t["pk"]) - len(fks) - lineage
        rows.append(f'<tr><td align="left"><font point-size="9" color="#555555">+ {more} more attributes, {lineage} lineage columns</font></td></tr>')
        out.append(f'  {name} [label=<<table border="1" cellborder="0" cellspacing="0" cellpadding="4" bgcolor="{COLOURS["replicated"]}">{"".join(rows)}</table>>];')
    for r in rels:
        # one (tail, the referenced entity) to many (head, the referencing entity)
        out.append(
            f'  {r["to_table"]}:{r["to_col"]} -> {r["from_table"]}:{r["from_col"]} '
            f'[arrowtail=teetee, arrowhead=crowodot, label="{q(r["label"])}", taillabel="1", headlabel="0..n", labeldistance=2.2];'
        )
    out.append("}")
    return "\n".join(out) + "\n"


def dot_tables(model: dict) -> str:
    out = [
        "// Generated by scripts/docs.py from db/*.sql and docs/model.toml: do not edit.",
        "digraph table_diagram {",
        f'  graph [rankdir=LR, fontname="{FONT}", fontsize=16, labelloc=t, nodesep=0.4, ranksep=1.2, pad=0.3,',
        f'         label=<<b>paper-engine-orders: tables of schema {SCHEMA}</b><br/><font point-size="11">'
        'solid: logical domain relationship; dashed: lineage (no foreign keys are declared)</font>>];',
        f'  node [shape=plain, fontname="{FONT}", fontsize=10];',
        f'  edge [fontname="{FONT}", fontsize=9];',
    ]
    for t in model["tables"]:
        colour = COLOURS.get(t["role"], "#ffffff")
        rows = [f'<tr><td colspan="3" bgcolor="#1f4e79"><font color="white"><b>{q(t["name"])}</b></font></td></tr>']
        for c in t["columns"]:
            flags = []
            if c["name"] in t["pk"]:
                flags.append("PK")
            elif [c["name"]] in t["unique"]:
                flags.append("UQ")
            if c["not_null"]:
                flags.append("NN")
            name = f"<b>{q(c['name'])}</b>" if c["name"] in t["pk"] else q(c["name"])
            if c["name"].startswith("_"):
                name = f'<font color="#666666">{name}</font>'
            port = q(c["name"])
            rows.append(
                f'<tr><td align="left" port="{port}_w">{name}</td>'
                f'<td align="left"><font color="#333333">{q(short_type(c["type"]))}</font></td>'
                + (f'<td align="left" port="{port}_e"><font point-size="8">{" ".join(flags)}</font></td></tr>'
                   if flags else f'<td port="{port}_e"></td></tr>')
            )
        out.append(f'  {t["name"]} [label=<<table border="1" cellborder="0" cellspacing="0" cellpadding="3" bgcolor="{colour}">{"".join(rows)}</table>>];')
    for r in model["relationships"]:
        style = 'style=solid, color="#1f4e79"' if r["kind"] == "domain" else 'style=dashed, color="#888888"'
        out.append(
            f'  {r["from_table"]}:{r["from_col"]}_e:e -> {r["to_table"]}:{r["to_col"]}_w:w '
            f'[{style}, arrowhead=teetee, arrowtail={"teeodot" if r["unique"] else "crowodot"}, dir=both];'
        )
    out.append("}")
    return "\n".join(out) + "\n"


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
