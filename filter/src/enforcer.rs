//! The enforcer: one workload's compiled configuration, deciding requests.
//!
//! Built once per configuration from the plugin configuration and the workload's identity;
//! immutable afterwards. [`Enforcer::check`] runs request authentication (Istio's
//! `jwt_authn` stage), then authorization (its RBAC stages), and returns a [`Verdict`] that the
//! host carries out: forward with header changes, answer locally, or wait for keys.
//!
//! As in Istio, an invalid token is refused before any AuthorizationPolicy is looked at (an
//! ALLOW never rescues it, a DENY never sees it); a request without a token reaches
//! authorization with no identity.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::authn::{
    self, Authenticator, AuthnSettings, Failure, FailureReason, HeaderOps, KeyProvider, Outcome,
    SignatureVerifier, SourceId, TokenCache,
};
use crate::authorizer::{self, Providers};
use crate::authz::{self, Decision, DryRunAllow, Engine, Mesh, Needs, Reason, RuleRef};
use crate::config::plugin::{DecisionLog, PeerIdentity, Role};
use crate::config::{
    self, ConfigError, ConfigErrors, Document, ObjectRef, PluginConfig, Problem, Resource, Workload,
};
use crate::keystore::FetchSettings;
use crate::request::{Identity, Observed, Request};

/// Envoy RBAC's body for a denied request (`rbac_filter.cc`), which users of Istio know.
pub const RBAC_DENIED_BODY: &str = "RBAC: access denied";

/// The body when a CUSTOM rule matched: Warden calls no external authorizer, so the request is
/// refused as if the authorizer could not be reached.
pub const CUSTOM_UNAVAILABLE_BODY: &str = "warden: CUSTOM authorization is not available";

/// Why an object with `targetRef`/`targetRefs` is ignored.
pub const TARGETS_GATEWAYS: &str = "targetRef/targetRefs attach it to gateways or waypoints, \
     which Istio's sidecars ignore too (pilot/pkg/model/policyattachment.go)";

/// gRPC `PERMISSION_DENIED`, what Envoy answers a denied gRPC call with.
pub const GRPC_PERMISSION_DENIED: u32 = 7;
/// gRPC `UNAUTHENTICATED`.
pub const GRPC_UNAUTHENTICATED: u32 = 16;

/// The compiled configuration for one workload.
#[derive(Debug)]
pub struct Enforcer {
    workload: Workload,
    authz: Engine,
    authn: Authenticator,
    authn_settings: AuthnSettings,
    peer_identity: PeerIdentity,
    decision_log: DecisionLog,
    filter_state: DecisionLog,
    audit: DecisionLog,
    audit_attributes: bool,
    needs: Needs,
    /// Whether a rule or certificate binding reads the peer (`needs.peer` may also be set only
    /// to record it).
    decides_on_peer: bool,
    /// The external authorizers CUSTOM policies call.
    providers: Providers,
    resources: usize,
    /// Objects no sidecar applies (`targetRefs`: gateways and waypoints), and why.
    ignored: Vec<(ObjectRef, &'static str)>,
    /// `allowed <rule id>` and `denied <rule id>` for every rule, by policy then rule: the
    /// access-log summary is written for every request, so it is never formatted per request.
    summaries: Vec<Vec<[Box<str>; 2]>>,
}

/// What to do with a request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Forward it, after applying the header changes.
    Allow(Allow),
    /// Answer it locally.
    Deny(Deny),
    /// A key set that could verify its token is still being fetched: wait (up to
    /// [`Enforcer::wait_limit`]), then check again.
    Wait {
        /// The key sources being waited for.
        sources: Vec<SourceId>,
    },
}

/// A request that may proceed.
#[derive(Debug, Clone)]
pub struct Allow {
    /// Output headers to strip and set, token to remove.
    pub headers: HeaderOps,
    /// What authorization decided (and what AUDIT and dry-run policies said).
    pub decision: Decision,
    /// The verified JWT identity, if a token came with the request.
    pub identity: Option<Arc<Identity>>,
    /// A CUSTOM rule matched and its authorizer must be asked first: the host sends
    /// [`Ask::call`], then hands the answer to [`Enforcer::answered`].
    pub ask: Option<Ask>,
}

/// A call to an external authorizer the request waits for.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The CUSTOM rule that matched.
    pub rule: RuleRef,
    /// Its provider's name.
    pub provider: String,
    /// The check request.
    pub call: authorizer::Call,
}

/// What an external authorizer sent back to the client when it refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The authorizer's body (bounded).
    pub body: Vec<u8>,
    /// The authorizer's headers that `headersToDownstreamOnDeny` names.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A request answered locally.
#[derive(Debug, Clone)]
pub struct Deny {
    /// HTTP status: 401 (or 403 for an audience mismatch) for authentication, 403 for authorization.
    pub status: u16,
    /// The body, as Envoy's native filters write it.
    pub body: &'static str,
    /// Extra response headers (`www-authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// For gRPC requests, the gRPC status to answer with instead of an HTTP body.
    pub grpc_status: Option<u32>,
    /// Response-code details for access logs, as Envoy's filters spell them.
    pub details: String,
    /// Why.
    pub cause: Cause,
    /// The verified JWT identity, when authorization refused an authenticated request.
    pub identity: Option<Arc<Identity>>,
    /// An external authorizer's own answer, sent instead of `body` and `headers`.
    pub reply: Option<Box<Reply>>,
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub enum Cause {
    /// A present token failed.
    Unauthenticated(Failure),
    /// Authorization denied it.
    Unauthorized(Decision),
    /// The client certificate's identity is refused before any policy is consulted.
    Peer(PeerRefusal),
    /// The external authorizer a CUSTOM rule asked refused it, or could not be reached.
    Custom {
        /// The CUSTOM rule.
        rule: RuleRef,
        /// The authorizer failed or did not answer (`statusOnError`), rather than denying.
        error: bool,
        /// What authorization would have decided without it.
        decision: Decision,
    },
}

/// Why a client certificate's identity is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// More than one URI SAN. An X.509-SVID has exactly one (SPIFFE X509-SVID §2); with
    /// several, Envoy's RBAC lets any of them match, so one certificate could speak for two
    /// identities and pass a DENY written for one of them. Warden refuses it (stricter than
    /// Istio; docs/compatibility.md#peer-identity).
    MultipleUriSans,
}

impl PeerRefusal {
    /// A stable snake_case label (counters, response-code details, filter state).
    pub fn label(self) -> &'static str {
        match self {
            PeerRefusal::MultipleUriSans => "multiple_uri_sans",
        }
    }

    /// The label with a `peer_` prefix (the audit record's `reason`, filter state).
    pub fn audit_label(self) -> &'static str {
        match self {
            PeerRefusal::MultipleUriSans => "peer_multiple_uri_sans",
        }
    }
}

impl Deny {
    /// When the token's `kid` is unknown to a fetched key set: the source a refetch may help.
    pub fn refetch(&self) -> Option<SourceId> {
        match &self.cause {
            Cause::Unauthenticated(failure) => failure.refetch(),
            Cause::Unauthorized(_) | Cause::Peer(_) | Cause::Custom { .. } => None,
        }
    }

    fn unauthenticated(failure: Failure, request: &Request<'_>) -> Deny {
        let headers = failure
            .www_authenticate(request)
            .map(|value| vec![("www-authenticate", value)])
            .unwrap_or_default();
        Deny {
            status: failure.status(),
            body: failure.body(),
            headers,
            grpc_status: is_grpc(request).then_some(if failure.status() == 403 {
                GRPC_PERMISSION_DENIED
            } else {
                GRPC_UNAUTHENTICATED
            }),
            details: failure.details(),
            cause: Cause::Unauthenticated(failure),
            identity: None,
            reply: None,
        }
    }
}

impl Enforcer {
    /// Parses, validates and compiles a plugin configuration for a workload (the configured
    /// one wins over `node_workload`, the one Envoy's node metadata describes). Every policy in
    /// the configuration is validated, whichever workload it selects; every error is reported;
    /// any error refuses the configuration.
    pub fn new(
        config: &PluginConfig,
        node_workload: Option<Workload>,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        if config.role == Role::Connection {
            errors.push(ConfigError::plugin(
                "role",
                Problem::Setting(
                    "`role: connection` is the network filter's configuration; the HTTP filter \
                     takes the policies (role http, the default)"
                        .into(),
                ),
            ));
        }
        let workload = config.workload.clone().or(node_workload);
        if workload.is_none() {
            errors.push(ConfigError::plugin(
                "workload",
                Problem::Setting(
                    "the workload is unknown: set workload.namespace (and labels) in the plugin \
                     configuration, or run under a sidecar whose node metadata has NAMESPACE"
                        .into(),
                ),
            ));
        }
        let mesh = Mesh::from_config(config);
        let authn_settings = AuthnSettings::from_config(config).unwrap_or_else(|mut found| {
            errors.append(&mut found);
            AuthnSettings::default()
        });
        let providers = Providers::from_config(config).unwrap_or_else(|mut found| {
            errors.append(&mut found);
            Providers::default()
        });

        let mut authz_policies = Vec::new();
        let mut authn_rules = Vec::new();
        let mut ignored = Vec::new();
        let mut seen = BTreeSet::new();
        // One object at a time: each is read from its raw JSON, validated, and kept only if it
        // applies to this workload, so memory follows what applies, not the mesh.
        // A namespace another configuration serves: nothing here applies to its workloads.
        let excluded =
            workload.as_ref().is_some_and(|w| config.exclude_namespaces.contains(&w.namespace));
        let applies = |namespace: &str, selector: Option<&config::WorkloadSelector>| {
            !excluded
                && workload.as_ref().is_none_or(|workload| {
                    config::scope::selects(namespace, selector, workload, &mesh.root_namespace)
                })
        };
        for (index, raw) in config.policies.iter().enumerate() {
            // From bytes, like every other read in the module: one reader type, one copy of
            // serde_json's parser.
            let value: Value = match serde_json::from_slice(raw.get().as_bytes()) {
                Ok(value) => value,
                Err(error) => {
                    errors.push(ConfigError::plugin(
                        format!("policies[{index}]"),
                        Problem::Syntax(error.to_string()),
                    ));
                    continue;
                }
            };
            let parsed = config::parse_document(&value);
            drop(value);
            let resource = match parsed {
                Ok(Document::Resource(resource)) => *resource,
                Ok(Document::Other { api_version, kind }) => {
                    errors.push(ConfigError::plugin(
                        format!("policies[{index}]"),
                        Problem::Kind(format!("{api_version}/{kind}")),
                    ));
                    continue;
                }
                Err(ConfigErrors(mut found)) => {
                    errors.append(&mut found);
                    continue;
                }
            };
            let at = resource.object_ref();
            if !seen.insert(at.clone()) {
                errors.push(ConfigError::at(
                    &at,
                    "metadata.name",
                    Problem::Duplicate(at.kind.clone()),
                ));
                continue;
            }
            let selected = applies(&at.namespace, resource.selector());
            match resource {
                Resource::AuthorizationPolicy(object) => match authz::validate(&object, &mesh) {
                    Ok(policy) if policy.targets_gateways() => {
                        ignored.push((at, TARGETS_GATEWAYS));
                    }
                    Ok(policy) if selected => authz_policies.push(policy),
                    Ok(_) => {}
                    Err(mut found) => errors.append(&mut found),
                },
                Resource::RequestAuthentication(object) => match authn::validate(&object) {
                    Ok(_)
                        if object.spec.target_ref.is_some()
                            || !object.spec.target_refs.is_empty() =>
                    {
                        ignored.push((at, TARGETS_GATEWAYS));
                    }
                    Ok(rules) if selected => authn_rules.push((object, rules)),
                    Ok(_) => {}
                    Err(mut found) => errors.append(&mut found),
                },
            }
        }
        let (Some(workload), true) = (workload, errors.is_empty()) else {
            return Err(ConfigErrors(errors));
        };

        let authz = authz::compile(&authz_policies, &workload, &mesh);
        let policies: Vec<authn::Policy<'_>> = authn_rules
            .iter()
            .map(|(object, rules)| authn::Policy {
                namespace: &object.metadata.namespace,
                name: &object.metadata.name,
                selector: object.spec.selector.as_ref(),
                rules,
            })
            .collect();
        let authn = authn::compile(&policies, &workload, &mesh.root_namespace, &authn_settings);
        let mut needs = authz.needs();
        // Identity-free configurations skip the peer and address reads entirely.
        needs.identity |= !authn.is_empty();
        // Certificate-bound tokens are checked against the peer certificate's thumbprint.
        needs.peer |= authn.binds_certificates();
        // Only a configuration that decides on the peer refuses a doubtful one; recording it
        // for replay must not change any decision.
        let decides_on_peer = needs.peer;
        if config.log.audit_attributes {
            needs.peer = true;
            needs.destination_ip = true;
            needs.destination_port = true;
            needs.sni = true;
        }
        let summaries = authz
            .policies()
            .iter()
            .enumerate()
            .map(|(p, policy)| {
                (0..policy.rules)
                    .map(|rule| {
                        let id = authz.rule_id(RuleRef { policy: p as u32, rule });
                        [format!("allowed {id}").into(), format!("denied {id}").into()]
                    })
                    .collect()
            })
            .collect();
        Ok(Enforcer {
            providers,
            workload,
            authz,
            authn,
            authn_settings,
            peer_identity: config.peer_identity,
            decision_log: config.log.decisions,
            filter_state: config.log.filter_state,
            audit: config.log.audit,
            audit_attributes: config.log.audit_attributes,
            needs,
            decides_on_peer,
            resources: authz_policies.len() + authn_rules.len(),
            ignored,
            summaries,
        })
    }

    /// Decides one request. `now` is the current time in Unix seconds.
    pub fn check(
        &self,
        request: &Request<'_>,
        now: u64,
        keys: &dyn KeyProvider,
        cache: &mut TokenCache,
        crypto: &dyn SignatureVerifier,
    ) -> Verdict {
        if let Some(refusal) = self.refuse_peer(request) {
            return Verdict::Deny(Deny {
                status: 403,
                body: RBAC_DENIED_BODY,
                headers: Vec::new(),
                grpc_status: is_grpc(request).then_some(GRPC_PERMISSION_DENIED),
                details: format!("warden_peer_refused{{{}}}", refusal.label()),
                cause: Cause::Peer(refusal),
                identity: None,
                reply: None,
            });
        }
        let (identity, headers) = match self.authn.authenticate(request, now, keys, cache, crypto) {
            Outcome::Anonymous { headers } => (None, headers),
            Outcome::Authenticated { identity, headers, .. } => (Some(identity), headers),
            Outcome::Rejected(failure) => {
                return Verdict::Deny(Deny::unauthenticated(failure, request))
            }
            Outcome::WaitForKeys { sources } => return Verdict::Wait { sources },
        };
        let decision = self.authz.decide(request, identity.as_deref());
        if decision.allowed {
            // The authorizer is asked only for requests DENY and ALLOW let through: a refused
            // request stays refused whatever it would say (docs/compatibility.md).
            let ask = decision.ask.and_then(|rule| self.ask(rule, request, identity.as_deref()));
            Verdict::Allow(Allow { headers, decision, identity, ask })
        } else {
            Verdict::Deny(self.unauthorized(decision, request, identity))
        }
    }

    /// The call to the authorizer of the CUSTOM rule `rule`.
    fn ask(
        &self,
        rule: RuleRef,
        request: &Request<'_>,
        identity: Option<&Identity>,
    ) -> Option<Ask> {
        let policy = self.authz.policies().get(rule.policy as usize)?;
        let name = policy.provider.as_deref()?;
        let authorizer::Kind::Http(provider) = &self.providers.get(name)?.kind else {
            return None;
        };
        Some(Ask { rule, provider: name.to_string(), call: provider.call(request, identity) })
    }

    /// The verdict once the authorizer of `allow.ask` answered (`None`: the call failed or
    /// timed out): its denial, or `allow` with the headers it hands upstream.
    ///
    /// Also says how the authorizer answered, for `warden_authorizer_checks_total`: `allowed`,
    /// `denied`, `error` or `failed_open`.
    pub fn answered(
        &self,
        mut allow: Allow,
        response: Option<&authorizer::Response>,
        request: &Request<'_>,
    ) -> (Verdict, &'static str) {
        let Some(ask) = allow.ask.take() else { return (Verdict::Allow(allow), "allowed") };
        let provider = match self.providers.get(&ask.provider).map(|p| &p.kind) {
            Some(authorizer::Kind::Http(provider)) => provider,
            // Providers never change under a compiled configuration; refuse if it did.
            _ => return (Verdict::Deny(self.custom_denial(&ask, allow, None, request)), "error"),
        };
        match provider.answer(response) {
            authorizer::Answer::Allow { upstream, failed_open } => {
                for (name, value) in upstream {
                    allow.headers.set.retain(|(n, _)| *n != name);
                    allow.headers.set.push((name, value));
                }
                (Verdict::Allow(allow), if failed_open { "failed_open" } else { "allowed" })
            }
            authorizer::Answer::Deny { status, body, headers, error } => {
                let reply = Reply { body, headers };
                let mut deny = self.custom_denial(&ask, allow, Some(reply), request);
                deny.status = status;
                if error {
                    if let Cause::Custom { error, .. } = &mut deny.cause {
                        *error = true;
                    }
                    deny.details = format!("ext_authz_error[{}]", self.authz.rule_id(ask.rule));
                }
                (Verdict::Deny(deny), if error { "error" } else { "denied" })
            }
        }
    }

    fn custom_denial(
        &self,
        ask: &Ask,
        allow: Allow,
        reply: Option<Reply>,
        request: &Request<'_>,
    ) -> Deny {
        Deny {
            status: authorizer::DEFAULT_STATUS_ON_ERROR,
            body: "",
            headers: Vec::new(),
            grpc_status: is_grpc(request).then_some(GRPC_PERMISSION_DENIED),
            details: format!("ext_authz_denied[{}]", self.authz.rule_id(ask.rule)),
            cause: Cause::Custom {
                rule: ask.rule,
                error: reply.is_none(),
                decision: allow.decision,
            },
            identity: allow.identity,
            reply: reply.map(Box::new),
        }
    }

    /// A peer identity refused whatever the policies say, when the policies read it (also
    /// what `warden replay` applies to recorded peers).
    pub fn refuse_peer(&self, request: &Request<'_>) -> Option<PeerRefusal> {
        match request.connection.peer {
            Observed::Known(peer) if self.decides_on_peer && peer.uri_sans.len() > 1 => {
                Some(PeerRefusal::MultipleUriSans)
            }
            _ => None,
        }
    }

    /// The answer for a request that waited for keys that did not come in time: Envoy's
    /// `Jwks remote fetch is failed` (401).
    pub fn keys_unavailable(&self, request: &Request<'_>) -> Deny {
        Deny::unauthenticated(Failure::new(FailureReason::JwksFetchFailed), request)
    }

    /// How long a request may wait for `sources`: the longest of their rules' timeouts.
    pub fn wait_limit(&self, sources: &[SourceId]) -> Duration {
        sources
            .iter()
            .filter_map(|s| self.authn.remote_sources().get(s.0))
            .map(|remote| remote.timeout)
            .max()
            .unwrap_or(authn::DEFAULT_TIMEOUT)
    }

    fn unauthorized(
        &self,
        decision: Decision,
        request: &Request<'_>,
        identity: Option<Arc<Identity>>,
    ) -> Deny {
        let (matched, custom) = match decision.reason {
            Reason::DeniedBy(rule) => (self.authz.rule_id(rule), self.is_custom(rule)),
            _ => ("none".to_string(), false),
        };
        let (body, details) = if custom {
            (CUSTOM_UNAVAILABLE_BODY, format!("warden_custom_unavailable[{matched}]"))
        } else {
            (RBAC_DENIED_BODY, format!("rbac_access_denied_matched_policy[{matched}]"))
        };
        Deny {
            status: 403,
            body,
            headers: Vec::new(),
            grpc_status: is_grpc(request).then_some(GRPC_PERMISSION_DENIED),
            details,
            cause: Cause::Unauthorized(decision),
            identity,
            reply: None,
        }
    }

    fn is_custom(&self, rule: RuleRef) -> bool {
        let policy = self.authz.policies().get(rule.policy as usize);
        policy.is_some_and(|p| p.action == authz::Action::Custom)
    }

    /// A one-line account of a decision for Envoy's log, as the `log.decisions` setting asks
    /// (`None` when nothing is to be logged). AUDIT matches and dry-run would-denies are logged
    /// unless the setting is `none`.
    pub fn log_line(&self, verdict: &Verdict, request: &Request<'_>) -> Option<String> {
        self.log_line_at(self.decision_log, verdict, request)
    }

    /// [`Enforcer::log_line`] as if `log.decisions` were `level` (`all` for debug logs).
    pub fn log_line_at(
        &self,
        level: DecisionLog,
        verdict: &Verdict,
        request: &Request<'_>,
    ) -> Option<String> {
        let what = || format!("{} {}", printable(request.method, 16), printable(request.path, 256));
        let notes = |decision: &Decision| {
            let mut notes = String::new();
            if let Some(rule) = decision.audit {
                notes.push_str(&format!("; audit {}", self.authz.rule_id(rule)));
            }
            if let Some(rule) = decision.dry_run_deny {
                notes.push_str(&format!("; dry-run {} would deny", self.authz.rule_id(rule)));
            }
            if decision.dry_run_allow == DryRunAllow::NoneMatched {
                notes.push_str("; dry-run ALLOW policies would deny (none matched)");
            }
            notes
        };
        match (level, verdict) {
            (DecisionLog::None, _) | (_, Verdict::Wait { .. }) => None,
            (_, Verdict::Deny(deny)) => Some(format!(
                "warden: denied {} with {}: {}{}",
                what(),
                deny.status,
                deny.details,
                match &deny.cause {
                    Cause::Unauthorized(decision) | Cause::Custom { decision, .. } =>
                        notes(decision),
                    Cause::Unauthenticated(_) | Cause::Peer(_) => String::new(),
                }
            )),
            (level, Verdict::Allow(allow)) => {
                let notes = notes(&allow.decision);
                if level != DecisionLog::All && notes.is_empty() {
                    return None;
                }
                let by = match allow.decision.reason {
                    Reason::AllowedBy(rule) => self.authz.rule_id(rule),
                    _ => "no ALLOW policy".to_string(),
                };
                Some(format!("warden: allowed {} by {by}{notes}", what()))
            }
        }
    }

    /// The access-log summary of a decision (stored in filter state `warden_decision`):
    /// `allowed <rule>`, `denied <rule or none>` or `unauthenticated <reason>`.
    pub fn summary(&self, verdict: &Verdict) -> Cow<'_, str> {
        let precomputed = |rule: RuleRef, which: usize| -> Option<Cow<'_, str>> {
            let summaries = self.summaries.get(rule.policy as usize)?.get(rule.rule as usize)?;
            summaries.get(which).map(|s| Cow::Borrowed(&**s))
        };
        match verdict {
            Verdict::Allow(allow) => match allow.decision.reason {
                Reason::AllowedBy(rule) => precomputed(rule, 0).unwrap_or("allowed".into()),
                _ => "allowed".into(),
            },
            Verdict::Deny(Deny { cause: Cause::Unauthorized(decision), .. }) => {
                match decision.reason {
                    Reason::DeniedBy(rule) => precomputed(rule, 1).unwrap_or("denied".into()),
                    _ => "denied none".into(),
                }
            }
            Verdict::Deny(Deny { cause: Cause::Unauthenticated(failure), .. }) => {
                format!("unauthenticated {}", failure.reason().label()).into()
            }
            Verdict::Deny(Deny { cause: Cause::Peer(refusal), .. }) => {
                format!("denied peer_{}", refusal.label()).into()
            }
            Verdict::Deny(Deny { cause: Cause::Custom { rule, error, .. }, .. }) => {
                let what = if *error { "ext_authz_error" } else { "ext_authz_denied" };
                format!("denied {what} {}", self.authz.rule_id(*rule)).into()
            }
            Verdict::Wait { .. } => "waiting".into(),
        }
    }

    /// Whether this decision goes to filter state for access logs (`log.filterState`).
    pub fn records_filter_state(&self, verdict: &Verdict) -> bool {
        match (self.filter_state, verdict) {
            (DecisionLog::None, _) | (_, Verdict::Wait { .. }) => false,
            (DecisionLog::Denied, Verdict::Allow(_)) => false,
            (DecisionLog::Denied | DecisionLog::All, Verdict::Deny(_))
            | (DecisionLog::All, Verdict::Allow(_)) => true,
        }
    }

    /// The audit record for filter state `warden_audit`, when `log.audit` asks for this
    /// decision: `denied` records denials, AUDIT matches and dry-run would-denies (as
    /// `log.decisions`), `all` every decision.
    pub fn audit_record(&self, verdict: &Verdict, request: &Request<'_>) -> Option<String> {
        let wanted = match (self.audit, verdict) {
            (DecisionLog::None, _) | (_, Verdict::Wait { .. }) => false,
            (DecisionLog::All, _) | (DecisionLog::Denied, Verdict::Deny(_)) => true,
            (DecisionLog::Denied, Verdict::Allow(allow)) => {
                let d = &allow.decision;
                d.audit.is_some()
                    || d.dry_run_deny.is_some()
                    || d.dry_run_allow == DryRunAllow::NoneMatched
            }
        };
        if wanted {
            crate::audit::record(self, verdict, request, self.audit_attributes)
        } else {
            None
        }
    }

    /// Whether any JWT rule applies (requests need the clock only then).
    pub fn authenticates(&self) -> bool {
        !self.authn.is_empty()
    }

    /// The workload this enforcer serves.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The authorization engine.
    pub fn authz(&self) -> &Engine {
        &self.authz
    }

    /// The request authenticator.
    pub fn authn(&self) -> &Authenticator {
        &self.authn
    }

    /// The authentication settings (token cache size, crypto, fetch timing).
    pub fn authn_settings(&self) -> &AuthnSettings {
        &self.authn_settings
    }

    /// How the key store should time its fetches.
    pub fn fetch_settings(&self) -> FetchSettings {
        FetchSettings {
            refresh_interval: self.authn_settings.refresh_interval,
            max_stale: self.authn_settings.max_stale,
            min_refetch_interval: self.authn_settings.min_refetch_interval,
        }
    }

    /// Where the peer identity is read from.
    pub fn peer_identity(&self) -> PeerIdentity {
        self.peer_identity
    }

    /// Which request attributes the compiled policies read.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// Whether nothing applies to this workload: no policy, no JWT rule, no header to strip.
    /// Such a sidecar forwards everything without reading the request.
    pub fn is_passthrough(&self) -> bool {
        self.authz.policies().is_empty()
            && self.authn.is_empty()
            && self.authn.output_headers().is_empty()
            // Recording every decision (for the audit log, for replay) needs each request seen.
            && self.audit != DecisionLog::All
    }

    /// Objects in the configuration that no sidecar applies, and why (`warden check` warns,
    /// the module logs and reports them).
    pub fn ignored(&self) -> &[(ObjectRef, &'static str)] {
        &self.ignored
    }

    /// The applied policies Warden cannot enforce exactly, with why: they fail closed for this
    /// workload (a CUSTOM rule that matches denies; a condition Warden cannot evaluate counts
    /// against the request).
    pub fn unenforceable(&self) -> impl Iterator<Item = (&authz::AppliedPolicy, &str)> {
        self.authz.policies().iter().filter_map(|p| p.unenforceable.as_deref().map(|why| (p, why)))
    }

    /// How many Istio resources the configuration carries (for the startup log line).
    pub fn resource_count(&self) -> usize {
        self.resources
    }

    /// Envoy's name for a rule, `ns[<ns>]-policy[<name>]-rule[<i>]`.
    pub fn rule_id(&self, rule: RuleRef) -> String {
        self.authz.rule_id(rule)
    }
}

/// Whether Envoy should answer with a gRPC status (`content-type: application/grpc…`).
pub fn is_grpc(request: &Request<'_>) -> bool {
    request
        .header_values(b"content-type")
        .next()
        .is_some_and(|v| v.starts_with(b"application/grpc"))
}

/// Bytes as log text: printable ASCII kept, anything else escaped, cut at `max` bytes.
fn printable(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max));
    for &b in bytes.iter().take(max) {
        if (0x20..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

/// Checks a configuration for the network filter (`role: connection`), which only hands the
/// direct peer's address over: policies given to it would silently not be enforced.
pub fn check_connection_role(config: &PluginConfig) -> Result<(), ConfigErrors> {
    if config.role != Role::Connection {
        return Err(ConfigErrors::from(ConfigError::plugin(
            "role",
            Problem::Setting("the network filter needs `role: connection`".into()),
        )));
    }
    if !config.policies.is_empty() {
        return Err(ConfigErrors::from(ConfigError::plugin(
            "policies",
            Problem::Setting(
                "the network filter (`role: connection`) enforces nothing: give the policies \
                 to the HTTP filter"
                    .into(),
            ),
        )));
    }
    Ok(())
}

/// Reads the plugin configuration for `node_workload` from `open()`'s reader. Policies that
/// cannot apply to the workload are dropped as they are read, so the module never holds the
/// rest of the mesh; what is kept is then validated in full by [`Enforcer::new`]. Returns the
/// configuration and how many objects were dropped. JSON only: a serialized
/// `google.protobuf.Struct` goes through [`parse_plugin_config`].
///
/// The scope (workload, root namespace) comes from settings that may follow the policies, and
/// Envoy hands the configuration over in chunks, so it cannot be known before reading. Where
/// the node names the workload (every Istio sidecar), the one read assumes the node's workload
/// and the default root namespace, then checks the settings it read: only a configuration that
/// names another reads again, in its own scope. Without a node workload, a first pass reads
/// only those settings.
pub fn read_plugin_config<R: std::io::Read>(
    open: impl Fn() -> R,
    node_workload: Option<&Workload>,
) -> Result<(PluginConfig, usize), ConfigErrors> {
    let read = || read_config(&|| Box::new(open()));
    let in_scope = |workload: Workload, root_namespace: String| {
        let scope = config::plugin::Scope { workload, root_namespace };
        if let Some(skimmed) = skimmed(&open, &scope) {
            return Ok(skimmed);
        }
        let (config, dropped) = config::plugin::scope(scope, read);
        config.map(|config| (config, dropped))
    };
    let default_root = || PluginConfig::default().root_namespace;
    if let Some(node) = node_workload {
        let (config, dropped) = in_scope(node.clone(), default_root())?;
        let workload = config.workload.as_ref().unwrap_or(node);
        if *workload == *node && config.root_namespace == default_root() {
            return Ok((config, dropped));
        }
        let (workload, root_namespace) = (workload.clone(), config.root_namespace.clone());
        drop(config);
        return in_scope(workload, root_namespace);
    }
    /// The settings that decide which policies can apply; the rest is skipped unread.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ScopeSettings {
        #[serde(default)]
        workload: Option<Workload>,
        #[serde(default)]
        root_namespace: Option<String>,
    }
    let settings: Result<ScopeSettings, _> = serde_json::from_reader(json_reader(Box::new(open())));
    match settings {
        Ok(ScopeSettings { workload: Some(workload), root_namespace }) => {
            in_scope(workload, root_namespace.unwrap_or_else(default_root))
        }
        // Without a workload the configuration is refused anyway, and settings that do not
        // read are an error: read it all to say which field.
        _ => read().map(|config| (config, 0)),
    }
}

/// The configuration in `scope` read by [`config::skim`], or `None` where that gives up or its
/// settings do not read: serde_json then reads the whole text and says what is wrong.
fn skimmed<R: std::io::Read>(
    open: &impl Fn() -> R,
    scope: &config::plugin::Scope,
) -> Option<(PluginConfig, usize)> {
    let skimmed =
        config::skim::skim(open(), |policy| !config::plugin::out_of_scope(policy, scope))?;
    let mut config = read_config(&|| Box::new(&skimmed.settings[..])).ok()?;
    config.policies = skimmed.policies;
    Some((config, skimmed.dropped))
}

/// Parses the plugin configuration bytes Envoy hands over (JSON, or a serialized
/// `google.protobuf.Struct`) into the schema. Unknown fields are errors.
pub fn parse_plugin_config(bytes: &[u8]) -> Result<PluginConfig, ConfigErrors> {
    let json = config::wire::plugin_configuration_json(bytes)
        .map_err(|message| ConfigError::plugin("", Problem::Syntax(message)))?;
    // Through the same reader as `read_plugin_config` (one copy of the deserializer in the
    // module), without a scope: every policy is kept.
    read_config(&|| Box::new(&json[..]))
}

/// The configuration's text read through [`json_reader`]: its policies kept raw, its settings
/// as JSON values (`config::plugin::Streamed`), nothing after it.
fn deserialize_config<'a>(
    reader: Box<dyn std::io::Read + 'a>,
) -> Result<config::plugin::Streamed, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_reader(json_reader(reader));
    <config::plugin::Streamed as serde::Deserialize>::deserialize(&mut deserializer)
        .and_then(|config| deserializer.end().map(|()| config))
}

/// The one reader type the module's streamed JSON goes through (Envoy's buffer, the skimmed
/// settings, a protobuf `Struct`'s JSON): each reader type would compile serde_json's reader and
/// every schema type's deserializer again.
fn json_reader<'a>(
    reader: Box<dyn std::io::Read + 'a>,
) -> std::io::BufReader<Box<dyn std::io::Read + 'a>> {
    std::io::BufReader::with_capacity(64 * 1024, reader)
}

/// The whole configuration from `open()`'s reader (in the scope in force, if any). An error in
/// the text is located by reading it a second time (see [`config::locate`]); a setting that
/// does not fit the schema is named by the decoder (`config/decode.rs`). The reader is a trait
/// object: see [`json_reader`].
fn read_config<'a>(
    open: &dyn Fn() -> Box<dyn std::io::Read + 'a>,
) -> Result<PluginConfig, ConfigErrors> {
    let streamed = deserialize_config(open()).map_err(|error| {
        // Only as far as the error (a configuration from Envoy is one line): a module's
        // memory never shrinks, and a refused mesh is megabytes.
        let limit = if error.line() == 1 { error.column() as u64 + 256 } else { u64::MAX };
        let mut text = Vec::new();
        let path =
            match std::io::Read::read_to_end(&mut std::io::Read::take(open(), limit), &mut text) {
                Ok(_) if !error.is_eof() => {
                    config::locate::path_at_stream_error(&text, &error, &|prefix| {
                        deserialize_config(Box::new(prefix)).err()
                    })
                }
                _ => String::new(),
            };
        // A value of the wrong shape is a schema error even where serde_json calls it
        // syntax (a number where an enum's name goes: "expected value").
        let problem = if path.is_empty() && !error.is_data() {
            Problem::Syntax(error.to_string())
        } else {
            Problem::Schema(error.to_string())
        };
        ConfigErrors::from(ConfigError::plugin(path, problem))
    })?;
    streamed.into_config()
}
