//! apply, plan, verify and remove against real sshd and netfilter, proven
//! with real packets.

use std::net::IpAddr;
use std::process::Output;

use crate::backend::{self, drop_count, members, pick};
use crate::harness::{CONTROLLER6, Lab, Needs, Spec};
use crate::{bin, expect, host, json, kinds, lab, lab_args, lab_tests, statuses, stdout};

lab_tests![Needs::Systemd, both =>
    apply_admits_the_fleet_and_drops_outsiders,
    a_second_apply_changes_nothing_and_writes_nothing,
    scaling_grows_and_shrinks_every_nodes_whitelist,
    verify_reports_each_kind_of_drift_and_changes_nothing,
    plan_shows_what_apply_would_do_and_changes_nothing,
    remove_leaves_no_trace_and_is_idempotent,
    foreign_rules_and_docker_user_stay_intact,
    a_whitelist_without_the_operator_is_refused_before_any_write,
    the_boot_restore_script_brings_the_whitelist_back_after_a_reboot,
    published_container_ports_admit_only_the_whitelist,
    nodes_managed_over_ipv6,
    turning_persistence_off_takes_the_old_boot_files_away;
// iptables only: an ipset of the wrong type; iptables' legacy and nf_tables
// flavours.
Needs::Systemd =>
    a_node_that_cannot_take_the_change_is_left_as_it_was,
    legacy_and_nf_tables_nodes_side_by_side,
];

/// `nodes` nodes; the last of two or more boots systemd, as CoreOS and
/// Flatcar nodes do, so every test here runs on both kinds of node.
fn spec(nodes: usize) -> Spec {
    Spec {
        nodes,
        systemd: if nodes > 1 { vec![nodes - 1] } else { vec![] },
        ..Spec::default()
    }
}

/// `palisade CMD --json` against the lab, admitting the controller's
/// addresses unless `extra` holds `--no-allow`.
fn palisade(lab: &Lab, cmd: &str, extra: &[&str]) -> Output {
    let allow = !extra.contains(&"--no-allow");
    let extra: Vec<&str> = extra.iter().copied().filter(|a| *a != "--no-allow").collect();
    lab.palisade(bin(), &lab_args(cmd, true, allow, &extra))
}

fn apply_admits_the_fleet_and_drops_outsiders() {
    let lab = lab!(spec(5));
    let outsider = lab.outsider.clone();
    // Before: the outsider gets in, so what follows is palisade's doing.
    assert!(lab.ssh_reachable(&outsider, IpAddr::V4(lab.nodes[0].ip4)));

    let report = expect(palisade(&lab, "apply", &[]), 0);
    assert_eq!(statuses(&report), vec!["changed"; 5], "{report:#}");
    let n0 = host(&report, "node-00");
    assert!(
        kinds(&report, "node-00").contains(&pick("set-missing", "nft-table-missing").to_string()),
        "{n0}"
    );
    assert!(
        n0["notes"][0]
            .as_str()
            .unwrap()
            .contains("boot restore not installed"),
        "{n0}"
    );

    for (i, node) in lab.nodes.iter().enumerate() {
        let (v4, v6) = (IpAddr::V4(node.ip4), IpAddr::V6(node.ip6));
        assert!(
            lab.ssh_reachable(&lab.controller, v4),
            "controller -> {}",
            node.name
        );
        assert!(
            lab.ssh_reachable(&lab.controller, v6),
            "controller -> {} over IPv6",
            node.name
        );
        for other in lab.nodes.iter().filter(|o| o.index != i) {
            assert!(
                lab.ssh_reachable(&other.ns, v4),
                "{} -> {}",
                other.name,
                node.name
            );
        }
        let before = (drop_count(&lab, i, 4), drop_count(&lab, i, 6));
        assert!(
            !lab.ssh_reachable(&outsider, v4),
            "outsider -> {} got in",
            node.name
        );
        assert!(
            !lab.ssh_reachable(&outsider, v6),
            "outsider -> {} got in over IPv6",
            node.name
        );
        assert!(
            drop_count(&lab, i, 4) > before.0,
            "{}: the IPv4 drop was not counted",
            node.name
        );
        assert!(
            drop_count(&lab, i, 6) > before.1,
            "{}: the IPv6 drop was not counted",
            node.name
        );
        // Every node's IPv6 address is in every node's IPv6 set.
        assert!(members(&lab, 0, 6).contains(&node.ip6.to_string()));
    }
    let set = members(&lab, 3, 4);
    for want in [
        "198.18.0.1",
        "8.8.8.8",
        "8.8.4.4",
        "127.0.0.1",
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
    ] {
        assert!(set.iter().any(|m| m == want), "{want} not in {set:?}");
    }
    assert!(!set.contains(&crate::harness::OUTSIDER4.to_string()));
}

fn a_second_apply_changes_nothing_and_writes_nothing() {
    let lab = lab!(spec(3));
    expect(palisade(&lab, "apply", &[]), 0);
    if backend::nft() {
        // nftables numbers each new table (`# handle N`): a replaced table
        // would show a new number.
        let handles = |i: usize| {
            lab.must(
                &lab.nodes[i].ns,
                &["nft", "-a", "list", "table", "inet", "palisade"],
            )
        };
        let before: Vec<String> = (0..3).map(handles).collect();
        let report = expect(palisade(&lab, "apply", &[]), 0);
        assert_eq!(statuses(&report), vec!["unchanged"; 3], "{report:#}");
        for (i, b) in before.iter().enumerate() {
            assert_eq!(&handles(i), b, "node {i}: the table was replaced");
        }
        return;
    }
    // ipset's initval is random per set: a swap would show a new one. Rule
    // counters reset when the chain is replaced.
    let header = |i: usize| lab.must(&lab.nodes[i].ns, &["ipset", "list", "-t", "palisade4"]);
    let counters = |i: usize| {
        backend::mangle(
            &lab,
            &lab.nodes[i].ns,
            "iptables",
            &["-L", "PALISADE-GUARD", "-v", "-x", "-n"],
        )
    };
    let before: Vec<(String, String)> = (0..3).map(|i| (header(i), counters(i))).collect();
    assert!(before[0].1.contains("ESTABLISHED"));

    let report = expect(palisade(&lab, "apply", &[]), 0);
    assert_eq!(statuses(&report), vec!["unchanged"; 3], "{report:#}");
    for (i, (h, _)) in before.iter().enumerate() {
        assert_eq!(&header(i), h, "node {i}: the set was replaced");
    }
    // The second run's own SSH packets count on ESTABLISHED: the counters
    // went on from where they were instead of starting again.
    let established = |text: &str| -> u64 {
        let line = text.lines().find(|l| l.contains("ESTABLISHED")).unwrap();
        line.split_whitespace().next().unwrap().parse().unwrap()
    };
    for (i, (_, c)) in before.iter().enumerate() {
        assert!(
            established(&counters(i)) > established(c),
            "node {i}: the chain was replaced"
        );
    }
}

fn scaling_grows_and_shrinks_every_nodes_whitelist() {
    let mut lab = lab!(spec(5));
    expect(palisade(&lab, "apply", &[]), 0);
    lab.add_nodes(3);
    // Not yet in the inventory: the new node is shut out of the old ones.
    assert!(!lab.ssh_reachable(&lab.nodes[7].ns, IpAddr::V4(lab.nodes[0].ip4)));

    lab.inventory_of(&(0..8).collect::<Vec<_>>());
    let report = expect(palisade(&lab, "apply", &[]), 0);
    assert_eq!(statuses(&report), vec!["changed"; 8], "{report:#}");
    assert_eq!(
        kinds(&report, "node-01"),
        ["members-missing", "members-missing", "persist-stale"],
        "{report:#}"
    );
    for old in 0..5 {
        for young in 5..8 {
            let (o, y) = (&lab.nodes[old], &lab.nodes[young]);
            assert!(
                lab.ssh_reachable(&y.ns, IpAddr::V4(o.ip4)),
                "{} -> {}",
                y.name,
                o.name
            );
            assert!(
                lab.ssh_reachable(&o.ns, IpAddr::V4(y.ip4)),
                "{} -> {}",
                o.name,
                y.name
            );
        }
    }

    // Scale down to six: nodes 6 and 7 leave every set.
    lab.inventory_of(&(0..6).collect::<Vec<_>>());
    let report = expect(palisade(&lab, "apply", &[]), 0);
    assert_eq!(
        kinds(&report, "node-00"),
        ["members-extra", "members-extra", "persist-stale"],
        "{report:#}"
    );
    for i in 0..6 {
        let set = members(&lab, i, 4);
        for gone in 6..8 {
            assert!(
                !set.contains(&lab.nodes[gone].ip4.to_string()),
                "node {i} still admits node {gone}"
            );
        }
        assert!(!members(&lab, i, 6).contains(&lab.nodes[7].ip6.to_string()));
    }
    // The removed nodes are shut out of the remaining ones.
    for gone in 6..8 {
        for kept in [0, 5] {
            let (g, k) = (&lab.nodes[gone], &lab.nodes[kept]);
            assert!(
                !lab.ssh_reachable(&g.ns, IpAddr::V4(k.ip4)),
                "{} -> {} still gets in",
                g.name,
                k.name
            );
        }
    }
}

fn verify_reports_each_kind_of_drift_and_changes_nothing() {
    let lab = lab!(spec(4));
    expect(palisade(&lab, "apply", &[]), 0);
    let report = expect(palisade(&lab, "verify", &[]), 0);
    assert_eq!(statuses(&report), vec!["ok"; 4]);

    let n2 = lab.nodes[2].ip4.to_string();
    backend::delete_member(&lab, 1, 4, &n2);
    let (broken, broken_line) = backend::break_guard(&lab, 2);
    assert!(
        lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[2].ip4)),
        "the broken guard still drops"
    );
    let foreign = backend::add_foreign_rule(&lab, 3);
    let snapshot = |i: usize| lab.must(&lab.nodes[i].ns, &["iptables-save"]) + &backend::state(&lab, i);
    let before: Vec<String> = (0..4).map(snapshot).collect();

    let report = expect(palisade(&lab, "verify", &[]), 3);
    assert_eq!(statuses(&report), ["ok", "drift", "drift", "drift"], "{report:#}");
    let n1 = &host(&report, "node-01")["changes"][0];
    assert_eq!(n1["kind"], "members-missing");
    assert_eq!(n1["items"], serde_json::json!([n2]));
    assert_eq!(kinds(&report, "node-02"), [broken], "{report:#}");
    let n3 = &host(&report, "node-03")["changes"][0];
    assert_eq!(n3["kind"], "guard-rules-differ");
    assert_eq!(n3["items"], serde_json::json!([foreign]), "{report:#}");
    // The audit touched nothing (iptables-save's counters aside).
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for (i, b) in before.iter().enumerate() {
        assert_eq!(strip(&snapshot(i)), strip(b), "verify changed node {i}");
    }

    // Human output names the same differences.
    let table = lab.palisade(bin(), &lab_args("verify", false, true, &[]));
    assert_eq!(table.status.code(), Some(3));
    assert!(stdout(&table).contains(broken_line), "{}", stdout(&table));

    let report = expect(palisade(&lab, "apply", &[]), 0);
    assert_eq!(statuses(&report), ["unchanged", "changed", "changed", "changed"]);
    expect(palisade(&lab, "verify", &[]), 0);
}

fn plan_shows_what_apply_would_do_and_changes_nothing() {
    let lab = lab!(spec(3));
    let report = expect(palisade(&lab, "plan", &[]), 0);
    assert_eq!(statuses(&report), vec!["would-change"; 3]);
    let want: &[&str] = pick(
        &[
            "set-missing",
            "guard-missing",
            "guard-jump-missing",
            "set-missing",
            "guard-missing",
            "guard-jump-missing",
            "persist-missing",
        ],
        &["nft-table-missing", "persist-missing"],
    );
    assert_eq!(kinds(&report, "node-00"), want, "{report:#}");
    for node in &lab.nodes {
        assert!(backend::untouched(&lab, node.index), "{}", node.name);
    }
    expect(palisade(&lab, "apply", &[]), 0);
    let report = expect(palisade(&lab, "plan", &[]), 0);
    assert_eq!(statuses(&report), vec!["unchanged"; 3]);
    let report = expect(palisade(&lab, "plan", &["--extra", "192.0.2.0/24"]), 0);
    let change = &host(&report, "node-02")["changes"][0];
    assert_eq!(change["message"], "IPv4 set lacks 1 member(s): 192.0.2.0/24");
}

fn remove_leaves_no_trace_and_is_idempotent() {
    let lab = lab!(spec(3));
    lab.must(&lab.nodes[0].ns, &["iptables", "-w", "-N", "DOCKER-USER"]);
    expect(palisade(&lab, "apply", &[]), 0);
    assert!(!lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[0].ip4)));

    let report = expect(palisade(&lab, "remove", &[]), 0);
    assert_eq!(statuses(&report), vec!["removed"; 3], "{report:#}");
    for node in &lab.nodes {
        for ipt in ["iptables-save", "ip6tables-save"] {
            let rules = lab.must(&node.ns, &[ipt]);
            assert!(!rules.contains("PALISADE"), "{}: {rules}", node.name);
        }
        assert_eq!(lab.must(&node.ns, &["ipset", "list", "-n"]), "", "{}", node.name);
        assert_eq!(backend::table(&lab, node.index), "", "{}", node.name);
        assert!(lab.ssh_reachable(&lab.outsider, IpAddr::V4(node.ip4)));
    }
    // The boot restore files went too: a fresh plan wants them again.
    let report = expect(palisade(&lab, "plan", &[]), 0);
    assert!(kinds(&report, "node-01").contains(&"persist-missing".to_string()));
    // DOCKER-USER itself is Docker's: it stays.
    assert!(
        lab.must(&lab.nodes[0].ns, &["iptables", "-w", "-S"])
            .contains("-N DOCKER-USER")
    );

    let report = expect(palisade(&lab, "remove", &[]), 0);
    assert_eq!(statuses(&report), vec!["absent"; 3]);
}

fn foreign_rules_and_docker_user_stay_intact() {
    let lab = lab!(spec(2));
    let ns = lab.nodes[0].ns.clone();
    for rule in [
        &[
            "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT",
        ][..],
        &[
            "iptables", "-w", "-A", "INPUT", "-p", "udp", "--dport", "53", "-j", "ACCEPT",
        ],
        &["iptables", "-w", "-N", "DOCKER-USER"],
        &["iptables", "-w", "-A", "DOCKER-USER", "-j", "RETURN"],
        &["iptables", "-w", "-t", "nat", "-N", "DOCKER"],
    ] {
        lab.must(&ns, rule);
    }
    let filter = lab.must(&ns, &["iptables-save", "-t", "filter"]);
    expect(palisade(&lab, "apply", &[]), 0);
    // The filter table is not palisade's: INPUT, DOCKER-USER and the rest
    // stay rule for rule (the counters aside).
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" [").next().unwrap_or(l).to_owned())
            .collect()
    };
    assert_eq!(
        strip(&lab.must(&ns, &["iptables-save", "-t", "filter"])),
        strip(&filter)
    );
    assert!(
        lab.must(&ns, &["iptables", "-w", "-t", "nat", "-S"])
            .contains("-N DOCKER")
    );

    // Someone put a rule above our jump: apply moves the jump back to rule
    // 1, and keeps their rule. (On nftables there is no jump: their rule
    // is not palisade's, and nothing changes.)
    backend::mangle(
        &lab,
        &ns,
        "iptables",
        &[
            "-I",
            "PREROUTING",
            "1",
            "-p",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "MARK",
            "--set-mark",
            "1",
        ],
    );
    let report = expect(palisade(&lab, "apply", &[]), 0);
    let rules = backend::mangle(&lab, &ns, "iptables", &["-S", "PREROUTING"]);
    if backend::nft() {
        assert_eq!(kinds(&report, "node-00"), Vec::<String>::new(), "{report:#}");
        assert!(
            rules.contains("--dport 8080") && !rules.contains("PALISADE"),
            "{rules}"
        );
        assert!(!lab.must(&ns, &["iptables-save"]).contains("PALISADE"));
        assert!(backend::guard_present(&lab, 0));
    } else {
        assert_eq!(kinds(&report, "node-00"), ["guard-jump-not-first"]);
        assert_eq!(
            rules.lines().nth(1),
            Some("-A PREROUTING -j PALISADE-GUARD"),
            "{rules}"
        );
        assert!(rules.contains("--dport 8080"));
    }

    // --no-docker-user, from scripts written for versions with a Docker
    // guard, is accepted and changes nothing.
    let report = expect(palisade(&lab, "apply", &["--no-docker-user"]), 0);
    assert_eq!(statuses(&report), vec!["unchanged"; 2], "{report:#}");
}

fn a_whitelist_without_the_operator_is_refused_before_any_write() {
    let lab = lab!(spec(3));
    let report = expect(palisade(&lab, "apply", &["--no-allow"]), 2);
    for node in &lab.nodes {
        let h = host(&report, &node.name);
        assert_eq!(h["status"], "refused");
        let error = h["error"].as_str().unwrap();
        assert!(
            error.contains("198.18.0.1") && error.contains("--allow 198.18.0.1"),
            "{error}"
        );
        assert!(
            !lab.exec(&node.ns, &["iptables", "-w", "-S", "PALISADE"])
                .status
                .success()
        );
        assert!(backend::untouched(&lab, node.index), "{}", node.name);
        assert!(lab.ssh_reachable(&lab.outsider, IpAddr::V4(node.ip4)));
    }
}

fn a_node_that_cannot_take_the_change_is_left_as_it_was() {
    let lab = lab!(spec(3));
    // An IPv6 set of the wrong type (with the comment extension palisade's
    // sets have, so it passes for one of palisade's): the change cannot
    // complete on node 1.
    lab.must(
        &lab.nodes[1].ns,
        &[
            "ipset",
            "create",
            "palisade6",
            "hash:ip",
            "family",
            "inet6",
            "comment",
        ],
    );
    let report = expect(palisade(&lab, "apply", &[]), 2);
    assert_eq!(statuses(&report), ["changed", "failed", "changed"], "{report:#}");
    let error = host(&report, "node-01")["error"].as_str().unwrap();
    assert!(
        error.contains("palisade6 exists but is not hash:net family inet6"),
        "{error}"
    );
    let ns = &lab.nodes[1].ns;
    assert_eq!(lab.must(ns, &["ipset", "list", "-n"]), "palisade6\n");
    assert!(!lab.must(ns, &["iptables-save"]).contains("PALISADE"));
    assert!(!lab.must(ns, &["ip6tables-save"]).contains("PALISADE"));
    assert!(lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[1].ip4)));
}

fn the_boot_restore_script_brings_the_whitelist_back_after_a_reboot() {
    let lab = lab!(spec(2));
    expect(palisade(&lab, "apply", &[]), 0);
    // A reboot, as far as netfilter and /run go: everything is empty again.
    for i in 0..2 {
        backend::wipe(&lab, i);
        let out = lab.on_node(i, &["sh", "-c", "rm -rf /run/palisade/*"]);
        assert!(out.status.success());
    }
    assert!(lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[0].ip4)));
    let report = expect(palisade(&lab, "verify", &[]), 3);
    let gone = pick("guard-missing", "nft-table-missing");
    assert!(
        kinds(&report, "node-00").contains(&gone.to_string()),
        "{report:#}"
    );

    // What the unit would run at boot.
    for i in 0..2 {
        let out = lab.on_node(i, &["/bin/sh", "/var/lib/palisade/restore.sh"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // The boot run arms no rollback and leaves nothing behind in /run.
        assert!(!lab.node_has(i, "/run/palisade/rollback"));
    }
    expect(palisade(&lab, "verify", &[]), 0);
    assert!(!lab.ssh_reachable(&lab.outsider, IpAddr::V4(lab.nodes[0].ip4)));
    assert!(lab.ssh_reachable(&lab.nodes[1].ns, IpAddr::V4(lab.nodes[0].ip4)));
}

fn legacy_and_nf_tables_nodes_side_by_side() {
    let mut lab = lab!(Spec {
        nodes: 2,
        legacy: vec![1],
        ..Spec::default()
    });
    let out = lab.palisade(bin(), &lab_args("ping", true, false, &[]));
    let report = json(&out);
    assert_eq!(host(&report, "node-00")["backend"], "nf_tables", "{report:#}");
    assert_eq!(host(&report, "node-01")["backend"], "legacy", "{report:#}");

    expect(palisade(&lab, "apply", &[]), 0);
    let ns = lab.nodes[1].ns.clone();
    assert!(
        backend::mangle(&lab, &ns, "iptables-legacy", &["-S"]).contains("-A PREROUTING -j PALISADE-GUARD")
    );
    assert!(
        backend::mangle(&lab, &ns, "ip6tables-legacy", &["-S"]).contains("-A PREROUTING -j PALISADE-GUARD")
    );
    assert!(!lab.must(&ns, &["iptables-nft-save"]).contains("PALISADE"));
    for node in &lab.nodes {
        assert!(
            !lab.ssh_reachable(&lab.outsider, IpAddr::V4(node.ip4)),
            "{}",
            node.name
        );
        assert!(
            lab.ssh_reachable(&lab.controller, IpAddr::V4(node.ip4)),
            "{}",
            node.name
        );
    }
    expect(palisade(&lab, "verify", &[]), 0);

    // An OS update switches the node to nf_tables: the legacy rules still
    // filter, but iptables no longer shows them. The audit says so.
    lab.set_legacy(1, false);
    let report = expect(palisade(&lab, "verify", &[]), 3);
    let changes = kinds(&report, "node-01");
    assert!(changes.contains(&"backend-changed".to_string()), "{report:#}");
    assert!(changes.contains(&"guard-missing".to_string()), "{report:#}");
    let message = host(&report, "node-01")["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "backend-changed")
        .unwrap()["message"]
        .clone();
    assert_eq!(
        message,
        "iptables backend changed: applied with legacy, the node now uses nf_tables"
    );
}

fn published_container_ports_admit_only_the_whitelist() {
    let mut lab = lab!(spec(2));
    let container = lab.add_container(0, 8080);
    let _service = lab.listen(&container, 80);
    let _outside = lab.listen(&lab.outsider, 9000);
    let node0 = IpAddr::V4(lab.nodes[0].ip4);
    let outsider = IpAddr::V4(crate::harness::OUTSIDER4);
    // Before: the published port is open to the world, like Docker's -p.
    assert!(lab.tcp_connects(&lab.outsider, node0, 8080));
    assert!(lab.tcp_connects(&container, outsider, 9000));

    expect(palisade(&lab, "apply", &[]), 0);
    assert!(
        !lab.tcp_connects(&lab.outsider, node0, 8080),
        "the outsider still reaches the container"
    );
    assert!(
        lab.tcp_connects(&lab.controller, node0, 8080),
        "the controller lost the published port"
    );
    assert!(
        lab.tcp_connects(&lab.nodes[1].ns, node0, 8080),
        "a node lost the published port"
    );
    // The container's own traffic out, and the replies, still flow.
    assert!(
        lab.tcp_connects(&container, outsider, 9000),
        "the container lost its way out"
    );
    // Dropped before Docker's DNAT, by the guard in mangle PREROUTING
    // (or palisade's table's chain at the same place); palisade put
    // nothing in Docker's DOCKER-USER.
    let before = drop_count(&lab, 0, 4);
    assert!(!lab.tcp_connects(&lab.outsider, node0, 8080));
    assert!(drop_count(&lab, 0, 4) > before, "the guard did not drop it");

    assert!(
        !lab.must(&lab.nodes[0].ns, &["iptables-save", "-t", "filter"])
            .contains("PALISADE")
    );

    // Teardown takes the container's namespace too.
    let names = lab.namespaces();
    assert!(names.contains(&container));
    drop(lab);
    let left = String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for name in names {
        assert!(
            !left.lines().any(|l| l.split_whitespace().next() == Some(&name)),
            "{name} was left behind"
        );
    }
}

fn nodes_managed_over_ipv6() {
    let lab = lab!(spec(2));
    // An inventory whose SSH addresses are the nodes' IPv6 ones.
    let inv: String = lab
        .nodes
        .iter()
        .map(|n| {
            format!(
                "[[node]]\nname = \"{}\"\naddress = \"{}\"\naddresses = [\"{}\"]\n",
                n.name, n.ip6, n.ip4
            )
        })
        .collect();
    std::fs::write(lab.dir.join("hosts.toml"), inv).unwrap();
    let out = lab.palisade(bin(), &lab_args("ping", true, false, &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(
        host(&report, "node-00")["controller_address"],
        CONTROLLER6.to_string()
    );

    // Only the controller's IPv6 address is allowed: that is the one the
    // nodes see, so the lockout check passes and the confirmation goes over
    // IPv6.
    let c6 = CONTROLLER6.to_string();
    let out = lab.palisade(bin(), &lab_args("apply", true, false, &["--allow", &c6]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(statuses(&report), vec!["changed"; 2]);
    assert!(lab.ssh_reachable(&lab.controller, IpAddr::V6(lab.nodes[0].ip6)));
    assert!(!lab.ssh_reachable(&lab.outsider, IpAddr::V6(lab.nodes[0].ip6)));
    let known = std::fs::read_to_string(lab.dir.join("known_hosts")).unwrap();
    for node in &lab.nodes {
        let line = format!("{} ssh-ed25519 ", node.ip6);
        assert!(
            known.lines().any(|l| l.starts_with(&line)),
            "no {line:?} in {known}"
        );
    }

    // The controller's IPv4 address is not in the whitelist: reaching the
    // nodes over IPv4 from it is now refused, as asked.
    assert!(!lab.ssh_reachable(&lab.controller, IpAddr::V4(lab.nodes[0].ip4)));
}

fn turning_persistence_off_takes_the_old_boot_files_away() {
    let lab = lab!(spec(2));
    expect(palisade(&lab, "apply", &[]), 0);
    assert!(lab.node_has(0, "/var/lib/palisade/restore.sh"));
    // Left in place, they would restore this older whitelist at boot.
    let report = expect(
        palisade(&lab, "verify", &["--no-persist", "--extra", "192.0.2.0/24"]),
        3,
    );
    assert!(
        kinds(&report, "node-00").contains(&"persist-unwanted".to_string()),
        "{report:#}"
    );

    let report = expect(
        palisade(&lab, "apply", &["--no-persist", "--extra", "192.0.2.0/24"]),
        0,
    );
    assert_eq!(
        kinds(&report, "node-01"),
        ["members-missing", "persist-unwanted"],
        "{report:#}"
    );
    for i in 0..2 {
        assert!(!lab.node_has(i, "/var/lib/palisade/restore.sh"));
        assert!(!lab.node_has(i, "/var/lib/palisade/backend"));
    }
    expect(
        palisade(&lab, "verify", &["--no-persist", "--extra", "192.0.2.0/24"]),
        0,
    );
}
