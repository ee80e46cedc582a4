# The operator image: `make image` (IMAGE=<registry>/klaxon:<tag>), or
# `docker build -t <registry>/klaxon:<tag> .`. The chart runs it as
# `klaxon run`, non-root, read-only; kubectl-incident rides along.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Cargo.toml declares the [[test]] tests/integration/main.rs and the [[bench]]
# benches/enrichment.rs. Today's cargo does not check an explicit target path
# when it reads the manifest, and compiles only the two binaries asked for,
# so tests/ and benches/ are not copied: empty stand-ins keep the manifest's
# paths real should a later cargo check them, and edits to tests/ or
# benches/ never invalidate this build.
RUN mkdir -p tests/integration benches \
 && touch tests/integration/main.rs benches/enrichment.rs
COPY src ./src
RUN cargo build --release --locked --bin klaxon --bin kubectl-incident

# glibc and libgcc, nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/klaxon /usr/local/bin/klaxon
COPY --from=build /src/target/release/kubectl-incident /usr/local/bin/kubectl-incident
# distroless's nonroot, numerically, so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/klaxon"]
CMD ["run"]
