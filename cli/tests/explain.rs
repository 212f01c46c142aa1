//! `warden explain`: every decision is cross-checked against the core's `Enforcer::check` on
//! the same request and configuration (built here independently of the command), so the
//! command's answer is the module's; then the explanation itself, tokens with and without
//! keys, claims, and the JSON shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{fixtures, warden};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Deserialize as _;
use serde_json::{json, Value};
use warden::authn::{KeyProvider, KeySet, Keys, PureRust, SourceId, TokenCache};
use warden::config::{PluginConfig, Workload};
use warden::enforcer::{Enforcer, Verdict};
use warden::request::{Observed, OwnedRequest, Peer};

/// A key, its JWKS file, and tokens minted with it (once for the whole file: keygen is slow).
struct Issuer {
    dir: PathBuf,
    jwks: PathBuf,
    set: KeySet,
}

fn keys() -> &'static Issuer {
    static KEYS: OnceLock<Issuer> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("warden-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        let (code, _, stderr) =
            warden(&["token", "keygen", "--alg", "ES256", "--out", key.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        let (code, jwks, _) = warden(&["token", "jwks", "--key", key.to_str().unwrap()]);
        assert_eq!(code, 0);
        let path = dir.join("jwks.json");
        std::fs::write(&path, &jwks).unwrap();
        let set = warden::authn::parse_fetched_jwks(jwks.as_bytes()).unwrap();
        Issuer { dir, jwks: path, set }
    })
}

fn mint(extra: &[&str]) -> String {
    let key = keys().dir.join("key.pem");
    let mut args = vec!["token", "mint", "--key", key.to_str().unwrap()];
    args.extend(extra);
    let (code, token, stderr) = warden(&args);
    assert_eq!(code, 0, "{stderr}");
    token.trim().to_string()
}

/// The configuration, read from the fixtures with nothing of the command's code.
fn config(workload: Workload) -> PluginConfig {
    let mut policies = Vec::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(fixtures().join("mesh")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap();
            let objects = match value["kind"].as_str() {
                Some("List") => value["items"].as_array().unwrap().clone(),
                _ => vec![value],
            };
            policies.extend(objects.into_iter().filter(|o| {
                o["apiVersion"].as_str().unwrap_or_default().starts_with("security.istio.io/")
            }));
        }
    }
    let mut config = PluginConfig { workload: Some(workload), ..PluginConfig::default() };
    for policy in &policies {
        config.push_policy(policy);
    }
    config
}

struct Jwks<'a>(&'a KeySet);

impl KeyProvider for Jwks<'_> {
    fn keys(&self, _: SourceId) -> Keys<'_> {
        Keys::Ready(self.0)
    }
}

/// One request, as flags and as the core's view.
#[derive(Default)]
struct Case {
    workload: &'static str,
    method: &'static str,
    path: &'static str,
    host: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    /// `ns/sa`
    peer: Option<&'static str>,
    source_ip: Option<&'static str>,
    token: Option<String>,
}

impl Case {
    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["explain", "--policies", "mesh", "--format", "json", "--jwks"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(keys().jwks.display().to_string());
        args.extend(["--workload".into(), self.workload.into()]);
        args.extend(["--method".into(), self.method.into(), "--path".into(), self.path.into()]);
        if !self.host.is_empty() {
            args.extend(["--host".into(), self.host.into()]);
        }
        for (name, value) in &self.headers {
            args.extend(["--header".into(), format!("{name}: {value}")]);
        }
        if let Some(peer) = self.peer {
            args.extend(["--peer".into(), peer.into()]);
        }
        if let Some(ip) = self.source_ip {
            args.extend(["--source-ip".into(), ip.into()]);
        }
        match &self.token {
            Some(token) => args.extend(["--token".into(), token.clone()]),
            // --jwks requires --token.
            None => {
                args.retain(|a| a != "--jwks" && *a != keys().jwks.display().to_string());
            }
        }
        args
    }

    fn workload(&self) -> Workload {
        let mut parts = self.workload.split(',');
        let namespace = parts.next().unwrap().to_string();
        let labels = parts
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        Workload { namespace, labels }
    }

    /// The core's verdict: (allowed, status, rule id or details).
    fn core(&self) -> (bool, u16, String) {
        let enforcer = Enforcer::new(&config(self.workload()), None).unwrap();
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        if let Some(token) = &self.token {
            headers.push((b"authorization".to_vec(), format!("Bearer {token}").into_bytes()));
        }
        let peer = self.peer.map(|p| {
            let (ns, sa) = p.split_once('/').unwrap();
            Peer {
                uri_sans: vec![format!("spiffe://cluster.local/ns/{ns}/sa/{sa}").into_bytes()],
                ..Peer::default()
            }
        });
        let ip: Option<IpAddr> = self.source_ip.map(|ip| ip.parse().unwrap());
        // The core's one request builder, the one `warden explain` uses too.
        let request = OwnedRequest {
            method: self.method.as_bytes().to_vec(),
            path: self.path.as_bytes().to_vec(),
            authority: self.host.as_bytes().to_vec(),
            headers,
            peer: Observed::from_option(peer),
            source_ip: Observed::from_option(ip),
            remote_ip: ip,
            ..OwnedRequest::default()
        };
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let verdict = request.with(|request| {
            enforcer.check(request, now, &Jwks(&keys().set), &mut TokenCache::new(0), &PureRust)
        });
        match verdict {
            Verdict::Allow(allow) => {
                (true, 200, allow.decision.rule().map(|r| enforcer.rule_id(r)).unwrap_or_default())
            }
            Verdict::Deny(deny) => (false, deny.status, deny.details),
            Verdict::Wait { .. } => panic!("keys are given"),
        }
    }
}

fn explain_json(args: &[String]) -> Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = warden(&args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

const BACKEND: &str = "api,app=backend";

#[test]
fn decisions_are_the_modules() {
    let admin = mint(&[
        "--iss",
        "https://issuer.example",
        "--sub",
        "ann",
        "--aud",
        "backend",
        "--claim",
        "scope=read admin",
    ]);
    let reader = mint(&[
        "--iss",
        "https://issuer.example",
        "--sub",
        "rob",
        "--aud",
        "backend",
        "--claim",
        "scope=read",
    ]);
    let expired = mint(&[
        "--iss",
        "https://issuer.example",
        "--sub",
        "ann",
        "--aud",
        "backend",
        "--ttl",
        "-10m",
    ]);
    let other_audience =
        mint(&["--iss", "https://issuer.example", "--sub", "ann", "--aud", "frontend"]);
    let unknown_issuer = mint(&["--iss", "https://other.example", "--sub", "ann"]);
    let get =
        |path: &'static str| Case { workload: BACKEND, method: "GET", path, ..Case::default() };
    let cases: Vec<(&str, Case, bool)> = vec![
        (
            "frontend reads the API",
            Case { peer: Some("web/frontend"), path: "/api/orders", ..get("") },
            true,
        ),
        (
            "frontend creates: a dry-run DENY only reports",
            Case { method: "POST", peer: Some("web/frontend"), ..get("/api/orders") },
            true,
        ),
        (
            "frontend deletes a public page",
            Case { method: "DELETE", peer: Some("web/frontend"), ..get("/public/x") },
            false,
        ),
        ("web reads public pages", Case { peer: Some("web/other"), ..get("/public/x") }, true),
        ("plaintext health check", get("/healthz"), true),
        ("plaintext API call", get("/api/orders"), false),
        (
            "rogue health check: DENY first",
            Case { peer: Some("rogue/x"), ..get("/healthz") },
            false,
        ),
        (
            "ops from inside",
            Case {
                headers: vec![("x-team", "ops")],
                source_ip: Some("10.1.2.3"),
                ..get("/internal/x")
            },
            true,
        ),
        (
            "ops from outside",
            Case {
                headers: vec![("x-team", "ops")],
                source_ip: Some("192.168.1.1"),
                ..get("/internal/x")
            },
            false,
        ),
        ("admin token", Case { token: Some(admin.clone()), ..get("/admin/users") }, true),
        (
            "admin path with a read token",
            Case { token: Some(reader.clone()), ..get("/admin/users") },
            false,
        ),
        (
            "expired token: 401 before any policy",
            Case { token: Some(expired), ..get("/healthz") },
            false,
        ),
        (
            "wrong audience: 403 from jwt_authn",
            Case { token: Some(other_audience), ..get("/healthz") },
            false,
        ),
        ("unknown issuer", Case { token: Some(unknown_issuer), ..get("/healthz") }, false),
        (
            "admin token, query and host",
            Case { token: Some(admin), host: "backend.api", ..get("/admin/x?a=1") },
            true,
        ),
        (
            "frontend: backend's callback",
            Case {
                workload: "web,app=frontend",
                method: "POST",
                peer: Some("api/backend"),
                ..get("/callbacks/1")
            },
            true,
        ),
        (
            "frontend: anything else",
            Case { workload: "web,app=frontend", peer: Some("api/backend"), ..get("/api/x") },
            false,
        ),
        (
            "a workload without labels: only the root namespace's",
            Case { workload: "api", peer: Some("web/frontend"), ..get("/api/orders") },
            false,
        ),
    ];
    for (name, case, allowed) in cases {
        let report = explain_json(&case.args());
        let (core_allowed, status, detail) = case.core();
        assert_eq!(core_allowed, allowed, "{name}: the case's expectation");
        let decision = &report["decision"];
        assert_eq!(decision["allowed"], core_allowed, "{name}: {decision}");
        assert_eq!(decision["status"], status, "{name}: {decision}");
        if core_allowed {
            assert_eq!(decision["rule"].as_str().unwrap_or_default(), detail, "{name}");
            assert_eq!(decision["details"], Value::Null, "{name}");
        } else {
            assert_eq!(decision["details"], detail, "{name}: {decision}");
        }
        if status == 401 {
            assert_eq!(report["authorization"], Value::Null, "{name}");
            assert_eq!(report["authentication"]["result"], "rejected", "{name}");
        }
    }
}

#[test]
fn explanation_names_the_deciding_rule_and_every_field() {
    let case = Case {
        workload: BACKEND,
        method: "DELETE",
        path: "/public/x",
        peer: Some("web/frontend"),
        ..Case::default()
    };
    let report = explain_json(&case.args());
    assert_eq!(report["decision"]["reason"], "deniedBy");
    assert_eq!(report["decision"]["rule"], "ns[api]-policy[deny-delete-from-web]-rule[0]");
    assert_eq!(
        report["decision"]["details"],
        "rbac_access_denied_matched_policy[ns[api]-policy[deny-delete-from-web]-rule[0]]"
    );
    assert_eq!(report["decision"]["body"], "RBAC: access denied");
    let groups = report["authorization"]["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["group"].as_str().unwrap()).collect();
    assert_eq!(names, ["DENY", "ALLOW", "AUDIT", "DRY_RUN_DENY", "DRY_RUN_ALLOW"]);
    let deny = &groups[0]["policies"];
    // Envoy's order within a group: by rule name, so api/… before istio-system/….
    assert_eq!(deny[0]["name"], "deny-delete-from-web");
    assert_eq!(deny[1]["name"], "quarantine-rogue");
    let rule = &deny[0]["rules"][0];
    assert_eq!(rule["decides"], true);
    assert_eq!(rule["from"][0]["fields"][0]["field"], "spec.rules[0].from[0].source.namespaces");
    assert_eq!(rule["from"][0]["fields"][0]["matched"], true);
    assert_eq!(rule["to"][0]["fields"][0]["key"], "methods");
    assert_eq!(rule["to"][0]["fields"][0]["actual"], "\"DELETE\"");
    let quarantine = &deny[1]["rules"][0]["from"][0]["fields"][0];
    assert_eq!(quarantine["matched"], false);
    assert!(quarantine["actual"]
        .as_str()
        .unwrap()
        .contains("spiffe://cluster.local/ns/web/sa/frontend"));

    let (_, human, _) = warden(
        &case
            .args()
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "--format" && *a != "json")
            .collect::<Vec<_>>(),
    );
    assert!(
        human.contains("Decision DENY: denied by ns[api]-policy[deny-delete-from-web]-rule[0]"),
        "{human}"
    );
    assert!(
        human.contains("rule[0] ns[api]-policy[deny-delete-from-web]-rule[0]  ← decides"),
        "{human}"
    );
    assert!(human.contains("ALLOW (not reached in the module: a DENY rule decided)"), "{human}");
    assert!(human.contains("response code details rbac_access_denied_matched_policy[ns[api]-policy[deny-delete-from-web]-rule[0]]"), "{human}");
}

#[test]
fn policies_that_do_not_apply_say_why() {
    let case =
        Case { workload: "api/backend,app=frontend", method: "GET", path: "/", ..Case::default() };
    let report = explain_json(&case.args());
    assert_eq!(
        report["workload"],
        json!({"namespace": "api", "name": "backend", "labels": {"app": "frontend"}})
    );
    let policies = report["policies"].as_array().unwrap();
    let find = |name: &str| policies.iter().find(|p| p["name"] == name).unwrap();
    assert_eq!(find("default-deny")["applies"], true);
    assert!(find("default-deny")["why"].as_str().unwrap().contains("root namespace"));
    let selector = find("allow-frontend-api");
    assert_eq!(selector["applies"], false);
    assert_eq!(selector["why"], "selector app=backend does not match: the workload has app is \"frontend\", not \"backend\"");
    let namespace = find("allow-backend-callbacks");
    assert_eq!(namespace["applies"], false);
    assert!(namespace["why"].as_str().unwrap().contains("namespace web is neither"));
    assert_eq!(find("backend-jwt")["kind"], "RequestAuthentication");
    assert_eq!(find("dry-run-deny-posts")["dryRun"], true);
    assert_eq!(report["decision"]["reason"], "noAllowMatched");
    assert_eq!(report["decision"]["details"], "rbac_access_denied_matched_policy[none]");
}

#[test]
fn audit_and_dry_run_are_reported_apart() {
    let token = mint(&[
        "--iss",
        "https://issuer.example",
        "--sub",
        "ann",
        "--aud",
        "backend",
        "--claim",
        "scope=admin",
    ]);
    let case = Case {
        workload: BACKEND,
        method: "POST",
        path: "/admin/x",
        token: Some(token),
        ..Case::default()
    };
    let report = explain_json(&case.args());
    let decision = &report["decision"];
    assert_eq!(decision["allowed"], true);
    assert_eq!(decision["audit"], "ns[api]-policy[audit-admin]-rule[0]");
    assert_eq!(decision["dryRun"]["deny"], "ns[api]-policy[dry-run-deny-posts]-rule[0]");
    assert_eq!(decision["dryRun"]["wouldDeny"], true);
    assert_eq!(report["authentication"]["verified"], true);
    assert_eq!(report["authentication"]["rule"], "api/backend-jwt jwtRules[0]");
    assert_eq!(report["authentication"]["identity"]["principal"], "https://issuer.example/ann");
}

#[test]
fn without_keys_the_signature_is_not_verified_and_said_so() {
    let token = mint(&[
        "--iss",
        "https://issuer.example",
        "--sub",
        "ann",
        "--aud",
        "backend",
        "--claim",
        "scope=admin",
    ]);
    let args = [
        "explain",
        "--policies",
        "mesh",
        "--workload",
        BACKEND,
        "--path",
        "/admin/x",
        "--token",
        &token,
        "--format",
        "json",
    ];
    let (code, stdout, stderr) = warden(&args);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let authentication = &report["authentication"];
    assert_eq!(authentication["result"], "authenticated");
    assert_eq!(authentication["verified"], false);
    assert!(authentication["notes"][0].as_str().unwrap().contains("signature NOT verified"));
    assert!(authentication["notes"][0]
        .as_str()
        .unwrap()
        .contains("https://issuer.example/jwks.json"));
    assert_eq!(report["decision"]["allowed"], true);
    // Everything but the signature is still the module's: an expired token is refused.
    let expired = mint(&[
        "--iss",
        "https://issuer.example",
        "--sub",
        "ann",
        "--aud",
        "backend",
        "--ttl",
        "-10m",
    ]);
    let explained = |token: &str| -> Value {
        let (_, stdout, _) = warden(&[
            "explain",
            "--policies",
            "mesh",
            "--workload",
            BACKEND,
            "--token",
            token,
            "--format",
            "json",
        ]);
        serde_json::from_str(&stdout).unwrap()
    };
    let report = explained(&expired);
    assert_eq!(report["decision"]["status"], 401);
    assert_eq!(report["authentication"]["failure"]["reason"], "expired");
    // So is a wrong audience.
    let audience = mint(&["--iss", "https://issuer.example", "--sub", "ann", "--aud", "nobody"]);
    let report = explained(&audience);
    assert_eq!(report["decision"]["status"], 403);
    let (_, human, _) = warden(&[
        "explain",
        "--policies",
        "mesh",
        "--workload",
        BACKEND,
        "--path",
        "/admin/x",
        "--token",
        &token,
    ]);
    assert!(
        human.contains("token accepted by api/backend-jwt jwtRules[0] (signature NOT verified)"),
        "{human}"
    );
}

#[test]
fn inline_jwks_verifies_the_token() {
    let dir = keys().dir.join("inline");
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = std::fs::read_to_string(&keys().jwks).unwrap();
    let policy = json!([
        {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
         "metadata": {"name": "inline", "namespace": "api"},
         "spec": {"jwtRules": [{"issuer": "https://inline.example", "jwks": jwks}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "needs-token", "namespace": "api"},
         "spec": {"rules": [{"from": [{"source": {"requestPrincipals": ["https://inline.example/*"]}}]}]}}
    ]);
    let file = dir.join("inline.json");
    std::fs::write(&file, json!({"apiVersion": "v1", "kind": "List", "items": policy}).to_string())
        .unwrap();
    let good = mint(&["--iss", "https://inline.example", "--sub", "ann"]);
    let file = file.to_str().unwrap();
    let (code, stdout, stderr) = warden(&[
        "explain",
        "--policies",
        file,
        "--workload",
        "api",
        "--token",
        &good,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["authentication"]["verified"], true);
    assert_eq!(report["authentication"]["notes"], json!([]));
    assert_eq!(report["decision"]["allowed"], true);
    // A token whose signature does not verify is refused, as the module refuses it.
    let mut forged = good.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let (_, stdout, _) = warden(&[
        "explain",
        "--policies",
        file,
        "--workload",
        "api",
        "--token",
        &forged,
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["decision"]["status"], 401, "{report}");
    let (_, stdout, _) =
        warden(&["explain", "--policies", file, "--workload", "api", "--format", "json"]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["authentication"]["result"], "anonymous");
    assert_eq!(report["decision"]["details"], "rbac_access_denied_matched_policy[none]");
}

#[test]
fn claims_stand_for_a_verified_token_split_as_istio_splits_scope() {
    let claims = r#"{"iss": "https://issuer.example", "sub": "ann", "scope": "read admin"}"#;
    let args = [
        "explain",
        "--policies",
        "mesh",
        "--workload",
        BACKEND,
        "--path",
        "/admin/x",
        "--claims",
        claims,
        "--format",
        "json",
    ];
    let (code, stdout, stderr) = warden(&args);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["authentication"]["result"], "claims");
    assert_eq!(report["authentication"]["identity"]["claims"]["scope"], json!(["read", "admin"]));
    assert_eq!(report["decision"]["rule"], "ns[api]-policy[allow-admin-token]-rule[0]");
    // Where no RequestAuthentication applies, the module reads no token: no identity.
    let (_, stdout, _) = warden(&[
        "explain",
        "--policies",
        "mesh",
        "--workload",
        "api",
        "--claims",
        claims,
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["authentication"]["identity"], Value::Null);
    assert!(report["authentication"]["notes"][0]
        .as_str()
        .unwrap()
        .contains("no RequestAuthentication applies"));
}

#[test]
fn expect_turns_the_decision_into_the_exit_status() {
    let base = ["explain", "--policies", "mesh", "--workload", BACKEND, "--path", "/healthz"];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        warden(&args).0
    };
    assert_eq!(with(&["--expect", "allow"]), 0);
    assert_eq!(with(&["--expect", "deny"]), 1);
    assert_eq!(with(&["--method", "POST", "--expect", "deny"]), 0);
}

#[test]
fn a_configuration_the_module_refuses_is_not_explained() {
    let (code, stdout, stderr) =
        warden(&["explain", "--policies", "errors.yaml", "--workload", "api"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("errors.yaml:2 (document 1): error: AuthorizationPolicy api/bad-ip"),
        "{stderr}"
    );
    assert!(stderr.contains("5 error(s)"), "{stderr}");
    assert_eq!(warden(&["explain", "--policies", "mesh", "--workload", "api,app"]).0, 2);
    assert_eq!(warden(&["explain", "--policies", "mesh", "--workload", "api", "--peer", "x"]).0, 2);
    assert_eq!(
        warden(&["explain", "--policies", "mesh", "--workload", "api", "--header", "nocolon"]).0,
        2
    );
    assert_eq!(
        warden(&[
            "explain",
            "--policies",
            "mesh",
            "--workload",
            "api",
            "--peer",
            "a/b",
            "--plaintext"
        ])
        .0,
        2
    );
}

#[test]
fn json_report_has_the_documented_shape() {
    let case = Case { workload: BACKEND, method: "GET", path: "/healthz", ..Case::default() };
    let report = explain_json(&case.args());
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&report),
        [
            "authentication",
            "authorization",
            "decision",
            "policies",
            "request",
            "version",
            "workload"
        ]
    );
    assert_eq!(report["version"], 1);
    assert_eq!(
        keys(&report["authentication"]),
        ["failure", "identity", "notes", "result", "rule", "verified"]
    );
    assert_eq!(
        keys(&report["decision"]),
        ["allowed", "audit", "body", "details", "dryRun", "headers", "reason", "rule", "status"]
    );
    assert_eq!(keys(&report["decision"]["dryRun"]), ["allow", "deny", "wouldDeny"]);
    assert_eq!(
        keys(&report["request"]),
        [
            "destinationIp",
            "headers",
            "host",
            "method",
            "path",
            "peer",
            "port",
            "remoteIp",
            "sni",
            "sourceIp"
        ]
    );
    assert_eq!(
        keys(&report["policies"][0]),
        ["action", "applies", "dryRun", "kind", "name", "namespace", "why"]
    );
    let rule = &report["authorization"]["groups"][1]["policies"][0]["rules"][0];
    assert_eq!(keys(rule), ["decides", "from", "id", "index", "matched", "to", "when"]);
    assert_eq!(
        keys(&rule["from"][0]["fields"][0]),
        ["actual", "field", "key", "matched", "negated", "values"]
    );
}

/// With `peerIdentity: xfcc` the module reads the peer from `x-forwarded-client-cert`, and so
/// does `warden explain` (one request builder, `warden::request::view`): the current element of
/// the last header decides, an earlier forged one does not, and `--peer` (a certificate) is
/// refused rather than silently ignored.
#[test]
fn explain_reads_the_peer_where_the_settings_say() {
    let dir = std::env::temp_dir().join(format!("warden-explain-xfcc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
         metadata: {name: only-frontend, namespace: api}\n\
         spec:\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        \
         principals: [cluster.local/ns/web/sa/frontend]\n",
    )
    .unwrap();
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, "peerIdentity: xfcc\n").unwrap();
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--policies",
            policy.to_str().unwrap(),
            "--settings",
            settings.to_str().unwrap(),
            "--workload",
            "api",
        ];
        args.extend_from_slice(extra);
        warden(&args)
    };
    let decide = |xfcc: &str| {
        let header = format!("x-forwarded-client-cert: {xfcc}");
        let (code, stdout, stderr) = explain(&["-H", &header, "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        report["decision"]["status"].as_u64().unwrap()
    };
    let frontend = "URI=spiffe://cluster.local/ns/web/sa/frontend";
    assert_eq!(decide(&format!("By=spiffe://cluster.local/ns/api/sa/api;{frontend}")), 200);
    assert_eq!(
        decide(&format!("{frontend},By=x;URI=spiffe://cluster.local/ns/web/sa/intruder")),
        403
    );
    let (code, _, stderr) = explain(&["--peer", "web/frontend"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("peerIdentity: xfcc"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
