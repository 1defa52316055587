//! The probe `palisade ping` runs: who the node thinks we are, whether sudo
//! works, and which firewall tools it has.
//!
//! It is one step, as root: the login shell expands `SSH_CONNECTION` (the
//! controller's address as the node sees it, after any NAT) into sudo's
//! arguments before sudo resets the environment
//! ([`Privilege::RootSeeingOrigin`]). sudo's own refusal is told from the
//! script's output by [`as_root`], which the per-host job's first step
//! shares.

use std::net::IpAddr;

use serde::Serialize;

use crate::policy::FirewallBackend;
use crate::render;
use crate::render::wire::probe::{IPSET_VERSION, IPTABLES_VERSION, SSH_CONNECTION, SYSTEMD, TOOL, YES};
use crate::transport::{HostError, Output, Privilege, Script, Session};

/// The probe's script (render/probe.sh), which prints `KEY=VALUE` lines
/// (render::wire::probe).
const STEP: Script = Script::fixed(render::PROBE);

/// The iptables flavour. Rules made by one are invisible to the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Backend {
    /// iptables on nf_tables (iptables-nft).
    NfTables,
    /// iptables-legacy.
    Legacy,
    /// palisade's own nftables table (`--backend nftables`).
    Nftables,
}

/// What the probe found on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Probe {
    /// The controller's address as the node sees it.
    pub(crate) controller_address: Option<IpAddr>,
    /// The tools of [`FirewallBackend::tools`] (both backends') the node
    /// lacks.
    pub(crate) lacks: Vec<String>,
    pub(crate) ipset_version: Option<String>,
    pub(crate) iptables_version: Option<String>,
    pub(crate) backend: Option<Backend>,
    pub(crate) systemd: bool,
}

impl Probe {
    /// The backend this node gets: `auto` takes nftables where `nft` is
    /// installed (apply checks also that nft takes the table).
    pub(crate) fn resolve(&self, backend: FirewallBackend) -> FirewallBackend {
        match backend {
            FirewallBackend::Auto if self.lacks.iter().any(|l| l == "nft") => FirewallBackend::Iptables,
            FirewallBackend::Auto => FirewallBackend::Nftables,
            chosen => chosen,
        }
    }

    /// What is missing for palisade to do its job on this node with
    /// `backend`: the same tools a plan or an apply checks for.
    pub(crate) fn missing(&self, backend: FirewallBackend) -> Vec<&'static str> {
        self.resolve(backend)
            .tools()
            .iter()
            .copied()
            .filter(|t| self.lacks.iter().any(|l| l == t))
            .collect()
    }
}

/// Runs the probe. A sudo that wants a password is an error of its own.
pub(crate) async fn run(session: &Session, user: &str) -> Result<Probe, HostError> {
    let out = as_root(session.run(Privilege::RootSeeingOrigin, &STEP).await?, user)?;
    Ok(probe_from(&parse_facts(&out.stdout)))
}

/// The output of a step run through `sudo -n` that must succeed. Every such
/// script prints before it can fail, so a failure with nothing on stdout is
/// sudo's (or the login shell's, without sudo) refusal to run it: a sudo
/// that wants a password is [`HostError::SudoPassword`], any other refusal
/// says what sudo said.
pub(crate) fn as_root(out: Output, user: &str) -> Result<Output, HostError> {
    if out.code != 0 && out.stdout.is_empty() {
        let said = out.stderr.trim();
        if said.contains("password") {
            return Err(HostError::SudoPassword { user: user.into() });
        }
        if !said.is_empty() {
            let said: Vec<&str> = said.lines().collect();
            return Err(HostError::Sudo { said: said.join(" ") });
        }
    }
    out.success()
}

pub(crate) use crate::transport::origin_of;

type Facts = std::collections::BTreeMap<String, String>;

/// `key=value` lines; later lines win.
fn parse_facts(text: &str) -> Facts {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn probe_from(facts: &Facts) -> Probe {
    let yes = |k: &str| facts.get(k).is_some_and(|v| v == YES);
    let text = |k: &str| facts.get(k).filter(|v| !v.is_empty()).cloned();
    let iptables_version = text(IPTABLES_VERSION);
    let backend = iptables_version.as_deref().and_then(|v| {
        if v.contains("nf_tables") {
            Some(Backend::NfTables)
        } else if v.contains("legacy") {
            Some(Backend::Legacy)
        } else {
            None
        }
    });
    let mut lacks: Vec<String> = Vec::new();
    for backend in [FirewallBackend::Iptables, FirewallBackend::Nftables] {
        for tool in backend.tools() {
            if !yes(&format!("{TOOL}{tool}")) && !lacks.iter().any(|l| l == tool) {
                lacks.push((*tool).to_owned());
            }
        }
    }
    Probe {
        controller_address: facts.get(SSH_CONNECTION).and_then(|v| origin_of(v)),
        lacks,
        ipset_version: text(IPSET_VERSION),
        iptables_version,
        backend,
        systemd: yes(SYSTEMD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the login user's step prints (a shell's banner, control
        /// characters, huge lines, `=` anywhere), reading it never panics,
        /// and an address comes out only when the node printed one.
        #[test]
        fn any_probe_output_reads_without_a_panic(text in "(?s).{0,400}", long in proptest::prelude::any::<bool>()) {
            let text = if long { format!("{text}\nssh_connection={}\n", "\u{1b}".repeat(100_000)) } else { text };
            let probe = probe_from(&parse_facts(&text));
            if let Some(addr) = probe.controller_address {
                proptest::prop_assert!(text.contains(&addr.to_string()) || text.contains("ssh_connection"));
            }
        }
    }

    #[test]
    fn parses_a_full_probe() {
        let tools: String = FirewallBackend::Iptables
            .tools()
            .iter()
            .map(|t| format!("tool:{t}=yes\n"))
            .collect();
        let out = format!(
            "ssh_connection=198.18.0.1 51234 198.18.1.10 22\nsudo=ok\n{tools}\
             ipset_version=ipset v7.17, protocol version: 7\n\
             iptables_version=iptables v1.8.9 (nf_tables)\nsystemd=no\n"
        );
        let p = probe_from(&parse_facts(&out));
        assert_eq!(p.controller_address, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(p.backend, Some(Backend::NfTables));
        assert!(p.missing(FirewallBackend::Iptables).is_empty());
        // No nft: the other backend could not run here.
        assert_eq!(p.missing(FirewallBackend::Nftables), vec!["nft"]);
        assert!(!p.systemd);
    }

    #[test]
    fn legacy_missing_tools_and_ipv6_controller() {
        let out = "ssh_connection=2001:2::1 4000 2001:2::a 22\ntool:ipset=no\ntool:iptables=yes\n\
                   tool:iptables-save=yes\ntool:ip6tables-save=yes\ntool:ip6tables-restore=yes\n\
                   tool:nft=yes\ntool:flock=yes\ntool:head=yes\n\
                   iptables_version=iptables v1.8.4 (legacy)\n";
        let p = probe_from(&parse_facts(out));
        assert_eq!(p.controller_address, Some("2001:2::1".parse().unwrap()));
        assert_eq!(p.backend, Some(Backend::Legacy));
        assert_eq!(
            p.missing(FirewallBackend::Iptables),
            vec!["ipset", "ip6tables", "iptables-restore"]
        );
        assert!(p.missing(FirewallBackend::Nftables).is_empty());
    }

    fn output(code: u32, stdout: &str, stderr: &str) -> Output {
        Output {
            stdout: stdout.into(),
            stderr: stderr.into(),
            code,
        }
    }

    #[test]
    fn sudos_refusal_is_told_from_the_scripts_failure() {
        let password = as_root(output(1, "", "sudo: a password is required\n"), "core").unwrap_err();
        assert!(matches!(password, HostError::SudoPassword { ref user } if user == "core"));
        let sudoers = as_root(
            output(1, "", "core is not in the sudoers file.\nThis incident...\n"),
            "core",
        )
        .unwrap_err();
        assert_eq!(
            sudoers.to_string(),
            "sudo -n failed: core is not in the sudoers file. This incident..."
        );
        // The script ran (it printed) and failed: its own failure, whatever
        // it says.
        let script = as_root(output(3, "==> origin\n", "palisade: no password here\n"), "core").unwrap_err();
        assert!(matches!(script, HostError::Exit { code: 3, .. }));
        assert!(as_root(output(0, "x\n", ""), "core").is_ok());
    }

    #[test]
    fn garbage_gives_nothing() {
        let p = probe_from(&parse_facts("ssh_connection=not-an-ip\n\u{1b}[2J=x\n"));
        assert_eq!(p.controller_address, None);
        assert_eq!(p.backend, None);
    }
}
