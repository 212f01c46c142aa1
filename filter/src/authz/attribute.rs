//! `when` condition keys, as Istio parses them.
//!
//! The list is Istio's (`pilot/pkg/security/authz/model/model.go`, validated by
//! `pkg/config/security/security.go` `ValidateAttribute`; documented at
//! <https://istio.io/latest/docs/reference/config/security/conditions/>). Unknown and removed
//! keys are errors. Map keys are parsed with Istio's own bracket rules
//! (`pilot/pkg/security/authz/model/util.go` `extractNameInBrackets`,
//! `extractNameInNestedBrackets`); where Istio's validation would accept a key its generator
//! then fails on (so that the rule is silently dropped), Warden refuses the key instead.

use super::PolicyProblem;

/// The attribute a `when` condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attribute {
    /// `request.headers[<name>]`; the name is lower-cased (Envoy header names are).
    RequestHeader(Box<[u8]>),
    /// `source.ip`: the direct peer address.
    SourceIp,
    /// `remote.ip`: the original client address.
    RemoteIp,
    /// `source.namespace` (mTLS).
    SourceNamespace,
    /// `source.serviceAccount` (mTLS).
    SourceServiceAccount,
    /// `source.principal` (mTLS).
    SourcePrincipal,
    /// `source.trustDomain` (mTLS).
    SourceTrustDomain,
    /// `request.auth.principal`.
    RequestPrincipal,
    /// `request.auth.audiences`: the `aud` claim.
    RequestAudiences,
    /// `request.auth.presenter`: the `azp` claim.
    RequestPresenter,
    /// `request.auth.claims[a][b]…`: the path into the payload.
    RequestClaim(Box<[String]>),
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `connection.sni`.
    ConnectionSni,
    /// `experimental.envoy.filters.<filter>[<key>]`: Envoy dynamic metadata written by another
    /// filter, which a Wasm filter cannot read. Istio accepts the key, so a policy with it is
    /// valid; Warden cannot evaluate it exactly, so it fails closed (`eval.rs`).
    EnvoyMetadata,
}

const HEADERS: &str = "request.headers";
const CLAIMS: &str = "request.auth.claims";

/// Where the glue gets an attribute from Envoy. The compiled rules of a workload name the
/// channels they read ([`super::Needs`]), and the glue asks Envoy for those only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The verified client certificate (or, with `peerIdentity: xfcc`, the XFCC header).
    PeerCertificate,
    /// The TCP peer, handed over by a network filter.
    DirectPeer,
    /// `source.address`: the client address Envoy derived.
    RemoteAddress,
    /// The request's header map, always read (`:method`, `:path`, `:authority` are in it).
    HeaderMap,
    /// `destination.address`.
    DestinationAddress,
    /// `destination.port`.
    DestinationPort,
    /// `connection.requested_server_name`.
    Sni,
    /// The token Warden verified.
    Token,
}

/// One row of the attribute table: an Istio attribute, what istiod generates for it, where
/// Warden reads it and how it matches. `docs/compatibility.md#request-attributes` is this
/// table (a test renders it and compares).
#[derive(Debug)]
pub struct AttributeInfo {
    /// The `from`/`to` fields and `when` keys that read it.
    pub istio: &'static str,
    /// The Envoy RBAC principal or permission istiod generates.
    pub envoy: &'static str,
    /// Where the glue reads it.
    pub channel: Channel,
    /// What Warden reads, in the words of Envoy's attributes.
    pub reads: &'static str,
    /// How its values match.
    pub matching: &'static str,
}

/// Every request attribute Warden decides on.
pub const ATTRIBUTES: &[AttributeInfo] = &[
    AttributeInfo {
        istio:
            "`principals`, `namespaces`, `serviceAccounts`, `trustDomains`, `source.principal`, …",
        envoy: "`authenticated` over every URI SAN, every DNS SAN, then the subject",
        channel: Channel::PeerCertificate,
        reads: "the verified certificate (`connection.peer_certificate`, parsed; \
                `connection.subject_peer_certificate`), read once per connection; or, with \
                `peerIdentity: xfcc`, the last `x-forwarded-client-cert` element",
        matching: "[peer identity](#peer-identity)",
    },
    AttributeInfo {
        istio: "`ipBlocks`, `source.ip`",
        envoy: "`direct_remote_ip`: the TCP peer",
        channel: Channel::DirectPeer,
        reads: "handed over by a network filter, read once per connection",
        matching: "[addresses](#addresses)",
    },
    AttributeInfo {
        istio: "`remoteIpBlocks`, `remote.ip`",
        envoy: "`remote_ip`: the client address Envoy derived",
        channel: Channel::RemoteAddress,
        reads: "`source.address`, per request",
        matching: "[addresses](#addresses)",
    },
    AttributeInfo {
        istio: "`request.headers[...]`",
        envoy: "`header` (`HeaderMatcher`)",
        channel: Channel::HeaderMap,
        reads: "the header map (one host call per request)",
        matching: "each value of a repeated header on its own ([headers](#headers))",
    },
    AttributeInfo {
        istio: "`methods`",
        envoy: "`header` on `:method`",
        channel: Channel::HeaderMap,
        reads: "the header map",
        matching: "exact, prefix, suffix, `*` = present",
    },
    AttributeInfo {
        istio: "`hosts`",
        envoy: "`header` on `:authority`, `ignore_case`",
        channel: Channel::HeaderMap,
        reads: "the header map",
        matching: "case-insensitive; the port is part of the value",
    },
    AttributeInfo {
        istio: "`paths`",
        envoy: "`url_path` (query and fragment dropped) or `uri_template`",
        channel: Channel::HeaderMap,
        reads: "the header map",
        matching: "Envoy's string and path-template matchers",
    },
    AttributeInfo {
        istio: "`ports`, `destination.port`",
        envoy: "`destination_port`",
        channel: Channel::DestinationPort,
        reads: "`destination.port`, read once per connection",
        matching: "exact",
    },
    AttributeInfo {
        istio: "`destination.ip`",
        envoy: "`destination_ip`",
        channel: Channel::DestinationAddress,
        reads: "`destination.address`, read once per connection",
        matching: "CIDR",
    },
    AttributeInfo {
        istio: "`connection.sni`",
        envoy: "`requested_server_name`",
        channel: Channel::Sni,
        reads: "`connection.requested_server_name`, read once per connection",
        matching: "string matcher",
    },
    AttributeInfo {
        istio: "`requestPrincipals`, `request.auth.*`",
        envoy: "metadata from `jwt_authn`",
        channel: Channel::Token,
        reads: "the verified token",
        matching: "string, or a list containing a matching string",
    },
];

/// The `when` keys without brackets, and what each reads.
pub(crate) const FIXED_KEYS: &[(&str, Attribute)] = &[
    ("source.ip", Attribute::SourceIp),
    ("remote.ip", Attribute::RemoteIp),
    ("source.namespace", Attribute::SourceNamespace),
    ("source.serviceAccount", Attribute::SourceServiceAccount),
    ("source.principal", Attribute::SourcePrincipal),
    ("source.trustDomain", Attribute::SourceTrustDomain),
    ("request.auth.principal", Attribute::RequestPrincipal),
    ("request.auth.audiences", Attribute::RequestAudiences),
    ("request.auth.presenter", Attribute::RequestPresenter),
    ("destination.ip", Attribute::DestinationIp),
    ("destination.port", Attribute::DestinationPort),
    ("connection.sni", Attribute::ConnectionSni),
];

impl Attribute {
    /// Parses a `when` key.
    pub(crate) fn parse(key: &str) -> Result<Attribute, PolicyProblem> {
        if let Some((_, attribute)) = FIXED_KEYS.iter().find(|(fixed, _)| *fixed == key) {
            return Ok(attribute.clone());
        }
        let attribute = match key {
            "destination.namespace" => {
                return Err(removed(key, "it is replaced by the policy's metadata.namespace"))
            }
            "destination.name" | "destination.user" => {
                return Err(removed(key, "it was only supported in v1alpha1"))
            }
            _ if key.starts_with("destination.labels") => {
                return Err(removed(key, "it is replaced by the workload selector"))
            }
            _ if key.starts_with("experimental.envoy.filters.") => {
                // Istio `validateMapKey`: `a[b]` with a non-empty name before the bracket.
                let open = key.find('[').unwrap_or(0);
                if !(key.ends_with(']') && open > 0 && open + 2 < key.len()) {
                    return Err(PolicyProblem::MalformedKey {
                        key: key.to_string(),
                        expected: "experimental.envoy.filters.<filter>[<key>]",
                    });
                }
                Attribute::EnvoyMetadata
            }
            _ if key.starts_with(HEADERS) => {
                let name = single_bracket(key.get(HEADERS.len()..).unwrap_or_default())
                    .filter(|name| !name.is_empty())
                    .ok_or_else(|| PolicyProblem::MalformedKey {
                        key: key.to_string(),
                        expected: "request.headers[<header-name>]",
                    })?;
                Attribute::RequestHeader(name.to_ascii_lowercase().into_bytes().into())
            }
            _ if key.starts_with(CLAIMS) => {
                let path = nested_brackets(key.get(CLAIMS.len()..).unwrap_or_default())
                    .filter(|path| !path.is_empty() && path.iter().all(|k| !k.is_empty()))
                    .ok_or_else(|| PolicyProblem::MalformedKey {
                        key: key.to_string(),
                        expected: "request.auth.claims[<claim>] or request.auth.claims[<claim>][<nested>]…",
                    })?;
                Attribute::RequestClaim(path.into())
            }
            _ => return Err(PolicyProblem::UnknownKey(key.to_string())),
        };
        Ok(attribute)
    }
}

/// Whether Istio's validation accepts a map-style key (`request.headers[...]`,
/// `request.auth.claims[...]`): istio/istio `pkg/config/security/security.go` `validateMapKey`,
/// a `]` at the end and a non-empty name in brackets after some prefix.
pub(crate) fn istio_accepts_key(key: &str) -> bool {
    let mapped = key.starts_with(HEADERS) || key.starts_with(CLAIMS);
    let open = key.find('[').unwrap_or(0);
    mapped && key.ends_with(']') && open > 0 && open + 2 < key.len()
}

fn removed(key: &str, hint: &'static str) -> PolicyProblem {
    PolicyProblem::RemovedKey { key: key.to_string(), hint }
}

/// `[name]` → `name` (Istio `extractNameInBrackets`).
fn single_bracket(s: &str) -> Option<String> {
    s.strip_prefix('[')?.strip_suffix(']').map(str::to_string)
}

/// `[a][b.c]` → `["a", "b.c"]` (Istio `extractNameInNestedBrackets`): each `[...]` without an
/// inner `[` is one key; anything else falls back to a single `[...]`.
fn nested_brackets(s: &str) -> Option<Vec<String>> {
    let bytes = s.as_bytes();
    let end_of = |begin: usize| -> Option<usize> {
        if bytes.get(begin) != Some(&b'[') {
            return None;
        }
        for (i, &b) in bytes.iter().enumerate().skip(begin + 1) {
            match b {
                b'[' => return None,
                b']' => return Some(i),
                _ => {}
            }
        }
        None
    };
    let mut keys = Vec::new();
    let mut begin = 0;
    while begin < bytes.len() {
        match end_of(begin) {
            Some(end) => {
                keys.push(s.get(begin + 1..end)?.to_string());
                begin = end + 1;
            }
            None => return single_bracket(s).map(|key| vec![key]),
        }
    }
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// `docs/compatibility.md#request-attributes` is [`ATTRIBUTES`], row for row.
    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn the_documented_table_is_the_attribute_table() {
        let docs = include_str!("../../../docs/compatibility.md");
        let rows: Vec<String> = ATTRIBUTES
            .iter()
            .map(|a| format!("| {} | {} | {} | {} |", a.istio, a.envoy, a.reads, a.matching))
            .collect();
        let documented: Vec<&str> = docs
            .split("## Request attributes")
            .nth(1)
            .and_then(|section| section.split("\n### ").next())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with("| `"))
            .collect();
        assert_eq!(
            documented,
            rows,
            "docs/compatibility.md#request-attributes should read:\n{}",
            rows.join("\n")
        );
    }

    #[test]
    fn headers_are_lower_cased() {
        assert_eq!(
            Attribute::parse("request.headers[X-Token]"),
            Ok(Attribute::RequestHeader(b"x-token".to_vec().into()))
        );
    }

    #[test]
    fn claims_nest_with_brackets_only() {
        let path = |key: &str| match Attribute::parse(key) {
            Ok(Attribute::RequestClaim(path)) => path.to_vec(),
            other => panic!("{other:?}"),
        };
        assert_eq!(path("request.auth.claims[groups]"), vec!["groups"]);
        assert_eq!(path("request.auth.claims[a][b]"), vec!["a", "b"]);
        assert_eq!(path("request.auth.claims[a.b]"), vec!["a.b"]);
        assert_eq!(path("request.auth.claims[foo.com/name]"), vec!["foo.com/name"]);
        assert_eq!(path("request.auth.claims[a[b]]"), vec!["a[b]"]);
    }

    #[test]
    fn malformed_and_unknown_keys_are_refused() {
        for key in [
            "request.headers",
            "request.headers[]",
            "request.headersX[a]",
            "request.auth.claims",
            "request.auth.claims[]",
            "request.auth.claims[a]x",
            "request.auth.claims[a][]",
        ] {
            assert!(
                matches!(Attribute::parse(key), Err(PolicyProblem::MalformedKey { .. })),
                "{key}"
            );
        }
        assert!(matches!(Attribute::parse("source.foo"), Err(PolicyProblem::UnknownKey(_))));
        assert!(matches!(
            Attribute::parse("destination.labels[app]"),
            Err(PolicyProblem::RemovedKey { .. })
        ));
        assert_eq!(
            Attribute::parse("experimental.envoy.filters.a[b]"),
            Ok(Attribute::EnvoyMetadata)
        );
        assert!(matches!(
            Attribute::parse("experimental.envoy.filters.a[]"),
            Err(PolicyProblem::MalformedKey { .. })
        ));
    }
}
