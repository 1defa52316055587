//! ssh_config read through the command line, with no lab and no network:
//! hostile or unusable files stop a run before any connection, with exit 1
//! and the file and line, and what OpenSSH ignores is ignored. A file that
//! palisade accepts lets the run go on to its next local check (no SSH key:
//! the tests run without an agent).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/limit/hosts.toml")
}

/// `palisade ping` on the fixture fleet with `config` as ~/.ssh/config
/// (HOME is a fresh directory) and `extra` flags.
fn ping(config: Option<&str>, extra: &[&str]) -> (Option<i32>, String, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
    if let Some(text) = config {
        std::fs::write(home.path().join(".ssh/config"), text).expect("write");
    }
    let inv = fixture();
    let out: Output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["ping", "--inventory", inv.to_str().expect("utf-8")])
        .args(extra)
        .env("HOME", home.path())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUST_LOG")
        .output()
        .expect("palisade runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        home,
    )
}

const NO_KEY: &str = "no SSH key";

#[test]
fn what_openssh_ignores_is_ignored() {
    for config in [
        None,
        Some("# nothing\n"),
        Some("FrobnicateHarder yes\nCiphers aes128-ctr\nInclude does-not-exist ~/.ssh/none.d/*\n"),
        Some("Host other\n  ProxyCommand nc %h %p\n"),
        // Several hops, each with its own Host block.
        Some("Host b2\n  HostName 192.0.2.2\n  User core\n  Port 2222\nHost *\n  ProxyJump a@b1,b2\n"),
        Some("Host *\n  ProxyJump none\n"),
    ] {
        let (code, err, _home) = ping(config, &[]);
        assert_eq!(code, Some(1), "{config:?}: {err}");
        assert!(err.contains(NO_KEY), "{config:?}: {err}");
    }
}

#[test]
fn hostile_files_are_refused_with_file_and_line() {
    let big = format!("Host *\n{}", "  SendEnv LANG\n".repeat(700_000));
    for (config, says) in [
        ("Include ~/.ssh/config\n", "Include loop"),
        (big.as_str(), "config"),
        (
            "Host *\n  ProxyJump a@b,c@d:0\n",
            "config:2: ProxyJump: hop 2 of 2: \"c@d:0\"",
        ),
        (
            "Host *\n  ProxyCommand nc %h %p\n",
            "config:2: ProxyCommand applies to",
        ),
        (
            "Match exec \"rm -rf ~\"\n",
            "config:1: Match exec: palisade understands",
        ),
        ("Host *\n  Port none\n", "config:2: Port none: not a port"),
        (
            "Host *\n  User \"open\n",
            "config:2: a quote without its closing quote",
        ),
        ("Host *\n  User -oProxyCommand=x\n", "is not a user name"),
        (
            "Host *\n  HostName elsewhere.example\n",
            "palisade connects to the inventory's address",
        ),
    ] {
        let (code, err, _home) = ping(Some(config), &[]);
        assert_eq!(code, Some(1), "{says}: {err}");
        assert!(err.contains(says), "{says:?} not in {err}");
        assert!(!err.contains(NO_KEY), "{err}");
    }
    // 10 MB: refused, not read whole.
    let huge = "#".repeat(10 << 20);
    let (code, err, _home) = ping(Some(&huge), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("ssh_config") && err.contains("config"), "{err}");
}

#[test]
fn hosts_that_resolve_differently_are_refused_naming_two() {
    let config = "Host agent-*\n  Port 2222\n";
    let (code, err, _home) = ping(Some(config), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("master-1 and agent-1 resolve to different ports"),
        "{err}"
    );
    assert!(err.contains("config:2"), "{err}");
    // A flag decides the port: the file's differences no longer matter.
    let (code, err, _home) = ping(Some(config), &["--port", "22"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(NO_KEY), "{err}");
    // So does leaving the file out.
    let (code, err, _home) = ping(Some(config), &["--ssh-config", "none"]);
    assert!(code == Some(1) && err.contains(NO_KEY), "{err}");
}

#[test]
fn a_named_file_must_exist() {
    let (code, err, _home) = ping(None, &["--ssh-config", "/nonexistent/ssh_config"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("/nonexistent/ssh_config"), "{err}");
}
