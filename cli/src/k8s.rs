//! Reading Kubernetes YAML as a user keeps it: files or directories, several documents per file
//! (`---`), `kind: List` wrappers (what `kubectl get -o yaml` prints), JSON files, and `-` for
//! standard input.
//!
//! Every document keeps where it came from (file and 1-based document number), so errors and
//! warnings can point at it. Nothing here knows about Istio: [`crate::compile`] picks the kinds.

use std::fmt;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

/// Documents larger than this are refused: a policy file is kilobytes; a multi-megabyte one is
/// a mistake (or an attempt to exhaust the tool) rather than a configuration.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file (`-` for standard input).
    pub path: PathBuf,
    /// 1-based position of the document in the file (after `kind: List` expansion, the
    /// position of the list; `item` says which element).
    pub document: usize,
    /// The element of a `kind: List`, 0-based.
    pub item: Option<usize>,
    /// 1-based line where the document's content starts (0 when unknown).
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {}", self.path.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        write!(f, ")")
    }
}

/// One Kubernetes object, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where it came from.
    pub origin: Origin,
    /// The object.
    pub value: Value,
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or directory could not be read.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the system said (shown in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path}: larger than {MAX_FILE_BYTES} bytes; refusing to read it")]
    TooLarge {
        /// The file.
        path: String,
    },
}

/// A document that is not valid YAML (or has no JSON form, such as a mapping used as a key).
/// The other documents of its file are still read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct SyntaxError {
    /// Where the document is.
    pub origin: Origin,
    /// The parser's message, with the line and column in the file.
    pub message: String,
}

/// What [`load`] read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every object, in file and document order.
    pub documents: Vec<Document>,
    /// Documents that did not parse.
    pub syntax_errors: Vec<SyntaxError>,
    /// How many files were read.
    pub files: usize,
}

/// Reads every document of every path. Directories are read recursively, their `.yaml`, `.yml`
/// and `.json` files in name order (hidden files and directories skipped), so output is
/// deterministic. Empty documents are dropped. A document that does not parse is reported in
/// [`Loaded::syntax_errors`] and the others are still read; only a file that cannot be read at
/// all is an error.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    let add = |path: &Path, text: &str, loaded: &mut Loaded| {
        let (documents, errors) = parse_all(path, text);
        loaded.documents.extend(documents);
        loaded.syntax_errors.extend(errors);
        loaded.files += 1;
    };
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_FILE_BYTES + 1)
                .read_to_string(&mut text)
                .map_err(|cause| LoadError::Io { path: "-".into(), cause })?;
            if text.len() as u64 > MAX_FILE_BYTES {
                return Err(LoadError::TooLarge { path: "-".into() });
            }
            add(path, &text, &mut loaded);
            continue;
        }
        for file in files(path)? {
            let io = |cause| LoadError::Io { path: file.display().to_string(), cause };
            let size = fs::metadata(&file).map_err(io)?.len();
            if size > MAX_FILE_BYTES {
                return Err(LoadError::TooLarge { path: file.display().to_string() });
            }
            let text = fs::read_to_string(&file).map_err(io)?;
            add(&file, &text, &mut loaded);
        }
    }
    Ok(loaded)
}

/// Splits one file's text into documents; the first syntax error is an error.
#[cfg(test)]
pub fn parse(path: &Path, text: &str) -> Result<Vec<Document>, SyntaxError> {
    let (documents, mut errors) = parse_all(path, text);
    match errors.is_empty() {
        true => Ok(documents),
        false => Err(errors.swap_remove(0)),
    }
}

/// Splits one file's text into documents, reading past documents that do not parse.
///
/// The text is cut at `---` marker lines first (a marker at the start of a line always ends
/// the document before it: YAML forbids one inside a scalar), and each part is parsed on its
/// own, so a syntax error costs one document rather than the rest of the file.
pub fn parse_all(path: &Path, text: &str) -> (Vec<Document>, Vec<SyntaxError>) {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    let mut number = 0;
    for part in split_documents(text) {
        let origin =
            |number, item, line| Origin { path: path.to_path_buf(), document: number, item, line };
        let line = part.first_content_line();
        let before = number;
        for document in serde_yaml_ng::Deserializer::from_str(part.text) {
            number += 1;
            let value = match Value::deserialize(document) {
                Ok(value) => value,
                Err(error) => {
                    errors.push(SyntaxError {
                        origin: origin(number, None, line),
                        message: part.message(&error),
                    });
                    // The parser cannot resume inside a broken part: the next part is next.
                    break;
                }
            };
            match value {
                Value::Null => {}
                Value::Object(mut object)
                    if object.get("kind").and_then(Value::as_str) == Some("List")
                        && object.get("items").is_some_and(Value::is_array) =>
                {
                    // Moved out, not copied: a list can hold a whole mesh.
                    let items = match object.remove("items") {
                        Some(Value::Array(items)) => items,
                        _ => Vec::new(),
                    };
                    for (item, value) in items.into_iter().enumerate() {
                        documents
                            .push(Document { origin: origin(number, Some(item), line), value });
                    }
                }
                value => documents.push(Document { origin: origin(number, None, line), value }),
            }
        }
        // A marker starts a document even when nothing follows it (`---` then `---`).
        if number == before {
            number += 1;
        }
    }
    (documents, errors)
}

/// A part of a file between `---` markers.
struct Part<'a> {
    text: &'a str,
    /// Lines of the file before `text` starts.
    lines_before: usize,
}

impl Part<'_> {
    fn first_content_line(&self) -> usize {
        let skip = self
            .text
            .lines()
            .position(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#')
            })
            .unwrap_or(0);
        self.lines_before + skip + 1
    }

    /// The parser's message with the line numbers of the file (the part is parsed again behind
    /// as many empty lines as precede it: this happens only for a broken document).
    fn message(&self, error: &serde_yaml_ng::Error) -> String {
        if self.lines_before == 0 {
            return error.to_string();
        }
        let padded = format!("{}{}", "\n".repeat(self.lines_before), self.text);
        for document in serde_yaml_ng::Deserializer::from_str(&padded) {
            if let Err(error) = Value::deserialize(document) {
                return error.to_string();
            }
        }
        error.to_string()
    }
}

/// Cuts `text` at lines that are a `---` document marker (alone, or followed by a space and
/// content such as `--- {a: 1}`). The part before the first marker is kept only if it holds
/// more than comments and directives.
fn split_documents(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut lines_before = 0;
    let mut offset = 0;
    let mut first = true;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if marker {
            let before = text.get(start..offset).unwrap_or_default();
            let has_content = before.lines().any(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#') && !l.starts_with('%')
            });
            if !first || has_content {
                parts.push(Part { text: before, lines_before });
            }
            first = false;
            start = offset + 3;
            lines_before = index;
        }
        offset += line.len();
    }
    let rest = text.get(start..).unwrap_or_default();
    let has_content = rest.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    });
    if !first || has_content {
        parts.push(Part { text: rest, lines_before });
    }
    parts
}

fn files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |cause| LoadError::Io { path: path.display().to_string(), cause };
    if !fs::metadata(path).map_err(io)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    let mut out = Vec::new();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            out.extend(files(&entry)?);
        } else if [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext)) {
            out.push(entry);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs(text: &str) -> Vec<Document> {
        parse(Path::new("p.yaml"), text).unwrap()
    }

    #[test]
    fn multi_document_files_keep_their_document_numbers() {
        let found = docs("a: 1\n---\n---\nb: 2\n");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].value, json!({"a": 1}));
        assert_eq!(found[1].origin.document, 3, "empty documents still count");
        assert_eq!(found[1].origin.to_string(), "p.yaml (document 3)");
    }

    #[test]
    fn lists_are_expanded_with_item_positions() {
        let found = docs("kind: List\nitems:\n- kind: A\n- kind: B\n");
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].value, json!({"kind": "B"}));
        assert_eq!(found[1].origin.item, Some(1));
        assert_eq!(found[1].origin.to_string(), "p.yaml (document 1, items[1])");
    }

    #[test]
    fn json_documents_are_read_too() {
        assert_eq!(docs(r#"{"kind": "X", "spec": {}}"#)[0].value, json!({"kind": "X", "spec": {}}));
    }

    #[test]
    fn broken_yaml_names_the_document_and_line() {
        let error = parse(Path::new("bad.yaml"), "a: 1\n---\nb: [1,\n").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("bad.yaml (document 2): "), "{text}");
        assert!(text.contains("line"), "{text}");
    }

    #[test]
    fn a_broken_document_does_not_hide_the_next_ones() {
        let text = "a: 1\n---\nb: [1,\nc: 2\n---\n# comment\nd: 4\n---\ne: {\n";
        let (documents, errors) = parse_all(Path::new("p.yaml"), text);
        let found: Vec<(usize, usize)> =
            documents.iter().map(|d| (d.origin.document, d.origin.line)).collect();
        assert_eq!(found, [(1, 1), (3, 7)]);
        let broken: Vec<usize> = errors.iter().map(|e| e.origin.document).collect();
        assert_eq!(broken, [2, 4]);
        // Line numbers are the file's, not the document's.
        assert!(errors[0].message.contains("line 3 column 4"), "{}", errors[0].message);
        assert!(
            errors[1].message.contains("line 9") || errors[1].message.contains("line 10"),
            "{}",
            errors[1].message
        );
    }

    #[test]
    fn markers_with_content_and_leading_comments_count_as_yaml_does() {
        let (documents, errors) =
            parse_all(Path::new("p.yaml"), "# header\n--- {a: 1}\n--- \nb: 2\n...\n");
        assert!(errors.is_empty(), "{errors:?}");
        let found: Vec<(usize, Value)> =
            documents.into_iter().map(|d| (d.origin.document, d.value)).collect();
        assert_eq!(found, [(1, json!({"a": 1})), (2, json!({"b": 2}))]);
    }

    /// sigs.k8s.io/yaml (what kubectl uses) turns non-string keys into their string form
    /// (`convertToJSONableObject` in yaml.go); reading a file as kubectl does means the same.
    #[test]
    fn non_string_keys_become_strings_as_kubectl_reads_them() {
        assert_eq!(docs("{1: a, true: b}\n")[0].value, json!({"1": "a", "true": "b"}));
    }

    #[test]
    fn directories_are_read_recursively_in_name_order_skipping_other_files() {
        let dir = std::env::temp_dir().join(format!("warden-k8s-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::create_dir_all(dir.join(".hidden")).unwrap();
        fs::write(dir.join("b.yaml"), "n: b\n").unwrap();
        fs::write(dir.join("a.yml"), "n: a\n").unwrap();
        fs::write(dir.join("sub/c.json"), "{\"n\": \"c\"}").unwrap();
        fs::write(dir.join("notes.txt"), "n: ignored\n").unwrap();
        fs::write(dir.join(".hidden/d.yaml"), "n: hidden\n").unwrap();
        let names: Vec<Value> = load(std::slice::from_ref(&dir))
            .unwrap()
            .documents
            .into_iter()
            .map(|d| d.value["n"].clone())
            .collect();
        assert_eq!(names, vec![json!("a"), json!("b"), json!("c")]);
        assert!(matches!(load(&[dir.join("missing.yaml")]), Err(LoadError::Io { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }
}
