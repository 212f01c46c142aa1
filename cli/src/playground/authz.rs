//! `warden playground authz`: the playground's external authorizer, an HTTP service that
//! CUSTOM policies call (`providers` in envoy/settings.yaml). It answers each check request
//! from what the caller asked for in the `x-authz` header, so tests can drive every outcome:
//!
//! - `x-authz: deny`: 403, body `the playground authorizer says no`, header `x-authz-reason`;
//! - `x-authz: error`: 500 (an authorizer failure: the sidecar answers `statusOnError`);
//! - `x-authz: slow`: waits 3 s before allowing (past the playground provider's timeout);
//! - otherwise 200, with `x-authz-checked` naming what the check carried (the verified peer
//!   and request principals, the path), which the provider hands upstream so the echo shows it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::http::{self, Reply, Request, Response};

/// The header a client sets to choose the answer.
pub const CHOICE: &str = "x-authz";

/// The answer to one check request.
pub fn decide(request: &Request) -> Response {
    let text = |name: &str| {
        request.header(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    };
    match text(CHOICE).as_str() {
        "deny" => {
            let mut response = Response::text(403, "the playground authorizer says no");
            response.headers.push(("x-authz-reason".into(), "asked to deny".into()));
            response
        }
        "error" => Response::text(500, "the playground authorizer failed"),
        choice => {
            if choice == "slow" {
                std::thread::sleep(Duration::from_secs(3));
            }
            let mut response = Response::text(200, "");
            let checked = format!(
                "peer={}; principal={}; path={}",
                text("x-warden-peer-principal"),
                text("x-warden-request-principal"),
                request.target
            );
            response.headers.push(("x-authz-checked".into(), checked));
            response
        }
    }
}

/// Serves forever on `listen`.
pub fn run(listen: std::net::SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    eprintln!("warden authz listening on {}", listener.local_addr()?);
    let handler: http::Handler = Arc::new(|request: &Request| Reply::Respond(decide(request)));
    http::serve(listener, handler).context("serving")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(headers: &[(&str, &str)]) -> Response {
        decide(&Request {
            method: "GET".into(),
            target: "/api/orders".into(),
            version: "HTTP/1.1",
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
            body: Vec::new(),
        })
    }

    #[test]
    fn the_caller_chooses_the_answer_and_an_allow_says_what_was_checked() {
        assert_eq!(check(&[("x-authz", "deny")]).status, 403);
        assert_eq!(check(&[("x-authz", "error")]).status, 500);
        let allowed = check(&[("x-warden-peer-principal", "spiffe://td/ns/web/sa/frontend")]);
        assert_eq!(allowed.status, 200);
        let checked = allowed.headers.iter().find(|(n, _)| n == "x-authz-checked").unwrap();
        assert_eq!(checked.1, "peer=spiffe://td/ns/web/sa/frontend; principal=; path=/api/orders");
    }
}
