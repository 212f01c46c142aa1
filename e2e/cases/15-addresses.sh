# Addresses under Istio's own sidecar settings (backend's BACKEND_ISTIO_PORT listener:
# use_remote_address false, so Envoy takes the client address from the last X-Forwarded-For
# entry). `ipBlocks`/`source.ip` are the direct peer (the TCP connection's other end; Istio's
# RBAC direct_remote_ip), handed to the HTTP filter by Warden's network filter; `remoteIpBlocks`/
# `remote.ip` are Envoy's client address (RBAC remote_ip), which a client can set here exactly as
# it can for Istio. Without the network filter (BACKEND_ISTIO_NO_HANDOVER_PORT) the direct peer
# is unknown and the rules that read it fail closed. Policies:
# envoy/policies/{22-backend-ops-network,23-backend-ops-direct-peer}.yaml.

group "addresses under Istio's sidecar settings"

begin "ipBlocks 127.0.0.0/8 with X-Forwarded-For 8.8.8.8: 200, the direct peer is 127.0.0.1"
mtls frontend "$BACKEND_ISTIO_PORT" -H 'X-Forwarded-For: 8.8.8.8' "/ops/status?$TAG"
expect_status 200
expect_log backend 'backend inbound-istio "GET /ops/status?'
expect_log backend 'from=8.8.8.8:0 direct=127.0.0.1:'
expect_log backend 'warden="allowed ns[api]-policy[allow-ops-local]-rule[0]"'
end

# The bypass this closes: reading Envoy's client address for ipBlocks, a DENY on the direct
# peer would have seen 8.8.8.8 and let the request through.
begin "DENY on ipBlocks 127.0.0.0/8 with X-Forwarded-For 8.8.8.8: 403, a forwarded address changes nothing"
mtls frontend "$BACKEND_ISTIO_PORT" -H 'X-Forwarded-For: 8.8.8.8' "/ops/locked?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[api]-policy[deny-ops-locked]-rule[0]"'
end

begin "DENY on ipBlocks with several X-Forwarded-For entries and headers: 403"
mtls frontend "$BACKEND_ISTIO_PORT" -H 'X-Forwarded-For: 10.1.2.3, 8.8.8.8' -H 'X-Forwarded-For: 9.9.9.9' \
  "/ops/locked?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[api]-policy[deny-ops-locked]-rule[0]"'
end

begin "the same DENY on the playground's settings: 403"
mtls frontend "$BACKEND_INBOUND_PORT" -H 'X-Forwarded-For: 8.8.8.8' "/ops/locked?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[api]-policy[deny-ops-locked]-rule[0]"'
end

# Istio's remoteIpBlocks is the address Envoy derives; under these settings the client sets it,
# in Istio as in Warden (Istio documents remoteIpBlocks for trusted proxies in front).
begin "remoteIpBlocks 10.0.0.0/8 with X-Forwarded-For 10.1.2.3 under Istio's settings: 200, as Istio's RBAC"
mtls frontend "$BACKEND_ISTIO_PORT" -H 'X-Forwarded-For: 10.1.2.3' "/internal/status?$TAG"
expect_status 200
expect_log backend 'warden="allowed ns[api]-policy[allow-ops-network]-rule[0]"'
end

begin "remoteIpBlocks with a garbage X-Forwarded-For: 403, Envoy falls back to the TCP peer"
mtls frontend "$BACKEND_ISTIO_PORT" -H 'X-Forwarded-For: not-an-address' "/internal/status?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

group "the direct peer unknown: fail closed"

begin "no network filter, ALLOW on ipBlocks: 403, counted and logged"
before="$(metric backend 'warden_fail_closed_total{reason="direct_peer_unknown"}')"
mtls frontend "$BACKEND_ISTIO_NO_HANDOVER_PORT" "/ops/status?$TAG"
expect_status 403
expect_log backend 'backend inbound-istio-no-handover "GET /ops/status?'
expect_log backend 'warden="denied none"'
expect_at_least "warden_fail_closed_total{direct_peer_unknown}" "$((before + 1))" \
  "$(metric backend 'warden_fail_closed_total{reason="direct_peer_unknown"}')"
expect_warden_log_since backend "the direct peer's address was not handed over"
end

begin "no network filter, DENY on ipBlocks with X-Forwarded-For 8.8.8.8: 403, the DENY holds"
mtls frontend "$BACKEND_ISTIO_NO_HANDOVER_PORT" -H 'X-Forwarded-For: 8.8.8.8' "/ops/locked?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[api]-policy[deny-ops-locked]-rule[0]"'
end

begin "no network filter, a rule that does not read the address: 200"
mtls frontend "$BACKEND_ISTIO_NO_HANDOVER_PORT" "/api/orders?$TAG"
expect_status 200
expect_log backend 'warden="allowed ns[api]-policy[allow-frontend-api]-rule[0]"'
end

group "repeated headers (Envoy 1.40 RBAC tries each value)"

# deny-admin-role-header (envoy/policies/24-backend-deny-role-header.yaml) denies x-role: admin.
begin "x-role: admin alone: 403"
http -H 'x-role: admin' "$F2B/api/orders?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[api]-policy[deny-admin-role-header]-rule[0]"'
end

begin "x-role: user, then x-role: admin: 403, the second value is tried too"
http -H 'x-role: user' -H 'x-role: admin' "$F2B/api/orders?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[api]-policy[deny-admin-role-header]-rule[0]"'
end

begin "x-role: user, then x-role: admin, under Istio's settings over HTTP/1.1: 403"
mtls frontend "$BACKEND_ISTIO_PORT" --http1.1 -H 'x-role: user' -H 'x-role: admin' "/api/orders?$TAG"
expect_status 403
expect_log backend 'warden="denied ns[api]-policy[deny-admin-role-header]-rule[0]"'
end

begin "one value user,admin: 200, it is not the value admin (as Envoy's RBAC)"
http -H 'x-role: user,admin' "$F2B/api/orders?$TAG"
expect_status 200
expect_log backend 'warden="allowed ns[api]-policy[allow-frontend-api]-rule[0]"'
end
