//! Configuration errors: each one names the object, the field and what to fix.
//!
//! A configuration with any error is refused as a whole (Envoy keeps the last good one);
//! nothing is silently dropped. All errors are collected, so a user sees every problem at once.

use std::fmt;

/// The Kubernetes object an error is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `AuthorizationPolicy` or `RequestAuthentication` (or whatever the document claimed).
    pub kind: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One configuration error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    /// The object the error is in; `None` for plugin-level settings.
    pub object: Option<ObjectRef>,
    /// Where in the object (or the plugin configuration), e.g.
    /// `spec.rules[0].from[0].source.ipBlocks[1]`. Empty for the document as a whole.
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.problem)
    }
}

impl ConfigError {
    /// An error at `field` of the plugin configuration itself.
    pub fn plugin(field: impl Into<String>, problem: Problem) -> Self {
        ConfigError { object: None, field: field.into(), problem }
    }

    /// An error at `field` of `object`.
    pub fn at(object: &ObjectRef, field: impl Into<String>, problem: Problem) -> Self {
        ConfigError { object: Some(object.clone()), field: field.into(), problem }
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The document is not valid JSON (or YAML, for the command-line tool).
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// The document does not fit the schema: an unknown field, a wrong type.
    #[error("{0}")]
    Schema(String),
    /// A required field is absent or empty.
    #[error("is required")]
    Missing,
    /// The `apiVersion` is not one Warden reads.
    #[error("unsupported apiVersion {0:?}: expected security.istio.io/v1 (or v1beta1)")]
    ApiVersion(String),
    /// The `kind` is not one Warden reads.
    #[error("unsupported kind {0:?}: expected AuthorizationPolicy or RequestAuthentication")]
    Kind(String),
    /// Two objects of the same kind share a namespace and name.
    #[error("duplicate object: another {0} has the same namespace and name")]
    Duplicate(String),
    /// An invalid plugin-level setting.
    #[error("{0}")]
    Setting(String),
    /// A problem in a `selector` (either kind).
    #[error(transparent)]
    Selector(#[from] crate::config::scope::SelectorProblem),
    /// An annotation Istio refuses (either kind).
    #[error(transparent)]
    Annotation(#[from] crate::config::AnnotationProblem),
    /// A problem in an `AuthorizationPolicy`.
    #[error(transparent)]
    Authz(#[from] crate::authz::PolicyProblem),
    /// A problem in a `RequestAuthentication`.
    #[error(transparent)]
    Authn(#[from] crate::authn::RuleProblem),
}

/// Every error found in a configuration, in document order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => write!(f, "invalid configuration"),
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} configuration errors:", many.len())?;
                for error in many {
                    write!(f, "\n  - {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}
