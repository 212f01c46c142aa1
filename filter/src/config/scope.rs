//! Which workloads a policy applies to, as istiod decides for sidecars.
//!
//! Policies in the root namespace apply to matching workloads in every namespace; others to
//! matching workloads in their own namespace. A selector's `matchLabels` must all be carried by
//! the workload; an absent or empty selector matches every workload in scope. (Istio
//! `pilot/pkg/model/policyattachment.go`; policies with `targetRefs` apply to no sidecar.)

use super::istio::WorkloadSelector;
use super::plugin::Workload;

/// What is wrong in a `selector.matchLabels` (Istio `pkg/config/validation/validation.go`
/// `validateWorkloadSelector`, and the CRD's limits). Labels are matched exactly: a `*` would
/// be a literal character, so a policy written with `app: "web-*"` would select nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorProblem {
    /// An empty label key.
    #[error("empty key is not supported in selector: \"={0}\"")]
    EmptyKey(String),
    /// A `*` in a label key or value.
    #[error(
        "wildcard is not supported in selector: \"{key}={value}\" (labels are matched exactly)"
    )]
    Wildcard {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// A label value longer than the 63 characters Kubernetes allows (the CRD's `maxLength`).
    #[error("label value of {0} characters: at most 63")]
    ValueTooLong(usize),
    /// More labels than the CRD's `maxProperties` (4096).
    #[error("{0} labels: at most 4096")]
    TooManyLabels(usize),
}

/// The CRD's `maxProperties` on `matchLabels`.
pub const MAX_SELECTOR_LABELS: usize = 4096;

/// Every problem of a selector, with its field (`spec.selector.matchLabels[<key>]`).
pub fn validate_selector(selector: &WorkloadSelector) -> Vec<(String, SelectorProblem)> {
    let mut problems = Vec::new();
    if selector.match_labels.len() > MAX_SELECTOR_LABELS {
        problems.push((
            "spec.selector.matchLabels".to_string(),
            SelectorProblem::TooManyLabels(selector.match_labels.len()),
        ));
    }
    for (key, value) in &selector.match_labels {
        let field = format!("spec.selector.matchLabels[{key}]");
        if key.is_empty() {
            problems.push((field, SelectorProblem::EmptyKey(value.clone())));
        } else if key.contains('*') || value.contains('*') {
            problems.push((
                field,
                SelectorProblem::Wildcard { key: key.clone(), value: value.clone() },
            ));
        } else if value.chars().count() > 63 {
            problems.push((field, SelectorProblem::ValueTooLong(value.chars().count())));
        }
    }
    problems
}

/// Whether a policy in `namespace` with `selector` applies to `workload`.
pub fn selects(
    namespace: &str,
    selector: Option<&WorkloadSelector>,
    workload: &Workload,
    root_namespace: &str,
) -> bool {
    let in_scope = namespace == workload.namespace || namespace == root_namespace;
    in_scope
        && selector.is_none_or(|selector| {
            selector
                .match_labels
                .iter()
                .all(|(key, value)| workload.labels.get(key).is_some_and(|have| have == value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn workload(namespace: &str, labels: &[(&str, &str)]) -> Workload {
        Workload {
            namespace: namespace.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn selector(labels: &[(&str, &str)]) -> WorkloadSelector {
        WorkloadSelector {
            match_labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn selectors_istio_refuses_are_refused() {
        // istio pkg/config/validation/validation_test.go TestValidateAuthorizationPolicy:
        // selector-empty-key, selector-wildcard-value, selector-wildcard-key (invalid);
        // selector-empty-value (valid).
        let problems = |labels: &[(&str, &str)]| validate_selector(&selector(labels));
        assert!(matches!(problems(&[("", "v1")])[0].1, SelectorProblem::EmptyKey(_)));
        assert!(matches!(problems(&[("app", "web-*")])[0].1, SelectorProblem::Wildcard { .. }));
        assert!(matches!(problems(&[("app-*", "web")])[0].1, SelectorProblem::Wildcard { .. }));
        assert_eq!(problems(&[("app", "web-*")])[0].0, "spec.selector.matchLabels[app]");
        assert!(problems(&[("app", ""), ("version", "v1")]).is_empty());
        let long = "x".repeat(64);
        assert!(matches!(problems(&[("app", &long)])[0].1, SelectorProblem::ValueTooLong(64)));
        assert!(problems(&[("app", &long[..63])]).is_empty());
    }

    #[test]
    fn same_namespace_without_selector_applies() {
        assert!(selects("api", None, &workload("api", &[]), "istio-system"));
    }

    #[test]
    fn other_namespace_does_not_apply() {
        assert!(!selects("web", None, &workload("api", &[]), "istio-system"));
    }

    #[test]
    fn root_namespace_applies_everywhere_but_keeps_its_selector() {
        let backend = workload("api", &[("app", "backend")]);
        assert!(selects("istio-system", None, &backend, "istio-system"));
        assert!(selects(
            "istio-system",
            Some(&selector(&[("app", "backend")])),
            &backend,
            "istio-system"
        ));
        assert!(!selects(
            "istio-system",
            Some(&selector(&[("app", "db")])),
            &backend,
            "istio-system"
        ));
    }

    #[test]
    fn selector_needs_every_label() {
        let backend = workload("api", &[("app", "backend"), ("version", "v1")]);
        assert!(selects("api", Some(&selector(&[("app", "backend")])), &backend, "istio-system"));
        assert!(!selects(
            "api",
            Some(&selector(&[("app", "backend"), ("tier", "x")])),
            &backend,
            "istio-system"
        ));
        assert!(selects("api", Some(&selector(&[])), &backend, "istio-system"));
    }
}
