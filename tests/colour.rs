//! Colour from the command line: the `WARN` lines of the log honour
//! `NO_COLOR` and `CLICOLOR_FORCE` as the tables do (one decision,
//! `report::colour::enabled`). `palisade inventory` with a role tag that
//! names no role logs a warning without contacting any node.

use std::process::{Command, Output};

fn inventory(env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let state = r#"{"version": 4, "terraform_version": "1.5.0", "serial": 1, "lineage": "x",
        "resources": [{"mode": "managed", "type": "aws_instance", "name": "dcos_master", "provider": "p",
        "instances": [{"schema_version": 1, "attributes":
            {"public_ip": "203.0.113.8", "private_ip": "10.0.0.8", "tags": {"role": "mastr"}}}]}]}"#;
    std::fs::write(dir.path().join("terraform.tfstate"), state).unwrap();
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "inventory",
            "--json",
            "--state",
            "terraform.tfstate",
            "--role-tag",
            "role",
        ])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn warning(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("which names no role"), "{err}");
    err
}

#[test]
fn the_warn_line_is_plain_in_a_pipe() {
    assert!(!warning(&inventory(&[])).contains('\u{1b}'));
}

#[test]
fn clicolor_force_colours_the_warn_line() {
    let err = warning(&inventory(&[("CLICOLOR_FORCE", "1")]));
    assert!(err.contains("\u{1b}["), "{err:?}");
    let err = warning(&inventory(&[("CLICOLOR_FORCE", "0")]));
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn no_color_wins_over_clicolor_force() {
    let err = warning(&inventory(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]));
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // stdout, the JSON, never has colour.
    let out = inventory(&[("CLICOLOR_FORCE", "1")]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}
