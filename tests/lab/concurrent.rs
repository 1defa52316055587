//! Two palisade runs at once on the same nodes, and sets of other tools'
//! named as palisade's temporary ones: what each run reports is what the
//! node did, and palisade touches only sets it made.

use std::process::{Child, Output};

use serde_json::Value;

use crate::harness::{Lab, Needs, Spec};
use crate::{bin, eventually, host, json, lab, lab_args, lab_tests, stderr, stdout};

lab_tests![Needs::Systemd =>
    two_applies_at_once_both_report_the_change_confirmed,
    other_tools_sets_named_as_palisades_temporary_ones_stay_untouched,
];

/// Two nodes; the second boots systemd, so both kinds of node are covered.
fn spec() -> Spec {
    Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    }
}

/// `palisade apply --json` in the background, each confirmation held back
/// `hold` seconds.
fn apply_holding(lab: &Lab, hold: &str, extra: &[&str]) -> Child {
    lab.spawn_palisade(
        bin(),
        &lab_args("apply", true, true, extra),
        &[("PALISADE_TEST_HOLD_CONFIRM", hold)],
    )
}

/// Whether node `i` has a change armed, waiting for its confirmation: its
/// snapshot armed, and the node lock free (the run that made it is past
/// its commit; `armed` is written before the commit starts, and a machine
/// under load takes a while over it).
fn armed(lab: &Lab, i: usize) -> bool {
    lab.node_has(i, "/run/palisade/rollback/armed")
        && lab
            .on_node(i, &["flock", "-n", "/run/palisade/lock", "true"])
            .status
            .success()
}

/// The report of a finished run, which must have exited 0 with every host
/// `changed`.
fn all_changed(out: &Output, which: &str) -> Value {
    let report = json(out);
    assert_eq!(out.status.code(), Some(0), "{which}: {report:#}\n{}", stderr(out));
    for name in ["node-00", "node-01"] {
        assert_eq!(host(&report, name)["status"], "changed", "{which}: {report:#}");
    }
    report
}

/// The nodes as the reports say: the change confirmed (no snapshot, no
/// rollback left to fire), and verify finds the whitelist with `extra`.
fn confirmed_on_every_node(lab: &Lab, extra: &[&str], member: Option<&str>) {
    for i in 0..2 {
        assert!(
            !lab.node_has(i, "/run/palisade/rollback"),
            "node {i} kept a snapshot"
        );
        if let Some(member) = member {
            let set = lab.must(&lab.nodes[i].ns, &["ipset", "list", "palisade4"]);
            assert!(set.contains(member), "node {i}: {set}");
        }
    }
    let out = lab.palisade(bin(), &lab_args("verify", true, true, extra));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

fn two_applies_at_once_both_report_the_change_confirmed() {
    let lab = lab!(spec());

    // The run that made the change confirms last: the other found it
    // pending and confirmed it first.
    let first = apply_holding(&lab, "5", &[]);
    assert!(eventually(30, || armed(&lab, 0) && armed(&lab, 1)));
    let second = lab.palisade(bin(), &lab_args("apply", true, true, &[]));
    let report = all_changed(&second, "the run that found the change pending");
    assert_eq!(
        host(&report, "node-00")["changes"][0]["kind"],
        "unconfirmed",
        "{report:#}"
    );
    let first = first.wait_with_output().unwrap();
    all_changed(&first, "the run that made the change");
    confirmed_on_every_node(&lab, &[], None);

    // The run that made the change confirms first: the other, which found
    // it pending, confirms it after.
    let extra = ["--extra", "192.0.2.0/24"];
    let first = apply_holding(&lab, "3", &extra);
    assert!(eventually(30, || armed(&lab, 0) && armed(&lab, 1)));
    let second = apply_holding(&lab, "8", &extra);
    let first = first.wait_with_output().unwrap();
    all_changed(&first, "the run that made the change");
    let second = second.wait_with_output().unwrap();
    all_changed(&second, "the run that found the change pending");
    confirmed_on_every_node(&lab, &extra, Some("192.0.2.0/24"));
}

fn other_tools_sets_named_as_palisades_temporary_ones_stay_untouched() {
    let lab = lab!(spec());
    // Another tool's sets (without the comment extension palisade makes its
    // own with), named as palisade's temporary sets: one palisade would
    // fill and swap in (node 0), one a rollback would fill (node 1).
    let foreign = [
        (0, "palisade4-new", "inet", "10.9.9.9"),
        (1, "palisade6-old", "inet6", "fd00::9"),
    ];
    for (i, name, family, member) in foreign {
        let ns = &lab.nodes[i].ns;
        lab.must(ns, &["ipset", "create", name, "hash:net", "family", family]);
        lab.must(ns, &["ipset", "add", name, member]);
    }
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}\n{}", stderr(&out));
    for (i, name, _, member) in foreign {
        let node = &lab.nodes[i];
        let h = host(&report, &node.name);
        assert_eq!(h["status"], "failed", "{report:#}");
        let error = h["error"].as_str().unwrap();
        assert!(
            error.contains(name) && error.contains("nothing was changed"),
            "{error}"
        );
        // The node as it was: only the other tool's set, as it was.
        assert_eq!(lab.must(&node.ns, &["ipset", "list", "-n"]), format!("{name}\n"));
        assert!(lab.must(&node.ns, &["ipset", "list", name]).contains(member));
        assert!(!lab.must(&node.ns, &["iptables-save"]).contains("PALISADE"));
        assert!(!lab.must(&node.ns, &["ip6tables-save"]).contains("PALISADE"));
        assert!(!lab.node_has(i, "/run/palisade/rollback"));
    }

    // Once the other tool's sets are gone, the nodes take the change; a set
    // of such a name made afterwards survives remove.
    for (i, name, _, _) in foreign {
        lab.must(&lab.nodes[i].ns, &["ipset", "destroy", name]);
    }
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    for (i, name, family, member) in foreign {
        let ns = &lab.nodes[i].ns;
        lab.must(ns, &["ipset", "create", name, "hash:net", "family", family]);
        lab.must(ns, &["ipset", "add", name, member]);
    }
    let out = lab.palisade(bin(), &lab_args("remove", true, false, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    for (i, name, _, member) in foreign {
        let ns = &lab.nodes[i].ns;
        assert_eq!(lab.must(ns, &["ipset", "list", "-n"]), format!("{name}\n"));
        assert!(lab.must(ns, &["ipset", "list", name]).contains(member));
    }
}
