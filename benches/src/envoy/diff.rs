//! The differential test: one Envoy, eight listeners — Envoy's native filters and Warden, each
//! behind mTLS and in plaintext, each with the playground's connection-manager settings and
//! with Istio's own sidecar settings (`bootstrap::Hcm`) — loading the same policies; a corpus
//! of requests sent to each pair; every status must be equal, except where
//! `docs/compatibility.md` says Warden is deliberately stricter (the case names the difference
//! and Warden's expected status; a difference that disappears fails the test too, so the list
//! stays true). `benches/envoy/diff.sh` runs it (`make bench-envoy-check`).
//!
//! The corpus: every request of the generated mesh (each matches one ALLOW rule) as it is and
//! changed one way at a time (method, path, tenant header, no token, no client certificate);
//! hand-written policies for the fields the generator does not use (`not*` fields, service
//! accounts, audiences and presenter, nested and space-delimited claims, wildcard request
//! principals, hosts, dry-run), with requests on each side of them; token failures (expired,
//! foreign signature, wrong audience, unknown issuer, malformed, wrong prefix, in the
//! `access_token` parameter, twice); and every attribute channel a client can shape: repeated
//! and comma-joined headers in every header-based field, `X-Forwarded-For` absent, present,
//! multiple and garbage against `ipBlocks` and `remoteIpBlocks` in ALLOW and DENY, certificates
//! with several URI SANs or only a DNS SAN, hosts with ports and case.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Map, Value};

use super::bootstrap::{self, Hcm, Listener, Tls};
use super::fixtures::{self, hex, Alg, Certificates, Keys, Validity};
use crate::policies::{self, SampleRequest};

/// One request of a curl config file.
pub struct CurlRequest<'a> {
    /// Full URL, path and query included.
    pub url: String,
    /// `:method`.
    pub method: &'a str,
    /// `Host`.
    pub host: &'a str,
    /// Other headers.
    pub headers: &'a [(String, String)],
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a str>,
    /// Client certificate and key (mTLS), or none.
    pub cert: Option<(&'a Path, &'a Path)>,
    /// The CA the server certificate chains to.
    pub ca: &'a Path,
    /// curl's `--write-out` for this request.
    pub write_out: &'a str,
}

/// A curl config string: quoted, with `\\`, `"` and newlines escaped.
fn quoted(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The request as a curl config block (`curl -K`); blocks are joined with `next`.
pub fn curl_block(request: &CurlRequest<'_>) -> String {
    let mut lines = vec![("url", request.url.clone())];
    // `request = HEAD` would make curl wait for the body the answer's length announces.
    if request.method != "HEAD" {
        lines.push(("request", request.method.to_string()));
    }
    lines.push(("header", format!("Host: {}", request.host)));
    for (name, value) in request.headers {
        lines.push(("header", format!("{name}: {value}")));
    }
    if let Some(authorization) = request.authorization {
        lines.push(("header", format!("Authorization: {authorization}")));
    }
    if let Some((cert, key)) = request.cert {
        lines.push(("cert", cert.display().to_string()));
        lines.push(("key", key.display().to_string()));
    }
    lines.push(("cacert", request.ca.display().to_string()));
    lines.push(("output", "/dev/null".into()));
    lines.push(("write-out", format!("{}\n", request.write_out)));
    lines.push(("max-time", "10".into()));
    let mut text = String::new();
    for (key, value) in lines {
        let _ = writeln!(text, "{key} = {}", quoted(&value));
    }
    if request.method == "HEAD" {
        text.push_str("head\n");
    }
    text.push_str("http1.1\npath-as-is\nsilent\nshow-error\n");
    text
}

/// One listener of the differential Envoy.
#[derive(Clone, Copy)]
struct Side {
    name: &'static str,
    offset: u16,
    mtls: bool,
    warden: bool,
    hcm: Hcm,
}

/// The listeners of the differential Envoy.
const LISTENERS: [Side; 8] = [
    Side { name: "mtls_native", offset: 1, mtls: true, warden: false, hcm: Hcm::Playground },
    Side { name: "mtls_warden", offset: 2, mtls: true, warden: true, hcm: Hcm::Playground },
    Side { name: "plain_native", offset: 3, mtls: false, warden: false, hcm: Hcm::Playground },
    Side { name: "plain_warden", offset: 4, mtls: false, warden: true, hcm: Hcm::Playground },
    Side { name: "istio_mtls_native", offset: 5, mtls: true, warden: false, hcm: Hcm::Istio },
    Side { name: "istio_mtls_warden", offset: 6, mtls: true, warden: true, hcm: Hcm::Istio },
    Side { name: "istio_plain_native", offset: 7, mtls: false, warden: false, hcm: Hcm::Istio },
    Side { name: "istio_plain_warden", offset: 8, mtls: false, warden: true, hcm: Hcm::Istio },
];

/// The pairs compared: (settings, native listener, Warden listener), for mTLS and plaintext.
const PAIRS: [(&str, &str, &str, &str, &str); 2] = [
    ("playground", "mtls_native", "mtls_warden", "plain_native", "plain_warden"),
    ("istio", "istio_mtls_native", "istio_mtls_warden", "istio_plain_native", "istio_plain_warden"),
];

/// A deliberate difference: Warden answers `warden` where Envoy's native filters do not,
/// because Warden is stricter (or reads a standard Envoy does not); `why` names the entry of
/// docs/compatibility.md.
#[derive(Clone, Copy)]
struct Difference {
    warden: &'static str,
    why: &'static str,
}

/// One case: a request and how it was made.
struct Case {
    what: String,
    request: SampleRequest,
    authorization: Option<String>,
    /// Extra query (`access_token=…`).
    query: Option<String>,
    /// The client certificate's SANs (OpenSSL syntax) when they are not just the request's
    /// peer (`URI:<peer>`): several URI SANs, DNS only.
    san: Option<String>,
    /// A documented difference from the native filters, or `None`: the statuses must match.
    difference: Option<Difference>,
}

/// Hand-written policies for what the generator does not exercise.
fn extra_policies() -> Vec<Value> {
    let policy = |name: &str, spec: Value| {
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": { "name": name, "namespace": policies::NAMESPACE },
            "spec": spec,
        })
    };
    let mut dry = policy(
        "diff-dry-run-deny",
        json!({ "action": "DENY", "rules": [{ "to": [{ "operation": { "paths": ["/dry/*"] } }] }] }),
    );
    dry["metadata"]["annotations"] = json!({ "istio.io/dry-run": "true" });
    vec![
        policy(
            "diff-deny-admin",
            json!({ "action": "DENY", "rules": [{
            "from": [{ "source": { "notNamespaces": ["ops"] } }],
            "to": [{ "operation": { "methods": ["POST"], "paths": ["/admin/*"] } }],
        }] }),
        ),
        policy(
            "diff-allow-admin",
            json!({ "rules": [{ "to": [{ "operation": { "paths": ["/admin/*"] } }] }] }),
        ),
        policy(
            "diff-allow-audience",
            json!({ "rules": [{
            "to": [{ "operation": { "paths": ["/aud/*"] } }],
            "when": [
                { "key": "request.auth.audiences", "values": ["api", "other-*"] },
                { "key": "request.auth.presenter", "values": ["web-*"] },
            ],
        }] }),
        ),
        policy(
            "diff-allow-service-accounts",
            json!({ "rules": [{
            "from": [{ "source": { "serviceAccounts": ["ns-1/caller-1", "caller-2"] } }],
            "to": [{ "operation": { "paths": ["/sa/*"] } }],
        }] }),
        ),
        policy(
            "diff-allow-not-paths",
            json!({ "rules": [{
            "from": [{ "source": { "principals": ["cluster.local/ns/ns-3/*"], "notPrincipals": ["*/sa/blocked"] } }],
            "to": [{ "operation": { "notPaths": ["/private/*", "/api/*"], "notMethods": ["DELETE"] } }],
        }] }),
        ),
        policy(
            "diff-allow-when-source",
            json!({ "rules": [{
            "to": [{ "operation": { "paths": ["/when/*"] } }],
            "when": [
                { "key": "source.namespace", "values": ["ns-4"] },
                { "key": "source.principal", "notValues": ["cluster.local/ns/ns-4/sa/blocked"] },
            ],
        }] }),
        ),
        policy(
            "diff-allow-request-principals",
            json!({ "rules": [{
            "from": [{ "source": { "requestPrincipals": ["*/user-7", "https://idp.example.com/admin-*"] } }],
            "to": [{ "operation": { "paths": ["/rp/*"] } }],
        }] }),
        ),
        policy(
            "diff-allow-anonymous",
            json!({ "rules": [{
            "from": [{ "source": { "notRequestPrincipals": ["*"] } }],
            "to": [{ "operation": { "paths": ["/anon/*"] } }],
        }] }),
        ),
        policy(
            "diff-allow-dry",
            json!({ "rules": [{ "to": [{ "operation": { "paths": ["/dry/*"] } }] }] }),
        ),
        dry,
        policy(
            "diff-allow-hosts",
            json!({ "rules": [{ "to": [{ "operation": { "hosts": ["*.example.org"], "paths": ["/host/*"] } }] }] }),
        ),
        policy(
            "diff-deny-role-admin",
            json!({ "action": "DENY", "rules": [{
                "to": [{ "operation": { "paths": ["/hdr/*"] } }],
                "when": [{ "key": "request.headers[x-role]", "values": ["admin"] }],
            }] }),
        ),
        policy(
            "diff-deny-role-not-user",
            json!({ "action": "DENY", "rules": [{
                "to": [{ "operation": { "paths": ["/hnot/*"] } }],
                "when": [{ "key": "request.headers[x-role]", "notValues": ["user"] }],
            }] }),
        ),
        policy(
            "diff-allow-headers",
            json!({ "rules": [
                { "to": [{ "operation": { "paths": ["/hdr/*", "/hnot/*"] } }] },
                { "to": [{ "operation": { "paths": ["/comma/*"] } }], "when": [{ "key": "request.headers[x-group]", "values": ["a,b"] }] },
                { "to": [{ "operation": { "paths": ["/hprefix/*"] } }], "when": [{ "key": "request.headers[x-group]", "values": ["adm*"] }] },
                { "to": [{ "operation": { "paths": ["/hsuffix/*"] } }], "when": [{ "key": "request.headers[x-group]", "values": ["*-ops"] }] },
                { "to": [{ "operation": { "paths": ["/hpresent/*"] } }], "when": [{ "key": "request.headers[x-flag]", "values": ["*"] }] },
                { "to": [{ "operation": { "paths": ["/hmethod/*"] } }], "when": [{ "key": "request.headers[:method]", "values": ["GET"] }] },
                { "to": [{ "operation": { "paths": ["/exact-host/*"], "hosts": ["api.example.net:8080", "Api.Example.Net"] } }] },
            ] }),
        ),
        policy(
            "diff-allow-ip",
            json!({ "rules": [
                { "from": [{ "source": { "ipBlocks": ["127.0.0.0/8"] } }], "to": [{ "operation": { "paths": ["/ip/*"] } }] },
                { "to": [{ "operation": { "paths": ["/ipdeny/*", "/notip/*", "/remotedeny/*"] } }] },
                { "from": [{ "source": { "remoteIpBlocks": ["10.0.0.0/8"] } }], "to": [{ "operation": { "paths": ["/remote/*"] } }] },
                { "to": [{ "operation": { "paths": ["/when-ip/*"] } }], "when": [{ "key": "source.ip", "values": ["127.0.0.1"] }, { "key": "remote.ip", "notValues": ["8.8.8.8"] }] },
            ] }),
        ),
        policy(
            "diff-deny-ip",
            json!({ "action": "DENY", "rules": [
                { "from": [{ "source": { "ipBlocks": ["127.0.0.1/32"] } }], "to": [{ "operation": { "paths": ["/ipdeny/*"] } }] },
                { "from": [{ "source": { "notIpBlocks": ["127.0.0.0/8"] } }], "to": [{ "operation": { "paths": ["/notip/*"] } }] },
                { "from": [{ "source": { "remoteIpBlocks": ["8.8.8.8/32", "2001:db8::/32"] } }], "to": [{ "operation": { "paths": ["/remotedeny/*"] } }] },
            ] }),
        ),
        policy(
            "diff-deny-san",
            json!({ "action": "DENY", "rules": [{
                "from": [{ "source": { "principals": ["cluster.local/ns/ns-9/sa/blocked"] } }],
                "to": [{ "operation": { "paths": ["/san/*"] } }],
            }] }),
        ),
        policy(
            "diff-allow-san",
            json!({ "rules": [
                { "from": [{ "source": { "namespaces": ["ns-8", "ns-2"] } }], "to": [{ "operation": { "paths": ["/san/*"] } }] },
                { "from": [{ "source": { "principals": ["*"] } }], "to": [{ "operation": { "paths": ["/anyid/*"] } }] },
            ] }),
        ),
        policy(
            "diff-allow-claims",
            json!({ "rules": [
            { "to": [{ "operation": { "paths": ["/claims/*"] } }], "when": [{ "key": "request.auth.claims[org][tenant]", "values": ["acme"] }] },
            { "to": [{ "operation": { "paths": ["/scope/*"] } }], "when": [{ "key": "request.auth.claims[scope]", "values": ["admin"] }] },
        ] }),
        ),
    ]
}

fn claims(subject: &str, extra: Value) -> Map<String, Value> {
    let mut claims = Map::from_iter([
        ("iss".to_string(), json!(policies::ISSUER)),
        ("sub".to_string(), json!(subject)),
        ("aud".to_string(), json!(fixtures::AUDIENCE)),
    ]);
    if let Value::Object(extra) = extra {
        claims.extend(extra);
    }
    claims
}

fn request(
    peer: &str,
    method: &str,
    path: &str,
    claims: Option<Map<String, Value>>,
) -> SampleRequest {
    SampleRequest {
        method: method.into(),
        path: path.into(),
        host: "api.api.svc.cluster.local:8080".into(),
        headers: vec![("x-tenant".into(), "tenant-none".into())],
        peer: Some(peer.into()),
        source_ip: Some(fixtures::CLIENT_IP),
        destination_port: 8080,
        claims,
    }
}

fn spiffe(namespace: &str, account: &str) -> String {
    format!("spiffe://cluster.local/ns/{namespace}/sa/{account}")
}

/// Builds the cases; tokens are minted for each request's claims unless the case says otherwise.
fn cases(keys: &Keys, mesh: &policies::GeneratedMesh) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let mut counter = 0usize;
    let mut token = |claims: &Map<String, Value>| -> Result<String> {
        counter += 1;
        // Both algorithms, so both signature paths are compared.
        let alg = if counter.is_multiple_of(2) { Alg::Es256 } else { Alg::Rs256 };
        keys.mint(alg, claims, &format!("diff-{counter}"))
    };
    let mut push = |what: String, request: SampleRequest, authorization: Option<String>| {
        cases.push(Case { what, request, authorization, query: None, san: None, difference: None });
    };
    for (i, sample) in mesh.allow_requests().iter().enumerate() {
        let mut base = sample.clone();
        base.source_ip = Some(fixtures::CLIENT_IP);
        let bearer = match &base.claims {
            Some(claims) => Some(format!("Bearer {}", token(claims)?)),
            None => None,
        };
        push(format!("rule {i}: as generated"), base.clone(), bearer.clone());
        let mut changed = base.clone();
        changed.method = if base.method == "DELETE" { "PATCH".into() } else { "DELETE".into() };
        push(format!("rule {i}: method {}", changed.method), changed, bearer.clone());
        let mut changed = base.clone();
        changed.path = format!("/debug{}", base.path);
        push(format!("rule {i}: under /debug"), changed, bearer.clone());
        let mut changed = base.clone();
        changed.path = format!("{}x/y", base.path.split('?').next().unwrap_or_default());
        push(format!("rule {i}: longer path"), changed, bearer.clone());
        let mut changed = base.clone();
        if let Some(header) = changed.headers.first_mut() {
            header.1 = format!("{}-other", header.1);
        }
        push(format!("rule {i}: other tenant"), changed, bearer.clone());
        push(format!("rule {i}: no token"), base.clone(), None);
        let mut changed = base.clone();
        changed.peer = Some(spiffe("untrusted", "bad-24-0"));
        push(format!("rule {i}: untrusted peer"), changed, bearer.clone());
        let mut changed = base.clone();
        changed.peer = None;
        push(format!("rule {i}: plaintext"), changed, bearer);
    }

    let bearer = |t: String| Some(format!("Bearer {t}"));
    let who = spiffe("ns-2", "caller-9");
    let admin_claims = claims(
        "admin-1",
        json!({ "azp": "web-ui", "org": { "tenant": "acme" }, "scope": "read admin" }),
    );
    let t = token(&admin_claims)?;
    for (what, peer, method, path, authorization) in [
        ("deny admin POST outside ops", who.clone(), "POST", "/admin/users", None),
        ("admin POST from ops", spiffe("ops", "tool"), "POST", "/admin/users", None),
        ("admin GET outside ops", who.clone(), "GET", "/admin/users", None),
        ("admin POST in plaintext", String::new(), "POST", "/admin/users", None),
        ("audience and presenter", who.clone(), "GET", "/aud/x", bearer(t.clone())),
        ("scope normalized to a list", who.clone(), "GET", "/scope/x", bearer(t.clone())),
        ("nested claim", who.clone(), "GET", "/claims/x", bearer(t.clone())),
        ("request principal prefix", who.clone(), "GET", "/rp/x", bearer(t.clone())),
        ("anonymous-only path with a token", who.clone(), "GET", "/anon/x", bearer(t.clone())),
        ("anonymous-only path without", who.clone(), "GET", "/anon/x", None),
        (
            "token twice in one header",
            who.clone(),
            "GET",
            "/rp/x",
            Some(format!("Bearer {t}, Bearer {t}")),
        ),
        ("basic credentials", who.clone(), "GET", "/anon/x", Some("Basic dXNlcjpwYXNz".into())),
        ("empty bearer", who.clone(), "GET", "/anon/x", Some("Bearer ".into())),
        ("malformed token", who.clone(), "GET", "/anon/x", Some("Bearer abc.def".into())),
        ("service account ns-1/caller-1", spiffe("ns-1", "caller-1"), "GET", "/sa/x", None),
        (
            "service account in the policy namespace",
            spiffe("api", "caller-2"),
            "GET",
            "/sa/x",
            None,
        ),
        ("service account elsewhere", spiffe("ns-2", "caller-2"), "GET", "/sa/x", None),
        (
            "service account with extra segments",
            "spiffe://cluster.local/ns/ns-1/sa/caller-1/extra".into(),
            "GET",
            "/sa/x",
            None,
        ),
        ("notPaths outside", spiffe("ns-3", "any"), "GET", "/public/x", None),
        ("notPaths inside", spiffe("ns-3", "any"), "GET", "/private/x", None),
        ("notMethods", spiffe("ns-3", "any"), "DELETE", "/public/x", None),
        ("notPrincipals", spiffe("ns-3", "blocked"), "GET", "/public/x", None),
        ("when source.namespace", spiffe("ns-4", "caller"), "GET", "/when/x", None),
        ("when source.principal notValues", spiffe("ns-4", "blocked"), "GET", "/when/x", None),
        ("dry-run deny never enforces", who.clone(), "GET", "/dry/x", None),
        ("dry-run path in plaintext", String::new(), "GET", "/dry/x", None),
    ] {
        let mut r = request(&peer, method, path, None);
        if peer.is_empty() {
            r.peer = None;
        }
        push(what.to_string(), r, authorization);
    }
    for (what, host) in [
        ("host suffix", "a.example.org"),
        ("host case", "A.EXAMPLE.ORG"),
        ("host with port", "a.example.org:8080"),
        ("host apex", "example.org"),
    ] {
        let mut r = request(&who, "GET", "/host/x", None);
        r.host = host.into();
        push(what.into(), r, None);
    }
    for (what, subject, extra) in [
        ("request principal */user-7", "user-7", json!({})),
        ("request principal other", "bob", json!({})),
        ("presenter mismatch", "admin-2", json!({ "azp": "mobile" })),
        ("tenant claim mismatch", "admin-3", json!({ "org": { "tenant": "other" } })),
        ("tenant claim not a string", "admin-4", json!({ "org": { "tenant": 7 } })),
        ("scope without admin", "admin-5", json!({ "scope": "read adminx" })),
    ] {
        let c = claims(subject, extra);
        let t = token(&c)?;
        for path in ["/rp/x", "/aud/x", "/claims/x", "/scope/x"] {
            push(
                format!("{what} on {path}"),
                request(&who, "GET", path, Some(c.clone())),
                bearer(t.clone()),
            );
        }
    }
    let base = claims("user-7", json!({}));
    let failures = [
        (
            "expired token",
            keys.mint_with(Alg::Rs256, &base, "expired", Validity::ExpiredMinutes(10), false)?,
        ),
        (
            "foreign signature",
            keys.mint_with(Alg::Rs256, &base, "rogue", Validity::Hours(1), true)?,
        ),
        (
            "wrong audience",
            keys.mint(Alg::Es256, &claims("user-7", json!({ "aud": "elsewhere" })), "aud")?,
        ),
        (
            "audience list with ours",
            keys.mint(
                Alg::Es256,
                &claims("user-7", json!({ "aud": ["elsewhere", "api"] })),
                "aud2",
            )?,
        ),
        (
            "unknown issuer",
            keys.mint(
                Alg::Rs256,
                &claims("user-7", json!({ "iss": "https://other.example.com" })),
                "iss",
            )?,
        ),
    ];
    for (what, t) in failures {
        for path in ["/rp/x", "/anon/x"] {
            push(format!("{what} on {path}"), request(&who, "GET", path, None), bearer(t.clone()));
        }
    }
    let t = keys.mint(Alg::Rs256, &base, "query")?;
    cases.push(Case {
        what: "token in access_token".into(),
        request: request(&who, "GET", "/rp/x", None),
        authorization: None,
        query: Some(format!("access_token={t}")),
        san: None,
        difference: None,
    });
    cases.push(Case {
        what: "bad token in access_token, good one in the header".into(),
        request: request(&who, "GET", "/rp/x", None),
        authorization: bearer(t.clone()),
        query: Some("access_token=abc.def.ghi".into()),
        san: None,
        difference: None,
    });
    cases.extend(channel_cases(keys, &who, &t)?);
    Ok(cases)
}

/// Every attribute channel a client shapes: repeated headers, X-Forwarded-For, certificates,
/// hosts, token locations.
fn channel_cases(keys: &Keys, who: &str, t: &str) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let case = |what: &str, request: SampleRequest| Case {
        what: what.to_string(),
        request,
        authorization: None,
        query: None,
        san: None,
        difference: None,
    };
    let with_headers = |path: &str, headers: &[(&str, &str)]| {
        let mut r = request(who, "GET", path, None);
        r.headers.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        r
    };
    // Repeated headers: Envoy 1.40's RBAC tries each value on its own
    // (source/extensions/filters/common/rbac/matchers.cc HeaderMatcher, CVE-2026-26308).
    for (what, path, headers) in [
        ("DENY on x-role: admin alone", "/hdr/x", vec![("x-role", "admin")]),
        (
            "DENY on x-role: admin after another value",
            "/hdr/x",
            vec![("x-role", "user"), ("x-role", "admin")],
        ),
        (
            "DENY on x-role: admin before another value",
            "/hdr/x",
            vec![("x-role", "admin"), ("x-role", "user")],
        ),
        (
            "DENY on x-role: admin inside one comma-joined value",
            "/hdr/x",
            vec![("x-role", "user,admin")],
        ),
        (
            "DENY on x-role with other values only",
            "/hdr/x",
            vec![("x-role", "user"), ("x-role", "guest")],
        ),
        (
            "ALLOW a,b from two headers a and b",
            "/comma/x",
            vec![("x-group", "a"), ("x-group", "b")],
        ),
        ("ALLOW a,b from one header a,b", "/comma/x", vec![("x-group", "a,b")]),
        ("ALLOW a,b from a and a,b", "/comma/x", vec![("x-group", "a"), ("x-group", "a,b")]),
        (
            "ALLOW prefix adm* behind another value",
            "/hprefix/x",
            vec![("x-group", "user"), ("x-group", "admins")],
        ),
        (
            "ALLOW suffix *-ops in the first value",
            "/hsuffix/x",
            vec![("x-group", "night-ops"), ("x-group", "user")],
        ),
        ("ALLOW present * with an empty value", "/hpresent/x", vec![("x-flag", "")]),
        ("ALLOW present * without the header", "/hpresent/x", vec![]),
        (
            "DENY notValues user with user and admin",
            "/hnot/x",
            vec![("x-role", "user"), ("x-role", "admin")],
        ),
        (
            "DENY notValues user with user twice",
            "/hnot/x",
            vec![("x-role", "user"), ("x-role", "user")],
        ),
        ("DENY notValues user without the header", "/hnot/x", vec![]),
        ("ALLOW method condition by a header named :method", "/hmethod/x", vec![]),
    ] {
        cases.push(case(what, with_headers(path, &headers)));
    }
    // Hosts: case-insensitive, the port is part of the value.
    for (what, host) in [
        ("host exact with its port", "api.example.net:8080"),
        ("host exact without a port", "api.example.net"),
        ("host exact in upper case", "API.EXAMPLE.NET"),
        ("host with a trailing dot", "api.example.net."),
        ("host other port", "api.example.net:9090"),
    ] {
        let mut r = request(who, "GET", "/exact-host/x", None);
        r.host = host.into();
        cases.push(case(what, r));
    }
    // X-Forwarded-For against ipBlocks (the direct peer) and remoteIpBlocks (the client address
    // Envoy derives, which differs between the two connection-manager settings).
    for path in ["/ip/x", "/ipdeny/x", "/notip/x", "/remote/x", "/remotedeny/x", "/when-ip/x"] {
        for (what, xff) in [
            ("no X-Forwarded-For", vec![]),
            ("X-Forwarded-For 10.1.2.3", vec!["10.1.2.3"]),
            ("X-Forwarded-For 8.8.8.8", vec!["8.8.8.8"]),
            ("X-Forwarded-For 10.1.2.3, 8.8.8.8", vec!["10.1.2.3, 8.8.8.8"]),
            ("X-Forwarded-For 8.8.8.8, 10.1.2.3", vec!["8.8.8.8, 10.1.2.3"]),
            ("two X-Forwarded-For headers", vec!["8.8.8.8", "10.1.2.3"]),
            ("X-Forwarded-For garbage", vec!["not-an-address"]),
            ("X-Forwarded-For IPv6", vec!["2001:db8::1"]),
        ] {
            let headers: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
            cases.push(case(&format!("{what} on {path}"), with_headers(path, &headers)));
            let mut plain = with_headers(path, &headers);
            plain.peer = None;
            cases.push(case(&format!("{what} on {path}, plaintext"), plain));
        }
    }
    // Certificates: several URI SANs, DNS only.
    let blocked = spiffe("ns-9", "blocked");
    let allowed = spiffe("ns-8", "allowed");
    let mut multi = |what: &str, path: &str, san: String, difference: Option<Difference>| {
        let mut c = case(what, request(who, "GET", path, None));
        c.san = Some(san);
        c.difference = difference;
        cases.push(c);
    };
    let refused = Some(Difference {
        warden: "403",
        why: "peer-identity: a certificate with several URI SANs is refused",
    });
    multi(
        "two URI SANs, the second denied",
        "/san/x",
        format!("URI:{allowed},URI:{blocked}"),
        None,
    );
    multi("two URI SANs, both allowed", "/san/x", format!("URI:{allowed},URI:{who}"), refused);
    multi(
        "two URI SANs, the first allowed alone",
        "/san/x",
        format!("URI:{allowed},URI:spiffe://other/x"),
        refused,
    );
    multi("DNS SAN only, principals *", "/anyid/x", "DNS:client.example.com".into(), None);
    multi("DNS SAN only, namespaces", "/san/x", "DNS:client.example.com".into(), None);
    multi(
        "URI and DNS SANs, principals *",
        "/anyid/x",
        format!("URI:{allowed},DNS:client.example.com"),
        None,
    );
    // Tokens: the Bearer scheme whatever its case (RFC 7235 §2.1), access_token repeated.
    let bearer_case = |what: &str, path: &str, authorization: String, difference| Case {
        what: what.to_string(),
        request: request(who, "GET", path, None),
        authorization: Some(authorization),
        query: None,
        san: None,
        difference,
    };
    cases.push(bearer_case(
        "lower-case bearer with a bad token",
        "/anon/x",
        "bearer abc.def.ghi".into(),
        Some(Difference { warden: "401", why: "tokens: the Bearer scheme is case-insensitive" }),
    ));
    cases.push(bearer_case(
        "lower-case bearer with a good token on an anonymous-only path",
        "/anon/x",
        format!("bearer {t}"),
        Some(Difference { warden: "403", why: "tokens: the Bearer scheme is case-insensitive" }),
    ));
    let other = keys.mint(Alg::Rs256, &claims("user-9", json!({})), "repeat")?;
    cases.push(Case {
        what: "two different tokens in access_token".into(),
        request: request(who, "GET", "/anon/x", None),
        authorization: None,
        query: Some(format!("access_token={t}&access_token={other}")),
        san: None,
        difference: Some(Difference {
            warden: "401",
            why: "tokens: several different tokens in one request are refused",
        }),
    });
    cases.push(Case {
        what: "the same token twice in access_token".into(),
        request: request(who, "GET", "/rp/x", None),
        authorization: None,
        query: Some(format!("access_token={t}&access_token={t}")),
        san: None,
        difference: None,
    });
    Ok(cases)
}

/// What [`prepare`] needs.
pub struct DiffOptions {
    /// Where everything goes (`benches/.run/diff`).
    pub out: PathBuf,
    /// The `warden` command.
    pub warden: PathBuf,
    /// `warden.wasm`.
    pub wasm: PathBuf,
    /// Admin on `base_port`, the listeners on the next four ports.
    pub base_port: u16,
    /// Rules in the generated mesh.
    pub rules: usize,
}

/// Writes the policies (a generated mesh, the hand-written policies and a
/// `RequestAuthentication`), compiles them both ways, writes the Envoy bootstrap
/// (`envoy.json`), the cases (`cases.tsv`: number and description) and one curl config per
/// listener (`curl/<listener>.cfg`, every request writing `<case> <status>`).
pub fn prepare(options: &DiffOptions) -> Result<()> {
    let out = &options.out;
    for dir in ["policies", "compiled", "curl"] {
        fs::create_dir_all(out.join(dir))?;
    }
    let out = out.canonicalize()?;
    let wasm = options.wasm.canonicalize().context("warden.wasm")?;
    let keys = Keys::load_or_generate(&out.join("keys"))?;
    let certs = Certificates::open(&out.join("certs"))?;
    let server = certs.server()?;
    let (ca, key) = (certs.ca(), certs.key());

    let mesh = policies::generate(options.rules);
    let mut objects = mesh.policies.clone();
    objects.extend(extra_policies());
    objects.push(fixtures::request_authentication(&keys.jwks()?));
    let policy_file = out.join("policies/diff.yaml");
    fixtures::write_objects(&policy_file, &objects)?;
    let settings = out.join("policies/settings.json");
    fs::write(&settings, serde_json::to_string_pretty(&fixtures::settings(&mesh))?)?;
    let native = out.join("compiled/native.json");
    let warden = out.join("compiled/warden.json");
    super::compile(&options.warden, &policy_file, &settings, "envoy-native", None, &native)?;
    super::compile(&options.warden, &policy_file, &settings, "ecds", Some(&wasm), &warden)?;
    let native_filters = bootstrap::native_filters(&super::read_json(&native)?, false)?;
    let warden_ecds = super::read_json(&warden)?;
    let warden_filter = bootstrap::warden_filter(&warden_ecds)?;
    let connection_filter = bootstrap::warden_connection_filter(&warden_ecds)?;
    let listeners: Vec<Listener> = LISTENERS
        .iter()
        .map(|side| Listener {
            name: side.name.into(),
            port: options.base_port + side.offset,
            mtls: side.mtls,
            hcm: side.hcm,
            network_filters: if side.warden { vec![connection_filter.clone()] } else { vec![] },
            filters: if side.warden { vec![warden_filter.clone()] } else { native_filters.clone() },
        })
        .collect();
    let tls = Tls { cert: &server, key: &key, ca: &ca };
    fs::write(
        out.join("envoy.json"),
        serde_json::to_string_pretty(&bootstrap::bootstrap(options.base_port, &listeners, &tls))?,
    )?;

    let cases = cases(&keys, &mesh)?;
    let mut table = String::new();
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    for (number, case) in cases.iter().enumerate() {
        let difference =
            case.difference.map_or("-".to_string(), |d| format!("{} ({})", d.warden, d.why));
        let _ = writeln!(
            table,
            "{number}\t{}\t{} {}\t{difference}",
            case.what, case.request.method, case.request.path
        );
        let client = match (&case.san, &case.request.peer) {
            (Some(san), _) => {
                let name = format!("client-{}", hex(&hmac_sha256::Hash::hash(san.as_bytes())));
                Some(certs.leaf(&name, san)?)
            }
            (None, Some(peer)) => Some(certs.client(peer)?),
            (None, None) => None,
        };
        for side in &LISTENERS {
            // Requests with a peer go to the mTLS pairs, requests without to the plaintext pairs.
            if side.mtls != client.is_some() {
                continue;
            }
            let (name, offset, mtls) = (side.name, side.offset, side.mtls);
            let scheme = if mtls { "https" } else { "http" };
            let mut url =
                format!("{scheme}://127.0.0.1:{}{}", options.base_port + offset, case.request.path);
            if let Some(query) = &case.query {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(query);
            }
            let block = curl_block(&CurlRequest {
                url,
                method: &case.request.method,
                host: &case.request.host,
                headers: &case.request.headers,
                authorization: case.authorization.as_deref(),
                cert: client.as_deref().map(|c| (c, key.as_path())),
                ca: &ca,
                write_out: &format!("{number} %{{http_code}}"),
            });
            let file = files.entry(name).or_default();
            if !file.is_empty() {
                file.push_str("next\n");
            }
            file.push_str(&block);
        }
    }
    fs::write(out.join("cases.tsv"), table)?;
    for (name, text) in files {
        fs::write(out.join(format!("curl/{name}.cfg")), text)?;
    }
    Ok(())
}

/// Reads `<case> <status>` lines.
fn statuses(path: &Path) -> Result<BTreeMap<usize, String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some((case, status)) = line.split_once(' ') {
            out.insert(case.parse()?, status.to_string());
        }
    }
    Ok(out)
}

/// Compares the statuses each pair of listeners gave (`results/<listener>.txt`) for every case
/// of `cases.tsv`, under both connection-manager settings; returns the report, and an error
/// naming every disagreeing request. A case with a documented difference passes when Warden
/// answered the documented status and the native filters something else.
pub fn check(dir: &Path) -> Result<String> {
    let cases = fs::read_to_string(dir.join("cases.tsv"))?;
    let results = |name: &str| statuses(&dir.join(format!("results/{name}.txt")));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    let mut documented = 0usize;
    let mut total = 0usize;
    for (settings, mtls_n, mtls_w, plain_n, plain_w) in PAIRS {
        let (mtls_native, mtls_warden) = (results(mtls_n)?, results(mtls_w)?);
        let (plain_native, plain_warden) = (results(plain_n)?, results(plain_w)?);
        for line in cases.lines() {
            let mut fields = line.splitn(4, '\t');
            let (Some(number), Some(what), Some(request)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let difference = fields.next().filter(|d| *d != "-");
            let number: usize = number.parse()?;
            let (native, warden) = match (mtls_native.get(&number), plain_native.get(&number)) {
                (Some(native), _) => (Some(native), mtls_warden.get(&number)),
                (None, Some(native)) => (Some(native), plain_warden.get(&number)),
                (None, None) => (None, None),
            };
            total += 1;
            let expected_warden = difference.and_then(|d| d.split_whitespace().next());
            match (native, warden, expected_warden) {
                (Some(native), Some(warden), None) if native == warden && native != "000" => {
                    *counts.entry(native.clone()).or_default() += 1;
                }
                (Some(native), Some(warden), Some(expected))
                    if warden == expected && native != warden && native != "000" =>
                {
                    documented += 1;
                    *counts.entry(format!("{native}→{warden} (documented)")).or_default() += 1;
                }
                (native, warden, expected) => disagreements.push(format!(
                    "case {number} ({what}; {request}; {settings} settings): native {} vs Warden {}{}",
                    native.map_or("no answer", String::as_str),
                    warden.map_or("no answer", String::as_str),
                    match (expected, difference) {
                        (Some(_), Some(d)) => format!(", documented difference expected: {d}"),
                        _ => String::new(),
                    },
                )),
            }
        }
    }
    let mut report = format!(
        "{total} requests, each to native and to Warden, under the playground's and Istio's \
         connection-manager settings: "
    );
    let summary: Vec<String> = counts.iter().map(|(status, n)| format!("{n} × {status}")).collect();
    report.push_str(&summary.join(", "));
    if disagreements.is_empty() {
        report.push_str(&format!(
            "; every status equal but {documented} documented differences \
             (docs/compatibility.md)\n{total} passed, 0 failed\n"
        ));
        Ok(report)
    } else {
        let agreed = total - disagreements.len();
        bail!(
            "{report}\n{} disagreement(s):\n  {}\n{agreed} passed, {} failed",
            disagreements.len(),
            disagreements.join("\n  "),
            disagreements.len()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn curl_blocks_quote_values_and_write_the_case_number() {
        let headers = vec![("x-q".to_string(), "a \"b\"".to_string())];
        let block = curl_block(&CurlRequest {
            url: "https://127.0.0.1:1/p".into(),
            method: "GET",
            host: "h",
            headers: &headers,
            authorization: Some("Bearer t"),
            cert: None,
            ca: Path::new("/ca.crt"),
            write_out: "7 %{http_code}",
        });
        assert!(block.contains("header = \"x-q: a \\\"b\\\"\"\n"), "{block}");
        assert!(block.contains("write-out = \"7 %{http_code}\\n\"\n"), "{block}");
        assert!(!block.contains("\ncert = "), "{block}");
    }

    #[test]
    fn extra_policies_are_valid_for_warden() {
        let mut mesh = policies::generate(10);
        mesh.policies.extend(extra_policies());
        assert!(mesh.engine().is_ok(), "{:?}", mesh.engine().err());
    }

    #[test]
    fn check_names_every_disagreement_and_counts_agreements() {
        let dir = std::env::temp_dir().join(format!("warden-diff-check-{}", std::process::id()));
        fs::create_dir_all(dir.join("results")).unwrap();
        fs::write(
            dir.join("cases.tsv"),
            "0\ta\tGET /a\t-\n1\tb\tGET /b\t-\n2\tc\tGET /c\t-\n3\td\tGET /d\t403 (why)\n",
        )
        .unwrap();
        for prefix in ["", "istio_"] {
            let write = |name: &str, text: &str| {
                fs::write(dir.join(format!("results/{prefix}{name}.txt")), text).unwrap()
            };
            write("mtls_native", "0 200\n1 403\n3 200\n");
            write("mtls_warden", "0 200\n1 401\n3 403\n");
            write("plain_native", "2 403\n");
            write("plain_warden", "2 403\n");
        }
        let error = check(&dir).unwrap_err().to_string();
        assert!(
            error.contains("case 1 (b; GET /b; istio settings): native 403 vs Warden 401"),
            "{error}"
        );
        assert!(error.contains("6 passed, 2 failed"), "{error}");
        for prefix in ["", "istio_"] {
            fs::write(
                dir.join(format!("results/{prefix}mtls_warden.txt")),
                "0 200\n1 403\n3 403\n",
            )
            .unwrap();
        }
        let report = check(&dir).unwrap();
        assert!(report.contains("8 passed, 0 failed"), "{report}");
        assert!(report.contains("2 documented differences"), "{report}");
        // A documented difference that vanished fails: the documentation must follow.
        fs::write(dir.join("results/istio_mtls_warden.txt"), "0 200\n1 403\n3 200\n").unwrap();
        let error = check(&dir).unwrap_err().to_string();
        assert!(error.contains("documented difference expected: 403 (why)"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }
}
