#!/usr/bin/env bash
# The main job end to end: writes the sample DMS dataset (full load + CDC) into a local S3 bucket,
# runs the loader once (RUN_AS_SERVICE=false) into the local Postgres, and prints per-table counts
# and the delivery ledger. SCALE=1 gives the replaced service's sizes (160k orders, 1.5M
# executions); the default 0.1 takes well under a minute once built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SCALE=${SCALE:-0.1}
S3_PORT=${DEMO_S3_PORT:-5055}
DB=${DEMO_DB:-paper_engine_demo}
ensure_services
ensure_moto "$S3_PORT"

log "Building the loader (release)."
cargo build --release --locked --quiet
BIN=target/release/paper-engine-orders

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
"${PSQL[@]}" -d test -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
    "${PSQL[@]}" -d test -c "CREATE DATABASE \"$DB\""
# A fresh demo every time: the loader re-creates the schema through its migrations.
"${PSQL[@]}" -d "$DB" -c 'DROP SCHEMA IF EXISTS paper_engine CASCADE'

export SOURCE="bucket_endpoint=http://127.0.0.1:$S3_PORT bucket_id=demo bucket_key=demo-secret-key bucket_name=paper-engine-demo bucket_path=data"
export TARGET="host=127.0.0.1 port=5432 user=postgres dbname=$DB"
export NATS="nats://127.0.0.1:4222"
export RUN_AS_SERVICE=false

log "Writing the sample dataset (scale $SCALE) to s3://paper-engine-demo/data/."
# --force: the demo's bucket is the demo's own (a moto left running from an earlier demo keeps it).
"$BIN" sample --scale "$SCALE" --force
log "Loading it into postgres database $DB (one-shot)."
"$BIN"

"${PSQL[@]}" -d "$DB" <<'SQL'
\echo
\echo 'Rows per table:'
SELECT 'strategies' AS "table", count(*) AS "rows" FROM paper_engine.strategies
UNION ALL SELECT 'orders', count(*) FROM paper_engine.orders
UNION ALL SELECT 'executions', count(*) FROM paper_engine.executions;
\echo 'Deliveries per table (from the ledger paper_engine.loader_deliveries):'
SELECT table_name AS "table", count(*) AS files, sum("rows") AS "rows", sum(creates) AS creates,
       sum(amends) AS amends, sum(removes) AS removes, sum(unchanged) AS unchanged,
       max(max_event_id) AS max_event_id
  FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'
 GROUP BY table_name ORDER BY 1;
SQL
if [ -n "${MOTO_PID:-}" ]; then
    log "moto_server (pid $MOTO_PID) keeps the bucket on port $S3_PORT; stop it with: kill $MOTO_PID"
fi
