# Helpers for the e2e suite (sourced by e2e/run.sh; the cases in e2e/cases/ use them).
#
# A case is a block:
#
#   begin "what is tried: what must happen"
#   http "$F2B/api/orders?$TAG"          # one curl; sets STATUS, and the body and headers files
#   expect_status 200
#   expect_echo_header x-jwt-sub alice   # what the echo application received
#   expect_log backend 'warden="allowed ns[api]-policy[allow-frontend-api]-rule[0]"'
#   end
#
# Every expect_* records a failure (expected …, got …) instead of stopping, so a case reports
# everything that went wrong; `end` prints PASS or FAIL with those lines. $TAG is unique per
# case: put it in the request's query string (`?$TAG`) and expect_log finds that request's
# access log line. Nothing here sleeps for a fixed time where it can poll; every wait has a
# deadline.

# ---------------------------------------------------------------------------------------------
# Where things are

E2E_DIR="$ROOT/e2e"
RUN_DIR="${RUN_DIR:-$E2E_DIR/.run}"
LOGS="$RUN_DIR/logs"
LIVE="$ROOT/envoy/certs/live"
WARDEN="${WARDEN:-$ROOT/target/release/warden}"
ISSUER_URL="http://127.0.0.1:$ISSUER_PORT"
BACKEND_HOST=backend.api.svc.cluster.local
# frontend's sidecar, as frontend's application would call backend (plain HTTP in, mTLS out).
F2B="http://127.0.0.1:$FRONTEND_TO_BACKEND_PORT"
# intruder's sidecar calling backend and frontend; backend's calling frontend.
I2B="http://127.0.0.1:$INTRUDER_TO_BACKEND_PORT"
I2F="http://127.0.0.1:$INTRUDER_TO_FRONTEND_PORT"
B2F="http://127.0.0.1:$BACKEND_TO_FRONTEND_PORT"
PLAIN="http://127.0.0.1:$BACKEND_PLAINTEXT_PORT"

# The scratch directory of this run (removed at exit by run.sh).
WORK="${WORK:?}"

# ---------------------------------------------------------------------------------------------
# Cases and results

PASSED=0
FAILED=0
FAILED_NAMES=()
CASE=""
CASE_NO=0
CASE_ERRORS=()
CASE_STARTED=0
TAG=""

begin() {
  CASE="$1"
  CASE_ERRORS=()
  CASE_NO=$((CASE_NO + 1))
  CASE_STARTED=$(now_ms)
  TAG="e2e=${RUN_ID}c${CASE_NO}x"
  local w
  for w in frontend backend intruder; do
    declare -g "CASE_LOG_FROM_$w=$(stat -c %s "$LOGS/envoy-$w.log" 2>/dev/null || echo 0)"
  done
}

# fail MESSAGE: the current case failed for this reason (it still runs to its end).
fail() { CASE_ERRORS+=("$*"); }

end() {
  local ms=$(($(now_ms) - CASE_STARTED)) line
  if [ "${#CASE_ERRORS[@]}" -eq 0 ]; then
    PASSED=$((PASSED + 1))
    printf 'PASS  %3d %s (%d ms)\n' "$CASE_NO" "$CASE" "$ms"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$CASE_NO $CASE")
    printf 'FAIL  %3d %s (%d ms)\n' "$CASE_NO" "$CASE" "$ms"
    for line in "${CASE_ERRORS[@]}"; do printf '          %s\n' "$line"; done
  fi
}

# group TITLE: a heading for the cases that follow.
group() { printf '\n== %s\n' "$1"; }

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------------------------
# Requests

# http [curl options…] URL: one request. Sets STATUS (000 when no HTTP answer came back) and
# CURL_RC; the body is in $WORK/body, the response headers in $WORK/headers.
http() {
  : >"$WORK/body"
  : >"$WORK/headers"
  STATUS="$(curl -sS --max-time "${HTTP_TIMEOUT:-10}" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" 2>"$WORK/curl.err")"
  CURL_RC=$?
  [ -n "$STATUS" ] || STATUS=000
}

# mtls CERT PORT [curl options…] PATH: a direct call to backend's inbound port PORT over mTLS,
# presenting envoy/certs/live/CERT (frontend, intruder, multi-san, …; `none` for no
# certificate), as another workload's sidecar would.
mtls() {
  local cert="$1" port="$2"
  shift 2
  local path="${*: -1}" options=("${@:1:$#-1}") identity=()
  [ "$cert" = none ] || identity=(--cert "$LIVE/$cert/tls.crt" --key "$LIVE/$cert/tls.key")
  http --cacert "$LIVE/ca/ca.crt" --resolve "$BACKEND_HOST:$port:127.0.0.1" "${identity[@]}" \
    "${options[@]}" "https://$BACKEND_HOST:$port$path"
}

body() { cat "$WORK/body"; }

# header NAME: the response header's value (the last one if repeated), empty if absent.
header() {
  tr -d '\r' <"$WORK/headers" | awk -v name="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
    { i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == name) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); found = v } }
    END { print found }'
}

# echo_header NAME: every value the echo application received for request header NAME, one per
# line (the application lowercases names).
echo_header() {
  jq -r --arg name "$1" '.headers[]? | select(.name == $name) | .value' "$WORK/body" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Expectations

short() { printf '%s' "$1" | head -c "${2:-300}" | tr '\n' ' '; }

expect_status() {
  if [ "$STATUS" != "$1" ]; then
    fail "status: expected $1, got $STATUS (curl exit $CURL_RC$( [ -s "$WORK/curl.err" ] && printf ': %s' "$(short "$(cat "$WORK/curl.err")" 120)"); body: $(short "$(body)" 200))"
  fi
}

# expect_no_http: the request got no HTTP answer at all (the TLS handshake failed, say).
expect_no_http() {
  if [ "$STATUS" != 000 ]; then
    fail "expected no HTTP answer (handshake refused), got status $STATUS: $(short "$(body)" 120)"
  fi
}

expect_body() {
  local got
  got="$(body)"
  [ "$got" = "$1" ] || fail "body: expected '$1', got '$(short "$got")'"
}

expect_body_contains() {
  grep -qF -- "$1" "$WORK/body" || fail "body: expected it to contain '$1', got '$(short "$(body)")'"
}

expect_header() {
  local got
  got="$(header "$1")"
  [ "$got" = "$2" ] || fail "response header $1: expected '$2', got '$(short "$got")'"
}

expect_header_contains() {
  local got
  got="$(header "$1")"
  [[ "$got" == *"$2"* ]] || fail "response header $1: expected it to contain '$2', got '$(short "$got")'"
}

expect_no_header() {
  local got
  got="$(header "$1")"
  [ -z "$got" ] || fail "response header $1: expected none, got '$(short "$got")'"
}

# expect_json FILTER VALUE: jq's raw output for FILTER on the body.
expect_json() {
  local got
  got="$(jq -r "$1" "$WORK/body" 2>/dev/null)"
  [ "$got" = "$2" ] || fail "body $1: expected '$2', got '$(short "$got")'"
}

# expect_echo_header NAME VALUE: the application received exactly one NAME header, VALUE.
expect_echo_header() {
  local got
  got="$(echo_header "$1")"
  [ "$got" = "$2" ] || fail "the application received $1: expected '$2', got '$(short "$got")'"
}

expect_echo_header_contains() {
  local got
  got="$(echo_header "$1")"
  [[ "$got" == *"$2"* ]] || fail "the application received $1 '$(short "$got")': expected it to contain '$2'"
}

expect_no_echo_header() {
  local got
  if [ "$(jq -r '.service? // empty' "$WORK/body" 2>/dev/null)" = "" ]; then
    fail "cannot tell whether the application received $1: the body is not its echo ($(short "$(body)" 80))"
    return
  fi
  got="$(echo_header "$1")"
  [ -z "$got" ] || fail "the application received $1 '$(short "$got")': expected it removed"
}

# expect_equal WHAT EXPECTED GOT
expect_equal() {
  [ "$2" = "$3" ] || fail "$1: expected '$2', got '$(short "$3")'"
}

# expect_at_most WHAT LIMIT GOT
expect_at_most() {
  [ "$3" -le "$2" ] 2>/dev/null || fail "$1: expected at most $2, got $3"
}

# expect_at_least WHAT LIMIT GOT
expect_at_least() {
  [ "$3" -ge "$2" ] 2>/dev/null || fail "$1: expected at least $2, got $3"
}

# ---------------------------------------------------------------------------------------------
# Envoy: logs, stats

port_of() { local var; var="$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')_$2"; printf '%s' "${!var}"; }
admin() { printf 'http://127.0.0.1:%s' "$(port_of "$1" ADMIN_PORT)"; }

# The Envoy logs from where this run started (run.sh records the offsets in LOG_FROM_<w>).
log_since_start() {
  local var="LOG_FROM_$1"
  tail -c "+$((${!var:-0} + 1))" "$LOGS/envoy-$1.log"
}

# access_log WORKLOAD: this case's access log lines on WORKLOAD's sidecar (those whose request
# carried $TAG).
access_log() { log_since_start "$1" | grep -F -- "$TAG" | grep -F '" '; }

# expect_log WORKLOAD TEXT: an access log line of this case's requests on WORKLOAD's sidecar
# contains TEXT. Polled for up to 5 s: Envoy flushes its access log every 200 ms (e2e/mesh.sh).
expect_log() {
  local deadline line
  deadline=$(($(now_ms) + 5000))
  while :; do
    # (Not `grep -q`: its early exit would make the pipeline fail under pipefail.)
    [ -n "$(access_log "$1" | grep -F -- "$2")" ] && return
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.1
  done
  line="$(access_log "$1" | tail -n 1)"
  if [ -z "$line" ]; then
    fail "access log of $1: no line for this case's requests ($TAG) within 5 s"
  else
    fail "access log of $1: expected '$2' in: $(short "$line" 400)"
  fi
}

# expect_warden_log WORKLOAD TEXT: Warden's own log (Envoy's log, `wasm log` lines) has a line
# with this case's tag and TEXT (log.decisions is `all` in the playground).
expect_warden_log() {
  local deadline line
  deadline=$(($(now_ms) + 5000))
  while :; do
    line="$(log_since_start "$1" | grep -F 'wasm log' | grep -F -- "$TAG" | tail -n 1)"
    [ -n "$line" ] && [[ "$line" == *"$2"* ]] && return
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.1
  done
  fail "Warden's log on $1: expected a line with $TAG and '$2', got: $(short "${line:-nothing}" 300)"
}

# expect_warden_log_since WORKLOAD TEXT: Warden wrote a log line with TEXT on WORKLOAD's sidecar
# since this case began (for lines that carry no request, like a refused configuration).
expect_warden_log_since() {
  local var="CASE_LOG_FROM_$1" deadline
  deadline=$(($(now_ms) + 5000))
  while :; do
    [ -n "$(tail -c "+$((${!var:-0} + 1))" "$LOGS/envoy-$1.log" | grep -F 'wasm log' | grep -F -- "$2")" ] && return
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.1
  done
  fail "Warden's log on $1: no line with '$2' since this case began"
}

# metric WORKLOAD 'name{labels}': a Prometheus sample's value on that sidecar (0 if absent).
metric() {
  curl -s --max-time 5 "$(admin "$1")/stats/prometheus" |
    awk -v m="$2" 'index($0, m " ") == 1 { print $2; found = 1; exit } END { if (!found) print 0 }'
}

# envoy_stat WORKLOAD NAME: one of Envoy's own stats (/stats), empty if absent.
envoy_stat() {
  curl -s --max-time 5 "$(admin "$1")/stats?filter=$(printf '%s' "$2" | sed 's/[.|]/\\&/g')\$" |
    awk -F': ' -v n="$2" '$1 == n { print $2 }'
}

# wait_until SECONDS COMMAND…: polls COMMAND every 100 ms until it succeeds; fails after SECONDS.
wait_until() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@"; do
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
# The issuer and tokens

# mint QUERY: a token from the playground issuer (`/token?QUERY`).
mint() { curl -sS --max-time 10 "$ISSUER_URL/token?${1:-}"; }

issuer_stat() { curl -s --max-time 5 "$ISSUER_URL/stats" | jq -r "$1"; }

# fault MODE: how the issuer's JWKS and discovery endpoints behave (ok, down, 500, html, …).
fault() { curl -s --max-time 5 -o /dev/null -X POST "$ISSUER_URL/fault?mode=$1"; }

b64url() { basenc --base64url -w0 | tr -d '='; }
unb64url() {
  local s
  s="$(cat)"
  while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done
  printf '%s' "$s" | basenc --base64url -d
}

# segment TOKEN N: the Nth (0-based) dot-separated part of a token.
segment() { printf '%s' "$1" | cut -d. -f"$(($2 + 1))"; }

# issuer_key ALG [current|KID]: writes the issuer's private key for ALG (the current one, or the
# one with that kid) to a file in $WORK and prints its path; the kid goes to $KEY_KID.
issuer_key() {
  local alg="$1" which="${2:-current}" entry file
  entry="$(jq -c --arg alg "$alg" --arg which "$which" \
    '[.keys[] | select(.alg == $alg and (if $which == "current" then .current else .kid == $which end))] | last' \
    "$RUN_DIR/issuer/keys.json")"
  [ -n "$entry" ] && [ "$entry" != null ] || return 1
  KEY_KID="$(jq -r .kid <<<"$entry")"
  file="$WORK/key-$alg-$KEY_KID.pem"
  jq -r .key <<<"$entry" >"$file"
  printf '%s' "$file"
}

# local_token [warden token options…]: a token minted with `warden token`, with the playground
# issuer's iss and audience unless overridden.
local_token() {
  "$WARDEN" token --iss "$ISSUER" --aud backend --sub alice "$@"
}
