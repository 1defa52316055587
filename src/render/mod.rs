//! The remote scripts, compiled from the desired state (pyinfra's
//! "operations compile to shell"). Pure: the same policy always gives the
//! same bytes.
//!
//! A script is a fixed template (the `.sh` files beside this one, reviewed
//! as shell) preceded by a header of data: the validated set, chain and
//! interface names in single quotes, and the members and rules in quoted
//! heredocs. Nothing read from input reaches a script except through those
//! validated types, whose characters are all shell-inert.

use sha2::{Digest, Sha256};

use crate::policy::{Family, MARK, Policy};
use crate::transport::Script;

/// Where the boot-time restore script lives on a node.
pub const RESTORE_PATH: &str = "/var/lib/palisade/restore.sh";
/// The systemd unit that runs it before the network comes up.
pub const UNIT_PATH: &str = "/etc/systemd/system/palisade.service";

/// Shell functions shared by every script that reads or changes netfilter.
pub(crate) const LIB: &str = include_str!("lib.sh");
const APPLY: &str = include_str!("apply.sh");
const REMOVE: &str = include_str!("remove.sh");

const UNIT: &str = include_str!("palisade.service");

/// The apply script: the change itself, then (with persistence) the boot
/// restore script and unit. With `confirm` seconds above zero, the node rolls
/// the change back by itself unless [`confirm`] runs in time.
pub fn apply(policy: &Policy, confirm: u32) -> Script {
    let mut s = header(policy);
    s.push_str(&format!(
        "mode=apply\nconfirm={confirm}\npersist={}\n",
        u8::from(policy.persist)
    ));
    if policy.persist {
        s.push_str("restore_script() { cat <<'PALISADE_RESTORE_SH'\n");
        s.push_str(&restore(policy));
        s.push_str("PALISADE_RESTORE_SH\n}\n");
        s.push_str("unit_file() { cat <<'PALISADE_UNIT'\n");
        s.push_str(UNIT);
        s.push_str("PALISADE_UNIT\n}\n");
    }
    s.push_str(LIB);
    s.push_str(APPLY);
    Script::rendered(s)
}

/// What boot runs: the same change, without writing persistence again.
pub fn restore(policy: &Policy) -> String {
    let mut s = String::from("#!/bin/sh\n# Written by palisade: restores its ipsets and chains at boot.\n");
    s.push_str(&header(policy));
    s.push_str("mode=boot\nconfirm=0\npersist=0\n");
    s.push_str(LIB);
    s.push_str(APPLY);
    s
}

/// sha256 of the restore script, as `sha256sum` on the node prints it.
pub fn restore_digest(policy: &Policy) -> String {
    hex(&Sha256::digest(restore(policy).as_bytes()))
}

pub fn unit_digest() -> String {
    hex(&Sha256::digest(UNIT.as_bytes()))
}

/// Takes palisade off a node: jumps, chains, sets, persistence.
pub fn remove(policy: &Policy) -> Script {
    let mut s = String::from("set -eu\n");
    s.push_str(&names(policy));
    s.push_str(LIB);
    s.push_str(REMOVE);
    Script::rendered(s)
}

/// The body of the confirm step, which keeps the change: disarms the
/// rollback, unless it already started, and installs the boot files the
/// change staged (needs [`names`] and [`LIB`] before it; see
/// `observe::firewall::confirm_and_read`).
pub(crate) const CONFIRM: &str = include_str!("confirm.sh");

/// Says whether the last change was confirmed, is armed or rolled back.
pub fn status() -> Script {
    Script::fixed(concat!(
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n",
        include_str!("status.sh")
    ))
}

/// The link `systemctl enable` makes for the unit: in the `.wants`
/// directory of the target its `[Install]` section names. palisade makes and
/// reads this link itself, so that confirming a change costs no
/// `daemon-reload` and verify no `systemctl`.
pub fn unit_wants() -> String {
    let target = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("WantedBy="))
        .map_or("multi-user.target", str::trim);
    let dir = UNIT_PATH
        .rsplit_once('/')
        .map_or("/etc/systemd/system", |(d, _)| d);
    let unit = UNIT_PATH.rsplit('/').next().unwrap_or("palisade.service");
    format!("{dir}/{target}.wants/{unit}")
}

/// The validated names every script reads, as shell assignments.
pub(crate) fn names(policy: &Policy) -> String {
    format!(
        "chain='{}'\ndchain='{}'\nset4='{}'\nset6='{}'\nmark='{MARK}'\nrestore_path='{RESTORE_PATH}'\nunit_path='{UNIT_PATH}'\nunit_wants='{}'\n",
        policy.chain,
        policy.docker_chain,
        policy.set4,
        policy.set6,
        unit_wants()
    )
}

fn header(policy: &Policy) -> String {
    let mut s = String::from("set -eu\n");
    s.push_str(&names(policy));
    s.push_str(&format!("docker_user={}\n", u8::from(policy.docker_user)));
    for family in Family::BOTH {
        let v = tag(family);
        // SET-new, made and filled by one `ipset restore`.
        let (set, fam) = match family {
            Family::V4 => (&policy.set4, "inet"),
            Family::V6 => (&policy.set6, "inet6"),
        };
        s.push_str(&format!(
            "fill_{v}() {{ ipset restore <<'PALISADE_EOF'\ncreate {set}-new hash:net family {fam} maxelem 65536 comment\n"
        ));
        for m in policy.members(family) {
            s.push_str(&format!("add {set}-new {m}\n"));
        }
        s.push_str("PALISADE_EOF\n}\n");
        s.push_str(&format!("rules_{v}() {{ cat <<'PALISADE_EOF'\n"));
        for r in policy.rules(family) {
            s.push_str(&r);
            s.push('\n');
        }
        s.push_str("PALISADE_EOF\n}\n");
        s.push_str(&format!("docker_rules_{v}() {{ cat <<'PALISADE_EOF'\n"));
        for r in policy.docker_rules(family) {
            s.push_str(&r);
            s.push('\n');
        }
        s.push_str("PALISADE_EOF\n}\n");
    }
    s
}

/// `v4` or `v6`, as the template's functions are named.
fn tag(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ChainName, IfName, Net, SetName};
    use crate::policy::PolicyOptions;
    use proptest::prelude::*;

    fn policy(extra: Vec<Net>, interfaces: Vec<IfName>) -> Policy {
        let inv = crate::inventory::Inventory { hosts: vec![] };
        Policy::desired(
            &inv,
            &PolicyOptions {
                public_only: false,
                open: vec![],
                allow: vec!["203.0.113.7".parse().unwrap()],
                extra,
                resolvers: vec!["8.8.8.8".parse().unwrap()],
                interfaces,
                set4: "palisade4".parse::<SetName>().unwrap(),
                set6: "palisade6".parse::<SetName>().unwrap(),
                chain: "PALISADE".parse::<ChainName>().unwrap(),
                docker_user: true,
                persist: true,
            },
        )
        .unwrap()
    }

    #[test]
    fn header_carries_validated_data_only() {
        let p = policy(
            vec!["2001:2::/48".parse().unwrap()],
            vec!["docker0".parse().unwrap()],
        );
        let script = apply(&p, 60);
        let text = script.as_str();
        assert!(
            text.starts_with("{\nset -eu\nchain='PALISADE'\ndchain='PALISADE-DOCKER'\nset4='palisade4'\n")
        );
        assert!(text.ends_with("\n}\n"));
        assert!(
            text.contains(
                "fill_v4() { ipset restore <<'PALISADE_EOF'\n\
                 create palisade4-new hash:net family inet maxelem 65536 comment\n\
                 add palisade4-new 8.8.8.8\nadd palisade4-new 127.0.0.1\nadd palisade4-new 198.51.100.1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fill_v6() { ipset restore <<'PALISADE_EOF'\n\
                 create palisade6-new hash:net family inet6 maxelem 65536 comment\n\
                 add palisade6-new ::1\nadd palisade6-new 2001:2::/48\nPALISADE_EOF\n"
            ),
            "{text}"
        );
        assert!(text.contains("-A PALISADE -i docker0 -j ACCEPT\n"));
        assert!(text.contains("persist=1\n"));
        // The embedded restore script is exactly what restore() gives, so its
        // digest is what a node reports.
        let embedded = text
            .split("restore_script() { cat <<'PALISADE_RESTORE_SH'\n")
            .nth(1)
            .and_then(|rest| rest.split("PALISADE_RESTORE_SH\n}").next())
            .unwrap();
        assert_eq!(embedded, restore(&p));
        assert!(restore(&p).contains("mode=boot\nconfirm=0\npersist=0\n"));
        assert!(text.contains("mode=apply\nconfirm=60\npersist=1\n"));
    }

    #[test]
    fn the_unit_is_enabled_by_the_link_its_install_section_names() {
        assert_eq!(
            unit_wants(),
            "/etc/systemd/system/basic.target.wants/palisade.service"
        );
        assert!(UNIT.contains("\n[Install]\nWantedBy=basic.target\n"));
    }

    #[test]
    fn rendering_is_deterministic() {
        let a = policy(vec![], vec![]);
        assert_eq!(apply(&a, 60), apply(&a.clone(), 60));
        assert_eq!(restore_digest(&a).len(), 64);
    }

    proptest! {
        /// Whatever an operator writes, what gets past the types and into a
        /// script holds no shell syntax: no quotes, no `$`, no `;`, no
        /// backquotes, no blanks, no newlines.
        #[test]
        fn validated_values_are_shell_inert(words in prop::collection::vec("[ -~\n]{1,40}", 1..8)) {
            let inert = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/+@-".contains(&b));
            let mut nets = Vec::new();
            let mut ifs = Vec::new();
            for w in &words {
                if let Ok(n) = w.parse::<Net>() { prop_assert!(inert(&n.to_string())); nets.push(n); }
                if let Ok(i) = w.parse::<IfName>() { prop_assert!(inert(i.as_str())); ifs.push(i); }
                if let Ok(s) = w.parse::<SetName>() { prop_assert!(inert(s.as_str())); }
                if let Ok(c) = w.parse::<ChainName>() { prop_assert!(inert(c.as_str())); }
            }
            let p = policy(nets, ifs);
            let text = apply(&p, 60).as_str().to_owned();
            // The data lines sit in quoted heredocs: none can end them early.
            prop_assert_eq!(text.matches("\nPALISADE_EOF\n").count(), 12);
        }
    }
}
