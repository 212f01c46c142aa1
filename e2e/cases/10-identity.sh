# Workload identity: who may call whom, decided from the client certificate Envoy verified.
# Policies: envoy/policies/{00,10,20,21,50}-*.yaml. The peer identity is every SAN of the
# verified client certificate, read on a connection's first request (`peerIdentity:
# certificate`, the default).

group "workload identity (mTLS)"

begin "frontend → backend GET /api/orders: 200, backend's echo, allowed by allow-frontend-api"
http "$F2B/api/orders?$TAG"
expect_status 200
expect_json .service backend
expect_json .path "/api/orders?$TAG"
expect_echo_header_contains x-forwarded-client-cert \
  ';Subject="CN=frontend,O=cluster.local";URI=spiffe://cluster.local/ns/web/sa/frontend;DNS=frontend.web.svc.cluster.local'
expect_log backend '200 via_upstream peer="spiffe://cluster.local/ns/web/sa/frontend"'
expect_log backend 'warden="allowed ns[api]-policy[allow-frontend-api]-rule[0]"'
end

begin "intruder → backend GET /api/orders: 403, a valid mesh certificate from namespace rogue meets quarantine-rogue"
http "$I2B/api/orders?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log backend '403 rbac_access_denied_matched_policy[ns[istio-system]-policy[quarantine-rogue]-rule[0]] peer="spiffe://cluster.local/ns/rogue/sa/intruder"'
expect_log backend 'warden="denied ns[istio-system]-policy[quarantine-rogue]-rule[0]"'
end

begin "intruder → frontend POST /callbacks/done: 403 (frontend takes callbacks from backend only)"
http -X POST "$I2F/callbacks/done?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log frontend 'rbac_access_denied_matched_policy[ns[istio-system]-policy[quarantine-rogue]-rule[0]]'
end

begin "backend → frontend POST /callbacks/done: 200, allowed by allow-backend-callbacks"
http -X POST "$B2F/callbacks/done?$TAG"
expect_status 200
expect_json .service frontend
expect_json .method POST
expect_log frontend 'warden="allowed ns[web]-policy[allow-backend-callbacks]-rule[0]"'
end

begin "backend's own identity on backend's /public/page: 403, namespace api is not web (allow-web-public)"
mtls backend "$BACKEND_INBOUND_PORT" "/public/page?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log backend 'peer="spiffe://cluster.local/ns/api/sa/backend"'
expect_log backend 'warden="denied none"'
end

begin "frontend's certificate, directly on backend's /public/page: 200, namespace web (allow-web-public)"
mtls frontend "$BACKEND_INBOUND_PORT" "/public/page?$TAG"
expect_status 200
expect_json .path "/public/page?$TAG"
expect_log backend 'warden="allowed ns[api]-policy[allow-web-public]-rule[0]"'
end

begin "no client certificate: the TLS handshake is refused (STRICT mTLS), no request reaches Warden"
before="$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.ssl.fail_verify_no_cert")"
mtls none "$BACKEND_INBOUND_PORT" "/api/orders?$TAG"
expect_no_http
expect_equal "backend's ssl.fail_verify_no_cert" "$((before + 1))" \
  "$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.ssl.fail_verify_no_cert")"
end

begin "frontend's SPIFFE ID signed by another CA: the handshake is refused (ssl.fail_verify_error)"
before="$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.ssl.fail_verify_error")"
mtls outsider "$BACKEND_INBOUND_PORT" "/api/orders?$TAG"
expect_no_http
expect_equal "backend's ssl.fail_verify_error" "$((before + 1))" \
  "$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.ssl.fail_verify_error")"
end

begin "frontend's SPIFFE ID in an expired mesh certificate: the handshake is refused"
before="$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.ssl.fail_verify_error")"
mtls expired "$BACKEND_INBOUND_PORT" "/api/orders?$TAG"
expect_no_http
expect_equal "backend's ssl.fail_verify_error" "$((before + 1))" \
  "$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.ssl.fail_verify_error")"
end

# Envoy RBAC checks every URI SAN (AuthenticatedMatcher in Envoy 1.40
# source/extensions/filters/common/rbac/matchers.cc); `connection.uri_san_peer_certificate` shows
# only the first. Warden reads the whole certificate, and refuses one with several URI SANs (an
# X.509-SVID has exactly one; docs/compatibility.md#peer-identity).
begin "a certificate with two URI SANs, frontend then intruder: 403, refused before any policy"
before="$(metric backend 'warden_peer_refusals_total{reason="multiple_uri_sans"}')"
mtls multi-san "$BACKEND_INBOUND_PORT" "/api/orders?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log backend 'peer="spiffe://cluster.local/ns/web/sa/frontend,spiffe://cluster.local/ns/rogue/sa/intruder"'
expect_log backend '403 warden_peer_refused{multiple_uri_sans}'
expect_log backend 'warden="denied peer_multiple_uri_sans"'
expect_at_least "warden_peer_refusals_total{multiple_uri_sans}" "$((before + 1))" \
  "$(metric backend 'warden_peer_refusals_total{reason="multiple_uri_sans"}')"
end

begin "the same certificate on the port with Istio's sidecar settings: 403, refused"
mtls multi-san "$BACKEND_ISTIO_PORT" "/api/orders?$TAG"
expect_status 403
expect_log backend '403 warden_peer_refused{multiple_uri_sans}'
end

begin "a mesh certificate with a DNS SAN and no URI SAN: 403, no SPIFFE identity to allow"
mtls dns-only "$BACKEND_INBOUND_PORT" "/api/orders?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

begin "a forged x-forwarded-client-cert from a valid peer is replaced by the verified one"
mtls frontend "$BACKEND_INBOUND_PORT" \
  -H 'x-forwarded-client-cert: By=spiffe://cluster.local/ns/api/sa/backend;URI=spiffe://cluster.local/ns/rogue/sa/intruder' \
  "/api/orders?$TAG"
expect_status 200
got="$(echo_header x-forwarded-client-cert)"
[[ "$got" == *"URI=spiffe://cluster.local/ns/web/sa/frontend;"* && "$got" != *intruder* ]] ||
  fail "the application received x-forwarded-client-cert '$(short "$got")': expected only frontend's verified SANs"
expect_log backend 'warden="allowed ns[api]-policy[allow-frontend-api]-rule[0]"'
end

begin "intruder claiming frontend's identity in x-forwarded-client-cert: still 403 (quarantine-rogue)"
http -H 'x-forwarded-client-cert: By=spiffe://cluster.local/ns/api/sa/backend;URI=spiffe://cluster.local/ns/web/sa/frontend' \
  "$I2B/api/orders?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[istio-system]-policy[quarantine-rogue]-rule[0]"'
end

group "plaintext (no peer identity)"

# ISTIO-SECURITY-2021-004: a request without mTLS has no principal or namespace, so the ALLOW
# rules that name one cannot match it.
begin "plaintext GET /api/orders: 403, identity rules cannot match a request without a certificate"
http "$PLAIN/api/orders?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log backend 'backend plaintext "GET /api/orders?'
expect_log backend 'warden="denied none"'
end

begin "plaintext GET /healthz: 200, allow-health-checks needs no identity"
http "$PLAIN/healthz?$TAG"
expect_status 200
expect_json .path "/healthz?$TAG"
expect_log backend 'warden="allowed ns[api]-policy[allow-health-checks]-rule[0]"'
end

begin "plaintext POST /healthz: 403, the health rule allows GET only"
http -X POST "$PLAIN/healthz?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

begin "plaintext with a forged x-forwarded-client-cert naming frontend, GET /public/page: 403 (Envoy removes it)"
http -H 'x-forwarded-client-cert: By=spiffe://cluster.local/ns/api/sa/backend;URI=spiffe://cluster.local/ns/web/sa/frontend' \
  "$PLAIN/public/page?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

group "addresses and header names"

# allow-ops-network (envoy/policies/22-backend-ops-network.yaml) admits only 10.0.0.0/8 by
# remote.ip; with the playground's use_remote_address and no trusted hops that is the TCP peer
# (127.0.0.1 here). Under Istio's own settings it is not: see 15-addresses.sh.
begin "spoofed X-Forwarded-For / Forwarded / X-Real-IP from the ops network, GET /internal/status: 403"
http -H 'X-Forwarded-For: 10.1.2.3' -H 'Forwarded: for=10.1.2.3' -H 'X-Real-IP: 10.1.2.3' \
  -H 'X-Envoy-External-Address: 10.1.2.3' "$PLAIN/internal/status?$TAG"
expect_status 403
expect_log backend 'from=127.0.0.1:'
expect_log backend 'warden="denied none"'
end

begin "the same spoofing through frontend's sidecar, over mTLS: 403"
http -H 'X-Forwarded-For: 10.1.2.3' "$F2B/internal/status?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

# headers_with_underscores_action: REJECT_REQUEST (envoy/backend.yaml): `x_jwt_sub` would not be
# stripped as x-jwt-sub, yet many frameworks read both as one header.
begin "a header named x_jwt_sub: 400 from Envoy before any filter runs"
before="$(envoy_stat backend "http.inbound_mtls.downstream_rq_4xx")"
mtls frontend "$BACKEND_INBOUND_PORT" --http1.1 -H 'x_jwt_sub: admin' "/api/orders?$TAG"
expect_status 400
expect_equal "backend's http.inbound_mtls.downstream_rq_4xx" "$((before + 1))" \
  "$(envoy_stat backend "http.inbound_mtls.downstream_rq_4xx")"
end
