//! From files to the configuration the module would accept, with every finding placed in the
//! file and document it came from.
//!
//! `check`, `explain` and `compile` share this one pipeline, so they accept and refuse the same
//! inputs:
//!
//! 1. documents ([`crate::k8s`]), with their syntax errors;
//! 2. `metadata.namespace` filled in where a file leaves it to `kubectl apply -n` (a note);
//! 3. each document read by the core's parser (`warden::config::parse_document`), each
//!    resource validated by the core's validators (`warden::authz::validate`,
//!    `warden::authn::validate`), duplicates refused: errors carry the document;
//! 4. when nothing is wrong, the whole configuration goes through `Enforcer::new`, the very
//!    constructor the module runs, so nothing the module would refuse can pass;
//! 5. for `check`, `warden::authz::lint` adds warnings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::value::RawValue;
use serde_json::Value;
use warden::authn;
use warden::authz::{self, Mesh};
use warden::config::{self, ConfigError, ObjectRef, PluginConfig, Problem, Resource, Workload};
use warden::enforcer::Enforcer;

use crate::compile::trim;
use crate::k8s::{Loaded, Origin};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The module would refuse the configuration.
    Error,
    /// Legal, but almost certainly not what was meant.
    Warning,
    /// Information: something was assumed or skipped.
    Note,
}

impl Severity {
    /// The spelling in output.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One finding about the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// A stable, machine-readable kind: `yaml`, `schema`, `authz/invalid-ip`,
    /// `lint/allows-plaintext`, … (see `warden check --help`).
    pub code: String,
    /// The file and document; `None` for plugin settings.
    pub origin: Option<Origin>,
    /// The Istio object.
    pub object: Option<ObjectRef>,
    /// Where in the object, e.g. `spec.rules[0].from[0].source.ipBlocks[1]`; may be empty.
    pub field: String,
    /// What is wrong, and what to do.
    pub message: String,
}

impl Diagnostic {
    /// The index of the rule (`spec.rules[N]` or `spec.jwtRules[N]`) the field is in.
    pub fn rule(&self) -> Option<usize> {
        let rest = self
            .field
            .strip_prefix("spec.rules[")
            .or_else(|| self.field.strip_prefix("spec.jwtRules["))?;
        rest.split_once(']')?.0.parse().ok()
    }

    fn from_config_error(error: ConfigError, origin: Option<Origin>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: problem_code(&error.problem),
            origin,
            object: error.object,
            field: error.field,
            message: error.problem.to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        write!(f, "{}: ", self.severity.name())?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{} [{}]", self.message, self.code)
    }
}

/// A stable code for a configuration problem: the variant's name in kebab case, under
/// `authz/` or `authn/` for the resource-specific ones.
fn problem_code(problem: &Problem) -> String {
    match problem {
        Problem::Authz(inner) => format!("authz/{}", kebab(&format!("{inner:?}"))),
        Problem::Authn(inner) => format!("authn/{}", kebab(&format!("{inner:?}"))),
        other => kebab(&format!("{other:?}")),
    }
}

/// `InvalidIp { value: .. }` → `invalid-ip`.
pub fn kebab(debug: &str) -> String {
    let name: String = debug.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An Istio security object that parsed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where it came from.
    pub origin: Origin,
    /// Its kind, namespace and name.
    pub object: ObjectRef,
    /// The object as the plugin configuration carries it (trimmed, namespace filled in), as
    /// JSON text: at mesh scale a document tree per object would be most of the memory.
    pub value: Box<RawValue>,
    /// The object as the core read it.
    pub resource: Resource,
}

impl Entry {
    /// The object as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.value.get()).unwrap_or(Value::Null)
    }

    /// Replaces the object.
    pub fn set_value(&mut self, value: &Value) -> serde_json::Result<()> {
        self.value = serde_json::value::to_raw_value(value)?;
        Ok(())
    }
}

/// What the input holds and what is wrong with it.
#[derive(Debug)]
pub struct Analysis {
    /// Every `AuthorizationPolicy` and `RequestAuthentication` that parsed, in input order.
    pub entries: Vec<Entry>,
    /// The authorization policies that validated (for lints).
    pub policies: Vec<authz::Policy>,
    /// Warnings about validated `RequestAuthentication`s: where, which object, field, message.
    pub authn_lints: Vec<(Origin, ObjectRef, String, String)>,
    /// Every issuer the `RequestAuthentication` objects name.
    pub issuers: Vec<String>,
    /// Documents of other kinds: where, and `apiVersion/kind`.
    pub skipped: Vec<(Origin, String)>,
    /// Errors, warnings and notes, in input order (lints last).
    pub diagnostics: Vec<Diagnostic>,
    /// Documents read (after `kind: List` expansion), broken ones included.
    pub documents: usize,
    /// Files read.
    pub files: usize,
    /// The plugin settings (everything but `policies`).
    pub settings: PluginConfig,
}

impl Analysis {
    /// How many findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == severity).count()
    }

    /// Where an object came from (its first occurrence).
    pub fn origin_of(&self, object: &ObjectRef) -> Option<&Origin> {
        self.entries.iter().find(|e| &e.object == object).map(|e| &e.origin)
    }

    /// The plugin configuration: the settings with every object.
    pub fn plugin_config(&self) -> PluginConfig {
        let mut config = self.settings.clone();
        config.policies.extend(self.entries.iter().map(|entry| entry.value.clone()));
        config
    }

    /// The errors, if any, as one message per line.
    #[cfg(test)]
    pub fn error_lines(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect()
    }

    /// Adds the core's lints as warnings (`warden check`).
    pub fn lint(&mut self) {
        for (origin, object, field, message) in std::mem::take(&mut self.authn_lints) {
            self.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                code: "lint/jwks-key".into(),
                origin: Some(origin),
                object: Some(object),
                field,
                message,
            });
        }
        let mut origins: BTreeMap<&ObjectRef, &Origin> = BTreeMap::new();
        for entry in &self.entries {
            origins.entry(&entry.object).or_insert(&entry.origin);
        }
        let lints: Vec<_> = authz::lint(&self.policies, &self.issuers)
            .into_iter()
            .map(|lint| (origins.get(&lint.object).map(|o| (*o).clone()), lint))
            .collect();
        for (origin, lint) in lints {
            self.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                code: format!("lint/{}", kebab(&format!("{:?}", lint.kind))),
                origin,
                object: Some(lint.object),
                field: lint.field,
                message: lint.message,
            });
        }
    }
}

/// Reads, validates and places every object of `loaded`. `default_namespace` is given to
/// objects without `metadata.namespace`.
pub fn analyze(loaded: Loaded, settings: PluginConfig, default_namespace: &str) -> Analysis {
    let mesh = Mesh::from_config(&settings);
    let mut analysis = Analysis {
        entries: Vec::new(),
        policies: Vec::new(),
        authn_lints: Vec::new(),
        issuers: Vec::new(),
        skipped: Vec::new(),
        diagnostics: Vec::new(),
        documents: loaded.documents.len() + loaded.syntax_errors.len(),
        files: loaded.files,
        settings,
    };
    for error in loaded.syntax_errors {
        analysis.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            code: "yaml".into(),
            origin: Some(error.origin),
            object: None,
            field: String::new(),
            message: error.message,
        });
    }
    let mut seen: BTreeMap<ObjectRef, Origin> = BTreeMap::new();
    for mut document in loaded.documents {
        if let Some(note) = default_namespace_of(&mut document.value, default_namespace) {
            analysis.diagnostics.push(Diagnostic {
                severity: Severity::Note,
                code: "default-namespace".into(),
                origin: Some(document.origin.clone()),
                object: Some(note),
                field: "metadata.namespace".into(),
                message: format!(
                    "not set: using {default_namespace:?}, as `kubectl apply` would (change it \
                     with --namespace)"
                ),
            });
        }
        let resource = match config::parse_document(&document.value) {
            Ok(config::Document::Other { api_version, kind }) => {
                let what = match (api_version.is_empty(), kind.is_empty()) {
                    (true, true) => "a document without apiVersion and kind".to_string(),
                    _ => format!("{api_version}/{kind}"),
                };
                analysis.skipped.push((document.origin, what));
                continue;
            }
            Ok(config::Document::Resource(resource)) => *resource,
            Err(errors) => {
                for error in errors.0 {
                    let origin = Some(document.origin.clone());
                    analysis.diagnostics.push(Diagnostic::from_config_error(error, origin));
                }
                continue;
            }
        };
        let object = resource.object_ref();
        if let Some(first) = seen.get(&object) {
            let problem = Problem::Duplicate(format!("{} (in {first})", object.kind));
            let error = ConfigError::at(&object, "metadata.name", problem);
            analysis.diagnostics.push(Diagnostic::from_config_error(error, Some(document.origin)));
            continue;
        }
        seen.insert(object.clone(), document.origin.clone());
        let errors = match &resource {
            Resource::AuthorizationPolicy(policy) => match authz::validate(policy, &mesh) {
                Ok(policy) => {
                    analysis.policies.push(policy);
                    Vec::new()
                }
                Err(errors) => errors,
            },
            Resource::RequestAuthentication(authentication) => {
                for rule in &authentication.spec.jwt_rules {
                    if !rule.issuer.is_empty() && !analysis.issuers.contains(&rule.issuer) {
                        analysis.issuers.push(rule.issuer.clone());
                    }
                }
                match authn::validate(authentication) {
                    Ok(rules) => {
                        analysis.authn_lints.extend(authn::lint(&rules).into_iter().map(
                            |(field, message)| {
                                (document.origin.clone(), object.clone(), field, message)
                            },
                        ));
                        Vec::new()
                    }
                    Err(errors) => errors,
                }
            }
        };
        for error in errors {
            let origin = Some(document.origin.clone());
            analysis.diagnostics.push(Diagnostic::from_config_error(error, origin));
        }
        let value = match serde_json::value::to_raw_value(&trim(&document.value)) {
            Ok(value) => value,
            Err(error) => {
                let error = ConfigError::at(&object, "", Problem::Schema(error.to_string()));
                let origin = Some(document.origin);
                analysis.diagnostics.push(Diagnostic::from_config_error(error, origin));
                continue;
            }
        };
        analysis.entries.push(Entry { origin: document.origin, object, value, resource });
    }
    if analysis.count(Severity::Error) == 0 {
        // The module's own constructor is the last word: whatever it refuses is an error here,
        // placed by the object it names.
        let config = analysis.plugin_config();
        let workload =
            Workload { namespace: config.root_namespace.clone(), labels: BTreeMap::new() };
        if let Err(errors) = Enforcer::new(&config, Some(workload)) {
            for error in errors.0 {
                let origin = error.object.as_ref().and_then(|o| analysis.origin_of(o)).cloned();
                analysis.diagnostics.push(Diagnostic::from_config_error(error, origin));
            }
        }
    }
    analysis
}

/// Fills in `metadata.namespace` of an Istio security object that has none, returning the
/// object's reference when it did.
fn default_namespace_of(value: &mut Value, namespace: &str) -> Option<ObjectRef> {
    let object = value.as_object_mut()?;
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let ours = api_version.split('/').next() == Some(config::istio::API_GROUP)
        && (kind == config::KIND_AUTHORIZATION_POLICY
            || kind == config::KIND_REQUEST_AUTHENTICATION);
    if !ours {
        return None;
    }
    let metadata = object.get_mut("metadata")?.as_object_mut()?;
    let missing = match metadata.get("namespace") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if !missing {
        return None;
    }
    metadata.insert("namespace".into(), Value::String(namespace.to_string()));
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    Some(ObjectRef { kind, namespace: namespace.to_string(), name })
}

/// Reads the plugin settings file (YAML or JSON; every plugin configuration field but
/// `policies`) with the core's schema, so a typo is an error here rather than in Envoy.
pub fn read_settings(path: Option<&PathBuf>) -> anyhow::Result<PluginConfig> {
    use anyhow::{bail, Context as _};
    let Some(path) = path else { return Ok(PluginConfig::default()) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    let config = PluginConfig::from_value(&value)
        .with_context(|| format!("{}: not a valid Warden plugin configuration", path.display()))?;
    if !config.policies.is_empty() {
        bail!(
            "{}: the settings carry policies: pass policy files as arguments instead",
            path.display()
        );
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s;
    use std::path::Path;

    fn analyze_text(text: &str) -> Analysis {
        let (documents, syntax_errors) = k8s::parse_all(Path::new("p.yaml"), text);
        let loaded = Loaded { documents, syntax_errors, files: 1 };
        analyze(loaded, PluginConfig::default(), "default")
    }

    const AP: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n";

    #[test]
    fn codes_are_kebab_case_variant_names() {
        assert_eq!(kebab("InvalidIp { value: \"x\" }"), "invalid-ip");
        assert_eq!(kebab("Missing"), "missing");
        assert_eq!(kebab("NeverMatches"), "never-matches");
    }

    #[test]
    fn errors_in_several_documents_are_all_placed() {
        let text = format!(
            "{AP}metadata: {{name: a, namespace: x}}\nspec: {{rules: [{{from: [{{source: {{ipBlocks: [300.0.0.1]}}}}]}}]}}\n\
             ---\nkind: Deployment\napiVersion: apps/v1\n---\n\
             {AP}metadata: {{name: b, namespace: x}}\nspec: {{action: DENY}}\n"
        );
        let analysis = analyze_text(&text);
        let errors: Vec<_> =
            analysis.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].origin.as_ref().unwrap().document, 1);
        assert_eq!(errors[0].code, "authz/invalid-ip");
        assert_eq!(errors[0].rule(), Some(0));
        assert_eq!(errors[1].origin.as_ref().unwrap().document, 3);
        assert_eq!(errors[1].code, "authz/deny-without-rules");
        assert_eq!(analysis.skipped.len(), 1);
    }

    #[test]
    fn a_missing_namespace_is_filled_in_with_a_note() {
        let analysis = analyze_text(&format!("{AP}metadata: {{name: a}}\nspec: {{}}\n"));
        assert_eq!(analysis.count(Severity::Error), 0, "{:?}", analysis.diagnostics);
        assert_eq!(analysis.diagnostics[0].code, "default-namespace");
        assert_eq!(analysis.entries[0].value()["metadata"]["namespace"], "default");
    }

    #[test]
    fn duplicates_are_errors_naming_the_first() {
        let one = format!("{AP}metadata: {{name: a, namespace: x}}\nspec: {{}}\n");
        let analysis = analyze_text(&format!("{one}---\n{one}"));
        assert_eq!(analysis.count(Severity::Error), 1);
        assert!(analysis.diagnostics[0].message.contains("document 1"));
        assert_eq!(analysis.diagnostics[0].origin.as_ref().unwrap().document, 2);
    }
}
