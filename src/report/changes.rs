//! How a change is worded: one sentence for `--json`'s `message` and for
//! errors, and a diff (`+` what apply adds, `-` what it takes away, `~` what
//! it changes in place) for the tables of plan and verify. `diff` only
//! finds the changes; the words are here.

use std::fmt;

use serde::Serialize;

use super::colour::{Paint, Tone};
use super::terminal::escape;
use crate::diff::Change;
use crate::observe::probe::Backend;
use crate::policy::FirewallMode;

/// Lists longer than this are cut short in messages and diffs (JSON keeps
/// them all).
const SHOWN: usize = 8;

/// The addresses or rules a change is about, for `--json`.
fn items(change: &Change) -> Vec<String> {
    match change {
        Change::MembersMissing { nets, .. } | Change::MembersExtra { nets, .. } => {
            nets.iter().map(|n| n.to_string()).collect()
        }
        Change::IptablesLeft { objects, .. } | Change::OldChainsLeft { objects, .. } => objects.clone(),
        Change::GuardRulesDiffer {
            missing, unexpected, ..
        }
        | Change::NftRulesDiffer { missing, unexpected } => missing
            .iter()
            .map(|r| format!("missing: {r}"))
            .chain(unexpected.iter().map(|r| format!("unexpected: {r}")))
            .collect(),
        _ => Vec::new(),
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let mut out: Vec<String> = items.iter().take(SHOWN).map(|i| i.to_string()).collect();
    if items.len() > SHOWN {
        out.push(format!("and {} more", items.len() - SHOWN));
    }
    out.join(", ")
}

/// `WHAT rules differ; missing: ...; unexpected: ...`, or `... in order`
/// when only their order does.
fn rules_differ(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    missing: &[String],
    unexpected: &[String],
) -> fmt::Result {
    write!(f, "{what} rules differ")?;
    if !missing.is_empty() {
        write!(f, "; missing: {}", list(missing))?;
    }
    if !unexpected.is_empty() {
        write!(f, "; unexpected: {}", list(unexpected))?;
    }
    if missing.is_empty() && unexpected.is_empty() {
        write!(f, " in order")?;
    }
    Ok(())
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::SetMissing { family } => write!(f, "{family} set missing"),
            Change::SetWrongType { family, found } => {
                write!(
                    f,
                    "{family} set is {found}, not hash:net (remove it by hand first)"
                )
            }
            Change::MembersMissing { family, nets } => {
                write!(f, "{family} set lacks {} member(s): {}", nets.len(), list(nets))
            }
            Change::MembersExtra { family, nets } => {
                write!(
                    f,
                    "{family} set has {} extra member(s): {}",
                    nets.len(),
                    list(nets)
                )
            }
            Change::GuardMissing { family } => {
                write!(f, "{family} guard before DNAT (mangle PREROUTING) missing")
            }
            Change::GuardRulesDiffer {
                family,
                missing,
                unexpected,
            } => rules_differ(f, &format!("{family} guard before DNAT"), missing, unexpected),
            Change::GuardJumpMissing { family } => {
                write!(f, "{family} mangle PREROUTING has no jump to the guard")
            }
            Change::GuardJumpNotFirst { family, position } => write!(
                f,
                "{family} mangle PREROUTING jump to the guard is rule {position}, not rule 1"
            ),
            Change::GuardJumpDuplicated { family, count } => {
                write!(f, "{family} mangle PREROUTING jumps to the guard {count} times")
            }
            Change::OldChainsLeft { family, objects } => write!(
                f,
                "{family} chains of an earlier version, which the guard before DNAT replaces: {}",
                list(objects)
            ),
            Change::PersistMissing => write!(f, "boot restore script missing"),
            Change::PersistStale => write!(f, "boot restore script is out of date"),
            Change::UnitMissing => write!(f, "systemd unit missing"),
            Change::UnitStale => write!(f, "systemd unit is out of date"),
            Change::UnitDisabled => write!(f, "systemd unit is not enabled"),
            Change::PersistUnwanted => write!(
                f,
                "persistence is off, but boot files from an earlier run would restore an older whitelist at boot"
            ),
            Change::Unconfirmed { within } => write!(
                f,
                "an earlier change was never confirmed: the node rolls it back by itself within {within}s"
            ),
            Change::Forged { family, set: false } => write!(
                f,
                "{family} filter table has a rule comment with a newline in it, whose lines could pose as \
                 rules: something with NET_ADMIN on the node may have forged them; remove that rule \
                 (iptables-save shows it)"
            ),
            Change::Forged { family, set: true } => write!(
                f,
                "{family} set has a member whose comment has a newline in it, whose lines could pose as \
                 members: something with NET_ADMIN on the node may have forged them; remove that member \
                 (ipset save shows it)"
            ),
            Change::BackendChanged { applied, now } => write!(
                f,
                "iptables backend changed: applied with {}, the node now uses {}",
                backend_name(*applied),
                backend_name(*now)
            ),
            Change::NftTableMissing => write!(f, "nftables table missing"),
            Change::IptablesLeft { family, objects } => write!(
                f,
                "{family} objects of palisade's iptables backend are still there ({}): taken away once the \
                 nftables table is in",
                list(objects)
            ),
            Change::NftTableLeft { table } => write!(
                f,
                "nftables table inet {table} of palisade's nftables backend, which applied last, is still \
                 there: taken away once the iptables guard is in"
            ),
            Change::NftTableForeign => write!(
                f,
                "an nftables table has the name of palisade's, but palisade did not make it (no rule of its \
                 guard chain carries palisade's mark): palisade will not replace it; remove it by hand, or \
                 choose another --chain"
            ),
            Change::NftTableFlags { flags } => write!(
                f,
                "nftables table has flags ({}), which palisade never sets (a dormant table filters nothing)",
                flags.join(", ")
            ),
            Change::NftSetWrongType { family, found } => {
                write!(
                    f,
                    "{family} set is {found}, not a set of {family} addresses (plain, or with flags interval)"
                )
            }
            Change::NftChainMissing => write!(f, "nftables guard chain missing"),
            Change::NftChainWrongHook { found } => write!(
                f,
                "nftables guard chain is {found}, not type filter hook prerouting priority -150; policy accept"
            ),
            Change::NftRulesDiffer { missing, unexpected } => {
                rules_differ(f, "nftables guard chain", missing, unexpected)
            }
            Change::NftExtraObject { what } => {
                write!(f, "nftables table holds {what}, which palisade does not make")
            }
            Change::ModeDiffers { want, found } => write!(
                f,
                "the guard is in {found} mode ({}), not {want} mode ({})",
                mode_does(*found),
                mode_does(*want)
            ),
            Change::AuditSetDiffers { family, found } if found == "missing" => {
                write!(f, "{family} audit set missing")
            }
            Change::AuditSetDiffers { family, found } => write!(
                f,
                "{family} audit set is {found}, not the bounded set of flows audit mode records in"
            ),
        }
    }
}

/// What a mode does with what the whitelist does not admit.
fn mode_does(mode: FirewallMode) -> &'static str {
    match mode {
        FirewallMode::Enforce => "drops what the whitelist does not admit",
        FirewallMode::Audit => "drops nothing, records what it would drop",
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::NfTables => "nf_tables",
        Backend::Legacy => "legacy",
        Backend::Nftables => "nftables",
    }
}

/// `{"kind","family","message","items"}` for `--json`.
impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Change", 4)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("family", &self.family())?;
        st.serialize_field("message", &self.to_string())?;
        st.serialize_field("items", &items(self))?;
        st.end()
    }
}

/// One line of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) sign: Sign,
    pub(crate) text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sign {
    /// apply adds this.
    Add,
    /// apply takes this away.
    Remove,
    /// apply changes this in place (or an operator must act on it).
    Alter,
}

impl Sign {
    fn mark(self) -> char {
        match self {
            Sign::Add => '+',
            Sign::Remove => '-',
            Sign::Alter => '~',
        }
    }

    fn tone(self) -> Tone {
        match self {
            Sign::Add => Tone::Good,
            Sign::Remove => Tone::Bad,
            Sign::Alter => Tone::Notice,
        }
    }
}

impl Line {
    fn new(sign: Sign, text: impl Into<String>) -> Line {
        Line {
            sign,
            text: text.into(),
        }
    }

    /// `    + text`, escaped, coloured by its sign when `paint` is on.
    pub(crate) fn show(&self, paint: Paint) -> String {
        let text = format!("{} {}", self.sign.mark(), escape(&self.text));
        format!("    {}\n", paint.tone(self.sign.tone(), &text))
    }
}

/// The change as diff lines. Long lists are cut at [`SHOWN`] lines, with
/// a last line saying how many more `--json` lists.
pub(crate) fn lines(change: &Change) -> Vec<Line> {
    use Sign::{Add, Alter, Remove};
    let one = |sign, text: String| vec![Line::new(sign, text)];
    match change {
        Change::SetMissing { family } => one(Add, format!("{family} set, holding the whole whitelist")),
        Change::SetWrongType { family, found } => one(
            Alter,
            format!("{family} set is {found}, not hash:net: remove it by hand first"),
        ),
        Change::MembersMissing { family, nets } => {
            capped(Add, nets.iter().map(|n| format!("{family} member {n}")).collect())
        }
        Change::MembersExtra { family, nets } => capped(
            Remove,
            nets.iter().map(|n| format!("{family} member {n}")).collect(),
        ),
        Change::GuardRulesDiffer {
            family,
            missing,
            unexpected,
        } => {
            if missing.is_empty() && unexpected.is_empty() {
                return one(
                    Alter,
                    format!("{family} guard before DNAT rules, put back in order"),
                );
            }
            let mut out = capped(Add, missing.iter().map(|r| format!("{family} {r}")).collect());
            out.extend(capped(
                Remove,
                unexpected.iter().map(|r| format!("{family} {r}")).collect(),
            ));
            out
        }
        Change::GuardMissing { family } => one(
            Add,
            format!("{family} guard before DNAT (mangle), with the whitelist and this role's open ports"),
        ),
        Change::GuardJumpMissing { family } => one(
            Add,
            format!("{family} mangle PREROUTING rule 1: the jump to the guard"),
        ),
        Change::GuardJumpNotFirst { family, position } => one(
            Alter,
            format!("{family} mangle PREROUTING jump to the guard, from rule {position} to rule 1"),
        ),
        Change::GuardJumpDuplicated { family, count } => one(
            Remove,
            format!(
                "{family} mangle PREROUTING: {} extra jump(s) to the guard",
                count.saturating_sub(1)
            ),
        ),
        Change::PersistMissing => one(Add, "boot restore script".into()),
        Change::PersistStale => one(Alter, "boot restore script (out of date)".into()),
        Change::UnitMissing => one(Add, "systemd unit".into()),
        Change::UnitStale => one(Alter, "systemd unit (out of date)".into()),
        Change::UnitDisabled => one(Alter, "systemd unit, enabled".into()),
        Change::PersistUnwanted => one(
            Remove,
            "boot files from an earlier run (persistence is off; they would restore an older whitelist)"
                .into(),
        ),
        Change::Unconfirmed { .. }
        | Change::BackendChanged { .. }
        | Change::Forged { .. }
        | Change::NftTableForeign => one(Alter, change.to_string()),
        Change::NftTableLeft { table } => one(
            Remove,
            format!("nftables table inet {table} (the nftables backend's; the iptables guard replaces it)"),
        ),
        Change::IptablesLeft { family, objects } => capped(
            Remove,
            objects.iter().map(|o| format!("{family} iptables {o}")).collect(),
        ),
        Change::OldChainsLeft { family, objects } => capped(
            Remove,
            objects
                .iter()
                .map(|o| format!("{family} {o} (an earlier version's; the guard replaces it)"))
                .collect(),
        ),
        Change::NftTableMissing => one(
            Add,
            "nftables table, with the whole whitelist and this role's open ports".into(),
        ),
        Change::NftTableFlags { flags } => one(
            Alter,
            format!(
                "nftables table, made afresh without its flags ({})",
                flags.join(", ")
            ),
        ),
        Change::NftSetWrongType { family, found } => one(
            Alter,
            format!("{family} set, made afresh as a set of addresses (it is {found})"),
        ),
        Change::NftChainMissing => one(
            Add,
            "nftables guard chain, with the rules of the whitelist and this role's open ports".into(),
        ),
        Change::NftChainWrongHook { found } => one(
            Alter,
            format!("nftables guard chain, made afresh at hook prerouting priority -150 (it is {found})"),
        ),
        Change::NftRulesDiffer { missing, unexpected } => {
            if missing.is_empty() && unexpected.is_empty() {
                return one(Alter, "nftables guard chain rules, put back in order".into());
            }
            let mut out = capped(Add, missing.iter().map(|r| format!("nftables {r}")).collect());
            out.extend(capped(
                Remove,
                unexpected.iter().map(|r| format!("nftables {r}")).collect(),
            ));
            out
        }
        Change::NftExtraObject { what } => one(Remove, format!("{what} in palisade's nftables table")),
        Change::ModeDiffers { want, found } => one(
            Alter,
            format!("guard mode, {found} -> {want}: {}", mode_does(*want)),
        ),
        Change::AuditSetDiffers { family, found } if found == "missing" => one(
            Add,
            format!("{family} audit set, for the flows audit mode records"),
        ),
        Change::AuditSetDiffers { family, found } => {
            one(Alter, format!("{family} audit set, made afresh (it is {found})"))
        }
    }
}

/// One line per item, cut at [`SHOWN`].
fn capped(sign: Sign, texts: Vec<String>) -> Vec<Line> {
    let more = texts.len().saturating_sub(SHOWN);
    let mut out: Vec<Line> = texts
        .into_iter()
        .take(SHOWN)
        .map(|t| Line::new(sign, t))
        .collect();
    if more > 0 {
        out.push(Line::new(
            sign,
            format!("... and {more} more (--json lists them all)"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Net;
    use crate::policy::Family;

    fn shown(changes: &[Change]) -> String {
        changes
            .iter()
            .flat_map(lines)
            .map(|l| l.show(Paint::PLAIN))
            .collect()
    }

    #[test]
    fn a_first_run_reads_as_additions() {
        let changes = [
            Change::SetMissing { family: Family::V4 },
            Change::GuardMissing { family: Family::V4 },
            Change::GuardJumpMissing { family: Family::V4 },
            Change::PersistMissing,
        ];
        assert_eq!(
            shown(&changes),
            "    + IPv4 set, holding the whole whitelist\n\
             \x20   + IPv4 guard before DNAT (mangle), with the whitelist and this role's open ports\n\
             \x20   + IPv4 mangle PREROUTING rule 1: the jump to the guard\n\
             \x20   + boot restore script\n"
        );
    }

    #[test]
    fn members_and_rules_are_plus_and_minus_lines() {
        let nets: Vec<Net> = ["192.0.2.0/24", "198.18.1.13"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let changes = [
            Change::MembersMissing {
                family: Family::V4,
                nets: nets.clone(),
            },
            Change::MembersExtra {
                family: Family::V4,
                nets: vec!["6.6.6.6".parse().unwrap()],
            },
            Change::GuardRulesDiffer {
                family: Family::V6,
                missing: vec!["-A PALISADE-GUARD -j DROP".into()],
                unexpected: vec!["-A PALISADE-GUARD -j RETURN".into()],
            },
            Change::GuardJumpNotFirst {
                family: Family::V4,
                position: 2,
            },
            Change::OldChainsLeft {
                family: Family::V4,
                objects: vec!["jump INPUT -> PALISADE".into(), "chain PALISADE".into()],
            },
        ];
        assert_eq!(
            shown(&changes),
            "    + IPv4 member 192.0.2.0/24\n\
             \x20   + IPv4 member 198.18.1.13\n\
             \x20   - IPv4 member 6.6.6.6\n\
             \x20   + IPv6 -A PALISADE-GUARD -j DROP\n\
             \x20   - IPv6 -A PALISADE-GUARD -j RETURN\n\
             \x20   ~ IPv4 mangle PREROUTING jump to the guard, from rule 2 to rule 1\n\
             \x20   - IPv4 jump INPUT -> PALISADE (an earlier version's; the guard replaces it)\n\
             \x20   - IPv4 chain PALISADE (an earlier version's; the guard replaces it)\n"
        );
    }

    #[test]
    fn a_reorder_says_which_chain() {
        let c = Change::GuardRulesDiffer {
            family: Family::V4,
            missing: vec![],
            unexpected: vec![],
        };
        assert_eq!(
            shown(&[c]),
            "    ~ IPv4 guard before DNAT rules, put back in order\n"
        );
    }

    #[test]
    fn long_lists_are_cut_and_say_so() {
        let nets: Vec<Net> = (1..=20).map(|i| format!("10.0.0.{i}").parse().unwrap()).collect();
        let l = lines(&Change::MembersMissing {
            family: Family::V4,
            nets,
        });
        assert_eq!(l.len(), SHOWN + 1);
        assert_eq!(l[SHOWN].text, "... and 12 more (--json lists them all)");
        let json = serde_json::to_value(Change::MembersMissing {
            family: Family::V4,
            nets: (1..=20).map(|i| format!("10.0.0.{i}").parse().unwrap()).collect(),
        })
        .unwrap();
        assert_eq!(json["items"].as_array().unwrap().len(), 20);
        assert_eq!(
            json["message"],
            "IPv4 set lacks 20 member(s): 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, and 12 more"
        );
    }

    #[test]
    fn nftables_changes_name_the_table_and_its_guard_chain() {
        let changes = [
            Change::NftTableMissing,
            Change::NftRulesDiffer {
                missing: vec!["drop".into()],
                unexpected: vec!["tcp dport 22 accept".into()],
            },
            Change::NftExtraObject {
                what: "chain extra".into(),
            },
        ];
        assert_eq!(
            shown(&changes),
            "    + nftables table, with the whole whitelist and this role's open ports\n\
             \x20   + nftables drop\n\
             \x20   - nftables tcp dport 22 accept\n\
             \x20   - chain extra in palisade's nftables table\n"
        );
        let json = serde_json::to_value(&changes[1]).unwrap();
        assert_eq!(json["kind"], "guard-rules-differ");
        assert_eq!(json["family"], serde_json::Value::Null);
        assert_eq!(
            json["items"],
            serde_json::json!(["missing: drop", "unexpected: tcp dport 22 accept"])
        );
    }

    #[test]
    fn a_switch_of_mode_is_worded_as_one_change() {
        use crate::policy::{Family, FirewallMode};
        let changes = [
            Change::ModeDiffers {
                want: FirewallMode::Enforce,
                found: FirewallMode::Audit,
            },
            Change::AuditSetDiffers {
                family: Family::V6,
                found: "missing".into(),
            },
            Change::AuditSetDiffers {
                family: Family::V4,
                found: "ipv4_addr . inet_proto . inet_service size 8 timeout 3600s".into(),
            },
        ];
        assert_eq!(
            shown(&changes),
            "    ~ guard mode, audit -> enforce: drops what the whitelist does not admit\n\
             \x20   + IPv6 audit set, for the flows audit mode records\n\
             \x20   ~ IPv4 audit set, made afresh (it is ipv4_addr . inet_proto . inet_service size 8 timeout \
             3600s)\n"
        );
        let json = serde_json::to_value(&changes[0]).unwrap();
        assert_eq!(json["kind"], "mode-differs");
        assert_eq!(
            json["message"],
            "the guard is in audit mode (drops nothing, records what it would drop), not enforce mode (drops \
             what the whitelist does not admit)"
        );
        let json = serde_json::to_value(&changes[1]).unwrap();
        assert_eq!(
            (json["kind"].as_str(), json["family"].as_str()),
            (Some("audit-set-differs"), Some("ipv6"))
        );
        assert_eq!(json["message"], "IPv6 audit set missing");
    }

    #[test]
    fn signs_are_coloured_on_request_and_text_is_escaped() {
        let c = Change::GuardRulesDiffer {
            family: Family::V4,
            missing: vec![],
            unexpected: vec!["-A PALISADE-GUARD -m comment --comment \u{1b}[2J -j ACCEPT".into()],
        };
        let l = &lines(&c)[0];
        assert_eq!(
            l.show(Paint { on: true }),
            "    \x1b[31m- IPv4 -A PALISADE-GUARD -m comment --comment \\u{001b}[2J -j ACCEPT\x1b[0m\n"
        );
        let plus = Line::new(Sign::Add, "x").show(Paint { on: true });
        assert_eq!(plus, "    \x1b[32m+ x\x1b[0m\n");
    }
}
