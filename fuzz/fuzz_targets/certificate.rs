//! The peer certificate as Envoy hands it over (PEM), and the DER inside: every SAN read or a
//! clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::certificate::{parse_der, parse_pem};

fuzz_target!(|data: &[u8]| {
    let _ = parse_pem(data);
    let _ = parse_der(data);
});
