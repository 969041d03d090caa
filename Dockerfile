# syntax=docker/dockerfile:1
# Tessera in two stages: a full Rust toolchain builds the release binary, a slim Debian runs
# it as an unprivileged user. SQLite and libpq are compiled in (bundled), so the runtime needs
# nothing but libc and CA certificates.

FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build directory between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tessera \
    && install -D -m 0755 target/release/tessera /out/tessera

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tessera \
    && useradd --system --uid 10001 --gid tessera --home-dir /var/lib/tessera --shell /usr/sbin/nologin tessera \
    && install -d -o tessera -g tessera -m 0700 /var/lib/tessera /var/lib/tessera/keys /var/lib/tessera/data
COPY --from=build /out/tessera /usr/local/bin/tessera
USER tessera:tessera
WORKDIR /var/lib/tessera
ENV TESSERA_BIND=0.0.0.0:8080 \
    TESSERA_KEYS_DIR=/var/lib/tessera/keys \
    TESSERA_LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/tessera/data/tessera.db
EXPOSE 8080 9100
VOLUME ["/var/lib/tessera/keys", "/var/lib/tessera/data"]
# Ready means the database answers; bash's /dev/tcp needs no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
