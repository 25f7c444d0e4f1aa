#!/usr/bin/env bash
# Re-executes notebooks/eda.ipynb in place against the demo database, so the outputs committed in
# the notebook are those of the current code and sample dataset.
#
#   scripts/eda.sh            load the sample first if the demo database does not hold it
#   FORCE_DEMO=1 scripts/eda.sh   always reload it (scripts/demo.sh)
#
# SCALE (default 0.1) is the sample's size, as for scripts/demo.sh; the seed is the generator's
# default (42). The notebook reads EDA_DSN / EDA_SCHEMA (defaults: the demo database, schema
# paper_engine).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SCALE=${SCALE:-0.1}
DB=${DEMO_DB:-paper_engine_demo}
export EDA_DSN=${EDA_DSN:-"host=127.0.0.1 port=5432 user=postgres dbname=$DB"}
export EDA_SCHEMA=${EDA_SCHEMA:-paper_engine}
PSQL=(psql -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)

# The notebook's Python packages.
if ! python3 -c 'import nbconvert, nbclient, ipykernel, pandas, matplotlib, psycopg' 2>/dev/null; then
    log "Installing notebooks/requirements.txt."
    python3 -m pip install --quiet -r notebooks/requirements.txt || die "pip install -r notebooks/requirements.txt failed"
fi
command -v jupyter >/dev/null || die "jupyter is not on PATH after installing notebooks/requirements.txt"
ensure_services

# Does the demo database hold a complete, clean load of the sample at this SCALE? The full load
# of orders has round(160000 * SCALE) rows (at least 10), and the demo writes 6 CDC files per table.
expected_orders=$(python3 -c "import sys; print(max(10, round(160000 * float(sys.argv[1]))))" "$SCALE")
loaded() {
    "${PSQL[@]}" -d "$DB" -c "SELECT 1" >/dev/null 2>&1 || return 1
    local state
    state=$("${PSQL[@]}" -d "$DB" -c "
        SELECT coalesce(sum(rows) FILTER (WHERE table_name = 'orders' AND kind = 'LOAD'), -1)
               || ' ' || count(*) FILTER (WHERE kind = 'CDC')
               || ' ' || count(*) FILTER (WHERE status <> 'SUCCESS')
          FROM $EDA_SCHEMA.loader_deliveries" 2>/dev/null) || return 1
    [ "$state" = "$expected_orders 18 0" ]
}

if [ "${FORCE_DEMO:-0}" = 1 ] || ! loaded; then
    log "Loading the sample dataset (SCALE=$SCALE) into $DB with scripts/demo.sh."
    SCALE=$SCALE DEMO_DB=$DB scripts/demo.sh || log "scripts/demo.sh exited with $?: checking the load itself."
    loaded || die "database $DB does not hold a complete load of the sample at SCALE=$SCALE (see the demo's output above)"
else
    log "Database $DB already holds the sample at SCALE=$SCALE: not reloading (FORCE_DEMO=1 reloads)."
fi

log "Executing notebooks/eda.ipynb."
jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=False notebooks/eda.ipynb ||
    die "the notebook failed"
log "notebooks/eda.ipynb executed; its last cell prints the findings quoted in README.md."
