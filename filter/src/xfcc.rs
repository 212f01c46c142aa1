//! The peer identity from the `x-forwarded-client-cert` header Envoy writes.
//!
//! Envoy's `connection.uri_san_peer_certificate` property carries only the first URI SAN of the
//! client certificate, while Envoy's own RBAC checks every URI SAN, then every DNS SAN, then the
//! subject. With `forward_client_cert_details: SANITIZE_SET` (or `APPEND_FORWARD`) and
//! `set_current_client_cert_details: {uri: true, dns: true, subject: true}`, Envoy writes all of
//! them into XFCC before any HTTP filter runs, replacing (or appending to) whatever the client
//! sent, and removes the header on plaintext connections. The element for the current
//! connection is then the **last** one. Under `FORWARD_ONLY`/`ALWAYS_FORWARD_ONLY` the client
//! controls the header, which is why reading it is an opt-in (`peerIdentity: xfcc`) that the
//! operator takes together with the connection manager setting.
//!
//! Format (Envoy `config/http/http_conn_man/headers`): elements separated by `,`, each a list of
//! `key=value` pairs separated by `;`; values containing `,`, `;` or `=` are double-quoted, with
//! `\"` escaping a quote. Keys are case-insensitive.

use crate::request::Peer;

/// The details of the current connection's certificate: the last element of the last XFCC
/// header. `None` when absent, empty or malformed (an unterminated quote), so a request whose
/// XFCC cannot be read has no peer identity (positive identity rules do not match).
pub fn current_peer<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Peer> {
    let value = values.last()?;
    let elements = split_unquoted(value, b',');
    let element = elements.last()?;
    let mut details = Peer::default();
    let mut any = false;
    for pair in split_unquoted(element, b';') {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else { continue };
        let (key, raw) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        let value = unquote(raw)?;
        if key.eq_ignore_ascii_case(b"URI") {
            details.uri_sans.push(value);
            any = true;
        } else if key.eq_ignore_ascii_case(b"DNS") {
            details.dns_sans.push(value);
            any = true;
        } else if key.eq_ignore_ascii_case(b"Subject") {
            details.subject = Some(value);
            any = true;
        } else if key.eq_ignore_ascii_case(b"Hash") {
            // Envoy writes the SHA-256 of the certificate's DER in hex; anything else is no
            // thumbprint (a certificate-bound token then fails).
            details.sha256 = hex32(&value);
        }
    }
    any.then_some(details)
}

/// 32 bytes from 64 hex digits.
fn hex32(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Splits on `separator` outside double quotes. An unterminated quote yields no parts at all.
fn split_unquoted(bytes: &[u8], separator: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == separator && !quoted {
            parts.push(bytes.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    if quoted {
        return Vec::new();
    }
    parts.push(bytes.get(start..).unwrap_or_default());
    parts
}

/// `"a\"b"` → `a"b`; unquoted values are returned as they are.
fn unquote(raw: &[u8]) -> Option<Vec<u8>> {
    let Some(inner) = raw.strip_prefix(b"\"") else { return Some(raw.to_vec()) };
    let inner = inner.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for &b in inner {
        if escaped || b != b'\\' {
            out.push(b);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn peer(values: &[&str]) -> Option<Peer> {
        current_peer(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn hash_is_the_thumbprint_when_it_is_64_hex_digits() {
        let hash = "a3701d3123ab81d888f5122ed34534f10653079fbe38e2336f775138e260eb74";
        let details = peer(&[&format!("Hash={hash};URI=spiffe://a")]).expect("details");
        assert_eq!(details.sha256.map(|h| h[..2].to_vec()), Some(vec![0xa3, 0x70]));
        assert_eq!(peer(&["Hash=ab12;URI=spiffe://a"]).expect("details").sha256, None);
        assert_eq!(
            peer(&[&format!("Hash={};URI=spiffe://a", "zz".repeat(32))]).unwrap().sha256,
            None
        );
    }

    #[test]
    fn sanitize_set_element_lists_every_san() {
        // As Envoy 1.40 writes it for a certificate with two URI SANs (measured).
        let details = peer(&[
            "By=spiffe://cluster.local/ns/api/sa/backend;Hash=ab12;Subject=\"CN=first,O=mesh\";\
             URI=spiffe://cluster.local/ns/web/sa/frontend;URI=spiffe://cluster.local/ns/rogue/sa/intruder;DNS=frontend.web",
        ])
        .expect("details");
        assert_eq!(
            details.uri_sans,
            vec![
                b"spiffe://cluster.local/ns/web/sa/frontend".to_vec(),
                b"spiffe://cluster.local/ns/rogue/sa/intruder".to_vec()
            ]
        );
        assert_eq!(details.dns_sans, vec![b"frontend.web".to_vec()]);
        assert_eq!(details.subject, Some(b"CN=first,O=mesh".to_vec()));
    }

    #[test]
    fn append_forward_uses_the_last_element() {
        // A client-supplied element first (forged), Envoy's own last.
        let details = peer(&["URI=spiffe://cluster.local/ns/web/sa/frontend,By=x;URI=spiffe://cluster.local/ns/rogue/sa/intruder"])
            .expect("details");
        assert_eq!(details.uri_sans, vec![b"spiffe://cluster.local/ns/rogue/sa/intruder".to_vec()]);
    }

    #[test]
    fn last_header_wins_when_repeated() {
        let details = peer(&["URI=spiffe://a", "URI=spiffe://b"]).expect("details");
        assert_eq!(details.uri_sans, vec![b"spiffe://b".to_vec()]);
    }

    #[test]
    fn quoted_values_keep_their_separators() {
        let details = peer(&["Subject=\"CN=a\\\"b;c,d\";URI=\"spiffe://x/a,b\""]).expect("details");
        assert_eq!(details.subject, Some(b"CN=a\"b;c,d".to_vec()));
        assert_eq!(details.uri_sans, vec![b"spiffe://x/a,b".to_vec()]);
    }

    #[test]
    fn absent_empty_or_malformed_header_gives_no_identity() {
        assert_eq!(peer(&[]), None);
        assert_eq!(peer(&[""]), None);
        assert_eq!(peer(&["By=spiffe://x;Hash=00"]), None);
        assert_eq!(peer(&["URI=\"spiffe://unterminated"]), None);
        assert_eq!(peer(&["Subject=\"CN=x\";URI=spiffe://ok,"]), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples: [&[u8]; 6] =
            [b"\xff\xfe=;,\"", b"\"", b"\\", b"URI=\\\"", b";;;,,,===", b"URI=\xff"];
        for sample in samples {
            let _ = current_peer(std::iter::once(sample));
        }
    }
}
