//! One Istio object as JSON (any kind, any shape): validated, compiled for a workload, linted,
//! and deciding a few requests, indexed and exhaustively, with the same answer.

use warden::authz::{self, Mesh};
use warden::config::{self, Document, Resource, Workload};
use warden::request::OwnedRequest;

pub fn run(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(Document::Resource(resource)) = config::parse_document(&value) else { return };
    let Resource::AuthorizationPolicy(object) = *resource else { return };
    let mesh = Mesh::default();
    let Ok(policy) = authz::validate(&object, &mesh) else { return };
    let policies = [policy];
    let _ = authz::lint(&policies, &[]);
    let workload = Workload {
        namespace: object.metadata.namespace.clone(),
        labels: [("app".to_string(), "backend".to_string())].into_iter().collect(),
    };
    let engine = authz::compile(&policies, &workload, &mesh);
    let mut admin = OwnedRequest::default();
    admin.path = b"/admin/../x?y=1".to_vec();
    admin.headers.push((b"x-role".to_vec(), b"admin".to_vec()));
    for request in [OwnedRequest::default(), admin] {
        request.with(|r| {
            let decision = engine.decide(r, None);
            assert_eq!(decision, engine.decide_exhaustive(r, None));
            assert_eq!(engine.explain(r, None).decision, decision);
        });
    }
}
