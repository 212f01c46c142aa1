//! What the command's integration tests share: running `warden` on the fixtures.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

/// `cli/tests/fixtures`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `warden ARGS` in the fixtures directory (so paths in output are short), without color:
/// exit status, stdout, stderr.
pub fn warden(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(fixtures())
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}
