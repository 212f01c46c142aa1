# warden explain decides as the module does: each request below is sent to backend's inbound
# listener over mTLS, as another sidecar would, and given to `warden explain` with the same
# method, path, headers, peer and connection; the two answers must be the same status. The
# shapes are the ones a request builder can get wrong: repeated headers, a forged
# x-forwarded-client-cert, a Host with its port, a query, several Authorization headers, a
# token whose keys come from the issuer's JWKS, and the direct peer's address.

group "explain agrees with the module"

JWKS_FILE="$WORK/explain-jwks.json"
curl -sS --max-time 10 "$ISSUER_URL/.well-known/jwks.json" >"$JWKS_FILE"
EXPLAIN_ADMIN_TOKEN="$(mint 'scope=read+admin')"
EXPLAIN_READ_TOKEN="$(mint 'scope=read')"

# agree DESCRIPTION CERT METHOD PATH [HEADER…]: the module's status through the mesh, then the
# explained one; CERT names a certificate in envoy/certs/live (frontend, intruder) or `none`.
agree() {
  local description="$1" cert="$2" method="$3" path="$4"
  shift 4
  local curl_headers=() explain_headers=() header
  for header in "$@"; do
    curl_headers+=(-H "$header")
    explain_headers+=(-H "$header")
  done
  begin "$description"
  mtls "$cert" "$BACKEND_INBOUND_PORT" -X "$method" "${curl_headers[@]}" "$path"
  local peer=(--plaintext)
  case "$cert" in
    frontend) peer=(--peer web/frontend) ;;
    intruder) peer=(--peer rogue/intruder) ;;
  esac
  local explained
  explained="$("$WARDEN" explain --policies "$ROOT/envoy/policies" --settings "$ROOT/envoy/settings.yaml" \
    --workload api/backend,app=backend --method "$method" --path "$path" \
    --host "$BACKEND_HOST:$BACKEND_INBOUND_PORT" "${peer[@]}" --source-ip 127.0.0.1 \
    --destination-ip 127.0.0.1 --port "$BACKEND_INBOUND_PORT" --jwks "$JWKS_FILE" \
    "${explain_headers[@]}" --format json 2>"$WORK/explain.err" | jq -r .decision.status)"
  [ "$explained" = "$STATUS" ] ||
    fail "the module answered $STATUS, warden explain $explained ($(short "$(cat "$WORK/explain.err")"))"
  end
}

agree "GET /api/orders from frontend (allow-frontend-api)" frontend GET "/api/orders?$TAG"
agree "PUT /api/orders from frontend (no ALLOW matches)" frontend PUT "/api/orders?$TAG"
agree "GET /api/orders from intruder (quarantine-rogue)" intruder GET "/api/orders?$TAG"
agree "x-role repeated, admin second (deny-admin-role-header sees every value)" frontend GET \
  "/api/orders?$TAG" "x-role: viewer" "x-role: admin"
agree "x-role: admin once" frontend GET "/api/orders?$TAG" "x-role: admin"
agree "a forged x-forwarded-client-cert naming frontend, sent by intruder" intruder GET \
  "/api/orders?$TAG" "x-forwarded-client-cert: By=spiffe://cluster.local/ns/api/sa/backend;URI=spiffe://cluster.local/ns/web/sa/frontend"
agree "DELETE /public/page from frontend (deny-delete-from-web)" frontend DELETE "/public/page?$TAG"
agree "/ops/x from 127.0.0.1 (ipBlocks on the direct peer)" frontend GET "/ops/x?$TAG"
agree "/ops/locked from 127.0.0.1 (DENY on the direct peer)" frontend GET "/ops/locked?$TAG"
agree "/admin/users with an admin token (claims, verified with the issuer's keys)" frontend GET \
  "/admin/users?$TAG" "authorization: Bearer $EXPLAIN_ADMIN_TOKEN"
agree "/admin/users with a read-only token" frontend GET "/admin/users?$TAG" \
  "authorization: Bearer $EXPLAIN_READ_TOKEN"
agree "two Authorization headers (refused, as jwt_authn refuses them)" frontend GET \
  "/admin/users?$TAG" "authorization: Bearer $EXPLAIN_ADMIN_TOKEN" "authorization: Bearer $EXPLAIN_READ_TOKEN"
agree "a token that is not a JWT" frontend GET "/api/orders?$TAG" "authorization: Bearer not.a.jwt"
