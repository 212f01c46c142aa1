//! The two encodings tokens and key sets are made of, decoded strictly.
//!
//! - base64url (RFC 4648 §5) in its one canonical form: no padding, no whitespace, no
//!   characters of the standard alphabet, no non-zero trailing bits. A token has exactly one
//!   spelling, so the verified-token cache (keyed by the exact token) cannot be fed variants
//!   of one token, and nothing that Envoy's lenient decoder and ours read differently is
//!   accepted.
//! - JSON (RFC 8259) with duplicate member names refused (RFC 7515 §5.2 lets a JWS consumer
//!   refuse them, and two parsers that pick different duplicates disagree on the claims) and
//!   nesting bounded, so no input recurses deeply.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused in tokens and key sets. Real claims nest two or three
/// levels; the bound keeps the parser's recursion far from the wasm stack's limit.
pub(crate) const MAX_JSON_DEPTH: usize = 32;

/// Canonical unpadded base64url.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Decodes canonical unpadded base64url; `None` for anything else (including empty input,
/// which no JOSE member can usefully be).
pub(crate) fn base64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() {
        return None;
    }
    BASE64URL.decode(text).ok()
}

/// Encodes as unpadded base64url (the tests' tokens and keys; the module only decodes).
#[cfg(test)]
pub(crate) fn base64url_encode(bytes: &[u8]) -> String {
    BASE64URL.encode(bytes)
}

/// Parses one JSON document strictly: duplicate member names and nesting deeper than
/// [`MAX_JSON_DEPTH`] are errors, as are trailing characters.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { depth: 0 }.deserialize(&mut deserializer).map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Parses a JSON object strictly (see [`parse_json`]).
pub(crate) fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match parse_json(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err("not a JSON object".into()),
    }
}

/// A `serde_json::Value` builder that refuses duplicate keys and deep nesting.
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
}

impl Strict {
    fn nested<E: de::Error>(self) -> Result<Strict, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(E::custom(format!("JSON nested deeper than {MAX_JSON_DEPTH} levels")));
        }
        Ok(Strict { depth: self.depth + 1 })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate member {key:?}")));
            }
            let value = access.next_value_seed(inner)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// `len` pseudo-random bytes drawn from `alphabet` (xorshift64, so the inputs are the same on
/// every run): the "arbitrary input never panics" tests of several parsers share it.
#[cfg(test)]
pub(crate) fn random_bytes(seed: &mut u64, alphabet: &[u8], len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            alphabet[(*seed % alphabet.len() as u64) as usize]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn canonical_base64url_round_trips() {
        for bytes in [&b"a"[..], b"ab", b"abc", b"\xff\xfe\xfd\xfc", b"{\"alg\":\"RS256\"}"] {
            let text = base64url_encode(bytes);
            assert_eq!(base64url_decode(text.as_bytes()).as_deref(), Some(bytes));
        }
    }

    #[test]
    fn non_canonical_base64url_is_refused() {
        // "YQ" is "a"; "YR" has non-zero trailing bits and decodes to "a" leniently.
        assert_eq!(base64url_decode(b"YQ").as_deref(), Some(&b"a"[..]));
        for bad in [
            &b"YR"[..], // non-zero trailing bits
            b"YQ==",    // padding
            b"YQ=",     // partial padding
            b"Y Q",     // whitespace
            b"YQ\n",    // newline
            b"+/8",     // standard alphabet
            b"Y",       // impossible length
            b"",        // empty
            b"YQ.",     // a dot
        ] {
            assert_eq!(base64url_decode(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert!(parse_json(br#"{"a":1,"a":1}"#).is_err());
        assert!(parse_json(br#"{"x":{"a":1,"b":{"a":2,"a":3}}}"#).is_err());
        assert!(parse_json(br#"[{"a":1},{"a":2}]"#).is_ok());
        // Escapes spelling the same name are the same name.
        assert!(parse_json(br#"{"a":1,"\u0061":2}"#).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
        assert!(parse_json(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
        assert!(parse_json(deep.as_bytes()).is_err());
        let very_deep = "[".repeat(100_000);
        assert!(parse_json(very_deep.as_bytes()).is_err());
    }

    #[test]
    fn trailing_garbage_and_non_objects_are_refused() {
        assert!(parse_json(br#"{"a":1} x"#).is_err());
        assert!(parse_json(br#"{"a":1}{"b":2}"#).is_err());
        assert!(parse_json_object(b"[1]").is_err());
        assert!(parse_json_object(b"\"s\"").is_err());
        assert!(parse_json_object(br#" {"a":1} "#).is_ok());
        assert!(parse_json(b"{\"a\":\"\\ud800\"}").is_err(), "lone surrogate");
        assert!(parse_json(b"{\"a\":\"\xff\"}").is_err(), "invalid UTF-8");
    }
}
