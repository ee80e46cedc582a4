# The operator image: `docker build -t <registry>/klaxon:<tag> .`
# The chart runs it as `klaxon run`, non-root, read-only.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin klaxon --bin kubectl-incident

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/klaxon /usr/local/bin/klaxon
COPY --from=build /src/target/release/kubectl-incident /usr/local/bin/kubectl-incident
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/klaxon"]
CMD ["run"]
