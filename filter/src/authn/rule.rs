//! Configuration step two: a `RequestAuthentication`'s `jwtRules` validated into [`JwtRule`]s,
//! and the plugin-level settings into [`AuthnSettings`].
//!
//! Validation follows Istio's (`pkg/config/validation/validation.go`
//! `ValidateRequestAuthentication`, the CRD's CEL rules) and adds what Warden needs to refuse
//! early: an inline JWKS must parse with every key usable, and a rule with neither `jwks` nor
//! `jwksUri` needs an issuer that is an http(s) URL (for OpenID discovery).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::istio::{JwtRule as JwtRuleSpec, Presence};
use crate::config::plugin::Crypto;
use crate::config::KIND_REQUEST_AUTHENTICATION;
use crate::config::{
    duration, ConfigError, Object, PluginConfig, Problem, RequestAuthenticationSpec,
};

use super::cache::MAX_CACHE_ENTRIES;
use super::claims::sanitize_audience;
use super::jwks::{parse_jwks, JwksError};
use super::key::KeySet;
use super::RuleProblem;

/// Istio's limit on `jwtRules` per resource (CRD `maxItems`).
pub const MAX_JWT_RULES: usize = 4096;
/// Istio's limit on `spaceDelimitedClaims` (CRD `maxItems`).
pub const MAX_SPACE_DELIMITED_CLAIMS: usize = 64;
/// Istio's limit on `jwksUri` (CRD `maxLength`).
pub const MAX_JWKS_URI_LENGTH: usize = 2048;
/// `timeout` when a rule gives none (Istio's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a rule looks for tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenLocation {
    /// Every occurrence of a header (name lower-case); when `prefix` is not empty, it is
    /// searched anywhere in the value (case-sensitive) and the token follows it.
    Header {
        /// Lower-case header name.
        name: String,
        /// The value prefix, e.g. `Bearer `.
        prefix: String,
    },
    /// The first occurrence of a query parameter, percent-decoded.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// Where a rule's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// `jwks`: parsed at configuration time.
    Inline(Arc<KeySet>),
    /// `jwksUri`: fetched by the key store.
    Uri(String),
    /// Neither: OpenID discovery at `<issuer>/.well-known/openid-configuration`.
    Discovery(String),
}

/// `outputClaimToHeaders[]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    /// Lower-case header name.
    pub header: String,
    /// The claim path, split on `.` (as Envoy does).
    pub claim: Vec<String>,
}

/// One validated `jwtRules[]` entry.
#[derive(Debug, Clone)]
pub struct JwtRule {
    /// The required `iss`; empty means any issuer (allowed by Istio when `jwksUri` is set).
    pub issuer: String,
    /// `audiences`, sanitized as Envoy compares them (no `http(s)://`, no trailing `/`).
    pub audiences: Vec<String>,
    /// Where the keys come from.
    pub jwks: JwksSource,
    /// Token locations (Istio's defaults when none is configured).
    pub locations: Vec<TokenLocation>,
    /// `outputPayloadToHeader`, lower-case.
    pub output_payload_to_header: Option<String>,
    /// `outputClaimToHeaders`.
    pub output_claim_to_headers: Vec<ClaimHeader>,
    /// `forwardOriginalToken`.
    pub forward_original_token: bool,
    /// `timeout` for fetching keys (default 5 s).
    pub timeout: Duration,
    /// `spaceDelimitedClaims` (`scope` and `permission` are always split in addition).
    pub space_delimited_claims: Vec<String>,
    /// `presence: REQUIRED`: a request must carry a token.
    pub required: bool,
    /// The policy's `warden.io/certificate-bound-tokens: "true"` (RFC 8705 §3): the token's
    /// `cnf` claim must carry `x5t#S256`, the SHA-256 thumbprint of the client certificate of
    /// the connection it arrives on.
    pub certificate_bound: bool,
}

impl JwtRule {
    /// The headers this rule writes; they are stripped from every incoming request.
    pub fn output_headers(&self) -> impl Iterator<Item = &str> {
        self.output_payload_to_header
            .as_deref()
            .into_iter()
            .chain(self.output_claim_to_headers.iter().map(|c| c.header.as_str()))
    }
}

/// Legal but worth a warning in a `RequestAuthentication`'s validated rules, for `warden
/// check`: (field, message).
pub fn lint(rules: &[JwtRule]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let JwksSource::Inline(set) = &rule.jwks else { continue };
        for skipped in set.skipped() {
            out.push((
                format!("spec.jwtRules[{i}].jwks.keys[{}]", skipped.index),
                format!("this key is not used: {}", skipped.problem),
            ));
        }
        for (k, key) in set.keys().iter().enumerate() {
            if matches!(key.material, super::key::Material::Hmac(_)) {
                out.push((
                    format!("spec.jwtRules[{i}].jwks (usable key {k})"),
                    "a symmetric (oct) key: the HMAC secret is stored in the policy, and anyone \
                     who can read it can mint tokens (Istio warns: contains private key material)"
                        .to_string(),
                ));
            }
        }
    }
    out
}

/// The annotation that makes a `RequestAuthentication`'s tokens certificate-bound (Warden's; it
/// keeps the object within Istio's schema, which istiod ignores).
pub const CERTIFICATE_BOUND_ANNOTATION: &str = "warden.io/certificate-bound-tokens";

/// Validates a `RequestAuthentication` into its rules. Every problem is reported, each naming
/// the object and field.
pub fn validate(
    object: &Object<RequestAuthenticationSpec>,
) -> Result<Vec<JwtRule>, Vec<ConfigError>> {
    let at = object.object_ref(KIND_REQUEST_AUTHENTICATION);
    let mut errors = Vec::new();
    let mut error = |field: String, problem: RuleProblem| {
        errors.push(ConfigError::at(&at, field, Problem::Authn(problem)));
    };
    let spec = &object.spec;
    if (spec.target_ref.is_some() || !spec.target_refs.is_empty()) && spec.selector.is_some() {
        error("spec.selector".into(), RuleProblem::SelectorWithTargetRefs);
    }
    if spec.target_ref.is_some() && !spec.target_refs.is_empty() {
        error("spec.targetRef".into(), RuleProblem::TargetRefAndTargetRefs);
    }
    if spec.jwt_rules.len() > MAX_JWT_RULES {
        error("spec.jwtRules".into(), RuleProblem::TooManyRules(spec.jwt_rules.len()));
    }
    let certificate_bound = match object.metadata.annotations.get(CERTIFICATE_BOUND_ANNOTATION) {
        None => false,
        Some(value) if value == "true" => true,
        Some(value) if value == "false" => false,
        Some(value) => {
            error(
                format!("metadata.annotations[{CERTIFICATE_BOUND_ANNOTATION}]"),
                RuleProblem::BadBindingAnnotation(value.clone()),
            );
            false
        }
    };
    let mut rules = Vec::with_capacity(spec.jwt_rules.len());
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        let base = format!("spec.jwtRules[{i}]");
        if let Some(mut rule) = validate_rule(rule, &base, &mut error) {
            rule.certificate_bound = certificate_bound;
            rules.push(rule);
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn validate_rule(
    spec: &JwtRuleSpec,
    base: &str,
    error: &mut impl FnMut(String, RuleProblem),
) -> Option<JwtRule> {
    let mut ok = true;
    let mut fail = |field: String, problem: RuleProblem| {
        ok = false;
        error(field, problem);
    };

    if spec.issuer.is_empty() && spec.jwks_uri.is_empty() {
        fail(format!("{base}.issuer"), RuleProblem::IssuerOrJwksUri);
    }
    let jwks = if !spec.jwks.is_empty() && !spec.jwks_uri.is_empty() {
        fail(format!("{base}.jwks"), RuleProblem::JwksAndJwksUri);
        None
    } else if !spec.jwks.is_empty() {
        match parse_jwks(spec.jwks.as_bytes()) {
            // Unusable keys are dropped, as in a fetched set (`warden check` and the module's
            // log name them); only a rule left with no usable key is refused.
            Ok(set) => Some(JwksSource::Inline(Arc::new(set))),
            // Each unusable key is named at its own field.
            Err(JwksError::NoUsableKey(skipped)) if !skipped.is_empty() => {
                for skipped in skipped {
                    fail(
                        format!("{base}.jwks.keys[{}]", skipped.index),
                        RuleProblem::JwksKey(skipped),
                    );
                }
                None
            }
            Err(e) => {
                fail(format!("{base}.jwks"), RuleProblem::Jwks(e));
                None
            }
        }
    } else if !spec.jwks_uri.is_empty() {
        if spec.jwks_uri.len() > MAX_JWKS_URI_LENGTH || !is_http_url(&spec.jwks_uri) {
            fail(format!("{base}.jwksUri"), RuleProblem::InvalidJwksUri(spec.jwks_uri.clone()));
            None
        } else {
            Some(JwksSource::Uri(spec.jwks_uri.clone()))
        }
    } else if is_http_url(&spec.issuer) {
        Some(JwksSource::Discovery(spec.issuer.clone()))
    } else {
        if !spec.issuer.is_empty() {
            fail(format!("{base}.issuer"), RuleProblem::NoKeySource(spec.issuer.clone()));
        }
        None
    };

    for (i, audience) in spec.audiences.iter().enumerate() {
        if audience.is_empty() {
            fail(format!("{base}.audiences[{i}]"), RuleProblem::Empty);
        }
    }

    let mut locations = Vec::new();
    for (i, header) in spec.from_headers.iter().enumerate() {
        if !is_header_name(&header.name) {
            fail(
                format!("{base}.fromHeaders[{i}].name"),
                RuleProblem::InvalidHeaderName(header.name.clone()),
            );
        }
        locations.push(TokenLocation::Header {
            name: header.name.to_ascii_lowercase(),
            prefix: header.prefix.clone(),
        });
    }
    for (i, param) in spec.from_params.iter().enumerate() {
        if param.is_empty() {
            fail(format!("{base}.fromParams[{i}]"), RuleProblem::Empty);
        }
        locations.push(TokenLocation::Param(param.clone()));
    }
    for (i, cookie) in spec.from_cookies.iter().enumerate() {
        if !is_token(cookie) {
            fail(
                format!("{base}.fromCookies[{i}]"),
                RuleProblem::InvalidCookieName(cookie.clone()),
            );
        }
        locations.push(TokenLocation::Cookie(cookie.clone()));
    }
    if locations.is_empty() {
        // Istio and Envoy's default (extractor.cc): `Authorization: Bearer <token>` and
        // `?access_token=<token>`.
        locations
            .push(TokenLocation::Header { name: "authorization".into(), prefix: "Bearer ".into() });
        locations.push(TokenLocation::Param("access_token".into()));
    }
    let token_headers: Vec<&str> = locations
        .iter()
        .filter_map(|l| match l {
            TokenLocation::Header { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();

    let output_payload_to_header = if spec.output_payload_to_header.is_empty() {
        None
    } else {
        let name = spec.output_payload_to_header.to_ascii_lowercase();
        if !is_header_name(&name) {
            fail(
                format!("{base}.outputPayloadToHeader"),
                RuleProblem::InvalidHeaderName(name.clone()),
            );
        } else if token_headers.contains(&name.as_str()) {
            fail(
                format!("{base}.outputPayloadToHeader"),
                RuleProblem::OutputHeaderIsTokenLocation(name.clone()),
            );
        }
        Some(name)
    };
    let mut output_claim_to_headers: Vec<ClaimHeader> = Vec::new();
    for (i, entry) in spec.output_claim_to_headers.iter().enumerate() {
        let header = entry.header.to_ascii_lowercase();
        // Istio's CRD pattern `^[-_A-Za-z0-9]+$`.
        if header.is_empty()
            || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            fail(
                format!("{base}.outputClaimToHeaders[{i}].header"),
                RuleProblem::InvalidHeaderName(entry.header.clone()),
            );
        } else if output_claim_to_headers.iter().any(|c| c.header == header) {
            fail(
                format!("{base}.outputClaimToHeaders[{i}].header"),
                RuleProblem::DuplicateHeader(header.clone()),
            );
        } else if token_headers.contains(&header.as_str()) {
            fail(
                format!("{base}.outputClaimToHeaders[{i}].header"),
                RuleProblem::OutputHeaderIsTokenLocation(header.clone()),
            );
        }
        if entry.claim.is_empty() {
            fail(format!("{base}.outputClaimToHeaders[{i}].claim"), RuleProblem::Empty);
        }
        output_claim_to_headers.push(ClaimHeader {
            header,
            claim: entry.claim.split('.').map(str::to_string).collect(),
        });
    }

    let timeout = match &spec.timeout {
        None => DEFAULT_TIMEOUT,
        Some(text) => match duration::parse(text) {
            // Istio `pkg/config/validation/agent/validation.go` ValidateDuration: at least 1 ms,
            // whole milliseconds.
            Ok(d) if d < Duration::from_millis(1) => {
                fail(
                    format!("{base}.timeout"),
                    RuleProblem::InvalidTimeout("must be at least 1ms".into()),
                );
                DEFAULT_TIMEOUT
            }
            Ok(d) if d.subsec_nanos() % 1_000_000 != 0 => {
                fail(
                    format!("{base}.timeout"),
                    RuleProblem::InvalidTimeout("only millisecond precision is supported".into()),
                );
                DEFAULT_TIMEOUT
            }
            Ok(d) => d,
            Err(e) => {
                fail(format!("{base}.timeout"), RuleProblem::InvalidTimeout(e));
                DEFAULT_TIMEOUT
            }
        },
    };

    if spec.space_delimited_claims.len() > MAX_SPACE_DELIMITED_CLAIMS {
        fail(
            format!("{base}.spaceDelimitedClaims"),
            RuleProblem::TooManySpaceDelimitedClaims(spec.space_delimited_claims.len()),
        );
    }
    for (i, claim) in spec.space_delimited_claims.iter().enumerate() {
        if claim.is_empty() {
            fail(format!("{base}.spaceDelimitedClaims[{i}]"), RuleProblem::Empty);
        }
    }

    let jwks = jwks?;
    if !ok {
        return None;
    }
    let mut audiences: Vec<String> =
        spec.audiences.iter().map(|a| sanitize_audience(a).to_string()).collect();
    audiences.dedup();
    Some(JwtRule {
        issuer: spec.issuer.clone(),
        required: spec.presence == Some(Presence::Required),
        audiences,
        jwks,
        locations,
        output_payload_to_header,
        output_claim_to_headers,
        forward_original_token: spec.forward_original_token,
        timeout,
        space_delimited_claims: spec.space_delimited_claims.clone(),
        certificate_bound: false,
    })
}

/// RFC 7230 `token` characters.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header name a rule may read or write: an RFC 7230 token (so never a pseudo-header).
fn is_header_name(name: &str) -> bool {
    is_token(name)
}

/// An http(s) URL split the way a fetch through an Envoy cluster needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `https` (or `http`).
    pub https: bool,
    /// The host as written (an IPv6 literal without its brackets).
    pub host: String,
    /// The port: the URL's, else 443 for https and 80 for http.
    pub port: u16,
    /// `host[:port]` as written in the URL: the `:authority` of the request.
    pub authority: String,
    /// The path and query (`/` when the URL has none), without any fragment: the `:path`.
    pub path: String,
}

impl HttpTarget {
    /// Parses `http(s)://host[:port][/path][?query][#fragment]`: no user info, no whitespace
    /// or control characters, a non-empty host (IPv6 literals in brackets), a port in 1..=65535.
    pub fn parse(url: &str) -> Option<HttpTarget> {
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) || !valid_escapes(url) {
            return None;
        }
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else {
            (false, strip_prefix_ignore_case(url, "http://")?)
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest.get(..end)?;
        if authority.contains('@') {
            return None;
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let close = inner.find(']')?;
            let host = inner.get(..close)?;
            let port = match inner.get(close + 1..)? {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        // Go's url.Parse (Istio `pkg/config/security/security.go` ParseJwksURI) refuses a host
        // character it would have to escape (`{`, `|`, `\\`, …), and escapes in a host.
        let host_byte = |b: u8| {
            b.is_ascii_alphanumeric() || b >= 0x80 || b"-_.~!$&'()*+,;=:[]<>\"".contains(&b)
        };
        if host.is_empty() || !host.bytes().all(host_byte) {
            return None;
        }
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                p.parse::<u16>().ok().filter(|&p| p != 0)?
            }
        };
        let after = rest.get(end..).unwrap_or_default();
        let path = after.split('#').next().unwrap_or_default();
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Some(HttpTarget {
            https,
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            path,
        })
    }

    /// Istio's cluster name for the host and port: `outbound|<port>||<host>`.
    pub fn default_cluster(&self) -> String {
        format!("outbound|{}||{}", self.port, self.host)
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| text.get(prefix.len()..)).flatten()
}

/// Whether `url` is an http(s) URL Warden can fetch.
/// Whether every `%` starts an escape of two hex digits (Go's url.Parse refuses others).
fn valid_escapes(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().filter(|(_, &b)| b == b'%').all(|(i, _)| {
        bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

pub(crate) fn is_http_url(url: &str) -> bool {
    HttpTarget::parse(url).is_some()
}

/// Istio's cluster name for a URL's host and port: `outbound|<port>||<host>` (port 443 for
/// https and 80 for http when the URL gives none). `None` for anything but an http(s) URL.
pub fn default_cluster(url: &str) -> Option<String> {
    HttpTarget::parse(url).map(|target| target.default_cluster())
}

/// `<issuer>/.well-known/openid-configuration`, the issuer's trailing `/` trimmed (istiod
/// `pilot/pkg/model/jwks_resolver.go`).
pub fn discovery_uri(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// The plugin-level settings authentication needs (`jwks`, `tokenCache`, `crypto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnSettings {
    /// Verified tokens kept per worker; 0 turns the cache off.
    pub token_cache_entries: usize,
    /// Where signatures are verified.
    pub crypto: Crypto,
    /// How often fetched key sets are refreshed.
    pub refresh_interval: Duration,
    /// How long the last good keys stay in use while refreshes fail.
    pub max_stale: Duration,
    /// The least time between two refetches triggered by unknown `kid`s.
    pub min_refetch_interval: Duration,
    /// The Envoy cluster for each URI that does not use Istio's default name.
    pub clusters: BTreeMap<String, String>,
}

impl Default for AuthnSettings {
    fn default() -> Self {
        AuthnSettings {
            token_cache_entries: 1024,
            crypto: Crypto::Auto,
            refresh_interval: Duration::from_secs(300),
            max_stale: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
            clusters: BTreeMap::new(),
        }
    }
}

impl AuthnSettings {
    /// Reads and checks the settings; every problem is reported.
    pub fn from_config(config: &PluginConfig) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let defaults = AuthnSettings::default();
        let mut interval = |field: &str, value: &Option<String>, default: Duration| match value {
            None => default,
            Some(text) => match duration::parse(text) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    errors.push(ConfigError::plugin(
                        field,
                        Problem::Setting("must be positive".into()),
                    ));
                    default
                }
                Err(e) => {
                    errors.push(ConfigError::plugin(field, Problem::Setting(e)));
                    default
                }
            },
        };
        let jwks = &config.jwks;
        let refresh_interval =
            interval("jwks.refreshInterval", &jwks.refresh_interval, defaults.refresh_interval);
        let max_stale = interval("jwks.maxStale", &jwks.max_stale, defaults.max_stale);
        let min_refetch_interval = interval(
            "jwks.minRefetchInterval",
            &jwks.min_refetch_interval,
            defaults.min_refetch_interval,
        );
        for (uri, cluster) in &jwks.clusters {
            if !is_http_url(uri) {
                errors.push(ConfigError::plugin(
                    format!("jwks.clusters[{uri:?}]"),
                    Problem::Setting("the key must be an http(s) URL".into()),
                ));
            }
            if cluster.is_empty() {
                errors
                    .push(ConfigError::plugin(format!("jwks.clusters[{uri:?}]"), Problem::Missing));
            }
        }
        if config.token_cache.size > MAX_CACHE_ENTRIES {
            errors.push(ConfigError::plugin(
                "tokenCache.size",
                Problem::Setting(format!("at most {MAX_CACHE_ENTRIES} entries")),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AuthnSettings {
            token_cache_entries: config.token_cache.size,
            crypto: config.crypto,
            refresh_interval,
            max_stale,
            min_refetch_interval,
            clusters: jwks.clusters.clone(),
        })
    }

    /// The Envoy cluster a URI is fetched through: the configured one, else Istio's default.
    pub fn cluster_for(&self, uri: &str) -> Option<String> {
        self.clusters.get(uri).cloned().or_else(|| default_cluster(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn urls_are_parsed_strictly() {
        for good in [
            "https://example.com",
            "https://example.com/.well-known/jwks.json",
            "http://idp:8080/keys?x=1",
            "HTTPS://Example.com/",
            "https://[::1]:8443/jwks",
        ] {
            assert!(is_http_url(good), "{good}");
        }
        for bad in [
            "",
            "example.com",
            "ftp://example.com",
            "https://",
            "https:///path",
            "https://user@example.com/",
            "https://example.com:/",
            "https://example.com:0/",
            "https://example.com:65536/",
            "https://example.com:x/",
            "https://exa mple.com/",
            "https://example.com/\n",
            "https://[::1/",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn targets_split_authority_and_path() {
        let t = HttpTarget::parse("https://idp.example.com:8443/keys?a=1#frag").unwrap();
        assert_eq!((t.https, t.host.as_str(), t.port), (true, "idp.example.com", 8443));
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("idp.example.com:8443", "/keys?a=1"));
        let t = HttpTarget::parse("http://idp").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str(), t.port), ("idp", "/", 80));
        let t = HttpTarget::parse("https://idp?x").unwrap();
        assert_eq!(t.path, "/?x");
        let t = HttpTarget::parse("https://[::1]/j").unwrap();
        assert_eq!((t.host.as_str(), t.authority.as_str(), t.port), ("::1", "[::1]", 443));
    }

    #[test]
    fn default_clusters_use_istio_naming() {
        assert_eq!(
            default_cluster("https://idp.example.com/jwks").as_deref(),
            Some("outbound|443||idp.example.com")
        );
        assert_eq!(
            default_cluster("http://keycloak.auth:8080/realms/x").as_deref(),
            Some("outbound|8080||keycloak.auth")
        );
        assert_eq!(default_cluster("http://idp").as_deref(), Some("outbound|80||idp"));
        assert_eq!(default_cluster("file:///etc/jwks"), None);
    }

    #[test]
    fn settings_come_from_the_plugin_configuration() {
        let config: PluginConfig = serde_json::from_value(serde_json::json!({
            "jwks": {
                "refreshInterval": "10m",
                "maxStale": "2h",
                "minRefetchInterval": "5s",
                "clusters": {"https://idp.example.com/jwks": "idp"},
            },
            "tokenCache": {"size": 7},
            "crypto": "wasm",
        }))
        .unwrap();
        let settings = AuthnSettings::from_config(&config).unwrap();
        assert_eq!(settings.refresh_interval, Duration::from_secs(600));
        assert_eq!(settings.max_stale, Duration::from_secs(7200));
        assert_eq!(settings.min_refetch_interval, Duration::from_secs(5));
        assert_eq!(settings.token_cache_entries, 7);
        assert_eq!(settings.crypto, Crypto::Wasm);
        assert_eq!(settings.cluster_for("https://idp.example.com/jwks").as_deref(), Some("idp"));
        assert_eq!(
            settings.cluster_for("https://other.example.com/k").as_deref(),
            Some("outbound|443||other.example.com")
        );
        assert_eq!(
            AuthnSettings::from_config(&PluginConfig::default()).unwrap(),
            AuthnSettings::default()
        );
    }

    #[test]
    fn bad_settings_are_each_reported() {
        let config: PluginConfig = serde_json::from_value(serde_json::json!({
            "jwks": {
                "refreshInterval": "often",
                "maxStale": "0s",
                "clusters": {"idp.example.com": ""},
            },
            "tokenCache": {"size": 1_000_000_000},
        }))
        .unwrap();
        let errors = AuthnSettings::from_config(&config).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "jwks.refreshInterval",
                "jwks.maxStale",
                "jwks.clusters[\"idp.example.com\"]",
                "jwks.clusters[\"idp.example.com\"]",
                "tokenCache.size"
            ]
        );
    }

    #[test]
    fn discovery_trims_the_issuers_trailing_slash() {
        assert_eq!(
            discovery_uri("https://idp.example.com/"),
            "https://idp.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_uri("https://idp.example.com/realms/a"),
            "https://idp.example.com/realms/a/.well-known/openid-configuration"
        );
    }
}
