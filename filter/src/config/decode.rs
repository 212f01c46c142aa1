//! The configuration read from JSON values by hand: Istio's resources ([`super::istio`]) and
//! the plugin configuration's settings ([`super::plugin`]).
//!
//! Why not serde's derive, which the types still carry (the command serializes the settings,
//! and the tests use the derive as the reference): derived, each type is one serde_json
//! deserializer in the module, and the module's size is V8 code every sidecar compiles, about
//! 35 bytes of its memory per byte (issue "Mesh scale"): `AuthorizationPolicy`'s spec alone
//! retained 34 KB of code before `wasm-opt`, `RequestAuthentication`'s 18 KB, the plugin
//! configuration 45 KB (benches/README.md, "Where the module's size goes"). The policies are already a
//! `serde_json::Value` when their spec is read (the plugin configuration keeps them as raw
//! JSON, one read at a time), and the settings are small, so walking the tree costs one small
//! function per type, and it knows the field an error is in without reading the text back
//! ([`super::locate`]).
//!
//! Same schema, same answers, same words: unknown fields are refused inside `spec` and in the
//! settings and accepted in `metadata`, `null` is an absent optional field, required fields are
//! named when missing, and the messages are serde's own (its error constructors, as serde_json
//! renders them). Stricter in two shapes serde's derive let through, which Istio's API server
//! refuses: a list where an object goes (serde read it field by field, in declaration order)
//! and an enum written as an object (`{"DENY": null}`). The
//! tests decode every policy of the test corpora, a configuration with every setting, and
//! thousands of mutations of them both ways, and compare.

use std::collections::BTreeMap;

use serde::de::{Error as _, Unexpected};
use serde_json::Value;

use super::istio::{
    Action, AuthorizationPolicySpec, ClaimToHeader, Condition, JwtHeader, JwtRule, ObjectMeta,
    Operation, PolicyTargetReference, Presence, Provider, RequestAuthenticationSpec, Rule,
    RuleFrom, RuleTo, Source, WorkloadSelector,
};
use super::plugin::{
    Crypto, DecisionLog, ExtAuthzHttp, ExtensionProvider, IdentityHeaders, JwksSettings,
    LogSettings, PeerIdentity, PluginConfig, Role, TokenCacheSettings, Workload,
};

/// A value that does not fit the schema: where (innermost segment first, while it travels up)
/// and serde's message.
#[derive(Debug)]
pub(crate) struct Misfit {
    path: Vec<Segment>,
    message: String,
}

#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Misfit {
    fn new(message: String) -> Self {
        Misfit { path: Vec::new(), message }
    }

    fn in_key(mut self, key: &str) -> Self {
        self.path.push(Segment::Key(key.to_string()));
        self
    }

    fn in_index(mut self, index: usize) -> Self {
        self.path.push(Segment::Index(index));
        self
    }

    /// The field's path as [`super::locate`] writes it (`rules[0].to[0].operation.methods`) and
    /// the message.
    pub(crate) fn into_parts(self) -> (String, String) {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Key(key) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Segment::Index(index) => path.push_str(&format!("[{index}]")),
            }
        }
        (path, self.message)
    }
}

type Decoded<T> = Result<T, Misfit>;

/// serde's own words for a misfit, in serde_json's rendering of them (`null`, a float as
/// serde_json prints numbers).
fn serde_says(error: serde_json::Error) -> Misfit {
    Misfit::new(error.to_string())
}

/// serde's `Unexpected` for a JSON value.
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (None, Some(i), _) => Unexpected::Signed(i),
            (None, None, Some(f)) => Unexpected::Float(f),
            (None, None, None) => Unexpected::Other("number"),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn invalid_type(value: &Value, expected: &str) -> Misfit {
    serde_says(serde_json::Error::invalid_type(unexpected(value), &expected))
}

fn string(value: &Value) -> Decoded<String> {
    value.as_str().map(str::to_string).ok_or_else(|| invalid_type(value, "a string"))
}

fn boolean(value: &Value) -> Decoded<bool> {
    value.as_bool().ok_or_else(|| invalid_type(value, "a boolean"))
}

fn list<T>(value: &Value, item: fn(&Value) -> Decoded<T>) -> Decoded<Vec<T>> {
    let Value::Array(items) = value else { return Err(invalid_type(value, "a sequence")) };
    items.iter().enumerate().map(|(i, v)| item(v).map_err(|m| m.in_index(i))).collect()
}

fn strings(value: &Value) -> Decoded<Vec<String>> {
    list(value, string)
}

/// `null` is an absent optional field.
fn optional<T>(value: &Value, read: fn(&Value) -> Decoded<T>) -> Decoded<Option<T>> {
    if value.is_null() {
        Ok(None)
    } else {
        read(value).map(Some)
    }
}

fn optional_strings(value: &Value) -> Decoded<Option<Vec<String>>> {
    optional(value, strings)
}

fn string_map(value: &Value) -> Decoded<BTreeMap<String, String>> {
    let Value::Object(map) = value else { return Err(invalid_type(value, "a map")) };
    // Inserted one by one: collecting into a map compiles a stable sort for its entries' type.
    let mut strings = BTreeMap::new();
    for (k, v) in map {
        strings.insert(k.clone(), string(v).map_err(|m| m.in_key(k))?);
    }
    Ok(strings)
}

/// An object's members, each handed to `member` with its index in `fields` (the names and
/// aliases serde's derive lists, in its order). With `strict`, a member not in `fields` is
/// refused (`deny_unknown_fields`); otherwise it is skipped.
fn object(
    value: &Value,
    type_name: &str,
    fields: &'static [&'static str],
    strict: bool,
    member: &mut dyn FnMut(usize, &Value) -> Decoded<()>,
) -> Decoded<()> {
    let Value::Object(map) = value else {
        return Err(invalid_type(value, &format!("struct {type_name}")));
    };
    for (key, value) in map {
        match fields.iter().position(|f| f == key) {
            Some(index) => member(index, value).map_err(|m| m.in_key(key))?,
            None if strict => {
                return Err(serde_says(serde_json::Error::unknown_field(key, fields)).in_key(key));
            }
            None => {}
        }
    }
    Ok(())
}

/// A unit-only enum, written as one of `names` (serde's list: variants and their aliases);
/// `values` holds each name's variant.
fn variant<T: Copy>(value: &Value, names: &'static [&'static str], values: &[T]) -> Decoded<T> {
    let Value::String(name) = value else { return Err(invalid_type(value, "a string")) };
    match names.iter().position(|n| n == name).and_then(|i| values.get(i)) {
        Some(&v) => Ok(v),
        None => Err(serde_says(serde_json::Error::unknown_variant(name, names))),
    }
}

/// `metadata`: what Warden uses; anything else a cluster adds is accepted.
pub(crate) fn object_meta(value: &Value) -> Decoded<ObjectMeta> {
    let mut meta = ObjectMeta::default();
    object(value, "ObjectMeta", &["name", "namespace", "annotations"], false, &mut |i, v| {
        match i {
            0 => meta.name = string(v)?,
            1 => meta.namespace = string(v)?,
            _ => meta.annotations = string_map(v)?,
        }
        Ok(())
    })?;
    Ok(meta)
}

fn workload_selector(value: &Value) -> Decoded<WorkloadSelector> {
    let mut selector = WorkloadSelector::default();
    object(value, "WorkloadSelector", &["matchLabels"], true, &mut |_, v| {
        selector.match_labels = string_map(v)?;
        Ok(())
    })?;
    Ok(selector)
}

fn target_reference(value: &Value) -> Decoded<PolicyTargetReference> {
    let mut target = PolicyTargetReference::default();
    let fields: &'static [&'static str] = &["group", "kind", "name", "namespace"];
    object(value, "PolicyTargetReference", fields, true, &mut |i, v| {
        let text = string(v)?;
        match i {
            0 => target.group = text,
            1 => target.kind = text,
            2 => target.name = text,
            _ => target.namespace = text,
        }
        Ok(())
    })?;
    Ok(target)
}

const SOURCE_FIELDS: [&str; 14] = [
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "serviceAccounts",
    "notServiceAccounts",
    "trustDomains",
    "notTrustDomains",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
];

fn source(value: &Value) -> Decoded<Source> {
    let mut lists: [Option<Vec<String>>; 14] = Default::default();
    object(value, "Source", &SOURCE_FIELDS, true, &mut |i, v| {
        if let Some(slot) = lists.get_mut(i) {
            *slot = optional_strings(v)?;
        }
        Ok(())
    })?;
    let [principals, not_principals, request_principals, not_request_principals, namespaces, not_namespaces, service_accounts, not_service_accounts, trust_domains, not_trust_domains, ip_blocks, not_ip_blocks, remote_ip_blocks, not_remote_ip_blocks] =
        lists;
    Ok(Source {
        principals,
        not_principals,
        request_principals,
        not_request_principals,
        namespaces,
        not_namespaces,
        service_accounts,
        not_service_accounts,
        trust_domains,
        not_trust_domains,
        ip_blocks,
        not_ip_blocks,
        remote_ip_blocks,
        not_remote_ip_blocks,
    })
}

const OPERATION_FIELDS: [&str; 8] =
    ["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"];

fn operation(value: &Value) -> Decoded<Operation> {
    let mut lists: [Option<Vec<String>>; 8] = Default::default();
    object(value, "Operation", &OPERATION_FIELDS, true, &mut |i, v| {
        if let Some(slot) = lists.get_mut(i) {
            *slot = optional_strings(v)?;
        }
        Ok(())
    })?;
    let [hosts, not_hosts, ports, not_ports, methods, not_methods, paths, not_paths] = lists;
    Ok(Operation { hosts, not_hosts, ports, not_ports, methods, not_methods, paths, not_paths })
}

fn rule_from(value: &Value) -> Decoded<RuleFrom> {
    let mut from = RuleFrom::default();
    object(value, "RuleFrom", &["source"], true, &mut |_, v| {
        from.source = optional(v, source)?;
        Ok(())
    })?;
    Ok(from)
}

fn rule_to(value: &Value) -> Decoded<RuleTo> {
    let mut to = RuleTo::default();
    object(value, "RuleTo", &["operation"], true, &mut |_, v| {
        to.operation = optional(v, operation)?;
        Ok(())
    })?;
    Ok(to)
}

fn condition(value: &Value) -> Decoded<Condition> {
    let mut condition = Condition::default();
    object(value, "Condition", &["key", "values", "notValues"], true, &mut |i, v| {
        match i {
            0 => condition.key = string(v)?,
            1 => condition.values = optional_strings(v)?,
            _ => condition.not_values = optional_strings(v)?,
        }
        Ok(())
    })?;
    Ok(condition)
}

fn rule(value: &Value) -> Decoded<Rule> {
    let mut rule = Rule::default();
    object(value, "Rule", &["from", "to", "when"], true, &mut |i, v| {
        match i {
            0 => rule.from = optional(v, |v| list(v, rule_from))?,
            1 => rule.to = optional(v, |v| list(v, rule_to))?,
            _ => rule.when = optional(v, |v| list(v, condition))?,
        }
        Ok(())
    })?;
    Ok(rule)
}

fn provider(value: &Value) -> Decoded<Provider> {
    let mut provider = Provider::default();
    object(value, "Provider", &["name"], true, &mut |_, v| {
        provider.name = string(v)?;
        Ok(())
    })?;
    Ok(provider)
}

const ACTION_NAMES: &[&str] = &["ALLOW", "DENY", "AUDIT", "CUSTOM"];
const ACTIONS: [Action; 4] = [Action::Allow, Action::Deny, Action::Audit, Action::Custom];

/// `AuthorizationPolicy.spec`.
pub(crate) fn authorization_policy_spec(value: &Value) -> Decoded<AuthorizationPolicySpec> {
    let mut spec = AuthorizationPolicySpec::default();
    let fields: &'static [&'static str] =
        &["selector", "targetRef", "targetRefs", "rules", "action", "provider"];
    object(value, "AuthorizationPolicySpec", fields, true, &mut |i, v| {
        match i {
            0 => spec.selector = optional(v, workload_selector)?,
            1 => spec.target_ref = optional(v, target_reference)?,
            2 => spec.target_refs = list(v, target_reference)?,
            3 => spec.rules = list(v, rule)?,
            4 => spec.action = variant(v, ACTION_NAMES, &ACTIONS)?,
            _ => spec.provider = optional(v, provider)?,
        }
        Ok(())
    })?;
    Ok(spec)
}

fn jwt_header(value: &Value) -> Decoded<JwtHeader> {
    let mut header = JwtHeader::default();
    object(value, "JwtHeader", &["name", "prefix"], true, &mut |i, v| {
        match i {
            0 => header.name = string(v)?,
            _ => header.prefix = string(v)?,
        }
        Ok(())
    })?;
    Ok(header)
}

fn claim_to_header(value: &Value) -> Decoded<ClaimToHeader> {
    let mut output = ClaimToHeader::default();
    object(value, "ClaimToHeader", &["header", "claim"], true, &mut |i, v| {
        match i {
            0 => output.header = string(v)?,
            _ => output.claim = string(v)?,
        }
        Ok(())
    })?;
    Ok(output)
}

/// In serde's order: each field's name and aliases, sorted (`jwksUri`, then `jwks_uri`).
const JWT_RULE_FIELDS: [&str; 14] = [
    "issuer",
    "audiences",
    "jwksUri",
    "jwks_uri",
    "jwks",
    "fromHeaders",
    "fromParams",
    "fromCookies",
    "outputPayloadToHeader",
    "outputClaimToHeaders",
    "forwardOriginalToken",
    "timeout",
    "spaceDelimitedClaims",
    "presence",
];

const PRESENCE_NAMES: &[&str] = &["OPTIONAL", "REQUIRED"];
const PRESENCES: [Presence; 2] = [Presence::Optional, Presence::Required];

fn jwt_rule(value: &Value) -> Decoded<JwtRule> {
    let mut rule = JwtRule::default();
    let mut jwks_uri_seen = false;
    object(value, "JwtRule", &JWT_RULE_FIELDS, true, &mut |i, v| {
        match i {
            0 => rule.issuer = string(v)?,
            1 => rule.audiences = strings(v)?,
            // One field under two names: both given is a duplicate, as serde says it.
            2 | 3 if jwks_uri_seen => {
                return Err(serde_says(serde_json::Error::duplicate_field("jwksUri")));
            }
            2 | 3 => {
                jwks_uri_seen = true;
                rule.jwks_uri = string(v)?;
            }
            4 => rule.jwks = string(v)?,
            5 => rule.from_headers = list(v, jwt_header)?,
            6 => rule.from_params = strings(v)?,
            7 => rule.from_cookies = strings(v)?,
            8 => rule.output_payload_to_header = string(v)?,
            9 => rule.output_claim_to_headers = list(v, claim_to_header)?,
            10 => rule.forward_original_token = boolean(v)?,
            11 => rule.timeout = optional(v, string)?,
            12 => rule.space_delimited_claims = strings(v)?,
            _ => rule.presence = optional(v, |v| variant(v, PRESENCE_NAMES, &PRESENCES))?,
        }
        Ok(())
    })?;
    Ok(rule)
}

/// `RequestAuthentication.spec`.
pub(crate) fn request_authentication_spec(value: &Value) -> Decoded<RequestAuthenticationSpec> {
    let mut spec = RequestAuthenticationSpec::default();
    let fields: &'static [&'static str] = &["selector", "targetRef", "targetRefs", "jwtRules"];
    object(value, "RequestAuthenticationSpec", fields, true, &mut |i, v| {
        match i {
            0 => spec.selector = optional(v, workload_selector)?,
            1 => spec.target_ref = optional(v, target_reference)?,
            2 => spec.target_refs = list(v, target_reference)?,
            _ => spec.jwt_rules = list(v, jwt_rule)?,
        }
        Ok(())
    })?;
    Ok(spec)
}

/// An unsigned integer up to `max`, with serde's words for `expected` (`u16`, `usize`).
fn unsigned(value: &Value, max: u64, expected: &str) -> Decoded<u64> {
    let Value::Number(n) = value else { return Err(invalid_type(value, expected)) };
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) if u <= max => Ok(u),
        (Some(_), _) | (None, Some(_)) => {
            Err(serde_says(serde_json::Error::invalid_value(unexpected(value), &expected)))
        }
        (None, None) => Err(invalid_type(value, expected)),
    }
}

/// Any JSON value, kept as it is.
fn any(value: &Value) -> Decoded<Value> {
    Ok(value.clone())
}

/// Fields that must be present once the object's members are read, in declaration order:
/// serde's derive names the first one missing.
fn required(present: &[bool], names: &[&'static str]) -> Decoded<()> {
    match present.iter().zip(names).find(|(present, _)| !**present) {
        Some((_, name)) => Err(serde_says(serde_json::Error::missing_field(name))),
        None => Ok(()),
    }
}

fn workload(value: &Value) -> Decoded<Workload> {
    let mut workload = Workload::default();
    let mut namespace = false;
    object(value, "Workload", &["namespace", "labels"], true, &mut |i, v| {
        match i {
            0 => {
                workload.namespace = string(v)?;
                namespace = true;
            }
            _ => workload.labels = string_map(v)?,
        }
        Ok(())
    })?;
    required(&[namespace], &["namespace"])?;
    Ok(workload)
}

fn jwks_settings(value: &Value) -> Decoded<JwksSettings> {
    let mut jwks = JwksSettings::default();
    let fields: &'static [&'static str] =
        &["refreshInterval", "maxStale", "minRefetchInterval", "clusters"];
    object(value, "JwksSettings", fields, true, &mut |i, v| {
        match i {
            0 => jwks.refresh_interval = optional(v, string)?,
            1 => jwks.max_stale = optional(v, string)?,
            2 => jwks.min_refetch_interval = optional(v, string)?,
            _ => jwks.clusters = string_map(v)?,
        }
        Ok(())
    })?;
    Ok(jwks)
}

fn token_cache(value: &Value) -> Decoded<TokenCacheSettings> {
    let mut cache = TokenCacheSettings::default();
    object(value, "TokenCacheSettings", &["size"], true, &mut |_, v| {
        let size = unsigned(v, usize::MAX as u64, "usize")?;
        cache.size = usize::try_from(size).unwrap_or(usize::MAX);
        Ok(())
    })?;
    Ok(cache)
}

const DECISION_LOG_NAMES: &[&str] = &["none", "denied", "all"];
const DECISION_LOGS: [DecisionLog; 3] = [DecisionLog::None, DecisionLog::Denied, DecisionLog::All];

fn log_settings(value: &Value) -> Decoded<LogSettings> {
    let mut log = LogSettings::default();
    let fields: &'static [&'static str] = &["decisions", "filterState", "audit", "auditAttributes"];
    object(value, "LogSettings", fields, true, &mut |i, v| {
        match i {
            0 => log.decisions = variant(v, DECISION_LOG_NAMES, &DECISION_LOGS)?,
            1 => log.filter_state = variant(v, DECISION_LOG_NAMES, &DECISION_LOGS)?,
            2 => log.audit = variant(v, DECISION_LOG_NAMES, &DECISION_LOGS)?,
            _ => log.audit_attributes = boolean(v)?,
        }
        Ok(())
    })?;
    Ok(log)
}

fn identity_headers(value: &Value) -> Decoded<IdentityHeaders> {
    let mut headers = IdentityHeaders::default();
    let fields: &'static [&'static str] = &["peerPrincipal", "requestPrincipal"];
    object(value, "IdentityHeaders", fields, true, &mut |i, v| {
        match i {
            0 => headers.peer_principal = optional(v, string)?,
            _ => headers.request_principal = optional(v, string)?,
        }
        Ok(())
    })?;
    Ok(headers)
}

const EXT_AUTHZ_HTTP_FIELDS: [&str; 14] = [
    "service",
    "port",
    "cluster",
    "timeout",
    "pathPrefix",
    "failOpen",
    "statusOnError",
    "includeRequestHeadersInCheck",
    "includeAdditionalHeadersInCheck",
    "includeRequestBodyInCheck",
    "headersToUpstreamOnAllow",
    "headersToDownstreamOnDeny",
    "headersToDownstreamOnAllow",
    "identityHeaders",
];

fn ext_authz_http(value: &Value) -> Decoded<ExtAuthzHttp> {
    let mut http = ExtAuthzHttp::default();
    let (mut service, mut port) = (false, false);
    object(value, "ExtAuthzHttp", &EXT_AUTHZ_HTTP_FIELDS, true, &mut |i, v| {
        match i {
            0 => {
                http.service = string(v)?;
                service = true;
            }
            1 => {
                let number = unsigned(v, u64::from(u16::MAX), "u16")?;
                http.port = u16::try_from(number).unwrap_or(u16::MAX);
                port = true;
            }
            2 => http.cluster = optional(v, string)?,
            3 => http.timeout = optional(v, string)?,
            4 => http.path_prefix = optional(v, string)?,
            5 => http.fail_open = boolean(v)?,
            6 => http.status_on_error = optional(v, string)?,
            7 => http.include_request_headers_in_check = strings(v)?,
            8 => http.include_additional_headers_in_check = string_map(v)?,
            9 => http.include_request_body_in_check = optional(v, any)?,
            10 => http.headers_to_upstream_on_allow = strings(v)?,
            11 => http.headers_to_downstream_on_deny = strings(v)?,
            12 => http.headers_to_downstream_on_allow = strings(v)?,
            _ => http.identity_headers = optional(v, identity_headers)?,
        }
        Ok(())
    })?;
    required(&[service, port], &["service", "port"])?;
    Ok(http)
}

fn extension_provider(value: &Value) -> Decoded<ExtensionProvider> {
    let mut provider = ExtensionProvider {
        name: String::new(),
        envoy_ext_authz_http: None,
        envoy_ext_authz_grpc: None,
    };
    let mut name = false;
    let fields: &'static [&'static str] = &["name", "envoyExtAuthzHttp", "envoyExtAuthzGrpc"];
    object(value, "ExtensionProvider", fields, true, &mut |i, v| {
        match i {
            0 => {
                provider.name = string(v)?;
                name = true;
            }
            1 => provider.envoy_ext_authz_http = optional(v, ext_authz_http)?,
            _ => provider.envoy_ext_authz_grpc = optional(v, any)?,
        }
        Ok(())
    })?;
    required(&[name], &["name"])?;
    Ok(provider)
}

/// The plugin configuration's fields, in serde's order: `policies` is among them.
const PLUGIN_FIELDS: [&str; 13] = [
    "role",
    "workload",
    "rootNamespace",
    "trustDomain",
    "trustDomainAliases",
    "policies",
    "excludeNamespaces",
    "jwks",
    "tokenCache",
    "crypto",
    "log",
    "peerIdentity",
    "providers",
];

/// The plugin configuration's settings, and its policies when `value` has them (each kept as
/// raw JSON; the module streams them apart, see `enforcer::read_config`).
pub(crate) fn plugin_config(value: &Value) -> Decoded<PluginConfig> {
    let mut config = PluginConfig::default();
    object(value, "PluginConfig", &PLUGIN_FIELDS, true, &mut |i, v| {
        match i {
            0 => {
                config.role = variant(v, &["http", "connection"], &[Role::Http, Role::Connection])?
            }
            1 => config.workload = optional(v, workload)?,
            2 => config.root_namespace = string(v)?,
            3 => config.trust_domain = string(v)?,
            4 => config.trust_domain_aliases = strings(v)?,
            5 => {
                let Value::Array(items) = v else {
                    return Err(invalid_type(v, "a list of Kubernetes objects"));
                };
                config.policies = items
                    .iter()
                    .map(serde_json::value::to_raw_value)
                    .collect::<Result<_, _>>()
                    .map_err(|e| Misfit::new(e.to_string()))?;
            }
            6 => config.exclude_namespaces = strings(v)?,
            7 => config.jwks = jwks_settings(v)?,
            8 => config.token_cache = token_cache(v)?,
            9 => config.crypto = variant(v, &["auto", "wasm"], &[Crypto::Auto, Crypto::Wasm])?,
            10 => config.log = log_settings(v)?,
            11 => {
                // `uriSan`, the name of an earlier default, is an alias of `certificate`.
                let names = &["certificate", "uriSan", "xfcc"];
                let identities =
                    [PeerIdentity::Certificate, PeerIdentity::Certificate, PeerIdentity::Xfcc];
                config.peer_identity = variant(v, names, &identities)?;
            }
            _ => config.providers = list(v, extension_provider)?,
        }
        Ok(())
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::deserialize;
    use serde::de::DeserializeOwned;
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Every JSON pointer into `value`, the root included.
    fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        let children: Vec<(String, &Value)> = match value {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Value::Array(items) => {
                items.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect()
            }
            _ => Vec::new(),
        };
        for (key, child) in children {
            pointers(child, format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")), out);
        }
    }

    /// The spec, and each of its values replaced by every shape, removed, wrapped in a list, or
    /// given an unknown member.
    fn mutations(spec: &Value) -> Vec<Value> {
        let shapes = [
            json!(null),
            json!(true),
            json!(7),
            json!(-3),
            json!(2.5),
            json!(1e300),
            json!("x"),
            json!("DENY"),
            json!(""),
            json!([]),
            json!(["a", 5]),
            json!([{}]),
            json!({}),
            json!({"k": "v"}),
            json!({"DENY": null}),
        ];
        let mut all = Vec::new();
        pointers(spec, String::new(), &mut all);
        let mut out = vec![spec.clone()];
        for pointer in &all {
            let Some(original) = spec.pointer(pointer) else { continue };
            let mut replace = |value: Value| {
                let mut doc = spec.clone();
                if let Some(slot) = doc.pointer_mut(pointer) {
                    *slot = value;
                    out.push(doc);
                }
            };
            for shape in &shapes {
                replace(shape.clone());
            }
            replace(json!([original.clone()]));
            if let Value::Object(map) = original {
                let mut with_unknown = map.clone();
                with_unknown.insert("bogus".into(), json!(1));
                replace(Value::Object(with_unknown));
            }
            if let Some((parent, key)) = pointer.rsplit_once('/') {
                let mut doc = spec.clone();
                let key = key.replace("~1", "/").replace("~0", "~");
                if let Some(Value::Object(map)) = doc.pointer_mut(parent) {
                    map.remove(&key);
                    out.push(doc);
                }
            }
        }
        out
    }

    /// The hand decoder against serde's derive on one document: the same value, or an error at
    /// the same field with the same message; or, in the two shapes the decoder refuses and
    /// serde's derive took, that refusal.
    fn agree<T: DeserializeOwned + PartialEq + std::fmt::Debug>(
        doc: &Value,
        decode: fn(&Value) -> Decoded<T>,
    ) -> bool {
        agree_as(doc, decode, |t| t)
    }

    /// [`agree`], comparing what `compared` makes of each decoded value.
    fn agree_as<T: DeserializeOwned, C: PartialEq + std::fmt::Debug>(
        doc: &Value,
        decode: fn(&Value) -> Decoded<T>,
        compared: fn(T) -> C,
    ) -> bool {
        let ours = decode(doc).map(compared).map_err(Misfit::into_parts);
        let reference = deserialize::<T>(doc).map(compared);
        // The two shapes the decoder refuses: a list for a struct, an object for an enum.
        let stricter = |(_, message): &(String, String)| {
            message.starts_with("invalid type: sequence, expected struct ")
                || message == "invalid type: map, expected a string"
        };
        match (ours, reference) {
            (Ok(ours), Ok(reference)) => {
                assert_eq!(ours, reference, "{doc}");
                true
            }
            (Err(ours), Err(reference)) if ours == reference => true,
            // Where serde's derive read a list as the struct's fields, or an object as an enum,
            // it failed inside.
            (Err(ours), Err(_)) if stricter(&ours) => false,
            // serde_json says only "expected value" for an enum that is not a string, where a
            // list's `[` is behind the position `locate` reads.
            (Err(ours), Err(reference)) if reference.1 == "expected value" => {
                assert!(reference.0.starts_with(&ours.0), "{doc}: {ours:?} {reference:?}");
                assert!(ours.1.ends_with("expected a string"), "{doc}: {ours:?}");
                true
            }
            (Err(ours), Err(reference)) => panic!("{doc}: {ours:?} against {reference:?}"),
            (Err(ours), Ok(_)) => {
                assert!(stricter(&ours), "refused what serde's derive took: {doc}: {ours:?}");
                false
            }
            (Ok(_), Err(reference)) => {
                panic!("accepted what serde's derive refused: {doc}: {reference:?}")
            }
        }
    }

    fn corpus_specs() -> Vec<Value> {
        let files = [
            include_str!("../../tests/authz/combination.yaml"),
            include_str!("../../tests/authz/conditions.yaml"),
            include_str!("../../tests/authz/errors.yaml"),
            include_str!("../../tests/authz/fail_closed.yaml"),
            include_str!("../../tests/authz/jwt.yaml"),
            include_str!("../../tests/authz/operation.yaml"),
            include_str!("../../tests/authz/source.yaml"),
        ];
        let mut specs = Vec::new();
        for file in files {
            let cases: Value = serde_yaml_ng::from_str(file).unwrap();
            for case in cases.as_array().unwrap() {
                for object in [case.get("object"), case.get("policy")].into_iter().flatten() {
                    if let Some(spec) = object.get("spec") {
                        specs.push(spec.clone());
                    }
                }
                if let Some(policies) = case.get("policies").and_then(Value::as_array) {
                    specs.extend(policies.iter().filter_map(|p| p.get("spec").cloned()));
                }
            }
        }
        specs
    }

    #[test]
    fn authorization_policies_decode_as_serde_derives_them() {
        let every_field = json!({
            "selector": {"matchLabels": {"app": "a"}},
            "targetRef": {"group": "g", "kind": "Gateway", "name": "n", "namespace": "ns"},
            "targetRefs": [{"kind": "Service", "name": "s"}],
            "action": "CUSTOM", "provider": {"name": "ext"},
            "rules": [{
                "from": [{"source": {"principals": ["a"], "notPrincipals": ["b"],
                    "requestPrincipals": ["c"], "notRequestPrincipals": ["d"],
                    "namespaces": ["e"], "notNamespaces": ["f"], "serviceAccounts": ["g"],
                    "notServiceAccounts": ["h"], "trustDomains": ["i"], "notTrustDomains": ["j"],
                    "ipBlocks": ["1.2.3.4"], "notIpBlocks": ["5.6.7.8/8"],
                    "remoteIpBlocks": ["::1"], "notRemoteIpBlocks": ["::2"]}}],
                "to": [{"operation": {"hosts": ["h"], "notHosts": ["i"], "ports": ["80"],
                    "notPorts": ["81"], "methods": ["GET"], "notMethods": ["PUT"],
                    "paths": ["/a"], "notPaths": ["/b"]}}],
                "when": [{"key": "request.headers[x]", "values": ["v"], "notValues": ["w"]}]
            }]
        });
        let specs = corpus_specs();
        assert!(specs.len() > 100, "{}", specs.len());
        let (mut agreed, mut stricter) = (0, 0);
        for spec in std::iter::once(&every_field).chain(&specs) {
            for doc in mutations(spec) {
                if agree(&doc, authorization_policy_spec) {
                    agreed += 1;
                } else {
                    stricter += 1;
                }
            }
        }
        assert!(agreed > 10_000 && stricter > 100, "{agreed} {stricter}");
    }

    #[test]
    fn request_authentications_decode_as_serde_derives_them() {
        let every_field = json!({
            "selector": {"matchLabels": {"app": "a"}},
            "targetRef": {"kind": "Gateway", "name": "n"},
            "jwtRules": [{
                "issuer": "https://issuer", "audiences": ["a"], "jwksUri": "https://issuer/jwks",
                "fromHeaders": [{"name": "x-token", "prefix": "Bearer "}],
                "fromParams": ["t"], "fromCookies": ["c"], "outputPayloadToHeader": "x-payload",
                "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}],
                "forwardOriginalToken": true, "timeout": "5s",
                "spaceDelimitedClaims": ["scope"], "presence": "REQUIRED"
            }, {"issuer": "i", "jwks": "{\"keys\": []}", "jwks_uri": "https://other"}]
        });
        let mut agreed = 0;
        for doc in mutations(&every_field) {
            agreed += usize::from(agree(&doc, request_authentication_spec));
        }
        // Both spellings of one field at once: the duplicate serde reports.
        let both = json!({"jwtRules": [{"jwksUri": "https://a", "jwks_uri": "https://b"}]});
        assert!(agree(&both, request_authentication_spec));
        assert!(agreed > 500, "{agreed}");
    }

    #[test]
    fn plugin_settings_decode_as_serde_derives_them() {
        let every_field = json!({
            "role": "http", "rootNamespace": "root", "trustDomain": "td",
            "trustDomainAliases": ["a", "b"], "excludeNamespaces": ["x"],
            "workload": {"namespace": "api", "labels": {"app": "x"}},
            "policies": [{"kind": "AuthorizationPolicy"}, 5],
            "jwks": {"refreshInterval": "5s", "maxStale": "1h", "minRefetchInterval": "30s",
                "clusters": {"https://u": "c"}},
            "tokenCache": {"size": 5}, "crypto": "wasm", "peerIdentity": "uriSan",
            "log": {"decisions": "all", "filterState": "none", "audit": "denied",
                "auditAttributes": true},
            "providers": [{"name": "p", "envoyExtAuthzHttp": {
                "service": "s", "port": 80, "cluster": "c", "timeout": "1s", "pathPrefix": "/p",
                "failOpen": true, "statusOnError": "503",
                "includeRequestHeadersInCheck": ["a"],
                "includeAdditionalHeadersInCheck": {"k": "v"},
                "includeRequestBodyInCheck": {"maxRequestBytes": 10},
                "headersToUpstreamOnAllow": ["u"], "headersToDownstreamOnDeny": ["d"],
                "headersToDownstreamOnAllow": ["o"],
                "identityHeaders": {"peerPrincipal": "x-p", "requestPrincipal": "x-r"}}},
                {"name": "g", "envoyExtAuthzGrpc": {"service": "g", "port": 9000}}]
        });
        let as_json = |config: PluginConfig| serde_json::to_value(config).unwrap();
        let (mut agreed, mut stricter) = (0, 0);
        for doc in mutations(&every_field) {
            if agree_as(&doc, plugin_config, as_json) {
                agreed += 1;
            } else {
                stricter += 1;
            }
        }
        // Out of range for the field's integer type, and the defaults of a given object.
        for (pointer, value) in [
            ("/tokenCache/size", json!(u64::MAX)),
            ("/providers/0/envoyExtAuthzHttp/port", json!(65536)),
            ("/providers/0/envoyExtAuthzHttp/port", json!(-1)),
            ("/log", json!({})),
            ("/tokenCache", json!({})),
            ("/peerIdentity", json!("certificate")),
        ] {
            let mut doc = every_field.clone();
            *doc.pointer_mut(pointer).unwrap() = value;
            assert!(agree_as(&doc, plugin_config, as_json), "{doc}");
        }
        assert!(agreed > 1_000 && stricter > 10, "{agreed} {stricter}");
    }

    #[test]
    fn metadata_accepts_what_a_cluster_adds() {
        let meta = json!({"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "1",
            "annotations": {"istio.io/dry-run": "true"}, "labels": {"a": "b"}});
        for doc in mutations(&meta) {
            agree(&doc, object_meta);
        }
    }
}
