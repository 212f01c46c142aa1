#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
// proptest's runner needs processes and clocks: native only.
#![cfg(not(target_arch = "wasm32"))]
//! Properties of the authorization engine over random policies and random requests:
//!
//! - it never panics, whatever the request carries (non-UTF-8, empty, huge);
//! - the indexed decision equals the exhaustive evaluation of every rule;
//! - DENY always wins: a request an enforced DENY rule matches is denied, by that rule;
//! - AUDIT and dry-run policies never change the outcome;
//! - `explain` agrees with `decide`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use warden::authz::{self, Action, Decision, Engine, Mesh, Policy, Reason, RuleRef};
use warden::config::{self, Document, Resource, Workload};
use warden::request::{Connection, Identity, Observed, OwnedRequest, Peer, Request};

const PRINCIPALS: &[&str] =
    &["cluster.local/ns/a/sa/x", "cluster.local/ns/a/sa/y", "cluster.local/ns/b/*", "*/sa/y", "*"];
const NAMESPACES: &[&str] = &["a", "b", "c*", "*"];
const SERVICE_ACCOUNTS: &[&str] = &["a/x", "y", "b/z"];
const REQUEST_PRINCIPALS: &[&str] = &["iss1/alice", "iss1/*", "*/bob", "*", "iss2/alice", "iss*"];
const IP_BLOCKS: &[&str] = &["10.0.0.0/8", "10.1.0.1", "192.168.0.0/16", "2001:db8::/32"];
const HOSTS: &[&str] =
    &["example.com", "*.example.com", "api.*", "*", "example.com:*", "Example.COM"];
const METHODS: &[&str] = &["GET", "POST", "P*", "*", "DELETE"];
const PATHS: &[&str] = &[
    "/",
    "/api/*",
    "/api/v1/users",
    "*.css",
    "/admin",
    "/store/{**}/cart",
    "/u/{*}",
    "/u/{*}/x/{**}",
    "*",
    "/a*b",
];
const PORTS: &[&str] = &["80", "8080", "9090"];
const HEADER_VALUES: &[&str] = &["1", "2", "*", "1*", "*,2", "1,2"];
const CLAIM_VALUES: &[&str] = &["admin", "dev", "*", "ad*"];
const SNI_VALUES: &[&str] = &["*.example.com", "sni.local", "*"];

fn values(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(select(pool), 1..=3)
}

fn field(
    name: &'static str,
    not_name: &'static str,
    pool: &'static [&'static str],
) -> impl Strategy<Value = (&'static str, Vec<&'static str>)> {
    (any::<bool>(), values(pool))
        .prop_map(move |(not, values)| (if not { not_name } else { name }, values))
}

fn source() -> impl Strategy<Value = Value> {
    let fields = prop_oneof![
        field("principals", "notPrincipals", PRINCIPALS),
        field("namespaces", "notNamespaces", NAMESPACES),
        field("serviceAccounts", "notServiceAccounts", SERVICE_ACCOUNTS),
        field("requestPrincipals", "notRequestPrincipals", REQUEST_PRINCIPALS),
        field("ipBlocks", "notIpBlocks", IP_BLOCKS),
        field("remoteIpBlocks", "notRemoteIpBlocks", IP_BLOCKS),
    ];
    prop::collection::vec(fields, 1..=3).prop_map(|fields| {
        let mut map = Map::new();
        for (name, values) in fields {
            map.insert(name.to_string(), json!(values));
        }
        // Istio refuses serviceAccounts next to principals or namespaces.
        let identity = ["principals", "notPrincipals", "namespaces", "notNamespaces"];
        if identity.iter().any(|k| map.contains_key(*k)) {
            map.remove("serviceAccounts");
            map.remove("notServiceAccounts");
        }
        if map.is_empty() {
            map.insert("principals".into(), json!(["*"]));
        }
        json!({ "source": map })
    })
}

fn operation() -> impl Strategy<Value = Value> {
    let fields = prop_oneof![
        field("hosts", "notHosts", HOSTS),
        field("methods", "notMethods", METHODS),
        field("paths", "notPaths", PATHS),
        field("ports", "notPorts", PORTS),
    ];
    prop::collection::vec(fields, 1..=3).prop_map(|fields| {
        let map: Map<String, Value> =
            fields.into_iter().map(|(n, v)| (n.to_string(), json!(v))).collect();
        json!({ "operation": map })
    })
}

fn condition() -> impl Strategy<Value = Value> {
    let key_values = prop_oneof![
        Just(("request.headers[x-a]", HEADER_VALUES)),
        Just(("request.auth.claims[groups]", CLAIM_VALUES)),
        Just(("request.auth.claims[org][team]", CLAIM_VALUES)),
        Just(("request.auth.audiences", CLAIM_VALUES)),
        Just(("request.auth.principal", REQUEST_PRINCIPALS)),
        Just(("source.ip", IP_BLOCKS)),
        Just(("destination.port", PORTS)),
        Just(("connection.sni", SNI_VALUES)),
        Just(("source.namespace", NAMESPACES)),
        Just(("source.principal", PRINCIPALS)),
    ];
    (key_values, any::<u8>()).prop_flat_map(|((key, pool), shape)| {
        (values(pool), values(pool)).prop_map(move |(values, not_values)| match shape % 3 {
            0 => json!({ "key": key, "values": values }),
            1 => json!({ "key": key, "notValues": not_values }),
            _ => json!({ "key": key, "values": values, "notValues": not_values }),
        })
    })
}

fn rule() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.6, prop::collection::vec(source(), 1..=2)),
        prop::option::weighted(0.7, prop::collection::vec(operation(), 1..=2)),
        prop::option::weighted(0.3, prop::collection::vec(condition(), 1..=2)),
    )
        .prop_map(|(from, to, when)| {
            let mut rule = Map::new();
            if let Some(from) = from {
                rule.insert("from".into(), json!(from));
            }
            if let Some(to) = to {
                rule.insert("to".into(), json!(to));
            }
            if let Some(when) = when {
                rule.insert("when".into(), json!(when));
            }
            Value::Object(rule)
        })
}

fn policy() -> impl Strategy<Value = Value> {
    (
        select(&["ALLOW", "DENY", "AUDIT"][..]),
        any::<bool>(),
        select(&["foo", "istio-system"][..]),
        prop::collection::vec(rule(), 0..=6),
    )
        .prop_map(|(action, dry_run, namespace, mut rules)| {
            if action == "DENY" && rules.is_empty() {
                rules.push(json!({}));
            }
            let mut metadata = json!({ "name": "p", "namespace": namespace });
            if dry_run && action != "AUDIT" {
                metadata["annotations"] = json!({ "istio.io/dry-run": "true" });
            }
            json!({
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": metadata,
                "spec": { "action": action, "rules": rules },
            })
        })
}

fn policies() -> impl Strategy<Value = Vec<Policy>> {
    prop::collection::vec(policy(), 0..=8).prop_map(|objects| {
        objects
            .into_iter()
            .enumerate()
            .map(|(i, mut object)| {
                object["metadata"]["name"] = json!(format!("policy-{i}"));
                let Ok(Document::Resource(resource)) = config::parse_document(&object) else {
                    panic!("generated policy does not parse: {object}");
                };
                let Resource::AuthorizationPolicy(policy) = *resource else { unreachable!() };
                authz::validate(&policy, &Mesh::default())
                    .unwrap_or_else(|e| panic!("generated policy is invalid: {e:?}\n{object}"))
            })
            .collect()
    })
}

/// A request (built as the module builds it, `OwnedRequest`) and the claims of its token.
#[derive(Debug, Clone)]
struct Owned {
    request: OwnedRequest,
    token: Option<Map<String, Value>>,
}

impl Owned {
    fn with<R>(&self, f: impl FnOnce(&Request<'_>, Option<&Identity>) -> R) -> R {
        let identity = self.token.as_ref().map(|claims| Identity {
            issuer: claims.get("iss").and_then(Value::as_str).unwrap_or_default().to_string(),
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_string),
            claims: claims.clone(),
        });
        self.request.with(|request| f(request, identity.as_ref()))
    }
}

fn bytes(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    select(pool).prop_map(|s| s.as_bytes().to_vec())
}

fn request() -> impl Strategy<Value = Owned> {
    let headers = prop::collection::vec(
        (bytes(&["x-a", "x-b", "X-A"]), bytes(&["1", "2", "", "1,2", "12"])),
        0..=3,
    );
    let san = bytes(&[
        "spiffe://cluster.local/ns/a/sa/x",
        "spiffe://cluster.local/ns/a/sa/y",
        "spiffe://cluster.local/ns/b/sa/z",
        "spiffe://other/ns/c-1/sa/y",
        "spiffe://cluster.local/ns/a/k/v/sa/x/extra",
        "",
    ]);
    let peer = prop_oneof![
        4 => (
            prop::collection::vec(san, 0..=2),
            prop::collection::vec(bytes(&["api.example.com", "x/ns/b/y"]), 0..=1),
            prop::option::of(bytes(&["CN=a", ""])),
        )
            .prop_map(|(uri_sans, dns_sans, subject)| Observed::Known(Peer {
                uri_sans,
                dns_sans,
                subject,
                sha256: None,
            })),
        2 => Just(Observed::Absent),
        1 => Just(Observed::Unknown),
    ];
    let ip = prop::option::of(select(
        &["10.1.0.1", "10.9.9.9", "192.168.3.4", "8.8.8.8", "2001:db8::1"][..],
    ))
    .prop_map(|ip| ip.map(|ip| ip.parse::<IpAddr>().unwrap()));
    let direct_peer = prop_oneof![
        4 => ip.clone().prop_map(Observed::from_option),
        1 => Just(Observed::Unknown),
    ];
    let claims = (
        select(&["iss1", "iss2", "issX"][..]),
        prop::option::of(select(&["alice", "bob", ""][..])),
        prop::option::of(prop_oneof![
            Just(json!("admin")),
            Just(json!(["dev", "admin"])),
            Just(json!(["x"])),
            Just(json!(true)),
            Just(json!(3)),
            Just(json!("")),
        ]),
        prop::option::of(select(&["admin", "dev"][..])),
    )
        .prop_map(|(iss, sub, groups, team)| {
            let mut claims = Map::new();
            claims.insert("iss".into(), json!(iss));
            if let Some(sub) = sub {
                claims.insert("sub".into(), json!(sub));
            }
            if let Some(groups) = groups {
                claims.insert("groups".into(), groups.clone());
                claims.insert("aud".into(), groups);
            }
            if let Some(team) = team {
                claims.insert("org".into(), json!({ "team": team }));
            }
            claims
        });
    let token = prop::option::of(claims);
    (
        (
            bytes(&["GET", "POST", "PUT", "get", "DELETE"]),
            bytes(&[
                "/",
                "/api/v1/users",
                "/api/x?y=1",
                "/admin",
                "/admin#frag",
                "/a.css",
                "/store/x/cart",
                "/store//cart",
                "/u/7",
                "/u/7/x/",
                "/a*b",
                "",
            ]),
            bytes(&["example.com", "EXAMPLE.com:8080", "api.example.com", "other", ""]),
            headers,
        ),
        (peer, direct_peer, ip, prop::option::of(select(&[80u16, 8080, 9090][..]))),
        (prop::option::of(bytes(&["a.example.com", "sni.local"])), token),
    )
        .prop_map(
            |(
                (method, path, host, headers),
                (peer, source_ip, remote_ip, destination_port),
                (sni, token),
            )| Owned {
                request: OwnedRequest {
                    method,
                    path,
                    authority: host,
                    headers,
                    peer,
                    source_ip,
                    remote_ip,
                    destination_ip: None,
                    destination_port,
                    sni,
                },
                token,
            },
        )
}

fn workload() -> Workload {
    Workload { namespace: "foo".into(), labels: BTreeMap::new() }
}

fn rule_id(engine: &Engine, decision: &Decision) -> Option<String> {
    decision.rule().map(|rule| engine.rule_id(rule))
}

/// 512 cases per property in the suite; `PROPTEST_CASES=50000` searches deeper.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn indexed_decision_equals_exhaustive(policies in policies(), request in request()) {
        let engine = authz::compile(&policies, &workload(), &Mesh::default());
        request.with(|request, identity| {
            let decision = engine.decide(request, identity);
            let exhaustive = engine.decide_exhaustive(request, identity);
            prop_assert_eq!(decision, exhaustive);
            prop_assert_eq!(engine.explain(request, identity).decision, decision);
            Ok(())
        })?;
    }

    #[test]
    fn deny_always_wins(policies in policies(), request in request()) {
        let engine = authz::compile(&policies, &workload(), &Mesh::default());
        let denies: Vec<Policy> = policies
            .iter()
            .filter(|p| p.action() == Action::Deny && !p.dry_run())
            .cloned()
            .collect();
        let deny_engine = authz::compile(&denies, &workload(), &Mesh::default());
        request.with(|request, identity| {
            let decision = engine.decide(request, identity);
            let deny_only = deny_engine.decide(request, identity);
            if let Reason::DeniedBy(_) = deny_only.reason {
                prop_assert!(!decision.allowed);
                prop_assert!(matches!(decision.reason, Reason::DeniedBy(_)));
                prop_assert_eq!(rule_id(&engine, &decision), rule_id(&deny_engine, &deny_only));
            } else {
                prop_assert!(!matches!(decision.reason, Reason::DeniedBy(_)));
            }
            Ok(())
        })?;
    }

    #[test]
    fn audit_and_dry_run_never_change_the_outcome(policies in policies(), request in request()) {
        let engine = authz::compile(&policies, &workload(), &Mesh::default());
        let enforced: Vec<Policy> = policies
            .iter()
            .filter(|p| p.action() != Action::Audit && !p.dry_run())
            .cloned()
            .collect();
        let enforced_engine = authz::compile(&enforced, &workload(), &Mesh::default());
        request.with(|request, identity| {
            let decision = engine.decide(request, identity);
            let enforced_only = enforced_engine.decide(request, identity);
            prop_assert_eq!(decision.allowed, enforced_only.allowed);
            prop_assert_eq!(rule_id(&engine, &decision), rule_id(&enforced_engine, &enforced_only));
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_bytes_get_a_decision(
        policies in policies(),
        method in prop::collection::vec(any::<u8>(), 0..16),
        path in prop::collection::vec(any::<u8>(), 0..64),
        host in prop::collection::vec(any::<u8>(), 0..300),
        header_name in prop::collection::vec(any::<u8>(), 0..8),
        header_value in prop::collection::vec(any::<u8>(), 0..64),
        san in prop::collection::vec(any::<u8>(), 0..80),
        claim in ".{0,20}",
    ) {
        let engine = authz::compile(&policies, &workload(), &Mesh::default());
        let mut prefixed_san = b"spiffe://cluster.local/ns/".to_vec();
        prefixed_san.extend_from_slice(&san);
        let owned = Owned {
            request: OwnedRequest {
            method,
            path,
            authority: host,
            headers: vec![(header_name, header_value.clone()), (b"x-a".to_vec(), header_value)],
            peer: Observed::Known(Peer {
                uri_sans: vec![san, prefixed_san],
                dns_sans: vec![],
                subject: None,
                sha256: None,
            }),
            source_ip: Observed::Absent,
            remote_ip: None,
            destination_port: Some(8080),
            destination_ip: None,
            sni: None,
            },
            token: Some(Map::from_iter([
                ("iss".to_string(), json!(claim.clone())),
                ("sub".to_string(), json!(claim.clone())),
                ("groups".to_string(), json!([claim])),
            ])),
        };
        owned.with(|request, identity| {
            let decision = engine.decide(request, identity);
            prop_assert_eq!(decision, engine.decide_exhaustive(request, identity));
            Ok(())
        })?;
    }
}

#[test]
fn huge_attributes_get_a_decision() {
    let object = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": { "name": "p", "namespace": "foo" },
        "spec": { "rules": [
            { "to": [{ "operation": { "hosts": ["example.com"], "paths": ["/a/{**}/b"] } }] },
            { "when": [{ "key": "request.headers[x-a]", "values": ["1"] }] },
            { "from": [{ "source": { "namespaces": ["a"] } }] },
        ] },
    });
    let Ok(Document::Resource(resource)) = config::parse_document(&object) else { panic!() };
    let Resource::AuthorizationPolicy(policy) = *resource else { panic!() };
    let policy = authz::validate(&policy, &Mesh::default()).unwrap();
    let engine = authz::compile(&[policy], &workload(), &Mesh::default());
    let huge = vec![b'a'; 1 << 20];
    let mut huge_path = b"/a/".to_vec();
    huge_path.extend(std::iter::repeat_n(b'x', 1 << 20));
    huge_path.extend_from_slice(b"/b");
    let headers: Vec<(&[u8], &[u8])> =
        (0..1000).map(|_| (b"x-a".as_slice(), b"1".as_slice())).collect();
    let san: Vec<u8> =
        std::iter::repeat_n(b"/ns/a".as_slice(), 100_000).flatten().copied().collect();
    let peer =
        Peer { uri_sans: vec![san], dns_sans: vec![], subject: Some(huge.clone()), sha256: None };
    let request = Request {
        method: &huge,
        path: &huge_path,
        host: &huge,
        headers: &headers,
        connection: Connection { peer: Observed::Known(&peer), ..Connection::default() },
    };
    let decision = engine.decide(&request, None);
    assert_eq!(decision, engine.decide_exhaustive(&request, None));
    // Each of the 1,000 `x-a` values is tried on its own, and "1" matches (rule 1).
    assert_eq!(decision.reason, Reason::AllowedBy(RuleRef { policy: 0, rule: 1 }));
    let long_path = Request { path: &huge_path, host: b"example.com", ..Request::default() };
    let decision = engine.decide(&long_path, None);
    assert_eq!(decision.reason, Reason::AllowedBy(RuleRef { policy: 0, rule: 0 }));
    let plaintext = Request { path: &huge, host: &huge, method: &huge, ..Request::default() };
    assert_eq!(engine.decide(&plaintext, None).reason, Reason::NoAllowMatched);
}

/// Counts the allocations of the current thread, to check that `decide` makes none.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn count() {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    pub fn allocations() -> usize {
        ALLOCATIONS.with(Cell::get)
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

#[test]
fn decide_does_not_allocate() {
    let object = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": { "name": "p", "namespace": "foo" },
        "spec": { "rules": [
            { "from": [{ "source": { "principals": ["cluster.local/ns/a/sa/x"], "namespaces": ["b"] } }] },
            { "from": [{ "source": { "requestPrincipals": ["iss/alice", "iss/*"], "serviceAccounts": ["a/y"] } }] },
            { "to": [{ "operation": { "hosts": ["example.com", "api.*", "*.example.org"], "ports": ["8080"] } }] },
            { "to": [{ "operation": { "paths": ["/exact", "/prefix/*", "/t/{*}/x/{**}", "*.css"], "methods": ["GET"] } }] },
            { "when": [
                { "key": "request.headers[x-tenant]", "values": ["t1"] },
                { "key": "request.auth.claims[groups]", "values": ["admin"] },
                { "key": "request.auth.claims[org][team]", "notValues": ["x"] },
                { "key": "source.ip", "values": ["10.0.0.0/8"] },
                { "key": "connection.sni", "values": ["*.local"] },
            ] },
            { "from": [{ "source": { "notPrincipals": ["*"], "remoteIpBlocks": ["192.0.2.0/24"] } }] },
        ] },
    });
    let Ok(Document::Resource(resource)) = config::parse_document(&object) else { panic!() };
    let Resource::AuthorizationPolicy(policy) = *resource else { panic!() };
    let mut policies = vec![authz::validate(&policy, &Mesh::default()).unwrap()];
    let mut deny = object.clone();
    deny["metadata"]["name"] = json!("d");
    deny["spec"]["action"] = json!("DENY");
    let Ok(Document::Resource(resource)) = config::parse_document(&deny) else { panic!() };
    let Resource::AuthorizationPolicy(deny) = *resource else { panic!() };
    policies.push(authz::validate(&deny, &Mesh::default()).unwrap());
    let engine = authz::compile(&policies, &workload(), &Mesh::default());

    let claims = Map::from_iter([
        ("iss".to_string(), json!("iss")),
        ("sub".to_string(), json!("bob")),
        ("groups".to_string(), json!(["dev", "admin"])),
        ("org".to_string(), json!({ "team": "y" })),
    ]);
    let identity = Identity { issuer: "iss".into(), subject: Some("bob".into()), claims };
    let headers: [(&[u8], &[u8]); 2] = [(b"x-tenant", b"t1"), (b"accept", b"*/*")];
    let peer = Peer {
        uri_sans: vec![
            b"spiffe://cluster.local/ns/b/sa/z".to_vec(),
            b"spiffe://cluster.local/ns/c/sa/x".to_vec(),
        ],
        dns_sans: vec![],
        subject: Some(b"CN=z".to_vec()),
        sha256: None,
    };
    let requests = [
        Request {
            method: b"GET",
            path: b"/t/1/x/y?q=1#f",
            host: b"API.example.com:8080",
            headers: &headers,
            connection: Connection {
                peer: Observed::Known(&peer),
                source_ip: Observed::Known("10.1.2.3".parse().unwrap()),
                remote_ip: Some("192.0.2.4".parse().unwrap()),
                destination_ip: None,
                destination_port: Some(8080),
                sni: Some(b"a.local"),
            },
        },
        Request { method: b"POST", path: b"/nothing", host: b"other", ..Request::default() },
    ];
    for request in &requests {
        for identity in [Some(&identity), None] {
            let before = counting::allocations();
            let decision = engine.decide(request, identity);
            let after = counting::allocations();
            assert_eq!(after - before, 0, "decide allocated for {request:?}: {decision:?}");
        }
    }
}
