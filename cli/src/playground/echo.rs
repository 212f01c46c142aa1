//! `warden playground echo`: the mesh's stand-in application. It answers every request with a
//! JSON description of what it received, so a test can see exactly what the sidecar forwarded:
//! headers Warden added (claims copied to headers), removed (forged copies, the token) or Envoy
//! set (`x-forwarded-client-cert`), and the path after normalization.
//!
//! ```json
//! {"service": "backend", "method": "GET", "path": "/api/orders?x=1", "version": "HTTP/1.1",
//!  "headers": [{"name": "host", "value": "..."}, ...], "body_bytes": 0}
//! ```
//!
//! Headers are listed in the order received, repeated ones included. A value that is not UTF-8
//! is shown with replacement characters (JSON strings cannot carry raw bytes).

use std::net::TcpListener;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::http::{self, Reply, Request, Response};

/// The JSON description of `request`.
pub fn describe(service: &str, request: &Request) -> Value {
    let headers: Vec<Value> = request
        .headers
        .iter()
        .map(|(name, value)| json!({"name": name, "value": String::from_utf8_lossy(value)}))
        .collect();
    json!({
        "service": service,
        "method": request.method,
        "path": request.target,
        "version": request.version,
        "headers": headers,
        "body_bytes": request.body.len(),
    })
}

/// Serves forever on `listen`, answering every request with [`describe`].
pub fn run(listen: std::net::SocketAddr, service: &str) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    eprintln!("warden echo {service:?} listening on {}", listener.local_addr()?);
    let service = service.to_string();
    let handler: http::Handler = Arc::new(move |request: &Request| {
        Reply::Respond(Response::json(200, &describe(&service, request)))
    });
    http::serve(listener, handler).context("serving")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_method_path_every_header_in_order_and_body_size() {
        let request = Request {
            method: "POST".into(),
            target: "/api/orders?id=1".into(),
            version: "HTTP/1.1",
            headers: vec![
                ("host".into(), b"backend".to_vec()),
                ("x-dup".into(), b"1".to_vec()),
                ("x-dup".into(), b"2".to_vec()),
                ("x-bin".into(), vec![0xff, b'a']),
            ],
            body: b"abc".to_vec(),
        };
        let described = describe("backend", &request);
        assert_eq!(described["service"], "backend");
        assert_eq!(described["path"], "/api/orders?id=1");
        assert_eq!(described["body_bytes"], 3);
        let names: Vec<&str> = described["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["host", "x-dup", "x-dup", "x-bin"]);
        assert_eq!(described["headers"][2]["value"], "2");
        assert_eq!(described["headers"][3]["value"], "\u{fffd}a");
    }
}
