//! The audit record: one JSON object per decision, stored in filter state `warden_audit` for
//! Envoy's access log (`log.audit`), so it goes wherever the user's access logs go.
//!
//! It says who (the peer's principal and namespace from the verified certificate, the request
//! principal `iss/sub` from the verified token), from where, did what (method, host, path), and
//! what was decided by which policy and rule, with AUDIT and dry-run outcomes. Envoy's access
//! log adds what only it knows (time, final response code, duration): the playground's format
//! is in `envoy/backend.yaml`, the Istio `Telemetry` form in `observability/README.md`.
//!
//! What it never carries: a token, a claim other than `iss`/`sub`, any header value but the
//! request id, or the query string (tokens travel in query parameters, RFC 6750 §2.3). Every
//! value from the request is cut to a bound, so a record stays under about 2 KiB whatever the
//! request carries; JSON escaping is serde_json's.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::authz::{Action, Decision, DryRunAllow, Reason, RuleRef};
use crate::enforcer::{Cause, Enforcer, Verdict};
use crate::request::{Identity, Observed, Request};

/// Longest request id, method, host and path kept (bytes); longer values are cut with `…`.
const REQUEST_ID_LIMIT: usize = 128;
const METHOD_LIMIT: usize = 32;
const HOST_LIMIT: usize = 256;
const PATH_LIMIT: usize = 1024;
const PRINCIPAL_LIMIT: usize = 512;

/// The record's fields, in the order they are written. Absent values are left out.
#[derive(Serialize)]
struct Record {
    /// `allowed`, `denied` (authorization or the peer's certificate) or `unauthenticated`.
    decision: &'static str,
    /// Why, as a stable label: `allow_rule`, `no_policies`, `deny_rule`, `no_allow_rule`,
    /// `custom_rule`, `peer_<refusal>` or the token failure (`expired`, `signature_invalid`, …).
    reason: &'static str,
    /// Warden's local answer (401/403); absent when the request was forwarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// `<namespace>/<name>` of the policy whose rule decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    /// Envoy's name for that rule, `ns[<ns>]-policy[<name>]-rule[<i>]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    /// The first URI SAN of the verified client certificate, in Istio's principal form
    /// (`cluster.local/ns/web/sa/frontend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_principal: Option<String>,
    /// The `/ns/<namespace>/` segment of that principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_namespace: Option<String>,
    /// `<iss>/<sub>` of the verified token (never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    request_principal: Option<String>,
    /// `source.ip`: the direct peer (what `ipBlocks` match).
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<String>,
    /// `remote.ip`: the client address Envoy computed (what `remoteIpBlocks` match).
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_ip: Option<String>,
    method: String,
    host: String,
    /// The path without its query string or fragment.
    path: String,
    /// The AUDIT rule that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    audit: Option<String>,
    /// The dry-run DENY rule that would have denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run_deny: Option<String>,
    /// What the dry-run ALLOW policies would have done: the rule that matched, or `none_matched`.
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run_allow: Option<String>,
    /// Attributes the rules read that Warden could not learn (their rules failed closed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fail_closed: Vec<&'static str>,
    /// With `log.auditAttributes`: what `warden replay` needs to decide the request again.
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<Attributes>,
}

/// Longest header value and claim (as JSON) kept for replay, and most values of one header.
const HEADER_VALUE_LIMIT: usize = 512;
const HEADER_VALUES_LIMIT: usize = 16;
const CLAIM_LIMIT: usize = 1024;

/// The request's attributes beyond the record's own fields, as the module saw them.
#[derive(Serialize)]
struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<String>,
    /// Every name of the verified client certificate (RBAC's principals), absent on plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<PeerNames>,
    /// The peer certificate was there but could not be read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    peer_unknown: bool,
    /// Every header the workload's rules name, with all its values in order (`[]`: absent).
    headers: BTreeMap<String, Vec<String>>,
    /// The verified token's identity, with the claims the rules read (`null`: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<Token>,
    /// A value was longer than its bound and was cut (or a claim left out): replay cannot
    /// decide this request exactly.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cut: bool,
}

#[derive(Serialize)]
struct PeerNames {
    uri_sans: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dns_sans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

/// Most SANs of one kind kept.
const SANS_LIMIT: usize = 8;

#[derive(Serialize)]
struct Token {
    iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    claims: BTreeMap<String, Value>,
}

fn attributes(
    enforcer: &Enforcer,
    request: &Request<'_>,
    identity: Option<&Identity>,
) -> Attributes {
    let reads = enforcer.authz().reads();
    let connection = &request.connection;
    let mut cut = request.method.len() > METHOD_LIMIT
        || request.host.len() > HOST_LIMIT
        || without_query(request.path).len() > PATH_LIMIT;
    let mut headers = BTreeMap::new();
    for name in &reads.headers {
        let mut values = Vec::new();
        for value in request.header_values(name) {
            if values.len() == HEADER_VALUES_LIMIT {
                cut = true;
                break;
            }
            cut |= value.len() > HEADER_VALUE_LIMIT;
            values.push(text(value, HEADER_VALUE_LIMIT));
        }
        headers.insert(String::from_utf8_lossy(name).into_owned(), values);
    }
    let token = identity.map(|identity| {
        let mut claims = BTreeMap::new();
        for name in &reads.claims {
            let value = identity.claims.get(name).cloned().unwrap_or(Value::Null);
            if serde_json::to_string(&value).map_or(true, |json| json.len() > CLAIM_LIMIT) {
                cut = true;
                continue;
            }
            claims.insert(name.clone(), value);
        }
        cut |= identity.issuer.len() > PRINCIPAL_LIMIT;
        Token {
            iss: text(identity.issuer.as_bytes(), PRINCIPAL_LIMIT),
            sub: identity.subject.as_deref().map(|s| text(s.as_bytes(), PRINCIPAL_LIMIT)),
            claims,
        }
    });
    let sni = connection.sni.map(|sni| {
        cut |= sni.len() > HOST_LIMIT;
        text(sni, HOST_LIMIT)
    });
    let peer = match connection.peer {
        Observed::Known(peer) => {
            let lists = [&peer.uri_sans, &peer.dns_sans];
            cut |= lists.iter().any(|l| l.len() > SANS_LIMIT)
                || peer.names().any(|name| name.len() > PRINCIPAL_LIMIT);
            let names = |list: &[Vec<u8>]| {
                list.iter().take(SANS_LIMIT).map(|n| text(n, PRINCIPAL_LIMIT)).collect()
            };
            Some(PeerNames {
                uri_sans: names(&peer.uri_sans),
                dns_sans: names(&peer.dns_sans),
                subject: peer.subject.as_deref().map(|s| text(s, PRINCIPAL_LIMIT)),
            })
        }
        Observed::Absent | Observed::Unknown => None,
    };
    Attributes {
        peer,
        peer_unknown: matches!(connection.peer, Observed::Unknown),
        destination_ip: connection.destination_ip.map(|ip| ip.to_string()),
        port: connection.destination_port,
        sni,
        headers,
        token,
        cut,
    }
}

/// The audit record of a decision, as one line of JSON (`None` while the request waits).
pub fn record(
    enforcer: &Enforcer,
    verdict: &Verdict,
    request: &Request<'_>,
    with_attributes: bool,
) -> Option<String> {
    // `custom`: the CUSTOM rule whose external authorizer refused, which decided.
    let (decision, reason, status, authz, identity, custom) = match verdict {
        Verdict::Wait { .. } => return None,
        Verdict::Allow(allow) => (
            "allowed",
            reason(enforcer, &allow.decision),
            None,
            Some(&allow.decision),
            allow.identity.as_deref(),
            None,
        ),
        Verdict::Deny(deny) => match &deny.cause {
            Cause::Unauthorized(decision) => (
                "denied",
                reason(enforcer, decision),
                Some(deny.status),
                Some(decision),
                deny.identity.as_deref(),
                None,
            ),
            Cause::Peer(refusal) => {
                ("denied", refusal.audit_label(), Some(deny.status), None, None, None)
            }
            Cause::Unauthenticated(failure) => {
                ("unauthenticated", failure.reason().label(), Some(deny.status), None, None, None)
            }
            Cause::Custom { rule, error, decision } => (
                "denied",
                if *error { "custom_error" } else { "custom_denied" },
                Some(deny.status),
                Some(decision),
                deny.identity.as_deref(),
                Some(*rule),
            ),
        },
    };
    let deciding = custom.or_else(|| {
        authz.and_then(|d| match d.reason {
            Reason::AllowedBy(rule) | Reason::DeniedBy(rule) => Some(rule),
            Reason::NoPolicies | Reason::NoAllowMatched => None,
        })
    });
    let rule_id = |rule: RuleRef| enforcer.rule_id(rule);
    let connection = &request.connection;
    let peer_principal = match connection.peer {
        Observed::Known(peer) => peer.uri_sans.first().map(|san| {
            let san = san.strip_prefix(b"spiffe://").unwrap_or(san);
            text(san, PRINCIPAL_LIMIT)
        }),
        Observed::Absent | Observed::Unknown => None,
    };
    let record = Record {
        decision,
        reason,
        status,
        policy: deciding.and_then(|rule| policy_name(enforcer, rule)),
        rule: deciding.map(rule_id),
        request_id: request
            .header_values(b"x-request-id")
            .next()
            .map(|v| text(v, REQUEST_ID_LIMIT)),
        peer_namespace: peer_principal.as_deref().and_then(namespace_of).map(str::to_string),
        peer_principal,
        request_principal: identity
            .and_then(Identity::principal)
            .map(|p| text(p.as_bytes(), PRINCIPAL_LIMIT)),
        source_ip: connection.source_ip.known().map(|ip| ip.to_string()),
        remote_ip: connection.remote_ip.map(|ip| ip.to_string()),
        method: text(request.method, METHOD_LIMIT),
        host: text(request.host, HOST_LIMIT),
        path: text(without_query(request.path), PATH_LIMIT),
        audit: authz.and_then(|d| d.audit).map(rule_id),
        dry_run_deny: authz.and_then(|d| d.dry_run_deny).map(rule_id),
        dry_run_allow: authz.and_then(dry_run_allow).map(|allow| match allow {
            Some(rule) => rule_id(rule),
            None => "none_matched".to_string(),
        }),
        fail_closed: authz.map(|d| d.unknowns.labels().collect()).unwrap_or_default(),
        attributes: with_attributes.then(|| attributes(enforcer, request, identity)),
    };
    serde_json::to_string(&record).ok()
}

/// `Some(Some(rule))` when a dry-run ALLOW rule matched, `Some(None)` when none did.
fn dry_run_allow(decision: &Decision) -> Option<Option<RuleRef>> {
    match decision.dry_run_allow {
        DryRunAllow::NotConfigured => None,
        DryRunAllow::Matched(rule) => Some(Some(rule)),
        DryRunAllow::NoneMatched => Some(None),
    }
}

/// The record's `reason` for an authorization decision (`warden replay` labels its own
/// decisions with it, so both sides of a comparison speak the same words).
pub fn reason(enforcer: &Enforcer, decision: &Decision) -> &'static str {
    match decision.reason {
        Reason::AllowedBy(_) => "allow_rule",
        Reason::NoPolicies => "no_policies",
        Reason::DeniedBy(rule) if is_custom(enforcer, rule) => "custom_rule",
        Reason::DeniedBy(_) => "deny_rule",
        Reason::NoAllowMatched => "no_allow_rule",
    }
}

fn is_custom(enforcer: &Enforcer, rule: RuleRef) -> bool {
    let policies = enforcer.authz().policies();
    usize::try_from(rule.policy)
        .ok()
        .and_then(|i| policies.get(i))
        .is_some_and(|p| p.action == Action::Custom)
}

/// `<namespace>/<name>` of the policy a rule belongs to.
pub fn policy_name(enforcer: &Enforcer, rule: RuleRef) -> Option<String> {
    let policies = enforcer.authz().policies();
    let policy = usize::try_from(rule.policy).ok().and_then(|i| policies.get(i))?;
    Some(format!("{}/{}", policy.namespace, policy.name))
}

/// `web` in `cluster.local/ns/web/sa/frontend`.
fn namespace_of(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/ns/")?;
    let namespace = rest.split('/').next()?;
    (!namespace.is_empty()).then_some(namespace)
}

fn without_query(path: &[u8]) -> &[u8] {
    let end = path.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// Request bytes as record text: invalid UTF-8 replaced, cut at `limit` bytes on a character
/// boundary.
fn text(bytes: &[u8], limit: usize) -> String {
    let cut = bytes.get(..limit).unwrap_or(bytes);
    let mut out = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > limit {
        // A multi-byte character split by the cut became U+FFFD: drop it.
        if out.ends_with('\u{FFFD}') {
            out.pop();
        }
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_come_from_the_ns_segment() {
        assert_eq!(namespace_of("cluster.local/ns/web/sa/frontend"), Some("web"));
        assert_eq!(namespace_of("cluster.local/ns//sa/x"), None);
        assert_eq!(namespace_of("example.com/x"), None);
    }

    #[test]
    fn query_and_fragment_never_reach_the_record() {
        assert_eq!(without_query(b"/a?access_token=secret"), b"/a");
        assert_eq!(without_query(b"/a#frag?x"), b"/a");
        assert_eq!(without_query(b"/a"), b"/a");
    }

    #[test]
    fn long_and_invalid_values_are_cut_and_replaced() {
        assert_eq!(text(b"abcdef", 3), "abc…");
        assert_eq!(text(b"ab\xff", 8), "ab\u{FFFD}");
        assert_eq!(text("aé".as_bytes(), 2), "a…");
    }
}
