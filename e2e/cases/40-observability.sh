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
