//! What the fuzz targets share: a fixed configuration, requests built the way the module
//! builds them, and both signature backends (pure Rust, and Envoy's `verify_signature`
//! emulated from its wire arguments by independent code, as in the conformance suites).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../filter/tests/authn/support.rs"]
pub mod support;
pub mod targets;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use jwt_simple::prelude::*;
use serde_json::json;
use warden::authn::{KeyProvider, Keys, PureRust, SourceId, TokenCache};
use warden::enforcer::{self, Enforcer, Verdict};
use warden::request::OwnedRequest;

pub use support::{EmulatedHost, ISSUER, NOW};

/// The trusted keys: the RSA fixture (RS*/PS*) and the HMAC secret, both fixed, so a token
/// in the corpus verifies in every run.
pub fn jwks() -> String {
    let rsa =
        RS256KeyPair::from_pem(support::RSA_A).unwrap().public_key().with_key_id("rsa").to_jwk();
    let mut rsa: serde_json::Value = serde_json::from_str(&rsa).unwrap();
    rsa.as_object_mut().unwrap().remove("alg");
    let hs = json!({"kty": "oct", "kid": "hs", "k": support::b64(&support::keys().hs)});
    json!({"keys": [rsa, hs]}).to_string()
}

/// A backend with a `RequestAuthentication` reading every token location, claim headers and a
/// policy on the claims.
pub fn enforcer() -> &'static Enforcer {
    static ENFORCER: OnceLock<Enforcer> = OnceLock::new();
    ENFORCER.get_or_init(|| {
        let config = json!({
            "workload": {"namespace": "api", "labels": {"app": "backend"}},
            "policies": [
                {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
                 "metadata": {"name": "jwt", "namespace": "api"},
                 "spec": {"jwtRules": [{"issuer": ISSUER, "jwks": jwks(), "audiences": ["backend"],
                    "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}, {"name": "x-jwt"}],
                    "fromParams": ["access_token"], "fromCookies": ["session"],
                    "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}, {"header": "x-groups", "claim": "groups"}],
                    "outputPayloadToHeader": "x-payload", "spaceDelimitedClaims": ["roles"]}]}},
                {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                 "metadata": {"name": "admins", "namespace": "api"},
                 "spec": {"rules": [{"from": [{"source": {"requestPrincipals": [format!("{ISSUER}/*")]}}],
                    "when": [{"key": "request.auth.claims[groups]", "values": ["admin"]},
                             {"key": "request.auth.claims[nested][role]", "values": ["ops*"]}]}]}},
            ],
        });
        Enforcer::new(&enforcer::parse_plugin_config(config.to_string().as_bytes()).unwrap(), None)
            .unwrap()
    })
}

/// No fetched key sources in the fixed configuration.
pub struct NoRemote;
impl KeyProvider for NoRemote {
    fn keys(&self, _: SourceId) -> Keys<'_> {
        Keys::Unavailable
    }
}

/// Decides `request` with both signature backends (cold caches) and then the pure-Rust one on
/// the warm cache: all three must agree, whatever the request carries.
pub fn check_both_ways(request: &OwnedRequest) {
    let e = enforcer();
    let mut cache = TokenCache::new(8);
    let pure = request.with(|r| e.check(r, NOW, &NoRemote, &mut cache, &PureRust));
    let host = request.with(|r| e.check(r, NOW, &NoRemote, &mut TokenCache::new(8), &EmulatedHost));
    let warm = request.with(|r| e.check(r, NOW, &NoRemote, &mut cache, &PureRust));
    let (p, h, w) = (summary(&pure), summary(&host), summary(&warm));
    assert_eq!(p, h, "the two signature backends disagree");
    assert_eq!(p, w, "the token cache changed the verdict");
}

fn summary(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Allow(allow) => format!("allow {:?}", allow.headers),
        Verdict::Deny(deny) => format!("deny {} {}", deny.status, deny.details),
        Verdict::Wait { sources } => format!("wait {sources:?}"),
    }
}

/// Where a token travels.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Location {
    /// `authorization: Bearer <token>`.
    Bearer,
    /// `authorization: bearer <token>` (the scheme is case-insensitive).
    LowerBearer,
    /// `x-jwt: <token>`.
    Header,
    /// `?access_token=<token>`.
    Param,
    /// `cookie: session=<token>`.
    Cookie,
    /// The same token twice.
    Twice,
}

/// A request carrying `token` at `location`, with forged claim headers to strip.
pub fn request_with_token(token: &[u8], location: Location) -> OwnedRequest {
    let mut request = OwnedRequest::default();
    request.authority = b"backend.api".to_vec();
    request.headers.push((b"x-sub".to_vec(), b"forged".to_vec()));
    let bearer = |prefix: &[u8]| [prefix, token].concat();
    match location {
        Location::Bearer => request.headers.push((b"authorization".to_vec(), bearer(b"Bearer "))),
        Location::LowerBearer => {
            request.headers.push((b"authorization".to_vec(), bearer(b"bearer ")))
        }
        Location::Header => request.headers.push((b"x-jwt".to_vec(), token.to_vec())),
        Location::Param => request.path = [b"/api?access_token=", token].concat(),
        Location::Cookie => {
            request.headers.push((b"cookie".to_vec(), [b"a=b; session=", token].concat()))
        }
        Location::Twice => {
            request.headers.push((b"authorization".to_vec(), bearer(b"Bearer ")));
            request.headers.push((b"x-jwt".to_vec(), token.to_vec()));
        }
    }
    request
}
