# Certificate-bound tokens (RFC 8705 §3; envoy/policies/32-backend-bound-tokens.yaml): a token
# whose `cnf.x5t#S256` names frontend's certificate works on frontend's connections and nowhere
# else. Evidence: the status, the 401's reason and warden_authn_failures_total.

group "certificate-bound tokens (RFC 8705)"

# x5t CERT: the base64url SHA-256 thumbprint of envoy/certs/live/CERT/tls.crt, by openssl.
x5t() {
  openssl x509 -in "$LIVE/$1/tls.crt" -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '='
}

# bound_token CERT [CNF-JSON]: a token of https://bound.warden.local signed by the playground
# issuer, bound to CERT's certificate (or carrying the given cnf claim).
bound_token() {
  local cnf="${2:-$(jq -nc --arg t "$(x5t "$1")" '{"x5t#S256": $t}')}"
  curl -sS --max-time 10 -G "$ISSUER_URL/token" --data-urlencode "iss=https://bound.warden.local" \
    --data-urlencode "sub=payer" --data-urlencode "claims={\"cnf\": $cnf}"
}

MISMATCH='warden_authn_failures_total{reason="certificate_binding_mismatch"}'

begin "a token bound to frontend's certificate: accepted on frontend's connection (through its sidecar and directly)"
token="$(bound_token frontend)"
http -H "Authorization: Bearer $token" "$F2B/payments/1?$TAG"
expect_status 200
mtls frontend "$BACKEND_INBOUND_PORT" -H "Authorization: Bearer $token" "/payments/2?$TAG"
expect_status 200
end

begin "the same token stolen: refused over intruder's connection and on a plaintext one (401, bound to another certificate)"
token="$(bound_token frontend)"
before="$(metric backend "$MISMATCH")"
mtls intruder "$BACKEND_INBOUND_PORT" -H "Authorization: Bearer $token" "/payments/3?$TAG"
expect_status 401
expect_body_contains "Jwt is bound to another certificate"
http -H "Authorization: Bearer $token" "http://127.0.0.1:$BACKEND_PLAINTEXT_PORT/payments/4?$TAG"
expect_status 401
expect_at_least "$MISMATCH" "$((before + 2))" "$(metric backend "$MISMATCH")"
end

begin "a bound issuer's token without cnf, or with a binding to another certificate: 401"
http -H "Authorization: Bearer $(bound_token frontend '{}')" "$F2B/payments/5?$TAG"
expect_status 401
expect_body_contains "Jwt is not bound to a certificate"
http -H "Authorization: Bearer $(bound_token intruder)" "$F2B/payments/6?$TAG"
expect_status 401
expect_body_contains "Jwt is bound to another certificate"
end

begin "warden token mint --bind-cert writes the thumbprint openssl computes"
"$WARDEN" token keygen --alg ES256 --out "$WORK/bind.pem" 2>/dev/null
minted="$("$WARDEN" token mint --key "$WORK/bind.pem" --iss x --bind-cert "$LIVE/frontend/tls.crt")"
expect_equal "cnf.x5t#S256" "$(x5t frontend)" "$(segment "$minted" 1 | unb64url | jq -r '.cnf["x5t#S256"]')"
end
