//! Matching one validated rule against one request.
//!
//! Absent attributes follow Envoy: a positive matcher on an absent attribute is false, so a
//! negated one (`notX`, `notValues`) is true (ISTIO-SECURITY-2021-004 for the peer identity on
//! plaintext; a missing JWT or header for the rest).
//!
//! Unknown attributes fail closed. When Warden cannot learn an attribute (the direct peer's
//! address without the network filter, a certificate it cannot read) or cannot evaluate a
//! condition exactly (a `when` key it does not support), the check takes the value that
//! narrows: false in ALLOW rules, true in DENY and AUDIT rules, whether it is negated or not.
//! This is Istio's own rule for what it cannot translate ("an error narrows an ALLOW and
//! widens a DENY", `pilot/pkg/security/authz/builder/builder.go`), applied per request.

use serde_json::Value;

use super::matcher::{show, Pattern};
use super::policy::{Check, PathPattern, Rule, Test};
use crate::request::{Header, Identity, Observed, Request};

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

    /// Every value of a header, as Envoy 1.40's RBAC `HeaderMatcher` tries them: one value per
    /// entry of the header map, never joined (`matchesHeadersIndividually`, the fix of
    /// CVE-2026-26308 in `source/extensions/filters/common/rbac/matchers.cc`). Envoy itself joins
    /// repeated values of its inline headers (`x-forwarded-for`, …) into one entry before any
    /// filter runs, and the header map Warden reads has that entry as Envoy has it.
    /// Pseudo-headers (and `host`, Envoy's alias of `:authority`) come from the request line.
    pub(crate) fn header_values<'s>(&'s self, name: &'s [u8]) -> HeaderValues<'s, 'a> {
        let request = self.request;
        let single = match name {
            b":method" => Some(Some(request.method)),
            b":path" => Some(Some(request.path)),
            b":authority" | b"host" => Some(self.host()),
            _ => None,
        };
        match single {
            Some(value) => HeaderValues::One(value),
            None => HeaderValues::Entries { headers: request.headers.iter(), name },
        }
    }

    /// The claim at `path`, when there is a token.
    pub(crate) fn claim(&self, path: &[String]) -> Option<&'r Value> {
        self.identity.and_then(|identity| identity.claim(path))
    }
}

/// The values of one header, in the order received (see [`Attributes::header_values`]).
pub(crate) enum HeaderValues<'s, 'a> {
    /// A pseudo-header: at most one value.
    One(Option<&'a [u8]>),
    /// The header map's entries with this name.
    Entries { headers: std::slice::Iter<'s, Header<'a>>, name: &'s [u8] },
}

impl<'a> Iterator for HeaderValues<'_, 'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            HeaderValues::One(value) => value.take(),
            HeaderValues::Entries { headers, name } => {
                headers.find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, value)| *value)
            }
        }
    }
}

impl Rule {
    /// (any `to`) AND (all `when`) AND (any `from`); the request side first, as it is cheaper.
    /// `widen` is the value an unknown check takes: true in DENY and AUDIT rules, false in
    /// ALLOW rules (see the module's documentation).
    pub(crate) fn matches(&self, attributes: &Attributes<'_, '_>, widen: bool) -> bool {
        let any = |alternatives: &Option<Vec<Vec<Check>>>| {
            alternatives.as_ref().is_none_or(|alternatives| {
                alternatives.iter().any(|checks| checks.iter().all(|c| c.holds(attributes, widen)))
            })
        };
        any(&self.to) && self.when.iter().all(|c| c.holds(attributes, widen)) && any(&self.from)
    }
}

impl Check {
    /// Whether the check holds: any value matches, or (negated) none does; `widen` when the
    /// attribute is unknown.
    pub(crate) fn holds(&self, attributes: &Attributes<'_, '_>, widen: bool) -> bool {
        self.test.any(attributes).map_or(widen, |any| any != self.negated)
    }
}

/// `Some(any value matches)` for a known attribute, `Some(false)` for an absent one, `None`
/// for an unknown one.
fn observed<T>(value: Observed<T>, matches: impl FnOnce(T) -> bool) -> Option<bool> {
    match value {
        Observed::Known(value) => Some(matches(value)),
        Observed::Absent => Some(false),
        Observed::Unknown => None,
    }
}

impl Test {
    /// Whether any value matches the request's attribute: false when it is absent, `None` when
    /// it is unknown.
    pub(crate) fn any(&self, attributes: &Attributes<'_, '_>) -> Option<bool> {
        let request = attributes.request;
        let connection = &request.connection;
        let known = match self {
            Test::Peer(patterns) => {
                return observed(connection.peer, |peer| {
                    patterns.iter().any(|p| p.matches_peer(peer))
                })
            }
            Test::SourceIp(cidrs) => {
                return observed(connection.source_ip, |ip| cidrs.iter().any(|c| c.contains(ip)))
            }
            Test::Unsupported { .. } => return None,
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
                .header_values(name)
                .any(|value| patterns.iter().any(|p| p.matches(value))),
            Test::RequestPrincipal(patterns) => attributes.identity.is_some_and(|identity| {
                let subject = identity.subject.as_deref().map(str::as_bytes);
                patterns.iter().any(|p| p.matches(identity.issuer.as_bytes(), subject))
            }),
            Test::Claim { path, patterns } => {
                attributes.claim(path).is_some_and(|value| claim_matches(value, patterns))
            }
        };
        Some(known)
    }

    /// The request's attribute for humans (`warden explain`).
    pub(crate) fn describe(&self, attributes: &Attributes<'_, '_>) -> String {
        let request = attributes.request;
        let connection = &request.connection;
        let ip = |ip: Option<std::net::IpAddr>| {
            ip.map_or_else(|| "absent".to_string(), |ip| ip.to_string())
        };
        match self {
            Test::Peer(_) => match connection.peer {
                Observed::Absent => "no peer certificate (plaintext)".to_string(),
                Observed::Unknown => "the peer certificate could not be read".to_string(),
                Observed::Known(peer) => {
                    let mut names: Vec<String> = Vec::new();
                    names.extend(peer.uri_sans.iter().map(|s| format!("URI SAN {}", show(s))));
                    names.extend(peer.dns_sans.iter().map(|s| format!("DNS SAN {}", show(s))));
                    if let Some(subject) = &peer.subject {
                        names.push(format!("subject {}", show(subject)));
                    }
                    if names.is_empty() {
                        "a peer certificate without SANs or subject".to_string()
                    } else {
                        names.join(", ")
                    }
                }
            },
            Test::SourceIp(_) => match connection.source_ip {
                Observed::Known(address) => address.to_string(),
                Observed::Absent => "absent".to_string(),
                Observed::Unknown => {
                    "unknown: the direct peer's address was not handed over by Warden's network \
                     filter"
                        .to_string()
                }
            },
            Test::Unsupported { reason } => format!("not evaluated: {reason}"),
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
                let values: Vec<String> = attributes.header_values(name).map(show).collect();
                if values.is_empty() {
                    "absent".into()
                } else {
                    values.join(", ")
                }
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
