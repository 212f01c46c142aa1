//! The HTTP context: one per request.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::abi;
use crate::enforcer::Enforcer;

pub struct WardenHttp {
    enforcer: Option<Rc<Enforcer>>,
}

impl WardenHttp {
    pub fn new(enforcer: Option<Rc<Enforcer>>) -> Self {
        WardenHttp { enforcer }
    }
}

impl Context for WardenHttp {}

impl HttpContext for WardenHttp {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        // No configuration: fail closed.
        if self.enforcer.is_none() {
            let _ = abi::send_local_response(
                503,
                "warden_not_configured",
                b"warden: no valid configuration",
                &[],
                None,
            );
            return Action::Pause;
        }
        Action::Continue
    }
}
