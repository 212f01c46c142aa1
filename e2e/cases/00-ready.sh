# Before the story: the mesh answers, and backend's key stores (one per Warden configuration:
# ports 15002 and 15012) hold the issuer's keys, so the token cases below test tokens, not a
# key store still starting (that is e2e/cases/70-restarts.sh's subject).

group "ready"

begin "backend verifies a fresh token on both ports (issuer keys fetched)"
token="$(mint 'sub=ready')"
for port in "$BACKEND_INBOUND_PORT" "$BACKEND_INBOUND_WASM_CRYPTO_PORT"; do
  wait_until 20 eval '[ "$(curl -s -o "$WORK/ready" -w "%{http_code}" --max-time 10 --cacert "$LIVE/ca/ca.crt" \
    --resolve "$BACKEND_HOST:$port:127.0.0.1" --cert "$LIVE/frontend/tls.crt" --key "$LIVE/frontend/tls.key" \
    -H "Authorization: Bearer $token" "https://$BACKEND_HOST:$port/api/orders")" = 200 ]' ||
    fail "port $port still refuses a valid token after 20 s: $(short "$(cat "$WORK/ready")")"
done
end
