#!/usr/bin/env bash
# Writes the seed corpus (fuzz/corpus/<target>/seed-*) from the repository's own test data:
# tokens minted with the conformance suites' RSA key, the playground's policies and plugin
# configuration, the conformance tables' policies, certificates with the SAN shapes that
# matter. Run from anywhere; needs the `warden` command (cargo builds it) and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
corpus=$root/fuzz/corpus
warden() { cargo run --quiet --release -p warden-cli -- "$@"; }
mkdir -p "$corpus"/{token,claims,jwks,config,policy,decide,xfcc,certificate}
rm -f "$corpus"/*/seed-*

# token: a 4-byte Location (zero: Bearer; the fuzzer moves it) and the token.
key=filter/tests/authn/rsa2048-a.pem
iss=https://issuer.example.com
n=0
for args in "--sub alice --aud backend" "--sub alice --aud backend --claim groups=[\"admin\"]" \
    "--sub bob --aud other" "--sub alice --aud backend --exp 1000" "--sub alice --aud backend --nbf 4000000000" \
    "--sub alice --aud backend --claim nested={\"role\":\"ops\"}" "--sub alice"; do
  # shellcheck disable=SC2086
  token=$(warden token mint --key "$key" --kid=rsa --iss "$iss" --exp 4000000000 $args 2>/dev/null \
    || warden token mint --key "$key" --kid=rsa --iss "$iss" $args)
  { printf '\0\0\0\0'; printf %s "$token"; } > "$corpus/token/seed-$n"
  n=$((n + 1))
done

# jwks: the RSA key's set, and the playground issuer's.
warden token jwks --key "$key" --kid=rsa > "$corpus/jwks/seed-rsa"
printf '{"jwks_uri":"https://issuer.example.com/keys","issuer":"https://issuer.example.com"}' > "$corpus/jwks/seed-discovery"

# config: the playground's plugin configuration (the JSON Envoy hands over).
python3 - "$root" "$corpus" <<'PY'
import json, sys, yaml, glob, os
root, corpus = sys.argv[1], sys.argv[2]
with open(os.path.join(root, "envoy/generated/warden.yaml")) as f:
    doc = yaml.safe_load(f)
def find(node):
    if isinstance(node, dict):
        if "configuration" in node and isinstance(node["configuration"], dict):
            value = node["configuration"].get("value")
            if isinstance(value, str):
                yield value
        for v in node.values():
            yield from find(v)
    elif isinstance(node, list):
        for v in node:
            yield from find(v)
for i, value in enumerate(find(doc)):
    open(os.path.join(corpus, "config", f"seed-playground-{i}"), "w").write(value)
# policy: every AuthorizationPolicy of the playground and of the conformance tables.
n = 0
def policies(node):
    if isinstance(node, dict):
        if node.get("kind") == "AuthorizationPolicy" or ("spec" in node and "metadata" in node):
            yield node
        for v in node.values():
            yield from policies(v)
    elif isinstance(node, list):
        for v in node:
            yield from policies(v)
for path in sorted(glob.glob(os.path.join(root, "envoy/policies/*.yaml")) + glob.glob(os.path.join(root, "filter/tests/authz/*.yaml"))):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            for p in policies(doc):
                p = dict(p)
                p.setdefault("apiVersion", "security.istio.io/v1")
                p.setdefault("kind", "AuthorizationPolicy")
                open(os.path.join(corpus, "policy", f"seed-{n}"), "w").write(json.dumps(p))
                n += 1
PY

# certificate: SAN shapes (one URI SAN, two, DNS only, none) as Envoy hands them over (PEM).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
for san in "URI:spiffe://cluster.local/ns/a/sa/x" \
    "URI:spiffe://cluster.local/ns/a/sa/x,URI:spiffe://cluster.local/ns/b/sa/y,DNS:c.example" \
    "DNS:backend.api.svc,DNS:*.example.com" "email:a@example.com,IP:10.0.0.1"; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/k" \
    -subj "/O=warden/CN=seed-$i" -days 1 -addext "subjectAltName=$san" -out "$corpus/certificate/seed-$i" 2>/dev/null
  i=$((i + 1))
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/k" \
  -subj "/CN=no-san" -days 1 -out "$corpus/certificate/seed-no-san" 2>/dev/null
echo "seeds written to $corpus"
