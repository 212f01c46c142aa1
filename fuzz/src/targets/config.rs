//! The plugin configuration as Envoy hands it over: JSON, or the protobuf `Struct` wire form
//! Istio's `WasmPlugin` produces. Refused or compiled, never a panic; what compiles decides.

use crate::{NoRemote, NOW};
use warden::authn::{PureRust, TokenCache};
use warden::enforcer::{self, Enforcer};
use warden::request::OwnedRequest;

pub fn run(data: &[u8]) {
    let _ = warden::config::wire::plugin_configuration(data);
    let Ok(config) = enforcer::parse_plugin_config(data) else { return };
    let Ok(enforcer) = Enforcer::new(&config, None) else { return };
    let request = OwnedRequest::default();
    let _ = request.with(|r| enforcer.check(r, NOW, &NoRemote, &mut TokenCache::new(4), &PureRust));
}
