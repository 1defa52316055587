//! A whitelist that fits a real DC/OS cluster: ports a role serves to
//! everyone (a public agent's 80/443), and entries that would widen the
//! whitelist refused before any node is touched. Proven with real packets.

use std::net::IpAddr;

use serde_json::Value;

use crate::backend::{self, pick, untouched};
use crate::harness::{Lab, Needs, Spec};
use crate::{bin, host, json, lab, lab_args, lab_tests, stderr, stdout};

lab_tests![Needs::Systemd, both =>
    public_agents_serve_their_open_ports_to_everyone,
    published_ports_follow_the_same_rule_per_role,
    entries_that_widen_the_whitelist_are_refused_before_any_node_is_touched,
    tainted_nodes_are_managed_and_deposed_ones_only_admitted;
// iptables only: a foreign iptables chain and ipset (nftables.rs has the
// foreign table).
Needs::Systemd =>
    objects_palisade_did_not_make_are_never_replaced,
];

/// node-00 a master, node-01 an agent, node-02 a public agent (booting
/// systemd, as CoreOS does).
fn cluster() -> Lab {
    let lab = lab!(Spec {
        nodes: 3,
        systemd: vec![2],
        ..Spec::default()
    });
    lab.inventory_roles(&[(0, "master"), (1, "agent"), (2, "public-agent")]);
    lab
}

fn run(lab: &Lab, cmd: &str, extra: &[&str], code: i32) -> (Value, String) {
    let out = lab.palisade(bin(), &lab_args(cmd, true, true, extra));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
    (report, stderr(&out))
}

fn public_agents_serve_their_open_ports_to_everyone() {
    let lab = cluster();
    let (agent, public) = (1, 2);
    let v4 = |i: usize| IpAddr::V4(lab.nodes[i].ip4);
    let v6 = |i: usize| IpAddr::V6(lab.nodes[i].ip6);
    let _web: Vec<_> = [agent, public]
        .iter()
        .flat_map(|&i| [lab.listen(&lab.nodes[i].ns, 80), lab.listen(&lab.nodes[i].ns, 81)])
        .collect();
    let udp_agent = lab.udp_listen(&lab.nodes[agent].ns, 5353);
    let udp_public = lab.udp_listen(&lab.nodes[public].ns, 5353);

    // Without --open, plan says the public agent will serve nobody outside.
    let (plan, err) = run(&lab, "plan", &[], 0);
    assert!(
        err.contains("nothing is open to everyone on the 1 public agent(s) (node-02)")
            && err.contains("--open public-agent=tcp/80,tcp/443"),
        "{err}"
    );
    // A first run shows the whole whitelist, once.
    let whitelist = &plan["whitelist"];
    assert!(
        whitelist["ipv4"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "198.18.1.13"),
        "{plan:#}"
    );
    assert_eq!(whitelist["open"]["public-agent"], serde_json::json!([]));

    let open = ["--open", "public-agent=tcp/80,udp/5353"];
    let (plan, err) = run(&lab, "plan", &open, 0);
    assert!(!err.contains("nothing is open"), "{err}");
    assert_eq!(
        plan["whitelist"]["open"]["public-agent"],
        serde_json::json!(["tcp/80", "udp/5353"])
    );
    run(&lab, "apply", &open, 0);

    // The outsider reaches the public agent's open ports, IPv4 and IPv6,
    // TCP and UDP, and nothing else on it, and nothing on the agent.
    let out = &lab.outsider;
    assert!(lab.tcp_connects(out, v4(public), 80));
    assert!(lab.tcp_connects(out, v6(public), 80));
    assert!(!lab.tcp_connects(out, v4(public), 81));
    assert!(!lab.ssh_reachable(out, v4(public)));
    assert!(!lab.tcp_connects(out, v4(agent), 80));
    assert!(!lab.tcp_connects(out, v6(agent), 80));
    assert!(lab.udp_delivered(out, v4(public), 5353, &udp_public));
    assert!(lab.udp_delivered(out, v6(public), 5353, &udp_public));
    assert!(!lab.udp_delivered(out, v4(agent), 5353, &udp_agent));
    // The whitelist still reaches everything everywhere.
    assert!(lab.tcp_connects(&lab.controller, v4(agent), 81));
    assert!(lab.tcp_connects(&lab.nodes[0].ns, v4(public), 81));

    let (report, _) = run(&lab, "verify", &open, 0);
    assert_eq!(report["summary"]["ok"], 3, "{report:#}");
    // Without the opening, the public agent has drifted (and only it).
    let (report, _) = run(&lab, "verify", &[], 3);
    assert_eq!(host(&report, "node-02")["status"], "drift", "{report:#}");
    assert_eq!(host(&report, "node-01")["status"], "ok", "{report:#}");
    let change = &host(&report, "node-02")["changes"][0];
    assert_eq!(change["kind"], "guard-rules-differ", "{report:#}");
    assert!(
        change["message"]
            .as_str()
            .unwrap()
            .contains(pick("--dport 80", "dport 80 accept")),
        "{change}"
    );
}

fn published_ports_follow_the_same_rule_per_role() {
    let mut lab = cluster();
    let (agent, public) = (1, 2);
    let mut services = Vec::new();
    for i in [agent, public] {
        let c = lab.add_container(i, 8080);
        services.push(lab.listen(&c, 80));
    }
    run(&lab, "apply", &["--open", "public-agent=tcp/8080"], 0);
    let out = &lab.outsider;
    assert!(
        lab.tcp_connects(out, IpAddr::V4(lab.nodes[public].ip4), 8080),
        "the public agent's published port is closed to the world"
    );
    assert!(
        !lab.tcp_connects(out, IpAddr::V4(lab.nodes[agent].ip4), 8080),
        "the private agent's published port is open to the world"
    );
    assert!(lab.tcp_connects(&lab.controller, IpAddr::V4(lab.nodes[agent].ip4), 8080));
}

fn entries_that_widen_the_whitelist_are_refused_before_any_node_is_touched() {
    let lab = cluster();
    for (args, says) in [
        (
            &["--allow", "203.0.113.7/2"][..],
            "did you mean 203.0.113.7, or 192.0.0.0/2?",
        ),
        (&["--extra", "0.0.0.0/0"], "admits every address"),
        (&["--extra", "::/0"], "admits every address"),
        (&["--chain", "KUBE-FIREWALL"], "another tool's namespace"),
        (&["--chain", "DOCKER-INGRESS"], "another tool's namespace"),
        (&["--open", "public-agent=tcp/0"], "port 0 is no port"),
        (&["--open", "planet=tcp/80"], "unknown role"),
    ] {
        let out = lab.palisade(bin(), &lab_args("apply", true, true, args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    for i in 0..3 {
        assert!(untouched(&lab, i), "node {i} was touched");
    }

    // What only a node can tell: an accepted interface that takes in its
    // uplink (the interface of its default route) admits everyone. That
    // node fails, untouched; the others take the change.
    lab.must(
        &lab.nodes[0].ns,
        &["ip", "route", "add", "default", "via", "198.18.0.1"],
    );
    let out = lab.palisade(
        bin(),
        &lab_args(
            "apply",
            true,
            true,
            &["--interface", "docker0", "--interface", "eth+"],
        ),
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let error = host(&report, "node-00")["error"].as_str().unwrap();
    assert!(
        error.contains("accepts interface eth+, which takes in eth0, this node's uplink"),
        "{error}"
    );
    assert!(untouched(&lab, 0));
    assert_eq!(host(&report, "node-01")["status"], "changed", "{report:#}");
}

fn objects_palisade_did_not_make_are_never_replaced() {
    let lab = cluster();
    // Another tool's chain named like palisade's on node 0, another tool's
    // set on node 1: those nodes fail, untouched; node 2 takes the change.
    let n0 = &lab.nodes[0].ns;
    lab.must(n0, &["iptables", "-w", "-N", "PALISADE"]);
    lab.must(
        n0,
        &[
            "iptables", "-w", "-A", "PALISADE", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
        ],
    );
    let n1 = &lab.nodes[1].ns;
    lab.must(
        n1,
        &["ipset", "create", "palisade6", "hash:net", "family", "inet6"],
    );
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let error = |name: &str| {
        host(&report, name)["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        error("node-00").contains("chain PALISADE exists but palisade did not make it"),
        "{report:#}"
    );
    assert!(
        error("node-01").contains("ipset palisade6 exists but palisade did not make it"),
        "{report:#}"
    );
    assert_eq!(host(&report, "node-02")["status"], "changed", "{report:#}");
    assert_eq!(
        lab.must(n0, &["iptables", "-w", "-S", "PALISADE"]),
        "-N PALISADE\n-A PALISADE -p tcp -m tcp --dport 22 -j ACCEPT\n"
    );
    assert!(lab.must(n0, &["ipset", "list", "-n"]).is_empty());
    assert_eq!(lab.must(n1, &["ipset", "list", "-n"]), "palisade6\n");
    assert!(!lab.must(n1, &["iptables-save"]).contains("PALISADE"));
    // remove leaves them alone too.
    let out = lab.palisade(bin(), &lab_args("remove", true, true, &[]));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(lab.must(n0, &["iptables-save"]).contains("-A PALISADE -p tcp"));
    assert_eq!(lab.must(n1, &["ipset", "list", "-n"]), "palisade6\n");
}

/// A Terraform state (v4) of the lab's nodes as `packet_device`s: node-00
/// the master, node-01 an agent, node-02 an agent Terraform has tainted,
/// node-03 a deposed object of the same agent (its replacement is node-02).
fn lab_state(lab: &Lab) -> String {
    let device = |i: usize, extra: &str| {
        let n = &lab.nodes[i];
        format!(
            r#"{{"index_key":{index},"schema_version":0,{extra}"attributes":{{"id":"dev-{i}","hostname":"{name}","access_public_ipv4":"{v4}","access_public_ipv6":"{v6}","network":[{{"address":"{v4}","family":4,"public":true}},{{"address":"{v6}","family":6,"public":true}}],"root_password":"hunter2-secret"}}}}"#,
            index = i.min(1),
            name = n.name,
            v4 = n.ip4,
            v6 = n.ip6,
        )
    };
    format!(
        r#"{{"version":4,"terraform_version":"1.5.7","serial":3,"lineage":"lab","outputs":{{}},"resources":[
{{"mode":"managed","type":"packet_device","name":"dcos_master","each":"list","provider":"provider[\"registry.terraform.io/packethost/packet\"]","instances":[{m}]}},
{{"mode":"managed","type":"packet_device","name":"dcos_agent","each":"list","provider":"provider[\"registry.terraform.io/packethost/packet\"]","instances":[{a0},{a1},{a2}]}}]}}"#,
        m = device(0, ""),
        a0 = device(1, "").replace(r#""index_key":1"#, r#""index_key":0"#),
        a1 = device(2, r#""status":"tainted","#),
        a2 = device(3, r#""deposed":"00000001","#),
    )
}

fn tainted_nodes_are_managed_and_deposed_ones_only_admitted() {
    let lab = lab!(Spec {
        nodes: 4,
        systemd: vec![2],
        ..Spec::default()
    });
    std::fs::write(lab.dir.join("lab.tfstate"), lab_state(&lab)).unwrap();
    let mut args = vec![
        "apply",
        "--json",
        "--state",
        "lab.tfstate",
        "--key",
        "id_ed25519",
        "--known-hosts",
        "known_hosts",
        "--allow",
        "198.18.0.1",
        "--allow",
        "2001:2::1",
    ];
    args.extend_from_slice(backend::flags());
    let out = lab.palisade(bin(), &args);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", stderr(&out));
    assert!(!stdout(&out).contains("hunter2") && !stderr(&out).contains("hunter2"));
    let row = |i: usize| {
        let address = lab.nodes[i].ip4.to_string();
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["address"] == address.as_str())
            .unwrap_or_else(|| panic!("node {i} not in {report:#}"))
            .clone()
    };
    for i in 0..3 {
        assert_eq!(row(i)["status"], "changed", "{report:#}");
    }
    // The deposed object is admitted everywhere, and never touched.
    assert_eq!(row(3)["status"], "deposed", "{report:#}");
    assert!(untouched(&lab, 3));
    let deposed = lab.nodes[3].ip4.to_string();
    for i in 0..3 {
        assert!(
            backend::members(&lab, i, 4).contains(&deposed),
            "node {i} does not admit the deposed node"
        );
        assert!(lab.tcp_connects(&lab.nodes[3].ns, IpAddr::V4(lab.nodes[i].ip4), 22));
    }
}
