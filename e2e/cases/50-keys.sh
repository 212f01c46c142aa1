# The issuer's keys over time, without restarting anything: rotation (a token whose `kid` the
# key store has not seen makes it refetch the JWKS, at most once per jwks.minRefetchInterval,
# which envoy/settings.yaml sets to 2 s for the playground instead of the default 30 s), a JWKS
# endpoint that fails during a refresh (the last good keys stay), and a flood of random kids
# (not amplified into the identity provider). Backend's key store is shared by its worker VMs
# (src/keystore.rs); these cases use frontend's sidecar, i.e. backend's port 15002.

group "signing keys: rotation, failing refreshes, random kids"

"$WARDEN" token keygen --alg RS256 --out "$WORK/stray.pem" 2>/dev/null

# stray_token: signed by a key the issuer never published, with a kid nobody knows.
stray_token() { local_token --key "$WORK/stray.pem" --kid="stray-$RANDOM$RANDOM"; }

jwks_requests() { issuer_stat .jwks_requests; }

# answer TOKEN [URL]: the status backend gives the token (frontend's sidecar, /api/orders).
answer() {
  : >"$WORK/answer"
  curl -s -o "$WORK/answer" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $1" "${2:-$F2B/api/orders}"
}

kid_of() { segment "$1" 0 | unb64url | jq -r .kid; }

FETCH_FAILURES='warden_jwks_fetches_total{issuer="http://issuer.warden.local:18090",result="failure"}'
FETCH_SUCCESSES='warden_jwks_fetches_total{issuer="http://issuer.warden.local:18090",result="success"}'

begin "rotation: a token signed with a new key is accepted within seconds, no restart (refetch on unknown kid)"
OLD_TOKEN="$(mint 'sub=old')"
old_kid="$(kid_of "$OLD_TOKEN")"
new_kid="$(curl -s -X POST "$ISSUER_URL/rotate" | jq -r .kid)"
NEW_TOKEN="$(mint 'sub=new')"
expect_equal "the new token's kid" "$new_kid" "$(kid_of "$NEW_TOKEN")"
[ "$new_kid" != "$old_kid" ] || fail "rotation kept the kid $old_kid"
s0="$(metric backend "$FETCH_SUCCESSES")"
started=$(now_ms)
# Until minRefetchInterval has passed since the last fetch, the unknown kid is refused at once.
wait_until 10 eval '[ "$(answer "$NEW_TOKEN")" = 200 ]' || fail "the new key's token was not accepted within 10 s: $(answer "$NEW_TOKEN") $(short "$(cat "$WORK/answer")")"
took=$(($(now_ms) - started))
expect_at_most "ms until the new key was accepted" 5000 "$took"
expect_at_least "$FETCH_SUCCESSES" "$((s0 + 1))" "$(metric backend "$FETCH_SUCCESSES")"
http -H "Authorization: Bearer $NEW_TOKEN" "$F2B/api/orders?$TAG"
expect_status 200
expect_echo_header x-jwt-sub new
end

begin "rotation keeps the old key published: a token with the old kid still gets 200"
http -H "Authorization: Bearer $OLD_TOKEN" "$F2B/api/orders?$TAG"
expect_status 200
expect_echo_header x-jwt-sub old
end

# fault_case MODE WHAT: the JWKS endpoint answers MODE while an unknown kid makes the key store
# refetch; the refetch fails, the unknown kid is refused, and the keys it had keep working.
fault_case() {
  begin "JWKS endpoint answering $2 during a refresh: the fetch fails, the last good keys stay in use"
  local j0 f0 code=""
  fault "$1"
  j0="$(jwks_requests)"
  f0="$(metric backend "$FETCH_FAILURES")"
  # Each try asks for a refetch; one is made once minRefetchInterval (and the backoff after an
  # earlier failure) has passed, and the request that asked waits for it.
  wait_until 15 eval 'code="$(answer "$(stray_token)")"; [ "$(jwks_requests)" -gt "$j0" ]' ||
    fail "no JWKS request reached the issuer within 15 s"
  expect_equal "the unknown kid's answer" "401 Jwks doesn't have key to match kid or alg from Jwt" "$code $(cat "$WORK/answer")"
  wait_until 5 eval '[ "$(metric backend "$FETCH_FAILURES")" -gt "$f0" ]' ||
    fail "$FETCH_FAILURES stayed at $f0"
  http -H "Authorization: Bearer $NEW_TOKEN" "$F2B/api/orders?$TAG"
  expect_status 200
  expect_echo_header x-jwt-sub new
  fault ok
  end
}
fault_case 500 "500"
fault_case html "200 with an HTML login page"
fault_case garbage "200 with truncated JSON"
fault_case empty "200 with an empty key set"
fault_case huge "200 with the key set padded past the 256 KiB cap (MAX_JWKS_BYTES)"

begin "the issuer's request log shows the oversized key set was served, and Warden logged why it refused it"
expect_at_least "backend log lines refusing the oversized key set" 1 \
  "$(log_since_start backend | grep -c 'JWKS is larger than\|larger than 262144\|too large' || true)"
end

begin "JWKS healthy again, old keys dropped (rotate?drop_old=1): new key accepted within 12 s, dropped key refused"
fault ok
dropped_kid="$new_kid"
new_kid="$(curl -s -X POST "$ISSUER_URL/rotate?drop_old=1" | jq -r .kid)"
LATEST_TOKEN="$(mint 'sub=latest')"
started=$(now_ms)
# After four failures in a row the key store backs off (1, 2, 4, 8 s; at most 10 s).
wait_until 15 eval '[ "$(answer "$LATEST_TOKEN")" = 200 ]' || fail "the new key's token was not accepted within 15 s"
expect_at_most "ms until the key store recovered" 12000 "$(($(now_ms) - started))"
# The worker that refetched drops the key at once; the others import the new key set on their
# next tick (1 s). Fresh connections land on any worker.
expect_equal "the dropped token's kid" "$dropped_kid" "$(kid_of "$NEW_TOKEN")"
refused_everywhere() {
  local i
  for i in 1 2 3 4 5 6; do
    [ "$(curl -s -o "$WORK/answer" -w '%{http_code}' --max-time 10 --cacert "$LIVE/ca/ca.crt" \
      --resolve "$BACKEND_HOST:$BACKEND_INBOUND_PORT:127.0.0.1" --cert "$LIVE/frontend/tls.crt" \
      --key "$LIVE/frontend/tls.key" -H "Authorization: Bearer $NEW_TOKEN" \
      "https://$BACKEND_HOST:$BACKEND_INBOUND_PORT/api/orders")" = 401 ] || return 1
  done
}
wait_until 5 refused_everywhere || fail "a token signed by the dropped key was still accepted 5 s after the refetch"
expect_equal "the dropped key's answer" "Jwks doesn't have key to match kid or alg from Jwt" "$(cat "$WORK/answer")"
end

begin "30 tokens with random kids: all 401, and at most one JWKS fetch per 2 s (minRefetchInterval)"
j0="$(jwks_requests)"
started=$(now_ms)
others=""
for i in $(seq 30); do
  code="$(answer "$(stray_token)")"
  [ "$code" = 401 ] || others="$others $code"
done
elapsed=$(($(now_ms) - started))
[ -z "$others" ] || fail "answers other than 401:$others"
# One refetch per minRefetchInterval, plus one for a scheduled refresh (refreshInterval) that
# may fall in the window.
expect_at_most "JWKS requests for 30 random kids in $elapsed ms" "$((elapsed / 2000 + 2))" "$(($(jwks_requests) - j0))"
end

# Envoy maps a paused request-headers callback to StopAllIteration, so request data that arrives
# while Warden waits is buffered, never shown to a later filter; a body callback answering
# Continue (the SDK's default) would otherwise release the headers undecided.
begin "a body that arrives while its request waits for keys is held: 401 after the slow fetch, nothing reaches the application"
fault "slow&delay_ms=3000"
waited=0
for try in 1 2 3 4 5; do
  started=$(now_ms)
  code="$( (sleep 1; printf 'body sent during the wait') | curl -s -o "$WORK/answer" -w '%{http_code}' --max-time 10 \
    -X POST -H 'content-type: text/plain' -H "Authorization: Bearer $(stray_token)" -T - "$F2B/api/orders")"
  took=$(($(now_ms) - started))
  [ "$code" = 401 ] || fail "try $try: $code after $took ms: $(short "$(cat "$WORK/answer")")"
  # A request that waited for the 3 s fetch had its body arrive 1 s in.
  if [ "$took" -ge 2500 ]; then waited=1; break; fi
  sleep 1
done
fault ok
[ "$waited" = 1 ] || fail "no request waited for the slow fetch (each was refused at once)"
end

# A JWKS server that accepts the connection and never answers: the fetch times out at the rule's
# `timeout` (RequestAuthentication default 5 s), and requests waiting for it are answered then,
# not held until Envoy's stream timeout.
begin "a JWKS server that hangs: a request waiting for keys gets 401 at the rule's 5 s timeout, not later"
fault "slow&delay_ms=30000"
j0="$(jwks_requests)"
waited=0
for try in 1 2 3 4 5; do
  started=$(now_ms)
  code="$(answer "$(stray_token)")"
  took=$(($(now_ms) - started))
  [ "$code" = 401 ] || fail "try $try: $code after $took ms: $(short "$(cat "$WORK/answer")")"
  if [ "$took" -ge 3000 ]; then waited=1; break; fi
  sleep 1
done
fault ok
[ "$waited" = 1 ] || fail "no request waited for the hanging fetch (each was refused at once)"
expect_at_most "ms a request waited for a JWKS server that never answers" 6500 "$took"
expect_at_least "JWKS requests the issuer received (its own count)" "$((j0 + 1))" "$(jwks_requests)"
end
