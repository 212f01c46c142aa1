# Both signature paths agree, in the real Envoy. Backend's port 15002 runs Warden with
# `crypto: auto` (RS256/384/512 and ES256/384 verified by Envoy's BoringSSL through the
# `verify_signature` foreign function, the rest in Rust); port 15012 runs the same policies with
# `crypto: wasm` (every signature verified in Rust inside the module). Every token of a corpus
# of valid, tampered and forged tokens must get the same answer on both, and the expected one.
# (Keys: the playground issuer's, read from its state directory; forgeries: `warden token` with
# other keys, and openssl.)

group "signature verification: Envoy's BoringSSL (port $BACKEND_INBOUND_PORT) and pure Rust (port $BACKEND_INBOUND_WASM_CRYPTO_PORT) agree"

ALGS=(RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA)
declare -A VALID
for alg in "${ALGS[@]}"; do VALID[$alg]="$(mint "alg=$alg&sub=sig-$alg")"; done

# status_on PORT TOKEN: backend's answer on that port to frontend calling GET /api/orders.
status_on() {
  : >"$WORK/sig-body"
  curl -s -o "$WORK/sig-body" -w '%{http_code}' --max-time 10 --cacert "$LIVE/ca/ca.crt" \
    --resolve "$BACKEND_HOST:$1:127.0.0.1" --cert "$LIVE/frontend/tls.crt" --key "$LIVE/frontend/tls.key" \
    -H "Authorization: Bearer $2" "https://$BACKEND_HOST:$1/api/orders"
}

begin "every issuer algorithm's key is known on both ports (a new key is fetched on its first unknown kid)"
for port in "$BACKEND_INBOUND_PORT" "$BACKEND_INBOUND_WASM_CRYPTO_PORT"; do
  for alg in "${ALGS[@]}"; do
    wait_until 15 eval '[ "$(status_on "$port" "${VALID[$alg]}")" = 200 ]' ||
      fail "port $port: the valid $alg token got $(status_on "$port" "${VALID[$alg]}") $(short "$(cat "$WORK/sig-body")")"
  done
done
end

# sign_raw ALG KEY INPUT: an RSA or ECDSA signature by openssl over INPUT, in openssl's form
# (PKCS#1 v1.5 for RS*, DER ECDSA-Sig-Value for ES*), base64url.
sign_raw() {
  local digest="sha${1:2}"
  printf '%s' "$3" | openssl dgst "-$digest" -sign "$2" | b64url
}

header_b64() { printf '%s' "$1" | b64url; }

# forge NAME: the corpus, as "expected-status<TAB>name<TAB>token" lines.
corpus() {
  local alg tok h p s key kid other
  for alg in "${ALGS[@]}"; do printf '200\tvalid %s\t%s\n' "$alg" "${VALID[$alg]}"; done
  for alg in RS256 ES256 EdDSA; do
    printf '401\texpired %s\t%s\n' "$alg" "$(mint "alg=$alg&ttl=-5m")"
  done
  for alg in RS256 PS256 ES256 ES384 EdDSA; do
    tok="${VALID[$alg]}"
    h="$(segment "$tok" 0)" p="$(segment "$tok" 1)" s="$(segment "$tok" 2)"
    printf '401\t%s payload altered (sub)\t%s.%s.%s\n' "$alg" "$h" \
      "$(printf '%s' "$p" | unb64url | sed 's/"sub":"sig-[A-Za-z0-9]*"/"sub":"admin"/' | b64url)" "$s"
    local mid=$((${#s} / 2))
    printf '401\t%s signature altered\t%s.%s.%s\n' "$alg" "$h" "$p" \
      "${s:0:mid}$([ "${s:mid:1}" = A ] && echo B || echo A)${s:mid+1}"
    printf '401\t%s signature truncated\t%s.%s.%s\n' "$alg" "$h" "$p" "${s:0:${#s}-8}"
    printf '401\t%s signature doubled\t%s.%s.%s%s\n' "$alg" "$h" "$p" "$s" "$s"
  done
  # Signed by keys the issuer never published, under the issuer's kids.
  for alg in RS256 PS256 ES256 ES384 EdDSA; do
    issuer_key "$alg" >/dev/null
    kid="$KEY_KID"
    "$WARDEN" token keygen --alg "$alg" --out "$WORK/other-$alg.pem" 2>/dev/null
    printf '401\t%s signed by another key, issuer kid\t%s\n' "$alg" \
      "$(local_token --key "$WORK/other-$alg.pem" --alg "$alg" --kid="$kid")"
  done
  # ECDSA r = s = 0 (CVE-2022-21449) and other degenerate signatures.
  for alg in ES256 ES384; do
    tok="${VALID[$alg]}"
    local n=64
    [ "$alg" = ES384 ] && n=96
    printf '401\t%s r = s = 0\t%s.%s.%s\n' "$alg" "$(segment "$tok" 0)" "$(segment "$tok" 1)" "$(head -c "$n" /dev/zero | b64url)"
    # The same key's valid signature, DER-encoded as openssl makes it: JWS needs raw r||s.
    key="$(issuer_key "$alg")"
    printf '401\t%s signature in DER, not raw r||s\t%s.%s.%s\n' "$alg" "$(segment "$tok" 0)" "$(segment "$tok" 1)" \
      "$(sign_raw "$alg" "$key" "$(segment "$tok" 0).$(segment "$tok" 1)")"
  done
  tok="${VALID[RS256]}"
  printf '401\tRS256 signature of zero bytes\t%s.%s.%s\n' "$(segment "$tok" 0)" "$(segment "$tok" 1)" \
    "$(head -c 256 /dev/zero | b64url)"
  tok="${VALID[EdDSA]}"
  printf '401\tEdDSA signature of zero bytes\t%s.%s.%s\n' "$(segment "$tok" 0)" "$(segment "$tok" 1)" \
    "$(head -c 64 /dev/zero | b64url)"
  # The key decides the algorithm, not the token: the issuer's RS256 key (its JWK says RS256)
  # used for other algorithms.
  key="$(issuer_key RS256)"
  kid="$KEY_KID"
  for other in PS256 RS384 RS512; do
    printf '401\t%s signature by the RS256 key under its kid\t%s\n' "$other" \
      "$(local_token --key "$key" --alg "$other" --kid="$kid")"
  done
  # RS256 signed correctly, but claiming the ES256 key's kid.
  issuer_key ES256 >/dev/null
  printf '401\tRS256 token under the ES256 key'\''s kid\t%s\n' "$(local_token --key "$key" --alg RS256 --kid="$KEY_KID")"
  # HS256 with the RSA public key as the HMAC secret (key confusion).
  openssl pkey -in "$key" -pubout -out "$WORK/rs256.pub" 2>/dev/null
  h="$(header_b64 "{\"alg\":\"HS256\",\"kid\":\"$kid\",\"typ\":\"JWT\"}")"
  p="$(segment "${VALID[RS256]}" 1)"
  s="$(printf '%s' "$h.$p" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(xxd -p "$WORK/rs256.pub" | tr -d '\n')" -binary | b64url)"
  printf '401\tHS256 keyed with the RS256 public key\t%s.%s.%s\n' "$h" "$p" "$s"
  # No kid: every key of the issuer is tried (jwt_verify_lib); the right one verifies.
  h="$(header_b64 '{"alg":"RS256","typ":"JWT"}')"
  p="$(segment "${VALID[RS256]}" 1)"
  printf '200\tRS256 without kid\t%s.%s.%s\n' "$h" "$p" "$(sign_raw RS256 "$key" "$h.$p")"
  printf '401\tRS256 without kid, payload altered\t%s.%s.%s\n' "$h" \
    "$(printf '%s' "$p" | unb64url | sed 's/"sub":"sig-RS256"/"sub":"admin"/' | b64url)" "$(sign_raw RS256 "$key" "$h.$p")"
}

corpus >"$WORK/corpus.tsv"

begin "the corpus has at least 50 tokens ($(wc -l <"$WORK/corpus.tsv") valid and forged, every algorithm), each made as intended"
expect_at_least "tokens in the corpus" 50 "$(wc -l <"$WORK/corpus.tsv")"
# A forgery step that failed would leave an empty or malformed token, refused for the wrong reason.
while IFS=$'\t' read -r expected name token; do
  [[ "$token" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || fail "'$name' is not a three-part token: '$(short "$token" 60)'"
done <"$WORK/corpus.tsv"
end

disagreements=0
while IFS=$'\t' read -r expected name token; do
  begin "$name: $expected on both ports"
  auto="$(status_on "$BACKEND_INBOUND_PORT" "$token") $(head -c 80 "$WORK/sig-body" | tr -d '\n' | sed 's/^{.*/(echo)/')"
  wasm="$(status_on "$BACKEND_INBOUND_WASM_CRYPTO_PORT" "$token") $(head -c 80 "$WORK/sig-body" | tr -d '\n' | sed 's/^{.*/(echo)/')"
  if [ "$auto" != "$wasm" ]; then
    disagreements=$((disagreements + 1))
    fail "the ports disagree: crypto auto gave '$auto', crypto wasm gave '$wasm'"
  fi
  expect_equal "crypto auto" "$expected" "${auto%% *}"
  expect_equal "crypto wasm" "$expected" "${wasm%% *}"
  end
done <"$WORK/corpus.tsv"
