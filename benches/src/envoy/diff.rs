//! The differential test: one Envoy, four listeners — Envoy's native filters and Warden, each
//! behind mTLS and in plaintext — loading the same policies; a corpus of requests sent to each
//! pair; every status must be equal. `benches/envoy/diff.sh` runs it (`make bench-envoy-check`).
//!
//! The corpus: every request of the generated mesh (each matches one ALLOW rule) as it is and
//! changed one way at a time (method, path, tenant header, no token, no client certificate);
//! hand-written policies for the fields the generator does not use (`not*` fields, service
//! accounts, audiences and presenter, nested and space-delimited claims, wildcard request
//! principals, hosts, dry-run), with requests on each side of them; and token failures
//! (expired, foreign signature, wrong audience, unknown issuer, malformed, wrong prefix, in the
//! `access_token` parameter, twice).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Map, Value};

use super::bootstrap::{self, Listener, Tls};
use super::fixtures::{self, Alg, Certificates, Keys, Validity};
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

/// The listeners of the differential Envoy: (name, offset from the base port, mTLS, Warden).
const LISTENERS: [(&str, u16, bool, bool); 4] = [
    ("mtls_native", 1, true, false),
    ("mtls_warden", 2, true, true),
    ("plain_native", 3, false, false),
    ("plain_warden", 4, false, true),
];

/// One case: a request and how it was made.
struct Case {
    what: String,
    request: SampleRequest,
    authorization: Option<String>,
    /// Extra query (`access_token=…`).
    query: Option<String>,
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
        cases.push(Case { what, request, authorization, query: None });
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
        ("lower-case bearer", who.clone(), "GET", "/anon/x", Some(format!("bearer {t}"))),
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
    });
    cases.push(Case {
        what: "bad token in access_token, good one in the header".into(),
        request: request(&who, "GET", "/rp/x", None),
        authorization: bearer(t),
        query: Some("access_token=abc.def.ghi".into()),
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
    let warden_filter = bootstrap::warden_filter(&super::read_json(&warden)?)?;
    let listeners: Vec<Listener> = LISTENERS
        .iter()
        .map(|&(name, offset, mtls, is_warden)| Listener {
            name: name.into(),
            port: options.base_port + offset,
            mtls,
            filters: if is_warden { vec![warden_filter.clone()] } else { native_filters.clone() },
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
        let _ = writeln!(
            table,
            "{number}\t{}\t{} {}",
            case.what, case.request.method, case.request.path
        );
        let client = match &case.request.peer {
            Some(peer) => Some(certs.client(peer)?),
            None => None,
        };
        for &(name, offset, mtls, _) in &LISTENERS {
            // Requests with a peer go to the mTLS pair, requests without to the plaintext pair.
            if mtls != client.is_some() {
                continue;
            }
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
/// of `cases.tsv`; returns the report, and an error naming every disagreeing request.
pub fn check(dir: &Path) -> Result<String> {
    let cases = fs::read_to_string(dir.join("cases.tsv"))?;
    let results = |name: &str| statuses(&dir.join(format!("results/{name}.txt")));
    let (mtls_native, mtls_warden) = (results("mtls_native")?, results("mtls_warden")?);
    let (plain_native, plain_warden) = (results("plain_native")?, results("plain_warden")?);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    let mut total = 0usize;
    for line in cases.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(number), Some(what), Some(request)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let number: usize = number.parse()?;
        let (native, warden) = match (mtls_native.get(&number), plain_native.get(&number)) {
            (Some(native), _) => (Some(native), mtls_warden.get(&number)),
            (None, Some(native)) => (Some(native), plain_warden.get(&number)),
            (None, None) => (None, None),
        };
        total += 1;
        match (native, warden) {
            (Some(native), Some(warden)) if native == warden && native != "000" => {
                *counts.entry(native.clone()).or_default() += 1;
            }
            (native, warden) => disagreements.push(format!(
                "case {number} ({what}; {request}): native {} vs Warden {}",
                native.map_or("no answer", String::as_str),
                warden.map_or("no answer", String::as_str),
            )),
        }
    }
    let mut report = format!("{total} requests, each to native and to Warden: ");
    let summary: Vec<String> = counts.iter().map(|(status, n)| format!("{n} × {status}")).collect();
    report.push_str(&summary.join(", "));
    if disagreements.is_empty() {
        report.push_str(&format!("; every status equal\n{} passed, 0 failed\n", total));
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
        fs::write(dir.join("cases.tsv"), "0\ta\tGET /a\n1\tb\tGET /b\n2\tc\tGET /c\n").unwrap();
        fs::write(dir.join("results/mtls_native.txt"), "0 200\n1 403\n").unwrap();
        fs::write(dir.join("results/mtls_warden.txt"), "0 200\n1 401\n").unwrap();
        fs::write(dir.join("results/plain_native.txt"), "2 403\n").unwrap();
        fs::write(dir.join("results/plain_warden.txt"), "2 403\n").unwrap();
        let error = check(&dir).unwrap_err().to_string();
        assert!(error.contains("case 1 (b; GET /b): native 403 vs Warden 401"), "{error}");
        assert!(error.contains("2 passed, 1 failed"), "{error}");
        fs::write(dir.join("results/mtls_warden.txt"), "0 200\n1 403\n").unwrap();
        let report = check(&dir).unwrap();
        assert!(report.contains("3 passed, 0 failed"), "{report}");
        fs::remove_dir_all(dir).unwrap();
    }
}
