//! Configuration, step one of three: the serde schema of what users write.
//!
//! - [`istio`]: Istio's `AuthorizationPolicy` and `RequestAuthentication` resources.
//! - [`plugin`]: the plugin configuration (Envoy's `configuration`, Istio's
//!   `WasmPlugin.pluginConfig`) that carries those resources and Warden's own settings.
//! - [`wire`]: how Envoy hands the plugin configuration over (JSON, or a serialized
//!   `google.protobuf.Struct`).
//!
//! Step two (validation into a domain model, with errors that name the object and field) and
//! step three (compilation into indexed runtime structures) live in [`crate::authz`] and
//! [`crate::authn`].

pub mod duration;
pub mod error;
pub mod istio;
pub mod plugin;
pub mod scope;
pub mod wire;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::{ConfigError, ConfigErrors, ObjectRef, Problem};
pub use istio::{AuthorizationPolicySpec, ObjectMeta, RequestAuthenticationSpec};
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
        Some(meta) => deserialize(meta).map_err(|(path, message)| {
            ConfigError::plugin(
                join_field(&format!("{kind}.metadata"), &path),
                Problem::Schema(message),
            )
        })?,
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
    let empty = Value::Object(Default::default());
    let spec = object.get("spec").unwrap_or(&empty);
    let resource = if kind == KIND_AUTHORIZATION_POLICY {
        deserialize(spec).map(|spec| Resource::AuthorizationPolicy(Object { metadata, spec }))
    } else {
        deserialize(spec).map(|spec| Resource::RequestAuthentication(Object { metadata, spec }))
    };
    match resource {
        Ok(resource) if errors.is_empty() => Ok(Document::Resource(Box::new(resource))),
        Ok(_) => Err(ConfigErrors(errors)),
        Err((path, message)) => {
            errors.push(ConfigError::at(&at, join_field("spec", &path), Problem::Schema(message)));
            Err(ConfigErrors(errors))
        }
    }
}

/// Deserializes, returning the failing field's path (`rules[0].to[0].operation.methods`, empty
/// for the value itself) and serde's message.
pub(crate) fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, error.into_inner().to_string())
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
