//! Shared by `authn_conformance.rs` and `authn_threats.rs`: keys of every algorithm (RSA from
//! fixtures, the rest generated once), raw token minting with any header and payload,
//! requests, policies, a key store, and an emulation of Envoy's `verify_signature` host call.
//!
//! [`decide`] runs every request three ways — pure Rust with a cold cache, the emulated host
//! with a cold cache, and pure Rust again on the warm cache — and fails the test unless all
//! three give the same outcome: both verification backends and the cache-hit path must accept
//! and refuse exactly the same tokens.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use jwt_simple::prelude::*;
use p256::pkcs8::DecodePublicKey as _;
use serde_json::{json, Map, Value};
use superboring::hash::MessageDigest;
use superboring::pkey::PKey;
use superboring::rsa::Padding;
use superboring::sign::{Signer, Verifier};

use warden::authn::{
    self, host_crypto_request, Algorithm, Authenticator, AuthnSettings, KeyProvider, KeySet, Keys,
    Outcome, Policy, PureRust, SignatureVerifier, SourceId, TokenCache, Verified, VerifyingKey,
};
use warden::config::{self, ConfigError, Document, Resource, Workload};
use warden::request::Request;

/// The fixed "now" of every test (2023-11-14T22:13:20Z).
pub const NOW: u64 = 1_700_000_000;

pub const RSA_A: &str = include_str!("rsa2048-a.pem");
pub const RSA_B: &str = include_str!("rsa2048-b.pem");
pub const RSA_4096: &str = include_str!("rsa4096.pem");

pub const ISSUER: &str = "https://issuer.example.com";
pub const OTHER_ISSUER: &str = "https://other.example.com";

/// Test keys: one per family, plus a second RSA key that no key set trusts.
pub struct TestKeys {
    pub rsa_der: Vec<u8>,
    pub rsa_b_der: Vec<u8>,
    pub rsa_4096_der: Vec<u8>,
    pub es256: ES256KeyPair,
    pub es384: ES384KeyPair,
    pub ed: Ed25519KeyPair,
    pub hs: Vec<u8>,
    pub es256_other: ES256KeyPair,
}

pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| TestKeys {
        rsa_der: RS256KeyPair::from_pem(RSA_A).unwrap().to_der().unwrap(),
        rsa_b_der: RS256KeyPair::from_pem(RSA_B).unwrap().to_der().unwrap(),
        rsa_4096_der: RS256KeyPair::from_pem(RSA_4096).unwrap().to_der().unwrap(),
        es256: ES256KeyPair::generate(),
        es384: ES384KeyPair::generate(),
        ed: Ed25519KeyPair::generate(),
        hs: (0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect(),
        es256_other: ES256KeyPair::generate(),
    })
}

/// Which private key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The key the test JWKS holds for the algorithm.
    Trusted,
    /// A key of the same family that no key set holds.
    Stranger,
    /// The 4096-bit RSA key.
    Rsa4096,
}

fn rsa_sign(der: &[u8], digest: MessageDigest, padding: Padding, input: &[u8]) -> Vec<u8> {
    let pair = RS256KeyPair::from_der(der).unwrap();
    let pkey = PKey::from_rsa(pair.key_pair().as_ref().clone()).unwrap();
    let mut signer = Signer::new(digest, &pkey).unwrap();
    signer.set_rsa_padding(padding).unwrap();
    signer.update(input).unwrap();
    signer.sign_to_vec().unwrap()
}

/// Signs `input` with `alg` and the chosen key.
pub fn sign(alg: Algorithm, signer: By, input: &[u8]) -> Vec<u8> {
    let k = keys();
    let rsa = match signer {
        By::Trusted => &k.rsa_der,
        By::Stranger => &k.rsa_b_der,
        By::Rsa4096 => &k.rsa_4096_der,
    };
    let pkcs1 = Padding::PKCS1;
    let pss = Padding::PKCS1_PSS;
    match alg {
        Algorithm::Rs256 => rsa_sign(rsa, MessageDigest::sha256(), pkcs1, input),
        Algorithm::Rs384 => rsa_sign(rsa, MessageDigest::sha384(), pkcs1, input),
        Algorithm::Rs512 => rsa_sign(rsa, MessageDigest::sha512(), pkcs1, input),
        Algorithm::Ps256 => rsa_sign(rsa, MessageDigest::sha256(), pss, input),
        Algorithm::Ps384 => rsa_sign(rsa, MessageDigest::sha384(), pss, input),
        Algorithm::Ps512 => rsa_sign(rsa, MessageDigest::sha512(), pss, input),
        Algorithm::Es256 => {
            use p256::ecdsa::signature::Signer as _;
            let pair = if signer == By::Stranger { &k.es256_other } else { &k.es256 };
            let sig: p256::ecdsa::Signature = pair.key_pair().as_ref().sign(input);
            sig.to_bytes().to_vec()
        }
        Algorithm::Es384 => {
            use p384::ecdsa::signature::Signer as _;
            let sig: p384::ecdsa::Signature = k.es384.key_pair().as_ref().sign(input);
            sig.to_bytes().to_vec()
        }
        Algorithm::EdDsa => k.ed.key_pair().as_ref().sk.sign(input, None).to_vec(),
        Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => {
            let secret = if signer == By::Stranger { vec![0x5a; 64] } else { k.hs.clone() };
            match alg {
                Algorithm::Hs256 => HS256Key::from_bytes(&secret).authentication_tag(input),
                Algorithm::Hs384 => HS384Key::from_bytes(&secret).authentication_tag(input),
                _ => HS512Key::from_bytes(&secret).authentication_tag(input),
            }
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

pub fn unb64(text: &str) -> Vec<u8> {
    Base64UrlSafeNoPadding::decode_to_vec(text, None).unwrap()
}

/// The `kid` the test JWKS gives each algorithm's key.
pub fn kid_of(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512 => "rsa",
        Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512 => "rsa",
        Algorithm::Es256 => "es256",
        Algorithm::Es384 => "es384",
        Algorithm::EdDsa => "ed",
        Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => "hs",
    }
}

/// A token from exact header and payload JSON text, signed with `alg`.
pub fn raw_token(alg: Algorithm, signer: By, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = sign(alg, signer, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A token with `alg`, its test `kid`, `typ: JWT` and `extra` header members (a `null` member
/// removes a default), signed by `signer`.
pub fn token_with(alg: Algorithm, signer: By, extra: Value, claims: &Value) -> String {
    let mut header = Map::new();
    header.insert("alg".into(), json!(alg.name()));
    header.insert("kid".into(), json!(kid_of(alg)));
    header.insert("typ".into(), json!("JWT"));
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            header.remove(&k);
        } else {
            header.insert(k, v);
        }
    }
    raw_token(alg, signer, &Value::Object(header).to_string(), &claims.to_string())
}

/// A valid token of `alg` with `claims`.
pub fn token(alg: Algorithm, claims: &Value) -> String {
    token_with(alg, By::Trusted, json!({}), claims)
}

/// `iss`, `sub` and an `exp` an hour after [`NOW`].
pub fn claims(iss: &str, sub: &str) -> Value {
    json!({ "iss": iss, "sub": sub, "exp": NOW + 3600, "iat": NOW - 10 })
}

/// `claims(ISSUER, "alice")` with `extra` members merged in (a `null` removes one).
pub fn claims_with(extra: Value) -> Value {
    let mut base = claims(ISSUER, "alice");
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(&k);
        } else {
            base.as_object_mut().unwrap().insert(k, v);
        }
    }
    base
}

/// An RS256 token of [`ISSUER`] for `alice`.
pub fn good() -> String {
    token(Algorithm::Rs256, &claims(ISSUER, "alice"))
}

fn public_jwk(text: String) -> Value {
    serde_json::from_str(&text).unwrap()
}

/// The trusted public keys as a JWKS: RSA (no `alg`: RS* and PS*), P-256, P-384, Ed25519
/// and a 64-byte HMAC key (no `alg`: HS256/384/512).
pub fn jwks() -> String {
    let k = keys();
    let mut rsa = public_jwk(
        RS256KeyPair::from_der(&k.rsa_der).unwrap().public_key().with_key_id("rsa").to_jwk(),
    );
    rsa.as_object_mut().unwrap().remove("alg");
    let es256 = public_jwk(k.es256.public_key().with_key_id("es256").to_jwk());
    let es384 = public_jwk(k.es384.public_key().with_key_id("es384").to_jwk());
    let ed = public_jwk(k.ed.public_key().with_key_id("ed").to_jwk());
    let hs = json!({"kty": "oct", "kid": "hs", "k": b64(&k.hs)});
    json!({ "keys": [rsa, es256, es384, ed, hs] }).to_string()
}

/// A JWKS with just the given JWKs.
pub fn jwks_of(keys: Vec<Value>) -> String {
    json!({ "keys": keys }).to_string()
}

/// The trusted RSA public key as a JWK (with `alg` removed, `kid` "rsa").
pub fn rsa_jwk() -> Value {
    let mut rsa = public_jwk(
        RS256KeyPair::from_der(&keys().rsa_der).unwrap().public_key().with_key_id("rsa").to_jwk(),
    );
    rsa.as_object_mut().unwrap().remove("alg");
    rsa
}

/// A `RequestAuthentication` object.
pub fn policy(namespace: &str, name: &str, selector: Option<Value>, rules: Value) -> Value {
    let mut spec = json!({ "jwtRules": rules });
    if let Some(selector) = selector {
        spec["selector"] = json!({ "matchLabels": selector });
    }
    json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    })
}

/// A rule for [`ISSUER`] with the test JWKS inline; `extra` members are merged in.
pub fn rule(extra: Value) -> Value {
    let mut rule = json!({ "issuer": ISSUER, "jwks": jwks() });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            rule.as_object_mut().unwrap().remove(&k);
        } else {
            rule.as_object_mut().unwrap().insert(k, v);
        }
    }
    rule
}

/// The workload every test authenticates for.
pub fn workload() -> Workload {
    Workload {
        namespace: "default".into(),
        labels: [("app".to_string(), "web".to_string())].into_iter().collect(),
    }
}

/// Validated policies and their rules.
pub type Validated = Vec<(config::Object<config::RequestAuthenticationSpec>, Vec<authn::JwtRule>)>;

/// Validates the policies' rules; the errors of every policy.
pub fn validate_all(policies: &[Value]) -> Result<Validated, Vec<ConfigError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for value in policies {
        let object = match config::parse_document(value) {
            Ok(Document::Resource(resource)) => match *resource {
                Resource::RequestAuthentication(object) => object,
                other => panic!("not a RequestAuthentication: {other:?}"),
            },
            Ok(other) => panic!("not a resource: {other:?}"),
            Err(e) => {
                errors.extend(e.0);
                continue;
            }
        };
        match authn::validate(&object) {
            Ok(rules) => out.push((object, rules)),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Compiles `policies` for [`workload`] (root namespace `istio-system`).
pub fn authenticator_for(policies: &[Value], workload: &Workload) -> Authenticator {
    let validated = validate_all(policies).unwrap_or_else(|e| panic!("invalid policies: {e:#?}"));
    let policies: Vec<Policy<'_>> = validated
        .iter()
        .map(|(object, rules)| Policy {
            namespace: &object.metadata.namespace,
            name: &object.metadata.name,
            selector: object.spec.selector.as_ref(),
            rules,
        })
        .collect();
    authn::compile(&policies, workload, "istio-system", &AuthnSettings::default())
}

/// Compiles one policy in `default` holding `rules`.
pub fn authenticator(rules: Value) -> Authenticator {
    authenticator_for(&[policy("default", "jwt", None, rules)], &workload())
}

/// A key store in a fixed state, one entry per source.
#[derive(Default)]
pub struct Store(pub Vec<State>);

/// The state of one remote source.
pub enum State {
    Ready(KeySet),
    Pending,
    Unavailable,
}

impl Store {
    /// Every source ready with `jwks`.
    pub fn ready(sources: usize, jwks: &str) -> Store {
        Store(
            (0..sources)
                .map(|_| State::Ready(authn::parse_fetched_jwks(jwks.as_bytes()).unwrap()))
                .collect(),
        )
    }
}

impl KeyProvider for Store {
    fn keys(&self, source: SourceId) -> Keys<'_> {
        match self.0.get(source.0) {
            Some(State::Ready(set)) => Keys::Ready(set),
            Some(State::Pending) => Keys::Pending,
            Some(State::Unavailable) | None => Keys::Unavailable,
        }
    }
}

/// Envoy's `verify_signature` emulated from its wire arguments: the SPKI DER, hash name and
/// (for ECDSA) DER signature are decoded and verified with independent code (the `rsa` crate
/// through superboring's BoringSSL-like API, `p256`, `p384`), as BoringSSL would.
pub struct EmulatedHost;

fn decode_fields(mut bytes: &[u8]) -> [Vec<u8>; 4] {
    let mut fields: [Vec<u8>; 4] = Default::default();
    while let [tag, rest @ ..] = bytes {
        let (mut len, mut shift, mut rest) = (0usize, 0, rest);
        loop {
            let (b, tail) = rest.split_first().unwrap();
            rest = tail;
            len |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        fields[(tag >> 3) as usize - 1] = rest[..len].to_vec();
        bytes = &rest[len..];
    }
    fields
}

impl SignatureVerifier for EmulatedHost {
    fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyingKey,
        input: &[u8],
        signature: &[u8],
    ) -> Verified {
        let Some(request) = host_crypto_request(alg, key, input, signature) else {
            return Verified::Unsupported;
        };
        let [hash, der, sig, text] = decode_fields(&request);
        let ok = match (alg, hash.as_slice()) {
            (Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512, name) => {
                let digest = match name {
                    b"sha256" => MessageDigest::sha256(),
                    b"sha384" => MessageDigest::sha384(),
                    b"sha512" => MessageDigest::sha512(),
                    _ => return Verified::Invalid,
                };
                let Ok(rsa) =
                    superboring::rsa::Rsa::<superboring::pkey::Public>::public_key_from_der(&der)
                else {
                    return Verified::Invalid;
                };
                let pkey = PKey::from_rsa(rsa).unwrap();
                let mut verifier = Verifier::new(digest, &pkey).unwrap();
                verifier.set_rsa_padding(Padding::PKCS1).unwrap();
                verifier.update(&text).unwrap();
                verifier.verify(&sig).unwrap_or(false)
            }
            (Algorithm::Es256, b"sha256") => {
                use p256::ecdsa::signature::Verifier as _;
                let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
                p256::ecdsa::Signature::from_der(&sig).is_ok_and(|s| key.verify(&text, &s).is_ok())
            }
            (Algorithm::Es384, b"sha384") => {
                use p384::ecdsa::signature::Verifier as _;
                let key = p384::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
                p384::ecdsa::Signature::from_der(&sig).is_ok_and(|s| key.verify(&text, &s).is_ok())
            }
            _ => false,
        };
        if ok {
            Verified::Valid
        } else {
            Verified::Invalid
        }
    }
}

/// A request under construction.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    pub host: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Default for Req {
    fn default() -> Self {
        Req {
            method: b"GET".to_vec(),
            path: b"/api".to_vec(),
            host: b"web.default.svc".to_vec(),
            headers: vec![(b"x-forwarded-proto".to_vec(), b"http".to_vec())],
        }
    }
}

impl Req {
    pub fn new() -> Req {
        Req::default()
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Req {
        self.headers.push((name.as_bytes().to_vec(), value.as_ref().to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Req {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn path(mut self, path: impl AsRef<[u8]>) -> Req {
        self.path = path.as_ref().to_vec();
        self
    }

    pub fn method(mut self, method: &str) -> Req {
        self.method = method.as_bytes().to_vec();
        self
    }

    /// Runs `f` on the borrowed [`Request`] view.
    pub fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let headers: Vec<(&[u8], &[u8])> =
            self.headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
        let request = Request {
            method: &self.method,
            path: &self.path,
            host: &self.host,
            headers: &headers,
            ..Default::default()
        };
        f(&request)
    }
}

/// Decides `req` three ways (pure Rust cold, emulated host cold, pure Rust on a warm cache)
/// and fails unless they agree; returns the outcome.
pub fn decide_with(authn: &Authenticator, req: &Req, now: u64, store: &dyn KeyProvider) -> Outcome {
    req.with(|request| {
        let pure = authn.authenticate(request, now, store, &mut TokenCache::new(16), &PureRust);
        let host = authn.authenticate(request, now, store, &mut TokenCache::new(16), &EmulatedHost);
        assert_eq!(pure, host, "pure Rust and host crypto disagree");
        let mut warm = TokenCache::new(16);
        let first = authn.authenticate(request, now, store, &mut warm, &EmulatedHost);
        let second = authn.authenticate(request, now, store, &mut warm, &PureRust);
        assert_eq!(pure, first, "a cold cache changed the outcome");
        assert_eq!(pure, second, "the cache-hit path disagrees with verification");
        pure
    })
}

/// [`decide_with`] at [`NOW`] with no remote keys.
pub fn decide(authn: &Authenticator, req: &Req) -> Outcome {
    decide_with(authn, req, NOW, &Store::default())
}

/// The principal of an authenticated outcome (panics otherwise).
pub fn principal(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Authenticated { identity, .. } => identity.principal().unwrap_or_default(),
        other => panic!("expected an authenticated request, got {other:?}"),
    }
}

/// The identity of an authenticated outcome (panics otherwise).
pub fn identity(outcome: &Outcome) -> Arc<warden::request::Identity> {
    match outcome {
        Outcome::Authenticated { identity, .. } => Arc::clone(identity),
        other => panic!("expected an authenticated request, got {other:?}"),
    }
}

/// A token from exact header and payload text and signature bytes, not signed.
pub fn forge(header: &str, payload: &str, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()), b64(signature))
}

/// The payload segment of a token.
pub fn payload_segment(token: &str) -> &str {
    token.split('.').nth(1).unwrap()
}
