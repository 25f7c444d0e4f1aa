# Shared helpers for the project's scripts: start the machine's services if they are not
# answering, and install/start the S3-compatible server (moto). Sourced, not run.

log() { printf '%s %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds what
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        port_open "$1" "$2" && return 0
        sleep 0.1
    done
    die "$4 is not answering on $1:$2 after $3 s"
}

# Postgres at 127.0.0.1:5432 and NATS with JetStream at 127.0.0.1:4222, started with the
# machine's own commands when they are not answering.
ensure_services() {
    if ! port_open 127.0.0.1 5432; then
        log "Postgres is not answering: starting it."
        command -v pg_ctlcluster >/dev/null || die "Postgres is not running and pg_ctlcluster is not installed"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start ||
            die "could not start Postgres"
    fi
    wait_port 127.0.0.1 5432 30 "Postgres"
    if ! port_open 127.0.0.1 4222; then
        log "NATS is not answering: starting it."
        [ -x /usr/sbin/nats-server ] || die "NATS is not running and /usr/sbin/nats-server is not installed"
        mkdir -p /var/lib/nats-server
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
            -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log ||
            die "could not start NATS"
    fi
    wait_port 127.0.0.1 4222 30 "NATS"
}

# moto's S3 server from PyPI (the tests, the demo and the benchmarks talk to it with aws-sdk-s3).
ensure_moto_installed() {
    if ! command -v moto_server >/dev/null 2>&1; then
        log "Installing moto[server] from PyPI."
        python3 -m pip install --quiet 'moto[server]' || die "pip install 'moto[server]' failed"
        hash -r
    fi
    command -v moto_server >/dev/null 2>&1 || die "moto_server is not on PATH after installing moto[server]"
}

# Starts moto on $1 unless something answers there already; sets MOTO_PID when it started one.
ensure_moto() {
    local port=$1
    ensure_moto_installed
    MOTO_PID=
    if ! port_open 127.0.0.1 "$port"; then
        moto_server -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/moto-$port.log" 2>&1 &
        MOTO_PID=$!
        wait_port 127.0.0.1 "$port" 30 "moto_server"
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# promtool (Debian's prometheus package) checks the /metrics exposition in the tests.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    log "Installing promtool (Debian package prometheus)."
    command -v apt-get >/dev/null || die "promtool is missing and apt-get is not available"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
        die "apt-get install prometheus failed"
    command -v promtool >/dev/null 2>&1 || die "promtool is not on PATH after installing prometheus"
}

# Debian's Chromium: the status page is tested in it headless (tests/it/status_page.rs).
ensure_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    log "Installing chromium (Debian package) for the status page's browser test."
    command -v apt-get >/dev/null || die "chromium is missing and apt-get is not available"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
        die "apt-get install chromium failed"
    command -v chromium >/dev/null 2>&1 || die "chromium is not on PATH after installing it"
}

# schemathesis (PyPI) checks the running API against its OpenAPI document (tests/it/api.rs).
ensure_schemathesis() {
    command -v schemathesis >/dev/null 2>&1 && return 0
    log "Installing schemathesis (PyPI) for the API's contract test."
    python3 -m pip install --quiet 'schemathesis>=4,<5' || die "pip install schemathesis failed"
    hash -r
    command -v schemathesis >/dev/null 2>&1 || die "schemathesis is not on PATH after installing it"
}
