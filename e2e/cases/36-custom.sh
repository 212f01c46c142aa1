# CUSTOM authorization after authentication (envoy/policies/33-backend-custom.yaml, `providers`
# in envoy/settings.yaml): backend's /ext/* asks the playground authorizer (`warden playground
# authz`) when the caller's verified token has scope `ext`, a rule on a claim Istio cannot
# express in a CUSTOM policy. The authorizer's answer is chosen with `x-authz: deny|error|slow`;
# when it allows it names, in x-authz-checked (handed upstream, so the echo shows it), the
# verified peer and request principals it was given.

group "CUSTOM: an external authorizer, asked after authentication"

EXT_DENIED='warden_policy_requests_total{policy="api/ext-authz-on-scope",effect="denied"}'

begin "allowed by the authorizer, which saw the verified peer and request principals"
http -H "Authorization: Bearer $(mint 'sub=ext-user&scope=ext')" "$F2B/ext/orders?$TAG"
expect_status 200
expect_echo_header_contains x-authz-checked "peer=spiffe://cluster.local/ns/web/sa/frontend"
expect_echo_header_contains x-authz-checked "principal=$ISSUER/ext-user"
expect_echo_header_contains x-authz-checked "path=/ext/orders?$TAG"
end

begin "denied by the authorizer: its status, body and the headers the provider passes on"
before="$(metric backend "$EXT_DENIED")"
http -H "Authorization: Bearer $(mint 'scope=ext')" -H 'x-authz: deny' "$F2B/ext/orders?$TAG"
expect_status 403
expect_body "the playground authorizer says no"
expect_header x-authz-reason "asked to deny"
expect_equal "$EXT_DENIED" "$((before + 1))" "$(metric backend "$EXT_DENIED")"
end

begin "the CUSTOM rule is on a claim: without scope ext the authorizer is not asked"
http -H "Authorization: Bearer $(mint 'scope=read')" -H 'x-authz: deny' "$F2B/ext/orders?$TAG"
expect_status 200
expect_no_echo_header x-authz-checked
http -H 'x-authz: deny' "$F2B/ext/orders?$TAG"
expect_status 200
expect_no_echo_header x-authz-checked
end

begin "a client cannot speak for the peer: its own x-warden-peer-principal never reaches the authorizer"
http -H "Authorization: Bearer $(mint 'scope=ext')" -H 'x-warden-peer-principal: spiffe://cluster.local/ns/api/sa/admin' \
  -H 'x-warden-request-principal: root' "$F2B/ext/orders?$TAG"
expect_status 200
expect_echo_header_contains x-authz-checked "peer=spiffe://cluster.local/ns/web/sa/frontend;"
[[ "$(echo_header x-authz-checked)" != *"sa/admin"* && "$(echo_header x-authz-checked)" != *"principal=root"* ]] ||
  fail "the authorizer saw the forged identity: $(echo_header x-authz-checked)"
end

begin "the authorizer fails (500), is slower than the provider's 500 ms timeout, or is down: 403, closed"
token="$(mint 'scope=ext')"
ERRORS='warden_authorizer_checks_total{result="error",provider="playground-authz"}'
DOWN='warden_authorizer_checks_total{result="error",provider="authz-down"}'
errors_before="$(metric backend "$ERRORS")" down_before="$(metric backend "$DOWN")"
http -H "Authorization: Bearer $token" -H 'x-authz: error' "$F2B/ext/orders?$TAG"
expect_status 403
expect_body ""
started=$(now_ms)
http -H "Authorization: Bearer $token" -H 'x-authz: slow' "$F2B/ext/orders?$TAG"
expect_status 403
expect_at_most "ms before the timed-out check was answered" 2500 "$(($(now_ms) - started))"
http -H "Authorization: Bearer $token" "$F2B/ext-down/orders?$TAG"
expect_status 403
expect_equal "$ERRORS" "$((errors_before + 2))" "$(metric backend "$ERRORS")"
expect_equal "$DOWN" "$((down_before + 1))" "$(metric backend "$DOWN")"
end

begin "a request that first waited for its issuer's new key, then asked the authorizer (sent once the keys came)"
RESUMED='warden_key_waits_total{outcome="resumed"}'
# Past minRefetchInterval (2 s) since any fetch, so an unknown kid waits for a refetch.
sleep 2.5
curl -s -X POST "$ISSUER_URL/rotate" >/dev/null
resumed_before="$(metric backend "$RESUMED")"
http -H "Authorization: Bearer $(mint 'sub=after-rotation&scope=ext')" "$F2B/ext/orders?$TAG"
expect_status 200
expect_echo_header_contains x-authz-checked "principal=$ISSUER/after-rotation"
expect_at_least "$RESUMED" "$((resumed_before + 1))" "$(metric backend "$RESUMED")"
end

begin "DENY still wins: a DELETE from web is refused without asking"
http -X DELETE -H "Authorization: Bearer $(mint 'scope=ext')" "$F2B/ext/orders?$TAG"
expect_status 403
expect_body "RBAC: access denied"
end

begin "the decision is recorded: the audit record names the CUSTOM rule"
http -H "Authorization: Bearer $(mint 'scope=ext')" -H 'x-authz: deny' "$F2B/ext/custom-$RUN_ID?$TAG"
expect_status 403
wait_until 5 grep -q "ext/custom-$RUN_ID" "$RUN_DIR/logs/audit-backend.jsonl" || fail "no audit record"
record="$(grep "ext/custom-$RUN_ID" "$RUN_DIR/logs/audit-backend.jsonl" | tail -n 1)"
jq -e '.warden | .reason == "custom_denied" and .policy == "api/ext-authz-on-scope"
  and .rule == "ns[api]-policy[ext-authz-on-scope]-rule[0]"' <<<"$record" >/dev/null ||
  fail "audit record: $(short "$record" 400)"
end
