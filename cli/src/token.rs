//! Test tokens: signing keys, minting, and the JWKS that publishes a key.
//!
//! Used by `warden token` and by the playground issuer. Every algorithm the core verifies is
//! here (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512), signed with
//! jwt-simple's pure-Rust backends, so a token minted here exercises exactly the code paths a
//! real identity provider's token would.
//!
//! The payload is written as given: minting builds the JSON object itself and hands jwt-simple
//! no standard claim, so tests can mint tokens whose claims have odd types (`"exp": "soon"`)
//! that a typed claims struct could not represent.
//!
//! Key files are PEM for the asymmetric algorithms (what `openssl` and every identity provider
//! use). HMAC secrets have no standard file format: a key file for `HS*` holds the secret as one
//! line of unpadded base64url, the form a JWK's `k` member uses.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

/// The core's own algorithm enum: what the command mints is what the module verifies.
pub use warden::authn::Algorithm;

/// RSA modulus size for generated keys: the smallest size the core accepts, and fast to verify.
pub const DEFAULT_RSA_BITS: usize = 2048;

/// A private key (or HMAC secret) with its algorithm and key id.
pub enum SigningKey {
    /// RS256.
    RS256(RS256KeyPair),
    /// RS384.
    RS384(RS384KeyPair),
    /// RS512.
    RS512(RS512KeyPair),
    /// PS256.
    PS256(PS256KeyPair),
    /// PS384.
    PS384(PS384KeyPair),
    /// PS512.
    PS512(PS512KeyPair),
    /// ES256.
    ES256(ES256KeyPair),
    /// ES384.
    ES384(ES384KeyPair),
    /// EdDSA (Ed25519).
    EdDSA(Ed25519KeyPair),
    /// HS256, with the key id kept beside the secret (jwt-simple's HMAC keys do not expose it).
    HS256(HS256Key, Option<String>),
    /// HS384.
    HS384(HS384Key, Option<String>),
    /// HS512.
    HS512(HS512Key, Option<String>),
}

impl fmt::Debug for SigningKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, kid {:?})", self.algorithm(), self.kid())
    }
}

/// Applies `$body` to the key pair inside any asymmetric variant, or `$hmac` to an HMAC one.
macro_rules! with_key {
    ($key:expr, $k:ident => $body:expr, $h:ident, $kid:ident => $hmac:expr) => {
        match $key {
            SigningKey::RS256($k) => $body,
            SigningKey::RS384($k) => $body,
            SigningKey::RS512($k) => $body,
            SigningKey::PS256($k) => $body,
            SigningKey::PS384($k) => $body,
            SigningKey::PS512($k) => $body,
            SigningKey::ES256($k) => $body,
            SigningKey::ES384($k) => $body,
            SigningKey::EdDSA($k) => $body,
            SigningKey::HS256($h, $kid) => $hmac,
            SigningKey::HS384($h, $kid) => $hmac,
            SigningKey::HS512($h, $kid) => $hmac,
        }
    };
}

impl SigningKey {
    /// A new random key for `alg`. `rsa_bits` is used for RSA algorithms only. The key id is
    /// the key's RFC 7638 thumbprint.
    pub fn generate(alg: Algorithm, rsa_bits: usize) -> Result<Self> {
        let key = match alg {
            Algorithm::Rs256 => SigningKey::RS256(RS256KeyPair::generate(rsa_bits)?),
            Algorithm::Rs384 => SigningKey::RS384(RS384KeyPair::generate(rsa_bits)?),
            Algorithm::Rs512 => SigningKey::RS512(RS512KeyPair::generate(rsa_bits)?),
            Algorithm::Ps256 => SigningKey::PS256(PS256KeyPair::generate(rsa_bits)?),
            Algorithm::Ps384 => SigningKey::PS384(PS384KeyPair::generate(rsa_bits)?),
            Algorithm::Ps512 => SigningKey::PS512(PS512KeyPair::generate(rsa_bits)?),
            Algorithm::Es256 => SigningKey::ES256(ES256KeyPair::generate()),
            Algorithm::Es384 => SigningKey::ES384(ES384KeyPair::generate()),
            Algorithm::EdDsa => SigningKey::EdDSA(Ed25519KeyPair::generate()),
            // As long as the hash output: shorter secrets are refused by the core (RFC 7518 3.2).
            Algorithm::Hs256 => SigningKey::HS256(HS256Key::from_bytes(&random_bytes(32)?), None),
            Algorithm::Hs384 => SigningKey::HS384(HS384Key::from_bytes(&random_bytes(48)?), None),
            Algorithm::Hs512 => SigningKey::HS512(HS512Key::from_bytes(&random_bytes(64)?), None),
        };
        let kid = key.thumbprint()?;
        Ok(key.with_kid(&kid))
    }

    /// Reads a key file (see the module documentation for the formats). Without `alg`, the
    /// algorithm is inferred from the key: Ed25519 → EdDSA, P-256 → ES256, P-384 → ES384,
    /// RSA → RS256; an HMAC secret needs `alg`. The key id is the thumbprint.
    pub fn from_file_text(text: &str, alg: Option<Algorithm>) -> Result<Self> {
        let key = match alg {
            Some(alg) => Self::parse_as(text, alg)?,
            None => {
                if !text.contains("-----BEGIN") {
                    bail!("the key is not PEM; an HMAC secret needs --alg HS256, HS384 or HS512");
                }
                [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Es384, Algorithm::Rs256]
                    .into_iter()
                    .find_map(|alg| Self::parse_as(text, alg).ok())
                    .ok_or_else(|| {
                        anyhow!("not an Ed25519, P-256, P-384 or RSA private key in PEM form")
                    })?
            }
        };
        let kid = key.thumbprint()?;
        Ok(key.with_kid(&kid))
    }

    fn parse_as(text: &str, alg: Algorithm) -> Result<Self> {
        let pem = text.trim();
        let context = || format!("not a {alg} private key");
        Ok(match alg {
            Algorithm::Rs256 => {
                SigningKey::RS256(RS256KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Rs384 => {
                SigningKey::RS384(RS384KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Rs512 => {
                SigningKey::RS512(RS512KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Ps256 => {
                SigningKey::PS256(PS256KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Ps384 => {
                SigningKey::PS384(PS384KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Ps512 => {
                SigningKey::PS512(PS512KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Es256 => {
                SigningKey::ES256(ES256KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Es384 => {
                SigningKey::ES384(ES384KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::EdDsa => {
                SigningKey::EdDSA(Ed25519KeyPair::from_pem(pem).with_context(context)?)
            }
            Algorithm::Hs256 => SigningKey::HS256(HS256Key::from_bytes(&hmac_secret(pem)?), None),
            Algorithm::Hs384 => SigningKey::HS384(HS384Key::from_bytes(&hmac_secret(pem)?), None),
            Algorithm::Hs512 => SigningKey::HS512(HS512Key::from_bytes(&hmac_secret(pem)?), None),
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::RS256(_) => Algorithm::Rs256,
            SigningKey::RS384(_) => Algorithm::Rs384,
            SigningKey::RS512(_) => Algorithm::Rs512,
            SigningKey::PS256(_) => Algorithm::Ps256,
            SigningKey::PS384(_) => Algorithm::Ps384,
            SigningKey::PS512(_) => Algorithm::Ps512,
            SigningKey::ES256(_) => Algorithm::Es256,
            SigningKey::ES384(_) => Algorithm::Es384,
            SigningKey::EdDSA(_) => Algorithm::EdDsa,
            SigningKey::HS256(..) => Algorithm::Hs256,
            SigningKey::HS384(..) => Algorithm::Hs384,
            SigningKey::HS512(..) => Algorithm::Hs512,
        }
    }

    /// The key id written into tokens' `kid` header and the JWKS.
    pub fn kid(&self) -> Option<&str> {
        with_key!(self, k => k.key_id().as_deref(), _h, kid => kid.as_deref())
    }

    /// The same key with another key id.
    pub fn with_kid(self, kid: &str) -> Self {
        match self {
            SigningKey::RS256(k) => SigningKey::RS256(k.with_key_id(kid)),
            SigningKey::RS384(k) => SigningKey::RS384(k.with_key_id(kid)),
            SigningKey::RS512(k) => SigningKey::RS512(k.with_key_id(kid)),
            SigningKey::PS256(k) => SigningKey::PS256(k.with_key_id(kid)),
            SigningKey::PS384(k) => SigningKey::PS384(k.with_key_id(kid)),
            SigningKey::PS512(k) => SigningKey::PS512(k.with_key_id(kid)),
            SigningKey::ES256(k) => SigningKey::ES256(k.with_key_id(kid)),
            SigningKey::ES384(k) => SigningKey::ES384(k.with_key_id(kid)),
            SigningKey::EdDSA(k) => SigningKey::EdDSA(k.with_key_id(kid)),
            SigningKey::HS256(k, _) => SigningKey::HS256(k.with_key_id(kid), Some(kid.into())),
            SigningKey::HS384(k, _) => SigningKey::HS384(k.with_key_id(kid), Some(kid.into())),
            SigningKey::HS512(k, _) => SigningKey::HS512(k.with_key_id(kid), Some(kid.into())),
        }
    }

    /// The key in its file form (PEM, or base64url for an HMAC secret), newline-terminated.
    pub fn to_file_text(&self) -> Result<String> {
        let mut text = match self {
            SigningKey::RS256(k) => k.to_pem()?,
            SigningKey::RS384(k) => k.to_pem()?,
            SigningKey::RS512(k) => k.to_pem()?,
            SigningKey::PS256(k) => k.to_pem()?,
            SigningKey::PS384(k) => k.to_pem()?,
            SigningKey::PS512(k) => k.to_pem()?,
            SigningKey::ES256(k) => k.to_pem()?,
            SigningKey::ES384(k) => k.to_pem()?,
            SigningKey::EdDSA(k) => k.to_pem(),
            SigningKey::HS256(k, _) => URL_SAFE_NO_PAD.encode(k.to_bytes()),
            SigningKey::HS384(k, _) => URL_SAFE_NO_PAD.encode(k.to_bytes()),
            SigningKey::HS512(k, _) => URL_SAFE_NO_PAD.encode(k.to_bytes()),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }

    /// The JWK that lets a verifier check this key's tokens: the public key with `kid`, `alg`
    /// and `use: sig`. For HMAC this is the secret itself (`kty: oct`): only for local tests.
    pub fn public_jwk(&self) -> Result<Value> {
        let text = match self {
            SigningKey::RS256(k) => k.public_key().to_jwk(),
            SigningKey::RS384(k) => k.public_key().to_jwk(),
            SigningKey::RS512(k) => k.public_key().to_jwk(),
            SigningKey::PS256(k) => k.public_key().to_jwk(),
            SigningKey::PS384(k) => k.public_key().to_jwk(),
            SigningKey::PS512(k) => k.public_key().to_jwk(),
            SigningKey::ES256(k) => k.public_key().to_jwk(),
            SigningKey::ES384(k) => k.public_key().to_jwk(),
            SigningKey::EdDSA(k) => k.public_key().to_jwk(),
            SigningKey::HS256(k, kid) => {
                return Ok(oct_jwk(&k.to_bytes(), "HS256", kid.as_deref()))
            }
            SigningKey::HS384(k, kid) => {
                return Ok(oct_jwk(&k.to_bytes(), "HS384", kid.as_deref()))
            }
            SigningKey::HS512(k, kid) => {
                return Ok(oct_jwk(&k.to_bytes(), "HS512", kid.as_deref()))
            }
        };
        serde_json::from_str(&text).context("jwt-simple produced a JWK that is not JSON")
    }

    /// The RFC 7638 thumbprint (base64url SHA-256 of the canonical public JWK), the default
    /// key id: stable for a key, different for every key.
    pub fn thumbprint(&self) -> Result<String> {
        Ok(match self {
            SigningKey::RS256(k) => k.jwk_thumbprint(),
            SigningKey::RS384(k) => k.jwk_thumbprint(),
            SigningKey::RS512(k) => k.jwk_thumbprint(),
            SigningKey::PS256(k) => k.jwk_thumbprint(),
            SigningKey::PS384(k) => k.jwk_thumbprint(),
            SigningKey::PS512(k) => k.jwk_thumbprint(),
            SigningKey::ES256(k) => k.jwk_thumbprint(),
            SigningKey::ES384(k) => k.jwk_thumbprint(),
            SigningKey::EdDSA(k) => k.jwk_thumbprint(),
            SigningKey::HS256(k, _) => oct_thumbprint(&k.to_bytes()),
            SigningKey::HS384(k, _) => oct_thumbprint(&k.to_bytes()),
            SigningKey::HS512(k, _) => oct_thumbprint(&k.to_bytes()),
        })
    }

    /// Signs `payload` as it is (no claim is added or checked). The header is
    /// `{"alg", "typ": "JWT", "kid"}`.
    pub fn sign(&self, payload: &Map<String, Value>) -> Result<String> {
        let claims = bare_claims(payload.clone());
        let token = match self {
            SigningKey::RS256(k) => k.sign(claims),
            SigningKey::RS384(k) => k.sign(claims),
            SigningKey::RS512(k) => k.sign(claims),
            SigningKey::PS256(k) => k.sign(claims),
            SigningKey::PS384(k) => k.sign(claims),
            SigningKey::PS512(k) => k.sign(claims),
            SigningKey::ES256(k) => k.sign(claims),
            SigningKey::ES384(k) => k.sign(claims),
            SigningKey::EdDSA(k) => k.sign(claims),
            SigningKey::HS256(k, _) => k.authenticate(claims),
            SigningKey::HS384(k, _) => k.authenticate(claims),
            SigningKey::HS512(k, _) => k.authenticate(claims),
        };
        token.map_err(|e| anyhow!("signing with {} failed: {e}", self.algorithm()))
    }
}

/// A JWKS document (`{"keys": [...]}`) publishing `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Result<Value> {
    let keys = keys.into_iter().map(SigningKey::public_jwk).collect::<Result<Vec<_>>>()?;
    Ok(json!({ "keys": keys }))
}

/// Claims jwt-simple serializes as exactly `custom`: every standard field is left unset so that
/// the caller's map decides each member, including odd types.
fn bare_claims(custom: Map<String, Value>) -> JWTClaims<Map<String, Value>> {
    JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    }
}

fn oct_jwk(secret: &[u8], alg: &str, kid: Option<&str>) -> Value {
    let mut jwk =
        json!({"kty": "oct", "alg": alg, "use": "sig", "k": URL_SAFE_NO_PAD.encode(secret)});
    if let (Some(kid), Some(map)) = (kid, jwk.as_object_mut()) {
        map.insert("kid".into(), Value::String(kid.into()));
    }
    jwk
}

/// RFC 7638 section 3.2: the required members of an `oct` key, in lexicographic order.
fn oct_thumbprint(secret: &[u8]) -> String {
    let canonical = format!(r#"{{"k":"{}","kty":"oct"}}"#, URL_SAFE_NO_PAD.encode(secret));
    URL_SAFE_NO_PAD.encode(hmac_sha256::Hash::hash(canonical.as_bytes()))
}

fn hmac_secret(text: &str) -> Result<Vec<u8>> {
    let secret = URL_SAFE_NO_PAD
        .decode(text.trim())
        .context("an HMAC key file holds the secret as unpadded base64url on one line")?;
    if secret.is_empty() {
        bail!("the HMAC secret is empty");
    }
    Ok(secret)
}

fn random_bytes(len: usize) -> Result<Vec<u8>> {
    // jwt-simple's generator draws from the OS; reusing it avoids a second RNG dependency.
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend(HS512Key::generate().to_bytes());
    }
    out.truncate(len);
    Ok(out)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A point in time given on the command line: Unix seconds (`1700000000`), or relative to
/// now (`+1h`, `-90s`, `now`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// Unix seconds.
    Unix(i64),
    /// Seconds from now (negative: in the past).
    FromNow(i64),
}

impl TimeArg {
    /// The time in Unix seconds, given the current time.
    pub fn at(self, now: i64) -> i64 {
        match self {
            TimeArg::Unix(time) => time,
            TimeArg::FromNow(seconds) => now.saturating_add(seconds),
        }
    }
}

impl FromStr for TimeArg {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        if text == "now" {
            return Ok(TimeArg::FromNow(0));
        }
        if let Some(rest) = text.strip_prefix('-') {
            if rest.chars().all(|c| c.is_ascii_digit()) {
                bail!("invalid time {text:?}: Unix times are not negative; for \"in the past\" write -90s");
            }
        }
        if text.starts_with(['+', '-']) {
            return text.parse::<SignedDuration>().map(|d| TimeArg::FromNow(d.0));
        }
        text.parse::<i64>().map(TimeArg::Unix).map_err(|_| {
            anyhow!("invalid time {text:?}: expected Unix seconds, now, +DURATION or -DURATION")
        })
    }
}

/// A signed duration in whole seconds: `1h`, `-5m`, `30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDuration(pub i64);

impl FromStr for SignedDuration {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().strip_prefix('-') {
            Some(rest) => Ok(SignedDuration(-parse_seconds(rest)?)),
            None => parse_seconds(text.trim().trim_start_matches('+')).map(SignedDuration),
        }
    }
}

fn parse_seconds(text: &str) -> Result<i64> {
    let duration = warden::config::duration::parse(text).map_err(|e| anyhow!(e))?;
    i64::try_from(duration.as_secs()).context("duration too large")
}

/// What a token says, before it is turned into a payload.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// `iss`.
    pub issuer: Option<String>,
    /// `sub`.
    pub subject: Option<String>,
    /// `aud`: one value is written as a string, several as a list (both forms are legal).
    pub audiences: Vec<String>,
    /// `iat`.
    pub issued_at: Option<i64>,
    /// `nbf`.
    pub not_before: Option<i64>,
    /// `exp`. `None` mints a token without expiry (which Warden refuses: useful for tests).
    pub expires_at: Option<i64>,
    /// Any other member, and overrides of the ones above (applied last).
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The JSON payload: registered claims first, then `extra` (which wins on a clash).
    pub fn payload(&self) -> Map<String, Value> {
        let mut payload = Map::new();
        if let Some(iss) = &self.issuer {
            payload.insert("iss".into(), Value::String(iss.clone()));
        }
        if let Some(sub) = &self.subject {
            payload.insert("sub".into(), Value::String(sub.clone()));
        }
        match self.audiences.as_slice() {
            [] => {}
            [one] => {
                payload.insert("aud".into(), Value::String(one.clone()));
            }
            many => {
                payload.insert(
                    "aud".into(),
                    Value::Array(many.iter().cloned().map(Value::String).collect()),
                );
            }
        }
        for (name, time) in
            [("iat", self.issued_at), ("nbf", self.not_before), ("exp", self.expires_at)]
        {
            if let Some(time) = time {
                payload.insert(name.into(), Value::from(time));
            }
        }
        for (name, value) in &self.extra {
            payload.insert(name.clone(), value.clone());
        }
        payload
    }
}

/// The `cnf` claim that binds a token to the certificate in `path` (RFC 8705 §3.1), its
/// thumbprint computed by the module's own certificate reader, so it is the one Warden checks.
pub fn certificate_binding(path: &std::path::Path) -> Result<Value> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let peer =
        warden::certificate::parse_pem(&pem).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let thumbprint = peer.sha256.ok_or_else(|| anyhow!("{}: no thumbprint", path.display()))?;
    Ok(json!({ "x5t#S256": URL_SAFE_NO_PAD.encode(thumbprint) }))
}

/// Parses a `--claim NAME=VALUE`. A value that is JSON (a number, `true`, a list, an object, a
/// quoted string) is taken as JSON; anything else is a string, so `scope=read write` is a string
/// and `admin=true` a boolean.
pub fn parse_claim(text: &str) -> Result<(String, Value)> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid claim {text:?}: expected NAME=VALUE"))?;
    if name.is_empty() {
        bail!("invalid claim {text:?}: the name is empty");
    }
    let value =
        serde_json::from_str::<Value>(value).unwrap_or_else(|_| Value::String(value.into()));
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// RSA key generation is slow in debug builds: one key serves every RSA algorithm.
    fn rsa_pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| {
            SigningKey::generate(Algorithm::Rs256, 2048).unwrap().to_file_text().unwrap()
        })
    }

    fn key(alg: Algorithm) -> SigningKey {
        if alg.is_rsa() {
            SigningKey::from_file_text(rsa_pem(), Some(alg)).unwrap()
        } else {
            let text = SigningKey::generate(alg, 0).unwrap().to_file_text().unwrap();
            SigningKey::from_file_text(&text, Some(alg)).unwrap()
        }
    }

    fn payload() -> Map<String, Value> {
        Claims {
            issuer: Some("http://issuer.test".into()),
            subject: Some("alice".into()),
            audiences: vec!["backend".into()],
            issued_at: Some(now()),
            expires_at: Some(now() + 600),
            ..Claims::default()
        }
        .payload()
    }

    fn decode_segment(token: &str, index: usize) -> Value {
        let segment = token.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    /// Verifies with jwt-simple's public-key types built from the published JWK, so the JWKS
    /// and the signature are checked together.
    fn verify_with_jwk(alg: Algorithm, jwk: &Value, token: &str) -> bool {
        let jwk = jwk.to_string();
        let options = VerificationOptions::default();
        type C = Map<String, Value>;
        macro_rules! verify {
            ($key:ty) => {
                <$key>::from_jwk(&jwk).unwrap().verify_token::<C>(token, Some(options)).is_ok()
            };
        }
        match alg {
            Algorithm::Rs256 => verify!(RS256PublicKey),
            Algorithm::Rs384 => verify!(RS384PublicKey),
            Algorithm::Rs512 => verify!(RS512PublicKey),
            Algorithm::Ps256 => verify!(PS256PublicKey),
            Algorithm::Ps384 => verify!(PS384PublicKey),
            Algorithm::Ps512 => verify!(PS512PublicKey),
            Algorithm::Es256 => verify!(ES256PublicKey),
            Algorithm::Es384 => verify!(ES384PublicKey),
            Algorithm::EdDsa => verify!(Ed25519PublicKey),
            Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => {
                let parsed: Value = serde_json::from_str(&jwk).unwrap();
                let secret = URL_SAFE_NO_PAD.decode(parsed["k"].as_str().unwrap()).unwrap();
                match alg {
                    Algorithm::Hs256 => HS256Key::from_bytes(&secret)
                        .verify_token::<C>(token, Some(options))
                        .is_ok(),
                    Algorithm::Hs384 => HS384Key::from_bytes(&secret)
                        .verify_token::<C>(token, Some(options))
                        .is_ok(),
                    _ => HS512Key::from_bytes(&secret)
                        .verify_token::<C>(token, Some(options))
                        .is_ok(),
                }
            }
        }
    }

    #[test]
    fn every_algorithm_signs_a_token_its_jwk_verifies() {
        for alg in Algorithm::ALL {
            let key = key(alg);
            let payload = payload();
            let token = key.sign(&payload).unwrap();
            let header = decode_segment(&token, 0);
            assert_eq!(header["alg"], alg.name(), "{alg}");
            assert_eq!(header["kid"], key.kid().unwrap(), "{alg}");
            assert_eq!(decode_segment(&token, 1), Value::Object(payload), "{alg}");
            let jwk = key.public_jwk().unwrap();
            assert_eq!(jwk["kid"], key.kid().unwrap(), "{alg}");
            assert_eq!(jwk["alg"], alg.name(), "{alg}");
            assert!(jwk.get("d").is_none(), "{alg}: private member published");
            assert!(verify_with_jwk(alg, &jwk, &token), "{alg}: token does not verify");
        }
    }

    #[test]
    fn a_token_signed_by_another_key_does_not_verify() {
        let a = key(Algorithm::Es256);
        let b = key(Algorithm::Es256);
        let token = a.sign(&payload()).unwrap();
        assert!(!verify_with_jwk(Algorithm::Es256, &b.public_jwk().unwrap(), &token));
    }

    #[test]
    fn key_files_round_trip_with_a_stable_thumbprint_kid() {
        for alg in [Algorithm::Es384, Algorithm::EdDsa, Algorithm::Hs384, Algorithm::Ps512] {
            let first = key(alg);
            let text = first.to_file_text().unwrap();
            let again = SigningKey::from_file_text(&text, Some(alg)).unwrap();
            assert_eq!(first.kid(), again.kid(), "{alg}");
            assert_eq!(first.thumbprint().unwrap(), again.thumbprint().unwrap());
        }
    }

    #[test]
    fn algorithm_is_inferred_from_pem_keys_but_not_hmac_secrets() {
        for (alg, expected) in [
            (Algorithm::EdDsa, Algorithm::EdDsa),
            (Algorithm::Es256, Algorithm::Es256),
            (Algorithm::Es384, Algorithm::Es384),
            (Algorithm::Ps256, Algorithm::Rs256),
        ] {
            let text = key(alg).to_file_text().unwrap();
            assert_eq!(SigningKey::from_file_text(&text, None).unwrap().algorithm(), expected);
        }
        let secret = key(Algorithm::Hs256).to_file_text().unwrap();
        assert!(SigningKey::from_file_text(&secret, None).is_err());
    }

    #[test]
    fn a_key_of_another_type_is_refused_for_an_explicit_algorithm() {
        let ec = key(Algorithm::Es256).to_file_text().unwrap();
        assert!(SigningKey::from_file_text(&ec, Some(Algorithm::Es384)).is_err());
        assert!(SigningKey::from_file_text(&ec, Some(Algorithm::Rs256)).is_err());
    }

    #[test]
    fn hmac_thumbprint_follows_rfc_7638() {
        // RFC 7638 canonical form for oct keys: {"k":...,"kty":"oct"}.
        let secret = b"0123456789abcdef0123456789abcdef";
        let canonical = format!(r#"{{"k":"{}","kty":"oct"}}"#, URL_SAFE_NO_PAD.encode(secret));
        let expected = URL_SAFE_NO_PAD.encode(hmac_sha256::Hash::hash(canonical.as_bytes()));
        assert_eq!(oct_thumbprint(secret), expected);
        assert_eq!(expected.len(), 43);
    }

    #[test]
    fn generated_hmac_secrets_are_as_long_as_the_hash() {
        for (alg, len) in [(Algorithm::Hs256, 32), (Algorithm::Hs384, 48), (Algorithm::Hs512, 64)] {
            let jwk = SigningKey::generate(alg, 0).unwrap().public_jwk().unwrap();
            let secret = URL_SAFE_NO_PAD.decode(jwk["k"].as_str().unwrap()).unwrap();
            assert_eq!(secret.len(), len, "{alg}");
        }
    }

    #[test]
    fn payload_writes_one_audience_as_a_string_and_several_as_a_list() {
        let one = Claims { audiences: vec!["a".into()], ..Claims::default() }.payload();
        assert_eq!(one["aud"], json!("a"));
        let two = Claims { audiences: vec!["a".into(), "b".into()], ..Claims::default() }.payload();
        assert_eq!(two["aud"], json!(["a", "b"]));
        assert!(Claims::default().payload().is_empty());
    }

    #[test]
    fn extra_claims_override_registered_ones_with_any_type() {
        let mut extra = Map::new();
        extra.insert("exp".into(), json!("soon"));
        let payload = Claims { expires_at: Some(5), extra, ..Claims::default() }.payload();
        assert_eq!(payload["exp"], json!("soon"));
    }

    #[test]
    fn claim_values_are_json_when_they_parse_and_strings_otherwise() {
        assert_eq!(parse_claim("scope=read write").unwrap(), ("scope".into(), json!("read write")));
        assert_eq!(parse_claim("admin=true").unwrap().1, json!(true));
        assert_eq!(parse_claim("n=5").unwrap().1, json!(5));
        assert_eq!(parse_claim("groups=[\"a\",\"b\"]").unwrap().1, json!(["a", "b"]));
        assert_eq!(parse_claim("s=\"true\"").unwrap().1, json!("true"));
        assert_eq!(parse_claim("empty=").unwrap().1, json!(""));
        assert!(parse_claim("novalue").is_err());
        assert!(parse_claim("=x").is_err());
    }

    #[test]
    fn times_are_absolute_or_relative_to_now() {
        assert_eq!("1700000000".parse::<TimeArg>().unwrap().at(5), 1_700_000_000);
        assert_eq!("now".parse::<TimeArg>().unwrap().at(5), 5);
        assert_eq!("+1m".parse::<TimeArg>().unwrap().at(100), 160);
        assert_eq!("-90s".parse::<TimeArg>().unwrap().at(100), 10);
        assert!("-5".parse::<TimeArg>().is_err());
        assert!("soon".parse::<TimeArg>().is_err());
        assert_eq!("-1h".parse::<SignedDuration>().unwrap(), SignedDuration(-3600));
        assert_eq!("10m".parse::<SignedDuration>().unwrap(), SignedDuration(600));
        assert!("10".parse::<SignedDuration>().is_err());
    }

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!("EdDSA".parse::<Algorithm>().unwrap(), Algorithm::EdDsa);
        assert!("rs256".parse::<Algorithm>().is_err());
        assert!("none".parse::<Algorithm>().is_err());
    }
}
