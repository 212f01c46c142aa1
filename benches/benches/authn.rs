//! Request authentication, natively: what one request costs the core.
//!
//! - `first_seen/<alg>`: a token never seen before (no cache): extraction, parsing, the claim
//!   checks and a pure-Rust signature verification (jwt-simple).
//! - `signature/<alg>`: the signature verification alone (`PureRust::verify`).
//! - `cache_hit/rs256`: the same token again with the verified-token cache on.
//! - `claims/no_signature`: everything but the signature (a verifier that accepts all):
//!   extraction, parsing, claim checks, identity with space-delimited claims, claim headers.
//! - `anonymous`: a request without a token.
//!
//! Run: `cargo bench -p warden-benches --bench authn`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use warden::authn::{
    self, Algorithm, Authenticator, AuthnSettings, KeyProvider, Keys, Outcome, Policy, PureRust,
    SignatureVerifier, SourceId, TokenCache, Verified, VerifyingKey,
};
use warden::config::{self, Document, Resource, Workload};
use warden::request::Request;

const RSA_PEM: &str = include_str!("../../filter/tests/authn/rsa2048-a.pem");
const ISSUER: &str = "https://issuer.example.com";

struct NoRemote;

impl KeyProvider for NoRemote {
    fn keys(&self, _: SourceId) -> Keys<'_> {
        Keys::Unavailable
    }
}

/// Accepts every signature: isolates everything around the cryptography.
struct TrustAll;

impl SignatureVerifier for TrustAll {
    fn verify(&self, _: Algorithm, _: &VerifyingKey, _: &[u8], _: &[u8]) -> Verified {
        Verified::Valid
    }
}

struct Fixture {
    authn: Authenticator,
    keys: authn::KeySet,
    tokens: Vec<(Algorithm, String)>,
}

fn jwk(text: String, kid: &str) -> Value {
    let mut v: Value = serde_json::from_str(&text).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("alg");
        o.insert("kid".into(), json!(kid));
    }
    v
}

fn fixture() -> Option<Fixture> {
    let rsa = RS256KeyPair::from_pem(RSA_PEM).ok()?;
    let der = rsa.to_der().ok()?;
    let es256 = ES256KeyPair::generate().with_key_id("es256");
    let es384 = ES384KeyPair::generate().with_key_id("es384");
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    let secret = [7u8; 64];
    let jwks = json!({"keys": [
        jwk(rsa.public_key().to_jwk(), "rsa"),
        jwk(es256.public_key().to_jwk(), "es256"),
        jwk(es384.public_key().to_jwk(), "es384"),
        jwk(ed.public_key().to_jwk(), "ed"),
        {"kty": "oct", "kid": "hs", "k": Base64UrlSafeNoPadding::encode_to_string(secret).ok()?},
    ]});
    let policy = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "jwt", "namespace": "default"},
        "spec": {"jwtRules": [{
            "issuer": ISSUER,
            "audiences": ["api.example.com"],
            "jwks": jwks.to_string(),
            "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}, {"header": "x-tenant", "claim": "org.tenant"}],
            "spaceDelimitedClaims": ["roles"],
        }]},
    });
    let Ok(Document::Resource(resource)) = config::parse_document(&policy) else { return None };
    let Resource::RequestAuthentication(object) = *resource else { return None };
    let rules = authn::validate(&object).ok()?;
    let policies = [Policy { namespace: "default", name: "jwt", selector: None, rules: &rules }];
    let workload = Workload { namespace: "default".into(), labels: Default::default() };
    let authn = authn::compile(&policies, &workload, "istio-system", &AuthnSettings::default());

    // A typical access token: registered claims, scopes, roles, a nested object.
    let claims = || {
        let custom = json!({
            "scope": "openid profile email api.read api.write",
            "roles": "viewer editor",
            "email": "alice@example.com",
            "org": {"tenant": "acme", "plan": "enterprise"},
            "azp": "web-frontend",
        });
        Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_hours(24 * 365 * 50))
            .with_issuer(ISSUER)
            .with_subject("alice")
            .with_audience("api.example.com")
    };
    let mut tokens = vec![
        (Algorithm::Rs256, rsa.with_key_id("rsa").sign(claims()).ok()?),
        (
            Algorithm::Rs384,
            RS384KeyPair::from_der(&der).ok()?.with_key_id("rsa").sign(claims()).ok()?,
        ),
        (
            Algorithm::Rs512,
            RS512KeyPair::from_der(&der).ok()?.with_key_id("rsa").sign(claims()).ok()?,
        ),
        (
            Algorithm::Ps256,
            PS256KeyPair::from_der(&der).ok()?.with_key_id("rsa").sign(claims()).ok()?,
        ),
        (
            Algorithm::Ps384,
            PS384KeyPair::from_der(&der).ok()?.with_key_id("rsa").sign(claims()).ok()?,
        ),
        (
            Algorithm::Ps512,
            PS512KeyPair::from_der(&der).ok()?.with_key_id("rsa").sign(claims()).ok()?,
        ),
        (Algorithm::Es256, es256.sign(claims()).ok()?),
        (Algorithm::Es384, es384.sign(claims()).ok()?),
        (Algorithm::EdDsa, ed.sign(claims()).ok()?),
    ];
    for (alg, key) in [
        (
            Algorithm::Hs256,
            HS256Key::from_bytes(&secret).with_key_id("hs").authenticate(claims()).ok()?,
        ),
        (
            Algorithm::Hs384,
            HS384Key::from_bytes(&secret).with_key_id("hs").authenticate(claims()).ok()?,
        ),
        (
            Algorithm::Hs512,
            HS512Key::from_bytes(&secret).with_key_id("hs").authenticate(claims()).ok()?,
        ),
    ] {
        tokens.push((alg, key));
    }
    let keys = authn::parse_jwks(jwks.to_string().as_bytes()).ok()?;
    Some(Fixture { authn, keys, tokens })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn with_request<R>(token: &str, f: impl FnOnce(&Request<'_>) -> R) -> R {
    let authorization = format!("Bearer {token}");
    let headers: [(&[u8], &[u8]); 6] = [
        (b"user-agent", b"curl/8.5.0"),
        (b"accept", b"*/*"),
        (b"x-forwarded-proto", b"https"),
        (b"x-request-id", b"5c1f2f0e-7f5b-4a1e-9d38-7f6b9d0a1c2e"),
        (b"authorization", authorization.as_bytes()),
        (b"x-user", b"forged"),
    ];
    let request = Request {
        method: b"GET",
        path: b"/api/v1/items?page=2",
        host: b"api.example.com",
        headers: &headers,
        ..Default::default()
    };
    f(&request)
}

fn benches(c: &mut Criterion) {
    let Some(fixture) = fixture() else {
        return;
    };
    let now = now();
    // Refuse to measure anything that is not the success path.
    for (alg, token) in &fixture.tokens {
        let outcome = with_request(token, |r| {
            fixture.authn.authenticate(r, now, &NoRemote, &mut TokenCache::new(0), &PureRust)
        });
        if !matches!(outcome, Outcome::Authenticated { .. }) {
            eprintln!("{alg}: the fixture token is not accepted: {outcome:?}");
            return;
        }
    }

    let mut group = c.benchmark_group("first_seen");
    for (alg, token) in &fixture.tokens {
        group.bench_function(alg.name(), |b| {
            with_request(token, |r| {
                let mut cache = TokenCache::new(0);
                b.iter(|| {
                    black_box(fixture.authn.authenticate(r, now, &NoRemote, &mut cache, &PureRust))
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("signature");
    for (alg, token) in &fixture.tokens {
        let Some((input, signature)) = token.rsplit_once('.') else { continue };
        let Ok(signature) = Base64UrlSafeNoPadding::decode_to_vec(signature, None) else {
            continue;
        };
        let Some(key) = fixture.keys.keys().iter().find(|k| k.algorithms().contains(*alg)) else {
            continue;
        };
        group.bench_function(alg.name(), |b| {
            b.iter(|| black_box(PureRust.verify(*alg, key, input.as_bytes(), &signature)))
        });
    }
    group.finish();

    let (_, rs256) = &fixture.tokens[0];
    c.bench_function("cache_hit/rs256", |b| {
        with_request(rs256, |r| {
            let mut cache = TokenCache::new(1024);
            let _ = fixture.authn.authenticate(r, now, &NoRemote, &mut cache, &PureRust);
            b.iter(|| {
                black_box(fixture.authn.authenticate(r, now, &NoRemote, &mut cache, &PureRust))
            })
        })
    });
    c.bench_function("claims/no_signature", |b| {
        with_request(rs256, |r| {
            let mut cache = TokenCache::new(0);
            b.iter(|| {
                black_box(fixture.authn.authenticate(r, now, &NoRemote, &mut cache, &TrustAll))
            })
        })
    });
    c.bench_function("anonymous", |b| {
        let headers: [(&[u8], &[u8]); 2] = [(b"user-agent", b"curl/8.5.0"), (b"accept", b"*/*")];
        let request = Request {
            method: b"GET",
            path: b"/",
            host: b"api.example.com",
            headers: &headers,
            ..Default::default()
        };
        let mut cache = TokenCache::new(1024);
        b.iter(|| {
            black_box(fixture.authn.authenticate(&request, now, &NoRemote, &mut cache, &PureRust))
        })
    });
}

criterion_group!(authn_benches, benches);
criterion_main!(authn_benches);
