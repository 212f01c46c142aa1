//! Envoy bootstrap configurations: every configuration gets the same listener shape (an
//! inbound sidecar listener answering with a `direct_response`, so no upstream is measured);
//! only the filters differ, and the connection manager's settings: the playground's, or
//! Istio's own sidecar inbound ones.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

/// TLS material of the listeners.
pub struct Tls<'a> {
    /// The server certificate.
    pub cert: &'a Path,
    /// Its key.
    pub key: &'a Path,
    /// The CA client certificates must chain to.
    pub ca: &'a Path,
}

/// One listener.
pub struct Listener {
    /// Also the stat prefix.
    pub name: String,
    /// On 127.0.0.1.
    pub port: u16,
    /// Whether it requires a client certificate (mTLS, as a STRICT sidecar) or is plaintext.
    pub mtls: bool,
    /// The connection manager's settings.
    pub hcm: Hcm,
    /// Network filters before the connection manager (Warden's `role: connection`).
    pub network_filters: Vec<Value>,
    /// The HTTP filters before the router.
    pub filters: Vec<Value>,
}

/// The HTTP connection manager settings of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hcm {
    /// The playground's sidecars: the TCP peer is the client (`use_remote_address: true`, no
    /// trusted hops), XFCC replaced by the verified peer (SANITIZE_SET), Istio's strongest path
    /// normalization (DECODE_AND_MERGE_SLASHES).
    Playground,
    /// What istiod writes for a sidecar's inbound connection manager
    /// (`pilot/pkg/networking/core/listener_inbound.go` `buildSidecarInboundHTTPOpts`,
    /// `listener_builder.go` `buildHTTPConnectionManager`, `util/proxy_headers.go`):
    /// `use_remote_address: false` (the client address is the last X-Forwarded-For entry),
    /// XFCC APPEND_FORWARD, path normalization DEFAULT (no slash merging, escaped slashes kept).
    Istio,
}

impl Hcm {
    /// The settings, as connection-manager fields.
    fn settings(self) -> Value {
        match self {
            Hcm::Playground => json!({
                "normalize_path": true,
                "merge_slashes": true,
                "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD",
                "use_remote_address": true,
                "xff_num_trusted_hops": 0,
                "forward_client_cert_details": "SANITIZE_SET",
                "set_current_client_cert_details": { "subject": true, "dns": true, "uri": true },
            }),
            Hcm::Istio => json!({
                "normalize_path": true,
                "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                "use_remote_address": false,
                "forward_client_cert_details": "APPEND_FORWARD",
                "set_current_client_cert_details": { "subject": true, "dns": true, "uri": true },
            }),
        }
    }
}

/// A bootstrap with an admin interface on `admin_port` and `listeners`.
pub fn bootstrap(admin_port: u16, listeners: &[Listener], tls: &Tls<'_>) -> Value {
    json!({
        "node": { "id": "warden-bench", "cluster": "warden-bench" },
        "admin": { "address": socket(admin_port) },
        "static_resources": {
            "listeners": listeners.iter().map(|l| listener(l, tls)).collect::<Vec<_>>(),
        },
    })
}

/// Adds a plain-HTTP cluster `name` to 127.0.0.1:`port` (an external authorizer).
pub fn add_cluster(bootstrap: &mut Value, name: &str, port: u16) {
    let cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket(port) } }] }],
        },
    });
    if let Some(resources) = bootstrap["static_resources"].as_object_mut() {
        let clusters = resources.entry("clusters").or_insert_with(|| json!([]));
        if let Some(list) = clusters.as_array_mut() {
            list.push(cluster);
        }
    }
}

fn socket(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

fn listener(listener: &Listener, tls: &Tls<'_>) -> Value {
    let mut filters = listener.filters.clone();
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    }));
    let mut connection_manager = json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": listener.name,
            "codec_type": "AUTO",
            "http_filters": filters,
            "route_config": {
                "name": "local",
                "virtual_hosts": [{
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{
                        "match": { "prefix": "/" },
                        "direct_response": { "status": 200, "body": { "inline_string": "ok\n" } },
                    }],
                }],
            },
        },
    });
    if let (Some(config), Value::Object(settings)) =
        (connection_manager["typed_config"].as_object_mut(), listener.hcm.settings())
    {
        config.extend(settings);
    }
    let mut network = listener.network_filters.clone();
    network.push(connection_manager);
    let mut chain = json!({ "filters": network });
    if listener.mtls {
        chain["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": {
                    "tls_params": { "tls_minimum_protocol_version": "TLSv1_2" },
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_certificates": [{
                        "certificate_chain": { "filename": tls.cert },
                        "private_key": { "filename": tls.key },
                    }],
                    "validation_context": { "trusted_ca": { "filename": tls.ca } },
                },
            },
        });
    }
    json!({
        "name": listener.name,
        "address": socket(listener.port),
        "filter_chains": [chain],
    })
}

/// A Wasm filter loading `module` with no configuration: the empty-filter floor.
pub fn empty_wasm_filter(module: &Path) -> Value {
    json!({
        "name": "empty",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "empty",
                "root_id": "empty",
                "vm_config": {
                    "vm_id": "empty",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": module } },
                },
                "failure_policy": "FAIL_CLOSED",
            },
        },
    })
}

/// Warden's filter, taken from what `warden compile --format ecds` wrote (so the module is
/// configured exactly as the command configures it for a sidecar).
pub fn warden_filter(ecds: &Value) -> Result<Value> {
    let typed_config = ecds
        .pointer("/resources/0/typed_config")
        .context("the ECDS file has no resources[0].typed_config")?;
    Ok(json!({ "name": "warden", "typed_config": typed_config }))
}

/// Warden's HTTP filter by ECDS from a file Envoy watches (`path_config_source`), as istiod
/// delivers a WasmPlugin: replacing the file (a rename into `watched`) reconfigures the filter
/// with the VM and module already loaded.
pub fn warden_filter_discovered(file: &Path, watched: &Path) -> Value {
    json!({
        "name": "warden",
        "config_discovery": {
            "config_source": {
                "path_config_source": {
                    "path": file.display().to_string(),
                    "watched_directory": { "path": watched.display().to_string() },
                },
                "resource_api_version": "V3",
            },
            "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
        },
    })
}

/// Warden's network filter (`role: connection`), in the same VM as `ecds`'s HTTP filter: it
/// hands the direct peer's address over for `ipBlocks` (what `warden compile` tells a sidecar
/// to add when the policies read it).
pub fn warden_connection_filter(ecds: &Value) -> Result<Value> {
    let http = warden_filter(ecds)?;
    let vm = http
        .pointer("/typed_config/config/vm_config")
        .cloned()
        .context("the Warden filter has no vm_config")?;
    Ok(json!({
        "name": "warden.connection",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
            "config": {
                "name": "warden.connection",
                "root_id": "warden.connection",
                "vm_config": vm,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": r#"{"role":"connection"}"#,
                },
                "failure_policy": "FAIL_CLOSED",
            },
        },
    }))
}

/// [`warden_filter`] with `peerIdentity: xfcc` added to Warden's plugin configuration: the
/// peer's identity read from the `x-forwarded-client-cert` header the listener's connection
/// manager writes (APPEND_FORWARD with the current certificate's details, as Istio's sidecars
/// set it), instead of asking Envoy for the certificate's URI SAN.
pub fn warden_xfcc_filter(ecds: &Value) -> Result<Value> {
    warden_filter_with(ecds, |config| config["peerIdentity"] = json!("xfcc"))
}

/// [`warden_filter`] with `log.filterState: all`: the decision of every request, allowed ones
/// too, stored in filter state for access logs (the default stores denials only).
pub fn warden_record_all_filter(ecds: &Value) -> Result<Value> {
    warden_filter_with(ecds, |config| config["log"]["filterState"] = json!("all"))
}

/// [`warden_filter`] with its plugin configuration changed by `change`.
fn warden_filter_with(ecds: &Value, change: impl FnOnce(&mut Value)) -> Result<Value> {
    let mut filter = warden_filter(ecds)?;
    let value = filter
        .pointer_mut("/typed_config/config/configuration/value")
        .context("the Warden filter has no configuration value")?;
    let mut config: Value =
        serde_json::from_str(value.as_str().context("configuration is a string")?)?;
    if config.get("log").is_none() {
        config["log"] = json!({});
    }
    change(&mut config);
    *value = Value::String(serde_json::to_string(&config)?);
    Ok(filter)
}

/// The native filters `warden compile --format envoy-native` wrote; with `jwt_cache`, every
/// JWT provider gets Envoy's verified-token cache (`jwt_cache_config`, which Istio never sets:
/// the harness adds it to compare with the best the native filter can do).
pub fn native_filters(native: &Value, jwt_cache: bool) -> Result<Vec<Value>> {
    let mut filters = native
        .get("http_filters")
        .and_then(Value::as_array)
        .cloned()
        .context("the envoy-native file has no http_filters")?;
    if jwt_cache {
        for filter in &mut filters {
            if let Some(providers) =
                filter.pointer_mut("/typed_config/providers").and_then(Value::as_object_mut)
            {
                for provider in providers.values_mut() {
                    provider["jwt_cache_config"] = json!({ "jwt_cache_size": 100 });
                }
            }
        }
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn only_the_filters_differ_between_listeners() {
        let tls =
            Tls { cert: Path::new("s.crt"), key: Path::new("s.key"), ca: Path::new("ca.crt") };
        let listener = |filters| Listener {
            name: "a".into(),
            port: 1,
            mtls: true,
            hcm: Hcm::Playground,
            network_filters: vec![],
            filters,
        };
        let (a, b) = (listener(vec![]), listener(vec![json!({"name": "x"})]));
        let (a, b) = (bootstrap(2, &[a], &tls), bootstrap(2, &[b], &tls));
        let hcm = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";
        let mut a_hcm = a.pointer(hcm).unwrap().clone();
        let mut b_hcm = b.pointer(hcm).unwrap().clone();
        assert_eq!(b_hcm["http_filters"].as_array().unwrap().len(), 2);
        a_hcm["http_filters"] = json!(null);
        b_hcm["http_filters"] = json!(null);
        assert_eq!(a_hcm, b_hcm);
        let tls_context = a
            .pointer("/static_resources/listeners/0/filter_chains/0/transport_socket/typed_config")
            .unwrap();
        assert_eq!(tls_context["require_client_certificate"], true);
    }

    #[test]
    fn jwt_cache_is_added_to_every_provider_only_when_asked() {
        let native = json!({ "http_filters": [
            { "name": "envoy.filters.http.jwt_authn", "typed_config": { "providers": { "origins-0": {}, "origins-1": {} } } },
            { "name": "envoy.filters.http.rbac", "typed_config": {} },
        ] });
        let cached = native_filters(&native, true).unwrap();
        assert_eq!(
            cached[0]["typed_config"]["providers"]["origins-1"]["jwt_cache_config"]
                ["jwt_cache_size"],
            100
        );
        assert!(cached[1]["typed_config"].get("providers").is_none());
        assert_eq!(
            native_filters(&native, false).unwrap(),
            native["http_filters"].as_array().unwrap().clone()
        );
    }
}
