//! `warden compile` validates through the core first (the same errors as `check`), narrows to
//! one workload, and inlines issuers' keys fetched over HTTP (from a server in this test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::warden;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use warden::config::PluginConfig;
use warden::enforcer::Enforcer;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-compile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn errors_refuse_the_output_with_the_lines_check_prints() {
    let (code, stdout, stderr) = warden(&["compile", "errors.yaml"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "nothing written: {stdout}");
    let (_, check, _) = warden(&["check", "errors.yaml"]);
    let errors: Vec<&str> = check.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 5);
    for line in errors {
        assert!(stderr.contains(line), "{line} missing from:\n{stderr}");
    }
    assert_eq!(warden(&["compile", "broken.yaml"]).0, 1);
    assert_eq!(warden(&["compile", "no-such.yaml"]).0, 2);
}

#[test]
fn lints_do_not_stop_compile_and_the_namespace_is_filled_in() {
    let (code, stdout, stderr) =
        warden(&["compile", "lints.yaml", "no-namespace.yaml", "--policy-namespace", "shop"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("note: AuthorizationPolicy shop/allow-get: metadata.namespace"),
        "{stderr}"
    );
    let config: Value = serde_json::from_str(&stdout).unwrap();
    let last = config["policies"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["metadata"], json!({"name": "allow-get", "namespace": "shop"}));
}

#[test]
fn workload_keeps_only_what_applies_and_names_the_workload() {
    let (code, stdout, stderr) =
        warden(&["compile", "mesh", "--workload", "web/frontend,app=frontend"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("3 of 9 objects apply to workload web/frontend,app=frontend"),
        "{stderr}"
    );
    let config: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = config["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default-deny", "quarantine-rogue", "allow-backend-callbacks"]);
    assert_eq!(config["workload"], json!({"namespace": "web", "labels": {"app": "frontend"}}));
    // The narrowed configuration decides as the whole one does for that workload.
    let narrowed: PluginConfig = serde_json::from_value(config).unwrap();
    let enforcer = Enforcer::new(&narrowed, None).unwrap();
    assert_eq!(enforcer.authz().policies().len(), 3);
}

/// An identity provider on 127.0.0.1: OpenID discovery, a JWKS with a key Warden must leave
/// out (a published HMAC secret), and a 404. Counts requests per path.
fn identity_provider() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (issuer, log) = (base.clone(), Arc::clone(&seen));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or_default().to_string();
            log.lock().unwrap().push(path.clone());
            let (status, body) = match path.as_str() {
                "/.well-known/openid-configuration" => (
                    "200 OK",
                    json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")}).to_string(),
                ),
                "/keys" => ("200 OK", jwks().to_string()),
                _ => ("404 Not Found", "{}".to_string()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (base, seen)
}

fn jwks() -> Value {
    // An Ed25519 public key (RFC 8037 A.2) and a symmetric key, which a published set must not hold.
    json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "oct", "kid": "secret", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}
    ]})
}

#[test]
fn inline_jwks_fetches_by_uri_and_by_discovery_as_istiod_does() {
    let (base, seen) = identity_provider();
    let dir = temp_dir("inline");
    let file = dir.join("ra.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: jwt, namespace: api}}\n\
             spec:\n  jwtRules:\n  - issuer: {base}\n  - issuer: https://by-uri.example\n    jwksUri: {base}/keys\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) =
        warden(&["compile", file.to_str().unwrap(), "--inline-jwks", "--timeout", "5s"]);
    assert_eq!(code, 0, "{stderr}");
    let config: Value = serde_json::from_str(&stdout).unwrap();
    let rules = config["policies"][0]["spec"]["jwtRules"].as_array().unwrap();
    for rule in rules {
        assert!(rule.get("jwksUri").is_none(), "{rule}");
        let inlined: Value = serde_json::from_str(rule["jwks"].as_str().unwrap()).unwrap();
        assert_eq!(
            inlined,
            json!({"keys": [jwks()["keys"][0]]}),
            "the published secret is left out"
        );
    }
    assert!(stderr.contains("api/jwt jwtRules[0]: inlined 1 key(s) from"), "{stderr}");
    assert!(stderr.contains("left out keys[1] (kid \"secret\")"), "{stderr}");
    // The result is a configuration the module accepts, with no key set left to fetch.
    let parsed: PluginConfig = serde_json::from_value(config).unwrap();
    let workload = warden::config::Workload { namespace: "api".into(), labels: Default::default() };
    let enforcer = Enforcer::new(&parsed, Some(workload)).unwrap();
    assert!(enforcer.authn().remote_sources().is_empty());
    // Each document is fetched once.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, ["/.well-known/openid-configuration", "/keys"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inline_jwks_fails_clearly_when_a_fetch_fails() {
    let (base, _) = identity_provider();
    let dir = temp_dir("inline-fail");
    let file = dir.join("ra.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: jwt, namespace: api}}\n\
             spec:\n  jwtRules:\n  - issuer: https://a.example\n    jwksUri: {base}/gone\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = warden(&["compile", file.to_str().unwrap(), "--inline-jwks"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("RequestAuthentication api/jwt jwtRules[0]: cannot inline its keys"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{base}/gone")), "{stderr}");
    assert!(stderr.contains("404"), "{stderr}");

    // Nothing listens on a port just released: the fetch fails rather than hangs.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &file,
        format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: jwt, namespace: api}}\n\
             spec:\n  jwtRules:\n  - issuer: http://127.0.0.1:{port}\n"
        ),
    )
    .unwrap();
    let (code, _, stderr) =
        warden(&["compile", file.to_str().unwrap(), "--inline-jwks", "--timeout", "2s"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/.well-known/openid-configuration"), "{stderr}");
    assert_eq!(
        warden(&["compile", file.to_str().unwrap(), "--inline-jwks", "--timeout", "soon"]).0,
        2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The pin of a WasmPlugin's module: Istio compares `sha256` with the module's SHA-256 for
/// file:// and https:// URLs and with the image's manifest digest for oci:// ones (istio/istio
/// pkg/wasm/cache.go); `warden package` prints that digest, so compile --module must agree.
#[test]
fn a_wasm_plugin_pins_its_module_as_istio_checks_it() {
    let dir = temp_dir("pin");
    let module = dir.join("m.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0 a module").unwrap();
    let module = module.to_str().unwrap();
    let layout = dir.join("layout");
    let (code, digest, stderr) =
        warden(&["package", module, "-o", layout.to_str().unwrap(), "--format", "artifact"]);
    assert_eq!(code, 0, "{stderr}");
    let digest = digest.trim().strip_prefix("sha256:").unwrap().to_string();
    let plugin = |extra: &[&str]| {
        let mut args = vec!["compile", "lints.yaml", "--format", "wasmplugin", "-o"];
        let out = dir.join("plugin.json");
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        let (code, _, stderr) = warden(&args);
        assert_eq!(code, 0, "{stderr}");
        let text = std::fs::read_to_string(&out).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let spec = if value["kind"] == "WasmPlugin" { &value } else { &value["items"][0] };
        (spec["spec"]["sha256"].clone(), spec["spec"]["imagePullPolicy"].clone())
    };
    let oci = ["--wasm", "oci://registry.example/warden:1", "--module", module];
    assert_eq!(
        plugin(&[&oci[..], &["--image-format", "artifact"]].concat()),
        (json!(digest), json!("IfNotPresent"))
    );
    let image = plugin(&oci);
    assert_ne!(image.0, json!(digest), "the image form has another digest");
    let (sha, policy) = plugin(&["--module", module]);
    let expected = std::process::Command::new("sha256sum").arg(module).output().unwrap();
    let expected = String::from_utf8(expected.stdout).unwrap();
    assert_eq!(sha, json!(expected.split(' ').next().unwrap()));
    assert_eq!(policy, Value::Null, "a file:// module is not pulled");
    assert_eq!(
        plugin(&[
            "--wasm",
            "oci://r/w:1",
            "--wasm-sha256",
            &format!("sha256:{}", digest.to_uppercase()),
            "--image-pull-policy",
            "always"
        ]),
        (json!(digest), json!("Always"))
    );
    for refused in [
        vec!["--format", "ecds", "--module", module],
        vec!["--format", "wasmplugin", "--wasm-sha256", "abc"],
        vec!["--format", "wasmplugin", "--image-pull-policy", "always"],
        vec!["--format", "wasmplugin", "--wasm", "oci://r/w@sha256:00", "--module", module],
    ] {
        let args = [&["compile", "lints.yaml"][..], &refused].concat();
        let (code, stdout, stderr) = warden(&args);
        assert_eq!(code, 2, "{refused:?}: {stderr}");
        assert!(stdout.is_empty() && stderr.contains("error"), "{refused:?}: {stderr}");
    }
    let (code, _, stderr) = warden(&["package", "lints.yaml", "-o", layout.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not a Wasm module"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
