#!/usr/bin/env bash
# cargo deny (deny.toml): advisories, licences, sources and bans of the dependency graph. Installs
# cargo-deny if it is missing. The RustSec advisory database comes from GitHub, or, where GitHub
# cannot be reached, from a local clone of it named by PEO_ADVISORY_DB (default: the machine's
# mirror /work/.mirror/rustsec+advisory-db/repo, if present). Prints the database's date: findings
# published after it are not seen.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $version"; then
    log "Installing cargo-deny $version (crates.io)."
    cargo install --locked "cargo-deny@$version" >/dev/null || die "cargo install cargo-deny failed"
fi
mirror=${PEO_ADVISORY_DB:-/work/.mirror/rustsec+advisory-db/repo}
if [ -d "$mirror" ]; then
    log "cargo deny: the advisory database from the local clone $mirror."
    export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.file://$mirror.insteadOf" \
        GIT_CONFIG_VALUE_0="https://github.com/RustSec/advisory-db"
fi
checks=(advisories licenses sources bans)
if [ ! -d "$mirror" ] && ! timeout 20 git ls-remote https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1 \
    && [ -z "$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-* 2>/dev/null)" ]; then
    log "WARNING: cargo deny: no RustSec advisory database here (GitHub unreachable, no clone at $mirror, none cached): advisories are NOT checked; licences, sources and bans are. Set PEO_ADVISORY_DB to a clone of github.com/RustSec/advisory-db to check them."
    checks=(licenses sources bans)
fi
cargo deny --locked check "${checks[@]}" ||
    die "cargo deny found a problem (above): fix it, or review it and record it in deny.toml with a reason"
# (No database when the advisories were not checked: nothing to print, and not a failure.)
db=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-* 2>/dev/null | head -n 1 || true)
if [ -n "$db" ]; then
    log "cargo deny: $(git -C "$db" log -1 --format='advisory database %h of %cs')."
fi
