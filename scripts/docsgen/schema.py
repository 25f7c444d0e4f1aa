"""The schema, from a scratch database the migrations are applied to."""
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
from .sources import *  # noqa: F401,F403

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
    raise DocsError(f"column {col['name']} has type {col['type']}: add how DMS writes it to scripts/docsgen/schema.py (source_type)")
