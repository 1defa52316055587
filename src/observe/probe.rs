//! The probe `palisade ping` runs, and later commands run before they
//! change anything: who the node thinks we are, whether sudo works, and
//! which firewall tools it has.
//!
//! It is two steps on one connection. The first runs as the login user,
//! because `SSH_CONNECTION` (the controller's address as the node sees it,
//! after any NAT) does not survive sudo's environment reset. The second runs
//! as root and only reads.

use std::net::IpAddr;

use serde::Serialize;

use crate::transport::{HostError, Privilege, Script, Session};

const USER_STEP: Script = Script::fixed(
    r#"printf 'ssh_connection=%s\n' "${SSH_CONNECTION:-}"
if err=$(sudo -n true 2>&1); then
    echo 'sudo=ok'
else
    printf 'sudo=%s\n' "$(printf '%s' "$err" | tr '\n' ' ')"
fi
"#,
);

const ROOT_STEP: Script = Script::fixed(
    r#"PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
for tool in ipset iptables ip6tables iptables-restore; do
    if command -v "$tool" >/dev/null 2>&1; then printf '%s=yes\n' "$tool"; else printf '%s=no\n' "$tool"; fi
done
printf 'ipset_version=%s\n' "$(ipset --version 2>/dev/null | head -n 1)"
printf 'iptables_version=%s\n' "$(iptables -V 2>/dev/null | head -n 1)"
if [ -d /run/systemd/system ]; then echo 'systemd=yes'; else echo 'systemd=no'; fi
"#,
);

/// The iptables flavour. Rules made by one are invisible to the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    NfTables,
    Legacy,
}

/// What the probe found on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The controller's address as the node sees it.
    pub controller_address: Option<IpAddr>,
    pub ipset: bool,
    pub iptables: bool,
    pub ip6tables: bool,
    pub iptables_restore: bool,
    pub ipset_version: Option<String>,
    pub iptables_version: Option<String>,
    pub backend: Option<Backend>,
    pub systemd: bool,
}

impl Probe {
    /// What is missing for palisade to do its job on this node.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (have, name) in [
            (self.ipset, "ipset"),
            (self.iptables, "iptables"),
            (self.ip6tables, "ip6tables"),
            (self.iptables_restore, "iptables-restore"),
        ] {
            if !have {
                out.push(name);
            }
        }
        out
    }
}

/// Runs both steps. A sudo that wants a password is an error of its own.
pub async fn run(session: &Session, user: &str) -> Result<Probe, HostError> {
    let mut facts = user_facts(session, user).await?;
    let second = session.run(Privilege::Root, &ROOT_STEP).await?.success()?;
    facts.extend(parse_facts(&second.stdout));
    Ok(probe_from(&facts))
}

/// The login user's step alone: that sudo works, and the controller's
/// address as the node sees it (which sudo's environment would lose).
pub async fn controller_address(session: &Session, user: &str) -> Result<Option<IpAddr>, HostError> {
    Ok(probe_from(&user_facts(session, user).await?).controller_address)
}

async fn user_facts(session: &Session, user: &str) -> Result<Facts, HostError> {
    let first = session.run(Privilege::User, &USER_STEP).await?.success()?;
    let facts = parse_facts(&first.stdout);
    match facts.get("sudo").map(String::as_str) {
        Some("ok") => Ok(facts),
        Some(msg) if msg.contains("password") => Err(HostError::SudoPassword { user: user.into() }),
        Some(msg) => Err(HostError::Remote(format!("sudo -n failed: {}", msg.trim()))),
        None => Err(HostError::Remote("the probe printed nothing".into())),
    }
}

type Facts = std::collections::BTreeMap<String, String>;

/// `key=value` lines; later lines win.
fn parse_facts(text: &str) -> Facts {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn probe_from(facts: &Facts) -> Probe {
    let yes = |k: &str| facts.get(k).is_some_and(|v| v == "yes");
    let text = |k: &str| facts.get(k).filter(|v| !v.is_empty()).cloned();
    let iptables_version = text("iptables_version");
    let backend = iptables_version.as_deref().and_then(|v| {
        if v.contains("nf_tables") {
            Some(Backend::NfTables)
        } else if v.contains("legacy") {
            Some(Backend::Legacy)
        } else {
            None
        }
    });
    Probe {
        controller_address: facts
            .get("ssh_connection")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|ip| ip.parse().ok()),
        ipset: yes("ipset"),
        iptables: yes("iptables"),
        ip6tables: yes("ip6tables"),
        iptables_restore: yes("iptables-restore"),
        ipset_version: text("ipset_version"),
        iptables_version,
        backend,
        systemd: yes("systemd"),
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
        let out = "ssh_connection=198.18.0.1 51234 198.18.1.10 22\nsudo=ok\n\
                   ipset=yes\niptables=yes\nip6tables=yes\niptables-restore=yes\n\
                   ipset_version=ipset v7.17, protocol version: 7\n\
                   iptables_version=iptables v1.8.9 (nf_tables)\nsystemd=no\n";
        let p = probe_from(&parse_facts(out));
        assert_eq!(p.controller_address, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(p.backend, Some(Backend::NfTables));
        assert!(p.missing().is_empty());
        assert!(!p.systemd);
    }

    #[test]
    fn legacy_missing_tools_and_ipv6_controller() {
        let out = "ssh_connection=2001:2::1 4000 2001:2::a 22\nipset=no\niptables=yes\n\
                   iptables_version=iptables v1.8.4 (legacy)\n";
        let p = probe_from(&parse_facts(out));
        assert_eq!(p.controller_address, Some("2001:2::1".parse().unwrap()));
        assert_eq!(p.backend, Some(Backend::Legacy));
        assert_eq!(p.missing(), vec!["ipset", "ip6tables", "iptables-restore"]);
    }

    #[test]
    fn garbage_gives_nothing() {
        let p = probe_from(&parse_facts("ssh_connection=not-an-ip\n\u{1b}[2J=x\n"));
        assert_eq!(p.controller_address, None);
        assert_eq!(p.backend, None);
    }
}
