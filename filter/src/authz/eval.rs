//! Matching one validated rule against one request.
//!
//! Absent attributes follow Envoy: a positive matcher on an absent attribute is false, so a
//! negated one (`notX`, `notValues`) is true (ISTIO-SECURITY-2021-004 for the peer identity on
//! plaintext; a missing JWT or header for the rest).

use std::borrow::Cow;

use serde_json::Value;

use super::matcher::{show, Pattern};
use super::policy::{Check, PathPattern, Rule, Test};
use crate::request::{Identity, Request};

/// What the rules read from one request, computed once.
pub(crate) struct Attributes<'r, 'a> {
    pub(crate) request: &'r Request<'a>,
    pub(crate) identity: Option<&'r Identity>,
    /// The path without query and fragment (what `paths` match).
    pub(crate) url_path: &'a [u8],
}

impl<'r, 'a> Attributes<'r, 'a> {
    pub(crate) fn new(request: &'r Request<'a>, identity: Option<&'r Identity>) -> Self {
        Attributes { request, identity, url_path: request.url_path() }
    }

    /// `:authority`; an empty one counts as absent.
    pub(crate) fn host(&self) -> Option<&'a [u8]> {
        Some(self.request.host).filter(|host| !host.is_empty())
    }

    /// A header as Envoy's `HeaderMatcher` sees it: every value of a repeated header joined with
    /// `,`. Pseudo-headers (and `host`, Envoy's alias of `:authority`) come from the request line.
    pub(crate) fn header(&self, name: &[u8]) -> Option<Cow<'a, [u8]>> {
        let request = self.request;
        match name {
            b":method" => return Some(Cow::Borrowed(request.method)),
            b":path" => return Some(Cow::Borrowed(request.path)),
            b":authority" | b"host" => return self.host().map(Cow::Borrowed),
            _ => {}
        }
        let mut values = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value);
        let first = values.next()?;
        let Some(second) = values.next() else { return Some(Cow::Borrowed(first)) };
        // Only a repeated header allocates.
        let mut joined = [first, b",", second].concat();
        for value in values {
            joined.push(b',');
            joined.extend_from_slice(value);
        }
        Some(Cow::Owned(joined))
    }

    /// The claim at `path`, when there is a token.
    pub(crate) fn claim(&self, path: &[String]) -> Option<&'r Value> {
        self.identity.and_then(|identity| identity.claim(path))
    }
}

impl Rule {
    /// (any `to`) AND (all `when`) AND (any `from`); the request side first, as it is cheaper.
    pub(crate) fn matches(&self, attributes: &Attributes<'_, '_>) -> bool {
        let any = |alternatives: &Option<Vec<Vec<Check>>>| {
            alternatives.as_ref().is_none_or(|alternatives| {
                alternatives.iter().any(|checks| checks.iter().all(|c| c.holds(attributes)))
            })
        };
        any(&self.to) && self.when.iter().all(|c| c.holds(attributes)) && any(&self.from)
    }
}

impl Check {
    /// Whether the check holds: any value matches, or (negated) none does.
    pub(crate) fn holds(&self, attributes: &Attributes<'_, '_>) -> bool {
        self.test.any(attributes) != self.negated
    }
}

impl Test {
    /// Whether any value matches the request's attribute (false when it is absent).
    pub(crate) fn any(&self, attributes: &Attributes<'_, '_>) -> bool {
        let request = attributes.request;
        let connection = &request.connection;
        match self {
            Test::Peer(patterns) => connection
                .peer
                .as_ref()
                .is_some_and(|peer| patterns.iter().any(|p| p.matches_peer(peer))),
            Test::SourceIp(cidrs) => {
                connection.source_ip.is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
            }
            Test::RemoteIp(cidrs) => {
                connection.remote_ip.is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
            }
            Test::DestinationIp(cidrs) => {
                connection.destination_ip.is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
            }
            Test::DestinationPort(ports) => {
                connection.destination_port.is_some_and(|port| ports.contains(&port))
            }
            Test::Sni(patterns) => {
                connection.sni.is_some_and(|sni| patterns.iter().any(|p| p.matches(sni)))
            }
            Test::Host(patterns) => attributes
                .host()
                .is_some_and(|host| patterns.iter().any(|p| p.matches_ignore_case(host))),
            Test::Method(patterns) => patterns.iter().any(|p| p.matches(request.method)),
            Test::Path(patterns) => patterns.iter().any(|p| match p {
                PathPattern::Value(pattern) => pattern.matches(attributes.url_path),
                PathPattern::Template(template) => template.matches(attributes.url_path),
            }),
            Test::Header { name, patterns } => attributes
                .header(name)
                .is_some_and(|value| patterns.iter().any(|p| p.matches(&value))),
            Test::RequestPrincipal(patterns) => attributes.identity.is_some_and(|identity| {
                let subject = identity.subject.as_deref().map(str::as_bytes);
                patterns.iter().any(|p| p.matches(identity.issuer.as_bytes(), subject))
            }),
            Test::Claim { path, patterns } => {
                attributes.claim(path).is_some_and(|value| claim_matches(value, patterns))
            }
        }
    }

    /// The request's attribute for humans (`warden explain`).
    pub(crate) fn describe(&self, attributes: &Attributes<'_, '_>) -> String {
        let request = attributes.request;
        let connection = &request.connection;
        let ip = |ip: Option<std::net::IpAddr>| {
            ip.map_or_else(|| "absent".to_string(), |ip| ip.to_string())
        };
        match self {
            Test::Peer(_) => match &connection.peer {
                None => "no peer certificate (plaintext)".to_string(),
                Some(peer) => {
                    let mut names: Vec<String> = Vec::new();
                    names.extend(peer.uri_sans.iter().map(|s| format!("URI SAN {}", show(s))));
                    names.extend(peer.dns_sans.iter().map(|s| format!("DNS SAN {}", show(s))));
                    if let Some(subject) = peer.subject {
                        names.push(format!("subject {}", show(subject)));
                    }
                    if names.is_empty() {
                        "a peer certificate without SANs or subject".to_string()
                    } else {
                        names.join(", ")
                    }
                }
            },
            Test::SourceIp(_) => ip(connection.source_ip),
            Test::RemoteIp(_) => ip(connection.remote_ip),
            Test::DestinationIp(_) => ip(connection.destination_ip),
            Test::DestinationPort(_) => {
                connection.destination_port.map_or_else(|| "absent".into(), |p| p.to_string())
            }
            Test::Sni(_) => connection.sni.map_or_else(|| "absent".into(), show),
            Test::Host(_) => attributes.host().map_or_else(|| "absent".into(), show),
            Test::Method(_) => show(request.method),
            Test::Path(_) => show(attributes.url_path),
            Test::Header { name, .. } => {
                attributes.header(name).map_or_else(|| "absent".into(), |v| show(&v))
            }
            Test::RequestPrincipal(_) => match attributes.identity {
                None => "no token".to_string(),
                Some(identity) => match &identity.subject {
                    Some(sub) => format!("iss {:?}, sub {:?}", identity.issuer, sub),
                    None => format!("iss {:?}, no sub", identity.issuer),
                },
            },
            Test::Claim { path, .. } => match (attributes.identity, attributes.claim(path)) {
                (None, _) => "no token".to_string(),
                (Some(_), None) => "claim absent".to_string(),
                (Some(_), Some(value)) => value.to_string(),
            },
        }
    }
}

/// A claim matches as a string, or as a list containing a matching string; numbers, booleans
/// and objects never match (Istio `MetadataListValueMatcher` with `extended-jwt`).
fn claim_matches(value: &Value, patterns: &[Pattern]) -> bool {
    let string =
        |v: &Value| v.as_str().is_some_and(|s| patterns.iter().any(|p| p.matches(s.as_bytes())));
    match value {
        Value::Array(items) => items.iter().any(string),
        other => string(other),
    }
}
