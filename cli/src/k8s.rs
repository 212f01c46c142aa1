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

/// Why a file could not be read.
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
    /// A document is not valid YAML (or has no JSON form, such as a mapping used as a key).
    #[error("{path} (document {document}): {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based document number.
        document: usize,
        /// The parser's message, with line and column.
        message: String,
    },
}

/// Reads every document of every path. Directories are read recursively, their `.yaml`, `.yml`
/// and `.json` files in name order (hidden files and directories skipped), so output is
/// deterministic. Empty documents are dropped.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Document>, LoadError> {
    let mut documents = Vec::new();
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
            documents.extend(parse(path, &text)?);
            continue;
        }
        for file in files(path)? {
            let io = |cause| LoadError::Io { path: file.display().to_string(), cause };
            let size = fs::metadata(&file).map_err(io)?.len();
            if size > MAX_FILE_BYTES {
                return Err(LoadError::TooLarge { path: file.display().to_string() });
            }
            let text = fs::read_to_string(&file).map_err(io)?;
            documents.extend(parse(&file, &text)?);
        }
    }
    Ok(documents)
}

/// Splits one file's text into documents.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value = Value::deserialize(document).map_err(|e| LoadError::Syntax {
            path: path.display().to_string(),
            document: number,
            message: e.to_string(),
        })?;
        let origin = |item| Origin { path: path.to_path_buf(), document: number, item };
        match value {
            Value::Null => {}
            Value::Object(ref object)
                if object.get("kind").and_then(Value::as_str) == Some("List")
                    && object.get("items").is_some_and(Value::is_array) =>
            {
                let items = object.get("items").and_then(Value::as_array).cloned();
                for (item, value) in items.unwrap_or_default().into_iter().enumerate() {
                    documents.push(Document { origin: origin(Some(item)), value });
                }
            }
            value => documents.push(Document { origin: origin(None), value }),
        }
    }
    Ok(documents)
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
            .into_iter()
            .map(|d| d.value["n"].clone())
            .collect();
        assert_eq!(names, vec![json!("a"), json!("b"), json!("c")]);
        assert!(matches!(load(&[dir.join("missing.yaml")]), Err(LoadError::Io { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }
}
