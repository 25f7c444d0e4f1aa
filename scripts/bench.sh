#!/usr/bin/env bash
# `just bench`: installs what the benchmark needs if missing (moto_server, matplotlib for the
# plot; Postgres and NATS started with the machine's commands), then runs the benchmark program
# benches/throughput/main.rs with the given options (`scripts/bench.sh --help` lists them;
# --history and --small-files select the extra sections; --small-files installs boto3 and
# psycopg into a venv under the bench's work directory when python3 lacks them).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_services
ensure_moto_installed
command -v psql >/dev/null 2>&1 || die "psql is needed (Debian package postgresql-client)"
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    log "Installing matplotlib (PyPI) for the benchmark's plot."
    python3 -m pip install --quiet matplotlib || die "could not install matplotlib"
fi
exec cargo bench --bench throughput -- "$@"
