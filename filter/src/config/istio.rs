//! The Istio resources Warden reads, exactly as users write them.
//!
//! `security.istio.io/v1` (and `v1beta1`, the same schema) `AuthorizationPolicy` and
//! `RequestAuthentication`. These types are schema only: no validation beyond what serde
//! checks, no logic. Unknown fields inside `spec` are refused (a typo such as `notPath` must
//! not silently widen a policy); `metadata` and `status` accept what a cluster adds
//! (`uid`, `resourceVersion`, `managedFields`, …) so objects can be taken out of a cluster
//! and used unchanged.
//!
//! Field documentation follows `istio/api` `security/v1beta1/*.proto`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The API group both resources belong to.
pub const API_GROUP: &str = "security.istio.io";

/// API versions accepted for both kinds (they share one schema).
pub const API_VERSIONS: &[&str] = &["security.istio.io/v1", "security.istio.io/v1beta1"];

/// `metadata` of a Kubernetes object. Only what Warden uses is kept.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object's name. Required.
    #[serde(default)]
    pub name: String,
    /// The object's namespace. Required in Warden's configuration: the namespace decides which
    /// workloads a policy applies to. (`warden check` can fill it in for files written for
    /// `kubectl apply -n`.)
    #[serde(default)]
    pub namespace: String,
    /// Annotations; Warden reads `istio.io/dry-run`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `selector`: the workloads (by label) a policy applies to.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels a workload must all carry. Empty or absent selects every workload in scope.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// `targetRef`/`targetRefs`: gateways, waypoints and services. Istio's sidecars ignore a policy
/// that has them (`pilot/pkg/model/policyattachment.go`), and so does Warden, with a warning
/// from `warden check` and a gauge in the module.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// API group of the target.
    #[serde(default)]
    pub group: String,
    /// Kind of the target.
    #[serde(default)]
    pub kind: String,
    /// Name of the target.
    #[serde(default)]
    pub name: String,
    /// Namespace of the target.
    #[serde(default)]
    pub namespace: String,
}

/// `AuthorizationPolicy.spec`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// Workloads the policy applies to; absent means all in scope.
    #[serde(default)]
    pub selector: Option<WorkloadSelector>,
    /// A gateway or waypoint the policy attaches to: sidecars ignore the policy.
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways or waypoints the policy attaches to: sidecars ignore the policy.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Rules, OR-ed. Absent or empty: the policy matches nothing (for ALLOW, "allow nothing").
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// `ALLOW` (default), `DENY`, `AUDIT` or `CUSTOM` (which Warden cannot carry out: it fails
    /// closed, see `authz`).
    #[serde(default)]
    pub action: Action,
    /// Only for CUSTOM.
    #[serde(default)]
    pub provider: Option<Provider>,
}

/// `AuthorizationPolicy.spec.action`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Allow a request only if it matches the rules.
    #[default]
    Allow,
    /// Deny a request if it matches any of the rules.
    Deny,
    /// Audit a request if it matches any of the rules; never changes the outcome.
    Audit,
    /// Delegate to an external authorizer. Warden does not call one: a matching CUSTOM rule
    /// denies the request (fail closed, as an unreachable authorizer does).
    Custom,
}

impl Action {
    /// The spelling used in Istio's YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        }
    }
}

/// `AuthorizationPolicy.spec.provider` (CUSTOM only).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    /// The extension provider's name.
    #[serde(default)]
    pub name: String,
}

/// One rule: (any `from`) AND (any `to`) AND (all `when`). Omitted parts match anything.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Sources, OR-ed. `None` (omitted) matches any source; `Some([])` is an error in Istio.
    #[serde(default)]
    pub from: Option<Vec<RuleFrom>>,
    /// Operations, OR-ed. `None` (omitted) matches any operation; `Some([])` is an error.
    #[serde(default)]
    pub to: Option<Vec<RuleTo>>,
    /// Conditions, AND-ed.
    #[serde(default)]
    pub when: Option<Vec<Condition>>,
}

/// `rules[].from[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleFrom {
    /// The source. Required.
    #[serde(default)]
    pub source: Option<Source>,
}

/// `rules[].to[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTo {
    /// The operation. Required.
    #[serde(default)]
    pub operation: Option<Operation>,
}

/// Who sent the request. Fields are AND-ed; values within a field are OR-ed; `notX` means
/// none of the values. `None` means the field is absent (no constraint); `Some([])` is an error.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Peer identities (SPIFFE IDs without `spiffe://`) from the mTLS certificate.
    pub principals: Option<Vec<String>>,
    /// Negative match of `principals`.
    pub not_principals: Option<Vec<String>>,
    /// JWT identities, `<iss>/<sub>`.
    pub request_principals: Option<Vec<String>>,
    /// Negative match of `requestPrincipals`.
    pub not_request_principals: Option<Vec<String>>,
    /// Peer namespaces, from the mTLS identity.
    pub namespaces: Option<Vec<String>>,
    /// Negative match of `namespaces`.
    pub not_namespaces: Option<Vec<String>>,
    /// Peer service accounts, `ns/sa` or `sa` (the policy's namespace).
    pub service_accounts: Option<Vec<String>>,
    /// Negative match of `serviceAccounts`.
    pub not_service_accounts: Option<Vec<String>>,
    /// Peer trust domains.
    pub trust_domains: Option<Vec<String>>,
    /// Negative match of `trustDomains`.
    pub not_trust_domains: Option<Vec<String>>,
    /// Direct peer IPs or CIDRs.
    pub ip_blocks: Option<Vec<String>>,
    /// Negative match of `ipBlocks`.
    pub not_ip_blocks: Option<Vec<String>>,
    /// Original client IPs or CIDRs (as Envoy computes the remote address).
    pub remote_ip_blocks: Option<Vec<String>>,
    /// Negative match of `remoteIpBlocks`.
    pub not_remote_ip_blocks: Option<Vec<String>>,
}

/// What the request does. Same algebra as [`Source`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// `Host`/`:authority` values, case-insensitive.
    pub hosts: Option<Vec<String>>,
    /// Negative match of `hosts`.
    pub not_hosts: Option<Vec<String>>,
    /// Destination (workload) ports.
    pub ports: Option<Vec<String>>,
    /// Negative match of `ports`.
    pub not_ports: Option<Vec<String>>,
    /// HTTP methods, case-sensitive.
    pub methods: Option<Vec<String>>,
    /// Negative match of `methods`.
    pub not_methods: Option<Vec<String>>,
    /// Paths (without query and fragment), exact, prefix, suffix or templates.
    pub paths: Option<Vec<String>>,
    /// Negative match of `paths`.
    pub not_paths: Option<Vec<String>>,
}

/// `rules[].when[]`: `key` matches any of `values` and none of `notValues`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The attribute, e.g. `request.headers[x-token]` or `request.auth.claims[groups]`.
    #[serde(default)]
    pub key: String,
    /// Values, OR-ed.
    pub values: Option<Vec<String>>,
    /// Negative values, OR-ed.
    pub not_values: Option<Vec<String>>,
}

/// `RequestAuthentication.spec`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthenticationSpec {
    /// Workloads the policy applies to; absent means all in scope.
    #[serde(default)]
    pub selector: Option<WorkloadSelector>,
    /// A gateway or waypoint the policy attaches to: sidecars ignore the policy.
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways or waypoints the policy attaches to: sidecars ignore the policy.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// JWT rules; rules from every policy that selects a workload are combined.
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

/// One issuer's rule: where to find its tokens and how to verify them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// Must equal the token's `iss` exactly. Optional only when `jwksUri` is set.
    #[serde(default)]
    pub issuer: String,
    /// Accepted audiences; empty accepts any (as Envoy does).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where the JWKS is fetched from (through an Envoy cluster). `jwks_uri`, the proto's own
    /// spelling, which Istio's CRD also lists, is accepted for it.
    #[serde(default, alias = "jwks_uri")]
    pub jwks_uri: String,
    /// Inline JWKS (JSON), exclusive with `jwksUri`.
    #[serde(default)]
    pub jwks: String,
    /// Headers to read tokens from; default `Authorization: Bearer`.
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters to read tokens from; default `access_token`.
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies to read tokens from.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Header to receive the verified payload (base64url, as received).
    #[serde(default)]
    pub output_payload_to_header: String,
    /// Claims to copy into headers.
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Keep the token in the forwarded request (default false: it is removed).
    #[serde(default)]
    pub forward_original_token: bool,
    /// JWKS fetch timeout, a protobuf Duration string such as `5s` (default 5 s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Top-level claims split on spaces into lists (`scope` and `permission` always are).
    #[serde(default)]
    pub space_delimited_claims: Vec<String>,
    /// Whether a token must be present (`OPTIONAL` by default). istio/api added the field;
    /// istiod does not act on it yet, so `REQUIRED` is enforced by Warden only.
    #[serde(default)]
    pub presence: Option<Presence>,
}

/// `jwtRules[].presence`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Presence {
    /// A request without a token goes on anonymous (authorization decides).
    #[default]
    Optional,
    /// A request without a token is refused with 401 `Jwt is missing`.
    Required,
}

/// `jwtRules[].fromHeaders[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    /// Header name (case-insensitive).
    #[serde(default)]
    pub name: String,
    /// Prefix before the token, e.g. `Bearer `.
    #[serde(default)]
    pub prefix: String,
}

/// `jwtRules[].outputClaimToHeaders[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// Header to set.
    #[serde(default)]
    pub header: String,
    /// Claim to copy; nested claims with `.`.
    #[serde(default)]
    pub claim: String,
}
