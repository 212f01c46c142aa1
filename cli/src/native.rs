//! `warden compile --format envoy-native`: the same Istio objects as Envoy's own
//! `envoy.filters.http.jwt_authn` and `envoy.filters.http.rbac` filters, built the way istiod
//! builds them for one sidecar.
//!
//! This is the other side of every comparison Warden makes with what Istio gives users today:
//! the benchmark harness (`benches/envoy/`) and the differential test run one Envoy with these
//! filters and one with Warden, generated from the same objects, and compare them.
//!
//! What istiod does, and so what this does (istio/istio at 2026-08):
//! - `pilot/pkg/security/authn/policy_applier.go` `convertToEnvoyJwtConfig`: every
//!   `jwtRules` entry of every `RequestAuthentication` that selects the workload, sorted by
//!   issuer, becomes a provider `origins-<i>`; the requirement is `requires_any {P, allow_missing}`
//!   for one provider, `requires_any {P1 … Pn, requires_all {any(Pi, allow_missing) …}}` for
//!   several; `payload_in_metadata: payload`, `normalize_payload_in_metadata` with `permission`
//!   and `scope` always, `bypass_cors_preflight: true`. Inline `jwks` becomes `local_jwks`; a
//!   `jwksUri` becomes `remote_jwks` through Istio's cluster name for its host and port
//!   (`outbound|<port>||<host>`, or `jwks.clusters` of the settings) with a 5 minute cache
//!   (istiod's `envoy`/`hybrid` fetch modes; its default mode fetches the keys itself and
//!   inlines them, which a command without network access cannot do).
//! - `pilot/pkg/security/authz/builder/builder.go` and `model/{model,generator}.go`: one RBAC
//!   filter per action, AUDIT (`LOG`), then DENY, then ALLOW; one Envoy policy per rule named
//!   `ns[<ns>]-policy[<name>]-rule[<i>]`; a policy without rules becomes one that never matches;
//!   `istio.io/dry-run` policies go to `shadow_rules`. Each rule is `permissions: [and_rules]`
//!   (one per `to`, plus the `when` keys that are permissions) and `principals: [and_ids]` (one
//!   per `from`, plus the `when` keys that are principals), fields in istiod's order, every value
//!   through istiod's matchers (`spiffe://` principals with the trust domain aliases, namespace
//!   and service-account regexes, `url_path` or `uri_template` paths, case-insensitive hosts,
//!   header matchers, metadata matchers on the `jwt_authn` payload for request principals and
//!   claims).
//!
//! What it refuses: anything Warden itself refuses (the configuration is validated by the
//! module's own code first, so both sides always start from the same accepted objects), and
//! `trustDomains`/`notTrustDomains`/`source.trustDomain` (Istio 1.30's trust-domain matchers,
//! not translated here).

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Map, Value};
use warden::authn::CERTIFICATE_BOUND_ANNOTATION;
use warden::config::istio::{
    Action, AuthorizationPolicySpec, Condition, JwtRule, Operation, Rule, Source, WorkloadSelector,
};
use warden::config::{
    self, ConfigErrors, Document, Object, ObjectRef, PluginConfig, Resource, Workload,
};
use warden::enforcer::Enforcer;

/// The filter name Istio gives the JWT filter, and the metadata namespace RBAC reads claims from.
const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
/// The RBAC filter name.
const RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// `payload_in_metadata` (Istio's constant since 1.21, `filters.EnvoyJwtFilterPayload`).
const PAYLOAD_KEY: &str = "payload";
/// istiod's `rbacPolicyMatchNever` and the cache duration it gives remote JWKS.
const REMOTE_JWKS_CACHE: &str = "300s";
/// `jwtRules[].timeout` default (istio/api `request_authentication.proto`).
const DEFAULT_JWKS_TIMEOUT: &str = "5s";

/// Why the objects cannot be expressed as Envoy's native filters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NativeError {
    /// No workload: istiod builds filters per sidecar, from the policies that select it.
    #[error(
        "envoy-native builds the filters of one workload, as istiod does for each sidecar: \
         give --workload NAMESPACE[,LABEL=VALUE…] or `workload` in --settings"
    )]
    MissingWorkload,
    /// Warden refuses the configuration: the native side is only built from objects both
    /// sides accept.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// A field this translator does not express as native filters.
    #[error("{object}: {field}: not translated to Envoy's native filters ({why})")]
    Untranslated {
        /// The object.
        object: ObjectRef,
        /// The field, e.g. `spec.rules[0].from[0].source.trustDomains`.
        field: String,
        /// What to do about it.
        why: &'static str,
    },
}

/// The native filters for `config`'s workload, in Istio's order: `jwt_authn` (when a
/// `RequestAuthentication` selects the workload), then RBAC for AUDIT, DENY and ALLOW (each
/// when a policy of that action selects it). Each element is an HTTP connection manager
/// `http_filters` entry (`name`, `typed_config`); the router goes after them.
pub fn http_filters(config: &PluginConfig) -> Result<Vec<Value>, Vec<NativeError>> {
    let Some(workload) = config.workload.as_ref() else {
        return Err(vec![NativeError::MissingWorkload]);
    };
    if let Err(errors) = Enforcer::new(config, None) {
        return Err(vec![NativeError::Invalid(errors)]);
    }
    let bundle = TrustDomains::from_config(config);
    let mut jwt_rules: Vec<&JwtRule> = Vec::new();
    let mut authz: Vec<(ObjectRef, &Object<AuthorizationPolicySpec>)> = Vec::new();
    let mut errors = Vec::new();
    let resources: Vec<Resource> = config
        .policy_values()
        .filter_map(|value| match config::parse_document(&value.ok()?) {
            Ok(Document::Resource(resource)) => Some(*resource),
            // Enforcer::new has refused anything else.
            _ => None,
        })
        .collect();
    for resource in &resources {
        match resource {
            Resource::RequestAuthentication(object) => {
                if applies(&object.metadata, object.spec.selector.as_ref(), workload, config) {
                    let annotations = &object.metadata.annotations;
                    if annotations.get(CERTIFICATE_BOUND_ANNOTATION).map(String::as_str)
                        == Some("true")
                    {
                        // Translating the rule without the binding would hand the sidecar an
                        // ordinary bearer-token check: refuse rather than weaken it.
                        errors.push(NativeError::Untranslated {
                            object: resource.object_ref(),
                            field: format!("metadata.annotations[{CERTIFICATE_BOUND_ANNOTATION}]"),
                            why: "Envoy's jwt_authn does not check a token's certificate binding \
                                  (RFC 8705 cnf.x5t#S256); only Warden enforces it",
                        });
                    }
                    jwt_rules.extend(object.spec.jwt_rules.iter());
                }
            }
            Resource::AuthorizationPolicy(object) => {
                if applies(&object.metadata, object.spec.selector.as_ref(), workload, config) {
                    authz.push((resource.object_ref(), object));
                }
            }
        }
    }

    let mut filters = Vec::new();
    // CUSTOM first: istiod puts its shadow RBAC and ext_authz before jwt_authn.
    match custom_filters(&authz, config, &bundle) {
        Ok(custom) => filters.extend(custom),
        Err(mut found) => errors.append(&mut found),
    }
    if !jwt_rules.is_empty() {
        // Istio sorts the rules of all policies by issuer (a stable sort: `slices.SortBy`).
        jwt_rules.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        filters.push(jwt_authn(&jwt_rules, config));
    }
    for action in [Action::Audit, Action::Deny, Action::Allow] {
        let mut enforced = Map::new();
        let mut shadow = Map::new();
        let (mut any_enforced, mut any_shadow) = (false, false);
        for (at, object) in authz.iter().filter(|(_, o)| o.spec.action == action) {
            let dry_run = dry_run(&object.metadata.annotations);
            let target = if dry_run { &mut shadow } else { &mut enforced };
            if dry_run {
                any_shadow = true;
            } else {
                any_enforced = true;
            }
            if object.spec.rules.is_empty() {
                let (ns, name) = (&object.metadata.namespace, &object.metadata.name);
                target.insert(policy_name(ns, name, 0), match_never());
            }
            rbac_policies(at, object, "", &bundle, target, &mut errors);
        }
        if any_enforced || any_shadow {
            filters.push(rbac_filter(
                action,
                any_enforced.then_some(enforced),
                any_shadow.then_some(shadow),
            ));
        }
    }
    if errors.is_empty() {
        Ok(filters)
    } else {
        Err(errors)
    }
}

/// Renders the filters as `{http_filters: [...]}`: YAML with a header naming the command, or
/// pretty JSON when `json`.
pub fn render(filters: &[Value], inputs: &[String], json: bool) -> Result<String> {
    let document = json!({ "http_filters": filters });
    if json {
        let mut text = serde_json::to_string_pretty(&document)?;
        text.push('\n');
        return Ok(text);
    }
    let body = serde_yaml_ng::to_string(&document).context("rendering YAML")?;
    Ok(format!(
        "# Generated by `warden compile {} --format envoy-native`: do not edit.\n\
         # Envoy's native filters for the same policies, as istiod builds them: put these\n\
         # http_filters before the router of the workload's inbound connection manager.\n{body}",
        inputs.join(" ")
    ))
}

/// `warden compile --format envoy-native`: the filters for `config` (the plugin configuration
/// `compile` has built from the files, the settings and `--workload`), or every error at once.
pub fn compile(config: &PluginConfig, inputs: &[String], json: bool) -> Result<String> {
    match http_filters(config) {
        Ok(filters) => render(&filters, inputs, json),
        Err(errors) => {
            for error in &errors {
                eprintln!("warden: error: {error}");
            }
            bail!("{} error(s); nothing written", errors.len())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Which objects apply (istio `pilot/pkg/model/policyattachment.go`), written out again here
// rather than shared with the module, so that the differential test compares two
// implementations.

fn applies(
    metadata: &config::ObjectMeta,
    selector: Option<&WorkloadSelector>,
    workload: &Workload,
    config: &PluginConfig,
) -> bool {
    let in_scope =
        metadata.namespace == workload.namespace || metadata.namespace == config.root_namespace;
    in_scope
        && selector
            .is_none_or(|s| s.match_labels.iter().all(|(k, v)| workload.labels.get(k) == Some(v)))
}

/// Go's `strconv.ParseBool`, which istiod applies to `istio.io/dry-run` (Warden has refused
/// values it cannot parse).
fn dry_run(annotations: &BTreeMap<String, String>) -> bool {
    matches!(
        annotations.get("istio.io/dry-run").map(String::as_str),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True")
    )
}

fn policy_name(namespace: &str, name: &str, rule: usize) -> String {
    format!("ns[{namespace}]-policy[{name}]-rule[{rule}]")
}

/// istiod's `rbacPolicyMatchNever`, for a policy without rules.
fn match_never() -> Value {
    json!({
        "permissions": [{ "not_rule": { "any": true } }],
        "principals": [{ "not_id": { "any": true } }],
    })
}

/// One RBAC policy per rule of `object`, named as istiod names them (after `prefix`).
fn rbac_policies(
    at: &ObjectRef,
    object: &Object<AuthorizationPolicySpec>,
    prefix: &str,
    bundle: &TrustDomains,
    into: &mut Map<String, Value>,
    errors: &mut Vec<NativeError>,
) {
    let (ns, name) = (&object.metadata.namespace, &object.metadata.name);
    for (index, rule) in object.spec.rules.iter().enumerate() {
        match rbac_policy(rule, index, at, ns, bundle) {
            Ok(policy) => {
                into.insert(format!("{prefix}{}", policy_name(ns, name, index)), policy);
            }
            Err(error) => errors.push(error),
        }
    }
}

fn rbac_filter(
    action: Action,
    rules: Option<Map<String, Value>>,
    shadow: Option<Map<String, Value>>,
) -> Value {
    let envoy_action = match action {
        Action::Audit => "LOG",
        Action::Deny => "DENY",
        // CUSTOM goes through `custom_filters`.
        Action::Allow | Action::Custom => "ALLOW",
    };
    let mut config = Map::new();
    config.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"),
    );
    if let Some(policies) = rules {
        config.insert("rules".into(), json!({ "action": envoy_action, "policies": policies }));
    }
    // istiod derives the prefix from the shadow rules' action, and a missing shadow RBAC reads
    // as ALLOW in Go (`GetAction()` on nil), so every filter without dry-run policies carries
    // `istio_dry_run_allow_`.
    let prefix = match (&shadow, envoy_action) {
        (Some(_), "DENY") => "istio_dry_run_deny_",
        (Some(_), "LOG") => "",
        _ => "istio_dry_run_allow_",
    };
    if let Some(policies) = shadow {
        config
            .insert("shadow_rules".into(), json!({ "action": envoy_action, "policies": policies }));
    }
    if !prefix.is_empty() {
        config.insert("shadow_rules_stat_prefix".into(), json!(prefix));
    }
    json!({ "name": RBAC_FILTER, "typed_config": config })
}

/// istiod's CUSTOM translation (`pilot/pkg/security/authz/builder/builder.go` and
/// `extauthz.go`): an RBAC filter whose shadow rules (action DENY, policies named
/// `istio-ext-authz-<rule>`, stat prefix `istio_ext_authz_`) mark the requests CUSTOM rules
/// match, then an ext_authz filter enabled only for them (`filter_enabled_metadata` on the
/// shadow effective policy id). One HTTP provider per workload, as istiod allows by default.
fn custom_filters(
    authz: &[(ObjectRef, &Object<AuthorizationPolicySpec>)],
    config: &PluginConfig,
    bundle: &TrustDomains,
) -> Result<Vec<Value>, Vec<NativeError>> {
    let custom: Vec<_> = authz
        .iter()
        // A dry-run CUSTOM policy never gets here: the module's validation refuses it.
        .filter(|(_, o)| o.spec.action == Action::Custom)
        .collect();
    let Some((first, _)) = custom.first() else { return Ok(Vec::new()) };
    let mut errors = Vec::new();
    let mut names: Vec<&str> = custom
        .iter()
        .filter_map(|(_, o)| o.spec.provider.as_ref().map(|p| p.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let provider = match names.as_slice() {
        [name] => config.providers.iter().find(|p| p.name == *name),
        _ => None,
    };
    // The provider as the module compiled it: its cluster (the default istiod names) and its
    // timeout, parsed once.
    let compiled = warden::authorizer::Providers::from_config(config).ok();
    let compiled = compiled.as_ref().and_then(|all| {
        let name = provider.map(|p| p.name.as_str())?;
        match &all.get(name)?.kind {
            warden::authorizer::Kind::Http(http) => Some((http.cluster.clone(), http.timeout)),
            warden::authorizer::Kind::Grpc => None,
        }
    });
    let (Some(http), Some((cluster, timeout))) =
        (provider.and_then(|p| p.envoy_ext_authz_http.as_ref()), compiled)
    else {
        return Err(vec![NativeError::Untranslated {
            object: first.clone(),
            field: "spec.provider.name".into(),
            why: "istiod translates CUSTOM for one envoyExtAuthzHttp provider per workload, \
                  declared in the settings' `providers`",
        }]);
    };
    // Istio's own validation: identities in CUSTOM rules are Warden's (after authentication).
    let istio = warden::authz::Mesh {
        callable_providers: Vec::new(),
        ..warden::authz::Mesh::from_config(config)
    };
    let mut policies = Map::new();
    for (at, object) in &custom {
        if let Err(refused) = warden::authz::validate(object, &istio) {
            errors.extend(refused.into_iter().map(|error| NativeError::Untranslated {
                object: at.clone(),
                field: error.field,
                why: "istiod refuses identities in CUSTOM rules (its ext_authz runs before \
                      jwt_authn); only Warden evaluates them after authentication",
            }));
            continue;
        }
        rbac_policies(at, object, "istio-ext-authz-", bundle, &mut policies, &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let shadow = json!({
        "name": RBAC_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "shadow_rules": { "action": "DENY", "policies": policies },
            "shadow_rules_stat_prefix": "istio_ext_authz_",
        },
    });
    let patterns = |list: &[String]| -> Value {
        let patterns: Vec<Value> = list
            .iter()
            .map(|p| match (p.strip_prefix('*'), p.strip_suffix('*')) {
                (Some(suffix), _) => json!({ "suffix": suffix, "ignore_case": true }),
                (_, Some(prefix)) => json!({ "prefix": prefix, "ignore_case": true }),
                _ => json!({ "exact": p, "ignore_case": true }),
            })
            .collect();
        json!({ "patterns": patterns })
    };
    let mut service = json!({
        "server_uri": {
            "uri": format!("http://{}", http.service),
            "cluster": cluster,
            // Protobuf's JSON form (`0.500s`), whatever form the setting used.
            "timeout": format!("{:.3}s", timeout.as_secs_f64()),
        },
    });
    // Set only when given, as istiod does (an empty matcher list is invalid to Envoy).
    if !http.include_additional_headers_in_check.is_empty() {
        let add: Vec<Value> = http
            .include_additional_headers_in_check
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        service["authorization_request"] = json!({ "headers_to_add": add });
    }
    let mut response = Map::new();
    if !http.headers_to_upstream_on_allow.is_empty() {
        response.insert(
            "allowed_upstream_headers".into(),
            patterns(&http.headers_to_upstream_on_allow),
        );
    }
    if !http.headers_to_downstream_on_deny.is_empty() {
        response
            .insert("allowed_client_headers".into(), patterns(&http.headers_to_downstream_on_deny));
    }
    if !response.is_empty() {
        service["authorization_response"] = Value::Object(response);
    }
    if let Some(prefix) = &http.path_prefix {
        service["path_prefix"] = json!(prefix);
    }
    let mut ext_authz = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version": "V3",
        "failure_mode_allow": http.fail_open,
        "http_service": service,
        "filter_enabled_metadata": {
            "filter": RBAC_FILTER,
            "path": [{ "key": "istio_ext_authz_shadow_effective_policy_id" }],
            "value": { "string_match": { "prefix": "istio-ext-authz" } },
        },
    });
    if !http.include_request_headers_in_check.is_empty() {
        ext_authz["allowed_headers"] = patterns(&http.include_request_headers_in_check);
    }
    if let Some(code) = http.status_on_error.as_deref().and_then(|c| c.parse::<u16>().ok()) {
        ext_authz["status_on_error"] = json!({ "code": code });
    }
    Ok(vec![shadow, json!({ "name": "envoy.filters.http.ext_authz", "typed_config": ext_authz })])
}

// ---------------------------------------------------------------------------------------------
// One rule (istio `pilot/pkg/security/authz/model/model.go` `New` and `Generate`).

/// What istiod turns a field or a `when` key into.
#[derive(Debug, Clone)]
enum Attribute {
    SourceIp,
    RemoteIp,
    Namespace,
    ServiceAccount { policy_namespace: String },
    Principal,
    RequestPrincipal,
    Audiences,
    Presenter,
    Header(String),
    Claims(Vec<String>),
    Host,
    Method,
    Path,
    Port,
    DestinationIp,
    Sni,
}

impl Attribute {
    /// istiod's "extended" generators: one matcher for all the values of the field.
    fn is_extended(&self) -> bool {
        matches!(
            self,
            Attribute::RequestPrincipal
                | Attribute::Audiences
                | Attribute::Presenter
                | Attribute::Claims(_)
        )
    }
}

#[derive(Debug, Clone)]
struct Term {
    attribute: Attribute,
    values: Vec<String>,
    not_values: Vec<String>,
}

/// istiod's `ruleList`: terms AND-ed, built with `insertFront` and `appendLast`.
#[derive(Debug, Clone, Default)]
struct Terms(Vec<Term>);

impl Terms {
    fn insert_front(
        &mut self,
        attribute: Attribute,
        values: &Option<Vec<String>>,
        not_values: &Option<Vec<String>>,
    ) {
        let values = values.clone().unwrap_or_default();
        let not_values = not_values.clone().unwrap_or_default();
        if values.is_empty() && not_values.is_empty() {
            return;
        }
        self.0.insert(0, Term { attribute, values, not_values });
    }

    fn append(&mut self, attribute: Attribute, condition: &Condition) {
        let values = condition.values.clone().unwrap_or_default();
        let not_values = condition.not_values.clone().unwrap_or_default();
        if values.is_empty() && not_values.is_empty() {
            return;
        }
        self.0.push(Term { attribute, values, not_values });
    }
}

fn rbac_policy(
    rule: &Rule,
    index: usize,
    at: &ObjectRef,
    policy_namespace: &str,
    bundle: &TrustDomains,
) -> Result<Value, NativeError> {
    let untranslated = |field: String| NativeError::Untranslated {
        object: at.clone(),
        field,
        why: "Istio 1.30 trust-domain matchers: use principals with a trust domain instead",
    };
    let mut base_permission = Terms::default();
    let mut base_principal = Terms::default();
    for (i, condition) in rule.when.iter().flatten().enumerate() {
        let key = condition.key.as_str();
        let attribute = match key {
            "destination.ip" => Some((true, Attribute::DestinationIp)),
            "destination.port" => Some((true, Attribute::Port)),
            "connection.sni" => Some((true, Attribute::Sni)),
            "source.ip" => Some((false, Attribute::SourceIp)),
            "remote.ip" => Some((false, Attribute::RemoteIp)),
            "source.namespace" => Some((false, Attribute::Namespace)),
            "source.serviceAccount" => Some((
                false,
                Attribute::ServiceAccount { policy_namespace: policy_namespace.to_string() },
            )),
            "source.principal" => Some((false, Attribute::Principal)),
            "request.auth.principal" => Some((false, Attribute::RequestPrincipal)),
            "request.auth.audiences" => Some((false, Attribute::Audiences)),
            "request.auth.presenter" => Some((false, Attribute::Presenter)),
            "source.trustDomain" => {
                return Err(untranslated(format!("spec.rules[{index}].when[{i}].key")));
            }
            _ => {
                if let Some(name) = bracketed(key, "request.headers") {
                    Some((false, Attribute::Header(name.to_string())))
                } else {
                    nested(key, "request.auth.claims").map(|path| (false, Attribute::Claims(path)))
                }
            }
        };
        match attribute {
            Some((true, attribute)) => base_permission.append(attribute, condition),
            Some((false, attribute)) => base_principal.append(attribute, condition),
            None => {
                // Warden's validation refuses every key it does not know.
                return Err(NativeError::Untranslated {
                    object: at.clone(),
                    field: format!("spec.rules[{index}].when[{i}].key"),
                    why: "an attribute this translator does not know",
                });
            }
        }
    }

    let mut principals = Vec::new();
    for (i, from) in rule.from.iter().flatten().enumerate() {
        let mut merged = base_principal.clone();
        if let Some(source) = &from.source {
            if source.trust_domains.is_some() || source.not_trust_domains.is_some() {
                return Err(untranslated(format!(
                    "spec.rules[{index}].from[{i}].source.trustDomains"
                )));
            }
            push_source(&mut merged, source, policy_namespace);
        }
        principals.push(merged);
    }
    if rule.from.is_none() {
        principals.push(base_principal);
    }
    let mut permissions = Vec::new();
    for to in rule.to.iter().flatten() {
        let mut merged = base_permission.clone();
        if let Some(operation) = &to.operation {
            push_operation(&mut merged, operation);
        }
        permissions.push(merged);
    }
    if rule.to.is_none() {
        permissions.push(base_permission);
    }

    let permissions: Vec<Value> = permissions.iter().map(permission_of).collect();
    let principals: Vec<Value> =
        principals.iter().map(|terms| principal_of(terms, bundle)).collect();
    Ok(json!({ "permissions": permissions, "principals": principals }))
}

fn push_source(terms: &mut Terms, source: &Source, policy_namespace: &str) {
    terms.insert_front(Attribute::SourceIp, &source.ip_blocks, &source.not_ip_blocks);
    terms.insert_front(Attribute::RemoteIp, &source.remote_ip_blocks, &source.not_remote_ip_blocks);
    terms.insert_front(Attribute::Namespace, &source.namespaces, &source.not_namespaces);
    terms.insert_front(
        Attribute::ServiceAccount { policy_namespace: policy_namespace.to_string() },
        &source.service_accounts,
        &source.not_service_accounts,
    );
    terms.insert_front(
        Attribute::RequestPrincipal,
        &source.request_principals,
        &source.not_request_principals,
    );
    terms.insert_front(Attribute::Principal, &source.principals, &source.not_principals);
}

fn push_operation(terms: &mut Terms, operation: &Operation) {
    terms.insert_front(Attribute::Port, &operation.ports, &operation.not_ports);
    terms.insert_front(Attribute::Path, &operation.paths, &operation.not_paths);
    terms.insert_front(Attribute::Method, &operation.methods, &operation.not_methods);
    terms.insert_front(Attribute::Host, &operation.hosts, &operation.not_hosts);
}

/// `request.headers[x-token]` → `x-token`.
fn bracketed<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')
}

/// `request.auth.claims[a][b]` → `[a, b]` (istio `extractNameInNestedBrackets`).
fn nested(key: &str, prefix: &str) -> Option<Vec<String>> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
    Some(rest.split("][").map(str::to_string).collect())
}

fn permission_of(terms: &Terms) -> Value {
    let mut and: Vec<Value> = Vec::new();
    for term in &terms.0 {
        let or: Vec<Value> =
            term.values.iter().map(|v| permission_value(&term.attribute, v)).collect();
        if !or.is_empty() {
            and.push(json!({ "or_rules": { "rules": or } }));
        }
        let not: Vec<Value> =
            term.not_values.iter().map(|v| permission_value(&term.attribute, v)).collect();
        if !not.is_empty() {
            and.push(json!({ "not_rule": { "or_rules": { "rules": not } } }));
        }
    }
    if and.is_empty() {
        and.push(json!({ "any": true }));
    }
    json!({ "and_rules": { "rules": and } })
}

fn principal_of(terms: &Terms, bundle: &TrustDomains) -> Value {
    let mut and: Vec<Value> = Vec::new();
    for term in &terms.0 {
        // istio `MigrateTrustDomain`: only principals (and `source.principal`) are rewritten.
        let (values, not_values) = match term.attribute {
            Attribute::Principal => {
                (bundle.replace(&term.values), bundle.replace(&term.not_values))
            }
            _ => (term.values.clone(), term.not_values.clone()),
        };
        if term.attribute.is_extended() {
            if !values.is_empty() {
                and.push(extended_principal(&term.attribute, &values));
            }
            if !not_values.is_empty() {
                and.push(json!({ "not_id": extended_principal(&term.attribute, &not_values) }));
            }
            continue;
        }
        let or: Vec<Value> = values.iter().map(|v| principal_value(&term.attribute, v)).collect();
        if !or.is_empty() {
            and.push(json!({ "or_ids": { "ids": or } }));
        }
        let not: Vec<Value> =
            not_values.iter().map(|v| principal_value(&term.attribute, v)).collect();
        if !not.is_empty() {
            and.push(json!({ "not_id": { "or_ids": { "ids": not } } }));
        }
    }
    if and.is_empty() {
        and.push(json!({ "any": true }));
    }
    json!({ "and_ids": { "ids": and } })
}

// ---------------------------------------------------------------------------------------------
// Values (istio `pilot/pkg/security/authz/model/generator.go`, `matcher/*.go`).

fn permission_value(attribute: &Attribute, value: &str) -> Value {
    match attribute {
        Attribute::Host => json!({ "header": host_matcher(value) }),
        Attribute::Method => json!({ "header": header_matcher(":method", value) }),
        Attribute::Path if is_path_template(value) => json!({ "uri_template": {
            "name": "uri-template",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                "path_template": value.replace("{*}", "*").replace("{**}", "**"),
            },
        } }),
        Attribute::Path => json!({ "url_path": { "path": string_matcher(value, "") } }),
        Attribute::Port => json!({ "destination_port": value.parse::<u32>().unwrap_or_default() }),
        Attribute::DestinationIp => json!({ "destination_ip": cidr(value) }),
        Attribute::Sni => json!({ "requested_server_name": string_matcher(value, "") }),
        // Principal attributes never reach here: `when` keys are sorted into the two lists
        // by `rbac_policy`, and `from`/`to` fields by `push_source`/`push_operation`.
        _ => json!({ "any": true }),
    }
}

fn principal_value(attribute: &Attribute, value: &str) -> Value {
    match attribute {
        Attribute::SourceIp => json!({ "direct_remote_ip": cidr(value) }),
        Attribute::RemoteIp => json!({ "remote_ip": cidr(value) }),
        Attribute::Namespace => {
            authenticated(regex(&format!(".*/ns/{}/.*", value.replace('*', ".*"))))
        }
        Attribute::ServiceAccount { policy_namespace } => {
            let (namespace, account) = value.split_once('/').unwrap_or((policy_namespace, value));
            authenticated(regex(&format!("spiffe://.+/ns/{namespace}/(.+/|)sa/{account}(/.+)?")))
        }
        Attribute::Principal => authenticated(string_matcher(value, "spiffe://")),
        Attribute::Header(name) => json!({ "header": header_matcher(name, value) }),
        // Extended attributes are handled by `extended_principal`; permission attributes never
        // reach here.
        _ => json!({ "any": true }),
    }
}

fn extended_principal(attribute: &Attribute, values: &[String]) -> Value {
    match attribute {
        Attribute::RequestPrincipal => {
            let or: Vec<Value> = values.iter().map(|v| request_principal(v)).collect();
            match <[Value; 1]>::try_from(or) {
                Ok([one]) => one,
                Err(or) => json!({ "or_ids": { "ids": or } }),
            }
        }
        Attribute::Audiences => claim_principal(&["aud".to_string()], values),
        Attribute::Presenter => claim_principal(&["azp".to_string()], values),
        Attribute::Claims(path) => claim_principal(path, values),
        _ => json!({ "any": true }),
    }
}

/// `requestPrincipals` value: `iss/sub` split at the last `/`, each side matched on its own
/// (istio `requestPrincipalGenerator.extendedPrincipal`).
fn request_principal(value: &str) -> Value {
    let any = regex(".+");
    let (iss, sub) = match value.rsplit_once('/') {
        Some((iss, sub)) => (iss, Some(sub)),
        None => (value, None),
    };
    let (iss_matcher, sub_matcher) = if value == "*" {
        (any.clone(), any)
    } else if let Some(rest) = value.strip_prefix('*') {
        match sub {
            Some(sub) if iss == "*" => (any, exact(sub)),
            Some(sub) => (json!({ "suffix": iss.strip_prefix('*').unwrap_or(iss) }), exact(sub)),
            None => (any, json!({ "suffix": rest })),
        }
    } else if let Some(rest) = value.strip_suffix('*') {
        match sub {
            Some("*") => (exact(iss), any),
            Some(sub) => (exact(iss), json!({ "prefix": sub.strip_suffix('*').unwrap_or(sub) })),
            None => (json!({ "prefix": rest }), any),
        }
    } else {
        (exact(iss), exact(sub.unwrap_or_default()))
    };
    json!({ "and_ids": { "ids": [
        { "metadata": payload_matcher(&["iss".to_string()], json!({ "string_match": iss_matcher })) },
        { "metadata": payload_matcher(&["sub".to_string()], json!({ "string_match": sub_matcher })) },
    ] } })
}

/// A claim (string, or list containing a string) matching any of `values` (istio
/// `MetadataListValueMatcherForJWTClaims` with `StringOrMatcher`).
fn claim_principal(path: &[String], values: &[String]) -> Value {
    let matchers: Vec<Value> =
        values.iter().map(|v| json!({ "string_match": string_matcher(v, "") })).collect();
    let value = match <[Value; 1]>::try_from(matchers) {
        Ok([one]) => one,
        Err(many) => json!({ "or_match": { "value_matchers": many } }),
    };
    json!({ "metadata": payload_matcher(path, json!({ "or_match": { "value_matchers": [
        { "list_match": { "one_of": value.clone() } },
        value,
    ] } })) })
}

fn payload_matcher(path: &[String], value: Value) -> Value {
    let mut segments = vec![json!({ "key": PAYLOAD_KEY })];
    segments.extend(path.iter().map(|key| json!({ "key": key })));
    json!({ "filter": JWT_FILTER, "path": segments, "value": value })
}

fn authenticated(principal_name: Value) -> Value {
    json!({ "authenticated": { "principal_name": principal_name } })
}

fn regex(pattern: &str) -> Value {
    json!({ "safe_regex": { "regex": pattern } })
}

fn exact(value: &str) -> Value {
    json!({ "exact": value })
}

/// istio `StringMatcherWithPrefix`: `*` is `.+` (present and non-empty, prefix ignored), `*x` a
/// suffix (a regex after a prefix, unquoted as istiod writes it), `x*` a prefix, else exact.
fn string_matcher(value: &str, prefix: &str) -> Value {
    if value == "*" {
        regex(".+")
    } else if let Some(suffix) = value.strip_prefix('*') {
        if prefix.is_empty() {
            json!({ "suffix": suffix })
        } else {
            regex(&format!("{prefix}.*{suffix}"))
        }
    } else if let Some(start) = value.strip_suffix('*') {
        json!({ "prefix": format!("{prefix}{start}") })
    } else {
        exact(&format!("{prefix}{value}"))
    }
}

/// istio `HeaderMatcher`: `*` is a presence match, anything else a string match.
fn header_matcher(name: &str, value: &str) -> Value {
    if value == "*" {
        json!({ "name": name, "present_match": true })
    } else {
        json!({ "name": name, "string_match": string_matcher(value, "") })
    }
}

/// istio `HostMatcher`: `:authority`, case-insensitive.
fn host_matcher(value: &str) -> Value {
    if value == "*" {
        return json!({ "name": ":authority", "present_match": true });
    }
    let mut matcher = string_matcher(value, "");
    if let Some(object) = matcher.as_object_mut() {
        object.insert("ignore_case".into(), json!(true));
    }
    json!({ "name": ":authority", "string_match": matcher })
}

fn is_path_template(value: &str) -> bool {
    value.contains("{*}") || value.contains("{**}")
}

/// istio `AddrStrToCidrRange`: an address is a /32 (or /128); Warden has validated the value.
fn cidr(value: &str) -> Value {
    let (address, length) = match value.split_once('/') {
        Some((address, length)) => (address, length.parse::<u32>().unwrap_or_default()),
        None => (value, if value.contains(':') { 128 } else { 32 }),
    };
    json!({ "address_prefix": address, "prefix_len": length })
}

// ---------------------------------------------------------------------------------------------
// Trust domains (istio `pilot/pkg/security/trustdomain/bundle.go` `ReplaceTrustDomainAliases`).

struct TrustDomains(Vec<String>);

impl TrustDomains {
    fn from_config(config: &PluginConfig) -> Self {
        let mut all = vec![config.trust_domain.clone()];
        all.extend(config.trust_domain_aliases.iter().cloned());
        TrustDomains(all)
    }

    fn replace(&self, principals: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for principal in principals {
            let parts: Vec<&str> = principal.split('/').collect();
            let Some((&domain, rest)) = parts.split_first().filter(|_| parts.len() == 5) else {
                // Not `<td>/ns/<ns>/sa/<sa>`: kept as written.
                out.push(principal.clone());
                continue;
            };
            let known = self.0.iter().any(|td| td == domain) || domain == "cluster.local";
            if domain == "*" || !known {
                out.push(principal.clone());
                continue;
            }
            let mut replaced: Vec<String> = Vec::new();
            for td in &self.0 {
                let candidate = match domain.strip_prefix('*') {
                    Some(suffix) if td.ends_with(suffix) => principal.clone(),
                    _ => format!("{td}/{}", rest.join("/")),
                };
                if !replaced.contains(&candidate) {
                    replaced.push(candidate);
                }
            }
            out.extend(replaced);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// JWT (istio `pilot/pkg/security/authn/policy_applier.go` `convertToEnvoyJwtConfig`).

fn jwt_authn(rules: &[&JwtRule], config: &PluginConfig) -> Value {
    let mut providers = Map::new();
    let mut inner_and = Vec::new();
    let mut outer_or = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let name = format!("origins-{index}");
        providers.insert(name.clone(), provider(rule, config));
        inner_and.push(json!({ "requires_any": { "requirements": [
            { "provider_name": name },
            { "allow_missing": {} },
        ] } }));
        outer_or.push(json!({ "provider_name": name }));
    }
    let requires = match <[Value; 1]>::try_from(inner_and) {
        Ok([one]) => one,
        Err(inner_and) => {
            outer_or.push(json!({ "requires_all": { "requirements": inner_and } }));
            json!({ "requires_any": { "requirements": outer_or } })
        }
    };
    json!({
        "name": JWT_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": providers,
            "rules": [{ "match": { "prefix": "/" }, "requires": requires }],
            "bypass_cors_preflight": true,
        },
    })
}

fn provider(rule: &JwtRule, config: &PluginConfig) -> Value {
    let mut provider = Map::new();
    let mut set = |key: &str, value: Value| {
        provider.insert(key.to_string(), value);
    };
    if !rule.issuer.is_empty() {
        set("issuer", json!(rule.issuer));
    }
    if !rule.audiences.is_empty() {
        set("audiences", json!(rule.audiences));
    }
    if rule.forward_original_token {
        set("forward", json!(true));
    }
    if !rule.output_payload_to_header.is_empty() {
        set("forward_payload_header", json!(rule.output_payload_to_header));
    }
    set("payload_in_metadata", json!(PAYLOAD_KEY));
    let mut space_delimited: Vec<String> = rule.space_delimited_claims.clone();
    space_delimited.extend(["permission".to_string(), "scope".to_string()]);
    space_delimited.sort();
    space_delimited.dedup();
    set("normalize_payload_in_metadata", json!({ "space_delimited_claims": space_delimited }));
    if !rule.output_claim_to_headers.is_empty() {
        let claims: Vec<Value> = rule
            .output_claim_to_headers
            .iter()
            .map(|c| json!({ "header_name": c.header, "claim_name": c.claim }))
            .collect();
        set("claim_to_headers", json!(claims));
    }
    if !rule.from_headers.is_empty() {
        let headers: Vec<Value> = rule
            .from_headers
            .iter()
            .map(|h| {
                if h.prefix.is_empty() {
                    json!({ "name": h.name })
                } else {
                    json!({ "name": h.name, "value_prefix": h.prefix })
                }
            })
            .collect();
        set("from_headers", json!(headers));
    }
    if !rule.from_params.is_empty() {
        set("from_params", json!(rule.from_params));
    }
    if !rule.from_cookies.is_empty() {
        set("from_cookies", json!(rule.from_cookies));
    }
    if rule.jwks_uri.is_empty() {
        set("local_jwks", json!({ "inline_string": rule.jwks }));
    } else {
        let cluster = config
            .jwks
            .clusters
            .get(&rule.jwks_uri)
            .cloned()
            .unwrap_or_else(|| istio_cluster_name(&rule.jwks_uri));
        set(
            "remote_jwks",
            json!({
                "http_uri": {
                    "uri": rule.jwks_uri,
                    "cluster": cluster,
                    "timeout": rule.timeout.as_deref().unwrap_or(DEFAULT_JWKS_TIMEOUT),
                },
                "cache_duration": REMOTE_JWKS_CACHE,
            }),
        );
    }
    Value::Object(provider)
}

/// `outbound|<port>||<host>` for a JWKS URI (istio `model.BuildSubsetKey`; the port defaults
/// from the scheme).
fn istio_cluster_name(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("https", uri));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = if scheme.eq_ignore_ascii_case("http") { "80" } else { "443" };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (host, port),
        _ => (authority, default_port),
    };
    format!("outbound|{port}||{}", host.trim_start_matches('[').trim_end_matches(']'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    fn config(policies: Vec<Value>) -> PluginConfig {
        let mut config = PluginConfig {
            workload: Some(Workload {
                namespace: "foo".into(),
                labels: [("app".to_string(), "httpbin".to_string())].into(),
            }),
            ..PluginConfig::default()
        };
        for policy in &policies {
            config.push_policy(policy);
        }
        config
    }

    fn policy(name: &str, spec: Value) -> Value {
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": { "name": name, "namespace": "foo" },
            "spec": spec,
        })
    }

    fn filters(policies: Vec<Value>) -> Vec<Value> {
        http_filters(&config(policies)).unwrap()
    }

    fn rule0(filters: &[Value], name: &str) -> Value {
        filters.last().unwrap()["typed_config"]["rules"]["policies"][name].clone()
    }

    // The expected shapes are istio's golden file
    // pilot/pkg/security/authz/builder/testdata/http/extended-allow-full-rule-out.yaml.
    #[test]
    fn source_fields_become_principals_in_istiod_order() {
        let filters = filters(vec![policy(
            "httpbin-1",
            json!({ "rules": [{ "from": [{ "source": {
                "principals": ["principal", "principal-prefix-*", "*-suffix-principal", "*"],
                "requestPrincipals": ["*"],
                "namespaces": ["ns", "*-ns-suffix"],
                "ipBlocks": ["1.2.3.4", "5.6.0.0/16"],
                "notIpBlocks": ["9.0.0.1"],
            } }] }] }),
        )]);
        let policy = rule0(&filters, "ns[foo]-policy[httpbin-1]-rule[0]");
        assert_eq!(policy["permissions"], json!([{ "and_rules": { "rules": [{ "any": true }] } }]));
        let ids = &policy["principals"][0]["and_ids"]["ids"];
        assert_eq!(
            ids[0]["or_ids"]["ids"],
            json!([
                { "authenticated": { "principal_name": { "exact": "spiffe://principal" } } },
                { "authenticated": { "principal_name": { "prefix": "spiffe://principal-prefix-" } } },
                { "authenticated": { "principal_name": { "safe_regex": { "regex": "spiffe://.*-suffix-principal" } } } },
                { "authenticated": { "principal_name": { "safe_regex": { "regex": ".+" } } } },
            ])
        );
        let any = json!({ "string_match": { "safe_regex": { "regex": ".+" } } });
        assert_eq!(
            ids[1]["and_ids"]["ids"][0]["metadata"]["path"],
            json!([{ "key": "payload" }, { "key": "iss" }])
        );
        assert_eq!(ids[1]["and_ids"]["ids"][1]["metadata"]["value"], any);
        assert_eq!(
            ids[2]["or_ids"]["ids"][1],
            json!({ "authenticated": { "principal_name": { "safe_regex": { "regex": ".*/ns/.*-ns-suffix/.*" } } } })
        );
        assert_eq!(
            ids[3]["or_ids"]["ids"][1],
            json!({ "direct_remote_ip": { "address_prefix": "5.6.0.0", "prefix_len": 16 } })
        );
        assert_eq!(
            ids[4],
            json!({ "not_id": { "or_ids": { "ids": [{ "direct_remote_ip": { "address_prefix": "9.0.0.1", "prefix_len": 32 } }] } } })
        );
    }

    #[test]
    fn operation_fields_become_permissions_hosts_methods_paths_ports() {
        let filters = filters(vec![policy(
            "p",
            json!({ "rules": [{ "to": [{ "operation": {
                "ports": ["80"],
                "paths": ["/exact", "/prefix/*", "*", "/path/template/{*}", "/{**}/t"],
                "methods": ["GET", "*"],
                "hosts": ["*.suffix.com", "*"],
            } }] }] }),
        )]);
        let rules = rule0(&filters, "ns[foo]-policy[p]-rule[0]")["permissions"][0]["and_rules"]
            ["rules"]
            .clone();
        assert_eq!(
            rules[0]["or_rules"]["rules"],
            json!([
                { "header": { "name": ":authority", "string_match": { "suffix": ".suffix.com", "ignore_case": true } } },
                { "header": { "name": ":authority", "present_match": true } },
            ])
        );
        assert_eq!(
            rules[1]["or_rules"]["rules"][1],
            json!({ "header": { "name": ":method", "present_match": true } })
        );
        let paths = &rules[2]["or_rules"]["rules"];
        assert_eq!(paths[0], json!({ "url_path": { "path": { "exact": "/exact" } } }));
        assert_eq!(paths[1], json!({ "url_path": { "path": { "prefix": "/prefix/" } } }));
        assert_eq!(
            paths[2],
            json!({ "url_path": { "path": { "safe_regex": { "regex": ".+" } } } })
        );
        assert_eq!(paths[3]["uri_template"]["typed_config"]["path_template"], "/path/template/*");
        assert_eq!(paths[4]["uri_template"]["typed_config"]["path_template"], "/**/t");
        assert_eq!(rules[3], json!({ "or_rules": { "rules": [{ "destination_port": 80 }] } }));
    }

    #[test]
    fn conditions_on_headers_and_claims_follow_the_source_fields() {
        let filters = filters(vec![policy(
            "p",
            json!({ "rules": [{
                "from": [{ "source": { "namespaces": ["ns"] } }],
                "when": [
                    { "key": "request.headers[X-header]", "values": ["header", "*"], "notValues": ["bad"] },
                    { "key": "request.auth.claims[nested1][nested2]", "values": ["nested"] },
                    { "key": "request.auth.claims[groups]", "values": ["a", "b*"] },
                ],
            }] }),
        )]);
        let ids =
            rule0(&filters, "ns[foo]-policy[p]-rule[0]")["principals"][0]["and_ids"]["ids"].clone();
        assert!(ids[0]["or_ids"].is_object(), "namespaces first: {ids}");
        assert_eq!(
            ids[1]["or_ids"]["ids"],
            json!([
                { "header": { "name": "X-header", "string_match": { "exact": "header" } } },
                { "header": { "name": "X-header", "present_match": true } },
            ])
        );
        assert_eq!(
            ids[2]["not_id"]["or_ids"]["ids"][0]["header"]["string_match"],
            json!({ "exact": "bad" })
        );
        let one = json!({ "string_match": { "exact": "nested" } });
        assert_eq!(
            ids[3]["metadata"],
            json!({
                "filter": "envoy.filters.http.jwt_authn",
                "path": [{ "key": "payload" }, { "key": "nested1" }, { "key": "nested2" }],
                "value": { "or_match": { "value_matchers": [{ "list_match": { "one_of": one } }, one] } },
            })
        );
        let two = json!({ "or_match": { "value_matchers": [
            { "string_match": { "exact": "a" } },
            { "string_match": { "prefix": "b" } },
        ] } });
        assert_eq!(
            ids[4]["metadata"]["value"]["or_match"]["value_matchers"][0]["list_match"]["one_of"],
            two
        );
    }

    // istio requestPrincipalGenerator: the value is split at the last `/`.
    #[test]
    fn request_principals_split_at_the_last_slash() {
        let cases = [
            (
                "https://example.com/*",
                json!({ "exact": "https://example.com" }),
                json!({ "safe_regex": { "regex": ".+" } }),
            ),
            ("requestPrincipals", json!({ "exact": "requestPrincipals" }), json!({ "exact": "" })),
            (
                "iss-prefix-*",
                json!({ "prefix": "iss-prefix-" }),
                json!({ "safe_regex": { "regex": ".+" } }),
            ),
            (
                "*-sub-suffix",
                json!({ "safe_regex": { "regex": ".+" } }),
                json!({ "suffix": "-sub-suffix" }),
            ),
            (
                "*.example.com/alice",
                json!({ "suffix": ".example.com" }),
                json!({ "exact": "alice" }),
            ),
            ("*/alice", json!({ "safe_regex": { "regex": ".+" } }), json!({ "exact": "alice" })),
            ("iss/sub-*", json!({ "exact": "iss" }), json!({ "prefix": "sub-" })),
        ];
        for (value, iss, sub) in cases {
            let principal = request_principal(value);
            let ids = &principal["and_ids"]["ids"];
            assert_eq!(ids[0]["metadata"]["value"]["string_match"], iss, "{value}");
            assert_eq!(ids[1]["metadata"]["value"]["string_match"], sub, "{value}");
        }
    }

    /// istio `pilot/pkg/security/authz/builder/testdata/http/extended-custom-http-*` shapes:
    /// shadow RBAC marking the CUSTOM rules, then ext_authz enabled on its mark.
    #[test]
    fn custom_becomes_a_shadow_rbac_and_ext_authz_before_everything_else() {
        let mut config = config(vec![policy(
            "ext",
            json!({ "action": "CUSTOM", "provider": { "name": "authz" },
                    "rules": [{ "to": [{ "operation": { "paths": ["/ext/*"] } }] }] }),
        )]);
        config.providers = serde_json::from_value(json!([{ "name": "authz",
            "envoyExtAuthzHttp": { "service": "authz.foo.svc.cluster.local", "port": 9000,
                                   "timeout": "1s", "includeRequestHeadersInCheck": ["x-a*"],
                                   "statusOnError": "503" } }]))
        .unwrap();
        let filters = http_filters(&config).unwrap();
        assert_eq!(filters.len(), 2, "{filters:?}");
        let shadow = &filters[0]["typed_config"];
        assert_eq!(shadow["shadow_rules_stat_prefix"], "istio_ext_authz_");
        assert!(shadow.get("rules").is_none());
        assert!(shadow["shadow_rules"]["policies"]["istio-ext-authz-ns[foo]-policy[ext]-rule[0]"]
            .is_object());
        let ext = &filters[1]["typed_config"];
        assert_eq!(filters[1]["name"], "envoy.filters.http.ext_authz");
        assert_eq!(
            ext["http_service"]["server_uri"]["cluster"],
            "outbound|9000||authz.foo.svc.cluster.local"
        );
        assert_eq!(
            ext["allowed_headers"]["patterns"][0],
            json!({"prefix": "x-a", "ignore_case": true})
        );
        assert_eq!(ext["status_on_error"]["code"], 503);
        assert_eq!(
            ext["filter_enabled_metadata"]["path"][0]["key"],
            "istio_ext_authz_shadow_effective_policy_id"
        );
        // Identities in the CUSTOM rule: Warden's only; a gRPC provider: not translated.
        let mut claims = config.clone();
        claims.policies.clear();
        claims.push_policy(&policy(
            "ext",
            json!({ "action": "CUSTOM", "provider": { "name": "authz" },
                    "rules": [{ "from": [{ "source": { "namespaces": ["web"] } }] }] }),
        ));
        let errors = http_filters(&claims).unwrap_err();
        assert!(errors[0].to_string().contains("istiod refuses identities"), "{errors:?}");
        // The exact field, as the module's validation names it.
        assert!(
            errors[0].to_string().contains("spec.rules[0].from[0].source.namespaces"),
            "{errors:?}"
        );
        let mut grpc = config;
        grpc.providers[0].envoy_ext_authz_http = None;
        grpc.providers[0].envoy_ext_authz_grpc = Some(json!({}));
        assert!(http_filters(&grpc).unwrap_err()[0].to_string().contains("spec.provider.name"));
    }

    #[test]
    fn certificate_bound_tokens_are_refused_not_weakened_to_bearer_tokens() {
        let authn = |bound: &str| {
            json!({
                "apiVersion": "security.istio.io/v1",
                "kind": "RequestAuthentication",
                "metadata": { "name": "bound", "namespace": "foo",
                              "annotations": { CERTIFICATE_BOUND_ANNOTATION: bound } },
                "spec": { "jwtRules": [{ "issuer": "https://issuer",
                                         "jwksUri": "https://issuer/jwks" }] },
            })
        };
        let errors = http_filters(&config(vec![authn("true")])).unwrap_err();
        assert_eq!(errors.len(), 1);
        let message = errors[0].to_string();
        assert!(message.contains("RequestAuthentication foo/bound"), "{message}");
        assert!(message.contains("warden.io/certificate-bound-tokens"), "{message}");
        // Opted out: an ordinary rule, translated.
        assert_eq!(filters(vec![authn("false")])[0]["name"], JWT_FILTER);
    }

    #[test]
    fn actions_become_audit_deny_allow_filters_and_dry_run_becomes_shadow() {
        let mut dry = policy("dry", json!({ "action": "DENY", "rules": [{}] }));
        dry["metadata"]["annotations"] = json!({ "istio.io/dry-run": "true" });
        let filters = filters(vec![
            policy("allow", json!({ "rules": [{}] })),
            policy("nothing", json!({})),
            policy("deny", json!({ "action": "DENY", "rules": [{}] })),
            policy("audit", json!({ "action": "AUDIT", "rules": [{}] })),
            dry,
        ]);
        let actions: Vec<&Value> =
            filters.iter().map(|f| &f["typed_config"]["rules"]["action"]).collect();
        assert_eq!(actions, [&json!("LOG"), &json!("DENY"), &json!("ALLOW")]);
        let deny = &filters[1]["typed_config"];
        assert_eq!(deny["shadow_rules"]["policies"].as_object().unwrap().len(), 1);
        assert_eq!(deny["shadow_rules_stat_prefix"], "istio_dry_run_deny_");
        assert_eq!(filters[2]["typed_config"]["shadow_rules_stat_prefix"], "istio_dry_run_allow_");
        assert_eq!(rule0(&filters, "ns[foo]-policy[nothing]-rule[0]"), match_never());
        assert_eq!(
            rule0(&filters, "ns[foo]-policy[allow]-rule[0]"),
            json!({
                "permissions": [{ "and_rules": { "rules": [{ "any": true }] } }],
                "principals": [{ "and_ids": { "ids": [{ "any": true }] } }],
            })
        );
    }

    #[test]
    fn only_policies_that_select_the_workload_are_translated() {
        let mut other_ns = policy("other", json!({ "rules": [{}] }));
        other_ns["metadata"]["namespace"] = json!("bar");
        let mut root = policy("root", json!({ "action": "DENY", "rules": [{}] }));
        root["metadata"]["namespace"] = json!("istio-system");
        let filters = filters(vec![
            other_ns,
            root,
            policy(
                "selected",
                json!({ "selector": { "matchLabels": { "app": "httpbin" } }, "rules": [{}] }),
            ),
            policy(
                "unselected",
                json!({ "selector": { "matchLabels": { "app": "other" } }, "rules": [{}] }),
            ),
        ]);
        assert_eq!(filters.len(), 2);
        let allow = filters[1]["typed_config"]["rules"]["policies"].as_object().unwrap();
        assert_eq!(allow.keys().collect::<Vec<_>>(), ["ns[foo]-policy[selected]-rule[0]"]);
        assert!(filters[0]["typed_config"]["rules"]["policies"]
            ["ns[istio-system]-policy[root]-rule[0]"]
            .is_object());
    }

    #[test]
    fn principals_in_cluster_local_get_the_trust_domain_and_its_aliases() {
        let bundle = TrustDomains(vec!["td1".into(), "td2".into()]);
        assert_eq!(
            bundle.replace(&[
                "cluster.local/ns/a/sa/b".into(),
                "*/ns/a/sa/b".into(),
                "other/ns/a/sa/b".into()
            ]),
            ["td1/ns/a/sa/b", "td2/ns/a/sa/b", "*/ns/a/sa/b", "other/ns/a/sa/b"]
        );
        assert_eq!(bundle.replace(&["td2/ns/a/sa/b".into()]), ["td1/ns/a/sa/b", "td2/ns/a/sa/b"]);
        assert_eq!(bundle.replace(&["sa-only".into()]), ["sa-only"]);
    }

    fn request_authentication(name: &str, issuer: &str) -> Value {
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": { "name": name, "namespace": "foo" },
            "spec": { "jwtRules": [{
                "issuer": issuer,
                "jwks": r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k"}]}"#,
            }] },
        })
    }

    // istio convertToEnvoyJwtConfig: one provider is `requires_any {P, allow_missing}`.
    #[test]
    fn one_jwt_rule_is_a_provider_or_no_token() {
        let filters = filters(vec![request_authentication("jwt", "https://b.example")]);
        let jwt = &filters[0]["typed_config"];
        assert_eq!(filters[0]["name"], "envoy.filters.http.jwt_authn");
        assert_eq!(
            jwt["rules"],
            json!([{ "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "origins-0" }, { "allow_missing": {} },
            ] } } }])
        );
        let provider = &jwt["providers"]["origins-0"];
        assert_eq!(provider["issuer"], "https://b.example");
        assert_eq!(provider["payload_in_metadata"], "payload");
        assert_eq!(
            provider["normalize_payload_in_metadata"]["space_delimited_claims"],
            json!(["permission", "scope"])
        );
        assert!(provider["local_jwks"]["inline_string"].as_str().unwrap().contains("P-256"));
        assert_eq!(jwt["bypass_cors_preflight"], true);
    }

    #[test]
    fn several_jwt_rules_are_sorted_by_issuer_and_combined() {
        let filters = filters(vec![
            request_authentication("b", "https://b.example"),
            request_authentication("a", "https://a.example"),
        ]);
        let jwt = &filters[0]["typed_config"];
        assert_eq!(jwt["providers"]["origins-0"]["issuer"], "https://a.example");
        let outer = &jwt["rules"][0]["requires"]["requires_any"]["requirements"];
        assert_eq!(outer[0], json!({ "provider_name": "origins-0" }));
        assert_eq!(outer[1], json!({ "provider_name": "origins-1" }));
        assert_eq!(outer[2]["requires_all"]["requirements"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn jwks_uri_goes_through_istios_cluster_name() {
        assert_eq!(
            istio_cluster_name("https://idp.example.com/jwks"),
            "outbound|443||idp.example.com"
        );
        assert_eq!(
            istio_cluster_name("http://issuer.local:18090/jwks"),
            "outbound|18090||issuer.local"
        );
        assert_eq!(istio_cluster_name("http://[::1]:8080/k"), "outbound|8080||::1");
    }

    #[test]
    fn trust_domain_fields_are_refused_naming_the_field() {
        let errors = http_filters(&config(vec![policy(
            "td",
            json!({ "rules": [{ "from": [{ "source": { "trustDomains": ["td1"] } }] }] }),
        )]));
        let Err(errors) = errors else { panic!("translated: {errors:?}") };
        let message = errors[0].to_string();
        assert!(message.contains("AuthorizationPolicy foo/td"), "{message}");
        assert!(message.contains("spec.rules[0].from[0].source.trustDomains"), "{message}");
    }

    #[test]
    fn configurations_warden_refuses_are_refused() {
        let mut config = config(vec![policy(
            "bad",
            json!({ "rules": [{ "to": [{ "operation": { "ports": ["99999"] } }] }] }),
        )]);
        assert!(matches!(http_filters(&config).unwrap_err()[0], NativeError::Invalid(_)));
        config.policies.clear();
        config.workload = None;
        assert_eq!(http_filters(&config).unwrap_err(), [NativeError::MissingWorkload]);
        assert!(NativeError::MissingWorkload.to_string().contains("--workload"));
    }

    #[test]
    fn rendered_yaml_reads_back_as_the_filters() {
        let filters = filters(vec![policy("allow", json!({ "rules": [{}] }))]);
        let text = render(&filters, &["p.yaml".into()], false).unwrap();
        assert!(text.starts_with("# Generated by `warden compile p.yaml --format envoy-native`"));
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back["http_filters"], json!(filters));
    }
}
