//! The peer certificate as Envoy hands it over (PEM), and the DER inside: every SAN read or a
//! clear error, never a panic.

use warden::certificate::{parse_der, parse_pem};

pub fn run(data: &[u8]) {
    let _ = parse_pem(data);
    let _ = parse_der(data);
}
