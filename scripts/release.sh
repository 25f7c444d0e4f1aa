#!/usr/bin/env bash
# Prepares release X.Y.Z: sets the package version in Cargo.toml (and Cargo.lock), turns the
# "Unreleased" section of CHANGELOG.md into "X.Y.Z - <today>", regenerates the docs (the PDF shows
# the version) and prints the commit, tag and build commands to run next. It never commits, tags
# or pushes by itself.
#
#   scripts/release.sh X.Y.Z --dry-run   show what would change, change nothing
#   scripts/release.sh X.Y.Z             do it (idempotent: a second run finds nothing to do)
#   scripts/release.sh X.Y.Z --no-docs   do it without regenerating the docs
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() { sed -n '2,10p' "$0" >&2; exit 2; }
VERSION=
DRY=0
DOCS=1
for arg in "$@"; do
    case "$arg" in
        --dry-run | -n) DRY=1 ;;
        --no-docs) DOCS=0 ;;
        -h | --help) usage ;;
        -*) log "unknown option $arg"; usage ;;
        *) [ -z "$VERSION" ] || usage; VERSION=$arg ;;
    esac
done
[ -n "$VERSION" ] || usage
[[ "$VERSION" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
    die "'$VERSION' is not a version X.Y.Z (digits, no leading zeros, no 'v')"

# The version of [package] in Cargo.toml.
package_version() {
    awk '/^\[package\]/ { p = 1; next } /^\[/ { p = 0 } p && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$1"
}
CURRENT=$(package_version Cargo.toml)
[ -n "$CURRENT" ] || die "no version in the [package] section of Cargo.toml"
TAG="v$VERSION"
TODAY=$(date -u +%Y-%m-%d)

if [ "$CURRENT" = "$VERSION" ] && grep -q "^## \[$VERSION\]" CHANGELOG.md; then
    log "Cargo.toml and CHANGELOG.md are already at $VERSION: nothing to do."
    NOTHING=1
else
    NOTHING=0
    newest=$(printf '%s\n%s\n' "$CURRENT" "$VERSION" | sort -V | tail -n 1)
    [ "$newest" = "$VERSION" ] && [ "$CURRENT" != "$VERSION" ] ||
        [ "$CURRENT" = "$VERSION" ] || die "$VERSION is not newer than the current version $CURRENT"
    grep -q "^## \[$VERSION\]" CHANGELOG.md && die "CHANGELOG.md already has a section $VERSION"
    grep -q '^## \[Unreleased\]' CHANGELOG.md || die "CHANGELOG.md has no '## [Unreleased]' section"
    # The Unreleased section must say something.
    awk '/^## \[Unreleased\]/ { u = 1; next } /^## / { u = 0 } u && /^- / { found = 1 } END { exit !found }' CHANGELOG.md ||
        die "the Unreleased section of CHANGELOG.md lists no change: add the release's entries first"
fi
if git rev-parse -q --verify "refs/tags/$TAG" >/dev/null 2>&1; then
    die "tag $TAG exists already"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$NOTHING" = 0 ]; then
    # Cargo.toml: only the version line of [package].
    awk -v v="$VERSION" '
        /^\[package\]/ { p = 1 } /^\[/ && !/^\[package\]/ { p = 0 }
        p && !done && /^version *=/ { print "version = \"" v "\""; done = 1; next } { print }' Cargo.toml >"$work/Cargo.toml"
    [ "$(package_version "$work/Cargo.toml")" = "$VERSION" ] || die "could not set the version in Cargo.toml"
    # CHANGELOG.md: a new empty Unreleased section above the release's.
    awk -v v="$VERSION" -v d="$TODAY" '
        /^## \[Unreleased\]/ && !done { print; print ""; print "## [" v "] - " d; done = 1; next } { print }' CHANGELOG.md >"$work/CHANGELOG.md"

    if [ "$DRY" = 1 ]; then
        log "Dry run: release $CURRENT -> $VERSION would change:"
        diff -u Cargo.toml "$work/Cargo.toml" | sed 's/^/    /' >&2 || true
        diff -u CHANGELOG.md "$work/CHANGELOG.md" | sed 's/^/    /' >&2 || true
        log "and Cargo.lock (cargo update --workspace), then regenerate the docs (scripts/docs.sh)."
        exit 0
    fi
    cp "$work/Cargo.toml" Cargo.toml
    cp "$work/CHANGELOG.md" CHANGELOG.md
    cargo update --workspace --quiet || die "cargo update --workspace failed (Cargo.lock)"
    grep -A1 '^name = "paper-engine-orders"$' Cargo.lock | grep -q "^version = \"$VERSION\"$" ||
        die "Cargo.lock does not record paper-engine-orders $VERSION"
    log "Cargo.toml, Cargo.lock and CHANGELOG.md now say $VERSION."
elif [ "$DRY" = 1 ]; then
    exit 0
fi

if [ "$DOCS" = 1 ]; then
    scripts/docs.sh || die "scripts/docs.sh failed"
fi

cat >&2 <<NEXT

Next steps for release $VERSION:
  just test                                   # the whole suite must pass
  git add Cargo.toml Cargo.lock CHANGELOG.md docs/
  git commit -m "Release $VERSION"
  git tag -a $TAG -m "paper-engine-orders $VERSION"
  git push origin HEAD $TAG
  docker build -t paper-engine-orders:$VERSION .
NEXT
