//! The HTTP context: one per request; the worker does the work. Envoy enters it for the
//! request headers only: `make wasm` removes the other stream callbacks from the module
//! (filter/slim), so implementing another one here means listing it there.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::abi;
use super::worker::Worker;

pub struct WardenHttp {
    context_id: u32,
    worker: Option<Rc<Worker>>,
}

impl WardenHttp {
    pub fn new(context_id: u32, worker: Option<Rc<Worker>>) -> Self {
        WardenHttp { context_id, worker }
    }
}

impl Context for WardenHttp {
    /// An external authorizer's answer to a check this request sent.
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _: usize) {
        if let Some(worker) = &self.worker {
            worker.on_authorizer_response(token, headers, body_size);
        }
    }
}

/// The stream is gone (`proxy_on_delete`): forget it if it was waiting for keys. This is in
/// `Drop`, not `on_done`, because the module does not export `proxy_on_done` (filter/slim:
/// one call into the module fewer per request).
impl Drop for WardenHttp {
    fn drop(&mut self) {
        if let Some(worker) = &self.worker {
            worker.forget(self.context_id);
        }
    }
}

impl HttpContext for WardenHttp {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        match &self.worker {
            Some(worker) => worker.on_request(self.context_id).0,
            // No valid configuration was ever accepted: fail closed.
            None => {
                let _ = abi::send_local_response(
                    503,
                    "warden_not_configured",
                    b"warden: no valid configuration",
                    &[],
                    None,
                );
                Action::Pause
            }
        }
    }
}
