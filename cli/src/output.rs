//! Where the command's results go: standard output, or a file replaced atomically.
//!
//! Atomic replacement matters here: Envoy watches the directories of its filesystem ECDS and
//! SDS resources and reloads on a rename into them. Writing a file in place could let Envoy read
//! half a configuration; writing a sibling and renaming it over the target cannot.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` through a temporary sibling (`tempfile`, removed if anything
/// fails) renamed over `path`: the same directory, so the rename is atomic. `mode` sets Unix
/// permissions (keys use `0o600`; otherwise `0o644` under the umask).
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".warden-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(mode.unwrap_or(0o644)));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = builder
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", file.path().display()))?;
    file.as_file().sync_all().with_context(|| format!("writing {}", file.path().display()))?;
    file.persist(path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
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
