#!/usr/bin/env bash
# The registry round trip of the module as Istio ships extensions (`make oci-check`, in the suite):
#   1. `warden package` writes warden.wasm as an OCI image layout, in each form Istio's image
#      fetcher reads (istio/istio pkg/wasm/imagefetcher.go): `image` (one tar+gzip layer holding
#      plugin.wasm) and `artifact` (the raw module as a ...wasm.content.layer.v1+wasm layer);
#      packaging the same module twice gives the same digest;
#   2. skopeo pushes each layout to a real registry (the CNCF distribution registry, Debian's
#      docker-registry) on 127.0.0.1, and reads the manifest back;
#   3. the manifest's media types are those the fetcher checks, the layer pulled back from the
#      registry is warden.wasm byte for byte, and the digest the registry reports is the one
#      `warden compile --format wasmplugin --module` pins as WasmPlugin.sha256 (Istio compares
#      it with the image's manifest digest, pkg/wasm/cache.go).
set -euo pipefail
cd "$(dirname "$0")/.."
WARDEN=${WARDEN:-target/release/warden}
WASM=${WASM:-target/wasm32-wasip1/wasm/warden.wasm}
PORT=${OCI_REGISTRY_PORT:-15050}
REGISTRY=127.0.0.1:$PORT
work=$PWD/target/oci

fail() { echo "oci: FAIL: $*" >&2; exit 1; }
for tool in docker-registry skopeo jq curl; do
  command -v "$tool" >/dev/null || fail "$tool is missing (make oci-deps installs it)"
done
[ -f "$WASM" ] || fail "$WASM is missing (make wasm)"

rm -rf "$work"
mkdir -p "$work/registry"
cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $REGISTRY
EOF
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry=$!
trap 'kill $registry 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://$REGISTRY/v2/" >/dev/null && break
  kill -0 $registry 2>/dev/null || { cat "$work/registry.log" >&2; fail "the registry did not start"; }
  sleep 0.1
done
curl -sf "http://$REGISTRY/v2/" >/dev/null || fail "the registry does not answer on $REGISTRY"

checks=0
check() { checks=$((checks + 1)); }
# The distinct values of a WasmPlugin spec field across compile's output (one if consistent).
plugin_field() {
  jq -r --arg f "$2" '[.. | objects | select(.kind? == "WasmPlugin") | .spec[$f]] | unique | .[]' "$1"
}

for format in image artifact; do
  layout=$work/$format
  digest=$("$WARDEN" package "$WASM" -o "$layout" --format "$format" --tag test 2>/dev/null)
  again=$("$WARDEN" package "$WASM" -o "$work/$format-again" --format "$format" --tag test 2>/dev/null)
  [ "$digest" = "$again" ] || fail "$format: two packagings of one module differ ($digest, $again)"
  check

  ref=docker://$REGISTRY/warden-$format:test
  skopeo copy --quiet --dest-tls-verify=false --preserve-digests "oci:$layout:test" "$ref"
  skopeo inspect --tls-verify=false --raw "$ref" > "$work/$format.manifest.json"
  [ "sha256:$(sha256sum < "$work/$format.manifest.json" | cut -d' ' -f1)" = "$digest" ] \
    || fail "$format: the manifest read back is not the one packaged"
  reported=$(curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY/v2/warden-$format/manifests/test" | tr -d '\r' \
    | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
  [ "$reported" = "$digest" ] || fail "$format: the registry reports digest $reported, warden package $digest"
  check

  manifest=$work/$format.manifest.json
  [ "$(jq -r .mediaType "$manifest")" = application/vnd.oci.image.manifest.v1+json ] \
    || fail "$format: manifest media type $(jq -r .mediaType "$manifest")"
  case $format in
    image)
      # extractOCIStandardImage: the last layer is application/vnd.oci.image.layer.v1.tar+gzip
      # and holds plugin.wasm.
      [ "$(jq -r .config.mediaType "$manifest")" = application/vnd.oci.image.config.v1+json ] \
        || fail "image: config media type"
      [ "$(jq -r '.layers[-1].mediaType' "$manifest")" = application/vnd.oci.image.layer.v1.tar+gzip ] \
        || fail "image: layer media type $(jq -r '.layers[-1].mediaType' "$manifest")"
      layer=$(jq -r '.layers[-1].digest' "$manifest")
      curl -sfL "http://$REGISTRY/v2/warden-image/blobs/$layer" -o "$work/image.layer"
      [ "$(tar -tzf "$work/image.layer")" = plugin.wasm ] || fail "image: the layer holds $(tar -tzf "$work/image.layer")"
      tar -xzOf "$work/image.layer" plugin.wasm | cmp -s - "$WASM" \
        || fail "image: plugin.wasm pulled back differs from $WASM"
      ;;
    artifact)
      # extractOCIArtifactImage: exactly two layers, one of them the raw module.
      [ "$(jq -r .config.mediaType "$manifest")" = application/vnd.module.wasm.config.v1+json ] \
        || fail "artifact: config media type"
      [ "$(jq '.layers | length' "$manifest")" = 2 ] || fail "artifact: $(jq '.layers | length' "$manifest") layers"
      layer=$(jq -r '.layers[] | select(.mediaType == "application/vnd.module.wasm.content.layer.v1+wasm") | .digest' "$manifest")
      [ -n "$layer" ] || fail "artifact: no application/vnd.module.wasm.content.layer.v1+wasm layer"
      curl -sfL "http://$REGISTRY/v2/warden-artifact/blobs/$layer" -o "$work/artifact.layer"
      cmp -s "$work/artifact.layer" "$WASM" || fail "artifact: the layer pulled back differs from $WASM"
      ;;
  esac
  check

  # What compile pins, from the local module alone, is the digest the registry serves.
  "$WARDEN" compile envoy/policies --settings envoy/settings.yaml --format wasmplugin --wasm "oci://$REGISTRY/warden-$format:test" \
    --module "$WASM" --image-format "$format" -o "$work/$format.wasmplugin.json" 2>/dev/null
  pinned=$(plugin_field "$work/$format.wasmplugin.json" sha256)
  [ "sha256:$pinned" = "$digest" ] || fail "$format: compile pins $pinned, the registry serves $digest"
  policies=$(plugin_field "$work/$format.wasmplugin.json" imagePullPolicy)
  [ "$policies" = IfNotPresent ] || fail "$format: imagePullPolicy $policies"
  check
  echo "oci: $format: pushed to $REGISTRY and pulled back: $digest (pinned by compile)"
done

# The pin for a file:// module is the module's own SHA-256 (Istio's HTTP and file fetchers).
"$WARDEN" compile envoy/policies --settings envoy/settings.yaml --format wasmplugin --module "$WASM" -o "$work/file.wasmplugin.json" 2>/dev/null
pinned=$(plugin_field "$work/file.wasmplugin.json" sha256)
[ "$pinned" = "$(sha256sum < "$WASM" | cut -d' ' -f1)" ] || fail "file://: compile pins $pinned"
check

echo "oci: $checks checks passed"
