//! Desired against observed: every difference, as data. Pure.
//!
//! `plan` prints these, `verify` reports them as drift, and `apply` writes
//! nothing when there are none. How a change is worded, for people and in
//! `--json`, is the report's business (`report::changes`).

use crate::net::Net;
use crate::observe::firewall::{AuditSetFacts, FamilyFacts, Observed};
use crate::observe::probe::Backend;
use crate::policy::{Family, FirewallBackend, FirewallMode, Policy};
use crate::render::{self, FamilyFix, Fix, Found, JumpFix, OldChains};

pub(crate) mod nft;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    SetMissing {
        family: Family,
    },
    SetWrongType {
        family: Family,
        found: String,
    },
    MembersMissing {
        family: Family,
        nets: Vec<Net>,
    },
    MembersExtra {
        family: Family,
        nets: Vec<Net>,
    },
    /// The guard before DNAT (mangle PREROUTING) is not there.
    GuardMissing {
        family: Family,
    },
    GuardRulesDiffer {
        family: Family,
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    /// mangle PREROUTING does not jump to the guard: removed, or never put
    /// there.
    GuardJumpMissing {
        family: Family,
    },
    /// Another tool put rules above the jump to the guard.
    GuardJumpNotFirst {
        family: Family,
        position: usize,
    },
    GuardJumpDuplicated {
        family: Family,
        count: usize,
    },
    /// What a version before the guard alone left in the family's filter
    /// table (its INPUT chain, its Docker guard, their jumps), which a
    /// change takes away once the guard is in (`objects` names each).
    OldChainsLeft {
        family: Family,
        objects: Vec<String>,
    },
    PersistMissing,
    PersistStale,
    UnitMissing,
    UnitStale,
    UnitDisabled,
    BackendChanged {
        applied: Backend,
        now: Backend,
    },
    /// Persistence is off, but boot files from an earlier run would restore
    /// an older whitelist at the next boot.
    PersistUnwanted,
    /// An earlier apply was interrupted before it confirmed: the node rolls
    /// it back by itself.
    Unconfirmed {
        /// Seconds left before it does.
        within: u64,
    },
    /// A comment in the family's filter table (or, with `set`, in its set)
    /// holds a newline, whose lines could pose as rules (or members): what
    /// the node has cannot be told for sure, and palisade changes nothing
    /// there (see `FamilyFacts::forged_rules`).
    Forged {
        family: Family,
        set: bool,
    },
    /// The nftables backend's table is not there.
    NftTableMissing,
    /// With the nftables backend: palisade's set, chains or jumps of the
    /// iptables backend, in this family, which a change takes away once
    /// the table is in (`objects` names each).
    IptablesLeft {
        family: Family,
        objects: Vec<String>,
    },
    /// With the iptables backend: the nftables backend applied last (its
    /// boot file says so), so its table is there, which a change takes
    /// away once the iptables guard is in.
    NftTableLeft {
        table: String,
    },
    /// A table of palisade's name that palisade did not make (no rule of
    /// its guard chain carries the mark): palisade refuses to replace it.
    NftTableForeign,
    /// palisade's table has flags (`dormant` switches it off whole).
    NftTableFlags {
        flags: Vec<String>,
    },
    /// The family's set in palisade's table is not a set of addresses of
    /// the family, plain or an interval set (render::nft::SetShape).
    NftSetWrongType {
        family: Family,
        found: String,
    },
    /// palisade's table has no guard chain.
    NftChainMissing,
    /// The guard chain is not the base chain palisade makes (type, hook,
    /// priority or policy differ).
    NftChainWrongHook {
        found: String,
    },
    /// The guard chain's rules (one chain for both families).
    NftRulesDiffer {
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    /// A chain, set or other object in palisade's table that palisade does
    /// not make (`chain x`, `map m`).
    NftExtraObject {
        what: String,
    },
    /// The guard is in the other mode (audit: records what it would drop;
    /// enforce: drops it), and otherwise as wanted.
    ModeDiffers {
        want: FirewallMode,
        found: FirewallMode,
    },
    /// Audit mode's set of the family is missing, or not of the type, bound
    /// and timeout palisade makes it with (`found` says what it is).
    AuditSetDiffers {
        family: Family,
        found: String,
    },
}

impl Change {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Change::SetMissing { .. } => "set-missing",
            Change::SetWrongType { .. } => "set-wrong-type",
            Change::MembersMissing { .. } => "members-missing",
            Change::MembersExtra { .. } => "members-extra",
            Change::GuardMissing { .. } => "guard-missing",
            Change::GuardRulesDiffer { .. } => "guard-rules-differ",
            Change::GuardJumpMissing { .. } => "guard-jump-missing",
            Change::GuardJumpNotFirst { .. } => "guard-jump-not-first",
            Change::GuardJumpDuplicated { .. } => "guard-jump-duplicated",
            Change::OldChainsLeft { .. } => "old-chains-left",
            Change::PersistMissing => "persist-missing",
            Change::PersistStale => "persist-stale",
            Change::UnitMissing => "unit-missing",
            Change::UnitStale => "unit-stale",
            Change::UnitDisabled => "unit-disabled",
            Change::PersistUnwanted => "persist-unwanted",
            Change::BackendChanged { .. } => "backend-changed",
            Change::Unconfirmed { .. } => "unconfirmed",
            Change::Forged { .. } => "forged",
            Change::NftTableMissing => "nft-table-missing",
            Change::IptablesLeft { .. } => "iptables-left",
            Change::NftTableLeft { .. } => "nft-table-left",
            Change::NftTableForeign => "nft-table-foreign",
            Change::NftTableFlags { .. } => "nft-table-flags",
            Change::NftSetWrongType { .. } => "set-wrong-type",
            Change::NftChainMissing => "guard-missing",
            Change::NftChainWrongHook { .. } => "nft-chain-wrong-hook",
            Change::NftRulesDiffer { .. } => "guard-rules-differ",
            Change::NftExtraObject { .. } => "nft-extra-object",
            Change::ModeDiffers { .. } => "mode-differs",
            Change::AuditSetDiffers { .. } => "audit-set-differs",
        }
    }

    /// Whether the change is in palisade's sets, chains or table (not its
    /// boot files, nor a pending change).
    pub(crate) fn in_table(&self) -> bool {
        !matches!(
            self,
            Change::PersistMissing
                | Change::PersistStale
                | Change::UnitMissing
                | Change::UnitStale
                | Change::UnitDisabled
                | Change::PersistUnwanted
                | Change::BackendChanged { .. }
                | Change::Unconfirmed { .. }
        )
    }

    pub(crate) fn family(&self) -> Option<Family> {
        match self {
            Change::SetMissing { family }
            | Change::SetWrongType { family, .. }
            | Change::MembersMissing { family, .. }
            | Change::MembersExtra { family, .. }
            | Change::GuardMissing { family }
            | Change::GuardRulesDiffer { family, .. }
            | Change::GuardJumpMissing { family }
            | Change::GuardJumpNotFirst { family, .. }
            | Change::GuardJumpDuplicated { family, .. }
            | Change::OldChainsLeft { family, .. }
            | Change::Forged { family, .. }
            | Change::IptablesLeft { family, .. }
            | Change::NftSetWrongType { family, .. }
            | Change::AuditSetDiffers { family, .. } => Some(*family),
            _ => None,
        }
    }
}

/// Every difference between what the policy wants and what a node has.
pub(crate) fn diff(policy: &Policy, observed: &Observed) -> Vec<Change> {
    plan(policy, observed).0
}

/// Every difference, and how a change puts the chains right: one decision,
/// which `plan` reports (the changes) and `apply` makes (the fix, rendered
/// by `render::change_code`), so the two cannot disagree.
pub(crate) fn plan(policy: &Policy, observed: &Observed) -> (Vec<Change>, Fix) {
    if policy.backend() == FirewallBackend::Auto {
        // As the node chose (iptables, where it said nothing).
        let chosen = observed
            .chosen
            .as_ref()
            .map_or(FirewallBackend::Iptables, |c| c.backend);
        return plan(&policy.with_backend(chosen), observed);
    }
    let mut out = Vec::new();
    let fix = match policy.backend() {
        FirewallBackend::Iptables | FirewallBackend::Auto => {
            let fix = Fix {
                v4: family_diff(policy, Family::V4, observed.family(Family::V4), &mut out),
                v6: family_diff(policy, Family::V6, observed.family(Family::V6), &mut out),
            };
            // The iptables read never lists nftables tables (a process on
            // every read): the boot file says where the table is.
            if observed.applied_backend == Some(Backend::Nftables) {
                out.push(Change::NftTableLeft {
                    table: render::nft::table_name(policy),
                });
            }
            fix
        }
        // The table is replaced whole: nothing to decide but whether.
        FirewallBackend::Nftables => {
            out.extend(nft::table_diff(policy, observed.nft.as_ref()));
            for family in Family::BOTH {
                iptables_left(policy, family, observed.family(family), &mut out);
            }
            Fix::NONE
        }
    };
    if policy.persist() {
        match &observed.restore_digest {
            None => out.push(Change::PersistMissing),
            Some(d) if *d != render::restore_digest(policy) => out.push(Change::PersistStale),
            Some(_) => {}
        }
        if observed.systemd {
            match &observed.unit_digest {
                None => out.push(Change::UnitMissing),
                Some(d) if *d != render::unit_digest() => out.push(Change::UnitStale),
                Some(_) if !observed.unit_enabled => out.push(Change::UnitDisabled),
                Some(_) => {}
            }
        }
    } else if observed.restore_digest.is_some() || observed.unit_digest.is_some() {
        out.push(Change::PersistUnwanted);
    }
    if let Some(within) = observed.pending_rollback {
        out.push(Change::Unconfirmed { within });
    }
    // The iptables flavour the node runs changed (the other backend's
    // objects are IptablesLeft's business).
    if let (Some(applied), Some(now)) = (observed.applied_backend, observed.backend)
        && applied != now
        && applied != Backend::Nftables
        && now != Backend::Nftables
    {
        out.push(Change::BackendChanged { applied, now });
    }
    (out, fix)
}

/// The members the set lacks and those it has more, pushed to `out` as the
/// changes that say so (none for an empty list).
fn members_differ(family: Family, missing: Vec<Net>, extra: Vec<Net>, out: &mut Vec<Change>) {
    if !missing.is_empty() {
        out.push(Change::MembersMissing {
            family,
            nets: missing,
        });
    }
    if !extra.is_empty() {
        out.push(Change::MembersExtra { family, nets: extra });
    }
}

/// With the nftables backend: what the iptables backend left in `family`,
/// pushed to `out` as one [`Change::IptablesLeft`] (and as
/// [`Change::Forged`] when those tables cannot be read for sure).
fn iptables_left(policy: &Policy, family: Family, facts: &FamilyFacts, out: &mut Vec<Change>) {
    let mut objects = Vec::new();
    if facts.set.is_some() {
        objects.push(format!("set {}", policy.set(family)));
    }
    if facts.prerouting.contains(&policy.guard_jump()) {
        objects.push(format!("jump mangle PREROUTING -> {}", policy.guard_chain()));
    }
    if facts.guard.is_some() {
        objects.push(format!("chain {}", policy.guard_chain()));
    }
    objects.extend(old_objects(policy, &old_chains(policy, facts)));
    if objects.is_empty() {
        return;
    }
    forged(family, facts, out);
    out.push(Change::IptablesLeft { family, objects });
}

/// What a version before the guard alone left in the family's filter
/// table.
fn old_chains(policy: &Policy, facts: &FamilyFacts) -> OldChains {
    let docker_user = facts.docker_user.as_deref().unwrap_or_default();
    OldChains {
        input_jumps: Found::in_rules(&facts.input, &policy.jump()).count,
        chain: facts.chain.is_some(),
        docker_jumps: Found::in_rules(docker_user, &policy.docker_jump()).count,
        docker_chain: facts.docker_chain.is_some(),
    }
}

/// `old`, named object by object, as plan and verify list them.
fn old_objects(policy: &Policy, old: &OldChains) -> Vec<String> {
    let mut objects = Vec::new();
    if old.input_jumps > 0 {
        objects.push(format!("jump INPUT -> {}", policy.chain()));
    }
    if old.docker_jumps > 0 {
        objects.push(format!("jump DOCKER-USER -> {}", policy.docker_chain()));
    }
    for (there, name) in [
        (old.chain, policy.chain()),
        (old.docker_chain, policy.docker_chain()),
    ] {
        if there {
            objects.push(format!("chain {name}"));
        }
    }
    objects
}

/// A comment in the family's tables (or set) that holds a newline, pushed
/// to `out` as [`Change::Forged`].
fn forged(family: Family, facts: &FamilyFacts, out: &mut Vec<Change>) {
    if facts.forged_rules {
        out.push(Change::Forged { family, set: false });
    }
    if facts.forged_set {
        out.push(Change::Forged { family, set: true });
    }
}

/// The family's differences, pushed to `out`, and the fix for the guard's
/// jump and for what an earlier version left in the filter table.
fn family_diff(policy: &Policy, family: Family, facts: &FamilyFacts, out: &mut Vec<Change>) -> FamilyFix {
    forged(family, facts, out);
    let want_kind = format!("hash:net family {}", family.ipset_family());
    match &facts.set {
        None => out.push(Change::SetMissing { family }),
        Some(set) if set.kind != want_kind => out.push(Change::SetWrongType {
            family,
            found: set.kind.clone(),
        }),
        Some(set) => {
            let want: Vec<Net> = policy.members(family).copied().collect();
            let missing: Vec<Net> = want
                .iter()
                .filter(|m| !set.members.contains(m))
                .copied()
                .collect();
            let extra: Vec<Net> = set
                .members
                .iter()
                .filter(|m| !want.contains(m))
                .copied()
                .collect();
            members_differ(family, missing, extra, out);
        }
    }

    // The guard before DNAT: written afresh by every change; its jump kept
    // first in mangle PREROUTING, above what kube-proxy, Calico, Cilium,
    // Docker or firewalld put there.
    match &facts.guard {
        None => out.push(Change::GuardMissing { family }),
        // The guard as the other mode writes it: a switch of mode, said
        // once for the node (as on the nftables backend).
        Some(rules)
            if *rules != policy.guard_rules(family)
                && *rules == policy.with_mode(policy.mode().other()).guard_rules(family) =>
        {
            let switch = Change::ModeDiffers {
                want: policy.mode(),
                found: policy.mode().other(),
            };
            if !out.contains(&switch) {
                out.push(switch);
            }
        }
        Some(rules) => {
            if let Some((missing, unexpected)) = rules_diff(&policy.guard_rules(family), rules) {
                out.push(Change::GuardRulesDiffer {
                    family,
                    missing,
                    unexpected,
                });
            }
        }
    }
    if policy.mode() == FirewallMode::Audit {
        audit_set_diff(policy, family, facts.audit.as_ref(), out);
    }
    let found = Found::in_rules(&facts.prerouting, &policy.guard_jump());
    match (found.count, found.first) {
        (0, _) => out.push(Change::GuardJumpMissing { family }),
        (1, Some(1)) => {}
        (1, Some(position)) => out.push(Change::GuardJumpNotFirst { family, position }),
        (count, _) => out.push(Change::GuardJumpDuplicated { family, count }),
    }

    // An earlier version's INPUT chain and Docker guard: the guard drops
    // all they did, so they go, in the same protected change.
    let old = old_chains(policy, facts);
    if !old.is_empty() {
        out.push(Change::OldChainsLeft {
            family,
            objects: old_objects(policy, &old),
        });
    }
    FamilyFix {
        guard: JumpFix::of(found),
        old,
    }
}

/// Audit mode's set of `family` on the iptables backend (read only when
/// the guard records in it): its type, bound, timeout and counters (what
/// it recorded is the node's, never compared).
fn audit_set_diff(policy: &Policy, family: Family, set: Option<&AuditSetFacts>, out: &mut Vec<Change>) {
    let found = match set {
        None => "missing".to_owned(),
        Some(set) => {
            let kind = format!("hash:ip,port family {}", family.ipset_family());
            if set.kind == kind
                && set.maxelem == Some(u64::from(policy.audit_size()))
                && set.timeout == Some(crate::render::nft::AUDIT_TIMEOUT)
                && set.counters
            {
                return;
            }
            format!(
                "{} maxelem {} timeout {}",
                set.kind,
                set.maxelem.map_or("none".to_owned(), |n| n.to_string()),
                set.timeout.map_or("none".to_owned(), |n| format!("{n}s"))
            )
        }
    };
    out.push(Change::AuditSetDiffers { family, found });
}

/// None when equal (same rules, same order); else what is missing and what
/// is unexpected (both empty when only the order differs).
fn rules_diff(want: &[String], have: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    if want == have {
        return None;
    }
    let missing = want.iter().filter(|r| !have.contains(r)).cloned().collect();
    let unexpected = have.iter().filter(|r| !want.contains(r)).cloned().collect();
    Some((missing, unexpected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::firewall::parse;
    use crate::policy::{PolicyOptions, testing};

    const APPLIED: &str = include_str!("../../tests/fixtures/observe/applied-guard.txt");
    /// A node as the versions before the guard alone left it: their INPUT
    /// chain and Docker guard beside the guard.
    const OLD_LAYOUT: &str = include_str!("../../tests/fixtures/observe/applied-old-layout.txt");

    /// The options of [`policy`].
    fn options() -> PolicyOptions {
        PolicyOptions {
            extra: vec!["192.0.2.0/24".parse().unwrap()],
            resolvers: vec!["8.8.8.8".parse().unwrap()],
            interfaces: vec!["docker0".parse().unwrap()],
            ..testing::options("198.18.0.1")
        }
    }

    /// The policy the fixture was captured with.
    fn policy() -> Policy {
        testing::for_sample_hosts(&options())
    }

    /// The fixture as captured on a real node, with the digest of today's
    /// restore script: the template changes, the capture does not. (That the
    /// node's `sha256sum` equals `render::restore_digest` is proven by the lab
    /// tests: apply, then verify finds nothing.)
    fn applied() -> Observed {
        let mut o = parse(APPLIED).unwrap();
        assert_eq!(o.restore_digest.as_ref().map(String::len), Some(64));
        o.restore_digest = Some(render::restore_digest(&policy()));
        o
    }

    fn kinds(changes: &[Change]) -> Vec<&'static str> {
        changes.iter().map(Change::kind).collect()
    }

    /// On the iptables backend, a switch of mode is one change for the
    /// node, not a pile of rules; audit mode's set, missing or of another
    /// bound, is a change of its own; what it recorded never is.
    #[test]
    fn a_switch_of_mode_is_one_change_on_iptables() {
        let enforce = policy();
        let audit_of = |size| {
            testing::for_sample_hosts(&PolicyOptions {
                mode: FirewallMode::Audit,
                audit_size: size,
                ..options()
            })
        };
        let audit = audit_of(8);
        let in_table = |changes: Vec<Change>| -> Vec<String> {
            changes
                .into_iter()
                .filter(Change::in_table)
                .map(|c| format!("{}: {c}", c.kind()))
                .collect()
        };
        // The node as audit mode leaves it: the guard records, the sets hold
        // what they recorded.
        let mut node = applied();
        let sets = "|create palisade4-aud hash:ip,port family inet hashsize 1024 maxelem 8 timeout 3600 counters comment bucketsize 12 initval 0x1\n\
                    |add palisade4-aud 198.18.0.2,tcp:9100 timeout 3500 packets 3 bytes 180\n";
        let facts = parse_audit_text(sets);
        for family in Family::BOTH {
            let f = match family {
                Family::V4 => &mut node.v4,
                Family::V6 => &mut node.v6,
            };
            f.guard = Some(audit.guard_rules(family));
            let mut a = facts.clone();
            a.kind = format!("hash:ip,port family {}", family.ipset_family());
            f.audit = Some(a);
        }
        assert_eq!(in_table(diff(&audit, &node)), Vec::<String>::new());
        let changes = diff(&enforce, &node);
        assert_eq!(
            changes.iter().filter(|c| c.in_table()).collect::<Vec<_>>(),
            [&Change::ModeDiffers {
                want: FirewallMode::Enforce,
                found: FirewallMode::Audit
            }]
        );
        // Another bound.
        let bigger = audit_of(16);
        assert_eq!(
            kinds(
                &diff(&bigger, &node)
                    .into_iter()
                    .filter(Change::in_table)
                    .collect::<Vec<_>>()
            ),
            ["audit-set-differs", "audit-set-differs"]
        );
        // From enforce: the switch, and both sets to make.
        let changes: Vec<Change> = diff(&audit, &applied())
            .into_iter()
            .filter(Change::in_table)
            .collect();
        assert_eq!(
            changes,
            [
                Change::ModeDiffers {
                    want: FirewallMode::Audit,
                    found: FirewallMode::Enforce
                },
                Change::AuditSetDiffers {
                    family: Family::V4,
                    found: "missing".into()
                },
                Change::AuditSetDiffers {
                    family: Family::V6,
                    found: "missing".into()
                },
            ]
        );
    }

    /// An audit set as a node says it (section `audit-v4`).
    fn parse_audit_text(lines: &str) -> crate::observe::firewall::AuditSetFacts {
        let text = format!("==> audit-v4\n{lines}==> input-v4\n==> input-v6\n==> end\n");
        let o = crate::observe::firewall::with_chains(&Observed::default(), &text).unwrap();
        o.v4.audit.unwrap()
    }

    #[test]
    fn a_node_just_applied_has_no_changes() {
        assert_eq!(diff(&policy(), &applied()), vec![]);
        let (_, fix) = plan(&policy(), &applied());
        assert_eq!(fix, Fix::NONE);
    }

    /// A node of an earlier version: the INPUT chain, the Docker guard
    /// and the jumps to them are named and taken away, and nothing else
    /// changes.
    #[test]
    fn what_an_earlier_version_left_goes() {
        let mut o = parse(OLD_LAYOUT).unwrap();
        o.restore_digest = Some(render::restore_digest(&policy()));
        let (changes, fix) = plan(&policy(), &o);
        assert_eq!(kinds(&changes), ["old-chains-left", "old-chains-left"]);
        assert_eq!(
            changes[0].to_string(),
            "IPv4 chains of an earlier version, which the guard before DNAT replaces: \
             jump INPUT -> PALISADE, jump DOCKER-USER -> PALISADE-DOCKER, chain PALISADE, chain PALISADE-DOCKER"
        );
        let old = OldChains {
            input_jumps: 1,
            chain: true,
            docker_jumps: 1,
            docker_chain: true,
        };
        assert_eq!(
            fix.v4,
            FamilyFix {
                guard: JumpFix::Keep,
                old
            }
        );
        assert_eq!(
            fix.v6,
            FamilyFix {
                guard: JumpFix::Keep,
                old: OldChains {
                    docker_jumps: 0,
                    docker_chain: false,
                    ..old
                }
            }
        );
        // A jump another tool duplicated goes as often as it is there.
        o.v4.input.push("-A INPUT -j PALISADE".into());
        assert_eq!(plan(&policy(), &o).1.v4.old.input_jumps, 2);
    }

    /// The guard before DNAT: a jump pushed down, duplicated or removed by
    /// another tool is named and put back first; a guard with other rules
    /// is named and written afresh; a node without one gets it.
    #[test]
    fn the_guard_before_dnat_is_kept_first_and_whole() {
        let jump = "-A PREROUTING -j PALISADE-GUARD".to_owned();
        let other = "-A PREROUTING -j cali-PREROUTING".to_owned();
        let cases = [
            (
                vec![other.clone()],
                "guard-jump-missing",
                JumpFix::Reinsert { delete: 0 },
            ),
            (
                vec![other.clone(), jump.clone()],
                "guard-jump-not-first",
                JumpFix::Reinsert { delete: 1 },
            ),
            (
                vec![jump.clone(), other.clone(), jump.clone()],
                "guard-jump-duplicated",
                JumpFix::Reinsert { delete: 2 },
            ),
            (vec![jump.clone(), other.clone()], "", JumpFix::Keep),
        ];
        for (prerouting, kind, want) in cases {
            let mut o = applied();
            o.v6.prerouting = prerouting;
            let (changes, fix) = plan(&policy(), &o);
            assert_eq!(kinds(&changes), if kind.is_empty() { vec![] } else { vec![kind] });
            assert_eq!(fix.v6.guard, want, "{kind}");
            assert_eq!(fix.v4, Fix::NONE.v4);
        }
        let mut o = applied();
        o.v4.guard.as_mut().unwrap().pop();
        let changes = diff(&policy(), &o);
        assert_eq!(kinds(&changes), ["guard-rules-differ"]);
        assert_eq!(
            changes[0].to_string(),
            "IPv4 guard before DNAT rules differ; missing: -A PALISADE-GUARD -j DROP"
        );
        o.v4.guard = None;
        assert_eq!(kinds(&diff(&policy(), &o)), ["guard-missing"]);
        // An open port is matched as the client connected to it: before
        // DNAT, the published port.
        let mut p = policy();
        p.open_port("tcp/30080".parse().unwrap());
        assert!(
            p.guard_rules(Family::V4)
                .contains(&"-A PALISADE-GUARD -p tcp -m tcp --dport 30080 -j RETURN".to_owned())
        );
    }

    #[test]
    fn an_untouched_node_needs_everything() {
        let mut o = Observed::default();
        o.v4.input = vec!["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT".into()];
        let changes = diff(&policy(), &o);
        assert_eq!(
            kinds(&changes),
            [
                "set-missing",
                "guard-missing",
                "guard-jump-missing",
                "set-missing",
                "guard-missing",
                "guard-jump-missing",
                "persist-missing"
            ]
        );
    }

    #[test]
    fn hand_edits_are_each_named() {
        let mut o = applied();
        let gone: Net = "10.100.5.21".parse().unwrap();
        o.v4.set.as_mut().unwrap().members.remove(&gone);
        o.v4.set
            .as_mut()
            .unwrap()
            .members
            .insert("6.6.6.6".parse().unwrap());
        o.v4.guard
            .as_mut()
            .unwrap()
            .push("-A PALISADE-GUARD -j RETURN".into());
        o.v6.prerouting
            .insert(0, "-A PREROUTING -p tcp -m tcp --dport 80 -j ACCEPT".into());
        o.restore_digest = Some("0".repeat(64));
        let changes = diff(&policy(), &o);
        let text: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            text,
            [
                "IPv4 set lacks 1 member(s): 10.100.5.21",
                "IPv4 set has 1 extra member(s): 6.6.6.6",
                "IPv4 guard before DNAT rules differ; unexpected: -A PALISADE-GUARD -j RETURN",
                "IPv6 mangle PREROUTING jump to the guard is rule 2, not rule 1",
                "boot restore script is out of date",
            ]
        );
    }

    #[test]
    fn reordered_rules() {
        let mut o = applied();
        o.v4.guard.as_mut().unwrap().swap(0, 1);
        let changes = diff(&policy(), &o);
        assert_eq!(kinds(&changes), ["guard-rules-differ"]);
        assert_eq!(
            changes[0].to_string(),
            "IPv4 guard before DNAT rules differ in order"
        );
    }

    #[test]
    fn boot_files_are_unwanted_when_persistence_is_off() {
        let p = testing::for_sample_hosts(&PolicyOptions {
            persist: false,
            ..options()
        });
        assert_eq!(kinds(&diff(&p, &applied())), ["persist-unwanted"]);
        let mut o = applied();
        o.restore_digest = None;
        assert_eq!(diff(&p, &o), vec![]);
    }

    #[test]
    fn backend_and_systemd_persistence() {
        let mut o = applied();
        o.backend = Some(Backend::Legacy);
        o.systemd = true;
        o.unit_digest = Some(render::unit_digest());
        o.unit_enabled = false;
        let changes = diff(&policy(), &o);
        assert_eq!(kinds(&changes), ["unit-disabled", "backend-changed"]);
        assert_eq!(
            changes[1].to_string(),
            "iptables backend changed: applied with nf_tables, the node now uses legacy"
        );
        let json = serde_json::to_value(&changes[0]).unwrap();
        assert_eq!(json["kind"], "unit-disabled");
    }

    /// The nftables backend applied last (its boot file says so): the
    /// iptables backend names its table, which the change takes away; the
    /// iptables objects are planned as on any node. Not on nftables, whose
    /// own table it is, nor once the boot file says iptables.
    #[test]
    fn the_way_back_names_the_nftables_table() {
        let mut o = applied();
        o.applied_backend = Some(Backend::Nftables);
        let changes = diff(&policy(), &o);
        assert_eq!(kinds(&changes), ["nft-table-left"]);
        assert_eq!(
            changes[0],
            Change::NftTableLeft {
                table: "palisade".into()
            }
        );
        assert!(changes[0].in_table() && changes[0].family().is_none());
        assert!(
            changes[0]
                .to_string()
                .starts_with("nftables table inet palisade of palisade's")
        );
        let nft = policy().with_backend(FirewallBackend::Nftables);
        assert!(!kinds(&diff(&nft, &o)).contains(&"nft-table-left"));
        o.applied_backend = Some(Backend::NfTables);
        assert_eq!(diff(&policy(), &o), vec![]);
    }
}
