//! What palisade's objects look like on a node now: one read-only script,
//! whose sectioned output a pure parser turns into [`Observed`].
//!
//! Audits compare set members and the rules as `iptables -S` prints them,
//! never ipset's header lines: `initval` is random on every node.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::probe::Backend;
use crate::net::Net;
use crate::policy::{Family, Policy};
use crate::render;
use crate::transport::Script;

/// `observe [SSH_CONNECTION]`: says (see `say`) the node's state in
/// sections, ending with `==> end`, from the tables and sets `read_node`
/// left in `table_v4`, `table_v6`, `save_v4` and `save_v6` (where a change
/// then starts from): one `sha256sum` when there are boot files. Callers
/// run it through `say_observed`, defined beside it.
pub(crate) const OBSERVE: &str = r#"observe() {
section() { say "==> $1"; }
# $1 is SSH_CONNECTION when the step runs as Privilege::RootSeeingOrigin.
section origin
say "${1-}"
section missing-tools
for tool in ipset iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore flock head; do
    command -v "$tool" >/dev/null 2>&1 || say "$tool"
done
section backend
backend_of "$table_v4"
if [ -n "$backend" ]; then say "$backend"; fi
for v in v4 v6; do
    if [ "$v" = v4 ]; then table=$table_v4 save=$save_v4; else table=$table_v6 save=$save_v6; fi
    section "set-$v"
    if [ -n "$save" ]; then say "$save"; fi
    say_chains "$v" "$table"
done
# While a change waits for its confirmation, the boot files are the ones it
# staged (the confirmation installs them): what the node will have once
# confirmed. Verify reports the pending change itself as unconfirmed.
snap=/run/palisade/rollback
pending=no
if [ -d "$snap" ] && [ ! -e "$snap/rolled-back" ] && [ -e "$snap/armed" ] && [ -f "$snap/boot-plan" ]; then
    fetch pending "$snap/boot-plan"
fi
dir=${restore_path%/*}
restore=$restore_path backend_file=$dir/backend unit=$unit_path
case $pending in
    install)
        restore=$dir/restore.sh.new backend_file=$dir/backend.new
        if [ -f "$unit_path.new" ]; then unit=$unit_path.new; fi
        ;;
    remove) restore=/nonexistent backend_file=/nonexistent unit=/nonexistent ;;
esac
# Both digests from one sha256sum, each alone on a line.
restore_sum='' unit_sum=''
files=''
for f in "$restore" "$unit"; do
    if [ -f "$f" ]; then files="$files $f"; fi
done
if [ -n "$files" ]; then
    sums=$(sha256sum $files 2>/dev/null) || sums=''
    while read -r sum name; do
        if [ "$name" = "$restore" ]; then restore_sum=$sum; fi
        if [ "$name" = "$unit" ]; then unit_sum=$sum; fi
    done <<PALISADE_SUMS
$sums
PALISADE_SUMS
fi
section restore
if [ -n "$restore_sum" ]; then say "$restore_sum"; fi
section backend-file
if [ -f "$backend_file" ]; then fetch applied "$backend_file" && say "$applied"; fi
section systemd
if [ -d /run/systemd/system ]; then say yes; else say no; fi
section unit
if [ -n "$unit_sum" ]; then say "$unit_sum"; fi
# Enabled, as `systemctl is-enabled` says it: the [Install] link to the unit
# is there (the confirmation makes it by hand, as install_boot says).
section unit-enabled
if [ "$pending" != no ]; then
    if [ -f "$unit" ]; then say enabled; fi
elif [ -d /run/systemd/system ] && [ -L "$unit_wants" ] && [ -f "$unit_wants" ]; then
    say enabled
fi
# The interfaces the node's default routes leave by: its uplinks, where
# everyone's traffic comes in. Read from /proc with builtins, no process.
section uplinks
while read -r ifc dst rest; do
    if [ "$dst" = 00000000 ]; then say "$ifc"; fi
done </proc/net/route 2>/dev/null
while read -r dst len rest; do
    if [ "$dst" = 00000000000000000000000000000000 ] && [ "$len" = 00 ]; then say "${rest##* }"; fi
done </proc/net/ipv6_route 2>/dev/null
# An earlier change waiting for its confirmation, and how many seconds it
# has left before it rolls back by itself.
section rollback
if [ -d "$snap" ] && [ ! -e "$snap/rolled-back" ] && [ -e "$snap/armed" ]; then
    fetch due "$snap/deadline-uptime"
    fetch sid "$snap/id"
    uptime
    left=$((${due:-0} - now))
    if [ "$left" -lt 0 ]; then left=0; fi
    say "armed $left $sid"
fi
# A rollback that failed, and is being tried again: the node may still have
# that change's rules.
section rollback-failed
if [ -d "$snap" ] && [ -e "$snap/rollback-failed" ] && [ ! -e "$snap/rolled-back" ]; then say yes; fi
section end
}
# say_observed [SSH_CONNECTION]: read the node, then print what observe
# makes of it in one write (see `say`). The first words then come only once
# the node is read: a failure with nothing on stdout is still sudo's
# refusal (see probe::as_root), as nothing in between can fail.
say_observed() {
read_node
reply=''
observe "${1-}"
printf '%s' "$reply"
}
"#;

/// The read-only script for this policy's names. Run as
/// [`crate::transport::Privilege::RootSeeingOrigin`], its output also says
/// where the controller connects from ([`controller_address`]): the probe
/// and the read are one exec.
pub fn script(policy: &Policy) -> Script {
    let mut s = render::names(policy);
    s.push_str(&render::code(render::LIB));
    s.push_str(&render::code(OBSERVE));
    s.push_str("say_observed \"${1-}\"\n");
    Script::rendered(s)
}

/// The name a node gives one change (`PID-UPTIME`): digits and a dash,
/// nothing a shell or a terminal could take for anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeId(String);

impl std::str::FromStr for ChangeId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<ChangeId, ParseError> {
        let ok = !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(ChangeId(s.to_owned()))
        } else {
            Err(ParseError(format!("change id {:?}", crate::text::shorten(s, 60))))
        }
    }
}

impl std::fmt::Display for ChangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One ipset set as `ipset save` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetFacts {
    /// `hash:net family inet`, from the create line.
    pub kind: String,
    pub members: BTreeSet<Net>,
}

/// palisade's objects in one address family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyFacts {
    pub set: Option<SetFacts>,
    /// The rules of our chain (`-A` lines), or None when there is no chain.
    pub chain: Option<Vec<String>>,
    /// The rules of INPUT.
    pub input: Vec<String>,
    pub docker_user: Option<Vec<String>>,
    pub docker_chain: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Tools palisade needs that the node lacks.
    pub missing_tools: Vec<String>,
    pub backend: Option<Backend>,
    pub v4: FamilyFacts,
    pub v6: FamilyFacts,
    /// sha256 of the boot restore script, when there is one.
    pub restore_digest: Option<String>,
    /// The backend recorded when palisade last applied.
    pub applied_backend: Option<Backend>,
    pub systemd: bool,
    pub unit_digest: Option<String>,
    pub unit_enabled: bool,
    /// An earlier change that was never confirmed, and when it rolls back.
    /// How many seconds it has left, by the node's clock.
    pub pending_rollback: Option<u64>,
    /// Which change it is: a confirmation names it, so that it never keeps
    /// another run's change instead.
    pub pending_id: Option<ChangeId>,
    /// The interfaces the node's default routes use (never `lo`).
    pub uplinks: Vec<String>,
    /// The rollback of a change failed, and the node tries it again: it
    /// may still have that change's rules.
    pub rollback_failed: bool,
}

impl Observed {
    pub fn family(&self, family: Family) -> &FamilyFacts {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected output from the node: {0}")]
pub struct ParseError(String);

impl ParseError {
    pub(crate) fn new(why: &str) -> ParseError {
        ParseError(why.to_owned())
    }
}

/// `before` with its chains as `text` (sections `chain-v4`, `input-v4`, …,
/// ending with `==> end`) shows them.
pub fn with_chains(before: &Observed, text: &str) -> Result<Observed, ParseError> {
    let sections = Sections::of(text)?;
    let mut after = before.clone();
    for (v, facts) in [("v4", &mut after.v4), ("v6", &mut after.v6)] {
        if !sections.has(&format!("input-{v}")) {
            return Err(ParseError(format!("no input-{v} section")));
        }
        sections.chains(v, facts);
    }
    Ok(after)
}

/// The `==> NAME` sections of a reply, which must end with `==> end`.
struct Sections<'a>(Vec<(&'a str, Vec<&'a str>)>);

impl<'a> Sections<'a> {
    fn of(text: &'a str) -> Result<Sections<'a>, ParseError> {
        let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("==> ") {
                sections.push((name, Vec::new()));
            } else if let Some((_, lines)) = sections.last_mut() {
                lines.push(line);
            }
        }
        if sections.last().map(|(n, _)| *n) != Some("end") {
            return Err(ParseError("it stopped before the end".into()));
        }
        Ok(Sections(sections))
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| *n == name)
    }

    /// The lines of the first section so named; none when there is none.
    fn get(&self, name: &str) -> &[&'a str] {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[][..], |(_, lines)| lines.as_slice())
    }

    /// A family's chains (`say_chains` in the shell library).
    fn chains(&self, v: &str, facts: &mut FamilyFacts) {
        facts.chain = parse_chain(self.get(&format!("chain-{v}")));
        facts.input = parse_chain(self.get(&format!("input-{v}"))).unwrap_or_default();
        facts.docker_user = parse_chain(self.get(&format!("docker-user-{v}")));
        facts.docker_chain = parse_chain(self.get(&format!("docker-chain-{v}")));
    }
}

/// Parses the read script's output. Strict about structure (a truncated
/// output is an error, not an empty node), lenient about lines it does not
/// need.
pub fn parse(text: &str) -> Result<Observed, ParseError> {
    let sections = Sections::of(text)?;
    let get = |name: &str| sections.get(name);
    let first = |name: &str| {
        get(name)
            .first()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
    };
    let family = |v: &str| -> Result<FamilyFacts, ParseError> {
        let mut facts = FamilyFacts {
            set: parse_set(get(&format!("set-{v}")))?,
            ..FamilyFacts::default()
        };
        sections.chains(v, &mut facts);
        Ok(facts)
    };
    let (v4, v6) = (family("v4")?, family("v6")?);
    Ok(Observed {
        missing_tools: get("missing-tools")
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        backend: first("backend").as_deref().and_then(backend_of),
        v4,
        v6,
        restore_digest: first("restore"),
        applied_backend: first("backend-file").as_deref().and_then(backend_of),
        systemd: first("systemd").as_deref() == Some("yes"),
        unit_digest: first("unit"),
        unit_enabled: first("unit-enabled").as_deref() == Some("enabled"),
        pending_rollback: first("rollback").and_then(|l| {
            l.strip_prefix("armed").map(|rest| {
                rest.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            })
        }),
        pending_id: first("rollback").and_then(|l| {
            l.strip_prefix("armed")
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|id| id.parse().ok())
        }),
        uplinks: {
            let mut up: Vec<String> = get("uplinks")
                .iter()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty() && l != "lo")
                .collect();
            up.sort();
            up.dedup();
            up
        },
        rollback_failed: first("rollback-failed").as_deref() == Some("yes"),
    })
}

/// The controller's address as the node sees it, from the read script's
/// `origin` section (empty when the step was not given `SSH_CONNECTION`).
pub fn controller_address(text: &str) -> Option<IpAddr> {
    let mut lines = text.lines();
    lines.find(|l| *l == "==> origin")?;
    super::probe::origin_of(lines.next()?)
}

pub fn backend_of(version: &str) -> Option<Backend> {
    if version.contains("nf_tables") {
        Some(Backend::NfTables)
    } else if version.contains("legacy") {
        Some(Backend::Legacy)
    } else {
        None
    }
}

/// `iptables -S CHAIN`: None when the chain does not exist (no output),
/// else its `-A` lines, byte for byte as the node printed them: the node
/// finds the jumps it undoes by exact comparison (`positions` in lib.sh),
/// and the fix the controller sends (`render::fix`) must count the same.
fn parse_chain(lines: &[&str]) -> Option<Vec<String>> {
    let exists = lines
        .iter()
        .any(|l| l.starts_with("-N ") || l.starts_with("-P ") || l.starts_with("-A "));
    exists.then(|| {
        lines
            .iter()
            .filter(|l| l.starts_with("-A "))
            .map(|l| (*l).to_owned())
            .collect()
    })
}

/// `ipset save NAME`: the create line's type, and the `add` lines' members.
fn parse_set(lines: &[&str]) -> Result<Option<SetFacts>, ParseError> {
    let Some(create) = lines.iter().find(|l| l.starts_with("create ")) else {
        return Ok(None);
    };
    let words: Vec<&str> = create.split_whitespace().collect();
    let kind = match words.as_slice() {
        [_, _, kind, "family", fam, ..] => format!("{kind} family {fam}"),
        [_, _, kind, ..] => (*kind).to_owned(),
        _ => return Err(ParseError(format!("ipset create line {create:?}"))),
    };
    let mut members = BTreeSet::new();
    for line in lines.iter().filter(|l| l.starts_with("add ")) {
        let word = line
            .split_whitespace()
            .nth(2)
            .ok_or_else(|| ParseError(format!("ipset add line {line:?}")))?;
        // hash:net prints a host as a bare address.
        let net = word
            .parse::<IpNet>()
            .map(Net::from)
            .or_else(|_| word.parse::<IpAddr>().map(Net::from))
            .map_err(|_| ParseError(format!("ipset member {word:?}")))?;
        members.insert(net);
    }
    Ok(Some(SetFacts { kind, members }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/observe/applied-nft.txt");

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// A node may print anything: lines cut, doubled, swapped or
        /// replaced by garbage (control characters, huge lines) never make
        /// the parser panic.
        #[test]
        fn any_node_output_parses_or_is_refused_without_a_panic(
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), 0u8..4, "(?s).{0,40}"),
                0..12,
            ),
            long in proptest::prelude::any::<bool>(),
        ) {
            let mut lines: Vec<String> = FIXTURE.lines().map(str::to_owned).collect();
            for (at, kind, text) in edits {
                let i = at.index(lines.len().max(1));
                match kind {
                    0 if i < lines.len() => lines[i] = text,
                    1 => lines.insert(i.min(lines.len()), text),
                    2 if i < lines.len() => { lines.remove(i); }
                    _ => lines.insert(i.min(lines.len()), format!("==> {text}")),
                }
            }
            if long {
                lines.insert(lines.len() / 2, "\u{1b}[2J".repeat(100_000));
            }
            let _ = parse(&lines.join("\n"));
        }
    }

    #[test]
    fn parses_a_node_after_apply() {
        let o = parse(FIXTURE).unwrap();
        assert_eq!(o.backend, Some(Backend::NfTables));
        let set = o.v4.set.as_ref().unwrap();
        assert_eq!(set.kind, "hash:net family inet");
        assert!(set.members.contains(&"198.18.0.1".parse().unwrap()));
        assert!(set.members.contains(&"192.0.2.0/24".parse().unwrap()));
        assert_eq!(
            o.v4.chain.as_ref().unwrap()[0],
            "-A PALISADE -i lo -m comment --comment palisade -j ACCEPT"
        );
        assert_eq!(o.v4.input[0], "-A INPUT -j PALISADE");
        assert!(o.v4.docker_user.is_some());
        assert!(o.v6.docker_user.is_none());
        assert_eq!(o.v6.set.as_ref().unwrap().kind, "hash:net family inet6");
        assert_eq!(o.restore_digest.as_deref().map(str::len), Some(64));
        assert_eq!(o.applied_backend, Some(Backend::NfTables));
        assert!(!o.systemd);
    }

    /// A rule line is kept as the node printed it, so the controller counts
    /// the jumps the node's undo will find (see `parse_chain`).
    #[test]
    fn rule_lines_are_kept_byte_for_byte() {
        let text = FIXTURE.replacen("-A INPUT -j PALISADE\n", "-A INPUT -j PALISADE \n", 1);
        assert_ne!(text, FIXTURE);
        let o = parse(&text).unwrap();
        assert_eq!(o.v4.input[0], "-A INPUT -j PALISADE ");
    }

    #[test]
    fn an_untouched_node_has_nothing() {
        let text = "==> backend\niptables v1.8.9 (legacy)\n==> set-v4\n==> chain-v4\n==> input-v4\n-P INPUT ACCEPT\n\
                    ==> docker-user-v4\n==> docker-chain-v4\n==> set-v6\n==> chain-v6\n==> input-v6\n-P INPUT ACCEPT\n\
                    ==> docker-user-v6\n==> docker-chain-v6\n==> restore\n==> backend-file\n==> systemd\nno\n\
                    ==> unit\n==> unit-enabled\n==> end\n";
        let o = parse(text).unwrap();
        assert_eq!(o.backend, Some(Backend::Legacy));
        assert_eq!(o.v4, FamilyFacts::default());
        assert_eq!(o.restore_digest, None);
    }

    /// A rollback that failed on the node is its own fact, not a pending
    /// change's countdown.
    #[test]
    fn a_failed_rollback_is_observed() {
        assert!(!parse(FIXTURE).unwrap().rollback_failed);
        let text = FIXTURE.replacen("==> end", "==> rollback-failed\nyes\n==> end", 1);
        assert!(parse(&text).unwrap().rollback_failed);
    }

    #[test]
    fn the_origin_section_gives_the_controllers_address() {
        let text = "==> origin\n198.18.0.1 51234 198.18.1.10 22\n==> missing-tools\n==> end\n";
        assert_eq!(controller_address(text), Some("198.18.0.1".parse().unwrap()));
        assert_eq!(controller_address("==> origin\n\n==> end\n"), None);
        assert_eq!(controller_address("==> origin\n"), None);
        assert_eq!(controller_address("198.18.0.1 1 2 3\n==> end\n"), None);
        assert_eq!(
            controller_address("state=confirmed\n==> origin\n2001:2::1 4000 2001:2::a 22\n"),
            Some("2001:2::1".parse().unwrap())
        );
    }

    #[test]
    fn truncated_output_is_an_error() {
        assert!(parse("==> backend\niptables v1.8.9 (nf_tables)\n==> set-v4\n").is_err());
        assert!(parse("==> set-v4\ncreate x hash:net family inet\nadd x not-an-ip\n==> end\n").is_err());
    }
}
