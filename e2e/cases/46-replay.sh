# Policy replay: the playground's backend records its decisions with their attributes
# (envoy/settings.yaml: `log.audit: all`, `log.auditAttributes: true`); `warden replay` decides
# those records again under a changed copy of envoy/policies and must report exactly the
# requests the change flips, with the rules that decided them then and now.

group "policy replay: recorded traffic decided again under changed policies"

REPLAY_ID="r$RUN_ID"
REPLAY_LOG="$WORK/replay-$REPLAY_ID.jsonl"
REPLAY_POLICIES="$WORK/replay-policies"
REPLAYED=7 # requests this file sends, all to backend

# replay_records: waits (up to 5 s) until Envoy has written all of this file's records, then
# keeps them (and only them) in $REPLAY_LOG.
replay_records() {
  local deadline
  deadline=$(($(now_ms) + 5000))
  while :; do
    jq -c --arg id "replay-$REPLAY_ID-" 'select(.warden.path | contains($id))' \
      "$RUN_DIR/logs/audit-backend.jsonl" >"$REPLAY_LOG" 2>/dev/null
    [ "$(wc -l <"$REPLAY_LOG")" -ge "$REPLAYED" ] && return 0
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.1
  done
  fail "$(wc -l <"$REPLAY_LOG") of $REPLAYED records in the audit log after 5 s"
}

# replay ARGS…: `warden replay` of this file's records for backend; sets REPLAY_OUT (JSON) and
# REPLAY_RC.
replay() {
  REPLAY_OUT="$("$WARDEN" replay --log "$REPLAY_LOG" --workload api,app=backend \
    --settings "$E2E_DIR/../envoy/settings.yaml" --format json "$@" 2>"$WORK/replay.err")"
  REPLAY_RC=$?
}

begin "the traffic: allowed, denied by DENY, by no ALLOW, by the quarantine, by a repeated header, a bad token"
P="/replay-$REPLAY_ID"
http "$F2B/api/orders$P-1?$TAG"
expect_status 200
http -X PUT "$F2B/api/orders$P-2?$TAG"
expect_status 403
http -X DELETE "$F2B/public$P-3?$TAG"
expect_status 403
http "$F2B/public$P-4?$TAG"
expect_status 200
http "$I2B/api/orders$P-5?$TAG"
expect_status 403
http -H "Authorization: Bearer $(mint 'ttl=-5m')" "$F2B/api/orders$P-6?$TAG"
expect_status 401
http -H 'x-role: user' -H 'x-role: admin' "$F2B/api/orders$P-7?$TAG"
expect_status 403
replay_records
expect_record_count() { expect_equal "$1" "$2" "$(jq -rs "$3" "$REPLAY_LOG")"; }
expect_record_count "records carrying attributes" "$REPLAYED" '[.[] | select(.warden.attributes)] | length'
expect_record_count "the repeated header, both values in order" '["user","admin"]' \
  '[.[] | select(.warden.path | endswith("-7")) | .warden.attributes.headers["x-role"]][0] | tojson'
end

begin "the same policies: every record decided again, nothing flips (exit 0)"
replay --policies "$E2E_DIR/../envoy/policies"
expect_equal "exit status" 0 "$REPLAY_RC"
expect_equal "replayed, unchanged, authentication failures, flips" "6 6 1 0" \
  "$(jq -r '"\(.replayed) \(.unchanged) \(.authentication_failures) \(.flips | length)"' <<<"$REPLAY_OUT")"
end

begin "a change (no DENY on DELETE; the API takes POST and PUT, not GET): exactly three flips, named"
rm -rf "$REPLAY_POLICIES"
cp -r "$E2E_DIR/../envoy/policies" "$REPLAY_POLICIES"
rm "$REPLAY_POLICIES/21-backend-deny-delete.yaml"
sed -i 's/methods: \["GET", "POST"\]/methods: ["POST", "PUT"]/' "$REPLAY_POLICIES/20-backend-api.yaml"
grep -q 'methods: \["POST", "PUT"\]' "$REPLAY_POLICIES/20-backend-api.yaml" || fail "the policy edit did not apply"
replay --policies "$REPLAY_POLICIES"
expect_equal "exit status without --expect (unexpected flips)" 1 "$REPLAY_RC"
flips="$(jq -r '.flips[] | "\(.direction) \(.count) \(.then.rule // .then.reason) -> \(.now.rule // .now.reason)"' <<<"$REPLAY_OUT" | sort)"
expect_equal "the flips" "allowed_to_denied 1 ns[api]-policy[allow-frontend-api]-rule[0] -> no_allow_rule
denied_to_allowed 1 no_allow_rule -> ns[api]-policy[allow-frontend-api]-rule[0]
denied_to_allowed 1 ns[api]-policy[deny-delete-from-web]-rule[0] -> ns[api]-policy[allow-web-public]-rule[0]" "$flips"
expect_equal "replayed, unchanged" "6 3" "$(jq -r '"\(.replayed) \(.unchanged)"' <<<"$REPLAY_OUT")"
expect_equal "the DELETE's example" "1" \
  "$(jq "[.flips[].examples[] | select(startswith(\"DELETE \") and contains(\"$P-3 from cluster.local/ns/web/sa/frontend\"))] | length" <<<"$REPLAY_OUT")"
replay --policies "$REPLAY_POLICIES" --expect allowed-to-denied:api/allow-frontend-api \
  --expect denied-to-allowed:api/allow-frontend-api --expect denied-to-allowed:api/deny-delete-from-web
expect_equal "exit status when --expect names every flip" 0 "$REPLAY_RC"
replay --policies "$REPLAY_POLICIES" --expect denied-to-allowed
expect_equal "exit status when an allowed → denied flip is not expected" 1 "$REPLAY_RC"
end

begin "new policies reading a header the records do not carry: not replayable, said, exit 1"
cat >"$REPLAY_POLICIES/60-tenant.yaml" <<'EOF'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tenant-header, namespace: api}
spec:
  selector: {matchLabels: {app: backend}}
  action: DENY
  rules: [{when: [{key: "request.headers[x-tenant]", values: ["blocked"]}]}]
EOF
replay --policies "$REPLAY_POLICIES" --expect allowed-to-denied --expect denied-to-allowed
expect_equal "exit status" 1 "$REPLAY_RC"
expect_equal "not replayable" "6" \
  "$(jq '[.not_replayable | to_entries[] | select(.key | contains("request.headers[x-tenant]")) | .value] | add' <<<"$REPLAY_OUT")"
end
