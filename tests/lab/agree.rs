//! plan and apply are decided by the same code, so they cannot disagree:
//! on a node in each interesting state (fresh, converged, drifted, the jump
//! moved down mangle PREROUTING, Docker present), what `plan` says it would change is
//! exactly what `apply` then changes, and `verify` finds nothing after.

use serde_json::Value;

use crate::backend;
use crate::harness::{Lab, Needs, Spec};
use crate::{bin, json, lab, lab_args, lab_tests};

lab_tests![Needs::Plain =>
    plan_and_apply_agree_in_every_state,
];

/// Every host's status and changes, by name: what the two commands must
/// agree on (timings and elapsed time differ run to run).
fn decisions(report: &Value) -> Vec<(String, String, Value)> {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["status"].as_str().unwrap().to_owned(),
                h["changes"].clone(),
            )
        })
        .collect()
}

/// Runs plan then apply, checks they decide the same for every host, then
/// that verify finds every host as it should be. Returns plan's decisions.
fn plan_then_apply(lab: &Lab, state: &str) -> Vec<(String, String, Value)> {
    let plan = lab.palisade(bin(), &lab_args("plan", true, true, &[]));
    let plan = decisions(&json(&plan));
    let before: Vec<String> = (0..lab.nodes.len()).map(|i| firewall(lab, i)).collect();
    let apply = lab.palisade(bin(), &lab_args("apply", true, true, &[]));
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{state}: {}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let apply = decisions(&json(&apply));
    assert_eq!(plan.len(), apply.len(), "{state}");
    for ((name, plan_status, plan_changes), (apply_name, apply_status, apply_changes)) in
        plan.iter().zip(&apply)
    {
        assert_eq!(name, apply_name, "{state}");
        let expected = match plan_status.as_str() {
            "would-change" => "changed",
            "unchanged" => "unchanged",
            other => panic!("{state}: {name}: plan said {other}"),
        };
        assert_eq!(apply_status, expected, "{state}: {name}");
        // What plan calls unchanged, apply does not touch, on the node.
        if expected == "unchanged" {
            let i = lab.nodes.iter().position(|n| n.name == *name).unwrap();
            assert_eq!(
                before[i],
                firewall(lab, i),
                "{state}: {name}: apply changed an unchanged node"
            );
        }
        assert_eq!(
            plan_changes, apply_changes,
            "{state}: {name}: plan and apply disagree"
        );
    }
    let verify = lab.palisade(bin(), &lab_args("verify", true, true, &[]));
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{state}: verify after apply: {}",
        crate::stdout(&verify)
    );
    plan
}

/// A node's netfilter state, without counters or timestamps.
fn firewall(lab: &Lab, i: usize) -> String {
    let ns = &lab.nodes[i].ns;
    ["iptables -S", "ip6tables -S", "iptables -t nat -S", "ipset save"]
        .iter()
        .map(|cmd| lab.must(ns, &cmd.split(' ').collect::<Vec<_>>()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn changed(decisions: &[(String, String, Value)]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|(_, status, _)| status == "would-change")
        .map(|(name, _, _)| name.as_str())
        .collect()
}

fn plan_and_apply_agree_in_every_state() {
    let mut lab = lab!(Spec {
        nodes: 3,
        ..Spec::default()
    });
    let fresh = plan_then_apply(&lab, "fresh");
    assert_eq!(changed(&fresh), ["node-00", "node-01", "node-02"]);

    let converged = plan_then_apply(&lab, "converged");
    assert!(changed(&converged).is_empty(), "{converged:?}");

    // Drifted: a member gone from node-01's set, an extra one on node-02.
    let node0 = lab.nodes[0].ip4.to_string();
    lab.must(&lab.nodes[1].ns, &["ipset", "del", "palisade4", &node0]);
    lab.must(&lab.nodes[2].ns, &["ipset", "add", "palisade4", "6.6.6.6"]);
    let drifted = plan_then_apply(&lab, "drifted");
    assert_eq!(changed(&drifted), ["node-01", "node-02"]);

    // The jump moved: another tool put a rule of its own first in mangle
    // PREROUTING.
    backend::mangle(
        &lab,
        &lab.nodes[0].ns,
        "iptables",
        &[
            "-I",
            "PREROUTING",
            "1",
            "-p",
            "tcp",
            "--dport",
            "9",
            "-j",
            "ACCEPT",
        ],
    );
    let moved = plan_then_apply(&lab, "jump moved");
    assert_eq!(changed(&moved), ["node-00"]);

    // Docker came: its DOCKER-USER and DNAT change nothing palisade keeps
    // (the guard before DNAT covers published ports).
    lab.add_container(2, 8080);
    let docker = plan_then_apply(&lab, "Docker present");
    assert!(changed(&docker).is_empty(), "{docker:?}");
}
