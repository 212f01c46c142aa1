//! The plugin configuration as Envoy hands it over: JSON, or the protobuf `Struct` wire form
//! Istio's `WasmPlugin` produces. Refused or compiled, never a panic; what compiles decides.
//! Read for a workload as the module reads it (the skim that cuts out what does not apply),
//! it is read exactly as serde_json alone reads it in the same scope.

use crate::{NoRemote, NOW};
use warden::authn::{PureRust, TokenCache};
use warden::config::plugin::{self, PluginConfig, Scope};
use warden::config::Workload;
use warden::enforcer::{self, Enforcer};
use warden::request::OwnedRequest;

pub fn run(data: &[u8]) {
    let _ = warden::config::wire::plugin_configuration(data);
    if data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        scoped_reads_agree(data);
    }
    let Ok(config) = enforcer::parse_plugin_config(data) else { return };
    let Ok(enforcer) = Enforcer::new(&config, None) else { return };
    let request = OwnedRequest::default();
    let _ = request.with(|r| enforcer.check(r, NOW, &NoRemote, &mut TokenCache::new(4), &PureRust));
}

/// The module's read for the seeds' workload against serde_json's alone in the same scope.
fn scoped_reads_agree(data: &[u8]) {
    let node = Workload {
        namespace: "api".into(),
        labels: [("app".to_string(), "backend".to_string())].into_iter().collect(),
    };
    let module = enforcer::read_plugin_config(|| std::io::Cursor::new(data), Some(&node));
    let whole = enforcer::parse_plugin_config(data);
    // The scope the settings name (the node's workload where they name none).
    let scope = match &whole {
        Ok(config) => Scope {
            workload: config.workload.clone().unwrap_or(node),
            root_namespace: config.root_namespace.clone(),
        },
        Err(_) => Scope { workload: node, root_namespace: "istio-system".into() },
    };
    let (serde, dropped) = plugin::scope(scope, || enforcer::parse_plugin_config(data));
    match (&module, &serde) {
        (Ok((module, module_dropped)), Ok(serde)) => {
            assert_eq!(*module_dropped, dropped, "dropped");
            assert_eq!(texts(module), texts(serde), "kept policies");
            assert_eq!(settings(module), settings(serde), "settings");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("the module's read and serde_json's disagree: {module:?} against {serde:?}"),
    }
}

fn texts(config: &PluginConfig) -> Vec<&str> {
    config.policies.iter().map(|p| p.get()).collect()
}

fn settings(config: &PluginConfig) -> serde_json::Value {
    let mut config = config.clone();
    config.policies.clear();
    serde_json::to_value(config).unwrap()
}
