//! A token as a client sends it (any bytes, at any location): extraction, parsing and
//! verification against the fixed key set, with both signature backends and the cache agreeing.

use crate::{check_both_ways, request_with_token, Location};

pub fn run<'a>(data: &'a [u8]) {
    let Some(input) = super::typed::<(Location, &'a [u8])>(data) else { return };
    let (location, token) = input;
    check_both_ways(&request_with_token(token, location));
}
