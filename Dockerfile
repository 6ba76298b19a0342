# syntax=docker/dockerfile:1
# Multi-stage build: a Rust builder with libclang (bindgen, for pg_query), then a small Debian
# runtime image running pgcloak as a non-root user.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin pgcloak \
 && strip target/release/pgcloak

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin pgcloak
COPY --from=build /src/target/release/pgcloak /usr/local/bin/pgcloak
COPY schema-rules /etc/pgcloak/schema-rules
COPY docker/pgcloak.toml /etc/pgcloak/pgcloak.toml
USER 10001:10001
EXPOSE 6432
ENV PGCLOAK_CONFIG=/etc/pgcloak/pgcloak.toml
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/pgcloak"]
CMD ["serve"]
