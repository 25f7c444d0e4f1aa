"""The Rust sources read: string literals and the calls they sit in, messages, environment
variables and metrics."""
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
    "src/target/queries/apply.rs",
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
            f"{sorted(registered)}: the parser in scripts/docsgen/sources.py needs updating"
        )
    if not metrics:
        raise DocsError("src/telemetry/metrics.rs: no metric found")
    return metrics
