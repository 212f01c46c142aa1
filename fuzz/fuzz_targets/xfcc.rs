//! `x-forwarded-client-cert` values as a client (or a proxy in front) sends them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|values: Vec<&[u8]>| {
    let _ = warden::xfcc::current_peer(values.iter().copied());
});
