//! The move to the guard alone (issue 21): versions before it kept an
//! INPUT chain and a Docker guard (reached from DOCKER-USER) beside the
//! guard before DNAT. The guard drops everything they did, so an apply
//! takes them away, after the guard is in, inside one protected change.
//! Real netfilter and real packets, on a node with systemd and one
//! without.

use std::net::IpAddr;

use serde_json::Value;

use crate::backend;
use crate::harness::{Lab, Needs, Spec};
use crate::nftables::iptables_state;
use crate::{bin, json, kinds, lab, lab_args, lab_tests, stderr, unconfirmed_apply};

lab_tests![Needs::Systemd =>
    a_node_of_an_earlier_version_moves_to_the_guard_alone_in_one_protected_change,
];

fn run(lab: &Lab, cmd: &str, extra: &[&str], code: i32) -> Value {
    let out = lab.palisade(bin(), &lab_args(cmd, true, true, extra));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
    report
}

/// Puts on node `i`, beside the guard an apply made, what the versions
/// before the guard alone made too, as they made it: the INPUT chain
/// `PALISADE` with the guard's admissions (ACCEPT where the guard
/// RETURNs), jumped to first from INPUT, and (IPv4, where Docker made
/// DOCKER-USER) the Docker guard `PALISADE-DOCKER`, jumped to first from
/// DOCKER-USER.
fn add_old_layout(lab: &Lab, i: usize) {
    let ns = &lab.nodes[i].ns;
    for (ipt, set) in [("iptables", "palisade4"), ("ip6tables", "palisade6")] {
        let guard = backend::mangle(lab, ns, ipt, &["-S", "PALISADE-GUARD"]);
        let mut lines = vec!["*filter".to_owned(), ":PALISADE - [0:0]".to_owned()];
        lines.extend(guard.lines().filter(|l| l.starts_with("-A ")).map(|l| {
            l.replacen("-A PALISADE-GUARD ", "-A PALISADE ", 1)
                .replace(" -j RETURN", " -j ACCEPT")
        }));
        lines.push("-I INPUT 1 -j PALISADE".to_owned());
        if ipt == "iptables" {
            lines.extend(
                [
                    ":DOCKER-USER - [0:0]".to_owned(),
                    ":PALISADE-DOCKER - [0:0]".to_owned(),
                    "-A PALISADE-DOCKER -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment palisade -j RETURN"
                        .to_owned(),
                    "-A PALISADE-DOCKER -m conntrack ! --ctstate DNAT -j RETURN".to_owned(),
                    format!("-A PALISADE-DOCKER -m set --match-set {set} src -j RETURN"),
                    "-A PALISADE-DOCKER -j DROP".to_owned(),
                    "-A DOCKER-USER -j PALISADE-DOCKER".to_owned(),
                    "-A DOCKER-USER -j RETURN".to_owned(),
                ],
            );
        }
        lines.push("COMMIT".to_owned());
        let input = lines.join("\n") + "\n";
        let out = lab.on_node(
            i,
            &[
                "sh",
                "-c",
                &format!("printf '%s' '{input}' | {ipt}-restore -w 5 --noflush"),
            ],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn a_node_of_an_earlier_version_moves_to_the_guard_alone_in_one_protected_change() {
    let mut lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    let _listeners = [lab.listen(&lab.nodes[0].ns, 81), lab.listen(&lab.nodes[1].ns, 81)];
    run(&lab, "apply", &[], 0);
    for i in 0..2 {
        add_old_layout(&lab, i);
    }
    let before: Vec<String> = (0..2).map(|i| iptables_state(&lab, i)).collect();
    assert!(before[0].contains("-A INPUT -j PALISADE"), "{}", before[0]);
    assert!(
        before[0].contains("-A DOCKER-USER -j PALISADE-DOCKER"),
        "{}",
        before[0]
    );

    // verify and plan name what goes, and only that.
    let report = run(&lab, "verify", &[], 3);
    assert_eq!(
        kinds(&report, "node-00"),
        ["old-chains-left", "old-chains-left"],
        "{report:#}"
    );
    let items = &crate::host(&report, "node-00")["changes"][0]["items"];
    assert_eq!(
        *items,
        serde_json::json!([
            "jump INPUT -> PALISADE",
            "jump DOCKER-USER -> PALISADE-DOCKER",
            "chain PALISADE",
            "chain PALISADE-DOCKER"
        ]),
        "{report:#}"
    );

    // A failed confirmation in the middle: each node is entirely old.
    unconfirmed_apply(&lab, 2, &[]);
    for (i, before) in before.iter().enumerate() {
        assert_eq!(&iptables_state(&lab, i), before, "node {i}: not as it was");
    }

    // Confirmed: the guard alone, the whitelist unbroken, Docker's own
    // DOCKER-USER left as Docker made it.
    let report = run(&lab, "apply", &[], 0);
    assert_eq!(crate::statuses(&report), ["changed", "changed"], "{report:#}");
    for i in 0..2 {
        let ns = &lab.nodes[i].ns;
        for save in ["iptables-save", "ip6tables-save"] {
            let filter = lab.must(ns, &[save, "-t", "filter"]);
            assert!(!filter.contains("PALISADE"), "node {i}: {filter}");
            assert!(
                lab.must(ns, &[save, "-t", "mangle"])
                    .contains("-A PREROUTING -j PALISADE-GUARD")
            );
        }
        let v4 = IpAddr::V4(lab.nodes[i].ip4);
        assert!(
            !lab.tcp_connects(&lab.outsider, v4, 81),
            "node {i}: the outsider got in"
        );
        assert!(lab.tcp_connects(&lab.controller, v4, 81), "node {i}");
        assert!(lab.tcp_connects(&lab.nodes[1 - i].ns, v4, 81), "node {i}");
    }
    assert!(
        lab.must(&lab.nodes[0].ns, &["iptables", "-w", "-S", "DOCKER-USER"])
            .contains("-A DOCKER-USER -j RETURN")
    );
    run(&lab, "verify", &[], 0);

    // The systemd node boots into the guard, and nothing in the filter
    // table.
    lab.reboot(1);
    let _listener = lab.listen(&lab.nodes[1].ns, 81);
    let ns = &lab.nodes[1].ns;
    assert!(
        !lab.must(ns, &["iptables-save", "-t", "filter"])
            .contains("PALISADE")
    );
    assert!(!lab.tcp_connects(&lab.outsider, IpAddr::V4(lab.nodes[1].ip4), 81));
    run(&lab, "verify", &[], 0);
}
