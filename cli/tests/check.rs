//! `warden check` on fixtures: exit status, every error placed in its file and document, every
//! lint kind, notes, skipped kinds, the JSON report's shape, and a 5,000-policy file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{fixtures, warden};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn json(args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (code, stdout, stderr) = warden(&all);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (code, value)
}

fn codes(report: &Value) -> Vec<String> {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn valid_mesh_passes_and_other_kinds_are_skipped() {
    let (code, stdout, _) = warden(&["check", "mesh"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with(
            "ok: 0 errors, 0 warnings in 12 documents of 4 files (8 AuthorizationPolicies, \
             1 RequestAuthentication; 3 documents of other kinds skipped, -v lists them)"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("skipped apps/v1/Deployment"), "skipped kinds only with -v");

    let (code, stdout, _) = warden(&["check", "-v", "mesh"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "mesh/20-frontend-list.yaml:2 (document 1, items[1]): note: skipped apps/v1/Deployment"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("mesh/30-other-kinds.yaml:9 (document 2): note: skipped networking.istio.io/v1/VirtualService"), "{stdout}");
}

#[test]
fn list_items_are_checked_like_documents() {
    let (code, report) = json(&["check", "mesh/20-frontend-list.yaml"]);
    assert_eq!(code, 0);
    assert_eq!(report["summary"]["authorizationPolicies"], 1);
    assert_eq!(report["skipped"][0]["item"], 1);
    assert_eq!(report["skipped"][0]["kind"], "apps/v1/Deployment");
}

#[test]
fn broken_yaml_is_an_error_and_the_documents_after_it_are_still_checked() {
    let (code, stdout, _) = warden(&["check", "broken.yaml"]);
    assert_eq!(code, 1, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("broken.yaml:6 (document 2): error: "), "{stdout}");
    assert!(lines[0].contains("line 9 column 5"), "the file's line: {stdout}");
    assert!(lines[0].ends_with("[yaml]"), "{stdout}");
    assert!(
        lines[1].starts_with(
            "broken.yaml:11 (document 3): error: AuthorizationPolicy api/typo: \
             spec.rules[0].to[0].operation.method: unknown field `method`"
        ),
        "{stdout}"
    );
    assert!(lines[2].starts_with("failed: 2 errors"), "{stdout}");
}

#[test]
fn errors_in_several_documents_are_all_reported_with_file_document_rule_and_field() {
    let (code, report) = json(&["check", "errors.yaml"]);
    assert_eq!(code, 1);
    assert_eq!(report["ok"], false);
    let found: Vec<(String, u64, Value, String)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["severity"], "error");
            assert_eq!(d["file"], "errors.yaml");
            (
                d["code"].as_str().unwrap().to_string(),
                d["document"].as_u64().unwrap(),
                d["rule"].clone(),
                d["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("authz/invalid-ip", 1, Value::from(1), "spec.rules[1].from[0].source.ipBlocks[1]"),
        ("authz/deny-without-rules", 2, Value::Null, "spec.rules"),
        ("authz/unknown-key", 4, Value::from(0), "spec.rules[0].when[0].key"),
        ("authn/jwks-and-jwks-uri", 5, Value::from(0), "spec.jwtRules[0].jwks"),
        ("duplicate", 6, Value::Null, "metadata.name"),
    ];
    let expected: Vec<(String, u64, Value, String)> =
        expected.into_iter().map(|(c, d, r, f)| (c.to_string(), d, r, f.to_string())).collect();
    assert_eq!(found, expected);
    let first = &report["diagnostics"][0];
    assert_eq!(first["kind"], "AuthorizationPolicy");
    assert_eq!(first["namespace"], "api");
    assert_eq!(first["name"], "bad-ip");
    assert_eq!(first["line"], 2);
    assert!(first["message"].as_str().unwrap().contains("10.300.0.0/16"));
    assert!(report["diagnostics"][4]["message"]
        .as_str()
        .unwrap()
        .contains("errors.yaml (document 1)"));
    assert_eq!(report["summary"]["skipped"], 1);
}

#[test]
fn every_lint_kind_is_a_warning_and_strict_fails_on_them() {
    let (code, report) = json(&["check", "lints.yaml"]);
    assert_eq!(code, 0, "warnings alone pass");
    assert_eq!(report["ok"], true);
    let found: BTreeSet<String> = codes(&report).into_iter().collect();
    let every: BTreeSet<String> = [
        "lint/never-matches",
        "lint/shadowed-by-deny",
        "lint/allows-plaintext",
        "lint/path-without-slash",
        "lint/wildcard-in-middle",
        "lint/unknown-issuer",
        "lint/host-port",
        "lint/ignored-by-sidecars",
        "lint/fails-closed",
        "lint/empty-selector",
        "lint/jwks-key",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, every);
    assert!(report["diagnostics"].as_array().unwrap().iter().all(|d| d["severity"] == "warning"));
    let shadowed = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "lint/shadowed-by-deny")
        .unwrap();
    assert_eq!(shadowed["name"], "allow-admin");
    assert_eq!(shadowed["document"], 2);
    assert_eq!(shadowed["rule"], 0);

    let (code, report) = json(&["check", "--strict", "lints.yaml"]);
    assert_eq!(code, 1);
    assert_eq!(report["ok"], false);
    let (_, stdout, _) = warden(&["check", "--strict", "lints.yaml"]);
    assert!(stdout.trim_end().ends_with("--strict fails on warnings"), "{stdout}");
}

#[test]
fn objects_without_a_namespace_get_the_default_one_with_a_note() {
    let (code, report) = json(&["check", "no-namespace.yaml"]);
    assert_eq!(code, 0);
    let note = &report["diagnostics"][0];
    assert_eq!(note["severity"], "note");
    assert_eq!(note["code"], "default-namespace");
    assert_eq!(note["namespace"], "default");
    let (_, report) = json(&["check", "--namespace", "api", "no-namespace.yaml"]);
    assert_eq!(report["diagnostics"][0]["namespace"], "api");
    assert_eq!(report["summary"]["notes"], 1);
}

#[test]
fn usage_and_io_problems_exit_2() {
    let (code, _, stderr) = warden(&["check", "no-such-file.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such-file.yaml"), "{stderr}");
    assert_eq!(warden(&["check"]).0, 2);
    assert_eq!(warden(&["check", "--format", "xml", "mesh"]).0, 2);
}

#[test]
fn standard_input_is_read_with_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["check", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(fixtures().join("errors.yaml")).unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["diagnostics"][0]["file"], "-");
    assert_eq!(report["summary"]["errors"], 5);
}

#[test]
fn json_report_has_the_documented_shape() {
    let (_, report) = json(&["check", "errors.yaml", "mesh/20-frontend-list.yaml"]);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&report), ["diagnostics", "ok", "skipped", "summary", "version"]);
    assert_eq!(report["version"], 1);
    assert_eq!(
        keys(&report["summary"]),
        [
            "authorizationPolicies",
            "documents",
            "errors",
            "files",
            "notes",
            "requestAuthentications",
            "skipped",
            "warnings"
        ]
    );
    assert_eq!(
        keys(&report["diagnostics"][0]),
        [
            "code",
            "document",
            "field",
            "file",
            "item",
            "kind",
            "line",
            "message",
            "name",
            "namespace",
            "rule",
            "severity"
        ]
    );
    assert_eq!(keys(&report["skipped"][0]), ["document", "file", "item", "kind", "line"]);
    assert_eq!(report["summary"]["files"], 2);
}

#[test]
fn color_only_on_request_when_not_a_terminal() {
    let (_, plain, _) = warden(&["check", "errors.yaml"]);
    assert!(!plain.contains('\u{1b}'), "piped output has no escape codes");
    let (_, colored, _) = warden(&["--color", "always", "check", "errors.yaml"]);
    assert!(colored.contains("\u{1b}["), "{colored}");
    let (_, never, _) = warden(&["check", "--color", "never", "errors.yaml"]);
    assert_eq!(never, plain);
}

/// 5,000 policies in one file (a large mesh exported with `kubectl get -o yaml`): every one
/// read, one error found at its document, in seconds even in a debug build.
#[test]
fn a_huge_file_is_checked_quickly_and_correctly() {
    let dir = std::env::temp_dir().join(format!("warden-check-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for i in 0..5000 {
        let (action, ip) = match i {
            4321 => ("ALLOW", "10.0.0.0/33"),
            i if i % 5 == 0 => ("DENY", "10.0.0.0/8"),
            _ => ("ALLOW", "10.0.0.0/8"),
        };
        text.push_str(&format!(
            "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  \
             name: p{i:05}\n  namespace: ns{}\nspec:\n  action: {action}\n  selector:\n    \
             matchLabels: {{app: app{}}}\n  rules:\n  - from:\n    - source:\n        \
             principals: [\"cluster.local/ns/ns{}/sa/sa{i}\"]\n        ipBlocks: [\"{ip}\"]\n    \
             to:\n    - operation:\n        methods: [\"GET\", \"POST\"]\n        \
             paths: [\"/api/v{i}/*\"]\n",
            i % 50,
            i % 7,
            i % 13
        ));
    }
    let file = dir.join("huge.yaml");
    std::fs::write(&file, text).unwrap();
    let started = Instant::now();
    let (code, report) = json(&["check", file.to_str().unwrap()]);
    let took = started.elapsed();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1);
    assert_eq!(report["summary"]["authorizationPolicies"], 5000);
    assert_eq!(report["summary"]["documents"], 5000);
    assert_eq!(report["summary"]["errors"], 1);
    let error = &report["diagnostics"][0];
    assert_eq!(error["document"], 4322);
    assert_eq!(error["name"], "p04321");
    assert_eq!(error["line"], 4321 * 19 + 2);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}
