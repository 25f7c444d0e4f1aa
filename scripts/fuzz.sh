#!/usr/bin/env bash
# Fuzzes the DMS file format and object names (fuzz/: libFuzzer through cargo fuzz) for a bounded
# time per target, starting from the committed seed corpus (fuzz/corpus/<target>/). New inputs go to
# a scratch folder, not the committed corpus; a crash leaves its input under fuzz/artifacts/ and
# fails the run. Usage: scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
#
# Only the stable toolchain exists on our machines: cargo fuzz's instrumentation flags are nightly
# options, so the build runs with RUSTC_BOOTSTRAP=1 and no sanitizer (-s none); libFuzzer's
# coverage guidance and every panic/assertion check stay on.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_csv object_key)

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "Installing cargo-fuzz (crates.io)."
    cargo install --locked cargo-fuzz >/dev/null || die "cargo install cargo-fuzz failed"
fi
export RUSTC_BOOTSTRAP=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build -s none --fuzz-dir fuzz >"$scratch/build.log" 2>&1 || { tail -n 40 "$scratch/build.log" >&2;
    die "cargo fuzz build failed"; }
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    log "Fuzzing $target for ${seconds} s from fuzz/corpus/$target."
    if ! cargo fuzz run -s none --fuzz-dir fuzz "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$scratch/$target.log" 2>&1; then
        tail -n 40 "$scratch/$target.log" >&2
        die "fuzz target $target failed: the input is under fuzz/artifacts/$target/ (replay: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none --fuzz-dir fuzz $target <file>)"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$target.log" | tail -n 1)
    log "Fuzzed $target: ${runs:-?} inputs in ${seconds} s, no crash."
done
