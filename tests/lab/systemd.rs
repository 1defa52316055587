//! On nodes that boot systemd, as every CoreOS and Flatcar node does: the
//! boot restore unit, the systemd-run rollback timer, and the dead-man
//! switch across reboots and crashes (systemd-nspawn nodes, see the harness).

use std::net::IpAddr;

use serde_json::Value;

use crate::backend;
use crate::harness::{Lab, Needs, Spec};
use crate::{
    admit_connections_again, bin, drop_second_connections, eventually, held_apply, host, json, lab, lab_args,
    lab_tests, stderr, untouched,
};

lab_tests![Needs::Systemd =>
    apply_enables_the_unit_and_a_reboot_brings_the_whitelist_back,
    a_failed_confirmation_is_undone_by_the_systemd_timer,
    a_crash_inside_the_confirmation_window_boots_the_old_state,
    a_rollback_that_fires_during_a_slow_commit_leaves_the_node_as_it_was,
    a_remove_that_fails_half_way_leaves_no_boot_restore,
    published_ports_are_guarded_from_boot,
    a_node_without_flock_is_told_so,
    verify_and_systemctl_agree_on_whether_the_unit_is_enabled,
];

/// `nodes` nodes, all booting systemd.
fn spec(nodes: usize) -> Spec {
    Spec {
        nodes,
        systemd: (0..nodes).collect(),
        ..Spec::default()
    }
}

fn args<'a>(cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    lab_args(cmd, true, true, extra)
}

fn run(lab: &Lab, cmd: &str, extra: &[&str], code: i32) -> Value {
    let out = lab.palisade(bin(), &args(cmd, extra));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
    report
}

/// The members of node `i`'s IPv4 set, sorted (ipset lists them in hash
/// order, which differs between two sets with the same members).
fn members(lab: &Lab, i: usize) -> Vec<String> {
    let list = lab.must(&lab.nodes[i].ns, &["ipset", "list", "palisade4"]);
    let mut members: Vec<String> = list
        .lines()
        .skip_while(|l| !l.starts_with("Members:"))
        .skip(1)
        .map(String::from)
        .collect();
    members.sort();
    members
}

/// What `systemctl CMD UNIT` prints on the node.
fn systemctl(lab: &Lab, i: usize, cmd: &str, unit: &str) -> String {
    let out = lab.on_node(i, &["systemctl", cmd, unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The boot files on the node: restore script, unit file, unit enabled.
fn boot_files(lab: &Lab, i: usize) -> (bool, bool, bool) {
    (
        lab.node_has(i, "/var/lib/palisade/restore.sh"),
        lab.node_has(i, "/etc/systemd/system/palisade.service"),
        systemctl(lab, i, "is-enabled", "palisade.service") == "enabled",
    )
}

fn outsider_reaches(lab: &Lab, i: usize) -> bool {
    lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[i].ip4))
}

fn apply_enables_the_unit_and_a_reboot_brings_the_whitelist_back() {
    let mut lab = lab!(spec(2));
    let report = run(&lab, "apply", &[], 0);
    for node in &lab.nodes {
        let h = host(&report, &node.name);
        assert_eq!(h["status"], "changed", "{h}");
        // The boot restore is installed: no "not installed (no systemd)".
        assert_eq!(h["notes"].as_array().map_or(0, Vec::len), 0, "{h}");
    }
    for i in 0..2 {
        assert_eq!(boot_files(&lab, i), (true, true, true), "node {i}");
        assert!(!outsider_reaches(&lab, i));
        // The confirmed change left no timer and no snapshot behind.
        assert_ne!(
            systemctl(&lab, i, "is-active", "palisade-rollback.timer"),
            "active"
        );
        assert!(!lab.node_has(i, "/run/palisade/rollback"));
    }

    lab.reboot(0);
    assert_eq!(systemctl(&lab, 0, "is-active", "palisade.service"), "active");
    assert!(!outsider_reaches(&lab, 0), "the whitelist did not come back");
    assert!(lab.ssh_reachable(&lab.controller, IpAddr::V4(lab.nodes[0].ip4)));
    let report = run(&lab, "verify", &[], 0);
    assert_eq!(host(&report, "node-00")["status"], "ok");
    // A second apply after the reboot has nothing to do.
    let report = run(&lab, "apply", &[], 0);
    assert_eq!(report["summary"]["unchanged"], 2, "{report:#}");
}

fn a_failed_confirmation_is_undone_by_the_systemd_timer() {
    let lab = lab!(spec(1));
    let fail = |extra: &[&str]| {
        drop_second_connections(&lab, 0);
        let mut a = vec!["--confirm-timeout", "5"];
        a.extend_from_slice(extra);
        let report = run(&lab, "apply", &a, 2);
        admit_connections_again(&lab, 0);
        let h = host(&report, "node-00").clone();
        assert_eq!(h["status"], "rolled-back", "{h}");
        // The timer rolled it back, not palisade and not a failed step.
        let by = lab.on_node(0, &["cat", "/run/palisade/rollback/claim"]);
        assert_eq!(stdout_of(&by), "rollback", "{h}");
        let armed = lab.on_node(0, &["cat", "/run/palisade/rollback/armed"]);
        let armed = stdout_of(&armed);
        assert!(armed.starts_with("systemd palisade-rollback-"), "{armed}");
    };

    // A first apply: back to no whitelist, no boot files, no unit.
    fail(&[]);
    assert!(untouched(&lab, 0));
    assert_eq!(boot_files(&lab, 0), (false, false, false));
    assert!(outsider_reaches(&lab, 0));

    // Over an applied whitelist: back to exactly it, boot files and all.
    run(&lab, "apply", &[], 0);
    let before = members(&lab, 0);
    let digest = lab.on_node(0, &["sha256sum", "/var/lib/palisade/restore.sh"]);
    fail(&["--extra", "192.0.2.0/24"]);
    assert_eq!(members(&lab, 0), before);
    assert_eq!(boot_files(&lab, 0), (true, true, true));
    let after = lab.on_node(0, &["sha256sum", "/var/lib/palisade/restore.sh"]);
    assert_eq!(stdout_of(&after), stdout_of(&digest), "the boot restore changed");
    run(&lab, "verify", &[], 0);
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn a_crash_inside_the_confirmation_window_boots_the_old_state() {
    let mut lab = lab!(spec(1));
    // A first apply, unconfirmed when the node loses power: it boots with
    // no palisade rules at all, and nothing enabled.
    let mut child = held_apply(&lab, &["--confirm-timeout", "40"]);
    assert!(
        eventually(30, || !untouched(&lab, 0)),
        "the change never reached the node"
    );
    lab.crash(0);
    let _ = child.kill();
    let _ = child.wait();
    assert!(untouched(&lab, 0), "the node booted into the unconfirmed change");
    assert_eq!(boot_files(&lab, 0), (false, false, false));
    assert!(outsider_reaches(&lab, 0));

    // Over a confirmed whitelist: a re-apply with a new member, unconfirmed
    // at the crash, boots the previous whitelist.
    run(&lab, "apply", &[], 0);
    let before = members(&lab, 0);
    let mut child = held_apply(&lab, &["--confirm-timeout", "40", "--extra", "192.0.2.0/24"]);
    assert!(eventually(30, || members(&lab, 0).contains(&"192.0.2.0/24".to_owned())));
    lab.crash(0);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        members(&lab, 0),
        before,
        "the node booted into the unconfirmed change"
    );
    assert!(!outsider_reaches(&lab, 0));
    let report = run(&lab, "verify", &[], 0);
    assert_eq!(host(&report, "node-00")["status"], "ok");
}

fn a_rollback_that_fires_during_a_slow_commit_leaves_the_node_as_it_was() {
    let lab = lab!(spec(1));
    run(&lab, "apply", &[], 0);
    let before = members(&lab, 0);
    let rules = |lab: &Lab| {
        let ns = &lab.nodes[0].ns;
        lab.must(ns, &["iptables", "-w", "-S"]) + &lab.must(ns, &["ip6tables", "-w", "-S"])
    };
    let rules_before = rules(&lab);
    // The commit's last step (ip6tables-restore, after both swaps and the
    // IPv4 rules) takes 8 s, once: the 5 s timer fires in the middle of it.
    let wrapper = "rm -f /usr/sbin/ip6tables-restore && cat >/usr/sbin/ip6tables-restore <<'EOF'\n\
                   #!/bin/sh\n\
                   case \" $* \" in *' --test '*) ;; *) if [ -e /run/lab-slow ]; then rm -f /run/lab-slow; sleep 8; fi ;; esac\n\
                   exec /usr/sbin/xtables-nft-multi ip6tables-restore \"$@\"\n\
                   EOF\n\
                   chmod 0755 /usr/sbin/ip6tables-restore && touch /run/lab-slow";
    let out = lab.on_node(0, &["sh", "-c", wrapper]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let report = run(
        &lab,
        "apply",
        &["--confirm-timeout", "5", "--extra", "192.0.2.0/24"],
        2,
    );
    assert_eq!(host(&report, "node-00")["status"], "rolled-back", "{report:#}");
    assert!(!lab.node_has(0, "/run/lab-slow"), "the commit was never slow");
    // Entirely old: the rollback waited for the commit, then undid all of it.
    assert_eq!(members(&lab, 0), before);
    assert_eq!(rules(&lab), rules_before);
    let by = lab.on_node(0, &["cat", "/run/palisade/rollback/claim"]);
    assert_eq!(stdout_of(&by), "rollback");
    run(&lab, "verify", &[], 0);
}

fn a_remove_that_fails_half_way_leaves_no_boot_restore() {
    let mut lab = lab!(spec(1));
    run(&lab, "apply", &[], 0);
    // Another tool's rule uses palisade's set: `ipset destroy` fails.
    lab.must(
        &lab.nodes[0].ns,
        &[
            "iptables",
            "-w",
            "-A",
            "FORWARD",
            "-m",
            "set",
            "--match-set",
            "palisade4",
            "src",
            "-j",
            "ACCEPT",
        ],
    );
    let out = lab.palisade(bin(), &args("remove", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(host(&report, "node-00")["status"], "failed", "{report:#}");
    // The boot files went first.
    assert_eq!(boot_files(&lab, 0), (false, false, false));
    lab.reboot(0);
    assert!(untouched(&lab, 0), "a boot restore was left behind");
    assert!(outsider_reaches(&lab, 0));
}

fn published_ports_are_guarded_from_boot() {
    let mut lab = lab!(spec(2));
    let node0 = IpAddr::V4(lab.nodes[0].ip4);
    // Docker is installed on node 0.
    let out = lab.on_node(
        0,
        &[
            "sh",
            "-c",
            "printf '#!/bin/sh\\n' >/usr/bin/dockerd && chmod 0755 /usr/bin/dockerd",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let container = lab.add_container(0, 8080);
    let _service = lab.listen(&container, 80);
    run(&lab, "apply", &[], 0);
    assert!(!lab.tcp_connects(&lab.outsider, node0, 8080));

    lab.reboot(0);
    // Before Docker starts, the boot restore has put the guard first in
    // mangle PREROUTING, ahead of any DNAT Docker will add; it makes
    // nothing of Docker's.
    let ns = lab.nodes[0].ns.clone();
    let prerouting = backend::mangle(&lab, &ns, "iptables", &["-S", "PREROUTING"]);
    assert_eq!(
        prerouting.lines().nth(1),
        Some("-A PREROUTING -j PALISADE-GUARD"),
        "{prerouting}"
    );
    assert!(
        !lab.must(&ns, &["iptables-save", "-t", "filter"])
            .contains("DOCKER-USER")
    );
    // Docker starts and publishes the port again.
    let container = lab.add_container(0, 8080);
    let _service = lab.listen(&container, 80);
    assert!(
        !lab.tcp_connects(&lab.outsider, node0, 8080),
        "the outsider reaches the published port after the reboot"
    );
    assert!(lab.tcp_connects(&lab.controller, node0, 8080));
    assert!(lab.tcp_connects(&lab.nodes[1].ns, node0, 8080));
    let report = run(&lab, "verify", &[], 0);
    assert_eq!(host(&report, "node-00")["status"], "ok", "{report:#}");
}

fn a_node_without_flock_is_told_so() {
    let lab = lab!(spec(2));
    let out = lab.on_node(0, &["rm", "-f", "/usr/bin/flock"]);
    assert!(out.status.success());
    let out = lab.palisade(bin(), &args("apply", &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let error = host(&report, "node-00")["error"].as_str().unwrap_or_default();
    assert_eq!(error, "missing on the node: flock", "{report:#}");
    assert!(untouched(&lab, 0));
    assert_eq!(host(&report, "node-01")["status"], "changed");
}

/// The confirmation enables the unit by its [Install] link, without
/// systemctl, and verify reads that link: systemd agrees with both, a unit
/// disabled by systemctl is drift, and apply enables it again.
fn verify_and_systemctl_agree_on_whether_the_unit_is_enabled() {
    let mut lab = lab!(spec(1));
    run(&lab, "apply", &[], 0);
    assert_eq!(boot_files(&lab, 0), (true, true, true));
    assert!(lab.node_has(0, "/etc/systemd/system/basic.target.wants/palisade.service"));

    let out = lab.on_node(0, &["systemctl", "disable", "palisade.service"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(boot_files(&lab, 0), (true, true, false));
    let report = run(&lab, "verify", &[], 3);
    let h = host(&report, "node-00");
    assert_eq!(h["status"], "drift", "{h}");
    let kinds: Vec<&str> = h["changes"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["unit-disabled"], "{h}");

    let report = run(&lab, "apply", &[], 0);
    assert_eq!(host(&report, "node-00")["status"], "changed", "{report:#}");
    assert_eq!(boot_files(&lab, 0), (true, true, true));
    assert_eq!(host(&run(&lab, "verify", &[], 0), "node-00")["status"], "ok");
    // And the next boot runs it.
    lab.reboot(0);
    assert_eq!(systemctl(&lab, 0, "is-active", "palisade.service"), "active");
    assert!(!outsider_reaches(&lab, 0), "the whitelist did not come back");
}
