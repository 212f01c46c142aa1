//! JWKS documents (RFC 7517) into [`KeySet`]s: strict, bounded, public keys only.
//!
//! The same parser reads inline `jwks` from the configuration and documents fetched from a
//! `jwksUri`. What it refuses:
//!
//! - the whole document: not JSON, duplicate members, no `keys` array, more than [`MAX_KEYS`]
//!   keys, larger than [`MAX_JWKS_BYTES`], any private key member (`d`, `p`, `q`, `dp`, `dq`,
//!   `qi`, `oth`: a leaked private key makes every token of the issuer forgeable, so no key of
//!   that document is trusted), or no usable key at all;
//! - one key (skipped, with the reason kept in [`KeySet::skipped`]): keys that are not for
//!   signatures (`use` other than `sig`, `key_ops` without `verify`), unknown `kty`/`crv`/`alg`,
//!   an `alg` that does not fit the key, RSA moduli under [`MIN_RSA_BITS`] or over
//!   [`MAX_RSA_BITS`] bits, exponents other than 65537, even moduli, EC points not on their
//!   curve, weak Ed25519 points, HMAC keys shorter than their hash, malformed members, and
//!   symmetric keys in a fetched (published) document.
//!
//! Differences from Envoy (`jwt_verify_lib/src/jwks.cc`): Envoy also reads PEM and Google's
//! `{kid: certificate}` map, takes any RSA size and exponent, does not consult `use`/`key_ops`,
//! accepts private members and symmetric keys in fetched documents, and keeps a P-521 key.

use jwt_simple::prelude::{
    ES256PublicKey, ES384PublicKey, Ed25519PublicKey, HS256Key, HS384Key, HS512Key, PS256PublicKey,
    PS384PublicKey, PS512PublicKey, RS256PublicKey, RS384PublicKey, RS512PublicKey,
};
use serde_json::{Map, Value};

use super::codec::{base64url_decode, parse_json};
use super::der::{self, Curve};
use super::key::{Algorithm, AlgorithmSet, HmacKeys, KeySet, Material, RsaKeys, VerifyingKey};

/// A larger JWKS document is refused. Public identity providers publish a few kilobytes
/// (tens with `x5c` chains); the bound keeps parsing cheap and memory small.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// More keys than this in one document are refused (each key costs parse time and memory,
/// and a token without `kid` is tried against several).
pub const MAX_KEYS: usize = 64;
/// RSA moduli shorter than this are weak (NIST SP 800-131A) and refused.
pub const MIN_RSA_BITS: usize = 2048;
/// RSA moduli longer than this are refused: verification cost grows with the square of the
/// size, and jwt-simple refuses them too (so both verification paths agree).
pub const MAX_RSA_BITS: usize = 4096;

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Why a whole JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document is not valid JSON (or has duplicate members, or nests too deeply).
    #[error("the JWKS is not valid JSON: {0}")]
    InvalidJson(String),
    /// The document is not a JSON object.
    #[error("the JWKS is not a JSON object")]
    NotAnObject,
    /// The document has no `keys` member.
    #[error("the JWKS has no [keys] member")]
    MissingKeys,
    /// `keys` is not an array.
    #[error("[keys] in the JWKS is not an array")]
    KeysNotArray,
    /// More keys than [`MAX_KEYS`].
    #[error("the JWKS has {0} keys, more than {MAX_KEYS}")]
    TooManyKeys(usize),
    /// A key is not a JSON object.
    #[error("keys[{0}] is not a JSON object")]
    KeyNotObject(usize),
    /// A key carries private key material: the document is refused as a whole.
    #[error(
        "keys[{index}] carries private key material ([{member}]): the whole key set is refused"
    )]
    PrivateKey {
        /// The key's position in `keys`.
        index: usize,
        /// The private member found.
        member: String,
    },
    /// No key of the document can verify signatures.
    #[error("the JWKS has no usable signature key{}", skipped_summary(.0))]
    NoUsableKey(Vec<SkippedKey>),
    /// An OpenID configuration without a usable `jwks_uri`.
    #[error("the OpenID configuration has no http(s) [jwks_uri]")]
    NoJwksUri,
}

fn skipped_summary(skipped: &[SkippedKey]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = skipped.iter().map(|s| s.to_string()).collect();
    format!(" ({})", parts.join("; "))
}

/// A key of a document that was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's position in `keys`.
    pub index: usize,
    /// The key's `kid`, when it is a string.
    pub kid: Option<String>,
    /// Why it was not taken.
    pub problem: KeyProblem,
}

impl std::fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "keys[{}]", self.index)?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid {kid:?})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Why one key was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// No `kty`.
    #[error("[kty] is missing")]
    MissingKty,
    /// A `kty` Warden does not verify with (only RSA, EC, OKP and oct).
    #[error("[kty] {0:?} is not supported")]
    UnsupportedKty(String),
    /// A member that must be a string is not.
    #[error("[{0}] is not a string")]
    NotString(&'static str),
    /// A required member is absent.
    #[error("[{0}] is missing")]
    Missing(&'static str),
    /// A member is not canonical unpadded base64url.
    #[error("[{0}] is not canonical base64url")]
    BadBase64(&'static str),
    /// `use` is not `sig`, or `key_ops` lacks `verify`: not a signature key.
    #[error("not a signature key ([use] is not \"sig\" or [key_ops] lacks \"verify\")")]
    NotForSignatures,
    /// `alg` names no algorithm Warden verifies (an encryption algorithm, `ES512`, `none`, …).
    #[error("[alg] {0:?} is not a supported signature algorithm")]
    UnsupportedAlg(String),
    /// `alg` does not fit the key type.
    #[error("[alg] {alg} does not fit a key of type {kty}")]
    AlgDoesNotFitKey {
        /// The key's `alg`.
        alg: Algorithm,
        /// The key's `kty` (and curve).
        kty: &'static str,
    },
    /// A curve Warden does not verify with (P-521, secp256k1, X25519, Ed448, …).
    #[error("[crv] {0:?} is not supported")]
    UnsupportedCurve(String),
    /// RSA modulus shorter than [`MIN_RSA_BITS`].
    #[error("the RSA modulus has {0} bits, fewer than {MIN_RSA_BITS}")]
    RsaTooSmall(usize),
    /// RSA modulus longer than [`MAX_RSA_BITS`].
    #[error("the RSA modulus has {0} bits, more than {MAX_RSA_BITS}")]
    RsaTooLarge(usize),
    /// RSA exponent other than 65537.
    #[error("the RSA exponent is not 65537")]
    RsaExponent,
    /// An even RSA modulus (not a product of two odd primes).
    #[error("the RSA modulus is even")]
    RsaEvenModulus,
    /// An EC coordinate of the wrong length for its curve.
    #[error("[x] or [y] has the wrong length for the curve")]
    EcCoordinateLength,
    /// An EC point not on its curve (or the point at infinity).
    #[error("the EC point is not on the curve")]
    EcPointInvalid,
    /// An Ed25519 key of the wrong length or a weak (small-order) point.
    #[error("the Ed25519 key is invalid or weak")]
    Ed25519Invalid,
    /// An HMAC key shorter than its hash (RFC 7518 §3.2).
    #[error("the HMAC key has {bytes} bytes, fewer than the {needed} its algorithm needs")]
    HmacTooShort {
        /// The key's length.
        bytes: usize,
        /// The least length that would do.
        needed: usize,
    },
    /// A symmetric key in a fetched document: published, so anyone could sign with it.
    #[error("a symmetric (oct) key in a published key set is never trusted")]
    SecretInPublishedSet,
    /// jwt-simple refused the key.
    #[error("the key was refused: {0}")]
    Refused(String),
}

/// Parses a JWKS given in the configuration (`jwtRules[].jwks`); symmetric keys are allowed.
pub fn parse_jwks(json: &[u8]) -> Result<KeySet, JwksError> {
    parse(json, true)
}

/// Parses a JWKS fetched from an issuer; symmetric keys are skipped (a published secret is no
/// secret).
pub fn parse_fetched_jwks(json: &[u8]) -> Result<KeySet, JwksError> {
    parse(json, false)
}

/// The `jwks_uri` of an OpenID Provider configuration document (OpenID Connect Discovery 1.0
/// §3), as istiod reads it when a rule names only an issuer.
pub fn parse_openid_configuration(json: &[u8]) -> Result<String, JwksError> {
    if json.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let value = parse_json(json).map_err(JwksError::InvalidJson)?;
    let uri = value.as_object().ok_or(JwksError::NotAnObject)?.get("jwks_uri");
    match uri.and_then(Value::as_str) {
        Some(uri) if super::rule::is_http_url(uri) => Ok(uri.to_string()),
        _ => Err(JwksError::NoJwksUri),
    }
}

fn parse(json: &[u8], allow_secrets: bool) -> Result<KeySet, JwksError> {
    if json.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let document = parse_json(json).map_err(JwksError::InvalidJson)?;
    let document = document.as_object().ok_or(JwksError::NotAnObject)?;
    let entries = match document.get("keys") {
        None => return Err(JwksError::MissingKeys),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(JwksError::KeysNotArray),
    };
    if entries.len() > MAX_KEYS {
        return Err(JwksError::TooManyKeys(entries.len()));
    }

    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let object = entry.as_object().ok_or(JwksError::KeyNotObject(index))?;
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m)) {
            return Err(JwksError::PrivateKey { index, member: (*member).to_string() });
        }
        let kid = object.get("kid").and_then(Value::as_str).map(str::to_string);
        match parse_key(object, allow_secrets) {
            Ok(key) => keys.push(key),
            Err(problem) => skipped.push(SkippedKey { index, kid, problem }),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey(skipped));
    }
    let fingerprint = fingerprint(&keys);
    Ok(KeySet { keys, fingerprint, skipped })
}

fn string_member<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, KeyProblem> {
    match object.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyProblem::NotString(name)),
    }
}

fn bytes_member(object: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyProblem> {
    let text = string_member(object, name)?.ok_or(KeyProblem::Missing(name))?;
    base64url_decode(text.as_bytes()).ok_or(KeyProblem::BadBase64(name))
}

fn parse_key(object: &Map<String, Value>, allow_secrets: bool) -> Result<VerifyingKey, KeyProblem> {
    let kid = string_member(object, "kid")?.filter(|k| !k.is_empty()).map(str::to_string);
    let kty = string_member(object, "kty")?.ok_or(KeyProblem::MissingKty)?;
    if let Some(usage) = string_member(object, "use")? {
        if usage != "sig" {
            return Err(KeyProblem::NotForSignatures);
        }
    }
    if let Some(ops) = object.get("key_ops") {
        let ops = ops.as_array().ok_or(KeyProblem::NotString("key_ops"))?;
        if ops.iter().any(|op| !op.is_string()) {
            return Err(KeyProblem::NotString("key_ops"));
        }
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err(KeyProblem::NotForSignatures);
        }
    }
    let alg = match string_member(object, "alg")? {
        None => None,
        Some(name) => Some(
            Algorithm::from_name(name).ok_or_else(|| KeyProblem::UnsupportedAlg(name.into()))?,
        ),
    };
    // The key's family, narrowed to its `alg` when it names one.
    let narrow = |family: &[Algorithm], kty: &'static str| -> Result<AlgorithmSet, KeyProblem> {
        match alg {
            None => Ok(AlgorithmSet::of(family)),
            Some(alg) if family.contains(&alg) => Ok(AlgorithmSet::of(&[alg])),
            Some(alg) => Err(KeyProblem::AlgDoesNotFitKey { alg, kty }),
        }
    };

    match kty {
        "RSA" => {
            let algorithms = narrow(&Algorithm::RSA, "RSA")?;
            let n = bytes_member(object, "n")?;
            let e = bytes_member(object, "e")?;
            rsa_key(kid, algorithms, &n, &e)
        }
        "EC" => {
            let crv = string_member(object, "crv")?.ok_or(KeyProblem::Missing("crv"))?;
            let (curve, algorithms, size) = match crv {
                "P-256" => (Curve::P256, narrow(&[Algorithm::Es256], "EC P-256")?, 32),
                "P-384" => (Curve::P384, narrow(&[Algorithm::Es384], "EC P-384")?, 48),
                other => return Err(KeyProblem::UnsupportedCurve(other.into())),
            };
            let x = bytes_member(object, "x")?;
            let y = bytes_member(object, "y")?;
            if x.len() != size || y.len() != size {
                return Err(KeyProblem::EcCoordinateLength);
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let material = match curve {
                Curve::P256 => Material::P256(
                    ES256PublicKey::from_bytes(&point).map_err(|_| KeyProblem::EcPointInvalid)?,
                ),
                Curve::P384 => Material::P384(
                    ES384PublicKey::from_bytes(&point).map_err(|_| KeyProblem::EcPointInvalid)?,
                ),
            };
            let spki_der = Some(der::ec_spki(curve, &point));
            Ok(VerifyingKey { kid, algorithms, material, spki_der })
        }
        "OKP" => {
            let crv = string_member(object, "crv")?.ok_or(KeyProblem::Missing("crv"))?;
            if crv != "Ed25519" {
                return Err(KeyProblem::UnsupportedCurve(crv.into()));
            }
            let algorithms = narrow(&[Algorithm::EdDsa], "OKP Ed25519")?;
            let x = bytes_member(object, "x")?;
            if x.len() != 32 {
                return Err(KeyProblem::Ed25519Invalid);
            }
            let key = Ed25519PublicKey::from_bytes(&x).map_err(|_| KeyProblem::Ed25519Invalid)?;
            Ok(VerifyingKey { kid, algorithms, material: Material::Ed25519(key), spki_der: None })
        }
        "oct" => {
            if !allow_secrets {
                return Err(KeyProblem::SecretInPublishedSet);
            }
            let k = bytes_member(object, "k")?;
            let family = Algorithm::HMAC;
            let algorithms = match alg {
                Some(alg) if !family.contains(&alg) => {
                    return Err(KeyProblem::AlgDoesNotFitKey { alg, kty: "oct" })
                }
                Some(alg) if k.len() < alg.hash_len() => {
                    return Err(KeyProblem::HmacTooShort { bytes: k.len(), needed: alg.hash_len() })
                }
                Some(alg) => AlgorithmSet::of(&[alg]),
                None => {
                    let fitting: Vec<Algorithm> =
                        family.into_iter().filter(|a| a.hash_len() <= k.len()).collect();
                    if fitting.is_empty() {
                        return Err(KeyProblem::HmacTooShort { bytes: k.len(), needed: 32 });
                    }
                    AlgorithmSet::of(&fitting)
                }
            };
            let keys = HmacKeys {
                hs256: algorithms.contains(Algorithm::Hs256).then(|| HS256Key::from_bytes(&k)),
                hs384: algorithms.contains(Algorithm::Hs384).then(|| HS384Key::from_bytes(&k)),
                hs512: algorithms.contains(Algorithm::Hs512).then(|| HS512Key::from_bytes(&k)),
            };
            Ok(VerifyingKey {
                kid,
                algorithms,
                material: Material::Hmac(Box::new(keys)),
                spki_der: None,
            })
        }
        other => Err(KeyProblem::UnsupportedKty(other.into())),
    }
}

fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn bit_length(bytes: &[u8]) -> usize {
    let bytes = trim_zeros(bytes);
    match bytes.first() {
        None => 0,
        Some(&top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

fn rsa_key(
    kid: Option<String>,
    algorithms: AlgorithmSet,
    n: &[u8],
    e: &[u8],
) -> Result<VerifyingKey, KeyProblem> {
    let modulus = trim_zeros(n);
    let bits = bit_length(modulus);
    if bits < MIN_RSA_BITS {
        return Err(KeyProblem::RsaTooSmall(bits));
    }
    if bits > MAX_RSA_BITS {
        return Err(KeyProblem::RsaTooLarge(bits));
    }
    if modulus.last().is_none_or(|&b| b & 1 == 0) {
        return Err(KeyProblem::RsaEvenModulus);
    }
    let exponent = trim_zeros(e);
    if exponent != [1, 0, 1] {
        return Err(KeyProblem::RsaExponent);
    }
    let refused = |e: jwt_simple::Error| KeyProblem::Refused(e.to_string());
    let mut keys = RsaKeys::default();
    for alg in algorithms.iter() {
        match alg {
            Algorithm::Rs256 => {
                keys.rs256 =
                    Some(RS256PublicKey::from_components(modulus, exponent).map_err(refused)?)
            }
            Algorithm::Rs384 => {
                keys.rs384 =
                    Some(RS384PublicKey::from_components(modulus, exponent).map_err(refused)?)
            }
            Algorithm::Rs512 => {
                keys.rs512 =
                    Some(RS512PublicKey::from_components(modulus, exponent).map_err(refused)?)
            }
            Algorithm::Ps256 => {
                keys.ps256 =
                    Some(PS256PublicKey::from_components(modulus, exponent).map_err(refused)?)
            }
            Algorithm::Ps384 => {
                keys.ps384 =
                    Some(PS384PublicKey::from_components(modulus, exponent).map_err(refused)?)
            }
            Algorithm::Ps512 => {
                keys.ps512 =
                    Some(PS512PublicKey::from_components(modulus, exponent).map_err(refused)?)
            }
            _ => {}
        }
    }
    Ok(VerifyingKey {
        kid,
        algorithms,
        spki_der: Some(der::rsa_spki(modulus, exponent)),
        material: Material::Rsa { modulus: modulus.to_vec(), keys: Box::new(keys) },
    })
}

/// SHA-256 over every key's kid, algorithms and public material, cut to 64 bits.
fn fingerprint(keys: &[VerifyingKey]) -> u64 {
    let mut hash = hmac_sha256::Hash::new();
    hash.update((keys.len() as u64).to_be_bytes());
    for key in keys {
        match &key.kid {
            Some(kid) => {
                hash.update([1]);
                hash.update((kid.len() as u64).to_be_bytes());
                hash.update(kid.as_bytes());
            }
            None => hash.update([0]),
        }
        hash.update(key.algorithms.bits().to_be_bytes());
        let (tag, material): (u8, Vec<u8>) = match &key.material {
            Material::Rsa { modulus, .. } => (1, modulus.clone()),
            Material::P256(k) => (2, k.to_bytes()),
            Material::P384(k) => (3, k.to_bytes()),
            Material::Ed25519(k) => (4, k.to_bytes()),
            Material::Hmac(k) => {
                let raw = k
                    .hs256
                    .as_ref()
                    .map(|k| k.to_bytes())
                    .or_else(|| k.hs384.as_ref().map(|k| k.to_bytes()))
                    .or_else(|| k.hs512.as_ref().map(|k| k.to_bytes()))
                    .unwrap_or_default();
                (5, raw)
            }
        };
        hash.update([tag]);
        hash.update((material.len() as u64).to_be_bytes());
        hash.update(&material);
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::codec::base64url_encode;
    use jwt_simple::prelude::{ES256KeyPair, ES384KeyPair, Ed25519KeyPair, RS256KeyPair};
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const RSA_PEM: &str = include_str!("../../tests/authn/rsa2048-a.pem");

    fn jwk(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn rsa_jwk() -> Value {
        jwk(&RS256KeyPair::from_pem(RSA_PEM).unwrap().public_key().to_jwk())
    }

    fn set_of(keys: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({ "keys": keys })).unwrap()
    }

    fn with(mut key: Value, member: &str, value: Value) -> Value {
        key.as_object_mut().unwrap().insert(member.into(), value);
        key
    }

    fn without(mut key: Value, member: &str) -> Value {
        key.as_object_mut().unwrap().remove(member);
        key
    }

    fn problem(key: Value) -> KeyProblem {
        match parse_jwks(&set_of(vec![key])) {
            Err(JwksError::NoUsableKey(skipped)) => skipped[0].problem.clone(),
            other => panic!("expected a skipped key, got {other:?}"),
        }
    }

    #[test]
    fn every_key_type_parses() {
        let keys = vec![
            with(without(rsa_jwk(), "alg"), "kid", json!("rsa")),
            with(jwk(&ES256KeyPair::generate().public_key().to_jwk()), "kid", json!("p256")),
            with(jwk(&ES384KeyPair::generate().public_key().to_jwk()), "kid", json!("p384")),
            with(jwk(&Ed25519KeyPair::generate().public_key().to_jwk()), "kid", json!("ed")),
            json!({"kty": "oct", "kid": "hs", "k": base64url_encode(&[7; 48])}),
        ];
        let set = parse_jwks(&set_of(keys)).unwrap();
        assert_eq!(set.len(), 5);
        assert!(set.skipped().is_empty());
        assert_eq!(set.kids().collect::<Vec<_>>(), ["rsa", "p256", "p384", "ed", "hs"]);
        use Algorithm::*;
        let algs: Vec<Vec<Algorithm>> =
            set.keys().iter().map(|k| k.algorithms().iter().collect()).collect();
        assert_eq!(algs[0], [Rs256, Rs384, Rs512, Ps256, Ps384, Ps512], "no alg: the whole family");
        assert_eq!(algs[1], [Es256]);
        assert_eq!(algs[2], [Es384]);
        assert_eq!(algs[3], [EdDsa]);
        assert_eq!(algs[4], [Hs256, Hs384], "a 48-byte key is long enough for HS256 and HS384");
        assert!(set.keys()[0].spki_der().is_some());
        assert!(set.keys()[1].spki_der().is_some());
        assert!(set.keys()[3].spki_der().is_none());
        assert!(set.keys()[4].spki_der().is_none());
    }

    #[test]
    fn the_keys_alg_narrows_its_family() {
        let set = parse_jwks(&set_of(vec![with(rsa_jwk(), "alg", json!("PS384"))])).unwrap();
        assert_eq!(set.keys()[0].algorithms().iter().collect::<Vec<_>>(), [Algorithm::Ps384]);
        assert_eq!(
            problem(with(rsa_jwk(), "alg", json!("ES256"))),
            KeyProblem::AlgDoesNotFitKey { alg: Algorithm::Es256, kty: "RSA" }
        );
        assert_eq!(
            problem(with(rsa_jwk(), "alg", json!("RSA-OAEP"))),
            KeyProblem::UnsupportedAlg("RSA-OAEP".into())
        );
        assert_eq!(
            problem(with(rsa_jwk(), "alg", json!("none"))),
            KeyProblem::UnsupportedAlg("none".into())
        );
        assert_eq!(problem(with(rsa_jwk(), "alg", json!(256))), KeyProblem::NotString("alg"));
        let oct = json!({"kty": "oct", "k": base64url_encode(&[1; 32]), "alg": "RS256"});
        assert_eq!(
            problem(oct),
            KeyProblem::AlgDoesNotFitKey { alg: Algorithm::Rs256, kty: "oct" }
        );
    }

    #[test]
    fn keys_not_for_signatures_are_skipped() {
        assert_eq!(problem(with(rsa_jwk(), "use", json!("enc"))), KeyProblem::NotForSignatures);
        assert_eq!(
            problem(with(rsa_jwk(), "key_ops", json!(["encrypt"]))),
            KeyProblem::NotForSignatures
        );
        assert_eq!(
            problem(with(rsa_jwk(), "key_ops", json!("verify"))),
            KeyProblem::NotString("key_ops")
        );
        assert!(parse_jwks(&set_of(vec![with(rsa_jwk(), "key_ops", json!(["verify"]))])).is_ok());
        // A document with a signature key and an encryption key keeps the first.
        let set =
            parse_jwks(&set_of(vec![with(rsa_jwk(), "use", json!("enc")), rsa_jwk()])).unwrap();
        assert_eq!((set.len(), set.skipped().len()), (1, 1));
        assert_eq!(set.skipped()[0].index, 0);
    }

    #[test]
    fn weak_and_odd_rsa_keys_are_skipped() {
        let n = |bytes: Vec<u8>| with(rsa_jwk(), "n", json!(base64url_encode(&bytes)));
        let odd = |len: usize| {
            let mut v = vec![0xc5; len];
            v[len - 1] = 0x01;
            v
        };
        assert_eq!(problem(n(odd(128))), KeyProblem::RsaTooSmall(1024));
        assert_eq!(problem(n(odd(255))), KeyProblem::RsaTooSmall(2040));
        assert_eq!(problem(n(odd(513))), KeyProblem::RsaTooLarge(4104));
        assert_eq!(problem(n(odd(1024))), KeyProblem::RsaTooLarge(8192));
        let mut even = odd(256);
        even[255] = 0x02;
        assert_eq!(problem(n(even)), KeyProblem::RsaEvenModulus);
        for e in ["AQ", "Aw", "AAEAAQE", ""] {
            let key = with(rsa_jwk(), "e", json!(e));
            let p = problem(key);
            assert!(
                matches!(p, KeyProblem::RsaExponent | KeyProblem::BadBase64("e")),
                "{e}: {p:?}"
            );
        }
        // Leading zero bytes in n and e are tolerated.
        let mut key = rsa_jwk();
        let raw = base64url_decode(key["n"].as_str().unwrap().as_bytes()).unwrap();
        key = with(key, "n", json!(base64url_encode(&[&[0u8][..], &raw].concat())));
        key = with(key, "e", json!(base64url_encode(&[0, 1, 0, 1])));
        assert!(parse_jwks(&set_of(vec![key])).is_ok());
        assert_eq!(problem(without(rsa_jwk(), "n")), KeyProblem::Missing("n"));
        assert_eq!(problem(with(rsa_jwk(), "n", json!(5))), KeyProblem::NotString("n"));
        assert_eq!(problem(with(rsa_jwk(), "n", json!("AQAB=="))), KeyProblem::BadBase64("n"));
    }

    #[test]
    fn ec_points_must_be_on_their_curve() {
        let key = jwk(&ES256KeyPair::generate().public_key().to_jwk());
        let mut y = base64url_decode(key["y"].as_str().unwrap().as_bytes()).unwrap();
        y[31] ^= 1;
        assert_eq!(
            problem(with(key.clone(), "y", json!(base64url_encode(&y)))),
            KeyProblem::EcPointInvalid
        );
        assert_eq!(
            problem(with(key.clone(), "y", json!(base64url_encode(&y[1..])))),
            KeyProblem::EcCoordinateLength
        );
        assert_eq!(
            problem(with(key.clone(), "crv", json!("P-384"))),
            KeyProblem::AlgDoesNotFitKey { alg: Algorithm::Es256, kty: "EC P-384" }
        );
        assert_eq!(
            problem(with(without(key.clone(), "alg"), "crv", json!("P-384"))),
            KeyProblem::EcCoordinateLength
        );
        assert_eq!(
            problem(with(key.clone(), "crv", json!("P-521"))),
            KeyProblem::UnsupportedCurve("P-521".into())
        );
        assert_eq!(
            problem(with(key.clone(), "crv", json!("secp256k1"))),
            KeyProblem::UnsupportedCurve("secp256k1".into())
        );
        assert_eq!(problem(without(key.clone(), "crv")), KeyProblem::Missing("crv"));
        let zeros = base64url_encode(&[0; 32]);
        assert_eq!(
            problem(with(with(key, "x", json!(zeros)), "y", json!(zeros))),
            KeyProblem::EcPointInvalid
        );
    }

    #[test]
    fn weak_ed25519_points_are_skipped() {
        let key = jwk(&Ed25519KeyPair::generate().public_key().to_jwk());
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            problem(with(key.clone(), "x", json!(base64url_encode(&identity)))),
            KeyProblem::Ed25519Invalid
        );
        assert_eq!(
            problem(with(key.clone(), "x", json!(base64url_encode(&[9; 31])))),
            KeyProblem::Ed25519Invalid
        );
        assert_eq!(
            problem(with(key.clone(), "crv", json!("X25519"))),
            KeyProblem::UnsupportedCurve("X25519".into())
        );
        assert_eq!(
            problem(with(key, "crv", json!("Ed448"))),
            KeyProblem::UnsupportedCurve("Ed448".into())
        );
    }

    #[test]
    fn hmac_keys_must_be_as_long_as_their_hash() {
        let oct = |len: usize, alg: Option<&str>| {
            let mut key = json!({"kty": "oct", "k": base64url_encode(&vec![3; len])});
            if let Some(alg) = alg {
                key = with(key, "alg", json!(alg));
            }
            key
        };
        assert_eq!(problem(oct(31, None)), KeyProblem::HmacTooShort { bytes: 31, needed: 32 });
        assert_eq!(
            problem(oct(32, Some("HS512"))),
            KeyProblem::HmacTooShort { bytes: 32, needed: 64 }
        );
        let set = parse_jwks(&set_of(vec![oct(64, None)])).unwrap();
        assert_eq!(set.keys()[0].algorithms().iter().count(), 3);
        // A published key set never yields a symmetric key.
        assert_eq!(
            parse_fetched_jwks(&set_of(vec![oct(64, None)])).unwrap_err(),
            JwksError::NoUsableKey(vec![SkippedKey {
                index: 0,
                kid: None,
                problem: KeyProblem::SecretInPublishedSet
            }])
        );
        let mixed = parse_fetched_jwks(&set_of(vec![oct(64, None), rsa_jwk()])).unwrap();
        assert_eq!(mixed.len(), 1);
    }

    #[test]
    fn private_key_material_refuses_the_whole_set() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
            let keys = vec![rsa_jwk(), with(rsa_jwk(), member, json!("AQAB"))];
            assert_eq!(
                parse_jwks(&set_of(keys)).unwrap_err(),
                JwksError::PrivateKey { index: 1, member: member.into() }
            );
        }
        let private = jwk(&ES256KeyPair::generate().to_jwk());
        assert!(matches!(
            parse_fetched_jwks(&set_of(vec![private])),
            Err(JwksError::PrivateKey { .. })
        ));
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert!(matches!(parse_jwks(b"not json"), Err(JwksError::InvalidJson(_))));
        assert!(matches!(parse_jwks(b"<html></html>"), Err(JwksError::InvalidJson(_))));
        assert!(matches!(parse_jwks(b""), Err(JwksError::InvalidJson(_))));
        assert_eq!(parse_jwks(b"[]").unwrap_err(), JwksError::NotAnObject);
        assert_eq!(parse_jwks(b"{}").unwrap_err(), JwksError::MissingKeys);
        assert_eq!(parse_jwks(br#"{"keys":{}}"#).unwrap_err(), JwksError::KeysNotArray);
        assert_eq!(parse_jwks(br#"{"keys":[]}"#).unwrap_err(), JwksError::NoUsableKey(vec![]));
        assert_eq!(parse_jwks(br#"{"keys":[1]}"#).unwrap_err(), JwksError::KeyNotObject(0));
        assert!(matches!(parse_jwks(br#"{"keys":[],"keys":[]}"#), Err(JwksError::InvalidJson(_))));
        let dup = format!(
            r#"{{"keys":[{{"kty":"RSA","kty":"oct","k":"{}"}}]}}"#,
            base64url_encode(&[1; 32])
        );
        assert!(matches!(parse_jwks(dup.as_bytes()), Err(JwksError::InvalidJson(_))));
        let too_many = set_of((0..=MAX_KEYS).map(|_| rsa_jwk()).collect());
        assert_eq!(parse_jwks(&too_many).unwrap_err(), JwksError::TooManyKeys(MAX_KEYS + 1));
        let padded = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(MAX_JWKS_BYTES));
        assert_eq!(parse_jwks(padded.as_bytes()).unwrap_err(), JwksError::TooLarge);
        assert_eq!(problem(json!({"n": "AQAB"})), KeyProblem::MissingKty);
        assert_eq!(problem(json!({"kty": 1})), KeyProblem::NotString("kty"));
        assert_eq!(problem(json!({"kty": "RSA-X"})), KeyProblem::UnsupportedKty("RSA-X".into()));
        assert_eq!(problem(with(rsa_jwk(), "kid", json!(1))), KeyProblem::NotString("kid"));
    }

    #[test]
    fn fingerprints_follow_the_keys() {
        let a = set_of(vec![with(rsa_jwk(), "kid", json!("a"))]);
        let fp = |doc: &[u8]| parse_jwks(doc).unwrap().fingerprint();
        assert_eq!(fp(&a), fp(&a));
        // Member order and skipped keys do not matter.
        let reordered = serde_json::to_vec(&json!({"other": 1, "keys": [with(rsa_jwk(), "kid", json!("a")), with(rsa_jwk(), "use", json!("enc"))]})).unwrap();
        assert_eq!(fp(&a), fp(&reordered));
        assert_ne!(fp(&a), fp(&set_of(vec![with(rsa_jwk(), "kid", json!("b"))])));
        assert_ne!(
            fp(&a),
            fp(&set_of(vec![with(with(rsa_jwk(), "kid", json!("a")), "alg", json!("PS256"))]))
        );
        let oct = |k: u8| set_of(vec![json!({"kty": "oct", "k": base64url_encode(&[k; 32])})]);
        assert_ne!(fp(&oct(1)), fp(&oct(2)));
    }

    #[test]
    fn openid_configuration_gives_its_jwks_uri() {
        assert_eq!(
            parse_openid_configuration(br#"{"issuer":"https://i","jwks_uri":"https://i/keys"}"#)
                .unwrap(),
            "https://i/keys"
        );
        assert_eq!(
            parse_openid_configuration(br#"{"jwks_uri":"file:///x"}"#).unwrap_err(),
            JwksError::NoJwksUri
        );
        assert_eq!(
            parse_openid_configuration(br#"{"jwks_uri":7}"#).unwrap_err(),
            JwksError::NoJwksUri
        );
        assert_eq!(parse_openid_configuration(br#"{}"#).unwrap_err(), JwksError::NoJwksUri);
        assert!(matches!(parse_openid_configuration(b"<html>"), Err(JwksError::InvalidJson(_))));
    }

    #[test]
    fn random_documents_never_panic() {
        let alphabet = br#"{}[]":,kyst RSAECoctOKPnexdP-256AQAB0123456789"#;
        let mut seed = 0x2545f4914f6cdd1du64;
        for len in 0..300 {
            let doc = crate::authn::codec::random_bytes(&mut seed, alphabet, len);
            let _ = parse_jwks(&doc);
            let _ = parse_fetched_jwks(&doc);
        }
    }
}
