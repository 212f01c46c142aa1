//! Step three: the policies of one workload, compiled into an immutable, indexed engine.
//!
//! Istio gives each workload up to three RBAC filters, AUDIT (action LOG), DENY and ALLOW, each
//! with its enforced `rules` and its dry-run `shadow_rules`
//! (`pilot/pkg/security/authz/builder/builder.go`). Within one of them Envoy evaluates the
//! policies in lexicographic order of their names, `ns[<ns>]-policy[<name>]-rule[<i>]`, and
//! reports the first that matches (`source/extensions/filters/common/rbac/engine_impl.cc`
//! iterates a `std::map`). The engine keeps five such groups ("buckets"): enforced DENY,
//! enforced ALLOW, AUDIT, dry-run DENY, dry-run ALLOW. Rule ids are assigned bucket by bucket in
//! that name order, so the first matching id of a bucket is the rule Envoy would report.

use std::sync::Arc;

use super::decision::{AppliedPolicy, Decision, DryRunAllow, Needs, Reason, RuleRef, Unknowns};
use super::eval::Attributes;
use super::index::{Hits, Index};
use super::policy::{Policy, Rule, Test};
use super::{Action, Mesh};
use crate::config::Workload;
use crate::request::{Identity, Observed, Request};

pub(super) const DENY: usize = 0;
pub(super) const ALLOW: usize = 1;
pub(super) const AUDIT: usize = 2;
pub(super) const DRY_RUN_DENY: usize = 3;
pub(super) const DRY_RUN_ALLOW: usize = 4;
/// CUSTOM rules, which Istio evaluates first (its ext_authz filter precedes RBAC). Warden does
/// not call external authorizers, so a CUSTOM rule that matches denies, as Envoy's ext_authz
/// does when its authorizer cannot be reached (`failure_mode_allow: false`, Istio's default).
pub(super) const CUSTOM: usize = 5;
/// CUSTOM rules whose provider Warden calls (`crate::authorizer`): a match asks the authorizer,
/// whose answer comes before DENY and ALLOW; it does not deny by itself.
pub(super) const CUSTOM_CALL: usize = 6;
pub(super) const BUCKETS: usize = 7;

/// The bucket of a validated policy (`calls`: a CUSTOM policy whose provider Warden calls).
pub(super) fn bucket_of(action: Action, dry_run: bool, calls: bool) -> Option<usize> {
    match (action, dry_run) {
        (Action::Custom, false) if calls => Some(CUSTOM_CALL),
        (Action::Deny, false) => Some(DENY),
        (Action::Allow, false) => Some(ALLOW),
        (Action::Audit, _) => Some(AUDIT),
        (Action::Deny, true) => Some(DRY_RUN_DENY),
        (Action::Allow, true) => Some(DRY_RUN_ALLOW),
        (Action::Custom, _) => Some(CUSTOM),
    }
}

/// Whether an unknown attribute counts as matching in the bucket's rules: yes where a match
/// denies or reports (DENY, AUDIT), no where it allows. Fail closed, as Istio does with what it
/// cannot translate (`pilot/pkg/security/authz/builder/builder.go`).
pub(super) fn widens(bucket: usize) -> bool {
    // A CUSTOM_CALL rule that may hold asks the authorizer: one more check, never fewer.
    matches!(bucket, DENY | AUDIT | DRY_RUN_DENY | CUSTOM | CUSTOM_CALL)
}

/// Envoy's (and Istio's) name for a rule.
pub(super) fn rule_name(namespace: &str, name: &str, rule: usize) -> String {
    format!("ns[{namespace}]-policy[{name}]-rule[{rule}]")
}

/// The policies that apply to one workload, compiled and indexed. Immutable; cheap to share
/// (cloning copies a pointer).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) policies: Vec<AppliedPolicy>,
    /// Ordered by bucket, then by Envoy's name order: the position is the rule's id.
    pub(super) rules: Vec<CompiledRule>,
    /// Where each bucket's ids end (exclusive).
    pub(super) ends: [u32; BUCKETS],
    /// Whether a policy of the bucket applies (even one without rules).
    pub(super) configured: [bool; BUCKETS],
    /// `None` only if the index could not be built; every rule is then evaluated.
    index: Option<Index>,
    needs: Needs,
    reads: Reads,
}

/// The request headers and token claims the rules name: what an audit record must carry for
/// `warden replay` to decide the request again (`log.auditAttributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Header names, lower-case, sorted.
    pub headers: Vec<Box<[u8]>>,
    /// Top-level claim names (`request.auth.claims[a][b]` reads `a`; audiences `aud`, the
    /// presenter `azp`), sorted.
    pub claims: Vec<String>,
}

pub(super) fn reads_of<'r>(rules: impl Iterator<Item = &'r Rule>) -> Reads {
    let mut reads = Reads::default();
    for check in rules.flat_map(Rule::checks) {
        match &check.test {
            Test::Header { name, .. } => reads.headers.push(name.clone()),
            Test::Claim { path, .. } => reads.claims.extend(path.first().cloned()),
            _ => {}
        }
    }
    crate::sort::sort(&mut reads.headers);
    reads.headers.dedup();
    crate::sort::sort(&mut reads.claims);
    reads.claims.dedup();
    reads
}

#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) at: RuleRef,
    pub(super) rule: Rule,
}

/// Compiles the policies that apply to `workload` (others are skipped) into an [`Engine`].
pub fn compile(policies: &[Policy], workload: &Workload, mesh: &Mesh) -> Engine {
    let mut applied: Vec<(&Policy, usize)> = policies
        .iter()
        .filter(|p| p.applies_to(workload, mesh))
        .filter_map(|p| bucket_of(p.action, p.dry_run, p.calls).map(|bucket| (p, bucket)))
        .collect();
    crate::sort::sort_by(&mut applied, |(a, _), (b, _)| {
        (&a.object.namespace, &a.object.name).cmp(&(&b.object.namespace, &b.object.name))
    });

    let mut configured = [false; BUCKETS];
    let mut entries: Vec<(usize, String, RuleRef, &Rule)> = Vec::new();
    let mut applied_policies = Vec::with_capacity(applied.len());
    for (index, (policy, bucket)) in applied.iter().enumerate() {
        let policy_ref = u32::try_from(index).unwrap_or(u32::MAX);
        applied_policies.push(AppliedPolicy {
            namespace: policy.object.namespace.clone(),
            name: policy.object.name.clone(),
            action: policy.action,
            dry_run: policy.dry_run,
            rules: u32::try_from(policy.rules.len()).unwrap_or(u32::MAX),
            unenforceable: policy.unenforceable(),
            provider: policy.provider.clone(),
            calls: policy.calls,
        });
        if let Some(slot) = configured.get_mut(*bucket) {
            *slot = true;
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            let name = rule_name(&policy.object.namespace, &policy.object.name, i);
            let at = RuleRef { policy: policy_ref, rule: u32::try_from(i).unwrap_or(u32::MAX) };
            entries.push((*bucket, name, at, rule));
        }
    }
    crate::sort::sort_by(&mut entries, |a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));

    let mut ends = [0u32; BUCKETS];
    for (bucket, end) in ends.iter_mut().enumerate() {
        let count = entries.iter().take_while(|e| e.0 <= bucket).count();
        *end = u32::try_from(count).unwrap_or(u32::MAX);
    }
    let rules: Vec<CompiledRule> = entries
        .into_iter()
        .map(|(_, _, at, rule)| CompiledRule { at, rule: rule.clone() })
        .collect();
    let index = Index::build(rules.iter().map(|r| &r.rule));
    let needs = needs_of(rules.iter().map(|r| &r.rule));
    let reads = reads_of(rules.iter().map(|r| &r.rule));
    Engine {
        inner: Arc::new(Inner {
            policies: applied_policies,
            rules,
            ends,
            configured,
            index,
            needs,
            reads,
        }),
    }
}

pub(super) fn needs_of<'r>(rules: impl Iterator<Item = &'r Rule>) -> Needs {
    let mut needs = Needs::default();
    for check in rules.flat_map(Rule::checks) {
        if let Some(channel) = check.test.channel() {
            needs.add(channel);
        }
    }
    needs
}

/// The first matching rule id of each bucket.
type Firsts = [Option<u32>; BUCKETS];

impl Engine {
    /// Which request attributes any applied rule reads, so the glue reads only those from
    /// Envoy (each host call costs 1–2 µs).
    pub fn needs(&self) -> Needs {
        self.inner.needs
    }

    /// The headers and claims the rules name.
    pub fn reads(&self) -> &Reads {
        &self.inner.reads
    }

    /// Decides one request. Consults only the rules the index says can match; does not
    /// allocate.
    pub fn decide(&self, request: &Request<'_>, identity: Option<&Identity>) -> Decision {
        let inner = &*self.inner;
        let attributes = Attributes::new(request, identity);
        let mut firsts: Firsts = [None; BUCKETS];
        match &inner.index {
            // The index posts rules under the peer's names; with the peer unknown, every rule
            // that reads it must be evaluated (and fail closed).
            Some(_) if matches!(request.connection.peer, Observed::Unknown) => {
                inner.scan(&attributes, &mut firsts, true)
            }
            Some(index) => {
                let mut hits = Hits::new();
                index.lookup(&attributes, &mut hits);
                if hits.overflow {
                    inner.scan(&attributes, &mut firsts, true);
                } else {
                    inner.merge(hits.lists_mut(), &attributes, &mut firsts);
                }
            }
            None => inner.scan(&attributes, &mut firsts, true),
        }
        inner.finish(&firsts, request)
    }

    /// The reference evaluation: every rule of every bucket, in order, without the index.
    /// Property tests check that [`Engine::decide`] always agrees with it.
    #[doc(hidden)]
    pub fn decide_exhaustive(
        &self,
        request: &Request<'_>,
        identity: Option<&Identity>,
    ) -> Decision {
        let attributes = Attributes::new(request, identity);
        let mut firsts: Firsts = [None; BUCKETS];
        self.inner.scan(&attributes, &mut firsts, false);
        self.inner.finish(&firsts, request)
    }

    /// How many rules the engine holds, and how many of them are posted under index keys (the
    /// others are checked for every request).
    #[doc(hidden)]
    pub fn index_stats(&self) -> (usize, usize) {
        let indexed = self.inner.index.as_ref().map_or(0, |index| index.indexed);
        (self.inner.rules.len(), indexed)
    }

    /// The applied policies (namespace, name, action, dry-run), indexable by [`RuleRef::policy`].
    pub fn policies(&self) -> &[AppliedPolicy] {
        &self.inner.policies
    }

    /// Envoy/Istio's name for a rule: `ns[<ns>]-policy[<name>]-rule[<i>]`.
    pub fn rule_id(&self, rule: RuleRef) -> String {
        match self.inner.policies.get(rule.policy as usize) {
            Some(policy) => rule_name(&policy.namespace, &policy.name, rule.rule as usize),
            None => format!("unknown-policy[{}]-rule[{}]", rule.policy, rule.rule),
        }
    }
}

impl Inner {
    /// The bucket of a rule's policy.
    pub(super) fn bucket_of_rule(&self, rule: RuleRef) -> Option<usize> {
        let policy = self.policies.get(rule.policy as usize)?;
        bucket_of(policy.action, policy.dry_run, policy.calls)
    }

    pub(super) fn bucket(&self, id: u32) -> usize {
        self.ends.iter().position(|&end| id < end).unwrap_or(BUCKETS - 1)
    }

    fn start(&self, bucket: usize) -> u32 {
        bucket.checked_sub(1).and_then(|b| self.ends.get(b).copied()).unwrap_or(0)
    }

    fn end(&self, bucket: usize) -> u32 {
        self.ends.get(bucket).copied().unwrap_or(0)
    }

    pub(super) fn rule_matches(&self, id: u32, attributes: &Attributes<'_, '_>) -> bool {
        let widen = widens(self.bucket(id));
        self.rules.get(id as usize).is_some_and(|r| r.rule.matches(attributes, widen))
    }

    /// Every rule, bucket by bucket, up to the first match of each. With `skip_allow`, the
    /// enforced ALLOW rules are not evaluated once a DENY rule matched (the outcome is known).
    fn scan(&self, attributes: &Attributes<'_, '_>, firsts: &mut Firsts, skip_allow: bool) {
        // CUSTOM first, as Istio orders its filters; then the rest.
        for bucket in [CUSTOM, CUSTOM_CALL].into_iter().chain(0..CUSTOM) {
            let denied = [DENY, CUSTOM].iter().any(|&b| firsts.get(b).copied().flatten().is_some());
            if skip_allow && bucket == ALLOW && denied {
                continue;
            }
            let found = (self.start(bucket)..self.end(bucket))
                .find(|&id| self.rule_matches(id, attributes));
            if let Some(slot) = firsts.get_mut(bucket) {
                *slot = found;
            }
        }
    }

    /// Walks the gathered posting lists in id order (a k-way merge), evaluating each candidate
    /// once, up to the first match of each bucket.
    fn merge(&self, lists: &mut [&[u32]], attributes: &Attributes<'_, '_>, firsts: &mut Firsts) {
        // Bit b set: bucket b needs no more evaluation (matched, empty, or decided by a DENY).
        let mut done: u8 = 0;
        for bucket in 0..BUCKETS {
            if self.start(bucket) == self.end(bucket) {
                done |= 1 << bucket;
            }
        }
        const ALL: u8 = (1 << BUCKETS) - 1;
        // (Ids are in bucket order, so a CUSTOM match is found after the others were
        // evaluated: correct, as every bucket but ALLOW is evaluated anyway.)
        while done != ALL {
            let Some(id) = lists.iter().filter_map(|list| list.first().copied()).min() else {
                return;
            };
            let bucket = self.bucket(id);
            if done & (1 << bucket) != 0 {
                let end = self.end(bucket);
                for list in lists.iter_mut() {
                    let skip = list.partition_point(|&other| other < end);
                    *list = list.get(skip..).unwrap_or_default();
                }
                continue;
            }
            for list in lists.iter_mut() {
                if list.first() == Some(&id) {
                    *list = list.get(1..).unwrap_or_default();
                }
            }
            if self.rule_matches(id, attributes) {
                if let Some(slot) = firsts.get_mut(bucket) {
                    *slot = Some(id);
                }
                done |= 1 << bucket;
                if bucket == DENY || bucket == CUSTOM {
                    // The request is denied whatever the ALLOW rules say.
                    done |= 1 << ALLOW;
                }
            }
        }
    }

    /// Istio's combination: DENY before ALLOW; an applicable enforced ALLOW policy that does
    /// not match denies; AUDIT and dry-run never change the outcome.
    fn finish(&self, firsts: &Firsts, request: &Request<'_>) -> Decision {
        let rule = |bucket: usize| {
            firsts
                .get(bucket)
                .copied()
                .flatten()
                .and_then(|id| self.rules.get(id as usize))
                .map(|r| r.at)
        };
        let configured = |bucket: usize| self.configured.get(bucket).copied().unwrap_or(false);
        let (allowed, reason) = match (rule(CUSTOM).or(rule(DENY)), rule(ALLOW)) {
            (Some(deny), _) => (false, Reason::DeniedBy(deny)),
            (None, Some(allow)) => (true, Reason::AllowedBy(allow)),
            (None, None) if configured(ALLOW) => (false, Reason::NoAllowMatched),
            (None, None) => (true, Reason::NoPolicies),
        };
        let dry_run_allow = match rule(DRY_RUN_ALLOW) {
            Some(allow) => DryRunAllow::Matched(allow),
            None if configured(DRY_RUN_ALLOW) => DryRunAllow::NoneMatched,
            None => DryRunAllow::NotConfigured,
        };
        let connection = &request.connection;
        let mut unknowns = Unknowns::default();
        if self.needs.source_ip && matches!(connection.source_ip, Observed::Unknown) {
            unknowns = unknowns.with(Unknowns::DIRECT_PEER);
        }
        if self.needs.peer && matches!(connection.peer, Observed::Unknown) {
            unknowns = unknowns.with(Unknowns::PEER_CERTIFICATE);
        }
        Decision {
            allowed,
            reason,
            audit: rule(AUDIT),
            dry_run_deny: rule(DRY_RUN_DENY),
            dry_run_allow,
            unknowns,
            // A CUSTOM rule Warden cannot call has denied already: nothing to ask.
            ask: if rule(CUSTOM).is_some() { None } else { rule(CUSTOM_CALL) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::testing::policy;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn workload() -> Workload {
        Workload { namespace: "foo".into(), labels: Default::default() }
    }

    #[test]
    fn needs_name_only_what_rules_read() {
        let engine = compile(
            &[policy(
                "p",
                serde_json::json!({"rules": [
                    {"from": [{"source": {"principals": ["*"], "ipBlocks": ["10.0.0.0/8"]}}]},
                    {"when": [{"key": "request.headers[x]", "values": ["1"]},
                              {"key": "request.auth.claims[groups]", "values": ["a"]},
                              {"key": "connection.sni", "values": ["a"]}]},
                ]}),
            )],
            &workload(),
            &Mesh::default(),
        );
        assert_eq!(
            engine.needs(),
            Needs { peer: true, source_ip: true, identity: true, sni: true, ..Needs::default() }
        );
        let paths_only = compile(
            &[policy(
                "p",
                serde_json::json!({"rules": [{"to": [{"operation": {"paths": ["/a"]}}]}]}),
            )],
            &workload(),
            &Mesh::default(),
        );
        assert_eq!(paths_only.needs(), Needs::default());
    }

    #[test]
    fn rule_ids_and_policies_follow_envoy_names() {
        let engine = compile(
            &[
                policy("b", serde_json::json!({"action": "DENY", "rules": [{}]})),
                policy("a", serde_json::json!({})),
            ],
            &workload(),
            &Mesh::default(),
        );
        let names: Vec<&str> = engine.policies().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(engine.rule_id(RuleRef { policy: 1, rule: 0 }), "ns[foo]-policy[b]-rule[0]");
        assert!(engine.rule_id(RuleRef { policy: 9, rule: 0 }).starts_with("unknown"));
        let decision = engine.decide(&Request::default(), None);
        assert_eq!(decision.reason, Reason::DeniedBy(RuleRef { policy: 1, rule: 0 }));
    }

    #[test]
    fn decide_skips_allow_rules_once_denied() {
        let engine = compile(
            &[
                policy("deny", serde_json::json!({"action": "DENY", "rules": [{}]})),
                policy("allow", serde_json::json!({"rules": [{}]})),
            ],
            &workload(),
            &Mesh::default(),
        );
        let decision = engine.decide(&Request::default(), None);
        assert!(!decision.allowed);
        assert!(decision.rule().is_some());
        assert!(!decision.dry_run_would_deny());
    }

    #[test]
    fn too_many_posting_lists_fall_back_to_every_rule() {
        let rules: Vec<serde_json::Value> = (0..40)
            .map(|i| serde_json::json!({"when": [{"key": "request.auth.claims[groups]", "values": [format!("g-{i:02}")]}]}))
            .collect();
        let engine = compile(
            &[policy("p", serde_json::json!({ "rules": rules }))],
            &workload(),
            &Mesh::default(),
        );
        assert_eq!(engine.index_stats(), (40, 40));
        let groups: Vec<String> = (0..40).rev().map(|i| format!("g-{i:02}")).collect();
        let identity = Identity {
            issuer: "i".into(),
            subject: Some("s".into()),
            claims: serde_json::Map::from_iter([("groups".to_string(), serde_json::json!(groups))]),
        };
        let decision = engine.decide(&Request::default(), Some(&identity));
        assert_eq!(decision, engine.decide_exhaustive(&Request::default(), Some(&identity)));
        // Envoy's order: rule[0] < rule[10] < rule[11] < … < rule[1] < rule[20] …
        assert_eq!(decision.reason, Reason::AllowedBy(RuleRef { policy: 0, rule: 0 }));
    }

    #[test]
    fn cloning_an_engine_shares_it() {
        let engine = compile(&[], &workload(), &Mesh::default());
        let copy = engine.clone();
        assert!(Arc::ptr_eq(&engine.inner, &copy.inner));
        assert_eq!(copy.decide(&Request::default(), None).reason, Reason::NoPolicies);
    }
}
