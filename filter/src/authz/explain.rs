//! The slow path for `warden explain`: every applied policy, every rule, every field.

use super::decision::{Decision, DryRunAllow, Reason, RuleRef};
use super::engine::{Engine, ALLOW, AUDIT, CUSTOM, CUSTOM_CALL, DENY, DRY_RUN_ALLOW, DRY_RUN_DENY};
use super::eval::Attributes;
use super::policy::Check;
use super::Action;
use crate::request::{Identity, Request};

/// Why a request got its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The decision, as [`Engine::decide`] gives it.
    pub decision: Decision,
    /// Every applied policy in the order Envoy evaluates them: AUDIT, then DENY (enforced, then
    /// dry-run), then ALLOW (enforced, then dry-run); within each group, by rule name.
    pub policies: Vec<PolicyExplanation>,
}

/// One applied policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyExplanation {
    /// Index into [`Engine::policies`].
    pub policy: u32,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// ALLOW, DENY or AUDIT.
    pub action: Action,
    /// Whether it only reports.
    pub dry_run: bool,
    /// Whether any rule matched (a policy without rules never matches).
    pub matched: bool,
    /// Its rules, in Envoy's order (`rule[10]` before `rule[2]`).
    pub rules: Vec<RuleExplanation>,
}

/// One rule: (any `from`) AND (any `to`) AND (all `when`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleExplanation {
    /// The rule.
    pub rule: RuleRef,
    /// Its Envoy name, `ns[..]-policy[..]-rule[..]`.
    pub id: String,
    /// Whether it matched.
    pub matched: bool,
    /// Whether the decision reports this rule (the first match of its group).
    pub reported: bool,
    /// The `from` alternatives; `None` when omitted (any source).
    pub from: Option<Vec<AlternativeExplanation>>,
    /// The `to` alternatives; `None` when omitted (any operation).
    pub to: Option<Vec<AlternativeExplanation>>,
    /// The `when` conditions (each `values` and `notValues` separately).
    pub when: Vec<FieldExplanation>,
}

/// One `from[i].source` or `to[i].operation`: matches if all its fields do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternativeExplanation {
    /// Whether every field matched.
    pub matched: bool,
    /// Its fields.
    pub fields: Vec<FieldExplanation>,
}

/// One field and what the request had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldExplanation {
    /// Where it is written, e.g. `spec.rules[0].from[0].source.principals`.
    pub field: String,
    /// The attribute: `principals`, `request.headers[x-token]`, …
    pub key: String,
    /// The values as written.
    pub values: Vec<String>,
    /// `notX` / `notValues`: matches when none of the values does.
    pub negated: bool,
    /// Whether the field holds for this request.
    pub matched: bool,
    /// The request's attribute, for humans.
    pub actual: String,
}

/// Explanation order of the buckets: Istio's filter order (CUSTOM, AUDIT, DENY, ALLOW), each
/// filter's shadow (dry-run) rules after its enforced ones.
const ORDER: [usize; 7] = [CUSTOM, CUSTOM_CALL, AUDIT, DENY, DRY_RUN_DENY, ALLOW, DRY_RUN_ALLOW];

impl Engine {
    /// Slow path for `warden explain`: every applied policy, every rule, which field matched or
    /// failed.
    pub fn explain(&self, request: &Request<'_>, identity: Option<&Identity>) -> Explanation {
        let decision = self.decide(request, identity);
        let inner = &*self.inner;
        let attributes = Attributes::new(request, identity);
        let reported = |bucket: usize| match bucket {
            DENY | CUSTOM => match decision.reason {
                Reason::DeniedBy(rule) if inner.bucket_of_rule(rule) == Some(bucket) => Some(rule),
                _ => None,
            },
            ALLOW => match decision.reason {
                Reason::AllowedBy(rule) => Some(rule),
                _ => None,
            },
            AUDIT => decision.audit,
            CUSTOM_CALL => decision.ask,
            DRY_RUN_DENY => decision.dry_run_deny,
            _ => match decision.dry_run_allow {
                DryRunAllow::Matched(rule) => Some(rule),
                _ => None,
            },
        };

        let mut policies = Vec::new();
        for bucket in ORDER {
            let mut members: Vec<(String, u32)> = inner
                .policies
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    super::engine::bucket_of(p.action, p.dry_run, p.calls) == Some(bucket)
                })
                .map(|(i, p)| {
                    let key = format!("ns[{}]-policy[{}]-rule[", p.namespace, p.name);
                    (key, u32::try_from(i).unwrap_or(u32::MAX))
                })
                .collect();
            crate::sort::sort(&mut members);
            let widen = super::engine::widens(bucket);
            for (_, index) in members {
                let Some(policy) = inner.policies.get(index as usize) else { continue };
                let rules: Vec<RuleExplanation> = inner
                    .rules
                    .iter()
                    .filter(|r| r.at.policy == index)
                    .map(|compiled| {
                        let rule = &compiled.rule;
                        let alternatives = |side: &Option<Vec<Vec<Check>>>| {
                            side.as_ref().map(|alternatives| {
                                alternatives
                                    .iter()
                                    .map(|checks| {
                                        let fields: Vec<FieldExplanation> = checks
                                            .iter()
                                            .map(|c| field(c, &attributes, widen))
                                            .collect();
                                        AlternativeExplanation {
                                            matched: fields.iter().all(|f| f.matched),
                                            fields,
                                        }
                                    })
                                    .collect::<Vec<_>>()
                            })
                        };
                        RuleExplanation {
                            rule: compiled.at,
                            id: self.rule_id(compiled.at),
                            matched: rule.matches(&attributes, widen),
                            reported: reported(bucket) == Some(compiled.at),
                            from: alternatives(&rule.from),
                            to: alternatives(&rule.to),
                            when: rule.when.iter().map(|c| field(c, &attributes, widen)).collect(),
                        }
                    })
                    .collect();
                policies.push(PolicyExplanation {
                    policy: index,
                    namespace: policy.namespace.clone(),
                    name: policy.name.clone(),
                    action: policy.action,
                    dry_run: policy.dry_run,
                    matched: rules.iter().any(|r| r.matched),
                    rules,
                });
            }
        }
        Explanation { decision, policies }
    }
}

fn field(check: &Check, attributes: &Attributes<'_, '_>, widen: bool) -> FieldExplanation {
    FieldExplanation {
        field: check.field.to_string(),
        key: check.key.to_string(),
        values: check.values.to_vec(),
        negated: check.negated,
        matched: check.holds(attributes, widen),
        actual: check.test.describe(attributes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::testing::policy;
    use crate::authz::{compile, Mesh};
    use crate::config::Workload;
    use crate::request::{Connection, Observed, Peer};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn explanation_lists_policies_in_envoy_order_with_field_outcomes() {
        let policies = [
            policy(
                "allow",
                serde_json::json!({"rules": [
                    {"from": [{"source": {"principals": ["cluster.local/ns/bar/sa/sleep"]}}],
                     "to": [{"operation": {"methods": ["GET"]}}]}
                ]}),
            ),
            policy(
                "deny",
                serde_json::json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}),
            ),
            policy("audit", serde_json::json!({"action": "AUDIT"})),
        ];
        let workload = Workload { namespace: "foo".into(), labels: Default::default() };
        let engine = compile(&policies, &workload, &Mesh::default());
        let peer = Peer {
            uri_sans: vec![b"spiffe://cluster.local/ns/bar/sa/other".to_vec()],
            ..Peer::default()
        };
        let request = Request {
            method: b"GET",
            path: b"/x",
            connection: Connection { peer: Observed::Known(&peer), ..Connection::default() },
            ..Request::default()
        };
        let explanation = engine.explain(&request, None);
        let order: Vec<&str> = explanation.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(order, ["audit", "deny", "allow"]);
        assert!(explanation.policies[0].rules.is_empty());
        let allow = &explanation.policies[2];
        assert!(!allow.matched);
        let rule = &allow.rules[0];
        assert_eq!(rule.id, "ns[foo]-policy[allow]-rule[0]");
        let to = &rule.to.as_ref().unwrap()[0];
        assert!(to.matched);
        let from = &rule.from.as_ref().unwrap()[0].fields[0];
        assert_eq!(from.field, "spec.rules[0].from[0].source.principals");
        assert!(!from.matched);
        assert!(from.actual.contains("sa/other"), "{}", from.actual);
        assert_eq!(explanation.decision.reason, Reason::NoAllowMatched);
    }
}
