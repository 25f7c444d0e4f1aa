#!/usr/bin/env bash
# The whole test suite: unit tests, and integration tests against the real Postgres, NATS and an
# S3-compatible server (moto), each test in its own database and bucket. Extra arguments go to
# `cargo test` (e.g. scripts/test.sh --test it loader:: runs the loader tests of tests/it/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_services
# The generated docs (data specification tables, diagrams' .dot sources, message and variable
# catalogues) must match db/ and src/.
scripts/docs.sh --check
# The dependency graph: advisories, licences, sources (deny.toml).
scripts/deny.sh
ensure_promtool
ensure_chromium
ensure_schemathesis
port=$(free_port)
ensure_moto "$port"
output=$(mktemp)
trap '[ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null; rm -f "$output"' EXIT
export PEO_S3_ENDPOINT="http://127.0.0.1:$port"

cargo fmt --all -- --check || die "cargo fmt finds unformatted code: run cargo fmt"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The DMS file format and object names under libFuzzer, a bounded time per target from the
# committed seed corpus (`just fuzz` runs longer). Not when only some tests are asked for.
[ $# -gt 0 ] || scripts/fuzz.sh "${PEO_FUZZ_SECONDS:-60}"
# Unit and integration tests of every workspace member (the loader and the crates of crates/; no
# doc tests exist; benches are run by `just bench`, not here).
[ $# -gt 0 ] || set -- --workspace --lib --bins --tests
set +e
cargo test --locked "$@" 2>&1 | tee "$output"
status=${PIPESTATUS[0]}
set -e
# One closing line with the totals over every test binary.
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$output"
exit "$status"
