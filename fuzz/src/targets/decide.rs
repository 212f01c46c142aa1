//! A generated mesh of policies (values from pools of the shapes that matter, or any string)
//! and any request: the indexed decision equals the exhaustive evaluation of every rule,
//! `explain` agrees, and nothing a request carries panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use serde_json::{json, Map, Value};
use warden::authz::{self, Mesh};
use warden::config::{self, Document, Resource, Workload};
use warden::request::{Identity, Observed, OwnedRequest, Peer};

const SOURCE_FIELDS: &[&str] = &[
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
    "serviceAccounts",
    "notServiceAccounts",
];
const OPERATION_FIELDS: &[&str] =
    &["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"];
const KEYS: &[&str] = &[
    "request.headers[x-role]",
    "request.auth.claims[groups]",
    "request.auth.claims[a][b]",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "source.trustDomain",
    "destination.ip",
    "destination.port",
    "connection.sni",
];
const VALUES: &[&str] = &[
    "*",
    "cluster.local/ns/a/sa/x",
    "cluster.local/ns/b/*",
    "*/sa/y",
    "a",
    "b*",
    "a/x",
    "iss/alice",
    "iss/*",
    "10.0.0.0/8",
    "10.1.0.1",
    "2001:db8::/32",
    "example.com",
    "*.example.com",
    "api.*",
    "example.com:*",
    "GET",
    "P*",
    "/",
    "/api/*",
    "/admin",
    "*.css",
    "/store/{**}/cart",
    "/u/{*}",
    "80",
    "8080",
    "admin",
    "ops*",
    "*,2",
    "1,2",
];

#[derive(Arbitrary, Debug)]
enum Val {
    Pool(u8),
    Raw(String),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Pool(i) => VALUES[usize::from(*i) % VALUES.len()].to_string(),
            Val::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Field {
    name: u8,
    values: Vec<Val>,
}

#[derive(Arbitrary, Debug)]
struct Rule {
    from: Vec<Vec<Field>>,
    to: Vec<Vec<Field>>,
    when: Vec<(u8, bool, Vec<Val>)>,
}

#[derive(Arbitrary, Debug)]
struct PolicyIn {
    action: u8,
    dry_run: bool,
    root: bool,
    selects: bool,
    rules: Vec<Rule>,
}

#[derive(Arbitrary, Debug)]
struct RequestIn {
    method: Vec<u8>,
    path: Vec<u8>,
    authority: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    peer: Option<(Vec<Vec<u8>>, Vec<Vec<u8>>)>,
    peer_unknown: bool,
    source_ip: Option<[u8; 4]>,
    remote_ip: Option<[u16; 8]>,
    port: Option<u16>,
    sni: Option<Vec<u8>>,
    token: Option<(u8, Option<String>, Vec<String>)>,
}

fn fields(pool: &[&str], fields: &[Field]) -> Value {
    let mut map = Map::new();
    for field in fields {
        let name = pool[usize::from(field.name) % pool.len()];
        map.insert(name.into(), json!(field.values.iter().map(Val::text).collect::<Vec<_>>()));
    }
    Value::Object(map)
}

fn policy(i: usize, p: &PolicyIn) -> Value {
    let action = ["ALLOW", "DENY", "AUDIT"][usize::from(p.action) % 3];
    let rules: Vec<Value> = p
        .rules
        .iter()
        .map(|r| {
            let mut rule = Map::new();
            if !r.from.is_empty() {
                let from: Vec<Value> =
                    r.from.iter().map(|f| json!({"source": fields(SOURCE_FIELDS, f)})).collect();
                rule.insert("from".into(), json!(from));
            }
            if !r.to.is_empty() {
                let to: Vec<Value> =
                    r.to.iter()
                        .map(|f| json!({"operation": fields(OPERATION_FIELDS, f)}))
                        .collect();
                rule.insert("to".into(), json!(to));
            }
            if !r.when.is_empty() {
                let when: Vec<Value> = r
                    .when
                    .iter()
                    .map(|(key, not, values)| {
                        let values: Vec<String> = values.iter().map(Val::text).collect();
                        let key = KEYS[usize::from(*key) % KEYS.len()];
                        if *not {
                            json!({"key": key, "notValues": values})
                        } else {
                            json!({"key": key, "values": values})
                        }
                    })
                    .collect();
                rule.insert("when".into(), json!(when));
            }
            Value::Object(rule)
        })
        .collect();
    let mut metadata =
        json!({"name": format!("p{i}"), "namespace": if p.root { "istio-system" } else { "a" }});
    if p.dry_run && action != "AUDIT" {
        metadata["annotations"] = json!({"istio.io/dry-run": "true"});
    }
    let mut spec = json!({"action": action, "rules": rules});
    if p.selects {
        spec["selector"] = json!({"matchLabels": {"app": "backend"}});
    }
    json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": metadata, "spec": spec})
}

pub fn run(data: &[u8]) {
    let Some(input) = super::typed::<(Vec<PolicyIn>, RequestIn)>(data) else { return };
    let (policies_in, r) = input;
    let mesh = Mesh::default();
    let policies: Vec<authz::Policy> = policies_in
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let Ok(Document::Resource(resource)) = config::parse_document(&policy(i, p)) else {
                return None;
            };
            let Resource::AuthorizationPolicy(object) = *resource else { return None };
            authz::validate(&object, &mesh).ok()
        })
        .collect();
    let workload = Workload {
        namespace: "a".into(),
        labels: [("app".to_string(), "backend".to_string())].into_iter().collect(),
    };
    let engine = authz::compile(&policies, &workload, &mesh);

    let request = OwnedRequest {
        method: r.method,
        path: r.path,
        authority: r.authority,
        headers: r.headers,
        peer: match (r.peer, r.peer_unknown) {
            (_, true) => Observed::Unknown,
            (Some((uri_sans, dns_sans)), false) => {
                Observed::Known(Peer { uri_sans, dns_sans, subject: None, sha256: None })
            }
            (None, false) => Observed::Absent,
        },
        source_ip: Observed::from_option(r.source_ip.map(|o| IpAddr::V4(Ipv4Addr::from(o)))),
        remote_ip: r.remote_ip.map(|s| IpAddr::V6(Ipv6Addr::from(s))),
        destination_ip: None,
        destination_port: r.port,
        sni: r.sni,
    };
    let identity = r.token.map(|(issuer, subject, groups)| {
        let issuer = ["iss", "https://other", ""][usize::from(issuer) % 3].to_string();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(issuer));
        if let Some(sub) = &subject {
            claims.insert("sub".into(), json!(sub));
        }
        claims.insert("groups".into(), json!(groups));
        claims.insert("a".into(), json!({"b": groups.first()}));
        Identity { issuer, subject, claims }
    });
    request.with(|request| {
        let decision = engine.decide(request, identity.as_ref());
        assert_eq!(decision, engine.decide_exhaustive(request, identity.as_ref()));
        assert_eq!(engine.explain(request, identity.as_ref()).decision, decision);
    });
}
