//! Authorization: Istio `AuthorizationPolicy` semantics, compiled once and decided per request.

/// What is wrong in an `AuthorizationPolicy` (the field is named by the [`crate::config::ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// `targetRef`/`targetRefs` select gateways and waypoints; sidecars ignore such policies.
    #[error("targetRef/targetRefs are not supported for sidecars: use selector.matchLabels")]
    TargetRefs,
}
