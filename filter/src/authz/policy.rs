//! Step two: one `AuthorizationPolicy` object, validated into the domain model.
//!
//! Validation follows Istio's webhook (`pkg/config/validation/validation.go`
//! `ValidateAuthorizationPolicy`, `pkg/config/security/security.go`) and, where Istio would
//! accept a value that its generator or Envoy then rejects (so that a rule is silently dropped,
//! or the whole listener update refused), refuses the value with an error instead. Every error
//! names the policy and the field, and all errors are reported at once.
//!
//! Each value is parsed into the matcher Istio would generate, so nothing is parsed per request.

use super::attribute::Attribute;
use super::matcher::{parse_port, Cidr, Pattern};
use super::path_template::{is_template, PathTemplate};
use super::principal::{
    check_service_account, check_trust_domain, namespace_pattern, principal_patterns,
    service_account_pattern, trust_domain_patterns, PeerPattern, RequestPrincipalPattern,
};
use super::{Mesh, PolicyProblem};
use crate::config::istio::{
    Action, AuthorizationPolicySpec, Condition, Operation, Source, WorkloadSelector,
};
use crate::config::{
    scope, ConfigError, Object, ObjectRef, Problem, Workload, KIND_AUTHORIZATION_POLICY,
};

/// The CRD's limit on `spec.rules` and on each rule's `from`.
pub(crate) const MAX_RULES: usize = 512;

/// Why an `experimental.envoy.filters.*` condition is not evaluated.
pub(crate) const UNSUPPORTED_ENVOY_METADATA: &str =
    "Envoy dynamic metadata (experimental.envoy.filters.*) is not visible to a Wasm filter";

/// The annotation that makes a policy report instead of enforce.
pub(crate) const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// A validated AuthorizationPolicy (domain model). Validation happens for every policy in the
/// configuration, whichever workload it selects: a broken policy refuses the whole config.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) object: ObjectRef,
    pub(crate) action: Action,
    pub(crate) dry_run: bool,
    pub(crate) selector: Option<WorkloadSelector>,
    /// `targetRef`/`targetRefs` attach the policy to gateways or waypoints: sidecars ignore it.
    pub(crate) targets_gateways: bool,
    /// In the mesh's root namespace when validated (for `lint`; scope uses the mesh given to
    /// [`Policy::applies_to`]).
    pub(crate) mesh_wide: bool,
    pub(crate) rules: Vec<Rule>,
    /// CUSTOM: `spec.provider.name`.
    pub(crate) provider: Option<String>,
    /// CUSTOM naming a provider Warden calls.
    pub(crate) calls: bool,
}

impl Policy {
    /// The policy's kind, namespace and name.
    pub fn object_ref(&self) -> &ObjectRef {
        &self.object
    }

    /// ALLOW, DENY, AUDIT or CUSTOM.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Whether `targetRef`/`targetRefs` attach the policy to gateways or waypoints, so that no
    /// sidecar applies it (Istio `pilot/pkg/model/policyattachment.go`).
    pub fn targets_gateways(&self) -> bool {
        self.targets_gateways
    }

    /// Which request attributes the policy's rules read (for deployment tools: a policy that
    /// reads `source_ip` needs the direct peer handed over by a network filter).
    pub fn needs(&self) -> super::Needs {
        super::engine::needs_of(self.rules.iter())
    }

    /// Why Warden cannot enforce the policy exactly, if it cannot: it then fails closed for
    /// the workloads it selects (a CUSTOM rule that matches denies; a condition Warden cannot
    /// evaluate counts against the request).
    pub fn unenforceable(&self) -> Option<String> {
        if self.action == Action::Custom && !self.calls {
            return Some(
                "action CUSTOM: its provider is not one Warden calls (an envoyExtAuthzHttp \
                 entry of `providers`; dry-run CUSTOM policies are not called), so a request \
                 a CUSTOM rule matches is denied (as when the authorizer is unreachable)"
                    .to_string(),
            );
        }
        self.unsupported().next().map(|(field, reason)| format!("{field}: {reason}"))
    }

    /// The checks Warden cannot evaluate exactly, with why: each fails closed.
    pub fn unsupported(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rules.iter().flat_map(Rule::checks).filter_map(|check| match &check.test {
            Test::Unsupported { reason } => Some((&*check.field, &**reason)),
            _ => None,
        })
    }

    /// Whether `istio.io/dry-run` makes the policy report instead of enforce.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The number of rules (`spec.rules`); zero means the policy never matches.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether the policy applies to `workload`: same namespace or the root namespace, the
    /// selector's labels all carried by the workload, and no `targetRefs`.
    pub fn applies_to(&self, workload: &Workload, mesh: &Mesh) -> bool {
        !self.targets_gateways
            && scope::selects(
                &self.object.namespace,
                self.selector.as_ref(),
                workload,
                &mesh.root_namespace,
            )
    }
}

/// One rule: (any `from`) AND (any `to`) AND (all `when`). `None` is an omitted part (matches).
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) from: Option<Vec<Vec<Check>>>,
    pub(crate) to: Option<Vec<Vec<Check>>>,
    pub(crate) when: Vec<Check>,
}

impl Rule {
    /// Every check of the rule, wherever it sits.
    pub(crate) fn checks(&self) -> impl Iterator<Item = &Check> {
        let sides = self.from.iter().chain(self.to.iter()).flatten().flatten();
        sides.chain(self.when.iter())
    }
}

/// One field of a source or operation, or one half (`values`/`notValues`) of a condition:
/// matches if any value matches (or, negated, if none does).
#[derive(Debug, Clone)]
pub(crate) struct Check {
    /// Where it is written, e.g. `spec.rules[0].from[1].source.principals`.
    pub(crate) field: Box<str>,
    /// The attribute as the user names it: `principals`, `request.headers[x-token]`.
    pub(crate) key: Box<str>,
    /// The values as written.
    pub(crate) values: Box<[String]>,
    /// `notX` / `notValues`.
    pub(crate) negated: bool,
    pub(crate) test: Test,
}

/// What a check reads and how each value matches.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// The peer certificate (principals, namespaces, service accounts, trust domains).
    Peer(Box<[PeerPattern]>),
    SourceIp(Box<[Cidr]>),
    RemoteIp(Box<[Cidr]>),
    DestinationIp(Box<[Cidr]>),
    DestinationPort(Box<[u16]>),
    Sni(Box<[Pattern]>),
    /// `:authority`, case-insensitive (patterns lower-case).
    Host(Box<[Pattern]>),
    Method(Box<[Pattern]>),
    /// The path without query and fragment.
    Path(Box<[PathPattern]>),
    Header {
        name: Box<[u8]>,
        patterns: Box<[Pattern]>,
    },
    RequestPrincipal(Box<[RequestPrincipalPattern]>),
    /// A JWT claim (audiences are `aud`, the presenter `azp`): a string, or a list containing one.
    Claim {
        path: Box<[String]>,
        patterns: Box<[Pattern]>,
    },
    /// A condition Istio accepts and Warden cannot evaluate exactly: always unknown, so it
    /// fails closed (`eval.rs`). `reason` says why, for `warden check` and the logs.
    Unsupported {
        reason: Box<str>,
    },
}

impl Test {
    /// Where the glue reads what it tests (`None`: nothing it can read).
    pub(crate) fn channel(&self) -> Option<super::Channel> {
        use super::Channel;
        Some(match self {
            Test::Peer(_) => Channel::PeerCertificate,
            Test::SourceIp(_) => Channel::DirectPeer,
            Test::RemoteIp(_) => Channel::RemoteAddress,
            Test::DestinationIp(_) => Channel::DestinationAddress,
            Test::DestinationPort(_) => Channel::DestinationPort,
            Test::Sni(_) => Channel::Sni,
            Test::Host(_) | Test::Method(_) | Test::Path(_) | Test::Header { .. } => {
                Channel::HeaderMap
            }
            Test::RequestPrincipal(_) | Test::Claim { .. } => Channel::Token,
            Test::Unsupported { .. } => return None,
        })
    }
}

/// One `paths` value.
#[derive(Debug, Clone)]
pub(crate) enum PathPattern {
    Value(Pattern),
    Template(PathTemplate),
}

/// Validates one `AuthorizationPolicy` into a [`Policy`], or returns every error it has.
pub fn validate(
    object: &Object<AuthorizationPolicySpec>,
    mesh: &Mesh,
) -> Result<Policy, Vec<ConfigError>> {
    let at = object.object_ref(KIND_AUTHORIZATION_POLICY);
    let spec = &object.spec;
    let mut v = Validator {
        at: &at,
        mesh,
        namespace: &object.metadata.namespace,
        errors: Vec::new(),
        stricter: None,
    };

    let targets_gateways = spec.target_ref.is_some() || !spec.target_refs.is_empty();
    if targets_gateways && spec.selector.is_some() {
        v.error("spec.selector", PolicyProblem::SelectorWithTargetRefs);
    }
    if spec.target_ref.is_some() && !spec.target_refs.is_empty() {
        v.error("spec.targetRef", PolicyProblem::TargetRefAndTargetRefs);
    }
    let calls = spec.action == Action::Custom
        && spec.provider.as_ref().is_some_and(|p| mesh.callable_providers.contains(&p.name));
    if spec.action == Action::Custom {
        v.custom(spec, calls);
    } else if spec.provider.is_some() {
        v.error("spec.provider", PolicyProblem::ProviderWithoutCustom(spec.action.as_str()));
    }
    if spec.action == Action::Deny && spec.rules.is_empty() {
        v.error("spec.rules", PolicyProblem::DenyWithoutRules);
    }
    // The CRD's `maxItems` (istio/istio manifests/charts/base/files/crd-all.gen.yaml).
    if spec.rules.len() > MAX_RULES {
        v.error("spec.rules", PolicyProblem::TooMany { count: spec.rules.len(), max: MAX_RULES });
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        if let Some(from) = rule.from.as_ref().filter(|from| from.len() > MAX_RULES) {
            v.error(
                format!("spec.rules[{i}].from"),
                PolicyProblem::TooMany { count: from.len(), max: MAX_RULES },
            );
        }
    }

    let dry_run_field = format!("metadata.annotations[{DRY_RUN_ANNOTATION}]");
    let dry_run = match object.metadata.annotations.get(DRY_RUN_ANNOTATION) {
        None => false,
        Some(value) => {
            if !matches!(spec.action, Action::Allow | Action::Deny) {
                v.error(&dry_run_field, PolicyProblem::DryRunAction(spec.action.as_str()));
            }
            parse_go_bool(value).unwrap_or_else(|| {
                v.error(&dry_run_field, PolicyProblem::DryRunValue(value.clone()));
                false
            })
        }
    };

    let rules: Vec<Rule> = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let base = format!("spec.rules[{i}]");
            let from = rule.from.as_deref().map(|from| {
                v.entries(
                    &format!("{base}.from"),
                    "source",
                    from,
                    |e| e.source.as_ref(),
                    Validator::source,
                )
            });
            let to = rule.to.as_deref().map(|to| {
                v.entries(
                    &format!("{base}.to"),
                    "operation",
                    to,
                    |e| e.operation.as_ref(),
                    Validator::operation,
                )
            });
            let mut when = Vec::new();
            if let Some(conditions) = &rule.when {
                if conditions.is_empty() {
                    let field = format!("{base}.when");
                    v.stricter(&field, PolicyProblem::EmptyList);
                    let check = v.check(field, "when", &[], false, Test::Path(Box::new([])));
                    when.push(check);
                }
                for (j, condition) in conditions.iter().enumerate() {
                    v.condition(&format!("{base}.when[{j}]"), condition, &mut when);
                }
            }
            Rule { from, to, when }
        })
        .collect();

    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    Ok(Policy {
        provider: spec.provider.as_ref().map(|p| p.name.clone()),
        // A dry-run CUSTOM policy is not called (it stays in the fail-closed bucket).
        calls: calls && !dry_run,
        mesh_wide: object.metadata.namespace == mesh.root_namespace,
        object: at,
        action: spec.action,
        dry_run,
        selector: spec.selector.clone(),
        targets_gateways,
        rules,
    })
}

/// Go's `strconv.ParseBool`, which Istio uses for `istio.io/dry-run`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// How one value of a field becomes matchers (arguments: the validator, the value's field path,
/// the value); `None` when it is invalid and the error has been recorded.
type ParseValue<V, T> = dyn Fn(&mut V, &str, &str) -> Option<Vec<T>>;

struct Validator<'a> {
    at: &'a ObjectRef,
    mesh: &'a Mesh,
    namespace: &'a str,
    errors: Vec<ConfigError>,
    /// A value Istio accepts and Warden will not enforce as written, met while validating the
    /// current field: the field becomes a check that fails closed instead of an error.
    stricter: Option<String>,
}

impl Validator<'_> {
    fn error(&mut self, field: impl Into<String>, problem: PolicyProblem) {
        self.errors.push(ConfigError::at(self.at, field, Problem::Authz(problem)));
    }

    /// A value Istio's validation accepts but Warden will not enforce as written (it could
    /// only ever mean a policy that does not do what it says, or Envoy would refuse what
    /// istiod generates from it). Not an error: one such policy must not refuse the whole
    /// configuration of every sidecar. The field fails closed where the policy applies, and
    /// `warden check` warns (docs/compatibility.md).
    fn stricter(&mut self, field: impl Into<String>, problem: PolicyProblem) {
        let field = field.into();
        if self.stricter.is_none() {
            self.stricter = Some(format!("{field}: {problem}"));
        }
    }

    /// The check for a field: `test`, or, when a value Warden will not enforce was met, a
    /// check that fails closed.
    fn check(
        &mut self,
        field: String,
        key: &str,
        values: &[String],
        negated: bool,
        test: Test,
    ) -> Check {
        let test = match self.stricter.take() {
            Some(reason) => Test::Unsupported { reason: reason.into() },
            None => test,
        };
        Check { field: field.into(), key: key.into(), values: values.into(), negated, test }
    }

    /// What Istio requires of a CUSTOM policy (`pkg/config/validation/validation.go`
    /// `ValidateAuthorizationPolicy`): rules, a provider name, and no identity fields (Istio
    /// runs ext_authz before JWT authentication and cannot see peers there).
    /// With `calls` (the provider is one Warden calls, after authentication), identities are
    /// allowed: that is the point of calling it there.
    fn custom(&mut self, spec: &AuthorizationPolicySpec, calls: bool) {
        if spec.rules.is_empty() {
            self.error("spec.rules", PolicyProblem::CustomWithoutRules);
        } else if spec.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
            self.error("spec.provider.name", PolicyProblem::CustomWithoutProvider);
        }
        if calls {
            return;
        }
        for (i, rule) in spec.rules.iter().enumerate() {
            for (j, from) in rule.from.iter().flatten().enumerate() {
                let Some(source) = &from.source else { continue };
                let fields = [
                    ("namespaces", &source.namespaces),
                    ("notNamespaces", &source.not_namespaces),
                    ("serviceAccounts", &source.service_accounts),
                    ("notServiceAccounts", &source.not_service_accounts),
                    ("trustDomains", &source.trust_domains),
                    ("notTrustDomains", &source.not_trust_domains),
                    ("principals", &source.principals),
                    ("notPrincipals", &source.not_principals),
                    ("requestPrincipals", &source.request_principals),
                    ("notRequestPrincipals", &source.not_request_principals),
                ];
                for (name, values) in fields {
                    if values.as_ref().is_some_and(|v| !v.is_empty()) {
                        self.error(
                            format!("spec.rules[{i}].from[{j}].source.{name}"),
                            PolicyProblem::NotWithCustom(name.to_string()),
                        );
                    }
                }
            }
            for (j, condition) in rule.when.iter().flatten().enumerate() {
                let key = condition.key.as_str();
                let identity = matches!(
                    key,
                    "source.namespace"
                        | "source.serviceAccount"
                        | "source.trustDomain"
                        | "source.principal"
                ) || key.starts_with("request.auth.");
                if identity {
                    self.error(
                        format!("spec.rules[{i}].when[{j}].key"),
                        PolicyProblem::NotWithCustom(key.to_string()),
                    );
                }
            }
        }
    }

    /// The values of a list field, or `None` if it is absent. An empty list and empty values
    /// are errors.
    fn values<'v>(&mut self, field: &str, values: Option<&'v Vec<String>>) -> Option<&'v [String]> {
        let values = values?;
        if values.is_empty() {
            // Istio decodes `[]` as an absent field; Warden will not read it as "anything".
            self.stricter(field, PolicyProblem::EmptyList);
        }
        for (i, value) in values.iter().enumerate() {
            if value.is_empty() {
                self.error(format!("{field}[{i}]"), PolicyProblem::EmptyValue);
            }
        }
        Some(values)
    }

    /// One field (positive or `not`) compiled into a check, appended to `checks`.
    #[allow(clippy::too_many_arguments)]
    fn field<T>(
        &mut self,
        checks: &mut Vec<Check>,
        field: String,
        key: &str,
        negated: bool,
        values: Option<&Vec<String>>,
        parse: &ParseValue<Self, T>,
        test: fn(Box<[T]>) -> Test,
    ) {
        let Some(values) = self.values(&field, values) else { return };
        let mut compiled = Vec::new();
        for (i, value) in values.iter().enumerate().filter(|(_, value)| !value.is_empty()) {
            if let Some(parsed) = parse(self, &format!("{field}[{i}]"), value) {
                compiled.extend(parsed);
            }
        }
        let check = self.check(field, key, values, negated, test(compiled.into()));
        checks.push(check);
    }

    /// A field and its `not` twin (`principals`/`notPrincipals`): the same parser and test,
    /// the second negated.
    #[allow(clippy::too_many_arguments)]
    fn field_pair<T>(
        &mut self,
        checks: &mut Vec<Check>,
        base: &str,
        (name, not_name): (&str, &str),
        (values, not_values): (&Option<Vec<String>>, &Option<Vec<String>>),
        parse: &ParseValue<Self, T>,
        test: fn(Box<[T]>) -> Test,
    ) {
        for (negated, name, values) in [(false, name, values), (true, not_name, not_values)] {
            self.field(
                checks,
                format!("{base}.{name}"),
                name,
                negated,
                values.as_ref(),
                parse,
                test,
            );
        }
    }

    /// `from` or `to` (at `list`): a non-empty list whose entries each carry their `field`
    /// (`source` or `operation`), validated by `check`.
    fn entries<E, T>(
        &mut self,
        list: &str,
        field: &str,
        entries: &[E],
        get: impl Fn(&E) -> Option<&T>,
        check: impl Fn(&mut Self, &str, &T) -> Vec<Check>,
    ) -> Vec<Vec<Check>> {
        if entries.is_empty() {
            // `from: []` is an absent `from` to Istio (it matches any source); Warden makes it
            // one alternative that fails closed.
            self.stricter(list, PolicyProblem::EmptyList);
            let check = self.check(list.to_string(), field, &[], false, Test::Path(Box::new([])));
            return vec![vec![check]];
        }
        entries
            .iter()
            .enumerate()
            .map(|(j, entry)| {
                let at = format!("{list}[{j}].{field}");
                match get(entry) {
                    Some(value) => check(self, &at, value),
                    None => {
                        self.error(at, PolicyProblem::MissingEntry);
                        Vec::new()
                    }
                }
            })
            .collect()
    }

    fn source(&mut self, base: &str, source: &Source) -> Vec<Check> {
        let fields = [
            &source.principals,
            &source.not_principals,
            &source.request_principals,
            &source.not_request_principals,
            &source.namespaces,
            &source.not_namespaces,
            &source.service_accounts,
            &source.not_service_accounts,
            &source.trust_domains,
            &source.not_trust_domains,
            &source.ip_blocks,
            &source.not_ip_blocks,
            &source.remote_ip_blocks,
            &source.not_remote_ip_blocks,
        ];
        if fields.iter().all(|field| field.is_none()) {
            self.error(base, PolicyProblem::EmptySource);
        }
        let identity_fields = [
            &source.principals,
            &source.not_principals,
            &source.namespaces,
            &source.not_namespaces,
        ];
        if identity_fields.iter().any(|f| f.is_some())
            && (source.service_accounts.is_some() || source.not_service_accounts.is_some())
        {
            self.error(
                format!("{base}.serviceAccounts"),
                PolicyProblem::ServiceAccountsWithPrincipals,
            );
        }

        let mut checks = Vec::new();
        self.field_pair(
            &mut checks,
            base,
            ("principals", "notPrincipals"),
            (&source.principals, &source.not_principals),
            &Self::principal,
            Test::Peer,
        );
        self.field_pair(
            &mut checks,
            base,
            ("requestPrincipals", "notRequestPrincipals"),
            (&source.request_principals, &source.not_request_principals),
            &Self::request_principal,
            Test::RequestPrincipal,
        );
        self.field_pair(
            &mut checks,
            base,
            ("namespaces", "notNamespaces"),
            (&source.namespaces, &source.not_namespaces),
            &Self::namespace,
            Test::Peer,
        );
        self.service_account_count(
            &format!("{base}.serviceAccounts"),
            source.service_accounts.as_ref(),
        );
        self.service_account_count(
            &format!("{base}.notServiceAccounts"),
            source.not_service_accounts.as_ref(),
        );
        self.field_pair(
            &mut checks,
            base,
            ("serviceAccounts", "notServiceAccounts"),
            (&source.service_accounts, &source.not_service_accounts),
            &Self::service_account,
            Test::Peer,
        );
        self.field_pair(
            &mut checks,
            base,
            ("trustDomains", "notTrustDomains"),
            (&source.trust_domains, &source.not_trust_domains),
            &Self::trust_domain,
            Test::Peer,
        );
        self.field_pair(
            &mut checks,
            base,
            ("ipBlocks", "notIpBlocks"),
            (&source.ip_blocks, &source.not_ip_blocks),
            &Self::cidr,
            Test::SourceIp,
        );
        self.field_pair(
            &mut checks,
            base,
            ("remoteIpBlocks", "notRemoteIpBlocks"),
            (&source.remote_ip_blocks, &source.not_remote_ip_blocks),
            &Self::cidr,
            Test::RemoteIp,
        );
        checks
    }

    fn operation(&mut self, base: &str, operation: &Operation) -> Vec<Check> {
        let fields = [
            &operation.hosts,
            &operation.not_hosts,
            &operation.ports,
            &operation.not_ports,
            &operation.methods,
            &operation.not_methods,
            &operation.paths,
            &operation.not_paths,
        ];
        if fields.iter().all(|field| field.is_none()) {
            self.error(base, PolicyProblem::EmptyOperation);
        }
        let mut checks = Vec::new();
        self.field_pair(
            &mut checks,
            base,
            ("hosts", "notHosts"),
            (&operation.hosts, &operation.not_hosts),
            &|_, _, v| Some(vec![Pattern::host(v)]),
            Test::Host,
        );
        self.field_pair(
            &mut checks,
            base,
            ("ports", "notPorts"),
            (&operation.ports, &operation.not_ports),
            &Self::port,
            Test::DestinationPort,
        );
        self.field_pair(
            &mut checks,
            base,
            ("methods", "notMethods"),
            (&operation.methods, &operation.not_methods),
            &|_, _, v| Some(vec![Pattern::header(v)]),
            Test::Method,
        );
        self.field_pair(
            &mut checks,
            base,
            ("paths", "notPaths"),
            (&operation.paths, &operation.not_paths),
            &Self::path,
            Test::Path,
        );
        checks
    }

    fn condition(&mut self, base: &str, condition: &Condition, checks: &mut Vec<Check>) {
        if condition.key.is_empty() {
            self.error(format!("{base}.key"), PolicyProblem::MissingEntry);
            return;
        }
        if condition.values.is_none() && condition.not_values.is_none() {
            self.error(base, PolicyProblem::ConditionWithoutValues);
        }
        let attribute = match Attribute::parse(&condition.key) {
            Ok(attribute) => attribute,
            Err(problem @ PolicyProblem::MalformedKey { .. })
                if super::attribute::istio_accepts_key(&condition.key) =>
            {
                // Istio's validation accepts the key; its generator would drop the rule.
                self.stricter(format!("{base}.key"), problem);
                let check = self.check(
                    format!("{base}.key"),
                    &condition.key,
                    &[],
                    false,
                    Test::Path(Box::new([])),
                );
                checks.push(check);
                return;
            }
            Err(problem) => {
                self.error(format!("{base}.key"), problem);
                return;
            }
        };
        let key = condition.key.as_str();
        for (negated, name, values) in
            [(false, "values", &condition.values), (true, "notValues", &condition.not_values)]
        {
            let field = format!("{base}.{name}");
            let values = values.as_ref();
            match &attribute {
                Attribute::RequestHeader(header) => {
                    let header = header.clone();
                    let Some(list) = self.values(&field, values) else { continue };
                    let patterns =
                        list.iter().filter(|v| !v.is_empty()).map(|v| Pattern::header(v));
                    let test = Test::Header { name: header, patterns: patterns.collect() };
                    let check = self.check(field, key, list, negated, test);
                    checks.push(check);
                }
                Attribute::RequestClaim(path) => {
                    self.claim(checks, field, key, negated, values, path.clone());
                }
                Attribute::EnvoyMetadata => {
                    let Some(list) = self.values(&field, values) else { continue };
                    let reason = UNSUPPORTED_ENVOY_METADATA.into();
                    let check = self.check(field, key, list, negated, Test::Unsupported { reason });
                    checks.push(check);
                }
                Attribute::RequestAudiences => {
                    self.claim(checks, field, key, negated, values, ["aud".to_string()].into());
                }
                Attribute::RequestPresenter => {
                    self.claim(checks, field, key, negated, values, ["azp".to_string()].into());
                }
                Attribute::SourceIp => {
                    self.field(checks, field, key, negated, values, &Self::cidr, Test::SourceIp)
                }
                Attribute::RemoteIp => {
                    self.field(checks, field, key, negated, values, &Self::cidr, Test::RemoteIp)
                }
                Attribute::DestinationIp => self.field(
                    checks,
                    field,
                    key,
                    negated,
                    values,
                    &Self::cidr,
                    Test::DestinationIp,
                ),
                Attribute::DestinationPort => self.field(
                    checks,
                    field,
                    key,
                    negated,
                    values,
                    &Self::port,
                    Test::DestinationPort,
                ),
                Attribute::ConnectionSni => self.field(
                    checks,
                    field,
                    key,
                    negated,
                    values,
                    &|_, _, v| Some(vec![Pattern::string(v)]),
                    Test::Sni,
                ),
                Attribute::SourcePrincipal => {
                    self.field(checks, field, key, negated, values, &Self::principal, Test::Peer)
                }
                Attribute::SourceNamespace => {
                    self.field(checks, field, key, negated, values, &Self::namespace, Test::Peer)
                }
                Attribute::SourceServiceAccount => {
                    self.service_account_count(&field, values);
                    self.field(
                        checks,
                        field,
                        key,
                        negated,
                        values,
                        &Self::service_account,
                        Test::Peer,
                    )
                }
                Attribute::SourceTrustDomain => {
                    self.field(checks, field, key, negated, values, &Self::trust_domain, Test::Peer)
                }
                Attribute::RequestPrincipal => self.field(
                    checks,
                    field,
                    key,
                    negated,
                    values,
                    &Self::request_principal,
                    Test::RequestPrincipal,
                ),
            }
        }
    }

    fn claim(
        &mut self,
        checks: &mut Vec<Check>,
        field: String,
        key: &str,
        negated: bool,
        values: Option<&Vec<String>>,
        path: Box<[String]>,
    ) {
        let Some(list) = self.values(&field, values) else { return };
        let patterns = list.iter().filter(|v| !v.is_empty()).map(|v| Pattern::string(v));
        let check = self.check(
            field,
            key,
            list,
            negated,
            Test::Claim { path, patterns: patterns.collect() },
        );
        checks.push(check);
    }

    fn service_account_count(&mut self, field: &str, values: Option<&Vec<String>>) {
        if values.is_some_and(|values| values.len() > 16) {
            self.error(field, PolicyProblem::TooManyServiceAccounts);
        }
    }

    fn principal(&mut self, _: &str, value: &str) -> Option<Vec<PeerPattern>> {
        Some(principal_patterns(value, self.mesh))
    }

    fn request_principal(&mut self, _: &str, value: &str) -> Option<Vec<RequestPrincipalPattern>> {
        Some(vec![RequestPrincipalPattern::parse(value)])
    }

    fn no_control_characters(&mut self, field: &str, value: &str) -> Option<()> {
        if value.chars().any(char::is_control) {
            self.stricter(field, PolicyProblem::ControlCharacter(value.to_string()));
            return None;
        }
        Some(())
    }

    fn namespace(&mut self, field: &str, value: &str) -> Option<Vec<PeerPattern>> {
        self.no_control_characters(field, value)?;
        Some(vec![namespace_pattern(value)])
    }

    fn service_account(&mut self, field: &str, value: &str) -> Option<Vec<PeerPattern>> {
        if let Err(reason) = check_service_account(value) {
            self.error(field, PolicyProblem::InvalidServiceAccount { value: value.into(), reason });
            return None;
        }
        self.no_control_characters(field, value)?;
        Some(vec![service_account_pattern(value, self.namespace)])
    }

    fn trust_domain(&mut self, field: &str, value: &str) -> Option<Vec<PeerPattern>> {
        if let Err(reason) = check_trust_domain(value) {
            self.error(field, PolicyProblem::InvalidTrustDomain { value: value.into(), reason });
            return None;
        }
        self.no_control_characters(field, value)?;
        Some(trust_domain_patterns(value, self.mesh))
    }

    fn cidr(&mut self, field: &str, value: &str) -> Option<Vec<Cidr>> {
        match Cidr::parse(value) {
            Ok(cidr) => Some(vec![cidr]),
            Err(reason) => {
                self.error(field, PolicyProblem::InvalidIp { value: value.into(), reason });
                None
            }
        }
    }

    fn port(&mut self, field: &str, value: &str) -> Option<Vec<u16>> {
        match parse_port(value) {
            Some(port) => Some(vec![port]),
            None => {
                self.error(field, PolicyProblem::InvalidPort(value.into()));
                None
            }
        }
    }

    fn path(&mut self, field: &str, value: &str) -> Option<Vec<PathPattern>> {
        let parsed = if is_template(value) {
            PathTemplate::parse(value).map(PathPattern::Template)
        } else if value.contains('{') || value.contains('}') {
            // Istio's CheckValidPathTemplate refuses braces outside {*} and {**}.
            Err("'{' and '}' are only allowed as whole segments {*} and {**}".to_string())
        } else {
            Ok(PathPattern::Value(Pattern::string(value)))
        };
        match parsed {
            Ok(pattern) => Some(vec![pattern]),
            Err(reason) => {
                let problem = PolicyProblem::InvalidPathTemplate { path: value.into(), reason };
                if super::path_template::istio_accepts(value) {
                    // Istio accepts it, and Envoy would refuse what istiod generates.
                    self.stricter(field, problem);
                } else {
                    self.error(field, problem);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::istio::{Rule as RuleSpec, RuleFrom, RuleTo};
    use crate::config::ObjectMeta;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn object(spec: AuthorizationPolicySpec) -> Object<AuthorizationPolicySpec> {
        Object {
            metadata: ObjectMeta { name: "p".into(), namespace: "ns".into(), ..Default::default() },
            spec,
        }
    }

    fn errors(spec: AuthorizationPolicySpec) -> Vec<(String, PolicyProblem)> {
        validate(&object(spec), &Mesh::default())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| match e.problem {
                Problem::Authz(p) => (e.field, p),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn empty_spec_is_a_valid_allow_nothing() {
        let policy =
            validate(&object(AuthorizationPolicySpec::default()), &Mesh::default()).unwrap();
        assert_eq!(policy.action(), Action::Allow);
        assert_eq!(policy.rule_count(), 0);
    }

    #[test]
    fn every_when_key_reads_the_channel_its_table_row_names() {
        use crate::authz::attribute::FIXED_KEYS;
        use crate::authz::Channel;
        use crate::authz::ATTRIBUTES;
        use crate::config::istio::Condition;
        let keys = FIXED_KEYS.iter().map(|(key, _)| key.to_string());
        for key in keys.chain(["request.headers[x-a]".into(), "request.auth.claims[a]".into()]) {
            let value = if key.ends_with(".ip") { "10.0.0.0/8" } else { "1" };
            let spec = AuthorizationPolicySpec {
                rules: vec![RuleSpec {
                    from: None,
                    to: None,
                    when: Some(vec![Condition {
                        key: key.clone(),
                        values: Some(vec![value.into()]),
                        not_values: None,
                    }]),
                }],
                ..Default::default()
            };
            let policy = validate(&object(spec), &Mesh::default()).unwrap();
            let channel = policy.rules[0].when[0].test.channel().unwrap();
            let family = key.split('[').next().unwrap_or_default();
            // The row naming the key, else its family's row (`source.*` peer attributes share
            // the certificate's row, `request.auth.*` the token's).
            let row = ATTRIBUTES
                .iter()
                .find(|row| {
                    row.istio.contains(&format!("`{key}`"))
                        || row.istio.contains(&format!("`{family}[...]`"))
                })
                .or_else(|| {
                    ATTRIBUTES.iter().find(|row| {
                        (key.starts_with("request.auth.") && row.istio.contains("request.auth.*"))
                            || (key.starts_with("source.")
                                && row.channel == Channel::PeerCertificate)
                    })
                })
                .unwrap_or_else(|| panic!("{key}: no row in ATTRIBUTES"));
            assert_eq!(row.channel, channel, "{key}");
        }
    }

    #[test]
    fn rules_and_sources_stop_at_the_crds_max_items() {
        // istio/istio manifests/charts/base/files/crd-all.gen.yaml: rules and from `maxItems: 512`.
        let allow_all = RuleSpec { from: None, to: None, when: None };
        let spec = |rules: usize, from: usize| AuthorizationPolicySpec {
            rules: vec![
                RuleSpec {
                    from: Some(vec![
                        RuleFrom {
                            source: Some(Source {
                                namespaces: Some(vec!["a".into()]),
                                ..Default::default()
                            })
                        };
                        from
                    ]),
                    ..allow_all.clone()
                };
                rules
            ],
            ..Default::default()
        };
        assert!(errors(spec(MAX_RULES, MAX_RULES)).is_empty());
        assert_eq!(
            errors(spec(MAX_RULES + 1, 1)),
            vec![("spec.rules".to_string(), PolicyProblem::TooMany { count: 513, max: 512 })]
        );
        assert_eq!(
            errors(spec(1, MAX_RULES + 1)),
            vec![(
                "spec.rules[0].from".to_string(),
                PolicyProblem::TooMany { count: 513, max: 512 }
            )]
        );
    }

    #[test]
    fn deny_without_rules_is_refused() {
        let spec = AuthorizationPolicySpec { action: Action::Deny, ..Default::default() };
        assert_eq!(errors(spec), vec![("spec.rules".to_string(), PolicyProblem::DenyWithoutRules)]);
    }

    #[test]
    fn empty_sources_are_refused_and_empty_lists_fail_closed() {
        let spec = AuthorizationPolicySpec {
            rules: vec![RuleSpec {
                from: Some(vec![RuleFrom { source: Some(Source::default()) }]),
                to: Some(vec![]),
                when: None,
            }],
            ..Default::default()
        };
        // Istio refuses `source: {}`; it reads `to: []` as an absent `to` (so Warden does not
        // refuse it, and will not read it as "any operation" either).
        assert_eq!(
            errors(spec.clone()),
            vec![("spec.rules[0].from[0].source".to_string(), PolicyProblem::EmptySource)]
        );
        let spec = AuthorizationPolicySpec {
            rules: vec![RuleSpec { from: None, to: Some(vec![]), when: None }],
            ..Default::default()
        };
        let policy = validate(&object(spec), &Mesh::default()).unwrap();
        let unsupported: Vec<(&str, &str)> = policy.unsupported().collect();
        assert_eq!(unsupported.len(), 1);
        assert_eq!(unsupported[0].0, "spec.rules[0].to");
        assert!(policy.unenforceable().unwrap().contains("must not be empty"));
    }

    #[test]
    fn every_bad_value_is_reported_with_its_index() {
        let spec = AuthorizationPolicySpec {
            rules: vec![RuleSpec {
                from: None,
                to: Some(vec![RuleTo {
                    operation: Some(Operation {
                        ports: Some(vec!["80".into(), "x".into(), "".into()]),
                        ..Default::default()
                    }),
                }]),
                when: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            errors(spec),
            vec![
                ("spec.rules[0].to[0].operation.ports[2]".to_string(), PolicyProblem::EmptyValue),
                (
                    "spec.rules[0].to[0].operation.ports[1]".to_string(),
                    PolicyProblem::InvalidPort("x".into())
                ),
            ]
        );
    }

    #[test]
    fn dry_run_parses_as_go_bool() {
        for (value, expected) in
            [("true", true), ("T", true), ("1", true), ("False", false), ("0", false)]
        {
            let mut o = object(AuthorizationPolicySpec::default());
            o.metadata.annotations.insert(DRY_RUN_ANNOTATION.into(), value.into());
            assert_eq!(validate(&o, &Mesh::default()).unwrap().dry_run(), expected, "{value}");
        }
        let mut o = object(AuthorizationPolicySpec::default());
        o.metadata.annotations.insert(DRY_RUN_ANNOTATION.into(), "yes".into());
        assert!(validate(&o, &Mesh::default()).is_err());
    }
}
