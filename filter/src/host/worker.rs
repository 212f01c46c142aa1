//! One worker VM's state for one configuration: the compiled enforcer, the key store, the
//! verified-token cache, the counters, and the requests waiting for keys. Shared by the root
//! context (which fetches keys and resumes waiting requests) and every HTTP context.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;

use proxy_wasm::types::Action;

use super::abi;
use super::crypto::HostCrypto;
use super::metrics::{self, Metrics};
use super::request::{ConnectionCache, RequestData};
use crate::authn::{PureRust, SignatureVerifier, TokenCache};
use crate::authz::{DryRunAllow, Reason, RuleRef, Unknowns};
use crate::config::plugin::{Crypto, DecisionLog};
use crate::enforcer::{Allow, Cause, Enforcer, Verdict};
use crate::keystore::{KeyStore, SharedStore};
use crate::request::Request;
use crate::waiting::{Waiter, WaitingRoom, Wake};

/// Filter-state key access logs read as `%FILTER_STATE(wasm.warden_decision:PLAIN)%`.
const DECISION_STATE: &str = "warden_decision";
/// Filter-state key of the audit record (a JSON object; `log.audit`), read as
/// `%FILTER_STATE(wasm.warden_audit:PLAIN)%`.
const AUDIT_STATE: &str = "warden_audit";

/// proxy-wasm shared data, as the key store sees it.
pub struct HostShared;

impl SharedStore for HostShared {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        abi::get_shared_data(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> bool {
        abi::set_shared_data(key, value, cas)
    }
}

/// What the HTTP context should tell Envoy.
pub struct Step(pub Action);

pub struct Worker {
    pub enforcer: Rc<Enforcer>,
    pub keystore: RefCell<KeyStore>,
    cache: RefCell<TokenCache>,
    host_crypto: HostCrypto,
    use_host_crypto: bool,
    pub metrics: Metrics,
    waiting: RefCell<WaitingRoom<RequestData>>,
    connections: RefCell<ConnectionCache>,
    /// The kinds of unknown attribute already logged by this worker (each is logged once).
    logged_unknowns: std::cell::Cell<Unknowns>,
}

impl Worker {
    pub fn new(enforcer: Enforcer) -> Worker {
        let settings = enforcer.authn_settings();
        let holder = RandomState::new().hash_one(abi::now_millis());
        let keystore = KeyStore::new(
            enforcer.authn().remote_sources(),
            enforcer.fetch_settings(),
            settings.clusters.clone(),
            holder,
        );
        Worker {
            cache: RefCell::new(TokenCache::new(settings.token_cache_entries)),
            use_host_crypto: settings.crypto == Crypto::Auto,
            host_crypto: HostCrypto::default(),
            keystore: RefCell::new(keystore),
            enforcer: Rc::new(enforcer),
            metrics: Metrics::default(),
            waiting: RefCell::new(WaitingRoom::default()),
            connections: RefCell::new(ConnectionCache::default()),
            logged_unknowns: std::cell::Cell::new(Unknowns::default()),
        }
    }

    fn crypto(&self) -> &dyn SignatureVerifier {
        if self.use_host_crypto {
            &self.host_crypto
        } else {
            &PureRust
        }
    }

    /// Whether requests wait or fetches are under way (the root ticks faster meanwhile).
    pub fn busy(&self) -> bool {
        !self.waiting.borrow().is_empty() || self.keystore.borrow().busy()
    }

    fn check(&self, request: &Request<'_>, now_ms: u64) -> Verdict {
        let keys = self.keystore.borrow();
        let mut cache = self.cache.borrow_mut();
        self.enforcer.check(request, now_ms / 1000, &*keys, &mut cache, self.crypto())
    }

    /// Decides the request of the current HTTP context.
    pub fn on_request(&self, context_id: u32) -> Step {
        if self.enforcer.is_passthrough() {
            return Step(Action::Continue);
        }
        let peer_identity = self.enforcer.peer_identity();
        let read = RequestData::read(
            &self.enforcer.needs(),
            peer_identity,
            &mut self.connections.borrow_mut(),
        );
        let data = match read {
            Ok((data, fresh)) => {
                if let Some(error) = fresh.as_ref().and_then(|f| f.certificate_error.as_ref()) {
                    log::warn!(
                        "warden: the peer certificate of a connection cannot be read ({error}): \
                         policies that name identities fail closed on it"
                    );
                }
                data
            }
            Err(error) => {
                log::error!("warden: cannot read the request headers ({error}): refused");
                fail_closed();
                return Step(Action::Pause);
            }
        };
        // Only tokens need the time (a host call): an authorization-only configuration skips it.
        let now = if self.enforcer.authenticates() { abi::now_millis() } else { 0 };
        let outcome = data.with_request(peer_identity, |request| {
            let verdict = self.check(request, now);
            match verdict {
                Verdict::Wait { sources } => Err((sources, None)),
                Verdict::Deny(deny) => match deny.refetch() {
                    Some(source) if self.keystore.borrow_mut().request_refetch(source, now) => {
                        Err((vec![source], Some(deny)))
                    }
                    _ => {
                        self.deny(request, &Verdict::Deny(deny));
                        Ok(Action::Pause)
                    }
                },
                allow @ Verdict::Allow(_) => Ok(self.forward(request, &allow)),
            }
        });
        match outcome {
            None => {
                log::error!("warden: Envoy gave a malformed header map: refused");
                fail_closed();
                Step(Action::Pause)
            }
            Some(Ok(action)) => Step(action),
            Some(Err((sources, fallback))) => {
                let deadline = now + millis(self.enforcer.wait_limit(&sources));
                let waiter = Waiter { request: data, sources, deadline, fallback };
                let refused = self.waiting.borrow_mut().wait(context_id, waiter);
                if let Err(refused) = refused {
                    let (waiter, full) = *refused;
                    self.metrics.key_wait(full.label());
                    let _ = waiter.request.with_request(peer_identity, |request| {
                        let deny = waiter
                            .fallback
                            .unwrap_or_else(|| self.enforcer.keys_unavailable(request));
                        self.deny(request, &Verdict::Deny(deny));
                    });
                }
                Step(Action::Pause)
            }
        }
    }

    /// A request ended (answered, or the client went away): forget it if it was waiting.
    pub fn forget(&self, context_id: u32) {
        self.waiting.borrow_mut().forget(context_id);
    }

    /// Answers the waiting requests whose keys are no longer being fetched, and those whose
    /// time is up, from the root context. `root_id` is restored as the effective context.
    pub fn resume_waiting(&self, root_id: u32) {
        if self.waiting.borrow().is_empty() {
            return;
        }
        let now = abi::now_millis();
        let peer_identity = self.enforcer.peer_identity();
        let woken = {
            let keys = self.keystore.borrow();
            let mut cache = self.cache.borrow_mut();
            self.waiting.borrow_mut().wake(
                now,
                |source| keys.waiting_on(source),
                |data| {
                    data.with_request(peer_identity, |request| {
                        self.enforcer.check(request, now / 1000, &*keys, &mut cache, self.crypto())
                    })
                    // A header map that parsed when the request arrived parses again; should
                    // it not, the request is refused as if its keys could not be fetched.
                    .unwrap_or(Verdict::Wait { sources: Vec::new() })
                },
            )
        };
        for woken in woken {
            let _ = woken.request.with_request(peer_identity, |request| {
                let verdict = match woken.wake {
                    Wake::Decided(verdict) => {
                        self.metrics.key_wait("resumed");
                        verdict
                    }
                    Wake::TimedOut(fallback) => {
                        self.metrics.key_wait("timed_out");
                        Verdict::Deny(
                            fallback.unwrap_or_else(|| self.enforcer.keys_unavailable(request)),
                        )
                    }
                };
                // The request may be gone (the client hung up): then there is nothing to answer.
                if abi::set_effective_context(woken.id).is_err() {
                    return;
                }
                match &verdict {
                    Verdict::Allow(_) => {
                        if self.forward(request, &verdict) == Action::Continue {
                            if let Err(error) = abi::resume_request() {
                                log::debug!("warden: could not resume a request: {error}");
                            }
                        }
                    }
                    _ => self.deny(request, &verdict),
                }
            });
        }
        let _ = abi::set_effective_context(root_id);
    }

    /// Carries out an allow: header changes, counters, log, filter state. If a header cannot
    /// be changed (say a forged claim header cannot be stripped), the request is refused.
    fn forward(&self, request: &Request<'_>, verdict: &Verdict) -> Action {
        let Verdict::Allow(allow) = verdict else { return Action::Pause };
        if let Err(error) = apply_headers(request, allow) {
            log::error!("warden: could not rewrite the request headers ({error}): refused");
            fail_closed();
            return Action::Pause;
        }
        self.metrics.request(metrics::Decision::Allowed);
        if let Reason::AllowedBy(rule) = allow.decision.reason {
            self.count_policy(rule, "allowed");
        }
        self.count_side_effects(&allow.decision);
        self.count_unknowns(allow.decision.unknowns);
        self.record(request, verdict);
        Action::Continue
    }

    /// Answers locally with the verdict's denial.
    fn deny(&self, request: &Request<'_>, verdict: &Verdict) {
        let Verdict::Deny(deny) = verdict else { return };
        match &deny.cause {
            Cause::Unauthorized(decision) => {
                self.metrics.request(metrics::Decision::Denied);
                if let Reason::DeniedBy(rule) = decision.reason {
                    self.count_policy(rule, "denied");
                }
                self.count_side_effects(decision);
                self.count_unknowns(decision.unknowns);
            }
            Cause::Peer(refusal) => {
                self.metrics.request(metrics::Decision::Denied);
                self.metrics.peer_refused(refusal.label());
            }
            Cause::Unauthenticated(failure) => {
                self.metrics.request(metrics::Decision::Unauthenticated);
                self.metrics.authn_failure(failure.reason().label());
            }
        }
        self.record(request, verdict);
        let headers: Vec<(&str, &[u8])> =
            deny.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        if let Err(error) = abi::send_local_response(
            u32::from(deny.status),
            &deny.details,
            deny.body.as_bytes(),
            &headers,
            deny.grpc_status,
        ) {
            log::error!("warden: could not send the local reply: {error}");
        }
    }

    fn count_side_effects(&self, decision: &crate::authz::Decision) {
        if let Some(rule) = decision.audit {
            self.count_policy(rule, "audited");
        }
        if let Some(rule) = decision.dry_run_deny {
            self.count_policy(rule, "dry_run_denied");
        }
        if let DryRunAllow::Matched(rule) = decision.dry_run_allow {
            self.count_policy(rule, "dry_run_allowed");
        }
    }

    /// A decision in which rules read attributes Warden could not learn (and failed closed):
    /// counted every time, logged once per worker and kind.
    fn count_unknowns(&self, unknowns: Unknowns) {
        if unknowns.is_empty() {
            return;
        }
        for label in unknowns.labels() {
            self.metrics.fail_closed(label);
        }
        let logged = self.logged_unknowns.get();
        if logged.contains(unknowns) {
            return;
        }
        self.logged_unknowns.set(logged.with(unknowns));
        if unknowns.contains(Unknowns::DIRECT_PEER) && !logged.contains(Unknowns::DIRECT_PEER) {
            log::warn!(
                "warden: policies read ipBlocks or source.ip, and the direct peer's address was \
                 not handed over: deploy Warden's network filter (role: connection) before the \
                 HTTP connection manager. Until then those rules fail closed (an ALLOW rule \
                 does not match, a DENY rule does); counted in \
                 warden_fail_closed_total{{reason=\"direct_peer_unknown\"}}"
            );
        }
        if unknowns.contains(Unknowns::PEER_CERTIFICATE)
            && !logged.contains(Unknowns::PEER_CERTIFICATE)
        {
            log::warn!(
                "warden: a peer certificate could not be read: rules that name identities fail \
                 closed on its requests; counted in \
                 warden_fail_closed_total{{reason=\"peer_certificate_unreadable\"}}"
            );
        }
    }

    fn count_policy(&self, rule: RuleRef, effect: &'static str) {
        let policies = self.enforcer.authz().policies();
        if let Some(policy) = usize::try_from(rule.policy).ok().and_then(|i| policies.get(i)) {
            self.metrics
                .policy(rule.policy, effect, || format!("{}/{}", policy.namespace, policy.name));
        }
    }

    /// The decision for access logs (filter state) and Envoy's log.
    fn record(&self, request: &Request<'_>, verdict: &Verdict) {
        if self.enforcer.records_filter_state(verdict) {
            let _ =
                abi::set_filter_state(DECISION_STATE, self.enforcer.summary(verdict).as_bytes());
        }
        if let Some(record) = self.enforcer.audit_record(verdict, request) {
            let _ = abi::set_filter_state(AUDIT_STATE, record.as_bytes());
        }
        if let Some(line) = self.enforcer.log_line(verdict, request) {
            log::info!("{line}");
        } else if log::log_enabled!(log::Level::Debug) {
            if let Some(line) = self.enforcer.log_line_at(DecisionLog::All, verdict, request) {
                log::debug!("{line}");
            }
        }
    }
}

fn apply_headers(request: &Request<'_>, allow: &Allow) -> Result<(), abi::HostError> {
    for name in allow.headers.removals() {
        if request.header_values(name.as_bytes()).next().is_some() {
            abi::remove_request_header(name)?;
        }
    }
    for (name, value) in &allow.headers.set {
        abi::replace_request_header(name, value)?;
    }
    if let Some(path) = &allow.headers.path {
        abi::replace_request_header(":path", path)?;
    }
    Ok(())
}

/// Refuses a request Warden could not read or change safely.
fn fail_closed() {
    let _ = abi::send_local_response(
        503,
        "warden_internal_error",
        b"warden: internal error",
        &[],
        None,
    );
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
