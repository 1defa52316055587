//! OpenSSH certificates (issue 26): logging in with a user certificate a
//! CA signed, and trusting nodes through a host certificate and one
//! `@cert-authority` line of known_hosts, against real sshd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Lab, Needs, Spec};
use crate::{bin, host, json, lab, lab_tests, stderr};

lab_tests![Needs::Plain =>
    user_certificates_log_in_where_the_bare_key_is_refused,
    host_certificates_are_trusted_through_a_cert_authority_line,
];

/// Runs `ssh-keygen` with `args`, which must succeed.
fn keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen")
        .args(args)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new CA (an ed25519 key pair) in the lab directory.
fn new_ca(lab: &Lab, name: &str) -> PathBuf {
    let ca = lab.dir.join(name);
    keygen(&["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", &text(&ca)]);
    ca
}

/// `public_key` (a `.pub` file) signed by `ca`: a user certificate for
/// `core` unless `extra` says otherwise (`-h`, `-n`, `-V`).
fn sign(ca: &Path, public_key: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["-q", "-s"];
    let ca = text(ca);
    let key = text(public_key);
    args.push(&ca);
    args.extend(["-I", "palisade-lab"]);
    args.extend(extra);
    if !extra.contains(&"-n") {
        args.extend(["-n", "core"]);
    }
    args.push(&key);
    keygen(&args);
    let stem = key.strip_suffix(".pub").unwrap_or(&key);
    PathBuf::from(format!("{stem}-cert.pub"))
}

fn text(p: &Path) -> String {
    p.display().to_string()
}

fn copy(lab: &Lab, from: &str, to: &str) {
    std::fs::copy(lab.dir.join(from), lab.dir.join(to)).unwrap();
    std::fs::copy(
        lab.dir.join(format!("{from}.pub")),
        lab.dir.join(format!("{to}.pub")),
    )
    .unwrap();
}

fn ping<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "ping",
        "--json",
        "-v",
        "--inventory",
        "hosts.toml",
        "--known-hosts",
        "known_hosts",
        "--retries",
        "0",
    ];
    args.extend_from_slice(extra);
    args
}

/// Node 0 trusts the CA for users and reads no authorized_keys: only a
/// certificate gets in. Node 1 is as the lab makes it: authorized_keys,
/// no CA, so a certificate is refused there and the bare key logs in.
fn user_certificates_log_in_where_the_bare_key_is_refused() {
    let mut lab = lab!(Spec {
        nodes: 2,
        ..Spec::default()
    });
    let ca = new_ca(&lab, "user_ca");
    lab.sshd_extra(
        0,
        &format!(
            "TrustedUserCAKeys {}.pub\nMatch all\n  AuthorizedKeysFile none\n",
            ca.display()
        ),
    );
    // Keys with no certificate beside them, and certificates apart.
    copy(&lab, "id_ed25519", "bare");
    copy(&lab, "id_ed25519", "op");
    let cert = sign(&ca, &lab.dir.join("op.pub"), &["-V", "-5m:+1h"]);
    let op_cert = lab.dir.join("op_cert.pub");
    std::fs::rename(&cert, &op_cert).unwrap();
    let (n0, n1) = (lab.nodes[0].name.clone(), lab.nodes[1].name.clone());

    // The bare key: node 0 refuses it.
    let out = lab.palisade(bin(), &ping(&["--key", "bare"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report} {}", stderr(&out));
    assert_eq!(host(&report, &n0)["status"], "failed", "{report}");
    let error = host(&report, &n0)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("authentication as core failed"), "{error}");
    assert_eq!(host(&report, &n1)["status"], "ok", "{report}");

    // --certificate: node 0 takes the certificate; node 1 refuses it and
    // takes the bare key, and -v says so.
    let out = lab.palisade(bin(), &ping(&["--key", "op", "--certificate", "op_cert.pub"]));
    let report = json(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {err}");
    assert!(err.contains("ssh certificate: "), "{err}");
    assert!(err.contains("op_cert.pub"), "{err}");
    let fell_back = format!("{}:22: the server refused the certificate", lab.nodes[1].ip4);
    assert!(err.contains(&fell_back), "{fell_back:?} not in {err}");
    let not_fell_back = format!("{}:22: the server refused", lab.nodes[0].ip4);
    assert!(!err.contains(&not_fell_back), "{err}");

    // KEY-cert.pub beside the key is found on its own.
    std::fs::copy(&op_cert, lab.dir.join("op-cert.pub")).unwrap();
    let out = lab.palisade(bin(), &ping(&["--key", "op"]));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", stderr(&out));
    assert!(stderr(&out).contains("op-cert.pub"), "{}", stderr(&out));
    std::fs::remove_file(lab.dir.join("op-cert.pub")).unwrap();

    // ssh_config's IdentityFile and CertificateFile, no SSH flag.
    let home = lab.dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let dir = lab.dir.display();
    std::fs::write(
        home.join(".ssh/config"),
        format!(
            "Host 198.18.*\n  IdentityFile {dir}/op\n  CertificateFile {dir}/missing-cert.pub\n  \
             CertificateFile {dir}/op_cert.pub\n"
        ),
    )
    .unwrap();
    let home_text = text(&home);
    let out = lab.palisade_with_env(bin(), &ping(&[]), &[("HOME", home_text.as_str())]);
    let report = json(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {err}");
    assert!(err.contains("ssh certificate: Some("), "{err}");
    assert!(err.contains("(from ssh_config"), "{err}");

    // An RSA key's certificate signs with rsa-sha2 (OpenSSH refuses the
    // SHA-1 ssh-rsa-cert-v01).
    let rsa_cert = sign(&ca, &lab.dir.join("id_rsa.pub"), &["-V", "-5m:+1h"]);
    let rsa_cert_text = text(&rsa_cert);
    let out = lab.palisade(
        bin(),
        &ping(&["--key", "id_rsa", "--certificate", &rsa_cert_text, "--limit", &n0]),
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", stderr(&out));

    // A certificate the ssh-agent holds (ssh-add adds KEY-cert.pub with KEY).
    std::fs::copy(&op_cert, lab.dir.join("op-cert.pub")).unwrap();
    let sock = lab.dir.join("agent.sock");
    let agent = Agent(
        Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    );
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(lab.dir.join("op"))
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let sock_text = text(&sock);
    let out = lab.palisade_with_env(
        bin(),
        &ping(&["--limit", &n0]),
        &[("SSH_AUTH_SOCK", sock_text.as_str())],
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", stderr(&out));
    drop(agent);
    std::fs::remove_file(lab.dir.join("op-cert.pub")).unwrap();

    // Refused before any connection (exit 1), naming the file: expired,
    // not yet valid, another key's.
    let expired = lab.dir.join("expired-cert.pub");
    std::fs::rename(
        sign(&ca, &lab.dir.join("bare.pub"), &["-V", "20200101:20200102"]),
        &expired,
    )
    .unwrap();
    let expired_text = text(&expired);
    let later = lab.dir.join("later-cert.pub");
    std::fs::rename(sign(&ca, &lab.dir.join("bare.pub"), &["-V", "+1d:+2d"]), &later).unwrap();
    let later_text = text(&later);
    let stranger = sign(&ca, &lab.stranger_key.with_extension("pub"), &[]);
    let stranger_text = text(&stranger);
    for (file, why) in [
        (&expired_text, "is expired at 2020-01-0"),
        (&later_text, "is not valid before"),
        (&stranger_text, "the certificate is for another key"),
    ] {
        let out = lab.palisade(bin(), &ping(&["--key", "bare", "--certificate", file]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("{file}: ")), "{file} not in {err}");
        assert!(err.contains(why), "{why:?} not in {err}");
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// A real ssh-agent, killed when dropped.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Each node presents a host certificate from one CA (node 4 none): node 0
/// a good one, node 1 an expired one, node 2 one for another address,
/// node 3 a good one whose host key is `@revoked`. known_hosts has the CA
/// line and no plain key; accept-new must learn nothing.
fn host_certificates_are_trusted_through_a_cert_authority_line() {
    let mut lab = lab!(Spec {
        nodes: 5,
        ..Spec::default()
    });
    let ca = new_ca(&lab, "host_ca");
    for i in 0..4 {
        let ip = lab.nodes[i].ip4.to_string();
        let validity = match i {
            1 => "20200101:20200102",
            _ => "-5m:+1h",
        };
        let principal = match i {
            2 => "198.18.9.9".to_owned(),
            _ => ip,
        };
        let host_key = lab.nodes[i].dir.join("host_ed25519.pub");
        let cert = sign(&ca, &host_key, &["-h", "-n", &principal, "-V", validity]);
        lab.sshd_extra(i, &format!("HostCertificate {}\n", cert.display()));
    }
    let ca_line = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
    let node3_key = std::fs::read_to_string(lab.nodes[3].dir.join("host_ed25519.pub")).unwrap();
    let known = format!(
        "@cert-authority 198.18.*,2001:2::* {}@revoked {} {}",
        ca_line, lab.nodes[3].ip4, node3_key
    );
    let kh = lab.dir.join("kh_ca");
    std::fs::write(&kh, &known).unwrap();
    let run = |lab: &Lab| {
        lab.palisade(
            bin(),
            &[
                "ping",
                "--json",
                "--inventory",
                "hosts.toml",
                "--key",
                "id_ed25519",
                "--known-hosts",
                "kh_ca",
                "--host-key-checking",
                "accept-new",
                "--retries",
                "0",
            ],
        )
    };
    let out = run(&lab);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report} {}", stderr(&out));
    let error = |i: usize| -> String {
        let row = host(&report, &lab.nodes[i].name);
        assert_eq!(row["status"], if i == 0 { "ok" } else { "failed" }, "{report}");
        row["error"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(error(0), "");
    let ip = |i: usize| lab.nodes[i].ip4.to_string();
    for (i, why) in [
        (1, "is expired at 2020-01-0".to_owned()),
        (2, format!("principals (\"198.18.9.9\") do not include {}", ip(2))),
        (3, "its host key SHA256:".to_owned()),
        (4, "presents a plain host key".to_owned()),
    ] {
        let e = error(i);
        assert!(e.contains(&ip(i)), "{e}");
        assert!(e.contains(&why), "{why:?} not in {e}");
    }
    assert!(error(3).contains("is revoked (line 2)"), "{}", error(3));
    // Nothing learned: a CA vouches for these hosts.
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), known);

    // The CA revoked: node 0 is refused too.
    let revoked = format!("{known}@revoked * {ca_line}");
    std::fs::write(&kh, &revoked).unwrap();
    let out = run(&lab);
    let report = json(&out);
    let e = host(&report, &lab.nodes[0].name)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        e.contains("its CA SHA256:") && e.contains("is revoked (line 3)"),
        "{e}"
    );

    // A CA no line trusts for the host: unknown.
    let other = new_ca(&lab, "other_ca");
    let other_line = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(&kh, format!("@cert-authority 198.18.* {other_line}")).unwrap();
    let out = run(&lab);
    let report = json(&out);
    let e = host(&report, &lab.nodes[0].name)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(e.contains("signed by an unknown CA"), "{e}");
}
