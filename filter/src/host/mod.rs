//! The proxy-wasm glue: the only code that talks to Envoy.
//!
//! A root context per worker VM parses and compiles the configuration once in
//! `on_configure` (refusing a bad one, so Envoy keeps the last good configuration), fetches
//! issuers' keys through Envoy clusters, and resumes requests that waited for them. An HTTP
//! context per request reads what the compiled policies need, asks the core, and carries out
//! the verdict. All host calls made on the request path are in [`abi`], as typed results.

mod abi;
mod connection;
mod crypto;
mod http;
mod logger;
mod metrics;
mod request;
mod root;
mod worker;

use proxy_wasm::traits::RootContext;

proxy_wasm::main! {{
    logger::install();
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(root::WardenRoot::new(context_id))
    });
}}
