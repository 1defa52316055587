//! A rollback that fails is never final, no local user holds a node's fate,
//! and the boot files go to disk in an order a power cut cannot break.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::backend;
use crate::harness::{Lab, Needs, Spec};
use crate::{bin, eventually, host, json, lab, lab_args, lab_tests, stderr, stdout, untouched};

lab_tests![Needs::Plain =>
    an_unprivileged_lock_holder_does_not_stop_the_rollback,
    a_rollback_puts_palisades_rules_back_after_prerouting_was_edited;
    Needs::Systemd =>
    a_first_apply_whose_ip6tables_restore_fails_leaves_the_node_untouched,
    a_rollback_that_cannot_take_the_lock_is_tried_again_until_the_node_is_back,
    a_confirmation_puts_each_boot_file_on_disk_before_the_next,
];

fn args<'a>(cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    lab_args(cmd, true, true, extra)
}

/// The confirmation leaves from a second controller address that the
/// whitelist does not admit: it never gets through, and the change rolls
/// back by itself.
const UNADMITTED: [(&str, &str); 1] = [("PALISADE_TEST_CONFIRM_SOURCE", "198.18.0.50")];

fn unadmitted_source(lab: &Lab) {
    lab.must(
        &lab.controller,
        &["ip", "addr", "add", "198.18.0.50/15", "dev", "eth0"],
    );
}

/// A command run as root in node `i`'s namespaces (as `Lab::on_node`),
/// started in a process group of its own and not waited for.
fn spawn_on_node(lab: &Lab, i: usize, argv: &[&str]) -> Child {
    let spaces: &[&str] = if lab.nodes[i].systemd {
        &["-m", "-n", "-p", "-u", "-i"]
    } else {
        &["-m", "-n"]
    };
    Command::new("nsenter")
        .args(["-t", &lab.sshd_pid(i)])
        .args(spaces)
        .arg("--")
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("nsenter")
}

/// Ends a [`spawn_on_node`] process and everything it started.
fn stop(mut child: Child, signal: i32) {
    // SAFETY: signalling the process group we created.
    unsafe { libc::kill(-(child.id() as i32), signal) };
    let _ = child.wait();
}

/// Whether node `i` has the jump to palisade's guard, i.e. got the change.
fn written(lab: &Lab, i: usize) -> bool {
    lab.must(&lab.nodes[i].ns, &["iptables-save", "-t", "mangle"])
        .contains("-A PREROUTING -j PALISADE-GUARD")
}

fn a_first_apply_whose_ip6tables_restore_fails_leaves_the_node_untouched() {
    let lab = lab!(Spec {
        nodes: 1,
        systemd: vec![0],
        ..Spec::default()
    });
    // Every ip6tables-restore on the node fails: the commit's last step,
    // after the sets and the IPv4 rules went in.
    let wrapper = "rm -f /usr/sbin/ip6tables-restore && \
                   printf '#!/bin/sh\\necho lab: ip6tables-restore fails >&2\\nexit 1\\n' >/usr/sbin/ip6tables-restore && \
                   chmod 0755 /usr/sbin/ip6tables-restore";
    let out = lab.on_node(0, &["sh", "-c", wrapper]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = lab.palisade(bin(), &args("apply", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let h = host(&report, "node-00");
    assert_eq!(h["status"], "failed", "{report:#}");
    let error = h["error"].as_str().unwrap_or_default();
    assert!(error.contains("putting the previous state back"), "{error}");
    assert!(!error.contains("could not put everything back"), "{error}");
    // Untouched: no set, chain, jump, boot file, snapshot or timer.
    assert!(
        untouched(&lab, 0),
        "{}",
        lab.must(&lab.nodes[0].ns, &["iptables-save"])
    );
    for path in [
        "/run/palisade/rollback",
        "/var/lib/palisade/restore.sh",
        "/var/lib/palisade/restore.sh.new",
        "/etc/systemd/system/palisade.service.new",
    ] {
        assert!(!lab.node_has(0, path), "{path} is left");
    }
    assert!(lab.other_processes(0).is_empty(), "{:?}", lab.other_processes(0));
    // Nothing is left for the next command to report but that palisade
    // is not there (exit 3, as verify says of a node it never changed).
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert_eq!(host(&json(&out), "node-00")["status"], "absent");
}

/// Node `i`'s lock, held by root from now on (a program in a process group
/// of its own, until [`stop`]): it has it once `/run/palisade/held` is there.
fn hold_lock(lab: &Lab, i: usize) -> Child {
    let holder = spawn_on_node(
        lab,
        i,
        &[
            "flock",
            "/run/palisade/lock",
            "sh",
            "-c",
            ": >/run/palisade/held; sleep 300",
        ],
    );
    assert!(
        eventually(5, || lab.node_has(i, "/run/palisade/held")),
        "node {i}: the lock was not taken"
    );
    holder
}

fn a_rollback_that_cannot_take_the_lock_is_tried_again_until_the_node_is_back() {
    // A plain node (the sleeper) and a systemd node (the timer).
    let lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    unadmitted_source(&lab);
    let child = lab.spawn_palisade(bin(), &args("apply", &["--confirm-timeout", "5"]), &UNADMITTED);
    assert!(eventually(20, || written(&lab, 0) && written(&lab, 1)));
    // From just after the change until well past its deadline, another
    // run holds the lock: the rollback's first try cannot take it.
    let holders: Vec<Child> = (0..2).map(|i| hold_lock(&lab, i)).collect();
    let out = child.wait_with_output().unwrap();
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    for node in &lab.nodes {
        let h = host(&report, &node.name);
        assert_eq!(h["status"], "failed", "{report:#}");
        let error = h["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("rollback of an unconfirmed change failed"),
            "{error}"
        );
        assert!(lab.node_has(node.index, "/run/palisade/rollback/rollback-failed"));
        assert!(!lab.node_has(node.index, "/run/palisade/rollback/rolled-back"));
    }
    // Every later command says so, loudly.
    let out = lab.palisade(bin(), &args("verify", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    for node in &lab.nodes {
        let error = host(&report, &node.name)["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.contains("rollback of an unconfirmed change failed"),
            "{error}"
        );
    }
    // The lock free again, the next try puts the node back.
    for holder in holders {
        stop(holder, libc::SIGKILL);
    }
    assert!(
        eventually(40, || (0..2).all(|i| untouched(&lab, i))),
        "the rollback was not tried again"
    );
    for i in 0..2 {
        // The tables are back a moment before the rollback has checked
        // them and says so: `rolled-back` first, then the mark of the
        // failed try goes (the read ignores that mark beside `rolled-back`).
        assert!(eventually(10, || {
            lab.node_has(i, "/run/palisade/rollback/rolled-back")
                && !lab.node_has(i, "/run/palisade/rollback/rollback-failed")
        }));
        assert!(
            eventually(10, || lab.other_processes(i).is_empty()),
            "node {i} still runs {:?}",
            lab.other_processes(i)
        );
    }
    let out = lab.palisade(bin(), &args("verify", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(3), "{report:#}");
    assert_eq!(report["summary"]["absent"], 2, "{report:#}");
}

fn an_unprivileged_lock_holder_does_not_stop_the_rollback() {
    let lab = lab!(Spec {
        nodes: 1,
        ..Spec::default()
    });
    let out = lab.palisade(bin(), &args("apply", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = lab.on_node(0, &["stat", "-c", "%a %U", "/run/palisade"]);
    assert_eq!(String::from_utf8_lossy(&mode.stdout).trim(), "700 root");
    let before = lab.must(&lab.nodes[0].ns, &["iptables-save", "-t", "filter"]);

    unadmitted_source(&lab);
    let child = lab.spawn_palisade(
        bin(),
        &args("apply", &["--confirm-timeout", "5", "--extra", "192.0.2.0/24"]),
        &UNADMITTED,
    );
    assert!(eventually(20, || lab
        .must(&lab.nodes[0].ns, &["ipset", "list", "palisade4"])
        .contains("192.0.2.0/24")));
    // A local user tries to hold the lock through the rollback's deadline.
    let holder = spawn_on_node(
        &lab,
        0,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "flock",
            "/run/palisade/lock",
            "sleep",
            "300",
        ],
    );
    let out = child.wait_with_output().unwrap();
    stop(holder, libc::SIGKILL);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(host(&report, "node-00")["status"], "rolled-back", "{report:#}");
    assert!(
        !lab.must(&lab.nodes[0].ns, &["ipset", "list", "palisade4"])
            .contains("192.0.2.0/24"),
        "the rollback did not fire"
    );
    let after = lab.must(&lab.nodes[0].ns, &["iptables-save", "-t", "filter"]);
    let rules = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with('-'))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(rules(&after), rules(&before));
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

fn a_confirmation_puts_each_boot_file_on_disk_before_the_next() {
    let lab = lab!(Spec {
        nodes: 1,
        systemd: vec![0],
        ..Spec::default()
    });
    // Every file operation of the node's sshd and what it runs, traced.
    let main = lab.on_node(
        0,
        &["systemctl", "show", "-p", "MainPID", "--value", "ssh.service"],
    );
    let sshd = String::from_utf8_lossy(&main.stdout).trim().to_owned();
    let trace = "/var/tmp/palisade-trace";
    let strace = spawn_on_node(
        &lab,
        0,
        &[
            "strace",
            "-f",
            "-y",
            "-qq",
            "-o",
            trace,
            "-e",
            "trace=fsync,rename,renameat,renameat2,unlink,unlinkat,symlink,symlinkat",
            "-p",
            &sshd,
        ],
    );
    assert!(eventually(5, || lab.node_has(0, trace)), "strace did not start");
    std::thread::sleep(Duration::from_millis(500));
    let out = lab.palisade(bin(), &args("apply", &[]));
    stop(strace, libc::SIGINT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&lab.on_node(0, &["cat", trace]).stdout).into_owned();
    let ops: Vec<&str> = text.lines().filter(|l| l.ends_with("= 0")).collect();
    // The index of the first successful operation after `from` whose line
    // has every one of `words`.
    let at = |from: usize, words: &[&str]| -> usize {
        ops.iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| words.iter().all(|w| l.contains(w)))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {words:?} after operation {from} in:\n{}", ops.join("\n")))
    };
    let lib = "/var/lib/palisade";
    let units = "/etc/systemd/system";
    let wants = "/etc/systemd/system/basic.target.wants";
    // The new files flushed before any is put in place.
    let restore = at(
        0,
        &[
            "rename",
            "\"/var/lib/palisade/restore.sh.new\"",
            "\"/var/lib/palisade/restore.sh\"",
        ],
    );
    for file in ["restore.sh.new>", "backend.new>", "palisade.service.new>"] {
        assert!(
            at(0, &["fsync(", file]) < restore,
            "{file} flushed after the renames"
        );
    }
    // The script and the backend, then their directory; then the unit,
    // then its directory; then the link, then its directory.
    let backend = at(
        restore,
        &[
            "rename",
            "\"/var/lib/palisade/backend.new\"",
            "\"/var/lib/palisade/backend\"",
        ],
    );
    let lib_synced = at(backend, &["fsync(", &format!("<{lib}>")]);
    let unit = at(
        lib_synced,
        &[
            "rename",
            "palisade.service.new\"",
            "\"/etc/systemd/system/palisade.service\"",
        ],
    );
    let units_synced = at(unit, &["fsync(", &format!("<{units}>")]);
    let link = at(
        units_synced,
        &["symlink", "basic.target.wants/palisade.service\""],
    );
    at(link, &["fsync(", &format!("<{wants}>")]);
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

fn a_rollback_puts_palisades_rules_back_after_prerouting_was_edited() {
    let lab = lab!(Spec {
        nodes: 1,
        ..Spec::default()
    });
    let ns = &lab.nodes[0].ns;
    let out = lab.palisade(bin(), &args("apply", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let chain = || backend::mangle(&lab, ns, "iptables", &["-S", "PALISADE-GUARD"]);
    let set = || {
        let mut adds: Vec<String> = lab
            .must(ns, &["ipset", "save", "palisade4"])
            .lines()
            .filter(|l| l.starts_with("add "))
            .map(String::from)
            .collect();
        adds.sort();
        adds
    };
    let (chain_before, set_before) = (chain(), set());
    // Another tool's two rules go in above palisade's jump (now third).
    let foreign = ["-p", "tcp", "--dport", "9999", "-j", "ACCEPT"];
    for _ in 0..2 {
        let mut rule = vec!["-I", "PREROUTING", "1"];
        rule.extend(foreign);
        backend::mangle(&lab, ns, "iptables", &rule);
    }
    unadmitted_source(&lab);
    let child = lab.spawn_palisade(
        bin(),
        &args("apply", &["--confirm-timeout", "5", "--extra", "192.0.2.0/24"]),
        &UNADMITTED,
    );
    // The change puts the jump first again; inside its window the other
    // tool takes its rules away, so the jump's old place (third) is past
    // the end of PREROUTING.
    assert!(eventually(20, || {
        backend::mangle(&lab, ns, "iptables", &["-S", "PREROUTING"])
            .starts_with("-P PREROUTING ACCEPT\n-A PREROUTING -j PALISADE-GUARD\n")
    }));
    for _ in 0..2 {
        let mut rule = vec!["-D", "PREROUTING"];
        rule.extend(foreign);
        backend::mangle(&lab, ns, "iptables", &rule);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    // palisade's own rules and set are what they were before the change,
    // and the node says it is back, not that its rollback failed.
    assert!(lab.node_has(0, "/run/palisade/rollback/rolled-back"));
    assert!(!lab.node_has(0, "/run/palisade/rollback/rollback-failed"));
    assert_eq!(chain(), chain_before);
    assert_eq!(set(), set_before);
    let out = lab.palisade(bin(), &args("verify", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
