//! The nftables backend's differences: what the policy wants against
//! palisade's table as a node shows it. Pure.
//!
//! Members are compared as addresses, not as texts: an interval set holds
//! no member inside another (`render::nft::elements`) and may show a run
//! of addresses as a range, so both sides become sorted, merged intervals,
//! and what one covers and the other does not is reported as the networks
//! that cover exactly it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{Change, rules_diff};
use crate::net::Net;
use crate::observe::nft::{BaseChain, NftChain, NftSet, NftTable};
use crate::policy::{Family, FirewallMode, Policy};
use crate::render::nft::{self, AUDIT_TIMEOUT, CHAIN, HOOK, PRIORITY, SetShape};

/// Every difference between the table the policy wants and `observed`
/// (None: the node has no such table). A table palisade did not make is
/// that, and nothing more: palisade neither compares nor replaces it.
pub(crate) fn table_diff(policy: &Policy, observed: Option<&NftTable>) -> Vec<Change> {
    let Some(table) = observed else {
        return vec![Change::NftTableMissing];
    };
    if !table.marked {
        return vec![Change::NftTableForeign];
    }
    let mut out = Vec::new();
    if !table.flags.is_empty() {
        out.push(Change::NftTableFlags {
            flags: table.flags.clone(),
        });
    }
    for family in Family::BOTH {
        match table.sets.get(policy.set(family).as_str()) {
            None => out.push(Change::SetMissing { family }),
            Some(set) => set_diff(policy, family, set, &mut out),
        }
    }
    match table.chains.get(CHAIN) {
        None => out.push(Change::NftChainMissing),
        Some(chain) => chain_diff(policy, chain, &mut out),
    }
    if policy.mode() == FirewallMode::Audit {
        for family in Family::BOTH {
            audit_set_diff(policy, family, table.sets.get(nft::audit_set(family)), &mut out);
        }
    }
    // Audit mode's sets are palisade's in audit mode, and while a node is
    // in it (the switch takes them away).
    let audits = policy.mode() == FirewallMode::Audit || table.mode() == FirewallMode::Audit;
    let ours = |name: &str| {
        Family::BOTH
            .iter()
            .any(|f| policy.set(*f).as_str() == name || (audits && nft::audit_set(*f) == name))
    };
    for name in table.sets.keys().filter(|n| !ours(n)) {
        out.push(Change::NftExtraObject {
            what: format!("set {}", shown(name)),
        });
    }
    for name in table.chains.keys().filter(|n| *n != CHAIN) {
        out.push(Change::NftExtraObject {
            what: format!("chain {}", shown(name)),
        });
    }
    for what in &table.others {
        out.push(Change::NftExtraObject { what: what.clone() });
    }
    out
}

/// The set's type and flags (either shape: see [`SetShape`]), then its
/// members. A plain set cannot hold a network: one that joins the policy
/// is a member missing, and the change that adds it makes the set afresh
/// as an interval set.
fn set_diff(policy: &Policy, family: Family, set: &NftSet, out: &mut Vec<Change>) {
    let kind = match family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    };
    // Either shape holds the same members: which one the policy would
    // make now is no drift (a change makes it afresh anyway).
    let shaped = [SetShape::Addresses, SetShape::Intervals]
        .iter()
        .any(|s| set.flags == s.flags());
    if set.kind != kind || !shaped {
        let found = if set.flags.is_empty() {
            set.kind.clone()
        } else {
            format!("{} flags {}", set.kind, set.flags.join(","))
        };
        out.push(Change::NftSetWrongType { family, found });
        return;
    }
    let want: Vec<(u128, u128)> = nft::elements(policy, family).iter().map(nft::bounds).collect();
    let mut have: Vec<(u128, u128)> = set.elements.iter().map(|e| e.bounds()).collect();
    have.sort_unstable();
    have.dedup();
    let missing = uncovered(family, &want, &merged(have.clone()));
    let extra = uncovered(family, &have, &merged(want.clone()));
    super::members_differ(family, missing, extra, out);
}

/// The chain's hook, then its rules, in order: a rule moved is drift, as
/// in the iptables backend's chains.
fn chain_diff(policy: &Policy, chain: &NftChain, out: &mut Vec<Change>) {
    let want = BaseChain {
        kind: "filter".to_owned(),
        hook: HOOK.to_owned(),
        prio: PRIORITY,
        policy: "accept".to_owned(),
    };
    match &chain.base {
        Some(base) if *base == want => {}
        Some(b) => out.push(Change::NftChainWrongHook {
            found: format!(
                "type {} hook {} priority {}; policy {}",
                b.kind, b.hook, b.prio, b.policy
            ),
        }),
        None => out.push(Change::NftChainWrongHook {
            found: "a regular chain (no hook)".to_owned(),
        }),
    }
    let want = nft::guard_rules(policy);
    let other = policy.mode().other();
    // The guard as the other mode has it, and nothing else differs: a
    // switch of mode, said as one.
    if chain.rules != want && chain.rules == nft::guard_rules(&policy.with_mode(other)) {
        out.push(Change::ModeDiffers {
            want: policy.mode(),
            found: other,
        });
    } else if let Some((missing, unexpected)) = rules_diff(&want, &chain.rules) {
        out.push(Change::NftRulesDiffer { missing, unexpected });
    }
}

/// Audit mode's set of `family`: its type, bound and timeout (what it
/// recorded is the node's, never compared).
fn audit_set_diff(policy: &Policy, family: Family, set: Option<&NftSet>, out: &mut Vec<Change>) {
    let found = match set {
        None => "missing".to_owned(),
        Some(set) => {
            let kind = nft::audit_kind(family);
            let size = u64::from(policy.audit_size());
            if set.kind == kind
                && set.size == Some(size)
                && set.timeout == Some(AUDIT_TIMEOUT)
                && set.flags.iter().any(|f| f == "timeout")
            {
                return;
            }
            format!(
                "{} size {} timeout {}",
                set.kind,
                set.size.map_or("none".to_owned(), |n| n.to_string()),
                set.timeout.map_or("none".to_owned(), |n| format!("{n}s"))
            )
        }
    };
    out.push(Change::AuditSetDiffers { family, found });
}

/// A name read from the node, for a message (the report escapes what it
/// prints; this keeps a name with spaces in one piece).
fn shown(name: &str) -> String {
    let inert = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b));
    if inert {
        name.to_owned()
    } else {
        serde_json::Value::String(name.to_owned()).to_string()
    }
}

/// Sorted, with every overlapping or adjacent pair made one.
fn merged(mut spans: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    spans.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(spans.len());
    for (first, last) in spans {
        match out.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// Of each of `items` (sorted), what `by` (merged) does not cover: the
/// item itself when none of it is covered (a member as the policy or the
/// node has it), else the networks of what is left.
fn uncovered(family: Family, items: &[(u128, u128)], by: &[(u128, u128)]) -> Vec<Net> {
    covering(family, &minus(items, by))
}

/// What `a` (sorted) covers and `b` (merged) does not, span by span of
/// `a`.
fn minus(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for &(first, last) in a {
        let mut start = Some(first);
        let from = b.partition_point(|(_, bl)| *bl < first);
        for &(bf, bl) in b[from..].iter().take_while(|(bf, _)| *bf <= last) {
            let Some(s) = start else { break };
            if bf > s {
                out.push((s, bf - 1));
            }
            start = bl.checked_add(1).filter(|n| *n <= last);
        }
        if let Some(s) = start {
            out.push((s, last));
        }
    }
    out
}

/// The fewest networks that cover exactly the spans, in order.
fn covering(family: Family, spans: &[(u128, u128)]) -> Vec<Net> {
    let width: u32 = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let mut out = Vec::new();
    for &(first, last) in spans {
        let mut start = first;
        loop {
            // The widest block that starts at `start` and ends by `last`.
            let aligned = if start == 0 {
                width
            } else {
                start.trailing_zeros().min(width)
            };
            let span = last - start;
            let fits = match span.checked_add(1) {
                Some(n) => 127 - n.leading_zeros(),
                None => 128,
            };
            let bits = aligned.min(fits);
            if let Some(net) = network(family, start, width - bits) {
                out.push(net);
            }
            let size_less_one = if bits >= 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            match start.checked_add(size_less_one) {
                Some(end) if end < last => start = end + 1,
                _ => break,
            }
        }
    }
    out
}

fn network(family: Family, start: u128, len: u32) -> Option<Net> {
    let addr = match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(start).ok()?)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(start)),
    };
    let net = IpNet::new(addr, u8::try_from(len).ok()?).ok()?;
    Some(Net::from(net))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;
    use crate::inventory::Role;
    use crate::observe::nft::parse;
    use crate::policy::{PolicyOptions, testing};

    /// The options of [`policy`].
    fn options() -> PolicyOptions {
        PolicyOptions {
            open: vec!["all=tcp/30080,udp/30000-32767".parse().unwrap()],
            extra: vec![
                "10.0.0.0/8".parse().unwrap(),
                "10.1.2.3".parse().unwrap(),
                "2001:2::/48".parse().unwrap(),
            ],
            interfaces: vec!["cni0".parse().unwrap(), "cali+".parse().unwrap()],
            ..testing::options("198.18.0.1")
        }
    }

    /// The policy of `opts` on a node of any role (the ports of [`options`]
    /// are open on all).
    fn policy_of(opts: &PolicyOptions) -> Policy {
        testing::for_no_hosts(opts).for_role(Role::Node)
    }

    /// The policy the fixtures in tests/fixtures/nft were captured with
    /// (the table in `capture.sh` there is its ruleset).
    fn policy() -> Policy {
        policy_of(&options())
    }

    fn fixture(name: &str) -> Option<NftTable> {
        let path = format!("{}/tests/fixtures/nft/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let json = std::fs::read_to_string(&path).unwrap();
        parse(&json, "palisade").unwrap()
    }

    fn texts(changes: &[Change]) -> Vec<String> {
        changes.iter().map(|c| format!("{}: {c}", c.kind())).collect()
    }

    /// capture.sh loads the tables of both policies its fixtures are of.
    #[test]
    fn the_capture_script_loads_these_policies() {
        let script = include_str!("../../tests/fixtures/nft/capture.sh");
        for p in [policy(), addresses_policy()] {
            assert!(script.contains(&nft::ruleset(&p)), "regenerate the fixtures");
        }
    }

    /// The policy of capture.sh's `addresses` table: single addresses
    /// alone, in plain sets.
    fn addresses_policy() -> Policy {
        testing::for_no_hosts(&PolicyOptions {
            extra: vec!["2001:2::1".parse().unwrap()],
            ..testing::options("198.18.0.1")
        })
    }

    #[test]
    fn a_set_of_addresses_is_read_and_compared_as_nft_lists_it() {
        let t = fixture("addresses").unwrap();
        assert_eq!(table_diff(&addresses_policy(), Some(&t)), vec![]);
        // A network joins the whitelist: a member missing, as from an
        // interval set; an interval set holding what a plain one would is
        // no drift.
        let mut p = addresses_policy();
        p.add_member("10.0.0.0/8".parse().unwrap());
        assert_eq!(
            texts(&table_diff(&p, Some(&t))),
            ["members-missing: IPv4 set lacks 1 member(s): 10.0.0.0/8"]
        );
        let mut fresh = t.clone();
        let mut plain = fixture("fresh").unwrap();
        for name in ["palisade4", "palisade6"] {
            plain.sets.get_mut(name).unwrap().flags.clear();
            fresh.sets.get_mut(name).unwrap().flags = vec!["interval".into()];
        }
        assert_eq!(table_diff(&addresses_policy(), Some(&fresh)), vec![]);
        // Any other flag is another kind of set.
        fresh.sets.get_mut("palisade4").unwrap().flags = vec!["constant".into(), "interval".into()];
        assert_eq!(
            texts(&table_diff(&addresses_policy(), Some(&fresh))),
            [
                "set-wrong-type: IPv4 set is ipv4_addr flags constant,interval, not a set of IPv4 addresses \
              (plain, or with flags interval)"
            ]
        );
        // The fixtures' own members, in plain sets: only what a plain set
        // cannot hold differs... as members.
        assert!(
            texts(&table_diff(&policy(), Some(&plain)))
                .iter()
                .all(|t| t.starts_with("members-")),
        );
    }

    #[test]
    fn a_fresh_table_has_no_changes() {
        assert_eq!(table_diff(&policy(), fixture("fresh").as_ref()), vec![]);
    }

    #[test]
    fn hand_edits_are_each_named() {
        let cases: [(&str, &[&str]); 7] = [
            (
                "member-deleted",
                &["members-missing: IPv4 set lacks 1 member(s): 198.51.100.2"],
            ),
            (
                "rule-added",
                &["guard-rules-differ: nftables guard chain rules differ; unexpected: tcp dport 22 accept"],
            ),
            (
                "verdict-changed",
                &[
                    "guard-rules-differ: nftables guard chain rules differ; missing: ip6 saddr @palisade6 accept; \
                   unexpected: ip6 saddr @palisade6 drop",
                ],
            ),
            (
                "chain-added",
                &[
                    "guard-rules-differ: nftables guard chain rules differ; unexpected: jump extra",
                    "nft-extra-object: nftables table holds chain extra, which palisade does not make",
                ],
            ),
            (
                "foreign",
                &[
                    "nft-table-foreign: an nftables table has the name of palisade's, but palisade did not make it \
                   (no rule of its guard chain carries palisade's mark): palisade will not replace it; remove it \
                   by hand, or choose another --chain",
                ],
            ),
            (
                "empty-whitelist",
                &[
                    "members-missing: IPv4 set lacks 6 member(s): 10.0.0.0/8, 127.0.0.1, 198.18.0.1, \
                     198.51.100.1, 198.51.100.2, 198.51.100.3",
                    "members-missing: IPv6 set lacks 2 member(s): ::1, 2001:2::/48",
                ],
            ),
            // nft 1.0.6 prints a dormant table's flags as "inet"; other
            // versions as "dormant": either way, some.
            (
                "dormant",
                &[
                    "nft-table-flags: nftables table has flags (inet), which palisade never sets (a dormant \
                   table filters nothing)",
                ],
            ),
        ];
        for (name, want) in cases {
            let t = fixture(name).expect(name);
            assert_eq!(texts(&table_diff(&policy(), Some(&t))), want, "{name}");
        }
        assert_eq!(table_diff(&policy(), None), vec![Change::NftTableMissing]);
    }

    /// The policy of `audit.json`: `policy()` in audit mode, six flows a
    /// family.
    fn audit_policy() -> Policy {
        policy_of(&audit_options(6))
    }

    /// The options of [`policy`] in audit mode, `size` flows a family.
    fn audit_options(size: u32) -> PolicyOptions {
        PolicyOptions {
            mode: FirewallMode::Audit,
            audit_size: size,
            ..options()
        }
    }

    #[test]
    fn the_capture_script_loads_the_audit_table_too() {
        // capture.sh makes it from the enforce table with sed: what it
        // loads is what render writes (the sets' and rules' lines).
        let script = include_str!("../../tests/fixtures/nft/capture.sh");
        let text = nft::ruleset(&audit_policy());
        for line in text.lines().filter(|l| l.contains("audit")) {
            let escaped = line.replace('\t', "\\t");
            assert!(script.contains(&escaped), "regenerate the fixtures: {line}");
        }
    }

    #[test]
    fn a_switch_of_mode_is_one_change_and_what_was_recorded_is_not_compared() {
        let t = fixture("audit").unwrap();
        assert_eq!(t.mode(), FirewallMode::Audit);
        assert_eq!(table_diff(&audit_policy(), Some(&t)), vec![]);
        // The same node, wanted in enforce mode: one change, the audit
        // sets not extra.
        assert_eq!(
            texts(&table_diff(&policy(), Some(&t))),
            [
                "mode-differs: the guard is in audit mode (drops nothing, records what it would drop), not \
              enforce mode (drops what the whitelist does not admit)"
            ]
        );
        // And the other way round.
        let fresh = fixture("fresh").unwrap();
        assert_eq!(fresh.mode(), FirewallMode::Enforce);
        let to_audit = table_diff(&audit_policy(), Some(&fresh));
        assert_eq!(
            to_audit[0],
            Change::ModeDiffers {
                want: FirewallMode::Audit,
                found: FirewallMode::Enforce
            }
        );
        assert_eq!(
            texts(&to_audit[1..]),
            [
                "audit-set-differs: IPv4 audit set missing",
                "audit-set-differs: IPv6 audit set missing",
            ]
        );
        // Another bound is a change of the sets.
        let bigger = policy_of(&audit_options(8));
        assert_eq!(
            texts(&table_diff(&bigger, Some(&t))),
            [
                "audit-set-differs: IPv4 audit set is ipv4_addr . inet_proto . inet_service size 6 timeout \
                 3600s, not the bounded set of flows audit mode records in",
                "audit-set-differs: IPv6 audit set is ipv6_addr . inet_proto . inet_service size 6 timeout \
                 3600s, not the bounded set of flows audit mode records in",
            ]
        );
        // An audit set left in an enforcing table is extra.
        let mut left = fresh.clone();
        left.sets.insert("audit4".into(), t.sets["audit4"].clone());
        assert_eq!(
            texts(&table_diff(&policy(), Some(&left))),
            ["nft-extra-object: nftables table holds set audit4, which palisade does not make"]
        );
    }

    #[test]
    fn the_table_and_chain_themselves() {
        let mut t = fixture("fresh").unwrap();
        t.flags = vec!["dormant".into()];
        let chain = t.chains.get_mut(CHAIN).unwrap();
        chain.base.as_mut().unwrap().policy = "drop".into();
        chain.rules.swap(1, 2);
        t.sets.get_mut("palisade6").unwrap().flags = vec!["constant".into()];
        t.sets.remove("palisade4");
        t.others.push("map m".into());
        assert_eq!(
            texts(&table_diff(&policy(), Some(&t))),
            [
                "nft-table-flags: nftables table has flags (dormant), which palisade never sets (a dormant table \
                 filters nothing)",
                "set-missing: IPv4 set missing",
                "set-wrong-type: IPv6 set is ipv6_addr flags constant, not a set of IPv6 addresses (plain, or with \
                 flags interval)",
                "nft-chain-wrong-hook: nftables guard chain is type filter hook prerouting priority -150; policy \
                 drop, not type filter hook prerouting priority -150; policy accept",
                "guard-rules-differ: nftables guard chain rules differ in order",
                "nft-extra-object: nftables table holds map m, which palisade does not make",
            ]
        );
        t.chains.remove(CHAIN);
        assert!(table_diff(&policy(), Some(&t)).contains(&Change::NftChainMissing));
    }

    #[test]
    fn members_compare_as_addresses() {
        use crate::observe::nft::Element;
        let mut t = fixture("fresh").unwrap();
        let set = t.sets.get_mut("palisade4").unwrap();
        // 10.0.0.0/8 shown as a range, 10.1.2.3 (inside it) not at all;
        // 198.18.0.1 widened to 198.18.0.0-198.18.0.6.
        set.elements.retain(|e| {
            !matches!(e, Element::Prefix(_)) && *e != Element::Addr("198.18.0.1".parse().unwrap())
        });
        set.elements.push(Element::Range(
            "10.0.0.0".parse().unwrap(),
            "10.255.255.255".parse().unwrap(),
        ));
        set.elements.push(Element::Range(
            "198.18.0.0".parse().unwrap(),
            "198.18.0.6".parse().unwrap(),
        ));
        assert_eq!(
            texts(&table_diff(&policy(), Some(&t))),
            [
                "members-extra: IPv4 set has 4 extra member(s): 198.18.0.0, 198.18.0.2/31, 198.18.0.4/31, 198.18.0.6"
            ]
        );
    }

    #[test]
    fn spans_become_the_networks_that_cover_them() {
        let n = |s: &str| s.parse::<Net>().unwrap();
        let show =
            |f, spans: &[(u128, u128)]| covering(f, spans).iter().map(Net::to_string).collect::<Vec<_>>();
        assert_eq!(show(Family::V4, &[(0, u128::from(u32::MAX))]), ["0.0.0.0/0"]);
        assert_eq!(show(Family::V6, &[(0, u128::MAX)]), ["::/0"]);
        assert_eq!(
            show(Family::V6, &[(u128::MAX, u128::MAX)]),
            ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
        );
        assert_eq!(
            show(Family::V4, &[(1, 6)]),
            ["0.0.0.1", "0.0.0.2/31", "0.0.0.4/31", "0.0.0.6"]
        );
        assert_eq!(
            merged(vec![(5, 9), (0, 4), (20, 30), (21, 22)]),
            [(0, 9), (20, 30)]
        );
        assert_eq!(
            minus(&[(0, 100)], &[(10, 20), (30, 40)]),
            [(0, 9), (21, 29), (41, 100)]
        );
        assert_eq!(minus(&[(0, u128::MAX)], &[(0, u128::MAX)]), []);
        assert_eq!(minus(&[(5, 10)], &[(0, 7)]), [(8, 10)]);
        assert_eq!(nft::bounds(&n("10.0.0.0/8")), (0x0a00_0000, 0x0aff_ffff));
    }

    /// Whether nft can be run in a network namespace of its own here
    /// (root, `unshare`, `nft`): the ruleset there starts empty, and the
    /// host's is never touched.
    fn netns() -> bool {
        let ok = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let here =
            ok(Command::new("nft").arg("--version")) && ok(Command::new("unshare").args(["-n", "true"]));
        if !here {
            eprintln!("not run: needs nft and `unshare -n` (root)");
        }
        here
    }

    /// `script` run by `sh -c` in a new network namespace, with `input` on
    /// its stdin: its stdout, or its stderr as the error.
    fn in_netns(script: &str, input: &str) -> Result<String, String> {
        let mut child = Command::new("unshare")
            .args(["-n", "sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    #[test]
    fn nft_takes_the_replacement_and_gives_back_no_changes() {
        if !netns() {
            return;
        }
        let empty = testing::for_no_hosts(&testing::options("198.18.0.1")).with_members([]);
        let audit = policy().with_mode(FirewallMode::Audit);
        for p in [policy(), empty, audit] {
            in_netns("nft -c -f -", &nft::replace(&p)).unwrap();
            // Twice: the first makes the table, the second replaces it.
            let json = in_netns(
                "t=$(cat) && printf '%s\\n' \"$t\" | nft -f - && printf '%s\\n' \"$t\" | nft -f - && \
                 nft -j list table inet palisade",
                &nft::replace(&p),
            )
            .unwrap();
            let t = parse(&json, "palisade").unwrap();
            assert_eq!(table_diff(&p, t.as_ref()), vec![], "{json}");
        }
    }

    #[test]
    fn nft_refuses_what_check_names_refuses() {
        if !netns() {
            return;
        }
        for (chain, ok) in [
            ("META", false),
            ("lives9", true),
            ("Tcp", false),
            ("9lives", false),
            ("filter", true),
            ("x-y_z", true),
        ] {
            let p = policy_of(&PolicyOptions {
                chain: chain.parse().unwrap(),
                ..options()
            });
            assert_eq!(nft::check_names(&p).is_ok(), ok, "{chain}");
            assert_eq!(in_netns("nft -c -f -", &nft::replace(&p)).is_ok(), ok, "{chain}");
        }
        // Overlapping members, as nft refuses them, never reach it.
        let mut overlap = nft::ruleset(&policy());
        overlap = overlap.replace("10.0.0.0/8,", "10.0.0.0/8, 10.1.2.3,");
        let err = in_netns("nft -c -f -", &overlap).unwrap_err();
        assert!(err.contains("conflicting intervals"), "{err}");
    }
}
