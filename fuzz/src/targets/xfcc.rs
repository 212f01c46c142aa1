//! `x-forwarded-client-cert` values as a client (or a proxy in front) sends them.

pub fn run<'a>(data: &'a [u8]) {
    let Some(values) = super::typed::<Vec<&'a [u8]>>(data) else { return };
    let _ = warden::xfcc::current_peer(values.iter().copied());
}
