//! Key sets and OpenID discovery documents as an identity provider (or an attacker in its
//! place) serves them, and inline key sets as configured.

use warden::authn::{parse_fetched_jwks, parse_jwks, parse_openid_configuration};

pub fn run(data: &[u8]) {
    let inline = parse_jwks(data);
    let fetched = parse_fetched_jwks(data);
    // A key set usable as configured is usable when fetched (fetching only drops more keys).
    if let Ok(set) = &inline {
        assert!(fetched.is_ok() || set.is_empty(), "inline ok, fetched refused: {fetched:?}");
    }
    let _ = parse_openid_configuration(data);
}
