//! Every host call Warden makes while handling a request, as typed results.
//!
//! The proxy-wasm Rust SDK's helpers turn header names and values into `String` with `unwrap`
//! (a non-UTF-8 byte would trap the VM), panic on any status they do not expect, and declare
//! host functions as returning the `Status` enum, which is undefined behaviour for a status
//! the enum lacks. These wrappers declare the ABI with raw `u32` statuses, use byte buffers,
//! and turn every status into a value. Nothing here panics. The SDK still dispatches the
//! callbacks and sends the key fetches (`dispatch_http_call`, which registers the callout its
//! dispatcher routes the answer by); its remaining assertions check that the host keeps the
//! ABI's contract, and nothing a request, token, key set or configuration carries reaches them.

// The SDK declares the same imports with its `Status` enum as return type; ours return the raw
// `u32` on purpose (see above).
#![allow(clashing_extern_declarations)]

use std::net::IpAddr;
use std::ptr::{null, null_mut};

use proxy_wasm::types::MapType;

use crate::config::wire;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: MapType, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: MapType, key: *const u8, key_size: usize) -> u32;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name: *const u8,
        name_size: usize,
        id: *mut u32,
    ) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        results: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
}

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
/// proxy-wasm `StreamType::Request`.
const STREAM_REQUEST: u32 = 0;
/// proxy-wasm `MetricType::Counter`.
const METRIC_COUNTER: u32 = 0;
const METRIC_GAUGE: u32 = 1;

/// proxy-wasm `BufferType::HttpCallResponseBody`.
const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
/// proxy-wasm `BufferType::PluginConfiguration`.
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

/// A host call that did not succeed: the raw proxy-wasm status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host call failed with status {}", self.0)
    }
}

fn check(status: u32) -> Result<(), HostError> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Takes ownership of a buffer the host allocated through the module's allocator.
///
/// # Safety
/// `data` must be null or a buffer of `size` bytes the host allocated with
/// `proxy_on_memory_allocate`, not owned by anything else.
unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: per the contract above.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// The request headers as one serialized pairs buffer (one host call for all of them);
/// decode with [`wire::pairs`].
pub fn request_header_map() -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals; the host fills them with a buffer it gives us.
    let status =
        unsafe { proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) };
    check(status)?;
    // SAFETY: the host just allocated it for us.
    Ok(unsafe { owned(data, size) })
}

/// Removes every value of a request header.
pub fn remove_request_header(name: &str) -> Result<(), HostError> {
    // SAFETY: pointer/length of a live string.
    check(unsafe {
        proxy_remove_header_map_value(MapType::HttpRequestHeaders, name.as_ptr(), name.len())
    })
}

/// Sets a request header (replacing every value).
pub fn replace_request_header(name: &str, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointer/length of live buffers.
    check(unsafe {
        proxy_replace_header_map_value(
            MapType::HttpRequestHeaders,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// One header of an HTTP call's response (the `:status` of a JWKS fetch).
pub fn http_call_response_header(name: &str) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as in `request_header_map`.
    let status = unsafe {
        proxy_get_header_map_value(
            MapType::HttpCallResponseHeaders,
            name.as_ptr(),
            name.len(),
            &mut data,
            &mut size,
        )
    };
    // SAFETY: as in `request_header_map`.
    (status == OK).then(|| unsafe { owned(data, size) })
}

/// Every header of an HTTP call's response (an external authorizer's answer), as a pairs
/// buffer; decode with [`wire::pairs`].
pub fn http_call_response_header_map() -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as in `request_header_map`.
    let status = unsafe {
        proxy_get_header_map_pairs(MapType::HttpCallResponseHeaders, &mut data, &mut size)
    };
    check(status)?;
    // SAFETY: as in `request_header_map`.
    Ok(unsafe { owned(data, size) })
}

/// `source.address`, serialized for [`property_path`].
pub const SOURCE_ADDRESS: &str = "source\0address";
/// `connection.id`, serialized for [`property_path`].
const CONNECTION_ID: &str = "connection\0id";

/// A property's raw bytes; `None` when absent or unreadable.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    property_path(&path.join("\0"))
}

/// [`property`] with the path already serialized (`part\0part`), for the request path.
pub fn property_path(serialized: &str) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as in `request_header_map`.
    let status =
        unsafe { proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size) };
    match status {
        // SAFETY: as in `request_header_map`.
        OK if !data.is_null() => Some(unsafe { owned(data, size) }),
        OK | NOT_FOUND => None,
        other => {
            log::debug!(
                "warden: property {} unreadable: status {other}",
                serialized.replace('\0', ".")
            );
            None
        }
    }
}

/// Envoy's id of the current stream's downstream connection (unique within the process).
pub fn connection_id() -> Option<u64> {
    let raw = property_path(CONNECTION_ID)?;
    let bytes: [u8; 8] = raw.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Stores a string in filter state (`set_property`), which access logs read as
/// `%FILTER_STATE(wasm.<key>:PLAIN)%`.
pub fn set_filter_state(key: &str, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointer/length of live buffers.
    check(unsafe { proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) })
}

/// An `ip:port` address property (`source.address`, `destination.address`) as its IP.
pub fn ip_property(path: &[&str]) -> Option<IpAddr> {
    crate::request::ip_of_address(&property(path)?)
}

/// A port property, which Envoy encodes as a little-endian 64-bit integer.
pub fn port_property(path: &[&str]) -> Option<u16> {
    let raw = property(path)?;
    let bytes: [u8; 8] = raw.get(..8)?.try_into().ok()?;
    u16::try_from(i64::from_le_bytes(bytes)).ok()
}

/// A map-valued property (such as the node metadata's `LABELS`) as UTF-8 pairs; pairs that are
/// not UTF-8 are skipped (Kubernetes labels are ASCII).
pub fn map_property(path: &[&str]) -> Option<Vec<(String, String)>> {
    let raw = property(path)?;
    let pairs = wire::pairs(&raw)?;
    Some(
        pairs
            .into_iter()
            .filter_map(|(k, v)| {
                Some((String::from_utf8(k.to_vec()).ok()?, String::from_utf8(v.to_vec()).ok()?))
            })
            .collect(),
    )
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
    // SAFETY: every pointer/length pair describes a live buffer for the duration of the call.
    check(unsafe {
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
    })
}

/// Resumes the (paused) request of the effective context.
pub fn resume_request() -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_continue_stream(STREAM_REQUEST) })
}

/// Makes `context_id` the context later host calls act on (for requests resumed from the root
/// context). Fails when that request is gone.
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// The host's wall clock, in milliseconds since the epoch.
pub fn now_millis() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: out-pointer to a local.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == OK {
        nanos / 1_000_000
    } else {
        0
    }
}

/// Defines (or finds) a counter.
pub fn define_counter(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: pointer/length of a live string, out-pointer to a local.
    let status = unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

/// Defines (or finds) a gauge by its full name.
pub fn define_gauge(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: pointer/length of a live string, out-pointer to a local.
    let status = unsafe { proxy_define_metric(METRIC_GAUGE, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

/// Adds one to a counter.
pub fn increment(metric_id: u32) {
    add(metric_id, 1);
}

/// Adds `offset` (negative to subtract, for a gauge) to a metric.
pub fn add(metric_id: u32, offset: i64) {
    // SAFETY: no pointers. A failure only loses a count.
    let _ = unsafe { proxy_increment_metric(metric_id, offset) };
}

/// Sets a gauge.
pub fn record(metric_id: u32, value: u64) {
    // SAFETY: no pointers. A failure only loses a reading.
    let _ = unsafe { proxy_record_metric(metric_id, value) };
}

/// Calls a foreign function the host registered (Envoy's `verify_signature`).
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: pointer/length pairs of live buffers; out-pointers to locals.
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    check(status)?;
    // SAFETY: as in `request_header_map`.
    Ok(unsafe { owned(data, size) })
}

/// Shared data of the VM id: the value and its CAS token (`(None, 0)` when absent).
pub fn get_shared_data(key: &str) -> (Option<Vec<u8>>, u32) {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: pointer/length of a live string; out-pointers to locals.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    if status == OK {
        // SAFETY: as in `request_header_map`.
        (Some(unsafe { owned(data, size) }), cas)
    } else {
        (None, 0)
    }
}

/// Stores shared data if `cas` still matches (0: unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> bool {
    // SAFETY: pointer/length pairs of live buffers.
    let status =
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) };
    status == OK
}

/// Writes to Envoy's log at a proxy-wasm level (0 trace … 5 critical). A failure loses the line.
pub fn log(level: u32, message: &str) {
    // SAFETY: pointer/length of a live string.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Envoy's log level for Wasm (0 trace … 5 critical).
pub fn log_level() -> Option<u32> {
    let mut level = 0u32;
    // SAFETY: out-pointer to a local.
    let status = unsafe { proxy_get_log_level(&mut level) };
    (status == OK).then_some(level)
}

/// Asks for `on_tick` every `period` (zero stops the ticks).
pub fn set_tick_period(period: std::time::Duration) -> Result<(), HostError> {
    let millis = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(millis) })
}

fn buffer(buffer_type: u32, max_size: usize) -> Result<Vec<u8>, HostError> {
    buffer_at(buffer_type, 0, max_size)
}

fn buffer_at(buffer_type: u32, start: usize, max_size: usize) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals; the host fills them with a buffer it gives us.
    let status =
        unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut size) };
    match status {
        // SAFETY: as in `request_header_map`.
        OK => Ok(unsafe { owned(data, size) }),
        // Envoy answers NotFound for an empty buffer.
        NOT_FOUND => Ok(Vec::new()),
        other => Err(HostError(other)),
    }
}

/// The plugin configuration (in `on_configure`).
pub fn plugin_configuration() -> Result<Vec<u8>, HostError> {
    buffer(BUFFER_PLUGIN_CONFIGURATION, usize::MAX)
}

/// The plugin configuration read in chunks (a whole mesh's configuration is never held at once:
/// the core keeps only what applies as it reads).
pub struct PluginConfigReader {
    offset: usize,
    size: usize,
}

impl PluginConfigReader {
    /// A reader of the `size` bytes `on_configure` announced.
    pub fn new(size: usize) -> Self {
        PluginConfigReader { offset: 0, size }
    }
}

/// Bytes asked of Envoy at a time.
const CHUNK: usize = 64 * 1024;

impl std::io::Read for PluginConfigReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let want = out.len().min(CHUNK).min(self.size.saturating_sub(self.offset));
        if want == 0 {
            return Ok(0);
        }
        let chunk = buffer_at(BUFFER_PLUGIN_CONFIGURATION, self.offset, want)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let n = chunk.len().min(want);
        if n == 0 {
            return Ok(0);
        }
        out.get_mut(..n)
            .ok_or_else(|| std::io::Error::other("short buffer"))?
            .copy_from_slice(chunk.get(..n).unwrap_or_default());
        self.offset += n;
        Ok(n)
    }
}

/// The first non-blank byte of the plugin configuration (`{` for JSON).
pub fn plugin_configuration_starts_with(size: usize) -> Option<u8> {
    let head = buffer_at(BUFFER_PLUGIN_CONFIGURATION, 0, size.min(256)).ok()?;
    head.into_iter().find(|b| !b.is_ascii_whitespace())
}

/// At most `max_size` bytes of the body of the HTTP call being answered.
pub fn http_call_response_body(max_size: usize) -> Result<Vec<u8>, HostError> {
    buffer(BUFFER_HTTP_CALL_RESPONSE_BODY, max_size)
}
