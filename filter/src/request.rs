//! The request as the core sees it: plain data, borrowed from wherever the caller keeps it.
//!
//! The proxy-wasm glue fills a [`Request`] from Envoy's header map and connection properties;
//! tests, benchmarks and `warden explain` fill it from literals. Everything a client can send is
//! bytes (`&[u8]`), never `&str`: a non-UTF-8 header must get a decision, not a panic.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// One request header. Names are lower-case, as Envoy stores them (HTTP/2 requires it and
/// Envoy lower-cases HTTP/1 names); pseudo-headers (`:path`, …) may be present.
pub type Header<'a> = (&'a [u8], &'a [u8]);

/// What the core reads about one HTTP request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a [u8],
    /// `:path` as Envoy forwards it: already normalized by the connection manager
    /// (dot segments, slash merging), still with its `?query` and `#fragment`.
    pub path: &'a [u8],
    /// `:authority` (the `Host` header in HTTP/1), port included when the client sent one.
    pub host: &'a [u8],
    /// Every request header, repeated names included, in the order received.
    pub headers: &'a [Header<'a>],
    /// The connection the request arrived on.
    pub connection: Connection<'a>,
}

/// What the proxy knows about the connection (Envoy terminated its TLS).
#[derive(Debug, Clone, Copy, Default)]
pub struct Connection<'a> {
    /// The verified client certificate's identity; `None` on plaintext or one-way TLS.
    pub peer: Option<Peer<'a>>,
    /// `source.ip`: the address of the direct peer.
    pub source_ip: Option<IpAddr>,
    /// `remote.ip`: the original client address as Envoy computes it (`X-Forwarded-For` with
    /// `xff_num_trusted_hops`, or the PROXY protocol); the direct peer otherwise.
    pub remote_ip: Option<IpAddr>,
    /// `destination.ip`: the local address the connection arrived on.
    pub destination_ip: Option<IpAddr>,
    /// `destination.port`: the local (workload) port.
    pub destination_port: Option<u16>,
    /// `connection.sni`: the TLS server name the client asked for.
    pub sni: Option<&'a [u8]>,
}

/// The identity in a verified peer certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer<'a> {
    /// URI SANs (SPIFFE IDs such as `spiffe://cluster.local/ns/web/sa/frontend`).
    /// Envoy's `connection.uri_san_peer_certificate` property carries only the first one.
    pub uri_sans: &'a [&'a [u8]],
    /// DNS SANs.
    pub dns_sans: &'a [&'a [u8]],
    /// The subject, RFC 2253 order (`CN=frontend,O=example`).
    pub subject: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// Every value of header `name` (lower-case), in order.
    pub fn header_values<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers.iter().filter(move |(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The path without `?query` and `#fragment`: what `paths` and `notPaths` match.
    pub fn url_path(&self) -> &'a [u8] {
        let end = self.path.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(self.path.len());
        self.path.get(..end).unwrap_or(self.path)
    }
}

/// The IP of an `ip:port` address as Envoy writes it (`1.2.3.4:80`, `[::1]:80`), or a bare IP.
pub fn ip_of_address(address: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(address).ok()?;
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    let host = text.rsplit_once(':')?.0;
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// The identity a verified JWT gives a request (`request.auth.*` in Istio's terms).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`, when present and a string.
    pub subject: Option<String>,
    /// The payload after Istio's normalization: `scope`, `permission` and the rule's
    /// `spaceDelimitedClaims` split from space-delimited strings into lists.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// `request.auth.principal`: `<iss>/<sub>`, when the token has a subject.
    pub fn principal(&self) -> Option<String> {
        self.subject.as_ref().map(|sub| format!("{}/{}", self.issuer, sub))
    }

    /// The value at a claim path: `["groups"]` is `request.auth.claims[groups]`,
    /// `["a", "b"]` is `request.auth.claims[a][b]`.
    pub fn claim<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.claims.get(first.as_ref())?;
        for key in rest {
            value = value.as_object()?.get(key.as_ref())?;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn url_path_drops_query_and_fragment() {
        let request = Request { path: b"/a/b?x=1#frag", ..Default::default() };
        assert_eq!(request.url_path(), b"/a/b");
        let request = Request { path: b"/a#f?x", ..Default::default() };
        assert_eq!(request.url_path(), b"/a");
        let request = Request { path: b"", ..Default::default() };
        assert_eq!(request.url_path(), b"");
    }

    #[test]
    fn addresses_parse_to_their_ip() {
        assert_eq!(ip_of_address(b"10.0.0.1:443"), "10.0.0.1".parse().ok());
        assert_eq!(ip_of_address(b"[::1]:8080"), "::1".parse().ok());
        assert_eq!(ip_of_address(b"::1"), "::1".parse().ok());
        assert_eq!(ip_of_address(b"10.0.0.1"), "10.0.0.1".parse().ok());
        assert_eq!(ip_of_address(b"not-an-ip:80"), None);
        assert_eq!(ip_of_address(b"\xff:1"), None);
    }

    #[test]
    fn repeated_headers_are_all_visible() {
        let headers: [Header<'_>; 3] = [(b"x", b"1"), (b"y", b"2"), (b"x", b"3")];
        let request = Request { headers: &headers, ..Default::default() };
        assert_eq!(request.header_values(b"x").collect::<Vec<_>>(), vec![&b"1"[..], &b"3"[..]]);
    }
}
