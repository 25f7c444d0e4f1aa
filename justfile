# Task recipes (the template's nox sessions). `just --list` shows them.

# List the recipes.
default:
    @just --list

# Format the code.
fmt:
    cargo fmt --all

# Lint: clippy on every target of every workspace member, warnings are errors; formatting checked.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# The whole test suite against real Postgres, NATS and moto (installed/started as needed).
test *ARGS:
    scripts/test.sh {{ARGS}}

# Fuzz the DMS file format and object names (cargo fuzz) for SECONDS per target (the suite: 60).
fuzz SECONDS="600" *TARGETS:
    scripts/fuzz.sh {{SECONDS}} {{TARGETS}}

# cargo deny: advisories, licences, sources and bans of the dependency graph (deny.toml).
deny:
    scripts/deny.sh

# Sample DMS data into a local bucket, loaded into Postgres, counts shown (SCALE=0.1 by default).
demo:
    scripts/demo.sh

# Regenerate the docs from the sources: data spec and user guide tables, diagrams, user guide PDF.
docs *ARGS:
    scripts/docs.sh {{ARGS}}

# Fail if the generated docs (markdown, diagram sources) are out of date with db/ and src/.
docs-check:
    scripts/docs.sh --check

# Re-execute notebooks/eda.ipynb on the demo database (loads the sample first if needed).
eda:
    scripts/eda.sh

# Prepare release VERSION (X.Y.Z): Cargo.toml, Cargo.lock, CHANGELOG.md, docs; add --dry-run to preview.
release VERSION *ARGS:
    scripts/release.sh {{VERSION}} {{ARGS}}

# Throughput benchmark, loader vs psql on this machine's Postgres (moto started by it); writes
# docs/benchmarks.md and docs/benchmarks.png. `just bench --history` (idle passes and latency vs
# delivered history) and `just bench --small-files` (per-file overhead vs psql and Python loops)
# run one extra section each. `just bench --help` lists the options.
bench *ARGS:
    scripts/bench.sh {{ARGS}}

# Build the Dockerfile and smoke-test the image (one-shot, healthy service, clean stop); slow: before a release.
docker-smoke:
    scripts/docker-smoke.sh
