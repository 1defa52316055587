//! The demo behind `scripts/demo`: palisade's whole job on a lab of local
//! test hosts, saying what each step proves.
//! Usage: demo PATH-TO-PALISADE [NODES] [--keep DIR]
//!
//! With `--keep DIR` (scripts/lab-ns has bound the lab's namespaces under
//! DIR), the lab stays up when the demo ends; DIR/lab and DIR/pids tell
//! `scripts/demo --down` what to take down.

#[path = "../tests/lab/harness.rs"]
mod harness;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use harness::{CONTROLLER4, Kept, Lab, OUTSIDER4, Spec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(bin) = args.get(1) else {
        eprintln!("usage: demo PATH-TO-PALISADE [NODES] [--keep DIR]");
        std::process::exit(1);
    };
    let nodes: usize = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(6)
        .clamp(2, 250);
    let keep: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let bin = std::fs::canonicalize(bin).unwrap_or_else(|e| {
        eprintln!("{bin}: {e}");
        std::process::exit(1)
    });
    // Every node boots systemd, as CoreOS and Flatcar nodes do.
    let mut lab = Lab::start_or_exit(Spec {
        nodes,
        systemd: (0..nodes).collect(),
        detach: keep.is_some(),
        ..Spec::default()
    });
    if let Some(dir) = &keep {
        // Written now, so that an interrupted demo can be taken down too.
        record(dir, &lab.dir, &pids(&lab));
    }
    println!(
        "A lab of {nodes} hosts, each booting systemd (systemd-nspawn) in a network namespace of its own, \
         with its own sshd and netfilter, in 198.18.0.0/15.\n\
         palisade runs in the operator's namespace ({CONTROLLER4}); an outsider ({OUTSIDER4}) stands for \
         the internet.\n"
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
    let run = |lab: &Lab, cmd: &str| {
        let mut argv = vec![cmd];
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
    let say = |text: &str| println!("# {text}");

    say("inventory: the fleet palisade read from hosts.toml, and the role of each host.");
    run(&lab, "inventory");
    say(
        "ping: palisade logs in to every host, sudo works there, the firewall tools are there, and \
         SEES US AS is the address each host sees the operator connect from (the one the whitelist must admit).",
    );
    run(&lab, "ping");
    say("Before any change, anyone can reach every host:");
    reach(&lab);
    say("plan: what apply would change on each host; it changes nothing.");
    run(&lab, "plan");
    say(
        "apply: every host gets the whitelist (the fleet's own addresses and the operator's). Before keeping \
         it, palisade opens a new connection to the host: only if that gets through is the change confirmed; \
         otherwise the host undoes it by itself.",
    );
    run(&lab, "apply");
    say("After apply, the operator still gets through and the outsider does not:");
    reach(&lab);
    say("A second apply finds every host as it should be and changes nothing.");
    run(&lab, "apply");
    let first = lab.nodes[0].name.clone();
    say(&format!(
        "{first} reboots: its kernel forgets every rule, and palisade.service puts the whitelist back at boot, \
         before sshd starts."
    ));
    lab.reboot(0);
    if let Some(dir) = &keep {
        record(dir, &lab.dir, &pids(&lab)); // the rebooted node has a new pid
    }
    reach(&lab);
    let second = lab.nodes[1].name.clone();
    let gone = lab.nodes[0].ip4.to_string();
    say(&format!(
        "Someone deletes {first}'s address from the whitelist by hand on {second}. verify finds the drift \
         (exit 3) and changes nothing; apply puts it right."
    ));
    lab.must(&lab.nodes[1].ns, &["ipset", "del", "palisade4", &gone]);
    run(&lab, "verify");
    run(&lab, "apply");
    say("remove takes everything palisade installed off every host: anyone can reach them again.");
    run(&lab, "remove");
    reach(&lab);

    match keep {
        None => println!("Tearing the lab down."),
        Some(dir) => {
            let first = lab.nodes[0].ip4;
            let kept = lab.keep();
            record(&dir, &kept.dir, &kept.pids);
            print!("{}", how_to_use(&dir, &bin, &kept, first, &common));
        }
    }
}

/// Whether a new connection from the operator, and one from the outsider,
/// gets an SSH banner from each host: real packets through each host's
/// netfilter. An outsider's attempt that gets nothing back within a second
/// was dropped.
fn reach(lab: &Lab) {
    let count = |from: &str| {
        lab.nodes
            .iter()
            .filter(|n| lab.ssh_reachable(from, IpAddr::V4(n.ip4)))
            .count()
    };
    let total = lab.nodes.len();
    let node = &lab.nodes[0];
    let answer = |from: &str| {
        if lab.ssh_reachable(from, IpAddr::V4(node.ip4)) {
            "answers with its SSH banner"
        } else {
            "gives no answer within a second (dropped)"
        }
    };
    println!(
        "  a new connection from the operator ({CONTROLLER4}) to {} ({}) port 22 {}\n  \
         a new connection from the outsider ({OUTSIDER4}) to the same host {}\n  \
         over all {total} hosts: the operator gets through to {}, the outsider to {}\n",
        node.name,
        node.ip4,
        answer(&lab.controller),
        answer(&lab.outsider),
        count(&lab.controller),
        count(&lab.outsider),
    );
}

/// The processes the lab started, as the host sees them.
fn pids(lab: &Lab) -> Vec<u32> {
    (0..lab.nodes.len())
        .filter_map(|i| lab.sshd_pid(i).parse().ok())
        .collect()
}

/// What `scripts/demo --down` needs: the lab directory, and a pid file.
fn record(keep: &Path, lab_dir: &Path, pids: &[u32]) {
    let pids: String = pids.iter().map(|p| format!("{p}\n")).collect();
    let write = |name: &str, text: &str| {
        if let Err(e) = std::fs::write(keep.join(name), text) {
            eprintln!("cannot write {}: {e}", keep.join(name).display());
        }
    };
    write("lab", &format!("dir={}\n", lab_dir.display()));
    write("pids", &pids);
}

/// The exact commands to use the kept lab, and to take it down.
fn how_to_use(keep: &Path, bin: &Path, kept: &Kept, node: Ipv4Addr, common: &[&str]) -> String {
    let (k, dir) = (keep.display(), kept.dir.display());
    let enter = |ns: &str| {
        format!("sudo nsenter --mount={k}/mnt --net={k}/net ip netns exec {ns} sh -c 'cd {dir} && exec bash'")
    };
    let bin = bin.display();
    let args = common.join(" ");
    format!(
        "\nThe lab is still up, as remove left it (no whitelist on any host). Its namespaces are bound under \
         {k}, its files are in {dir}.\n\
         Open a shell as the operator ({CONTROLLER4}), in the lab directory:\n  {}\n\
         and point palisade at the lab from there, for instance:\n  \
         {bin} ping {args}\n  \
         {bin} plan {args}\n  \
         {bin} apply -v {args}\n  \
         {bin} verify --json {args}\n\
         A shell as the outsider ({OUTSIDER4}), to try getting in from outside the whitelist:\n  {}\n  \
         then, for instance: ssh -o ConnectTimeout=2 -i id_ed25519 core@{}\n\
         Take the lab down (every process it started, its namespaces, mounts and files):\n  \
         scripts/demo --down\n",
        enter(&kept.controller),
        enter(&kept.outsider),
        node,
    )
}
