//! The command line itself, with no lab and no network: `--limit` through
//! `palisade inventory`, each command's help, shell completions and man
//! pages. Commands that contact nodes are run here only where they must stop
//! before any connection (a limit that selects nothing, no SSH key).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/limit/hosts.toml")
}

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // No agent: a command that got past its local checks could not log in.
        .env_remove("SSH_AUTH_SOCK")
        // Nor the machine user's ssh_config.
        .env("HOME", env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("palisade runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The names `palisade inventory --limit LIMIT` lists, in inventory order.
fn limited(limit: &str) -> Vec<String> {
    let inv = fixture();
    let out = palisade(&[
        "inventory",
        "--json",
        "--inventory",
        inv.to_str().unwrap(),
        "--limit",
        limit,
    ]);
    assert_eq!(out.status.code(), Some(0), "{limit}: {}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    doc["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["name"].as_str().expect("name").to_owned())
        .collect()
}

const ALL: [&str; 6] = ["master-1", "agent-1", "agent-2", "agent-3", "public-1", "boot"];

#[test]
fn limit_by_role_name_glob_address_and_network() {
    assert_eq!(limited("agent"), ["agent-1", "agent-2", "agent-3"]);
    assert_eq!(limited("public-agent"), ["public-1"]);
    assert_eq!(limited("master,bootstrap"), ["master-1", "boot"]);
    assert_eq!(limited("agent-2"), ["agent-2"]);
    assert_eq!(limited("agent-*"), ["agent-1", "agent-2", "agent-3"]);
    assert_eq!(limited("*-1"), ["master-1", "agent-1", "public-1"]);
    // The SSH address, another address, any spelling of an IPv6 address.
    assert_eq!(limited("198.51.100.31"), ["public-1"]);
    assert_eq!(limited("10.0.1.22"), ["agent-2"]);
    assert_eq!(limited("2001:db8:0:0::23"), ["agent-3"]);
    assert_eq!(limited("192.0.2.2*"), ["agent-1", "agent-2", "agent-3"]);
    assert_eq!(limited("10.0.0.0/24"), ["master-1", "boot"]);
    // Repeated flags add up, as comma-separated patterns do.
    let inv = fixture();
    let out = palisade(&[
        "inventory",
        "--inventory",
        inv.to_str().unwrap(),
        "--limit",
        "master",
        "--limit",
        "boot",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("--limit selects 2 of 6 hosts; the whitelist still admits all 6"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn limit_exclusions_as_in_ansible() {
    assert_eq!(limited("agent,!agent-2"), ["agent-1", "agent-3"]);
    // Only exclusions: every host but those.
    assert_eq!(limited("!agent"), ["master-1", "public-1", "boot"]);
    assert_eq!(limited("!agent,!192.0.2.5"), ["master-1", "public-1"]);
    // The order of the patterns does not matter.
    assert_eq!(limited("!agent-2,agent"), ["agent-1", "agent-3"]);
    assert_eq!(limited("*"), ALL);
}

#[test]
fn limit_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("failed");
    std::fs::write(
        &file,
        "# palisade apply: hosts that failed\nagent-3\n\n  boot  \n!nobody\n",
    )
    .unwrap();
    let at = format!("@{}", file.display());
    assert_eq!(limited(&at), ["agent-3", "boot"]);
    assert_eq!(limited(&format!("{at},master")), ["master-1", "agent-3", "boot"]);
    assert_eq!(limited(&format!("{at},!boot")), ["agent-3"]);

    let inv = fixture();
    let out = palisade(&[
        "inventory",
        "--inventory",
        inv.to_str().unwrap(),
        "--limit",
        "@/nonexistent/failed",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--limit @/nonexistent/failed: cannot read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_limit_that_selects_nothing_exits_1_naming_it() {
    let inv = fixture();
    let inv = inv.to_str().unwrap();
    for cmd in ["inventory", "ping", "plan", "apply", "verify", "remove"] {
        let out = palisade(&[cmd, "--inventory", inv, "--limit", "agent-9*,!x"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{cmd}");
        assert!(
            stderr(&out).contains(r#"--limit "agent-9*,!x" matches no host of the inventory"#),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    // Only an exclusion of everything.
    let out = palisade(&["inventory", "--inventory", inv, "--limit", "!*"]);
    assert_eq!(out.status.code(), Some(1));
    // A pattern that cannot be a glob.
    let out = palisade(&["inventory", "--inventory", inv, "--limit", "agent-[1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"agent-[1\" is not a valid pattern"),
        "{}",
        stderr(&out)
    );
    // One pattern matching nothing beside others that match: a warning.
    let out = palisade(&["inventory", "--inventory", inv, "--limit", "agent-1,agent-9"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("warning: --limit pattern \"agent-9\" matches no host"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_limit_that_selects_hosts_goes_on_to_the_local_checks() {
    // Past the selection, apply stops at the first local check (no key, no
    // agent), before contacting anyone.
    let inv = fixture();
    let out = palisade(&[
        "apply",
        "--inventory",
        inv.to_str().unwrap(),
        "--limit",
        "agent-1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no SSH key"), "{}", stderr(&out));
}

/// Long flags a command's `--help` lists.
fn flags_of(cmd: &str) -> (String, Vec<String>) {
    let out = palisade(&[cmd, "--help"]);
    assert_eq!(out.status.code(), Some(0), "{cmd}: {}", stderr(&out));
    let help = stdout(&out);
    let flags = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| {
            w.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .collect();
    (help, flags)
}

#[test]
fn each_command_lists_only_its_own_flags_with_examples_and_exit_codes() {
    let ssh = [
        "--user",
        "--key",
        "--port",
        "--known-hosts",
        "--jump",
        "--forks",
        "--timeout",
    ];
    let whitelist = [
        "--allow",
        "--extra",
        "--open",
        "--resolver",
        "--interface",
        "--no-persist",
    ];
    let firewall = ["--set4", "--set6", "--chain"];
    let target = ["--state", "--inventory", "--limit", "--role", "--connect-via"];
    // command, groups it takes, groups it does not
    type Groups<'a> = Vec<&'a [&'a str]>;
    let table: [(&str, Groups, Groups); 6] = [
        ("inventory", vec![&target], vec![&ssh, &whitelist, &firewall]),
        ("ping", vec![&target, &ssh], vec![&whitelist, &firewall]),
        ("plan", vec![&target, &ssh, &whitelist, &firewall], vec![]),
        ("verify", vec![&target, &ssh, &whitelist, &firewall], vec![]),
        ("apply", vec![&target, &ssh, &whitelist, &firewall], vec![]),
        ("remove", vec![&target, &ssh, &firewall], vec![&whitelist]),
    ];
    for (cmd, takes, refuses) in table {
        let (help, flags) = flags_of(cmd);
        for flag in takes.iter().flat_map(|g| g.iter()) {
            assert!(
                flags.iter().any(|f| f == flag),
                "{cmd} --help lacks {flag}:\n{help}"
            );
        }
        for flag in refuses.iter().flat_map(|g| g.iter()) {
            assert!(
                !flags.iter().any(|f| f == flag),
                "{cmd} --help lists {flag}:\n{help}"
            );
        }
        assert_eq!(
            flags.iter().any(|f| f == "--confirm-timeout"),
            cmd == "apply",
            "{cmd}: --confirm-timeout is apply's alone"
        );
        assert_eq!(
            flags.iter().any(|f| f == "--public-only"),
            matches!(cmd, "plan" | "apply"),
            "{cmd}: --public-only is plan's and apply's"
        );
        assert!(help.contains("\nExamples:\n  palisade "), "{cmd}:\n{help}");
        assert!(help.contains("Exit status:\n  0  "), "{cmd}:\n{help}");
        assert!(help.contains("  1  bad input or usage"), "{cmd}");
        assert_eq!(help.contains("  2  "), cmd != "inventory", "{cmd}:\n{help}");
        assert_eq!(help.contains("  3  "), cmd == "verify", "{cmd}:\n{help}");
        // The global flags, after the command's name too.
        for flag in ["--config", "--json", "--verbose"] {
            assert!(flags.iter().any(|f| f == flag), "{cmd} --help lacks {flag}");
        }
    }
    // inventory never mentions what only matters to a command that connects.
    let (help, _) = flags_of("inventory");
    for flag in ["--allow", "--jump", "--user", "--chain"] {
        assert!(!help.contains(flag), "inventory --help mentions {flag}:\n{help}");
    }
    // A flag the command does not take is a usage error.
    let out = palisade(&["ping", "--allow", "192.0.2.1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unexpected argument '--allow'"),
        "{}",
        stderr(&out)
    );
    let out = palisade(&["inventory", "--jump", "core@bastion"]);
    assert_eq!(out.status.code(), Some(1));
    // The global ones go before the command's name as well.
    let inv = fixture();
    let out = palisade(&["--json", "inventory", "--inventory", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("{\"hosts\":"));
    // The top-level help shows completions and man, and the exit codes.
    let out = palisade(&["--help"]);
    let help = stdout(&out);
    for word in ["completions", "man", "Examples:", "Exit status:", "  3  "] {
        assert!(help.contains(word), "palisade --help lacks {word}:\n{help}");
    }
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = palisade(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        // fish names long flags without their dashes (`-l limit`).
        for word in ["limit", "apply", "confirm-timeout"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let bash = palisade(&["completions", "bash"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("palisade.bash");
    std::fs::write(&file, &bash).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash runs");
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    // Sourcing it defines the completion function and registers it.
    let source = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p palisade", file.display()))
        .output()
        .expect("bash runs");
    assert!(source.status.success(), "{}", stderr(&source));
    assert!(stdout(&source).contains("palisade"), "{}", stdout(&source));

    let zsh = stdout(&palisade(&["completions", "zsh"]));
    assert!(
        zsh.starts_with("#compdef palisade"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );

    let out = palisade(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn man_pages() {
    let out = palisade(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(page.lines().any(|l| l.starts_with(".TH palisade 1")), "{page}");
    assert!(page.contains("completions"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = palisade(&["man", "--dir", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    for cmd in [
        "",
        "-inventory",
        "-ping",
        "-plan",
        "-apply",
        "-verify",
        "-remove",
        "-completions",
        "-man",
    ] {
        let path = out_dir.join(format!("palisade{cmd}.1"));
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let title = format!(".TH palisade{cmd} 1");
        assert!(
            page.lines().any(|l| l.starts_with(&title)),
            "{}: {page}",
            path.display()
        );
    }
    let apply = std::fs::read_to_string(out_dir.join("palisade-apply.1")).unwrap();
    for word in ["\\-\\-limit", "\\-\\-confirm\\-timeout", "Exit status"] {
        assert!(apply.contains(word), "palisade-apply.1 lacks {word}:\n{apply}");
    }
    assert!(
        !std::fs::read_to_string(out_dir.join("palisade-inventory.1"))
            .unwrap()
            .contains("\\-\\-allow")
    );
}

/// Every command that prints without contacting a node, with the arguments
/// that make it print. (The commands that contact nodes print through the
/// same writer, `report::output`; its unit tests and the lab cover them.)
fn printing_commands() -> Vec<Vec<String>> {
    let inv = fixture().to_str().expect("a UTF-8 path").to_owned();
    let state = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tfstate/v3-2016.tfstate")
        .to_str()
        .expect("a UTF-8 path")
        .to_owned();
    [
        vec!["man"],
        vec!["completions", "bash"],
        vec!["inventory", "--inventory", &inv],
        vec!["inventory", "--inventory", &inv, "--json"],
        vec!["inventory", "--state", &state],
        vec!["--help"],
    ]
    .into_iter()
    .map(|a| a.into_iter().map(String::from).collect())
    .collect()
}

fn palisade_to(args: &[String], out: std::process::Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUST_LOG")
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("palisade runs")
}

#[test]
fn a_closed_pipe_ends_each_command_quietly() {
    for args in printing_commands() {
        // The reading end is closed before palisade starts: its first
        // write fails with EPIPE, as in `palisade man | head -0`.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = palisade_to(&args, writer.into());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("Broken pipe"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_write_error_is_one_line_and_exit_1() {
    for args in printing_commands() {
        if args == ["--help"] {
            continue; // clap's own text: not palisade's to report
        }
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = palisade_to(&args, full.into());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("palisade: cannot write to standard output: No space left")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_flag_value_is_escaped_in_a_usage_error() {
    let out = palisade(&["ping", "--forks", "1\r2\u{1b}[31m"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("1\\r2\\u{1b}[31m"), "{err}");
}
#[test]
fn set_names_whose_temporary_sets_collide_are_refused_naming_the_setting() {
    let inv = fixture();
    let inv = inv.to_str().unwrap();
    // palisade makes SET-new and SET-old beside each set: neither set may
    // have the other's temporary names, nor the other's own.
    for (flags, says) in [
        (
            &["--set6", "palisade4-new"][..],
            r#"--set6: "palisade4-new" is the name palisade gives the temporary set (-new) it makes beside --set4 (default) "palisade4""#,
        ),
        (
            &["--set4", "v6-old", "--set6", "v6"],
            r#"--set4: "v6-old" is the name palisade gives the temporary set (-old) it makes beside --set6 "v6""#,
        ),
        (
            &["--set4", "same", "--set6", "same"],
            r#"--set4 and --set6 are both "same""#,
        ),
    ] {
        for cmd in ["plan", "apply", "verify", "remove"] {
            let mut args = vec![cmd, "--inventory", inv];
            args.extend_from_slice(flags);
            let out = palisade(&args);
            assert_eq!(out.status.code(), Some(1), "{cmd} {flags:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(says), "{cmd} {flags:?}: {}", stderr(&out));
        }
    }
    // The same from the config file, named by its key.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("palisade.toml");
    std::fs::write(&config, "[firewall]\nset4 = \"w\"\nset6 = \"w-old\"\n").unwrap();
    let out = palisade(&["plan", "--inventory", inv, "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains(r#"firewall.set6: "w-old" is the name palisade gives the temporary set (-old)"#),
        "{}",
        stderr(&out)
    );
}

/// The PALISADE_TEST_* knobs are read only by a build with the lab-hooks
/// feature: a knob no build could take stops such a build at once, and
/// changes nothing in a build without it, which goes on to its first local
/// check (no SSH key here) as if the variable were not there.
#[test]
fn only_a_lab_hooks_build_reads_the_test_knobs() {
    let inv = fixture();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "apply",
            "--inventory",
            inv.to_str().unwrap(),
            "--limit",
            "agent-1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUST_LOG")
        .env("PALISADE_TEST_CONFIRM_SOURCE", "not-an-address")
        .env("PALISADE_TEST_HOLD_CONFIRM", "forever")
        .output()
        .expect("palisade runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    if cfg!(feature = "lab-hooks") {
        assert!(
            stderr(&out).contains("PALISADE_TEST_CONFIRM_SOURCE"),
            "{}",
            stderr(&out)
        );
    } else {
        assert!(!stderr(&out).contains("PALISADE_TEST"), "{}", stderr(&out));
        assert!(stderr(&out).contains("no SSH key"), "{}", stderr(&out));
    }
}

/// Audit mode is there on both backends: asked for with the iptables
/// backend (the default) or nftables, by flag or by the config file, every
/// command goes on, to its first local check (no SSH key here).
#[test]
fn audit_mode_is_accepted_with_either_backend() {
    let inv = fixture();
    let inv = inv.to_str().unwrap();
    let refused = "needs the nftables backend";
    for cmd in ["apply", "plan", "verify"] {
        for extra in [
            &[][..],
            &["--backend", "iptables"][..],
            &["--backend", "nftables"][..],
        ] {
            let mut args = vec![cmd, "--inventory", inv, "--audit"];
            args.extend_from_slice(extra);
            let out = palisade(&args);
            assert_eq!(out.status.code(), Some(1), "{cmd}: {}", stderr(&out));
            assert!(!stderr(&out).contains(refused), "{cmd}: {}", stderr(&out));
            assert!(stderr(&out).contains("no SSH key"), "{cmd}: {}", stderr(&out));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("palisade.toml");
    std::fs::write(&config, "[firewall]\nmode = \"audit\"\n").unwrap();
    let config = config.to_str().unwrap();
    for cmd in ["apply", "remove"] {
        let out = palisade(&[cmd, "--inventory", inv, "--config", config]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("no SSH key"), "{}", stderr(&out));
    }
    // A bound of no flows is no bound.
    let out = palisade(&["plan", "--inventory", inv, "--audit-size", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--audit-size"), "{}", stderr(&out));
    // --flows is verify's alone.
    let out = palisade(&["plan", "--inventory", inv, "--flows"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
