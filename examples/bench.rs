//! The benchmark behind `scripts/bench`: palisade against the baseline an
//! operator would otherwise use, OpenSSH's client fanned out with xargs,
//! measured in the same run on the same lab. The machine is shared and
//! noisy, so every figure is a median of several runs and is reported as a
//! ratio to the baseline. Usage: bench PATH-TO-PALISADE [NODES] [RUNS]

#[path = "../tests/lab/harness.rs"]
mod harness;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{CONTROLLER4, Lab, Spec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(bin) = args.get(1).and_then(|b| std::fs::canonicalize(b).ok()) else {
        eprintln!("usage: bench PATH-TO-PALISADE [NODES] [RUNS]");
        std::process::exit(1);
    };
    let nodes: usize = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
        .clamp(2, 1000);
    let runs: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(5).clamp(1, 50);
    let lab = Lab::start_or_exit(Spec {
        nodes,
        ..Spec::default()
    });
    let c = CONTROLLER4.to_string();
    let common = [
        "--inventory",
        "hosts.toml",
        "--key",
        "id_ed25519",
        "--forks",
        "64",
    ];
    let palisade = |cmd: &str, extra: &[&str]| {
        let mut argv = vec![cmd, "--json"];
        argv.extend_from_slice(&common);
        // ping and remove take no whitelist flags.
        if matches!(cmd, "apply" | "plan" | "verify") {
            argv.extend(["--allow", &c]);
        }
        argv.extend_from_slice(extra);
        let start = Instant::now();
        let out = lab.palisade(&bin, &argv);
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "palisade {cmd} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    // Learn host keys once, so every measured run does the same work.
    palisade("ping", &[]);

    let hosts: String = lab.nodes.iter().map(|n| format!("{}\n", n.ip4)).collect();
    let openssh = |kex: Option<&str>| {
        let mut script = String::from(
            "xargs -P 64 -I{} ssh -n -q -i id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        );
        if let Some(k) = kex {
            script += &format!(" -o KexAlgorithms={k}");
        }
        script += " core@{} 'sudo -n iptables -w -S INPUT >/dev/null && sudo -n ipset list -n >/dev/null'";
        let start = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.controller, "sh", "-c", &script])
            .current_dir(&lab.dir)
            .stdin(Stdio::piped())
            .spawn()
            .expect("ssh fan-out");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(hosts.as_bytes())
            .expect("write");
        assert!(
            child.wait().expect("wait").success(),
            "the OpenSSH fan-out failed"
        );
        start.elapsed()
    };

    let median = |mut f: Box<dyn FnMut() -> Duration + '_>| {
        let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
        times.sort();
        times[times.len() / 2]
    };
    let baseline = median(Box::new(|| openssh(None)));
    let rows: Vec<(&str, Duration)> = vec![
        (
            "OpenSSH + xargs -P 64, curve25519 (reference)",
            median(Box::new(|| openssh(Some("curve25519-sha256")))),
        ),
        ("palisade ping", median(Box::new(|| palisade("ping", &[])))),
        (
            "palisade apply (every host changes)",
            median(Box::new(|| {
                palisade("remove", &[]);
                palisade("apply", &[])
            })),
        ),
        (
            "palisade apply (nothing to do)",
            median(Box::new(|| palisade("apply", &[]))),
        ),
        ("palisade verify", median(Box::new(|| palisade("verify", &[])))),
    ];
    println!("{nodes} hosts, median of {runs} runs; ratio = time / baseline (lower is better)\n");
    println!("{:<48} {:>9} {:>7}", "", "seconds", "ratio");
    println!(
        "{:<48} {:>9.3} {:>7.2}",
        "baseline: OpenSSH + xargs -P 64, default kex",
        baseline.as_secs_f64(),
        1.0
    );
    for (name, t) in rows {
        println!(
            "{name:<48} {:>9.3} {:>7.2}",
            t.as_secs_f64(),
            t.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
