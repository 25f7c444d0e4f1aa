#!/usr/bin/env bash
# Docker smoke test: builds the project's Dockerfile, unchanged, with a real Docker engine and runs
# the image the way users do (docker run --env-file, --network host) against this machine's
# Postgres and NATS and a fresh moto S3 bucket holding the sample dataset:
#   1. one-shot (RUN_AS_SERVICE=false) into a fresh database: exit code 0, rows loaded, every
#      sample file in the ledger, and the image runs as a non-root user;
#   2. service mode (RUN_AS_SERVICE=true, a non-default METRICS_PORT): the image's HEALTHCHECK
#      reports healthy and /readyz answers 200;
#   3. `docker stop` (SIGTERM, 10 s grace): the container exits with code 0.
# Then one summary line with the time of each phase. Everything it starts is removed at exit
# (containers, database, moto); the image paper-engine-orders:smoke and the base images are kept.
#
# Slow: a cold build compiles the release binary inside Docker (15-25 min on 2 cores). Run it
# before each release, not in every CI run.
#
# Offline machines: when a base image of the Dockerfile (rust:1-slim-bookworm,
# debian:bookworm-slim) is neither present nor pullable, a local stand-in with the same tag is
# built from Debian's archive (debootstrap, plus this machine's Rust toolchain for the rust image)
# and cached in Docker; the bootstrap tree stays under $SMOKE_CACHE. If no Docker daemon answers,
# one is started (dockerd from Debian's docker.io, installed if missing) with $DOCKERD_FLAGS.
#
# Environment: SMOKE_REF (a git commit or tag: build that snapshot, exported with git archive,
# instead of the working tree, e.g. SMOKE_REF=HEAD while files are being edited), SMOKE_SCALE
# (sample size, default 0.01), SMOKE_IMAGE (default paper-engine-orders:smoke), SMOKE_CACHE
# (default /var/tmp/peo-docker-smoke), SMOKE_HEALTH_TIMEOUT (seconds, default 120), DEBIAN_MIRROR
# (default: the first Debian mirror of this machine's apt sources), DOCKERD_FLAGS, DOCKER_BUILDKIT
# (default 0: the legacy builder, which needs no frontend image from Docker Hub).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

IMAGE=${SMOKE_IMAGE:-paper-engine-orders:smoke}
SCALE=${SMOKE_SCALE:-0.01}
CACHE=${SMOKE_CACHE:-/var/tmp/peo-docker-smoke}
DOCKERD_FLAGS=${DOCKERD_FLAGS:---iptables=false --ip6tables=false --bridge=none --storage-driver=vfs}
HEALTH_TIMEOUT=${SMOKE_HEALTH_TIMEOUT:-120}
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

DB=peo_docker_smoke_$$
BUCKET=peo-docker-smoke-$$
SERVICE=peo-docker-smoke-service-$$
ONESHOT=peo-docker-smoke-oneshot-$$
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/peo-docker-smoke.XXXXXX")

# --- phases, summary and clean-up ---------------------------------------------------------------
PHASES=(stand-ins build one-shot service stop)
declare -A ELAPSED=()
PHASE= PHASE_T0= T0=$(date +%s) RESULT=FAIL DB_CREATED= MOTO_PID=
phase() { # name: ends the current phase, starts the next
    local now
    now=$(date +%s)
    [ -n "$PHASE" ] && ELAPSED[$PHASE]=$((now - PHASE_T0))
    PHASE=$1 PHASE_T0=$now
    [ -n "$PHASE" ] && log "== phase: $PHASE"
    return 0
}
summary() {
    local p line
    line="docker-smoke: $RESULT"
    [ "$RESULT" = PASS ] || line+=" (in phase ${PHASE:-start})"
    line+=" |"
    for p in "${PHASES[@]}"; do line+=" $p ${ELAPSED[$p]:--}s,"; done
    echo "$line total $(($(date +%s) - T0))s" >&2
}
cleanup() {
    local rc=$?
    set +e
    [ -n "$PHASE" ] && [ -z "${ELAPSED[$PHASE]:-}" ] && ELAPSED[$PHASE]=$(($(date +%s) - PHASE_T0))
    [ $rc -eq 0 ] || RESULT=FAIL
    docker rm -f "$SERVICE" "$ONESHOT" >/dev/null 2>&1
    [ -n "$DB_CREATED" ] && "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
    [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
    rm -rf "$WORK"
    summary
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the Docker daemon --------------------------------------------------------------------------
ensure_docker() {
    command -v docker >/dev/null || die "the docker client is not installed"
    docker info >/dev/null 2>&1 && return 0
    if ! command -v dockerd >/dev/null; then
        log "No Docker daemon and no dockerd: installing Debian's docker.io."
        apt-get update -qq || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null ||
            die "apt-get install docker.io failed"
    fi
    # nice: the build inside runs at low priority (the daemon's children inherit it).
    log "No Docker daemon answers: starting dockerd $DOCKERD_FLAGS (log: $CACHE/dockerd.log)."
    # shellcheck disable=SC2086
    nohup nice -n 10 dockerd $DOCKERD_FLAGS >"$CACHE/dockerd.log" 2>&1 </dev/null &
    local i
    for ((i = 0; i < 60; i++)); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 $! 2>/dev/null || break
        sleep 1
    done
    tail -n 20 "$CACHE/dockerd.log" >&2
    die "dockerd did not start (the lines above are the end of $CACHE/dockerd.log)"
}

# --- stand-ins for base images that cannot be pulled --------------------------------------------
debian_mirror() {
    [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
    local m
    m=$( (sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null
          sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' \
              /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null) |
        tr ' ' '\n' | grep -E '/debian/?$' | head -n 1)
    echo "${m:-http://deb.debian.org/debian}"
}

# A minbase Debian bookworm tree under $CACHE (debootstrap once, reused).
bookworm_rootfs() {
    local dir=$CACHE/rootfs-bookworm mirror
    if [ ! -e "$dir/.complete" ]; then
        command -v debootstrap >/dev/null || {
            log "Installing debootstrap (Debian package)."
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
                die "apt-get install debootstrap failed"
        }
        mirror=$(debian_mirror)
        log "debootstrap --variant=minbase bookworm $dir $mirror"
        rm -rf "$dir"
        debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
            { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
        # As the official image: the archive, updates and security, deb822; no lists, no debs.
        rm -f "$dir/etc/apt/sources.list"
        cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian*}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
        touch "$dir/.complete"
    fi
    echo "$dir"
}

# What the official image's build (debuerreotype, slim variant) adds to a plain debootstrap: apt
# keeps no package caches (/var/cache/apt/*.bin) and no translations; dpkg leaves out docs, man
# pages and locales. Without it the stand-in, and every image built on it, is ~100 MB larger.
slimify_rootfs() { # dir (the bootstrap tree; never /)
    local d=$1 sub
    case $d in /var/tmp/*|"$CACHE"/*) ;; *) die "slimify_rootfs: refusing to work on '$d'" ;; esac
    [ -e "$d/.complete" ] || die "slimify_rootfs: $d is not a finished bootstrap tree"
    printf '%s\n' \
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
        'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' >"$d/etc/apt/apt.conf.d/docker-clean"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$d/etc/apt/apt.conf.d/docker-autoremove-suggests"
    echo 'Acquire::GzipIndexes "true";' >"$d/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Acquire::Languages "none";' >"$d/etc/apt/apt.conf.d/docker-no-languages"
    echo 'force-unsafe-io' >"$d/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    { printf 'path-exclude /usr/share/%s/*\n' doc groff info linda lintian/overrides locale man
      echo 'path-include /usr/share/doc/*/copyright'; } >"$d/etc/dpkg/dpkg.cfg.d/docker"
    find "$d/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    for sub in groff info linda lintian/overrides locale man; do
        if [ -d "$d/usr/share/$sub" ]; then find "$d/usr/share/$sub" -mindepth 1 -delete; fi
    done
    rm -f "$d"/var/cache/apt/*.bin
}

standin_debian() { # tag
    local dir
    dir=$(bookworm_rootfs)
    slimify_rootfs "$dir"
    log "Importing $dir as $1."
    tar --numeric-owner --exclude=./.complete --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -C "$dir" -cf - . |
        docker import -c 'CMD ["bash"]' -c 'LABEL org.paper-engine.docker-smoke.stand-in=debootstrap-minbase-bookworm-slimified' \
            - "$1" >/dev/null || die "docker import of $dir as $1 failed"
}

standin_rust() { # tag
    local sysroot name version ctx=$CACHE/rust-context
    command -v rustc >/dev/null || die "rustc is not installed: no toolchain for the $1 stand-in"
    ensure_base debian:bookworm-slim
    sysroot=$(rustc --print sysroot)
    name=$(basename "$sysroot")
    version=$(rustc --version | awk '{print $2}')
    log "Building $1 from debian:bookworm-slim + gcc, libc6-dev, ca-certificates + this machine's toolchain $sysroot (rustc $version)."
    rm -rf "$ctx"
    mkdir -p "$ctx/toolchain"
    # The toolchain without its documentation (as rustup's minimal profile, which the official image uses).
    tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$ctx/toolchain" -xf -
    # This machine's own CAs (e.g. of a TLS-intercepting egress proxy), so that cargo inside the
    # build reaches crates.io from here as the host does; the official image has Debian's CAs only.
    local ca_lines=
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        mkdir -p "$ctx/local-ca"
        cp /usr/local/share/ca-certificates/*.crt "$ctx/local-ca/"
        log "STAND-IN: adding this machine's local CA certificates to $1: $(cd "$ctx/local-ca" && echo *.crt)."
        ca_lines='COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates'
    fi
    cat >"$ctx/Dockerfile" <<EOF
FROM debian:bookworm-slim
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin RUST_VERSION=$version
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
    && rm -rf /var/lib/apt/lists/*
$ca_lines
COPY toolchain /usr/local/rustup/toolchains/$name
RUN mkdir -p /usr/local/cargo/bin && chmod -R a+w /usr/local/cargo \\
    && for b in cargo rustc rustdoc; do ln -s /usr/local/rustup/toolchains/$name/bin/\$b /usr/local/cargo/bin/\$b; done \\
    && cargo --version && rustc --version && gcc --version | head -n 1
LABEL org.paper-engine.docker-smoke.stand-in="debootstrap-minbase-bookworm + local rust $version${ca_lines:+ + local CAs}"
EOF
    docker build --network host --force-rm -t "$1" "$ctx" >"$CACHE/rust-standin-build.log" 2>&1 ||
        { tail -n 20 "$CACHE/rust-standin-build.log" >&2; die "building the $1 stand-in failed (log: $CACHE/rust-standin-build.log)"; }
    rm -rf "$ctx"
}

ensure_base() { # tag: present, else pulled, else a local stand-in
    local tag=$1 err label
    if docker image inspect "$tag" >/dev/null 2>&1; then
        label=$(docker image inspect -f '{{index .Config.Labels "org.paper-engine.docker-smoke.stand-in"}}' "$tag" 2>/dev/null || true)
        [ -n "$label" ] && [ "$label" != "<no value>" ] &&
            log "Base image $tag: present (a local stand-in built earlier by this script: $label)." ||
            log "Base image $tag: present."
        return 0
    fi
    if err=$(timeout 300 docker pull -q "$tag" 2>&1); then
        log "Base image $tag: pulled."
        return 0
    fi
    case $tag in
        debian:bookworm-slim) ;;
        rust:1-slim-bookworm) ;;
        *) die "base image $tag is missing and could not be pulled ($err); no stand-in is known for it" ;;
    esac
    log "STAND-IN: base image $tag is missing and cannot be pulled ($err)."
    log "STAND-IN: building a local image tagged $tag from Debian's archive instead (not the official image)."
    case $tag in
        debian:*) standin_debian "$tag" ;;
        rust:*) standin_rust "$tag" ;;
    esac
}

# --- start ----------------------------------------------------------------------------------------
# The build context: the working tree (as `docker build .`), or the snapshot of SMOKE_REF.
CONTEXT=.
if [ -n "${SMOKE_REF:-}" ]; then
    commit=$(git rev-parse --verify --quiet "$SMOKE_REF^{commit}") || die "SMOKE_REF=$SMOKE_REF is not a commit"
    CONTEXT=$WORK/context
    mkdir -p "$CONTEXT"
    # umask 022: the modes of a usual checkout (git archive writes 0664), so the build cache is shared.
    git -c tar.umask=0022 archive --format=tar "$commit" | tar -x -C "$CONTEXT" || die "git archive $commit failed"
    log "Build context: commit $commit ($SMOKE_REF), exported with git archive."
else
    changed=$(git --no-optional-locks status --porcelain -- Dockerfile .dockerignore Cargo.toml Cargo.lock src crates db 2>/dev/null | wc -l)
    log "Build context: the working tree$([ "$changed" = 0 ] || echo " (with $changed uncommitted changes under the build's inputs; SMOKE_REF=HEAD builds the last commit)")."
fi
ensure_docker
ensure_services
grep -qE '^(RUN|COPY|ADD) .*--(mount|link|chmod)|<<' "$CONTEXT/Dockerfile" && [ "$DOCKER_BUILDKIT" = 0 ] &&
    die "the Dockerfile uses BuildKit-only syntax (RUN --mount, COPY --link/--chmod or heredocs): set DOCKER_BUILDKIT=1"
if [ "$DOCKER_BUILDKIT" = 0 ] && head -n 1 "$CONTEXT/Dockerfile" | grep -q '^# *syntax='; then
    log "Legacy builder (DOCKER_BUILDKIT=0): the Dockerfile's '$(head -n 1 "$CONTEXT/Dockerfile")' line is a comment to it (no frontend image is fetched); the Dockerfile uses no BuildKit-only syntax."
fi
docker_root=$(docker info -f '{{.DockerRootDir}}')
avail_gb=$(($(df -Pk "$docker_root" | awk 'NR == 2 {print $4}') / 1024 / 1024))
log "Docker $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}'), ${avail_gb} GB free under $docker_root."
[ "$avail_gb" -ge 20 ] || log "WARNING: less than 20 GB free under $docker_root; a cold build (vfs copies every layer) may run out."

phase stand-ins
# The FROM images, not the names of earlier stages (FROM ... AS name).
for base in $(awk 'toupper($1) == "FROM" { i = 2; while ($i ~ /^--/) i++; img[$i] = 1
                                          if (toupper($(i + 1)) == "AS") stage[$(i + 2)] = 1 }
                   END { for (b in img) if (!(b in stage)) print b }' "$CONTEXT/Dockerfile" | sort); do
    ensure_base "$base"
done

phase build
log "docker build --network host --force-rm -t $IMAGE $CONTEXT (log: $CACHE/build.log; a cold build takes 15-25 min)"
if ! docker build --network host --force-rm -t "$IMAGE" "$CONTEXT" 2>&1 | tee "$CACHE/build.log" | grep --line-buffered -E '^Step [0-9]+/'; then
    tail -n 40 "$CACHE/build.log" >&2
    die "docker build of the Dockerfile failed (the lines above are the end of $CACHE/build.log)"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$CONTEXT/Cargo.toml" | head -n 1)
got=$(docker run --rm "$IMAGE" --version) || die "docker run $IMAGE --version failed"
[ "$got" = "paper-engine-orders $version" ] || die "the image says '$got', Cargo.toml says version $version"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
log "Image $IMAGE: $got, $((size / 1000 / 1000)) MB ($size bytes)."

phase one-shot
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
uid=$(docker run --rm --entrypoint id "$IMAGE" -u) || die "docker run --entrypoint id $IMAGE -u failed"
[ -n "$user" ] && [ "$uid" != 0 ] || die "the image runs as root (User '$user', id -u $uid)"
log "Image user: '$user' (id -u in the container: $uid)."
S3_PORT=$(free_port)
ensure_moto "$S3_PORT"
[ -n "$MOTO_PID" ] || die "something already answers on port $S3_PORT: not a fresh moto"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE \"$DB\"" && DB_CREATED=1
env_file() { # file run_as_service metrics_port
    cat >"$1" <<EOF
SOURCE=bucket_endpoint=http://127.0.0.1:$S3_PORT bucket_id=smoke bucket_key=smoke-secret-key bucket_name=$BUCKET bucket_path=data
TARGET=host=127.0.0.1 port=5432 user=postgres dbname=$DB
NATS=nats://127.0.0.1:4222
NOTIFICATIONS=true
RUN_AS_SERVICE=$2
METRICS_PORT=$3
MIN_SLEEP=1
MAX_SLEEP=2
LOG_LEVEL=info
EOF
}
env_file "$WORK/oneshot.env" false "$(free_port)"
mkdir -m 0777 "$WORK/out"
log "Writing the sample dataset (scale $SCALE) to s3://$BUCKET/data/ with the image's sample command."
docker run --rm --network host --env-file "$WORK/oneshot.env" -v "$WORK/out:/out" "$IMAGE" \
    sample --scale "$SCALE" --manifest /out/sample.json >"$WORK/sample.log" 2>&1 ||
    { cat "$WORK/sample.log" >&2; die "the image's sample command failed"; }
manifest=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(len(m), sum(f["rows"] for f in m))' \
    "$WORK/out/sample.json") || die "could not read the sample's manifest (--manifest /out/sample.json)"
read -r files rows <<<"$manifest"
log "Sample: $files files, $rows rows."
log "docker run --rm --network host --env-file oneshot.env $IMAGE (RUN_AS_SERVICE=false, database $DB)"
rc=0
docker run --rm --name "$ONESHOT" --network host --env-file "$WORK/oneshot.env" "$IMAGE" >"$WORK/oneshot.log" 2>&1 || rc=$?
tail -n 5 "$WORK/oneshot.log" >&2
[ $rc -eq 0 ] || { cat "$WORK/oneshot.log" >&2; die "one-shot: the container exited with code $rc (expected 0)"; }
counts=$("${PSQL[@]}" -d "$DB" -tA -F ' ' -c "SELECT
    (SELECT count(*) FROM paper_engine.strategies), (SELECT count(*) FROM paper_engine.orders),
    (SELECT count(*) FROM paper_engine.executions),
    (SELECT count(*) FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'),
    (SELECT coalesce(sum(rows), 0) FROM paper_engine.loader_deliveries WHERE status = 'SUCCESS'),
    (SELECT count(*) FROM paper_engine.loader_deliveries WHERE status <> 'SUCCESS')") ||
    die "one-shot: could not count the loaded rows in database $DB"
read -r n_strategies n_orders n_executions n_files n_rows n_bad <<<"$counts"
log "One-shot: exit code 0; strategies $n_strategies, orders $n_orders, executions $n_executions; ledger: $n_files files SUCCESS ($n_rows rows), $n_bad not SUCCESS."
[ "$n_strategies" -gt 0 ] && [ "$n_orders" -gt 0 ] && [ "$n_executions" -gt 0 ] ||
    die "one-shot: exit code 0 but a table is empty (strategies $n_strategies, orders $n_orders, executions $n_executions)"
[ "$n_files" = "$files" ] && [ "$n_rows" = "$rows" ] && [ "$n_bad" = 0 ] ||
    die "one-shot: the ledger holds $n_files SUCCESS files ($n_rows rows) and $n_bad others; the sample wrote $files files ($rows rows)"

phase service
METRICS_PORT=$(free_port)
env_file "$WORK/service.env" true "$METRICS_PORT"
log "docker run -d --network host --env-file service.env $IMAGE (RUN_AS_SERVICE=true, METRICS_PORT=$METRICS_PORT)"
docker run -d --name "$SERVICE" --network host --env-file "$WORK/service.env" "$IMAGE" >/dev/null ||
    die "service: docker run -d failed"
health=
for ((i = 0; i < HEALTH_TIMEOUT; i += 2)); do
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}no health check{{end}}' "$SERVICE")
    running=$(docker inspect -f '{{.State.Running}}' "$SERVICE")
    [ "$health" = healthy ] && break
    if [ "$running" != true ]; then
        docker logs "$SERVICE" 2>&1 | tail -n 30 >&2
        die "service: the container stopped (exit code $(docker inspect -f '{{.State.ExitCode}}' "$SERVICE")) before it was healthy"
    fi
    sleep 2
done
if [ "$health" != healthy ]; then
    docker logs "$SERVICE" 2>&1 | tail -n 30 >&2
    docker inspect -f '{{json .State.Health}}' "$SERVICE" >&2 || true
    die "service: health status '$health' after ${HEALTH_TIMEOUT} s (expected healthy)"
fi
log "Service: health status healthy after $(($(date +%s) - PHASE_T0)) s."
ready_code=$(curl -s -o "$WORK/readyz" -w '%{http_code}' "http://127.0.0.1:$METRICS_PORT/readyz") || true
[ "$ready_code" = 200 ] || die "service: GET /readyz answered HTTP '$ready_code' ($(head -c 300 "$WORK/readyz" 2>/dev/null)), expected 200"
log "Service: GET /readyz -> HTTP 200 $(head -c 200 "$WORK/readyz" | tr '\n' ' ')"

phase stop
t=$(date +%s)
docker stop "$SERVICE" >/dev/null || die "stop: docker stop failed"
took=$(($(date +%s) - t))
code=$(docker inspect -f '{{.State.ExitCode}}' "$SERVICE")
docker logs "$SERVICE" 2>&1 | tail -n 3 >&2
[ "$code" = 0 ] || die "stop: after docker stop ($took s) the container's exit code is $code (expected 0; 137 means it was killed after the 10 s grace)"
log "Stop: docker stop took $took s, exit code 0."
phase ""
RESULT=PASS
