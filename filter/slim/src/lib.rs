//! Keeps only the proxy-wasm callbacks Warden handles in `warden.wasm`.
//!
//! Envoy calls a module's `proxy_on_*` export for every stream event it has one for, and skips
//! the events it has none for. The Rust SDK exports every callback (its dispatcher forwards
//! them to trait defaults), so an unmodified module is entered for response headers, response
//! body, access logging and more on every request, about a quarter of a microsecond each under
//! V8, for nothing. `make wasm` runs this over the built module: it rewrites the export section
//! and leaves every other byte as it was.
//!
//! [`CALLBACKS`] is the contract with `filter/src/host/`: a callback implemented there but not
//! listed here would never be called.

use std::fmt;

/// The `proxy_on_*` exports Warden's glue handles (`filter/src/host/{root,http,connection}.rs`).
/// Per request that is `proxy_on_context_create`, `proxy_on_request_headers` and
/// `proxy_on_delete` (cleanup is in `Drop`, so `proxy_on_done` is not needed); per connection,
/// for the network filter (`role: connection`), `proxy_on_context_create`,
/// `proxy_on_new_connection` and `proxy_on_delete`.
pub const CALLBACKS: &[&str] = &[
    "proxy_on_memory_allocate",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_request_headers",
    "proxy_on_new_connection",
    "proxy_on_tick",
    "proxy_on_http_call_response",
    "proxy_on_delete",
];

/// Why a module could not be rewritten.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlimError {
    /// Not a WebAssembly binary module (version 1).
    #[error("not a WebAssembly module (no \\0asm version 1 header)")]
    NotWasm,
    /// A section or export entry runs past the end of the module.
    #[error("truncated {0} at byte {1}")]
    Truncated(&'static str, usize),
    /// A LEB128 number longer than 5 bytes.
    #[error("malformed LEB128 number at byte {0}")]
    BadNumber(usize),
    /// An export name that is not UTF-8.
    #[error("export name at byte {0} is not UTF-8")]
    BadName(usize),
    /// A listed callback the module does not export: the list and the glue disagree.
    #[error(
        "the module does not export {0}: is it Warden, and is filter/slim's CALLBACKS up to date?"
    )]
    Missing(String),
}

/// What [`slim`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Callbacks kept.
    pub kept: Vec<String>,
    /// Callbacks removed.
    pub removed: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kept {} proxy-wasm callbacks ({}); removed {}",
            self.kept.len(),
            self.kept.join(", "),
            self.removed.len()
        )
    }
}

const HEADER: &[u8] = b"\0asm\x01\0\0\0";
const EXPORT_SECTION: u8 = 7;
const FUNCTION_EXPORT: u8 = 0;

/// Rewrites `module` so that its only `proxy_on_*` function exports are those in `keep`; every
/// other export (memory, `_initialize`, `proxy_abi_version_*`, …) and section stays. Every name
/// in `keep` must be exported, so a renamed callback cannot be lost silently.
pub fn slim(module: &[u8], keep: &[&str]) -> Result<(Vec<u8>, Report), SlimError> {
    if module.get(..HEADER.len()) != Some(HEADER) {
        return Err(SlimError::NotWasm);
    }
    let mut out = Vec::with_capacity(module.len());
    out.extend_from_slice(HEADER);
    let mut report = Report::default();
    let mut at = HEADER.len();
    while at < module.len() {
        let id = module[at];
        let (size, body_at) = leb128(module, at + 1)?;
        let body = module
            .get(body_at..body_at.saturating_add(size as usize))
            .ok_or(SlimError::Truncated("section", at))?;
        if id == EXPORT_SECTION {
            let body = exports(body, body_at, keep, &mut report)?;
            out.push(id);
            push_leb128(&mut out, body.len() as u32);
            out.extend_from_slice(&body);
        } else {
            out.extend_from_slice(&module[at..body_at + body.len()]);
        }
        at = body_at + body.len();
    }
    if let Some(missing) = keep.iter().find(|name| !report.kept.iter().any(|k| k == *name)) {
        return Err(SlimError::Missing((*missing).to_string()));
    }
    Ok((out, report))
}

/// The export section's body without the unwanted callbacks. `base` is its offset in the
/// module, for error messages.
fn exports(
    body: &[u8],
    base: usize,
    keep: &[&str],
    report: &mut Report,
) -> Result<Vec<u8>, SlimError> {
    let (count, mut at) = leb128(body, 0)?;
    let mut kept: Vec<&[u8]> = Vec::new();
    for _ in 0..count {
        let start = at;
        let (len, name_at) = leb128(body, at).map_err(|e| offset(e, base))?;
        let name_end = name_at.saturating_add(len as usize);
        let name = body.get(name_at..name_end).ok_or(SlimError::Truncated("export", base + at))?;
        let name = std::str::from_utf8(name).map_err(|_| SlimError::BadName(base + name_at))?;
        let kind = *body.get(name_end).ok_or(SlimError::Truncated("export", base + at))?;
        let (_, end) = leb128(body, name_end + 1).map_err(|e| offset(e, base))?;
        at = end;
        let callback = kind == FUNCTION_EXPORT && name.starts_with("proxy_on_");
        if callback && !keep.contains(&name) {
            report.removed.push(name.to_string());
        } else {
            if callback {
                report.kept.push(name.to_string());
            }
            kept.push(&body[start..end]);
        }
    }
    if at != body.len() {
        return Err(SlimError::Truncated("export section", base + at));
    }
    let mut out = Vec::with_capacity(body.len());
    push_leb128(&mut out, kept.len() as u32);
    for entry in kept {
        out.extend_from_slice(entry);
    }
    Ok(out)
}

fn offset(error: SlimError, base: usize) -> SlimError {
    match error {
        SlimError::BadNumber(at) => SlimError::BadNumber(base + at),
        SlimError::Truncated(what, at) => SlimError::Truncated(what, base + at),
        other => other,
    }
}

/// An unsigned LEB128 u32 at `at`: its value and the offset after it.
fn leb128(bytes: &[u8], at: usize) -> Result<(u32, usize), SlimError> {
    let mut value = 0u32;
    for i in 0..5 {
        let byte = *bytes.get(at + i).ok_or(SlimError::Truncated("number", at))?;
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, at + i + 1));
        }
    }
    Err(SlimError::BadNumber(at))
}

fn push_leb128(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with a type section, the given exports (name, kind, index) and a custom
    /// section after them.
    fn module(exports: &[(&str, u8, u32)]) -> Vec<u8> {
        let mut m = HEADER.to_vec();
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type section: one () -> ()
        let mut body = Vec::new();
        push_leb128(&mut body, exports.len() as u32);
        for (name, kind, index) in exports {
            push_leb128(&mut body, name.len() as u32);
            body.extend_from_slice(name.as_bytes());
            body.push(*kind);
            push_leb128(&mut body, *index);
        }
        m.push(EXPORT_SECTION);
        push_leb128(&mut m, body.len() as u32);
        m.extend_from_slice(&body);
        m.extend_from_slice(&[0, 5, 4, b'n', b'o', b't', b'e']); // custom section "note"
        m
    }

    #[test]
    fn removes_only_unlisted_callbacks() {
        let input = module(&[
            ("memory", 2, 0),
            ("_initialize", 0, 1),
            ("proxy_abi_version_0_2_1", 0, 2),
            ("proxy_on_request_headers", 0, 3),
            ("proxy_on_response_headers", 0, 4),
            ("proxy_on_log", 0, 5),
            ("proxy_on_delete", 0, 300),
        ]);
        let (out, report) = slim(&input, &["proxy_on_request_headers", "proxy_on_delete"]).unwrap();
        assert_eq!(
            out,
            module(&[
                ("memory", 2, 0),
                ("_initialize", 0, 1),
                ("proxy_abi_version_0_2_1", 0, 2),
                ("proxy_on_request_headers", 0, 3),
                ("proxy_on_delete", 0, 300),
            ])
        );
        assert_eq!(report.kept, ["proxy_on_request_headers", "proxy_on_delete"]);
        assert_eq!(report.removed, ["proxy_on_response_headers", "proxy_on_log"]);
        // Idempotent.
        let (again, report) = slim(&out, &["proxy_on_request_headers", "proxy_on_delete"]).unwrap();
        assert_eq!(again, out);
        assert!(report.removed.is_empty());
    }

    #[test]
    fn a_listed_callback_the_module_lacks_is_an_error() {
        let input = module(&[("proxy_on_request_headers", 0, 3)]);
        assert_eq!(
            slim(&input, &["proxy_on_request_headers", "proxy_on_tick"]).unwrap_err(),
            SlimError::Missing("proxy_on_tick".into())
        );
    }

    #[test]
    fn broken_modules_are_refused_without_panicking() {
        assert_eq!(slim(b"\0asm\x02\0\0\0", &[]).unwrap_err(), SlimError::NotWasm);
        assert_eq!(slim(b"", &[]).unwrap_err(), SlimError::NotWasm);
        let good = module(&[("proxy_on_request_headers", 0, 3), ("proxy_on_log", 0, 4)]);
        // Every truncation and every single-byte corruption gets an answer, never a panic.
        for len in HEADER.len()..good.len() {
            let _ = slim(&good[..len], &["proxy_on_request_headers"]);
        }
        for i in HEADER.len()..good.len() {
            for byte in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = byte;
                let _ = slim(&bad, &["proxy_on_request_headers"]);
            }
        }
        let mut overlong = HEADER.to_vec();
        overlong.extend_from_slice(&[7, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(slim(&overlong, &[]).unwrap_err(), SlimError::BadNumber(9));
    }

    #[test]
    fn numbers_round_trip() {
        for value in [0, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut bytes = Vec::new();
            push_leb128(&mut bytes, value);
            assert_eq!(leb128(&bytes, 0).unwrap(), (value, bytes.len()));
        }
    }
}
