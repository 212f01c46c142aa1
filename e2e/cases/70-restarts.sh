# A sidecar (re)starting: Warden's key store fetches the issuer's keys when its configuration
# loads. If the JWKS endpoint is down then, tokens fail closed (401 `Jwks remote fetch is
# failed`) and the store retries with backoff (1 s doubling to at most 10 s, src/keystore.rs);
# once the endpoint answers, tokens verify again, without a restart. Requests without a token
# are not affected.

group "sidecar restarts: keys at start, JWKS down at start"

# direct_answer PORT TOKEN: backend's status for frontend calling GET /api/orders on PORT.
direct_answer() {
  : >"$WORK/answer"
  curl -s -o "$WORK/answer" -w '%{http_code}' --max-time 10 --cacert "$LIVE/ca/ca.crt" \
    --resolve "$BACKEND_HOST:$1:127.0.0.1" --cert "$LIVE/frontend/tls.crt" --key "$LIVE/frontend/tls.key" \
    ${2:+-H "Authorization: Bearer $2"} "https://$BACKEND_HOST:$1/api/orders"
}

begin "a valid token right after backend's sidecar restarts (JWKS up): 200 within 2 s"
fault ok
TOKEN="$(mint 'sub=restart')"
e2e/mesh.sh restart-envoy backend 2>/dev/null || fail "backend's sidecar did not come back (e2e/mesh.sh restart-envoy backend)"
started=$(now_ms)
code="$(direct_answer "$BACKEND_INBOUND_PORT" "$TOKEN")"
took=$(($(now_ms) - started))
[ "$code" = 200 ] || fail "the first token got: $(cat "$WORK/answer")"
expect_equal "the first token's answer" "200" "$code"
expect_at_most "ms to answer the first token" 2000 "$took"
# Whatever the first answer was, the keys must arrive.
wait_until 15 eval '[ "$(direct_answer "$BACKEND_INBOUND_PORT" "$TOKEN")" = 200 ]' ||
  fail "the token was still refused 15 s after the restart: $(cat "$WORK/answer")"
end

begin "JWKS down when backend's sidecar starts: tokens fail closed (401), requests without one still pass"
fault down
j0="$(issuer_stat .jwks_requests)"
e2e/mesh.sh restart-envoy backend 2>/dev/null || fail "backend's sidecar did not come back"
RESTARTED=$(now_ms)
http --cacert "$LIVE/ca/ca.crt" --resolve "$BACKEND_HOST:$BACKEND_INBOUND_PORT:127.0.0.1" \
  --cert "$LIVE/frontend/tls.crt" --key "$LIVE/frontend/tls.key" -H "Authorization: Bearer $TOKEN" \
  "https://$BACKEND_HOST:$BACKEND_INBOUND_PORT/api/orders?$TAG"
expect_status 401
expect_body "Jwks remote fetch is failed"
expect_header_contains www-authenticate 'error="invalid_token"'
expect_log backend 'warden="unauthenticated jwks_fetch_failed"'
expect_equal "the same token on the crypto-wasm port" 401 "$(direct_answer "$BACKEND_INBOUND_WASM_CRYPTO_PORT" "$TOKEN")"
expect_equal "a request without a token" 200 "$(direct_answer "$BACKEND_INBOUND_PORT")"
end

begin "JWKS still down: retries back off (a few attempts, not one per request), every token refused"
# Let each store fail four times in a row (its next retry is then 8 s away), sending tokens
# all along.
others=""
wait_until 25 eval 'c="$(direct_answer "$BACKEND_INBOUND_PORT" "$TOKEN")"; [ "$c" = 401 ] || others="$others $c"; sleep 0.2; [ "$(($(issuer_stat .jwks_requests) - j0))" -ge 8 ]' ||
  fail "fewer than 8 JWKS attempts in 25 s after the restart"
[ -z "$others" ] || fail "tokens got answers other than 401 while the JWKS was down:$others"
attempts=$(($(issuer_stat .jwks_requests) - j0))
seconds=$((($(now_ms) - RESTARTED) / 1000 + 1))
# Two configurations on backend (ports 15002 and 15012), each retrying after 1, 2, 4, 8, 10 s.
expect_at_most "JWKS attempts in ${seconds} s of outage" $((2 * (seconds / 10 + 5))) "$attempts"
end

# every_worker_accepts: the token gets 200 on both ports and through frontend's sidecar, six
# times over on fresh connections (each lands on one of backend's worker VMs, which import the
# keys another one fetched on their next tick).
every_worker_accepts() {
  local i
  for i in 1 2 3 4 5 6; do
    [ "$(direct_answer "$BACKEND_INBOUND_PORT" "$TOKEN")" = 200 ] || return 1
    [ "$(direct_answer "$BACKEND_INBOUND_WASM_CRYPTO_PORT" "$TOKEN")" = 200 ] || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $TOKEN" "$F2B/api/orders")" = 200 ] || return 1
  done
}

begin "JWKS back: every worker accepts tokens again within 13 s (backoff at most 10 s, a tick to fetch, a tick to import), no restart"
fault ok
started=$(now_ms)
wait_until 20 every_worker_accepts || fail "tokens still refused 20 s after the JWKS came back: $(cat "$WORK/answer")"
expect_at_most "ms until every worker recovered" 13000 "$(($(now_ms) - started))"
http -H "Authorization: Bearer $TOKEN" "$F2B/api/orders?$TAG"
expect_status 200
expect_echo_header x-jwt-sub restart
end
