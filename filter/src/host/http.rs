//! The HTTP context: one per request; the worker does the work.

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
    fn on_done(&mut self) -> bool {
        if let Some(worker) = &self.worker {
            worker.on_done(self.context_id);
        }
        true
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
