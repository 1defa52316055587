//! The words palisade and its node-side scripts say to each other: the
//! names the scripts print after `==> ` (sections), the words of their data
//! lines that the controller matches, the orders the converge script reads
//! on its stdin, and the probe's `key=value` lines. Each is a constant here
//! and nowhere else, which every Rust reader and writer of it uses
//! (`engine::protocol`, `observe::firewall`, `observe::probe`).
//!
//! The shell's half of each word stays written out in the templates (the
//! `.sh` files beside this one): templating the constants into them would
//! make them harder to review as shell, and grow the converge script,
//! which must fit in TCP's first flight. Instead the tests below read the
//! templates (and run the read) and fail when a script stops printing, or
//! reading, a word the controller expects.
//!
//! The words live here, in `render`, rather than in `engine::protocol`,
//! because the templates are the other half of every word and these tests
//! need them, and because both parsers can reach them here: `engine` and
//! `observe` already depend on `render`, which depends on neither, while
//! `observe::firewall` reading them from `engine::protocol` would make
//! `observe` depend on `engine`, which depends on `observe`.
//!
//! Only words the controller itself matches or writes are here; the text
//! of a section it keeps as data (a rule, a digest, a reason) is not.

/// What starts a section's header line (lib.sh `section`): `==> NAME`.
pub(crate) const HEADER: &str = "==> ";
/// What starts every data line (lib.sh `say`), so that no data can pose as
/// a header.
pub(crate) const DATA: char = '|';
/// The line that ends every reply: the header of [`section::END`].
pub(crate) const END: &str = "==> end";

/// The names of the sections, as they follow [`HEADER`].
pub(crate) mod section {
    /// The last of every reply ([`super::END`]).
    pub(crate) const END: &str = "end";
    /// What the converge script finished of an earlier run before it read
    /// the node: a word of [`super::settled`] (converge.sh).
    pub(crate) const SETTLED: &str = "settled";

    // The read (observe.sh, and the backends' `say_state` in lib.sh and
    // nft.sh): observe::firewall::parse.
    /// `SSH_CONNECTION` as the node got it.
    pub(crate) const ORIGIN: &str = "origin";
    pub(crate) const MISSING_TOOLS: &str = "missing-tools";
    /// The firewall backend in use (`iptables -V`, or `nftables`).
    pub(crate) const BACKEND: &str = "backend";
    /// With `--backend auto`, the node's pick: [`super::said::NFT`] or
    /// [`super::said::IPT`], then why (auto.sh `choose`).
    pub(crate) const BACKEND_CHOICE: &str = "backend-choice";
    /// The nftables backend's table: its name, then its JSON.
    pub(crate) const NFT: &str = "nft";
    pub(crate) const RESTORE: &str = "restore";
    pub(crate) const BACKEND_FILE: &str = "backend-file";
    pub(crate) const SYSTEMD: &str = "systemd";
    pub(crate) const UNIT: &str = "unit";
    pub(crate) const UNIT_ENABLED: &str = "unit-enabled";
    pub(crate) const UPLINKS: &str = "uplinks";
    pub(crate) const ROUTES: &str = "routes";
    /// A pending change: [`super::said::ARMED`], seconds left, its id.
    pub(crate) const ROLLBACK: &str = "rollback";
    pub(crate) const ROLLBACK_FAILED: &str = "rollback-failed";

    // A family's, named NAME-v4 and NAME-v6 ([`family`]): lib.sh `say_ipt`
    // and `say_chains`, in the read and in the change's reply.
    pub(crate) const SET: &str = "set";
    /// Audit mode's set, when the guard records in one.
    pub(crate) const AUDIT: &str = "audit";
    pub(crate) const CHAIN: &str = "chain";
    pub(crate) const INPUT: &str = "input";
    pub(crate) const DOCKER_USER: &str = "docker-user";
    pub(crate) const DOCKER_CHAIN: &str = "docker-chain";
    pub(crate) const PREROUTING: &str = "prerouting";
    pub(crate) const GUARD: &str = "guard";
    /// [`super::said::FORGED`] when a quoted string spans lines.
    pub(crate) const FORGED: &str = "forged";

    /// The reply to [`super::order::APPLY`]: the words of
    /// [`super::change`], then the chains. (The replies to `confirm` and
    /// `abort` are sections named as their orders, of which the controller
    /// reads only the [`super::state`] line.)
    pub(crate) const CHANGE: &str = "change";

    /// A family's section: `NAME-v4` or `NAME-v6` (`v` is `v4` or `v6`).
    pub(crate) fn family(name: &str, v: &str) -> String {
        format!("{name}-{v}")
    }
}

/// The orders the converge script reads on its stdin, one line each
/// (`engine::protocol::Order`).
pub(crate) mod order {
    /// `apply N`, then N bytes of code.
    pub(crate) const APPLY: &str = "apply";
    /// `confirm ID`.
    pub(crate) const CONFIRM: &str = "confirm";
    pub(crate) const ABORT: &str = "abort";
}

/// The lines of the [`section::CHANGE`] section.
pub(crate) mod change {
    /// `id=ID`: the node's name for the change.
    pub(crate) const ID: &str = "id=";
    /// `armed=TRIGGER`: how it rolls back unless confirmed, [`SYSTEMD`] or
    /// [`SETSID`] (apply.sh `arm`, the first word of SNAP/armed).
    pub(crate) const ARMED: &str = "armed=";
    /// `persist=HOW`: where its boot restore goes once confirmed,
    /// [`SYSTEMD`] or [`FILES`] (apply.sh `stage`).
    pub(crate) const PERSIST: &str = "persist=";
    pub(crate) const SYSTEMD: &str = "systemd";
    pub(crate) const SETSID: &str = "setsid";
    pub(crate) const FILES: &str = "files";
}

/// `state=WORD`: where a change stands, as the replies to `confirm` and
/// `abort` (confirm.sh, converge.sh) and `palisade rollback status`
/// (status.sh) say it.
pub(crate) mod state {
    pub(crate) const KEY: &str = "state=";
    pub(crate) const NONE: &str = "none";
    pub(crate) const ARMED: &str = "armed";
    pub(crate) const CONFIRMING: &str = "confirming";
    pub(crate) const CONFIRMED: &str = "confirmed";
    pub(crate) const ROLLING_BACK: &str = "rolling-back";
    pub(crate) const ROLLED_BACK: &str = "rolled-back";
    pub(crate) const ROLLBACK_FAILED: &str = "rollback-failed";
    /// `boot=WORD`, beside a confirmation's state: [`FAILED`] when its boot
    /// files could not be written.
    pub(crate) const BOOT: &str = "boot=";
    pub(crate) const FAILED: &str = "failed";
}

/// The word of the [`section::SETTLED`] section (lib.sh `settle`).
pub(crate) mod settled {
    /// A confirmation that died after it had won, finished.
    pub(crate) const CONFIRM: &str = "confirm";
    /// A rollback that died half way, finished.
    pub(crate) const ROLLBACK: &str = "rollback";
    /// A rollback whose trigger never fired, run.
    pub(crate) const EXPIRED: &str = "expired";
}

/// Words of the read's data lines that the controller matches.
pub(crate) mod said {
    /// [`super::section::SYSTEMD`]: the node runs systemd.
    pub(crate) const YES: &str = "yes";
    /// [`super::section::UNIT_ENABLED`].
    pub(crate) const ENABLED: &str = "enabled";
    /// [`super::section::FORGED`]: the table holds a string across lines.
    pub(crate) const FORGED: &str = "table";
    /// [`super::section::ROLLBACK`]: a change waits for its confirmation.
    pub(crate) const ARMED: &str = "armed";
    /// [`super::section::ROUTES`]: `4 truncated` or `6 truncated`, a family's
    /// table too long to send.
    pub(crate) const TRUNCATED: &str = "truncated";
    /// [`super::section::BACKEND_CHOICE`]'s picks.
    pub(crate) const NFT: &str = "nft";
    pub(crate) const IPT: &str = "ipt";
    /// [`super::section::BACKEND`] and the backend file of the nftables
    /// backend (nft.sh).
    pub(crate) const NFTABLES: &str = "nftables";
}

/// The `KEY=VALUE` lines of `palisade ping`'s probe (probe.sh).
pub(crate) mod probe {
    pub(crate) const SSH_CONNECTION: &str = "ssh_connection";
    /// `tool:NAME`, [`YES`] when the node has it.
    pub(crate) const TOOL: &str = "tool:";
    pub(crate) const IPSET_VERSION: &str = "ipset_version";
    pub(crate) const IPTABLES_VERSION: &str = "iptables_version";
    /// [`YES`] when the node runs systemd.
    pub(crate) const SYSTEMD: &str = "systemd";
    pub(crate) const YES: &str = "yes";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{FirewallBackend, Policy, PolicyOptions, testing};

    /// The template as a node runs it (`render::code`): comments never
    /// count as saying a word.
    fn holds(name: &str, template: &str, fragment: &str) {
        assert!(
            super::super::code(template).contains(fragment),
            "{name} no longer holds {fragment:?}"
        );
    }

    /// `fragment` as a whole word: followed by no letter, digit, `_` or `-`.
    fn holds_word(name: &str, template: &str, fragment: &str) {
        let code = super::super::code(template);
        let whole = code.match_indices(fragment).any(|(at, _)| {
            code[at + fragment.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        });
        assert!(whole, "{name} no longer holds the word {fragment:?}");
    }

    fn policy(backend: FirewallBackend) -> Policy {
        testing::for_no_hosts(&PolicyOptions {
            resolvers: vec!["8.8.8.8".parse().unwrap()],
            ..testing::options("203.0.113.7")
        })
        .with_backend(backend)
    }

    /// The read's script, with a `read_node` that reads nothing from this
    /// machine (empty tables and sets, audit sets), run by a real shell.
    fn observed(backend: FirewallBackend) -> String {
        let p = policy(backend);
        let script = format!(
            "{}{}{}read_node() {{\n\
             table_v4='' table_v6='' mangle_v4='' mangle_v6='' save_v4='' save_v6=''\n\
             audit_v4='create a4 hash:ip,port' audit_v6='create a6 hash:ip,port'\n\
             ntable_json='' ipt_left=1\n}}\n\
             say_observed '198.18.0.1 51234 198.18.1.10 22'\n",
            super::super::names(&p),
            super::super::library(&p),
            super::super::code(super::super::OBSERVE),
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every section the controller reads of the read is said, by both
    /// backends, framed as the parser takes it.
    #[test]
    fn the_read_says_every_section_the_controller_reads() {
        for backend in [FirewallBackend::Iptables, FirewallBackend::Nftables] {
            let text = observed(backend);
            let headers: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(HEADER)).collect();
            let mut want = vec![
                section::ORIGIN,
                section::MISSING_TOOLS,
                section::BACKEND,
                section::RESTORE,
                section::BACKEND_FILE,
                section::SYSTEMD,
                section::UNIT,
                section::UNIT_ENABLED,
                section::UPLINKS,
                section::ROUTES,
                section::ROLLBACK,
                section::ROLLBACK_FAILED,
            ];
            if backend == FirewallBackend::Nftables {
                want.push(section::NFT);
            }
            let mut families = Vec::new();
            for v in ["v4", "v6"] {
                for name in [
                    section::SET,
                    section::AUDIT,
                    section::CHAIN,
                    section::INPUT,
                    section::DOCKER_USER,
                    section::DOCKER_CHAIN,
                    section::PREROUTING,
                    section::GUARD,
                    section::FORGED,
                ] {
                    families.push(section::family(name, v));
                }
            }
            want.extend(families.iter().map(String::as_str));
            for name in want {
                assert!(
                    headers.contains(&name),
                    "{backend}: no section {name:?} in\n{text}"
                );
            }
            assert_eq!(headers.last(), Some(&section::END));
            assert_eq!(text.lines().last(), Some(END));
            let o = crate::observe::firewall::parse(&text).unwrap();
            assert_eq!(
                crate::observe::firewall::controller_address(&text),
                Some("198.18.0.1".parse().unwrap())
            );
            if backend == FirewallBackend::Nftables {
                assert_eq!(o.backend, Some(crate::observe::probe::Backend::Nftables));
            }
        }
    }

    /// The frame: `section` prints HEADER, `say` DATA, and END is the end
    /// section's header.
    #[test]
    fn the_frame_is_the_librarys() {
        use super::super::{AUTO, LIB};
        assert_eq!(END, format!("{HEADER}{}", section::END));
        holds("lib.sh section", LIB, &format!("reply=\"$reply{HEADER}$1$nl\""));
        holds("lib.sh say", LIB, &format!("reply=\"$reply{DATA}$1$nl\""));
        holds("lib.sh say", LIB, &format!("reply=\"$reply{DATA}$line$nl\""));
        holds("lib.sh say", LIB, &format!("printf \"{DATA}%s\\n\""));
        // What the controller matches in the read's data lines.
        holds_word("lib.sh say_chains", LIB, &format!("say {}", said::FORGED));
        let observe = super::super::OBSERVE;
        holds_word("observe.sh systemd", observe, &format!("say {}", said::YES));
        holds_word(
            "observe.sh unit-enabled",
            observe,
            &format!("say {}", said::ENABLED),
        );
        holds(
            "observe.sh rollback",
            observe,
            &format!("say \"{} $left $sid\"", said::ARMED),
        );
        for v in ["4", "6"] {
            holds(
                "observe.sh routes",
                observe,
                &format!("{v} {}$nl", said::TRUNCATED),
            );
        }
        holds_word(
            "nft.sh",
            super::super::NFT,
            &format!("backend={}", said::NFTABLES),
        );
        holds(
            "auto.sh choose",
            AUTO,
            &format!(
                "choice=\"{HEADER}{}$nl{DATA}$fw $fw_why$nl\"",
                section::BACKEND_CHOICE
            ),
        );
        holds_word("auto.sh choose", AUTO, &format!("fw={}", said::NFT));
        holds_word("auto.sh choose", AUTO, &format!("fw={}", said::IPT));
    }

    /// The converge script reads each order where `Order::text` writes it,
    /// and says what the engine parses of each reply.
    #[test]
    fn the_converge_script_reads_the_orders_and_says_the_replies() {
        use super::super::{APPLY, CONFIRM, CONVERGE, LIB};
        let name = "converge.sh";
        holds(name, CONVERGE, &format!("\"{} \"*)\n", order::APPLY));
        holds(name, CONVERGE, &format!("n=${{order#{} }}\n", order::APPLY));
        let confirm = format!(
            "\"{0} \"*) confirm_change \"${{order#{0} }}\" ;;\n",
            order::CONFIRM
        );
        // After a change of this run's, and for an earlier run's.
        assert_eq!(
            super::super::code(CONVERGE).matches(&confirm).count(),
            2,
            "{confirm}"
        );
        holds(name, CONVERGE, &format!("\n{})\n", order::ABORT));
        // The first reply's settled section, and the words settle sets.
        holds(
            name,
            CONVERGE,
            &format!("printf '{HEADER}{}\\n{DATA}%s\\n' \"$settled\"", section::SETTLED),
        );
        for word in [settled::CONFIRM, settled::ROLLBACK, settled::EXPIRED] {
            holds_word("lib.sh settle", LIB, &format!("settled={word}"));
        }
        // The reply to apply.
        holds(name, CONVERGE, &format!("section {}\n", section::CHANGE));
        holds(name, CONVERGE, &format!("say \"{}$id\"", change::ID));
        holds(
            name,
            CONVERGE,
            &format!("say \"{}${{armed%% *}}\"", change::ARMED),
        );
        holds(name, CONVERGE, &format!("say \"{}$persisted\"", change::PERSIST));
        holds(name, CONVERGE, &format!("say_back\nsection {}\n", section::END));
        holds(
            "apply.sh arm",
            APPLY,
            &format!("echo \"{} $unit\" >\"$snap/armed\"", change::SYSTEMD),
        );
        holds(
            "apply.sh arm",
            APPLY,
            &format!("echo {} >\"$snap/armed\"", change::SETSID),
        );
        for word in [change::SYSTEMD, change::FILES] {
            holds_word("apply.sh stage", APPLY, &format!("persisted={word}"));
        }
        // The reply to abort: a section named as the order.
        for word in [state::ROLLED_BACK, state::ROLLBACK_FAILED] {
            holds(
                name,
                CONVERGE,
                &format!(
                    "printf '{HEADER}{}\\n{DATA}{}{word}\\n{END}\\n'",
                    order::ABORT,
                    state::KEY
                ),
            );
        }
        // The reply to confirm: a section named as the order.
        let name = "confirm.sh";
        holds(
            name,
            CONFIRM,
            &format!(
                "printf '{HEADER}{}\\n{DATA}{}%s\\n{DATA}{}%s\\n{END}\\n' \"$state\" \"$boot\"",
                order::CONFIRM,
                state::KEY,
                state::BOOT
            ),
        );
        for word in [state::CONFIRMED, state::ROLLED_BACK, state::NONE] {
            holds_word(name, CONFIRM, &format!("state={word}"));
        }
        holds_word(name, CONFIRM, &format!("boot={}", state::FAILED));
    }

    /// `palisade rollback status` says each state the engine knows.
    #[test]
    fn the_status_script_says_each_state() {
        let status = include_str!("status.sh");
        for word in [
            state::NONE,
            state::ARMED,
            state::CONFIRMING,
            state::ROLLING_BACK,
            state::ROLLED_BACK,
            state::ROLLBACK_FAILED,
        ] {
            let line = format!("{DATA}{}{word}", state::KEY);
            assert!(
                ['\'', '"']
                    .iter()
                    .any(|q| status.contains(&format!("echo {q}{line}{q}"))),
                "status.sh no longer says {line:?}"
            );
        }
    }

    /// The probe prints each key `observe::probe` reads.
    #[test]
    fn the_probe_prints_each_key_ping_reads() {
        let name = "probe.sh";
        let text = super::super::PROBE;
        for key in [
            probe::SSH_CONNECTION,
            probe::IPSET_VERSION,
            probe::IPTABLES_VERSION,
        ] {
            holds(name, text, &format!("printf '{key}=%s\\n'"));
        }
        holds(
            name,
            text,
            &format!("printf '{}%s={}\\n' \"$tool\"", probe::TOOL, probe::YES),
        );
        holds(name, text, &format!("echo '{}={}'", probe::SYSTEMD, probe::YES));
    }
}
