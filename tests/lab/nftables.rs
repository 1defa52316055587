//! The nftables backend (issue 22): palisade's whole state on a node is one
//! `table inet palisade`, replaced in one transaction, with the guard
//! before DNAT as its chain. Real nftables and real packets, on nodes with
//! systemd and without; the same lockout protocol as the iptables backend.

use std::net::IpAddr;

use serde_json::Value;

use crate::backend::{self, table};
use crate::guard::k3s_agents;
use crate::harness::{Lab, Needs, Spec};
use crate::{
    bin, eventually, host, json, kinds, lab, lab_args, lab_tests, stderr, unconfirmed_apply, untouched,
};

lab_tests![Needs::Systemd =>
    the_whitelist_holds_on_nftables,
    the_lockout_protocol_holds_on_nftables,
    a_crash_boots_the_old_table_and_a_reboot_restores_it,
    a_node_moves_from_iptables_to_nftables_in_one_protected_change,
    auto_takes_nftables_where_nft_runs_and_says_why,
];

const NFT: &str = "--backend=nftables";

fn run(lab: &Lab, cmd: &str, extra: &[&str], code: i32) -> Value {
    let mut args = vec![NFT];
    args.extend_from_slice(extra);
    let out = lab.palisade(bin(), &lab_args(cmd, true, true, &args));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
    report
}

fn v4(lab: &Lab, i: usize) -> IpAddr {
    IpAddr::V4(lab.nodes[i].ip4)
}

/// Nothing of palisade's on node `i`, on either backend.
fn bare(lab: &Lab, i: usize) -> bool {
    table(lab, i).is_empty() && untouched(lab, i)
}

fn the_whitelist_holds_on_nftables() {
    let lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    let (pods, _listeners) = k3s_agents(&lab);
    let out = &lab.outsider;
    let accept = ["--interface", "cni0"];
    let report = run(&lab, "plan", &accept, 0);
    assert!(
        kinds(&report, "node-00").contains(&"nft-table-missing".to_owned()),
        "{report:#}"
    );
    run(&lab, "apply", &accept, 0);
    for i in 0..2 {
        let node = v4(&lab, i);
        // One table, and nothing in iptables or ipset.
        assert!(
            table(&lab, i).contains("hook prerouting priority mangle"),
            "node {i}"
        );
        assert!(untouched(&lab, i), "node {i}: iptables or ipset touched");
        assert!(
            !lab.ssh_reachable(out, node),
            "node {i}: the outsider reaches SSH"
        );
        assert!(!lab.tcp_connects(out, node, 81), "node {i}");
        assert!(
            !lab.tcp_connects(out, node, 30080),
            "node {i}: the outsider reaches the NodePort"
        );
        assert!(lab.ssh_reachable(&lab.controller, node), "node {i}");
        assert!(lab.tcp_connects(&lab.controller, node, 30080), "node {i}");
        assert!(lab.tcp_connects(&lab.nodes[1 - i].ns, node, 81), "node {i}");
        let net = format!("10.42.{}", 5 + i);
        let (p0, p1) = (&pods.0[2 * i], &pods.0[2 * i + 1]);
        assert!(
            lab.tcp_connects(p1, format!("{net}.5").parse().unwrap(), 8080),
            "node {i}: pods lost each other"
        );
        assert!(lab.tcp_connects(p0, node, 30081), "node {i}");
    }
    run(&lab, "verify", &accept, 0);
    // Nothing to do: nothing changes.
    let report = run(&lab, "apply", &accept, 0);
    assert_eq!(host(&report, "node-00")["status"], "unchanged", "{report:#}");

    // --open agent=tcp/30080: that NodePort to everyone, nothing else.
    let open = ["--interface", "cni0", "--open", "agent=tcp/30080"];
    run(&lab, "apply", &open, 0);
    for i in 0..2 {
        let node = v4(&lab, i);
        assert!(lab.tcp_connects(out, node, 30080), "node {i}");
        assert!(!lab.tcp_connects(out, node, 30081), "node {i}");
        assert!(!lab.tcp_connects(out, node, 81), "node {i}");
    }
    run(&lab, "verify", &open, 0);

    // A member deleted by hand, a rule added by hand: verify names each,
    // apply puts the table right.
    let ns0 = lab.nodes[0].ns.clone();
    let other = lab.nodes[1].ip4.to_string();
    backend::nft_delete_element(&lab, &ns0, "palisade4", &other);
    let report = run(&lab, "verify", &open, 3);
    assert_eq!(kinds(&report, "node-00"), ["members-missing"], "{report:#}");
    assert_eq!(
        host(&report, "node-00")["changes"][0]["items"],
        serde_json::json!([other]),
        "{report:#}"
    );
    lab.must(
        &ns0,
        &[
            "nft", "insert", "rule", "inet", "palisade", "guard", "tcp", "dport", "81", "accept",
        ],
    );
    assert!(
        lab.tcp_connects(out, v4(&lab, 0), 81),
        "the added rule did not open"
    );
    let report = run(&lab, "verify", &open, 3);
    assert_eq!(
        kinds(&report, "node-00"),
        ["members-missing", "guard-rules-differ"],
        "{report:#}"
    );
    run(&lab, "apply", &open, 0);
    run(&lab, "verify", &open, 0);
    assert!(!lab.tcp_connects(out, v4(&lab, 0), 81));
    assert!(lab.tcp_connects(&lab.nodes[1].ns, v4(&lab, 0), 81));

    // The table was deleted by hand: verify says so, apply puts it back.
    lab.must(&lab.nodes[0].ns, &["nft", "delete", "table", "inet", "palisade"]);
    assert!(lab.tcp_connects(out, v4(&lab, 0), 81));
    let report = run(&lab, "verify", &open, 3);
    assert_eq!(kinds(&report, "node-00"), ["nft-table-missing"], "{report:#}");
    run(&lab, "apply", &open, 0);
    assert!(!lab.tcp_connects(out, v4(&lab, 0), 81));

    // remove takes the table away, and the boot files.
    run(&lab, "remove", &[], 0);
    for i in 0..2 {
        assert!(bare(&lab, i), "node {i}");
        assert!(!lab.node_has(i, "/var/lib/palisade/restore.sh"), "node {i}");
        assert!(lab.tcp_connects(out, v4(&lab, i), 81), "node {i}");
    }
    run(&lab, "remove", &[], 0);

    // Another tool's table of palisade's name is never replaced.
    let foreign = lab.dir.join("foreign.nft");
    std::fs::write(&foreign, "table inet palisade {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n").unwrap();
    lab.must(&ns0, &["nft", "-f", foreign.to_str().unwrap()]);
    let theirs = table(&lab, 0);
    let report = run(&lab, "apply", &open, 2);
    assert_eq!(host(&report, "node-00")["status"], "failed", "{report:#}");
    assert_eq!(host(&report, "node-01")["status"], "changed", "{report:#}");
    assert_eq!(table(&lab, 0), theirs);
    let report = run(&lab, "remove", &[], 2);
    assert_eq!(host(&report, "node-00")["status"], "failed", "{report:#}");
    assert_eq!(table(&lab, 0), theirs);
}

fn the_lockout_protocol_holds_on_nftables() {
    let lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    // Refused without the operator: no table written.
    let out = lab.palisade(bin(), &lab_args("apply", true, false, &[NFT]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}\n{}", stderr(&out));
    for i in 0..2 {
        assert_eq!(
            host(&report, &lab.nodes[i].name)["status"],
            "refused",
            "{report:#}"
        );
        assert!(bare(&lab, i), "node {i}");
    }

    // From a bare node, a failed first confirmation leaves no table.
    unconfirmed_apply(&lab, 2, &[NFT]);
    for i in 0..2 {
        assert!(bare(&lab, i), "node {i}: {}", table(&lab, i));
    }

    // Over an earlier table: a failed confirmation puts it back exactly,
    // counters aside.
    run(&lab, "apply", &[], 0);
    let before: Vec<String> = (0..2).map(|i| table(&lab, i)).collect();
    unconfirmed_apply(&lab, 2, &[NFT, "--open", "all=tcp/30080"]);
    for (i, before) in before.iter().enumerate() {
        assert_eq!(&table(&lab, i), before, "node {i}: the table is not as it was");
    }
    run(&lab, "verify", &[], 0);
}

/// What the iptables backend made on node `i`, and every other rule and
/// set there, as the node lists them: the filter and mangle tables in
/// order (counters aside), the sets' lines sorted (`ipset save` lists sets
/// in the order they were made, and a seed that differs every time).
pub(crate) fn iptables_state(lab: &Lab, i: usize) -> String {
    let ns = &lab.nodes[i].ns;
    let mut lines = Vec::new();
    for save in ["iptables-save", "ip6tables-save"] {
        for table in ["filter", "mangle"] {
            lines.extend(backend::saved(lab, ns, save, table));
        }
    }
    lines.extend(backend::ipsets_saved(lab, ns));
    lines.join("\n")
}

fn a_node_moves_from_iptables_to_nftables_in_one_protected_change() {
    let mut lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    let _listeners = [lab.listen(&lab.nodes[0].ns, 81), lab.listen(&lab.nodes[1].ns, 81)];
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before: Vec<String> = (0..2).map(|i| iptables_state(&lab, i)).collect();
    assert!(before[0].contains("PALISADE-GUARD"), "{}", before[0]);

    // plan names what goes.
    let report = run(&lab, "plan", &[], 0);
    let kinds0 = kinds(&report, "node-00");
    assert!(
        kinds0.contains(&"nft-table-missing".to_owned()) && kinds0.contains(&"iptables-left".to_owned()),
        "{report:#}"
    );

    // A failed confirmation in the middle: each node is entirely old.
    unconfirmed_apply(&lab, 2, &[NFT]);
    for (i, before) in before.iter().enumerate() {
        assert!(table(&lab, i).is_empty(), "node {i}: the table stayed");
        assert_eq!(
            &iptables_state(&lab, i),
            before,
            "node {i}: iptables is not as it was"
        );
    }
    let out = lab.palisade(bin(), &lab_args("verify", true, true, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Confirmed: the table alone, the whitelist unbroken.
    run(&lab, "apply", &[], 0);
    for i in 0..2 {
        assert!(untouched(&lab, i), "node {i}: {}", iptables_state(&lab, i));
        assert!(!table(&lab, i).is_empty(), "node {i}");
        assert!(!lab.tcp_connects(&lab.outsider, v4(&lab, i), 81), "node {i}");
        assert!(lab.tcp_connects(&lab.controller, v4(&lab, i), 81), "node {i}");
    }
    run(&lab, "verify", &[], 0);
    // The systemd node boots into the table, and nothing of iptables.
    lab.reboot(1);
    let _listener = lab.listen(&lab.nodes[1].ns, 81);
    assert!(untouched(&lab, 1));
    assert!(!lab.tcp_connects(&lab.outsider, v4(&lab, 1), 81));
    run(&lab, "verify", &[], 0);
}

fn a_crash_boots_the_old_table_and_a_reboot_restores_it() {
    let mut lab = lab!(Spec {
        nodes: 1,
        systemd: vec![0],
        ..Spec::default()
    });
    let _listener = lab.listen(&lab.nodes[0].ns, 81);
    // A first apply, unconfirmed when the node loses power: it boots with
    // no table.
    let mut child = lab.spawn_palisade(
        bin(),
        &lab_args("apply", true, true, &[NFT, "--confirm-timeout", "40"]),
        &[("PALISADE_TEST_HOLD_CONFIRM", "60")],
    );
    assert!(
        eventually(30, || !table(&lab, 0).is_empty()),
        "the change never reached the node"
    );
    lab.crash(0);
    let _ = child.kill();
    let _ = child.wait();
    assert!(bare(&lab, 0), "the node booted into the unconfirmed change");

    // Confirmed, then a clean reboot: the boot restore loads the table.
    run(&lab, "apply", &[], 0);
    let before = table(&lab, 0);
    lab.reboot(0);
    let _listener = lab.listen(&lab.nodes[0].ns, 81);
    assert_eq!(table(&lab, 0), before);
    assert!(!lab.tcp_connects(&lab.outsider, v4(&lab, 0), 81));
    assert!(lab.tcp_connects(&lab.controller, v4(&lab, 0), 81));
    run(&lab, "verify", &[], 0);
}

fn auto_takes_nftables_where_nft_runs_and_says_why() {
    let lab = lab!(Spec {
        nodes: 3,
        systemd: vec![0, 1],
        ..Spec::default()
    });
    // node-00 has no nft, node-01 no ipset, node-02 both.
    assert!(lab.on_node(0, &["rm", "-f", "/usr/sbin/nft"]).status.success());
    assert!(lab.on_node(1, &["rm", "-f", "/usr/sbin/ipset"]).status.success());
    let _listeners: Vec<_> = (0..3).map(|i| lab.listen(&lab.nodes[i].ns, 81)).collect();
    let auto = ["--backend", "auto"];
    let plain = |cmd, extra: &[&str], code| {
        let out = lab.palisade(bin(), &lab_args(cmd, true, true, extra));
        let report = json(&out);
        assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
        report
    };

    // The iptables backend on the node without ipset: refused with the
    // reason, before any write.
    let report = plain("plan", &["--backend", "iptables"], 2);
    assert_eq!(
        host(&report, "node-01")["error"],
        "missing on the node: ipset",
        "{report:#}"
    );
    // ping says what each would get.
    let report = plain("ping", &auto, 0);
    let firewalls: Vec<&str> = (0..3)
        .map(|i| {
            host(&report, &lab.nodes[i].name)["firewall"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(firewalls, ["iptables", "nftables", "nftables"], "{report:#}");

    let report = plain("apply", &auto, 0);
    let first_note = |report: &Value, i: usize| {
        host(report, &lab.nodes[i].name)["notes"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        first_note(&report, 0),
        "backend iptables: nft is not installed",
        "{report:#}"
    );
    assert_eq!(
        first_note(&report, 1),
        "backend nftables: nft takes the table",
        "{report:#}"
    );
    assert_eq!(
        first_note(&report, 2),
        "backend nftables: nft takes the table",
        "{report:#}"
    );
    assert!(!untouched(&lab, 0), "node 0 has no iptables whitelist");
    assert!(table(&lab, 1).contains("palisade4") && untouched(&lab, 1));
    assert!(table(&lab, 2).contains("palisade4") && untouched(&lab, 2));
    for i in 0..3 {
        assert!(!lab.tcp_connects(&lab.outsider, v4(&lab, i), 81), "node {i}");
        assert!(lab.tcp_connects(&lab.controller, v4(&lab, i), 81), "node {i}");
    }
    let report = plain("verify", &auto, 0);
    assert_eq!(
        first_note(&report, 2),
        "backend nftables: palisade's table is there",
        "{report:#}"
    );
    let report = plain("apply", &auto, 0);
    assert_eq!(host(&report, "node-02")["status"], "unchanged", "{report:#}");

    // An iptables node where nft runs moves to nftables under auto.
    let out = lab.palisade(bin(), &lab_args("remove", true, true, &auto));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    plain("apply", &["--backend", "iptables", "--limit", "node-02"], 0);
    assert!(!untouched(&lab, 2));
    let report = plain("apply", &auto, 0);
    assert!(
        kinds(&report, "node-02").contains(&"iptables-left".to_owned()),
        "{report:#}"
    );
    assert!(untouched(&lab, 2) && !table(&lab, 2).is_empty());
    let out = lab.palisade(bin(), &lab_args("remove", true, true, &auto));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for i in 0..3 {
        assert!(bare(&lab, i), "node {i}");
    }
}
