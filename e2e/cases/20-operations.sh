# What a caller may do: methods and paths, and the path tricks that must not get around them.
# The inbound listeners normalize the path (normalize_path, merge_slashes, escaped slashes
# unescaped: Istio's DECODE_AND_MERGE_SLASHES) before Warden decides, and forward what Warden
# matched (CVE-2021-31920, https://istio.io/latest/news/security/istio-security-2021-005/).
# Paths are matched without the query (Istio's url_path); `/api/*` is a prefix match on `/api/`.

group "methods and paths"

begin "frontend PUT /api/orders: 403, allow-frontend-api allows GET and POST only (default-deny)"
http -X PUT "$F2B/api/orders?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log backend '"PUT /api/orders?'
expect_log backend '403 rbac_access_denied_matched_policy[none]'
end

begin "frontend DELETE /public/page: 403, deny-delete-from-web wins over allow-web-public"
http -X DELETE "$F2B/public/page?$TAG"
expect_status 403
expect_body "RBAC: access denied"
expect_log backend 'rbac_access_denied_matched_policy[ns[api]-policy[deny-delete-from-web]-rule[0]]'
end

begin "frontend PATCH /public/page: 200, allow-web-public allows any method but DELETE"
http -X PATCH "$F2B/public/page?$TAG"
expect_status 200
expect_json .method PATCH
expect_log backend 'warden="allowed ns[api]-policy[allow-web-public]-rule[0]"'
end

begin "frontend GET /orders (outside /api/): 403"
http "$F2B/orders?$TAG"
expect_status 403
expect_log backend 'warden="denied none"'
end

begin "frontend GET /apiary and /api: 403, /api/* is the prefix /api/"
http "$F2B/apiary?$TAG"
expect_status 403
expect_log backend '"GET /apiary?'
http "$F2B/api?$TAG"
expect_status 403
expect_log backend '"GET /api?'
end

begin "frontend GET /api/orders/42?expand=items: 200, the query is not part of the matched path"
http "$F2B/api/orders/42?expand=items&$TAG"
expect_status 200
expect_json .path "/api/orders/42?expand=items&$TAG"
end

begin "plaintext GET /healthz/ (trailing slash): 403, paths match exactly"
http "$PLAIN/healthz/?$TAG"
expect_status 403
end

begin "methods are case-sensitive: frontend 'get /api/orders' over HTTP/2 reaches Warden and gets 403"
mtls frontend "$BACKEND_INBOUND_PORT" --http2 -X get "/api/orders?$TAG"
expect_status 403
expect_log backend '"get /api/orders?'
expect_log backend 'warden="denied none"'
end

group "path normalization: bypass attempts on /admin/* (needs a token with scope admin)"

# bypass NAME TARGET: frontend sends TARGET as is; backend's Envoy normalizes it to
# /admin/users, which admin-needs-token refuses without a token (403), and Warden logs the path
# it decided on.
bypass() {
  begin "frontend GET $1: 403, Envoy normalizes it to /admin/users before Warden decides"
  http --path-as-is --request-target "$1?$TAG" "$F2B/"
  expect_status 403
  expect_body "RBAC: access denied"
  expect_warden_log backend "denied GET /admin/users?$TAG with 403"
  end
}
bypass '/public/../admin/users'
bypass '//admin/users'
bypass '/public/%2e%2e/admin/users'
bypass '/public/%2E%2E/admin/users'
bypass '/public%2F..%2Fadmin/users'
bypass '/public/..%5Cadmin/users'
bypass '/public/./../admin/users'
bypass '/%61dmin/users'

# Envoy removes dot segments before merging slashes: `/public///..//admin/users` becomes
# /public/admin/users, a public page, and that is what the application receives.
begin "frontend GET /public///..//admin/users: 200 as /public/admin/users, the path Warden matched is the one forwarded"
http --path-as-is --request-target "/public///..//admin/users?$TAG" "$F2B/"
expect_status 200
expect_json .path "/public/admin/users?$TAG"
expect_warden_log backend "allowed GET /public/admin/users?$TAG by ns[api]-policy[allow-web-public]-rule[0]"
end

begin "frontend GET /admin;x/users: 403, a ';' parameter is part of the segment, no ALLOW matches"
http --path-as-is --request-target "/admin;x/users?$TAG" "$F2B/"
expect_status 403
expect_warden_log backend "denied GET /admin;x/users?$TAG with 403"
end

begin "frontend GET /public;/../admin/users: 403, '/public;' is a segment like any other and '..' removes it"
http --path-as-is --request-target "/public;/../admin/users?$TAG" "$F2B/"
expect_status 403
expect_warden_log backend "denied GET /admin/users?$TAG with 403"
end

begin "frontend GET /ADMIN/users and /Api/orders: 403, paths are case-sensitive"
http "$F2B/ADMIN/users?$TAG"
expect_status 403
http "$F2B/Api/orders?$TAG"
expect_status 403
expect_warden_log backend "denied GET /Api/orders?$TAG with 403"
end

begin "a fragment in the request target (/public/page#/../../admin/users): 400 from Envoy"
mtls frontend "$BACKEND_INBOUND_PORT" --http1.1 --path-as-is --request-target "/public/page#/../../admin/users" /
expect_status 400
end

# Double encoding is not decoded twice: the path stays under /public/, and the application gets
# exactly the path Warden matched.
begin "frontend GET /public/%252e%252e/admin/users: 200 under /public/*, forwarded exactly as matched"
http --path-as-is --request-target "/public/%252e%252e/admin/users?$TAG" "$F2B/"
expect_status 200
expect_json .path "/public/%252e%252e/admin/users?$TAG"
expect_log backend 'warden="allowed ns[api]-policy[allow-web-public]-rule[0]"'
end

begin "plaintext GET /api/../healthz: 200, normalized to /healthz, and the application gets /healthz"
http --path-as-is --request-target "/api/../healthz?$TAG" "$PLAIN/"
expect_status 200
expect_json .path "/healthz?$TAG"
expect_log backend 'warden="allowed ns[api]-policy[allow-health-checks]-rule[0]"'
end

begin "plaintext GET /healthz/../api/orders: 403, normalized to /api/orders, which needs an identity"
http --path-as-is --request-target "/healthz/../api/orders?$TAG" "$PLAIN/"
expect_status 403
expect_warden_log backend "denied GET /api/orders?$TAG with 403"
end
