//! Configuration, step one of three: the schema of what users write, and its decoder.
//!
//! - [`istio`]: Istio's `AuthorizationPolicy` and `RequestAuthentication` resources.
//! - [`plugin`]: the plugin configuration (Envoy's `configuration`, Istio's
//!   `WasmPlugin.pluginConfig`) that carries those resources and Warden's own settings.
//! - `decode`: both read from JSON values by hand (it says why not by serde's derive).
//! - [`wire`]: how Envoy hands the plugin configuration over (JSON, or a serialized
//!   `google.protobuf.Struct`).
//!
//! Step two (validation into a domain model, with errors that name the object and field) and
//! step three (compilation into indexed runtime structures) live in [`crate::authz`] and
//! [`crate::authn`].

pub(crate) mod decode;
pub mod duration;
pub mod error;
pub mod istio;
pub mod locate;
pub mod plugin;
pub mod scope;
pub mod skim;
pub mod wire;

#[cfg(test)]
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::{ConfigError, ConfigErrors, ObjectRef, Problem};
pub use istio::{AuthorizationPolicySpec, ObjectMeta, RequestAuthenticationSpec, WorkloadSelector};
pub use plugin::{PluginConfig, Workload};

/// The two kinds Warden reads.
pub const KIND_AUTHORIZATION_POLICY: &str = "AuthorizationPolicy";
/// See [`KIND_AUTHORIZATION_POLICY`].
pub const KIND_REQUEST_AUTHENTICATION: &str = "RequestAuthentication";

/// A Kubernetes object with a typed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<S> {
    /// `metadata` (name, namespace, annotations).
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: S,
}

impl<S> Object<S> {
    /// The reference errors and decisions use for this object.
    pub fn object_ref(&self, kind: &str) -> ObjectRef {
        ObjectRef {
            kind: kind.to_string(),
            namespace: self.metadata.namespace.clone(),
            name: self.metadata.name.clone(),
        }
    }
}

/// One Istio security resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// `security.istio.io` `AuthorizationPolicy`.
    AuthorizationPolicy(Object<AuthorizationPolicySpec>),
    /// `security.istio.io` `RequestAuthentication`.
    RequestAuthentication(Object<RequestAuthenticationSpec>),
}

impl Resource {
    /// The resource's kind, name and namespace.
    pub fn object_ref(&self) -> ObjectRef {
        match self {
            Resource::AuthorizationPolicy(o) => o.object_ref(KIND_AUTHORIZATION_POLICY),
            Resource::RequestAuthentication(o) => o.object_ref(KIND_REQUEST_AUTHENTICATION),
        }
    }

    /// `spec.selector`, if any.
    pub fn selector(&self) -> Option<&WorkloadSelector> {
        match self {
            Resource::AuthorizationPolicy(o) => o.spec.selector.as_ref(),
            Resource::RequestAuthentication(o) => o.spec.selector.as_ref(),
        }
    }
}

/// What a document turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// An Istio security resource Warden reads.
    Resource(Box<Resource>),
    /// Some other Kubernetes kind (a Deployment next to the policies, say). The plugin
    /// configuration refuses these; `warden check` skips them.
    Other {
        /// `apiVersion`, possibly empty.
        api_version: String,
        /// `kind`, possibly empty.
        kind: String,
    },
}

/// An annotation Istio's validation refuses (`pkg/config/validation/validation.go`
/// `validateMetadata`, `checkDryRunAnnotation`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationProblem {
    /// `internal.istio.io/webhook-always-reject`: Istio refuses every object carrying it.
    #[error("Istio rejects every object with this annotation")]
    AlwaysReject,
    /// `internal.istio.io/parent-namespace`, `internal.istio.io/parents`: reserved for Istio.
    #[error("this annotation is reserved for Istio and may not be set by users")]
    Reserved,
    /// `istio.io/dry-run` on a `RequestAuthentication`, which has no dry-run mode.
    #[error(
        "RequestAuthentication does not support istio.io/dry-run: remove it (Istio refuses it; \
         a user expecting a dry run would get enforcement)"
    )]
    DryRunUnsupported,
}

/// Checks the annotations Istio refuses on any security object.
fn annotation_errors(at: &ObjectRef, kind: &str, metadata: &ObjectMeta) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for key in metadata.annotations.keys() {
        let problem = match key.as_str() {
            "internal.istio.io/webhook-always-reject" => AnnotationProblem::AlwaysReject,
            "internal.istio.io/parent-namespace" | "internal.istio.io/parents" => {
                AnnotationProblem::Reserved
            }
            "istio.io/dry-run" if kind == KIND_REQUEST_AUTHENTICATION => {
                AnnotationProblem::DryRunUnsupported
            }
            _ => continue,
        };
        errors.push(ConfigError::at(
            at,
            format!("metadata.annotations[{key}]"),
            Problem::Annotation(problem),
        ));
    }
    errors
}

/// Reads one Kubernetes object. `Ok(Document::Other)` for kinds that are not Istio security
/// resources; errors for a security resource that does not fit the schema.
pub fn parse_document(value: &Value) -> Result<Document, ConfigErrors> {
    let Some(object) = value.as_object() else {
        return Err(ConfigError::plugin(
            "",
            Problem::Schema("a Kubernetes object must be a mapping".into()),
        )
        .into());
    };
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let group = api_version.split('/').next().unwrap_or_default();
    if group != istio::API_GROUP
        || (kind != KIND_AUTHORIZATION_POLICY && kind != KIND_REQUEST_AUTHENTICATION)
    {
        return Ok(Document::Other {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    }

    let metadata: ObjectMeta = match object.get("metadata") {
        Some(meta) => decode::object_meta(meta).map_err(decode::Misfit::into_parts).map_err(
            |(path, message)| {
                ConfigError::plugin(
                    join_field(&format!("{kind}.metadata"), &path),
                    Problem::Schema(message),
                )
            },
        )?,
        None => ObjectMeta::default(),
    };
    let at = ObjectRef {
        kind: kind.to_string(),
        namespace: metadata.namespace.clone(),
        name: metadata.name.clone(),
    };

    let mut errors = Vec::new();
    if !istio::API_VERSIONS.contains(&api_version) {
        errors.push(ConfigError::at(
            &at,
            "apiVersion",
            Problem::ApiVersion(api_version.to_string()),
        ));
    }
    if metadata.name.is_empty() {
        errors.push(ConfigError::at(&at, "metadata.name", Problem::Missing));
    }
    if metadata.namespace.is_empty() {
        errors.push(ConfigError::at(&at, "metadata.namespace", Problem::Missing));
    }
    errors.extend(annotation_errors(&at, kind, &metadata));
    let empty = Value::Object(Default::default());
    let spec = object.get("spec").unwrap_or(&empty);
    let resource = if kind == KIND_AUTHORIZATION_POLICY {
        decode::authorization_policy_spec(spec)
            .map(|spec| Resource::AuthorizationPolicy(Object { metadata, spec }))
    } else {
        decode::request_authentication_spec(spec)
            .map(|spec| Resource::RequestAuthentication(Object { metadata, spec }))
    }
    .map_err(decode::Misfit::into_parts);
    if let Ok(resource) = &resource {
        if let Some(selector) = resource.selector() {
            for (field, problem) in scope::validate_selector(selector) {
                errors.push(ConfigError::at(&at, field, Problem::Selector(problem)));
            }
        }
    }
    match resource {
        Ok(resource) if errors.is_empty() => Ok(Document::Resource(Box::new(resource))),
        Ok(_) => Err(ConfigErrors(errors)),
        Err((path, message)) => {
            errors.push(ConfigError::at(&at, join_field("spec", &path), Problem::Schema(message)));
            Err(ConfigErrors(errors))
        }
    }
}

/// serde's derive on `value`'s text: the failing field's path (`rules[0].to[0].operation.methods`,
/// empty for the value itself, found by [`locate`]) and serde's message. The reference the
/// module's hand decoder ([`decode`]) is tested against.
#[cfg(test)]
pub(crate) fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    let text = value.to_string();
    serde_json::from_slice(text.as_bytes()).map_err(|error| {
        (locate::path_at(text.as_bytes(), error.line(), error.column()), locate::message(&error))
    })
}

/// `spec` + `rules[0]` → `spec.rules[0]`.
pub(crate) fn join_field(base: &str, path: &str) -> String {
    match (base.is_empty(), path.is_empty()) {
        (_, true) => base.to_string(),
        (true, false) => path.to_string(),
        (false, false) if path.starts_with('[') => format!("{base}{path}"),
        (false, false) => format!("{base}.{path}"),
    }
}
