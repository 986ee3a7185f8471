# syntax=docker/dockerfile:1
#
# line-adapter's container image: built with cargo, run as the binary alone
# on a distroless, non-root base. From the repository root:
#
#   docker build -t line-adapter:0.1.0 .
#   docker run -p 50051:50051 -p 8080:8080 -v line-adapter-data:/var/lib/line-adapter \
#     -e LINE_ADAPTER_API_KEYS=... -e LINE_ADAPTER_MASTER_KEY=... line-adapter:0.1.0
#
# Settings come from LINE_ADAPTER_* variables or a file given with
# `serve --config FILE` (see the README). Without API keys gRPC listens on
# loopback only, as outside a container. The Helm chart in charts/line-adapter
# runs this image.

# --- build -----------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# What the binary needs: the manifest and lock file, the build script and the
# protos it compiles (protox: no protoc), the sources, and the benches the
# manifest names. tests/ and ../shared are for the test suite only.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin line-adapter \
    && install -D -m 0755 target/release/line-adapter /out/line-adapter \
    && install -d -m 0750 /out/data

# --- run -------------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates, no shell; `nonroot` is
# uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/line-adapter /usr/local/bin/line-adapter
# The data dir, owned by the service's user so that a fresh volume mounted
# here is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/line-adapter
ENV LINE_ADAPTER_DATA_DIR=/var/lib/line-adapter
USER 65532:65532
# gRPC, then HTTP (LINE's webhooks, /healthz, /readyz, /metrics).
EXPOSE 50051 8080
VOLUME ["/var/lib/line-adapter"]
# GETs http://127.0.0.1:<port of LINE_ADAPTER_HTTP_ADDR, else 8080>/readyz
# and exits 0 or 1 (`healthcheck --url URL` for another address).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/line-adapter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/line-adapter"]
CMD ["serve"]
