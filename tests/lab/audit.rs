//! Audit mode (issue 25), on both backends: the whole whitelist installed,
//! nothing dropped, each new connection it would drop recorded on the node
//! in a bounded set (an nftables dynamic set, or an ipset `hash:ip,port`
//! filled by `-j SET`); `verify --flows` collects them from every node.
//! Real netfilter, real packets from the outsider; the switch back to
//! enforce is one protected change, and the operator stays in.

use std::net::IpAddr;

use serde_json::Value;

use crate::harness::{CONTROLLER4, Lab, Needs, OUTSIDER4, Spec};
use crate::{bin, expect, host, kinds, lab, lab_args, lab_tests, stderr, stdout, unconfirmed_apply};

lab_tests![Needs::Plain =>
    audit_mode_records_what_enforce_would_drop,
    iptables_audit_mode_records_what_enforce_would_drop,
    iptables_audit_sets_go_with_the_mode_remove_and_the_move;
    Needs::Systemd =>
    audit_mode_survives_a_reboot,
    iptables_audit_mode_survives_a_reboot,
];

const NFT: &str = "--backend=nftables";
const IPT: &str = "--backend=iptables";

fn audit_mode_records_what_enforce_would_drop() {
    records_what_enforce_would_drop(NFT);
}

fn iptables_audit_mode_records_what_enforce_would_drop() {
    records_what_enforce_would_drop(IPT);
}

fn audit_mode_survives_a_reboot() {
    survives_a_reboot(NFT);
}

fn iptables_audit_mode_survives_a_reboot() {
    survives_a_reboot(IPT);
}

/// `palisade CMD --json` with `backend` and `extra`, checked for exit
/// `code`.
fn run(lab: &Lab, backend: &str, cmd: &str, extra: &[&str], code: i32) -> Value {
    let mut args = vec![backend];
    args.extend_from_slice(extra);
    expect(lab.palisade(bin(), &lab_args(cmd, true, true, &args)), code)
}

/// The same without `--json`: its table, as an operator reads it (printed,
/// for the README's transcript).
fn text(lab: &Lab, backend: &str, cmd: &str, extra: &[&str], code: i32) -> String {
    let mut args = vec![backend];
    args.extend_from_slice(extra);
    let out = lab.palisade(bin(), &lab_args(cmd, false, true, &args));
    let shown = stdout(&out);
    eprintln!("$ palisade {cmd} {}\n{shown}", args.join(" "));
    assert_eq!(out.status.code(), Some(code), "{shown}\n{}", stderr(&out));
    shown
}

fn v4(lab: &Lab, i: usize) -> IpAddr {
    IpAddr::V4(lab.nodes[i].ip4)
}

/// The flows `verify --flows --json` reported.
fn flows(report: &Value) -> &Vec<Value> {
    report["flows"]
        .as_array()
        .unwrap_or_else(|| panic!("no flows in {report:#}"))
}

/// How many flows node `i`'s IPv4 audit set holds, as nft or ipset lists
/// it.
fn recorded4(lab: &Lab, backend: &str, i: usize) -> usize {
    if backend == IPT {
        let set = lab.must(&lab.nodes[i].ns, &["ipset", "save", "palisade4-aud"]);
        return set.lines().filter(|l| l.starts_with("add ")).count();
    }
    let set = lab.must(
        &lab.nodes[i].ns,
        &["nft", "-j", "list", "set", "inet", "palisade", "audit4"],
    );
    let v: Value = serde_json::from_str(&set).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["set"]["elem"].as_array())
        .map(Vec::len)
        .sum()
}

fn records_what_enforce_would_drop(b: &str) {
    let lab = lab!(Spec {
        nodes: 3,
        ..Spec::default()
    });
    // A scraper's port on every node.
    let _listeners: Vec<_> = (0..3).map(|i| lab.listen(&lab.nodes[i].ns, 9100)).collect();
    let out = &lab.outsider;
    let audit = ["--audit", "--audit-size", "8"];

    let report = run(&lab, b, "plan", &audit, 0);
    assert_eq!(host(&report, "node-01")["status"], "would-change", "{report:#}");
    text(&lab, b, "apply", &audit, 0);
    let members: Vec<IpAddr> = (0..3)
        .map(|i| v4(&lab, i))
        .chain([IpAddr::V4(CONTROLLER4)])
        .collect();
    // Nothing is dropped: the outsider gets in, to the scraper's port and to
    // SSH, on the agents; members talk as ever.
    for i in 1..3 {
        assert!(lab.tcp_connects(out, v4(&lab, i), 9100), "node {i}");
        assert!(lab.tcp_connects(out, v4(&lab, i), 9100), "node {i}");
        assert!(lab.ssh_reachable(out, v4(&lab, i)), "node {i}");
        assert!(lab.tcp_connects(&lab.nodes[0].ns, v4(&lab, i), 9100), "node {i}");
        assert!(lab.ssh_reachable(&lab.controller, v4(&lab, i)), "node {i}");
    }

    // verify says each node's mode, and --flows what enforce would drop.
    let report = run(&lab, b, "verify", &["--audit", "--audit-size", "8", "--flows"], 0);
    for i in 0..3 {
        let row = host(&report, &lab.nodes[i].name);
        assert_eq!(row["mode"], "audit", "{report:#}");
        assert_eq!(row["audit"]["full"], serde_json::json!([]), "{report:#}");
    }
    let flows = flows(&report);
    let scrape = flows
        .iter()
        .find(|f| f["port"] == 9100)
        .unwrap_or_else(|| panic!("no flow to 9100 in {report:#}"));
    assert_eq!(scrape["source"], OUTSIDER4.to_string(), "{report:#}");
    assert_eq!(scrape["protocol"], "tcp", "{report:#}");
    assert_eq!(
        scrape["hosts"],
        serde_json::json!(["node-01", "node-02"]),
        "{report:#}"
    );
    // Two connections to each agent: a SYN each (a SYN retried counts too).
    assert!(scrape["packets"].as_u64().unwrap_or(0) >= 4, "{report:#}");
    assert_eq!(
        scrape["admit"],
        serde_json::json!(["--extra 198.18.0.2", "--open agent=tcp/9100"]),
        "{report:#}"
    );
    assert!(flows.iter().any(|f| f["port"] == 22), "{report:#}");
    // No member ever appears: its set's match accepts it before the record.
    for f in flows {
        let source: IpAddr = f["source"].as_str().unwrap_or_default().parse().unwrap();
        assert!(!members.contains(&source), "a member recorded: {report:#}");
        // The outsider, or the lab bridge's IGMP from 0.0.0.0 (which
        // enforce mode drops too, so it is rightly recorded).
        assert!(
            source == IpAddr::V4(OUTSIDER4) || (source.is_unspecified() && f["protocol"] == "igmp"),
            "{report:#}"
        );
    }
    let shown = text(&lab, b, "verify", &["--audit", "--audit-size", "8", "--flows"], 0);
    assert!(shown.contains("198.18.0.2 -> tcp/9100 on 2 agents, "), "{shown}");
    assert!(
        shown.contains("admit with --extra 198.18.0.2 or --open agent=tcp/9100"),
        "{shown}"
    );
    assert!(
        shown.contains("note for every host (3): audit mode: drops nothing, records what it would drop"),
        "{shown}"
    );

    // A scan of more (source, port) pairs than the bound: the set stops at
    // it, and the report says it filled.
    for port in 10_000..10_020 {
        lab.tcp_connects(out, v4(&lab, 1), port);
    }
    assert_eq!(recorded4(&lab, b, 1), 8);
    let report = run(&lab, b, "verify", &["--audit", "--audit-size", "8", "--flows"], 0);
    assert_eq!(
        host(&report, "node-01")["audit"]["full"],
        serde_json::json!(["ipv4"]),
        "{report:#}"
    );
    assert_eq!(
        host(&report, "node-02")["audit"]["full"],
        serde_json::json!([]),
        "{report:#}"
    );
    let shown = text(&lab, b, "verify", &["--audit", "--audit-size", "8", "--flows"], 0);
    assert!(shown.contains("audit set full on node-01"), "{shown}");
    assert!(shown.contains("the IPv4 audit set is full"), "{shown}");

    // Another bound: the sets made afresh, in one protected change; and
    // back.
    let report = run(&lab, b, "plan", &["--audit", "--audit-size", "16"], 0);
    assert!(
        kinds(&report, "node-01").contains(&"audit-set-differs".to_owned()),
        "{report:#}"
    );
    run(&lab, b, "apply", &["--audit", "--audit-size", "16"], 0);
    let report = run(
        &lab,
        b,
        "verify",
        &["--audit", "--audit-size", "16", "--flows"],
        0,
    );
    assert_eq!(
        host(&report, "node-01")["audit"]["full"],
        serde_json::json!([]),
        "{report:#}"
    );
    run(&lab, b, "apply", &["--audit", "--audit-size", "8"], 0);
    run(&lab, b, "verify", &["--audit", "--audit-size", "8"], 0);
    assert!(lab.tcp_connects(out, v4(&lab, 2), 9100));

    // verify wanting enforce mode: each node differs by its mode, and by
    // nothing else.
    let report = run(&lab, b, "verify", &[], 3);
    for i in 0..3 {
        let name = &lab.nodes[i].name;
        let k = kinds(&report, name);
        assert!(k.contains(&"mode-differs".to_owned()), "{report:#}");
        assert!(
            k.iter().all(|k| k == "mode-differs" || k == "persist-stale"),
            "{report:#}"
        );
    }

    // A switch to enforce whose confirmation never comes: the nodes go
    // back to audit mode by themselves, the recorded flows still there.
    unconfirmed_apply(&lab, 3, &[b]);
    run(&lab, b, "verify", &["--audit", "--audit-size", "8"], 0);
    assert!(lab.tcp_connects(out, v4(&lab, 2), 9100));
    assert!(recorded4(&lab, b, 2) > 0);

    // apply without --audit: one protected change to enforce; the outsider
    // is dropped, the operator stays in.
    let shown = text(&lab, b, "apply", &[], 0);
    assert!(shown.contains("3 hosts: 3 changed"), "{shown}");
    assert!(
        shown.contains("~ guard mode, audit -> enforce: drops what the whitelist does not admit"),
        "{shown}"
    );
    for i in 0..3 {
        assert!(!lab.tcp_connects(out, v4(&lab, i), 9100), "node {i}");
        assert!(!lab.ssh_reachable(out, v4(&lab, i)), "node {i}");
        assert!(lab.ssh_reachable(&lab.controller, v4(&lab, i)), "node {i}");
    }
    if b == IPT {
        // The audit sets went with the mode.
        for i in 0..3 {
            let sets = lab.must(&lab.nodes[i].ns, &["ipset", "list", "-n"]);
            assert!(!sets.contains("-aud"), "node {i}: {sets}");
        }
    }
    let report = run(&lab, b, "verify", &[], 0);
    assert_eq!(host(&report, "node-01")["mode"], "enforce", "{report:#}");
    assert!(host(&report, "node-01").get("audit").is_none(), "{report:#}");
    let shown = text(&lab, b, "plan", &["--audit"], 0);
    assert!(shown.contains("guard mode, enforce -> audit"), "{shown}");
}

/// The boot restore loads the table (or the sets and the guard) as apply
/// left it: in audit mode, the guard records and drops nothing after a
/// reboot too (what it recorded before is gone with the kernel's memory).
fn survives_a_reboot(b: &str) {
    let mut lab = lab!(Spec {
        nodes: 1,
        systemd: vec![0],
        ..Spec::default()
    });
    let _listener = lab.listen(&lab.nodes[0].ns, 9100);
    run(&lab, b, "apply", &["--audit"], 0);
    lab.reboot(0);
    let _listener = lab.listen(&lab.nodes[0].ns, 9100);
    assert!(lab.tcp_connects(&lab.outsider, v4(&lab, 0), 9100));
    let report = run(&lab, b, "verify", &["--audit", "--flows"], 0);
    assert_eq!(host(&report, "node-00")["mode"], "audit", "{report:#}");
    let flows = flows(&report);
    assert!(
        flows
            .iter()
            .any(|f| f["source"] == OUTSIDER4.to_string() && f["port"] == 9100),
        "{report:#}"
    );
    // And back to enforce, which a reboot keeps too.
    run(&lab, b, "apply", &[], 0);
    lab.reboot(0);
    let _listener = lab.listen(&lab.nodes[0].ns, 9100);
    assert!(!lab.tcp_connects(&lab.outsider, v4(&lab, 0), 9100));
    assert!(lab.ssh_reachable(&lab.controller, v4(&lab, 0)));
    run(&lab, b, "verify", &[], 0);
}

/// The iptables backend's audit sets are palisade's: a remove takes them
/// away with the guard, and so does a move to the nftables backend (whose
/// rollback would make them again).
fn iptables_audit_sets_go_with_the_mode_remove_and_the_move() {
    let lab = lab!(Spec {
        nodes: 1,
        ..Spec::default()
    });
    let sets = |lab: &Lab| lab.must(&lab.nodes[0].ns, &["ipset", "list", "-n"]);
    run(&lab, IPT, "apply", &["--audit"], 0);
    assert!(sets(&lab).contains("palisade4-aud"), "{}", sets(&lab));
    assert!(sets(&lab).contains("palisade6-aud"), "{}", sets(&lab));
    let removed = expect(lab.palisade(bin(), &lab_args("remove", true, true, &[IPT])), 0);
    assert_eq!(host(&removed, "node-00")["status"], "removed", "{removed:#}");
    assert_eq!(sets(&lab).trim(), "", "remove left sets");
    // Again, then moved to nftables, in audit mode: nothing of the
    // iptables backend is left.
    run(&lab, IPT, "apply", &["--audit"], 0);
    let _listener = lab.listen(&lab.nodes[0].ns, 9100);
    assert!(lab.tcp_connects(&lab.outsider, v4(&lab, 0), 9100));
    run(&lab, NFT, "apply", &["--audit"], 0);
    assert_eq!(sets(&lab).trim(), "", "the move left sets");
    assert!(lab.tcp_connects(&lab.outsider, v4(&lab, 0), 9100));
    let report = run(&lab, NFT, "verify", &["--audit"], 0);
    assert_eq!(host(&report, "node-00")["mode"], "audit", "{report:#}");
}
