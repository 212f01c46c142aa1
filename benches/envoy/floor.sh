#!/usr/bin/env bash
# Where Warden's memory floor comes from: the scale section's rows with no policy (passthrough,
# the empty Rust filter, Warden) and one more, the empty filter carrying a custom section as large
# as warden.wasm is larger than it (bytes Envoy and V8 copy and keep, but never compile), each at
# several `--concurrency` values (one Wasm VM per worker, plus the main thread's). For each: RSS,
# Envoy's heap (tcmalloc's resident bytes) and what is in use of it, read 3 s after the first
# answer, as in scale.sh, and the VMs' linear memory. Memory only: no timing is read. Writes
# RESULTS_DIR/floor.md.
#
#   benches/envoy/floor.sh        (or make bench-floor)
#
# Environment: RUN_DIR (benches/.run/envoy), RESULTS_DIR (benches/results), CONCURRENCY
# ("1 2 4 8"), SCALE_BASE_PORT (17500), and those of common.sh.
set -euo pipefail
SCRIPT=bench-floor
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RUN_DIR="${RUN_DIR:-$ROOT/benches/.run/envoy}"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/benches/results}"
SCALE_BASE_PORT="${SCALE_BASE_PORT:-17500}"
CONCURRENCY="${CONCURRENCY:-1 2 4 8}"

need "$ENVOY" curl python3
build empty
mkdir -p "$RUN_DIR/scale" "$RESULTS_DIR"
"$WARDEN_BENCH" scale-prepare --out "$RUN_DIR" --warden "$WARDEN" --wasm "$WARDEN_WASM" \
  --empty-wasm "$EMPTY_SLIM_WASM" --base-port "$SCALE_BASE_PORT"

# The empty filter with a custom section (name "padding") that brings it to warden.wasm's size.
PADDED_WASM="$RUN_DIR/scale/empty-filter.padded.wasm"
python3 - "$EMPTY_SLIM_WASM" "$WARDEN_WASM" "$PADDED_WASM" <<'EOF'
import os, sys
empty, warden, out = sys.argv[1:]
module = open(empty, "rb").read()
def leb128(n):
    encoded = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        encoded.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(encoded)
name = b"padding"
payload = os.urandom(max(0, os.path.getsize(warden) - len(module) - 16))
body = leb128(len(name)) + name + payload
open(out, "wb").write(module + b"\x00" + leb128(len(body)) + body)
EOF
plan="$RUN_DIR/scale/plan.tsv"
row() { awk -F'\t' -v name="$1" '$1 == name { print $2 "\t" $3 "\t" $4 }' "$plan"; }
IFS=$'\t' read -r port admin empty_config < <(row empty-filter)
padded_config="$RUN_DIR/scale/empty-filter-padded.json"
sed "s#$EMPTY_SLIM_WASM#$PADDED_WASM#" "$empty_config" >"$padded_config"
grep -q "$PADDED_WASM" "$padded_config" || die "the empty filter's configuration does not name $EMPTY_SLIM_WASM"

kib() { echo $((($(stat -c %s "$1") + 512) / 1024)); }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# measure NAME CONFIG PORT ADMIN CONCURRENCY SHOWN: one table row.
measure() {
  start_answering "$1" "$2" "$3" "$RUN_DIR/scale/floor-$1-$5.log" "$5"
  sleep 3
  envoy_memory "$pid" "$4"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf '| %s | %s | %s MiB | %s MiB | %s MiB | %s |\n' "$6" "$5" "$(mib $((rss_kib * 1024)))" \
    "$(mib "$heap")" "$(mib "$live")" "$([ "$wasm" = 0 ] || echo "$(mib "$wasm") MiB")"
}

out="$RESULTS_DIR/floor.md"
{
  echo "## Where the memory floor comes from"
  echo
  echo "Envoy $("$ENVOY" --version 2>/dev/null | sed -n 's/.*version: [^/]*\/\([0-9.]*\)\/.*/\1/p'), $(date -u +%F); no policy; each row its own Envoy, read 3 s after its first answer (\`benches/envoy/floor.sh\`). \`warden.wasm\` $(kib "$WARDEN_WASM") KiB; the empty filter $(kib "$EMPTY_SLIM_WASM") KiB, and padded with a custom section to $(kib "$PADDED_WASM") KiB. Envoy's heap is tcmalloc's resident bytes, in use what of it is allocated (the rest: freed, kept by the allocator); Warden's VMs is its \`warden_wasm_memory_bytes\` gauge."
  echo
  echo "| configuration | --concurrency | RSS | Envoy's heap | in use | Warden's VMs |"
  echo "|---|---:|---:|---:|---:|---:|"
  for concurrency in $CONCURRENCY; do
    for name in passthrough empty-filter empty-filter-padded warden-idle; do
      case $name in
        empty-filter-padded)
          IFS=$'\t' read -r port admin _ < <(row empty-filter)
          config="$padded_config"; shown="empty filter + custom section" ;;
        *)
          IFS=$'\t' read -r port admin config < <(row "$name")
          case $name in
            passthrough) shown="passthrough" ;;
            empty-filter) shown="empty Rust proxy-wasm filter" ;;
            warden-idle) shown="Warden, no policy" ;;
          esac ;;
      esac
      log "$shown, --concurrency $concurrency"
      measure "$name" "$config" "$port" "$admin" "$concurrency" "$shown"
    done
  done
} >"$out"
cat "$out"
