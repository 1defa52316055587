//! What an apply's change does to a family's chains, as `iptables-restore`
//! lines.
//!
//! Where the jumps go and what becomes of the Docker guard are decided once,
//! by `diff::plan`, from the tables observe read: the decision plan reports
//! as changes is the one these lines carry out, and the node (which makes
//! the change from the very tables it sent) writes them as they come. Only
//! the boot restore decides on the node (`boot_rules` in apply.sh), since at
//! boot there is no controller, and Docker has not made its chain yet.

use crate::policy::{Family, Policy};

/// The jump from a parent chain (INPUT, DOCKER-USER) to one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Jump {
    /// One jump, the parent's first rule: left as it is.
    Keep,
    /// Delete the jumps there are (each `-D` takes the first left), then
    /// put one at the top.
    Reinsert { delete: usize },
}

impl Jump {
    /// The fix for `found`.
    pub(crate) fn of(found: Found) -> Jump {
        if found.count == 1 && found.first == Some(1) {
            Jump::Keep
        } else {
            Jump::Reinsert { delete: found.count }
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

/// The Docker guard: our Docker chain, jumped to from the top of Docker's
/// DOCKER-USER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Docker {
    /// Not wanted, and not there.
    None,
    /// Wanted, and DOCKER-USER is there: the chain written afresh and its
    /// jump put right.
    Guard(Jump),
    /// There, and not wanted (or DOCKER-USER is gone): the jumps to it
    /// deleted, and the chain.
    Drop { jumps: usize },
}

impl Docker {
    /// The word the node's undo is written for (apply.sh `prepare`).
    pub(crate) fn word(self) -> &'static str {
        match self {
            Docker::None => "none",
            Docker::Guard(_) => "guard",
            Docker::Drop { .. } => "drop",
        }
    }
}

/// One family's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FamilyFix {
    pub(crate) jump: Jump,
    pub(crate) docker: Docker,
    /// The jump to the guard before DNAT, from mangle PREROUTING.
    pub(crate) guard: Jump,
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
            jump: Jump::Keep,
            docker: Docker::None,
            guard: Jump::Keep,
        };
        Fix { v4: keep, v6: keep }
    };
}

impl Fix {
    pub(crate) fn family(&self, family: Family) -> FamilyFix {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// The family's `iptables-restore --noflush` input: our chain written
/// afresh (`:CHAIN` empties one that is there), its jump, and the Docker
/// guard, as `fix` says; then, in the mangle table, the guard before DNAT
/// written afresh and its jump. Everything else in both tables stays.
pub(crate) fn forward(policy: &Policy, family: Family, fix: FamilyFix) -> String {
    let mut out = vec!["*filter".to_owned(), format!(":{} - [0:0]", policy.chain)];
    out.extend(policy.rules(family));
    jump_lines(&mut out, fix.jump, "INPUT", policy.chain.as_str());
    let dchain = policy.docker_chain.as_str();
    match fix.docker {
        Docker::None => {}
        Docker::Guard(jump) => {
            out.push(format!(":{dchain} - [0:0]"));
            out.extend(policy.docker_rules(family));
            jump_lines(&mut out, jump, "DOCKER-USER", dchain);
        }
        Docker::Drop { jumps } => {
            out.extend((0..jumps).map(|_| format!("-D DOCKER-USER -j {dchain}")));
            out.push(format!("-F {dchain}"));
            out.push(format!("-X {dchain}"));
        }
    }
    out.push("COMMIT".to_owned());
    let gchain = policy.guard_chain.as_str();
    out.push("*mangle".to_owned());
    out.push(format!(":{gchain} - [0:0]"));
    out.extend(policy.guard_rules(family));
    jump_lines(&mut out, fix.guard, "PREROUTING", gchain);
    out.push("COMMIT".to_owned());
    out.iter().map(|l| format!("{l}\n")).collect()
}

fn jump_lines(out: &mut Vec<String>, jump: Jump, parent: &str, target: &str) {
    if let Jump::Reinsert { delete } = jump {
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

    /// The lines after our chain's own rules.
    fn tail(fix: FamilyFix) -> Vec<String> {
        let p = policy();
        let text = forward(&p, Family::V4, fix);
        let head: Vec<String> = ["*filter".to_owned(), ":PALISADE - [0:0]".to_owned()]
            .into_iter()
            .chain(p.rules(Family::V4))
            .collect();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(lines[..head.len()], head[..], "{text}");
        assert!(text.ends_with("COMMIT\n"), "{text}");
        let end = lines.iter().position(|l| l == "COMMIT").unwrap();
        lines[head.len()..end].to_vec()
    }

    /// The mangle table's part: the guard before DNAT written afresh, and
    /// its jump put first in PREROUTING as `fix.guard` says.
    #[test]
    fn the_guard_before_dnat_is_written_in_the_mangle_table() {
        let p = policy();
        let mangle = |guard| {
            let fix = FamilyFix {
                jump: Jump::Keep,
                docker: Docker::None,
                guard,
            };
            let text = forward(&p, Family::V4, fix);
            let (_, m) = text.split_once("COMMIT\n").unwrap();
            m.lines().map(str::to_owned).collect::<Vec<_>>()
        };
        let mut want = vec!["*mangle".to_owned(), ":PALISADE-GUARD - [0:0]".to_owned()];
        want.extend(p.guard_rules(Family::V4));
        want.push("COMMIT".to_owned());
        assert_eq!(mangle(Jump::Keep), want);
        want.pop();
        want.push("-D PREROUTING -j PALISADE-GUARD".to_owned());
        want.push("-I PREROUTING 1 -j PALISADE-GUARD".to_owned());
        want.push("COMMIT".to_owned());
        assert_eq!(mangle(Jump::Reinsert { delete: 1 }), want);
    }

    #[test]
    fn jumps_are_deleted_then_put_at_the_top() {
        let found = |rules: &[&str]| {
            let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            Found::in_rules(&rules, "-A INPUT -j PALISADE")
        };
        let (j, x) = ("-A INPUT -j PALISADE", "-A INPUT -j ACCEPT");
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
        assert_eq!(Jump::of(found(&[j, x])), Jump::Keep);
        assert_eq!(Jump::of(found(&[])), Jump::Reinsert { delete: 0 });
        assert_eq!(Jump::of(found(&[x, x, j])), Jump::Reinsert { delete: 1 });
        assert_eq!(Jump::of(found(&[j, x, x, j])), Jump::Reinsert { delete: 2 });
        let keep = FamilyFix {
            jump: Jump::Keep,
            docker: Docker::None,
            guard: Jump::Keep,
        };
        assert!(tail(keep).is_empty());
        let two = FamilyFix {
            jump: Jump::Reinsert { delete: 2 },
            docker: Docker::None,
            guard: Jump::Keep,
        };
        assert_eq!(
            tail(two),
            [
                "-D INPUT -j PALISADE",
                "-D INPUT -j PALISADE",
                "-I INPUT 1 -j PALISADE"
            ]
        );
    }

    #[test]
    fn the_docker_guard_is_written_or_dropped() {
        let p = policy();
        let guard = FamilyFix {
            jump: Jump::Keep,
            docker: Docker::Guard(Jump::Reinsert { delete: 1 }),
            guard: Jump::Keep,
        };
        let mut want = vec![":PALISADE-DOCKER - [0:0]".to_owned()];
        want.extend(p.docker_rules(Family::V4));
        want.push("-D DOCKER-USER -j PALISADE-DOCKER".to_owned());
        want.push("-I DOCKER-USER 1 -j PALISADE-DOCKER".to_owned());
        assert_eq!(tail(guard), want);
        assert_eq!(guard.docker.word(), "guard");

        let drop = FamilyFix {
            jump: Jump::Reinsert { delete: 0 },
            docker: Docker::Drop { jumps: 1 },
            guard: Jump::Keep,
        };
        assert_eq!(
            tail(drop),
            [
                "-I INPUT 1 -j PALISADE",
                "-D DOCKER-USER -j PALISADE-DOCKER",
                "-F PALISADE-DOCKER",
                "-X PALISADE-DOCKER"
            ]
        );
        assert_eq!(drop.docker.word(), "drop");
        assert_eq!(Docker::None.word(), "none");
    }
}
