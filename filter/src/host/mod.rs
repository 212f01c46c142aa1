//! The proxy-wasm glue: the only code that talks to Envoy.
//!
//! A root context per worker VM parses and compiles the configuration once in
//! `on_configure` (refusing a bad one, so Envoy keeps the last good configuration), and an HTTP
//! context per request builds the request view, asks the core, and carries out the verdict.

mod abi;
mod http;
mod root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(root::WardenRoot::new(context_id))
    });
}}
