//! A token as a client sends it (any bytes, at any location): extraction, parsing and
//! verification against the fixed key set, with both signature backends and the cache agreeing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_fuzz::{check_both_ways, request_with_token, Location};

fuzz_target!(|input: (Location, &[u8])| {
    let (location, token) = input;
    check_both_ways(&request_with_token(token, location));
});
