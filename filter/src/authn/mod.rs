//! Request authentication: Istio `RequestAuthentication` semantics (Envoy `jwt_authn`).

/// What is wrong in a `RequestAuthentication` (the field is named by the [`crate::config::ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// `targetRef`/`targetRefs` select gateways and waypoints; sidecars ignore such policies.
    #[error("targetRef/targetRefs are not supported for sidecars: use selector.matchLabels")]
    TargetRefs,
}
