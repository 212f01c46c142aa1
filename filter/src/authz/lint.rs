//! Suspicious-but-legal policies, for `warden check`.
//!
//! Each finding is something Istio accepts but which almost certainly does not do what its
//! author meant; the messages say why and what to write instead.

use std::collections::BTreeMap;

use super::engine::rule_name;
use super::matcher::Pattern;
use super::policy::{Check, Policy, Rule, Test};
use super::principal::RequestPrincipalPattern;
use super::Action;
use crate::config::ObjectRef;

/// What kind of finding a [`Lint`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LintKind {
    /// A rule (or a field) that can never match any request.
    NeverMatches,
    /// An enforced ALLOW rule that an enforced DENY rule always overrides.
    ShadowedByDeny,
    /// A negative mTLS-identity field in an ALLOW rule, which plaintext requests satisfy
    /// (ISTIO-SECURITY-2021-004).
    AllowsPlaintext,
    /// A path that does not start with `/`, which no (normalized) request path does.
    PathWithoutSlash,
    /// A `*` in the middle of a value, which Istio matches literally.
    WildcardInMiddle,
    /// A JWT condition whose issuer no `RequestAuthentication` configures.
    UnknownIssuer,
    /// `hosts` values and ports: the Host header carries the port when the client sent one.
    HostPort,
    /// `targetRef`/`targetRefs`: the policy is for gateways and waypoints; no sidecar applies it.
    IgnoredBySidecars,
    /// A policy Warden cannot enforce exactly (CUSTOM, a condition a Wasm filter cannot
    /// evaluate, a value Istio accepts but Warden will not enforce as written): it fails closed
    /// for the workloads it selects.
    FailsClosed,
    /// `selector: {}`: selects every workload in scope (Istio's validation warns).
    EmptySelector,
    /// A CUSTOM policy Warden calls: where and how its authorizer is asked differs from Istio.
    CustomAfterAuthentication,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// What kind of finding it is.
    pub kind: LintKind,
    /// The policy.
    pub object: ObjectRef,
    /// Where, e.g. `spec.rules[0].to[0].operation.paths[1]`.
    pub field: String,
    /// What is suspicious and what to do instead.
    pub message: String,
}

/// Suspicious-but-legal findings in `policies`. `issuers` are the issuers the configuration's
/// `RequestAuthentication` objects accept (for `requestPrincipals` and `request.auth.*`).
pub fn lint(policies: &[Policy], issuers: &[String]) -> Vec<Lint> {
    let mut lints = Vec::new();
    // Enforced DENY policies by namespace (the root namespace's under its own name too, with
    // `mesh_wide` set): an ALLOW rule is compared with those that can cover its workloads only.
    let mut denies: BTreeMap<&str, Vec<&Policy>> = BTreeMap::new();
    let mut mesh_wide_denies: Vec<&Policy> = Vec::new();
    for deny in policies.iter().filter(|p| p.action == Action::Deny && !p.dry_run) {
        if deny.mesh_wide {
            mesh_wide_denies.push(deny);
        } else {
            denies.entry(deny.object.namespace.as_str()).or_default().push(deny);
        }
    }
    for policy in policies {
        let mut out = |kind: LintKind, field: String, message: String| {
            lints.push(Lint { kind, object: policy.object.clone(), field, message })
        };
        if policy.targets_gateways() {
            out(
                LintKind::IgnoredBySidecars,
                "spec.targetRefs".into(),
                "targetRef/targetRefs attach this policy to gateways or waypoints: sidecars, and \
                 Warden in them, ignore it (use selector.matchLabels for sidecars)"
                    .into(),
            );
            continue;
        }
        if policy.action == Action::Custom && policy.calls {
            out(
                LintKind::CustomAfterAuthentication,
                "spec.action".into(),
                "action CUSTOM: Warden asks the authorizer after JWT authentication (Istio asks \
                 it before), only for requests DENY and ALLOW let through, and sends it the \
                 verified peer and request principals; istiod refuses identities in CUSTOM \
                 rules, so give this policy to Warden only (docs/compatibility.md#custom)"
                    .into(),
            );
        } else if policy.action == Action::Custom {
            out(
                LintKind::FailsClosed,
                "spec.provider.name".into(),
                "action CUSTOM: the provider is not one Warden calls (an envoyExtAuthzHttp \
                 entry of `providers` in the settings), so where this policy applies a request \
                 its rules match is denied (403), as when the authorizer is unreachable \
                 (docs/compatibility.md#custom)"
                    .into(),
            );
        }
        for (field, why) in policy.unsupported() {
            out(
                LintKind::FailsClosed,
                field.to_string(),
                format!(
                    "Warden will not enforce this as written ({why}); where the policy applies \
                     the field fails closed: an ALLOW rule with it never matches, a DENY rule \
                     matches as if it held (docs/compatibility.md)"
                ),
            );
        }
        if policy.selector.as_ref().is_some_and(|s| s.match_labels.is_empty()) {
            out(
                LintKind::EmptySelector,
                "spec.selector".into(),
                "workload selector specified without labels: it selects every workload in scope \
                 (Istio warns too); omit the selector or add matchLabels"
                    .into(),
            );
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            for check in rule.checks() {
                values(check, issuers, &mut out);
            }
            for alternative in rule.from.iter().flatten() {
                contradictions(alternative, &mut out);
                if policy.action == Action::Allow {
                    plaintext(alternative, &mut out);
                }
            }
            for alternative in rule.to.iter().flatten() {
                contradictions(alternative, &mut out);
                hosts(alternative, &mut out);
            }
            contradictions(&rule.when, &mut out);
            if policy.action == Action::Allow {
                plaintext(&rule.when, &mut out);
            }
            if policy.action == Action::Allow && !policy.dry_run {
                let candidates = denies
                    .get(policy.object.namespace.as_str())
                    .into_iter()
                    .flatten()
                    .chain(&mesh_wide_denies)
                    .copied();
                if let Some((deny, k)) = shadowing_deny(policy, rule, candidates) {
                    out(
                        LintKind::ShadowedByDeny,
                        format!("spec.rules[{i}]"),
                        format!(
                            "every request this ALLOW rule matches is denied first by DENY \
                             policy {}/{} ({}): the rule never allows anything",
                            deny.object.namespace,
                            deny.object.name,
                            rule_name(&deny.object.namespace, &deny.object.name, k)
                        ),
                    );
                }
            }
        }
    }
    lints
}

/// Lints on single values.
fn values(check: &Check, issuers: &[String], out: &mut impl FnMut(LintKind, String, String)) {
    let key = &*check.key;
    for (i, value) in check.values.iter().enumerate() {
        let field = format!("{}[{i}]", check.field);
        let literal_star = match &check.test {
            Test::Peer(_)
                if key == "principals" || key == "notPrincipals" || key == "source.principal" =>
            {
                string_pattern_has_star(value)
            }
            Test::Host(_)
            | Test::Method(_)
            | Test::Header { .. }
            | Test::Claim { .. }
            | Test::Sni(_) => string_pattern_has_star(value),
            Test::Path(_) => {
                !value.contains("{*}") && !value.contains("{**}") && string_pattern_has_star(value)
            }
            Test::RequestPrincipal(_) => {
                let p = RequestPrincipalPattern::parse(value);
                has_literal_star(&p.issuer) || has_literal_star(&p.subject)
            }
            _ => false,
        };
        if literal_star {
            out(
                LintKind::WildcardInMiddle,
                field.clone(),
                format!(
                    "{value:?}: a '*' is a wildcard only alone or at the start or end of a value; \
                     here it is a literal character"
                ),
            );
        }
        match &check.test {
            Test::Peer(_) if (key == "principals" || key == "notPrincipals" || key == "source.principal") && value.starts_with("spiffe://") => out(
                LintKind::NeverMatches,
                field,
                format!("{value:?}: principals are written without \"spiffe://\" (Istio adds it), so this never matches"),
            ),
            Test::Path(_) if !value.starts_with('/') && !value.starts_with('*') => out(
                LintKind::PathWithoutSlash,
                field,
                format!("{value:?}: request paths always start with '/', so this never matches"),
            ),
            Test::Method(_) if value.bytes().any(|b| b.is_ascii_lowercase()) => out(
                LintKind::NeverMatches,
                field,
                format!("{value:?}: methods are case-sensitive and Envoy refuses lower-case methods; write {:?}", value.to_ascii_uppercase()),
            ),
            Test::RequestPrincipal(_) => {
                request_principal(&field, value, issuers, out);
            }
            Test::Claim { .. } if issuers.is_empty() => out(
                LintKind::UnknownIssuer,
                field,
                "no RequestAuthentication configures an issuer, so requests never carry a token and this never matches".to_string(),
            ),
            Test::Claim { .. } if value == "true" || value == "false" || value.parse::<f64>().is_ok() => out(
                LintKind::NeverMatches,
                field,
                format!("{value:?}: claims match only strings (or lists of strings); a boolean or numeric claim never matches"),
            ),
            _ => {}
        }
    }
}

fn request_principal(
    field: &str,
    value: &str,
    issuers: &[String],
    out: &mut impl FnMut(LintKind, String, String),
) {
    if !value.contains('/') && !value.starts_with('*') && !value.ends_with('*') {
        out(
            LintKind::NeverMatches,
            field.to_string(),
            format!(
                "{value:?} has no '/': it means issuer {value:?} with an empty subject; write \
                 \"{value}/*\" for any subject of that issuer"
            ),
        );
        return;
    }
    let pattern = RequestPrincipalPattern::parse(value);
    let known = issuers.iter().any(|issuer| pattern.issuer.matches(issuer.as_bytes()));
    if !known {
        let message = if issuers.is_empty() {
            "no RequestAuthentication configures an issuer, so requests never carry a token and this never matches".to_string()
        } else {
            format!(
                "{value:?}: no RequestAuthentication configures a matching issuer (configured: {})",
                issuers.join(", ")
            )
        };
        out(LintKind::UnknownIssuer, field.to_string(), message);
    }
}

/// Whether a value, once Istio has taken its leading or trailing `*`, still holds a `*`.
fn string_pattern_has_star(value: &str) -> bool {
    has_literal_star(&Pattern::string(value))
}

fn has_literal_star(pattern: &Pattern) -> bool {
    match pattern {
        Pattern::Exact(v) | Pattern::Prefix(v) | Pattern::Suffix(v) => v.contains(&b'*'),
        Pattern::NonEmpty | Pattern::Present => false,
    }
}

/// A field and its `not` twin that together exclude everything.
fn contradictions(checks: &[Check], out: &mut impl FnMut(LintKind, String, String)) {
    for positive in checks.iter().filter(|c| !c.negated) {
        for negative in checks.iter().filter(|c| c.negated && same_attribute(c, positive)) {
            let excluded = negative.values.iter().any(|v| v == "*")
                || positive.values.iter().all(|v| negative.values.contains(v));
            if excluded {
                out(
                    LintKind::NeverMatches,
                    negative.field.to_string(),
                    format!(
                        "{} excludes every value {} allows, so this never matches",
                        negative.key, positive.key
                    ),
                );
            }
        }
    }
}

/// `principals`/`notPrincipals`, `values`/`notValues` of one key, …
fn same_attribute(a: &Check, b: &Check) -> bool {
    let strip = |key: &str| {
        key.strip_prefix("not").map(str::to_ascii_lowercase).unwrap_or(key.to_ascii_lowercase())
    };
    let condition = |field: &str| field.contains(".when[");
    if condition(&a.field) || condition(&b.field) {
        let parent = |field: &str| field.rsplit_once('.').map(|(p, _)| p.to_string());
        return parent(&a.field) == parent(&b.field);
    }
    strip(&a.key) == strip(&b.key)
}

/// ISTIO-SECURITY-2021-004: negative identity fields are true on plaintext requests.
fn plaintext(checks: &[Check], out: &mut impl FnMut(LintKind, String, String)) {
    let identity = |c: &Check| matches!(c.test, Test::Peer(_));
    if checks.iter().any(|c| identity(c) && !c.negated) {
        return;
    }
    for check in checks.iter().filter(|c| identity(c) && c.negated) {
        out(
            LintKind::AllowsPlaintext,
            check.field.to_string(),
            format!(
                "{} in an ALLOW rule also allows plaintext requests, which have no identity at \
                 all (ISTIO-SECURITY-2021-004); add `principals: [\"*\"]` (or \
                 `namespaces: [\"*\"]`) to require mTLS",
                check.key
            ),
        );
    }
}

/// Hosts and ports: the Host header includes the port whenever the client wrote one.
fn hosts(checks: &[Check], out: &mut impl FnMut(LintKind, String, String)) {
    for check in checks.iter().filter(|c| matches!(c.test, Test::Host(_))) {
        for (i, value) in check.values.iter().enumerate() {
            if value == "*" || value.ends_with('*') {
                continue;
            }
            let field = format!("{}[{i}]", check.field);
            let has_port = value.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            });
            if has_port {
                out(
                    LintKind::HostPort,
                    field,
                    format!(
                        "{value:?} matches only a Host header with exactly this port; a client \
                         using the scheme's default port sends the host without one"
                    ),
                );
            } else if !check.values.iter().any(|v| *v == format!("{value}:*")) {
                out(
                    LintKind::HostPort,
                    field,
                    format!(
                        "{value:?} does not match a Host header that carries a port (such as \
                         \"{value}:8080\"); add \"{value}:*\" too (istio/istio#44080)"
                    ),
                );
            }
        }
    }
}

/// An enforced DENY policy applying to every workload `allow` applies to, with a rule matching
/// everything `rule` matches.
fn shadowing_deny<'p>(
    allow: &Policy,
    rule: &Rule,
    denies: impl Iterator<Item = &'p Policy>,
) -> Option<(&'p Policy, usize)> {
    denies.filter(|deny| covers_scope(deny, allow)).find_map(|deny| {
        deny.rules.iter().position(|candidate| implies(rule, candidate)).map(|k| (deny, k))
    })
}

/// Whether `deny` applies to every workload `allow` applies to (a conservative check).
fn covers_scope(deny: &Policy, allow: &Policy) -> bool {
    let in_scope = deny.object.namespace == allow.object.namespace || deny.mesh_wide;
    let allow_label = |k: &String| allow.selector.as_ref().and_then(|s| s.match_labels.get(k));
    in_scope
        && deny
            .selector
            .as_ref()
            .is_none_or(|s| s.match_labels.iter().all(|(k, v)| allow_label(k) == Some(v)))
}

/// Whether every request `allow` matches is matched by `deny` (syntactically, conservatively).
fn implies(allow: &Rule, deny: &Rule) -> bool {
    let side = |a: &Option<Vec<Vec<Check>>>, d: &Option<Vec<Vec<Check>>>| match (a, d) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(d)) => a.iter().all(|a_alt| {
            d.iter().any(|d_alt| {
                d_alt.iter().all(|d_check| a_alt.iter().any(|a_check| stronger(a_check, d_check)))
            })
        }),
    };
    side(&allow.from, &deny.from)
        && side(&allow.to, &deny.to)
        && deny.when.iter().all(|d| allow.when.iter().any(|a| stronger(a, d)))
}

/// Whether check `a` holding implies check `d` holds (same field, comparable values).
fn stronger(a: &Check, d: &Check) -> bool {
    let same = a.negated == d.negated
        && a.key == d.key
        && a.field.contains(".when[") == d.field.contains(".when[");
    if !same {
        return false;
    }
    if a.negated {
        d.values.iter().all(|v| a.values.contains(v))
    } else {
        d.values.iter().any(|v| v == "*") || a.values.iter().all(|v| d.values.contains(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::testing::policy;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn kinds(policies: &[Policy], issuers: &[&str]) -> Vec<(LintKind, String)> {
        let issuers: Vec<String> = issuers.iter().map(|s| s.to_string()).collect();
        lint(policies, &issuers).into_iter().map(|l| (l.kind, l.field)).collect()
    }

    #[test]
    fn not_principals_in_allow_lets_plaintext_in() {
        let p = policy(
            "p",
            serde_json::json!({"rules": [{"from": [{"source": {"notPrincipals": ["a/b"]}}]}]}),
        );
        assert_eq!(
            kinds(&[p], &[]),
            vec![(LintKind::AllowsPlaintext, "spec.rules[0].from[0].source.notPrincipals".into())]
        );
        let guarded = policy(
            "p",
            serde_json::json!({"rules": [{"from": [{"source": {"notPrincipals": ["a/b"], "principals": ["*"]}}]}]}),
        );
        assert!(kinds(&[guarded], &[]).is_empty());
        let deny = policy(
            "p",
            serde_json::json!({"action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["a"]}}]}]}),
        );
        assert!(kinds(&[deny], &[]).is_empty());
    }

    #[test]
    fn paths_without_slash_and_literal_stars_are_reported() {
        let p = policy(
            "p",
            serde_json::json!({"rules": [{"to": [{"operation": {"paths": ["admin", "/a*b", "*.css", "/x/{*}"]}}]}]}),
        );
        assert_eq!(
            kinds(&[p], &[]),
            vec![
                (LintKind::PathWithoutSlash, "spec.rules[0].to[0].operation.paths[0]".into()),
                (LintKind::WildcardInMiddle, "spec.rules[0].to[0].operation.paths[1]".into()),
            ]
        );
    }

    #[test]
    fn request_principals_need_a_configured_issuer() {
        let p = policy(
            "p",
            serde_json::json!({"rules": [{"from": [{"source": {"requestPrincipals": ["https://idp/*", "other/x", "noslash"]}}]}]}),
        );
        assert_eq!(
            kinds(&[p], &["https://idp"]),
            vec![
                (
                    LintKind::UnknownIssuer,
                    "spec.rules[0].from[0].source.requestPrincipals[1]".into()
                ),
                (
                    LintKind::NeverMatches,
                    "spec.rules[0].from[0].source.requestPrincipals[2]".into()
                ),
            ]
        );
    }

    #[test]
    fn contradictions_never_match() {
        let p = policy(
            "p",
            serde_json::json!({"rules": [{"to": [{"operation": {"ports": ["80"], "notPorts": ["80"]}}]},
                                         {"when": [{"key": "request.headers[x]", "values": ["a"], "notValues": ["*"]}]}]}),
        );
        assert_eq!(
            kinds(&[p], &[]),
            vec![
                (LintKind::NeverMatches, "spec.rules[0].to[0].operation.notPorts".into()),
                (LintKind::NeverMatches, "spec.rules[1].when[0].notValues".into()),
            ]
        );
    }

    #[test]
    fn allow_shadowed_by_a_broader_deny() {
        let allow = policy(
            "allow",
            serde_json::json!({"rules": [{"to": [{"operation": {"paths": ["/admin"], "methods": ["GET"]}}]}]}),
        );
        let deny = policy(
            "deny",
            serde_json::json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin", "/root"]}}]}]}),
        );
        let narrow = policy(
            "narrow",
            serde_json::json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"], "methods": ["POST"]}}]}]}),
        );
        let mut elsewhere = deny.clone();
        elsewhere.object.namespace = "bar".into();
        let mut root = deny.clone();
        root.object.namespace = "istio-system".into();
        root.mesh_wide = true;
        assert_eq!(
            kinds(&[allow.clone(), deny], &[]),
            vec![(LintKind::ShadowedByDeny, "spec.rules[0]".into())]
        );
        assert!(kinds(&[allow.clone(), elsewhere], &[]).is_empty());
        assert_eq!(kinds(&[allow.clone(), root], &[]).len(), 1);
        assert!(kinds(&[allow, narrow], &[]).is_empty());
    }

    #[test]
    fn hosts_without_port_variant_are_reported() {
        let p = policy(
            "p",
            serde_json::json!({"rules": [{"to": [{"operation": {"hosts": ["a.com", "b.com", "b.com:*", "c.com:8080"]}}]}]}),
        );
        assert_eq!(
            kinds(&[p], &[]),
            vec![
                (LintKind::HostPort, "spec.rules[0].to[0].operation.hosts[0]".into()),
                (LintKind::HostPort, "spec.rules[0].to[0].operation.hosts[3]".into()),
            ]
        );
    }

    #[test]
    fn lower_case_methods_and_typed_claims_never_match() {
        let p = policy(
            "p",
            serde_json::json!({"rules": [{"to": [{"operation": {"methods": ["get"]}}],
                                          "when": [{"key": "request.auth.claims[admin]", "values": ["true"]}]}]}),
        );
        assert_eq!(
            kinds(&[p], &["iss"]),
            vec![
                (LintKind::NeverMatches, "spec.rules[0].to[0].operation.methods[0]".into()),
                (LintKind::NeverMatches, "spec.rules[0].when[0].values[0]".into()),
            ]
        );
    }
}
