//! Signature verification: key selection, the structural checks both backends share, the
//! pure-Rust backend (jwt-simple) and the encodings of Envoy's `verify_signature` host function.
//!
//! Both backends must accept and reject exactly the same tokens. That holds by construction:
//!
//! 1. Everything about the token's structure, header and claims is checked once, in
//!    [`super::token`], before either backend sees it.
//! 2. [`signature_well_formed`] checks the signature's form against the key (exact length,
//!    RSA signature below the modulus, ECDSA `r` and `s` in `[1, n)`), so neither backend's
//!    own tolerance for odd forms (DER inside a JWS, short RSA signatures, `r = s = 0` as in
//!    CVE-2022-21449) matters.
//! 3. The pure-Rust backend checks only the signature over the signing input, with the
//!    primitives jwt-simple's own `verify_token` calls for each algorithm (superboring's RSA,
//!    the `p256`/`p384` crates, `ed25519-compact`, HMAC with a constant-time comparison) on the
//!    keys jwt-simple parsed. It does not go through `verify_token`: that parses and checks
//!    the token a second time, and is generic per algorithm, so each of the twelve carried its
//!    own copy of that into the module (73 KiB of `warden.wasm`, benches/README.md "Where the
//!    module's size goes").
//!
//! What remains is the mathematical verification, which RSASSA-PKCS1-v1_5 and ECDSA define
//! exactly: BoringSSL and the `rsa`/`p256`/`p384` crates agree on it.

use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, EdDSAPublicKeyLike, MACLike, RSAPublicKeyLike,
};
use p256::ecdsa::signature::DigestVerifier as _;
use superboring::{hash::MessageDigest, pkey::PKey, rsa::Padding, sign::Verifier};

use super::der;
use super::key::{Algorithm, KeySet, Material, VerifyingKey};

/// A token without `kid` (or whose `kid` several keys share) is tried against at most this
/// many keys: each try costs a signature verification.
pub const MAX_KEYS_TRIED: usize = 8;

/// The order of the P-256 group (FIPS 186-4 D.1.2.3).
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// The order of the P-384 group (FIPS 186-4 D.1.2.4).
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// What a backend says about one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The signature is valid.
    Valid,
    /// The signature is not valid.
    Invalid,
    /// This backend cannot verify this algorithm or key: use the pure-Rust backend.
    Unsupported,
}

/// A signature backend: pure Rust, or the host's crypto (the glue implements that one with
/// [`host_crypto_request`] and [`host_crypto_result`]).
pub trait SignatureVerifier {
    /// Verifies `signature` over `signing_input` (`header.payload`) with `key` and `alg`.
    /// Called only with `alg` among the key's algorithms and a signature that passed
    /// [`signature_well_formed`].
    fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyingKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Verified;
}

/// Verification inside the module, with jwt-simple (pure Rust). Knows every algorithm.
#[derive(Debug, Clone, Copy, Default)]
pub struct PureRust;

impl SignatureVerifier for PureRust {
    fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyingKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Verified {
        if pure_rust_verify(alg, key, signing_input, signature) {
            Verified::Valid
        } else {
            Verified::Invalid
        }
    }
}

fn pure_rust_verify(alg: Algorithm, key: &VerifyingKey, input: &[u8], signature: &[u8]) -> bool {
    match (&key.material, alg) {
        (Material::Rsa { keys, .. }, _) => match alg {
            Algorithm::Rs256 => rsa_verify(keys.rs256.as_ref(), input, signature),
            Algorithm::Rs384 => rsa_verify(keys.rs384.as_ref(), input, signature),
            Algorithm::Rs512 => rsa_verify(keys.rs512.as_ref(), input, signature),
            Algorithm::Ps256 => rsa_verify(keys.ps256.as_ref(), input, signature),
            Algorithm::Ps384 => rsa_verify(keys.ps384.as_ref(), input, signature),
            Algorithm::Ps512 => rsa_verify(keys.ps512.as_ref(), input, signature),
            _ => false,
        },
        (Material::P256(k), Algorithm::Es256) => {
            let Ok(signature) = p256::ecdsa::Signature::try_from(signature) else { return false };
            let digest = |d: &mut hmac_sha256::Hash| {
                d.update(input);
                Ok(())
            };
            k.public_key().as_ref().verify_digest(digest, &signature).is_ok()
        }
        (Material::P384(k), Algorithm::Es384) => {
            let Ok(signature) = p384::ecdsa::Signature::try_from(signature) else { return false };
            let digest = |d: &mut hmac_sha512::sha384::Hash| {
                d.update(input);
                Ok(())
            };
            k.public_key().as_ref().verify_digest(digest, &signature).is_ok()
        }
        (Material::Ed25519(k), Algorithm::EdDsa) => {
            let Ok(signature) = ed25519_compact::Signature::from_slice(signature) else {
                return false;
            };
            k.public_key().as_ref().verify(input, &signature).is_ok()
        }
        (Material::Hmac(keys), _) => match alg {
            Algorithm::Hs256 => hmac_verify(keys.hs256.as_ref(), input, signature),
            Algorithm::Hs384 => hmac_verify(keys.hs384.as_ref(), input, signature),
            Algorithm::Hs512 => hmac_verify(keys.hs512.as_ref(), input, signature),
            _ => false,
        },
        _ => false,
    }
}

/// RSASSA-PKCS1-v1_5 or RSASSA-PSS with the hash and padding jwt-simple gives the key's type.
fn rsa_verify<K: RSAPublicKeyLike>(key: Option<&K>, input: &[u8], signature: &[u8]) -> bool {
    key.is_some_and(|k| {
        rsa_verify_with(k.public_key().as_ref(), K::hash(), k.padding_scheme(), input, signature)
    })
}

fn rsa_verify_with(
    rsa: &superboring::rsa::Rsa<superboring::pkey::Public>,
    digest: MessageDigest,
    padding: Padding,
    input: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(pkey) = PKey::from_rsa(rsa.clone()) else { return false };
    let Ok(mut verifier) = Verifier::new(digest, &pkey) else { return false };
    verifier.set_rsa_padding(padding).is_ok()
        && verifier.update(input).is_ok()
        && matches!(verifier.verify(signature), Ok(true))
}

/// The tag compared in constant time. jwt-simple's `verify_token` also refused keys under 12
/// bytes; none gets here, for a key set refuses an HMAC key shorter than its hash
/// (`jwks::KeyProblem::HmacTooShort`, at least 32 bytes).
fn hmac_verify<K: MACLike>(key: Option<&K>, input: &[u8], tag: &[u8]) -> bool {
    key.is_some_and(|k| ct_codecs::verify(&k.authentication_tag(input), tag))
}

/// Whether a big-endian unsigned integer is in `[1, order)`; `value` has the order's length.
fn in_scalar_range(value: &[u8], order: &[u8]) -> bool {
    value.len() == order.len() && value.iter().any(|&b| b != 0) && value < order
}

/// The signature's form against the key, checked before either backend runs: exact length
/// for the algorithm and key, an RSA signature numerically below the modulus (RFC 8017
/// §5.2.2), ECDSA `r` and `s` in `[1, n)` (SEC 1 §4.1.4; refuses `r = s = 0`, CVE-2022-21449).
pub fn signature_well_formed(alg: Algorithm, key: &VerifyingKey, signature: &[u8]) -> bool {
    if !key.algorithms.contains(alg) {
        return false;
    }
    match (&key.material, alg) {
        (
            Material::Rsa { modulus, .. },
            Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Ps256
            | Algorithm::Ps384
            | Algorithm::Ps512,
        ) => signature.len() == modulus.len() && signature < modulus.as_slice(),
        (Material::P256(_), Algorithm::Es256) => {
            let (r, s) = signature.split_at(signature.len() / 2);
            signature.len() == 64
                && in_scalar_range(r, &P256_ORDER)
                && in_scalar_range(s, &P256_ORDER)
        }
        (Material::P384(_), Algorithm::Es384) => {
            let (r, s) = signature.split_at(signature.len() / 2);
            signature.len() == 96
                && in_scalar_range(r, &P384_ORDER)
                && in_scalar_range(s, &P384_ORDER)
        }
        (Material::Ed25519(_), Algorithm::EdDsa) => signature.len() == 64,
        (Material::Hmac(_), alg) if alg.is_symmetric() => signature.len() == alg.hash_len(),
        _ => false,
    }
}

/// One signature with one key: the shared checks, then `crypto`, then pure Rust when `crypto`
/// cannot do it.
pub(crate) fn check_signature(
    alg: Algorithm,
    key: &VerifyingKey,
    signing_input: &[u8],
    signature: &[u8],
    crypto: &dyn SignatureVerifier,
) -> bool {
    if !signature_well_formed(alg, key, signature) {
        return false;
    }
    match crypto.verify(alg, key, signing_input, signature) {
        Verified::Valid => true,
        Verified::Invalid => false,
        Verified::Unsupported => {
            PureRust.verify(alg, key, signing_input, signature) == Verified::Valid
        }
    }
}

/// The result of verifying a token against a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySetOutcome {
    /// A key verified the signature.
    Verified,
    /// No key fits the token's `kid` and `alg` (Envoy `JwksKidAlgMismatch`).
    NoMatchingKey,
    /// Keys fit, none verified (Envoy `JwtVerificationFail`).
    Failed,
}

/// Key selection as Envoy (`jwt_verify_lib/src/verify.cc`): a key is a candidate when its
/// `kid` equals the token's (compared only when both have one) and it verifies the token's
/// `alg`; candidates are tried in document order, at most [`MAX_KEYS_TRIED`] of them.
pub(crate) fn verify_with_key_set(
    alg: Algorithm,
    kid: Option<&str>,
    signing_input: &[u8],
    signature: &[u8],
    keys: &KeySet,
    crypto: &dyn SignatureVerifier,
) -> KeySetOutcome {
    let mut candidates = keys.keys().iter().filter(|key| {
        let kid_fits = match (kid, key.kid()) {
            (Some(token_kid), Some(key_kid)) => token_kid == key_kid,
            _ => true,
        };
        kid_fits && key.algorithms.contains(alg)
    });
    let Some(first) = candidates.next() else {
        return KeySetOutcome::NoMatchingKey;
    };
    for key in std::iter::once(first).chain(candidates).take(MAX_KEYS_TRIED) {
        if check_signature(alg, key, signing_input, signature, crypto) {
            return KeySetOutcome::Verified;
        }
    }
    KeySetOutcome::Failed
}

/// Whether Envoy's `verify_signature` can verify `alg`: RSASSA-PKCS1-v1_5 and ECDSA on P-256
/// and P-384. Not RSA-PSS (Envoy sets no PSS padding), not Ed25519, not HMAC.
pub fn host_supports(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Es256
            | Algorithm::Es384
    )
}

fn hash_name(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::Rs256 | Algorithm::Es256 => Some("sha256"),
        Algorithm::Rs384 | Algorithm::Es384 => Some("sha384"),
        Algorithm::Rs512 => Some("sha512"),
        _ => None,
    }
}

fn protobuf_bytes_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    if bytes.is_empty() {
        return; // proto3 omits empty fields
    }
    out.push((field << 3) | 2);
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

/// The serialized `VerifySignatureArguments` for Envoy's `verify_signature` foreign function
/// (`source/extensions/common/wasm/ext/verify_signature.proto`): `hash_function` (1),
/// `public_key` as DER SubjectPublicKeyInfo (2), `signature` (3; ECDSA converted from the
/// JWS `r‖s` to a DER `ECDSA-Sig-Value`) and `text`, the signing input (4).
///
/// `None` when the host cannot verify this (see [`host_supports`]) or the key has no DER form:
/// verify in pure Rust instead.
pub fn host_crypto_request(
    alg: Algorithm,
    key: &VerifyingKey,
    signing_input: &[u8],
    signature: &[u8],
) -> Option<Vec<u8>> {
    if !host_supports(alg) || !key.algorithms.contains(alg) {
        return None;
    }
    let hash = hash_name(alg)?;
    let spki = key.spki_der()?;
    let signature = match alg {
        Algorithm::Es256 | Algorithm::Es384 => der::ecdsa_signature(signature)?,
        _ => signature.to_vec(),
    };
    let mut out = Vec::with_capacity(spki.len() + signature.len() + signing_input.len() + 24);
    protobuf_bytes_field(&mut out, 1, hash.as_bytes());
    protobuf_bytes_field(&mut out, 2, spki);
    protobuf_bytes_field(&mut out, 3, &signature);
    protobuf_bytes_field(&mut out, 4, signing_input);
    Some(out)
}

/// Decodes the host's `VerifySignatureResult`: only `result: true` alone (`08 01`) is a valid
/// signature; an error message, an empty answer or anything else is not.
pub fn host_crypto_result(bytes: &[u8]) -> bool {
    bytes == [0x08, 0x01]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::jwks::parse_jwks;
    use jwt_simple::prelude::*;
    use serde_json::{json, Value};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const RSA_PEM: &str = include_str!("../../tests/authn/rsa2048-a.pem");

    /// Decodes `VerifySignatureArguments` (fields 1..=4, length-delimited) as Envoy would.
    fn decode_request(mut bytes: &[u8]) -> (String, Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut fields: [Vec<u8>; 4] = Default::default();
        while let [tag, rest @ ..] = bytes {
            let mut len = 0usize;
            let mut shift = 0;
            let mut rest = rest;
            loop {
                let (b, tail) = rest.split_first().unwrap();
                rest = tail;
                len |= ((b & 0x7f) as usize) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            assert_eq!(tag & 7, 2, "length-delimited");
            let field = (tag >> 3) as usize;
            fields[field - 1] = rest[..len].to_vec();
            bytes = &rest[len..];
        }
        let [hash, key, sig, text] = fields;
        (String::from_utf8(hash).unwrap(), key, sig, text)
    }

    fn one_key(jwk: Value) -> KeySet {
        parse_jwks(&serde_json::to_vec(&json!({ "keys": [jwk] })).unwrap()).unwrap()
    }

    fn split(token: &str) -> (&str, Vec<u8>) {
        let (input, sig) = token.rsplit_once('.').unwrap();
        (input, crate::authn::codec::base64url_decode(sig.as_bytes()).unwrap())
    }

    #[test]
    fn rsa_spki_is_what_jwt_simple_and_the_rsa_crate_read() {
        let pair = RS256KeyPair::from_pem(RSA_PEM).unwrap();
        let set = one_key(serde_json::from_str(&pair.public_key().to_jwk()).unwrap());
        let der = set.keys()[0].spki_der().unwrap();
        assert_eq!(der, pair.public_key().to_der().unwrap(), "byte for byte");
        // SubjectPublicKeyInfo specifically (this parser does not fall back to PKCS#1).
        superboring::rsa::Rsa::<superboring::pkey::Public>::public_key_from_der(der).unwrap();
        let back = RS256PublicKey::from_der(der).unwrap();
        assert_eq!(back.to_components().n, pair.public_key().to_components().n);
    }

    #[test]
    fn ec_spki_is_what_p256_and_p384_read() {
        let p256 = ES256KeyPair::generate();
        let set = one_key(serde_json::from_str(&p256.public_key().to_jwk()).unwrap());
        let der = set.keys()[0].spki_der().unwrap();
        assert_eq!(der, p256.public_key().to_der().unwrap());
        assert_eq!(ES256PublicKey::from_der(der).unwrap().to_bytes(), p256.public_key().to_bytes());
        let p384 = ES384KeyPair::generate();
        let set = one_key(serde_json::from_str(&p384.public_key().to_jwk()).unwrap());
        let der = set.keys()[0].spki_der().unwrap();
        assert_eq!(der, p384.public_key().to_der().unwrap());
        assert_eq!(ES384PublicKey::from_der(der).unwrap().to_bytes(), p384.public_key().to_bytes());
    }

    #[test]
    fn ecdsa_signatures_convert_to_the_der_p256_and_p384_write() {
        for _ in 0..32 {
            let token =
                ES256KeyPair::generate().sign(Claims::create(Duration::from_hours(1))).unwrap();
            let (_, raw) = split(&token);
            let expected = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
            assert_eq!(der::ecdsa_signature(&raw).unwrap(), expected.as_bytes());
            let token =
                ES384KeyPair::generate().sign(Claims::create(Duration::from_hours(1))).unwrap();
            let (_, raw) = split(&token);
            let expected = p384::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
            assert_eq!(der::ecdsa_signature(&raw).unwrap(), expected.as_bytes());
        }
        // Small values need minimal encodings; high bits need a zero byte.
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[32..].fill(0x80);
        let expected = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
        assert_eq!(der::ecdsa_signature(&raw).unwrap(), expected.as_bytes());
        assert_eq!(
            p256::ecdsa::Signature::from_der(&der::ecdsa_signature(&raw).unwrap())
                .unwrap()
                .to_bytes()[..],
            raw[..]
        );
    }

    #[test]
    fn host_requests_carry_hash_spki_der_signature_and_text() {
        let pair = RS256KeyPair::from_pem(RSA_PEM).unwrap();
        let mut jwk: Value = serde_json::from_str(&pair.public_key().to_jwk()).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        let set = one_key(jwk);
        let token = pair.sign(Claims::create(Duration::from_hours(1))).unwrap();
        let (input, sig) = split(&token);
        let key = &set.keys()[0];
        let (hash, der, signature, text) = decode_request(
            &host_crypto_request(Algorithm::Rs256, key, input.as_bytes(), &sig).unwrap(),
        );
        assert_eq!(
            (hash.as_str(), der.as_slice(), signature, text.as_slice()),
            ("sha256", key.spki_der().unwrap(), sig.clone(), input.as_bytes())
        );
        let (hash, ..) = decode_request(
            &host_crypto_request(Algorithm::Rs512, key, input.as_bytes(), &sig).unwrap(),
        );
        assert_eq!(hash, "sha512");

        let ec = ES384KeyPair::generate();
        let set = one_key(serde_json::from_str(&ec.public_key().to_jwk()).unwrap());
        let token = ec.sign(Claims::create(Duration::from_hours(1))).unwrap();
        let (input, raw) = split(&token);
        let (hash, _, signature, _) = decode_request(
            &host_crypto_request(Algorithm::Es384, &set.keys()[0], input.as_bytes(), &raw).unwrap(),
        );
        assert_eq!(hash, "sha384");
        assert_eq!(p384::ecdsa::Signature::from_der(&signature).unwrap().to_bytes()[..], raw[..]);
    }

    #[test]
    fn the_host_is_never_asked_for_what_it_cannot_do() {
        let pair = RS256KeyPair::from_pem(RSA_PEM).unwrap();
        let rsa =
            one_key(serde_json::from_str(&pair.public_key().with_key_id("k").to_jwk()).unwrap());
        let rsa = rsa.keys()[0].clone();
        for alg in [Algorithm::Ps256, Algorithm::Ps384, Algorithm::Ps512] {
            assert!(host_crypto_request(alg, &rsa, b"a.b", &[0; 256]).is_none(), "{alg}");
        }
        // The key says RS256: no other algorithm goes anywhere.
        assert!(host_crypto_request(Algorithm::Rs384, &rsa, b"a.b", &[0; 256]).is_none());
        let ed = one_key(
            serde_json::from_str(&Ed25519KeyPair::generate().public_key().to_jwk()).unwrap(),
        );
        assert!(host_crypto_request(Algorithm::EdDsa, &ed.keys()[0], b"a.b", &[0; 64]).is_none());
        let hs =
            one_key(json!({"kty": "oct", "k": crate::authn::codec::base64url_encode(&[1; 32])}));
        assert!(host_crypto_request(Algorithm::Hs256, &hs.keys()[0], b"a.b", &[0; 32]).is_none());
        for alg in Algorithm::ALL {
            assert_eq!(
                host_supports(alg),
                matches!(
                    alg,
                    Algorithm::Rs256
                        | Algorithm::Rs384
                        | Algorithm::Rs512
                        | Algorithm::Es256
                        | Algorithm::Es384
                )
            );
        }
    }

    #[test]
    fn pure_rust_verifies_every_algorithm_and_nothing_else() {
        let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap();
        let der = rsa.to_der().unwrap();
        let claims = || Claims::create(Duration::from_hours(1));
        let rsa_jwk: Value = serde_json::from_str(&rsa.public_key().to_jwk()).unwrap();
        let mut rsa_any = rsa_jwk.clone();
        rsa_any.as_object_mut().unwrap().remove("alg");
        let rsa_set = one_key(rsa_any);
        let hs = crate::authn::codec::base64url_encode(&[5; 64]);
        let hs_set = one_key(json!({"kty": "oct", "k": hs}));
        let es256 = ES256KeyPair::generate();
        let es384 = ES384KeyPair::generate();
        let ed = Ed25519KeyPair::generate();
        let cases: Vec<(Algorithm, String, KeySet)> = vec![
            (Algorithm::Rs256, rsa.sign(claims()).unwrap(), rsa_set.clone()),
            (
                Algorithm::Rs384,
                RS384KeyPair::from_der(&der).unwrap().sign(claims()).unwrap(),
                rsa_set.clone(),
            ),
            (
                Algorithm::Rs512,
                RS512KeyPair::from_der(&der).unwrap().sign(claims()).unwrap(),
                rsa_set.clone(),
            ),
            (
                Algorithm::Ps256,
                PS256KeyPair::from_der(&der).unwrap().sign(claims()).unwrap(),
                rsa_set.clone(),
            ),
            (
                Algorithm::Ps384,
                PS384KeyPair::from_der(&der).unwrap().sign(claims()).unwrap(),
                rsa_set.clone(),
            ),
            (
                Algorithm::Ps512,
                PS512KeyPair::from_der(&der).unwrap().sign(claims()).unwrap(),
                rsa_set.clone(),
            ),
            (
                Algorithm::Es256,
                es256.sign(claims()).unwrap(),
                one_key(serde_json::from_str(&es256.public_key().to_jwk()).unwrap()),
            ),
            (
                Algorithm::Es384,
                es384.sign(claims()).unwrap(),
                one_key(serde_json::from_str(&es384.public_key().to_jwk()).unwrap()),
            ),
            (
                Algorithm::EdDsa,
                ed.sign(claims()).unwrap(),
                one_key(serde_json::from_str(&ed.public_key().to_jwk()).unwrap()),
            ),
            (
                Algorithm::Hs256,
                HS256Key::from_bytes(&[5; 64]).authenticate(claims()).unwrap(),
                hs_set.clone(),
            ),
            (
                Algorithm::Hs384,
                HS384Key::from_bytes(&[5; 64]).authenticate(claims()).unwrap(),
                hs_set.clone(),
            ),
            (
                Algorithm::Hs512,
                HS512Key::from_bytes(&[5; 64]).authenticate(claims()).unwrap(),
                hs_set.clone(),
            ),
        ];
        for (alg, token, set) in &cases {
            let (input, sig) = split(token);
            let key = &set.keys()[0];
            assert!(signature_well_formed(*alg, key, &sig), "{alg}");
            assert!(check_signature(*alg, key, input.as_bytes(), &sig, &PureRust), "{alg} valid");
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last / 2] ^= 0x01;
            assert!(
                !check_signature(*alg, key, input.as_bytes(), &bad, &PureRust),
                "{alg} tampered signature"
            );
            let mut other_input = input.as_bytes().to_vec();
            other_input.push(b'A');
            assert!(
                !check_signature(*alg, key, &other_input, &sig, &PureRust),
                "{alg} other input"
            );
            for other in Algorithm::ALL.into_iter().filter(|a| a != alg) {
                assert!(
                    !check_signature(other, key, input.as_bytes(), &sig, &PureRust),
                    "{alg} as {other}"
                );
            }
        }
    }

    #[test]
    fn malformed_signatures_never_reach_a_backend() {
        struct Panics;
        impl SignatureVerifier for Panics {
            fn verify(&self, _: Algorithm, _: &VerifyingKey, _: &[u8], _: &[u8]) -> Verified {
                panic!("a backend was asked")
            }
        }
        let rsa = one_key(
            serde_json::from_str(&RS256KeyPair::from_pem(RSA_PEM).unwrap().public_key().to_jwk())
                .unwrap(),
        );
        let es =
            one_key(serde_json::from_str(&ES256KeyPair::generate().public_key().to_jwk()).unwrap());
        let rsa = &rsa.keys()[0];
        let es = &es.keys()[0];
        let n = match &rsa.material {
            Material::Rsa { modulus, .. } => modulus.clone(),
            _ => unreachable!(),
        };
        for sig in [vec![], vec![1; 255], vec![1; 257], n.clone(), vec![0xff; 256]] {
            assert!(!check_signature(Algorithm::Rs256, rsa, b"a.b", &sig, &Panics));
        }
        let mut zero_rs = vec![0u8; 64];
        assert!(!check_signature(Algorithm::Es256, es, b"a.b", &zero_rs, &Panics), "r = s = 0");
        zero_rs[63] = 1;
        assert!(!check_signature(Algorithm::Es256, es, b"a.b", &zero_rs, &Panics), "r = 0");
        let order_s = [vec![0u8; 31], vec![1], P256_ORDER.to_vec()].concat();
        assert!(!check_signature(Algorithm::Es256, es, b"a.b", &order_s, &Panics), "s = n");
        for len in [0, 63, 65, 70, 72] {
            assert!(
                !check_signature(Algorithm::Es256, es, b"a.b", &vec![1; len], &Panics),
                "{len} bytes"
            );
        }
        // The key decides: an RS256 key is never used for ES256 or HS256.
        assert!(!check_signature(Algorithm::Es256, rsa, b"a.b", &[1; 64], &Panics));
        assert!(!check_signature(Algorithm::Hs256, rsa, b"a.b", &[1; 32], &Panics));
    }

    #[test]
    fn key_selection_follows_kid_and_alg() {
        let a = ES256KeyPair::generate().with_key_id("a");
        let b = ES256KeyPair::generate().with_key_id("b");
        let no_kid = ES256KeyPair::generate();
        let jwk =
            |k: &ES256KeyPair| -> Value { serde_json::from_str(&k.public_key().to_jwk()).unwrap() };
        let mut no_kid_jwk = jwk(&no_kid);
        no_kid_jwk.as_object_mut().unwrap().remove("kid");
        let set = parse_jwks(
            &serde_json::to_vec(&json!({"keys": [jwk(&a), jwk(&b), no_kid_jwk]})).unwrap(),
        )
        .unwrap();
        let verify = |token: &str| {
            let parsed = crate::authn::token::parse(token.as_bytes()).unwrap();
            let (input, _) = token.rsplit_once('.').unwrap();
            verify_with_key_set(
                parsed.alg,
                parsed.kid.as_deref(),
                input.as_bytes(),
                &parsed.signature,
                &set,
                &PureRust,
            )
        };
        let claims = || Claims::create(Duration::from_hours(1));
        assert_eq!(verify(&a.sign(claims()).unwrap()), KeySetOutcome::Verified);
        assert_eq!(verify(&b.sign(claims()).unwrap()), KeySetOutcome::Verified);
        // No kid in the token: every key is tried.
        assert_eq!(verify(&no_kid.sign(claims()).unwrap()), KeySetOutcome::Verified);
        let a_without_kid = ES256KeyPair::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(verify(&a_without_kid.sign(claims()).unwrap()), KeySetOutcome::Verified);
        // A kid no key has: only the key without kid is a candidate, and it fails.
        let stranger = ES256KeyPair::generate().with_key_id("zzz");
        assert_eq!(verify(&stranger.sign(claims()).unwrap()), KeySetOutcome::Failed);
        // An algorithm no key verifies.
        let hs = HS256Key::from_bytes(&[1; 32]).with_key_id("a");
        assert_eq!(verify(&hs.authenticate(claims()).unwrap()), KeySetOutcome::NoMatchingKey);
        // Key "a"'s kid with key "b"'s signature.
        let b_as_a = ES256KeyPair::from_bytes(&b.to_bytes()).unwrap().with_key_id("a");
        assert_eq!(verify(&b_as_a.sign(claims()).unwrap()), KeySetOutcome::Failed);
    }

    #[test]
    fn a_token_without_kid_tries_a_bounded_number_of_keys() {
        let keys: Vec<ES256KeyPair> =
            (0..MAX_KEYS_TRIED + 1).map(|_| ES256KeyPair::generate()).collect();
        let jwks: Vec<Value> = keys
            .iter()
            .map(|k| {
                let mut v: Value = serde_json::from_str(&k.public_key().to_jwk()).unwrap();
                v.as_object_mut().unwrap().remove("kid");
                v
            })
            .collect();
        let set = parse_jwks(&serde_json::to_vec(&json!({ "keys": jwks })).unwrap()).unwrap();
        let outcome = |k: &ES256KeyPair| {
            let token = k.sign(Claims::create(Duration::from_hours(1))).unwrap();
            let parsed = crate::authn::token::parse(token.as_bytes()).unwrap();
            let (input, _) = token.rsplit_once('.').unwrap();
            verify_with_key_set(
                parsed.alg,
                None,
                input.as_bytes(),
                &parsed.signature,
                &set,
                &PureRust,
            )
        };
        assert_eq!(outcome(&keys[MAX_KEYS_TRIED - 1]), KeySetOutcome::Verified);
        assert_eq!(outcome(&keys[MAX_KEYS_TRIED]), KeySetOutcome::Failed, "beyond the bound");
    }

    #[test]
    fn only_exactly_08_01_is_valid() {
        assert!(host_crypto_result(&[0x08, 0x01]));
        for bad in [
            &[][..],
            &[0x08],
            &[0x08, 0x00],
            &[0x08, 0x02],
            &[0x08, 0x01, 0x12, 0x00],
            &[0x12, 0x03, b'e', b'r', b'r'],
            &[0x08, 0x81, 0x00],
        ] {
            assert!(!host_crypto_result(bad), "{bad:?}");
        }
    }

    #[test]
    fn protobuf_lengths_are_varints() {
        let mut out = Vec::new();
        protobuf_bytes_field(&mut out, 4, &[7; 300]);
        assert_eq!(&out[..3], &[0x22, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 300);
        let mut out = Vec::new();
        protobuf_bytes_field(&mut out, 1, b"sha256");
        assert_eq!(out, b"\x0a\x06sha256");
        let mut out = Vec::new();
        protobuf_bytes_field(&mut out, 3, b"");
        assert!(out.is_empty());
    }

    #[test]
    fn scalar_range_excludes_zero_and_the_order() {
        assert!(!in_scalar_range(&[0; 32], &P256_ORDER));
        assert!(!in_scalar_range(&P256_ORDER, &P256_ORDER));
        let mut below = P256_ORDER;
        below[31] -= 1;
        assert!(in_scalar_range(&below, &P256_ORDER));
        let mut one = [0u8; 32];
        one[31] = 1;
        assert!(in_scalar_range(&one, &P256_ORDER));
        assert!(!in_scalar_range(&[0xff; 32], &P256_ORDER));
        assert!(!in_scalar_range(&one[..31], &P256_ORDER));
    }
}
