//! # Warden
//!
//! Zero-trust request authentication and authorization for Envoy, with the semantics of Istio's
//! `RequestAuthentication` and `AuthorizationPolicy`.
//!
//! This crate is two things:
//!
//! - **The core** (everything but [`host`]): it takes the plugin configuration, validates and
//!   compiles it once into immutable, indexed structures, and then decides requests. It does no
//!   I/O: a request comes in as plain data ([`request::Request`]) with the current time, and a
//!   decision comes out that names the policy and rule that made it. It is compiled and tested
//!   natively, benchmarked natively, and used by the `warden` command, so the command's answers
//!   are exactly the module's.
//! - **The Envoy module** (`warden.wasm`, built for `wasm32-wasip1`): [`host`] is the thin
//!   proxy-wasm glue. It reads what the compiled policies need from Envoy, asks the core, and
//!   carries out the answer (continue, 401, 403, add or strip headers, fetch keys, count).
//!
//! ## Goals
//! - Give the decision Istio would give wherever Istio defines one; be stricter where Istio or
//!   Envoy is lax in a way that weakens security (see `docs/compatibility.md`).
//! - Fail closed: a bad configuration is refused, a bad token gets 401, nothing a request
//!   carries can make the module panic.
//! - Cost no more per request than Envoy's native `jwt_authn` and `rbac` filters.
//!
//! ## Non-goals
//! - `CUSTOM` (ext_authz) policies, TCP (network filter) enforcement, gateways and waypoints
//!   (`targetRefs`).
//!
//! ## Layout
//! - [`config`]: the serde schema of Istio's resources and of the plugin configuration.
//! - [`authz`]: compile `AuthorizationPolicy` objects; decide.
//! - [`authn`]: extract tokens, keep JWKS, verify, expose claims.
//! - [`request`]: the request view the core reads; [`xfcc`]: the peer identity Envoy forwards.
//! - [`keystore`]: fetched key sets, refreshed and shared between Envoy's worker VMs.
//! - [`waiting`]: requests paused until their keys arrive, bounded by count and bytes.
//! - [`enforcer`]: one workload's compiled configuration; authentication, then authorization.

#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
#![warn(missing_docs)]

pub mod audit;
pub mod authn;
pub mod authorizer;
pub mod authz;
pub mod certificate;
pub mod config;
pub mod enforcer;
pub mod keystore;
pub mod request;
mod sort;
pub mod waiting;
pub mod xfcc;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod host;
