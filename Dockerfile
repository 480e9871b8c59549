# One image for every role: `serve` (the default, everything in one process)
# or `api`, `notifier`, `worker` for a split deployment (see compose.yaml).
FROM rust:1.95-slim-trixie AS build
# aws-lc (TLS for S3 and the broker) builds with cmake where no prebuilt
# bindings fit the target.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin swiftdrop \
    && cp target/release/swiftdrop /usr/local/bin/swiftdrop

FROM debian:trixie-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/swiftdrop swiftdrop \
    && mkdir -p /var/lib/swiftdrop/data/uploads \
    && chown -R swiftdrop /var/lib/swiftdrop
COPY --from=build /usr/local/bin/swiftdrop /usr/local/bin/swiftdrop
USER swiftdrop
WORKDIR /var/lib/swiftdrop
# The data folder (SQLite file, uploads, generated key) lives in the volume.
VOLUME /var/lib/swiftdrop
ENV SWIFTDROP_ADDR=0.0.0.0:8080 \
    SWIFTDROP_DATA_DIR=/var/lib/swiftdrop/data \
    SWIFTDROP_LOG=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["swiftdrop"]
CMD ["serve", "--demo"]
