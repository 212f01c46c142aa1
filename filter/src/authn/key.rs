//! Algorithms and verification keys: what a key set holds once parsed.
//!
//! A key decides which algorithms it verifies: its `kty` (and `crv`) fix the family, its `alg`
//! (when present) the exact algorithm. A token's `alg` only has to agree; it never chooses.

use std::fmt;

use jwt_simple::prelude::{
    ES256PublicKey, ES384PublicKey, Ed25519PublicKey, HS256Key, HS384Key, HS512Key, PS256PublicKey,
    PS384PublicKey, PS512PublicKey, RS256PublicKey, RS384PublicKey, RS512PublicKey,
};

/// A JWS algorithm Warden verifies (RFC 7518 §3, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl Algorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
    ];

    /// The JOSE name (`RS256`, `EdDSA`, …).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    /// The algorithm with this exact (case-sensitive) JOSE name. `none`, `ES512` and anything
    /// else Warden does not verify give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The RSA algorithms (PKCS#1 v1.5 and PSS).
    pub const RSA: [Algorithm; 6] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
    ];

    /// The HMAC algorithms (a shared secret, which an issuer must never publish).
    pub const HMAC: [Algorithm; 3] = [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512];

    /// Whether the key is a shared secret (HMAC).
    pub fn is_symmetric(self) -> bool {
        Algorithm::HMAC.contains(&self)
    }

    /// Whether the key is an RSA key.
    pub fn is_rsa(self) -> bool {
        Algorithm::RSA.contains(&self)
    }

    /// The hash output length in bytes (the HMAC tag length, the minimum HMAC key length).
    pub(crate) fn hash_len(self) -> usize {
        match self {
            Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Es256 | Algorithm::Hs256 => 32,
            Algorithm::Rs384 | Algorithm::Ps384 | Algorithm::Es384 | Algorithm::Hs384 => 48,
            Algorithm::Rs512 | Algorithm::Ps512 | Algorithm::Hs512 | Algorithm::EdDsa => 64,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    /// The exact JOSE spelling, as in a token's header: `rs256` is not RS256.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(text).ok_or_else(|| {
            let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            format!("unknown algorithm {text:?}: expected one of {}", names.join(", "))
        })
    }
}

/// A set of algorithms (what one key may verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// The set holding exactly `algorithms`.
    pub fn of(algorithms: &[Algorithm]) -> Self {
        AlgorithmSet(algorithms.iter().fold(0, |bits, alg| bits | alg.bit()))
    }

    /// Whether `alg` is in the set.
    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL.into_iter().filter(move |alg| self.contains(*alg))
    }

    pub(crate) fn bits(self) -> u16 {
        self.0
    }
}

/// The RSA algorithms a key may verify, ready for jwt-simple.
#[derive(Debug, Clone, Default)]
pub(crate) struct RsaKeys {
    pub(crate) rs256: Option<RS256PublicKey>,
    pub(crate) rs384: Option<RS384PublicKey>,
    pub(crate) rs512: Option<RS512PublicKey>,
    pub(crate) ps256: Option<PS256PublicKey>,
    pub(crate) ps384: Option<PS384PublicKey>,
    pub(crate) ps512: Option<PS512PublicKey>,
}

/// The HMAC algorithms a key may verify.
#[derive(Clone, Default)]
pub(crate) struct HmacKeys {
    pub(crate) hs256: Option<HS256Key>,
    pub(crate) hs384: Option<HS384Key>,
    pub(crate) hs512: Option<HS512Key>,
}

/// Key material, parsed once.
#[derive(Clone)]
pub(crate) enum Material {
    /// An RSA key; `modulus` is `n` without leading zero bytes (its length is the signature length).
    Rsa { modulus: Vec<u8>, keys: Box<RsaKeys> },
    /// A P-256 key.
    P256(ES256PublicKey),
    /// A P-384 key.
    P384(ES384PublicKey),
    /// An Ed25519 key.
    Ed25519(Ed25519PublicKey),
    /// A symmetric key.
    Hmac(Box<HmacKeys>),
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material (a symmetric key is a secret).
        f.write_str(match self {
            Material::Rsa { .. } => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "OKP Ed25519",
            Material::Hmac(_) => "oct",
        })
    }
}

/// One usable verification key from a key set.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) material: Material,
    pub(crate) spki_der: Option<Vec<u8>>,
}

impl VerifyingKey {
    /// The key's `kid`, if it has one (an empty `kid` counts as none, as in Envoy).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key verifies.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// The DER `SubjectPublicKeyInfo` of an RSA or EC key (what Envoy's `verify_signature`
    /// reads); `None` for Ed25519 and symmetric keys.
    pub fn spki_der(&self) -> Option<&[u8]> {
        self.spki_der.as_deref()
    }
}

/// A parsed JWKS: the usable keys, in document order.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub(crate) keys: Vec<VerifyingKey>,
    pub(crate) fingerprint: u64,
    pub(crate) skipped: Vec<super::jwks::SkippedKey>,
}

impl KeySet {
    /// A digest of every usable key (kid, algorithms, public material): equal key sets have
    /// equal fingerprints, and a cached verification is trusted only under the fingerprint it
    /// was made with. Derived from SHA-256, so a key set cannot be crafted to match another's.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The `kid`s of the usable keys (keys without one are not listed).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(VerifyingKey::kid)
    }

    /// Whether a usable key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.kids().any(|k| k == kid)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key (never true for a set `parse_jwks` returned).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys of the document that were not taken, and why (for logs and `warden check`).
    pub fn skipped(&self) -> &[super::jwks::SkippedKey] {
        &self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn algorithm_names_round_trip_and_are_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        for bad in ["none", "None", "NONE", "nOnE", "rs256", "ES512", "Ed25519", "", "HS256 "] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn algorithm_sets_hold_what_they_were_given() {
        let set = AlgorithmSet::of(&[Algorithm::Rs256, Algorithm::Ps512]);
        assert!(set.contains(Algorithm::Rs256));
        assert!(set.contains(Algorithm::Ps512));
        assert!(!set.contains(Algorithm::Hs256));
        assert_eq!(set.iter().collect::<Vec<_>>(), [Algorithm::Rs256, Algorithm::Ps512]);
        assert!(AlgorithmSet::default().is_empty());
    }
}
