# syntax=docker/dockerfile:1
# paper-engine-orders: a two-stage build. The builder compiles the dependencies in a layer of
# their own (rebuilt only when a manifest or Cargo.lock changes), then the loader; the runtime image
# is Debian slim with the binary, CA certificates and curl (for the health check), run as an
# unprivileged user.
#
#   docker build -t paper-engine-orders:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1) .
#   docker run -d --env-file paper-engine-orders.env -p 9100:9100 paper-engine-orders:<version>

FROM rust:1-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build

# 1. Dependencies only: the workspace's manifests (the root package and every crate of crates/,
#    one COPY line each) and placeholder sources for every target they declare (the library, the
#    binary and any [[bench]], at its `path` or benches/<name>.rs; each crate's library), so
#    `cargo build` compiles just the dependencies.
COPY Cargo.toml Cargo.lock ./
COPY crates/dms-naming/Cargo.toml crates/dms-naming/
COPY crates/dms-format/Cargo.toml crates/dms-format/
COPY crates/dms-sample/Cargo.toml crates/dms-sample/
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for crate in crates/*/; do mkdir -p "${crate}src" && touch "${crate}src/lib.rs"; done \
    && awk 'function flush() { if (b) print (p != "" ? p : "benches/" n ".rs"); b = 0; n = p = "" } \
            /^\[/ { flush() } /^\[\[bench\]\]/ { b = 1; next } \
            b && /^name *=/ { n = $0; gsub(/^name *= *"|".*$/, "", n) } \
            b && /^path *=/ { p = $0; gsub(/^path *= *"|".*$/, "", p) } \
            END { flush() }' Cargo.toml \
       | while read -r bench; do mkdir -p "$(dirname "$bench")"; echo 'fn main() {}' > "$bench"; done \
    && cargo build --release --locked \
    && rm -rf src crates/*/src

# 2. The loader itself and the workspace's crates (db/ holds the migrations, compiled into the
#    binary). The placeholder benches stay: `cargo build` does not build benches but the manifest
#    must find them. The touch makes cargo rebuild what the placeholders stood for.
COPY src ./src
COPY crates ./crates
COPY db ./db
RUN touch src/main.rs src/lib.rs crates/*/src/lib.rs \
    && cargo build --release --locked --bin paper-engine-orders \
    && install -m 0755 target/release/paper-engine-orders /usr/local/bin/paper-engine-orders \
    && /usr/local/bin/paper-engine-orders --version


FROM debian:bookworm-slim AS runtime

# ca-certificates: HTTPS to S3. curl: the HEALTHCHECK (the binary has no health subcommand).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 loader \
    && useradd --system --uid 10001 --gid loader --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin loader

COPY --from=builder /usr/local/bin/paper-engine-orders /usr/local/bin/paper-engine-orders

USER 10001:10001

# The replaced service's default: run as a service. /metrics, /healthz and /readyz on 9100.
ENV RUN_AS_SERVICE=true \
    METRICS_PORT=9100
EXPOSE 9100

# The configured METRICS_PORT and METRICS_BIND (the container's environment, e.g. from
# `docker run --env-file`); a wildcard bind is reached on loopback.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "h=${METRICS_BIND:-0.0.0.0}; case $h in 0.0.0.0) h=127.0.0.1;; ::) h='[::1]';; *:*) h=\"[$h]\";; esac; curl -fsS \"http://$h:${METRICS_PORT:-9100}/healthz\" >/dev/null || exit 1"]

ENTRYPOINT ["paper-engine-orders"]
