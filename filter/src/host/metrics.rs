//! Counters, exposed through Envoy's stats (`/stats/prometheus`).
//!
//! Names carry their labels the way Istio's own Wasm stats do (`name;.label=.=value;.;`): with
//! the `stats_tags` extractors shown in `envoy/*.yaml` Prometheus sees
//! `warden_requests_total{decision="denied"}`; without them, Envoy still exposes every counter
//! under a flattened name. Counters are defined on first use, so a policy that never matches
//! costs nothing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::abi;

/// The counters of one worker VM.
#[derive(Default)]
pub struct Metrics {
    ids: RefCell<HashMap<String, Option<u32>>>,
    /// Per-request counters by policy index and effect, so the common path formats no names.
    policies: RefCell<Vec<[Option<Option<u32>>; EFFECTS.len()]>>,
    decisions: RefCell<[Option<Option<u32>>; 3]>,
}

/// `warden_policy_requests_total{effect}` values.
pub const EFFECTS: [&str; 5] =
    ["allowed", "denied", "audited", "dry_run_denied", "dry_run_allowed"];

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
        let (slot, label) = match decision {
            Decision::Allowed => (0, "allowed"),
            Decision::Denied => (1, "denied"),
            Decision::Unauthenticated => (2, "unauthenticated"),
        };
        let mut decisions = self.decisions.borrow_mut();
        let Some(cached) = decisions.get_mut(slot) else { return };
        let id = *cached.get_or_insert_with(|| {
            abi::define_counter(&format!("warden_requests_total;.decision=.={label};.;"))
        });
        if let Some(id) = id {
            abi::increment(id);
        }
    }

    /// A policy took part in a decision: `effect` is `allowed`, `denied`, `audited`,
    /// `dry_run_denied` or `dry_run_allowed`; `name` gives `<namespace>/<name>` the first time.
    pub fn policy(&self, policy: u32, effect: &'static str, name: impl FnOnce() -> String) {
        let Some(slot) = EFFECTS.iter().position(|e| *e == effect) else { return };
        let index = policy as usize;
        let mut policies = self.policies.borrow_mut();
        if policies.len() <= index {
            policies.resize(index + 1, Default::default());
        }
        let Some(cached) = policies.get_mut(index).and_then(|p| p.get_mut(slot)) else { return };
        let id = *cached.get_or_insert_with(|| {
            abi::define_counter(&format!(
                "warden_policy_requests_total;.policy=.={};.;effect=.={effect};.;",
                name()
            ))
        });
        if let Some(id) = id {
            abi::increment(id);
        }
    }

    /// A token failed, by reason (a stable snake_case label).
    pub fn authn_failure(&self, reason: &str) {
        self.bump(format!("warden_authn_failures_total;.reason=.={reason};.;"));
    }

    /// A JWKS fetch this worker made ended: `result` is `success` or `failure`.
    pub fn jwks_fetch(&self, issuer: &str, result: &str) {
        self.bump(format!("warden_jwks_fetches_total;.issuer=.={issuer};.;result=.={result};.;"));
    }

    /// A request refused for its client certificate (`reason`: `multiple_uri_sans`).
    pub fn peer_refused(&self, reason: &str) {
        self.bump(format!("warden_peer_refusals_total;.reason=.={reason};.;"));
    }

    /// A decision in which rules read an attribute Warden could not learn, and failed closed
    /// (`reason`: `direct_peer_unknown`, `peer_certificate_unreadable`).
    pub fn fail_closed(&self, reason: &str) {
        self.bump(format!("warden_fail_closed_total;.reason=.={reason};.;"));
    }

    /// `warden_authorizer_checks_total{provider, result}`: a CUSTOM rule's external authorizer
    /// answered `allowed` or `denied`, failed (`error`: unreachable, timed out, 5xx), or failed
    /// and `failOpen` let the request through (`failed_open`).
    pub fn authorizer_check(&self, provider: &str, result: &str) {
        self.bump(format!(
            "warden_authorizer_checks_total;.provider=.={provider};.;result=.={result};.;"
        ));
    }

    /// A request waited for keys (`outcome`: `resumed`, `timed_out`), or could not
    /// (`refused_count`, `refused_bytes`: the waiting room is full).
    pub fn key_wait(&self, outcome: &str) {
        self.bump(format!("warden_key_waits_total;.outcome=.={outcome};.;"));
    }
}

/// `warden_policies{plugin, status}`: how the configuration's policies stand for this
/// sidecar, set when a configuration is accepted. `applied` are enforced exactly;
/// `fail_closed` are applied but not exactly enforceable (CUSTOM, conditions a Wasm filter
/// cannot evaluate): their rules fail closed; `ignored` carry `targetRefs`, which sidecars
/// ignore. Gauges, so every worker VM setting them agrees and a reload replaces them.
pub fn configured_policies(plugin: &str, applied: usize, fail_closed: usize, ignored: usize) {
    for (status, count) in
        [("applied", applied), ("fail_closed", fail_closed), ("ignored", ignored)]
    {
        let name = format!("warden_policies;.plugin=.={plugin};.;status=.={status};.;");
        if let Some(id) = abi::define_gauge(&name) {
            abi::record(id, u64::try_from(count).unwrap_or(u64::MAX));
        }
    }
}

/// `warden_wasm_memory_bytes`: the linear memory of every Warden VM in this Envoy, summed.
///
/// Envoy reports V8 only as part of its RSS; this gauge says how much of it is Warden's own
/// heap (configuration, compiled policies, keys, the token cache). Linear memory never shrinks,
/// so the gauge is the high-water mark of each VM. Every VM (one per worker, plus the main
/// thread's) adds what it grew by since it last reported, and takes its share back when its
/// last configuration goes away.
pub struct VmMemory;

thread_local! {
    static VM_MEMORY: VmMemoryState = const {
        VmMemoryState { gauge: Cell::new(None), reported: Cell::new(0), roots: Cell::new(0) }
    };
}

struct VmMemoryState {
    gauge: Cell<Option<Option<u32>>>,
    reported: Cell<i64>,
    roots: Cell<u32>,
}

impl VmMemoryState {
    fn gauge(&self) -> Option<u32> {
        if let Some(id) = self.gauge.get() {
            return id;
        }
        let id = abi::define_gauge("warden_wasm_memory_bytes");
        self.gauge.set(Some(id));
        id
    }

    fn set(&self, bytes: i64) {
        let delta = bytes - self.reported.get();
        if delta == 0 {
            return;
        }
        if let Some(id) = self.gauge() {
            abi::add(id, delta);
            self.reported.set(bytes);
        }
    }
}

impl VmMemory {
    /// A configuration of this VM started.
    pub fn root_started() {
        VM_MEMORY.with(|m| m.roots.set(m.roots.get().saturating_add(1)));
    }

    /// Reports the VM's current size (called on every tick, where it costs one comparison).
    pub fn report() {
        let pages = core::arch::wasm32::memory_size(0) as i64;
        VM_MEMORY.with(|m| m.set(pages * 65_536));
    }

    /// A configuration of this VM went away; the last one takes the VM's share back.
    pub fn root_done() {
        VM_MEMORY.with(|m| {
            let roots = m.roots.get().saturating_sub(1);
            m.roots.set(roots);
            if roots == 0 {
                m.set(0);
            }
        });
    }
}
