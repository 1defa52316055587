//! The operator's real path: through a bastion (`--jump`) that is a node of
//! the fleet, as when the first master doubles as the jump host, and no
//! wrong refusal of an operator the chain admits other than by the set.

use std::net::IpAddr;
use std::process::Output;

use crate::harness::{CONTROLLER4, Lab, Needs, Spec};
use crate::{bin, host, json, lab, lab_args, lab_tests, statuses, stderr, untouched};

lab_tests![Needs::Plain =>
    a_bastion_node_that_would_lock_the_operator_out_stops_every_node,
    a_bastion_node_is_proved_over_a_new_connection_from_the_controller,
    a_bastion_outside_the_inventory_is_checked_as_the_nodes_see_it,
    ssh_open_to_everyone_admits_the_operator_without_allow,
    an_operator_on_an_accepted_interface_is_not_refused,
];

/// Three plain nodes; the controller reaches nodes 1 and 2 only through
/// node-00, the bastion (new connections straight to them are dropped, in
/// INPUT after where palisade's jump goes).
fn bastion_lab() -> Lab {
    let lab = lab!(Spec {
        nodes: 3,
        ..Spec::default()
    });
    for node in &lab.nodes[1..] {
        let src = CONTROLLER4.to_string();
        lab.must(
            &node.ns,
            &[
                "iptables", "-w", "-A", "INPUT", "-s", &src, "-p", "tcp", "--dport", "22", "-j", "DROP",
            ],
        );
    }
    lab
}

/// `palisade CMD --json` with the lab's inventory and key, the bastion
/// node-00, and none of the controller's addresses allowed unless `extra`
/// allows them.
fn via_bastion(lab: &Lab, cmd: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let jump = format!("core@{}", lab.nodes[0].ip4);
    let mut args = lab_args(cmd, true, false, &["--jump", &jump]);
    args.extend_from_slice(extra);
    lab.palisade_with_env(bin(), &args, env)
}

fn a_bastion_node_that_would_lock_the_operator_out_stops_every_node() {
    let lab = bastion_lab();
    // The nodes see the bastion connect (a node, so admitted); the bastion
    // sees the controller, whose address is not allowed.
    let other = ["--allow", "198.18.0.77"];
    for cmd in ["plan", "apply"] {
        let out = via_bastion(&lab, cmd, &other, &[]);
        let report = json(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {report:#} {}", stderr(&out));
        assert_eq!(statuses(&report), vec!["refused"; 3], "{cmd}: {report:#}");
        for node in &lab.nodes {
            let error = host(&report, &node.name)["error"].as_str().unwrap();
            assert!(
                error.contains("the bastion node-00 sees palisade connecting from 198.18.0.1")
                    && error.contains("--allow 198.18.0.1"),
                "{cmd} {}: {error}",
                node.name
            );
        }
    }
    for i in 0..3 {
        assert!(untouched(&lab, i), "node {i} was written");
    }
    // A new session from the operator's own machine still gets in.
    assert!(lab.ssh_reachable(&lab.controller, IpAddr::V4(lab.nodes[0].ip4)));
}

fn a_bastion_node_is_proved_over_a_new_connection_from_the_controller() {
    let lab = bastion_lab();
    let me = CONTROLLER4.to_string();
    let allowed = ["--allow", &me];
    let out = via_bastion(&lab, "apply", &allowed, &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["changed"; 3], "{report:#}");
    let bastion = IpAddr::V4(lab.nodes[0].ip4);
    assert!(lab.ssh_reachable(&lab.controller, bastion));
    assert!(!lab.ssh_reachable(&lab.outsider, bastion));

    // The proof before confirming is a new connection from the controller
    // to the bastion, not only a tunnel from inside it: made from an
    // address the bastion does not admit, it fails, and every node rolls
    // its next change back by itself.
    lab.must(
        &lab.controller,
        &["ip", "addr", "add", "198.18.0.50/15", "dev", "eth0"],
    );
    let next = [
        "--allow",
        &me,
        "--extra",
        "192.0.2.0/24",
        "--confirm-timeout",
        "5",
    ];
    let hook = [("PALISADE_TEST_CONFIRM_SOURCE", "198.18.0.50")];
    let out = via_bastion(&lab, "apply", &next, &hook);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["rolled-back"; 3], "{report:#}");
    assert!(
        host(&report, "node-01")["error"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "a new connection to the bastion {bastion}:22 got no SSH banner"
            )),
        "{report:#}"
    );
    let out = via_bastion(&lab, "verify", &allowed, &[]);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));
    assert!(lab.ssh_reachable(&lab.controller, bastion));
}

fn a_bastion_outside_the_inventory_is_checked_as_the_nodes_see_it() {
    let lab = bastion_lab();
    lab.inventory_of(&[1, 2]);
    let me = CONTROLLER4.to_string();
    // The nodes see the bastion, not in the whitelist: today's refusal.
    let out = via_bastion(&lab, "apply", &["--allow", &me], &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(statuses(&report), vec!["refused"; 2], "{report:#}");
    let bastion = lab.nodes[0].ip4.to_string();
    let error = host(&report, "node-01")["error"].as_str().unwrap();
    assert!(error.contains(&format!("--allow {bastion}")), "{error}");
    assert!(untouched(&lab, 1) && untouched(&lab, 2));

    // Allowed, the nodes change, and the report says the bastion's own
    // firewall is not palisade's.
    let out = via_bastion(&lab, "apply", &["--allow", &me, "--allow", &bastion], &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["changed"; 2], "{report:#}");
    let notes = host(&report, "node-02")["notes"].to_string();
    assert!(
        notes.contains("bastion outside the inventory") && notes.contains("not palisade's to check"),
        "{notes}"
    );
    assert!(untouched(&lab, 0));
}

fn ssh_open_to_everyone_admits_the_operator_without_allow() {
    let lab = lab!(Spec {
        nodes: 2,
        ..Spec::default()
    });
    // No --allow at all: port 22 open to everyone admits the operator.
    let out = lab.palisade(bin(), &lab_args("apply", true, false, &["--open", "all=tcp/22"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["changed"; 2], "{report:#}");
    for node in &lab.nodes {
        let to = IpAddr::V4(node.ip4);
        assert!(lab.ssh_reachable(&lab.controller, to), "{}", node.name);
        assert!(lab.ssh_reachable(&lab.outsider, to), "{}", node.name);
        // Everything else still keeps the outsider out.
        let listener = lab.listen(&node.ns, 8080);
        assert!(!lab.tcp_connects(&lab.outsider, to, 8080), "{}", node.name);
        drop(listener);
    }
}

/// A VPN: the operator reaches the node over a link of its own (`vpn0` on
/// the node, a network of its own), whose interface the whitelist accepts;
/// the operator's address is in no list. The node routes it by `vpn0`, so
/// the check evaluates the accepted interface, and the apply goes ahead and
/// is proved over that link.
fn an_operator_on_an_accepted_interface_is_not_refused() {
    let lab = lab!(Spec {
        nodes: 1,
        ..Spec::default()
    });
    let node = &lab.nodes[0];
    lab.must(
        &node.ns,
        &[
            "ip", "link", "add", "vpn0", "type", "veth", "peer", "name", "vpnc",
        ],
    );
    lab.must(&node.ns, &["ip", "link", "set", "vpnc", "netns", &lab.controller]);
    lab.must(&node.ns, &["ip", "addr", "add", "198.19.250.2/30", "dev", "vpn0"]);
    lab.must(&node.ns, &["ip", "link", "set", "vpn0", "up"]);
    lab.must(
        &lab.controller,
        &["ip", "addr", "add", "198.19.250.1/30", "dev", "vpnc"],
    );
    lab.must(&lab.controller, &["ip", "link", "set", "vpnc", "up"]);
    // palisade reaches the node over the VPN; its other addresses are
    // whitelisted as every node's are.
    std::fs::write(
        &lab.inventory,
        format!(
            "[[master]]\nname = \"{}\"\naddress = \"198.19.250.2\"\naddresses = [\"{}\", \"{}\"]\n",
            node.name, node.ip4, node.ip6
        ),
    )
    .unwrap();
    let vpn: IpAddr = "198.19.250.2".parse().unwrap();

    // Without the interface, the operator's address is in no list: refused.
    let out = lab.palisade(bin(), &lab_args("apply", true, false, &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(statuses(&report), ["refused"], "{report:#}");
    assert!(untouched(&lab, 0));

    // Accepting the VPN's interface admits the operator: applied, and
    // proved over the VPN by a new connection.
    let out = lab.palisade(bin(), &lab_args("apply", true, false, &["--interface", "vpn0"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), ["changed"], "{report:#}");
    assert!(lab.ssh_reachable(&lab.controller, vpn));
    // Anyone else, on the node's own network, is dropped.
    assert!(!lab.ssh_reachable(&lab.outsider, IpAddr::V4(node.ip4)));
    let out = lab.palisade(bin(), &lab_args("verify", true, false, &["--interface", "vpn0"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
