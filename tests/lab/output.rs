//! What the operator sees: plan as check and diff (the whitelist once, the
//! `+`/`-` lines once for the nodes that share them, a node's own under
//! its row), apply's lockout refusal in plan, a reason or note
//! many hosts share printed once, `absent` from verify and remove, colour
//! only when asked, and one JSON shape for every command (every `json()`
//! report in the lab is checked against it; here each command is run).

use std::process::Output;

use crate::harness::{Lab, Needs, Spec};
use crate::{bin, host, json, lab, lab_args, lab_tests, statuses, stderr, stdout, untouched};

lab_tests![Needs::Plain =>
    plan_shows_the_whitelist_once_and_each_nodes_diff,
    plan_refuses_what_apply_would_refuse_and_says_why_once,
    verify_and_remove_say_absent_where_palisade_is_not,
    every_command_reports_in_one_json_shape,
    a_closed_pipe_or_a_full_disk_is_said_plainly,
];

/// Three plain nodes (no systemd: every one gets the same note on apply).
fn spec() -> Spec {
    Spec {
        nodes: 3,
        ..Spec::default()
    }
}

/// `palisade CMD` as a table, admitting the controller when `allow`.
fn table(lab: &Lab, cmd: &str, allow: bool, env: &[(&str, &str)]) -> Output {
    lab.palisade_with_env(bin(), &lab_args(cmd, false, allow, &[]), env)
}

fn report(lab: &Lab, cmd: &str, allow: bool) -> Output {
    lab.palisade(bin(), &lab_args(cmd, true, allow, &[]))
}

fn code(out: &Output, want: i32) -> String {
    let text = stdout(out);
    assert_eq!(out.status.code(), Some(want), "{text}\n{}", stderr(out));
    text
}

/// The line of the table that starts with this node's name.
fn row<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name} in\n{text}"))
}

fn plan_shows_the_whitelist_once_and_each_nodes_diff() {
    let lab = lab!(spec());
    let text = code(&table(&lab, "plan", true, &[]), 0);
    assert_eq!(
        text.matches("The whitelist every node gets:").count(),
        1,
        "{text}"
    );
    let v6: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  IPv6 ("))
        .flat_map(|l| l.split_whitespace())
        .collect();
    for node in &lab.nodes {
        // The whitelist lists every node's addresses, once.
        assert_eq!(
            v6.iter().filter(|a| **a == node.ip6.to_string()).count(),
            1,
            "{text}"
        );
        assert!(row(&text, &node.name).ends_with("  would-change"), "{text}");
    }
    assert!(
        text.contains("The IPv4 rules of chain PALISADE-GUARD:\n  -A PALISADE-GUARD -i lo"),
        "{text}"
    );
    for line in [
        "    + IPv4 set, holding the whole whitelist\n",
        "    + IPv6 guard before DNAT (mangle), with the whitelist and this role's open ports\n",
        "    + IPv4 mangle PREROUTING rule 1: the jump to the guard\n",
        "    + boot restore script\n",
    ] {
        // The list every node shares is printed once, for all of them.
        assert_eq!(text.matches(line).count(), 1, "{line:?} once in\n{text}");
    }
    assert!(
        text.contains("  would-change\n\nchanges on every host (3):\n    + "),
        "{text}"
    );
    assert!(text.ends_with("\n3 hosts: 3 would-change\n"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour in a pipe:\n{text:?}");
    for i in 0..3 {
        assert!(untouched(&lab, i), "plan changed node {i}");
    }
    let plan = json(&report(&lab, "plan", true));
    assert_eq!(plan["whitelist"]["chain"], "PALISADE-GUARD", "{plan:#}");
    // --json keeps every host's changes.
    let every = plan["hosts"].as_array().unwrap();
    assert!(!every[0]["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    for h in every {
        assert_eq!(h["changes"], every[0]["changes"], "{plan:#}");
    }
    assert!(
        plan["whitelist"]["ipv4"]
            .to_string()
            .contains(&lab.nodes[2].ip4.to_string())
    );

    // apply: the note every (systemd-less) node shares is printed once.
    let text = code(&table(&lab, "apply", true, &[]), 0);
    let note = "boot restore not installed (no systemd)";
    assert_eq!(text.matches(note).count(), 1, "{text}");
    assert!(
        text.contains(&format!("\nnote for every host (3): {note}")),
        "{text}"
    );

    // Converged: nothing to show but unchanged.
    let text = code(&table(&lab, "plan", true, &[]), 0);
    assert!(!text.contains("whitelist every node gets"), "{text}");
    assert!(!text.contains("    +") && !text.contains("    -"), "{text}");
    assert!(text.ends_with("\n3 hosts: 3 unchanged\n"), "{text}");

    // A change every node shares shows once, for every host; one node's
    // own change under its row, in verify as in plan.
    let extra = lab.palisade(
        bin(),
        &lab_args("plan", false, true, &["--extra", "192.0.2.0/24"]),
    );
    let text = code(&extra, 0);
    assert_eq!(
        text.matches("    + IPv4 member 192.0.2.0/24\n").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("\nchanges on every host (3):\n    + IPv4 member 192.0.2.0/24\n"),
        "{text}"
    );
    lab.must(&lab.nodes[1].ns, &["ipset", "add", "palisade4", "6.6.6.6"]);
    let text = code(&table(&lab, "verify", true, &[]), 3);
    assert!(row(&text, "node-01").ends_with("  drift"), "{text}");
    assert!(
        text.contains("node-01  ") && text.contains("    - IPv4 member 6.6.6.6\n"),
        "{text}"
    );

    // Colour when forced, never when NO_COLOR says no, never in --json.
    let forced = stdout(&table(&lab, "verify", true, &[("CLICOLOR_FORCE", "1")]));
    assert!(forced.contains("\u{1b}[33mdrift\u{1b}[0m"), "{forced:?}");
    assert!(
        forced.contains("\u{1b}[31m- IPv4 member 6.6.6.6\u{1b}[0m"),
        "{forced:?}"
    );
    let both = table(
        &lab,
        "verify",
        true,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    assert!(!stdout(&both).contains('\u{1b}'), "{:?}", stdout(&both));
    let json_forced = lab.palisade_with_env(
        bin(),
        &lab_args("verify", true, true, &[]),
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(!stdout(&json_forced).contains('\u{1b}'));
    json(&json_forced);
}

fn plan_refuses_what_apply_would_refuse_and_says_why_once() {
    let lab = lab!(spec());
    // No --allow admits the controller: apply would lock the operator out.
    let text = code(&table(&lab, "plan", false, &[]), 2);
    let reason = "refused to change this host: it sees palisade connecting from 198.18.0.1";
    assert_eq!(text.matches(reason).count(), 1, "{text}");
    assert!(text.contains(&format!("\nevery host (3): {reason}")), "{text}");
    assert!(text.contains("--allow 198.18.0.1"), "{text}");
    for node in &lab.nodes {
        assert!(row(&text, &node.name).ends_with("  refused"), "{text}");
    }
    // The diff is still shown, once for the nodes that share it: what
    // apply would do, were it allowed.
    assert_eq!(
        text.matches("    + IPv4 set, holding the whole whitelist\n")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("\nchanges on every host (3):\n"), "{text}");
    assert!(text.ends_with("\n3 hosts: 3 refused\n"), "{text}");

    let plan = json(&report(&lab, "plan", false));
    assert_eq!(statuses(&plan), ["refused"; 3], "{plan:#}");
    assert_eq!(plan["summary"]["refused"], 3);
    assert_eq!(plan["summary"]["would-change"], 0);

    // apply decides the same, with the same words, and writes nothing.
    let out = report(&lab, "apply", false);
    assert_eq!(out.status.code(), Some(2));
    let apply = json(&out);
    assert_eq!(statuses(&apply), ["refused"; 3], "{apply:#}");
    for node in &lab.nodes {
        let (a, p) = (host(&apply, &node.name), host(&plan, &node.name));
        assert_eq!(a["error"], p["error"]);
        assert_eq!(
            a["changes"], p["changes"],
            "the change apply refused is the plan's"
        );
        assert!(untouched(&lab, node.index));
    }

    // A single host that would lock out keeps its reason on its row.
    lab.inventory_of(&[0]);
    let text = code(&table(&lab, "plan", false, &[]), 2);
    assert!(
        row(&text, "node-00").contains("  refused: refused to change this host"),
        "{text}"
    );
}

fn verify_and_remove_say_absent_where_palisade_is_not() {
    let lab = lab!(spec());
    // Never touched: nothing to remove, nothing to verify.
    let remove = json(&report(&lab, "remove", true));
    assert_eq!(statuses(&remove), ["absent"; 3], "{remove:#}");
    assert_eq!(remove["summary"]["absent"], 3);
    let out = report(&lab, "verify", true);
    assert_eq!(out.status.code(), Some(3), "absent is drift to verify");
    let verify = json(&out);
    assert_eq!(statuses(&verify), ["absent"; 3], "{verify:#}");
    assert_eq!(verify["hosts"][0]["changes"], serde_json::json!([]));

    code(&report(&lab, "apply", true), 0);
    let remove = json(&report(&lab, "remove", true));
    assert_eq!(statuses(&remove), ["removed"; 3], "{remove:#}");
    let text = code(&table(&lab, "verify", true, &[]), 3);
    for node in &lab.nodes {
        assert!(row(&text, &node.name).ends_with("  absent"), "{text}");
    }
    assert!(
        !text.contains("    +"),
        "an absent node lists no differences:\n{text}"
    );
    let text = code(&table(&lab, "remove", true, &[]), 0);
    assert!(text.ends_with("\n3 hosts: 3 absent\n"), "{text}");
}

fn every_command_reports_in_one_json_shape() {
    let mut lab = lab!(spec());
    // One node down, so failures are in the shape too.
    lab.stop_sshd(2);
    let mut keys: Vec<Vec<String>> = Vec::new();
    for (cmd, want) in [
        ("ping", 2),
        ("plan", 2),
        ("apply", 2),
        ("verify", 2),
        ("remove", 2),
    ] {
        let out = if cmd == "ping" {
            lab.palisade(
                bin(),
                &[
                    "ping",
                    "--json",
                    "--inventory",
                    "hosts.toml",
                    "--key",
                    "id_ed25519",
                    "--known-hosts",
                    "known_hosts",
                ],
            )
        } else {
            report(&lab, cmd, true)
        };
        // json() checks the shape (tests/support/report_shape.rs).
        let r = json(&out);
        assert_eq!(out.status.code(), Some(want), "{cmd}: {r:#}");
        assert_eq!(r["command"], cmd);
        assert_eq!(host(&r, "node-02")["status"], "unreachable", "{cmd}: {r:#}");
        assert_eq!(r["summary"]["unreachable"], 1, "{cmd}");
        assert_eq!(r["summary"]["total"], 3, "{cmd}");
        keys.push(r["summary"].as_object().unwrap().keys().cloned().collect());
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
}

/// What reads palisade's report may go away (`palisade verify | head -1`)
/// or have no room (`> /dev/full`): every command that contacts nodes ends
/// as the run decided on a closed pipe, quietly, and says a write error in
/// one line with exit 1; it never panics.
fn a_closed_pipe_or_a_full_disk_is_said_plainly() {
    let lab = lab!(spec());
    for (cmd, want) in [
        ("ping", 0),
        ("plan", 0),
        ("apply", 0),
        ("verify", 0),
        ("remove", 0),
    ] {
        for json in [false, true] {
            let args = lab_args(cmd, json, true, &[]);
            let (reader, writer) = std::io::pipe().expect("a pipe");
            drop(reader);
            let out = lab.palisade_to(bin(), &args, &[], writer.into());
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(want), "{cmd} | (closed): {err}");
            assert!(
                !err.contains("panicked") && !err.contains("Broken pipe"),
                "{cmd}: {err}"
            );
        }
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = lab.palisade_to(bin(), &lab_args(cmd, false, true, &[]), &[], full.into());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd} > /dev/full: {err}");
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("palisade: cannot write to standard output: No space left")),
            "{cmd}: {err}"
        );
    }
}
