//! How Envoy hands data to the module, decoded without trusting it.
//!
//! - The plugin `configuration`: a `google.protobuf.StringValue` arrives as its string (Warden
//!   expects JSON there, which is what Istio's `WasmPlugin.pluginConfig` becomes); a
//!   `google.protobuf.Struct` arrives as the **serialized protobuf message** (measured on Envoy
//!   1.40: not JSON), which [`plugin_configuration`] decodes into the same JSON value.
//! - proxy-wasm "pairs" maps (header maps, map-valued properties such as the node's `LABELS`):
//!   `u32 count`, then `count × (u32 key length, u32 value length)`, then each key and value
//!   followed by a NUL byte.

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused (a configuration, not an attack surface, but the
/// decoder must not recurse without bound on any input).
const MAX_DEPTH: usize = 64;

/// Decodes the plugin configuration: JSON text, or a serialized `google.protobuf.Struct`.
pub fn plugin_configuration(bytes: &[u8]) -> Result<Value, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Ok(Value::Object(Map::new())),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}")),
        Some(_) => decode_struct(bytes, 0)
            .map(Value::Object)
            .map_err(|e| format!("neither JSON nor a serialized google.protobuf.Struct: {e}")),
    }
}

/// The plugin configuration as JSON text, without building a document tree when it already is
/// JSON (the form Istio's `WasmPlugin` and Warden's ECDS files use): a serialized
/// `google.protobuf.Struct` is decoded and written out as JSON.
pub fn plugin_configuration_json(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Ok(std::borrow::Cow::Borrowed(b"{}")),
        Some(b'{') => Ok(std::borrow::Cow::Borrowed(bytes)),
        Some(_) => {
            let value = decode_struct(bytes, 0).map_err(|e| {
                format!("neither JSON nor a serialized google.protobuf.Struct: {e}")
            })?;
            serde_json::to_vec(&value).map(std::borrow::Cow::Owned).map_err(|e| e.to_string())
        }
    }
}

/// Decodes a proxy-wasm pairs map. Malformed input yields `None`, never a panic.
pub fn pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let count = read_u32(bytes, 0)? as usize;
    // Each pair needs at least 8 bytes of sizes and 2 NULs: refuse counts the input cannot hold.
    if count > bytes.len() / 10 + 1 {
        return None;
    }
    let mut sizes_at = 4usize;
    let mut data_at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = read_u32(bytes, sizes_at)? as usize;
        let value_len = read_u32(bytes, sizes_at + 4)? as usize;
        sizes_at += 8;
        let (key, next) = terminated(bytes, data_at, key_len)?;
        let (value, next) = terminated(bytes, next, value_len)?;
        data_at = next;
        out.push((key, value));
    }
    Some(out)
}

/// Encodes a proxy-wasm pairs map (the inverse of [`pairs`]).
pub fn encode_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let count = pairs.clone().count();
    let mut out = Vec::with_capacity(4 + count * 8);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (key, value) in pairs.clone() {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// `len` bytes at `at`, which must be followed by a NUL; returns them and the offset after it.
fn terminated(bytes: &[u8], at: usize, len: usize) -> Option<(&[u8], usize)> {
    let end = at.checked_add(len)?;
    let slice = bytes.get(at..end)?;
    (bytes.get(end) == Some(&0)).then_some((slice, end + 1))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

/// A protobuf reader over one message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at).ok_or("truncated varint")?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let raw = self.take(8)?;
                let raw: [u8; 8] = raw.try_into().map_err(|_| "truncated fixed64")?;
                Field::Fixed64(u64::from_le_bytes(raw))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((number, field)))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).ok_or("length overflow")?;
        let slice = self.bytes.get(self.at..end).ok_or("truncated field")?;
        self.at = end;
        Ok(slice)
    }
}

fn decode_struct(bytes: &[u8], depth: usize) -> Result<Map<String, Value>, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let mut map = Map::new();
    let mut reader = Reader::new(bytes);
    while let Some((number, field)) = reader.next()? {
        // `map<string, Value> fields = 1`: each entry is a message {1: key, 2: value}.
        if let (1, Field::Bytes(entry)) = (number, field) {
            let mut key = String::new();
            let mut value = Value::Null;
            let mut entry = Reader::new(entry);
            while let Some((n, f)) = entry.next()? {
                match (n, f) {
                    (1, Field::Bytes(k)) => {
                        key = String::from_utf8(k.to_vec()).map_err(|_| "key is not UTF-8")?
                    }
                    (2, Field::Bytes(v)) => value = decode_value(v, depth + 1)?,
                    _ => {}
                }
            }
            map.insert(key, value);
        }
    }
    Ok(map)
}

fn decode_value(bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let mut value = Value::Null;
    let mut reader = Reader::new(bytes);
    while let Some((number, field)) = reader.next()? {
        value = match (number, field) {
            (1, Field::Varint(_)) => Value::Null,
            (2, Field::Fixed64(bits)) => {
                let float = f64::from_bits(bits);
                // Whole numbers become JSON integers, as they were written in the YAML.
                if float.fract() == 0.0 && float.abs() < 9.007_199_254_740_992e15 {
                    Value::Number(Number::from(float as i64))
                } else {
                    Number::from_f64(float).map(Value::Number).ok_or("number is not finite")?
                }
            }
            (3, Field::Bytes(s)) => {
                Value::String(String::from_utf8(s.to_vec()).map_err(|_| "string is not UTF-8")?)
            }
            (4, Field::Varint(b)) => Value::Bool(b != 0),
            (5, Field::Bytes(s)) => Value::Object(decode_struct(s, depth + 1)?),
            (6, Field::Bytes(list)) => {
                let mut items = Vec::new();
                let mut list = Reader::new(list);
                while let Some((n, f)) = list.next()? {
                    if let (1, Field::Bytes(item)) = (n, f) {
                        items.push(decode_value(item, depth + 1)?);
                    }
                }
                Value::Array(items)
            }
            _ => value,
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Encodes a JSON value as a serialized `google.protobuf.Struct`, the way Envoy does.
    fn encode_struct(map: &Map<String, Value>) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in map {
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, k.as_bytes());
            put_bytes(&mut entry, 2, &encode_value(v));
            put_bytes(&mut out, 1, &entry);
        }
        out
    }

    fn encode_value(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match value {
            Value::Null => out.extend([0x08, 0x00]),
            Value::Number(n) => {
                out.push(0x11);
                out.extend(n.as_f64().unwrap_or_default().to_le_bytes());
            }
            Value::String(s) => put_bytes(&mut out, 3, s.as_bytes()),
            Value::Bool(b) => out.extend([0x20, u8::from(*b)]),
            Value::Object(m) => put_bytes(&mut out, 5, &encode_struct(m)),
            Value::Array(items) => {
                let mut list = Vec::new();
                for item in items {
                    put_bytes(&mut list, 1, &encode_value(item));
                }
                put_bytes(&mut out, 6, &list);
            }
        }
        out
    }

    fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
        out.push(field << 3 | 2);
        let mut len = bytes.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(bytes);
    }

    #[test]
    fn struct_round_trips_to_the_same_json() {
        let config = json!({
            "rootNamespace": "istio-system",
            "policies": [{"kind": "AuthorizationPolicy", "spec": {"rules": [{}], "x": null}}],
            "ratio": 1.5, "count": 3, "on": true, "nested": {"deep": [[1, "a"], {}]}
        });
        let bytes = encode_struct(config.as_object().expect("object"));
        assert_eq!(plugin_configuration(&bytes), Ok(config));
    }

    #[test]
    fn json_text_is_read_as_json() {
        assert_eq!(plugin_configuration(b" {\"a\": 1}"), Ok(json!({"a": 1})));
        assert_eq!(plugin_configuration(b""), Ok(json!({})));
        assert!(plugin_configuration(b"{not json").is_err());
    }

    #[test]
    fn truncated_or_garbage_struct_is_an_error_not_a_panic() {
        let bytes = encode_struct(json!({"key": {"a": [1, 2, 3]}}).as_object().expect("object"));
        for cut in 1..bytes.len() {
            let _ = plugin_configuration(&bytes[..cut]);
        }
        assert!(plugin_configuration(&[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err());
        assert!(plugin_configuration(&[0x0f]).is_err());
    }

    #[test]
    fn deeply_nested_struct_is_refused() {
        let mut value = json!("leaf");
        for _ in 0..200 {
            value = json!({ "k": value });
        }
        let bytes = encode_struct(value.as_object().expect("object"));
        assert!(plugin_configuration(&bytes).is_err());
    }

    #[test]
    fn pairs_decode_and_refuse_malformed_input() {
        let bytes = b"\x02\x00\x00\x00\x03\x00\x00\x00\x07\x00\x00\x00\x07\x00\x00\x00\x02\x00\x00\x00app\0backend\0version\0v1\0";
        assert_eq!(
            pairs(bytes),
            Some(vec![(&b"app"[..], &b"backend"[..]), (&b"version"[..], &b"v1"[..])])
        );
        for cut in 0..bytes.len() {
            assert_eq!(pairs(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(pairs(b"\xff\xff\xff\xff"), None);
        let decoded = pairs(bytes).expect("valid");
        assert_eq!(encode_pairs(decoded.iter().copied()), bytes.to_vec());
    }
}
