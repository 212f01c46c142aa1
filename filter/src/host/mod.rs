//! The proxy-wasm glue: the only code that talks to Envoy.
