#!/usr/bin/env bash
# The playground's certificates, made with openssl only.
#
#   envoy/certs.sh [ensure]        create what is missing; re-issue what expires within an hour
#                                  or no longer chains to the current CA (idempotent)
#   envoy/certs.sh rotate NAME     re-issue one certificate in place, atomically
#   envoy/certs.sh status          subject, SANs, serial and expiry of each certificate
#   envoy/certs.sh clean           remove envoy/certs/live/
#
# Everything lands under envoy/certs/live/ (git-ignored):
#
#   ca/ca.crt, ca.key              the mesh CA (trust domain cluster.local), 30 days
#   frontend/ backend/ intruder/   workload certificates, 24 hours (Istio's default lifetime),
#                                  URI SAN spiffe://cluster.local/ns/<ns>/sa/<sa>
#   outsider/                      claims frontend's SPIFFE ID but is signed by another CA
#                                  (outsider-ca/): TLS must refuse it before any policy runs
#   multi-san/                     mesh-signed, two URI SANs: frontend first, intruder second.
#                                  Envoy's `connection.uri_san_peer_certificate` shows only the
#                                  first; Warden reads them all and refuses the certificate (an
#                                  X.509-SVID has exactly one URI SAN)
#   dns-only/                      mesh-signed, a DNS SAN and no URI SAN: no SPIFFE identity
#   expired/                       frontend's identity, mesh-signed, expired an hour ago
#
# Each certificate directory is laid out as Kubernetes mounts a Secret: tls.crt and tls.key are
# symlinks into ..data, itself a symlink to a timestamped directory. Re-issuing writes a new
# timestamped directory and renames a new ..data over the old one: one atomic rename swaps the
# certificate and its key together. Envoy's SDS secrets name the directory as
# `watched_directory`, so the rename makes Envoy reload both files at once, without a restart
# and without ever reading a new certificate with the old key.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIVE="$ROOT/envoy/certs/live"
TRUST_DOMAIN="cluster.local"
CA_DAYS=30
WORKLOAD_HOURS=24
# Re-issue a workload certificate that has less than this left (seconds).
RENEW_BEFORE=3600

# name  namespace  service-account  (the playground's workloads; the Envoy configs use the same)
WORKLOADS=(
  "frontend web frontend"
  "backend api backend"
  "intruder rogue intruder"
)

log() { printf 'certs: %s\n' "$*" >&2; }
die() { printf 'certs: error: %s\n' "$*" >&2; exit 1; }

command -v openssl >/dev/null || die "openssl is not installed"

spiffe() { printf 'spiffe://%s/ns/%s/sa/%s' "$TRUST_DOMAIN" "$1" "$2"; }

utc() { date -u -d "@$1" +%Y%m%d%H%M%SZ; }

# publish DIR STAGED: make STAGED (a directory holding tls.crt/tls.key or ca.crt/ca.key) the
# current content of DIR with one atomic rename of the ..data symlink.
publish() {
  local dir="$1" staged="$2" stamp old file
  mkdir -p "$dir"
  stamp="..$(date -u +%Y_%m_%d_%H_%M_%S).$$.$RANDOM"
  mv "$staged" "$dir/$stamp"
  old="$(readlink "$dir/..data" 2>/dev/null || true)"
  ln -sfn "$stamp" "$dir/..data_tmp"
  mv -T "$dir/..data_tmp" "$dir/..data"
  for file in "$dir/$stamp"/*; do
    file="$(basename "$file")"
    [ -L "$dir/$file" ] || ln -sfn "..data/$file" "$dir/$file"
  done
  if [ -n "$old" ] && [ "$old" != "$stamp" ]; then rm -rf "${dir:?}/$old"; fi
}

# new_ca DIR CN: a self-signed CA.
new_ca() {
  local dir="$1" cn="$2" staged
  staged="$(mktemp -d "$LIVE/.staging.XXXXXX")"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$staged/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$staged/ca.key" -days "$CA_DAYS" -sha256 \
    -subj "/O=$TRUST_DOMAIN/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$staged/ca.crt"
  chmod 600 "$staged/ca.key"
  publish "$dir" "$staged"
  log "issued CA $cn ($dir)"
}

# issue DIR CA_DIR CN SANS START_OFFSET_SECONDS LIFETIME_SECONDS
# `openssl ca` rather than `openssl x509 -req`: it takes exact start and end times, which
# hour-long lifetimes and an already expired certificate need (OpenSSL 3.0's x509 has -days only).
issue() {
  local dir="$1" ca="$2" cn="$3" sans="$4" start_offset="$5" lifetime="$6" staged now work
  staged="$(mktemp -d "$LIVE/.staging.XXXXXX")"
  work="$(mktemp -d)"
  now="$(date -u +%s)"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$staged/tls.key" 2>/dev/null
  chmod 600 "$staged/tls.key"
  openssl req -new -key "$staged/tls.key" -subj "/O=$TRUST_DOMAIN/CN=$cn" -out "$work/tls.csr"
  cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = mesh
[mesh]
database = $work/index.txt
new_certs_dir = $work
certificate = $ca/ca.crt
private_key = $ca/ca.key
serial = $work/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
organizationName = optional
commonName = supplied
[workload]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
authorityKeyIdentifier = keyid
subjectAltName = $sans
EOF
  : >"$work/index.txt"
  openssl rand -hex 16 >"$work/serial"
  openssl ca -batch -notext -config "$work/ca.cnf" -extensions workload \
    -startdate "$(utc $((now + start_offset)))" -enddate "$(utc $((now + start_offset + lifetime)))" \
    -in "$work/tls.csr" -out "$staged/tls.crt" 2>"$work/ca.log" || { cat "$work/ca.log" >&2; exit 1; }
  rm -rf "$work"
  publish "$dir" "$staged"
  log "issued $(basename "$dir"): $sans, serial $(serial "$dir/tls.crt")"
}

serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

# fresh CERT CA: exists, chains to CA, and is valid for RENEW_BEFORE more seconds.
fresh() {
  [ -f "$1" ] && openssl verify -CAfile "$2" "$1" >/dev/null 2>&1 &&
    openssl x509 -in "$1" -noout -checkend "$RENEW_BEFORE" >/dev/null
}

# The certificates other than the CAs: name, issuing CA directory, SANs, start offset, lifetime.
spec() {
  local hours=$((WORKLOAD_HOURS * 3600)) w name ns sa
  for w in "${WORKLOADS[@]}"; do
    read -r name ns sa <<<"$w"
    printf '%s|ca|URI:%s,DNS:%s.%s.svc.cluster.local|0|%s\n' "$name" "$(spiffe "$ns" "$sa")" "$sa" "$ns" "$hours"
  done
  printf 'outsider|outsider-ca|URI:%s|0|%s\n' "$(spiffe web frontend)" "$hours"
  printf 'multi-san|ca|URI:%s,URI:%s|0|%s\n' "$(spiffe web frontend)" "$(spiffe rogue intruder)" "$hours"
  printf 'dns-only|ca|DNS:frontend.web.svc.cluster.local|0|%s\n' "$hours"
  printf 'expired|ca|URI:%s|-7200|3600\n' "$(spiffe web frontend)"
}

issue_named() {
  local want="$1" name ca sans start lifetime
  while IFS='|' read -r name ca sans start lifetime; do
    if [ "$name" = "$want" ]; then
      issue "$LIVE/$name" "$LIVE/$ca" "$name" "$sans" "$start" "$lifetime"
      return 0
    fi
  done < <(spec)
  die "unknown certificate '$want' (known: $(spec | cut -d'|' -f1 | tr '\n' ' '))"
}

ensure() {
  mkdir -p "$LIVE"
  rm -rf "$LIVE"/.staging.*
  local renewed_ca=0 name ca sans start lifetime
  for ca in ca outsider-ca; do
    if [ ! -f "$LIVE/$ca/ca.crt" ] || ! openssl x509 -in "$LIVE/$ca/ca.crt" -noout -checkend 86400 >/dev/null; then
      local cn="Warden mesh CA"
      [ "$ca" = outsider-ca ] && cn="Outsider CA (not trusted by the mesh)"
      new_ca "$LIVE/$ca" "$cn"
      renewed_ca=1
    fi
  done
  while IFS='|' read -r name ca sans start lifetime; do
    if [ "$name" = expired ]; then
      # Expired on purpose: re-issue only when missing or no longer chained to the CA.
      if [ "$renewed_ca" = 1 ] || [ ! -f "$LIVE/$name/tls.crt" ]; then
        issue "$LIVE/$name" "$LIVE/$ca" "$name" "$sans" "$start" "$lifetime"
      fi
    elif ! fresh "$LIVE/$name/tls.crt" "$LIVE/$ca/ca.crt"; then
      issue "$LIVE/$name" "$LIVE/$ca" "$name" "$sans" "$start" "$lifetime"
    fi
  done < <(spec)
}

status() {
  local name ca sans start lifetime
  while IFS='|' read -r name ca sans start lifetime; do
    if [ -f "$LIVE/$name/tls.crt" ]; then
      printf '%-10s serial %s  expires %s\n           %s\n' "$name" "$(serial "$LIVE/$name/tls.crt")" \
        "$(openssl x509 -in "$LIVE/$name/tls.crt" -noout -enddate | cut -d= -f2)" \
        "$(openssl x509 -in "$LIVE/$name/tls.crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')"
    else
      printf '%-10s missing\n' "$name"
    fi
  done < <(spec)
}

case "${1:-ensure}" in
  ensure) ensure ;;
  rotate)
    [ -n "${2:-}" ] || die "usage: $0 rotate NAME"
    [ -f "$LIVE/ca/ca.crt" ] || ensure
    issue_named "$2"
    ;;
  status) status ;;
  clean) rm -rf "$LIVE"; log "removed $LIVE" ;;
  *) die "usage: $0 [ensure | rotate NAME | status | clean]" ;;
esac
