//! Request authentication: Istio `RequestAuthentication` semantics (what istiod compiles into
//! Envoy's `jwt_authn` filter), as a core that does no I/O.
//!
//! ```text
//!  RequestAuthentication ──validate──▶ JwtRule ──compile(workload)──▶ Authenticator
//!                                         │ (inline jwks → KeySet)          │
//!                                         ▼                                 ▼
//!                        remote_sources() ──▶ key store (glue) ──▶ KeyProvider
//!                                                                           │
//!  Request ─▶ extract ─▶ parse (token.rs) ─▶ issuer/location ─▶ exp/nbf ─▶ audiences
//!              │  (or TokenCache hit)                          ─▶ keys ─▶ signature
//!              ▼                                                 (host crypto or PureRust)
//!          Outcome: Anonymous | Authenticated{identity, headers} | Rejected(Failure) | WaitForKeys
//! ```
//!
//! - [`validate`] checks one resource; [`compile`] combines the rules of every resource that
//!   selects a workload (sorted by issuer, as Istio) into an immutable [`Authenticator`].
//! - [`Authenticator::authenticate`] decides one request with the time, the keys the glue
//!   holds ([`KeyProvider`]), a per-worker [`TokenCache`] and a [`SignatureVerifier`].
//! - Remote key sets are fetched by the glue; this module parses them ([`parse_fetched_jwks`])
//!   and says when a refetch may help ([`Failure::refetch`]).
//!
//! Where Warden is stricter than Istio/Envoy, by design: `exp` is required; time claims are
//! non-negative integers; tokens are at most [`MAX_TOKEN_BYTES`]; base64url must be canonical;
//! JSON with duplicate members is refused; `crit`, `b64: false`, `jku`, `x5u`, `jwk`, `x5c`,
//! `salt`, a nested `cty` and a `typ` other than `JWT`/`…+jwt` are refused; a request with two
//! different tokens is refused (`Found multiple Jwt tokens`); a token found in several
//! locations must be allowed in each; RSA keys outside 2048–4096 bits or with an exponent
//! other than 65537, short HMAC keys and private key material are refused when a key set is
//! parsed; ES512 (P-521) is not supported.

mod authenticator;
mod cache;
mod claims;
mod codec;
mod der;
pub(crate) mod extract;
mod failure;
mod jwks;
mod key;
mod rule;
mod token;
mod verify;

pub use authenticator::{
    compile, Authenticator, HeaderOps, Outcome, Policy, RemoteJwks, RuleOrigin,
};
pub use cache::{TokenCache, MAX_CACHE_BYTES, MAX_CACHE_ENTRIES};
pub use claims::ALWAYS_SPACE_DELIMITED;
pub use failure::{Failure, FailureReason, HeaderParameter};
pub use jwks::{
    parse_fetched_jwks, parse_jwks, parse_openid_configuration, JwksError, KeyProblem, SkippedKey,
    MAX_JWKS_BYTES, MAX_KEYS, MAX_RSA_BITS, MIN_RSA_BITS,
};
pub use key::{Algorithm, AlgorithmSet, KeySet, VerifyingKey};
pub use rule::{
    default_cluster, discovery_uri, lint, validate, AuthnSettings, ClaimHeader, HttpTarget,
    JwksSource, JwtRule, TokenLocation, CERTIFICATE_BOUND_ANNOTATION, DEFAULT_TIMEOUT,
    MAX_JWT_RULES,
};
pub use token::MAX_TOKEN_BYTES;
pub use verify::{
    host_crypto_request, host_crypto_result, host_supports, signature_well_formed, PureRust,
    SignatureVerifier, Verified, MAX_KEYS_TRIED,
};

/// The identity authorization sees when a rule with `space_delimited_claims` accepts a token
/// with this payload: `iss`, `sub` (when strings) and the claims normalized as the module
/// normalizes them. For `warden explain --claims`, which evaluates policies for an identity
/// without a token.
pub fn identity_from_payload(
    payload: &serde_json::Map<String, serde_json::Value>,
    space_delimited_claims: &[String],
) -> crate::request::Identity {
    let string =
        |name: &str| payload.get(name).and_then(serde_json::Value::as_str).map(str::to_string);
    crate::request::Identity {
        issuer: string("iss").unwrap_or_default(),
        subject: string("sub"),
        claims: claims::normalize(payload, space_delimited_claims),
    }
}

/// Clock skew allowed on `exp` and `nbf`, in seconds (Envoy's default `clock_skew_seconds`,
/// which Istio does not change).
pub const CLOCK_SKEW_SECONDS: u64 = 60;

/// A remote key set of an [`Authenticator`]: an index into [`Authenticator::remote_sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub usize);

/// What the key store has for one remote source.
#[derive(Debug, Clone, Copy)]
pub enum Keys<'a> {
    /// Keys to verify with.
    Ready(&'a KeySet),
    /// The first fetch is under way: the request waits for it.
    Pending,
    /// Fetches failed (and no last good keys are left): tokens of this source fail, closed.
    Unavailable,
}

/// The glue's key store, as the core sees it.
pub trait KeyProvider {
    /// The keys of `source`.
    fn keys(&self, source: SourceId) -> Keys<'_>;
}

/// What is wrong in a `RequestAuthentication` (the field is named by the [`crate::config::ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// `selector` together with `targetRef`/`targetRefs` (Istio `validateOneOfSelectorType`).
    #[error("only one of selector or targetRef/targetRefs can be set")]
    SelectorWithTargetRefs,
    /// Both `targetRef` and `targetRefs`.
    #[error("only one of targetRef or targetRefs can be set")]
    TargetRefAndTargetRefs,
    /// More `jwtRules` than Istio allows.
    #[error("{0} jwtRules, more than the {MAX_JWT_RULES} Istio allows")]
    TooManyRules(usize),
    /// `warden.io/certificate-bound-tokens` is neither `"true"` nor `"false"`.
    #[error("must be \"true\" or \"false\", not {0:?}")]
    BadBindingAnnotation(String),
    /// Neither `issuer` nor `jwksUri` is set.
    #[error("issuer or jwksUri must be set")]
    IssuerOrJwksUri,
    /// Both `jwks` and `jwksUri` are set.
    #[error("jwks and jwksUri are exclusive: set one")]
    JwksAndJwksUri,
    /// `jwksUri` is not an http(s) URL (or longer than 2048 characters).
    #[error("jwksUri {0:?} is not an http(s) URL of at most 2048 characters")]
    InvalidJwksUri(String),
    /// Neither `jwks` nor `jwksUri`, and the issuer is not an http(s) URL to discover keys from.
    #[error("no jwks or jwksUri, and issuer {0:?} is not an http(s) URL for OpenID discovery")]
    NoKeySource(String),
    /// The inline `jwks` is not a usable key set.
    #[error("invalid jwks: {0}")]
    Jwks(JwksError),
    /// A key of the inline `jwks` cannot be used (configuration is strict: every key must be).
    #[error("unusable key: {}", .0.problem)]
    JwksKey(SkippedKey),
    /// A value that must not be empty is empty.
    #[error("must not be empty")]
    Empty,
    /// Not a valid header name.
    #[error("{0:?} is not a valid header name")]
    InvalidHeaderName(String),
    /// Not a valid cookie name.
    #[error("{0:?} is not a valid cookie name")]
    InvalidCookieName(String),
    /// Two `outputClaimToHeaders` entries write the same header.
    #[error("header {0:?} is written twice")]
    DuplicateHeader(String),
    /// An output header is also where the rule reads tokens from (it is stripped from every
    /// request, so no token could be found there).
    #[error("header {0:?} is also a token location of this rule")]
    OutputHeaderIsTokenLocation(String),
    /// `timeout` is not a positive duration.
    #[error("invalid timeout: {0}")]
    InvalidTimeout(String),
    /// More `spaceDelimitedClaims` than Istio allows.
    #[error("{0} spaceDelimitedClaims, more than the 64 Istio allows")]
    TooManySpaceDelimitedClaims(usize),
}
