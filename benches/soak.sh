#!/usr/bin/env bash
# The soak (benches/src/soak.rs): the playground mesh under half its measured capacity for
# DURATION seconds (default 600) with a mix of requests whose answers are known, a key rotation
# and an issuer outage; samples every 10 s; fails unless every pass condition holds.
#
#   benches/soak.sh                 (make soak; DURATION=60 for the short form CI runs)
#
# Environment: DURATION (seconds), RATE (req/s instead of half the capacity), SOAK_OUT (report
# directory, default benches/results/soak), and e2e/mesh.sh's (RUN_DIR, ENVOY_CONCURRENCY, …).
# Starts the playground if it is not running, and stops it afterwards if it started it.
set -euo pipefail
SCRIPT=soak
# shellcheck source=envoy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/envoy/common.sh"
cd "$ROOT"

DURATION="${DURATION:-600}"
SOAK_OUT="${SOAK_OUT:-$ROOT/benches/results/soak}"
MESH_RUN_DIR="${RUN_DIR:-$ROOT/e2e/.run}"

need "$ENVOY" curl openssl cargo
make -s wasm cli >&2
build_commands
started=0
if ! e2e/mesh.sh status >/dev/null 2>&1; then
  e2e/mesh.sh start
  started=1
fi
stop() { [ "$started" = 0 ] || e2e/mesh.sh stop; }
trap stop EXIT
rate=()
[ -z "${RATE:-}" ] || rate=(--rate "$RATE")
"$WARDEN_BENCH" soak --seconds "$DURATION" --run-dir "$MESH_RUN_DIR" --ports envoy/ports.env \
  --out "$SOAK_OUT" "${rate[@]}"
