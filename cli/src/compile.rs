//! `warden compile`: Kubernetes YAML in, Warden's plugin configuration out.
//!
//! Two output forms:
//! - **plugin-config**: the JSON a `WasmPlugin.pluginConfig` or an Envoy Wasm `configuration`
//!   carries: `{"policies": [...], "rootNamespace": ..., ...}`.
//! - **ecds**: a filesystem ECDS resource file (`resources: [TypedExtensionConfig]`) holding
//!   Envoy's whole Wasm filter configuration, with the plugin configuration embedded as a
//!   `google.protobuf.StringValue` of JSON — what Istio's WasmPlugin produces, and what a
//!   sidecar's `config_discovery` watches. Rewriting that file reloads every sidecar live.
//!
//! Reading and validating the input is [`crate::analysis`], shared with `check` and `explain`
//! (so `compile` refuses exactly what `check` reports as errors); [`for_workload`] narrows the
//! objects to one workload's, [`plugin_config`] adds the settings, [`ecds_resource`] wraps it.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use warden::config::scope::selects;
use warden::config::{PluginConfig, Resource, Workload};

use crate::analysis::Entry;

/// The output form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The plugin configuration JSON (`WasmPlugin.pluginConfig`, Envoy's `configuration`).
    PluginConfig,
    /// A filesystem ECDS resource file for Envoy's `config_discovery`.
    Ecds,
    /// An Istio `WasmPlugin` (Istio 1.12+) carrying the policies in `pluginConfig`.
    Wasmplugin,
    /// An Istio `EnvoyFilter` inserting the Wasm filter, for Istio releases before `WasmPlugin`.
    Envoyfilter,
    /// Envoy's native `jwt_authn` and `rbac` filters for the same policies, as istiod builds
    /// them for one workload (`--workload`, or `workload` in the settings): what Warden is
    /// compared against.
    EnvoyNative,
}

impl Format {
    /// The spelling on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::PluginConfig => "plugin-config",
            Format::Ecds => "ecds",
            Format::Wasmplugin => "wasmplugin",
            Format::Envoyfilter => "envoyfilter",
            Format::EnvoyNative => "envoy-native",
        }
    }

    /// Where the module is by default, as the consumer of this output resolves it: a path
    /// relative to the repository root for the playground's sidecars; a file in the
    /// `istio-proxy` container (mounted with the `sidecar.istio.io/userVolume*` annotations)
    /// for Istio.
    pub fn default_wasm(self) -> &'static str {
        match self {
            Format::PluginConfig | Format::Ecds | Format::EnvoyNative => {
                "target/wasm32-wasip1/wasm/warden.wasm"
            }
            Format::Wasmplugin => "file:///var/local/lib/wasm-filters/warden.wasm",
            Format::Envoyfilter => "/var/local/lib/wasm-filters/warden.wasm",
        }
    }
}

/// Envoy's `Wasm.failure_policy`: what a sidecar does when the VM has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailurePolicy {
    /// Refuse every request while the VM is broken (Istio's `failStrategy: FAIL_CLOSE`).
    FailClosed,
    /// Answer the failing request 503 and start a new VM for the next ones.
    FailReload,
}

impl FailurePolicy {
    fn envoy_name(self) -> &'static str {
        match self {
            FailurePolicy::FailClosed => "FAIL_CLOSED",
            FailurePolicy::FailReload => "FAIL_RELOAD",
        }
    }
}

/// How the ECDS resource loads the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsOptions {
    /// The resource name: must equal the `name` of the sidecars' `config_discovery` filter.
    pub name: String,
    /// Path of `warden.wasm` as Envoy resolves it (relative to Envoy's working directory).
    pub wasm: String,
    /// The VM id: filters with the same id and code share one VM per worker.
    pub vm_id: String,
    /// See [`FailurePolicy`].
    pub failure_policy: FailurePolicy,
    /// wasmplugin: one `WasmPlugin` per namespace with policies of its own (see
    /// [`split_by_namespace`]), also chosen when one would exceed [`MAX_PLUGIN_CONFIG_BYTES`].
    pub split: bool,
    /// wasmplugin: the module's pin (`WasmPlugin.sha256`, hex) and `imagePullPolicy`.
    pub pin: ModulePin,
}

/// How a `WasmPlugin` pins its module. Istio compares `sha256` with the SHA-256 of the module
/// for `file://` and `https://` URLs and with the image's manifest digest for `oci://` ones
/// (istio/istio `pkg/wasm/cache.go`, `getOrFetch`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulePin {
    pub sha256: Option<String>,
    pub image_pull_policy: Option<&'static str>,
}

impl Default for EcdsOptions {
    fn default() -> Self {
        EcdsOptions {
            name: "warden".into(),
            wasm: "target/wasm32-wasip1/wasm/warden.wasm".into(),
            vm_id: "warden".into(),
            split: false,
            failure_policy: FailurePolicy::FailClosed,
            pin: ModulePin::default(),
        }
    }
}

/// The object as Warden needs it: `apiVersion`, `kind`, `metadata.{name, namespace}`, the
/// `istio.io/*` and `warden.io/*` annotations (`istio.io/dry-run`,
/// `warden.io/certificate-bound-tokens`: dropping one would weaken the policy), and `spec`. Objects exported from a cluster
/// carry `status`, `managedFields` and `kubectl.kubernetes.io/last-applied-configuration` (a
/// second copy of the object); none of it belongs in every sidecar's memory.
pub fn trim(object: &Value) -> Value {
    let get = |key: &str| object.get(key).cloned();
    let metadata = object.get("metadata");
    let mut meta = Map::new();
    for key in ["name", "namespace"] {
        if let Some(value) = metadata.and_then(|m| m.get(key)) {
            meta.insert(key.into(), value.clone());
        }
    }
    let annotations: Map<String, Value> = metadata
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter(|(k, _)| k.starts_with("istio.io/") || k.starts_with("warden.io/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), get("apiVersion").unwrap_or(Value::Null));
    out.insert("kind".into(), get("kind").unwrap_or(Value::Null));
    out.insert("metadata".into(), Value::Object(meta));
    out.insert("spec".into(), get("spec").unwrap_or_else(|| json!({})));
    Value::Object(out)
}

/// The objects that apply to `workload` (its namespace's and the root namespace's, whose
/// selectors its labels satisfy), as istiod chooses them for one sidecar.
pub fn for_workload<'e>(
    entries: &'e [Entry],
    workload: &'e Workload,
    root_namespace: &'e str,
) -> impl Iterator<Item = &'e Entry> {
    entries.iter().filter(move |entry| {
        let (namespace, selector) = match &entry.resource {
            Resource::AuthorizationPolicy(o) => (&o.metadata.namespace, o.spec.selector.as_ref()),
            Resource::RequestAuthentication(o) => (&o.metadata.namespace, o.spec.selector.as_ref()),
        };
        selects(namespace, selector, workload, root_namespace)
    })
}

/// The plugin configuration: `settings` (validated by [`crate::analysis::read_settings`]) with
/// `policies` and, when given, the `workload` it is for.
pub fn plugin_config(
    policies: impl IntoIterator<Item = Value>,
    settings: &PluginConfig,
    workload: Option<&Workload>,
) -> Result<Value> {
    if !settings.policies.is_empty() {
        bail!("the settings carry policies: pass policy files as arguments instead");
    }
    let mut config = settings.clone();
    if let Some(workload) = workload {
        config.workload = Some(workload.clone());
    }
    let mut value =
        serde_json::to_value(&config).context("serializing the plugin configuration")?;
    // The objects are moved in, not copied: at mesh scale they are most of the memory.
    value["policies"] = Value::Array(policies.into_iter().collect());
    Ok(value)
}

/// The filesystem ECDS resource file carrying the Wasm filter with `plugin_config` embedded as a
/// JSON `StringValue` (the form Istio's WasmPlugin produces; a `Struct` would reach the module
/// as serialized protobuf).
pub fn ecds_resource(plugin_config: &Value, options: &EcdsOptions) -> Value {
    json!({
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": options.name,
            "typed_config": wasm_filter(plugin_config, options),
        }]
    })
}

/// The Wasm filter configuration (`envoy.extensions.filters.http.wasm.v3.Wasm`) that ECDS and
/// the EnvoyFilter carry.
fn wasm_filter(plugin_config: &Value, options: &EcdsOptions) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": options.name,
            "root_id": options.name,
            "vm_config": {
                "vm_id": options.vm_id,
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": options.wasm}},
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": plugin_config.to_string(),
            },
            "failure_policy": options.failure_policy.envoy_name(),
        }
    })
}

/// The network filter (`envoy.filters.network.wasm`) that loads the same module with
/// `role: connection`, before the HTTP connection manager: it hands each connection's direct
/// peer address to the HTTP filter, for `ipBlocks` and `source.ip`. Same `vm_id` and code as
/// the HTTP filter, so both run in one VM per worker.
pub fn connection_filter(options: &EcdsOptions) -> Value {
    json!({
        "name": format!("{}.connection", options.name),
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
            "config": {
                "name": format!("{}.connection", options.name),
                "root_id": format!("{}.connection", options.name),
                "vm_config": {
                    "vm_id": options.vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": options.wasm}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": CONNECTION_ROLE_CONFIG,
                },
                "failure_policy": "FAIL_CLOSED",
            }
        }
    })
}

/// The network filter's whole plugin configuration.
pub const CONNECTION_ROLE_CONFIG: &str = r#"{"role":"connection"}"#;

/// The network `WasmPlugin` (Istio 1.20+, `type: NETWORK`): the same module in the role that
/// hands the direct peer's address to the HTTP filter. Istio puts NETWORK plugins of an inbound
/// HTTP chain before its connection manager, in any phase
/// (`pilot/pkg/networking/core/listener_inbound.go` `buildInboundNetworkFiltersForHTTP`).
pub fn connection_wasm_plugin(options: &EcdsOptions, namespace: &str) -> Value {
    pinned(
        options,
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": format!("{}-connection", options.name), "namespace": namespace},
            "spec": {
                "url": options.wasm,
                "pluginName": format!("{}.connection", options.name),
                "type": "NETWORK",
                "phase": "AUTHN",
                "failStrategy": "FAIL_CLOSE",
                "match": [{"mode": "SERVER"}],
                "pluginConfig": {"role": "connection"},
            }
        }),
    )
}

/// An Istio `WasmPlugin` in `namespace` (the root namespace: every sidecar of the mesh) that
/// loads the module from `options.wasm` (a `file://`, `oci://` or `https://` URL) for inbound
/// traffic, with the plugin configuration as `pluginConfig` (Istio hands it to the module as a
/// JSON string). Phase AUTHN puts Warden before Istio's own JWT and RBAC filters.
pub fn wasm_plugin(plugin_config: &Value, options: &EcdsOptions, namespace: &str) -> Value {
    let fail_strategy = match options.failure_policy {
        FailurePolicy::FailClosed => "FAIL_CLOSE",
        FailurePolicy::FailReload => "FAIL_RELOAD",
    };
    pinned(
        options,
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": options.name, "namespace": namespace},
            "spec": {
                "url": options.wasm,
                "pluginName": options.name,
                "phase": "AUTHN",
                "failStrategy": fail_strategy,
                "match": [{"mode": "SERVER"}],
                "pluginConfig": plugin_config,
            }
        }),
    )
}

/// Adds the module's pin to a `WasmPlugin`.
fn pinned(options: &EcdsOptions, mut plugin: Value) -> Value {
    if let Some(spec) = plugin.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(sha256) = &options.pin.sha256 {
            spec.insert("sha256".into(), sha256.as_str().into());
        }
        if let Some(policy) = options.pin.image_pull_policy {
            spec.insert("imagePullPolicy".into(), policy.into());
        }
    }
    plugin
}

/// The largest `pluginConfig` one `WasmPlugin` carries: Kubernetes refuses objects over about
/// 1.5 MiB (etcd's request limit), and the manifest needs room beside it.
pub const MAX_PLUGIN_CONFIG_BYTES: usize = 1024 * 1024;

/// Splits a mesh's plugin configuration into one per namespace that has policies of its own,
/// each carrying the root namespace's policies too (so it decides its namespace's workloads
/// alone), and one for the root namespace carrying the root policies with those namespaces in
/// `excludeNamespaces` (so every other workload still gets the mesh-wide policies, and none
/// gets two configurations that both decide). `None` names the root configuration.
pub fn split_by_namespace(plugin_config: &Value) -> Result<Vec<(Option<String>, Value)>> {
    let root = plugin_config["rootNamespace"].as_str().unwrap_or("istio-system").to_string();
    let policies = plugin_config["policies"].as_array().cloned().unwrap_or_default();
    let namespace_of =
        |p: &Value| p["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let (root_policies, others): (Vec<Value>, Vec<Value>) =
        policies.into_iter().partition(|p| namespace_of(p) == root);
    let mut by_namespace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for policy in others {
        by_namespace.entry(namespace_of(&policy)).or_default().push(policy);
    }
    let with = |policies: Vec<Value>, exclude: Vec<String>| {
        let mut config = plugin_config.clone();
        config["policies"] = Value::Array(policies);
        if !exclude.is_empty() {
            config["excludeNamespaces"] = json!(exclude);
        }
        config
    };
    let mut out = vec![(None, with(root_policies.clone(), by_namespace.keys().cloned().collect()))];
    for (namespace, policies) in by_namespace {
        let mut all = root_policies.clone();
        all.extend(policies);
        out.push((Some(namespace), with(all, Vec::new())));
    }
    for (namespace, config) in &out {
        let size = config.to_string().len();
        if size > MAX_PLUGIN_CONFIG_BYTES {
            bail!(
                "the plugin configuration for {} is {size} bytes, over the {MAX_PLUGIN_CONFIG_BYTES} one WasmPlugin can carry: split that namespace's policies by workload with --workload, or serve it with the ecds form",
                namespace.as_deref().map_or_else(|| format!("the root namespace {root}"), |ns| format!("namespace {ns}"))
            );
        }
    }
    Ok(out)
}

/// An Istio `EnvoyFilter` in `namespace` inserting the Wasm filter before the router of every
/// sidecar's inbound HTTP connection manager (for Istio releases without `WasmPlugin`), and,
/// with `direct_peer`, the network filter before the connection manager.
pub fn envoy_filter(
    plugin_config: &Value,
    options: &EcdsOptions,
    namespace: &str,
    direct_peer: bool,
) -> Value {
    let hcm = "envoy.filters.network.http_connection_manager";
    let mut patches = vec![json!({
        "applyTo": "HTTP_FILTER",
        "match": {
            "context": "SIDECAR_INBOUND",
            "listener": {"filterChain": {"filter": {
                "name": hcm,
                "subFilter": {"name": "envoy.filters.http.router"},
            }}},
        },
        "patch": {
            "operation": "INSERT_BEFORE",
            "value": {"name": options.name, "typed_config": wasm_filter(plugin_config, options)},
        },
    })];
    if direct_peer {
        patches.push(json!({
            "applyTo": "NETWORK_FILTER",
            "match": {
                "context": "SIDECAR_INBOUND",
                "listener": {"filterChain": {"filter": {"name": hcm}}},
            },
            "patch": {"operation": "INSERT_BEFORE", "value": connection_filter(options)},
        }));
    }
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": options.name, "namespace": namespace},
        "spec": {"configPatches": patches}
    })
}

/// Renders the output: pretty JSON for `plugin-config`; for the others YAML with a header
/// saying where it came from, or pretty JSON when `json` (for tools without a YAML parser;
/// Envoy reads both). `namespace` is where the Istio manifests go.
#[allow(clippy::too_many_arguments)]
pub fn render(
    format: Format,
    plugin_config: &Value,
    options: &EcdsOptions,
    namespace: &str,
    inputs: &[String],
    json: bool,
    direct_peer: bool,
) -> Result<String> {
    let command = format!("warden compile {} --format {}", inputs.join(" "), format.name());
    let (manifests, notes) = match format {
        Format::PluginConfig => {
            let mut text = serde_json::to_string_pretty(plugin_config)?;
            text.push('\n');
            return Ok(text);
        }
        Format::Ecds => (
            vec![ecds_resource(plugin_config, options)],
            if direct_peer {
                "# Envoy watches this file (filesystem ECDS); replacing it reloads every sidecar.\n\
                 # The policies read ipBlocks or source.ip: each inbound listener needs the\n\
                 # network filter that hands over the direct peer's address before its HTTP\n\
                 # connection manager (envoy/README.md, docs/compatibility.md#addresses).\n"
            } else {
                "# Envoy watches this file (filesystem ECDS); replacing it reloads every sidecar.\n"
            },
        ),
        Format::Wasmplugin => {
            let split = options.split
                || plugin_config.to_string().len() > MAX_PLUGIN_CONFIG_BYTES;
            let mut manifests = if split {
                split_by_namespace(plugin_config)?
                    .into_iter()
                    .map(|(own, config)| match own {
                        None => wasm_plugin(&config, options, namespace),
                        Some(own) => {
                            let options = EcdsOptions {
                                name: format!("{}-{own}", options.name),
                                ..options.clone()
                            };
                            wasm_plugin(&config, &options, &own)
                        }
                    })
                    .collect()
            } else {
                vec![wasm_plugin(plugin_config, options, namespace)]
            };
            if direct_peer {
                manifests.push(connection_wasm_plugin(options, namespace));
            }
            (
                manifests,
                if direct_peer {
                    "# Warden for every sidecar of an Istio 1.20+ mesh, with the policies in\n\
                     # pluginConfig, and (the policies read ipBlocks or source.ip) the same\n\
                     # module as a NETWORK plugin that hands the direct peer's address over.\n\
                     # Do not also `kubectl apply` the same AuthorizationPolicy and\n\
                     # RequestAuthentication objects, or Istio enforces them a second time.\n"
                } else {
                    "# Warden for every sidecar of an Istio 1.12+ mesh, with the policies in pluginConfig.\n\
                     # Do not also `kubectl apply` the same AuthorizationPolicy and RequestAuthentication\n\
                     # objects, or Istio enforces them a second time with its native filters.\n"
                },
            )
        }
        Format::Envoyfilter => (
            vec![envoy_filter(plugin_config, options, namespace, direct_peer)],
            "# For Istio releases without WasmPlugin: inserts Warden into every sidecar's inbound\n\
             # HTTP filters. Use this or the WasmPlugin, never both.\n",
        ),
        Format::EnvoyNative => bail!("envoy-native is rendered by crate::native::compile"),
    };
    if json {
        let manifest = match <[Value; 1]>::try_from(manifests) {
            Ok([one]) => one,
            Err(many) => json!({"apiVersion": "v1", "kind": "List", "items": many}),
        };
        let mut text = serde_json::to_string_pretty(&manifest)?;
        text.push('\n');
        return Ok(text);
    }
    let mut body = String::new();
    for (i, manifest) in manifests.iter().enumerate() {
        if i > 0 {
            body.push_str("---\n");
        }
        body.push_str(&serde_yaml_ng::to_string(manifest)?);
    }
    Ok(format!("# Generated by `{command}`: do not edit.\n{notes}{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{analyze, Analysis};
    use crate::k8s;
    use serde::Deserialize;
    use std::path::Path;

    const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-frontend
  namespace: api
  uid: 1234
  annotations:
    istio.io/dry-run: "true"
    kubectl.kubernetes.io/last-applied-configuration: "{...}"
  managedFields: [{manager: kubectl}]
spec:
  selector: {matchLabels: {app: backend}}
  rules: [{from: [{source: {principals: [cluster.local/ns/web/sa/frontend]}}]}]
status: {}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: api}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: api}
spec:
  jwtRules: [{issuer: "http://issuer", jwksUri: "http://issuer/jwks"}]
"#;

    fn analysis(text: &str) -> Analysis {
        let (documents, syntax_errors) = k8s::parse_all(Path::new("p.yaml"), text);
        let loaded = k8s::Loaded { documents, syntax_errors, files: 1 };
        analyze(loaded, PluginConfig::default(), "default")
    }

    fn policies(text: &str) -> Vec<Value> {
        let analysis = analysis(text);
        assert!(analysis.error_lines().is_empty(), "{:?}", analysis.error_lines());
        analysis.entries.iter().map(crate::analysis::Entry::value).collect()
    }

    #[test]
    fn keeps_istio_security_objects_and_skips_other_kinds() {
        let analysis = analysis(POLICIES);
        assert_eq!(analysis.entries.len(), 2);
        assert_eq!(analysis.entries[1].value()["kind"], "RequestAuthentication");
        assert_eq!(analysis.skipped.len(), 1);
        assert_eq!(analysis.skipped[0].0.document, 2);
        assert_eq!(analysis.skipped[0].1, "apps/v1/Deployment");
    }

    #[test]
    fn trims_cluster_bookkeeping_but_keeps_istio_annotations() {
        let policy = &policies(POLICIES)[0];
        assert_eq!(
            policy["metadata"],
            json!({"name": "allow-frontend", "namespace": "api", "annotations": {"istio.io/dry-run": "true"}})
        );
        assert!(policy.get("status").is_none());
        assert_eq!(policy["spec"]["selector"]["matchLabels"]["app"], "backend");
    }

    #[test]
    fn keeps_wardens_own_annotations() {
        let object = json!({"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": "bound", "namespace": "api", "annotations": {
                "warden.io/certificate-bound-tokens": "true", "example.com/owner": "x"}},
            "spec": {}});
        assert_eq!(
            trim(&object)["metadata"]["annotations"],
            json!({"warden.io/certificate-bound-tokens": "true"})
        );
    }

    #[test]
    fn for_workload_keeps_what_selects_it() {
        let analysis = analysis(POLICIES);
        let backend = Workload {
            namespace: "api".into(),
            labels: [("app".to_string(), "backend".to_string())].into(),
        };
        assert_eq!(for_workload(&analysis.entries, &backend, "istio-system").count(), 2);
        let other = Workload { namespace: "api".into(), labels: Default::default() };
        let names: Vec<_> = for_workload(&analysis.entries, &other, "istio-system")
            .map(|e| e.object.name.clone())
            .collect();
        assert_eq!(
            names,
            ["jwt"],
            "the policy selects app=backend; the RequestAuthentication has no selector"
        );
        let elsewhere = Workload { namespace: "web".into(), labels: Default::default() };
        assert_eq!(for_workload(&analysis.entries, &elsewhere, "istio-system").count(), 0);
        assert_eq!(for_workload(&analysis.entries, &elsewhere, "api").count(), 1, "root namespace");
    }

    #[test]
    fn plugin_config_adds_policies_and_workload_to_the_settings() {
        let settings: PluginConfig = serde_json::from_value(
            json!({"rootNamespace": "mesh-root", "jwks": {"refreshInterval": "60s"}}),
        )
        .unwrap();
        let config = plugin_config(vec![json!({"kind": "X"})], &settings, None).unwrap();
        assert_eq!(config["rootNamespace"], "mesh-root");
        assert_eq!(config["jwks"]["refreshInterval"], "60s");
        assert_eq!(config["policies"], json!([{"kind": "X"}]));
        assert!(config.get("workload").is_none());
        let defaults = PluginConfig::default();
        assert_eq!(plugin_config(vec![], &defaults, None).unwrap()["trustDomain"], "cluster.local");
        let workload = Workload { namespace: "api".into(), labels: Default::default() };
        let config = plugin_config(vec![], &defaults, Some(&workload)).unwrap();
        assert_eq!(config["workload"], json!({"namespace": "api"}));
    }

    #[test]
    fn ecds_embeds_the_plugin_config_as_a_json_string_value() {
        let config = plugin_config(vec![], &PluginConfig::default(), None).unwrap();
        let resource = ecds_resource(&config, &EcdsOptions::default());
        let wasm = &resource["resources"][0]["typed_config"]["config"];
        assert_eq!(resource["resources"][0]["name"], "warden");
        assert_eq!(
            wasm["configuration"]["@type"],
            "type.googleapis.com/google.protobuf.StringValue"
        );
        let embedded: Value =
            serde_json::from_str(wasm["configuration"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(embedded, config);
        assert_eq!(
            wasm["vm_config"]["code"]["local"]["filename"],
            "target/wasm32-wasip1/wasm/warden.wasm"
        );
        assert_eq!(wasm["failure_policy"], "FAIL_CLOSED");
    }

    #[test]
    fn rendered_ecds_yaml_reads_back_to_the_same_resource() {
        let config = plugin_config(policies(POLICIES), &PluginConfig::default(), None).unwrap();
        let options = EcdsOptions::default();
        let text = render(
            Format::Ecds,
            &config,
            &options,
            "istio-system",
            &["p.yaml".into()],
            false,
            false,
        )
        .unwrap();
        assert!(text.starts_with("# Generated by `warden compile p.yaml --format ecds`"));
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, ecds_resource(&config, &options));
        let json =
            render(Format::Ecds, &config, &options, "istio-system", &[], true, false).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), back);
    }

    #[test]
    fn wasm_plugin_carries_the_plugin_config_for_inbound_traffic() {
        let config = plugin_config(policies(POLICIES), &PluginConfig::default(), None).unwrap();
        let options = EcdsOptions {
            wasm: Format::Wasmplugin.default_wasm().into(),
            ..EcdsOptions::default()
        };
        let plugin = wasm_plugin(&config, &options, "istio-system");
        assert_eq!(plugin["kind"], "WasmPlugin");
        assert_eq!(plugin["metadata"]["namespace"], "istio-system");
        assert_eq!(plugin["spec"]["pluginConfig"], config);
        assert_eq!(plugin["spec"]["url"], "file:///var/local/lib/wasm-filters/warden.wasm");
        assert_eq!(plugin["spec"]["failStrategy"], "FAIL_CLOSE");
        assert_eq!(plugin["spec"]["match"], json!([{"mode": "SERVER"}]));
    }

    #[test]
    fn a_direct_peer_adds_the_network_filter_in_every_istio_form() {
        let config = plugin_config(vec![], &PluginConfig::default(), None).unwrap();
        let options = EcdsOptions::default();
        let filter = envoy_filter(&config, &options, "istio-system", true);
        let network = &filter["spec"]["configPatches"][1];
        assert_eq!(network["applyTo"], "NETWORK_FILTER");
        assert_eq!(network["patch"]["operation"], "INSERT_BEFORE");
        assert_eq!(
            network["match"]["listener"]["filterChain"]["filter"]["name"],
            "envoy.filters.network.http_connection_manager"
        );
        let wasm = &network["patch"]["value"]["typed_config"]["config"];
        assert_eq!(wasm["configuration"]["value"], CONNECTION_ROLE_CONFIG);
        // One VM per worker for both filters: same vm_id and code.
        let http = &ecds_resource(&config, &options)["resources"][0]["typed_config"]["config"];
        assert_eq!(wasm["vm_config"], http["vm_config"]);
        let text = render(Format::Wasmplugin, &config, &options, "istio-system", &[], false, true)
            .unwrap();
        let plugins: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(plugins.len(), 2);
        assert_eq!(plugins[1]["spec"]["type"], "NETWORK");
        assert_eq!(plugins[1]["spec"]["pluginConfig"], json!({"role": "connection"}));
        assert_eq!(plugins[1]["spec"]["url"], plugins[0]["spec"]["url"]);
    }

    #[test]
    fn envoy_filter_inserts_the_same_wasm_filter_before_the_inbound_router() {
        let config = plugin_config(vec![], &PluginConfig::default(), None).unwrap();
        let options = EcdsOptions::default();
        let filter = envoy_filter(&config, &options, "istio-system", false);
        assert_eq!(filter["spec"]["configPatches"].as_array().unwrap().len(), 1);
        let patch = &filter["spec"]["configPatches"][0];
        assert_eq!(patch["match"]["context"], "SIDECAR_INBOUND");
        assert_eq!(patch["patch"]["operation"], "INSERT_BEFORE");
        assert_eq!(
            patch["patch"]["value"]["typed_config"],
            ecds_resource(&config, &options)["resources"][0]["typed_config"]
        );
    }
    /// The split WasmPlugins decide every workload as the one configuration does: for each
    /// workload, the plugins Istio applies to it (the root namespace's, and its own
    /// namespace's) all run, and a request passes only if every one lets it.
    #[test]
    fn split_wasm_plugins_decide_every_workload_as_the_single_configuration() {
        use warden::authn::{KeyProvider, Keys, PureRust, SourceId, TokenCache};
        use warden::enforcer::{Enforcer, Verdict};
        use warden::request::{Observed, OwnedRequest, Peer};
        struct NoKeys;
        impl KeyProvider for NoKeys {
            fn keys(&self, _: SourceId) -> Keys<'_> {
                Keys::Unavailable
            }
        }
        let ap = |name: &str, ns: &str, spec: Value| {
            json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                   "metadata": {"name": name, "namespace": ns}, "spec": spec})
        };
        let policies = vec![
            ap("allow-nothing", "istio-system", json!({})),
            ap(
                "deny-debug",
                "istio-system",
                json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/debug/*"]}}]}]}),
            ),
            ap(
                "health",
                "istio-system",
                json!({"rules": [{"to": [{"operation": {"paths": ["/healthz"]}}]}]}),
            ),
            ap(
                "web-api",
                "a",
                json!({"selector": {"matchLabels": {"app": "web"}}, "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}),
            ),
            ap(
                "web-no-delete",
                "a",
                json!({"selector": {"matchLabels": {"app": "web"}}, "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}),
            ),
            ap(
                "public",
                "a",
                json!({"rules": [{"to": [{"operation": {"paths": ["/public/*"]}}]}]}),
            ),
            ap("from-a", "b", json!({"rules": [{"from": [{"source": {"namespaces": ["a"]}}]}]})),
            ap("audit", "b", json!({"action": "AUDIT", "rules": [{}]})),
        ];
        let single = plugin_config(policies, &PluginConfig::default(), None).unwrap();
        let split = split_by_namespace(&single).unwrap();
        assert_eq!(split.len(), 3, "root, a, b");
        assert_eq!(split[0].1["excludeNamespaces"], json!(["a", "b"]));
        let enforcer = |config: &Value, workload: &Workload| {
            let config = <PluginConfig as serde::Deserialize>::deserialize(config).unwrap();
            Enforcer::new(&config, Some(workload.clone())).unwrap()
        };
        let status = |e: &Enforcer, request: &OwnedRequest| match request
            .with(|r| e.check(r, 0, &NoKeys, &mut TokenCache::new(1), &PureRust))
        {
            Verdict::Allow(_) => 200,
            Verdict::Deny(deny) => deny.status,
            Verdict::Wait { .. } => 0,
        };
        let mut compared = 0;
        for (ns, app) in
            [("a", "web"), ("a", "other"), ("b", "x"), ("c", "y"), ("istio-system", "z")]
        {
            let workload = Workload {
                namespace: ns.into(),
                labels: [("app".to_string(), app.to_string())].into(),
            };
            let whole = enforcer(&single, &workload);
            // What Istio applies to this workload: root-namespace plugins, and its namespace's.
            let applied: Vec<Enforcer> = split
                .iter()
                .filter(|(own, _)| own.as_deref().is_none_or(|own| own == ns))
                .map(|(_, config)| enforcer(config, &workload))
                .collect();
            for path in ["/api/x", "/public/x", "/healthz", "/debug/x", "/other"] {
                for method in ["GET", "DELETE"] {
                    for peer in
                        ["spiffe://cluster.local/ns/a/sa/s", "spiffe://cluster.local/ns/z/sa/s"]
                    {
                        let request = OwnedRequest {
                            method: method.into(),
                            path: path.into(),
                            authority: b"svc".to_vec(),
                            peer: Observed::Known(Peer {
                                uri_sans: vec![peer.into()],
                                ..Peer::default()
                            }),
                            ..OwnedRequest::default()
                        };
                        let expected = status(&whole, &request);
                        let union = applied
                            .iter()
                            .map(|e| status(e, &request))
                            .find(|s| *s != 200)
                            .unwrap_or(200);
                        assert_eq!(union, expected, "{ns}/{app} {method} {path} from {peer}");
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 100);
    }
}
