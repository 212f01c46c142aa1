//! The playground's helper services: the stand-in application behind each sidecar
//! ([`echo`]), the JWT issuer ([`issuer`]) and the external authorizer CUSTOM policies call
//! ([`authz`]), all on a tiny HTTP/1.1 server ([`http`]).
//!
//! They exist for the local mesh (`e2e/mesh.sh`, `docker-compose.yaml`) and its tests; they
//! listen on loopback addresses and are not hardened for anything else.

pub mod authz;
pub mod echo;
pub mod http;
pub mod issuer;
