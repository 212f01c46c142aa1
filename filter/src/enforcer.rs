//! The enforcer: one workload's compiled configuration, deciding requests.
//!
//! Built once per configuration from the plugin configuration and the workload's identity;
//! immutable afterwards. [`Enforcer::check`] runs request authentication, then authorization,
//! and returns a [`Verdict`] the host carries out.

use crate::config::{self, ConfigError, ConfigErrors, Document, PluginConfig, Problem, Workload};

/// The compiled configuration for one workload.
#[derive(Debug)]
pub struct Enforcer {
    workload: Workload,
    resources: Vec<config::Resource>,
}

impl Enforcer {
    /// Parses, validates and compiles a plugin configuration for `workload` (the configured
    /// one wins over the node's). Every error is reported; any error refuses the configuration.
    pub fn new(config: &PluginConfig, node_workload: Option<Workload>) -> Result<Self, ConfigErrors> {
        let workload = config.workload.clone().or(node_workload).ok_or_else(|| {
            ConfigError::plugin(
                "workload",
                Problem::Setting(
                    "the workload is unknown: set `workload.namespace` (and labels) in the plugin \
                     configuration, or run under a sidecar whose node metadata has NAMESPACE"
                        .into(),
                ),
            )
        })?;
        let mut errors = Vec::new();
        let mut resources = Vec::new();
        for (index, value) in config.policies.iter().enumerate() {
            match config::parse_document(value) {
                Ok(Document::Resource(resource)) => resources.push(*resource),
                Ok(Document::Other { api_version, kind }) => errors.push(ConfigError::plugin(
                    format!("policies[{index}]"),
                    Problem::Kind(format!("{api_version}/{kind}")),
                )),
                Err(ConfigErrors(mut found)) => errors.append(&mut found),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Enforcer { workload, resources })
    }

    /// The workload this enforcer serves.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// How many Istio resources the configuration carries (for the startup log line).
    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }
}

/// Parses the plugin configuration bytes Envoy hands over (JSON, or a serialized
/// `google.protobuf.Struct`) into the schema. Unknown fields are errors.
pub fn parse_plugin_config(bytes: &[u8]) -> Result<PluginConfig, ConfigErrors> {
    let value = config::wire::plugin_configuration(bytes)
        .map_err(|message| ConfigError::plugin("", Problem::Syntax(message)))?;
    config::deserialize(&value).map_err(|(path, message)| {
        ConfigErrors::from(ConfigError::plugin(path, Problem::Schema(message)))
    })
}
