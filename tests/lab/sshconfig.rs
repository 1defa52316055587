//! The operator's ssh_config (issue 26): palisade reaches nodes it can only
//! reach the way `ssh` does, with no SSH flags, and a flag still wins.

use crate::harness::{CONTROLLER4, CONTROLLER6, Needs, Spec};
use crate::{bin, host, json, lab, lab_tests, stderr};

lab_tests![Needs::Plain =>
    ssh_config_gives_user_key_port_and_proxyjump,
];

/// Nodes 1 and 2 drop the controller and answer SSH on port 2222 only
/// (redirected to sshd); node 0 is the bastion, `bastion-lab` in the file.
fn ssh_config_gives_user_key_port_and_proxyjump() {
    let lab = lab!(Spec {
        nodes: 3,
        ..Spec::default()
    });
    let src = CONTROLLER4.to_string();
    for node in &lab.nodes[1..] {
        lab.must(
            &node.ns,
            &[
                "iptables", "-w", "-A", "INPUT", "-s", &src, "-p", "tcp", "-j", "DROP",
            ],
        );
        lab.must(
            &node.ns,
            &[
                "iptables",
                "-w",
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-p",
                "tcp",
                "--dport",
                "2222",
                "-j",
                "REDIRECT",
                "--to-ports",
                "22",
            ],
        );
    }
    let home = lab.dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let dir = lab.dir.display();
    let bastion = lab.nodes[0].ip4;
    std::fs::write(
        home.join(".ssh/config"),
        format!(
            "# what an operator keeps for a cluster behind a bastion\n\
             Host bastion-lab\n  HostName {bastion}\n  User core\n\
             Host 198.18.* !{bastion}\n  User core\n  Port 2222\n  IdentityFile {dir}/missing_key\n  \
             IdentityFile {dir}/id_ed25519\n  IdentitiesOnly yes\n  ProxyJump bastion-lab\n  \
             UserKnownHostsFile {dir}/known_hosts\n  StrictHostKeyChecking accept-new\n  ConnectTimeout 5\n  \
             ServerAliveInterval 10\n  SomeFutureKeyword yes\n\
             Include ~/.ssh/conf.d/*\n\
             Host *\n  Port 22\n  User core\n  IdentityFile {dir}/id_ed25519\n  UserKnownHostsFile {dir}/known_hosts\n"
        ),
    )
    .unwrap();
    let home_text = home.display().to_string();
    let env = [("HOME", home_text.as_str())];
    let without_bastion = ["--inventory", "hosts.toml", "--limit", "!node-00"];

    let mut args = vec!["ping", "--json", "-v"];
    args.extend(without_bastion);
    let out = lab.palisade_with_env(bin(), &args, &env);
    let report = json(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {err}");
    assert_eq!(report["summary"]["ok"], 2, "{report}");
    for node in &lab.nodes[1..] {
        // Through the bastion: the node sees it connect.
        assert_eq!(
            host(&report, &node.name)["controller_address"],
            bastion.to_string(),
            "{report}"
        );
    }
    // -v says where each setting came from.
    let config = home.join(".ssh/config");
    for want in [
        format!("ssh port: 2222 (from ssh_config {}:7)", config.display()),
        format!(
            "ssh key: Some(\"{dir}/id_ed25519\") (from ssh_config {}:9)",
            config.display()
        ),
        format!(
            "ssh jump: Some(core@{bastion}:22) (from ssh_config {}:11)",
            config.display()
        ),
        "ssh user: \"core\" (from ssh_config".to_owned(),
    ] {
        assert!(err.contains(want.as_str()), "{want:?} not in {err}");
    }

    // --ssh-config none reads no file: the nodes are out of reach
    // (before apply, whose whitelist admits the controller).
    let mut args = vec![
        "ping",
        "--json",
        "--ssh-config",
        "none",
        "--key",
        "id_ed25519",
        "--known-hosts",
        "known_hosts",
        "--connect-timeout",
        "1",
        "--retries",
        "0",
    ];
    args.extend(without_bastion);
    let out = lab.palisade_with_env(bin(), &args, &env);
    assert_eq!(json(&out)["summary"]["unreachable"], 2, "{}", stderr(&out));

    // apply works the same way, with no SSH flag.
    let (c4, c6) = (CONTROLLER4.to_string(), CONTROLLER6.to_string());
    let mut args = vec!["apply", "--json", "--allow", &c4, "--allow", &c6];
    args.extend(without_bastion);
    let out = lab.palisade_with_env(bin(), &args, &env);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", stderr(&out));
    assert_eq!(report["summary"]["changed"], 2, "{report}");

    // A flag wins over the file: --jump replaces ProxyJump.
    let mut args = vec![
        "ping",
        "--json",
        "--jump",
        "core@198.18.0.99",
        "--connect-timeout",
        "1",
        "--retries",
        "0",
    ];
    args.extend(without_bastion);
    let out = lab.palisade_with_env(bin(), &args, &env);
    let report = json(&out);
    assert_eq!(report["summary"]["unreachable"], 2, "{report} {}", stderr(&out));

    // The bastion itself resolves to another port and no jump: palisade
    // has one of each per run, and says which two hosts differ.
    let out = lab.palisade_with_env(bin(), &["ping", "--inventory", "hosts.toml"], &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("node-00 and node-01 resolve to different ports"),
        "{err}"
    );
}
