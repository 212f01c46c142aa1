//! Authorization: Istio `AuthorizationPolicy` semantics, compiled once and decided per request.
//!
//! Three steps, as everywhere in Warden:
//!
//! 1. [`validate`] turns one `AuthorizationPolicy` object (the serde schema in
//!    [`crate::config::istio`]) into a [`Policy`]: every value parsed into the matcher Istio would
//!    have generated for Envoy (CIDRs, ports, path templates, SPIFFE principals with the trust
//!    domain aliases applied, `when` keys). Every error names the policy and the field; a policy
//!    with an error refuses the whole configuration, whichever workload it selects.
//! 2. [`compile`] takes the policies that apply to one workload and builds an [`Engine`]: the
//!    rules ordered as Envoy orders them (so the reported rule is the one Envoy's
//!    `rbac_access_denied_matched_policy[...]` would name) and an index that lets a request
//!    consult only the rules that can match it.
//! 3. [`Engine::decide`] answers one request with a [`Decision`] that says which rule decided,
//!    which AUDIT rule matched, and what the dry-run policies would have done.
//!    [`Engine::explain`] is the slow path for `warden explain`, and [`lint`] finds legal but
//!    suspicious policies for `warden check`.
//!
//! The order of evaluation is Istio's (`istio/api` `security/v1beta1/authorization_policy.proto`):
//! DENY before ALLOW; when at least one enforced ALLOW policy applies, a request that matches
//! none is denied; AUDIT never changes the outcome; dry-run policies are evaluated apart from
//! the enforced ones and never change the outcome either.
//!
//! Where Warden is stricter than Istio (values Istio accepts but which could only ever mean a
//! policy that does not do what it says), the difference is a configuration error, never a
//! silently dropped rule: see [`PolicyProblem`].

mod attribute;
mod decision;
mod engine;
mod eval;
mod explain;
mod index;
mod lint;
mod matcher;
mod path_template;
mod policy;
mod principal;

pub use crate::config::istio::Action;
pub use crate::config::ObjectRef;
pub use attribute::{AttributeInfo, Channel, ATTRIBUTES};
pub use decision::{AppliedPolicy, Decision, DryRunAllow, Needs, Reason, RuleRef, Unknowns};
pub use engine::{compile, Engine, Reads};
pub use explain::{
    AlternativeExplanation, Explanation, FieldExplanation, PolicyExplanation, RuleExplanation,
};
pub use lint::{lint, Lint, LintKind};
pub use policy::{validate, Policy};

/// The mesh-wide settings that change what a policy means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mesh {
    /// Policies in this namespace apply to every workload (`meshConfig.rootNamespace`).
    pub root_namespace: String,
    /// The local trust domain (`meshConfig.trustDomain`); `cluster.local` in a policy's
    /// principals stands for it and for every alias.
    pub trust_domain: String,
    /// Other trust domains of the same mesh (`meshConfig.trustDomainAliases`).
    pub trust_domain_aliases: Vec<String>,
    /// The extension providers Warden calls (HTTP authorizers in `providers`): CUSTOM policies
    /// naming one ask it, after authentication, and may name identities.
    pub callable_providers: Vec<String>,
}

impl Mesh {
    /// The mesh settings carried by the plugin configuration.
    pub fn from_config(config: &crate::config::PluginConfig) -> Mesh {
        Mesh {
            root_namespace: config.root_namespace.clone(),
            trust_domain: config.trust_domain.clone(),
            trust_domain_aliases: config.trust_domain_aliases.clone(),
            callable_providers: config
                .providers
                .iter()
                .filter(|p| p.envoy_ext_authz_http.is_some())
                .map(|p| p.name.clone())
                .collect(),
        }
    }

    /// The trust domain followed by its aliases (Istio's `trustdomain.Bundle`).
    pub(crate) fn trust_domains(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.trust_domain.as_str())
            .chain(self.trust_domain_aliases.iter().map(String::as_str))
    }
}

impl Default for Mesh {
    /// Istio's defaults: root namespace `istio-system`, trust domain `cluster.local`.
    fn default() -> Self {
        Mesh {
            root_namespace: "istio-system".to_string(),
            trust_domain: "cluster.local".to_string(),
            trust_domain_aliases: Vec::new(),
            callable_providers: Vec::new(),
        }
    }
}

/// What is wrong in an `AuthorizationPolicy` (the field is named by the [`crate::config::ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// `selector` together with `targetRef`/`targetRefs` (Istio `validateOneOfSelectorType`).
    #[error("only one of selector or targetRef/targetRefs can be set")]
    SelectorWithTargetRefs,
    /// Both `targetRef` and `targetRefs`.
    #[error("only one of targetRef or targetRefs can be set")]
    TargetRefAndTargetRefs,
    /// A CUSTOM policy without rules would never call its provider (Istio refuses it).
    #[error(
        "CUSTOM action without `rules` is meaningless as it will never be triggered: add an \
         empty rule `{{}}` to send every request to the provider"
    )]
    CustomWithoutRules,
    /// A CUSTOM policy must name its extension provider.
    #[error("`provider.name` must not be empty")]
    CustomWithoutProvider,
    /// A field or `when` key Istio does not support in CUSTOM policies (its ext_authz runs before
    /// authentication).
    #[error("{0} is not supported with action CUSTOM")]
    NotWithCustom(String),
    /// `provider` only makes sense with `action: CUSTOM`.
    #[error("`provider` is only valid with action CUSTOM, found action {0}")]
    ProviderWithoutCustom(&'static str),
    /// A DENY policy without rules would never match (Istio refuses it).
    #[error(
        "DENY action without `rules` is meaningless as it will never be triggered: add an empty \
         rule `{{}}` to deny every request"
    )]
    DenyWithoutRules,
    /// The `istio.io/dry-run` annotation must parse as Go's `strconv.ParseBool` does.
    #[error("invalid value {0:?} for annotation istio.io/dry-run: expected true or false (or 1, t, T, TRUE, True, 0, f, F, FALSE, False)")]
    DryRunValue(String),
    /// Istio supports `istio.io/dry-run` only on ALLOW and DENY policies.
    #[error("the annotation istio.io/dry-run only supports action ALLOW or DENY, found {0}")]
    DryRunAction(&'static str),
    /// An explicitly empty list (`from: []`, `principals: []`): omit the field instead.
    #[error("must not be empty: omit the field to match anything, or list at least one value")]
    EmptyList,
    /// An empty string among the values.
    #[error("empty value not allowed")]
    EmptyValue,
    /// `from[].source` or `to[].operation` is absent.
    #[error("is required")]
    MissingEntry,
    /// `source: {}`: a source must set at least one field.
    #[error("`source` must set at least one field")]
    EmptySource,
    /// `operation: {}`: an operation must set at least one field.
    #[error("`operation` must set at least one field")]
    EmptyOperation,
    /// `serviceAccounts` cannot be combined with `principals` or `namespaces` in one source.
    #[error("cannot set serviceAccounts (or notServiceAccounts) with namespaces or principals")]
    ServiceAccountsWithPrincipals,
    /// A value that is neither an IP address nor a CIDR range.
    #[error("bad IP address or CIDR range {value:?}: {reason}")]
    InvalidIp {
        /// The value as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A port that is not a decimal number from 0 to 65535.
    #[error("bad port {0:?}: expected a number from 0 to 65535")]
    InvalidPort(String),
    /// A path with `{*}`/`{**}` that Istio or Envoy refuses.
    #[error("invalid or unsupported path template {path:?}: {reason}")]
    InvalidPathTemplate {
        /// The value as written.
        path: String,
        /// What to fix.
        reason: String,
    },
    /// More items than Istio's CRD allows (`maxItems`).
    #[error("{count} items: Istio allows at most {max}")]
    TooMany {
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More than 16 service accounts in one field (Istio's limit).
    #[error("may not have more than 16 values")]
    TooManyServiceAccounts,
    /// A service account that is not `name` or `namespace/name`.
    #[error("bad service account {value:?}: {reason}")]
    InvalidServiceAccount {
        /// The value as written.
        value: String,
        /// What to fix.
        reason: String,
    },
    /// A trust domain with a `/` or a wildcard in the middle.
    #[error("bad trust domain {value:?}: {reason}")]
    InvalidTrustDomain {
        /// The value as written.
        value: String,
        /// What to fix.
        reason: String,
    },
    /// A control character (newline, tab, …) in an identity value, which no namespace, service
    /// account or trust domain can contain (Warden is stricter than Istio here).
    #[error("control character in {0:?}: namespaces, service accounts and trust domains cannot contain one")]
    ControlCharacter(String),
    /// A `when` condition without `values` or `notValues`.
    #[error("at least one of `values` or `notValues` must be set")]
    ConditionWithoutValues,
    /// A `when` key Istio does not know.
    #[error("unknown attribute {0:?}: see https://istio.io/latest/docs/reference/config/security/conditions/")]
    UnknownKey(String),
    /// A `when` key Istio removed; the message says what replaces it.
    #[error("attribute {key:?} is no longer supported: {hint}")]
    RemovedKey {
        /// The key as written.
        key: String,
        /// What to use instead.
        hint: &'static str,
    },
    /// A map-style `when` key with malformed brackets.
    #[error("bad key {key:?}: expected {expected}")]
    MalformedKey {
        /// The key as written.
        key: String,
        /// The expected shape.
        expected: &'static str,
    },
}

/// Helpers the unit tests of several authz modules share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{validate, Mesh, Policy};
    use crate::config::istio::AuthorizationPolicySpec;
    use crate::config::{Object, ObjectMeta};

    /// A validated policy `foo/<name>` with `spec` (JSON), under Istio's default mesh settings.
    pub(crate) fn policy(name: &str, spec: serde_json::Value) -> Policy {
        let spec: AuthorizationPolicySpec = serde_json::from_value(spec).unwrap();
        let object = Object {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "foo".into(),
                ..Default::default()
            },
            spec,
        };
        validate(&object, &Mesh::default()).unwrap()
    }
}
