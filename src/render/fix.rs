//! What an apply's change does to a family's chains, as `iptables-restore`
//! lines.
//!
//! Where the guard's jump goes and what an earlier version left in the
//! filter table are decided once, by `diff::plan`, from the tables observe
//! read: the decision plan reports as changes is the one these lines carry
//! out, and the node (which makes the change from the very tables it sent)
//! writes them as they come. Only the boot restore decides on the node
//! (`boot_rules` in apply.sh), since at boot there is no controller.

use crate::policy::{Family, Policy};

/// The jump from a parent chain (mangle PREROUTING) to one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JumpFix {
    /// One jump, the parent's first rule: left as it is.
    Keep,
    /// Delete the jumps there are (each `-D` takes the first left), then
    /// put one at the top.
    Reinsert { delete: usize },
}

impl JumpFix {
    /// The fix for `found`.
    pub(crate) fn of(found: Found) -> JumpFix {
        if found.count == 1 && found.first == Some(1) {
            JumpFix::Keep
        } else {
            JumpFix::Reinsert { delete: found.count }
        }
    }
}

/// The jumps to one of our chains in a parent chain: how many, and the rule
/// number (from 1) of the first. Counted, not listed: rustc 1.95's
/// optimiser made `[1]`, matched on a list of positions, read the first
/// element of an empty list in a release build (a segfault on every node
/// without the jump); with counts there is no element to read. CI runs the
/// unit and lab tests on a release build for this reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) count: usize,
    pub(crate) first: Option<usize>,
}

impl Found {
    /// The rules of `rules` that are exactly `rule`.
    pub(crate) fn in_rules(rules: &[String], rule: &str) -> Found {
        let mut found = Found::default();
        for (i, r) in rules.iter().enumerate() {
            if r == rule {
                found.count += 1;
                found.first = found.first.or(Some(i + 1));
            }
        }
        found
    }
}

/// What versions before the guard alone left in a family's filter table:
/// palisade's INPUT chain and its Docker guard (reached from DOCKER-USER),
/// and the jumps to them. The guard before DNAT drops everything they
/// did, so a change takes them away, after the guard is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OldChains {
    /// Jumps from INPUT to our INPUT chain.
    pub(crate) input_jumps: usize,
    /// Whether our INPUT chain is there.
    pub(crate) chain: bool,
    /// Jumps from DOCKER-USER to the Docker guard.
    pub(crate) docker_jumps: usize,
    /// Whether the Docker guard is there.
    pub(crate) docker_chain: bool,
}

impl OldChains {
    /// Whether there is nothing to take away.
    pub(crate) fn is_empty(self) -> bool {
        self == OldChains::default()
    }
}

/// One family's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FamilyFix {
    /// The jump to the guard before DNAT, from mangle PREROUTING.
    pub(crate) guard: JumpFix,
    /// What goes from the filter table.
    pub(crate) old: OldChains,
}

/// Both families' decisions, as `diff::plan` makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fix {
    pub(crate) v4: FamilyFix,
    pub(crate) v6: FamilyFix,
}

impl Fix {
    /// Nothing to put right in iptables chains: the nftables backend's
    /// (its table is replaced whole, and `change_code` sends no fix).
    pub(crate) const NONE: Fix = {
        let keep = FamilyFix {
            guard: JumpFix::Keep,
            old: OldChains {
                input_jumps: 0,
                chain: false,
                docker_jumps: 0,
                docker_chain: false,
            },
        };
        Fix { v4: keep, v6: keep }
    };

    pub(crate) fn family(&self, family: Family) -> FamilyFix {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// The family's `iptables-restore --noflush` input: in the mangle table,
/// the guard before DNAT written afresh (`:CHAIN` empties one that is
/// there) and its jump, as `fix` says; then, only where an earlier version
/// left them, the filter table's old chains and their jumps taken away.
/// The mangle table commits first, so the guard is up before anything old
/// goes. Everything else in both tables stays.
pub(crate) fn forward(policy: &Policy, family: Family, fix: FamilyFix) -> String {
    let gchain = policy.guard_chain().as_str();
    let mut out = vec!["*mangle".to_owned(), format!(":{gchain} - [0:0]")];
    out.extend(policy.guard_rules(family));
    jump_lines(&mut out, fix.guard, "PREROUTING", gchain);
    out.push("COMMIT".to_owned());
    let old = fix.old;
    if !old.is_empty() {
        out.push("*filter".to_owned());
        for (jumps, parent, chain, there) in [
            (old.input_jumps, "INPUT", policy.chain(), old.chain),
            (
                old.docker_jumps,
                "DOCKER-USER",
                policy.docker_chain(),
                old.docker_chain,
            ),
        ] {
            out.extend((0..jumps).map(|_| format!("-D {parent} -j {chain}")));
            if there {
                out.push(format!("-F {chain}"));
                out.push(format!("-X {chain}"));
            }
        }
        out.push("COMMIT".to_owned());
    }
    out.iter().map(|l| format!("{l}\n")).collect()
}

fn jump_lines(out: &mut Vec<String>, jump: JumpFix, parent: &str, target: &str) {
    if let JumpFix::Reinsert { delete } = jump {
        out.extend((0..delete).map(|_| format!("-D {parent} -j {target}")));
        out.push(format!("-I {parent} 1 -j {target}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing;

    fn policy() -> Policy {
        testing::for_no_hosts(&testing::options("203.0.113.7"))
    }

    fn lines(fix: FamilyFix) -> Vec<String> {
        forward(&policy(), Family::V4, fix)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The guard before DNAT written afresh, and its jump put first in
    /// PREROUTING as `fix.guard` says; no filter table where nothing old is
    /// left.
    #[test]
    fn the_guard_before_dnat_is_written_in_the_mangle_table() {
        let p = policy();
        let fix = |guard| FamilyFix {
            guard,
            old: OldChains::default(),
        };
        let mut want = vec!["*mangle".to_owned(), ":PALISADE-GUARD - [0:0]".to_owned()];
        want.extend(p.guard_rules(Family::V4));
        want.push("COMMIT".to_owned());
        assert_eq!(lines(fix(JumpFix::Keep)), want);
        want.pop();
        want.push("-D PREROUTING -j PALISADE-GUARD".to_owned());
        want.push("-I PREROUTING 1 -j PALISADE-GUARD".to_owned());
        want.push("COMMIT".to_owned());
        assert_eq!(lines(fix(JumpFix::Reinsert { delete: 1 })), want);
    }

    #[test]
    fn jumps_are_deleted_then_put_at_the_top() {
        let found = |rules: &[&str]| {
            let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            Found::in_rules(&rules, "-A PREROUTING -j PALISADE-GUARD")
        };
        let (j, x) = ("-A PREROUTING -j PALISADE-GUARD", "-A PREROUTING -j ACCEPT");
        assert_eq!(
            found(&[]),
            Found {
                count: 0,
                first: None
            }
        );
        assert_eq!(
            found(&[x, j, x, j]),
            Found {
                count: 2,
                first: Some(2)
            }
        );
        assert_eq!(JumpFix::of(found(&[j, x])), JumpFix::Keep);
        assert_eq!(JumpFix::of(found(&[])), JumpFix::Reinsert { delete: 0 });
        assert_eq!(JumpFix::of(found(&[x, x, j])), JumpFix::Reinsert { delete: 1 });
        assert_eq!(JumpFix::of(found(&[j, x, x, j])), JumpFix::Reinsert { delete: 2 });
    }

    /// An earlier version's INPUT chain and Docker guard go after the
    /// guard is in, in the filter table, jumps first.
    #[test]
    fn the_old_chains_go_after_the_guard() {
        let fix = FamilyFix {
            guard: JumpFix::Reinsert { delete: 0 },
            old: OldChains {
                input_jumps: 2,
                chain: true,
                docker_jumps: 1,
                docker_chain: true,
            },
        };
        let all = lines(fix);
        let filter = all.iter().position(|l| l == "*filter").unwrap();
        assert_eq!(all[filter - 1], "COMMIT");
        assert!(all[..filter].contains(&"-I PREROUTING 1 -j PALISADE-GUARD".to_owned()));
        assert_eq!(
            all[filter..],
            [
                "*filter",
                "-D INPUT -j PALISADE",
                "-D INPUT -j PALISADE",
                "-F PALISADE",
                "-X PALISADE",
                "-D DOCKER-USER -j PALISADE-DOCKER",
                "-F PALISADE-DOCKER",
                "-X PALISADE-DOCKER",
                "COMMIT"
            ]
        );
        // A jump left without its chain (another tool deleted the chain
        // cannot happen: iptables refuses), or a chain without its jump.
        let chain_only = FamilyFix {
            guard: JumpFix::Keep,
            old: OldChains {
                chain: true,
                ..OldChains::default()
            },
        };
        let all = lines(chain_only);
        assert_eq!(
            all[all.len() - 4..],
            ["*filter", "-F PALISADE", "-X PALISADE", "COMMIT"]
        );
    }
}
