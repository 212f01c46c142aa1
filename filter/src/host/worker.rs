//! One worker VM's state for one configuration: the compiled enforcer, the key store, the
//! verified-token cache, the counters, and the requests waiting for keys. Shared by the root
//! context (which fetches keys and resumes waiting requests) and every HTTP context.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;

use proxy_wasm::types::Action;

use super::abi;
use super::crypto::HostCrypto;
use super::metrics::{self, Metrics};
use super::request::{ConnectionCache, RequestData};
use crate::authn::{PureRust, SignatureVerifier, TokenCache};
use crate::authorizer::{self, Response};
use crate::authz::{DryRunAllow, Reason, RuleRef, Unknowns};
use crate::config::plugin::{Crypto, DecisionLog};
use crate::config::wire;
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

/// What a decided request needs next.
enum Next {
    /// Told to Envoy.
    Done(Action),
    /// Wait for these keys (with the denial to give if they do not help).
    Wait(Vec<crate::authn::SourceId>, Option<crate::enforcer::Deny>),
    /// Ask the external authorizer first.
    Ask(Allow),
}

/// A request waiting for its external authorizer's answer.
struct PendingCall {
    context_id: u32,
    request: RequestData,
    allow: Allow,
}

/// Most requests waiting for authorizers at once in one worker; beyond, a request is refused as
/// if its authorizer could not be reached. Each holds its header map, so this bounds memory.
const MAX_PENDING_CALLS: usize = 4096;

pub struct Worker {
    pub enforcer: Rc<Enforcer>,
    pub keystore: RefCell<KeyStore>,
    cache: RefCell<TokenCache>,
    host_crypto: HostCrypto,
    use_host_crypto: bool,
    pub metrics: Metrics,
    waiting: RefCell<WaitingRoom<RequestData>>,
    connections: RefCell<ConnectionCache>,
    /// Requests waiting for external authorizers, by HTTP call token.
    calls: RefCell<HashMap<u32, PendingCall>>,
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
            calls: RefCell::new(HashMap::new()),
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
                Verdict::Wait { sources } => Next::Wait(sources, None),
                Verdict::Deny(deny) => match deny.refetch() {
                    Some(source) if self.keystore.borrow_mut().request_refetch(source, now) => {
                        Next::Wait(vec![source], Some(deny))
                    }
                    _ => {
                        self.deny(request, &Verdict::Deny(deny));
                        Next::Done(Action::Pause)
                    }
                },
                Verdict::Allow(allow) if allow.ask.is_some() => Next::Ask(allow),
                allow @ Verdict::Allow(_) => Next::Done(self.forward(request, &allow)),
            }
        });
        match outcome {
            None => {
                log::error!("warden: Envoy gave a malformed header map: refused");
                fail_closed();
                Step(Action::Pause)
            }
            Some(Next::Done(action)) => Step(action),
            Some(Next::Ask(allow)) => Step(self.ask(context_id, data, allow)),
            Some(Next::Wait(sources, fallback)) => {
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
        let mut calls = self.calls.borrow_mut();
        if !calls.is_empty() {
            calls.retain(|_, call| call.context_id != context_id);
        }
    }

    /// Sends the check request of `allow.ask` to its external authorizer and parks the request
    /// until the answer (`on_authorizer_response`). A check request that cannot be sent is an
    /// authorizer error (`failOpen`, else `statusOnError`).
    fn ask(&self, context_id: u32, data: RequestData, allow: Allow) -> Action {
        let Some(ask) = &allow.ask else { return self.answer(&data, allow, None) };
        let call = &ask.call;
        // The SDK sends header values as text; a value that is not UTF-8 cannot be passed on
        // unchanged, and the authorizer must see what the upstream would.
        let headers: Option<Vec<(&str, &str)>> = call
            .headers
            .iter()
            .map(|(name, value)| Some((name.as_str(), std::str::from_utf8(value).ok()?)))
            .collect();
        let Some(headers) = headers else {
            log::warn!(
                "warden: a header for the authorizer {} is not UTF-8: refused",
                ask.provider
            );
            return self.answer(&data, allow, None);
        };
        if self.calls.borrow().len() >= MAX_PENDING_CALLS {
            log::warn!(
                "warden: {MAX_PENDING_CALLS} requests already wait for authorizers: refused"
            );
            return self.answer(&data, allow, None);
        }
        match proxy_wasm::hostcalls::dispatch_http_call(
            &call.cluster,
            headers,
            None,
            vec![],
            call.timeout,
        ) {
            Ok(token) => {
                let pending = PendingCall { context_id, request: data, allow };
                self.calls.borrow_mut().insert(token, pending);
                Action::Pause
            }
            Err(status) => {
                log::warn!(
                    "warden: cannot call the authorizer {} through cluster {:?} ({status:?}): is \
                     that cluster defined?",
                    ask.provider,
                    call.cluster
                );
                self.answer(&data, allow, None)
            }
        }
    }

    /// Carries out the verdict once the authorizer answered (`None`: it could not be asked or
    /// did not answer).
    fn answer(&self, data: &RequestData, allow: Allow, response: Option<&Response>) -> Action {
        let peer_identity = self.enforcer.peer_identity();
        let provider = allow.ask.as_ref().map(|ask| ask.provider.clone()).unwrap_or_default();
        let action = data.with_request(peer_identity, |request| {
            let (verdict, result) = self.enforcer.answered(allow, response, request);
            self.metrics.authorizer_check(&provider, result);
            match verdict {
                verdict @ Verdict::Allow(_) => self.forward(request, &verdict),
                verdict => {
                    self.deny(request, &verdict);
                    Action::Pause
                }
            }
        });
        action.unwrap_or_else(|| {
            fail_closed();
            Action::Pause
        })
    }

    /// An HTTP call's answer: handled (true) if it is an authorizer's. Leaves the effective
    /// context on the request's; the root restores its own.
    pub fn on_authorizer_response(&self, token: u32, num_headers: usize, body_size: usize) -> bool {
        let Some(pending) = self.calls.borrow_mut().remove(&token) else { return false };
        // No headers: the call failed or timed out (Envoy answers a failed call without any).
        let response = (num_headers > 0).then(|| {
            let map = abi::http_call_response_header_map().unwrap_or_default();
            let headers: Vec<(Vec<u8>, Vec<u8>)> = wire::pairs(&map)
                .unwrap_or_default()
                .into_iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            let status = headers
                .iter()
                .find(|(n, _)| n == b":status")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u16>().ok());
            let body = abi::http_call_response_body(body_size.min(authorizer::MAX_BODY))
                .unwrap_or_default();
            Response { status, headers, body }
        });
        // The request may be gone (the client hung up): nothing to answer.
        if abi::set_effective_context(pending.context_id).is_err() {
            return true;
        }
        if self.answer(&pending.request, pending.allow, response.as_ref()) == Action::Continue {
            if let Err(error) = abi::resume_request() {
                log::debug!("warden: could not resume a request: {error}");
            }
        }
        true
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
            let asked = woken.request.with_request(peer_identity, |request| {
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
                    return None;
                }
                match verdict {
                    Verdict::Allow(allow) if allow.ask.is_some() => return Some(allow),
                    verdict @ Verdict::Allow(_) => {
                        if self.forward(request, &verdict) == Action::Continue {
                            if let Err(error) = abi::resume_request() {
                                log::debug!("warden: could not resume a request: {error}");
                            }
                        }
                    }
                    verdict => self.deny(request, &verdict),
                }
                None
            });
            // Its authorizer is asked next; the answer resumes it.
            if let Some(Some(allow)) = asked {
                if self.ask(woken.id, woken.request, allow) == Action::Continue {
                    if let Err(error) = abi::resume_request() {
                        log::debug!("warden: could not resume a request: {error}");
                    }
                }
            }
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
            Cause::Custom { rule, decision, .. } => {
                self.metrics.request(metrics::Decision::Denied);
                self.count_policy(*rule, "denied");
                self.count_side_effects(decision);
                self.count_unknowns(decision.unknowns);
            }
        }
        self.record(request, verdict);
        // An external authorizer's refusal goes to the client as it wrote it.
        let (body, headers): (&[u8], Vec<(&str, &[u8])>) = match &deny.reply {
            Some(reply) => (
                &reply.body,
                reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect(),
            ),
            None => (
                deny.body.as_bytes(),
                deny.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect(),
            ),
        };
        if let Err(error) = abi::send_local_response(
            u32::from(deny.status),
            &deny.details,
            body,
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
