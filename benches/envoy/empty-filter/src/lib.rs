//! The empty proxy-wasm filter: every request goes through the Rust SDK's contexts and callbacks
//! and nothing else happens. Measured against passthrough, it is what merely having a V8 filter
//! costs, the floor under Warden.
//!
//! Built by `benches/envoy/run.sh` (`cargo build --release --target wasm32-wasip1`).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Empty))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Continues every request with the SDK's default callbacks.
struct Empty;

impl Context for Empty {}

impl HttpContext for Empty {}
