#!/usr/bin/env bash
# The memory-and-scale section of the Envoy benchmark (benches/src/envoy/scale.rs): one Envoy per
# configuration, one after the other, --concurrency 2; for each: time from start to the first
# answer (the median of STARTS starts: one start moved by a fifth on a noisy host), then, in the
# last start, (3 s later) Envoy's RSS, its heap and Warden's warden_wasm_memory_bytes, then for
# Warden's rows the ECDS reload: the watched file replaced (a rename) by the same policies plus
# one that flips a probe's answer, timed to the first flipped answer. The command's time on the
# 10,000 policies is the median of STARTS runs too. Writes RUN_DIR/scale/results.jsonl and
# RESULTS_DIR/scale.md.
#
#   benches/envoy/scale.sh          (make bench-envoy runs it after the load rows)
#
# Environment: RUN_DIR (benches/.run/envoy), RESULTS_DIR (benches/results), SCALE_BASE_PORT
# (17500), STARTS (3), and those of common.sh.
set -euo pipefail
SCRIPT=bench-scale
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RUN_DIR="${RUN_DIR:-$ROOT/benches/.run/envoy}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results}"
SCALE_BASE_PORT="${SCALE_BASE_PORT:-17500}"
STARTS="${STARTS:-3}"
[ "$STARTS" -ge 1 ] || die "STARTS must be at least 1"

need "$ENVOY" curl openssl cargo /usr/bin/time
build empty
mkdir -p "$RUN_DIR/scale" "$RESULTS_DIR"
log "preparing the scale configurations in $RUN_DIR/scale"
"$WARDEN_BENCH" scale-prepare --out "$RUN_DIR" --warden "$WARDEN" --wasm "$WARDEN_WASM" \
  --empty-wasm "$EMPTY_SLIM_WASM" --base-port "$SCALE_BASE_PORT"
results="$RUN_DIR/scale/results.jsonl"
: >"$results"
probe() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H 'x-reload-probe: 1' "http://127.0.0.1:$1/api" || true
}
# median N...: the middle value (the lower of the two middle ones for an even count).
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
while IFS=$'\t' read -r name port admin config ecds_file reload_file expected; do
  logfile="$RUN_DIR/scale/$name.log"
  firsts=()
  for ((start = 1; start < STARTS; start++)); do
    start_answering "$name" "$config" "$port" "$logfile" 2
    firsts+=("$first")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  start_answering "$name" "$config" "$port" "$logfile" 2
  firsts+=("$first")
  first="$(median "${firsts[@]}")"
  sleep 3
  # What is not in Envoy's heap is its binary, its stacks and what V8 maps itself (code, GC
  # heaps, linear memory).
  envoy_memory "$pid" "$admin"
  rss="$rss_kib"
  reload=null
  if [ -n "$reload_file" ]; then
    before="$(probe "$port")"
    [ "$before" != "$expected" ] || die "$name: the probe already answers $expected before the reload"
    cp "$reload_file" "$ecds_file.next"
    reload_started=$(now_ms)
    mv "$ecds_file.next" "$ecds_file"
    reload_deadline=$((reload_started + 60000))
    while [ "$(now_ms)" -lt "$reload_deadline" ]; do
      if [ "$(probe "$port")" = "$expected" ]; then
        reload=$(($(now_ms) - reload_started))
        break
      fi
      sleep 0.01
    done
  fi
  printf '{"name":"%s","rss_kib":%s,"heap_bytes":%s,"heap_live_bytes":%s,"wasm_bytes":%s,"first_answer_ms":%s,"status":%s,"reload_ms":%s}\n' \
    "$name" "$rss" "${heap:-null}" "${live:-null}" "$wasm" "$first" "$status" "$reload" >>"$results"
  log "$name: first answer $status after $first ms (median of ${firsts[*]}), RSS $((rss / 1024)) MiB, Warden VMs $((wasm / 1048576)) MiB, ECDS reload ${reload} ms"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done <"$RUN_DIR/scale/plan.tsv"
# The command on the same 10,000 policies: wall time and peak memory (GNU time).
cli_results="$RUN_DIR/scale/cli.jsonl"
: >"$cli_results"
mesh="$RUN_DIR/scale/mesh-10000.yaml"
workload="$(cat "$RUN_DIR/scale/workload.txt")"
for label in check compile compile-workload; do
  case "$label" in
    check) command=(check "$mesh"); shown="warden check mesh-10000.yaml" ;;
    compile) command=(compile "$mesh"); shown="warden compile mesh-10000.yaml" ;;
    compile-workload) command=(compile "$mesh" --workload "$workload")
      shown="warden compile mesh-10000.yaml --workload $workload" ;;
  esac
  runs=() peaks=()
  for ((run = 0; run < STARTS; run++)); do
    /usr/bin/time -f '%e %M' -o "$RUN_DIR/scale/time.txt" "$WARDEN" "${command[@]}" >/dev/null 2>&1 ||
      die "$shown failed"
    read -r seconds kib <"$RUN_DIR/scale/time.txt"
    runs+=("$seconds") peaks+=("$kib")
  done
  seconds="$(median "${runs[@]}")" kib="$(median "${peaks[@]}")"
  printf '{"command":"%s","seconds":%s,"max_rss_kib":%s}\n' "$shown" "$seconds" "$kib" >>"$cli_results"
  log "$shown: $seconds s, $((kib / 1024)) MiB"
done
"$WARDEN_BENCH" scale-report --run "$RUN_DIR" --wasm "$WARDEN_WASM" --out "$RESULTS_DIR/scale.md"
