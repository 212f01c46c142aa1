#!/usr/bin/env bash
# The Envoy load harness: Warden against Envoy's native jwt_authn and rbac filters, side by side,
# in one run (configurations in benches/src/envoy/mod.rs, CONFIGURATIONS).
#
#   benches/envoy/run.sh                      (make bench-envoy; ~8 minutes with the defaults)
#   ROUNDS=1 DURATION=2s WARMUP=1s benches/envoy/run.sh        a quick look (~1 minute)
#   ONLY=authz-native,authz-warden benches/envoy/run.sh         some configurations only (and
#                                                               no memory-and-scale section)
#
# Every configuration gets its own Envoy (same binary, same listener shape: an mTLS inbound
# listener answering 200 from a direct_response), all started at once with one worker thread,
# pinned to CPU 0; wrk runs pinned to CPU 1 with one thread and CONNECTIONS connections,
# presenting the caller's client certificate. Each configuration is warmed up, then measured
# ROUNDS times, interleaved (A B C … A B C …). The report goes to RESULTS_DIR/<date>.md and
# latest.md, with a chart; every process started here is stopped at the end, even on failure.
#
# Environment: ROUNDS (3), DURATION (10s), WARMUP (3s), CONNECTIONS (16), POOL (tokens in each
# new-token pool, 4096), ONLY (comma-separated configuration names), RUN_DIR
# (benches/.run/envoy), RESULTS_DIR (benches/results), BASE_PORT (17100: listeners from there,
# admin interfaces from BASE_PORT+100, the CUSTOM rows' authorizer on BASE_PORT+200), ENVOY_CPU
# (0), WRK_CPU (1), and those of common.sh.
set -euo pipefail
SCRIPT=bench-envoy
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-3s}"
CONNECTIONS="${CONNECTIONS:-16}"
POOL="${POOL:-4096}"
ONLY="${ONLY:-}"
RUN_DIR="${RUN_DIR:-$ROOT/benches/.run/envoy}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results}"
BASE_PORT="${BASE_PORT:-17100}"
ENVOY_CPU="${ENVOY_CPU:-0}"
WRK_CPU="${WRK_CPU:-1}"

need "$ENVOY" wrk taskset curl openssl cc gnuplot cargo
build empty
mkdir -p "$RUN_DIR/logs"
rm -f "$RUN_DIR/results.jsonl" "$RUN_DIR/memory.jsonl" "$RUN_DIR"/logs/*.log
prepare_load "$POOL"

# The plan: name, port, admin port, bootstrap, request, tokens, client cert, key, CA.
NAMES=() PORTS=() ADMINS=() CONFIGS=() REQUESTS=() TOKENS=() CERTS=() KEYS=() ENVOYS=()
while IFS=$'\t' read -r name port admin config request tokens cert key _; do
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  NAMES+=("$name") PORTS+=("$port") ADMINS+=("$admin") CONFIGS+=("$config")
  REQUESTS+=("$request") TOKENS+=("$tokens") CERTS+=("$cert") KEYS+=("$key")
done <"$RUN_DIR/plan.tsv"
[ ${#NAMES[@]} -gt 0 ] || die "ONLY=$ONLY names no configuration"

# The external authorizer both CUSTOM rows call (the same process for native ext_authz and for
# Warden), on wrk's CPU, so that Envoy's CPU time is the proxy's work for a call, not the
# authorizer's.
AUTHZ_PORT=$((BASE_PORT + 200))
if [[ " ${NAMES[*]} " == *" custom-"* ]]; then
  taskset -c "$WRK_CPU" "$WARDEN" playground authz --listen "127.0.0.1:$AUTHZ_PORT" \
    </dev/null >"$RUN_DIR/logs/authz.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$AUTHZ_PORT/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$AUTHZ_PORT/ready" >/dev/null 2>&1 ||
    die "the authorizer did not start on 127.0.0.1:$AUTHZ_PORT ($RUN_DIR/logs/authz.log)"
fi

for i in "${!NAMES[@]}"; do
  start_envoy "${CONFIGS[$i]}" "$RUN_DIR/logs/${NAMES[$i]}.log" "$ENVOY_CPU"
  ENVOYS+=("$ENVOY_PID")
done
for i in "${!NAMES[@]}"; do
  wait_ready "${ADMINS[$i]}" "${ENVOYS[$i]}" "$RUN_DIR/logs/${NAMES[$i]}.log"
  # The benchmark request must be allowed, or the run would measure denials.
  status="$(curl -s -K "$RUN_DIR/preflight/${NAMES[$i]}.curl" || true)"
  if [ "$status" != 200 ]; then
    tail -5 "$RUN_DIR/logs/${NAMES[$i]}.log" >&2
    die "${NAMES[$i]} answers the benchmark request with $status, not 200"
  fi
done
log "${#NAMES[@]} Envoys ready on CPU $ENVOY_CPU; wrk on CPU $WRK_CPU"

TICKS="$(getconf CLK_TCK)"
cpu_seconds() { awk -v t="$TICKS" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

# measure INDEX ROUND DURATION: one wrk run against configuration INDEX, appended to results.jsonl.
measure() {
  local i="$1" round="$2" duration="$3" before after output line
  before="$(cpu_seconds "${ENVOYS[$i]}")"
  output="$(wrk_load "${PORTS[$i]}" "${REQUESTS[$i]}" "${TOKENS[$i]}" "${CERTS[$i]}" "${KEYS[$i]}" \
    "$CONNECTIONS" "$duration")"
  after="$(cpu_seconds "${ENVOYS[$i]}")"
  printf '%s\n' "$output" >"$RUN_DIR/logs/wrk-${NAMES[$i]}-$round.txt"
  line="$(grep '^{"requests"' <<<"$output" | tail -1)"
  [ -n "$line" ] || die "wrk printed no summary for ${NAMES[$i]}: $output"
  printf '{"config":"%s","round":%d,"envoy_cpu_seconds":%s,"wrk":%s}\n' \
    "${NAMES[$i]}" "$round" "$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.3f", a - b }')" \
    "$line" >>"$RUN_DIR/results.jsonl"
  log "round $round ${NAMES[$i]}: $(grep -m1 'Requests/sec' <<<"$output" | awk '{print $2}') req/s"
}

log "warm-up: $WARMUP each"
for i in "${!NAMES[@]}"; do measure "$i" 0 "$WARMUP"; done
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!NAMES[@]}"; do measure "$i" "$round" "$DURATION"; done
done

for i in "${!NAMES[@]}"; do
  rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/${ENVOYS[$i]}/status")"
  memory="$(curl -s "http://127.0.0.1:${ADMINS[$i]}/memory" | tr -d '\n')"
  # Warden's own gauge: the linear memory of its VMs (absent for the native configurations).
  wasm="$(curl -s "http://127.0.0.1:${ADMINS[$i]}/stats/prometheus" |
    awk '$1 ~ /^warden_wasm_memory_bytes({})?$/ { print $2; exit }')"
  printf '{"config":"%s","rss_kb":%s,"memory":%s,"wasm_memory_bytes":%s}\n' "${NAMES[$i]}" "$rss" \
    "${memory:-null}" "${wasm:-null}" >>"$RUN_DIR/memory.jsonl"
done
stop_all

# The memory-and-scale section (its own Envoys, one at a time, once the load rows are done).
rm -f "$RUN_DIR/scale/results.jsonl"
if [ -z "$ONLY" ]; then
  SKIP_BUILD=1 RUN_DIR="$RUN_DIR" RESULTS_DIR="$RESULTS_DIR" benches/envoy/scale.sh >&2
fi

lscpu >"$RUN_DIR/lscpu.txt"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
command="make bench-envoy"
for var in ROUNDS DURATION WARMUP CONNECTIONS POOL ONLY; do
  default="$(sed -n "s/^$var=\"\${$var:-\(.*\)}\"$/\1/p" benches/envoy/run.sh)"
  [ "${!var}" = "$default" ] || command="$command $var=${!var}"
done
{
  echo "date=$(date -u +%F)"
  echo "rounds=$ROUNDS"
  echo "duration=$DURATION"
  echo "warmup=$WARMUP"
  echo "connections=$CONNECTIONS"
  echo "envoy=$("$ENVOY" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p')"
  echo "wrk=$(wrk --version 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "kernel=Linux $(uname -r)"
  echo "commit=$commit"
  echo "command=$command"
  echo "warden_wasm_kib=$(( $(stat -c %s "$WARDEN_WASM") / 1024 ))"
  echo "empty_wasm_kib=$(( $(stat -c %s "$EMPTY_WASM") / 1024 ))"
} >"$RUN_DIR/meta.txt"
readme=()
# A run of the defaults (the published measurement) also refreshes benches/README.md.
[ "$command" = "make bench-envoy" ] && [ "$RESULTS_DIR" = "$ROOT/benches/results" ] &&
  readme=(--readme "$ROOT/benches/README.md")
"$WARDEN_BENCH" report --run "$RUN_DIR" --out "$RESULTS_DIR" --date "$(date -u +%F)" "${readme[@]}"
