//! The guard before DNAT (issue 21): every new connection a node receives,
//! for itself or DNATed to a pod or a container, meets the whitelist in
//! mangle PREROUTING, before kube-proxy's, CNI portmap's or Docker's DNAT
//! rewrites it. Real netfilter and real packets, on nodes with systemd and
//! without.

use std::net::IpAddr;

use serde_json::Value;

use crate::backend::{self, untouched};
use crate::harness::{Lab, Needs, Spec};
use crate::{bin, eventually, held_apply, host, json, lab, lab_args, lab_tests, stderr, unconfirmed_apply};

lab_tests![Needs::Systemd, both =>
    a_nodeport_meets_the_whitelist_and_opens_alone,
    published_ports_are_guarded_with_and_without_docker_user,
    the_lockout_protocol_covers_the_guard,
    a_crash_boots_the_old_state_and_a_reboot_restores_the_guard,
    a_gateway_forwards_only_what_the_whitelist_admits,
];

fn run(lab: &Lab, cmd: &str, extra: &[&str], code: i32) -> Value {
    let out = lab.palisade(bin(), &lab_args(cmd, true, true, extra));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
    report
}

fn v4(lab: &Lab, i: usize) -> IpAddr {
    IpAddr::V4(lab.nodes[i].ip4)
}

/// Node `i` shaped like a k3s agent: pods p0 (10.42.N.5, serving 8080) and
/// p1 (10.42.N.6, serving 8081) behind the bridge `cni0` (10.42.N.1),
/// forwarding on, and kube-proxy's NodePorts in `nat PREROUTING`:
/// tcp/30080 to p0:8080 and tcp/30081 to p1:8081. Returns the pods'
/// namespaces.
fn k3s_agent(lab: &Lab, i: usize) -> [String; 2] {
    let node = lab.nodes[i].ns.clone();
    let net = format!("10.42.{}", 5 + i);
    lab.must(&node, &["ip", "link", "add", "cni0", "type", "bridge"]);
    lab.must(
        &node,
        &["ip", "addr", "add", &format!("{net}.1/24"), "dev", "cni0"],
    );
    lab.must(&node, &["ip", "link", "set", "cni0", "up"]);
    let pods = [format!("{}-n{i}p0", lab.id), format!("{}-n{i}p1", lab.id)];
    for (k, pod) in pods.iter().enumerate() {
        let veth = format!("veth{k}");
        let made = std::process::Command::new("ip")
            .args(["netns", "add", pod])
            .status();
        assert!(made.is_ok_and(|s| s.success()), "ip netns add {pod}");
        lab.must(
            &node,
            &[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", pod,
            ],
        );
        lab.must(&node, &["ip", "link", "set", &veth, "master", "cni0", "up"]);
        let addr = format!("{net}.{}/24", 5 + k);
        lab.must(pod, &["ip", "link", "set", "lo", "up"]);
        lab.must(pod, &["ip", "addr", "add", &addr, "dev", "eth0"]);
        lab.must(pod, &["ip", "link", "set", "eth0", "up"]);
        lab.must(
            pod,
            &["ip", "route", "add", "default", "via", &format!("{net}.1")],
        );
    }
    let proxy = format!(
        "set -e\n\
         sysctl -q -w net.ipv4.ip_forward=1\n\
         iptables -w -t nat -N KUBE-NODEPORTS\n\
         iptables -w -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n\
         iptables -w -t nat -A KUBE-NODEPORTS -p tcp --dport 30080 -j DNAT --to-destination {net}.5:8080\n\
         iptables -w -t nat -A KUBE-NODEPORTS -p tcp --dport 30081 -j DNAT --to-destination {net}.6:8081\n\
         iptables -w -t nat -A POSTROUTING -s {net}.0/24 ! -o cni0 -j MASQUERADE\n\
         iptables -w -A FORWARD -d {net}.0/24 -j ACCEPT\n\
         iptables -w -A FORWARD -s {net}.0/24 -j ACCEPT\n\
         iptables -w -t mangle -A PREROUTING -j MARK --set-xmark 0x4000/0x4000\n"
    );
    lab.must(&node, &["sh", "-c", &proxy]);
    pods
}

/// Both nodes of `lab` as k3s agents ([`k3s_agent`]), both agents in the
/// inventory, with listeners in their pods (p0 on 8080, p1 on 8081) and on
/// the nodes themselves (81): the pods' namespaces, p0 then p1 of each
/// node, and the listeners, which the caller keeps.
pub(crate) fn k3s_agents(lab: &Lab) -> (Pods, Vec<std::net::TcpListener>) {
    lab.inventory_roles(&[(0, "agent"), (1, "agent")]);
    let mut pods = Pods(Vec::new());
    let mut listeners = Vec::new();
    for i in 0..2 {
        let [p0, p1] = k3s_agent(lab, i);
        listeners.push(lab.listen(&p0, 8080));
        listeners.push(lab.listen(&p1, 8081));
        listeners.push(lab.listen(&lab.nodes[i].ns, 81));
        pods.0.extend([p0, p1]);
    }
    (pods, listeners)
}

/// The pods' namespaces go with the lab's.
pub(crate) struct Pods(pub Vec<String>);

impl Drop for Pods {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", p])
                .output();
        }
    }
}

fn a_nodeport_meets_the_whitelist_and_opens_alone() {
    let lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    let (pods, _listeners) = k3s_agents(&lab);
    let out = &lab.outsider;
    // Before: the NodePort is open to the world, as kube-proxy makes it.
    for i in 0..2 {
        assert!(lab.tcp_connects(out, v4(&lab, i), 30080), "node {i}");
    }

    let accept = ["--interface", "cni0"];
    let report = run(&lab, "plan", &accept, 0);
    let kinds: Vec<&str> = host(&report, "node-00")["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    let want: &[&str] = backend::pick(&["guard-missing", "guard-jump-missing"], &["nft-table-missing"]);
    assert!(want.iter().all(|k| kinds.contains(k)), "{kinds:?}");
    run(&lab, "apply", &accept, 0);
    for i in 0..2 {
        let (node, net) = (v4(&lab, i), format!("10.42.{}", 5 + i));
        assert!(
            !lab.tcp_connects(out, node, 30080),
            "node {i}: the outsider reaches the NodePort"
        );
        assert!(!lab.tcp_connects(out, node, 30081), "node {i}");
        assert!(
            lab.tcp_connects(&lab.controller, node, 30080),
            "node {i}: the operator lost the NodePort"
        );
        assert!(
            lab.tcp_connects(&lab.nodes[1 - i].ns, node, 30081),
            "node {i}: a node lost the NodePort"
        );
        // Pods reach each other, the node, and the NodePort.
        let (p0, p1) = (&pods.0[2 * i], &pods.0[2 * i + 1]);
        assert!(
            lab.tcp_connects(p1, format!("{net}.5").parse().unwrap(), 8080),
            "node {i}"
        );
        assert!(
            lab.tcp_connects(p0, format!("{net}.6").parse().unwrap(), 8081),
            "node {i}"
        );
        assert!(
            lab.tcp_connects(p0, format!("{net}.1").parse().unwrap(), 81),
            "node {i}"
        );
        assert!(lab.tcp_connects(p0, node, 30081), "node {i}");
        // The jump is first, above kube-proxy's mark (nftables: no jump).
        if backend::nft() {
            continue;
        }
        let mangle = lab.must(&lab.nodes[i].ns, &["iptables-save", "-t", "mangle"]);
        let first = mangle.lines().find(|l| l.starts_with("-A PREROUTING "));
        assert_eq!(first, Some("-A PREROUTING -j PALISADE-GUARD"), "{mangle}");
    }
    run(&lab, "verify", &accept, 0);

    // Another tool puts its rule above the jump: verify says so, apply
    // puts it back first. (nftables has no jump: its table is cut off by
    // making it dormant instead.)
    let ns = &lab.nodes[0].ns;
    if !backend::nft() {
        backend::mangle(&lab, ns, "iptables", &["-I", "PREROUTING", "1", "-j", "RETURN"]);
        assert!(
            lab.tcp_connects(out, v4(&lab, 0), 30080),
            "the pushed-down guard still dropped"
        );
        let report = run(&lab, "verify", &accept, 3);
        assert_eq!(
            host(&report, "node-00")["changes"][0]["kind"],
            "guard-jump-not-first",
            "{report:#}"
        );
        run(&lab, "apply", &accept, 0);
        assert!(!lab.tcp_connects(out, v4(&lab, 0), 30080));
        backend::mangle(&lab, ns, "iptables", &["-D", "PREROUTING", "-j", "RETURN"]);
        backend::mangle(
            &lab,
            ns,
            "iptables",
            &["-D", "PREROUTING", "-j", "PALISADE-GUARD"],
        );
        let report = run(&lab, "verify", &accept, 3);
        assert_eq!(
            host(&report, "node-00")["changes"][0]["kind"],
            "guard-jump-missing",
            "{report:#}"
        );
    } else {
        // The table made dormant by hand filters nothing: verify says so,
        // apply puts it right.
        let (kind, _) = backend::break_guard(&lab, 0);
        assert!(
            lab.tcp_connects(out, v4(&lab, 0), 30080),
            "the dormant table still dropped"
        );
        let report = run(&lab, "verify", &accept, 3);
        assert_eq!(host(&report, "node-00")["changes"][0]["kind"], kind, "{report:#}");
        run(&lab, "apply", &accept, 0);
        assert!(!lab.tcp_connects(out, v4(&lab, 0), 30080));
    }

    // --open agent=tcp/30080: that NodePort to everyone, and nothing else.
    let open = ["--interface", "cni0", "--open", "agent=tcp/30080"];
    run(&lab, "apply", &open, 0);
    for i in 0..2 {
        let node = v4(&lab, i);
        assert!(
            lab.tcp_connects(out, node, 30080),
            "node {i}: the open NodePort is closed"
        );
        assert!(
            !lab.tcp_connects(out, node, 30081),
            "node {i}: another NodePort opened"
        );
        assert!(
            !lab.tcp_connects(out, node, 81),
            "node {i}: the node's own port opened"
        );
        assert!(!lab.ssh_reachable(out, node), "node {i}");
    }
    run(&lab, "verify", &open, 0);

    // remove takes the guard away with the rest.
    run(&lab, "remove", &[], 0);
    for i in 0..2 {
        assert!(untouched(&lab, i), "node {i}");
        assert!(lab.tcp_connects(out, v4(&lab, i), 30081), "node {i}");
    }
}

fn published_ports_are_guarded_with_and_without_docker_user() {
    let mut lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    // node-00: Docker's nftables backend, emulated: the container behind
    // docker0, its published port DNATed by a table of Docker's own name
    // at the dstnat hook, and no DOCKER-USER chain anywhere.
    let c0 = lab.add_container(0, 8080);
    let ns0 = lab.nodes[0].ns.clone();
    let undo = "iptables -w -t nat -F PREROUTING && iptables -w -F FORWARD && iptables -w -F DOCKER-USER && iptables -w -X DOCKER-USER";
    lab.must(&ns0, &["sh", "-c", undo]);
    let nft = "table ip docker-bridges {\n\
               chain prerouting { type nat hook prerouting priority dstnat; policy accept; tcp dport 8080 dnat to 172.17.0.2:80; }\n\
               chain forward { type filter hook forward priority filter; policy accept; }\n\
               }\n";
    let file = lab.dir.join("docker-nft.conf");
    std::fs::write(&file, nft).unwrap();
    lab.must(&ns0, &["nft", "-f", file.to_str().unwrap()]);
    // node-01: Docker's iptables backend, with DOCKER-USER.
    let c1 = lab.add_container(1, 8080);
    let _services = [lab.listen(&c0, 80), lab.listen(&c1, 80)];
    let out = &lab.outsider;
    for i in 0..2 {
        assert!(
            lab.tcp_connects(out, v4(&lab, i), 8080),
            "node {i}: the shape is wrong"
        );
    }
    run(&lab, "apply", &[], 0);
    for i in 0..2 {
        let node = v4(&lab, i);
        assert!(
            !lab.tcp_connects(out, node, 8080),
            "node {i}: the outsider reaches the container"
        );
        assert!(lab.tcp_connects(&lab.controller, node, 8080), "node {i}");
        assert!(lab.tcp_connects(&lab.nodes[1 - i].ns, node, 8080), "node {i}");
    }
    assert!(!lab.must(&ns0, &["iptables-save"]).contains("DOCKER-USER"));
    run(&lab, "verify", &[], 0);
    // A port published by the nftables backend opens like any other.
    run(&lab, "apply", &["--open", "all=tcp/8080"], 0);
    for i in 0..2 {
        assert!(lab.tcp_connects(out, v4(&lab, i), 8080), "node {i}");
    }
}

fn mangle(lab: &Lab, i: usize) -> String {
    let ns = &lab.nodes[i].ns;
    let mut text = lab.must(ns, &["iptables-save", "-t", "mangle"]);
    text.push_str(&lab.must(ns, &["ip6tables-save", "-t", "mangle"]));
    text.lines()
        .filter(|l| l.starts_with("-A ") || l.starts_with(':'))
        .map(|l| l.split(" [").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn the_lockout_protocol_covers_the_guard() {
    let lab = lab!(Spec {
        nodes: 2,
        systemd: vec![1],
        ..Spec::default()
    });
    // Refused without the operator: no guard written either.
    let out = lab.palisade(bin(), &lab_args("apply", true, false, &[]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}\n{}", stderr(&out));
    for i in 0..2 {
        assert_eq!(
            host(&report, &lab.nodes[i].name)["status"],
            "refused",
            "{report:#}"
        );
        assert!(untouched(&lab, i), "node {i}");
    }

    // A failed confirmation over today's layout: the guard goes back
    // exactly, its jump where another tool had pushed it (rule 2).
    run(&lab, "apply", &[], 0);
    for i in 0..2 {
        let ns = &lab.nodes[i].ns;
        if backend::nft() {
            // nftables has no jump to push down: a rule of nobody's in
            // palisade's chain instead.
            backend::add_foreign_rule(&lab, i);
            continue;
        }
        backend::mangle(
            &lab,
            ns,
            "iptables",
            &["-I", "PREROUTING", "1", "-j", "MARK", "--set-mark", "7"],
        );
        backend::mangle(&lab, ns, "ip6tables", &["-D", "PALISADE-GUARD", "-j", "DROP"]);
    }
    let before: Vec<String> = (0..2).map(|i| backend::state(&lab, i)).collect();
    unconfirmed_apply(&lab, 2, &["--open", "all=tcp/30080"]);
    for (i, before) in before.iter().enumerate() {
        assert_eq!(
            &backend::state(&lab, i),
            before,
            "node {i}: the guard is not as it was"
        );
    }

    // From a node with no whitelist: a failed first confirmation leaves
    // no guard behind.
    run(&lab, "remove", &[], 0);
    unconfirmed_apply(&lab, 2, &[]);
    for i in 0..2 {
        assert!(untouched(&lab, i), "node {i}: {}", backend::state(&lab, i));
    }
}

fn a_crash_boots_the_old_state_and_a_reboot_restores_the_guard() {
    let mut lab = lab!(Spec {
        nodes: 1,
        systemd: vec![0],
        ..Spec::default()
    });
    let c = lab.add_container(0, 8080);
    let _service = lab.listen(&c, 80);
    // A first apply, unconfirmed when the node loses power: it boots with
    // no guard.
    let mut child = held_apply(&lab, &["--confirm-timeout", "40"]);
    assert!(
        eventually(30, || backend::guard_present(&lab, 0)),
        "the change never reached the node"
    );
    lab.crash(0);
    let _ = child.kill();
    let _ = child.wait();
    assert!(untouched(&lab, 0), "the node booted into the unconfirmed change");

    // Confirmed, then a clean reboot: the boot restore puts the guard back
    // first in PREROUTING before the network is up, before sshd and
    // Docker start (here: Docker's rules come back after it).
    run(&lab, "apply", &[], 0);
    lab.reboot(0);
    lab.add_container(0, 8080);
    let _service = lab.listen(&c, 80);
    assert!(backend::guard_present(&lab, 0), "{}", backend::state(&lab, 0));
    let text = mangle(&lab, 0);
    assert!(
        !lab.tcp_connects(&lab.outsider, v4(&lab, 0), 8080),
        "the published port is open after the reboot"
    );
    assert!(lab.tcp_connects(&lab.controller, v4(&lab, 0), 8080));
    if !backend::nft() {
        let first = text.lines().find(|l| l.starts_with("-A PREROUTING "));
        assert_eq!(first, Some("-A PREROUTING -j PALISADE-GUARD"), "{text}");
    }
}

/// A node that routes for a host behind it (not in the inventory): what it
/// forwards meets the guard too (README, "The whitelist").
fn a_gateway_forwards_only_what_the_whitelist_admits() {
    let lab = lab!(Spec {
        nodes: 1,
        ..Spec::default()
    });
    let (node, behind) = (lab.nodes[0].ns.clone(), format!("{}-behind", lab.id));
    let made = std::process::Command::new("ip")
        .args(["netns", "add", &behind])
        .status();
    assert!(made.is_ok_and(|s| s.success()), "ip netns add {behind}");
    let _pods = Pods(vec![behind.clone()]);
    lab.must(
        &node,
        &[
            "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", &behind,
        ],
    );
    lab.must(&node, &["ip", "addr", "add", "198.19.99.1/24", "dev", "lan0"]);
    lab.must(&node, &["ip", "link", "set", "lan0", "up"]);
    lab.must(&node, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    for cmd in [
        "link set lo up",
        "addr add 198.19.99.2/24 dev eth0",
        "link set eth0 up",
        "route add default via 198.19.99.1",
    ] {
        let mut argv = vec!["ip"];
        argv.extend(cmd.split(' '));
        lab.must(&behind, &argv);
    }
    let gw = lab.nodes[0].ip4.to_string();
    for ns in [&lab.outsider, &lab.controller] {
        lab.must(ns, &["ip", "route", "add", "198.19.99.0/24", "via", &gw]);
    }
    let host_behind: IpAddr = "198.19.99.2".parse().unwrap();
    let outsider: IpAddr = IpAddr::V4(crate::harness::OUTSIDER4);
    let _listeners = [lab.listen(&behind, 8000), lab.listen(&lab.outsider, 9000)];
    assert!(
        lab.tcp_connects(&lab.outsider, host_behind, 8000),
        "the shape is wrong"
    );
    assert!(lab.tcp_connects(&behind, outsider, 9000), "the shape is wrong");

    // The host behind is guarded like the gateway's own ports, and its own
    // new connections out pass only from an accepted interface.
    run(&lab, "apply", &[], 0);
    assert!(!lab.tcp_connects(&lab.outsider, host_behind, 8000));
    assert!(lab.tcp_connects(&lab.controller, host_behind, 8000));
    assert!(!lab.tcp_connects(&behind, outsider, 9000));
    run(&lab, "apply", &["--interface", "lan0"], 0);
    assert!(lab.tcp_connects(&behind, outsider, 9000));
    assert!(!lab.tcp_connects(&lab.outsider, host_behind, 8000));
}
