//! External authorizers: Istio's `action: CUSTOM` with an HTTP provider
//! (`meshConfig.extensionProviders[].envoyExtAuthzHttp`), called after authentication.
//!
//! Istio runs its ext_authz filter before `jwt_authn`, so it forbids identities in CUSTOM rules
//! and the authorizer never learns who is calling (istio/istio issues 51173, 45511, 35941).
//! Warden evaluates CUSTOM rules after authentication, in Istio's place otherwise (before DENY
//! and ALLOW): a CUSTOM rule may name principals and claims, and the check request carries the
//! verified peer and request principals in headers the provider names.
//!
//! The check request and the reading of the answer are Envoy's HTTP ext_authz client's
//! (envoy `source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc` and
//! `check_request_utils.cc`), as Istio configures it (istio/istio
//! `pilot/pkg/security/authz/builder/extauthz.go`):
//! - the check has the request's `:method`, `:authority`, `Authorization` and `:path` (after
//!   `pathPrefix`, query included), the headers `includeRequestHeadersInCheck` names (exact,
//!   `prefix*`, `*suffix`, case-insensitive; repeated headers joined with `,`), then
//!   `includeAdditionalHeadersInCheck`, and `content-length: 0`;
//! - a 200 allows, copying (overwriting) the response headers `headersToUpstreamOnAllow`
//!   names into the upstream request; a 5xx, or no answer (timeout, reset, no such cluster)
//!   is an error: `failOpen`, else `statusOnError` (default 403) with no body; any other status
//!   denies with the authorizer's status and body, and its headers: all of them when
//!   `headersToDownstreamOnDeny` is empty, else those it names plus `www-authenticate` and
//!   `location`.
//!
//! Not done as Envoy does: the `x-envoy-internal` and `x-forwarded-for` headers Envoy's async
//! client adds, `x-envoy-auth-headers-to-remove`, and `headersToDownstreamOnAllow` (refused:
//! Warden does not see responses).
//!
//! This module only builds and reads messages; the glue sends them (`host/worker.rs`).

use std::time::Duration;

use crate::config::plugin::{ExtAuthzHttp, ExtensionProvider};
use crate::config::{duration, ConfigError, PluginConfig, Problem};
use crate::request::{Identity, Observed, Request};

/// Istio's default `timeout` for an HTTP provider.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Istio's default `statusOnError`.
pub const DEFAULT_STATUS_ON_ERROR: u16 = 403;
/// Where the verified identities go, unless the provider names other headers.
pub const PEER_PRINCIPAL_HEADER: &str = "x-warden-peer-principal";
/// See [`PEER_PRINCIPAL_HEADER`].
pub const REQUEST_PRINCIPAL_HEADER: &str = "x-warden-request-principal";
/// Most of an authorizer's denial body passed on to the client, and most headers read.
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// A header-name pattern of a provider list: exact, `prefix*`, `*suffix`, case-insensitive
/// (Istio's `generateHeaders`; a bare `*` is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl NamePattern {
    fn parse(text: &str) -> NamePattern {
        let text = text.to_ascii_lowercase();
        if let Some(prefix) = text.strip_suffix('*') {
            NamePattern::Prefix(prefix.to_string())
        } else if let Some(suffix) = text.strip_prefix('*') {
            NamePattern::Suffix(suffix.to_string())
        } else {
            NamePattern::Exact(text)
        }
    }

    fn matches(&self, name: &[u8]) -> bool {
        let lower = |bytes: &[u8]| bytes.to_ascii_lowercase();
        match self {
            NamePattern::Exact(exact) => lower(name) == exact.as_bytes(),
            NamePattern::Prefix(prefix) => lower(name).starts_with(prefix.as_bytes()),
            NamePattern::Suffix(suffix) => lower(name).ends_with(suffix.as_bytes()),
        }
    }
}

fn any_matches(patterns: &[NamePattern], name: &[u8]) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

/// One provider, compiled.
#[derive(Debug, Clone)]
pub struct Provider {
    /// `name`.
    pub name: String,
    /// What kind, and whether Warden can call it.
    pub kind: Kind,
}

/// What a provider is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// An HTTP service Warden calls.
    Http(Box<HttpProvider>),
    /// A gRPC service: Warden cannot call it, so its CUSTOM rules fail closed.
    Grpc,
}

/// An HTTP provider, compiled.
#[derive(Debug, Clone)]
pub struct HttpProvider {
    /// The Envoy cluster.
    pub cluster: String,
    /// How long to wait.
    pub timeout: Duration,
    path_prefix: String,
    fail_open: bool,
    status_on_error: u16,
    include: Vec<NamePattern>,
    additional: Vec<(String, String)>,
    to_upstream_on_allow: Vec<NamePattern>,
    to_downstream_on_deny: Vec<NamePattern>,
    peer_header: String,
    principal_header: String,
}

/// The providers of a configuration, by name.
#[derive(Debug, Clone, Default)]
pub struct Providers(Vec<Provider>);

impl Providers {
    /// Validates and compiles `providers`; every error names its field.
    pub fn from_config(config: &PluginConfig) -> Result<Providers, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut list: Vec<Provider> = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, provider) in config.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            if provider.name.is_empty() {
                errors.push(ConfigError::plugin(format!("{at}.name"), Problem::Missing));
            } else if !names.insert(provider.name.as_str()) {
                errors.push(ConfigError::plugin(
                    format!("{at}.name"),
                    Problem::Setting(format!("another provider is named {:?}", provider.name)),
                ));
            }
            match compile_one(provider, &at) {
                Ok(kind) => list.push(Provider { name: provider.name.clone(), kind }),
                Err(mut found) => errors.append(&mut found),
            }
        }
        if errors.is_empty() {
            Ok(Providers(list))
        } else {
            Err(errors)
        }
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.0.iter().find(|p| p.name == name)
    }

    /// Whether Warden can call the provider named `name`.
    pub fn callable(&self, name: &str) -> bool {
        matches!(self.get(name).map(|p| &p.kind), Some(Kind::Http(_)))
    }
}

fn compile_one(provider: &ExtensionProvider, at: &str) -> Result<Kind, Vec<ConfigError>> {
    let setting = |field: &str, why: String| {
        ConfigError::plugin(format!("{at}.{field}"), Problem::Setting(why))
    };
    match (&provider.envoy_ext_authz_http, &provider.envoy_ext_authz_grpc) {
        (Some(_), Some(_)) => Err(vec![setting(
            "envoyExtAuthzGrpc",
            "a provider is either envoyExtAuthzHttp or envoyExtAuthzGrpc, not both".into(),
        )]),
        (None, Some(_)) => Ok(Kind::Grpc),
        (None, None) => Err(vec![setting(
            "envoyExtAuthzHttp",
            "is required: Warden calls HTTP authorization services (envoyExtAuthzHttp)".into(),
        )]),
        (Some(http), None) => {
            http_provider(http, &format!("{at}.envoyExtAuthzHttp")).map(|p| Kind::Http(Box::new(p)))
        }
    }
}

fn http_provider(http: &ExtAuthzHttp, at: &str) -> Result<HttpProvider, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut error = |field: &str, problem: Problem| {
        errors.push(ConfigError::plugin(format!("{at}.{field}"), problem));
    };
    if http.service.is_empty() {
        error("service", Problem::Missing);
    }
    if http.port == 0 {
        error("port", Problem::Setting("must be a port number, 1 to 65535".into()));
    }
    let timeout = match http.timeout.as_deref().map(duration::parse) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            error("timeout", Problem::Setting("must be positive".into()));
            DEFAULT_TIMEOUT
        }
        Some(Err(why)) => {
            error("timeout", Problem::Setting(why));
            DEFAULT_TIMEOUT
        }
    };
    let status_on_error = match http.status_on_error.as_deref() {
        None | Some("") => DEFAULT_STATUS_ON_ERROR,
        Some(text) => match text.parse::<u16>() {
            // Envoy answers 403 for a code outside 100–511.
            Ok(status) if (100..=511).contains(&status) => status,
            Ok(_) => DEFAULT_STATUS_ON_ERROR,
            Err(_) => {
                error(
                    "statusOnError",
                    Problem::Setting(format!("{text:?} is not an HTTP status code")),
                );
                DEFAULT_STATUS_ON_ERROR
            }
        },
    };
    let path_prefix = http.path_prefix.clone().unwrap_or_default();
    if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
        error("pathPrefix", Problem::Setting("must start with /".into()));
    }
    if http.include_request_body_in_check.is_some() {
        error(
            "includeRequestBodyInCheck",
            Problem::Setting(
                "not supported: Warden decides on the request headers, before any body arrives"
                    .into(),
            ),
        );
    }
    if !http.headers_to_downstream_on_allow.is_empty() {
        error(
            "headersToDownstreamOnAllow",
            Problem::Setting(
                "not supported: Warden decides on the request and does not see the response".into(),
            ),
        );
    }
    let lists = [
        ("includeRequestHeadersInCheck", &http.include_request_headers_in_check),
        ("headersToUpstreamOnAllow", &http.headers_to_upstream_on_allow),
        ("headersToDownstreamOnDeny", &http.headers_to_downstream_on_deny),
    ];
    for (field, list) in lists {
        for (i, pattern) in list.iter().enumerate() {
            if pattern.trim_matches('*').is_empty() {
                error(
                    &format!("{field}[{i}]"),
                    Problem::Setting(format!(
                        "{pattern:?}: name a header, a prefix (x-*) or a suffix (*-x)"
                    )),
                );
            }
        }
    }
    let header_name = |name: &str| -> bool {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
    };
    for name in http.include_additional_headers_in_check.keys() {
        if !header_name(name) {
            error(
                &format!("includeAdditionalHeadersInCheck[{name}]"),
                Problem::Setting("not a header name".into()),
            );
        }
    }
    let identity = http.identity_headers.clone().unwrap_or_default();
    let peer_header = identity.peer_principal.unwrap_or_else(|| PEER_PRINCIPAL_HEADER.into());
    let principal_header =
        identity.request_principal.unwrap_or_else(|| REQUEST_PRINCIPAL_HEADER.into());
    for (field, name) in [
        ("identityHeaders.peerPrincipal", &peer_header),
        ("identityHeaders.requestPrincipal", &principal_header),
    ] {
        if !header_name(name) {
            error(field, Problem::Setting("not a header name".into()));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let patterns = |list: &[String]| list.iter().map(|p| NamePattern::parse(p)).collect();
    Ok(HttpProvider {
        cluster: http
            .cluster
            .clone()
            .unwrap_or_else(|| format!("outbound|{}||{}", http.port, http.service)),
        timeout,
        path_prefix,
        fail_open: http.fail_open,
        status_on_error,
        include: patterns(&http.include_request_headers_in_check),
        additional: http
            .include_additional_headers_in_check
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
        to_upstream_on_allow: patterns(&http.headers_to_upstream_on_allow),
        to_downstream_on_deny: patterns(&http.headers_to_downstream_on_deny),
        peer_header: peer_header.to_ascii_lowercase(),
        principal_header: principal_header.to_ascii_lowercase(),
    })
}

/// A check request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The Envoy cluster.
    pub cluster: String,
    /// Pseudo-headers first, then the rest.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How long to wait.
    pub timeout: Duration,
}

/// The authorizer's answer, as the host received it (`None` for the whole answer when the call
/// failed or timed out).
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// `:status`, if the answer had a valid one.
    pub status: Option<u16>,
    /// The answer's headers (pseudo-headers included; ignored).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body (at most [`MAX_BODY`] is kept).
    pub body: Vec<u8>,
}

/// What the authorizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Go on (to DENY and ALLOW), adding these headers to the upstream request.
    Allow {
        /// Added to (replacing in) the upstream request.
        upstream: Vec<(String, Vec<u8>)>,
        /// `failOpen` let an error through.
        failed_open: bool,
    },
    /// Refuse with the authorizer's answer (or `statusOnError` and no body on an error).
    Deny {
        /// HTTP status.
        status: u16,
        /// Body.
        body: Vec<u8>,
        /// Headers for the client.
        headers: Vec<(String, Vec<u8>)>,
        /// The authorizer could not be reached or failed (Envoy's `ext_authz_error`).
        error: bool,
    },
}

impl HttpProvider {
    /// The check request for `request`, carrying the verified identities.
    pub fn call(&self, request: &Request<'_>, identity: Option<&Identity>) -> Call {
        let mut path = self.path_prefix.clone().into_bytes();
        path.extend_from_slice(request.path);
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), request.method.to_vec()),
            (":path".into(), path),
            (":authority".into(), request.host.to_vec()),
        ];
        let ours = |name: &[u8]| {
            name.eq_ignore_ascii_case(self.peer_header.as_bytes())
                || name.eq_ignore_ascii_case(self.principal_header.as_bytes())
        };
        for (name, value) in request.headers {
            // Pseudo-headers are set above; the identity headers are only ever the verified
            // ones; `content-length` is the check's own.
            let copied = name.first() != Some(&b':')
                && !ours(name)
                && !name.eq_ignore_ascii_case(b"content-length")
                && (name.eq_ignore_ascii_case(b"authorization")
                    || any_matches(&self.include, name));
            if !copied {
                continue;
            }
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            // Repeated headers travel as one, their values joined with `,` (as Envoy's
            // CheckRequest builder joins them).
            match headers.iter_mut().find(|(n, _)| *n == name) {
                Some((_, joined)) => {
                    joined.push(b',');
                    joined.extend_from_slice(value);
                }
                None => headers.push((name, value.to_vec())),
            }
        }
        for (name, value) in &self.additional {
            headers.retain(|(n, _)| n != name);
            headers.push((name.clone(), value.clone().into_bytes()));
        }
        if let Observed::Known(peer) = request.connection.peer {
            if let Some(san) = peer.uri_sans.first() {
                headers.push((self.peer_header.clone(), san.clone()));
            }
        }
        if let Some(principal) = identity.and_then(Identity::principal) {
            headers.push((self.principal_header.clone(), principal.into_bytes()));
        }
        headers.push(("content-length".into(), b"0".to_vec()));
        Call { cluster: self.cluster.clone(), headers, timeout: self.timeout }
    }

    /// Reads the authorizer's answer (`None`: no answer).
    pub fn answer(&self, response: Option<&Response>) -> Answer {
        let error = || {
            if self.fail_open {
                Answer::Allow { upstream: Vec::new(), failed_open: true }
            } else {
                Answer::Deny {
                    status: self.status_on_error,
                    body: Vec::new(),
                    headers: Vec::new(),
                    error: true,
                }
            }
        };
        let Some(response) = response else { return error() };
        let pick = |keep: &dyn Fn(&[u8]) -> bool| -> Vec<(String, Vec<u8>)> {
            response
                .headers
                .iter()
                .take(MAX_HEADERS)
                // Pseudo-headers and the body's length are the local reply's own.
                .filter(|(name, _)| {
                    name.first() != Some(&b':')
                        && !name.eq_ignore_ascii_case(b"content-length")
                        && keep(name)
                })
                .map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.clone()))
                .collect()
        };
        match response.status {
            Some(200) => Answer::Allow {
                upstream: pick(&|name| any_matches(&self.to_upstream_on_allow, name)),
                failed_open: false,
            },
            None | Some(500..=599) => error(),
            Some(status) => {
                let named = &self.to_downstream_on_deny;
                let headers = pick(&|name| {
                    named.is_empty()
                        || any_matches(named, name)
                        || name.eq_ignore_ascii_case(b"www-authenticate")
                        || name.eq_ignore_ascii_case(b"location")
                });
                Answer::Deny {
                    status,
                    body: response.body.iter().take(MAX_BODY).copied().collect(),
                    headers,
                    error: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Connection, Peer};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn providers(json: serde_json::Value) -> Result<Providers, Vec<ConfigError>> {
        let config: PluginConfig =
            serde_json::from_value(serde_json::json!({ "providers": json })).unwrap();
        Providers::from_config(&config)
    }

    fn http(extra: serde_json::Value) -> HttpProvider {
        let mut spec = serde_json::json!({"service": "authz.foo.svc.cluster.local", "port": 9000});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let list =
            providers(serde_json::json!([{"name": "a", "envoyExtAuthzHttp": spec}])).unwrap();
        match &list.get("a").unwrap().kind {
            Kind::Http(provider) => (**provider).clone(),
            Kind::Grpc => panic!("grpc"),
        }
    }

    #[test]
    fn providers_take_istios_defaults_and_name_their_mistakes() {
        let provider = http(serde_json::json!({}));
        assert_eq!(provider.cluster, "outbound|9000||authz.foo.svc.cluster.local");
        assert_eq!(provider.timeout, DEFAULT_TIMEOUT);
        assert_eq!(provider.status_on_error, 403);
        let errors = providers(serde_json::json!([
            {"name": "a", "envoyExtAuthzHttp": {"service": "", "port": 0, "timeout": "soon",
             "statusOnError": "abc", "pathPrefix": "check", "includeRequestBodyInCheck": {},
             "headersToDownstreamOnAllow": ["x"], "includeRequestHeadersInCheck": ["*"]}},
            {"name": "a", "envoyExtAuthzGrpc": {"service": "g", "port": 1}},
            {"name": "b"},
        ]))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "providers[0].envoyExtAuthzHttp.service",
                "providers[0].envoyExtAuthzHttp.port",
                "providers[0].envoyExtAuthzHttp.timeout",
                "providers[0].envoyExtAuthzHttp.statusOnError",
                "providers[0].envoyExtAuthzHttp.pathPrefix",
                "providers[0].envoyExtAuthzHttp.includeRequestBodyInCheck",
                "providers[0].envoyExtAuthzHttp.headersToDownstreamOnAllow",
                "providers[0].envoyExtAuthzHttp.includeRequestHeadersInCheck[0]",
                "providers[1].name",
                "providers[2].envoyExtAuthzHttp",
            ]
        );
        let grpc = providers(serde_json::json!([{"name": "g", "envoyExtAuthzGrpc": {}}])).unwrap();
        assert!(!grpc.callable("g") && !grpc.callable("missing"));
    }

    #[test]
    fn the_check_carries_the_named_headers_and_only_verified_identities() {
        let provider = http(serde_json::json!({
            "pathPrefix": "/check",
            "includeRequestHeadersInCheck": ["x-user", "x-trace-*", "*-tenant"],
            "includeAdditionalHeadersInCheck": {"X-From": "warden"},
        }));
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":path", b"/orders?id=1"),
            (b":authority", b"backend"),
            (b"authorization", b"Bearer t"),
            (b"x-user", b"alice"),
            (b"x-trace-id", b"t1"),
            (b"x-user", b"bob"),
            (b"content-length", b"12"),
            (b"acme-tenant", b"acme"),
            (b"cookie", b"secret"),
            (b"x-warden-peer-principal", b"spiffe://forged"),
        ];
        let peer =
            Peer { uri_sans: vec![b"spiffe://td/ns/web/sa/frontend".to_vec()], ..Peer::default() };
        let connection = Connection { peer: Observed::Known(&peer), ..Connection::default() };
        let request = Request::from_header_map(&headers, connection);
        let identity = Identity {
            issuer: "https://issuer".into(),
            subject: Some("alice".into()),
            claims: Default::default(),
        };
        let call = provider.call(&request, Some(&identity));
        let text: Vec<(String, String)> = call
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let expected = [
            (":method", "POST"),
            (":path", "/check/orders?id=1"),
            (":authority", "backend"),
            ("authorization", "Bearer t"),
            ("x-user", "alice,bob"),
            ("x-trace-id", "t1"),
            ("acme-tenant", "acme"),
            ("x-from", "warden"),
            ("x-warden-peer-principal", "spiffe://td/ns/web/sa/frontend"),
            ("x-warden-request-principal", "https://issuer/alice"),
            ("content-length", "0"),
        ];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(text, expected);
        assert_eq!(call.cluster, "outbound|9000||authz.foo.svc.cluster.local");
        // Anonymous and plaintext: no identity headers at all, and a forged one is dropped.
        let plain = Request::from_header_map(&headers, Connection::default());
        let call = provider.call(&plain, None);
        assert!(!call.headers.iter().any(|(n, _)| n.starts_with("x-warden-")), "{call:?}");
    }

    #[test]
    fn answers_read_as_envoys_http_ext_authz_reads_them() {
        let provider = http(serde_json::json!({
            "headersToUpstreamOnAllow": ["x-auth-*"],
            "headersToDownstreamOnDeny": ["x-reason"],
        }));
        let response = |status: Option<u16>| Response {
            status,
            headers: vec![
                (b":status".to_vec(), b"200".to_vec()),
                (b"x-auth-user".to_vec(), b"alice".to_vec()),
                (b"x-reason".to_vec(), b"no".to_vec()),
                (b"set-cookie".to_vec(), b"s".to_vec()),
            ],
            body: b"go away".to_vec(),
        };
        assert_eq!(
            provider.answer(Some(&response(Some(200)))),
            Answer::Allow {
                upstream: vec![("x-auth-user".into(), b"alice".to_vec())],
                failed_open: false
            }
        );
        assert_eq!(
            provider.answer(Some(&response(Some(401)))),
            Answer::Deny {
                status: 401,
                body: b"go away".to_vec(),
                headers: vec![("x-reason".into(), b"no".to_vec())],
                error: false
            }
        );
        let error =
            Answer::Deny { status: 403, body: Vec::new(), headers: Vec::new(), error: true };
        // Without headersToDownstreamOnDeny, every header of the refusal goes to the client.
        let all = http(serde_json::json!({}));
        let Answer::Deny { headers, .. } = all.answer(Some(&response(Some(403)))) else { panic!() };
        assert_eq!(headers.len(), 3, "{headers:?}");
        assert_eq!(provider.answer(Some(&response(Some(503)))), error, "5xx is an error");
        assert_eq!(provider.answer(None), error, "no answer (timeout, unreachable)");
        assert_eq!(provider.answer(Some(&response(None))), error, "no valid :status");
        let open = http(serde_json::json!({"failOpen": true, "statusOnError": "503"}));
        assert!(matches!(open.answer(None), Answer::Allow { failed_open: true, .. }));
        let odd = http(serde_json::json!({"statusOnError": "999"}));
        assert!(matches!(odd.answer(None), Answer::Deny { status: 403, .. }), "Envoy's 403");
        let closed = http(serde_json::json!({"statusOnError": "503"}));
        assert!(matches!(closed.answer(None), Answer::Deny { status: 503, error: true, .. }));
    }
}
