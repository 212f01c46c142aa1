//! Signature verification with Envoy's BoringSSL: the `verify_signature` foreign function.
//!
//! RSA in V8-compiled Rust costs ~0.7 ms per RS256 token; the host does it in tens of µs. The
//! arguments and result encodings are host-independent and tested in `authn::verify`; this is
//! only the call. Whatever the host cannot do (an algorithm it lacks, a host without the
//! function, any host error) is `Unsupported`, and the core verifies it in pure Rust instead,
//! so both paths accept and reject the same tokens.

use std::cell::Cell;

use super::abi::{self, HostError};
use crate::authn::{
    host_crypto_request, host_crypto_result, Algorithm, SignatureVerifier, Verified, VerifyingKey,
};

/// proxy-wasm `NotFound`: the host has no such foreign function.
const NOT_FOUND: u32 = 1;

/// The host's `verify_signature`, remembering whether the host has it.
#[derive(Default)]
pub struct HostCrypto {
    missing: Cell<bool>,
}

impl SignatureVerifier for HostCrypto {
    fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyingKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Verified {
        if self.missing.get() {
            return Verified::Unsupported;
        }
        let Some(arguments) = host_crypto_request(alg, key, signing_input, signature) else {
            return Verified::Unsupported;
        };
        match abi::call_foreign_function("verify_signature", &arguments) {
            Ok(result) if host_crypto_result(&result) => Verified::Valid,
            Ok(_) => Verified::Invalid,
            Err(HostError(NOT_FOUND)) => {
                log::info!("warden: this Envoy has no verify_signature: verifying in the module");
                self.missing.set(true);
                Verified::Unsupported
            }
            Err(error) => {
                log::debug!("warden: verify_signature failed ({error}): verifying in the module");
                Verified::Unsupported
            }
        }
    }
}
