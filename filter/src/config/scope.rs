//! Which workloads a policy applies to, as istiod decides for sidecars.
//!
//! Policies in the root namespace apply to matching workloads in every namespace; others to
//! matching workloads in their own namespace. A selector's `matchLabels` must all be carried by
//! the workload; an absent or empty selector matches every workload in scope. (Istio
//! `pilot/pkg/model/policyattachment.go`; `targetRefs` policies are refused earlier.)

use super::istio::WorkloadSelector;
use super::plugin::Workload;

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
