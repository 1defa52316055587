//! The way back from the nftables backend to iptables (issue 22): one
//! protected change, as the way there is. The iptables guard goes in
//! first, then palisade's table goes, each step's undo recorded before it
//! runs: a missed confirmation leaves each node entirely as it was, the
//! table byte for byte; once confirmed, the node has the iptables guard
//! alone, and boots into it.

use std::net::IpAddr;

use serde_json::Value;

use crate::backend::table;
use crate::harness::{Lab, Needs, Spec};
use crate::nftables::iptables_state;
use crate::{bin, host, json, kinds, lab, lab_args, lab_tests, stderr, unconfirmed_apply, untouched};

lab_tests![Needs::Systemd =>
    a_node_moves_back_from_nftables_to_iptables_in_one_protected_change,
];

const NFT: &str = "--backend=nftables";

/// palisade with `args` (the default backend, iptables, unless they say
/// otherwise), which must exit with `code`.
fn run(lab: &Lab, cmd: &str, args: &[&str], code: i32) -> Value {
    let out = lab.palisade(bin(), &lab_args(cmd, true, true, args));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
    report
}

fn v4(lab: &Lab, i: usize) -> IpAddr {
    IpAddr::V4(lab.nodes[i].ip4)
}

/// Node `i` has the iptables guard alone: no table; the outsider is
/// dropped, the controller and the other node get through.
fn on_iptables(lab: &Lab, i: usize) {
    assert!(
        table(lab, i).is_empty(),
        "node {i}: the table stayed: {}",
        table(lab, i)
    );
    assert!(
        iptables_state(lab, i).contains("-A PREROUTING -j PALISADE-GUARD"),
        "node {i}: {}",
        iptables_state(lab, i)
    );
    assert!(!lab.tcp_connects(&lab.outsider, v4(lab, i), 81), "node {i}");
    assert!(lab.tcp_connects(&lab.controller, v4(lab, i), 81), "node {i}");
    assert!(lab.tcp_connects(&lab.nodes[1 - i].ns, v4(lab, i), 81), "node {i}");
}

fn a_node_moves_back_from_nftables_to_iptables_in_one_protected_change() {
    let mut lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    let _listeners = [lab.listen(&lab.nodes[0].ns, 81), lab.listen(&lab.nodes[1].ns, 81)];
    run(&lab, "apply", &[NFT], 0);
    let before: Vec<String> = (0..2).map(|i| table(&lab, i)).collect();
    for (i, table) in before.iter().enumerate() {
        assert!(table.contains("palisade4"), "node {i}: {table}");
        assert!(untouched(&lab, i), "node {i}");
    }

    // The iptables backend's remove would leave the table: refused,
    // untouched, saying how to go on.
    let report = run(&lab, "remove", &[], 2);
    let error = host(&report, "node-00")["error"].as_str().unwrap_or_default();
    assert!(error.contains("remove --backend nftables"), "{report:#}");
    assert_eq!(table(&lab, 0), before[0]);

    // plan, with the default backend, names the table that goes.
    let report = run(&lab, "plan", &[], 0);
    for i in 0..2 {
        let kinds = kinds(&report, &lab.nodes[i].name);
        assert!(
            kinds.contains(&"nft-table-left".to_owned()) && kinds.contains(&"guard-missing".to_owned()),
            "{report:#}"
        );
    }

    // A failed confirmation in the middle: each node is entirely as it
    // was, the table byte for byte, nothing of iptables.
    unconfirmed_apply(&lab, 2, &[]);
    for (i, before) in before.iter().enumerate() {
        assert_eq!(&table(&lab, i), before, "node {i}: the table is not as it was");
        assert!(untouched(&lab, i), "node {i}: {}", iptables_state(&lab, i));
        assert!(!lab.tcp_connects(&lab.outsider, v4(&lab, i), 81), "node {i}");
    }
    run(&lab, "verify", &[NFT], 0);

    // Confirmed: the iptables guard alone, the whitelist unbroken.
    let report = run(&lab, "apply", &[], 0);
    assert!(
        kinds(&report, "node-00").contains(&"nft-table-left".to_owned()),
        "{report:#}"
    );
    for i in 0..2 {
        on_iptables(&lab, i);
    }
    run(&lab, "verify", &[], 0);
    let report = run(&lab, "apply", &[], 0);
    assert_eq!(host(&report, "node-00")["status"], "unchanged", "{report:#}");

    // The systemd node boots into the iptables guard, and no table.
    lab.reboot(1);
    let _listener = lab.listen(&lab.nodes[1].ns, 81);
    on_iptables(&lab, 1);
    run(&lab, "verify", &[], 0);

    // A move to nftables with --no-persist leaves no boot file to say the
    // table is there: plan shows the iptables guard to make (never a node
    // as it should be), and the apply that makes it takes the table away
    // too, under the same rollback.
    run(&lab, "apply", &[NFT, "--no-persist"], 0);
    for i in 0..2 {
        assert!(!table(&lab, i).is_empty() && untouched(&lab, i), "node {i}");
        assert!(!lab.node_has(i, "/var/lib/palisade/backend"), "node {i}");
    }
    let report = run(&lab, "verify", &["--no-persist"], 3);
    assert_ne!(host(&report, "node-00")["status"], "ok", "{report:#}");
    let report = run(&lab, "plan", &["--no-persist"], 0);
    assert!(
        kinds(&report, "node-00").contains(&"guard-missing".to_owned()),
        "{report:#}"
    );
    run(&lab, "apply", &["--no-persist"], 0);
    for i in 0..2 {
        on_iptables(&lab, i);
    }
    run(&lab, "verify", &["--no-persist"], 0);
}
