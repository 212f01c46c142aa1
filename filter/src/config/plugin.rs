//! The plugin configuration: Envoy's `configuration` block, or Istio's `WasmPlugin.pluginConfig`.
//!
//! ```yaml
//! pluginConfig:
//!   rootNamespace: istio-system        # default
//!   trustDomain: cluster.local         # default
//!   workload:                          # default: Envoy's node metadata NAMESPACE and LABELS
//!     namespace: api
//!     labels: {app: backend}
//!   policies:                          # AuthorizationPolicy and RequestAuthentication objects
//!   - apiVersion: security.istio.io/v1
//!     kind: AuthorizationPolicy
//!     metadata: {name: allow-frontend, namespace: api}
//!     spec: {...}
//! ```
//!
//! One configuration can carry a whole mesh's policies: each sidecar applies exactly those that
//! select its workload, as istiod would have chosen for it. The policies are kept as raw JSON
//! text while the configuration is read (no document tree of the whole mesh is built) and
//! each is read on its own, so a sidecar's memory follows what applies to it, not the mesh.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The root of the plugin configuration. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// Which filter this instance of the module is: `http` (the default: authentication and
    /// authorization) or `connection` (the network filter that hands the direct peer's address
    /// to the HTTP filter, for `ipBlocks`; it carries no other setting).
    #[serde(default, skip_serializing_if = "is_default")]
    pub role: Role,
    /// The workload this sidecar serves. Defaults to Envoy's node metadata (`NAMESPACE`,
    /// `LABELS`, as Istio's sidecars carry it); required when the node has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// Policies in this namespace apply to every workload in the mesh. Defaults to
    /// `istio-system` (Istio's `meshConfig.rootNamespace`).
    #[serde(default = "default_root_namespace")]
    pub root_namespace: String,
    /// The mesh's trust domain. `cluster.local` in a policy's principals stands for it and for
    /// every alias. Defaults to `cluster.local`.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Other trust domains that identify the same mesh (Istio's `trustDomainAliases`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domain_aliases: Vec<String>,
    /// `AuthorizationPolicy` and `RequestAuthentication` objects, as Kubernetes objects (raw
    /// JSON, read one at a time; [`PluginConfig::push_policy`] adds one). Read with a
    /// [`scope`] in force, only the objects that can apply to that workload are kept.
    #[serde(default, deserialize_with = "scoped_policies")]
    pub policies: Vec<Box<RawValue>>,
    /// Namespaces whose workloads another Warden configuration serves (a per-namespace
    /// `WasmPlugin` that `warden compile --format wasmplugin --split` wrote, carrying the root
    /// namespace's policies too): in a workload of one of these, this configuration applies
    /// nothing, so that exactly one Warden configuration decides each request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_namespaces: Vec<String>,
    /// How JWKS documents are fetched and kept.
    #[serde(default, skip_serializing_if = "is_default")]
    pub jwks: JwksSettings,
    /// The cache of verified tokens.
    #[serde(default, skip_serializing_if = "is_default")]
    pub token_cache: TokenCacheSettings,
    /// Where signatures are verified.
    #[serde(default, skip_serializing_if = "is_default")]
    pub crypto: Crypto,
    /// Which decisions are logged.
    #[serde(default, skip_serializing_if = "is_default")]
    pub log: LogSettings,
    /// Where the peer's certificate identity is read from.
    #[serde(default, skip_serializing_if = "is_default")]
    pub peer_identity: PeerIdentity,
    /// The external authorizers `action: CUSTOM` policies name (`spec.provider.name`), shaped
    /// like Istio's `meshConfig.extensionProviders`. Warden calls them after authentication
    /// (`filter/src/authorizer.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ExtensionProvider>,
}

/// One `meshConfig.extensionProviders` entry (istio/api `mesh/v1alpha1/config.proto`
/// `MeshConfig.ExtensionProvider`). Only the authorization providers are read; other kinds
/// (tracing, logging) are refused, since they belong to `meshConfig`, not here.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    /// The name `spec.provider.name` refers to.
    pub name: String,
    /// An HTTP authorization service (Envoy's ext_authz `http_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_http: Option<ExtAuthzHttp>,
    /// A gRPC authorization service: accepted, not called (the policies naming it fail closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_grpc: Option<Value>,
}

/// `EnvoyExternalAuthorizationHttpProvider`, field for field, plus where Warden sends the
/// verified identities.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthzHttp {
    /// The service's host (`authz.foo.svc.cluster.local`).
    pub service: String,
    /// Its port.
    pub port: u16,
    /// The Envoy cluster to call it through; default Istio's name for the service,
    /// `outbound|<port>||<service>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// How long to wait for an answer (default `600s`, Istio's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Prepended to the request's path in the check request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Let the request through when the authorizer cannot be reached or fails (default: no).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    /// The status when the authorizer cannot be reached or fails and `failOpen` is off
    /// (default `"403"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_on_error: Option<String>,
    /// Request headers sent to the authorizer: exact names, `prefix*` or `*suffix`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_request_headers_in_check: Vec<String>,
    /// Fixed headers added to every check request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub include_additional_headers_in_check: BTreeMap<String, String>,
    /// Not supported (a Wasm filter deciding on request headers has no body yet): an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_request_body_in_check: Option<Value>,
    /// Authorizer response headers added to the upstream request when it allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_upstream_on_allow: Vec<String>,
    /// Authorizer response headers sent to the client when it denies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_deny: Vec<String>,
    /// Authorizer response headers sent to the client when it allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_allow: Vec<String>,
    /// Warden's: the check-request headers carrying the verified identities (the peer
    /// certificate's SPIFFE ID, the token's `iss/sub`). Defaults `x-warden-peer-principal` and
    /// `x-warden-request-principal`; a client's own copies are never forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_headers: Option<IdentityHeaders>,
}

/// Where the check request carries the verified identities.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityHeaders {
    /// The peer's principal (`spiffe://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_principal: Option<String>,
    /// The request principal (`<iss>/<sub>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_principal: Option<String>,
}

impl PluginConfig {
    /// Adds a policy object.
    pub fn push_policy(&mut self, policy: &Value) {
        if let Ok(raw) = serde_json::value::to_raw_value(policy) {
            self.policies.push(raw);
        }
    }

    /// Policies as JSON values (for tools; the module reads them one at a time).
    pub fn policy_values(&self) -> impl Iterator<Item = Result<Value, serde_json::Error>> + '_ {
        self.policies.iter().map(|raw| serde_json::from_str(raw.get()))
    }
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            role: Role::default(),
            workload: None,
            root_namespace: default_root_namespace(),
            trust_domain: default_trust_domain(),
            trust_domain_aliases: Vec::new(),
            policies: Vec::new(),
            exclude_namespaces: Vec::new(),
            jwks: JwksSettings::default(),
            token_cache: TokenCacheSettings::default(),
            crypto: Crypto::default(),
            log: LogSettings::default(),
            peer_identity: PeerIdentity::default(),
            providers: Vec::new(),
        }
    }
}

/// A workload: what policies select on.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's labels (pod labels in Kubernetes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `jwks`: fetching and keeping issuers' keys.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwksSettings {
    /// How often fetched key sets are refreshed. Default `300s` (what Istio gives Envoy's
    /// `remote_jwks.cache_duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
    /// How long the last good keys stay in use while refreshes fail. Past that, tokens of the
    /// issuer fail (closed). Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stale: Option<String>,
    /// The least time between two fetches of one issuer's keys triggered by tokens whose `kid`
    /// is unknown, so random `kid`s cannot be amplified into the identity provider.
    /// Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_refetch_interval: Option<String>,
    /// The Envoy cluster to fetch each `jwksUri` through, keyed by the URI. Default: Istio's
    /// name for the URI's host and port, `outbound|<port>||<host>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, String>,
}

/// `tokenCache`: verified tokens are remembered until they expire or keys change.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCacheSettings {
    /// Entries per worker; 0 turns the cache off. Default 1024.
    #[serde(default = "default_token_cache_size")]
    pub size: usize,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        TokenCacheSettings { size: default_token_cache_size() }
    }
}

/// `crypto`: where token signatures are verified.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Crypto {
    /// Envoy's BoringSSL (the `verify_signature` foreign function) for RS256/384/512 and
    /// ES256/384 when the host offers it; pure Rust for the rest. The default.
    #[default]
    Auto,
    /// Pure Rust inside the module for every algorithm.
    Wasm,
}

/// `role`: which filter an instance of the module is.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The HTTP filter: authentication and authorization. The default.
    #[default]
    Http,
    /// The network filter (`envoy.filters.network.wasm`, before the HTTP connection manager):
    /// records each connection's direct peer address for the HTTP filter.
    Connection,
}

/// `peerIdentity`: where the client certificate's identity comes from.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PeerIdentity {
    /// The verified client certificate itself (Envoy's `connection.peer_certificate` and
    /// `connection.subject_peer_certificate`): every URI SAN, every DNS SAN and the subject,
    /// as Envoy's RBAC sees them, with any connection manager settings. Read on a connection's
    /// first request and remembered for the connection. The default. (`uriSan`, the name of an
    /// earlier default that saw only the first URI SAN, is accepted for it.)
    #[default]
    #[serde(alias = "uriSan")]
    Certificate,
    /// The last element of `x-forwarded-client-cert`: every URI SAN, DNS SAN and the subject,
    /// as Envoy's RBAC sees them, and no extra host call. Only correct when the connection
    /// manager sets `forward_client_cert_details: SANITIZE_SET` (or `APPEND_FORWARD`) with
    /// `set_current_client_cert_details` for `uri`, `dns` and `subject`; under
    /// `FORWARD_ONLY` or `ALWAYS_FORWARD_ONLY` a client could write the header itself.
    Xfcc,
}

/// `log`: what Warden writes to Envoy's log and filter state (counters are always kept).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogSettings {
    /// Which decisions are logged at `info`: `none`, `denied` (the default: denials, AUDIT
    /// matches and dry-run policies that would have denied) or `all`.
    #[serde(default)]
    pub decisions: DecisionLog,
    /// Which decisions are stored in filter state `warden_decision` for access logs
    /// (`%FILTER_STATE(wasm.warden_decision:PLAIN)%`): `none`, `denied` (the default: every
    /// refused request, 401 and 403) or `all` (also the policy and rule that allowed each
    /// request, at one more host call per request; `benches/README.md` measures it). Denials
    /// also carry their rule in the response-code details whatever this says.
    #[serde(default)]
    pub filter_state: DecisionLog,
    /// Which decisions leave a structured audit record (one JSON object) in filter state
    /// `warden_audit` for a JSON access log (`%FILTER_STATE(wasm.warden_audit:PLAIN)%`): `none`
    /// (the default: the record costs a host call and is only worth it where an access log
    /// reads it), `denied` (denials, AUDIT matches, dry-run would-denies) or `all`.
    #[serde(default = "no_decisions", skip_serializing_if = "is_none")]
    pub audit: DecisionLog,
    /// Whether each audit record also carries what `warden replay` needs to decide the request
    /// again under other policies: the values of every header the workload's rules name, the
    /// token claims they read, and the destination address, port and SNI (read from Envoy for
    /// every request while this is on, as is the peer certificate). Header values and claims
    /// can be personal data: only those the policies read are kept, each bounded in length.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit_attributes: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            decisions: DecisionLog::Denied,
            filter_state: DecisionLog::Denied,
            audit: DecisionLog::None,
            audit_attributes: false,
        }
    }
}

fn no_decisions() -> DecisionLog {
    DecisionLog::None
}

fn is_none(log: &DecisionLog) -> bool {
    *log == DecisionLog::None
}

/// See [`LogSettings::decisions`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum DecisionLog {
    /// Nothing (counters only).
    None,
    /// Denials, AUDIT matches and dry-run would-denies.
    #[default]
    Denied,
    /// Every decision.
    All,
}

fn default_root_namespace() -> String {
    "istio-system".to_string()
}

fn default_trust_domain() -> String {
    "cluster.local".to_string()
}

fn default_token_cache_size() -> usize {
    1024
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The workload a configuration is read for: while a [`Scope`] is in force ([`scope`]), the
/// policies that cannot apply to it are dropped as they are read, so a sidecar never holds the
/// rest of the mesh (Envoy hands the configuration over in chunks; see `host/abi.rs`).
#[derive(Debug, Clone)]
pub struct Scope {
    /// The workload.
    pub workload: Workload,
    /// The root namespace, whose policies apply to every workload.
    pub root_namespace: String,
}

thread_local! {
    static SCOPE: std::cell::RefCell<Option<Scope>> = const { std::cell::RefCell::new(None) };
    static DROPPED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `read` with `scope` in force; returns its result and how many objects were dropped.
pub fn scope<T>(scope: Scope, read: impl FnOnce() -> T) -> (T, usize) {
    SCOPE.with(|s| *s.borrow_mut() = Some(scope));
    DROPPED.with(|d| d.set(0));
    let result = read();
    SCOPE.with(|s| *s.borrow_mut() = None);
    (result, DROPPED.with(std::cell::Cell::get))
}

/// What decides whether an object can apply: its kind, namespace and selector. Anything else in
/// it is not read here; an object whose head does not read like this is kept, so that the full
/// validation reports what is wrong with it.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: HeadMetadata,
    #[serde(default)]
    spec: HeadSpec,
}

#[derive(Deserialize)]
struct HeadMetadata {
    namespace: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HeadSpec {
    #[serde(default)]
    selector: Option<crate::config::WorkloadSelector>,
    #[serde(default)]
    target_ref: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    target_refs: Option<serde::de::IgnoredAny>,
}

/// Whether an object certainly does not apply to the scope's workload. Objects with
/// `targetRef(s)` are kept (they are reported as ignored), as is anything unreadable.
pub(crate) fn out_of_scope(raw: &[u8], scope: &Scope) -> bool {
    let Ok(head) = serde_json::from_slice::<Head>(raw) else { return false };
    let known = crate::config::istio::API_VERSIONS.contains(&head.api_version.as_str())
        && (head.kind == crate::config::KIND_AUTHORIZATION_POLICY
            || head.kind == crate::config::KIND_REQUEST_AUTHENTICATION);
    let gateway = head.spec.target_ref.is_some() || head.spec.target_refs.is_some();
    known
        && !gateway
        && !crate::config::scope::selects(
            &head.metadata.namespace,
            head.spec.selector.as_ref(),
            &scope.workload,
            &scope.root_namespace,
        )
}

fn scoped_policies<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Box<RawValue>>, D::Error> {
    struct Policies;
    impl<'de> serde::de::Visitor<'de> for Policies {
        type Value = Vec<Box<RawValue>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of Kubernetes objects")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let scope = SCOPE.with(|s| s.borrow().clone());
            let mut kept = Vec::new();
            while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                match &scope {
                    Some(scope) if out_of_scope(raw.get().as_bytes(), scope) => {
                        DROPPED.with(|d| d.set(d.get() + 1))
                    }
                    _ => kept.push(raw),
                }
            }
            Ok(kept)
        }
    }
    deserializer.deserialize_seq(Policies)
}

/// The plugin configuration as the module streams it from Envoy's buffer: the policies kept
/// as raw JSON as they are read (only those in the [`scope`] in force), every other setting as
/// a JSON value, which [`Streamed::into_config`] decodes by hand (`config/decode.rs` says why
/// not through serde's derive).
pub(crate) struct Streamed {
    policies: Vec<Box<RawValue>>,
    settings: serde_json::Map<String, Value>,
}

impl Streamed {
    /// The settings decoded as [`PluginConfig::from_value`] decodes them, with the policies.
    pub(crate) fn into_config(self) -> Result<PluginConfig, crate::config::ConfigErrors> {
        let mut config = PluginConfig::from_value(&Value::Object(self.settings))?;
        config.policies = self.policies;
        Ok(config)
    }
}

impl<'de> Deserialize<'de> for Streamed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Top;
        struct Policies;
        impl<'de> serde::de::DeserializeSeed<'de> for Policies {
            type Value = Vec<Box<RawValue>>;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                scoped_policies(deserializer)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Top {
            type Value = Streamed;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("struct PluginConfig")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Streamed, A::Error> {
                let mut policies = None;
                let mut settings = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "policies" {
                        if policies.is_some() {
                            return Err(serde::de::Error::duplicate_field("policies"));
                        }
                        policies = Some(map.next_value_seed(Policies)?);
                    } else if settings.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate field `{key}`"
                        )));
                    } else {
                        let value = map.next_value::<Value>()?;
                        settings.insert(key, value);
                    }
                }
                Ok(Streamed { policies: policies.unwrap_or_default(), settings })
            }
        }
        deserializer.deserialize_map(Top)
    }
}

impl PluginConfig {
    /// Decodes a plugin configuration from a JSON value as the module does (the command reads
    /// settings files with this, so that what it accepts is what the module accepts).
    pub fn from_value(value: &Value) -> Result<PluginConfig, crate::config::ConfigErrors> {
        crate::config::decode::plugin_config(value).map_err(|misfit| {
            let (path, message) = misfit.into_parts();
            crate::config::ConfigError::plugin(path, crate::config::Problem::Schema(message)).into()
        })
    }
}
