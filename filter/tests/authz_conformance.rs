#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Conformance of the authorization engine with Istio's `AuthorizationPolicy` semantics.
//!
//! The cases are tables in `tests/authz/*.yaml` (compiled in with `include_str!`, so the same
//! tests run on wasm32 without a file system). Each group of cases shares policies and cites
//! where the expected behaviour comes from: an istio.io page, an `istio/api` proto field, an
//! Istio source file or integration test (istio/istio, read at 86c9f01fd73), an Envoy source
//! file (Envoy 1.40), or, for a deliberate difference, `docs/compatibility.md`.
//!
//! Every decision is also checked against the engine's exhaustive (unindexed) evaluation and
//! against `explain`, so the tables exercise the index too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value};
use warden::authz::{self, Decision, DryRunAllow, Engine, Mesh, Reason, RuleRef};
use warden::config::{self, ConfigError, Document, Resource, Workload};
use warden::request::{Connection, Identity, Observed, Peer, Request};
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const DECISION_TABLES: &[(&str, &str)] = &[
    ("combination.yaml", include_str!("authz/combination.yaml")),
    ("source.yaml", include_str!("authz/source.yaml")),
    ("jwt.yaml", include_str!("authz/jwt.yaml")),
    ("operation.yaml", include_str!("authz/operation.yaml")),
    ("conditions.yaml", include_str!("authz/conditions.yaml")),
    ("fail_closed.yaml", include_str!("authz/fail_closed.yaml")),
];

const ERROR_TABLE: &str = include_str!("authz/errors.yaml");

/// Policies shared by several cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Group {
    /// Where the behaviour comes from (cases may add their own).
    source: String,
    #[serde(default)]
    mesh: Option<MeshSpec>,
    #[serde(default)]
    workload: Option<Workload>,
    /// `AuthorizationPolicy` objects; `apiVersion` and `kind` may be omitted.
    #[serde(default)]
    policies: Vec<Value>,
    cases: Vec<Case>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MeshSpec {
    #[serde(default)]
    root_namespace: Option<String>,
    #[serde(default)]
    trust_domain: Option<String>,
    #[serde(default)]
    trust_domain_aliases: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    workload: Option<Workload>,
    #[serde(default)]
    request: RequestSpec,
    /// The verified JWT payload (`iss`, `sub` and the other claims), if the request has one.
    #[serde(default)]
    token: Option<Map<String, Value>>,
    expect: Expect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RequestSpec {
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    peer: Option<PeerSpec>,
    /// An address, or `unknown` (the network filter did not hand it over). Absent if omitted.
    source_ip: Option<String>,
    remote_ip: Option<IpAddr>,
    destination_ip: Option<IpAddr>,
    destination_port: Option<u16>,
    sni: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PeerSpec {
    /// One URI SAN, or `unknown` (a certificate Warden could not read).
    Uri(String),
    Full {
        #[serde(default, rename = "uriSans")]
        uri_sans: Vec<String>,
        #[serde(default, rename = "dnsSans")]
        dns_sans: Vec<String>,
        #[serde(default)]
        subject: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    allowed: bool,
    /// The rule that decided (`ns[..]-policy[..]-rule[..]`), `none` (no ALLOW matched) or
    /// `default` (no ALLOW policy applies).
    #[serde(default)]
    by: Option<String>,
    /// The AUDIT rule reported; `~` for none. Unchecked when absent.
    #[serde(default, deserialize_with = "some")]
    audit: Option<Option<String>>,
    #[serde(default, deserialize_with = "some")]
    dry_run_deny: Option<Option<String>>,
    /// `notConfigured`, `none`, or the rule.
    #[serde(default)]
    dry_run_allow: Option<String>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn mesh(spec: Option<&MeshSpec>) -> Mesh {
    let mut mesh = Mesh::default();
    if let Some(spec) = spec {
        if let Some(root) = &spec.root_namespace {
            mesh.root_namespace = root.clone();
        }
        if let Some(td) = &spec.trust_domain {
            mesh.trust_domain = td.clone();
        }
        mesh.trust_domain_aliases = spec.trust_domain_aliases.clone();
    }
    mesh
}

fn default_workload() -> Workload {
    Workload {
        namespace: "foo".into(),
        labels: BTreeMap::from([("app".to_string(), "httpbin".to_string())]),
    }
}

/// Parses a policy object as the plugin configuration would.
fn parse(
    mut object: Value,
) -> Result<config::Object<config::AuthorizationPolicySpec>, Vec<ConfigError>> {
    if let Some(map) = object.as_object_mut() {
        map.entry("apiVersion").or_insert_with(|| "security.istio.io/v1".into());
        map.entry("kind").or_insert_with(|| "AuthorizationPolicy".into());
    }
    match config::parse_document(&object) {
        Ok(Document::Resource(resource)) => match *resource {
            Resource::AuthorizationPolicy(policy) => Ok(policy),
            other => panic!("not an AuthorizationPolicy: {other:?}"),
        },
        Ok(Document::Other { kind, .. }) => panic!("not an AuthorizationPolicy: {kind}"),
        Err(errors) => Err(errors.0),
    }
}

fn compile_policies(objects: &[Value], mesh: &Mesh) -> Result<Vec<authz::Policy>, String> {
    let mut policies = Vec::new();
    for object in objects {
        let parsed = parse(object.clone()).map_err(|e| format!("{e:?}"))?;
        policies.push(authz::validate(&parsed, mesh).map_err(|e| format!("{e:?}"))?);
    }
    Ok(policies)
}

fn identity(token: &Map<String, Value>) -> Identity {
    Identity {
        issuer: token.get("iss").and_then(Value::as_str).unwrap_or_default().to_string(),
        subject: token.get("sub").and_then(Value::as_str).map(str::to_string),
        claims: token.clone(),
    }
}

fn reported(engine: &Engine, rule: Option<RuleRef>) -> Option<String> {
    rule.map(|rule| engine.rule_id(rule))
}

fn check(engine: &Engine, decision: &Decision, expect: &Expect) -> Vec<String> {
    let mut problems = Vec::new();
    if decision.allowed != expect.allowed {
        problems.push(format!("allowed: got {}, want {}", decision.allowed, expect.allowed));
    }
    if let Some(by) = &expect.by {
        let got = match decision.reason {
            Reason::NoPolicies => "default".to_string(),
            Reason::NoAllowMatched => "none".to_string(),
            Reason::AllowedBy(rule) | Reason::DeniedBy(rule) => engine.rule_id(rule),
        };
        if &got != by {
            problems.push(format!("by: got {got}, want {by}"));
        }
    }
    if let Some(audit) = &expect.audit {
        let got = reported(engine, decision.audit);
        if &got != audit {
            problems.push(format!("audit: got {got:?}, want {audit:?}"));
        }
    }
    if let Some(dry) = &expect.dry_run_deny {
        let got = reported(engine, decision.dry_run_deny);
        if &got != dry {
            problems.push(format!("dryRunDeny: got {got:?}, want {dry:?}"));
        }
    }
    if let Some(dry) = &expect.dry_run_allow {
        let got = match decision.dry_run_allow {
            DryRunAllow::NotConfigured => "notConfigured".to_string(),
            DryRunAllow::NoneMatched => "none".to_string(),
            DryRunAllow::Matched(rule) => engine.rule_id(rule),
        };
        if &got != dry {
            problems.push(format!("dryRunAllow: got {got}, want {dry}"));
        }
    }
    problems
}

fn run_case(group: &Group, case: &Case, mesh: &Mesh, policies: &[authz::Policy]) -> Vec<String> {
    let workload =
        case.workload.clone().or_else(|| group.workload.clone()).unwrap_or_else(default_workload);
    let engine = authz::compile(policies, &workload, mesh);

    let spec = &case.request;
    // The header map as Envoy hands it over: pseudo-headers first.
    let pseudo = [
        (":method", spec.method.as_deref().unwrap_or("GET")),
        (":path", spec.path.as_deref().unwrap_or("/")),
        (":authority", spec.host.as_deref().unwrap_or("httpbin.foo")),
    ];
    let headers: Vec<(Vec<u8>, Vec<u8>)> = pseudo
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .chain(
            spec.headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase().into_bytes(), v.clone().into_bytes())),
        )
        .collect();
    let header_refs: Vec<(&[u8], &[u8])> =
        headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
    let peer = match &spec.peer {
        None => None,
        Some(PeerSpec::Uri(uri)) if uri == "unknown" => None,
        Some(PeerSpec::Uri(uri)) => {
            Some(Peer { uri_sans: vec![uri.clone().into_bytes()], ..Peer::default() })
        }
        Some(PeerSpec::Full { uri_sans, dns_sans, subject }) => Some(Peer {
            uri_sans: uri_sans.iter().map(|s| s.clone().into_bytes()).collect(),
            dns_sans: dns_sans.iter().map(|s| s.clone().into_bytes()).collect(),
            subject: subject.clone().map(String::into_bytes),
            sha256: None,
        }),
    };
    let peer = match (&spec.peer, &peer) {
        (Some(PeerSpec::Uri(uri)), _) if uri == "unknown" => Observed::Unknown,
        (_, Some(peer)) => Observed::Known(peer),
        (_, None) => Observed::Absent,
    };
    let source_ip = match spec.source_ip.as_deref() {
        None => Observed::Absent,
        Some("unknown") => Observed::Unknown,
        Some(ip) => match ip.parse::<IpAddr>() {
            Ok(ip) => Observed::Known(ip),
            Err(_) => return vec![format!("bad sourceIp {ip:?}")],
        },
    };
    let connection = Connection {
        peer,
        source_ip,
        remote_ip: spec.remote_ip,
        destination_ip: spec.destination_ip,
        destination_port: spec.destination_port,
        sni: spec.sni.as_deref().map(str::as_bytes),
    };
    let request = Request::from_header_map(&header_refs, connection);
    let identity = case.token.as_ref().map(identity);

    let decision = engine.decide(&request, identity.as_ref());
    let mut problems = check(&engine, &decision, &case.expect);
    let exhaustive = engine.decide_exhaustive(&request, identity.as_ref());
    if exhaustive != decision {
        problems.push(format!(
            "index disagrees with exhaustive evaluation: {decision:?} vs {exhaustive:?}"
        ));
    }
    let explanation = engine.explain(&request, identity.as_ref());
    if explanation.decision != decision {
        problems.push("explain disagrees with decide".to_string());
    }
    let reported_rules: Vec<&str> = explanation
        .policies
        .iter()
        .flat_map(|p| p.rules.iter())
        .filter(|r| r.reported)
        .map(|r| r.id.as_str())
        .collect();
    if let Some(rule) = decision.rule() {
        if !reported_rules.contains(&engine.rule_id(rule).as_str()) {
            problems.push("explain does not flag the deciding rule".to_string());
        }
    }
    problems
}

#[test]
fn decision_tables() {
    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    let mut count = 0usize;
    for (file, text) in DECISION_TABLES {
        let groups: Vec<Group> =
            serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for group in &groups {
            assert!(!group.source.is_empty(), "{file}: a group without source");
            let mesh = mesh(group.mesh.as_ref());
            let policies = match compile_policies(&group.policies, &mesh) {
                Ok(policies) => policies,
                Err(error) => {
                    failures.push(format!(
                        "{file}: group of {:?}: invalid policies: {error}",
                        group.cases.first().map(|c| &c.name)
                    ));
                    continue;
                }
            };
            for case in &group.cases {
                count += 1;
                assert!(
                    names.insert(case.name.clone()),
                    "{file}: duplicate case name {}",
                    case.name
                );
                let problems = run_case(group, case, &mesh, &policies);
                if !problems.is_empty() {
                    let source = case.source.as_deref().unwrap_or(&group.source);
                    failures.push(format!(
                        "{file}: {} ({source}): {}",
                        case.name,
                        problems.join("; ")
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 150, "only {count} decision cases");
}

/// A policy that must be refused, and the errors it must produce.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ErrorCase {
    name: String,
    source: String,
    #[serde(default)]
    mesh: Option<MeshSpec>,
    object: Value,
    errors: Vec<ExpectedError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    field: String,
    /// A fragment of the message.
    message: String,
}

#[test]
fn error_table() {
    let cases: Vec<ErrorCase> = serde_yaml_ng::from_str(ERROR_TABLE).unwrap();
    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    for case in &cases {
        assert!(names.insert(case.name.clone()), "duplicate case name {}", case.name);
        assert!(!case.source.is_empty());
        let name = case.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let errors = match parse(case.object.clone()) {
            Err(errors) => errors,
            Ok(object) => match authz::validate(&object, &mesh(case.mesh.as_ref())) {
                Ok(_) => {
                    failures.push(format!("{}: accepted", case.name));
                    continue;
                }
                Err(errors) => errors,
            },
        };
        let mut problems = Vec::new();
        for error in &errors {
            if error.object.as_ref().map(|o| o.name.as_str()) != Some(name.as_str()) {
                problems.push(format!("error does not name the policy: {error}"));
            }
        }
        for expected in &case.errors {
            let found = errors.iter().any(|e| {
                e.field == expected.field && e.problem.to_string().contains(&expected.message)
            });
            if !found {
                problems.push(format!(
                    "missing error at {} containing {:?}",
                    expected.field, expected.message
                ));
            }
        }
        if errors.len() != case.errors.len() {
            problems.push(format!("expected {} errors, got {}", case.errors.len(), errors.len()));
        }
        if !problems.is_empty() {
            let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{}: {} (got: {})",
                case.name,
                problems.join("; "),
                got.join(" | ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
