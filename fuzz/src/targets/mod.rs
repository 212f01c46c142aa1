//! The fuzz targets' bodies. libFuzzer runs them through `fuzz_targets/<name>.rs`; the corpus
//! replay (`tests/corpus.rs`, part of `make test`) runs them on stable Rust without libFuzzer,
//! so every committed input, regressions included, is checked on every change.

use arbitrary::{Arbitrary, Unstructured};

pub mod certificate;
pub mod claims;
pub mod config;
pub mod decide;
pub mod jwks;
pub mod policy;
pub mod token;
pub mod xfcc;

/// Every target, under the name `cargo fuzz list` gives it (its corpus directory's name).
pub const ALL: &[(&str, fn(&[u8]))] = &[
    ("certificate", certificate::run),
    ("claims", claims::run),
    ("config", config::run),
    ("decide", decide::run),
    ("jwks", jwks::run),
    ("policy", policy::run),
    ("token", token::run),
    ("xfcc", xfcc::run),
];

/// A typed input built from the bytes exactly as libfuzzer-sys's `fuzz_target!` builds it
/// (`arbitrary_take_rest`; no input when that fails), so a corpus file replays as it ran.
fn typed<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}
