//! The demo behind `scripts/demo`: palisade's whole job on a lab of local
//! test hosts. Usage: demo PATH-TO-PALISADE [NODES]

#[path = "../tests/lab/harness.rs"]
mod harness;

use std::net::IpAddr;

use harness::{CONTROLLER4, Lab, Spec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(bin) = args.get(1) else {
        eprintln!("usage: demo PATH-TO-PALISADE [NODES]");
        std::process::exit(1);
    };
    let nodes: usize = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(6)
        .clamp(2, 250);
    let bin = std::fs::canonicalize(bin).unwrap_or_else(|e| {
        eprintln!("{bin}: {e}");
        std::process::exit(1)
    });
    // Every node boots systemd, as CoreOS and Flatcar nodes do.
    let mut lab = Lab::start_or_exit(Spec {
        nodes,
        systemd: (0..nodes).collect(),
        ..Spec::default()
    });
    println!(
        "A lab of {nodes} hosts, each booting systemd (systemd-nspawn) in a network namespace of its own, \
         with its own sshd and netfilter, in 198.18.0.0/15.\n\
         palisade runs in the controller namespace ({CONTROLLER4}); an outsider namespace stands for the internet.\n"
    );
    let c = CONTROLLER4.to_string();
    let common = [
        "--inventory",
        "hosts.toml",
        "--key",
        "id_ed25519",
        "--allow",
        &c,
        "--allow",
        "2001:2::1",
    ];
    let run = |lab: &Lab, cmd: &str, extra: &[&str]| {
        let mut argv = vec![cmd];
        argv.extend_from_slice(extra);
        // Each command takes only its own flags: inventory no SSH ones,
        // ping and remove no whitelist ones.
        let takes = match cmd {
            "inventory" => 2,
            "ping" | "remove" => 4,
            _ => common.len(),
        };
        argv.extend_from_slice(&common[..takes]);
        println!("$ palisade {}", argv.join(" "));
        let out = lab.palisade(&bin, &argv);
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        println!("(exit {})\n", out.status.code().unwrap_or(-1));
    };
    let outsider_gets_in = |lab: &Lab| {
        let hits = lab
            .nodes
            .iter()
            .filter(|n| lab.ssh_reachable(&lab.outsider, IpAddr::V4(n.ip4)))
            .count();
        println!("outsider reaches sshd on {hits} of {nodes} hosts\n");
    };

    run(&lab, "inventory", &[]);
    run(&lab, "ping", &[]);
    outsider_gets_in(&lab);
    run(&lab, "plan", &[]);
    run(&lab, "apply", &[]);
    outsider_gets_in(&lab);
    run(&lab, "apply", &[]);
    println!(
        "{} reboots: its kernel forgets every rule, and palisade.service puts the whitelist back at boot.",
        lab.nodes[0].name
    );
    lab.reboot(0);
    outsider_gets_in(&lab);
    println!("Someone deletes a member by hand on {}:", lab.nodes[1].name);
    let gone = lab.nodes[0].ip4.to_string();
    lab.must(&lab.nodes[1].ns, &["ipset", "del", "palisade4", &gone]);
    run(&lab, "verify", &[]);
    run(&lab, "apply", &[]);
    run(&lab, "remove", &[]);
    outsider_gets_in(&lab);
    println!("Tearing the lab down.");
}
