//! `palisade ping` and the SSH engine under it.

use std::time::Duration;

use crate::harness::{CONTROLLER4, Needs, Spec};
use crate::{bin, host, json, lab, lab_args, lab_tests, stderr};

lab_tests![Needs::Plain =>
    every_node_answers_at_once,
    forks_bounds_how_many_hosts_work_at_once,
    a_failure_on_one_host_is_reported_for_that_host_only,
    retries_reach_a_node_that_comes_back,
    rsa_and_ed25519_keys_both_log_in_and_a_stranger_key_does_not,
    a_changed_host_key_is_refused_with_both_fingerprints,
    jump_reaches_nodes_through_a_bastion,
    key_formats_pem_ecdsa_and_encrypted,
    with_no_key_the_ssh_agent_signs,
    a_step_that_hangs_or_dies_by_signal_fails_that_host_only,
    plan_apply_and_verify_name_a_sudo_that_wants_a_password,
];

fn spec(nodes: usize) -> Spec {
    Spec {
        nodes,
        ..Spec::default()
    }
}

/// `palisade ping --json` with the lab's inventory, key and known_hosts,
/// unless `extra` names its own.
fn ping(lab: &crate::harness::Lab, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["ping", "--json", "--inventory", "hosts.toml"];
    for (flag, default) in [("--key", "id_ed25519"), ("--known-hosts", "known_hosts")] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    lab.palisade(bin(), &args)
}

fn every_node_answers_at_once() {
    let lab = lab!(Spec {
        nodes: 22,
        record_steps: Some(Duration::from_secs(1)),
        ..Spec::default()
    });
    let out = ping(&lab, &[]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", stderr(&out));
    assert_eq!(report["summary"]["ok"], 22, "{report}");
    for node in &lab.nodes {
        let h = host(&report, &node.name);
        assert_eq!(h["status"], "ok", "{h}");
        assert_eq!(h["error"], serde_json::Value::Null);
        assert_eq!(h["controller_address"], CONTROLLER4.to_string(), "{h}");
        assert_eq!(h["backend"], "nf_tables", "{h}");
        assert!(h["ipset_version"].as_str().unwrap().starts_with("ipset v"), "{h}");
    }
    // Each node held every step for a second. Had palisade gone host by host,
    // some node would have finished before another began.
    let windows: Vec<(f64, f64)> = (0..lab.nodes.len())
        .map(|i| {
            let steps = lab.steps(i);
            // One exec per node: the probe is a single step as root.
            assert_eq!(steps.len(), 1, "node {i} ran {steps:?}");
            (steps[0].0, steps[steps.len() - 1].1)
        })
        .collect();
    let last_start = windows.iter().map(|w| w.0).fold(f64::MIN, f64::max);
    let first_end = windows.iter().map(|w| w.1).fold(f64::MAX, f64::min);
    assert!(last_start < first_end, "hosts did not overlap: {windows:?}");
}

fn forks_bounds_how_many_hosts_work_at_once() {
    let lab = lab!(Spec {
        nodes: 6,
        record_steps: Some(Duration::from_millis(500)),
        ..Spec::default()
    });
    let out = ping(&lab, &["--forks", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let windows: Vec<(f64, f64)> = (0..6)
        .map(|i| {
            let s = lab.steps(i);
            (s[0].0, s[s.len() - 1].1)
        })
        .collect();
    for (start, _) in &windows {
        let busy = windows.iter().filter(|(s, e)| s <= start && start < e).count();
        assert!(busy <= 2, "{busy} hosts at once with --forks 2: {windows:?}");
    }
}

fn a_failure_on_one_host_is_reported_for_that_host_only() {
    let mut lab = lab!(Spec {
        nodes: 6,
        sudo_password: vec![3],
        ..Spec::default()
    });
    lab.stop_sshd(1);
    let n2 = lab.nodes[2].ns.clone();
    lab.must(
        &n2,
        &[
            "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP",
        ],
    );

    let out = ping(&lab, &["--connect-timeout", "2", "--retries", "0"]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    let status = |i: usize| {
        host(&report, &lab.nodes[i].name)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let error = |i: usize| {
        host(&report, &lab.nodes[i].name)["error"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(status(1), "unreachable");
    assert!(error(1).contains("Connection refused"), "{}", error(1));
    assert_eq!(status(2), "unreachable");
    assert!(error(2).contains("timed out after 2s"), "{}", error(2));
    assert_eq!(status(3), "failed");
    assert!(
        error(3).contains("sudo -n needs a password for core"),
        "{}",
        error(3)
    );
    for i in [0, 4, 5] {
        assert_eq!(status(i), "ok", "{report}");
    }
    assert_eq!(report["summary"]["ok"], 3);
    assert_eq!(report["summary"]["unreachable"], 2);
    assert_eq!(report["summary"]["failed"], 1);
}

fn retries_reach_a_node_that_comes_back() {
    let lab = lab!(spec(2));
    let n1 = lab.nodes[1].ns.clone();
    let refuse = [
        "-p",
        "tcp",
        "--dport",
        "22",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ];
    let rule = |op: &'static str| [&["iptables", "-w", op, "INPUT"][..], &refuse[..]].concat();
    lab.must(&n1, &rule("-A"));
    let out = ping(&lab, &["--retries", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        json(&out)["hosts"][1]["error"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    // Backoff is 250 ms, then 500, 1000, 2000: let the node back in after the
    // first attempts were refused.
    std::thread::scope(|s| {
        let handle = s.spawn(|| ping(&lab, &["--retries", "4", "-vv"]));
        std::thread::sleep(Duration::from_millis(600));
        lab.must(&n1, &rule("-D"));
        let out = handle.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
    });
}

fn rsa_and_ed25519_keys_both_log_in_and_a_stranger_key_does_not() {
    let lab = lab!(spec(3));
    for key in ["id_ed25519", "id_rsa"] {
        let out = ping(&lab, &["--key", key]);
        assert_eq!(out.status.code(), Some(0), "{key}: {}", crate::stdout(&out));
    }
    let out = ping(&lab, &["--key", "id_stranger"]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2));
    for node in &lab.nodes {
        let h = host(&report, &node.name);
        assert_eq!(h["status"], "failed");
        assert!(
            h["error"]
                .as_str()
                .unwrap()
                .contains("authentication as core failed"),
            "{h}"
        );
    }
}

fn a_changed_host_key_is_refused_with_both_fingerprints() {
    let mut lab = lab!(spec(4));
    let out = ping(&lab, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let learned = std::fs::read_to_string(lab.dir.join("known_hosts")).unwrap();
    assert_eq!(learned.lines().count(), 4, "{learned}");

    let fingerprint = |lab: &crate::harness::Lab| {
        let pubkey = lab.nodes[2].dir.join("host_ed25519.pub");
        let out = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(pubkey)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let old = fingerprint(&lab);
    lab.new_host_key(2);
    let new = fingerprint(&lab);
    assert_ne!(old, new);

    for checking in ["accept-new", "strict"] {
        let out = ping(&lab, &["--host-key-checking", checking]);
        let report = json(&out);
        assert_eq!(out.status.code(), Some(2), "{checking}: {report}");
        let h = host(&report, &lab.nodes[2].name);
        let error = h["error"].as_str().unwrap();
        assert_eq!(h["status"], "failed");
        assert!(error.contains("changed"), "{error}");
        assert!(
            error.contains(&old) && error.contains(&new),
            "{checking}: want {old} and {new} in {error}"
        );
        for i in [0, 1, 3] {
            assert_eq!(
                host(&report, &lab.nodes[i].name)["status"],
                "ok",
                "{checking}: {report}"
            );
        }
    }
    // The file was not touched by the refusals.
    assert_eq!(
        std::fs::read_to_string(lab.dir.join("known_hosts")).unwrap(),
        learned
    );

    // strict never learns.
    let out = ping(
        &lab,
        &[
            "--host-key-checking",
            "strict",
            "--known-hosts",
            "empty_known_hosts",
        ],
    );
    let report = json(&out);
    assert_eq!(report["summary"]["failed"], 4, "{report}");
    assert!(
        host(&report, "node-00")["error"]
            .as_str()
            .unwrap()
            .contains("is not in"),
        "{report}"
    );
    assert!(!lab.dir.join("empty_known_hosts").exists());
}

fn jump_reaches_nodes_through_a_bastion() {
    let lab = lab!(spec(4));
    // The controller cannot reach nodes 1-3 directly; node 0 can.
    for node in &lab.nodes[1..] {
        let src = CONTROLLER4.to_string();
        lab.must(
            &node.ns,
            &[
                "iptables", "-w", "-A", "INPUT", "-s", &src, "-p", "tcp", "--dport", "22", "-j", "DROP",
            ],
        );
    }
    let direct = ping(&lab, &["--connect-timeout", "1", "--retries", "0"]);
    assert_eq!(json(&direct)["summary"]["unreachable"], 3);

    let bastion = format!("core@{}", lab.nodes[0].ip4);
    let out = ping(&lab, &["--jump", &bastion]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", stderr(&out));
    for node in &lab.nodes[1..] {
        // The nodes see the bastion connecting, not the controller.
        assert_eq!(
            host(&report, &node.name)["controller_address"],
            lab.nodes[0].ip4.to_string(),
            "{report}"
        );
    }

    // An unreachable bastion makes every host unreachable, saying why.
    let out = ping(
        &lab,
        &[
            "--jump",
            "core@198.18.0.99",
            "--connect-timeout",
            "1",
            "--retries",
            "0",
        ],
    );
    let report = json(&out);
    assert_eq!(report["summary"]["unreachable"], 4, "{report}");
    assert!(
        host(&report, "node-02")["error"]
            .as_str()
            .unwrap()
            .contains("jump host core@198.18.0.99:22"),
        "{report}"
    );
}

fn key_formats_pem_ecdsa_and_encrypted() {
    let lab = lab!(spec(2));
    // ssh-keygen's own "-N" comes later and wins for the encrypted key.
    lab.authorize_new_key("id_rsa_pem", &["-t", "rsa", "-b", "2048", "-m", "PEM"]);
    lab.authorize_new_key("id_ecdsa", &["-t", "ecdsa"]);
    lab.authorize_new_key("id_encrypted", &["-t", "ed25519", "-N", "lab passphrase"]);
    let pem = std::fs::read_to_string(lab.dir.join("id_rsa_pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pem}");

    // About 1 ECDSA key in 256 hits a limit of the SSH library (a private
    // number starting with a zero byte): palisade then says how to convert
    // the key, and the converted key works.
    let out = ping(&lab, &["--key", "id_ecdsa"]);
    if out.status.code() == Some(1) {
        assert!(
            stderr(&out).contains("ssh-keygen -p -m PEM -f id_ecdsa"),
            "{}",
            stderr(&out)
        );
        let key = lab.dir.join("id_ecdsa");
        let converted = std::process::Command::new("ssh-keygen")
            .args(["-q", "-p", "-N", "", "-m", "PEM", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            converted.status.success(),
            "{}",
            String::from_utf8_lossy(&converted.stderr)
        );
    }
    for key in ["id_rsa_pem", "id_ecdsa"] {
        let out = ping(&lab, &["--key", key]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{key}: {} {}",
            crate::stdout(&out),
            stderr(&out)
        );
    }
    let args = [
        "ping",
        "--json",
        "--inventory",
        "hosts.toml",
        "--key",
        "id_encrypted",
    ];
    let out = lab.palisade_with_env(bin(), &args, &[("PALISADE_KEY_PASSPHRASE", "lab passphrase")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // No passphrase and no terminal: a clear refusal before any node is contacted.
    let out = lab.palisade(bin(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("id_encrypted: the key is encrypted; set PALISADE_KEY_PASSPHRASE"),
        "{}",
        stderr(&out)
    );
    let out = lab.palisade_with_env(bin(), &args, &[("PALISADE_KEY_PASSPHRASE", "wrong")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot decrypt the key"),
        "{}",
        stderr(&out)
    );
}

/// A real ssh-agent holding one key, killed when dropped.
struct Agent(std::process::Child, std::path::PathBuf);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn with_no_key_the_ssh_agent_signs() {
    let lab = lab!(spec(3));
    let sock = lab.dir.join("agent.sock");
    let child = std::process::Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let agent = Agent(child, sock.clone());
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // An RSA key in the agent: it must sign with rsa-sha2, not SHA-1.
    let added = std::process::Command::new("ssh-add")
        .arg(lab.dir.join("id_rsa"))
        .env("SSH_AUTH_SOCK", &agent.1)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    let args = [
        "ping",
        "--json",
        "--inventory",
        "hosts.toml",
        "--known-hosts",
        "known_hosts",
    ];
    let sock = agent.1.to_str().unwrap();
    let out = lab.palisade_with_env(bin(), &args, &[("SSH_AUTH_SOCK", sock)]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", stderr(&out));
    assert_eq!(report["summary"]["ok"], 3);
}

fn a_step_that_hangs_or_dies_by_signal_fails_that_host_only() {
    let lab = lab!(Spec {
        nodes: 3,
        kill_steps: vec![1],
        record_steps: Some(Duration::from_secs(4)),
        ..Spec::default()
    });
    let out = ping(&lab, &["--timeout", "1"]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    let error = |i: usize| {
        host(&report, &lab.nodes[i].name)["error"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        error(0).contains("remote step timed out after 1s"),
        "{}",
        error(0)
    );
    assert!(
        error(1).contains("remote step was killed by signal KILL"),
        "{}",
        error(1)
    );
    assert_eq!(host(&report, "node-01")["status"], "failed");

    // Without the step timeout the slow nodes pass, the killed one still fails.
    let out = ping(&lab, &[]);
    let report = json(&out);
    assert_eq!(host(&report, "node-00")["status"], "ok", "{report}");
    assert_eq!(host(&report, "node-01")["status"], "failed", "{report}");
}

/// The first step of plan, apply and verify is the probe and the read in one
/// exec through `sudo -n`: a sudo that wants a password is still named as
/// such, for that host alone, and nothing is changed there.
fn plan_apply_and_verify_name_a_sudo_that_wants_a_password() {
    let lab = lab!(Spec {
        nodes: 2,
        sudo_password: vec![1],
        ..Spec::default()
    });
    let rules_before = lab.must(&lab.nodes[1].ns, &["iptables", "-w", "-S"]);
    for cmd in ["plan", "apply", "verify"] {
        let out = lab.palisade(bin(), &lab_args(cmd, true, true, &[]));
        let report = json(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {report} {}", stderr(&out));
        let h = host(&report, &lab.nodes[1].name);
        assert_eq!(h["status"], "failed", "{cmd}: {h}");
        assert_eq!(
            h["error"], "sudo -n needs a password for core on this host (give it NOPASSWD)",
            "{cmd}: {h}"
        );
        let ok = host(&report, &lab.nodes[0].name);
        assert_ne!(ok["status"], "failed", "{cmd}: {ok}");
    }
    assert_eq!(
        lab.must(&lab.nodes[1].ns, &["iptables", "-w", "-S"]),
        rules_before
    );
}
