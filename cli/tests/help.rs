//! What `warden` tells a user who asks: every command's `--help`, pinned as snapshots
//! (`cli/tests/snapshots/`; after an intended change, `cargo insta review` or
//! `INSTA_UPDATE=always cargo test -p warden-cli --test help`), and the answers to the usage
//! mistakes the command's conventions invite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;

fn warden() -> Command {
    let mut command = Command::cargo_bin("warden").unwrap();
    command.env_remove("CLICOLOR_FORCE").env("NO_COLOR", "1").env("COLUMNS", "100");
    command
}

fn help(args: &[&str]) -> String {
    let output = warden().args(args).arg("--help").assert().success();
    String::from_utf8(output.get_output().stdout.clone()).unwrap()
}

#[test]
fn every_command_has_its_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["check"],
        &["explain"],
        &["replay"],
        &["compile"],
        &["package"],
        &["token"],
        &["token", "mint"],
        &["token", "jwks"],
        &["token", "keygen"],
        &["playground"],
        &["playground", "issuer"],
        &["playground", "echo"],
        &["playground", "authz"],
    ];
    for args in commands {
        let name = if args.is_empty() { "warden".to_string() } else { args.join("-") };
        insta::assert_snapshot!(name, help(args));
    }
}

#[test]
fn output_names_a_file_and_format_the_form() {
    // `-o json` chose JSON in check and explain before -o meant a file everywhere.
    let output = warden().args(["check", "-o", "json", "mesh"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
    assert!(stderr.contains("--format json"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("warden-help-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    warden()
        .current_dir(&fixtures)
        .args(["check", "mesh", "--format", "json", "-o"])
        .arg(&report)
        .assert()
        .success()
        .stdout("");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(written["ok"], true, "{written}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn values_are_checked_before_anything_runs() {
    for (args, complaint) in [
        (&["token", "mint", "--key", "k", "--ttl", "soon"][..], "--ttl"),
        (&["token", "mint", "--key", "k", "--exp", "-5"][..], "--exp"),
        (&["token", "mint", "--key", "k", "--claim", "=x"][..], "--claim"),
        (&["token", "mint", "--key", "k", "--alg", "rs256"][..], "--alg"),
        (&["explain", "--policies", "mesh", "--workload", "api", "-H", "nocolon"][..], "--header"),
        (&["playground", "echo", "--listen", "localhost"][..], "--listen"),
    ] {
        let output = warden().args(args).assert().code(2);
        let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
        assert!(stderr.contains(complaint), "{args:?}: {stderr}");
    }
}
