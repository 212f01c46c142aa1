# Changes while the mesh runs, no restart: a workload certificate rotated through file-based
# SDS (envoy/certs.sh rotate), and configurations pushed through the ECDS file that Warden
# refuses (on_configure returns false: Envoy rejects the update, counts it in
# extension_config_discovery.http_filter.warden.update_rejected, and the last good
# configuration keeps enforcing).

group "live changes: certificate rotation, refused configurations"

# served_serial: the serial of the certificate backend's inbound port presents now.
served_serial() {
  openssl s_client -connect "127.0.0.1:$BACKEND_INBOUND_PORT" -servername "$BACKEND_HOST" \
    -cert "$LIVE/frontend/tls.crt" -key "$LIVE/frontend/tls.key" -CAfile "$LIVE/ca/ca.crt" </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null | cut -d= -f2 | tr '[:upper:]' '[:lower:]'
}

file_serial() { openssl x509 -in "$LIVE/$1/tls.crt" -noout -serial | cut -d= -f2 | tr '[:upper:]' '[:lower:]'; }

begin "backend's certificate rotated (envoy/certs.sh rotate backend): served within 10 s, calls keep working"
old_serial="$(served_serial)"
expect_equal "the served serial before" "$(file_serial backend)" "$old_serial"
updates0="$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.server_ssl_socket_factory.ssl_context_update_by_sds")"
envoy/certs.sh rotate backend 2>/dev/null
new_serial="$(file_serial backend)"
[ "$new_serial" != "$old_serial" ] || fail "certs.sh rotate did not change the serial ($old_serial)"
wait_until 10 eval '[ "$(served_serial)" = "$new_serial" ]' ||
  fail "backend still serves serial $(served_serial), expected $new_serial"
[[ "$(curl -s "$(admin backend)/certs")" == *"\"$new_serial\""* ]] || fail "backend's /certs does not list serial $new_serial"
expect_at_least "ssl_context_update_by_sds" "$((updates0 + 1))" \
  "$(envoy_stat backend "listener.127.0.0.1_$BACKEND_INBOUND_PORT.server_ssl_socket_factory.ssl_context_update_by_sds")"
mtls frontend "$BACKEND_INBOUND_PORT" "/api/orders?$TAG"
expect_status 200
http "$F2B/api/orders?$TAG"
expect_status 200
end

begin "after the rotation, backend's new client certificate is accepted by frontend: POST /callbacks/done 200"
http -X POST "$B2F/callbacks/done?$TAG"
expect_status 200
expect_log frontend 'peer="spiffe://cluster.local/ns/api/sa/backend"'
end

# push_config NAME SED [REJECTING…]: writes a copy of the current ECDS file, edited by SED, into
# place atomically (the sidecars watch envoy/generated/), and waits until each REJECTING sidecar
# (default: all three) has rejected it and every other one has accepted it.
push_config() {
  local name="$1" edit="$2" w
  shift 2
  local rejecting=("$@")
  [ $# -gt 0 ] || rejecting=(frontend backend intruder)
  declare -A rejected0 accepted0
  for w in frontend backend intruder; do
    rejected0[$w]="$(envoy_stat "$w" extension_config_discovery.http_filter.warden.update_rejected)"
    accepted0[$w]="$(envoy_stat "$w" extension_config_discovery.http_filter.warden.update_success)"
  done
  sed "$edit" envoy/generated/warden.yaml >"envoy/generated/.$name.tmp"
  cmp -s "envoy/generated/.$name.tmp" envoy/generated/warden.yaml && fail "the edit '$edit' changed nothing"
  mv "envoy/generated/.$name.tmp" envoy/generated/warden.yaml
  for w in frontend backend intruder; do
    if [[ " ${rejecting[*]} " == *" $w "* ]]; then
      wait_until 10 eval '[ "$(envoy_stat "$w" extension_config_discovery.http_filter.warden.update_rejected)" -gt "${rejected0[$w]}" ]' ||
        fail "$w did not reject the configuration within 10 s (update_rejected stayed at ${rejected0[$w]})"
    else
      wait_until 10 eval '[ "$(envoy_stat "$w" extension_config_discovery.http_filter.warden.update_success)" -gt "${accepted0[$w]}" ]' ||
        fail "$w did not accept the configuration within 10 s (update_success stayed at ${accepted0[$w]})"
    fi
  done
}

# still_enforcing: the playground's policies, not an allow-everything configuration.
still_enforcing() {
  http -X PUT "$F2B/api/orders?$TAG"
  expect_status 403
  expect_body "RBAC: access denied"
  http "$I2F/?$TAG"
  expect_status 403
  http "$F2B/api/orders?$TAG"
  expect_status 200
}

VERSION0="$(envoy_stat backend extension_config_discovery.http_filter.warden.version)"

begin "a configuration with an unknown field and no policies: refused by every sidecar; the last good one keeps enforcing"
push_config unknown-field 's/"policies":\[.*\],"rootNamespace"/"bogus":true,"policies":[],"rootNamespace"/'
expect_equal "backend's configuration version" "$VERSION0" "$(envoy_stat backend extension_config_discovery.http_filter.warden.version)"
still_enforcing
expect_warden_log_since backend "configuration refused: bogus: unknown field"
end

# The policy selects backend only. Each sidecar validates in full what can apply to it and reads
# no further than the scope of the rest (docs/design.md#mesh-scale), as istiod hands each proxy
# only its own policies: backend refuses the configuration, frontend and intruder take it.
begin "a configuration with one invalid CIDR (10.0.0.300/8) in backend's policy: backend refuses it whole, naming the policy, and keeps enforcing; the others take it"
restore_config || fail "could not put the compiled configuration back"
push_config bad-cidr 's#"remoteIpBlocks":\["10.0.0.0/8"\]#"remoteIpBlocks":["10.0.0.300/8"]#' backend
expect_equal "backend's configuration version" "$VERSION0" "$(envoy_stat backend extension_config_discovery.http_filter.warden.version)"
still_enforcing
expect_warden_log_since backend 'configuration refused: AuthorizationPolicy api/allow-ops-network: spec.rules[0].from[0].source.remoteIpBlocks[0]: bad IP address or CIDR range "10.0.0.300/8"'
end

begin "the compiled configuration pushed again: accepted (update_success), same version as before"
s0="$(envoy_stat backend extension_config_discovery.http_filter.warden.update_success)"
restore_config || fail "could not put the compiled configuration back"
expect_at_least "backend's update_success" "$((s0 + 1))" "$(envoy_stat backend extension_config_discovery.http_filter.warden.update_success)"
expect_equal "backend's configuration version" "$VERSION0" "$(envoy_stat backend extension_config_discovery.http_filter.warden.version)"
still_enforcing
end
