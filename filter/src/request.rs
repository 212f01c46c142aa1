//! The request as the core sees it: plain data, borrowed from wherever the caller keeps it.
//!
//! Every request is built by one function, [`view`]: the proxy-wasm glue calls it with Envoy's
//! header map and connection properties; tests, benchmarks, `warden explain` and `warden
//! replay` call it through [`OwnedRequest`]. Everything a client can send is
//! bytes (`&[u8]`), never `&str`: a non-UTF-8 header must get a decision, not a panic.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::config::plugin::PeerIdentity;
use crate::xfcc;

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

/// What the proxy could tell Warden about one attribute of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed<T> {
    /// Known, with this value.
    Known(T),
    /// Known not to exist: no client certificate on a plaintext connection, no IP address on
    /// a Unix socket. Positive matchers are false, negated ones true, as in Envoy.
    Absent,
    /// Warden could not learn it (the network filter that hands over the direct peer's address
    /// is not deployed, the certificate could not be read). Whatever reads it fails closed: an
    /// ALLOW rule does not match, a DENY rule matches as if it held.
    Unknown,
}

impl<T> Observed<T> {
    /// `Known(value)` for `Some`, `Absent` for `None`.
    pub fn from_option(value: Option<T>) -> Self {
        value.map_or(Observed::Absent, Observed::Known)
    }

    /// The same observation, borrowing the value.
    pub fn as_ref(&self) -> Observed<&T> {
        match self {
            Observed::Known(value) => Observed::Known(value),
            Observed::Absent => Observed::Absent,
            Observed::Unknown => Observed::Unknown,
        }
    }

    /// The value, when known.
    pub fn known(self) -> Option<T> {
        match self {
            Observed::Known(value) => Some(value),
            Observed::Absent | Observed::Unknown => None,
        }
    }
}

/// What the proxy knows about the connection (Envoy terminated its TLS).
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The verified client certificate's identity: `Absent` on plaintext or one-way TLS.
    pub peer: Observed<&'a Peer>,
    /// `source.ip`, what `ipBlocks` match: the address of the direct peer, the TCP connection's
    /// remote end (Envoy RBAC `direct_remote_ip`). HTTP filters cannot read it once the
    /// connection manager has taken the client address from `X-Forwarded-For`; Warden's
    /// network filter hands it over (docs/compatibility.md#addresses).
    pub source_ip: Observed<IpAddr>,
    /// `remote.ip`, what `remoteIpBlocks` match: the original client address as Envoy computes
    /// it (`X-Forwarded-For` with `use_remote_address: false` or trusted hops, the PROXY
    /// protocol), the direct peer otherwise (Envoy RBAC `remote_ip`; Envoy's `source.address`).
    pub remote_ip: Option<IpAddr>,
    /// `destination.ip`: the local address the connection arrived on.
    pub destination_ip: Option<IpAddr>,
    /// `destination.port`: the local (workload) port.
    pub destination_port: Option<u16>,
    /// `connection.sni`: the TLS server name the client asked for.
    pub sni: Option<&'a [u8]>,
}

impl Default for Connection<'_> {
    /// A plaintext connection whose direct peer is unknown.
    fn default() -> Self {
        Connection {
            peer: Observed::Absent,
            source_ip: Observed::Unknown,
            remote_ip: None,
            destination_ip: None,
            destination_port: None,
            sni: None,
        }
    }
}

/// The identity in a verified peer certificate: what Envoy's RBAC matches `principals`
/// against, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// URI SANs (SPIFFE IDs such as `spiffe://cluster.local/ns/web/sa/frontend`), every one.
    pub uri_sans: Vec<Vec<u8>>,
    /// DNS SANs, every one.
    pub dns_sans: Vec<Vec<u8>>,
    /// The subject, RFC 2253 order (`CN=frontend,O=example`).
    pub subject: Option<Vec<u8>>,
    /// The SHA-256 of the certificate's DER (RFC 8705 §3.1's `x5t#S256`, before base64url),
    /// when Warden read the certificate itself or `x-forwarded-client-cert` carried `Hash`.
    pub sha256: Option<[u8; 32]>,
}

impl Peer {
    /// Every name RBAC tries, in its order: URI SANs, DNS SANs, the subject.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        let uris = self.uri_sans.iter().map(Vec::as_slice);
        let dns = self.dns_sans.iter().map(Vec::as_slice);
        uris.chain(dns).chain(self.subject.as_deref())
    }
}

impl<'a> Request<'a> {
    /// The request as Envoy hands it to an HTTP filter: its header map, pseudo-headers
    /// included (`:method`, `:path`, `:authority`), and the connection. The module, `warden
    /// explain` and the tests all build their requests here, so they see the same request.
    pub fn from_header_map(headers: &'a [Header<'a>], connection: Connection<'a>) -> Self {
        let pseudo =
            |name: &[u8]| headers.iter().find(|(n, _)| *n == name).map_or(&b""[..], |(_, v)| *v);
        Request {
            method: pseudo(b":method"),
            path: pseudo(b":path"),
            host: pseudo(b":authority"),
            headers,
            connection,
        }
    }

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

/// A request in owned form, for the tools and tests that build requests themselves (`warden
/// explain`, the benchmarks, the conformance tables). [`OwnedRequest::with`] lays it out as
/// Envoy's header map, pseudo-headers first, and builds the view with
/// [`Request::from_header_map`], as the module does, so every builder sees what the module sees.
#[derive(Debug, Clone)]
pub struct OwnedRequest {
    /// `:method`.
    pub method: Vec<u8>,
    /// `:path`, with its query.
    pub path: Vec<u8>,
    /// `:authority`.
    pub authority: Vec<u8>,
    /// The other headers, lower-case names, in order (repeated names allowed).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The verified client certificate's identity.
    pub peer: Observed<Peer>,
    /// `source.ip`: the direct peer.
    pub source_ip: Observed<IpAddr>,
    /// `remote.ip`: the client address Envoy computed.
    pub remote_ip: Option<IpAddr>,
    /// `destination.ip`.
    pub destination_ip: Option<IpAddr>,
    /// `destination.port`.
    pub destination_port: Option<u16>,
    /// `connection.sni`.
    pub sni: Option<Vec<u8>>,
}

impl Default for OwnedRequest {
    /// `GET /` on plaintext, no headers, the direct peer unknown.
    fn default() -> Self {
        OwnedRequest {
            method: b"GET".to_vec(),
            path: b"/".to_vec(),
            authority: Vec::new(),
            headers: Vec::new(),
            peer: Observed::Absent,
            source_ip: Observed::Unknown,
            remote_ip: None,
            destination_ip: None,
            destination_port: None,
            sni: None,
        }
    }
}

impl OwnedRequest {
    /// Calls `f` with the request as the module would see it, the peer's identity taken from
    /// the certificate (`peerIdentity: certificate`, the default).
    pub fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        self.with_peer_identity(PeerIdentity::Certificate, f)
    }

    /// Calls `f` with the request as the module would see it under `peer_identity`: with
    /// `xfcc`, the peer is read from the `x-forwarded-client-cert` headers and
    /// [`OwnedRequest::peer`] is ignored, as the module ignores the certificate.
    pub fn with_peer_identity<R>(
        &self,
        peer_identity: PeerIdentity,
        f: impl FnOnce(&Request<'_>) -> R,
    ) -> R {
        view(&self.header_map(), self.connection(), peer_identity, f)
    }

    /// What was observed of the connection, borrowed.
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            peer: self.peer.as_ref(),
            source_ip: self.source_ip,
            remote_ip: self.remote_ip,
            destination_ip: self.destination_ip,
            destination_port: self.destination_port,
            sni: self.sni.as_deref(),
        }
    }

    /// The request laid out as Envoy's header map: pseudo-headers first (an empty one left
    /// out), then the others in order.
    pub fn header_map(&self) -> Vec<Header<'_>> {
        let pseudo = [
            (&b":method"[..], self.method.as_slice()),
            (b":path", self.path.as_slice()),
            (b":authority", self.authority.as_slice()),
        ];
        pseudo
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .chain(self.headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
            .collect()
    }
}

/// The request the module decides, from Envoy's header map and what Warden read of the
/// connection; where the peer's identity comes from is the configuration's `peerIdentity`
/// (with `xfcc`, `connection.peer` is replaced by the current element of the last
/// `x-forwarded-client-cert` header). The module calls this for every request and
/// [`OwnedRequest`] calls it for every tool, so `warden explain` cannot see a request the module
/// would not.
pub fn view<R>(
    headers: &[Header<'_>],
    connection: Connection<'_>,
    peer_identity: PeerIdentity,
    decide: impl FnOnce(&Request<'_>) -> R,
) -> R {
    match peer_identity {
        PeerIdentity::Certificate => decide(&Request::from_header_map(headers, connection)),
        PeerIdentity::Xfcc => {
            let values = headers.iter().filter(|(n, _)| *n == b"x-forwarded-client-cert");
            let peer = xfcc::current_peer(values.map(|(_, v)| *v));
            let connection =
                Connection { peer: Observed::from_option(peer.as_ref()), ..connection };
            decide(&Request::from_header_map(headers, connection))
        }
    }
}

/// Where the direct peer's address is handed from the connection to the HTTP filter
/// (docs/compatibility.md#addresses).
pub mod handover {
    /// The property Warden's own network filter (`role: connection`) writes, once per
    /// connection: `wasm.warden_direct_peer` in Envoy's filter state.
    pub const DIRECT_PEER_PROPERTY: &str = "warden_direct_peer";
    /// The filter-state object Envoy's `envoy.filters.network.set_filter_state` can write
    /// instead (`object_key`, with `factory_key: envoy.string` and the format string
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`).
    pub const DIRECT_REMOTE_ADDRESS_OBJECT: &str = "warden.direct_remote_address";
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

    /// What a decision can read of a request, as one comparable string.
    fn seen(request: &Request<'_>) -> String {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let peer = match request.connection.peer {
            Observed::Known(peer) => format!("{:?}", peer.names().map(text).collect::<Vec<_>>()),
            other => format!("{:?}", other.known()),
        };
        let headers: Vec<(String, String)> =
            request.headers.iter().map(|(n, v)| (text(n), text(v))).collect();
        let connection = &request.connection;
        format!(
            "{} {} {} {headers:?} peer={peer} {:?} {:?} {:?} {:?} {:?} {}",
            text(request.method),
            text(request.path),
            text(request.host),
            connection.source_ip,
            connection.remote_ip,
            connection.destination_ip,
            connection.destination_port,
            connection.sni.map(text),
            text(request.url_path()),
        )
    }

    /// The tools' requests (`OwnedRequest`: `warden explain`, `replay`, the tests) and the
    /// module's (Envoy's header map in its wire form, decoded, then [`view`]) are the same
    /// request, for the shapes a client uses to slip past a policy, under both peer identity
    /// sources.
    #[test]
    fn the_tools_and_the_module_see_the_same_request() {
        let xfcc_peer =
            Peer { uri_sans: vec![b"spiffe://td/ns/a/sa/cert".to_vec()], ..Peer::default() };
        let shapes = [
            OwnedRequest::default(),
            OwnedRequest {
                method: b"POST".to_vec(),
                path: b"/a/../admin?x=1#f".to_vec(),
                authority: b"api.example.com:8443".to_vec(),
                headers: vec![
                    (b"x-team".to_vec(), b"ops".to_vec()),
                    (b"x-team".to_vec(), b"eng".to_vec()),
                    (b"authorization".to_vec(), b"Bearer a".to_vec()),
                    (b"authorization".to_vec(), b"Bearer b".to_vec()),
                    (b"x-raw".to_vec(), b"\xff\x00v".to_vec()),
                    (
                        b"x-forwarded-client-cert".to_vec(),
                        b"By=spiffe://td/ns/b/sa/by;URI=spiffe://td/ns/forged/sa/x".to_vec(),
                    ),
                    (
                        b"x-forwarded-client-cert".to_vec(),
                        b"URI=spiffe://td/ns/old/sa/x,By=x;URI=\"spiffe://td/ns/web/sa/front\""
                            .to_vec(),
                    ),
                ],
                peer: Observed::Known(xfcc_peer.clone()),
                source_ip: Observed::Known("10.0.0.1".parse().unwrap()),
                remote_ip: "192.0.2.1".parse().ok(),
                destination_ip: "10.0.0.2".parse().ok(),
                destination_port: Some(8080),
                sni: Some(b"outbound_.8080_._.api".to_vec()),
            },
            OwnedRequest {
                headers: vec![(
                    b"x-forwarded-client-cert".to_vec(),
                    b"URI=\"unterminated".to_vec(),
                )],
                peer: Observed::Unknown,
                ..OwnedRequest::default()
            },
        ];
        for owned in &shapes {
            let wire = crate::config::wire::encode_pairs(owned.header_map().into_iter());
            let decoded = crate::config::wire::pairs(&wire).unwrap();
            for identity in [PeerIdentity::Certificate, PeerIdentity::Xfcc] {
                let tools = owned.with_peer_identity(identity, seen);
                let module = view(&decoded, owned.connection(), identity, seen);
                assert_eq!(tools, module, "{identity:?}");
            }
        }
        // And the peer really comes from where the setting says.
        let forged = &shapes[1];
        let from_xfcc = forged.with_peer_identity(PeerIdentity::Xfcc, seen);
        assert!(from_xfcc.contains("spiffe://td/ns/web/sa/front"), "{from_xfcc}");
        assert!(!from_xfcc.contains("ns/a/sa/cert"), "{from_xfcc}");
        let from_certificate = forged.with(seen);
        assert!(from_certificate.contains("ns/a/sa/cert"), "{from_certificate}");
        assert!(shapes[2].with_peer_identity(PeerIdentity::Xfcc, seen).contains("peer=None"));
    }
}
