//! Never lock the operator out: the dead-man rollback on every node, and
//! confirmation over a new connection.

use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::backend::{self, untouched};
use crate::harness::{Lab, Needs, Spec};
use crate::{bin, eventually, held_apply, host, json, lab, lab_args, lab_tests, stderr};

lab_tests![Needs::Systemd, both =>
    a_confirmed_apply_leaves_no_timer_process_or_snapshot,
    a_failed_confirmation_rolls_every_node_back_by_itself,
    killing_palisade_after_the_write_leaves_nodes_to_roll_back,
    ctrl_c_says_which_hosts_are_confirmed_and_which_roll_back,
    a_rerun_within_the_timeout_confirms_the_pending_change,
    remove_cancels_a_pending_rollback,
    one_change_at_a_time_on_a_node,
    a_claim_whose_owner_died_is_settled_by_the_next_run;
// iptables only: the xtables lock is legacy iptables'.
Needs::Systemd =>
    a_stuck_xtables_lock_fails_the_host_in_bounded_time,
];

/// `nodes` nodes; the last of two or more boots systemd, as CoreOS and
/// Flatcar nodes do, so every test here runs on both kinds of node.
fn spec(nodes: usize) -> Spec {
    Spec {
        nodes,
        systemd: if nodes > 1 { vec![nodes - 1] } else { vec![] },
        ..Spec::default()
    }
}

fn args<'a>(cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    lab_args(cmd, true, true, extra)
}

/// Whether node `i` has palisade's guard, i.e. got the change.
fn written(lab: &Lab, i: usize) -> bool {
    backend::guard_present(lab, i)
}

fn a_confirmed_apply_leaves_no_timer_process_or_snapshot() {
    let lab = lab!(spec(3));
    let out = lab.palisade(bin(), &args("apply", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    for i in 0..3 {
        assert!(
            !lab.node_has(i, "/run/palisade/rollback"),
            "node {i} kept its snapshot"
        );
        assert!(lab.node_has(i, "/var/lib/palisade/restore.sh"));
        assert!(
            eventually(5, || lab.other_processes(i).is_empty()),
            "node {i} still runs {:?}",
            lab.other_processes(i)
        );
    }
}

fn a_failed_confirmation_rolls_every_node_back_by_itself() {
    let lab = lab!(spec(3));
    // The confirmation leaves from a second controller address that the
    // whitelist does not admit, so the node's new rules drop it.
    lab.must(
        &lab.controller,
        &["ip", "addr", "add", "198.18.0.50/15", "dev", "eth0"],
    );
    let hook = [("PALISADE_TEST_CONFIRM_SOURCE", "198.18.0.50")];

    // From a node with no whitelist: back to no whitelist at all.
    let start = Instant::now();
    let out = lab.palisade_with_env(bin(), &args("apply", &["--confirm-timeout", "5"]), &hook);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "palisade did not wait for the rollback"
    );
    for node in &lab.nodes {
        let h = host(&report, &node.name);
        assert_eq!(h["status"], "rolled-back", "{h}");
        let error = h["error"].as_str().unwrap();
        assert!(
            error.contains("a new connection to") && error.contains("rolled back"),
            "{error}"
        );
        assert!(untouched(&lab, node.index), "{} was not rolled back", node.name);
        assert!(lab.ssh_reachable(&lab.outsider, IpAddr::V4(node.ip4)));
        assert!(!lab.node_has(node.index, "/var/lib/palisade/restore.sh"));
    }

    // From an applied whitelist: back to exactly that whitelist.
    let out = lab.palisade(bin(), &args("apply", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before: Vec<Vec<String>> = (0..3).map(|i| backend::members(&lab, i, 4)).collect();
    let out = lab.palisade_with_env(
        bin(),
        &args("apply", &["--confirm-timeout", "5", "--extra", "192.0.2.0/24"]),
        &hook,
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    for (i, old) in before.iter().enumerate() {
        assert_eq!(host(&report, &lab.nodes[i].name)["status"], "rolled-back");
        assert_eq!(&backend::members(&lab, i, 4), old, "node {i}");
    }
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
}

fn killing_palisade_after_the_write_leaves_nodes_to_roll_back() {
    let lab = lab!(spec(4));
    // Two hosts at a time, each held before its confirmation: the first two
    // get the change, then palisade dies.
    let mut child = held_apply(&lab, &["--confirm-timeout", "6", "--forks", "2"]);
    let changed = || (0..4).filter(|&i| written(&lab, i)).collect::<Vec<_>>();
    assert!(
        eventually(20, || changed().len() == 2),
        "two hosts were not changed: {:?}",
        changed()
    );
    child.kill().unwrap();
    let _ = child.wait();
    let hit = changed();
    assert_eq!(hit.len(), 2, "more hosts changed than --forks allows");
    let first = hit[0];
    assert!(!lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[first].ip4)));

    // After the deadline every node is as it was, and reachable.
    assert!(
        eventually(15, || changed().is_empty()),
        "nodes did not roll back: {:?}",
        changed()
    );
    for &i in &hit {
        // The tables are back a moment before the rollback has checked
        // them and says so.
        assert!(eventually(10, || lab.node_has(i, "/run/palisade/rollback/rolled-back")));
        assert!(lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[i].ip4)));
    }
    let out = lab.palisade(bin(), &args("apply", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["changed"], 4, "{report:#}");
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(0));
}

fn ctrl_c_says_which_hosts_are_confirmed_and_which_roll_back() {
    let lab = lab!(spec(3));
    let child = held_apply(&lab, &["--confirm-timeout", "8"]);
    assert!(eventually(20, || (0..3).all(|i| written(&lab, i))));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("palisade: interrupted"), "{err}");
    assert!(err.contains("confirmed, keep the new whitelist: none"), "{err}");
    assert!(err.contains("roll back by themselves: node-00 (in "), "{err}");
    assert!(
        eventually(15, || (0..3).all(|i| untouched(&lab, i))),
        "nodes did not roll back"
    );
}

fn a_rerun_within_the_timeout_confirms_the_pending_change() {
    let lab = lab!(spec(2));
    let child = held_apply(&lab, &["--confirm-timeout", "30"]);
    assert!(eventually(20, || written(&lab, 0) && written(&lab, 1)));
    let mut child = child;
    child.kill().unwrap();
    let _ = child.wait();

    // The audit sees the pending rollback as drift.
    let out = lab.palisade(bin(), &args("verify", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(3), "{report:#}");
    let change = &host(&report, "node-00")["changes"][0];
    assert_eq!(change["kind"], "unconfirmed", "{report:#}");

    // A rerun proves a new connection still gets in and confirms.
    let out = lab.palisade(bin(), &args("apply", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(host(&report, "node-01")["status"], "changed");
    for i in 0..2 {
        assert!(!lab.node_has(i, "/run/palisade/rollback"));
        assert!(
            eventually(5, || lab.other_processes(i).is_empty()),
            "{:?}",
            lab.other_processes(i)
        );
    }
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
}

fn remove_cancels_a_pending_rollback() {
    let lab = lab!(spec(2));
    let mut child = held_apply(&lab, &["--confirm-timeout", "6"]);
    assert!(eventually(20, || written(&lab, 0) && written(&lab, 1)));
    child.kill().unwrap();
    let _ = child.wait();

    let out = lab.palisade(bin(), &args("remove", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
    // Past the old deadline, the rollback has not put the whitelist back.
    std::thread::sleep(Duration::from_secs(8));
    for i in 0..2 {
        assert!(untouched(&lab, i), "node {i} came back after remove");
        assert!(!lab.node_has(i, "/run/palisade/rollback"));
        assert!(lab.other_processes(i).is_empty(), "{:?}", lab.other_processes(i));
    }
}

fn one_change_at_a_time_on_a_node() {
    let lab = lab!(spec(2));
    // Another palisade run holds node 0's lock.
    let holder = hold(&lab, 0, "/run/palisade/lock");
    let out = lab.palisade(bin(), &args("apply", &[]));
    release(holder);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let error = host(&report, "node-00")["error"].as_str().unwrap();
    assert!(
        error.contains("another palisade run is changing this node"),
        "{error}"
    );
    assert!(untouched(&lab, 0));
    assert_eq!(host(&report, "node-01")["status"], "changed");
    // Once the other run is done, the node takes the change.
    let out = lab.palisade(bin(), &args("apply", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
}

/// Another program holding the lock file `path` on plain node `i` (flock,
/// in a process group of its own) until [`release`].
fn hold(lab: &Lab, i: usize, path: &str) -> std::process::Child {
    let pid = lab.sshd_pid(i);
    let holder = std::process::Command::new("nsenter")
        .args(["-t", &pid, "-m", "-n", "--", "flock", path, "sleep", "300"])
        .process_group(0)
        .spawn()
        .unwrap();
    assert!(eventually(5, || lab
        .other_processes(i)
        .iter()
        .any(|p| p.contains("sleep 300"))));
    holder
}

/// Kills a [`hold`]er: flock and the sleep it holds the lock for, both.
fn release(mut holder: std::process::Child) {
    // SAFETY: signalling the process group we created.
    unsafe { libc::kill(-(holder.id() as i32), libc::SIGKILL) };
    let _ = holder.wait();
}

/// Marks node `i`'s pending change as claimed by `owner` that then died
/// (a confirmation or a rollback killed right after it took the claim).
fn abandon_claim(lab: &Lab, i: usize, owner: &str) {
    let script = format!("echo {owner} >/run/palisade/rollback/claim");
    let out = lab.on_node(i, &["sh", "-c", &script]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn a_claim_whose_owner_died_is_settled_by_the_next_run() {
    let lab = lab!(spec(2));
    let members = |i: usize| backend::members(&lab, i, 4);
    // A confirmation died after claiming: the next run finishes it (the
    // boot files go in) instead of refusing the node forever.
    let mut child = held_apply(&lab, &["--confirm-timeout", "40"]);
    assert!(eventually(20, || written(&lab, 0) && written(&lab, 1)));
    child.kill().unwrap();
    let _ = child.wait();
    for i in 0..2 {
        assert!(
            !lab.node_has(i, "/var/lib/palisade/restore.sh"),
            "boot files before confirmation"
        );
        abandon_claim(&lab, i, "confirm");
    }
    let out = lab.palisade(bin(), &args("apply", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["changed"], 2, "{report:#}");
    for i in 0..2 {
        let notes = &host(&report, &lab.nodes[i].name)["notes"];
        assert!(notes.to_string().contains("left unconfirmed"), "{notes}");
        assert!(lab.node_has(i, "/var/lib/palisade/restore.sh"));
        assert!(!lab.node_has(i, "/run/palisade/rollback"));
    }

    // A rollback died after claiming, before undoing: the next run undoes
    // the change (back to the confirmed whitelist), then goes on.
    let before: Vec<Vec<String>> = (0..2).map(members).collect();
    let mut child = held_apply(&lab, &["--confirm-timeout", "40", "--extra", "192.0.2.0/24"]);
    let extra = "192.0.2.0/24".to_owned();
    assert!(eventually(20, || (0..2).all(|i| members(i).contains(&extra))));
    child.kill().unwrap();
    let _ = child.wait();
    for i in 0..2 {
        abandon_claim(&lab, i, "rollback");
    }
    let out = lab.palisade(bin(), &args("apply", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    for (i, old) in before.iter().enumerate() {
        assert!(!members(i).contains(&extra), "node {i} kept the abandoned change");
        assert_eq!(&members(i), old);
    }
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
}

fn a_stuck_xtables_lock_fails_the_host_in_bounded_time() {
    let lab = lab!(Spec {
        nodes: 2,
        legacy: vec![0],
        ..Spec::default()
    });
    // Another program holds node 0's xtables lock (legacy iptables) and
    // never lets go.
    let holder = hold(&lab, 0, "/run/xtables.lock");
    let start = Instant::now();
    let out = lab.palisade(bin(), &args("apply", &[]));
    let took = start.elapsed();
    release(holder);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert!(took < Duration::from_secs(100), "apply took {took:?}");
    let error = host(&report, "node-00")["error"].as_str().unwrap_or_default();
    assert!(error.contains("xtables lock"), "{error}");
    assert!(crate::untouched(&lab, 0));
    assert_eq!(host(&report, "node-01")["status"], "changed", "{report:#}");
}
