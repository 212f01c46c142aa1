#!/usr/bin/env bash
# The end-to-end suite: warden.wasm in the real Envoy, in the local zero-trust mesh
# (envoy/README.md), tested with curl.
#
#   e2e/run.sh               every case file in e2e/cases/, in order
#   e2e/run.sh 30 50         only the case files whose names start with 30 or 50 (plus the
#                            readiness check, 00, and the final VM health check, 99)
#
# Starts the mesh if it is not running (e2e/mesh.sh start) and stops it at the end only if it
# started it. Each case prints PASS or FAIL (with what was expected and what came back); the
# last line is `N passed, N failed`; the exit status is non-zero if any case failed.
#
# Cases that change the mesh put it back: the issuer's fault mode is reset to `ok`, a pushed
# configuration is replaced by the compiled one, a restarted sidecar is waited for. Needs curl,
# jq, openssl, basenc (coreutils) and what e2e/mesh.sh needs; `make e2e` builds the module and
# the command first.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
# shellcheck source=../envoy/ports.env
source envoy/ports.env

SUITE_STARTED=$(date +%s%3N)
RUN_ID="$(date +%H%M%S)$$"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/warden-e2e.XXXXXX")"
# shellcheck source=lib.sh
source e2e/lib.sh

for tool in curl jq openssl basenc envoy setsid; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is not on PATH (make deps)" >&2; exit 2; }
done

STARTED_MESH=0
WORKLOADS=(frontend backend intruder)

cleanup() {
  # Whatever a case left behind: the issuer answers normally again, and the sidecars run the
  # configuration compiled from envoy/policies.
  fault ok
  restore_config >/dev/null 2>&1 || true
  if [ "$STARTED_MESH" = 1 ]; then
    e2e/mesh.sh stop >/dev/null 2>&1
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# The mesh

# update_successes: how many configuration updates each sidecar has accepted, all resources
# together ("frontend:3 backend:6 intruder:3").
update_successes() {
  local w n out=""
  for w in "${WORKLOADS[@]}"; do
    n="$(curl -s --max-time 5 "$(admin "$w")/stats?filter=extension_config_discovery\.http_filter\..*\.update_success$" |
      awk -F': ' '{ s += $2 } END { print s + 0 }')"
    out="$out $w:$n"
  done
  printf '%s' "$out"
}

# restore_config: the sidecars' ECDS files are what envoy/policies and envoy/settings.yaml
# compile to; if they were not, put them back and wait until every sidecar has reloaded.
restore_config() {
  local fresh="$WORK/fresh" name changed=0 before
  RUN_DIR="$RUN_DIR" e2e/mesh.sh compile "$fresh" 2>/dev/null || return 1
  for name in warden warden-wasm-crypto; do
    cmp -s "$fresh/$name.yaml" "envoy/generated/$name.yaml" || changed=1
  done
  [ "$changed" = 1 ] || return 0
  before="$(update_successes)"
  e2e/mesh.sh reload 2>/dev/null || return 1
  wait_until 15 configs_reloaded_since "$before"
}

# configs_reloaded_since "frontend:N backend:M …": every sidecar accepted a newer configuration.
configs_reloaded_since() {
  local now w pair
  now="$(update_successes)"
  for pair in $1; do
    w="${pair%%:*}"
    [[ " $now " == *" $w:"* ]] || return 1
    local n="${now#* "$w":}"
    n="${n%% *}"
    [ "$n" -gt "${pair#*:}" ] || return 1
  done
}

# stale: the module or the command was built after the running mesh started, so the sidecars
# (which load warden.wasm when they start) or the helper services run older code; or the
# sidecars were started from older configs or scripts (no second backend port, no short
# access-log flush interval, both of which the cases rely on).
stale() {
  local name
  [[ "$(curl -s --max-time 5 "$(admin backend)/listeners")" == *":$BACKEND_INBOUND_WASM_CRYPTO_PORT"* ]] || return 0
  for name in envoy-frontend envoy-backend envoy-intruder; do
    [ "$ROOT/target/wasm32-wasip1/wasm/warden.wasm" -nt "$RUN_DIR/pids/$name.pid" ] && return 0
    [[ "$(tr '\0' ' ' <"/proc/$(cat "$RUN_DIR/pids/$name.pid")/cmdline")" == *--file-flush-interval-msec* ]] || return 0
  done
  for name in issuer app-frontend app-backend app-intruder; do
    [ "$WARDEN" -nt "$RUN_DIR/pids/$name.pid" ] && return 0
  done
  return 1
}

if e2e/mesh.sh status >/dev/null 2>&1 && stale; then
  echo "e2e: the running mesh is older than warden.wasm, the warden command or its configs: restarting it (e2e/mesh.sh restart)"
  e2e/mesh.sh restart || { echo "e2e: the mesh did not restart" >&2; exit 2; }
elif e2e/mesh.sh status >/dev/null 2>&1; then
  echo "e2e: using the running mesh (e2e/mesh.sh status)"
else
  echo "e2e: starting the mesh (e2e/mesh.sh start)"
  STARTED_MESH=1
  e2e/mesh.sh start || { echo "e2e: the mesh did not start" >&2; exit 2; }
fi
for w in "${WORKLOADS[@]}"; do
  declare "LOG_FROM_$w=$(stat -c %s "$LOGS/envoy-$w.log")"
done
fault ok
restore_config || { echo "e2e: could not load the compiled configuration into the sidecars" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# The cases

selected() {
  local prefix
  [ "${#FILTERS[@]}" -eq 0 ] && return 0
  for prefix in "${FILTERS[@]}" 00 99; do
    [[ "$(basename "$1")" == "$prefix"* ]] && return 0
  done
  return 1
}

FILTERS=("$@")
for file in e2e/cases/*.sh; do
  selected "$file" || continue
  # shellcheck source=/dev/null
  source "$file"
done

printf '\n%d cases in %d s\n' "$((PASSED + FAILED))" "$((($(now_ms) - SUITE_STARTED) / 1000))"
for name in "${FAILED_NAMES[@]}"; do printf 'failed: %s\n' "$name"; done
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" -eq 0 ]
