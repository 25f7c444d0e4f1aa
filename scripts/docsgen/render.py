"""The generated Markdown blocks."""
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
from .model import *  # noqa: F401,F403

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
