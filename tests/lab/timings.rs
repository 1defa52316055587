//! `-v` and `-vv`: where each host's time went, in the log and in `--json`,
//! and the remote steps' own lines.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{FRESH_APPLY_STAGES, Needs, Spec};
use crate::{bin, json, lab, lab_args, lab_tests, stderr};

lab_tests![Needs::Plain =>
    apply_reports_every_hosts_stage_timings_in_the_log_and_in_json,
    vv_shows_what_the_remote_steps_printed,
    a_rolled_back_host_shows_the_wait_for_its_rollback,
    every_command_is_one_exec_per_node,
];

/// Every host's `timings`: each stage in `stages` present, whole
/// non-negative milliseconds, and `total` at least the sum of the others.
fn check_timings(report: &Value, stages: &[&str]) {
    let hosts = report["hosts"].as_array().expect("hosts");
    assert!(!hosts.is_empty(), "{report:#}");
    for h in hosts {
        let t = h["timings"]
            .as_object()
            .unwrap_or_else(|| panic!("no timings: {h:#}"));
        let mut keys: Vec<&str> = t.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = stages.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{h:#}");
        let ms = |k: &str| {
            t[k].as_u64()
                .unwrap_or_else(|| panic!("{k} is not whole ms: {h:#}"))
        };
        let parts: u64 = stages.iter().filter(|k| **k != "total").map(|k| ms(k)).sum();
        assert!(ms("total") >= parts, "total below the sum of its stages: {h:#}");
        assert!(ms("total") > 0, "{h:#}");
    }
}

/// The `-v` lines that give a host's timings: `NAME ADDRESS: connect ... total ...`.
fn timing_lines<'a>(log: &'a str, name: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(&format!(" {name} ")) && l.contains(": connect ") && l.contains(", total "))
        .collect()
}

fn apply_reports_every_hosts_stage_timings_in_the_log_and_in_json() {
    let lab = lab!(Spec {
        nodes: 3,
        ..Spec::default()
    });
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["-v"]));
    let report = json(&out);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{log}");
    check_timings(&report, FRESH_APPLY_STAGES);
    for n in &lab.nodes {
        let lines = timing_lines(&log, &n.name);
        assert_eq!(lines.len(), 1, "one timing line for {}:\n{log}", n.name);
        for stage in FRESH_APPLY_STAGES {
            assert!(
                lines[0].contains(&format!("{stage} ")),
                "{stage} missing: {}",
                lines[0]
            );
        }
    }

    // Nothing to do: no change, so no apply and no confirmation.
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["-v"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    check_timings(&report, &["connect", "kex", "auth", "observe", "total"]);

    // Without -v, no timing lines; the JSON has them all the same.
    let out = lab.palisade(bin(), &lab_args("verify", true, true, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    check_timings(&json(&out), &["connect", "kex", "auth", "observe", "total"]);
    assert!(
        timing_lines(&stderr(&out), "node-00").is_empty(),
        "{}",
        stderr(&out)
    );
}

fn vv_shows_what_the_remote_steps_printed() {
    let lab = lab!(Spec {
        nodes: 2,
        ..Spec::default()
    });
    // Another tool's set under palisade's name: node-01's apply step says
    // so on stderr, and fails before any change.
    lab.must(&lab.nodes[1].ns, &["ipset", "create", "palisade4", "hash:ip"]);
    let said = "apply: palisade: ipset palisade4 exists but palisade did not make it";
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["-vv"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.lines()
            .any(|l| l.contains("node-01 apply: ") && l.contains(said)),
        "{log}"
    );
    assert_eq!(timing_lines(&log, "node-01").len(), 1, "{log}");
    assert!(timing_lines(&log, "node-01")[0].ends_with("(failed)"), "{log}");
    // -v shows the timings but not the remote lines.
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["-v"]));
    let log = stderr(&out);
    assert!(!log.contains(said), "{log}");
    assert_eq!(timing_lines(&log, "node-01").len(), 1, "{log}");
}

fn a_rolled_back_host_shows_the_wait_for_its_rollback() {
    let lab = lab!(Spec {
        nodes: 1,
        ..Spec::default()
    });
    // The confirmation leaves from an address the whitelist does not admit.
    lab.must(
        &lab.controller,
        &["ip", "addr", "add", "198.18.0.50/15", "dev", "eth0"],
    );
    let out = lab.palisade_with_env(
        bin(),
        &lab_args("apply", true, true, &["-v", "--confirm-timeout", "5"]),
        &[("PALISADE_TEST_CONFIRM_SOURCE", "198.18.0.50")],
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(report["hosts"][0]["status"], "rolled-back", "{report:#}");
    // A fresh apply's stages, with the wait for the rollback where the
    // confirmation would be.
    let stages: Vec<&str> = FRESH_APPLY_STAGES
        .iter()
        .map(|&p| if p == "confirm" { "rollback" } else { p })
        .collect();
    check_timings(&report, &stages);
    // The wait for the node's own deadline is where the time went.
    assert!(
        report["hosts"][0]["timings"]["rollback"].as_u64() >= Some(2000),
        "{report:#}"
    );
    assert_eq!(
        timing_lines(&stderr(&out), "node-00").len(),
        1,
        "{}",
        stderr(&out)
    );
}

/// sudo once per node and per command: verify, plan, a no-op apply and a
/// fresh apply (its confirmation included) are each one exec, counted on
/// the node by a wrapper sshd runs every command through. The fresh
/// apply's new-connection check reads sshd's banner and runs no command.
fn every_command_is_one_exec_per_node() {
    let lab = lab!(Spec {
        nodes: 2,
        record_steps: Some(Duration::from_millis(1)),
        ..Spec::default()
    });
    let mut seen = vec![0; lab.nodes.len()];
    for (cmd, status) in [
        ("plan", "would-change"),
        ("verify", "absent"),
        ("apply", "changed"),
        ("apply", "unchanged"),
        ("verify", "ok"),
    ] {
        let out = lab.palisade(bin(), &lab_args(cmd, true, true, &[]));
        let report = json(&out);
        for (i, node) in lab.nodes.iter().enumerate() {
            let h = report["hosts"]
                .as_array()
                .and_then(|hs| hs.iter().find(|h| h["name"] == node.name.as_str()))
                .unwrap_or_else(|| panic!("{} missing: {report:#}", node.name));
            assert_eq!(h["status"], status, "{cmd}: {h:#}");
            // Started execs: a no-op apply hangs up without waiting for
            // the script's end, so its step may log no end.
            let log = std::fs::read_to_string(node.dir.join("steps.log")).unwrap_or_default();
            let steps = log.lines().filter(|l| l.starts_with("start ")).count();
            assert_eq!(
                steps - seen[i],
                1,
                "{cmd} ran {} execs on {}",
                steps - seen[i],
                node.name
            );
            seen[i] = steps;
        }
    }
}
