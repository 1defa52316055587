//! SSH to every node at once: one connection per host, each remote step one
//! `exec` of a constant command with its script on stdin.
//!
//! Nothing from input is ever put on a remote command line: the command is
//! `sudo -n sh -s` (or the same with the node's own `$SSH_CONNECTION` as an
//! argument), and the script arrives on stdin, so quoting cannot go wrong. A host's failure (refused, timeout, auth, host key, sudo,
//! a failing script) is data in that host's outcome and never stops the
//! others.

pub(crate) mod certs;
mod ecdsa_pem;
mod error;
mod fanout;
pub(crate) mod known_hosts;
mod quickack;
mod session;
pub(crate) mod ssh_config;

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Certificate, PrivateKey};
use serde::Deserialize;

pub(crate) use error::HostError;
pub(crate) use fanout::{HostOutcome, Target, fan_out};
pub(crate) use known_hosts::KnownHosts;
/// The controller's address in `SSH_CONNECTION` (`client port server port`):
/// where a node sees palisade connect from, after any NAT.
pub(crate) fn origin_of(ssh_connection: &str) -> Option<std::net::IpAddr> {
    ssh_connection.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
pub(crate) use session::StepLog;
pub(crate) use session::{Bastion, Conversation, Heard, HopSession, Output, Session};

/// How unknown and changed host keys are treated, with OpenSSH's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum HostKeyChecking {
    /// Only hosts already in known_hosts.
    Strict,
    /// Learn unknown hosts, refuse changed keys.
    AcceptNew,
    /// Accept any key (for throwaway labs only).
    Off,
}

/// How palisade proves who it is.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// A private key, loaded (and decrypted) once for the whole run.
    Key(Arc<PrivateKey>),
    /// A private key and an OpenSSH user certificate for it, checked
    /// locally when loaded: the certificate is offered first, then the bare
    /// key when the server refuses it, as ssh(1) does.
    Certified {
        key: Arc<PrivateKey>,
        cert: Arc<Certificate>,
        /// Where the certificate was read, for `-v` and errors.
        file: PathBuf,
    },
    /// The ssh-agent listening on this socket (its certificates first).
    Agent(PathBuf),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Key(k) => write!(f, "Key({})", k.algorithm()),
            Credentials::Certified { key, file, .. } => {
                write!(f, "Certified({}, {})", key.algorithm(), file.display())
            }
            Credentials::Agent(p) => write!(f, "Agent({})", p.display()),
        }
    }
}

/// One bastion of the path: `user@host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub(crate) user: String,
    pub(crate) host: String,
    pub port: u16,
    /// The hop's own key, when its ssh_config Host block names one that is
    /// there (as ssh(1) logs in to each hop with that hop's settings);
    /// `None`: the run's key or agent.
    pub(crate) key: Option<PathBuf>,
}

/// The bastions palisade goes through, in order (`--jump a,b`, ssh_config's
/// `ProxyJump a,b`): the first is reached directly, each next one through a
/// tunnel of the one before, and the nodes through the last. Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct BastionPath {
    /// The bastions, the first one reached first.
    pub hops: Vec<Hop>,
}

/// More hops than any real path has; a longer list is a mistake.
const MAX_HOPS: usize = 8;

impl BastionPath {
    /// How errors and `-v` name hop `i` (from 0): its `user@host:port`, and
    /// its place when there are several.
    pub(crate) fn label(&self, i: usize) -> String {
        match (self.hops.get(i), self.hops.len()) {
            (Some(hop), 1) => hop.to_string(),
            (Some(hop), n) => format!("{hop} (hop {} of {n})", i + 1),
            (None, _) => format!("hop {}", i + 1),
        }
    }
}

impl FromStr for BastionPath {
    type Err = String;

    /// Hops separated by commas, each `user@host[:port]` (a `Hop`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').collect();
        if parts.len() > MAX_HOPS {
            return Err(format!(
                "{:?}: {} hops; palisade goes through at most {MAX_HOPS}",
                crate::text::shorten(s, 80),
                parts.len()
            ));
        }
        let several = parts.len() > 1;
        let hops = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                part.parse::<Hop>().map_err(|e| match several {
                    true => format!("hop {} of {}: {e}", i + 1, parts.len()),
                    false => e,
                })
            })
            .collect::<Result<Vec<Hop>, String>>()?;
        Ok(BastionPath { hops })
    }
}

impl fmt::Display for BastionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hop) in self.hops.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{hop}")?;
        }
        Ok(())
    }
}

/// The path as it is spelled (what `-v` shows of it).
impl fmt::Debug for BastionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hop {
    type Err = String;

    /// `user@host`, `user@host:port`, `user@[IPv6]:port`, `user@IPv6`; the
    /// host is an IP address or a DNS name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown = crate::text::shorten(s, 80);
        let bad = |why: &str| format!("{shown:?} is not user@host[:port]: {why}");
        let (user, rest) = s.split_once('@').ok_or_else(|| bad("no user@"))?;
        if user.is_empty()
            || user.len() > 64
            || user.starts_with('-')
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad("the user is empty or holds characters a login name does not"));
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or_else(|| bad("a [ without its ]"))?;
            let addr: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| bad("only an IPv6 address goes in brackets"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (addr.to_string(), port)
        } else if let Ok(addr) = rest.parse::<std::net::Ipv6Addr>() {
            (addr.to_string(), None)
        } else {
            match rest.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(bad(
                        "two ports (an IPv6 address with a port goes in brackets: user@[2001:db8::1]:22)",
                    ));
                }
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        let port = match port {
            None => 22,
            Some(p) => match p.parse::<u16>() {
                Ok(0) => return Err(bad("port 0 is no port (1 to 65535)")),
                Ok(p) => p,
                Err(_) => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        // A DNS name, with or without its root dot; all-numeric labels
        // (`1.2.3`) are an address the resolver would read its own way.
        let name = host.strip_suffix('.').unwrap_or(&host);
        let is_dns = name.len() <= 253
            && name.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            })
            && !name
                .split('.')
                .all(|label| label.bytes().all(|b| b.is_ascii_digit()));
        if !is_ip && !is_dns {
            return Err(bad("the host is neither an IP address nor a DNS name"));
        }
        Ok(Hop {
            user: user.into(),
            host,
            port,
            key: None,
        })
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// Everything the transport needs for one run.
#[derive(Debug)]
pub(crate) struct SshOptions {
    pub(crate) user: String,
    pub(crate) port: u16,
    pub(crate) credentials: Credentials,
    pub(crate) known_hosts: Arc<KnownHosts>,
    pub(crate) checking: HostKeyChecking,
    pub(crate) connect_timeout: Duration,
    /// The limit for one remote step.
    pub(crate) step_timeout: Duration,
    /// Extra connection attempts after the first. Only connecting is
    /// retried, never a step that may have changed the host.
    pub(crate) retries: u32,
    pub(crate) forks: NonZeroUsize,
    pub(crate) jump: Option<BastionPath>,
    /// How to log in to each hop of `jump`, in its order: a hop's own key
    /// ([`Hop::key`], loaded), else `credentials`.
    pub(crate) hop_credentials: Vec<Credentials>,
    /// How often an idle connection is probed (ssh_config's
    /// `ServerAliveInterval`); `None` for palisade's 15 s, zero for never.
    pub(crate) keepalive: Option<Duration>,
}

/// Who a remote step runs as. The command line is one of two constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Privilege {
    /// Root through sudo, never prompting: `sudo -n sh -s`.
    Root,
    /// Root as above, with the connection as the node sees it (the
    /// controller's address after any NAT) as `$1`: the login shell expands
    /// `SSH_CONNECTION` before sudo resets the environment, so one exec
    /// both learns who we are and runs as root. The script must tell sudo's
    /// own refusal (nothing on stdout) from its own failures.
    RootSeeingOrigin,
}

impl Privilege {
    fn command(self) -> &'static str {
        match self {
            Privilege::Root => "sudo -n sh -s",
            Privilege::RootSeeingOrigin => r#"exec sudo -n sh -s -- "$SSH_CONNECTION""#,
        }
    }
}

/// A POSIX sh script for one remote step. It can only be made from program
/// text, or by the renderer from validated types (`pub(crate)`), never
/// from a string read from input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Script(Cow<'static, str>);

impl Script {
    pub(crate) const fn fixed(text: &'static str) -> Script {
        Script(Cow::Borrowed(text))
    }

    /// For the renderer, which builds scripts only from literals and the
    /// `Display` of validated types. The text goes in one `{ ... }` group:
    /// `sh -s` reads a group whole before it runs any of it, so a script cut
    /// short by a dropped connection is a syntax error, never half a change.
    pub(crate) fn rendered(text: String) -> Script {
        Script(Cow::Owned(format!("{{\n{text}\n}}\n")))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Loads a private key, asking for its passphrase when it is encrypted:
/// from `PALISADE_KEY_PASSPHRASE`, else at a prompt when stdin is a
/// terminal.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKey, String> {
    use russh::keys::Error as KeyError;
    let shown = path.display();
    // Read here, bounded, rather than by the SSH library: `--key /dev/zero`
    // must not read until memory runs out.
    let bytes = crate::input::read(path, 1 << 20).map_err(|e| match e {
        crate::input::ReadError::Io(e) => format!("{shown}: cannot read the key: {e}"),
        e => format!("{shown}: {e}"),
    })?;
    let text = crate::input::text(&bytes).map_err(|e| format!("{shown}: {e}"))?;
    let load = |pass: Option<&str>| russh::keys::decode_secret_key(text, pass);
    match load(None) {
        Ok(key) => Ok(key),
        Err(KeyError::KeyIsEncrypted) => {
            let pass = match std::env::var("PALISADE_KEY_PASSPHRASE") {
                Ok(p) => p,
                Err(_) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    rpassword::prompt_password(format!("Passphrase for {shown}: "))
                        .map_err(|e| format!("{shown}: cannot read the passphrase: {e}"))?
                }
                Err(_) => {
                    return Err(format!(
                        "{shown}: the key is encrypted; set PALISADE_KEY_PASSPHRASE or run on a terminal"
                    ));
                }
            };
            load(Some(&pass)).map_err(|e| format!("{shown}: cannot decrypt the key (wrong passphrase?): {e}"))
        }
        Err(KeyError::IO(e)) => Err(format!("{shown}: cannot read the key: {e}")),
        Err(e) => {
            // An OpenSSH-format ECDSA key the SSH library cannot read as it
            // is (see `ecdsa_pem`) is read as the same key in PEM.
            if let Some(key) =
                ecdsa_pem::as_sec1_pem(text).and_then(|pem| russh::keys::decode_secret_key(&pem, None).ok())
            {
                return Ok(key);
            }
            let mut message = format!("{shown}: not a private key palisade can use: {e}");
            if message.contains("length invalid") {
                // Encrypted, so not rewritten: the operator converts it once.
                message.push_str(&format!(
                    " (an ECDSA key in OpenSSH format whose private number starts with a zero byte, \
                     which the SSH library cannot read when it is encrypted: convert it with \
                     `ssh-keygen -p -m PEM -f {shown}`)"
                ));
            }
            Err(message)
        }
    }
}

/// The key at `key_path` with its user certificate, if it has one:
/// `certificate` when given (`--certificate`, `ssh.certificate`,
/// ssh_config's `CertificateFile`), else `KEY-cert.pub` beside the key
/// when it is there, as ssh(1) looks for it. A certificate that is not
/// this key's, or not valid now, is an error naming its file: it is
/// found here, before any node is contacted.
pub(crate) fn load_credentials(key_path: &Path, certificate: Option<&Path>) -> Result<Credentials, String> {
    let key = load_key(key_path)?;
    let beside = {
        let mut p = key_path.as_os_str().to_owned();
        p.push("-cert.pub");
        PathBuf::from(p)
    };
    let file = match certificate {
        Some(path) => path.to_path_buf(),
        None if beside.is_file() => beside,
        None => return Ok(Credentials::Key(Arc::new(key))),
    };
    let cert = certs::load_user_certificate(&file, key.public_key(), certs::now())?;
    tracing::info!(
        "ssh certificate: {} ({}, principals {})",
        crate::text::escape(&file.display().to_string()),
        crate::text::escape(&certs::label(&cert)),
        crate::text::escape(&cert.valid_principals().join(","))
    );
    Ok(Credentials::Certified {
        key: Arc::new(key),
        cert: Arc::new(cert),
        file,
    })
}

/// Lets the process hold a socket per concurrent host (and a bastion
/// channel each): raises the soft RLIMIT_NOFILE as far as the hard limit
/// allows when the default would not do.
pub(crate) fn raise_nofile(forks: usize) {
    let want = (forks as u64).saturating_mul(4).saturating_add(256);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        lim.rlim_cur = want.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            tracing::warn!("cannot raise the open-file limit to {want}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_specs() {
        assert_eq!(
            "core@198.18.1.10".parse::<Hop>().unwrap(),
            Hop {
                user: "core".into(),
                host: "198.18.1.10".into(),
                port: 22,
                key: None,
            }
        );
        assert_eq!("core@bastion.example:2222".parse::<Hop>().unwrap().port, 2222);
        assert_eq!("core@[2001:2::1]:2222".parse::<Hop>().unwrap().host, "2001:2::1");
        assert_eq!("core@2001:2::1".parse::<Hop>().unwrap().port, 22);
        let v6 = "core@[2001:db8::1]".parse::<Hop>().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("2001:db8::1", 22));
        assert_eq!(v6.to_string(), "core@[2001:db8::1]:22");
        assert_eq!(
            "core@bastion.example.".parse::<Hop>().unwrap().host,
            "bastion.example."
        );
        for (bad, why) in [
            ("core@bastion:22:33", "two ports"),
            ("core@bastion:0", "port 0 is no port"),
            ("core@bastion:65536", "not a number from 1 to 65535"),
            ("core@[bastion]:22", "only an IPv6 address goes in brackets"),
            ("core@[2001:db8::1", "a [ without its ]"),
            ("core@[2001:db8::1]22", "junk after ]"),
            ("core@a..b", "neither an IP address nor a DNS name"),
            ("a@b@c", "neither an IP address nor a DNS name"),
            ("core@1.2.3", "neither an IP address nor a DNS name"),
            ("-oProxyCommand=x@h", "the user is empty or holds characters"),
        ] {
            let e = bad.parse::<Hop>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        for bad in [
            "core",
            "@host",
            "core@",
            "core@host:x",
            "co re@host",
            "core@h;reboot",
        ] {
            assert!(bad.parse::<Hop>().is_err(), "{bad}");
            assert!(bad.parse::<BastionPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_path_of_several_hops() {
        let one: BastionPath = "core@198.18.1.10".parse().unwrap();
        assert_eq!(one.hops.len(), 1);
        assert_eq!(one.label(0), "core@198.18.1.10:22");
        // A single hop's errors are the hop's own, as they always were.
        assert!(
            "core@bastion:0"
                .parse::<BastionPath>()
                .unwrap_err()
                .starts_with("\"core@bastion:0\"")
        );
        let two: BastionPath = "core@198.18.1.10,ops@[2001:2::5]:2222".parse().unwrap();
        assert_eq!(two.hops[1].port, 2222);
        assert_eq!(two.to_string(), "core@198.18.1.10:22,ops@[2001:2::5]:2222");
        assert_eq!(
            format!("{:?}", Some(&two)),
            "Some(core@198.18.1.10:22,ops@[2001:2::5]:2222)"
        );
        assert_eq!(two.label(1), "ops@[2001:2::5]:2222 (hop 2 of 2)");
        assert_eq!(two.to_string().parse::<BastionPath>().unwrap(), two);
        for (bad, why) in [
            ("core@a,core@b:0", "hop 2 of 2: \"core@b:0\""),
            ("core@a,", "hop 2 of 2"),
            (",core@a", "hop 1 of 2"),
            ("core@a, core@b", "hop 2 of 2"),
        ] {
            let e = bad.parse::<BastionPath>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = ["core@h"; 9].join(",");
        assert!(long.parse::<BastionPath>().unwrap_err().contains("at most 8"));
    }
}
