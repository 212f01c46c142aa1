//! Reading a mesh-wide configuration without parsing what does not apply.
//!
//! Every VM of every sidecar reads the whole configuration (Envoy hands it over in chunks), and
//! serde_json's streaming reader takes one byte at a time through its generic machinery: for a
//! mesh of 10,000 policies that was most of a sidecar's time to its first answer. Here the text
//! is cut into its top-level members and `policies` into its objects by a scanner that only
//! follows strings and brackets; each object is then read by serde_json from its own bytes
//! (only its head for the scope, all of it when kept), and the other members are handed to
//! serde_json as a small document. Anything the scanner does not expect (a syntax error, an
//! escaped key, a duplicate `policies`) gives up: the caller then reads the text with serde_json
//! alone, which reports exactly what is wrong. The scanner decides no policy: a wrong cut can
//! only produce text that serde_json refuses, and a policy whose head does not read is kept, to
//! be validated in full.

use std::io::Read;

use serde_json::value::RawValue;

/// What the skim read: the members other than `policies` as a JSON object, the policies kept,
/// and how many were dropped.
pub struct Skimmed {
    /// `{…}` with every top-level member but `policies`, as written.
    pub settings: Vec<u8>,
    /// The policies `keep` accepted, each as written.
    pub policies: Vec<Box<RawValue>>,
    /// How many policies `keep` refused.
    pub dropped: usize,
}

/// Reads `reader`'s configuration, keeping the policies `keep` accepts (given each one's text).
/// `None`: the text is not what this reads; read it with serde_json instead.
pub fn skim(reader: impl Read, keep: impl FnMut(&[u8]) -> bool) -> Option<Skimmed> {
    skim_by(reader, keep, 64 * 1024)
}

fn skim_by(
    reader: impl Read,
    mut keep: impl FnMut(&[u8]) -> bool,
    chunk: usize,
) -> Option<Skimmed> {
    let mut s = Scanner { reader, buf: vec![0; chunk], at: 0, len: 0 };
    let mut settings = vec![b'{'];
    let mut policies = Vec::new();
    let mut dropped = 0;
    let mut seen_policies = false;
    let mut element = Vec::new();
    s.require(b'{')?;
    if s.peek_non_blank()? == b'}' {
        s.next()?;
    } else {
        loop {
            let key = s.key()?;
            s.require(b':')?;
            if key == b"policies" {
                if seen_policies {
                    return None;
                }
                seen_policies = true;
                s.require(b'[')?;
                if s.peek_non_blank()? == b']' {
                    s.next()?;
                } else {
                    loop {
                        element.clear();
                        s.value(&mut element)?;
                        // serde_json refuses the document when a policy it buffers as raw text
                        // is not UTF-8; skipping an object's fields does not look at the bytes.
                        std::str::from_utf8(&element).ok()?;
                        if keep(&element) {
                            policies.push(serde_json::from_slice::<Box<RawValue>>(&element).ok()?);
                        } else {
                            dropped += 1;
                        }
                        match s.next_non_blank()? {
                            b',' => {}
                            b']' => break,
                            _ => return None,
                        }
                    }
                }
            } else {
                if settings.len() > 1 {
                    settings.push(b',');
                }
                settings.push(b'"');
                settings.extend_from_slice(&key);
                settings.extend_from_slice(b"\":");
                s.value(&mut settings)?;
            }
            match s.next_non_blank()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    // Nothing but blanks after the object.
    if s.peek_non_blank().is_some() {
        return None;
    }
    settings.push(b'}');
    std::str::from_utf8(&settings).ok()?;
    Some(Skimmed { settings, policies, dropped })
}

/// A byte stream over a reader, refilled a buffer at a time.
struct Scanner<R> {
    reader: R,
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl<R: Read> Scanner<R> {
    fn peek(&mut self) -> Option<u8> {
        if self.at == self.len {
            self.len = loop {
                match self.reader.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return None,
                }
            };
            self.at = 0;
        }
        self.buf.get(self.at).copied().filter(|_| self.at < self.len)
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn peek_non_blank(&mut self) -> Option<u8> {
        loop {
            match self.peek()? {
                b' ' | b'\t' | b'\n' | b'\r' => self.at += 1,
                byte => return Some(byte),
            }
        }
    }

    fn next_non_blank(&mut self) -> Option<u8> {
        let byte = self.peek_non_blank()?;
        self.at += 1;
        Some(byte)
    }

    fn require(&mut self, byte: u8) -> Option<()> {
        (self.next_non_blank()? == byte).then_some(())
    }

    /// An object key without escapes (a key with one gives up).
    fn key(&mut self) -> Option<Vec<u8>> {
        self.require(b'"')?;
        let mut key = Vec::new();
        loop {
            match self.next()? {
                b'"' => return Some(key),
                b'\\' => return None,
                byte => key.push(byte),
            }
        }
    }

    /// One value, appended to `out` as written: strings and brackets followed, brackets
    /// matched, anything else copied up to the next delimiter. A buffer at a time: this loop
    /// is what a sidecar spends reading a mesh.
    fn value(&mut self, out: &mut Vec<u8>) -> Option<()> {
        if !matches!(self.peek_non_blank()?, b'{' | b'[' | b'"') {
            // A number or a literal: serde_json checks it.
            while let Some(byte) = self.peek() {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                out.push(byte);
                self.at += 1;
            }
            return Some(());
        }
        let mut open: Vec<u8> = Vec::new();
        let (mut in_string, mut escaped) = (false, false);
        loop {
            self.peek()?;
            let chunk = self.buf.get(self.at..self.len)?;
            let mut end = None;
            let mut i = 0;
            while let Some(&byte) = chunk.get(i) {
                if in_string {
                    if escaped {
                        escaped = false;
                        i += 1;
                        continue;
                    }
                    // Most of a policy is inside strings: jump to the next quote or escape.
                    let Some(skip) =
                        chunk.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                    else {
                        // The string goes on in the next buffer.
                        break;
                    };
                    i += skip;
                    if chunk.get(i) == Some(&b'\\') {
                        escaped = true;
                    } else {
                        in_string = false;
                        if open.is_empty() {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    i += 1;
                    continue;
                }
                i += 1;
                match byte {
                    b'"' => in_string = true,
                    b'{' => open.push(b'}'),
                    b'[' => open.push(b']'),
                    b'}' | b']' => {
                        if open.pop() != Some(byte) {
                            return None;
                        }
                        if open.is_empty() {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let taken = end.unwrap_or(chunk.len());
            out.extend_from_slice(chunk.get(..taken)?);
            self.at += taken;
            if end.is_some() {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn skimmed(text: &str, keep: impl Fn(&Value) -> bool) -> Option<(Value, Vec<Value>, usize)> {
        // A tiny buffer: every value crosses refills.
        let skimmed =
            skim_by(text.as_bytes(), |bytes| keep(&serde_json::from_slice(bytes).unwrap()), 3)?;
        let settings = serde_json::from_slice(&skimmed.settings).unwrap();
        let kept =
            skimmed.policies.iter().map(|p| serde_json::from_str(p.get()).unwrap()).collect();
        Some((settings, kept, skimmed.dropped))
    }

    #[test]
    fn cuts_the_members_and_the_policies_as_serde_json_reads_them() {
        let text = r#" {"trustDomain": "a\"b}]", "policies": [ {"n": 1, "s": "x]}\\"}, {"n": 2, "l": [[], {}]},
            {"n": 3} ], "workload": {"namespace": "api", "labels": {}}, "n": -1.5e3, "b": true} "#;
        let (settings, kept, dropped) = skimmed(text, |p| p["n"] != 2).unwrap();
        assert_eq!(
            settings,
            json!({"trustDomain": "a\"b}]", "workload": {"namespace": "api", "labels": {}},
                   "n": -1.5e3, "b": true})
        );
        assert_eq!(kept, [json!({"n": 1, "s": "x]}\\"}), json!({"n": 3})]);
        assert_eq!(dropped, 1);
        assert_eq!(skimmed(r#"{}"#, |_| true).unwrap().0, json!({}));
        assert_eq!(skimmed(r#"{"policies": []}"#, |_| true).unwrap().2, 0);
    }

    #[test]
    fn gives_up_on_what_it_does_not_read() {
        for text in [
            "",
            "[]",
            r#"{"policies": [{"a": 1}"#,
            r#"{"policies": [{"a": 1]]}"#,
            r#"{"policies": [], "policies": []}"#,
            r#"{"polic\u0069es": []}"#,
            r#"{"policies": [{"a": "unterminated}]}"#,
            r#"{"a": 1} trailing"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
        ] {
            assert!(skim(text.as_bytes(), |_| true).is_none(), "{text}");
        }
        // A policy that is not JSON inside balanced brackets: not kept as RawValue.
        assert!(skim(r#"{"policies": [{"a": }]}"#.as_bytes(), |_| true).is_none());
        // Bytes that are not UTF-8, in a policy dropped unread (found by the config fuzz target).
        assert!(skim(&b"{\"policies\": [{\"a\": \"G\x92T\"}]}"[..], |_| false).is_none());
    }
}
