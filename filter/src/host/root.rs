//! The root context: configuration and everything that outlives a request.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::abi;
use super::http::WardenHttp;
use crate::config::Workload;
use crate::enforcer::{self, Enforcer};

/// Per worker VM (and per plugin configuration).
pub struct WardenRoot {
    enforcer: Option<Rc<Enforcer>>,
}

impl WardenRoot {
    pub fn new(_context_id: u32) -> Self {
        WardenRoot { enforcer: None }
    }
}

impl Context for WardenRoot {}

impl RootContext for WardenRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let result = enforcer::parse_plugin_config(&bytes)
            .and_then(|config| Enforcer::new(&config, node_workload()));
        match result {
            Ok(enforcer) => {
                log::info!(
                    "warden: configured for workload {} with {} resources",
                    enforcer.workload().namespace,
                    enforcer.resource_count()
                );
                self.enforcer = Some(Rc::new(enforcer));
                true
            }
            Err(errors) => {
                log::error!("warden: configuration refused: {errors}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WardenHttp::new(self.enforcer.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The workload as Istio's sidecars describe it in the node metadata.
fn node_workload() -> Option<Workload> {
    let namespace = abi::bytes_property(&["xds", "node", "metadata", "NAMESPACE"])?;
    let namespace = String::from_utf8(namespace).ok().filter(|ns| !ns.is_empty())?;
    let labels = abi::map_property(&["xds", "node", "metadata", "LABELS"]).unwrap_or_default();
    Some(Workload { namespace, labels: labels.into_iter().collect() })
}
