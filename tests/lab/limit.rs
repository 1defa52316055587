//! `--limit` and the retry file against real nodes: a limited run changes
//! only the nodes it selects, while the whitelist it pushes still admits
//! every node of the inventory; a run with an unreachable node writes the
//! retry file, and `--limit @FILE` then works on that node alone.

use std::net::IpAddr;

use serde_json::Value;

use crate::harness::{Lab, Needs, Spec};
use crate::{bin, host, json, lab, lab_args, lab_tests, stderr, untouched};

lab_tests![Needs::Plain =>
    a_limited_apply_changes_only_its_nodes_and_admits_every_node,
    an_unreachable_node_is_retried_from_the_retry_file,
];

fn spec(nodes: usize) -> Spec {
    Spec {
        nodes,
        ..Spec::default()
    }
}

/// The names in a `--json` report, in its order.
fn names(report: &Value) -> Vec<String> {
    report["hosts"]
        .as_array()
        .unwrap_or_else(|| panic!("no hosts in {report}"))
        .iter()
        .map(|h| h["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Members of node `i`'s palisade sets, both families.
fn members(lab: &Lab, i: usize) -> String {
    let ns = &lab.nodes[i].ns;
    lab.must(ns, &["ipset", "list", "palisade4"]) + &lab.must(ns, &["ipset", "list", "palisade6"])
}

fn a_limited_apply_changes_only_its_nodes_and_admits_every_node() {
    let lab = lab!(spec(3));
    // node-00 is the master, node-01 and node-02 agents.
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["--limit", "master"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", stderr(&out));
    assert_eq!(names(&report), ["node-00"], "{report:#}");
    assert_eq!(host(&report, "node-00")["status"], "changed", "{report:#}");
    assert!(
        untouched(&lab, 1) && untouched(&lab, 2),
        "a node outside the limit was changed"
    );

    // The limited node's whitelist is the whole fleet's, proven with packets.
    let on_master = members(&lab, 0);
    for node in &lab.nodes[1..] {
        assert!(
            on_master.contains(&node.ip4.to_string()),
            "{} missing:\n{on_master}",
            node.ip4
        );
        assert!(
            on_master.contains(&node.ip6.to_string()),
            "{} missing:\n{on_master}",
            node.ip6
        );
        assert!(
            lab.ssh_reachable(&node.ns, IpAddr::V4(lab.nodes[0].ip4)),
            "{} -> node-00",
            node.name
        );
    }
    assert!(!lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[0].ip4)));

    // The rest, by exclusion: node-00 is neither contacted nor changed again.
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["--limit", "!master"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", stderr(&out));
    assert_eq!(names(&report), ["node-01", "node-02"], "{report:#}");
    for i in 1..3 {
        let m = members(&lab, i);
        for other in lab.nodes.iter().filter(|o| o.index != i) {
            assert!(
                m.contains(&other.ip4.to_string()),
                "node-0{i} lacks {}:\n{m}",
                other.ip4
            );
        }
    }
    // verify of the whole fleet: all of it converged, one role at a time.
    let out = lab.palisade(bin(), &lab_args("verify", true, true, &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", stderr(&out));
    assert_eq!(names(&report).len(), 3);
}

fn an_unreachable_node_is_retried_from_the_retry_file() {
    let mut lab = lab!(spec(3));
    // The lab's known_hosts is `known_hosts` in the lab directory, so the
    // retry file is `failed` there.
    let retry = lab.dir.join("failed");
    lab.stop_sshd(1);
    let out = lab.palisade(bin(), &lab_args("apply", false, true, &["--retries", "0"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "1 host failed (listed in failed); to retry only them, run the same command with --limit @failed"
        ),
        "{err}"
    );
    let text = std::fs::read_to_string(&retry).expect("the retry file is written");
    let listed: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed, ["node-01"], "{text}");
    assert!(text.starts_with("# palisade apply"), "{text}");
    assert!(untouched(&lab, 1));
    assert!(!untouched(&lab, 0) && !untouched(&lab, 2));

    // Under --json the file is written too, and the hint stays off stderr.
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["--retries", "0"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(host(&report, "node-01")["status"], "unreachable", "{report:#}");
    assert!(!stderr(&out).contains("--limit @"), "{}", stderr(&out));
    assert!(retry.exists());

    // The retry works on node-01 alone, and once it succeeds the file goes.
    lab.start_sshd(1);
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["--limit", "@failed"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", stderr(&out));
    assert_eq!(names(&report), ["node-01"], "{report:#}");
    assert_eq!(host(&report, "node-01")["status"], "changed", "{report:#}");
    assert!(!retry.exists(), "the retry file outlived a retry that worked");
    let m = members(&lab, 1);
    for other in [0, 2] {
        assert!(m.contains(&lab.nodes[other].ip4.to_string()), "{m}");
    }
    // With nothing left to retry, `@failed` names a file that is not there.
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &["--limit", "@failed"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--limit @failed: cannot read"),
        "{}",
        stderr(&out)
    );
}
