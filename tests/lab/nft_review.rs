//! A hostile review of the nftables backend (issue 22): what it must never
//! do to a node, each on real nftables.

use crate::backend::table;
use crate::harness::{Needs, Spec};
use crate::{bin, eventually, host, json, lab, lab_args, lab_tests, stderr};

lab_tests![
    Needs::Plain => another_tools_table_that_says_palisade_is_never_removed;
    Needs::Systemd => the_nftables_service_at_boot_leaves_the_table_in;
];

const NFT: &str = "--backend=nftables";

/// Another tool's table of palisade's name whose set and whose rule of
/// another chain carry the word `palisade` as their comment: the
/// controller calls it foreign (no rule of the guard chain carries the
/// mark), and so must the node, which alone decides for remove (and at
/// boot): remove fails, the table stays.
fn another_tools_table_that_says_palisade_is_never_removed() {
    let lab = lab!(Spec {
        nodes: 1,
        ..Spec::default()
    });
    let theirs = lab.dir.join("theirs.nft");
    std::fs::write(
        &theirs,
        "table inet palisade {\n\tset s { type ipv4_addr; comment \"palisade\"; }\n\tchain input {\n\
         \t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept comment \"palisade\"\n\t}\n}\n",
    )
    .unwrap();
    let ns = lab.nodes[0].ns.clone();
    lab.must(&ns, &["nft", "-f", theirs.to_str().unwrap()]);
    let before = table(&lab, 0);
    assert!(before.contains("chain input"), "{before}");
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &[NFT]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}\n{}", stderr(&out));
    assert_eq!(table(&lab, 0), before);
    let out = lab.palisade(bin(), &lab_args("remove", true, true, &[NFT]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}\n{}", stderr(&out));
    assert_eq!(host(&report, "node-00")["status"], "failed", "{report:#}");
    assert_eq!(table(&lab, 0), before, "remove took another tool's table away");
}

/// nftables.service (Debian's /etc/nftables.conf begins `flush ruleset`)
/// runs at boot before network-pre.target, as palisade's restore does: were
/// it to run after it, the node would boot with no whitelist at all.
/// Slowed down here, so that the order is not left to chance.
fn the_nftables_service_at_boot_leaves_the_table_in() {
    let mut lab = lab!(Spec {
        nodes: 1,
        systemd: vec![0],
        ..Spec::default()
    });
    let script = "set -e; printf 'flush ruleset\\ntable inet filter {\\n}\\n' >/etc/nftables.conf; \
                  mkdir -p /etc/systemd/system/nftables.service.d; \
                  printf '[Service]\\nExecStartPre=/bin/sleep 3\\n' >/etc/systemd/system/nftables.service.d/slow.conf; \
                  systemctl daemon-reload; systemctl enable nftables.service";
    let out = lab.on_node(0, &["sh", "-c", script]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &[NFT]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = table(&lab, 0);
    assert!(!before.is_empty());
    lab.reboot(0);
    assert!(
        eventually(30, || {
            let out = lab.on_node(0, &["systemctl", "is-active", "nftables.service"]);
            String::from_utf8_lossy(&out.stdout).trim() == "active"
        }),
        "nftables.service never ran"
    );
    assert_eq!(table(&lab, 0), before, "the node booted without its table");
}
