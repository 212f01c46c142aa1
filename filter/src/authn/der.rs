//! The few DER structures Envoy's `verify_signature` host function reads (X.690).
//!
//! - `SubjectPublicKeyInfo` (RFC 5280 §4.1) for RSA (RFC 3279 §2.3.1) and EC keys
//!   (RFC 5480 §2, uncompressed point).
//! - `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3), which BoringSSL
//!   expects where a JWS carries the raw `r‖s` (RFC 7518 §3.4).
//!
//! Only encoders: nothing here reads DER from outside.

/// `rsaEncryption` (1.2.840.113549.1.1.1) with its NULL parameters.
const RSA_ALGORITHM: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
/// `id-ecPublicKey` (1.2.840.10045.2.1).
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` (1.2.840.10045.3.1.7).
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` (1.3.132.0.34).
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The named curves Warden encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

/// A DER TLV. Lengths up to 65535 bytes, far above any key this module encodes.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 4);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, (len & 0xff) as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from big-endian bytes: minimal, with a leading zero when the high
/// bit is set.
fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = bytes.get(start..).unwrap_or_default();
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(0x02, &content)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0); // no unused bits
    content.extend_from_slice(bytes);
    tlv(0x03, &content)
}

/// `SubjectPublicKeyInfo` of an RSA key (`RSAPublicKey ::= SEQUENCE { n, e }` in the bit string).
pub(crate) fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = unsigned_integer(n);
    key.extend(unsigned_integer(e));
    let mut content = RSA_ALGORITHM.to_vec();
    content.extend(bit_string(&tlv(0x30, &key)));
    tlv(0x30, &content)
}

/// `SubjectPublicKeyInfo` of an EC key; `point` is the SEC1 uncompressed point `04‖x‖y`.
pub(crate) fn ec_spki(curve: Curve, point: &[u8]) -> Vec<u8> {
    let mut algorithm = EC_PUBLIC_KEY_OID.to_vec();
    algorithm.extend_from_slice(match curve {
        Curve::P256 => P256_OID,
        Curve::P384 => P384_OID,
    });
    let mut content = tlv(0x30, &algorithm);
    content.extend(bit_string(point));
    tlv(0x30, &content)
}

/// `ECDSA-Sig-Value` from a JWS signature `r‖s` (two halves of equal length).
pub(crate) fn ecdsa_signature(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut content = unsigned_integer(r);
    content.extend(unsigned_integer(s));
    Some(tlv(0x30, &content))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(unsigned_integer(&[0, 0, 1]), [0x02, 0x01, 0x01]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(unsigned_integer(&[0, 0]), [0x02, 0x01, 0x00]);
        assert_eq!(unsigned_integer(&[]), [0x02, 0x01, 0x00]);
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        assert_eq!(&tlv(0x04, &[0; 0x80])[..3], &[0x04, 0x81, 0x80]);
        assert_eq!(&tlv(0x04, &[0; 0x123])[..4], &[0x04, 0x82, 0x01, 0x23]);
    }

    #[test]
    fn ecdsa_signature_needs_two_equal_halves() {
        assert_eq!(ecdsa_signature(&[]), None);
        assert_eq!(ecdsa_signature(&[1, 2, 3]), None);
        assert_eq!(
            ecdsa_signature(&[0, 1, 0x80, 0]),
            Some(vec![0x30, 0x08, 0x02, 0x01, 0x01, 0x02, 0x03, 0x00, 0x80, 0x00])
        );
    }
}
