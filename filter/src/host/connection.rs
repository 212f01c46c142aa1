//! The network filter: hands the direct peer's address to the HTTP filter.
//!
//! Once the HTTP connection manager has taken the client's address from `X-Forwarded-For`
//! (Istio's sidecars run it with `use_remote_address: false`), Envoy's `source.address` in an
//! HTTP filter is that address, and no HTTP-level property says what the TCP peer was. Istio
//! compiles `ipBlocks` and `source.ip` to RBAC's `direct_remote_ip`: the TCP peer. The same
//! module, loaded as a network filter before the connection manager (`role: connection`),
//! reads `source.address` when the connection opens, before anything HTTP exists, and stores
//! it in the connection's filter state, which every HTTP stream on the connection can read
//! and no client can write (docs/compatibility.md#addresses).
//!
//! Per connection that is one call into the module, one property read and one filter-state
//! write; nothing per request. `make wasm` keeps `proxy_on_new_connection` exported for it
//! (filter/slim). The value is declared read-only when the filter is configured, so no other
//! Wasm filter on the connection can overwrite it afterwards.
//!
//! Plain Envoy can hand the address over without a Wasm network filter: Envoy's own
//! `envoy.filters.network.set_filter_state` writing `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%` to the
//! filter-state object `warden.direct_remote_address` (exactly RBAC's `direct_remote_ip`, also
//! behind the PROXY protocol). The HTTP filter reads whichever of the two is there.

use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::Action;

use super::abi;

pub use crate::request::handover::DIRECT_PEER_PROPERTY;

/// [`DIRECT_PEER_PROPERTY`], serialized as a property path.
pub const DIRECT_PEER_PATH: &str = DIRECT_PEER_PROPERTY;

/// `warden.direct_remote_address` (Envoy's `set_filter_state`) as a property path.
pub const DIRECT_REMOTE_ADDRESS_PATH: &str = "filter_state\0warden.direct_remote_address";

/// Declares [`DIRECT_PEER_PROPERTY`] read-only, living as long as the connection, with Envoy's
/// `declare_property` foreign function (`source/extensions/common/wasm/foreign.cc`,
/// `DeclarePropertyArguments`): the first write, this filter's, is the only one. Declaring it
/// again (a configuration update) is refused by Envoy and harmless.
pub fn declare_direct_peer_property() {
    // DeclarePropertyArguments { name = 1; readonly = 2; type = 3 (Bytes, the default,
    // omitted); span = 5 (DownstreamConnection = 2) }, hand-encoded.
    let name = DIRECT_PEER_PROPERTY.as_bytes();
    let mut arguments = vec![0x0a, name.len() as u8];
    arguments.extend_from_slice(name);
    arguments.extend_from_slice(&[0x10, 0x01, 0x28, 0x02]);
    if let Err(error) = abi::call_foreign_function("declare_property", &arguments) {
        log::debug!("warden: declare_property {DIRECT_PEER_PROPERTY}: {error}");
    }
}

/// One downstream connection.
pub struct WardenConnection;

impl Context for WardenConnection {}

impl StreamContext for WardenConnection {
    fn on_new_connection(&mut self) -> Action {
        // Without the address nothing is written, and the HTTP filter treats the direct peer as
        // unknown: policies that read it fail closed.
        if let Some(address) = abi::property_path(abi::SOURCE_ADDRESS) {
            if let Err(error) = abi::set_filter_state(DIRECT_PEER_PROPERTY, &address) {
                log::warn!("warden: cannot hand over the direct peer's address: {error}");
            }
        }
        Action::Continue
    }
}
