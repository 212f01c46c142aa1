//! Counters, exposed through Envoy's stats (`/stats/prometheus`).
//!
//! Names carry their labels the way Istio's own Wasm stats do (`name;.label=.=value;.;`): with
//! the `stats_tags` extractors shown in `envoy/*.yaml` Prometheus sees
//! `warden_requests_total{decision="denied"}`; without them, Envoy still exposes every counter
//! under a flattened name. Counters are defined on first use, so a policy that never matches
//! costs nothing.

use std::cell::RefCell;
use std::collections::HashMap;

use super::abi;

/// The counters of one worker VM.
#[derive(Default)]
pub struct Metrics {
    ids: RefCell<HashMap<String, Option<u32>>>,
}

/// `warden_requests_total{decision}` values.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    /// Forwarded.
    Allowed,
    /// Refused by authorization (403).
    Denied,
    /// Refused by request authentication (401, or 403 for audiences).
    Unauthenticated,
}

impl Metrics {
    fn bump(&self, name: String) {
        let mut ids = self.ids.borrow_mut();
        let id = *ids.entry(name).or_insert_with_key(|name| abi::define_counter(name));
        if let Some(id) = id {
            abi::increment(id);
        }
    }

    /// One request decided.
    pub fn request(&self, decision: Decision) {
        let decision = match decision {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Unauthenticated => "unauthenticated",
        };
        self.bump(format!("warden_requests_total;.decision=.={decision};.;"));
    }

    /// A policy took part in a decision: `effect` is `allowed`, `denied`, `audited`,
    /// `dry_run_denied` or `dry_run_allowed`; `policy` is `<namespace>/<name>`.
    pub fn policy(&self, policy: &str, effect: &str) {
        self.bump(format!("warden_policy_requests_total;.policy=.={policy};.;effect=.={effect};.;"));
    }

    /// A token failed, by reason (a stable snake_case label).
    pub fn authn_failure(&self, reason: &str) {
        self.bump(format!("warden_authn_failures_total;.reason=.={reason};.;"));
    }

    /// A JWKS fetch this worker made ended: `result` is `success` or `failure`.
    pub fn jwks_fetch(&self, issuer: &str, result: &str) {
        self.bump(format!("warden_jwks_fetches_total;.issuer=.={issuer};.;result=.={result};.;"));
    }

    /// A request waited for keys (`outcome`: `resumed` or `timed_out`).
    pub fn key_wait(&self, outcome: &str) {
        self.bump(format!("warden_key_waits_total;.outcome=.={outcome};.;"));
    }
}
