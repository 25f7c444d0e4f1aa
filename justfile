# Task recipes (the template's nox sessions). `just --list` shows them.

# List the recipes.
default:
    @just --list

# Format the code.
fmt:
    cargo fmt --all

# Lint: clippy on every target, warnings are errors; formatting checked.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets --locked -- -D warnings

# The whole test suite against real Postgres, NATS and moto (installed/started as needed).
test *ARGS:
    scripts/test.sh {{ARGS}}

# Sample DMS data into a local bucket, loaded into Postgres, counts shown (SCALE=0.1 by default).
demo:
    scripts/demo.sh
