# Warden's counters through a real Prometheus (Debian's `prometheus`, started with
# observability/prometheus.yml as `make observe` starts it): known traffic in, then every
# query of the Grafana dashboard (observability/grafana/warden.json) and every rule of
# observability/alerts.yaml evaluated by Prometheus itself. Each dashboard query must parse and
# return series; the counts Prometheus scraped must equal the requests this file sent; no label
# carries request data. (The alerts' firing conditions are unit-tested by `promtool test rules`,
# observability/alerts.test.yaml.)

group "Prometheus: the dashboard's and the alerts' queries against real scrapes"

PROM="http://127.0.0.1:$PROMETHEUS_PORT"
PROM_STARTED=""
if ! curl -fs --max-time 2 "$PROM/-/ready" >/dev/null 2>&1; then
  "$E2E_DIR/mesh.sh" observe >/dev/null
  PROM_STARTED=1
fi

# promql QUERY: Prometheus's JSON answer to an instant query.
promql() { curl -s --max-time 10 --data-urlencode "query=$1" "$PROM/api/v1/query"; }

# prom_sum QUERY: the sum of the query's values as an integer (0 without series).
prom_sum() { promql "sum($1)" | jq -r '(.data.result[0].value[1] // "0") | tonumber | floor'; }

# scraped QUERY VALUE: waits until Prometheus's sum of QUERY reaches VALUE (the sidecars'
# own count), for up to 15 s (the playground scrapes every 2 s).
scraped() {
  local deadline got
  deadline=$(($(now_ms) + 15000))
  while :; do
    got="$(prom_sum "$1")"
    [ "$got" -ge "$2" ] 2>/dev/null && return 0
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.5
  done
  return 1
}

B='workload="backend"'
DENY_DELETE="warden_policy_requests_total{$B,policy=\"api/deny-delete-from-web\",effect=\"denied\"}"
EXPIRED="warden_authn_failures_total{$B,reason=\"expired\"}"
AUDITED="warden_policy_requests_total{$B,policy=\"api/audit-admin\",effect=\"audited\"}"
DRY_RUN="warden_policy_requests_total{$B,policy=\"api/dry-run-deny-order-writes\",effect=\"dry_run_denied\"}"
PEER_REFUSED="warden_peer_refusals_total{$B,reason=\"multiple_uri_sans\"}"
FAIL_CLOSED="warden_fail_closed_total{$B,reason=\"direct_peer_unknown\"}"
KEY_WAITS="warden_key_waits_total{$B}"
AUTHORIZER="warden_authorizer_checks_total{$B,provider=\"playground-authz\",result=\"denied\"}"
COUNTED=("$DENY_DELETE" "$EXPIRED" "$AUDITED" "$DRY_RUN" "$PEER_REFUSED" "$FAIL_CLOSED" "$KEY_WAITS" "$AUTHORIZER")

# One wave of known traffic: 2 DELETEs the DENY policy refuses, 2 expired tokens, 1 AUDIT
# match, 1 dry-run would-deny, 1 certificate with two URI SANs, 1 ipBlocks rule that fails
# closed (no network filter on that port), 1 token whose kid makes the request wait for keys,
# 1 CUSTOM check the external authorizer denies.
"$WARDEN" token keygen --alg RS256 --out "$WORK/prometheus-stray.pem" 2>/dev/null
wave() {
  http -X DELETE "$F2B/public/prometheus?$TAG"
  http -X DELETE "$F2B/public/prometheus?$TAG"
  http -H "Authorization: Bearer $(mint 'ttl=-5m')" "$F2B/api/orders?$TAG"
  http -H "Authorization: Bearer $(mint 'ttl=-5m')" "$F2B/api/orders?$TAG"
  http -H "Authorization: Bearer $(mint 'scope=admin')" "$F2B/admin/users?$TAG"
  http -X POST "$F2B/api/orders?$TAG"
  mtls multi-san "$BACKEND_INBOUND_PORT" "/api/orders?$TAG"
  mtls frontend "$BACKEND_ISTIO_NO_HANDOVER_PORT" "/ops/status?$TAG"
  http -H "Authorization: Bearer $(local_token --key "$WORK/prometheus-stray.pem" --kid="prometheus-$RANDOM$RANDOM")" \
    "$F2B/api/orders?$TAG"
  http -H "Authorization: Bearer $(mint 'scope=ext')" -H 'x-authz: deny' "$F2B/ext/prometheus?$TAG"
}

begin "Prometheus scrapes every sidecar (targets up, with namespace and workload labels)"
up="$(promql 'up{job="warden-sidecars"}' | jq -r '[.data.result[] | select(.value[1] == "1") | .metric.workload] | sort | join(",")')"
deadline=$(($(now_ms) + 15000))
while [ "$up" != "backend,frontend,intruder" ] && [ "$(now_ms)" -lt "$deadline" ]; do
  sleep 0.5
  up="$(promql 'up{job="warden-sidecars"}' | jq -r '[.data.result[] | select(.value[1] == "1") | .metric.workload] | sort | join(",")')"
done
expect_equal "sidecars up in Prometheus" "backend,frontend,intruder" "$up"
end

begin "the counts Prometheus scraped equal the requests sent (two waves, each scraped)"
declare -A BEFORE=()
for series in "${COUNTED[@]}"; do BEFORE[$series]="$(prom_sum "$series")"; done
# The first wave creates any counter not yet defined; Prometheus scrapes it; the second wave
# then shows up as an increase (so rate() and increase() have two samples to work with).
wave
scraped "$DENY_DELETE" "$((BEFORE[$DENY_DELETE] + 2))" || fail "Prometheus did not see the first wave within 15 s"
sleep 2.5
wave
for series in "${COUNTED[@]}"; do
  case "$series" in
    "$DENY_DELETE" | "$EXPIRED") sent=4 ;;
    *) sent=2 ;;
  esac
  scraped "$series" "$((BEFORE[$series] + sent))" || true
  expect_equal "Prometheus's $series" "$((BEFORE[$series] + sent))" "$(prom_sum "$series")"
done
end

begin "every dashboard query parses and returns series"
dashboard="$E2E_DIR/../observability/grafana/warden.json"
# The dashboard's variables as Grafana substitutes them with "All" selected.
queries="$(jq -r '.panels[] | .title as $t | (.targets // [])[] | select(.expr) | [$t, .expr] | @tsv' "$dashboard" |
  sed -e 's/\$__rate_interval/1m/g' -e 's/\$__range/5m/g' -e 's/\$namespace/.*/g' -e 's/\$workload/.*/g')"
[ -n "$queries" ] || fail "no queries in $dashboard"
count=0
while IFS=$'\t' read -r title expr; do
  [ -n "$expr" ] || continue
  count=$((count + 1))
  answer="$(promql "$(printf '%b' "$expr")")"
  if [ "$(jq -r .status <<<"$answer")" != success ]; then
    fail "panel '$title': $(jq -r .error <<<"$answer") in: $(short "$expr" 200)"
  elif [ "$(jq '.data.result | length' <<<"$answer")" -eq 0 ]; then
    fail "panel '$title' returned no series: $(short "$expr" 200)"
  fi
done <<<"$queries"
expect_at_least "dashboard queries evaluated" 10 "$count"
end

begin "the top denying policies panel names the policy this file made deny"
found=""
while IFS=$'\t' read -r title expr; do
  [[ "$expr" == *'effect="denied"'* ]] || continue
  if promql "$(printf '%b' "$expr")" | jq -e '.data.result[] | select(.metric.policy == "api/deny-delete-from-web")' >/dev/null; then
    found="$title"
  fi
done <<<"$queries"
[ -n "$found" ] || fail "no dashboard query on effect=\"denied\" lists api/deny-delete-from-web"
end

begin "every alert rule loaded and evaluates without error; each alert query is valid over the scraped series"
deadline=$(($(now_ms) + 10000))
while :; do
  rules="$(curl -s --max-time 5 "$PROM/api/v1/rules")"
  pending="$(jq '[.data.groups[].rules[] | select(.lastEvaluation | startswith("0001"))] | length' <<<"$rules")"
  [ "$pending" = 0 ] && break
  [ "$(now_ms)" -ge "$deadline" ] && break
  sleep 0.5
done
expected="$(grep -c '^ *- alert:' "$E2E_DIR/../observability/alerts.yaml")"
expect_equal "alert rules Prometheus loaded" "$expected" "$(jq '[.data.groups[].rules[] | select(.type == "alerting")] | length' <<<"$rules")"
bad="$(jq -r '.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.lastError)"' <<<"$rules")"
[ -z "$bad" ] || fail "rules not healthy: $(short "$bad" 400)"
# Each alert's expression, evaluated on its own, is valid PromQL over the scraped series.
while IFS= read -r expr; do
  answer="$(promql "$expr")"
  [ "$(jq -r .status <<<"$answer")" = success ] || fail "alert query failed: $(jq -r .error <<<"$answer")"
done < <(jq -r '.data.groups[].rules[] | select(.type == "alerting") | .query' <<<"$rules")
end

begin "no label carries request data: Warden's series are bounded by policies, reasons and issuers"
labels="$(curl -s --max-time 10 -G --data-urlencode 'match[]={__name__=~"warden_.+"}' "$PROM/api/v1/series")"
[[ "$labels" != *"$TAG"* && "$labels" != *"prometheus-"[0-9]* ]] || fail "a label value carries request data"
names="$(jq -r '[.data[] | del(.__name__, .instance, .job, .namespace, .workload) | keys[]] | unique | join(",")' <<<"$labels")"
expect_equal "label names of Warden's series" "decision,effect,issuer,outcome,plugin,policy,provider,reason,result,status" "$names"
end

[ -z "$PROM_STARTED" ] || "$E2E_DIR/mesh.sh" observe-stop >/dev/null
