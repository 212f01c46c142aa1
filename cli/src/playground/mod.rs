//! The playground's helper services: the stand-in application behind each sidecar
//! ([`echo`]) and the JWT issuer ([`issuer`]), both on a tiny HTTP/1.1 server ([`http`]).
//!
//! They exist for the local mesh (`e2e/mesh.sh`, `docker-compose.yaml`) and its tests; they
//! listen on loopback addresses and are not hardened for anything else.

pub mod echo;
pub mod http;
pub mod issuer;
