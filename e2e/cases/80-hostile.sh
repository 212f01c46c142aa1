# Hostile requests: whatever a request carries, Warden answers it (or lets Envoy refuse it) and
# the VM never traps (docs/design.md#the-glue-is-thin; e2e/cases/99-vm-health.sh checks the
# logs and counters afterwards). Backend's plaintext port accepts up to 1 MiB of headers and
# 10,000 of them (envoy/backend.yaml), so these reach Warden; the echo application itself
# refuses more than 200 headers or 64 KiB with 431, which shows the request was forwarded.

group "hostile requests"

begin "a header value with non-UTF-8 bytes: 200, forwarded (the module reads headers as bytes)"
http -H $'x-evil: \xff\xfe\x80 bytes' "$PLAIN/healthz?$TAG"
expect_status 200
expect_log backend 'warden="allowed ns[api]-policy[allow-health-checks]-rule[0]"'
end

begin "a forged x-jwt-sub with non-UTF-8 bytes, over mTLS: 200 and stripped"
mtls frontend "$BACKEND_INBOUND_PORT" -H $'x-jwt-sub: \xff\xfeadmin' "/api/orders?$TAG"
expect_status 200
expect_no_echo_header x-jwt-sub
end

begin "a token with non-UTF-8 bytes: 401"
http -H $'Authorization: Bearer \xff\xfe.\x80\x81.\xc0' "$PLAIN/healthz?$TAG"
expect_status 401
expect_log backend 'warden="unauthenticated'
end

begin "a path with a non-UTF-8 byte: 400 from Envoy"
http --request-target $'/healthz\xff' "$PLAIN/"
expect_status 400
end

begin "a 200 KiB header value: forwarded by Warden (the application answers 431)"
printf 'x-big: %s\n' "$(head -c 204800 /dev/zero | tr '\0' a)" >"$WORK/big-header"
http -H "@$WORK/big-header" "$PLAIN/healthz?$TAG"
expect_status 431
expect_log backend '431 via_upstream'
expect_log backend 'warden="allowed ns[api]-policy[allow-health-checks]-rule[0]"'
end

begin "3,000 headers: forwarded by Warden (the application answers 431)"
for i in $(seq 3000); do printf 'x-h%d: v%d\n' "$i" "$i"; done >"$WORK/many-headers"
http -H "@$WORK/many-headers" "$PLAIN/healthz?$TAG"
expect_status 431
expect_log backend 'warden="allowed ns[api]-policy[allow-health-checks]-rule[0]"'
end

begin "2,000 headers over HTTP/2: forwarded by Warden (the application answers 431)"
head -n 2000 "$WORK/many-headers" >"$WORK/h2-headers"
http --http2-prior-knowledge -H "@$WORK/h2-headers" "$PLAIN/healthz?$TAG"
expect_status 431
expect_log backend 'warden="allowed ns[api]-policy[allow-health-checks]-rule[0]"'
end

begin "150 forged x-jwt-sub headers and bob's token: the application gets exactly one, bob"
for i in $(seq 150); do printf 'x-jwt-sub: forged-%d\n' "$i"; done >"$WORK/forged-subs"
http -H "@$WORK/forged-subs" -H "Authorization: Bearer $(mint 'sub=bob')" "$PLAIN/healthz?$TAG"
expect_status 200
expect_echo_header x-jwt-sub bob
end

begin "3,000 forged x-jwt-sub headers: Warden strips every one (the application, which takes 200, gets none)"
for i in $(seq 3000); do printf 'x-jwt-sub: forged-%d\n' "$i"; done >"$WORK/forged-subs"
http -H "@$WORK/forged-subs" "$PLAIN/healthz?$TAG"
expect_status 200
expect_no_echo_header x-jwt-sub
expect_log backend 'warden="allowed ns[api]-policy[allow-health-checks]-rule[0]"'
end

begin "a 100 KB token: 401 'Jwt is too large'"
printf 'Authorization: Bearer %s.a.b\n' "$(head -c 100000 /dev/zero | tr '\0' a)" >"$WORK/big-token"
http -H "@$WORK/big-token" "$PLAIN/healthz?$TAG"
expect_status 401
expect_body "Jwt is too large"
end

begin "a token whose payload nests 5,000 arrays: 401 'Jwt payload is an invalid JSON'"
printf 'Authorization: Bearer %s.%s.AAAA\n' "$(printf '{"alg":"RS256","kid":"x"}' | b64url)" \
  "$({ head -c 5000 /dev/zero | tr '\0' '['; head -c 5000 /dev/zero | tr '\0' ']'; } | b64url)" >"$WORK/deep-token"
http -H "@$WORK/deep-token" "$PLAIN/healthz?$TAG"
expect_status 401
expect_body "Jwt payload is an invalid JSON"
end

begin "a token with exp 1e400: 401 'Jwt payload is an invalid JSON'"
http -H "Authorization: Bearer $(printf '{"alg":"RS256","kid":"x"}' | b64url).$(printf '{"iss":"%s","exp":1e400,"aud":"backend"}' "$ISSUER" | b64url).AAAA" \
  "$PLAIN/healthz?$TAG"
expect_status 401
expect_body "Jwt payload is an invalid JSON"
end

begin "a 10 KB kid and a 1,000-entry crit: 401"
http -H "Authorization: Bearer $(printf '{"alg":"RS256","kid":"%s","crit":[%s"x"]}' "$(head -c 10000 /dev/zero | tr '\0' k)" "$(printf '"c",%.0s' $(seq 1000))" | b64url).$(segment "$(mint)" 1).AAAA" \
  "$PLAIN/healthz?$TAG"
expect_status 401
end

begin "1,000 access_token parameters: 401, one request does not become 1,000 verifications"
printf 'access_token=a%d.b.c&' $(seq 1000) >"$WORK/many-params"
http --request-target "/healthz?$(cat "$WORK/many-params")$TAG" "$PLAIN/"
expect_status 401
end

begin "unusual methods over HTTP/2 (FOO, get, M-SEARCH, a 1,000-character one): 403 each, decided by Warden"
for method in FOO get M-SEARCH "$(head -c 1000 /dev/zero | tr '\0' X)"; do
  http --http2-prior-knowledge -X "$method" "$PLAIN/healthz?$TAG"
  expect_status 403
done
expect_log backend '"M-SEARCH /healthz?'
expect_log backend '"get /healthz?'
end

# Envoy renders a local reply as gRPC only for a content-type it recognizes
# (Grpc::Common::isGrpcRequestHeaders); this one it does not, so the 403 stays HTTP.
begin "content-type 'application/grpc' followed by binary garbage: 403, denied"
http --http2-prior-knowledge -X POST -H $'content-type: application/grpc\xff\xfejunk' "$PLAIN/x.Y/Z?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

begin "100 concurrent requests, valid and invalid tokens mixed: every answer is the right one"
good="$(mint 'sub=burst')"
bad="$(mint 'ttl=-5m')"
for i in $(seq 100); do
  if [ $((i % 2)) = 0 ]; then printf '%s 200\n' "$good"; else printf '%s 401\n' "$bad"; fi
done | xargs -P 20 -n 2 sh -c 'code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 -H "Authorization: Bearer $0" "'"$F2B"'/api/orders"); [ "$code" = "$1" ] || echo "expected $1 got $code"' \
  >"$WORK/burst" 2>&1
[ ! -s "$WORK/burst" ] || fail "$(sort "$WORK/burst" | uniq -c | tr '\n' ';')"
end
