//! Realistic meshes of `AuthorizationPolicy` objects, for the criterion benches and the Envoy
//! load harness.
//!
//! [`generate`] builds, for one workload (`api/api`), a mesh of exactly `rules` rules spread
//! over policies of one to four rules, the way teams write them: service-to-service ALLOW rules
//! on exact principals with methods and path prefixes, namespace rules on exact paths, JWT
//! rules on request principals and on a `groups` claim with path templates, tenant header
//! conditions, host rules, internal ranges; a few DENY policies (one mesh-wide from the root
//! namespace) and an AUDIT policy. Everything is deterministic: the same arguments give the same
//! objects, byte for byte, so native and Envoy runs measure the same configuration.
//!
//! For each mesh it also gives requests that match the first ALLOW rule Envoy evaluates, the
//! last one, and none (each request carries a peer identity, a JWT and a tenant header, so
//! every attribute the rules read is present).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};
use warden::authz::{self, Engine, Mesh, Policy};
use warden::config::{self, ConfigError, Document, Resource, Workload};
use warden::request::{Identity, Observed, OwnedRequest, Peer, Request};

/// The namespace of the workload under test (and of its policies).
pub const NAMESPACE: &str = "api";
/// The issuer of the generated JWTs.
pub const ISSUER: &str = "https://idp.example.com";

/// The default seed of [`generate`].
pub const SEED: u64 = 0x5eed_a07a;

/// A generated mesh: one workload and the policies that apply to it.
#[derive(Debug, Clone)]
pub struct GeneratedMesh {
    /// The workload the policies select (`api`, labels `app: api`).
    pub workload: Workload,
    /// `AuthorizationPolicy` objects, as Kubernetes objects (JSON).
    pub policies: Vec<Value>,
    /// The number of rules across all policies (what was asked for).
    pub rules: usize,
    /// One request matching each generated ALLOW rule, in Envoy's evaluation order.
    allow_requests: Vec<SampleRequest>,
}

/// A request in owned form: what a load generator sends, or what [`SampleRequest::with`] turns
/// into the core's [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// `:method`.
    pub method: String,
    /// `:path`, with its query.
    pub path: String,
    /// `:authority`.
    pub host: String,
    /// Request headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The client certificate's URI SAN (SPIFFE ID), `None` for plaintext.
    pub peer: Option<String>,
    /// The direct peer address.
    pub source_ip: Option<IpAddr>,
    /// The local port.
    pub destination_port: u16,
    /// The verified JWT payload, if the request carries a token.
    pub claims: Option<Map<String, Value>>,
}

impl SampleRequest {
    /// Calls `f` with the request as the core sees it.
    pub fn with<R>(&self, f: impl FnOnce(&Request<'_>, Option<&Identity>) -> R) -> R {
        let owned =
            OwnedRequest {
                method: self.method.clone().into_bytes(),
                path: self.path.clone().into_bytes(),
                authority: self.host.clone().into_bytes(),
                headers: self
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes()))
                    .collect(),
                peer: Observed::from_option(self.peer.as_ref().map(|uri| Peer {
                    uri_sans: vec![uri.clone().into_bytes()],
                    ..Peer::default()
                })),
                source_ip: Observed::from_option(self.source_ip),
                remote_ip: self.source_ip,
                destination_ip: None,
                destination_port: Some(self.destination_port),
                sni: None,
            };
        let identity = self.claims.as_ref().map(|claims| Identity {
            issuer: claims.get("iss").and_then(Value::as_str).unwrap_or_default().to_string(),
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_string),
            claims: claims.clone(),
        });
        owned.with(|request| f(request, identity.as_ref()))
    }
}

/// SplitMix64: a tiny, well-mixed, deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An AuthorizationPolicy object named `name` in `namespace` with this `spec`.
pub fn object(name: &str, namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    })
}

/// A request that matches nothing in particular, to be specialized per rule.
fn base_request(i: usize) -> SampleRequest {
    SampleRequest {
        method: "GET".into(),
        path: "/".into(),
        host: "api.api.svc.cluster.local:8080".into(),
        headers: vec![
            ("x-tenant".into(), format!("tenant-none-{i}")),
            ("user-agent".into(), "bench/1.0".into()),
            ("accept".into(), "application/json".into()),
        ],
        peer: Some(format!("spiffe://cluster.local/ns/ns-{}/sa/caller-{i}", i % 7)),
        source_ip: Some(IpAddr::from([10, 8, 0, 1])),
        destination_port: 8080,
        claims: Some(Map::from_iter([
            ("iss".to_string(), json!(ISSUER)),
            ("sub".to_string(), json!(format!("caller-{i}"))),
            ("groups".to_string(), json!(["everyone"])),
            ("aud".to_string(), json!("api")),
        ])),
    }
}

/// One ALLOW rule of kind `kind` (numbered `i`), and a request it matches.
fn allow_rule(kind: u64, i: usize) -> (Value, SampleRequest) {
    let team = i % 7;
    let mut request = base_request(i);
    let rule = match kind {
        // Service to service: an exact principal, methods, a path prefix.
        0 => {
            request.peer = Some(format!("spiffe://cluster.local/ns/ns-{team}/sa/svc-{i}"));
            request.method = "POST".into();
            request.path = format!("/api/v1/svc-{i}/items?limit=10");
            json!({
                "from": [{ "source": { "principals": [format!("cluster.local/ns/ns-{team}/sa/svc-{i}")] } }],
                "to": [{ "operation": { "methods": ["GET", "POST"], "paths": [format!("/api/v1/svc-{i}/*")] } }],
            })
        }
        // A namespace on an exact path.
        1 => {
            request.method = "PUT".into();
            request.path = format!("/api/v1/orders/{i}");
            json!({
                "from": [{ "source": { "namespaces": [format!("ns-{team}")] } }],
                "to": [{ "operation": { "methods": ["PUT", "PATCH"], "paths": [format!("/api/v1/orders/{i}")] } }],
            })
        }
        // An end user by JWT principal.
        2 => {
            if let Some(claims) = request.claims.as_mut() {
                claims.insert("sub".into(), json!(format!("user-{i}")));
            }
            request.path = format!("/users/{i}/profile");
            json!({
                "from": [{ "source": { "requestPrincipals": [format!("{ISSUER}/user-{i}")] } }],
                "to": [{ "operation": { "paths": [format!("/users/{i}/*")] } }],
            })
        }
        // A JWT group on a path template.
        3 => {
            if let Some(claims) = request.claims.as_mut() {
                claims.insert("groups".into(), json!(["everyone", format!("group-{i}")]));
            }
            request.path = format!("/reports/{i}/2024");
            json!({
                "to": [{ "operation": { "methods": ["GET"], "paths": [format!("/reports/{i}/{{*}}")] } }],
                "when": [{ "key": "request.auth.claims[groups]", "values": [format!("group-{i}")] }],
            })
        }
        // A tenant header.
        4 => {
            request.headers[0].1 = format!("tenant-{i}");
            request.path = format!("/tenants/{i}/invoices");
            json!({
                "to": [{ "operation": { "methods": ["GET"], "paths": [format!("/tenants/{i}/*")] } }],
                "when": [{ "key": "request.headers[x-tenant]", "values": [format!("tenant-{i}")] }],
            })
        }
        // A virtual host.
        5 => {
            request.host = format!("svc-{i}.example.com:8080");
            request.method = "HEAD".into();
            json!({
                "to": [{ "operation": {
                    "hosts": [format!("svc-{i}.example.com"), format!("svc-{i}.example.com:*")],
                    "methods": ["GET", "HEAD"],
                } }],
            })
        }
        // An internal range on an internal path, mTLS required.
        _ => {
            request.source_ip = Some(IpAddr::from([10, (i / 256 % 256) as u8, (i % 256) as u8, 7]));
            request.path = format!("/internal/{i}/metrics");
            json!({
                "from": [{ "source": {
                    "ipBlocks": [format!("10.{}.{}.0/24", i / 256 % 256, i % 256)],
                    "principals": ["*"],
                } }],
                "to": [{ "operation": { "paths": [format!("/internal/{i}/*")] } }],
            })
        }
    };
    (rule, request)
}

/// A mesh of exactly `rules` rules (at least 3) with the default seed.
pub fn generate(rules: usize) -> GeneratedMesh {
    generate_with_seed(rules, SEED)
}

/// A mesh of exactly `rules` rules (at least 3; fewer are rounded up).
pub fn generate_with_seed(rules: usize, seed: u64) -> GeneratedMesh {
    let rules = rules.max(3);
    let mut rng = Rng(seed);
    let mut policies = vec![
        // Mesh-wide: nobody reaches debug endpoints.
        object(
            "deny-debug",
            "istio-system",
            json!({ "action": "DENY", "rules": [{ "to": [{ "operation": { "paths": ["/debug/*"] } }] }] }),
        ),
        // Audit every deletion.
        object(
            "audit-deletes",
            NAMESPACE,
            json!({ "action": "AUDIT", "rules": [{ "to": [{ "operation": { "methods": ["DELETE"] } }] }] }),
        ),
    ];
    let mut count = 2;
    let mut allow_requests = Vec::new();
    let mut index = 0usize;
    while count < rules {
        let in_policy = (1 + rng.below(4) as usize).min(rules - count);
        let name = format!("policy-{index:05}");
        if index % 25 == 24 {
            // Now and then a DENY policy: a compromised workload, an admin path.
            let deny: Vec<Value> = (0..in_policy)
                .map(|k| {
                    if k % 2 == 0 {
                        json!({ "from": [{ "source": { "principals": [format!("cluster.local/ns/untrusted/sa/bad-{index}-{k}")] } }] })
                    } else {
                        json!({ "to": [{ "operation": { "paths": [format!("/api/v1/svc-{index}-{k}/admin*")] } }] })
                    }
                })
                .collect();
            policies.push(object(
                &format!("deny-{index:05}"),
                NAMESPACE,
                json!({ "action": "DENY", "rules": deny }),
            ));
        } else {
            let mut rule_values = Vec::new();
            for k in 0..in_policy {
                let kind = match rng.below(20) {
                    0..=5 => 0,
                    6..=8 => 1,
                    9..=11 => 2,
                    12..=14 => 3,
                    15..=16 => 4,
                    17..=18 => 5,
                    _ => 6,
                };
                let (rule, request) = allow_rule(kind, index * 4 + k);
                rule_values.push(rule);
                allow_requests.push((format!("{name}-{k:02}"), request));
            }
            policies.push(object(&name, NAMESPACE, json!({ "rules": rule_values })));
        }
        count += in_policy;
        index += 1;
    }
    // Envoy's order is the order of the rule names; zero-padded names and rule numbers below
    // ten make it the generation order, kept explicit here.
    allow_requests.sort_by(|a, b| a.0.cmp(&b.0));
    GeneratedMesh {
        workload: Workload {
            namespace: NAMESPACE.into(),
            labels: BTreeMap::from([("app".to_string(), "api".to_string())]),
        },
        policies,
        rules,
        allow_requests: allow_requests.into_iter().map(|(_, r)| r).collect(),
    }
}

/// A mesh at scale: `total` policies over `namespaces` namespaces (`ns0` … ), each selecting
/// one of many workloads by `app` label, of which `applying` select the workload under test
/// (`ns0`, `app: app0`; one of them from the root namespace). What the others select never
/// matches it: their namespace differs, or (in `ns0`) their `app` label does.
pub fn scaled_mesh(total: usize, namespaces: usize, applying: usize) -> (Workload, Vec<Value>) {
    let namespaces = namespaces.max(2);
    let applying = applying.clamp(1, total.max(1));
    let workload = Workload {
        namespace: "ns0".into(),
        labels: BTreeMap::from([("app".to_string(), "app0".to_string())]),
    };
    let mut policies = Vec::with_capacity(total);
    for i in 0..total {
        let (rule, _) = allow_rule((i % 7) as u64, i);
        let (namespace, app) = if i == 0 {
            ("istio-system".to_string(), "app0".to_string())
        } else if i < applying {
            ("ns0".to_string(), "app0".to_string())
        } else {
            let ns = 1 + i % (namespaces - 1);
            // Every twentieth policy elsewhere in ns0, for another workload.
            if i % 20 == 0 {
                ("ns0".to_string(), format!("app{}", 1 + i % 50))
            } else {
                (format!("ns{ns}"), format!("app{}", i % 50))
            }
        };
        let mut policy = object(
            &format!("policy-{i:05}"),
            &namespace,
            json!({ "selector": { "matchLabels": { "app": app } }, "rules": [rule] }),
        );
        if i % 25 == 24 {
            policy["spec"]["action"] = json!("DENY");
        }
        policies.push(policy);
    }
    (workload, policies)
}

impl GeneratedMesh {
    /// Validates every policy (as the plugin would).
    pub fn validate(&self, mesh: &Mesh) -> Result<Vec<Policy>, Vec<ConfigError>> {
        let mut out = Vec::with_capacity(self.policies.len());
        let mut errors = Vec::new();
        for object in &self.policies {
            match config::parse_document(object) {
                Ok(Document::Resource(resource)) => match *resource {
                    Resource::AuthorizationPolicy(policy) => match authz::validate(&policy, mesh) {
                        Ok(policy) => out.push(policy),
                        Err(e) => errors.extend(e),
                    },
                    Resource::RequestAuthentication(_) => {}
                },
                Ok(Document::Other { .. }) => {}
                Err(e) => errors.extend(e.0),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Validates and compiles the mesh for its workload.
    pub fn engine(&self) -> Result<Engine, Vec<ConfigError>> {
        let mesh = Mesh::default();
        Ok(authz::compile(&self.validate(&mesh)?, &self.workload, &mesh))
    }

    /// One request per generated ALLOW rule, each matching its rule, in Envoy's order of the
    /// rules (the Envoy harness picks the ones a client on 127.0.0.1 can send).
    pub fn allow_requests(&self) -> &[SampleRequest] {
        &self.allow_requests
    }

    /// A request that the first ALLOW rule in Envoy's order matches.
    pub fn request_matching_first(&self) -> SampleRequest {
        self.allow_requests.first().cloned().unwrap_or_else(|| base_request(0))
    }

    /// A request that only the last ALLOW rule in Envoy's order matches.
    pub fn request_matching_last(&self) -> SampleRequest {
        self.allow_requests.last().cloned().unwrap_or_else(|| base_request(0))
    }

    /// A request that carries every attribute the rules read but matches no rule.
    pub fn request_matching_none(&self) -> SampleRequest {
        let mut request = base_request(usize::MAX / 2);
        request.path = "/api/v1/unknown/items".into();
        request
    }

    /// The plugin configuration (Envoy's `configuration`, Istio's `WasmPlugin.pluginConfig`)
    /// for this mesh's workload.
    pub fn plugin_config(&self) -> Value {
        json!({ "workload": self.workload, "policies": self.policies })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use warden::authz::Reason;

    #[test]
    fn meshes_are_deterministic_and_exact_in_size() {
        for rules in [3, 10, 100, 1000] {
            let a = generate(rules);
            assert_eq!(a.policies, generate(rules).policies);
            let counted: usize =
                a.policies.iter().map(|p| p["spec"]["rules"].as_array().unwrap().len()).sum();
            assert_eq!(counted, rules);
        }
        assert_ne!(generate_with_seed(100, 1).policies, generate_with_seed(100, 2).policies);
    }

    #[test]
    fn sample_requests_match_first_last_and_none() {
        for rules in [10, 100, 1000] {
            let mesh = generate(rules);
            let engine = mesh.engine().unwrap();
            let first = mesh.request_matching_first().with(|r, id| engine.decide(r, id));
            let last = mesh.request_matching_last().with(|r, id| engine.decide(r, id));
            let none = mesh.request_matching_none().with(|r, id| engine.decide(r, id));
            let Reason::AllowedBy(first) = first.reason else { panic!("{rules}: first {first:?}") };
            let Reason::AllowedBy(last) = last.reason else { panic!("{rules}: last {last:?}") };
            assert_eq!(none.reason, Reason::NoAllowMatched, "{rules}");
            let ids: Vec<String> = [first, last].iter().map(|r| engine.rule_id(*r)).collect();
            assert!(ids[0] < ids[1], "{ids:?}");
        }
    }
}
