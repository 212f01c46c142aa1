//! The Envoy harness: Warden against Envoy's native `jwt_authn` and `rbac` filters, in the real
//! Envoy, side by side (`benches/envoy/run.sh`, `make bench-envoy`), and the differential test
//! that proves both sides decide alike (`benches/envoy/diff.sh`).
//!
//! Everything both sides load comes from one source: the policy generator ([`crate::policies`])
//! writes Istio objects; `warden compile` turns them into Warden's filter (`--format ecds`) and
//! into Envoy's native filters as istiod would build them (`--format envoy-native`). This module
//! prepares those inputs ([`prepare`], [`diff::prepare`]) and reads the results ([`report`]);
//! the shell scripts only start and stop processes.
//!
//! [`report`]: crate::report

pub mod bootstrap;
pub mod diff;
pub mod fixtures;
pub mod scale;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;

use crate::policies;
use bootstrap::{Hcm, Listener, Tls};
use fixtures::{Alg, Certificates, Keys};

/// The policy sets both sides load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySet {
    /// No policy at all: Warden loaded with nothing to enforce for the workload.
    Empty,
    /// The generator's 10-rule mesh: authorization only.
    Authz10,
    /// The generator's 1,000-rule mesh: authorization only.
    Authz1000,
    /// The 10-rule mesh and a `RequestAuthentication` with inline keys.
    Jwt10,
    /// The 10-rule mesh and a CUSTOM policy matching every request, whose HTTP provider is
    /// `warden playground authz` on [`authorizer_port`] (the same for both sides).
    Custom10,
}

/// The port of the external authorizer CUSTOM configurations call (`run.sh` starts it).
pub fn authorizer_port(base_port: u16) -> u16 {
    base_port + 200
}

/// The provider's service name and the cluster both sides call it through.
const AUTHORIZER_SERVICE: &str = "bench-authz.local";

impl PolicySet {
    /// The file stem of the set and of the request sent to it.
    pub fn name(self) -> &'static str {
        match self {
            PolicySet::Empty => "none",
            PolicySet::Authz10 => "authz-10",
            PolicySet::Authz1000 => "authz-1000",
            PolicySet::Jwt10 => "jwt-10",
            PolicySet::Custom10 => "custom-10",
        }
    }

    fn all() -> [PolicySet; 5] {
        [
            PolicySet::Empty,
            PolicySet::Authz10,
            PolicySet::Authz1000,
            PolicySet::Jwt10,
            PolicySet::Custom10,
        ]
    }
}

/// What stands before the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filters {
    /// Nothing: the floor.
    None,
    /// An empty Rust proxy-wasm filter (`benches/envoy/empty-filter`): what having a V8 filter
    /// costs.
    EmptyWasm,
    /// The same module with only the callbacks Warden's module exports (`filter/slim`): what
    /// a V8 filter built like Warden costs.
    EmptyWasmSlim,
    /// Envoy's native filters for the set; `jwt_cache` adds `jwt_cache_config`.
    Native {
        /// The policies.
        set: PolicySet,
        /// Whether `jwt_authn` keeps verified tokens.
        jwt_cache: bool,
    },
    /// Warden for the set (`crypto: auto`, its default token cache).
    Warden(PolicySet),
    /// The same with `peerIdentity: xfcc` ([`bootstrap::warden_xfcc_filter`]).
    WardenXfcc(PolicySet),
    /// The same with `log.filterState: all` ([`bootstrap::warden_record_all_filter`]).
    WardenRecordAll(PolicySet),
}

/// Which tokens the requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// None.
    None,
    /// The same RS256 token on every request.
    Reused,
    /// A different token on every request, cycling through a pool larger than Warden's cache.
    Pool(Alg),
}

impl Tokens {
    fn file(self) -> Option<&'static str> {
        match self {
            Tokens::None => None,
            Tokens::Reused => Some("reused"),
            Tokens::Pool(Alg::Rs256) => Some("rs256"),
            Tokens::Pool(Alg::Es256) => Some("es256"),
        }
    }
}

/// Which side a configuration stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A floor (no authentication or authorization).
    Floor,
    /// Envoy's native filters.
    Native,
    /// Warden.
    Warden,
}

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
pub struct Configuration {
    /// Its name in the plan, the results and the table.
    pub name: &'static str,
    /// The configuration number of issue 5 (1 passthrough … 6 rule count).
    pub number: u8,
    /// What it measures, for the table.
    pub title: &'static str,
    /// Floor, native or Warden.
    pub side: Side,
    /// The filters.
    pub filters: Filters,
    /// The request sent (from this set's mesh).
    pub request: PolicySet,
    /// The tokens.
    pub tokens: Tokens,
    /// For a Warden row, the native row it is compared with.
    pub counterpart: Option<&'static str>,
}

/// Every configuration, in the order of each round.
pub const CONFIGURATIONS: [Configuration; 19] = [
    Configuration {
        name: "passthrough",
        number: 1,
        title: "passthrough (router → direct_response)",
        side: Side::Floor,
        filters: Filters::None,
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: None,
    },
    Configuration {
        name: "wasm-empty",
        number: 2,
        title: "empty Rust proxy-wasm filter",
        side: Side::Floor,
        filters: Filters::EmptyWasm,
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: None,
    },
    Configuration {
        name: "wasm-empty-slim",
        number: 2,
        title: "empty Rust proxy-wasm filter, callbacks slimmed like Warden's",
        side: Side::Floor,
        filters: Filters::EmptyWasmSlim,
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: None,
    },
    Configuration {
        name: "warden-idle",
        number: 2,
        title: "Warden with no policy for the workload (its own floor)",
        side: Side::Floor,
        filters: Filters::Warden(PolicySet::Empty),
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: None,
    },
    Configuration {
        name: "authz-native",
        number: 3,
        title: "authorization, 10 rules: native rbac",
        side: Side::Native,
        filters: Filters::Native { set: PolicySet::Authz10, jwt_cache: false },
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: None,
    },
    Configuration {
        name: "authz-warden",
        number: 3,
        title: "authorization, 10 rules: Warden",
        side: Side::Warden,
        filters: Filters::Warden(PolicySet::Authz10),
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: Some("authz-native"),
    },
    Configuration {
        name: "authz-warden-xfcc",
        number: 3,
        title: "authorization, 10 rules: Warden, peer identity from XFCC",
        side: Side::Warden,
        filters: Filters::WardenXfcc(PolicySet::Authz10),
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: Some("authz-native"),
    },
    Configuration {
        name: "authz-warden-record-all",
        number: 3,
        title:
            "authorization, 10 rules: Warden, every decision in filter state (log.filterState: all)",
        side: Side::Warden,
        filters: Filters::WardenRecordAll(PolicySet::Authz10),
        request: PolicySet::Authz10,
        tokens: Tokens::None,
        counterpart: Some("authz-native"),
    },
    Configuration {
        name: "jwt-reused-native",
        number: 4,
        title: "reused RS256 token + authz: jwt_authn (jwt_cache_config) + rbac",
        side: Side::Native,
        filters: Filters::Native { set: PolicySet::Jwt10, jwt_cache: true },
        request: PolicySet::Jwt10,
        tokens: Tokens::Reused,
        counterpart: None,
    },
    Configuration {
        name: "jwt-reused-warden",
        number: 4,
        title: "reused RS256 token + authz: Warden (token cache)",
        side: Side::Warden,
        filters: Filters::Warden(PolicySet::Jwt10),
        request: PolicySet::Jwt10,
        tokens: Tokens::Reused,
        counterpart: Some("jwt-reused-native"),
    },
    Configuration {
        name: "jwt-reused-warden-xfcc",
        number: 4,
        title: "reused RS256 token + authz: Warden (token cache), peer identity from XFCC",
        side: Side::Warden,
        filters: Filters::WardenXfcc(PolicySet::Jwt10),
        request: PolicySet::Jwt10,
        tokens: Tokens::Reused,
        counterpart: Some("jwt-reused-native"),
    },
    Configuration {
        name: "jwt-rs256-native",
        number: 5,
        title: "new RS256 token per request + authz: jwt_authn (no cache) + rbac",
        side: Side::Native,
        filters: Filters::Native { set: PolicySet::Jwt10, jwt_cache: false },
        request: PolicySet::Jwt10,
        tokens: Tokens::Pool(Alg::Rs256),
        counterpart: None,
    },
    Configuration {
        name: "jwt-rs256-warden",
        number: 5,
        title: "new RS256 token per request + authz: Warden (host crypto)",
        side: Side::Warden,
        filters: Filters::Warden(PolicySet::Jwt10),
        request: PolicySet::Jwt10,
        tokens: Tokens::Pool(Alg::Rs256),
        counterpart: Some("jwt-rs256-native"),
    },
    Configuration {
        name: "jwt-es256-native",
        number: 5,
        title: "new ES256 token per request + authz: jwt_authn (no cache) + rbac",
        side: Side::Native,
        filters: Filters::Native { set: PolicySet::Jwt10, jwt_cache: false },
        request: PolicySet::Jwt10,
        tokens: Tokens::Pool(Alg::Es256),
        counterpart: None,
    },
    Configuration {
        name: "jwt-es256-warden",
        number: 5,
        title: "new ES256 token per request + authz: Warden (host crypto)",
        side: Side::Warden,
        filters: Filters::Warden(PolicySet::Jwt10),
        request: PolicySet::Jwt10,
        tokens: Tokens::Pool(Alg::Es256),
        counterpart: Some("jwt-es256-native"),
    },
    Configuration {
        name: "rules1000-native",
        number: 6,
        title: "authorization, 1,000 rules: native rbac",
        side: Side::Native,
        filters: Filters::Native { set: PolicySet::Authz1000, jwt_cache: false },
        request: PolicySet::Authz1000,
        tokens: Tokens::None,
        counterpart: None,
    },
    Configuration {
        name: "rules1000-warden",
        number: 6,
        title: "authorization, 1,000 rules: Warden",
        side: Side::Warden,
        filters: Filters::Warden(PolicySet::Authz1000),
        request: PolicySet::Authz1000,
        tokens: Tokens::None,
        counterpart: Some("rules1000-native"),
    },
    Configuration {
        name: "custom-native",
        number: 7,
        title: "CUSTOM (HTTP authorizer) + authz, 10 rules: ext_authz + rbac",
        side: Side::Native,
        filters: Filters::Native { set: PolicySet::Custom10, jwt_cache: false },
        request: PolicySet::Custom10,
        tokens: Tokens::None,
        counterpart: None,
    },
    Configuration {
        name: "custom-warden",
        number: 7,
        title: "CUSTOM (HTTP authorizer) + authz, 10 rules: Warden",
        side: Side::Warden,
        filters: Filters::Warden(PolicySet::Custom10),
        request: PolicySet::Custom10,
        tokens: Tokens::None,
        counterpart: Some("custom-native"),
    },
];

/// The configuration named `name`.
pub fn configuration_named(name: &str) -> Option<&'static Configuration> {
    CONFIGURATIONS.iter().find(|c| c.name == name)
}

/// What [`prepare`] needs.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Where everything goes (`benches/.run/envoy`): fixtures, compiled filters, bootstraps,
    /// and `plan.tsv` for `run.sh`.
    pub out: PathBuf,
    /// The `warden` command.
    pub warden: PathBuf,
    /// `warden.wasm`.
    pub wasm: PathBuf,
    /// The empty filter's module.
    pub empty_wasm: PathBuf,
    /// The same, with only Warden's callbacks exported (`warden-slim`).
    pub empty_slim_wasm: PathBuf,
    /// Tokens per new-token pool: more than Warden's cache holds (1,024), so none is ever hit.
    pub pool: usize,
    /// Listener `i` listens on `base_port + i`, its admin on `base_port + 100 + i`.
    pub base_port: u16,
}

/// Absolute form of `path` (Envoy runs from another directory).
fn absolute(path: &Path) -> Result<PathBuf> {
    path.canonicalize().with_context(|| format!("{} does not exist", path.display()))
}

/// Writes the policy sets, keys, tokens and certificates; compiles each set both ways with
/// `warden compile`; writes one bootstrap per configuration and `plan.tsv` (name, port, admin
/// port, bootstrap, request, tokens, client certificate, client key, CA), which `run.sh` reads.
pub fn prepare(options: &PrepareOptions) -> Result<()> {
    let out = &options.out;
    for dir in ["policies", "compiled", "requests", "tokens", "envoy", "preflight"] {
        fs::create_dir_all(out.join(dir))?;
    }
    let out = absolute(out)?;
    let wasm = absolute(&options.wasm)?;
    let empty_wasm = absolute(&options.empty_wasm)?;
    let empty_slim_wasm = absolute(&options.empty_slim_wasm)?;
    let keys = Keys::load_or_generate(&out.join("keys"))?;
    let jwks = keys.jwks()?;
    let certs = Certificates::open(&out.join("certs"))?;
    let server = certs.server()?;
    let (ca, client_key) = (certs.ca(), certs.key());
    let tls = Tls { cert: &server, key: &client_key, ca: &ca };

    let settings_path = out.join("policies/settings.json");
    let small = policies::generate(10);
    fs::write(&settings_path, serde_json::to_string_pretty(&fixtures::settings(&small))?)?;
    let custom_settings_path = out.join("policies/settings-custom.json");
    let mut custom_settings = fixtures::settings(&small);
    custom_settings["providers"] = serde_json::json!([{
        "name": "bench-authz",
        "envoyExtAuthzHttp": {
            "service": AUTHORIZER_SERVICE,
            "port": authorizer_port(options.base_port),
            "timeout": "5s",
        },
    }]);
    fs::write(&custom_settings_path, serde_json::to_string_pretty(&custom_settings)?)?;
    let mut requests = Vec::new();
    for set in PolicySet::all() {
        let (mesh, jwt) = match set {
            PolicySet::Empty => {
                let file = out.join("policies/none.yaml");
                fixtures::write_objects(&file, &[])?;
                let ecds = out.join("compiled/none.warden.json");
                compile(&options.warden, &file, &settings_path, "ecds", Some(&wasm), &ecds)?;
                continue;
            }
            PolicySet::Authz10 => (small.clone(), false),
            PolicySet::Authz1000 => (policies::generate(1000), false),
            PolicySet::Jwt10 | PolicySet::Custom10 => (small.clone(), set == PolicySet::Jwt10),
        };
        let mut objects = mesh.policies.clone();
        if jwt {
            objects.push(fixtures::request_authentication(&jwks));
        }
        let settings_path =
            if set == PolicySet::Custom10 { &custom_settings_path } else { &settings_path };
        if set == PolicySet::Custom10 {
            // Every request asks the authorizer: a CUSTOM rule that matches all.
            objects.push(policies::object(
                "bench-custom",
                &mesh.workload.namespace,
                serde_json::json!({
                    "action": "CUSTOM", "provider": { "name": "bench-authz" }, "rules": [{}],
                }),
            ));
        }
        let policy_file = out.join(format!("policies/{}.yaml", set.name()));
        fixtures::write_objects(&policy_file, &objects)?;
        compile(
            &options.warden,
            &policy_file,
            settings_path,
            "envoy-native",
            None,
            &out.join(format!("compiled/{}.native.json", set.name())),
        )?;
        compile(
            &options.warden,
            &policy_file,
            settings_path,
            "ecds",
            Some(&wasm),
            &out.join(format!("compiled/{}.warden.json", set.name())),
        )?;
        let request = fixtures::pick_request(&mesh, jwt)?;
        fs::write(
            out.join(format!("requests/{}.lua", set.name())),
            fixtures::lua_request(&request),
        )?;
        requests.push((set, request));
    }
    let request_of =
        |set: PolicySet| requests.iter().find(|(s, _)| *s == set).map(|(_, r)| r.clone());

    let jwt_request = request_of(PolicySet::Jwt10).context("the JWT request")?;
    let claims = jwt_request.claims.clone().context("the JWT request has claims")?;
    fixtures::token_pool(&keys, Alg::Rs256, &claims, 1, &out.join("tokens/reused.txt"))?;
    fixtures::token_pool(&keys, Alg::Rs256, &claims, options.pool, &out.join("tokens/rs256.txt"))?;
    fixtures::token_pool(&keys, Alg::Es256, &claims, options.pool, &out.join("tokens/es256.txt"))?;

    let mut plan = String::new();
    for (index, config) in CONFIGURATIONS.iter().enumerate() {
        let offset = u16::try_from(index)?;
        let port = options.base_port + offset;
        let admin = options.base_port + 100 + offset;
        let warden_ecds =
            |set: PolicySet| read_json(&out.join(format!("compiled/{}.warden.json", set.name())));
        let (filters, network_filters) = match config.filters {
            Filters::None => (Vec::new(), Vec::new()),
            Filters::EmptyWasm => (vec![bootstrap::empty_wasm_filter(&empty_wasm)], Vec::new()),
            Filters::EmptyWasmSlim => {
                (vec![bootstrap::empty_wasm_filter(&empty_slim_wasm)], Vec::new())
            }
            Filters::Native { set, jwt_cache } => (
                bootstrap::native_filters(
                    &read_json(&out.join(format!("compiled/{}.native.json", set.name())))?,
                    jwt_cache,
                )?,
                Vec::new(),
            ),
            // Warden's rows run as a sidecar runs Warden: the HTTP filter, and the network
            // filter that hands over the direct peer (the generated policies use ipBlocks).
            Filters::Warden(set) => {
                let ecds = warden_ecds(set)?;
                (
                    vec![bootstrap::warden_filter(&ecds)?],
                    vec![bootstrap::warden_connection_filter(&ecds)?],
                )
            }
            Filters::WardenXfcc(set) => {
                let ecds = warden_ecds(set)?;
                (
                    vec![bootstrap::warden_xfcc_filter(&ecds)?],
                    vec![bootstrap::warden_connection_filter(&ecds)?],
                )
            }
            Filters::WardenRecordAll(set) => {
                let ecds = warden_ecds(set)?;
                (
                    vec![bootstrap::warden_record_all_filter(&ecds)?],
                    vec![bootstrap::warden_connection_filter(&ecds)?],
                )
            }
        };
        let listener = Listener {
            name: config.name.replace('-', "_"),
            port,
            mtls: true,
            hcm: Hcm::Playground,
            network_filters,
            filters,
        };
        let bootstrap_path = out.join(format!("envoy/{}.json", config.name));
        let mut envoy = bootstrap::bootstrap(admin, &[listener], &tls);
        if config.request == PolicySet::Custom10 {
            let cluster =
                format!("outbound|{}||{AUTHORIZER_SERVICE}", authorizer_port(options.base_port));
            bootstrap::add_cluster(&mut envoy, &cluster, authorizer_port(options.base_port));
        }
        fs::write(&bootstrap_path, serde_json::to_string_pretty(&envoy)?)?;

        let request = request_of(config.request).context("the configuration's request")?;
        let peer = request.peer.clone().context("harness requests carry a peer identity")?;
        let client = certs.client(&peer)?;
        let tokens = config.tokens.file().map(|f| out.join(format!("tokens/{f}.txt")));
        let first_token = match &tokens {
            Some(path) => fs::read_to_string(path)?.lines().next().map(str::to_string),
            None => None,
        };
        fs::write(
            out.join(format!("preflight/{}.curl", config.name)),
            diff::curl_block(&diff::CurlRequest {
                url: format!("https://127.0.0.1:{port}{}", request.path),
                method: &request.method,
                host: &request.host,
                headers: &request.headers,
                authorization: first_token.map(|t| format!("Bearer {t}")).as_deref(),
                cert: Some((&client, &client_key)),
                ca: &ca,
                write_out: "%{http_code}",
            }),
        )?;
        let tokens = tokens.map(|p| p.display().to_string()).unwrap_or_else(|| "-".into());
        plan.push_str(&format!(
            "{}\t{port}\t{admin}\t{}\t{}\t{tokens}\t{}\t{}\t{}\n",
            config.name,
            bootstrap_path.display(),
            out.join(format!("requests/{}.lua", config.request.name())).display(),
            client.display(),
            client_key.display(),
            ca.display(),
        ));
    }
    fs::write(out.join("plan.tsv"), plan)?;
    Ok(())
}

/// `warden compile FILE --settings SETTINGS --format FORMAT [--wasm WASM] -o OUT`.
pub fn compile(
    warden: &Path,
    policies: &Path,
    settings: &Path,
    format: &str,
    wasm: Option<&Path>,
    out: &Path,
) -> Result<()> {
    let mut command = Command::new(warden);
    command.arg("compile").arg(policies).arg("--settings").arg(settings).args(["--format", format]);
    if let Some(wasm) = wasm {
        command.arg("--wasm").arg(wasm);
    }
    command.arg("-o").arg(out);
    let output = command.output().with_context(|| format!("running {}", warden.display()))?;
    ensure!(
        output.status.success(),
        "warden compile {} --format {format} failed:\n{}",
        policies.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn every_warden_row_has_a_native_counterpart_with_the_same_load() {
        for config in CONFIGURATIONS.iter().filter(|c| c.side == Side::Warden) {
            let native = configuration_named(config.counterpart.unwrap()).unwrap();
            assert_eq!(native.side, Side::Native, "{}", config.name);
            assert_eq!(
                (native.request, native.tokens, native.number),
                (config.request, config.tokens, config.number)
            );
        }
        let names: std::collections::BTreeSet<_> = CONFIGURATIONS.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), CONFIGURATIONS.len());
    }

    #[test]
    fn floors_send_the_authorization_request() {
        for config in CONFIGURATIONS.iter().filter(|c| c.side == Side::Floor) {
            assert_eq!((config.request, config.tokens), (PolicySet::Authz10, Tokens::None));
        }
    }
}
