//! Which field a deserialization error is in (`rules[0].to[0].operation.methods`), found by
//! reading the JSON text up to the position where serde_json stopped.
//!
//! Why not a path-tracking deserializer (serde_path_to_error, which Warden used first): it wraps
//! every visitor, so every schema type is compiled a second time (12 % of the module before
//! `wasm-opt`, 72 KiB of `warden.wasm` after), and the module's size is V8 code every sidecar
//! compiles, about 35 bytes of its memory per byte (benches/README.md, "Where the floor goes").
//! Errors are rare; reading the text again when one happens costs nothing on the paths that
//! matter.

/// The field path at serde_json's error position (`line`, 1-based; `column`, the bytes read on
/// that line), or `""` when the error is in the top-level value itself.
pub fn path_at(text: &[u8], line: usize, column: usize) -> String {
    path_before(text, offset(text, line, column))
}

/// [`path_at`] for an error from serde_json's reader over an `io::Read`, which counts a byte it
/// has only peeked at: the delimiter that ends a number, the `[` or `{` of a value of the wrong
/// type. Its position is then one byte past a slice reader's, and the path read up to there
/// would take that delimiter for the end of the object or a new element. `reread` reads a
/// prefix of `text` with the same reader and returns its error. Why not read `text` again from
/// a slice: that compiles serde_json's reader and whatever it deserializes a second time (37 KB
/// of code before `wasm-opt` when the plugin configuration was derived).
pub fn path_at_stream_error(
    text: &[u8],
    error: &serde_json::Error,
    reread: &dyn Fn(&[u8]) -> Option<serde_json::Error>,
) -> String {
    let at = offset(text, error.line(), error.column()).min(text.len());
    let before = at.saturating_sub(1);
    let peeked = match text.get(before).filter(|_| at > 0) {
        // Once consumed, a `[` or `{` is always followed by a peek at what comes next, so a
        // data error whose position ends on one was raised while only peeking at it.
        Some(b'[' | b'{') => error.is_data(),
        // Where the last byte was only peeked at (the end of a number), the text without it
        // gives the same error; where it was read (the `}` after which a field is missing, the
        // byte a syntax error is about), the text without it ends too early, or reads.
        Some(b) if !b.is_ascii_digit() => text
            .get(..before)
            .and_then(reread)
            .is_some_and(|again| !again.is_eof() && message(&again) == message(error)),
        _ => false,
    };
    path_before(text, if peeked { before } else { at })
}

/// The field path of the value being read at byte `end` of `text`.
fn path_before(text: &[u8], end: usize) -> String {
    let mut frames: Vec<Frame> = Vec::new();
    let end = end.min(text.len());
    let mut at = 0;
    while at < end {
        let Some(&byte) = text.get(at) else { break };
        match byte {
            b'{' => {
                start_value(&mut frames);
                frames.push(Frame::Object { key: None, after_colon: false });
            }
            b'[' => {
                start_value(&mut frames);
                frames.push(Frame::Array { index: 0, started: false });
            }
            b'}' | b']' => {
                frames.pop();
            }
            b',' => match frames.last_mut() {
                Some(Frame::Object { key, after_colon }) => {
                    *key = None;
                    *after_colon = false;
                }
                Some(Frame::Array { index, started }) => {
                    *index += 1;
                    *started = false;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { after_colon, .. }) = frames.last_mut() {
                    *after_colon = true;
                }
            }
            b'"' => {
                let close = string_end(text, at);
                if let Some(Frame::Object { key: key @ None, after_colon: false }) =
                    frames.last_mut()
                {
                    let raw = text.get(at..close.min(text.len())).unwrap_or_default();
                    *key = Some(unquote(raw));
                } else {
                    start_value(&mut frames);
                }
                at = close;
                continue;
            }
            b if b.is_ascii_whitespace() => {}
            _ => start_value(&mut frames),
        }
        at += 1;
    }
    // An error reported just before a value (an element of the wrong type) is about that value.
    let next = text.get(end..).unwrap_or_default().iter().find(|b| !b.is_ascii_whitespace());
    if !matches!(next, None | Some(b']' | b',')) {
        start_value(&mut frames);
    }
    let mut path = String::new();
    for frame in &frames {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Array { index, started: true } => path.push_str(&format!("[{index}]")),
            _ => {}
        }
    }
    path
}

enum Frame {
    Object { key: Option<String>, after_colon: bool },
    Array { index: usize, started: bool },
}

/// A value starts: in an array, that element is now the one being read.
fn start_value(frames: &mut [Frame]) {
    if let Some(Frame::Array { started, .. }) = frames.last_mut() {
        *started = true;
    }
}

/// The offset just past the string opening at `open` (or the end of the text).
fn string_end(text: &[u8], open: usize) -> usize {
    let mut at = open + 1;
    while let Some(&byte) = text.get(at) {
        match byte {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    text.len()
}

/// A key as written, its escapes decoded when they decode.
fn unquote(raw: &[u8]) -> String {
    serde_json::from_slice::<String>(raw).unwrap_or_else(|_| {
        String::from_utf8_lossy(raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default())
            .into_owned()
    })
}

/// serde_json's position as a byte offset: the start of line `line`, plus `column` bytes.
fn offset(text: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text.get(start..).and_then(|rest| rest.iter().position(|&b| b == b'\n')) {
            Some(newline) => start += newline + 1,
            None => return text.len(),
        }
    }
    start.saturating_add(column)
}

/// serde_json's message without the position it appends (` at line 1 column 42`).
pub fn message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) if error.line() > 0 => message.to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Spec {
        rules: Vec<Rule>,
        #[serde(default)]
        action: Option<Action>,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        #[serde(default)]
        methods: Vec<String>,
        #[serde(default)]
        inner: Option<Inner>,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    enum Action {
        Allow,
    }

    fn path(text: &str) -> String {
        let error = serde_json::from_str::<Spec>(text).unwrap_err();
        path_at(text.as_bytes(), error.line(), error.column())
    }

    #[test]
    fn names_the_field_each_kind_of_error_is_in() {
        // The wrong type, as an element and as a field.
        assert_eq!(path(r#"{"rules":[{"methods":["GET",5]}]}"#), "rules[0].methods[1]");
        assert_eq!(path(r#"{"rules":[{},{"methods":[5]}]}"#), "rules[1].methods[0]");
        assert_eq!(path(r#"{"rules":[{"methods":"GET"}]}"#), "rules[0].methods");
        assert_eq!(path(r#"{"rules":7}"#), "rules");
        // An unknown field is named.
        assert_eq!(path(r#"{"rules":[{"method":["GET"]}]}"#), "rules[0].method");
        // A missing field: the object it is missing from.
        assert_eq!(path(r#"{"rules":[{"inner":{}}]}"#), "rules[0].inner");
        assert_eq!(path(r#"{}"#), "");
        // An unknown variant, with pretty-printed text and escaped keys on the way.
        let pretty = "{\n  \"rules\": [\n    {\"inner\": {\"name\": \"a\\\"b\"}}\n  ],\n  \"action\": \"DENY\"\n}";
        assert_eq!(path(pretty), "action");
        assert_eq!(path("{\"rules\":[],\"act\\u0069on\":1}"), "action");
    }

    #[test]
    fn any_position_in_any_text_gives_a_path() {
        for text in ["", "{", "[[[", "\"", "{\"a", "{\"a\":[1,", "}}]]"] {
            for column in 0..8 {
                path_at(text.as_bytes(), 1, column);
                path_at(text.as_bytes(), 3, column);
            }
        }
    }

    #[test]
    fn the_message_loses_only_its_position() {
        let error = serde_json::from_str::<Spec>(r#"{"rules":7}"#).unwrap_err();
        assert_eq!(message(&error), "invalid type: integer `7`, expected a sequence");
    }
}
