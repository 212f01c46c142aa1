#!/usr/bin/env bash
# The differential test: Envoy's native jwt_authn + rbac filters and Warden, generated from the
# same Istio objects by `warden compile`, in one Envoy (eight listeners: each side over mTLS and
# in plaintext, with the playground's and with Istio's own sidecar connection-manager settings),
# sent the same corpus of requests (see benches/src/envoy/diff.rs); every status must be equal,
# but for the differences docs/compatibility.md documents. A disagreement fails the test and
# names the request.
#
#   benches/envoy/diff.sh            (make bench-envoy-check)
#
# Environment: RUN_DIR (default benches/.run/diff), BASE_PORT (admin; the listeners take the next
# eight ports; default 17300), RULES (rules in the generated mesh, default 30), and those of
# common.sh (ENVOY, BENCH_TARGET, SKIP_BUILD, READY_TIMEOUT).
set -euo pipefail
SCRIPT=diff
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RUN_DIR="${RUN_DIR:-$ROOT/benches/.run/diff}"
BASE_PORT="${BASE_PORT:-17300}"
RULES="${RULES:-30}"

need "$ENVOY" curl openssl cargo
build
mkdir -p "$RUN_DIR/results"
rm -f "$RUN_DIR"/results/*.txt
"$WARDEN_BENCH" diff-prepare --out "$RUN_DIR" --warden "$WARDEN" --wasm "$WARDEN_WASM" \
  --base-port "$BASE_PORT" --rules "$RULES"

start_envoy "$RUN_DIR/envoy.json" "$RUN_DIR/envoy.log"
wait_ready "$BASE_PORT" "$ENVOY_PID" "$RUN_DIR/envoy.log"
for listener in mtls_native mtls_warden plain_native plain_warden \
  istio_mtls_native istio_mtls_warden istio_plain_native istio_plain_warden; do
  # Status 000 (no answer) is written too, and fails the comparison.
  curl -K "$RUN_DIR/curl/$listener.cfg" >"$RUN_DIR/results/$listener.txt" 2>>"$RUN_DIR/curl.log" || true
done
"$WARDEN_BENCH" diff-check "$RUN_DIR"
