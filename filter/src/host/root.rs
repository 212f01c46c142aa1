//! The root context: configuration, key fetching, and resuming requests that wait for keys.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::ContextType;

use super::abi;
use super::connection::WardenConnection;
use super::http::WardenHttp;
use super::metrics::VmMemory;
use super::worker::{HostShared, Worker};
use crate::authn::MAX_JWKS_BYTES;
use crate::config::plugin::Role;
use crate::config::Workload;
use crate::enforcer::{self, Enforcer};
use crate::keystore::{Fetch, Progress};

/// Ticks while nothing waits: refreshes are due minutes apart.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Ticks while requests wait for keys or fetches are under way, to notice other workers' fetches.
const BUSY_TICK: Duration = Duration::from_millis(50);

/// One per worker VM and plugin configuration (a configuration update makes a new one).
pub struct WardenRoot {
    context_id: u32,
    /// The HTTP filter, or the network filter (`role: connection`).
    role: Role,
    worker: Option<Rc<Worker>>,
    /// Dispatched fetches: HTTP call token → key store fetch id.
    calls: HashMap<u32, u64>,
    tick: Duration,
}

impl WardenRoot {
    pub fn new(context_id: u32) -> Self {
        WardenRoot {
            context_id,
            role: Role::Http,
            worker: None,
            calls: HashMap::new(),
            tick: Duration::ZERO,
        }
    }

    /// Starts the fetches the key store asks for, and keeps the tick period fitting.
    fn poll(&mut self) {
        VmMemory::report();
        let Some(worker) = self.worker.clone() else { return };
        let now = abi::now_millis();
        let fetches = worker.keystore.borrow_mut().poll(now, &HostShared);
        for fetch in fetches {
            self.dispatch(&worker, fetch);
        }
        worker.resume_waiting(self.context_id);
        let tick = if worker.busy() { BUSY_TICK } else { IDLE_TICK };
        if tick != self.tick && set_tick(tick) {
            self.tick = tick;
        }
    }

    fn dispatch(&mut self, worker: &Worker, fetch: Fetch) {
        let headers = vec![
            (":method", "GET"),
            (":path", fetch.path.as_str()),
            (":authority", fetch.authority.as_str()),
            ("accept", "application/json"),
            ("user-agent", "warden"),
        ];
        match self.dispatch_http_call(&fetch.cluster, headers, None, vec![], fetch.timeout) {
            Ok(token) => {
                self.calls.insert(token, fetch.id);
            }
            Err(status) => {
                let reason = format!(
                    "cannot send the request through cluster {:?} ({status:?}): is that cluster defined?",
                    fetch.cluster
                );
                let issuer = worker.keystore.borrow().issuer(fetch.source).to_string();
                worker.metrics.jwks_fetch(&issuer, "failure");
                worker.keystore.borrow_mut().on_dispatch_failed(
                    fetch.id,
                    &reason,
                    abi::now_millis(),
                    &HostShared,
                );
            }
        }
    }
}

/// This configuration is going away (`proxy_on_delete`; the module exports no `proxy_on_done`,
/// see filter/slim).
impl Drop for WardenRoot {
    fn drop(&mut self) {
        if let Some(worker) = &self.worker {
            VmMemory::root_done();
            // Let another worker fetch at once instead of waiting out the leases of fetches
            // whose answers will never be read here.
            worker.keystore.borrow_mut().abandon(abi::now_millis(), &HostShared);
        }
    }
}

impl Context for WardenRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(worker) = self.worker.clone() else { return };
        // A check a waiting request sent once its keys arrived (the root sent it for it).
        if worker.on_authorizer_response(token, headers, body_size) {
            let _ = abi::set_effective_context(self.context_id);
            return;
        }
        let Some(id) = self.calls.remove(&token) else { return };
        let status = abi::http_call_response_header(":status")
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok());
        // One byte over the limit is enough for the parser to refuse an oversized document.
        // An unreadable body is an empty one: the key store refuses it and keeps the last keys.
        let body =
            abi::http_call_response_body(body_size.min(MAX_JWKS_BYTES + 1)).unwrap_or_default();
        let source = worker.keystore.borrow().fetch_source(id);
        let progress = worker.keystore.borrow_mut().on_response(
            id,
            status,
            &body,
            abi::now_millis(),
            &HostShared,
        );
        if let Some(source) = source {
            let issuer = worker.keystore.borrow().issuer(source).to_string();
            match &progress {
                Progress::Stored => worker.metrics.jwks_fetch(&issuer, "success"),
                Progress::Failed => worker.metrics.jwks_fetch(&issuer, "failure"),
                Progress::FollowUp(_) | Progress::Unknown => {}
            }
        }
        if let Progress::FollowUp(fetch) = progress {
            self.dispatch(&worker, fetch);
        }
        self.poll();
    }
}

impl RootContext for WardenRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        super::logger::follow_host_level();
        let node = node_workload();
        // JSON (what Istio's WasmPlugin and Warden's ECDS files carry) is read in chunks,
        // keeping only the policies that can apply to this workload; a serialized
        // google.protobuf.Struct is read whole.
        let read = if abi::plugin_configuration_starts_with(size) == Some(b'{') {
            enforcer::read_plugin_config(|| abi::PluginConfigReader::new(size), node.as_ref())
        } else {
            match abi::plugin_configuration() {
                Ok(bytes) => enforcer::parse_plugin_config(&bytes).map(|config| (config, 0)),
                Err(error) => {
                    log::error!("warden: cannot read the plugin configuration ({error}): refused");
                    return false;
                }
            }
        };
        let (config, dropped) = match read {
            Ok(read) => read,
            Err(errors) => {
                log::error!("warden: configuration refused: {errors}");
                return false;
            }
        };
        if config.role == Role::Connection {
            return match enforcer::check_connection_role(&config) {
                Ok(()) => {
                    self.role = Role::Connection;
                    super::connection::declare_direct_peer_property();
                    log::info!(
                        "warden: network filter: hands each connection's direct peer address to \
                         the HTTP filter (for ipBlocks and source.ip)"
                    );
                    true
                }
                Err(errors) => {
                    log::error!("warden: configuration refused: {errors}");
                    false
                }
            };
        }
        let result = Enforcer::new(&config, node);
        match result {
            Ok(enforcer) => {
                let needs = enforcer.needs();
                log::info!(
                    "warden: configured for workload {} {:?}: {} resources ({dropped} others skipped: they select other workloads), {} applied policies, {} JWT rules; reads peer={} addresses={} port={} sni={}",
                    enforcer.workload().namespace,
                    enforcer.workload().labels,
                    enforcer.resource_count(),
                    enforcer.authz().policies().len(),
                    enforcer.authn().len(),
                    needs.peer,
                    needs.source_ip || needs.remote_ip || needs.destination_ip,
                    needs.destination_port,
                    needs.sni,
                );
                report_policies(&enforcer);
                if self.worker.is_none() {
                    VmMemory::root_started();
                }
                self.worker = Some(Rc::new(Worker::new(enforcer)));
                // The first fetch starts on the first tick, not here: Envoy also configures
                // short-lived VMs (on the main thread, at start) that are destroyed at once,
                // and a fetch started there would hold the shared lease for nothing.
                if !set_tick(BUSY_TICK) {
                    return false;
                }
                self.tick = BUSY_TICK;
                true
            }
            Err(errors) => {
                log::error!("warden: configuration refused: {errors}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.poll();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WardenHttp::new(context_id, self.worker.clone())))
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(WardenConnection))
    }

    /// Decided by the configuration's `role`: Envoy asks for a context of this type for every
    /// stream (HTTP filter) or connection (network filter).
    fn get_type(&self) -> Option<ContextType> {
        Some(match self.role {
            Role::Http => ContextType::HttpContext,
            Role::Connection => ContextType::StreamContext,
        })
    }
}

/// Says which policies the configuration ignores and which fail closed (logged at every
/// configuration, by every worker VM), and sets the `warden_policies` gauges.
fn report_policies(enforcer: &Enforcer) {
    for (object, why) in enforcer.ignored() {
        log::warn!("warden: {object} is ignored: {why}");
    }
    let mut fail_closed = 0;
    for (policy, why) in enforcer.unenforceable() {
        fail_closed += 1;
        log::warn!(
            "warden: AuthorizationPolicy {}/{} applies to this workload and fails closed: {why}",
            policy.namespace,
            policy.name
        );
    }
    let plugin = abi::property(&["plugin_name"])
        .and_then(|name| String::from_utf8(name).ok())
        .unwrap_or_else(|| "warden".to_string());
    let applied = enforcer.authz().policies().len() - fail_closed;
    super::metrics::configured_policies(&plugin, applied, fail_closed, enforcer.ignored().len());
}

/// Sets the tick period; without ticks no keys are fetched and no waiting request is resumed,
/// so a failure is logged (and, at configuration, refuses it).
fn set_tick(period: Duration) -> bool {
    match abi::set_tick_period(period) {
        Ok(()) => true,
        Err(error) => {
            log::error!("warden: cannot set the tick period ({error})");
            false
        }
    }
}

/// The workload as Istio's sidecars describe it in the node metadata.
fn node_workload() -> Option<Workload> {
    let namespace = abi::property(&["xds", "node", "metadata", "NAMESPACE"])?;
    let namespace = String::from_utf8(namespace).ok().filter(|ns| !ns.is_empty())?;
    let labels = abi::map_property(&["xds", "node", "metadata", "LABELS"]).unwrap_or_default();
    // Inserted one by one: collecting into a map compiles a stable sort for its entries' type.
    let mut workload = Workload { namespace, labels: Default::default() };
    for (name, value) in labels {
        workload.labels.insert(name, value);
    }
    Some(workload)
}
