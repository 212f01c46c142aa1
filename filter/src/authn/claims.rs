//! What a verified token gives the rest of the request: the identity authorization reads,
//! audience matching, and the values copied into headers.

use serde_json::{Map, Value};

use crate::request::Identity;

use super::token::Claims;

/// Claims Istio always splits on spaces into lists (`normalize_payload_in_metadata`).
pub const ALWAYS_SPACE_DELIMITED: [&str; 2] = ["scope", "permission"];

/// An audience as Envoy compares it (`jwt_verify_lib` `CheckAudience`): without an `http://`
/// or `https://` prefix and without one trailing `/`.
pub(crate) fn sanitize_audience(audience: &str) -> &str {
    let audience = audience
        .strip_prefix("http://")
        .or_else(|| audience.strip_prefix("https://"))
        .unwrap_or(audience);
    audience.strip_suffix('/').unwrap_or(audience)
}

/// Whether the token's audiences are allowed: any configured (sanitized) audience equals any
/// of the token's; an empty configuration allows every token, one without `aud` included.
pub(crate) fn audiences_allowed(configured: &[String], token: &[String]) -> bool {
    configured.is_empty()
        || token.iter().any(|aud| {
            let aud = sanitize_audience(aud);
            configured.iter().any(|c| c == aud)
        })
}

/// The payload as authorization sees it: top-level string claims named in `split` (and
/// `scope`, `permission`) turned into lists of their space-separated, non-empty parts
/// (Envoy `normalize_payload_in_metadata`: top-level keys only, strings only).
pub(crate) fn normalize(payload: &Map<String, Value>, split: &[String]) -> Map<String, Value> {
    let mut claims = payload.clone();
    let names = ALWAYS_SPACE_DELIMITED.iter().copied().chain(split.iter().map(String::as_str));
    for name in names {
        if let Some(Value::String(text)) = claims.get(name) {
            let parts: Vec<Value> = text
                .split(' ')
                .filter(|part| !part.is_empty())
                .map(|part| Value::String(part.to_string()))
                .collect();
            claims.insert(name.to_string(), Value::Array(parts));
        }
    }
    claims
}

/// The identity of a verified token (`request.auth.*`).
pub(crate) fn identity(claims: &Claims, split: &[String]) -> Identity {
    Identity {
        issuer: claims.iss.clone().unwrap_or_default(),
        subject: claims.sub.clone(),
        claims: normalize(&claims.payload, split),
    }
}

/// The value `outputClaimToHeaders` copies, formatted as Envoy (`authenticator.cc`
/// `addJWTClaimToHeader`): the claim at a `.`-separated path; strings as they are, numbers as
/// integers when they are non-negative and integral below 2^64 (after Envoy's conversion to a
/// double) and as `%f` otherwise, booleans as `true`/`false`; absent claims, lists, objects,
/// `null` and empty strings give no header. Unlike Envoy, a string holding CR, LF or NUL gives
/// no header either: it cannot be a header value.
pub(crate) fn claim_header_value(payload: &Map<String, Value>, path: &[String]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut value = payload.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format_number(n.as_f64()?),
        _ => return None,
    };
    if text.is_empty() || text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return None;
    }
    Some(text)
}

/// Envoy's `convertClaimDoubleToString`.
fn format_number(value: f64) -> String {
    // 2^64 as a double: the first value Envoy prints as a double.
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    if !(0.0..TWO_POW_64).contains(&value) || value.fract() != 0.0 {
        // C++ std::to_string(double) is printf("%f").
        format!("{value:.6}")
    } else {
        format!("{}", value as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn audiences_are_sanitized_as_envoy() {
        // jwt_verify_lib src/check_audience_test.cc
        for configured in [
            "example_service",
            "http://example_service",
            "https://example_service/",
            "example_service/",
        ] {
            let configured = vec![sanitize_audience(configured).to_string()];
            for aud in [
                "example_service",
                "http://example_service",
                "https://example_service",
                "example_service/",
                "https://example_service/",
            ] {
                assert!(audiences_allowed(&configured, &[aud.to_string()]), "{configured:?} {aud}");
            }
            assert!(!audiences_allowed(&configured, &["example_service//".into()]));
            assert!(!audiences_allowed(&configured, &["ftp://example_service".into()]));
            assert!(!audiences_allowed(&configured, &["Example_service".into()]));
            assert!(!audiences_allowed(&configured, &[]));
        }
        assert!(audiences_allowed(&[], &[]));
        assert!(audiences_allowed(&[], &["anything".into()]));
        assert!(audiences_allowed(&["b".into()], &["a".into(), "b".into()]));
    }

    #[test]
    fn scope_and_permission_are_always_split() {
        let payload = json!({
            "scope": "read  write ",
            "permission": "admin",
            "roles": "a b",
            "custom": "x y",
            "nested": {"scope": "p q"},
            "list": ["a b"],
            "num": 1,
        });
        let out = normalize(
            payload.as_object().unwrap(),
            &["custom".into(), "num".into(), "missing".into()],
        );
        assert_eq!(out["scope"], json!(["read", "write"]));
        assert_eq!(out["permission"], json!(["admin"]));
        assert_eq!(out["roles"], json!("a b"));
        assert_eq!(out["custom"], json!(["x", "y"]));
        assert_eq!(out["nested"], json!({"scope": "p q"}));
        assert_eq!(out["list"], json!(["a b"]));
        assert_eq!(out["num"], json!(1));
        assert!(!out.contains_key("missing"));
        let empty = normalize(json!({"scope": ""}).as_object().unwrap(), &[]);
        assert_eq!(empty["scope"], json!([]));
    }

    #[test]
    fn claim_headers_format_as_envoy() {
        let payload = json!({
            "s": "text", "empty": "", "i": 42, "big": 12345678901234567890u64, "neg": -3,
            "f": 1.5, "huge": 1e20, "t": true, "no": false, "list": ["a"], "obj": {"a": {"b": "deep"}},
            "null": null, "bad": "a\r\nb", "zero": 0, "negzero": -0.0,
        });
        let payload = payload.as_object().unwrap();
        let get = |path: &str| {
            let path: Vec<String> = path.split('.').map(str::to_string).collect();
            claim_header_value(payload, &path)
        };
        assert_eq!(get("s").as_deref(), Some("text"));
        assert_eq!(get("empty"), None);
        assert_eq!(get("i").as_deref(), Some("42"));
        // Through a double, as Envoy's protobuf Struct holds numbers.
        assert_eq!(get("big").as_deref(), Some("12345678901234567168"));
        assert_eq!(get("neg").as_deref(), Some("-3.000000"));
        assert_eq!(get("f").as_deref(), Some("1.500000"));
        assert_eq!(get("huge").as_deref(), Some("100000000000000000000.000000"));
        assert_eq!(get("t").as_deref(), Some("true"));
        assert_eq!(get("no").as_deref(), Some("false"));
        assert_eq!(get("zero").as_deref(), Some("0"));
        assert_eq!(get("negzero").as_deref(), Some("0"));
        assert_eq!(get("list"), None);
        assert_eq!(get("obj"), None);
        assert_eq!(get("obj.a.b").as_deref(), Some("deep"));
        assert_eq!(get("obj.a.c"), None);
        assert_eq!(get("s.x"), None);
        assert_eq!(get("null"), None);
        assert_eq!(get("bad"), None);
        assert_eq!(get("missing"), None);
    }
}
