//! The identity in the client certificate Envoy verified: every URI and DNS SAN.
//!
//! Envoy's RBAC matches `principals` against every URI SAN of the peer certificate, then every
//! DNS SAN, then the subject (`AuthenticatedMatcher` in Envoy 1.40
//! `source/extensions/filters/common/rbac/matchers.cc`), but its properties show a Wasm filter
//! only the first URI SAN and the first DNS SAN (`connection.uri_san_peer_certificate`,
//! `connection.dns_san_peer_certificate` in `source/extensions/filters/common/expr/context.cc`).
//! `connection.peer_certificate` gives the whole leaf certificate as PEM; this module reads its
//! subject alternative names (RFC 5280 §4.2.1.6) with a DER reader of its own, just deep enough
//! to reach them. The subject is not parsed here: Envoy's `connection.subject_peer_certificate`
//! has it in the RFC 2253 form RBAC matches.
//!
//! Envoy verified the certificate before any filter ran; what could go wrong here is a
//! certificate Warden cannot read (a parser limit, a duplicated extension). That is an
//! [`CertificateError`], which the caller turns into an unknown peer: policies that name
//! identities fail closed rather than treat the request as plaintext.

use base64::Engine as _;

use crate::request::Peer;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Not a PEM `CERTIFICATE` block with valid base64 inside.
    #[error("not a PEM certificate")]
    NotPem,
    /// The DER inside does not have the shape of an X.509 certificate.
    #[error("malformed DER: {0}")]
    Malformed(&'static str),
    /// Two `subjectAltName` extensions: RFC 5280 §4.2 forbids it, and which one a library reads
    /// is not something to guess.
    #[error("the subjectAltName extension appears twice")]
    DuplicateSubjectAltName,
}

/// `id-ce-subjectAltName` (2.5.29.17), the content of its OBJECT IDENTIFIER.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// `dNSName [2] IA5String` and `uniformResourceIdentifier [6] IA5String` (context-specific,
/// primitive, implicitly tagged).
const DNS_NAME: u8 = 0x82;
const URI: u8 = 0x86;

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const OBJECT_IDENTIFIER: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
/// `[3] EXPLICIT Extensions` in `TBSCertificate` (context-specific, constructed).
const EXTENSIONS: u8 = 0xa3;

/// Certificates larger than this are not read (real leaf certificates are 0.5–2 KiB).
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// The SANs of the PEM certificate Envoy's `connection.peer_certificate` property carries
/// (URL-encoded PEM in Envoy's API; plain PEM is accepted too). The subject is left empty.
pub fn parse_pem(pem: &[u8]) -> Result<Peer, CertificateError> {
    if pem.len() > MAX_CERTIFICATE_BYTES {
        return Err(CertificateError::Malformed("certificate too large"));
    }
    let decoded = crate::authn::extract::percent_decode(pem);
    let der = pem_body(&decoded).ok_or(CertificateError::NotPem)?;
    let mut peer = parse_der(&der)?;
    peer.sha256 = Some(hmac_sha256::Hash::hash(&der));
    Ok(peer)
}

/// The base64 between the first `-----BEGIN CERTIFICATE-----` and the next `-----END`, decoded.
fn pem_body(pem: &[u8]) -> Option<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let start = find(pem, BEGIN)? + BEGIN.len();
    let rest = pem.get(start..)?;
    let end = find(rest, b"-----END")?;
    let body: Vec<u8> =
        rest.get(..end)?.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The SANs of a DER X.509 certificate (RFC 5280 §4.1). Only the structure on the way to the
/// extensions is checked; the signature and everything else were Envoy's to verify.
pub fn parse_der(der: &[u8]) -> Result<Peer, CertificateError> {
    let mut outer = Reader::new(der);
    let certificate = outer.expect(SEQUENCE, "Certificate")?;
    let mut certificate = Reader::new(certificate);
    let tbs = certificate.expect(SEQUENCE, "TBSCertificate")?;
    let mut tbs = Reader::new(tbs);
    let mut peer = Peer::default();
    let mut seen = false;
    // version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo,
    // issuerUniqueID, subjectUniqueID: skipped until the extensions.
    while !tbs.is_empty() {
        let (tag, content) = tbs.any()?;
        if tag != EXTENSIONS {
            continue;
        }
        let mut explicit = Reader::new(content);
        let mut extensions = Reader::new(explicit.expect(SEQUENCE, "Extensions")?);
        while !extensions.is_empty() {
            let mut extension = Reader::new(extensions.expect(SEQUENCE, "Extension")?);
            let id = extension.expect(OBJECT_IDENTIFIER, "extnID")?;
            if extension.peek() == Some(BOOLEAN) {
                extension.any()?;
            }
            let value = extension.expect(OCTET_STRING, "extnValue")?;
            if id != SUBJECT_ALT_NAME {
                continue;
            }
            if seen {
                return Err(CertificateError::DuplicateSubjectAltName);
            }
            seen = true;
            read_general_names(value, &mut peer)?;
        }
    }
    Ok(peer)
}

/// `GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName`: URIs and DNS names, in order.
fn read_general_names(value: &[u8], peer: &mut Peer) -> Result<(), CertificateError> {
    let mut outer = Reader::new(value);
    let mut names = Reader::new(outer.expect(SEQUENCE, "GeneralNames")?);
    while !names.is_empty() {
        let (tag, content) = names.any()?;
        match tag {
            URI => peer.uri_sans.push(content.to_vec()),
            DNS_NAME => peer.dns_sans.push(content.to_vec()),
            _ => {}
        }
    }
    Ok(())
}

/// Reads DER TLVs from a byte slice. Definite lengths only (DER has no other kind).
struct Reader<'d> {
    rest: &'d [u8],
}

impl<'d> Reader<'d> {
    fn new(bytes: &'d [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV: its tag and content.
    fn any(&mut self) -> Result<(u8, &'d [u8]), CertificateError> {
        let truncated = CertificateError::Malformed("truncated");
        let (&tag, rest) = self.rest.split_first().ok_or(truncated.clone())?;
        if tag & 0x1f == 0x1f {
            return Err(CertificateError::Malformed("multi-byte tag"));
        }
        let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(CertificateError::Malformed("unsupported length"));
            }
            let (digits, after) =
                (rest.get(..count).ok_or(truncated.clone())?, rest.get(count..).unwrap_or(&[]));
            rest = after;
            digits.iter().fold(0usize, |len, &d| len << 8 | usize::from(d))
        };
        let content = rest.get(..len).ok_or(truncated)?;
        self.rest = rest.get(len..).unwrap_or(&[]);
        Ok((tag, content))
    }

    /// The next TLV, which must have `tag`; `what` names it in the error.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'d [u8], CertificateError> {
        match self.any()? {
            (found, content) if found == tag => Ok(content),
            _ => Err(CertificateError::Malformed(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// An EC P-256 certificate signed with `openssl x509 -req … -extfile` holding
    /// `subjectAltName=URI:spiffe://cluster.local/ns/a/sa/first,URI:spiffe://cluster.local/ns/b/sa/second,DNS:c.example`.
    const MULTI_SAN: &str = "-----BEGIN CERTIFICATE-----
MIIB0TCCAXegAwIBAgIUD2vEKGqcukhf8RgSj6YAfuB5CFowCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIcHJvYmUtY2EwHhcNMjYxMjA0MTcyOTA5WhcNMjYxMjE0MTcy
OTA5WjAVMRMwEQYDVQQDDApmaXJzdCxPPWV4MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEYOwx+BeI9PhyKd8gvSHpqinRs3QqXnIacpJAPiE3+genVoq2kYdoA0fx
+04ikrKWxohZZd7oyCJJg/56TTze1KOBpjCBozBhBgNVHREEWjBYhiRzcGlmZmU6
Ly9jbHVzdGVyLmxvY2FsL25zL2Evc2EvZmlyc3SGJXNwaWZmZTovL2NsdXN0ZXIu
bG9jYWwvbnMvYi9zYS9zZWNvbmSCCWMuZXhhbXBsZTAdBgNVHQ4EFgQUWa8jXsMb
ensLTQueP0nuZKINdYEwHwYDVR0jBBgwFoAUn92RnMhESX6m81m4JU/LEMR0lysw
CgYIKoZIzj0EAwIDSAAwRQIhAJzviUzFAD8GifLp5p83J+L/EQbwgW8T3bFxyCZ4
tgr0AiAI4+kH2lschndWA0D68u6Z4TlCVrZ+J9JjJGgg/TpTGw==
-----END CERTIFICATE-----
";

    #[test]
    fn the_thumbprint_is_the_sha256_of_the_der() {
        // `openssl x509 -noout -fingerprint -sha256` of MULTI_SAN (RFC 8705 §3.1's x5t#S256).
        let expected = "A3701D3123AB81D888F5122ED34534F10653079FBE38E2336F775138E260EB74";
        let peer = parse_pem(MULTI_SAN.as_bytes()).unwrap();
        let hex: String = peer.sha256.unwrap().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn every_uri_and_dns_san_in_order() {
        let peer = parse_pem(MULTI_SAN.as_bytes()).unwrap();
        assert_eq!(
            peer.uri_sans,
            vec![
                b"spiffe://cluster.local/ns/a/sa/first".to_vec(),
                b"spiffe://cluster.local/ns/b/sa/second".to_vec()
            ]
        );
        assert_eq!(peer.dns_sans, vec![b"c.example".to_vec()]);
        assert_eq!(peer.subject, None);
    }

    #[test]
    fn url_encoded_pem_as_envoy_documents_it() {
        let encoded = MULTI_SAN.replace('\n', "%0A").replace(' ', "%20").replace('+', "%2B");
        let peer = parse_pem(encoded.as_bytes()).unwrap();
        assert_eq!(peer.uri_sans.len(), 2);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(parse_pem(b""), Err(CertificateError::NotPem));
        assert_eq!(
            parse_pem(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END"),
            Err(CertificateError::NotPem)
        );
        for der in
            [&[][..], &[0x30], &[0x30, 0x85, 1, 2, 3, 4, 5], &[0x30, 0x03, 0x30, 0x01], &[0x1f, 0]]
        {
            assert!(parse_der(der).is_err(), "{der:?}");
        }
        // A certificate cut anywhere is refused or read without SANs; never a panic.
        let der = pem_body(MULTI_SAN.as_bytes()).unwrap();
        for end in 0..der.len() {
            let _ = parse_der(der.get(..end).unwrap());
        }
    }

    #[test]
    fn a_certificate_without_extensions_has_no_sans() {
        // SEQUENCE { SEQUENCE { INTEGER 1 } }
        assert_eq!(parse_der(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01]), Ok(Peer::default()));
    }

    #[test]
    fn a_duplicated_subject_alt_name_is_refused() {
        let san = |name: &[u8]| {
            let mut general = vec![URI, name.len() as u8];
            general.extend_from_slice(name);
            let mut names = vec![SEQUENCE, general.len() as u8];
            names.extend(general);
            let mut ext =
                vec![OBJECT_IDENTIFIER, 3, 0x55, 0x1d, 0x11, OCTET_STRING, names.len() as u8];
            ext.extend(names);
            let mut out = vec![SEQUENCE, ext.len() as u8];
            out.extend(ext);
            out
        };
        let mut extensions = san(b"spiffe://a");
        extensions.extend(san(b"spiffe://b"));
        let mut list = vec![SEQUENCE, extensions.len() as u8];
        list.extend(extensions);
        let mut explicit = vec![EXTENSIONS, list.len() as u8];
        explicit.extend(list);
        let mut tbs = vec![SEQUENCE, explicit.len() as u8];
        tbs.extend(explicit);
        let mut cert = vec![SEQUENCE, tbs.len() as u8];
        cert.extend(tbs);
        assert_eq!(parse_der(&cert), Err(CertificateError::DuplicateSubjectAltName));
        // One of them alone is read.
        let single = {
            let one = san(b"spiffe://a");
            let mut list = vec![SEQUENCE, one.len() as u8];
            list.extend(one);
            let mut explicit = vec![EXTENSIONS, list.len() as u8];
            explicit.extend(list);
            let mut tbs = vec![SEQUENCE, explicit.len() as u8];
            tbs.extend(explicit);
            let mut cert = vec![SEQUENCE, tbs.len() as u8];
            cert.extend(tbs);
            cert
        };
        assert_eq!(parse_der(&single).unwrap().uri_sans, vec![b"spiffe://a".to_vec()]);
    }
}
