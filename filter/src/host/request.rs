//! Reading a request from Envoy: the header map in one host call, and only the connection
//! properties the compiled policies need, read once per connection.
//!
//! [`RequestData`] owns what was read, so a request that waits for keys can be decided again
//! later from the root context without asking Envoy twice.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;

use super::abi::{self, HostError};
use super::connection::{DIRECT_PEER_PATH, DIRECT_REMOTE_ADDRESS_PATH};
use crate::authz::Needs;
use crate::certificate;
use crate::config::plugin::PeerIdentity;
use crate::config::wire;
use crate::request::{self, ip_of_address, Connection, Observed, Peer, Request};

/// What Envoy told Warden about one downstream connection. It cannot change while the
/// connection lives, so it is read on the connection's first request and cached.
#[derive(Debug)]
pub struct ConnectionFacts {
    /// The direct peer's address, handed over by Warden's network filter
    /// (`source.ip`, `ipBlocks`).
    direct_peer: Observed<IpAddr>,
    /// Every SAN of the verified client certificate, and its subject.
    peer: Observed<Peer>,
    destination_ip: Option<IpAddr>,
    destination_port: Option<u16>,
    sni: Option<Vec<u8>>,
    /// Why the certificate could not be read, for the log.
    pub certificate_error: Option<certificate::CertificateError>,
}

impl ConnectionFacts {
    /// Reads what `needs` asks for from the current stream's connection.
    fn read(needs: &Needs, peer_identity: PeerIdentity) -> ConnectionFacts {
        let direct_peer = if needs.source_ip {
            // Envoy's own set_filter_state network filter, or Warden's (role: connection).
            let handed_over = abi::property_path(DIRECT_REMOTE_ADDRESS_PATH)
                .or_else(|| abi::property_path(DIRECT_PEER_PATH));
            match handed_over {
                // An address that is not an IP (a Unix socket peer) is absent, as for RBAC.
                Some(address) => Observed::from_option(ip_of_address(&address)),
                None => Observed::Unknown,
            }
        } else {
            Observed::Unknown
        };
        let mut certificate_error = None;
        let peer = if needs.peer && peer_identity == PeerIdentity::Certificate {
            match abi::property(&["connection", "peer_certificate"]) {
                None => Observed::Absent,
                Some(pem) => match certificate::parse_pem(&pem) {
                    Ok(mut peer) => {
                        peer.subject = abi::property(&["connection", "subject_peer_certificate"]);
                        Observed::Known(peer)
                    }
                    Err(error) => {
                        certificate_error = Some(error);
                        Observed::Unknown
                    }
                },
            }
        } else {
            Observed::Absent
        };
        let destination_ip =
            needs.destination_ip.then(|| abi::ip_property(&["destination", "address"])).flatten();
        let destination_port =
            needs.destination_port.then(|| abi::port_property(&["destination", "port"])).flatten();
        let sni =
            needs.sni.then(|| abi::property(&["connection", "requested_server_name"])).flatten();
        ConnectionFacts {
            direct_peer,
            peer,
            destination_ip,
            destination_port,
            sni,
            certificate_error,
        }
    }
}

/// Connections seen by one worker, by Envoy's connection id. Ids only grow within an Envoy
/// process, so when the cache is full the oldest connection goes first; a connection evicted
/// while still open is simply read again.
#[derive(Default)]
pub struct ConnectionCache {
    by_id: BTreeMap<u64, Rc<ConnectionFacts>>,
}

/// Connections a worker remembers (a few hundred bytes each).
const MAX_CONNECTIONS: usize = 4096;

impl ConnectionCache {
    /// The facts of the current stream's connection: cached, or read now. `None` as the second
    /// value when they were read now (so the caller can log what went wrong once).
    fn facts(&mut self, needs: &Needs, peer_identity: PeerIdentity) -> (Rc<ConnectionFacts>, bool) {
        let Some(id) = abi::connection_id() else {
            // No id: read it every time rather than guess.
            return (Rc::new(ConnectionFacts::read(needs, peer_identity)), true);
        };
        if let Some(facts) = self.by_id.get(&id) {
            return (facts.clone(), false);
        }
        let facts = Rc::new(ConnectionFacts::read(needs, peer_identity));
        if self.by_id.len() >= MAX_CONNECTIONS {
            self.by_id.pop_first();
        }
        self.by_id.insert(id, facts.clone());
        (facts, true)
    }
}

/// Whether a connection-level attribute must be read at all.
fn reads_connection(needs: &Needs, peer_identity: PeerIdentity) -> bool {
    needs.source_ip
        || (needs.peer && peer_identity == PeerIdentity::Certificate)
        || needs.destination_ip
        || needs.destination_port
        || needs.sni
}

/// What was read of one request.
pub struct RequestData {
    header_map: Vec<u8>,
    connection: Option<Rc<ConnectionFacts>>,
    /// `source.address`: Envoy's trusted client address (`remote.ip`, `remoteIpBlocks`).
    remote_ip: Option<IpAddr>,
}

impl crate::waiting::Held for RequestData {
    fn held_bytes(&self) -> usize {
        // The connection's facts are shared with its other requests and the connection cache.
        std::mem::size_of::<Self>() + self.header_map.capacity()
    }
}

impl RequestData {
    /// Reads the request of the current context. The second value says whether the
    /// connection's facts were read just now (its first request, or evicted meanwhile).
    pub fn read(
        needs: &Needs,
        peer_identity: PeerIdentity,
        cache: &mut ConnectionCache,
    ) -> Result<(RequestData, Option<Rc<ConnectionFacts>>), HostError> {
        let header_map = abi::request_header_map()?;
        let (connection, fresh) = if reads_connection(needs, peer_identity) {
            let (facts, fresh) = cache.facts(needs, peer_identity);
            (Some(facts), fresh)
        } else {
            (None, false)
        };
        let remote_ip = needs
            .remote_ip
            .then(|| abi::property_path(abi::SOURCE_ADDRESS))
            .flatten()
            .and_then(|address| ip_of_address(&address));
        let new = fresh.then(|| connection.clone()).flatten();
        Ok((RequestData { header_map, connection, remote_ip }, new))
    }

    /// Runs `decide` on the request view. `None` if the header map Envoy gave is malformed.
    pub fn with_request<R>(
        &self,
        peer_identity: PeerIdentity,
        decide: impl FnOnce(&Request<'_>) -> R,
    ) -> Option<R> {
        let headers = wire::pairs(&self.header_map)?;
        let facts = self.connection.as_deref();
        let connection = Connection {
            peer: facts.map_or(Observed::Absent, |f| f.peer.as_ref()),
            source_ip: facts.map_or(Observed::Unknown, |f| f.direct_peer),
            remote_ip: self.remote_ip,
            destination_ip: facts.and_then(|f| f.destination_ip),
            destination_port: facts.and_then(|f| f.destination_port),
            sni: facts.and_then(|f| f.sni.as_deref()),
        };
        Some(request::view(&headers, connection, peer_identity, decide))
    }
}
