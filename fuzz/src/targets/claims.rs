//! Tokens with a valid signature over any header and payload: what a holder of a trusted key
//! (or a forger who found one) can make the claim checks, claim headers and authorization read.
//! Without signing here, the fuzzer would almost never get past the signature. HMAC keys sign
//! (an RSA signature costs milliseconds: 100 executions a second); the RSA and ECDSA paths of
//! both backends are pinned by the conformance suites and reached here through `token`.

use crate::support::{b64, sign, By};
use crate::{check_both_ways, request_with_token, Location};
use arbitrary::Arbitrary;
use warden::authn::Algorithm;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    location: Location,
    alg: u8,
    header: &'a [u8],
    payload: &'a [u8],
    /// Flip one bit of the signature (`None`: keep it valid).
    flip: Option<u16>,
}

const ALGS: [Algorithm; 3] = [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512];

pub fn run<'a>(data: &'a [u8]) {
    let Some(input) = super::typed::<Input<'a>>(data) else { return };
    let alg = ALGS[usize::from(input.alg) % ALGS.len()];
    let signing_input = format!("{}.{}", b64(input.header), b64(input.payload));
    let mut signature = sign(alg, By::Trusted, signing_input.as_bytes());
    if let Some(bit) = input.flip {
        let i = usize::from(bit / 8) % signature.len();
        signature[i] ^= 1 << (bit % 8);
    }
    let token = format!("{signing_input}.{}", b64(&signature));
    check_both_ways(&request_with_token(token.as_bytes(), input.location));
}
