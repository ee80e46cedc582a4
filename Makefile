# Klaxon: `make demo` to see it work, `make test` to check everything.
SHELL := /bin/bash
CARGO ?= cargo
IMAGE ?= klaxon:dev
KUBECONFIG_LOCAL := $(CURDIR)/target/cluster/kubeconfig

.PHONY: all build test prerequisites fmt-check lint unit crds cluster cluster-down demo demo-check bench controlplane prometheus image

all: build

build:
	$(CARGO) build --all-targets

## Every check and test; `.ci/run` calls this.
test: prerequisites fmt-check lint controlplane prometheus
	$(CARGO) test --all-targets --no-fail-fast

## The tools `make test` needs beside Rust, each named when missing (the
## Prometheus fetch checks Debian's apt tools itself).
prerequisites:
	@tests/require.sh $(firstword $(CARGO)) go flock kubectl

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

## Build (once; cached outside the repo) the local cluster: kube-apiserver, etcd,
## kube-controller-manager, kube-scheduler, KWOK and metrics-server.
controlplane:
	@tests/controlplane/build.sh >/dev/null

## Benchmarks on a fresh bare control plane (apiserver and etcd); prints a table.
## KLAXON_BENCH=large|churn runs a bigger tier, KLAXON_BENCH=kinds the bytes per
## cached object of each kind (the variable reaches cargo bench
## from the environment or make's command line); KLAXON_BENCH_NAMESPACES=n and
## KLAXON_BENCH_CHURN_SECONDS=s shrink them for a trial run.
bench: controlplane
	$(CARGO) bench --bench enrichment

## Fetch (once; cached outside the repo) Debian's Prometheus for the query tests.
prometheus:
	@tests/prometheus/fetch.sh >/dev/null

## Regenerate crds/ from the Rust types.
crds:
	$(CARGO) run --quiet -- crds --out-dir crds
	$(CARGO) run --quiet -- crds --out-dir charts/klaxon/crds

## The operator image, tagged $(IMAGE) (IMAGE=<registry>/klaxon:<tag> to push it),
## built with the first of docker, podman and buildah on PATH.
image:
	@builder="$$(command -v docker || command -v podman || command -v buildah)"; \
	case "$$builder" in \
	  "") echo "make image: no container builder on PATH: install docker, podman or buildah" >&2; exit 1 ;; \
	  */buildah) set -x; "$$builder" bud -t "$(IMAGE)" . ;; \
	  *) set -x; "$$builder" build -t "$(IMAGE)" . ;; \
	esac

## Start / stop the local cluster in the background (KLAXON_CONTROLPLANE=bare: apiserver and etcd only).
cluster:
	@tests/controlplane/cluster.sh up

cluster-down:
	@tests/controlplane/cluster.sh down

## See Klaxon work on a local cluster, no cluster of your own needed.
demo:
	@tests/demo.sh

## The demo with no terminal, on free ports, failing on any error it shows;
## stops all it started. `.ci/run` calls this after `make test`.
demo-check:
	@tests/demo-check.sh
