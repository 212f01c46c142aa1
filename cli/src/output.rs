//! Where the command's results go: standard output, or a file replaced atomically.
//!
//! Atomic replacement matters here: Envoy watches the directories of its filesystem ECDS and
//! SDS resources and reloads on a rename into them. Writing a file in place could let Envoy read
//! half a configuration; writing a sibling and renaming it over the target cannot.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` by writing a hidden sibling and renaming it over `path` (the same
/// directory, so the rename is atomic). `mode` sets Unix permissions (keys use `0o600`).
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("output");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    // A temporary left by a crashed run would keep its old permissions: start afresh.
    let _ = fs::remove_file(&temp);
    let result = (|| -> Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file =
            options.open(&temp).with_context(|| format!("creating {}", temp.display()))?;
        file.write_all(bytes).with_context(|| format!("writing {}", temp.display()))?;
        file.sync_all().with_context(|| format!("writing {}", temp.display()))?;
        fs::rename(&temp, path)
            .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Writes to `path`, or to standard output when `path` is `None` or `-`.
pub fn emit(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(path) if path.as_os_str() != "-" => write_atomically(path, bytes, None),
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes).context("writing to standard output")?;
            stdout.flush().context("writing to standard output")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = std::env::temp_dir().join(format!("warden-output-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("nested/out.yaml");
        write_atomically(&path, b"one", None).unwrap();
        write_atomically(&path, b"two", Some(0o600)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let entries: Vec<_> = fs::read_dir(dir.join("nested")).unwrap().collect();
        assert_eq!(entries.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
