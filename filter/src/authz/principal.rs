//! Identities: the peer's SPIFFE ID (mTLS) and the JWT principal, matched as Istio compiles them.
//!
//! Peer fields become Envoy `authenticated.principal_name` matchers
//! (`pilot/pkg/security/authz/model/generator.go`), which Envoy checks against every URI SAN,
//! then every DNS SAN, then the subject of the client certificate
//! (`source/extensions/filters/common/rbac/matchers.cc` `AuthenticatedMatcher`). A plaintext
//! request has no certificate: every positive peer matcher is false.
//!
//! - `principals`: `spiffe://` + value (exact, `prefix*`, `*suffix` as the regex
//!   `spiffe://.*suffix`, `*` as `.+`), after `trustdomain.Bundle.ReplaceTrustDomainAliases`
//!   (`cluster.local` and the aliases stand for every trust domain of the mesh).
//! - `namespaces`: the regex `.*/ns/<value, * → .*>/.*`.
//! - `serviceAccounts`: the regex `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`.
//! - `trustDomains`: prefix `spiffe://<td>/`, `*` as prefix `spiffe://`, `p*`/`*s` as the regex
//!   `spiffe://p[^/]*s/.*`, after `ExpandTrustDomainAliases`.
//!
//! Regex `.` never matches a newline (RE2). Identity values with control characters are
//! refused at validation, so a newline in a certificate can only ever fall in a `.` gap.

use super::matcher::{non_empty_line, Pattern};
use super::Mesh;
use crate::request::Peer;

const SPIFFE: &[u8] = b"spiffe://";

/// One value of a peer-identity field, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerPattern {
    /// `*`: any non-empty identity (`.+`).
    NonEmpty,
    /// `spiffe://<value>` exactly.
    Exact(Box<[u8]>),
    /// Starts with the bytes (`spiffe://<value>` for principals and trust domains).
    Prefix(Box<[u8]>),
    /// `spiffe://.*<suffix>`.
    SpiffeSuffix(Box<[u8]>),
    /// `.*` + literals joined by `.*` + `.*`: `/ns/<part0>`, `<part1>`, …, `<partN>/`.
    Namespace(Box<[Box<[u8]>]>),
    /// `spiffe://.+/ns/<namespace>/(.+/|)sa/<name>(/.+)?`.
    ServiceAccount {
        /// `/ns/<namespace>/` (the policy's namespace when the value has none).
        namespace_segment: Box<[u8]>,
        /// `sa/<name>`.
        account_segment: Box<[u8]>,
    },
    /// `spiffe://<prefix>[^/]*<suffix>/.*`.
    TrustDomainWildcard {
        /// Before the `*`.
        prefix: Box<[u8]>,
        /// After the `*`.
        suffix: Box<[u8]>,
    },
}

impl PeerPattern {
    /// Whether the verified peer certificate matches: any URI SAN, any DNS SAN, or the subject.
    pub(crate) fn matches_peer(&self, peer: &Peer) -> bool {
        peer.uri_sans.iter().chain(peer.dns_sans.iter()).any(|name| self.matches(name))
            || self.matches(peer.subject.as_deref().unwrap_or_default())
    }

    /// Whether one identity string (a SAN or the subject) matches.
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        match self {
            PeerPattern::NonEmpty => non_empty_line(name),
            PeerPattern::Exact(exact) => name == &**exact,
            PeerPattern::Prefix(prefix) => name.starts_with(prefix),
            PeerPattern::SpiffeSuffix(suffix) => {
                name.len() >= SPIFFE.len() + suffix.len()
                    && name.starts_with(SPIFFE)
                    && name.ends_with(suffix)
                    && name
                        .get(SPIFFE.len()..name.len() - suffix.len())
                        .is_some_and(|gap| !gap.contains(&b'\n'))
            }
            PeerPattern::Namespace(literals) => {
                !name.contains(&b'\n') && contains_in_order(name, literals)
            }
            PeerPattern::ServiceAccount { namespace_segment, account_segment } => {
                service_account_matches(name, namespace_segment, account_segment)
            }
            PeerPattern::TrustDomainWildcard { prefix, suffix } => {
                let Some(rest) = name.strip_prefix(SPIFFE) else { return false };
                let Some(slash) = rest.iter().position(|&b| b == b'/') else { return false };
                let (domain, path) = rest.split_at(slash);
                domain.len() >= prefix.len() + suffix.len()
                    && domain.starts_with(prefix)
                    && domain.ends_with(suffix)
                    && !path.contains(&b'\n')
            }
        }
    }

    /// The namespace this pattern requires as a whole `/ns/<namespace>/` segment, if it has one
    /// without `/`: what the index keys on.
    pub(crate) fn required_namespace(&self) -> Option<&[u8]> {
        let namespace: &[u8] = match self {
            PeerPattern::Namespace(literals) => match &**literals {
                [only] => only.strip_prefix(b"/ns/")?.strip_suffix(b"/")?,
                _ => return None,
            },
            PeerPattern::ServiceAccount { namespace_segment, .. } => {
                namespace_segment.strip_prefix(b"/ns/")?.strip_suffix(b"/")?
            }
            _ => return None,
        };
        (!namespace.is_empty() && !namespace.contains(&b'/')).then_some(namespace)
    }
}

/// Whether `literals` occur in `text` in order, without overlapping (the leftmost occurrence of
/// each is always the best choice when the gaps may hold anything).
fn contains_in_order(text: &[u8], literals: &[Box<[u8]>]) -> bool {
    let mut rest = text;
    for literal in literals {
        match find(rest, literal) {
            Some(at) => rest = rest.get(at + literal.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

/// The first position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Every position of `needle` in `haystack` (overlapping occurrences included).
fn positions<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len().max(1))
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// `spiffe://.+` + `ns_segment` + `(.+/|)` + `sa_segment` + `(/.+)?`, full match, `.`
/// excluding newline. Linear in the name: the leftmost namespace segment (after at least one
/// character) is always the best choice, since any service-account segment that fits after a
/// later one also fits after it (segments end with `/` and cannot overlap by one byte).
fn service_account_matches(name: &[u8], ns_segment: &[u8], sa_segment: &[u8]) -> bool {
    // The literals cannot hold a newline (validation), so any newline falls in a `.` gap.
    if name.contains(&b'\n') {
        return false;
    }
    let Some(rest) = name.strip_prefix(SPIFFE) else { return false };
    let Some(ns_at) = positions(rest, ns_segment).find(|&at| at >= 1) else { return false };
    let after = rest.get(ns_at + ns_segment.len()..).unwrap_or_default();
    positions(after, sa_segment).any(|sa_at| {
        let middle_ok = sa_at == 0 || (sa_at >= 2 && after.get(sa_at - 1) == Some(&b'/'));
        let tail = after.get(sa_at + sa_segment.len()..).unwrap_or_default();
        let tail_ok = tail.is_empty() || (tail.len() >= 2 && tail.first() == Some(&b'/'));
        middle_ok && tail_ok
    })
}

/// `principals` (and `source.principal`): the values after the trust-domain rewrite, compiled.
pub(crate) fn principal_patterns(value: &str, mesh: &Mesh) -> Vec<PeerPattern> {
    replace_trust_domain_aliases(value, mesh)
        .iter()
        .map(|principal| match Pattern::string(principal) {
            Pattern::NonEmpty | Pattern::Present => PeerPattern::NonEmpty,
            Pattern::Exact(exact) => PeerPattern::Exact([SPIFFE, &exact].concat().into()),
            Pattern::Prefix(prefix) => PeerPattern::Prefix([SPIFFE, &prefix].concat().into()),
            Pattern::Suffix(suffix) => PeerPattern::SpiffeSuffix(suffix),
        })
        .collect()
}

/// Istio `trustdomain.Bundle.ReplaceTrustDomainAliases` for one principal: a value of the form
/// `<td>/ns/<ns>/sa/<sa>` whose trust domain is `cluster.local`, the mesh's trust domain or one
/// of its aliases (or a pattern matching one) stands for the same identity in every trust
/// domain of the mesh.
pub(crate) fn replace_trust_domain_aliases(principal: &str, mesh: &Mesh) -> Vec<String> {
    let parts: Vec<&str> = principal.split('/').collect();
    let (Some(&domain), 5) = (parts.first(), parts.len()) else {
        return vec![principal.to_string()];
    };
    if domain == "*" {
        return vec![principal.to_string()];
    }
    let known = domain == "cluster.local"
        || mesh.trust_domains().any(|td| {
            domain == td
                || td == "*"
                || prefix_match(domain, td)
                || prefix_match(td, domain)
                || suffix_match(domain, td)
                || suffix_match(td, domain)
        });
    if !known {
        return vec![principal.to_string()];
    }
    let rest = parts.get(1..).unwrap_or_default().join("/");
    let mut out: Vec<String> = Vec::new();
    for td in mesh.trust_domains() {
        let rewritten =
            if suffix_match(td, domain) { principal.to_string() } else { format!("{td}/{rest}") };
        if !out.contains(&rewritten) {
            out.push(rewritten);
        }
    }
    out
}

/// Istio `trustdomain.prefixMatch`: `pattern` ends with `*` and `a` starts with the rest.
fn prefix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_suffix('*').is_some_and(|prefix| a.starts_with(prefix))
}

/// Istio `trustdomain.suffixMatch`: `pattern` starts with `*` and `a` ends with the rest.
fn suffix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|suffix| a.ends_with(suffix))
}

/// `namespaces` (and `source.namespace`).
pub(crate) fn namespace_pattern(value: &str) -> PeerPattern {
    let parts: Vec<&str> = value.split('*').collect();
    let last = parts.len().saturating_sub(1);
    let literals = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut literal = Vec::new();
            if i == 0 {
                literal.extend_from_slice(b"/ns/");
            }
            literal.extend_from_slice(part.as_bytes());
            if i == last {
                literal.push(b'/');
            }
            literal.into_boxed_slice()
        })
        .collect();
    PeerPattern::Namespace(literals)
}

/// `serviceAccounts` (and `source.serviceAccount`): `name` in the policy's namespace, or
/// `namespace/name`. The value was validated by [`check_service_account`].
pub(crate) fn service_account_pattern(value: &str, policy_namespace: &str) -> PeerPattern {
    let (namespace, name) = value.split_once('/').unwrap_or((policy_namespace, value));
    PeerPattern::ServiceAccount {
        namespace_segment: [b"/ns/", namespace.as_bytes(), b"/"].concat().into(),
        account_segment: [b"sa/", name.as_bytes()].concat().into(),
    }
}

/// Istio `security.CheckServiceAccount` for one value (the count is checked by the caller).
pub(crate) fn check_service_account(value: &str) -> Result<(), String> {
    if value.contains('*') {
        return Err("wildcards are not allowed".into());
    }
    if value.len() > 320 {
        return Err("cannot exceed 320 characters".into());
    }
    match value.split_once('/') {
        Some((namespace, name)) => {
            if name.contains('/') {
                Err("expected format 'serviceAccount' or 'namespace/serviceAccount'".into())
            } else if namespace.is_empty() {
                Err("empty namespace: expected 'namespace/serviceAccount'".into())
            } else if name.is_empty() {
                Err("empty service account: expected 'namespace/serviceAccount'".into())
            } else {
                Ok(())
            }
        }
        None => Ok(()),
    }
}

/// `trustDomains` (and `source.trustDomain`), after `ExpandTrustDomainAliases`.
pub(crate) fn trust_domain_patterns(value: &str, mesh: &Mesh) -> Vec<PeerPattern> {
    let expanded: Vec<&str> = if mesh.trust_domains().any(|td| td == value) {
        mesh.trust_domains().collect()
    } else {
        vec![value]
    };
    let mut out: Vec<PeerPattern> = Vec::new();
    for domain in expanded {
        let pattern = if domain == "*" {
            PeerPattern::Prefix(SPIFFE.into())
        } else if let Some((prefix, suffix)) = domain.split_once('*') {
            PeerPattern::TrustDomainWildcard {
                prefix: prefix.as_bytes().into(),
                suffix: suffix.as_bytes().into(),
            }
        } else {
            PeerPattern::Prefix([SPIFFE, domain.as_bytes(), b"/"].concat().into())
        };
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    out
}

/// Istio `security.CheckTrustDomainValues` for one value, plus the `/` rule for `when` keys too.
pub(crate) fn check_trust_domain(value: &str) -> Result<(), String> {
    let stars = value.matches('*').count();
    if stars > 1 {
        return Err("at most one wildcard is allowed".into());
    }
    if stars == 1 && value != "*" && !value.starts_with('*') && !value.ends_with('*') {
        return Err("a wildcard is only allowed at the start or the end".into());
    }
    if value.contains('/') {
        return Err("a trust domain cannot contain '/'".into());
    }
    Ok(())
}

/// A `requestPrincipals` value (`<iss>/<sub>`), split at the last `/` into two matchers as
/// Istio's `requestPrincipalGenerator` does. A token without `sub` never matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestPrincipalPattern {
    /// Matched against the token's `iss`.
    pub(crate) issuer: Pattern,
    /// Matched against the token's `sub`.
    pub(crate) subject: Pattern,
}

impl RequestPrincipalPattern {
    pub(crate) fn parse(value: &str) -> RequestPrincipalPattern {
        let split = value.rfind('/').map(|at| (value.get(..at), value.get(at + 1..)));
        let exact = |s: &str| Pattern::Exact(s.as_bytes().into());
        let (issuer, subject) = match split {
            _ if value == "*" => (Pattern::NonEmpty, Pattern::NonEmpty),
            Some((Some(iss), Some(sub))) if value.starts_with('*') => {
                let issuer = if iss == "*" {
                    Pattern::NonEmpty
                } else {
                    Pattern::Suffix(iss.get(1..).unwrap_or_default().as_bytes().into())
                };
                (issuer, exact(sub))
            }
            None if value.starts_with('*') => (
                Pattern::NonEmpty,
                Pattern::Suffix(value.get(1..).unwrap_or_default().as_bytes().into()),
            ),
            Some((Some(iss), Some(sub))) if value.ends_with('*') => {
                let subject = if sub == "*" {
                    Pattern::NonEmpty
                } else {
                    Pattern::Prefix(sub.get(..sub.len() - 1).unwrap_or_default().as_bytes().into())
                };
                (exact(iss), subject)
            }
            None if value.ends_with('*') => (
                Pattern::Prefix(value.get(..value.len() - 1).unwrap_or_default().as_bytes().into()),
                Pattern::NonEmpty,
            ),
            Some((Some(iss), Some(sub))) => (exact(iss), exact(sub)),
            _ => (exact(value), exact("")),
        };
        RequestPrincipalPattern { issuer, subject }
    }

    /// Whether a token with `iss` and (optional) `sub` matches.
    pub(crate) fn matches(&self, issuer: &[u8], subject: Option<&[u8]>) -> bool {
        subject.is_some_and(|sub| self.issuer.matches(issuer) && self.subject.matches(sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn mesh(td: &str, aliases: &[&str]) -> Mesh {
        Mesh {
            root_namespace: "istio-system".into(),
            trust_domain: td.into(),
            trust_domain_aliases: aliases.iter().map(|a| a.to_string()).collect(),
            callable_providers: Vec::new(),
        }
    }

    #[test]
    fn cluster_local_is_rewritten_to_every_trust_domain() {
        // pilot/pkg/security/trustdomain/bundle_test.go
        let m = mesh("td1", &["td2"]);
        assert_eq!(
            replace_trust_domain_aliases("cluster.local/ns/foo/sa/bar", &m),
            vec!["td1/ns/foo/sa/bar", "td2/ns/foo/sa/bar"]
        );
        assert_eq!(
            replace_trust_domain_aliases("td2/ns/foo/sa/bar", &m),
            vec!["td1/ns/foo/sa/bar", "td2/ns/foo/sa/bar"]
        );
    }

    #[test]
    fn unknown_or_wildcard_trust_domains_are_kept() {
        let m = mesh("td1", &["td2"]);
        assert_eq!(
            replace_trust_domain_aliases("other/ns/foo/sa/bar", &m),
            vec!["other/ns/foo/sa/bar"]
        );
        assert_eq!(replace_trust_domain_aliases("*/ns/foo/sa/bar", &m), vec!["*/ns/foo/sa/bar"]);
        assert_eq!(replace_trust_domain_aliases("sa/bar", &m), vec!["sa/bar"]);
        assert_eq!(
            replace_trust_domain_aliases("*td1/ns/foo/sa/bar", &m),
            vec!["*td1/ns/foo/sa/bar", "td2/ns/foo/sa/bar"]
        );
    }

    #[test]
    fn principal_suffix_keeps_the_spiffe_scheme() {
        let m = mesh("cluster.local", &[]);
        let [pattern] = principal_patterns("*/sa/bar", &m).try_into().unwrap();
        assert!(pattern.matches(b"spiffe://cluster.local/ns/foo/sa/bar"));
        assert!(!pattern.matches(b"cluster.local/ns/foo/sa/bar"));
        assert!(!pattern.matches(b"spiffe://x/sa/bar-evil"));
    }

    #[test]
    fn namespace_regex_matches_a_whole_segment_anywhere() {
        let pattern = namespace_pattern("foo");
        assert!(pattern.matches(b"spiffe://td/ns/foo/sa/bar"));
        assert!(!pattern.matches(b"spiffe://td/ns/foo-evil/sa/bar"));
        assert!(!pattern.matches(b"spiffe://td/ns/foo"));
        assert!(!pattern.matches(b"spiffe://td/ns/foo/sa/\nbar"));
        let wild = namespace_pattern("prod-*");
        assert!(wild.matches(b"spiffe://td/ns/prod-eu/sa/bar"));
        assert!(!wild.matches(b"spiffe://td/ns/dev/sa/bar"));
        assert_eq!(pattern.required_namespace(), Some(b"foo".as_slice()));
        assert_eq!(wild.required_namespace(), None);
    }

    #[test]
    fn service_account_regex_allows_extra_segments_but_not_suffixes() {
        let pattern = service_account_pattern("bar", "foo");
        assert!(pattern.matches(b"spiffe://td/ns/foo/sa/bar"));
        assert!(pattern.matches(b"spiffe://td/ns/foo/k/v/sa/bar"));
        assert!(pattern.matches(b"spiffe://td/ns/foo/sa/bar/extra"));
        assert!(!pattern.matches(b"spiffe://td/ns/foo/sa/bar-evil"));
        assert!(!pattern.matches(b"spiffe://td/ns/foo/sa/bar/"));
        assert!(!pattern.matches(b"spiffe:///ns/foo/sa/bar"));
        assert!(!pattern.matches(b"spiffe://td/ns/other/sa/bar"));
        let other = service_account_pattern("ns2/bar", "foo");
        assert!(other.matches(b"spiffe://td/ns/ns2/sa/bar"));
    }

    #[test]
    fn trust_domain_wildcards_match_the_domain_segment() {
        let m = mesh("cluster.local", &["old.local"]);
        let patterns = trust_domain_patterns("*.local", &m);
        assert!(patterns.iter().any(|p| p.matches(b"spiffe://a.local/ns/x/sa/y")));
        assert!(!patterns.iter().any(|p| p.matches(b"spiffe://a.localx/ns/x/sa/y")));
        let expanded = trust_domain_patterns("cluster.local", &m);
        assert_eq!(expanded.len(), 2);
        assert!(expanded.iter().any(|p| p.matches(b"spiffe://old.local/ns/x/sa/y")));
        assert!(!expanded.iter().any(|p| p.matches(b"spiffe://cluster.localx/ns/x")));
    }

    #[test]
    fn request_principals_split_at_the_last_slash() {
        let p = RequestPrincipalPattern::parse("https://idp.example.com/a/user");
        assert!(p.matches(b"https://idp.example.com/a", Some(b"user")));
        assert!(!p.matches(b"https://idp.example.com", Some(b"a/user")));
        let any = RequestPrincipalPattern::parse("*");
        assert!(any.matches(b"iss", Some(b"sub")));
        assert!(!any.matches(b"iss", None));
        let any_sub = RequestPrincipalPattern::parse("iss/*");
        assert!(any_sub.matches(b"iss", Some(b"x")));
        assert!(!any_sub.matches(b"iss", Some(b"")));
        let no_slash = RequestPrincipalPattern::parse("iss");
        assert!(!no_slash.matches(b"iss", Some(b"sub")));
        let suffix_iss = RequestPrincipalPattern::parse("*.example.com/sub");
        assert!(suffix_iss.matches(b"idp.example.com", Some(b"sub")));
        let prefix_iss = RequestPrincipalPattern::parse("idp*");
        assert!(prefix_iss.matches(b"idp.example.com", Some(b"x")));
        // With a '/', the trailing '*' belongs to the subject: issuer "https:/", subject "idp*".
        let url = RequestPrincipalPattern::parse("https://idp*");
        assert!(!url.matches(b"https://idp.example.com", Some(b"x")));
        assert!(url.matches(b"https:/", Some(b"idp-1")));
        let suffix_sub = RequestPrincipalPattern::parse("*@example.com");
        assert!(suffix_sub.matches(b"any", Some(b"alice@example.com")));
    }
}
