//! The `warden` binary itself: `compile` on the playground's policies, `token` end to end, and
//! the playground services over real TCP, as the mesh launcher and the e2e suite use them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn segment(token: &str, index: usize) -> Value {
    let part = token.trim().split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A child process killed when the test ends, pass or fail.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(args: &[&str]) -> Service {
    Service(warden().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
}

/// One HTTP/1.1 request; returns the status and body. Retries the connection while the
/// service starts.
fn http(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("port {port}: {e}"),
        }
    };
    let mut request = format!("{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}

#[test]
fn compile_turns_the_playground_policies_into_an_ecds_file_envoy_can_read() {
    let dir = temp_dir("compile");
    let out = dir.join("warden.json");
    run(warden()
        .current_dir(repo())
        .args(["compile", "envoy/policies", "--settings", "envoy/settings.yaml"])
        .args(["--format", "ecds", "-o"])
        .arg(&out));
    let ecds: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let config = &ecds["resources"][0]["typed_config"]["config"];
    assert_eq!(
        config["vm_config"]["code"]["local"]["filename"],
        "target/wasm32-wasip1/wasm/warden.wasm"
    );
    let plugin: Value =
        serde_json::from_str(config["configuration"]["value"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = plugin["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    for expected in [
        "default-deny",
        "quarantine-rogue",
        "allow-frontend-api",
        "backend-jwt",
        "admin-needs-token",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn compile_reports_every_broken_document_and_writes_nothing() {
    let dir = temp_dir("broken");
    std::fs::write(
        dir.join("p.yaml"),
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: x}\n\
         spec: {rules: [{to: [{operation: {method: [GET]}}]}]}\n---\n\
         apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {namespace: x}\nspec: {}\n",
    )
    .unwrap();
    let out = dir.join("out.yaml");
    let output =
        warden().arg("compile").arg(dir.join("p.yaml")).arg("-o").arg(&out).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(document 1): error: AuthorizationPolicy x/a: spec.rules[0]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(document 2): error: AuthorizationPolicy x/: metadata.name: is required"),
        "{stderr}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn checked_in_istio_manifests_are_what_compile_generates() {
    for format in ["wasmplugin", "envoyfilter"] {
        let output = run(warden().current_dir(repo()).args([
            "compile",
            "envoy/policies",
            "--settings",
            "envoy/settings.yaml",
            "--format",
            format,
        ]));
        let checked_in =
            std::fs::read_to_string(repo().join(format!("envoy/istio/{format}.yaml"))).unwrap();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), checked_in, "run `make istio`");
    }
}

#[test]
fn token_keygen_mint_and_jwks_agree() {
    let dir = temp_dir("token");
    let key = dir.join("key.pem");
    run(warden().args(["token", "keygen", "--alg", "ES384", "--out"]).arg(&key));
    let token = run(warden().arg("token").arg("--key").arg(&key).args([
        "--iss",
        "http://issuer.test",
        "--sub",
        "alice",
        "--aud",
        "backend",
        "--ttl",
        "-2m",
        "--claim",
        "scope=read admin",
    ]))
    .stdout;
    let token = String::from_utf8(token).unwrap();
    let (header, payload) = (segment(&token, 0), segment(&token, 1));
    assert_eq!(header["alg"], "ES384");
    assert_eq!(payload["scope"], "read admin");
    assert!(
        payload["exp"].as_i64().unwrap() < payload["iat"].as_i64().unwrap(),
        "expired on request"
    );
    let jwks: Value =
        serde_json::from_slice(&run(warden().args(["token", "jwks", "--key"]).arg(&key)).stdout)
            .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    assert_eq!(jwks["keys"][0]["crv"], "P-384");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn echo_describes_each_request_over_tcp() {
    let port = free_port();
    let _echo = start(&[
        "playground",
        "echo",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--name",
        "backend",
    ]);
    let (status, body) = http(
        port,
        "DELETE",
        "/api/orders?id=7",
        &[("x-jwt-sub", "forged"), ("x-jwt-sub", "again")],
    );
    assert_eq!(status, 200);
    let described: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(described["service"], "backend");
    assert_eq!(described["method"], "DELETE");
    assert_eq!(described["path"], "/api/orders?id=7");
    let forged: Vec<&Value> = described["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"] == "x-jwt-sub")
        .collect();
    assert_eq!(forged.len(), 2);
}

#[test]
fn issuer_serves_discovery_jwks_tokens_rotation_and_faults_over_tcp() {
    let dir = temp_dir("issuer");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = dir.to_str().unwrap();
    let args = [
        "playground",
        "issuer",
        "--listen",
        &listen,
        "--state",
        state,
        "--issuer",
        "http://issuer.test",
        "--alg",
        "ES256",
    ];
    let issuer = start(&args);
    let (status, body) = http(port, "GET", "/.well-known/openid-configuration", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["jwks_uri"],
        "http://issuer.test/.well-known/jwks.json"
    );
    let (_, token) = http(port, "GET", "/token?sub=bob&aud=backend", &[]);
    let token = String::from_utf8(token).unwrap();
    assert_eq!(segment(&token, 1)["iss"], "http://issuer.test");
    let (_, rotated) = http(port, "POST", "/rotate", &[]);
    let rotated: Value = serde_json::from_slice(&rotated).unwrap();
    let (_, jwks) = http(port, "GET", "/.well-known/jwks.json", &[]);
    let kids: Vec<Value> = serde_json::from_slice::<Value>(&jwks).unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![segment(&token, 0)["kid"].clone(), rotated["kid"].clone()]);
    http(port, "POST", "/fault?mode=500", &[]);
    assert_eq!(http(port, "GET", "/.well-known/jwks.json", &[]).0, 500);
    // The keys outlive the process: a restarted issuer publishes the same set.
    drop(issuer);
    let _again = start(&args);
    let (_, after) = http(port, "GET", "/.well-known/jwks.json", &[]);
    assert_eq!(
        serde_json::from_slice::<Value>(&after).unwrap(),
        serde_json::from_slice::<Value>(&jwks).unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}
