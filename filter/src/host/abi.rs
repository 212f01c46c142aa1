//! The host calls Warden makes, as typed results.
//!
//! The proxy-wasm Rust SDK's convenience getters turn header names and values into `String`
//! with `unwrap` (a non-UTF-8 byte would trap the VM) and panic on unexpected statuses; these
//! wrappers use the raw ABI and byte buffers instead, and turn every host status into an error
//! value. Nothing here panics.

use std::net::IpAddr;
use std::ptr::{null, null_mut};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, Status};

use crate::config::wire;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;

    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
}

/// A host call that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub Status);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host call failed: {:?}", self.0)
    }
}

/// The request headers as one serialized pairs buffer (one host call for all of them).
/// Decode with [`wire::pairs`]; the buffer owns the bytes the pairs borrow.
pub fn request_header_map() -> Result<Vec<u8>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a buffer it allocated through `proxy_on_memory_allocate` (the
    // module's allocator) and its size; ownership passes to us, as the ABI specifies.
    let status =
        unsafe { proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) };
    match status {
        Status::Ok if data.is_null() => Ok(Vec::new()),
        // SAFETY: see above; `data` was allocated with exactly `size` bytes.
        Status::Ok => Ok(unsafe { Vec::from_raw_parts(data, size, size) }),
        other => Err(HostError(other)),
    }
}

/// A local reply, with response-code details for access logs (the SDK passes none).
/// `grpc_status` makes Envoy answer a gRPC request with a trailers-only gRPC status.
pub fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[(&str, &[u8])],
    grpc_status: Option<u32>,
) -> Result<(), HostError> {
    let serialized = wire::encode_pairs(headers.iter().map(|(n, v)| (n.as_bytes(), *v)));
    let grpc = grpc_status.and_then(|s| i32::try_from(s).ok()).unwrap_or(-1);
    // SAFETY: every pointer/length pair describes a live buffer for the duration of the call;
    // the host copies what it needs.
    let status = unsafe {
        proxy_send_local_response(
            status,
            if details.is_empty() { null() } else { details.as_ptr() },
            details.len(),
            if body.is_empty() { null() } else { body.as_ptr() },
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            grpc,
        )
    };
    match status {
        Status::Ok => Ok(()),
        other => Err(HostError(other)),
    }
}

/// A property's raw bytes; `Ok(None)` when absent.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    hostcalls::get_property(path.to_vec()).map_err(HostError)
}

/// A string property (raw bytes, e.g. the peer's URI SAN).
pub fn bytes_property(path: &[&str]) -> Option<Vec<u8>> {
    property(path).ok().flatten()
}

/// An `ip:port` address property (`source.address`, `destination.address`) as its IP.
pub fn ip_property(path: &[&str]) -> Option<IpAddr> {
    let raw = bytes_property(path)?;
    crate::request::ip_of_address(&raw)
}

/// A port property, which Envoy encodes as a little-endian 64-bit integer.
pub fn port_property(path: &[&str]) -> Option<u16> {
    let raw = bytes_property(path)?;
    let bytes: [u8; 8] = raw.get(..8)?.try_into().ok()?;
    u16::try_from(i64::from_le_bytes(bytes)).ok()
}

/// A map-valued property (such as the node metadata's `LABELS`) as owned UTF-8 pairs; pairs
/// that are not UTF-8 are skipped (labels are ASCII in Kubernetes).
pub fn map_property(path: &[&str]) -> Option<Vec<(String, String)>> {
    let raw = bytes_property(path)?;
    let pairs = wire::pairs(&raw)?;
    Some(
        pairs
            .into_iter()
            .filter_map(|(k, v)| {
                Some((std::str::from_utf8(k).ok()?.to_string(), std::str::from_utf8(v).ok()?.to_string()))
            })
            .collect(),
    )
}
