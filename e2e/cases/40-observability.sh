# What Warden tells operators: counters in /stats/prometheus (labels from the stats_tags in
# envoy/*.yaml), the decision in the access log (filter state warden_decision) and Warden's own
# log lines; and the policies that only observe: AUDIT (40-backend-audit.yaml) and dry-run
# (41-backend-dry-run.yaml) never change an outcome, but are counted and logged.

group "counters and logs"

ALLOWED='warden_requests_total{decision="allowed"}'
DENIED='warden_requests_total{decision="denied"}'
UNAUTHENTICATED='warden_requests_total{decision="unauthenticated"}'
API_ALLOWED='warden_policy_requests_total{policy="api/allow-frontend-api",effect="allowed"}'
EXPIRED='warden_authn_failures_total{reason="expired"}'
AUDITED='warden_policy_requests_total{policy="api/audit-admin",effect="audited"}'
DRY_RUN='warden_policy_requests_total{policy="api/dry-run-deny-order-writes",effect="dry_run_denied"}'

begin "/stats/prometheus counts each decision: one allowed, one denied, one unauthenticated (expired)"
a0="$(metric backend "$ALLOWED")" d0="$(metric backend "$DENIED")" u0="$(metric backend "$UNAUTHENTICATED")"
p0="$(metric backend "$API_ALLOWED")" e0="$(metric backend "$EXPIRED")"
http "$F2B/api/orders?$TAG"
expect_status 200
http -X PUT "$F2B/api/orders?$TAG"
expect_status 403
http -H "Authorization: Bearer $(mint 'ttl=-5m')" "$F2B/api/orders?$TAG"
expect_status 401
expect_equal "$ALLOWED" "$((a0 + 1))" "$(metric backend "$ALLOWED")"
expect_equal "$DENIED" "$((d0 + 1))" "$(metric backend "$DENIED")"
expect_equal "$UNAUTHENTICATED" "$((u0 + 1))" "$(metric backend "$UNAUTHENTICATED")"
expect_equal "$API_ALLOWED" "$((p0 + 1))" "$(metric backend "$API_ALLOWED")"
expect_equal "$EXPIRED" "$((e0 + 1))" "$(metric backend "$EXPIRED")"
exposition="$(curl -s "$(admin backend)/stats/prometheus")"
grep -qx '# TYPE warden_requests_total counter' <<<"$exposition" ||
  fail "/stats/prometheus has no '# TYPE warden_requests_total counter' line"
end

begin "frontend's sidecar counts its own denials: intruder → frontend adds one quarantine-rogue denial"
q='warden_policy_requests_total{policy="istio-system/quarantine-rogue",effect="denied"}'
q0="$(metric frontend "$q")"
http "$I2F/?$TAG"
expect_status 403
expect_equal "frontend's $q" "$((q0 + 1))" "$(metric frontend "$q")"
end

begin "JWKS fetches are counted per issuer: warden_jwks_fetches_total{issuer,result=\"success\"} > 0"
expect_at_least 'warden_jwks_fetches_total{issuer="http://issuer.warden.local:18090",result="success"}' 1 \
  "$(metric backend 'warden_jwks_fetches_total{issuer="http://issuer.warden.local:18090",result="success"}')"
end

begin "warden_wasm_memory_bytes gauges the linear memory of Warden's VMs (each at least the module's data, all well under 1 GiB)"
exposition="$(curl -s "$(admin backend)/stats/prometheus")"
grep -qx '# TYPE warden_wasm_memory_bytes gauge' <<<"$exposition" ||
  fail "/stats/prometheus has no '# TYPE warden_wasm_memory_bytes gauge' line"
bytes="$(metric backend "warden_wasm_memory_bytes{}")"
expect_at_least "warden_wasm_memory_bytes on backend" $((1024 * 1024)) "$bytes"
[ "$bytes" -lt $((1024 * 1024 * 1024)) ] || fail "warden_wasm_memory_bytes on backend is $bytes, over 1 GiB"
end

begin "the access log carries Warden's decision and Envoy's response code details for a denial"
http -X DELETE "$F2B/public/page?$TAG"
expect_status 403
expect_log backend "backend inbound \"DELETE /public/page?$TAG HTTP/2\" 403 rbac_access_denied_matched_policy[ns[api]-policy[deny-delete-from-web]-rule[0]]"
expect_log backend 'warden="denied ns[api]-policy[deny-delete-from-web]-rule[0]"'
expect_warden_log backend "warden: denied DELETE /public/page?$TAG with 403: rbac_access_denied_matched_policy[ns[api]-policy[deny-delete-from-web]-rule[0]]"
end

group "AUDIT and dry-run: counted and logged, outcome unchanged"

begin "AUDIT on an allowed /admin/users: still 200, counted as audited, logged"
n0="$(metric backend "$AUDITED")"
http -H "Authorization: Bearer $(mint 'scope=admin')" "$F2B/admin/users?$TAG"
expect_status 200
expect_equal "$AUDITED" "$((n0 + 1))" "$(metric backend "$AUDITED")"
expect_warden_log backend "allowed GET /admin/users?$TAG by ns[api]-policy[admin-needs-token]-rule[0]; audit ns[api]-policy[audit-admin]-rule[0]"
end

begin "AUDIT on a denied /admin/users: still 403, counted as audited, logged"
n0="$(metric backend "$AUDITED")"
http "$F2B/admin/users?$TAG"
expect_status 403
expect_equal "$AUDITED" "$((n0 + 1))" "$(metric backend "$AUDITED")"
expect_warden_log backend "denied GET /admin/users?$TAG with 403: rbac_access_denied_matched_policy[none]; audit ns[api]-policy[audit-admin]-rule[0]"
end

begin "dry-run DENY on POST /api/orders: still 200, counted as dry_run_denied, logged as 'would deny'"
n0="$(metric backend "$DRY_RUN")"
http -X POST "$F2B/api/orders?$TAG"
expect_status 200
expect_json .method POST
expect_equal "$DRY_RUN" "$((n0 + 1))" "$(metric backend "$DRY_RUN")"
expect_log backend 'warden="allowed ns[api]-policy[allow-frontend-api]-rule[0]"'
expect_warden_log backend "allowed POST /api/orders?$TAG by ns[api]-policy[allow-frontend-api]-rule[0]; dry-run ns[api]-policy[dry-run-deny-order-writes]-rule[0] would deny"
end

begin "dry-run DENY does not count a GET it does not match"
n0="$(metric backend "$DRY_RUN")"
http "$F2B/api/orders?$TAG"
expect_status 200
expect_equal "$DRY_RUN" "$n0" "$(metric backend "$DRY_RUN")"
end

group "audit log: one JSON record per decision (log.audit: all), written by Envoy's access log"

# audit_record WORKLOAD PATH: the last record for PATH in WORKLOAD's audit log (e2e/.run/logs/
# audit-<workload>.jsonl, envoy/backend.yaml), waiting up to 5 s for Envoy to write it. Records
# carry no query string, so each case marks its requests with a unique path.
audit_record() {
  local deadline file="$RUN_DIR/logs/audit-$1.jsonl" line
  deadline=$(($(now_ms) + 5000))
  while :; do
    line="$(jq -c --arg p "$2" 'select(.warden.path == $p)' "$file" 2>/dev/null | tail -n 1)"
    [ -n "$line" ] && { printf '%s' "$line"; return; }
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.1
  done
  fail "no audit record for $2 in $file"
}

# expect_record RECORD JQ-FILTER: the filter holds on the record.
expect_record() {
  [ -n "$1" ] || return 0
  jq -e "$2" <<<"$1" >/dev/null || fail "audit record does not satisfy $2: $(short "$1" 600)"
}

AUDIT_ID="${TAG//=/-}"

begin "an allowed request: who (peer and request principal), what, and the ALLOW rule"
path="/api/orders/audit-allowed-$AUDIT_ID"
token="$(mint 'sub=auditor')"
http -H "Authorization: Bearer $token" "$F2B$path?$TAG"
expect_status 200
record="$(audit_record backend "$path")"
expect_record "$record" '.response_code == 200 and (.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T"))'
expect_record "$record" '.warden | .decision == "allowed" and .reason == "allow_rule" and .status == null
  and .policy == "api/allow-frontend-api" and .rule == "ns[api]-policy[allow-frontend-api]-rule[0]"
  and .peer_principal == "cluster.local/ns/web/sa/frontend" and .peer_namespace == "web"
  and .request_principal == "http://issuer.warden.local:18090/auditor"
  and .method == "GET" and .source_ip == "127.0.0.1" and (.request_id | length > 0)'
[[ "$record" != *"$token"* && "$record" != *"$TAG"* ]] || fail "the record carries the token or the query: $(short "$record" 300)"
end

begin "a denied request: the DENY rule, 403 from Warden"
path="/public/audit-denied-$AUDIT_ID"
http -X DELETE "$F2B$path?$TAG"
expect_status 403
record="$(audit_record backend "$path")"
expect_record "$record" '.response_code == 403 and (.warden | .decision == "denied" and .reason == "deny_rule"
  and .status == 403 and .policy == "api/deny-delete-from-web"
  and .rule == "ns[api]-policy[deny-delete-from-web]-rule[0]" and .method == "DELETE")'
end

begin "a bad token: unauthenticated with the failure's reason; no token, header or query in any record"
path="/api/orders/audit-expired-$AUDIT_ID"
expired="$(mint 'ttl=-5m')"
http -H "Authorization: Bearer $expired" "$F2B$path?$TAG"
expect_status 401
record="$(audit_record backend "$path")"
expect_record "$record" '.response_code == 401 and (.warden | .decision == "unauthenticated"
  and .reason == "expired" and .status == 401 and .request_principal == null)'
# A valid token in the query string (RFC 6750 §2.3): allowed, named by its subject, not copied.
path="/api/orders/audit-query-$AUDIT_ID"
query_token="$(mint 'sub=in-the-query')"
http "$F2B$path?access_token=$query_token"
expect_status 200
query_record="$(audit_record backend "$path")"
expect_record "$query_record" '.warden.request_principal == "http://issuer.warden.local:18090/in-the-query"'
for secret in "$expired" "$query_token" "${expired%%.*}" "${query_token##*.}" access_token; do
  [[ "$record$query_record" != *"$secret"* ]] || fail "an audit record carries '$(short "$secret" 40)': $(short "$record$query_record" 400)"
done
end

begin "an AUDIT match on an allowed request: recorded with its AUDIT rule"
path="/admin/audit-$AUDIT_ID"
http -H "Authorization: Bearer $(mint 'scope=admin')" "$F2B$path?$TAG"
expect_status 200
record="$(audit_record backend "$path")"
expect_record "$record" '.warden | .decision == "allowed" and .rule == "ns[api]-policy[admin-needs-token]-rule[0]"
  and .audit == "ns[api]-policy[audit-admin]-rule[0]"'
end

begin "the frontend's sidecar audits its own denials: intruder → frontend names the quarantine"
path="/audit-quarantine-$AUDIT_ID"
http "$I2F$path?$TAG"
expect_status 403
record="$(audit_record frontend "$path")"
expect_record "$record" '.workload == "frontend" and (.warden | .decision == "denied"
  and .policy == "istio-system/quarantine-rogue" and .peer_namespace == "rogue")'
end

begin "every line of both audit logs is one JSON object with a decision"
for w in backend frontend; do
  bad="$(jq -c 'select(.warden.decision | type != "string")' "$RUN_DIR/logs/audit-$w.jsonl" 2>&1 | head -n 2)"
  [ -z "$bad" ] || fail "audit-$w.jsonl has lines without a decision or not JSON: $(short "$bad" 300)"
done
end
