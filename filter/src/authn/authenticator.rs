//! Configuration step three, and the per-request decision: the JWT rules that apply to one
//! workload, compiled into an immutable [`Authenticator`].
//!
//! Istio turns N rules into Envoy's requirement
//! `requires_any[P1, …, Pn, requires_all[any(P1, allow_missing), …]]`
//! (`pilot/pkg/security/authn/policy_applier.go`). For the one token Warden accepts per
//! request, that is:
//!
//! 1. no token at any configured location: anonymous (authorization decides);
//! 2. the token's issuer must be configured for every location it was found in
//!    (`Jwt issuer is not configured` otherwise, Envoy's `JwtIssuerChecker`);
//! 3. `nbf`/`exp` with [`CLOCK_SKEW_SECONDS`];
//! 4. the token is accepted when some rule with its issuer (or with no issuer) that declares
//!    one of those locations accepts its audiences and verifies its signature, trying rules in
//!    order (sorted by issuer); otherwise it is refused with the first rule's reason, or waits
//!    when a rule that could still accept it has keys on the way.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::config::istio::WorkloadSelector;
use crate::config::plugin::Workload;
use crate::config::scope::selects;
use crate::request::{Identity, Request};

use super::cache::TokenCache;
use super::claims::{audiences_allowed, claim_header_value, identity};
use super::extract::{self, is_cors_preflight, Found};
use super::failure::{Failure, FailureReason};
use super::key::KeySet;
use super::rule::{discovery_uri, AuthnSettings, ClaimHeader, JwksSource, JwtRule, TokenLocation};
use super::token::{self, ParsedToken, MAX_TOKEN_BYTES};
use super::verify::{verify_with_key_set, KeySetOutcome, SignatureVerifier};
use super::{KeyProvider, Keys, SourceId, CLOCK_SKEW_SECONDS};

/// One `RequestAuthentication`'s validated rules, with what decides where it applies.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `spec.selector`.
    pub selector: Option<&'a WorkloadSelector>,
    /// The rules [`super::validate`] returned.
    pub rules: &'a [JwtRule],
}

/// Which policy and rule a compiled rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOrigin {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// The rule's index in `spec.jwtRules`.
    pub index: usize,
}

impl std::fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} jwtRules[{}]", self.namespace, self.name, self.index)
    }
}

/// A key set the glue must fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// The issuer of the first rule that uses it (for logs; empty for an issuer-less rule).
    pub issuer: String,
    /// What to fetch: the `jwksUri`, or for discovery the OpenID configuration document
    /// (whose `jwks_uri` [`super::parse_openid_configuration`] reads).
    pub uri: String,
    /// Whether `uri` is an OpenID configuration rather than a JWKS.
    pub discovery: bool,
    /// The Envoy cluster to fetch `uri` through.
    pub cluster: String,
    /// The fetch timeout (the longest of the rules that share the source).
    pub timeout: Duration,
}

/// What to do to the request's headers before forwarding it: remove every occurrence of the
/// names in [`HeaderOps::removals`], then add [`HeaderOps::set`], then replace `:path` when
/// [`HeaderOps::path`] says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// The headers any rule writes (payload and claim headers): stripped from every request,
    /// so a client cannot forge them. Shared, not copied, per request.
    pub strip: Arc<[String]>,
    /// Headers that carried the token, removed because the rule does not forward it.
    pub remove: Vec<String>,
    /// Headers to add (lower-case name, value).
    pub set: Vec<(String, Vec<u8>)>,
    /// The new `:path`, when a token query parameter was removed.
    pub path: Option<Vec<u8>>,
}

impl HeaderOps {
    /// Every header name to remove: [`HeaderOps::strip`] then [`HeaderOps::remove`].
    pub fn removals(&self) -> impl Iterator<Item = &str> {
        self.strip.iter().chain(self.remove.iter()).map(String::as_str)
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.strip.is_empty()
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.path.is_none()
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No token anywhere (or a CORS preflight): authorization decides, with no identity.
    Anonymous {
        /// Output headers to strip.
        headers: HeaderOps,
    },
    /// A valid token.
    Authenticated {
        /// `request.auth.*`.
        identity: Arc<Identity>,
        /// Output headers to strip and set, token to remove.
        headers: HeaderOps,
        /// The rule that accepted the token ([`Authenticator::rule_origin`]).
        rule: usize,
    },
    /// A present token that failed: answer with [`Failure::status`] (401, or 403 for audiences).
    Rejected(Failure),
    /// A key set that could accept the token is still being fetched: wait for these sources,
    /// then decide again (fail with `Jwks remote fetch is failed` when they time out).
    WaitForKeys {
        /// The sources to wait for.
        sources: Vec<SourceId>,
    },
}

#[derive(Debug, Clone)]
enum RuleKeys {
    Inline(Arc<KeySet>),
    Remote(SourceId),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    origin: RuleOrigin,
    issuer: String,
    audiences: Vec<String>,
    keys: RuleKeys,
    /// Indices into `Authenticator::locations`.
    locations: Vec<usize>,
    payload_header: Option<String>,
    claim_headers: Vec<ClaimHeader>,
    forward: bool,
    split: Vec<String>,
    /// Identifies `split` across authenticators (the cache outlives them).
    normalization: u64,
    /// Tokens must be bound to the connection's client certificate (RFC 8705).
    certificate_bound: bool,
}

#[derive(Debug, Clone)]
struct LocationEntry {
    location: TokenLocation,
    issuers: Vec<String>,
    any_issuer: bool,
}

impl LocationEntry {
    fn allows(&self, issuer: &str) -> bool {
        self.any_issuer || self.issuers.iter().any(|i| i == issuer)
    }
}

/// The JWT rules that apply to one workload, compiled. Immutable; shared by every request.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    rules: Vec<CompiledRule>,
    locations: Vec<LocationEntry>,
    remote: Vec<RemoteJwks>,
    strip: Arc<[String]>,
    /// A rule with `presence: REQUIRED` applies: a request without a token is refused.
    token_required: bool,
}

/// Compiles the rules of every policy that selects `workload` (policies in `root_namespace`
/// apply in every namespace), concatenated in the order given and stably sorted by issuer, as
/// istiod does.
pub fn compile(
    policies: &[Policy<'_>],
    workload: &Workload,
    root_namespace: &str,
    settings: &AuthnSettings,
) -> Authenticator {
    let mut selected: Vec<(RuleOrigin, &JwtRule)> = policies
        .iter()
        .filter(|p| selects(p.namespace, p.selector, workload, root_namespace))
        .flat_map(|p| {
            p.rules.iter().enumerate().map(move |(index, rule)| {
                let origin = RuleOrigin {
                    namespace: p.namespace.to_string(),
                    name: p.name.to_string(),
                    index,
                };
                (origin, rule)
            })
        })
        .collect();
    crate::sort::sort_by(&mut selected, |a, b| a.1.issuer.cmp(&b.1.issuer));

    let mut authenticator = Authenticator::default();
    let mut strip: Vec<String> = Vec::new();
    for (origin, rule) in selected {
        let locations = rule
            .locations
            .iter()
            .map(|location| authenticator.location_id(location, &rule.issuer))
            .collect();
        let keys = match &rule.jwks {
            JwksSource::Inline(set) => RuleKeys::Inline(Arc::clone(set)),
            JwksSource::Uri(uri) => {
                RuleKeys::Remote(authenticator.source_id(rule, uri, false, settings))
            }
            JwksSource::Discovery(issuer) => RuleKeys::Remote(authenticator.source_id(
                rule,
                &discovery_uri(issuer),
                true,
                settings,
            )),
        };
        for header in rule.output_headers() {
            if !strip.iter().any(|h| h == header) {
                strip.push(header.to_string());
            }
        }
        authenticator.token_required |= rule.required;
        authenticator.rules.push(CompiledRule {
            origin,
            issuer: rule.issuer.clone(),
            audiences: rule.audiences.clone(),
            keys,
            locations,
            payload_header: rule.output_payload_to_header.clone(),
            claim_headers: rule.output_claim_to_headers.clone(),
            forward: rule.forward_original_token,
            split: rule.space_delimited_claims.clone(),
            normalization: normalization_id(&rule.space_delimited_claims),
            certificate_bound: rule.certificate_bound,
        });
    }
    crate::sort::sort(&mut strip);
    authenticator.strip = strip.into();
    authenticator
}

/// RFC 8705 §3: the token's `cnf.x5t#S256` must be the base64url (unpadded) SHA-256 of the
/// DER of the client certificate the request arrived with. Compared in constant time, as a
/// thumbprint is not a secret but the comparison costs nothing to make uniform.
fn check_binding(
    payload: &serde_json::Map<String, serde_json::Value>,
    request: &Request<'_>,
) -> Result<(), FailureReason> {
    use base64::Engine as _;
    let claimed = payload
        .get("cnf")
        .and_then(|cnf| cnf.get("x5t#S256"))
        .and_then(serde_json::Value::as_str)
        .ok_or(FailureReason::CertificateBindingMissing)?;
    let Some(thumbprint) = request.connection.peer.known().and_then(|peer| peer.sha256) else {
        return Err(FailureReason::CertificateBindingMismatch);
    };
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint);
    let same = claimed.len() == expected.len()
        && claimed.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same {
        Ok(())
    } else {
        Err(FailureReason::CertificateBindingMismatch)
    }
}

fn normalization_id(split: &[String]) -> u64 {
    let mut hash = hmac_sha256::Hash::new();
    for claim in split {
        hash.update((claim.len() as u64).to_be_bytes());
        hash.update(claim.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first)
}

impl Authenticator {
    fn location_id(&mut self, location: &TokenLocation, issuer: &str) -> usize {
        let id = match self.locations.iter().position(|l| &l.location == location) {
            Some(id) => id,
            None => {
                self.locations.push(LocationEntry {
                    location: location.clone(),
                    issuers: Vec::new(),
                    any_issuer: false,
                });
                self.locations.len() - 1
            }
        };
        if let Some(entry) = self.locations.get_mut(id) {
            // Envoy JwtIssuerChecker: a provider without issuer allows every issuer there.
            if issuer.is_empty() {
                entry.any_issuer = true;
            } else if !entry.issuers.iter().any(|i| i == issuer) {
                entry.issuers.push(issuer.to_string());
            }
        }
        id
    }

    fn source_id(
        &mut self,
        rule: &JwtRule,
        uri: &str,
        discovery: bool,
        settings: &AuthnSettings,
    ) -> SourceId {
        if let Some(id) = self.remote.iter().position(|r| r.uri == uri && r.discovery == discovery)
        {
            if let Some(source) = self.remote.get_mut(id) {
                source.timeout = source.timeout.max(rule.timeout);
            }
            return SourceId(id);
        }
        self.remote.push(RemoteJwks {
            issuer: rule.issuer.clone(),
            uri: uri.to_string(),
            discovery,
            cluster: settings.cluster_for(uri).unwrap_or_default(),
            timeout: rule.timeout,
        });
        SourceId(self.remote.len() - 1)
    }

    /// Whether some rule requires certificate-bound tokens (the glue must then read the peer
    /// certificate).
    pub fn binds_certificates(&self) -> bool {
        self.rules.iter().any(|r| r.certificate_bound)
    }

    /// Whether no rule applies (every request is anonymous; only nothing to strip).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many rules apply.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Where rule `rule` (as in [`Outcome::Authenticated::rule`]) came from.
    pub fn rule_origin(&self, rule: usize) -> Option<&RuleOrigin> {
        self.rules.get(rule).map(|r| &r.origin)
    }

    /// Key sets the glue must fetch; the index is the [`SourceId`].
    pub fn remote_sources(&self) -> &[RemoteJwks] {
        &self.remote
    }

    /// Headers any rule writes: stripped from every request.
    pub fn output_headers(&self) -> &[String] {
        &self.strip
    }

    fn extract<'r>(&self, request: &Request<'r>) -> Vec<Found<'r>> {
        let mut found = Vec::new();
        for (id, entry) in self.locations.iter().enumerate() {
            if let TokenLocation::Header { name, prefix } = &entry.location {
                for (header, value) in request.headers {
                    if header.eq_ignore_ascii_case(name.as_bytes()) {
                        if let Some(token) = extract::token_in_header(value, prefix.as_bytes()) {
                            found.push(Found { token: Cow::Borrowed(token), location: id });
                        }
                    }
                }
            }
        }
        if !request.path.is_empty() {
            for (id, entry) in self.locations.iter().enumerate() {
                if let TokenLocation::Param(name) = &entry.location {
                    for token in extract::query_params(request.path, name) {
                        found.push(Found { token, location: id });
                    }
                }
            }
        }
        for (id, entry) in self.locations.iter().enumerate() {
            if let TokenLocation::Cookie(name) = &entry.location {
                if let Some(token) = extract::cookie(request, name) {
                    found.push(Found { token: Cow::Borrowed(token), location: id });
                }
            }
        }
        found
    }

    /// Decides one request. `now` is the current time in Unix seconds.
    pub fn authenticate(
        &self,
        request: &Request<'_>,
        now: u64,
        keys: &dyn KeyProvider,
        cache: &mut TokenCache,
        crypto: &dyn SignatureVerifier,
    ) -> Outcome {
        let headers = HeaderOps { strip: Arc::clone(&self.strip), ..HeaderOps::default() };
        // Istio sets `bypass_cors_preflight`: a preflight carries no credentials. Unlike
        // Envoy, the output headers are still stripped.
        if self.rules.is_empty() || is_cors_preflight(request) {
            return Outcome::Anonymous { headers };
        }
        let found = self.extract(request);
        let reject = |reason| Outcome::Rejected(Failure::new(reason));
        let Some(first) = found.first() else {
            if self.token_required {
                return reject(FailureReason::Missing);
            }
            return Outcome::Anonymous { headers };
        };
        // Istio leaves the principal of a request with several tokens undefined (Envoy writes
        // whichever verified last); Warden refuses it. The same token twice is one token.
        if found.iter().any(|f| f.token != first.token) {
            return reject(FailureReason::MultipleTokens);
        }
        let token: &[u8] = &first.token;
        if token.len() > MAX_TOKEN_BYTES {
            return reject(FailureReason::TooLarge);
        }
        let mut locations: Vec<usize> = found.iter().map(|f| f.location).collect();
        locations.sort_unstable();
        locations.dedup();

        let (parsed, verified_under, cached_identity) = match cache.get(token, now) {
            Some(hit) => (hit.parsed, hit.verified_under, hit.identity),
            None => match token::parse(token) {
                Ok(parsed) => (Arc::new(parsed), Vec::new(), None),
                Err(reason) => return reject(reason),
            },
        };
        let claims = &parsed.claims;

        let issuer = claims.iss.as_deref().unwrap_or_default();
        let bound = locations
            .iter()
            .all(|&l| self.locations.get(l).is_some_and(|entry| entry.allows(issuer)));
        if !bound {
            return reject(FailureReason::UnknownIssuer);
        }
        if claims.nbf.is_some_and(|nbf| now.saturating_add(CLOCK_SKEW_SECONDS) < nbf) {
            return reject(FailureReason::NotYetValid);
        }
        if claims.iat.is_some_and(|iat| now.saturating_add(CLOCK_SKEW_SECONDS) < iat) {
            return reject(FailureReason::IssuedInFuture);
        }
        if now > claims.exp.saturating_add(CLOCK_SKEW_SECONDS) {
            return reject(FailureReason::Expired);
        }

        let signing_input = token.get(..parsed.signing_input).unwrap_or_default();
        let mut first_failure: Option<Failure> = None;
        let mut pending: Vec<SourceId> = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if !(rule.issuer.is_empty() || rule.issuer == issuer)
                || !rule.locations.iter().any(|l| locations.contains(l))
            {
                continue;
            }
            let mut fail = |failure: Failure| {
                first_failure.get_or_insert(failure);
            };
            if !audiences_allowed(&rule.audiences, &claims.aud) {
                fail(Failure::new(FailureReason::AudienceNotAllowed));
                continue;
            }
            let (set, source) = match &rule.keys {
                RuleKeys::Inline(set) => (set.as_ref(), None),
                RuleKeys::Remote(source) => match keys.keys(*source) {
                    Keys::Ready(set) => (set, Some(*source)),
                    Keys::Pending => {
                        if !pending.contains(source) {
                            pending.push(*source);
                        }
                        continue;
                    }
                    Keys::Unavailable => {
                        fail(Failure::new(FailureReason::JwksFetchFailed));
                        continue;
                    }
                },
            };
            let fingerprint = set.fingerprint();
            if !verified_under.contains(&fingerprint) {
                let outcome = verify_with_key_set(
                    parsed.alg,
                    parsed.kid.as_deref(),
                    signing_input,
                    &parsed.signature,
                    set,
                    crypto,
                );
                match outcome {
                    KeySetOutcome::Verified => cache.insert(token, &parsed, fingerprint),
                    KeySetOutcome::NoMatchingKey => {
                        let unknown_kid =
                            parsed.kid.as_deref().is_some_and(|kid| !set.has_kid(kid));
                        fail(match source {
                            Some(source) if unknown_kid => {
                                Failure::with_refetch(FailureReason::KidAlgMismatch, source)
                            }
                            _ => Failure::new(FailureReason::KidAlgMismatch),
                        });
                        continue;
                    }
                    KeySetOutcome::Failed => {
                        fail(Failure::new(FailureReason::VerificationFailed));
                        continue;
                    }
                }
            }
            // After the signature: a binding says something only once the issuer vouches for it.
            // Checked per request, never cached: the same token on another connection is
            // another question.
            if rule.certificate_bound {
                if let Err(reason) = check_binding(&claims.payload, request) {
                    fail(Failure::new(reason));
                    continue;
                }
            }
            return self.accept(
                index,
                rule,
                request,
                token,
                &parsed,
                &locations,
                headers,
                cache,
                cached_identity,
            );
        }
        if !pending.is_empty() {
            return Outcome::WaitForKeys { sources: pending };
        }
        Outcome::Rejected(
            first_failure.unwrap_or_else(|| Failure::new(FailureReason::UnknownIssuer)),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        &self,
        index: usize,
        rule: &CompiledRule,
        request: &Request<'_>,
        token: &[u8],
        parsed: &ParsedToken,
        locations: &[usize],
        mut headers: HeaderOps,
        cache: &mut TokenCache,
        cached_identity: Option<(u64, Arc<Identity>)>,
    ) -> Outcome {
        let identity = match cached_identity {
            Some((normalization, identity)) if normalization == rule.normalization => identity,
            _ => {
                let built = Arc::new(identity(&parsed.claims, &rule.split));
                cache.remember_identity(token, rule.normalization, &built);
                built
            }
        };
        if let Some(header) = &rule.payload_header {
            let payload = token.get(parsed.payload.clone()).unwrap_or_default();
            headers.set.push((header.clone(), payload.to_vec()));
        }
        for claim in &rule.claim_headers {
            if let Some(value) = claim_header_value(&parsed.claims.payload, &claim.claim) {
                headers.set.push((claim.header.clone(), value.into_bytes()));
            }
        }
        if !rule.forward {
            // Envoy removes the whole header, or the query parameter; never a cookie.
            for &location in locations.iter().filter(|l| rule.locations.contains(l)) {
                match self.locations.get(location).map(|l| &l.location) {
                    Some(TokenLocation::Header { name, .. }) => {
                        if !headers.remove.contains(name) {
                            headers.remove.push(name.clone());
                        }
                    }
                    Some(TokenLocation::Param(name)) => {
                        let path = headers.path.as_deref().unwrap_or(request.path);
                        headers.path = Some(extract::remove_query_param(path, name));
                    }
                    Some(TokenLocation::Cookie(_)) | None => {}
                }
            }
        }
        Outcome::Authenticated { identity, headers, rule: index }
    }
}
