//! Two bastions in a line (issue 26): the operator reaches b1 (node-00),
//! b1 reaches b2 (node-01), and only b2 reaches the nodes (node-02,
//! node-03); each link is enforced by the lab's own netfilter, so a hop
//! left out or taken in the wrong order gets nowhere.

use std::net::IpAddr;
use std::process::Output;

use crate::harness::{CONTROLLER4, CONTROLLER6, Lab, Needs, Spec};
use crate::{bin, eventually, host, json, lab, lab_args, lab_tests, statuses, stderr, untouched};

lab_tests![Needs::Plain =>
    two_hops_reach_the_nodes_with_jump_and_with_proxyjump,
    a_hop_that_fails_is_named,
    a_hop_that_is_a_node_must_admit_the_hop_before_it,
    the_proof_fails_when_a_hops_path_is_cut_in_the_window,
];

/// Four plain nodes: new SSH connections to b2 (node-01) only from b1
/// (node-00), to node-02 and node-03 only from b2 (appended to INPUT, after
/// where palisade's jump goes; a node's own loopback is left alone, so b2
/// can reach itself as a node).
fn line_lab() -> Lab {
    let lab = lab!(Spec {
        nodes: 4,
        ..Spec::default()
    });
    let only_from = |i: usize, from: usize| {
        let ns = &lab.nodes[i].ns;
        let (v4, v6) = (lab.nodes[from].ip4.to_string(), lab.nodes[from].ip6.to_string());
        for (tool, src) in [("iptables", &v4), ("ip6tables", &v6)] {
            lab.must(
                ns,
                &[
                    tool, "-w", "-A", "INPUT", "!", "-i", "lo", "!", "-s", src, "-p", "tcp", "--dport", "22",
                    "-j", "DROP",
                ],
            );
        }
    };
    only_from(1, 0);
    only_from(2, 1);
    only_from(3, 1);
    lab
}

/// `--jump core@b1,core@b2`, by address.
fn both(lab: &Lab) -> String {
    format!("core@{},core@{}", lab.nodes[0].ip4, lab.nodes[1].ip4)
}

/// `palisade CMD --json --jump JUMP` with the lab's inventory and key, and
/// `extra`; the controller allowed where the command takes a whitelist.
fn via(lab: &Lab, cmd: &str, jump: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = lab_args(cmd, true, true, &["--jump", jump]);
    args.extend_from_slice(extra);
    lab.palisade_with_env(bin(), &args, env)
}

fn two_hops_reach_the_nodes_with_jump_and_with_proxyjump() {
    let lab = line_lab();
    lab.inventory_of(&[2, 3]);
    let (b1, b2) = (lab.nodes[0].ip4, lab.nodes[1].ip4);
    // The line holds: neither b2 nor the nodes take the controller.
    assert!(!lab.ssh_reachable(&lab.controller, IpAddr::V4(b2)));
    assert!(!lab.ssh_reachable(&lab.controller, IpAddr::V4(lab.nodes[2].ip4)));

    let jump = both(&lab);
    let out = via(&lab, "ping", &jump, &["-v"], &[]);
    let report = json(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {err}");
    for name in ["node-02", "node-03"] {
        // The nodes see the last hop connect.
        assert_eq!(
            host(&report, name)["controller_address"],
            b2.to_string(),
            "{report:#}"
        );
    }
    // -v says the path, hop by hop.
    for want in [
        format!("ssh jump path: core@{b1}:22 (hop 1 of 2)"),
        format!("ssh jump path: core@{b2}:22 (hop 2 of 2)"),
    ] {
        assert!(err.contains(&want), "{want:?} not in {err}");
    }

    // apply: the nodes see b2, outside the inventory, so it is allowed;
    // the proof goes along the whole line.
    let b2_text = b2.to_string();
    let out = via(&lab, "apply", &jump, &["--allow", &b2_text], &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["changed"; 2], "{report:#}");
    let notes = host(&report, "node-03")["notes"].to_string();
    assert!(notes.contains("bastion outside the inventory"), "{notes}");

    // The same path from ssh_config, with no SSH flag: the nodes' block
    // names the hops, and each hop's own block its address, user and key.
    let hop_key = lab.authorize_new_key("id_hop", &["-t", "ed25519"]);
    let home = lab.dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let dir = lab.dir.display();
    std::fs::write(
        home.join(".ssh/config"),
        format!(
            "Host b1\n  HostName {b1}\n  User core\n  IdentityFile {}\n\
             Host b2\n  HostName {b2}\n  User core\n  IdentityFile {}\n\
             Host 198.18.*\n  User core\n  IdentityFile {dir}/id_ed25519\n  ProxyJump b1,b2\n  \
             UserKnownHostsFile {dir}/known_hosts\n",
            hop_key.display(),
            hop_key.display()
        ),
    )
    .unwrap();
    let home_text = home.display().to_string();
    let env = [("HOME", home_text.as_str())];
    let out = lab.palisade_with_env(
        bin(),
        &["ping", "--json", "-v", "--inventory", "hosts.toml"],
        &env,
    );
    let report = json(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {err}");
    assert_eq!(report["summary"]["ok"], 2, "{report:#}");
    let want = format!(
        "ssh jump path: core@{b2}:22 (hop 2 of 2), as key {}",
        hop_key.display()
    );
    assert!(err.contains(&want), "{want:?} not in {err}");
    let (c4, c6) = (CONTROLLER4.to_string(), CONTROLLER6.to_string());
    let args = [
        "apply",
        "--json",
        "--inventory",
        "hosts.toml",
        "--allow",
        &c4,
        "--allow",
        &c6,
        "--allow",
        &b2_text,
        "--extra",
        "192.0.2.0/24",
    ];
    let out = lab.palisade_with_env(bin(), &args, &env);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["changed"; 2], "{report:#}");
}

fn a_hop_that_fails_is_named() {
    let mut lab = line_lab();
    lab.inventory_of(&[2, 3]);
    let b1 = lab.nodes[0].ip4;
    let quick = ["--connect-timeout", "2", "--retries", "0"];

    // A second hop where nothing answers: unreachable, naming that hop.
    let nowhere = format!("core@{b1},core@198.18.0.99");
    let out = via(&lab, "ping", &nowhere, &quick, &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#} {}", stderr(&out));
    assert_eq!(report["summary"]["unreachable"], 2, "{report:#}");
    let error = host(&report, "node-02")["error"].as_str().unwrap();
    assert!(
        error.contains("jump host core@198.18.0.99:22 (hop 2 of 2)"),
        "{error}"
    );

    // The hops in the wrong order: b2 does not take the controller.
    let b2 = lab.nodes[1].ip4;
    let out = via(&lab, "ping", &format!("core@{b2},core@{b1}"), &quick, &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let error = host(&report, "node-03")["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("jump host core@{b2}:22 (hop 1 of 2)")),
        "{error}"
    );

    // A second hop whose host key changed since it was learned.
    let jump = both(&lab);
    let out = via(&lab, "ping", &jump, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    lab.new_host_key(1);
    let out = via(&lab, "ping", &jump, &quick, &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let error = host(&report, "node-02")["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("jump host core@{b2}:22 (hop 2 of 2)"))
            && error.contains(&format!("host key of {b2} changed")),
        "{error}"
    );
    std::fs::write(lab.dir.join("known_hosts"), "").unwrap();

    // A second hop that refuses the key its ssh_config block gives.
    let home = lab.dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        format!(
            "Host b1\n  HostName {b1}\n  User core\nHost b2\n  HostName {b2}\n  User core\n  IdentityFile {}\n\
             Host 198.18.*\n  ProxyJump b1,b2\n",
            lab.stranger_key.display()
        ),
    )
    .unwrap();
    let home_text = home.display().to_string();
    let mut args = lab_args("ping", true, false, &quick);
    args.extend(["--user", "core"]);
    let out = lab.palisade_with_env(bin(), &args, &[("HOME", home_text.as_str())]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#} {}", stderr(&out));
    let error = host(&report, "node-02")["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "jump host core@{b2}:22 (hop 2 of 2): authentication as core failed"
        )),
        "{error}"
    );
}

fn a_hop_that_is_a_node_must_admit_the_hop_before_it() {
    let lab = line_lab();
    // b2 is a node of the fleet; b1 is not, so no whitelist admits it
    // unless --allow does.
    lab.inventory_of(&[1, 2, 3]);
    let b1 = lab.nodes[0].ip4.to_string();
    let jump = both(&lab);
    for cmd in ["plan", "apply"] {
        let out = via(&lab, cmd, &jump, &[], &[]);
        let report = json(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {report:#} {}", stderr(&out));
        assert_eq!(statuses(&report), vec!["refused"; 3], "{cmd}: {report:#}");
        for name in ["node-01", "node-02", "node-03"] {
            let error = host(&report, name)["error"].as_str().unwrap();
            assert!(
                error.contains(&format!("the bastion node-01 sees palisade connecting from {b1}"))
                    && error.contains(&format!("--allow {b1}")),
                "{cmd} {name}: {error}"
            );
        }
    }
    for i in 1..4 {
        assert!(untouched(&lab, i), "node {i} was written");
    }

    // Allowed, b2 changes too, and its new rules still take b1: proved by
    // the new connection from b1 before the confirmation.
    let out = via(&lab, "apply", &jump, &["--allow", &b1], &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["changed"; 3], "{report:#}");
    let out = via(&lab, "verify", &jump, &["--allow", &b1], &[]);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));
}

fn the_proof_fails_when_a_hops_path_is_cut_in_the_window() {
    let lab = line_lab();
    lab.inventory_of(&[2, 3]);
    let (b1, b2) = (&lab.nodes[0], lab.nodes[1].ip4.to_string());
    let jump = both(&lab);
    let mut args = lab_args("apply", true, true, &["--jump", &jump]);
    args.extend(["--allow", &b2, "--confirm-timeout", "12"]);
    let child = lab.spawn_palisade(bin(), &args, &[("PALISADE_TEST_HOLD_CONFIRM", "3")]);
    assert!(
        eventually(30, || (2..4)
            .all(|i| lab.node_has(i, "/run/palisade/rollback/armed"))),
        "the nodes were never armed"
    );
    // While palisade holds its confirmations, b1 stops opening new
    // connections to b2; the ones already open (palisade's path) go on.
    // The SYN, not conntrack's NEW: b1 tracks no connection yet, and would
    // take the open ones for new.
    lab.must(
        &b1.ns,
        &[
            "iptables", "-w", "-I", "OUTPUT", "-d", &b2, "-p", "tcp", "--dport", "22", "--syn", "-j", "DROP",
        ],
    );
    let out = child.wait_with_output().unwrap();
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#} {}", stderr(&out));
    assert_eq!(statuses(&report), vec!["rolled-back"; 2], "{report:#}");
    let error = host(&report, "node-02")["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "a new connection to the bastion core@{b2}:22 (hop 2 of 2)"
        )),
        "{error}"
    );
    for i in 2..4 {
        assert!(untouched(&lab, i), "node {i} kept the change");
    }
}
