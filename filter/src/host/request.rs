//! Reading a request from Envoy: the header map in one host call, and only the connection
//! properties the compiled policies need.
//!
//! [`RequestData`] owns what was read, so a request that waits for keys can be decided again
//! later from the root context without asking Envoy twice.

use std::net::IpAddr;

use super::abi::{self, HostError};
use crate::config::plugin::PeerIdentity;
use crate::config::wire;
use crate::enforcer::Enforcer;
use crate::request::{Connection, Peer, Request};
use crate::xfcc;

/// What was read of one request.
pub struct RequestData {
    header_map: Vec<u8>,
    /// The first URI SAN (`peerIdentity: uriSan`); in `xfcc` mode the peer comes from the headers.
    uri_san: Option<Vec<u8>>,
    source_ip: Option<IpAddr>,
    destination_ip: Option<IpAddr>,
    destination_port: Option<u16>,
    sni: Option<Vec<u8>>,
}

impl RequestData {
    /// Reads the request of the current context.
    pub fn read(enforcer: &Enforcer) -> Result<RequestData, HostError> {
        let needs = enforcer.needs();
        let header_map = abi::request_header_map()?;
        let uri_san = (needs.peer && enforcer.peer_identity() == PeerIdentity::UriSan)
            .then(|| abi::property(&["connection", "uri_san_peer_certificate"]))
            .flatten();
        // `source.address` is Envoy's downstream remote address; with our connection managers'
        // `use_remote_address: true` and no trusted hops it is the TCP peer, so `source.ip` and
        // `remote.ip` agree (see docs/compatibility.md).
        let source_ip = (needs.source_ip || needs.remote_ip)
            .then(|| abi::ip_property(&["source", "address"]))
            .flatten();
        let destination_ip =
            needs.destination_ip.then(|| abi::ip_property(&["destination", "address"])).flatten();
        let destination_port =
            needs.destination_port.then(|| abi::port_property(&["destination", "port"])).flatten();
        let sni =
            needs.sni.then(|| abi::property(&["connection", "requested_server_name"])).flatten();
        Ok(RequestData { header_map, uri_san, source_ip, destination_ip, destination_port, sni })
    }

    /// Runs `decide` on the request view. `None` if the header map Envoy gave is malformed.
    pub fn with_request<R>(
        &self,
        peer_identity: PeerIdentity,
        decide: impl FnOnce(&Request<'_>) -> R,
    ) -> Option<R> {
        let headers = wire::pairs(&self.header_map)?;
        let pseudo =
            |name: &[u8]| headers.iter().find(|(n, _)| *n == name).map_or(&b""[..], |(_, v)| *v);
        let (method, path, host) = (pseudo(b":method"), pseudo(b":path"), pseudo(b":authority"));

        let xfcc_peer;
        let xfcc_uris: Vec<&[u8]>;
        let xfcc_dns: Vec<&[u8]>;
        let first_uri: [&[u8]; 1];
        let peer = match peer_identity {
            PeerIdentity::Xfcc => {
                xfcc_peer = xfcc::current_peer(
                    headers
                        .iter()
                        .filter(|(n, _)| *n == b"x-forwarded-client-cert")
                        .map(|(_, v)| *v),
                );
                match &xfcc_peer {
                    Some(details) => {
                        xfcc_uris = details.uri_sans.iter().map(Vec::as_slice).collect();
                        xfcc_dns = details.dns_sans.iter().map(Vec::as_slice).collect();
                        Some(Peer {
                            uri_sans: &xfcc_uris,
                            dns_sans: &xfcc_dns,
                            subject: details.subject.as_deref(),
                        })
                    }
                    None => None,
                }
            }
            PeerIdentity::UriSan => match &self.uri_san {
                Some(uri) => {
                    first_uri = [uri.as_slice()];
                    Some(Peer { uri_sans: &first_uri, dns_sans: &[], subject: None })
                }
                None => None,
            },
        };
        let request = Request {
            method,
            path,
            host,
            headers: &headers,
            connection: Connection {
                peer,
                source_ip: self.source_ip,
                remote_ip: self.source_ip,
                destination_ip: self.destination_ip,
                destination_port: self.destination_port,
                sni: self.sni.as_deref(),
            },
        };
        Some(decide(&request))
    }
}
