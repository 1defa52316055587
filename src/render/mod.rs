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

mod fix;
pub(crate) mod nft;
pub(crate) mod wire;
pub(crate) use fix::{FamilyFix, Fix, Found, JumpFix, OldChains};

use crate::policy::{Family, FirewallBackend, FirewallMode, MARK, Policy};
use crate::transport::Script;

/// Where the boot-time restore script lives on a node.
pub(crate) const RESTORE_PATH: &str = "/var/lib/palisade/restore.sh";
/// The systemd unit that runs it before the network comes up.
pub(crate) const UNIT_PATH: &str = "/etc/systemd/system/palisade.service";

/// Shell functions shared by every script that reads or changes netfilter.
pub(crate) const LIB: &str = include_str!("lib.sh");
/// The read: `observe` and `say_observed`, which every read script and the
/// converge script run after the library (observe::firewall parses what
/// they say).
pub(crate) const OBSERVE: &str = include_str!("observe.sh");
const APPLY: &str = include_str!("apply.sh");
pub(crate) const WRITERS: &str = include_str!("writers.sh");
const CONFIRM: &str = include_str!("confirm.sh");
const CONVERGE: &str = include_str!("converge.sh");
const REMOVE: &str = include_str!("remove.sh");
/// The nftables backend's read side and writers, loaded after the library
/// and after apply.sh, whose hooks they replace.
const NFT: &str = include_str!("nft.sh");
const NFT_APPLY: &str = include_str!("nft-apply.sh");
/// `choose`, which picks a node's backend under `--backend auto`.
const AUTO: &str = include_str!("auto.sh");
/// `palisade ping`'s probe (observe::probe), sent as it is: who the node
/// thinks we are, which tools it has, and whether it runs systemd.
pub(crate) const PROBE: &str = include_str!("probe.sh");

const UNIT: &str = include_str!("palisade.service");

/// The whole of an apply, in one exec: read the node, then change, arm,
/// confirm as the controller says on the script's stdin (see `converge.sh`
/// and `engine::protocol`). With `confirm` seconds above zero, a change
/// rolls back by itself unless the controller confirms it in time.
///
/// It carries what a read needs and no more: the names and the library;
/// the whitelist (the data of the header) comes with the change
/// ([`change_code`]), to a node that needs one. The restore script is made
/// of the same parts as the two: the header, the library and the change's
/// code go once, as quoted values the script evaluates and (with
/// persistence) also writes out as the restore script. Comments stay in
/// the templates ([`code`]). All three keep the first flight small, the
/// same at any fleet size, which at a distance is round trips: a first
/// flight of TCP carries about 14 kB.
pub(crate) fn converge(policy: &Policy, confirm: u32) -> Script {
    // What a read needs: the names (the same for both backends). The data
    // (the whitelist: a thousand hosts' addresses are some 30 to 60 kB)
    // goes with the change (`change_code`), only to a node that needs one.
    let mut s = String::from(READ_HEAD);
    s.push_str(&names(policy));
    if policy.backend() == FirewallBackend::Auto {
        // The node picks its backend (`choose`, in auto.sh) and loads that
        // backend's read side; the change then carries the chosen one's
        // header and writers, the same bytes as with that --backend.
        s.push_str("auto=1\n");
        s.push_str(&quoted("nft_lib", &code(NFT)));
        s.push_str(&code(AUTO));
    }
    s.push_str(&format!(
        "mode=apply\nconfirm={confirm}\npersist={}\n",
        u8::from(policy.persist())
    ));
    s.push_str(&quoted("lib_text", &library(policy)));
    s.push_str("eval \"$lib_text\"\n");
    s.push_str(&code(OBSERVE));
    s.push_str(&code(CONFIRM));
    s.push_str(&code(CONVERGE));
    Script::rendered(s)
}

/// How the converge script and the header start: a failed command or an
/// unset variable stops the script (converge.sh relaxes it where a step
/// may fail).
const READ_HEAD: &str = "set -eu\n";

/// The rest of [`converge`], sent with the order `apply` only when the
/// node needs a change: the header (the names again, and the data: the
/// whitelist, the guard's rules, or the whole nftables table), the change
/// itself, as `fix` decided it from what the node showed (per family, the
/// rules `iptables-restore` gets), and with persistence the parts of the
/// restore script and the unit that `stage` writes. With `--backend auto`,
/// `policy` is the backend the node took.
pub(crate) fn change_code(policy: &Policy, fix: &Fix) -> String {
    // The header (names and data), which the rollback and the boot restore
    // start with: here, not in the first flight, which a read alone needs.
    let mut s = quoted("header_text", &header(policy));
    s.push_str("eval \"$header_text\"\n");
    // With nftables the change is the whole table, which the header holds:
    // nothing is left for the controller to decide.
    if policy.backend() == FirewallBackend::Iptables {
        for family in Family::BOTH {
            let v = tag(family);
            let f = fix.family(family);
            s.push_str(&quoted(&format!("forward_{v}"), &fix::forward(policy, family, f)));
        }
    }
    s.push_str(&quoted("apply_text", &apply_code(policy)));
    s.push_str("eval \"$apply_text\"\n");
    if policy.persist() {
        s.push_str(&quoted("restore_head", RESTORE_HEAD));
        s.push_str(&quoted("restore_mode", RESTORE_MODE));
        s.push_str(&quoted("restore_run", RESTORE_RUN));
        s.push_str(&quoted("unit_text", UNIT));
    }
    s.push_str(CHANGE_END);
    s
}

/// The last line of [`change_code`]: the converge script runs the code only
/// when it ends so, as `head -c` gives fewer bytes than asked for when the
/// link drops, and a cut script could define half of what it should.
const CHANGE_END: &str = ": end of the change\n";

const RESTORE_HEAD: &str = "#!/bin/sh\n# Written by palisade: restores its ipsets and chains at boot.\n";
const RESTORE_MODE: &str = "mode=boot\nconfirm=0\npersist=0\n";
/// At boot, after a manual `systemctl restart palisade` too: one at a time.
const RESTORE_RUN: &str = "lock_node 60\nread_node\nchange\n";

/// The change and what only writers share (`writers.sh`): what
/// `apply_text` holds; with nftables, its writers after them.
fn apply_code(policy: &Policy) -> String {
    let mut s = code(WRITERS);
    s.push_str(&code(APPLY));
    if policy.backend() == FirewallBackend::Nftables {
        s.push_str(&code(NFT_APPLY));
    }
    s
}

/// The shell library every script starts with (`lib_text`): with
/// nftables, its read side after it.
pub(crate) fn library(policy: &Policy) -> String {
    let mut s = code(LIB);
    if policy.backend() == FirewallBackend::Nftables {
        s.push_str(&code(NFT));
    }
    s
}

/// The code the boot restore runs: the library and the change.
fn boot_code(policy: &Policy) -> String {
    let mut s = library(policy);
    s.push_str(&apply_code(policy));
    s
}

/// What boot runs: the same change, read and made afresh, without the
/// rollback and without writing persistence again. `stage` in apply.sh
/// writes exactly these bytes from the parts [`converge`] sends.
pub(crate) fn restore(policy: &Policy) -> String {
    let mut s = String::from(RESTORE_HEAD);
    s.push_str(&header(policy));
    s.push_str(RESTORE_MODE);
    s.push_str(&boot_code(policy));
    s.push_str(RESTORE_RUN);
    s
}

/// A template as a node runs it: without its comment lines, blank lines
/// and indentation. The templates are laid out for people; the nodes get
/// the code, and a small fleet's whole apply fits in TCP's first flight.
/// (No template has a comment, a blank line or an indented line inside a
/// multi-line string or a here-document, which this would change: the lab
/// runs every script so made.)
pub(crate) fn code(template: &str) -> String {
    template
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| [l, "\n"])
        .collect()
}

/// sha256 of the restore script, as `sha256sum` on the node prints it.
pub(crate) fn restore_digest(policy: &Policy) -> String {
    hex(&Sha256::digest(restore(policy).as_bytes()))
}

pub(crate) fn unit_digest() -> String {
    hex(&Sha256::digest(UNIT.as_bytes()))
}

/// Takes palisade off a node: jumps, chains, sets, persistence.
pub(crate) fn remove(policy: &Policy) -> Script {
    let mut s = String::from("set -eu\n");
    s.push_str(&names(policy));
    s.push_str(&library(policy));
    s.push_str(&code(WRITERS));
    match policy.backend() {
        FirewallBackend::Iptables => {
            s.push_str(&code(REMOVE));
            s.push_str("remove_ipt\n");
        }
        FirewallBackend::Nftables => {
            s.push_str(&code(NFT_APPLY));
            s.push_str("remove_all\n");
        }
        // The node picks as apply would; the nftables backend's remove also
        // takes what the iptables backend left. (Its table, read by
        // choose, is read again once the lock is held.)
        FirewallBackend::Auto => {
            s.push_str(&code(REMOVE));
            s.push_str(&code(AUTO));
            s.push_str(&quoted("nft_lib", &code(NFT)));
            s.push_str(&quoted("nft_apply", &code(NFT_APPLY)));
            s.push_str(
                "choose\nif [ \"$fw\" = nft ]; then\neval \"$nft_apply\"\nread_once=0\nremove_all\nelse\nremove_ipt\nfi\n",
            );
        }
    }
    Script::rendered(s)
}

/// The read script's start for `--backend auto`: the nftables backend's
/// read side, which `choose` loads when the node takes nftables, and the
/// choice.
pub(crate) fn auto_read(policy: &Policy) -> String {
    if policy.backend() != FirewallBackend::Auto {
        return String::new();
    }
    let mut s = code(AUTO);
    s.push_str(&quoted("nft_lib", &code(NFT)));
    s.push_str("choose\n");
    s
}

/// Says whether the last change was confirmed, is armed or rolled back.
pub(crate) fn status() -> Script {
    Script::fixed(concat!(
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n",
        include_str!("status.sh")
    ))
}

/// The link `systemctl enable` makes for the unit: in the `.wants`
/// directory of the target its `[Install]` section names. palisade makes and
/// reads this link itself, so that confirming a change costs no
/// `daemon-reload` and verify no `systemctl`.
pub(crate) fn unit_wants() -> String {
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
        "chain='{}'\ndchain='{}'\ngchain='{}'\nset4='{}'\nset6='{}'\nntable='{}'\nmark='{MARK}'\nrestore_path='{RESTORE_PATH}'\nunit_path='{UNIT_PATH}'\nunit_wants='{}'\n",
        policy.chain(),
        policy.docker_chain(),
        policy.guard_chain(),
        policy.set4(),
        policy.set6(),
        nft::table_name(policy),
        unit_wants()
    )
}

/// `name='text'`, with every `'` in the text written as `'\''`: program
/// text (the restore script, the unit) as a shell value, which the script
/// writes to a file with the `printf` builtin, no `cat`.
fn quoted(name: &str, text: &str) -> String {
    format!("{name}='{}'\n", text.replace('\'', r"'\''"))
}

/// The data: names, then per family the set's members (as `ipset restore`
/// lines adding them to SET-new) and the guard's rules (as
/// `iptables-restore` lines), each a single-quoted value with one line per
/// entry. Validated values hold no quote (see the test
/// below), so nothing in them can end the quoting.
fn header(policy: &Policy) -> String {
    let mut s = String::from(READ_HEAD);
    s.push_str(&names(policy));
    if policy.backend() == FirewallBackend::Nftables {
        // The whole table, as `nft -f` takes it (render::nft): validated
        // names and addresses, and fixed words, none of them a quote.
        s.push_str(&format!("nft_text='{}'\n", nft::ruleset(policy)));
        return s;
    }
    for family in Family::BOTH {
        let v = tag(family);
        let set = policy.set(family);
        let members: String = policy
            .members(family)
            .map(|m| format!("add {set}-new {m}\n"))
            .collect();
        s.push_str(&format!("members_{v}='{members}'\n"));
        let rules: String = policy
            .guard_rules(family)
            .iter()
            .map(|r| format!("{r}\n"))
            .collect();
        s.push_str(&format!("rules_{v}='{rules}'\n"));
    }
    // Audit mode's bound (`prepare` makes the audit sets with it); 0 in
    // enforce mode, where a change takes them away.
    let audit = match policy.mode() {
        FirewallMode::Audit => policy.audit_size(),
        FirewallMode::Enforce => 0,
    };
    s.push_str(&format!("audit_size={audit}\n"));
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
    use crate::policy::{PolicyOptions, testing};
    use proptest::prelude::*;

    fn policy(extra: Vec<Net>, interfaces: Vec<IfName>) -> Policy {
        testing::for_no_hosts(&PolicyOptions {
            extra,
            resolvers: vec!["8.8.8.8".parse().unwrap()],
            interfaces,
            ..testing::options("203.0.113.7")
        })
    }

    #[test]
    fn header_carries_validated_data_only() {
        let p = policy(
            vec!["2001:2::/48".parse().unwrap()],
            vec!["docker0".parse().unwrap()],
        );
        let script = converge(&p, 60);
        let text = script.as_str();
        assert!(header(&p).starts_with(
            "set -eu\nchain='PALISADE'\ndchain='PALISADE-DOCKER'\ngchain='PALISADE-GUARD'\nset4='palisade4'\n"
        ));
        // The first flight has the names, not the data: a read needs no
        // more, and a large fleet's whitelist would not fit in it.
        assert!(text.starts_with(&format!("{{\nset -eu\n{}", names(&p))), "{text}");
        assert!(
            !text.contains("members_v4") && !text.contains("rules_v4"),
            "{text}"
        );
        assert!(text.ends_with("\n}\n"));
        assert!(
            header(&p).contains(
                "members_v4='add palisade4-new 8.8.8.8\nadd palisade4-new 127.0.0.1\nadd palisade4-new 198.51.100.1\n"
            ),
            "{text}"
        );
        assert!(
            header(&p).contains("members_v6='add palisade6-new ::1\nadd palisade6-new 2001:2::/48\n'\n"),
            "{text}"
        );
        assert!(header(&p).contains("-A PALISADE-GUARD -i docker0 -j RETURN\n"));
        assert!(text.contains("persist=1\n"));
        assert!(text.contains("mode=apply\nconfirm=60\npersist=1\n"));
        // The restore script rides along in parts, as quoted values, which
        // put together are exactly what restore() gives, so its digest is
        // what a node reports.
        let fresh = FamilyFix {
            guard: JumpFix::Reinsert { delete: 0 },
            old: OldChains::default(),
        };
        let more = change_code(&p, &Fix { v4: fresh, v6: fresh });
        // The controller's decision rides along, before the code that
        // reads it.
        let forward = quoted("forward_v6", &fix::forward(&p, Family::V6, fresh));
        assert!(
            more.starts_with(&format!(
                "{}eval \"$header_text\"\nforward_v4='*mangle\n:PALISADE-GUARD - [0:0]\n",
                quoted("header_text", &header(&p))
            )),
            "{more}"
        );
        assert!(more.contains(&format!("{forward}apply_text=")), "{more}");
        assert!(text.contains(quoted("lib_text", &code(LIB)).as_str()));
        for part in [
            quoted("restore_head", RESTORE_HEAD),
            quoted("restore_mode", RESTORE_MODE),
            quoted("apply_text", &apply_code(&p)),
            quoted("restore_run", RESTORE_RUN),
        ] {
            assert!(more.contains(part.as_str()));
        }
        // The converge script runs the change only when it arrived whole.
        assert!(more.ends_with(CHANGE_END));
        let whole = format!("*\"$nl{}\") ;;", CHANGE_END.trim_end());
        assert!(CONVERGE.contains(&whole), "{whole}");
        assert_eq!(
            restore(&p),
            [
                RESTORE_HEAD,
                &header(&p),
                RESTORE_MODE,
                &code(LIB),
                &apply_code(&p),
                RESTORE_RUN
            ]
            .concat()
        );
        // Only code goes to the node.
        assert!(!boot_code(&p).lines().any(|l| l.trim_start().starts_with('#')));
        assert!(restore(&p).contains("mode=boot\nconfirm=0\npersist=0\n"));
        assert!(restore(&p).ends_with("lock_node 60\nread_node\nchange\n"));
    }

    /// One list of tools per backend, `FirewallBackend::tools`: what the
    /// read script checks on a node (its `tools`, and `flock` and `head`)
    /// is what `ping` reports missing, and the probe asks the node for
    /// both backends' tools, no more.
    #[test]
    fn the_read_script_checks_the_tools_ping_checks() {
        let mut both: Vec<&str> = Vec::new();
        for (backend, text) in [(FirewallBackend::Iptables, LIB), (FirewallBackend::Nftables, NFT)] {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("tools='")?.strip_suffix('\''))
                .unwrap();
            let mut tools: Vec<&str> = line.split(' ').collect();
            tools.extend(["flock", "head"]);
            assert_eq!(tools, backend.tools(), "{backend}");
            both.extend(backend.tools());
        }
        assert!(OBSERVE.contains("for tool in $tools flock head; do"));
        let probed = PROBE
            .lines()
            .find_map(|l| l.strip_prefix("for tool in ")?.strip_suffix("; do"))
            .unwrap();
        let mut probed: Vec<&str> = probed.split(' ').collect();
        for list in [&mut both, &mut probed] {
            list.sort_unstable();
            list.dedup();
        }
        assert_eq!(probed, both);
    }

    /// Runs the library and the change code for `p` in a real shell with
    /// `save_all fake` first (a `fake-save` that prints `$SAVE`), then
    /// prints `tfilter` and `tmangle` each followed by `==`, then runs
    /// `more`; `env` is the shell's environment beside its own.
    fn with_fake_save(p: &Policy, more: &str, env: &[(&str, &str)]) -> std::process::Output {
        use std::os::unix::fs::PermissionsExt;
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("palisade-fake-save-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("fake-save");
        std::fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$SAVE\"\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = format!(
            "{}{}{}PATH={}:$PATH\nsave_all fake\n\
             printf '%s==\\n%s==\\n' \"$tfilter\" \"$tmangle\"\n{more}",
            header(p),
            code(LIB),
            apply_code(p),
            dir.display()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    /// The node's side, in a real shell: `save_all` cuts the filter and
    /// mangle tables out of one save of every table, reading past a table
    /// header forged in a rule comment.
    #[test]
    fn the_node_cuts_the_tables_as_meant() {
        let mut p = policy(vec![], vec!["cni0".parse().unwrap()]);
        p.open_port("tcp/30080".parse().unwrap());
        let save = "# Generated by iptables-save v1.8.9 (nf_tables) on Sat\n*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n\
                    *mangle\n:PREROUTING ACCEPT [0:0]\n:PALISADE-GUARD - [0:0]\n-A PREROUTING -j PALISADE-GUARD\n\
                    -A PREROUTING -m comment --comment \"x\n*filter\n-A INPUT -j DROP\n\" -j RETURN\nCOMMIT\n\
                    *nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n\
                    *filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j PALISADE\nCOMMIT\n";
        let out = with_fake_save(&p, "", &[("SAVE", save)]);
        let text = String::from_utf8(out.stdout).unwrap();
        let parts: Vec<&str> = text.split("==\n").collect();
        assert_eq!(parts.len(), 3, "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            parts[0],
            "# Generated by iptables-save v1.8.9 (nf_tables) on Sat\n*filter\n:INPUT ACCEPT [0:0]\n\
             -A INPUT -j PALISADE\nCOMMIT\n"
        );
        assert!(
            parts[1].starts_with("*mangle\n:PREROUTING ACCEPT [0:0]\n"),
            "{}",
            parts[1]
        );
        assert!(parts[1].ends_with("\"x\n*filter\n-A INPUT -j DROP\n\" -j RETURN\nCOMMIT\n"));
    }

    /// The node's side, in a real shell, with texts longer than the hundred
    /// lines `save_all` gathers before it appends them to the long text:
    /// every line comes out once, in order (a set of a thousand members,
    /// the filter table of a node with kube-proxy). `say` frames every line
    /// as data, long text (framed by printf), middling (by its loop, the
    /// reply sealed into pieces on the way) or short: lines that look like
    /// the protocol's or the shell's kept as they are behind a `|`, empty
    /// ones dropped, and a long text of empty lines says nothing.
    #[test]
    fn the_node_keeps_every_line_of_a_long_text() {
        let p = policy(vec![], vec![]);
        let rules = |chain: &str, n: usize| -> String {
            (0..n)
                .map(|i| format!("-A {chain} -s 198.18.{}.{}/32 -j RETURN\n", i / 250, i % 250))
                .collect()
        };
        let mangle = format!(
            "*mangle\n:PREROUTING ACCEPT [0:0]\n{}COMMIT\n",
            rules("PREROUTING", 137)
        );
        let filter = format!("*filter\n:INPUT ACCEPT [0:0]\n{}COMMIT\n", rules("INPUT", 1003));
        let nat = format!("*nat\n{}COMMIT\n", rules("KUBE-SERVICES", 450));
        let head = "# Generated by iptables-save v1.8.9 (nf_tables) on Sat\n";
        // Each order once: the table that comes last keeps lines gathered
        // after the last hundred.
        for save in [
            format!("{head}{mangle}{nat}{filter}"),
            format!("{head}{filter}{nat}{mangle}"),
        ] {
            let odd = [
                "==> end", "  ", "|x", "a\\b", "*", "$HOME", "'q'", "\"d\"", "\t tab", "-",
            ];
            let members: String = (0..1234).map(|i| format!("add s 2001:2::{i:x}\n")).collect();
            let members = format!("\n{members}{}\n\n", odd.join("\n\n"));
            let short = format!("x\n\n{}\n", odd.join("\n"));
            // Under the 10,000 bytes that printf frames, over the kilobyte
            // at which the reply is sealed.
            let middling: String = (0..300)
                .map(|i| format!("-A P -s 198.18.0.{i} -j RETURN\n"))
                .collect();
            assert!((1_000..10_000).contains(&middling.len()));
            let blank = "\n".repeat(12_000);
            let out = with_fake_save(
                &p,
                "reply=''\nsection set\nsay \"$MEMBERS\"\nsay \"$BLANK\"\nsay \"$MIDDLING\"\nsay \"$SHORT\"\nsay one\nreply_out\n",
                &[
                    ("SAVE", save.trim_end()),
                    ("MEMBERS", &members),
                    ("BLANK", &blank),
                    ("MIDDLING", &middling),
                    ("SHORT", &short),
                ],
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let parts: Vec<&str> = text.split("==\n").collect();
            assert_eq!(parts.len(), 3, "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(parts[0], format!("{head}{filter}"));
            assert_eq!(parts[1], mangle);
            let framed: String = [&members, &middling, &short]
                .iter()
                .flat_map(|t| t.split('\n'))
                .filter(|l| !l.is_empty())
                .map(|l| format!("|{l}\n"))
                .collect();
            assert_eq!(parts[2], format!("==> set\n{framed}|one\n"));
        }
    }

    /// The node replaces or removes only a table the controller calls
    /// palisade's (observe::nft's `marked`: a rule of the guard chain
    /// carries the mark), as nft prints it with blanks or without: never
    /// another tool's table whose set, or rule of another chain, carries
    /// the word (real `nft -j` 1.0.6 output).
    #[test]
    fn the_node_replaces_only_a_table_the_controller_calls_palisades() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nft/");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}.json")).unwrap();
        // As nft prints it without blanks (its keys in the same order).
        let compact = |j: &str| {
            j.replace("\": ", "\":")
                .replace(", \"", ",\"")
                .replace(", {", ",{")
        };
        let theirs = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "palisade", "handle": 1}}, {"set": {"family": "inet", "name": "s", "table": "palisade", "type": "ipv4_addr", "handle": 2, "comment": "palisade"}}, {"chain": {"family": "inet", "table": "palisade", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "palisade", "chain": "input", "handle": 3, "comment": "palisade", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}]}"#;
        // A guard rule without the mark, and another chain's rule with it.
        let spliced = r#"{"nftables": [{"table": {"family": "inet", "name": "palisade", "handle": 1}}, {"chain": {"family": "inet", "table": "palisade", "name": "guard", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}, {"rule": {"family": "inet", "table": "palisade", "chain": "guard", "handle": 2, "expr": [{"accept": null}]}}, {"chain": {"family": "inet", "table": "palisade", "name": "x", "handle": 3}}, {"rule": {"family": "inet", "table": "palisade", "chain": "x", "handle": 4, "comment": "palisade", "expr": [{"accept": null}]}}]}"#;
        let cases = [
            (read("fresh"), true),
            (compact(&read("fresh")), true),
            (read("rule-added"), true),
            (String::new(), true),
            (read("foreign"), false),
            (theirs.to_owned(), false),
            (compact(theirs), false),
            (spliced.to_owned(), false),
        ];
        for (json, ours) in cases {
            // No table (nothing printed) is none to refuse.
            let marked = json.is_empty()
                || crate::observe::nft::parse(&json, "palisade")
                    .unwrap()
                    .is_none_or(|t| t.marked);
            assert_eq!(marked, ours, "the controller: {json}");
            let script = format!(
                "ntable=palisade mark={MARK}\n{}ntable_json=\"$1\"\nowned_table\n",
                code(WRITERS)
            );
            let out = std::process::Command::new("sh")
                .args(["-c", &script, "sh", &json])
                .output()
                .unwrap();
            assert_eq!(out.status.success(), ours, "the node: {json}");
        }
    }

    /// A quoted value comes back byte for byte from a real shell.
    #[test]
    fn quoted_text_survives_the_shell() {
        let text = "it's 'quoted' \\ $HOME `x` \"y\"\n\nend'\n";
        let script = format!("{}printf '%s' \"$v\"", quoted("v", text));
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
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
        assert_eq!(converge(&a, 60), converge(&a.clone(), 60));
        assert_eq!(restore_digest(&a).len(), 64);
    }

    /// The way back from nftables: the iptables backend's change (and so
    /// its rollback, made of the same code) checks and takes away the
    /// nftables backend's table with that backend's own functions, defined
    /// once; none of it rides in the first flight.
    #[test]
    fn the_iptables_change_takes_the_nftables_table_away() {
        let p = policy(vec![], vec![]);
        let ipt = apply_code(&p);
        for part in [
            "owned_table() {",
            "undo_nft() {",
            "prepare_table\n}\n",
            "step 5 undo_nft\nnft delete table inet \"$ntable\"\n}\n",
        ] {
            assert!(ipt.contains(part), "{part}");
        }
        let nft = apply_code(&p.with_backend(FirewallBackend::Nftables));
        assert_eq!(nft.matches("undo_nft() {").count(), 1);
        assert_eq!(nft.matches("owned_table() {").count(), 1);
        assert!(!converge(&p, 60).as_str().contains("undo_nft"));
    }

    /// Any fleet's first flight (a read, and an apply up to its order) fits
    /// in TCP's first flight (about 14 kB), so sending it costs no round
    /// trip more than verify's read: the whitelist rides with the change.
    #[test]
    fn every_fleets_read_fits_in_one_flight() {
        // A thousand hosts' worth of whitelist: two thousand addresses.
        let many: Vec<Net> = (0..2000u32)
            .map(|i| match i % 2 {
                0 => format!("198.19.{}.{}", i / 256, i % 256),
                _ => format!("2001:2:0:ff::{i:x}"),
            })
            .map(|a| a.parse().unwrap())
            .collect();
        // TCP's first flight is ten segments, 14,480 bytes on Ethernet,
        // which also carry the SSH framing (some 80 bytes); `auto` sends
        // both backends' read sides, and `choose`.
        for (backend, most) in [
            (FirewallBackend::Iptables, 14_000),
            (FirewallBackend::Nftables, 14_000),
            (FirewallBackend::Auto, 14_400),
        ] {
            for extra in [vec![], many.clone()] {
                let p = policy(extra, vec![]).with_backend(backend);
                let size = converge(&p, 60).as_str().len();
                let members = p.members(Family::V4).count();
                assert!(size < most, "{backend}, {members} IPv4 members: {size} bytes");
            }
        }
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
            let p = policy(nets.clone(), ifs.clone());
            // The data sits in single-quoted values: a validated value
            // holds no quote, so none can end one early.
            for n in &nets { prop_assert!(!n.to_string().contains('\'')); }
            for i in &ifs { prop_assert!(!i.as_str().contains('\'')); }
            prop_assert!(header(&p).contains("members_v4='"));
        }
    }
}
