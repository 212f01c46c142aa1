//! The enforcer end to end, natively: plugin configuration in, verdicts out, exactly as the
//! Envoy module carries them out (status, body, headers, gRPC status, response-code details).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use jwt_simple::prelude::*;
use serde_json::{json, Value};
use warden::authn::{KeyProvider, Keys, PureRust, SourceId, TokenCache};
use warden::authorizer;
use warden::config::{ConfigErrors, Workload};
use warden::enforcer::{self, Cause, Enforcer, Verdict};
use warden::request::{Connection, Observed, Peer, Request};
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const ISSUER: &str = "https://issuer.example";

/// jwt-simple's clock (which mints the tokens): `std::time` has no clock on wasm32-unknown-unknown.
fn now() -> u64 {
    Clock::now_since_epoch().as_secs()
}

fn jwks() -> String {
    json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": Base64UrlSafeNoPadding::encode_to_string(SECRET).unwrap()}]})
        .to_string()
}

fn token(claims: Value) -> String {
    let key = HS256Key::from_bytes(SECRET).with_key_id("k1");
    let custom: serde_json::Map<String, Value> = serde_json::from_value(claims).unwrap();
    let claims = Claims::with_custom_claims(custom, Duration::from_mins(10))
        .with_issuer(ISSUER)
        .with_subject("alice")
        .with_audience("backend");
    key.authenticate(claims).unwrap()
}

fn policies() -> Value {
    json!([
        {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
         "metadata": {"name": "jwt", "namespace": "api"},
         "spec": {"jwtRules": [{"issuer": ISSUER, "jwks": jwks(), "audiences": ["backend"],
                                "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}]}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "allow-frontend", "namespace": "api"},
         "spec": {"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/web/sa/frontend"]}}],
                             "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}]}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "admin", "namespace": "api"},
         "spec": {"rules": [{"to": [{"operation": {"paths": ["/admin"]}}],
                             "when": [{"key": "request.auth.claims[scope]", "values": ["admin"]}]}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "no-delete", "namespace": "istio-system"},
         "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}},
    ])
}

fn enforcer_with(policies: Value) -> Result<Enforcer, ConfigErrors> {
    enforcer_with_settings(policies, "{}")
}

/// An enforcer for the backend workload with `settings` (a JSON object of plugin settings).
fn enforcer_with_settings(policies: Value, settings: &str) -> Result<Enforcer, ConfigErrors> {
    let mut config: Value = serde_json::from_str(settings).unwrap();
    config["workload"] = json!({"namespace": "api", "labels": {"app": "backend"}});
    config["policies"] = policies;
    let config = enforcer::parse_plugin_config(config.to_string().as_bytes())?;
    Enforcer::new(&config, None)
}

struct NoRemoteKeys;
impl KeyProvider for NoRemoteKeys {
    fn keys(&self, _: SourceId) -> Keys<'_> {
        Keys::Pending
    }
}

const FRONTEND: &[u8] = b"spiffe://cluster.local/ns/web/sa/frontend";

fn check(
    enforcer: &Enforcer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    peer: Option<&[u8]>,
) -> Verdict {
    with_request(method, path, headers, peer, Observed::Unknown, |request| {
        enforcer.check(request, now(), &NoRemoteKeys, &mut TokenCache::new(16), &PureRust)
    })
}

/// Runs `f` on a request to the backend with these headers, peer URI SAN and direct peer.
fn with_request<R>(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    peer: Option<&[u8]>,
    source_ip: Observed<std::net::IpAddr>,
    f: impl FnOnce(&Request<'_>) -> R,
) -> R {
    let mut all: Vec<(&[u8], &[u8])> = vec![
        (b":method", method.as_bytes()),
        (b":path", path.as_bytes()),
        (b":authority", b"backend.api"),
    ];
    all.extend(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let peer = peer.map(|p| Peer { uri_sans: vec![p.to_vec()], ..Peer::default() });
    let connection = Connection {
        peer: Observed::from_option(peer.as_ref()),
        source_ip,
        ..Connection::default()
    };
    f(&Request::from_header_map(&all, connection))
}

#[test]
fn allowed_request_names_its_rule_and_strips_forged_claim_headers() {
    let e = enforcer_with(policies()).unwrap();
    let verdict = check(&e, "GET", "/api/orders", &[("x-jwt-sub", "forged")], Some(FRONTEND));
    let Verdict::Allow(allow) = &verdict else { panic!("{verdict:?}") };
    assert!(allow.headers.removals().any(|h| h == "x-jwt-sub"));
    assert_eq!(e.summary(&verdict), "allowed ns[api]-policy[allow-frontend]-rule[0]");
}

#[test]
fn no_allow_match_is_403_with_none_details() {
    // Envoy rbac_filter.cc: 403 "RBAC: access denied", details rbac_access_denied_matched_policy[none].
    let e = enforcer_with(policies()).unwrap();
    let Verdict::Deny(deny) = check(&e, "POST", "/api/orders", &[], Some(FRONTEND)) else {
        panic!()
    };
    assert_eq!((deny.status, deny.body), (403, "RBAC: access denied"));
    assert_eq!(deny.details, "rbac_access_denied_matched_policy[none]");
    assert_eq!(deny.grpc_status, None);
}

#[test]
fn deny_policy_is_named_in_the_details() {
    let e = enforcer_with(policies()).unwrap();
    let Verdict::Deny(deny) = check(&e, "DELETE", "/api/orders", &[], Some(FRONTEND)) else {
        panic!()
    };
    assert_eq!(
        deny.details,
        "rbac_access_denied_matched_policy[ns[istio-system]-policy[no-delete]-rule[0]]"
    );
}

#[test]
fn grpc_requests_get_permission_denied() {
    let e = enforcer_with(policies()).unwrap();
    let Verdict::Deny(deny) = check(
        &e,
        "POST",
        "/pkg.Svc/Call",
        &[("content-type", "application/grpc+proto")],
        Some(FRONTEND),
    ) else {
        panic!()
    };
    assert_eq!(deny.grpc_status, Some(enforcer::GRPC_PERMISSION_DENIED));
}

#[test]
fn valid_token_with_claim_passes_authorization_and_sets_claim_header() {
    let e = enforcer_with(policies()).unwrap();
    let t = token(json!({"scope": "read admin"}));
    let verdict = check(&e, "GET", "/admin", &[("authorization", &format!("Bearer {t}"))], None);
    let Verdict::Allow(allow) = &verdict else { panic!("{verdict:?}") };
    assert_eq!(allow.identity.as_ref().unwrap().principal().unwrap(), format!("{ISSUER}/alice"));
    assert!(allow.headers.set.iter().any(|(n, v)| n == "x-jwt-sub" && v == b"alice"));
    assert!(allow.headers.removals().any(|h| h == "authorization"), "the token is not forwarded");
}

#[test]
fn token_without_the_claim_is_authenticated_but_denied() {
    let e = enforcer_with(policies()).unwrap();
    let t = token(json!({"scope": "read"}));
    let Verdict::Deny(deny) =
        check(&e, "GET", "/admin", &[("authorization", &format!("Bearer {t}"))], None)
    else {
        panic!()
    };
    assert!(matches!(deny.cause, Cause::Unauthorized(_)));
    assert_eq!(deny.status, 403);
}

#[test]
fn invalid_token_is_401_before_any_policy_even_one_that_would_allow() {
    // Istio: jwt_authn runs before RBAC; an ALLOW never rescues an invalid token.
    let e = enforcer_with(policies()).unwrap();
    let t = token(json!({"scope": "admin"}));
    let tampered = format!("{}x", &t[..t.len() - 1]);
    let verdict = check(
        &e,
        "GET",
        "/api/orders",
        &[("authorization", &format!("Bearer {tampered}"))],
        Some(FRONTEND),
    );
    let Verdict::Deny(deny) = &verdict else { panic!("{verdict:?}") };
    assert_eq!(deny.status, 401);
    let (name, value) = &deny.headers[0];
    assert_eq!(*name, "www-authenticate");
    assert!(
        value.starts_with("Bearer realm=") && value.ends_with("error=\"invalid_token\""),
        "{value}"
    );
    assert!(deny.details.starts_with("jwt_authn_access_denied{"), "{}", deny.details);
    assert!(e.summary(&verdict).starts_with("unauthenticated "));
}

#[test]
fn grpc_requests_with_bad_tokens_get_unauthenticated() {
    let e = enforcer_with(policies()).unwrap();
    let Verdict::Deny(deny) = check(
        &e,
        "POST",
        "/pkg.Svc/Call",
        &[("content-type", "application/grpc"), ("authorization", "Bearer a.b.c")],
        None,
    ) else {
        panic!()
    };
    assert_eq!(deny.grpc_status, Some(enforcer::GRPC_UNAUTHENTICATED));
}

#[test]
fn remote_keys_not_fetched_yet_make_the_request_wait() {
    let remote = json!([{"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
        "metadata": {"name": "jwt", "namespace": "api"},
        "spec": {"jwtRules": [{"issuer": ISSUER, "jwksUri": "https://issuer.example/keys", "timeout": "2s"}]}}]);
    let e = enforcer_with(remote).unwrap();
    let t = token(json!({}));
    let Verdict::Wait { sources } =
        check(&e, "GET", "/", &[("authorization", &format!("Bearer {t}"))], None)
    else {
        panic!()
    };
    assert_eq!(e.wait_limit(&sources), std::time::Duration::from_secs(2));
    assert_eq!(e.authn().remote_sources()[sources[0].0].cluster, "outbound|443||issuer.example");
}

#[test]
fn every_error_in_a_configuration_is_reported_with_object_and_field() {
    let errors = enforcer_with(json!([
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "bad-ip", "namespace": "api"},
         "spec": {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/33"]}}]}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "deny-nothing", "namespace": "api"}, "spec": {"action": "DENY"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "api"}},
    ]))
    .unwrap_err();
    let text = errors.to_string();
    assert_eq!(errors.0.len(), 3, "{text}");
    assert!(
        text.contains("AuthorizationPolicy api/bad-ip: spec.rules[0].from[0].source.ipBlocks[0]"),
        "{text}"
    );
    assert!(text.contains("AuthorizationPolicy api/deny-nothing"), "{text}");
    assert!(text.contains("policies[2]"), "{text}");
}

#[test]
fn duplicate_objects_are_refused() {
    let one = json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                     "metadata": {"name": "p", "namespace": "api"}, "spec": {}});
    let errors = enforcer_with(json!([one, one])).unwrap_err();
    assert!(errors.to_string().contains("duplicate"), "{errors}");
}

#[test]
fn unknown_plugin_settings_are_refused() {
    let errors =
        enforcer::parse_plugin_config(br#"{"policies": [], "peerIdentiy": "xfcc"}"#).unwrap_err();
    assert!(errors.to_string().contains("peerIdentiy"), "{errors}");
}

#[test]
fn a_settings_error_names_its_field_however_the_text_is_laid_out() {
    let one_line = br#"{"policies": [], "workload": {"namespace": "api", "lables": {}}}"#;
    let errors = enforcer::parse_plugin_config(one_line).unwrap_err();
    assert_eq!(errors.0[0].field, "workload.lables", "{errors}");
    let pretty = "{\n  \"policies\": [],\n  \"log\": {\n    \"audit\": 3\n  }\n}";
    let Err(errors) =
        enforcer::read_plugin_config(|| std::io::Cursor::new(pretty.as_bytes()), None)
    else {
        panic!("accepted")
    };
    assert_eq!(errors.0[0].field, "log.audit", "{errors}");
    // Without a node workload, settings that name the workload wrongly: the field, not syntax.
    let wrong = br#"{"workload": {"namespace": "api", "lables": {}}, "policies": []}"#;
    let Err(errors) = enforcer::read_plugin_config(|| std::io::Cursor::new(&wrong[..]), None)
    else {
        panic!("accepted")
    };
    assert_eq!(errors.0[0].field, "workload.lables", "{errors}");
    // Where serde_json's reader has peeked past the value (a number's delimiter, a `[`).
    for (text, field) in [
        (r#"{"trustDomain":5,"policies":[]}"#, "trustDomain"),
        (r#"{"tokenCache":{"size":-1}}"#, "tokenCache.size"),
        (r#"{"trustDomainAliases":["a",5,"b"]}"#, "trustDomainAliases[1]"),
        (r#"{"trustDomain":["a"]}"#, "trustDomain"),
    ] {
        let errors = enforcer::parse_plugin_config(text.as_bytes()).unwrap_err();
        assert_eq!(errors.0[0].field, field, "{text}: {errors}");
    }
}

/// Every JSON pointer into `value`, the root excluded.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
        out.push(pointer.clone());
        pointers(child, pointer, out);
    }
}

#[test]
fn a_settings_error_is_located_where_a_slice_reader_locates_it() {
    // The module reads the configuration through an `io::Read`, whose error positions count a
    // byte only peeked at, and decodes the settings by hand; the reference is serde's derive on
    // the same text read from a slice. Each value of a configuration that uses every setting is
    // replaced by values of each shape, or removed, in compact and in pretty-printed text.
    let valid = json!({
        "trustDomain": "td", "trustDomainAliases": ["a", "b"], "tokenCache": {"size": 5},
        "log": {"decisions": "all", "filterState": "none", "audit": "denied", "auditAttributes": true},
        "jwks": {"refreshInterval": "5s", "maxStale": "1h", "clusters": {"https://u": "c"}},
        "workload": {"namespace": "api", "labels": {"app": "x"}},
        "crypto": "wasm", "peerIdentity": "xfcc", "excludeNamespaces": ["x"],
        "providers": [{"name": "p", "envoyExtAuthzHttp": {
            "service": "s", "port": 80, "failOpen": true, "timeout": "1s",
            "includeRequestHeadersInCheck": ["a"], "includeAdditionalHeadersInCheck": {"k": "v"},
            "identityHeaders": {"peerPrincipal": "x-p"}}}],
        "policies": []
    });
    assert!(enforcer::parse_plugin_config(valid.to_string().as_bytes()).is_ok());
    let mut all = Vec::new();
    pointers(&valid, String::new(), &mut all);
    let shapes = [json!(5), json!(-1), json!(1.5), json!(70000), json!("x"), json!(true)];
    let shapes = shapes.into_iter().chain([json!(null), json!([]), json!(["a", 5]), json!({})]);
    let shapes: Vec<Value> = shapes.chain([json!({"k": 1}), json!([[1]])]).collect();
    let mut checked = 0;
    for pointer in &all {
        let mut variants: Vec<Value> = shapes
            .iter()
            .map(|shape| {
                let mut doc = valid.clone();
                *doc.pointer_mut(pointer).unwrap() = shape.clone();
                doc
            })
            .collect();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let mut removed = valid.clone();
        if let Some(Value::Object(map)) = removed.pointer_mut(parent) {
            map.remove(&key.replace("~1", "/").replace("~0", "~"));
            variants.push(removed);
        }
        for doc in variants {
            for text in [doc.to_string(), serde_json::to_string_pretty(&doc).unwrap()] {
                let Err(reference) =
                    serde_json::from_slice::<warden::config::PluginConfig>(text.as_bytes())
                else {
                    continue;
                };
                let expected = warden::config::locate::path_at(
                    text.as_bytes(),
                    reference.line(),
                    reference.column(),
                );
                let errors = enforcer::parse_plugin_config(text.as_bytes()).unwrap_err();
                let message = errors.to_string();
                // The settings' decoder refuses two shapes serde's derive read, where the
                // derive failed inside them (config/decode.rs compares those), and names an
                // enum that is not a string where serde_json's reader is past its `[`.
                if message.contains("invalid type: sequence, expected struct")
                    || message.contains("invalid type: map, expected a string")
                {
                    continue;
                }
                if warden::config::locate::message(&reference) == "expected value" {
                    assert!(expected.starts_with(&errors.0[0].field), "{text}: {errors}");
                } else {
                    assert_eq!(errors.0[0].field, expected, "{text}: {errors}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "{checked}");
}

#[test]
fn workload_must_be_known() {
    let config = enforcer::parse_plugin_config(br#"{"policies": []}"#).unwrap();
    assert!(Enforcer::new(&config, None).is_err());
    let node = Workload { namespace: "api".into(), labels: Default::default() };
    assert!(Enforcer::new(&config, Some(node)).unwrap().is_passthrough());
}

#[test]
fn filter_state_records_denials_by_default_and_every_decision_with_all() {
    let allowed_and_denied = |e: &Enforcer| {
        let allowed = check(e, "GET", "/api/orders", &[], Some(FRONTEND));
        let denied = check(e, "DELETE", "/api/orders", &[], Some(FRONTEND));
        (e.records_filter_state(&allowed), e.records_filter_state(&denied))
    };
    let e = enforcer_with(policies()).unwrap();
    assert_eq!(allowed_and_denied(&e), (false, true), "the default records denials only");
    for (setting, expected) in
        [("all", (true, true)), ("denied", (false, true)), ("none", (false, false))]
    {
        let e = enforcer_with_settings(
            policies(),
            &format!(r#"{{"log": {{"filterState": "{setting}"}}}}"#),
        )
        .unwrap();
        assert_eq!(allowed_and_denied(&e), expected, "filterState {setting}");
    }
    let errors =
        enforcer::parse_plugin_config(br#"{"policies": [], "log": {"filterState": "yes"}}"#)
            .unwrap_err();
    assert!(errors.to_string().contains("filterState"), "{errors}");
}

#[test]
fn log_lines_follow_the_setting() {
    let e = enforcer_with(policies()).unwrap();
    let allowed = check(&e, "GET", "/api/orders", &[], Some(FRONTEND));
    let denied = check(&e, "DELETE", "/x\u{7f}y", &[], Some(FRONTEND));
    let request = Request { method: b"DELETE", path: b"/x\x7fy", ..Request::default() };
    assert_eq!(e.log_line(&allowed, &request), None, "the default logs denials only");
    let line = e.log_line(&denied, &request).unwrap();
    assert!(line.contains("DELETE /x\\x7fy") && line.contains("no-delete"), "{line}");
}

/// A request to `/api/x` from a peer whose certificate carries `uri_sans`.
fn check_sans(enforcer: &Enforcer, uri_sans: &[&str]) -> Verdict {
    let peer = Peer {
        uri_sans: uri_sans.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Peer::default()
    };
    let headers: Vec<(&[u8], &[u8])> =
        vec![(b":method", b"GET"), (b":path", b"/api/x"), (b":authority", b"backend.api")];
    let connection = Connection { peer: Observed::Known(&peer), ..Connection::default() };
    let request = Request::from_header_map(&headers, connection);
    enforcer.check(&request, now(), &NoRemoteKeys, &mut TokenCache::new(16), &PureRust)
}

#[test]
fn a_certificate_with_two_uri_sans_is_refused_before_any_policy() {
    // An X.509-SVID has exactly one URI SAN; Envoy's RBAC would let either SAN match
    // (source/extensions/filters/common/rbac/matchers.cc AuthenticatedMatcher), so a DENY on
    // one identity could be passed with the other. Warden refuses the certificate.
    let e = enforcer_with(policies()).unwrap();
    let frontend = std::str::from_utf8(FRONTEND).unwrap();
    assert!(matches!(check_sans(&e, &[frontend]), Verdict::Allow(_)));
    let verdict = check_sans(&e, &[frontend, "spiffe://cluster.local/ns/evil/sa/x"]);
    let Verdict::Deny(deny) = &verdict else { panic!("{verdict:?}") };
    assert_eq!((deny.status, deny.body), (403, enforcer::RBAC_DENIED_BODY));
    assert_eq!(deny.details, "warden_peer_refused{multiple_uri_sans}");
    assert!(matches!(deny.cause, Cause::Peer(enforcer::PeerRefusal::MultipleUriSans)));
    assert_eq!(e.summary(&verdict), "denied peer_multiple_uri_sans");
    // Where no policy reads the peer, the certificate is not looked at.
    let paths_only = enforcer_with(json!([
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "paths", "namespace": "api"},
         "spec": {"rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}},
    ]))
    .unwrap();
    assert!(matches!(check_sans(&paths_only, &[frontend, "spiffe://x/y"]), Verdict::Allow(_)));
}

#[test]
fn objects_sidecars_ignore_are_reported_not_refused() {
    let mut objects = policies();
    objects.as_array_mut().unwrap().extend([
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": "gateway-deny", "namespace": "api"},
               "spec": {"action": "DENY", "rules": [{}],
                        "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
               "metadata": {"name": "gateway-jwt", "namespace": "api"},
               "spec": {"targetRef": {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"},
                        "jwtRules": [{"issuer": "https://other.example", "jwks": jwks()}]}}),
    ]);
    let e = enforcer_with(objects).unwrap();
    let ignored: Vec<String> = e.ignored().iter().map(|(o, _)| o.to_string()).collect();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(e.authz().policies().iter().all(|p| p.name != "gateway-deny"));
    // The gateway's DENY-all does not touch this sidecar.
    let frontend = std::str::from_utf8(FRONTEND).unwrap();
    assert!(matches!(check_sans(&e, &[frontend]), Verdict::Allow(_)));
}

#[test]
fn unenforceable_policies_are_named_and_fail_closed() {
    let e = enforcer_with(json!([
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "ext", "namespace": "api"},
         "spec": {"action": "CUSTOM", "provider": {"name": "opa"}, "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}},
    ]))
    .unwrap();
    let names: Vec<&str> = e.unenforceable().map(|(p, _)| p.name.as_str()).collect();
    assert_eq!(names, ["ext"]);
    let verdict = check_sans(&e, &[std::str::from_utf8(FRONTEND).unwrap()]);
    let Verdict::Deny(deny) = &verdict else { panic!("{verdict:?}") };
    assert_eq!((deny.status, deny.body), (403, enforcer::CUSTOM_UNAVAILABLE_BODY));
    assert_eq!(deny.details, "warden_custom_unavailable[ns[api]-policy[ext]-rule[0]]");
}

#[test]
fn the_network_filter_role_is_its_own_configuration() {
    let config = |json: Value| enforcer::parse_plugin_config(json.to_string().as_bytes()).unwrap();
    let connection = config(json!({"role": "connection"}));
    enforcer::check_connection_role(&connection).unwrap();
    // The HTTP filter refuses it, and the network filter refuses policies.
    assert!(Enforcer::new(&connection, None).is_err());
    let with_policies = config(json!({"role": "connection", "policies": policies()}));
    let error = enforcer::check_connection_role(&with_policies).unwrap_err().to_string();
    assert!(error.contains("enforces nothing"), "{error}");
    assert!(enforcer::check_connection_role(&config(json!({}))).is_err());
    // `uriSan`, the old name of the default, still reads the whole certificate.
    let old = config(json!({"peerIdentity": "uriSan"}));
    assert_eq!(old.peer_identity, warden::config::plugin::PeerIdentity::Certificate);
}

/// The scope is the settings' when they name one, wherever they stand in the text: the read
/// that assumed the node's workload and root namespace is done again in theirs.
#[test]
fn settings_after_the_policies_decide_the_scope() {
    let policy = |name: &str, namespace: &str, app: &str| {
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"selector": {"matchLabels": {"app": app}}, "rules": [{}]}})
    };
    let no_selector = |name: &str, namespace: &str| {
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": name, "namespace": namespace}, "spec": {"rules": [{}]}})
    };
    let policies = json!([
        policy("node-one", "api", "backend"),
        policy("configured-one", "web", "frontend"),
        no_selector("default-root", "istio-system"),
        no_selector("other-root", "mesh-root")
    ]);
    let node = Workload {
        namespace: "api".into(),
        labels: [("app".to_string(), "backend".to_string())].into(),
    };
    let names = |text: String| {
        let (config, _) = enforcer::read_plugin_config(
            || std::io::Cursor::new(text.clone().into_bytes()),
            Some(&node),
        )
        .unwrap();
        let mut names: Vec<String> = config
            .policy_values()
            .map(|p| p.unwrap()["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    // Key order is kept in the text: `policies` first, the settings after.
    let text = |settings: &str| format!(r#"{{"policies": {policies}{settings}}}"#);
    assert_eq!(names(text("")), ["default-root", "node-one"]);
    assert_eq!(
        names(text(r#", "workload": {"namespace": "api", "labels": {"app": "backend"}}"#)),
        ["default-root", "node-one"]
    );
    assert_eq!(
        names(text(r#", "workload": {"namespace": "web", "labels": {"app": "frontend"}}"#)),
        ["configured-one", "default-root"]
    );
    assert_eq!(names(text(r#", "rootNamespace": "mesh-root""#)), ["node-one", "other-root"]);
}

/// A mesh-wide configuration read for one workload keeps only what can apply to it, and
/// decides exactly as the whole configuration does.
#[test]
fn a_configuration_read_for_a_workload_keeps_only_what_applies_and_decides_alike() {
    let policy = |name: &str, namespace: &str, app: Option<&str>, path: &str| {
        let mut spec = json!({"rules": [{"to": [{"operation": {"paths": [path]}}]}]});
        if let Some(app) = app {
            spec["selector"] = json!({"matchLabels": {"app": app}});
        }
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": name, "namespace": namespace}, "spec": spec})
    };
    let mut policies = vec![
        policy("root", "istio-system", None, "/root/*"),
        policy("mine", "api", Some("backend"), "/mine/*"),
        policy("namespace-wide", "api", None, "/ns/*"),
        policy("gateway", "api", None, "/gw/*"),
    ];
    policies[3]["spec"]["targetRefs"] =
        json!([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]);
    for i in 0..200 {
        policies.push(policy(&format!("other-{i}"), &format!("ns{}", i % 7), Some("x"), "/x/*"));
        policies.push(policy(&format!("sibling-{i}"), "api", Some("frontend"), "/admin/*"));
    }
    // Out of scope and invalid beyond its head: dropped unread (the CLI validates everything).
    policies.push(json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "broken-elsewhere", "namespace": "other"},
        "spec": {"rules": [{"to": [{"operation": {"paths": 7}}]}]}}));
    let whole = json!({"policies": policies}).to_string();
    let workload = Workload {
        namespace: "api".into(),
        labels: [("app".to_string(), "backend".to_string())].into(),
    };
    let (scoped, dropped) =
        enforcer::read_plugin_config(|| std::io::Cursor::new(whole.as_bytes()), Some(&workload))
            .unwrap();
    assert_eq!(
        scoped.policies.len(),
        4,
        "root, mine, namespace-wide, and the gateway one (reported as ignored)"
    );
    assert_eq!(dropped, 401);
    let scoped = Enforcer::new(&scoped, Some(workload.clone())).unwrap();
    assert_eq!(scoped.ignored().len(), 1);

    // The same configuration without the broken object, read whole, decides alike.
    let mut valid = policies.clone();
    valid.pop();
    let full =
        enforcer::parse_plugin_config(json!({"policies": valid}).to_string().as_bytes()).unwrap();
    let full = Enforcer::new(&full, Some(workload)).unwrap();
    for path in ["/root/a", "/mine/a", "/ns/a", "/gw/a", "/x/a", "/admin/a", "/"] {
        let summary = |e: &Enforcer| match check(e, "GET", path, &[], None) {
            Verdict::Allow(_) => "allow".to_string(),
            Verdict::Deny(deny) => format!("{} {}", deny.status, deny.details),
            Verdict::Wait { .. } => "wait".to_string(),
        };
        assert_eq!(summary(&scoped), summary(&full), "{path}");
    }

    // In scope, a broken object still refuses the configuration.
    let mut broken = policies;
    broken.push(json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "broken-here", "namespace": "api"},
        "spec": {"rules": [{"to": [{"operation": {"paths": 7}}]}]}}));
    let text = json!({"policies": broken}).to_string();
    let (config, _) = enforcer::read_plugin_config(
        || std::io::Cursor::new(text.as_bytes()),
        Some(&Workload {
            namespace: "api".into(),
            labels: [("app".to_string(), "backend".to_string())].into(),
        }),
    )
    .unwrap();
    let Err(errors) = Enforcer::new(&config, None) else { panic!("accepted") };
    assert!(errors.0.iter().any(|e| e.field.contains("paths")), "{errors}");
    // Not JSON at all: refused before any policy is read.
    assert!(enforcer::read_plugin_config(|| std::io::Cursor::new(&b"{\"policies\": [}"[..]), None)
        .is_err());
}

/// The audit record (`log.audit`, filter state `warden_audit`) as JSON.
fn audit(
    e: &Enforcer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    peer: Option<&[u8]>,
) -> Option<Value> {
    let source_ip = Observed::Known("10.1.2.3".parse().unwrap());
    with_request(method, path, headers, peer, source_ip, |request| {
        let verdict = e.check(request, now(), &NoRemoteKeys, &mut TokenCache::new(16), &PureRust);
        e.audit_record(&verdict, request).map(|r| serde_json::from_str(&r).unwrap())
    })
}

#[test]
fn audit_records_say_who_did_what_and_which_rule_decided() {
    let mut with_audit = policies();
    with_audit.as_array_mut().unwrap().push(json!(
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "watch-orders", "namespace": "api"},
         "spec": {"action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/api/orders"]}}]}]}}));
    let e = enforcer_with_settings(with_audit, r#"{"log": {"audit": "all"}}"#).unwrap();
    let token = token(json!({}));
    let bearer = format!("Bearer {token}");

    let denied = audit(
        &e,
        "DELETE",
        "/api/orders?page=secret#x",
        &[("x-request-id", "r-1")],
        Some(FRONTEND),
    )
    .unwrap();
    assert_eq!(
        denied,
        json!({"decision": "denied", "reason": "deny_rule", "status": 403,
               "policy": "istio-system/no-delete", "rule": "ns[istio-system]-policy[no-delete]-rule[0]",
               "request_id": "r-1", "peer_principal": "cluster.local/ns/web/sa/frontend",
               "peer_namespace": "web", "source_ip": "10.1.2.3", "method": "DELETE",
               "host": "backend.api", "path": "/api/orders",
               "audit": "ns[api]-policy[watch-orders]-rule[0]"})
    );

    let allowed =
        audit(&e, "GET", "/api/orders", &[("authorization", &bearer)], Some(FRONTEND)).unwrap();
    assert_eq!(allowed["decision"], "allowed");
    assert_eq!(allowed["reason"], "allow_rule");
    assert_eq!(allowed["policy"], "api/allow-frontend");
    assert_eq!(allowed["request_principal"], format!("{ISSUER}/alice"));
    assert!(allowed.get("status").is_none(), "{allowed}");

    let no_match = audit(&e, "POST", "/api/orders", &[("authorization", &bearer)], None).unwrap();
    assert_eq!(
        (&no_match["decision"], &no_match["reason"]),
        (&json!("denied"), &json!("no_allow_rule"))
    );
    assert_eq!(
        no_match["request_principal"],
        format!("{ISSUER}/alice"),
        "an authenticated denial names its caller"
    );
    assert!(
        no_match.get("rule").is_none() && no_match.get("peer_principal").is_none(),
        "{no_match}"
    );

    let expired = Claims::with_custom_claims(serde_json::Map::new(), Duration::from_secs(1))
        .with_issuer(ISSUER)
        .with_audience("backend");
    let mut expired = expired;
    expired.expires_at = Some(UnixTimeStamp::from_secs(now() - 600));
    let expired = HS256Key::from_bytes(SECRET).with_key_id("k1").authenticate(expired).unwrap();
    let header = format!("Bearer {expired}");
    let refused =
        audit(&e, "GET", "/api/orders", &[("authorization", &header)], Some(FRONTEND)).unwrap();
    assert_eq!(
        (&refused["decision"], &refused["reason"], &refused["status"]),
        (&json!("unauthenticated"), &json!("expired"), &json!(401))
    );
    for record in [&denied, &allowed, &no_match, &refused] {
        let text = record.to_string();
        assert!(
            !text.contains(&token) && !text.contains(&expired) && !text.contains("secret"),
            "{text}"
        );
    }
}

#[test]
fn audit_records_follow_the_setting() {
    let e = enforcer_with(policies()).unwrap();
    assert_eq!(audit(&e, "DELETE", "/api/orders", &[], Some(FRONTEND)), None, "off by default");
    let e = enforcer_with_settings(policies(), r#"{"log": {"audit": "denied"}}"#).unwrap();
    assert!(audit(&e, "DELETE", "/api/orders", &[], Some(FRONTEND)).is_some());
    assert_eq!(audit(&e, "GET", "/api/orders", &[], Some(FRONTEND)), None);
    assert!(enforcer_with_settings(policies(), r#"{"log": {"audit": "some"}}"#).is_err());
}

/// `log.auditAttributes`: the record carries what the rules read (for `warden replay`), and
/// only that; recording never changes a decision.
#[test]
fn audit_attributes_carry_what_the_rules_read_and_nothing_else() {
    let mut with_header = policies();
    with_header.as_array_mut().unwrap().push(json!(
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "tenants", "namespace": "api"},
         "spec": {"action": "DENY", "rules": [{"when": [{"key": "request.headers[x-tenant]", "values": ["evil"]}]}]}}));
    let settings = r#"{"log": {"audit": "all", "auditAttributes": true}}"#;
    let e = enforcer_with_settings(with_header, settings).unwrap();
    let t = token(json!({"scope": "read write", "email": "alice@example.com"}));
    let bearer = format!("Bearer {t}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-tenant", "acme"),
        ("x-tenant", "globex"),
        ("cookie", "session=secret"),
    ];
    let record = audit(&e, "GET", "/api/orders", &headers, Some(FRONTEND)).unwrap();
    assert_eq!(
        record["attributes"],
        json!({"peer": {"uri_sans": ["spiffe://cluster.local/ns/web/sa/frontend"]},
               "headers": {"x-tenant": ["acme", "globex"]},
               "token": {"iss": ISSUER, "sub": "alice", "claims": {"scope": ["read", "write"]}}})
    );
    let text = record.to_string();
    assert!(!text.contains(&t) && !text.contains("secret") && !text.contains("alice@"), "{text}");
    // Absent header and plaintext: recorded as absent.
    let record = audit(&e, "GET", "/api/orders", &[], None).unwrap();
    assert_eq!(record["attributes"], json!({"headers": {"x-tenant": []}}));
    // A value over its bound is cut, and the record says so.
    let long = "x".repeat(600);
    let record = audit(&e, "GET", "/api/orders", &[("x-tenant", &long)], None).unwrap();
    assert_eq!(record["attributes"]["cut"], true);

    // No rule reads the peer: a certificate with two URI SANs is not refused because the
    // record wants the peer's names.
    let paths_only = json!([{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "paths", "namespace": "api"},
        "spec": {"rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}}]);
    let e = enforcer_with_settings(paths_only, settings).unwrap();
    assert!(e.needs().peer, "the peer is read to be recorded");
    let all: Vec<(&[u8], &[u8])> =
        vec![(b":method", b"GET"), (b":path", b"/api/orders"), (b":authority", b"backend")];
    let peer =
        Peer { uri_sans: vec![FRONTEND.to_vec(), b"spiffe://other/x".to_vec()], ..Peer::default() };
    let connection = Connection { peer: Observed::Known(&peer), ..Connection::default() };
    let request = Request::from_header_map(&all, connection);
    let verdict = e.check(&request, now(), &NoRemoteKeys, &mut TokenCache::new(4), &PureRust);
    assert!(matches!(verdict, Verdict::Allow(_)), "{verdict:?}");
    // Recording every decision needs every request seen, even with no policy at all.
    let none = enforcer_with_settings(json!([]), r#"{"log": {"audit": "all"}}"#).unwrap();
    assert!(!none.is_passthrough());
    assert!(enforcer_with_settings(json!([]), "{}").unwrap().is_passthrough());
}

/// RFC 8705 §3: with `warden.io/certificate-bound-tokens: "true"`, a token's `cnf.x5t#S256`
/// must be the SHA-256 thumbprint of the client certificate it arrives with.
#[test]
fn certificate_bound_tokens_work_only_on_their_own_certificate() {
    let mut bound = policies();
    bound[0]["metadata"]["annotations"] = json!({"warden.io/certificate-bound-tokens": "true"});
    let e = enforcer_with(bound.clone()).unwrap();
    let own = hmac_sha256::Hash::hash(b"frontend's certificate DER");
    let other = hmac_sha256::Hash::hash(b"intruder's certificate DER");
    let cnf = |thumbprint: &[u8; 32]| json!({"cnf": {"x5t#S256": Base64UrlSafeNoPadding::encode_to_string(thumbprint).unwrap()}});
    let decide = |token: &str, thumbprint: Option<[u8; 32]>| {
        let bearer = format!("Bearer {token}");
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", b"/api/orders"),
            (b":authority", b"backend.api"),
            (b"authorization", bearer.as_bytes()),
        ];
        let peer = thumbprint.map(|sha256| Peer {
            uri_sans: vec![FRONTEND.to_vec()],
            sha256: Some(sha256),
            ..Peer::default()
        });
        let connection =
            Connection { peer: Observed::from_option(peer.as_ref()), ..Connection::default() };
        let request = Request::from_header_map(&headers, connection);
        match e.check(&request, now(), &NoRemoteKeys, &mut TokenCache::new(16), &PureRust) {
            Verdict::Allow(allow) => format!("allowed {:?}", allow.identity.map(|i| i.principal())),
            Verdict::Deny(deny) => format!("{} {}", deny.status, deny.details),
            Verdict::Wait { .. } => "wait".into(),
        }
    };
    let bound_token = token(cnf(&own));
    assert_eq!(
        decide(&bound_token, Some(own)),
        format!("allowed {:?}", Some(Some(format!("{ISSUER}/alice"))))
    );
    assert_eq!(
        decide(&bound_token, Some(other)),
        "401 jwt_authn_access_denied{Jwt_is_bound_to_another_certificate}"
    );
    assert_eq!(
        decide(&bound_token, None),
        "401 jwt_authn_access_denied{Jwt_is_bound_to_another_certificate}",
        "no client certificate: no binding can hold"
    );
    assert_eq!(
        decide(&token(json!({})), Some(own)),
        "401 jwt_authn_access_denied{Jwt_is_not_bound_to_a_certificate}"
    );
    // A forged binding fails the signature first: the claim means nothing unsigned.
    let forged = {
        let mut parts: Vec<String> = bound_token.split('.').map(str::to_string).collect();
        let payload = cnf(&other).to_string();
        parts[1] = Base64UrlSafeNoPadding::encode_to_string(payload).unwrap();
        parts.join(".")
    };
    assert!(decide(&forged, Some(other)).starts_with("401"), "{}", decide(&forged, Some(other)));

    // Without the annotation the same token is an ordinary bearer token.
    let unbound = enforcer_with(policies()).unwrap();
    let bearer = format!("Bearer {bound_token}");
    let Verdict::Allow(_) =
        check(&unbound, "GET", "/api/orders", &[("authorization", &bearer)], Some(FRONTEND))
    else {
        panic!("an unbound rule refused a valid token")
    };

    bound[0]["metadata"]["annotations"] = json!({"warden.io/certificate-bound-tokens": "yes"});
    let errors = enforcer_with(bound).unwrap_err().to_string();
    assert!(
        errors.contains("metadata.annotations[warden.io/certificate-bound-tokens]")
            && errors.contains("\"yes\""),
        "{errors}"
    );
}

/// CUSTOM with an HTTP provider Warden calls: evaluated after authentication (so its rules may
/// read claims), asked only when DENY and ALLOW let the request through, its answer read as
/// Envoy's HTTP ext_authz reads it.
#[test]
fn custom_rules_ask_their_authorizer_after_authentication() {
    let mut with_custom = policies();
    with_custom.as_array_mut().unwrap().push(json!(
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "orders-authz", "namespace": "api"},
         "spec": {"action": "CUSTOM", "provider": {"name": "authz"},
                  "rules": [{"to": [{"operation": {"paths": ["/api/orders"]}}],
                             "when": [{"key": "request.auth.claims[scope]", "values": ["orders"]}]}]}}));
    let settings = r#"{"providers": [{"name": "authz", "envoyExtAuthzHttp": {
        "service": "authz.api.svc.cluster.local", "port": 9000, "timeout": "500ms",
        "headersToUpstreamOnAllow": ["x-authz-*"], "headersToDownstreamOnDeny": ["x-reason"]}}],
        "log": {"audit": "all"}}"#;
    let e = enforcer_with_settings(with_custom.clone(), settings).unwrap();
    let orders = format!("Bearer {}", token(json!({"scope": "orders"})));
    let other = format!("Bearer {}", token(json!({"scope": "read"})));

    let verdict = check(&e, "GET", "/api/orders", &[("authorization", &orders)], Some(FRONTEND));
    let Verdict::Allow(allow) = verdict else { panic!("{verdict:?}") };
    let ask = allow.ask.clone().expect("the CUSTOM rule on the claim asks the authorizer");
    assert_eq!(ask.provider, "authz");
    assert_eq!(ask.call.cluster, "outbound|9000||authz.api.svc.cluster.local");
    assert_eq!(ask.call.timeout, std::time::Duration::from_millis(500));
    let sent =
        |name: &str| ask.call.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
    assert_eq!(sent("x-warden-request-principal"), Some(format!("{ISSUER}/alice").as_bytes()));
    assert_eq!(sent("x-warden-peer-principal"), Some(FRONTEND));

    let answered = |allow: &warden::enforcer::Allow, response: Option<authorizer::Response>| {
        with_request("GET", "/api/orders", &[], Some(FRONTEND), Observed::Unknown, |request| {
            e.answered(allow.clone(), response.as_ref(), request)
        })
        .0
    };
    let response = |status: u16| authorizer::Response {
        status: Some(status),
        headers: vec![
            (b"x-authz-user".to_vec(), b"alice@orders".to_vec()),
            (b"x-reason".to_vec(), b"over quota".to_vec()),
        ],
        body: b"quota exceeded".to_vec(),
    };
    let Verdict::Allow(allowed) = answered(&allow, Some(response(200))) else { panic!() };
    assert!(allowed.ask.is_none());
    assert!(allowed.headers.set.contains(&("x-authz-user".to_string(), b"alice@orders".to_vec())));

    let Verdict::Deny(denied) = answered(&allow, Some(response(429))) else { panic!() };
    assert_eq!(denied.status, 429);
    let reply = denied.reply.as_ref().unwrap();
    assert_eq!((reply.body.as_slice(), reply.headers.len()), (&b"quota exceeded"[..], 1));
    assert_eq!(denied.details, "ext_authz_denied[ns[api]-policy[orders-authz]-rule[0]]");
    let denied_verdict = Verdict::Deny(denied);
    assert_eq!(
        e.summary(&denied_verdict),
        "denied ext_authz_denied ns[api]-policy[orders-authz]-rule[0]"
    );
    let record = with_request("GET", "/api/orders", &[], Some(FRONTEND), Observed::Unknown, |r| {
        e.audit_record(&denied_verdict, r).unwrap()
    });
    let record: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        (&record["reason"], &record["policy"]),
        (&json!("custom_denied"), &json!("api/orders-authz"))
    );

    // Unreachable, timed out or failing: closed, with statusOnError.
    let Verdict::Deny(failed) = answered(&allow, None) else { panic!() };
    assert_eq!((failed.status, failed.details.starts_with("ext_authz_error")), (403, true));
    let Verdict::Deny(failed) = answered(&allow, Some(response(503))) else { panic!() };
    assert!(matches!(failed.cause, Cause::Custom { error: true, .. }));
    // What warden_authorizer_checks_total counts.
    let result = |response: Option<authorizer::Response>| {
        with_request("GET", "/api/orders", &[], Some(FRONTEND), Observed::Unknown, |request| {
            e.answered(allow.clone(), response.as_ref(), request).1
        })
    };
    assert_eq!(
        [result(Some(response(200))), result(Some(response(429))), result(None)],
        ["allowed", "denied", "error"]
    );

    // The claim does not match: the authorizer is not asked.
    let verdict = check(&e, "GET", "/api/orders", &[("authorization", &other)], Some(FRONTEND));
    assert!(matches!(&verdict, Verdict::Allow(a) if a.ask.is_none()), "{verdict:?}");
    // DENY refuses first: nothing to ask.
    let verdict = check(&e, "DELETE", "/api/orders", &[("authorization", &orders)], Some(FRONTEND));
    assert!(matches!(&verdict, Verdict::Deny(d) if matches!(d.cause, Cause::Unauthorized(_))));

    // Without the provider, the same policy is Istio's: identities in CUSTOM rules are refused.
    assert!(enforcer_with(with_custom.clone()).is_err());
    // A provider Warden does not call (gRPC): the CUSTOM rule fails closed.
    let mut plain = with_custom;
    plain[4]["spec"]["rules"][0].as_object_mut().unwrap().remove("when");
    let grpc =
        r#"{"providers": [{"name": "authz", "envoyExtAuthzGrpc": {"service": "a", "port": 1}}]}"#;
    let e = enforcer_with_settings(plain, grpc).unwrap();
    let verdict = check(&e, "GET", "/api/orders", &[("authorization", &orders)], Some(FRONTEND));
    assert!(matches!(&verdict, Verdict::Deny(d) if d.status == 403), "{verdict:?}");
}
