# End-user identity: JWTs from the playground issuer (envoy/policies/30-backend-jwt.yaml,
# 31-backend-admin.yaml). Answers as Envoy's jwt_authn gives them
# (source/extensions/filters/http/jwt_authn/filter.cc onComplete; jwt_verify_lib status.cc):
# 401 with the status string and WWW-Authenticate, 403 for an audience mismatch; a request
# without a token is not refused by authentication (authorization decides).

group "tokens"

ADMIN_TOKEN="$(mint 'scope=read+admin')"
READ_TOKEN="$(mint 'scope=read')"

begin "frontend + token with scope 'read admin' on /admin/users: 200; claims copied to headers, token removed"
http -H "Authorization: Bearer $ADMIN_TOKEN" "$F2B/admin/users?$TAG"
expect_status 200
expect_echo_header x-jwt-sub alice
expect_echo_header x-jwt-scope "read admin"
expect_no_echo_header authorization
expect_log backend 'warden="allowed ns[api]-policy[admin-needs-token]-rule[0]"'
end

begin "frontend without a token on /admin/users: 403, no WWW-Authenticate (a missing token is not a bad one)"
http "$F2B/admin/users?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_no_header www-authenticate
expect_log backend '403 rbac_access_denied_matched_policy[none]'
end

begin "token with scope 'read' on /admin/users: 403, the claim condition is not met"
http -H "Authorization: Bearer $READ_TOKEN" "$F2B/admin/users?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log backend 'warden="denied none"'
end

# Istio splits `scope` on spaces: "administrator" is one value, not "admin".
begin "token with scope 'administrator' on /admin/users: 403"
http -H "Authorization: Bearer $(mint 'scope=administrator')" "$F2B/admin/users?$TAG"
expect_status 403
end

# requestPrincipals "<iss>/*" needs a non-empty sub (pilot/pkg/security/authz/model/
# generator.go: principal is iss/sub); a token without sub never matches.
begin "token with scope admin but no sub on /admin/users: 403, requestPrincipals needs iss/sub"
http -H "Authorization: Bearer $(mint 'sub=&scope=admin')" "$F2B/admin/users?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

begin "valid token on /api/orders: 200, x-jwt-sub set, Authorization removed before forwarding"
http -H "Authorization: Bearer $READ_TOKEN" "$F2B/api/orders?$TAG"
expect_status 200
expect_echo_header x-jwt-sub alice
expect_echo_header x-jwt-scope read
expect_no_echo_header authorization
end

# realm: x-forwarded-proto, :authority and the path with its query, as Envoy's
# Http::Utility::buildOriginalUri.
begin "malformed token: 401 'Jwt is not in the form…', WWW-Authenticate with the request's realm"
http -H "Authorization: Bearer not-a-jwt" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
expect_header www-authenticate "Bearer realm=\"https://127.0.0.1:$FRONTEND_TO_BACKEND_PORT/api/orders?$TAG\", error=\"invalid_token\""
expect_log backend '401 jwt_authn_access_denied{Jwt_is_not_in_the_form_of_Header.Payload.Signature_with_two_dots_and_3_sections}'
expect_log backend 'warden="unauthenticated bad_format"'
end

begin "expired token: 401 'Jwt is expired'"
http -H "Authorization: Bearer $(mint 'ttl=-5m')" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt is expired"
expect_header_contains www-authenticate 'error="invalid_token"'
expect_log backend '401 jwt_authn_access_denied{Jwt_is_expired}'
expect_log backend 'warden="unauthenticated expired"'
end

begin "token not valid before ten minutes from now: 401 'Jwt not yet valid'"
http -H "Authorization: Bearer $(mint 'nbf=%2B10m')" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt not yet valid"
expect_log backend 'warden="unauthenticated not_yet_valid"'
end

begin "token for audience 'other': 403 'Audiences in Jwt are not allowed' (Envoy's one 403)"
http -H "Authorization: Bearer $(mint 'aud=other')" "$F2B/api/orders?$TAG"
expect_status 403
expect_body "Audiences in Jwt are not allowed"
expect_header_contains www-authenticate 'error="invalid_token"'
expect_log backend '403 jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}'
end

begin "token from issuer http://evil.example (same keys): 401 'Jwt issuer is not configured'"
http -H "Authorization: Bearer $(mint 'iss=http://evil.example')" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt issuer is not configured"
expect_log backend 'warden="unauthenticated unknown_issuer"'
end

begin "token without exp: 401 (Warden requires exp; Envoy would let it live forever)"
http -H "Authorization: Bearer $(mint 'no_exp=1')" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt payload [exp] field is required"
end

begin "signature altered in the middle: 401 'Jwt verification fails'"
sig="$(segment "$READ_TOKEN" 2)"
middle=$((${#sig} / 2))
flipped="${sig:0:middle}$([ "${sig:middle:1}" = A ] && echo B || echo A)${sig:middle+1}"
http -H "Authorization: Bearer $(segment "$READ_TOKEN" 0).$(segment "$READ_TOKEN" 1).$flipped" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt verification fails"
expect_log backend 'warden="unauthenticated verification_failed"'
end

begin "payload altered (sub alice → admin), signature kept: 401 'Jwt verification fails'"
payload="$(segment "$READ_TOKEN" 1 | unb64url | sed 's/"sub":"alice"/"sub":"admin"/' | b64url)"
http -H "Authorization: Bearer $(segment "$READ_TOKEN" 0).$payload.$(segment "$READ_TOKEN" 2)" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt verification fails"
end

begin "alg none: 401 'Jwt header [alg] is not supported'"
header_none="$(printf '{"alg":"none","typ":"JWT"}' | b64url)"
http -H "Authorization: Bearer $header_none.$(segment "$READ_TOKEN" 1).AAAA" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt header [alg] is not supported"
end

group "claims to headers, and header games"

begin "forged x-jwt-sub and x-jwt-scope without a token: 200, both stripped before the application"
http -H 'x-jwt-sub: admin' -H 'x-jwt-scope: admin' "$F2B/api/orders?$TAG"
expect_status 200
expect_no_echo_header x-jwt-sub
expect_no_echo_header x-jwt-scope
end

begin "two forged X-JWT-SUB (any case) with bob's token: the application sees exactly one x-jwt-sub, bob"
http -H 'X-JWT-SUB: admin' -H 'x-jwt-sub: root' -H "Authorization: Bearer $(mint 'sub=bob')" "$F2B/api/orders?$TAG"
expect_status 200
expect_echo_header x-jwt-sub bob
end

# Envoy's default token locations: Authorization "Bearer " and the access_token query
# parameter (extractor.cc); a verified token is removed from where it was found.
begin "token in the access_token query parameter: 200, verified and removed from the path"
http "$F2B/api/orders?access_token=$READ_TOKEN&$TAG"
expect_status 200
expect_echo_header x-jwt-sub alice
expect_json .path "/api/orders?$TAG"
end

# Envoy requires every token found to verify; Warden goes further and refuses two different
# tokens outright (FailureReason::MultipleTokens: Istio would leave the principal undefined).
begin "valid token in Authorization, expired one in access_token: 401 'Found multiple Jwt tokens'"
http -H "Authorization: Bearer $READ_TOKEN" "$F2B/api/orders?access_token=$(mint 'ttl=-5m')&$TAG"
expect_status 401
expect_body "Found multiple Jwt tokens"
expect_log backend 'warden="unauthenticated multiple_tokens"'
end

# Envoy joins repeated Authorization headers with a comma, and the token is the rest of the value
# after "Bearer " (extractor.cc extractJWT): "<jwt>,Bearer garbage" has a signature segment
# that is not base64url.
begin "two Authorization headers, a valid token and garbage: 401, never half-accepted"
http -H "Authorization: Bearer $READ_TOKEN" -H "Authorization: Bearer garbage" "$F2B/api/orders?$TAG"
expect_status 401
expect_body "Jwt signature is an invalid Base64url encoded"
end

# The Bearer scheme is case-insensitive (RFC 7235 §2.1, RFC 6750 §2.1): "bearer <t>" carries a
# token, which must verify. Envoy's extractor.cc finds the prefix case-sensitively and treats
# such a request as anonymous, so an invalid token there passes as "no token"; Warden refuses it
# (docs/compatibility.md#tokens).
begin "'bearer' in lower case with an admin token: the token is read, /admin/users gets 200"
http -H "Authorization: bearer $ADMIN_TOKEN" "$F2B/admin/users?$TAG"
expect_status 200
expect_log backend 'warden="allowed ns[api]-policy[admin-needs-token]-rule[0]"'
end

begin "'BEARER' in upper case with a forged token: 401, never passed as no token"
http -H "Authorization: BEARER $(segment "$ADMIN_TOKEN" 0).$(segment "$ADMIN_TOKEN" 1).AAAA" "$F2B/api/orders?$TAG"
expect_status 401
expect_header_contains www-authenticate 'error="invalid_token"'
expect_log backend 'warden="unauthenticated'
end

begin "Authorization: Basic on /api/orders: 200, not a bearer token, forwarded untouched"
http -H "Authorization: Basic dXNlcjpwYXNz" "$F2B/api/orders?$TAG"
expect_status 200
expect_echo_header authorization "Basic dXNlcjpwYXNz"
expect_no_echo_header x-jwt-sub
end

group "gRPC (HTTP/2, content-type application/grpc)"

begin "gRPC call denied by authorization: grpc-status 7 (PERMISSION_DENIED), trailers-only"
mtls frontend "$BACKEND_INBOUND_PORT" --http2 -X POST -H 'content-type: application/grpc' -H 'te: trailers' \
  "/warden.Orders/Delete?$TAG"
expect_status 200
expect_header content-type application/grpc
expect_header grpc-status 7
expect_header grpc-message "RBAC: access denied"
expect_log backend 'rbac_access_denied_matched_policy[none]'
end

begin "gRPC call with an expired token: grpc-status 16 (UNAUTHENTICATED), grpc-message says why"
mtls frontend "$BACKEND_INBOUND_PORT" --http2 -X POST -H 'content-type: application/grpc+proto' \
  -H "authorization: Bearer $(mint 'ttl=-5m')" "/api/warden.Orders/Get?$TAG"
expect_status 200
expect_header grpc-status 16
expect_header grpc-message "Jwt is expired"
expect_header_contains www-authenticate 'error="invalid_token"'
end

begin "gRPC call with a token for another audience: grpc-status 7 (Envoy's 403 maps to PERMISSION_DENIED)"
mtls frontend "$BACKEND_INBOUND_PORT" --http2 -X POST -H 'content-type: application/grpc' \
  -H "authorization: Bearer $(mint 'aud=other')" "/api/warden.Orders/Get?$TAG"
expect_status 200
expect_header grpc-status 7
expect_header grpc-message "Audiences in Jwt are not allowed"
end

begin "gRPC call allowed: forwarded to the application (POST /api/warden.Orders/Get)"
mtls frontend "$BACKEND_INBOUND_PORT" --http2 -X POST -H 'content-type: application/grpc' "/api/warden.Orders/Get?$TAG"
expect_status 200
expect_json .path "/api/warden.Orders/Get?$TAG"
expect_log backend 'warden="allowed ns[api]-policy[allow-frontend-api]-rule[0]"'
end
