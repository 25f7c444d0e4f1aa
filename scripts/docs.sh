#!/usr/bin/env bash
# Regenerates the documentation that is built from the project's own sources:
#   docs/data_specification.md and docs/user_guide.md (their generated blocks),
#   docs/diagrams/*.dot and the PNGs docs/entity_relationship_model.png, docs/table_diagram.png,
#   docs/user_guide.pdf (pandoc -> HTML -> headless Chromium).
# The schema is read by applying db/*.sql to a scratch database of the local Postgres
# (127.0.0.1:5432, user postgres; DOCS_PG overrides the psql options).
#
#   scripts/docs.sh           regenerate everything in place (installs graphviz, pandoc, chromium)
#   scripts/docs.sh --no-pdf  same, without the PDF
#   scripts/docs.sh --check   fail if the committed markdown or .dot sources are out of date
#                             (needs only python3, psql and Postgres; writes nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

MODE=generate
PDF=1
for arg in "$@"; do
    case "$arg" in
        --check) MODE=check ;;
        --no-pdf) PDF=0 ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown argument $arg (use --check or --no-pdf)" ;;
    esac
done

GENERATED=(docs/data_specification.md docs/user_guide.md
    docs/diagrams/entity_relationship_model.dot docs/diagrams/table_diagram.dot)
DIAGRAM_DPI=${DIAGRAM_DPI:-96}

# Python 3.11 has tomllib; older ones need tomli.
python3 -c 'import tomllib' 2>/dev/null || python3 -c 'import tomli' 2>/dev/null ||
    python3 -m pip install --quiet tomli || die "pip install tomli failed"
command -v psql >/dev/null || die "psql is not installed (apt-get install postgresql-client)"
ensure_services

apt_updated=
need() { # command debian-package
    command -v "$1" >/dev/null 2>&1 && return 0
    log "Installing $2 (for $1)."
    if [ -z "$apt_updated" ]; then
        apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null || die "apt-get install $2 failed"
    command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after installing $2"
}

if [ "$MODE" = check ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    python3 scripts/docs.py --out "$out" || die "scripts/docs.py failed (see above)"
    stale=0
    for f in "${GENERATED[@]}"; do
        if [ ! -f "$f" ]; then
            log "MISSING: $f"; stale=1
        elif ! diff -u "$f" "$out/$f" >&2; then
            log "STALE: $f differs from what scripts/docs.py generates (diff above)"; stale=1
        fi
    done
    for f in docs/entity_relationship_model.png docs/table_diagram.png docs/user_guide.pdf; do
        [ -s "$f" ] || { log "MISSING: $f"; stale=1; }
    done
    [ "$stale" = 0 ] || die "the documentation is out of date: run 'just docs' (scripts/docs.sh) and commit the result"
    log "docs: up to date."
    exit 0
fi

need dot graphviz
python3 scripts/docs.py

for name in entity_relationship_model table_diagram; do
    err=$(dot -Tpng -Gdpi="$DIAGRAM_DPI" "docs/diagrams/$name.dot" -o "docs/$name.png" 2>&1) ||
        die "dot failed on docs/diagrams/$name.dot: $err"
    [ -z "$err" ] || die "dot complained about docs/diagrams/$name.dot: $err"
    log "docs: wrote docs/$name.png"
done

if [ "$PDF" = 1 ]; then
    need pandoc pandoc
    need chromium chromium
    need pdfinfo poppler-utils
    need pdftotext poppler-utils
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
    # Self-contained HTML: the stylesheet and the diagrams are embedded.
    # The markdown's own H1 becomes the PDF's title block instead.
    sed '1{/^# /d}' docs/user_guide.md |
        pandoc --from gfm+pipe_tables --to html5 --standalone --self-contained \
        --toc --toc-depth=2 --resource-path=docs \
        --css docs/user_guide.css \
        --metadata title="paper-engine-orders: user guide" \
        --metadata subtitle="version $version" \
        --output "$work/user_guide.html" || die "pandoc failed"
    timeout 180 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage \
        --no-pdf-header-footer --user-data-dir="$work/profile" \
        --print-to-pdf="$work/user_guide.pdf" "file://$work/user_guide.html" >"$work/chromium.log" 2>&1 ||
        die "chromium could not print the PDF: $(tail -n 5 "$work/chromium.log")"
    [ -s "$work/user_guide.pdf" ] || die "chromium wrote no PDF: $(tail -n 5 "$work/chromium.log")"
    size=$(stat -c %s "$work/user_guide.pdf")
    [ "$size" -lt 2000000 ] || die "docs/user_guide.pdf would be $size bytes (limit 2 MB)"
    # Chromium stamps every PDF with its creation time: keep the committed file when its text and
    # page count are the same, so an unchanged guide leaves no diff.
    pdf_text() { pdftotext -layout "$1" - 2>/dev/null; pdfinfo "$1" | grep '^Pages'; }
    if [ -f docs/user_guide.pdf ] &&
        [ "$(pdf_text docs/user_guide.pdf)" = "$(pdf_text "$work/user_guide.pdf")" ]; then
        log "docs: docs/user_guide.pdf unchanged."
    else
        mv "$work/user_guide.pdf" docs/user_guide.pdf
        log "docs: wrote docs/user_guide.pdf ($(pdfinfo docs/user_guide.pdf | sed -n 's/^Pages: *//p') pages, $size bytes)"
    fi
fi
