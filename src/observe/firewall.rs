//! What palisade's objects look like on a node now: one read-only script,
//! whose sectioned output a pure parser turns into [`Observed`].
//!
//! Audits compare set members and the rules as `iptables -S` prints them,
//! never ipset's header lines: `initval` is random on every node.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::nft::{Flow, Proto, Recorded};
use super::probe::Backend;
use crate::net::Net;
use crate::policy::{Family, FirewallBackend, FirewallMode, Policy};
use crate::render;
use crate::render::nft::AUDIT_TIMEOUT;
use crate::render::wire::{DATA, HEADER, said, section};
use crate::transport::Script;

/// The read-only script for this policy's names. Run as
/// [`crate::transport::Privilege::RootSeeingOrigin`], its output also says
/// where the controller connects from ([`controller_address`]): the probe
/// and the read are one exec.
pub(crate) fn script(policy: &Policy) -> Script {
    let mut s = render::names(policy);
    s.push_str(&render::library(policy));
    s.push_str(&render::auto_read(policy));
    s.push_str(&render::code(render::OBSERVE));
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
pub(crate) struct SetFacts {
    /// `hash:net family inet`, from the create line.
    pub(crate) kind: String,
    pub(crate) members: BTreeSet<Net>,
}

/// Audit mode's set of a family on the iptables backend (SET-aud), as
/// `ipset save` shows it: read only when the family's guard records in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditSetFacts {
    /// `hash:ip,port family inet`, from the create line.
    pub(crate) kind: String,
    /// Its bound (`maxelem`).
    pub(crate) maxelem: Option<u64>,
    /// Seconds a flow lives (`timeout`).
    pub(crate) timeout: Option<u64>,
    /// Whether it counts packets and bytes (`counters`).
    pub(crate) counters: bool,
    /// What it recorded: the traffic's, never compared.
    pub(crate) flows: Vec<Flow>,
    /// How many elements it holds (an ICMP source's messages are one flow,
    /// but an element each).
    pub(crate) elements: u64,
}

impl AuditSetFacts {
    /// Whether it holds its bound: a flow more is not recorded.
    pub(crate) fn full(&self) -> bool {
        self.maxelem.is_some_and(|max| self.elements >= max)
    }
}

/// palisade's objects in one address family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FamilyFacts {
    pub(crate) set: Option<SetFacts>,
    /// Audit mode's set, when the guard records in it.
    pub(crate) audit: Option<AuditSetFacts>,
    /// The rules of our chain (`-A` lines), or None when there is no chain.
    pub(crate) chain: Option<Vec<String>>,
    /// The rules of INPUT.
    pub(crate) input: Vec<String>,
    pub(crate) docker_user: Option<Vec<String>>,
    pub(crate) docker_chain: Option<Vec<String>>,
    /// The rules of mangle PREROUTING.
    pub(crate) prerouting: Vec<String>,
    /// The rules of the guard before DNAT, in the mangle table, or None
    /// when there is no such chain.
    pub(crate) guard: Option<Vec<String>>,
    /// The filter table holds a quoted string (a rule comment) that spans
    /// lines: its lines could pose as rules of these chains, so what they
    /// hold cannot be told for sure. Only something forging lines (with
    /// NET_ADMIN on the node) puts one there.
    pub(crate) forged_rules: bool,
    /// The same in the set: a member's comment spans lines, which could
    /// pose as members.
    pub(crate) forged_set: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Tools palisade needs that the node lacks.
    pub(crate) missing_tools: Vec<String>,
    pub(crate) backend: Option<Backend>,
    pub(crate) v4: FamilyFacts,
    pub(crate) v6: FamilyFacts,
    /// sha256 of the boot restore script, when there is one.
    pub(crate) restore_digest: Option<String>,
    /// The backend recorded when palisade last applied.
    pub(crate) applied_backend: Option<Backend>,
    pub(crate) systemd: bool,
    pub(crate) unit_digest: Option<String>,
    pub(crate) unit_enabled: bool,
    /// An earlier change that was never confirmed, and when it rolls back.
    /// How many seconds it has left, by the node's clock.
    pub(crate) pending_rollback: Option<u64>,
    /// Which change it is: a confirmation names it, so that it never keeps
    /// another run's change instead.
    pub(crate) pending_id: Option<ChangeId>,
    /// The interfaces the node's default routes use (never `lo`).
    pub(crate) uplinks: Vec<String>,
    /// The node's main routing table (both families; empty for a family
    /// whose table was too long to send whole).
    pub(crate) routes: Vec<Route>,
    /// The rollback of a change failed, and the node tries it again: it
    /// may still have that change's rules.
    pub(crate) rollback_failed: bool,
    /// With `--backend auto`, the backend the node took, and why.
    pub(crate) chosen: Option<Chosen>,
    /// With the nftables backend, palisade's table (`nft -j list table`),
    /// or None when there is none. (With iptables, always None: the
    /// families' facts say what is there.)
    pub(crate) nft: Option<super::nft::NftTable>,
}

impl FamilyFacts {
    /// The facts without what the audit set recorded: what a rollback
    /// puts back, and checks (packets move the rest).
    pub(crate) fn unrecorded(&self) -> FamilyFacts {
        let mut f = self.clone();
        if let Some(audit) = &mut f.audit {
            audit.flows.clear();
        }
        f
    }
}

impl Observed {
    /// With the iptables backend, the guard's mode (audit when a family's
    /// guard records in an audit set, as only audit mode's rules do) and
    /// what its audit sets recorded.
    pub(crate) fn ipt_audit(&self) -> (FirewallMode, Recorded) {
        let records = |f: &FamilyFacts| f.guard.iter().flatten().any(|r| r.contains(" -j SET --add-set "));
        let mode = if records(&self.v4) || records(&self.v6) {
            FirewallMode::Audit
        } else {
            FirewallMode::Enforce
        };
        let mut out = Recorded::default();
        for family in Family::BOTH {
            if let Some(audit) = &self.family(family).audit {
                out.flows.extend(audit.flows.iter().cloned());
                if audit.full() {
                    out.full.push(family);
                }
            }
        }
        (mode, out)
    }

    pub(crate) fn family(&self, family: Family) -> &FamilyFacts {
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
pub(crate) fn with_chains(before: &Observed, text: &str) -> Result<Observed, ParseError> {
    let sections = Sections::of(text)?;
    let mut after = before.clone();
    if sections.has(section::NFT) {
        // The nftables backend reads the node again whole: the table, and
        // whatever the iptables backend left (gone, when not said).
        after.nft = nft_table(&sections)?;
        for (v, facts) in [("v4", &mut after.v4), ("v6", &mut after.v6)] {
            let (set, forged_set) = parse_set(sections.get(&section::family(section::SET, v)))?;
            *facts = FamilyFacts {
                set,
                audit: parse_audit(sections.get(&section::family(section::AUDIT, v)))?,
                forged_set,
                ..FamilyFacts::default()
            };
            sections.chains(v, facts);
        }
        return Ok(after);
    }
    for (v, facts) in [("v4", &mut after.v4), ("v6", &mut after.v6)] {
        let input = section::family(section::INPUT, v);
        if !sections.has(&input) {
            return Err(ParseError(format!("no {input} section")));
        }
        sections.chains(v, facts);
        // Audit mode's set, said when the guard records in it.
        facts.audit = parse_audit(sections.get(&section::family(section::AUDIT, v)))?;
    }
    Ok(after)
}

/// One line of what a node script prints: a section's header, or data.
enum Line<'a> {
    /// `==> NAME`, which only the script's own `section` prints.
    Header(&'a str),
    /// `|TEXT`: whatever the node read (`say` frames every line of it), so
    /// no data can pose as a header or end a reply.
    Data(&'a str),
}

impl<'a> Line<'a> {
    /// A line neither framed nor a header is refused, never read as data.
    fn of(line: &'a str) -> Result<Line<'a>, ParseError> {
        if let Some(name) = line.strip_prefix(HEADER) {
            Ok(Line::Header(name))
        } else if let Some(data) = line.strip_prefix(DATA) {
            Ok(Line::Data(data))
        } else {
            Err(ParseError(format!(
                "an unframed line {:?}",
                crate::text::shorten(line, 60)
            )))
        }
    }
}

/// The data lines of a reply, unframed; an error when any line is neither
/// data nor a header.
pub(crate) fn data_lines(text: &str) -> Result<Vec<&str>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Line::Data(data) = Line::of(line)? {
            out.push(data);
        }
    }
    Ok(out)
}

/// The `==> NAME` sections of a reply, each named once, which must end with
/// `==> end`; their data lines unframed.
pub(crate) struct Sections<'a>(Vec<(&'a str, Vec<&'a str>)>);

impl<'a> Sections<'a> {
    pub(crate) fn of(text: &'a str) -> Result<Sections<'a>, ParseError> {
        let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in text.lines() {
            match Line::of(line)? {
                Line::Header(name) if sections.iter().any(|(n, _)| *n == name) => {
                    return Err(ParseError(format!(
                        "section {:?} twice",
                        crate::text::shorten(name, 60)
                    )));
                }
                Line::Header(name) => sections.push((name, Vec::new())),
                Line::Data(data) => match sections.last_mut() {
                    Some((_, lines)) => lines.push(data),
                    None => return Err(ParseError("data before any section".into())),
                },
            }
        }
        if sections.last().map(|(n, _)| *n) != Some(section::END) {
            return Err(ParseError("it stopped before the end".into()));
        }
        Ok(Sections(sections))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| *n == name)
    }

    /// The lines of the section so named; none when there is none.
    pub(crate) fn get(&self, name: &str) -> &[&'a str] {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[][..], |(_, lines)| lines.as_slice())
    }

    /// A family's chains (`say_chains` in the shell library).
    fn chains(&self, v: &str, facts: &mut FamilyFacts) {
        facts.chain = parse_chain(self.get(&section::family(section::CHAIN, v)));
        facts.input = parse_chain(self.get(&section::family(section::INPUT, v))).unwrap_or_default();
        facts.docker_user = parse_chain(self.get(&section::family(section::DOCKER_USER, v)));
        facts.docker_chain = parse_chain(self.get(&section::family(section::DOCKER_CHAIN, v)));
        facts.prerouting =
            parse_chain(self.get(&section::family(section::PREROUTING, v))).unwrap_or_default();
        facts.guard = parse_chain(self.get(&section::family(section::GUARD, v)));
        // The node reads the whole table (`say_chains`); a rule's first line
        // with an open quote is seen here too, should a node not say so.
        let mut rules = [
            &facts.chain,
            &facts.docker_user,
            &facts.docker_chain,
            &facts.guard,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .chain(&facts.input)
        .chain(&facts.prerouting);
        facts.forged_rules = self
            .get(&section::family(section::FORGED, v))
            .contains(&said::FORGED)
            || rules.any(|r| opens_quote(r, true));
    }
}

/// Parses the read script's output. Strict about structure (a truncated
/// output, or a line neither framed nor a header, is an error, not an empty
/// node), lenient about data lines it does not need.
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
        let (set, forged_set) = parse_set(get(&section::family(section::SET, v)))?;
        let mut facts = FamilyFacts {
            set,
            audit: parse_audit(get(&section::family(section::AUDIT, v)))?,
            forged_set,
            ..FamilyFacts::default()
        };
        sections.chains(v, &mut facts);
        Ok(facts)
    };
    let (v4, v6) = (family("v4")?, family("v6")?);
    Ok(Observed {
        missing_tools: get(section::MISSING_TOOLS)
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        backend: first(section::BACKEND).as_deref().and_then(backend_of),
        v4,
        v6,
        restore_digest: first(section::RESTORE),
        applied_backend: first(section::BACKEND_FILE).as_deref().and_then(backend_of),
        systemd: first(section::SYSTEMD).as_deref() == Some(said::YES),
        unit_digest: first(section::UNIT),
        unit_enabled: first(section::UNIT_ENABLED).as_deref() == Some(said::ENABLED),
        pending_rollback: first(section::ROLLBACK).and_then(|l| {
            l.strip_prefix(said::ARMED).map(|rest| {
                rest.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            })
        }),
        pending_id: first(section::ROLLBACK).and_then(|l| {
            l.strip_prefix(said::ARMED)
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|id| id.parse().ok())
        }),
        uplinks: {
            let mut up: Vec<String> = get(section::UPLINKS)
                .iter()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty() && l != "lo")
                .collect();
            up.sort();
            up.dedup();
            up
        },
        rollback_failed: first(section::ROLLBACK_FAILED).as_deref() == Some(said::YES),
        routes: routes(get(section::ROUTES)),
        nft: nft_table(&sections)?,
        chosen: chosen(get(section::BACKEND_CHOICE)),
    })
}

/// The `nft` section: the table's name, then its JSON (one line, as `nft
/// -j` prints it); None when there is no JSON (no table) or no section
/// (the iptables backend).
fn nft_table(sections: &Sections) -> Result<Option<super::nft::NftTable>, ParseError> {
    let Some((name, json)) = sections.get(section::NFT).split_first() else {
        return Ok(None);
    };
    let json = json.join("\n");
    if json.trim().is_empty() {
        return Ok(None);
    }
    super::nft::parse(&json, name)
}

/// The backend a node took under `--backend auto` (lib.sh `choose`), and
/// why, in the node's words (`palisade's table is there`, `nft takes the
/// table`, `nft is not installed`, ...): shown escaped, never matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chosen {
    pub backend: FirewallBackend,
    pub why: String,
}

/// The `backend-choice` section: `nft WHY` or `ipt WHY`.
fn chosen(lines: &[&str]) -> Option<Chosen> {
    let (word, why) = lines.first()?.split_once(' ')?;
    let backend = match word {
        said::NFT => FirewallBackend::Nftables,
        said::IPT => FirewallBackend::Iptables,
        _ => return None,
    };
    Some(Chosen {
        backend,
        why: crate::text::shorten(why, 80),
    })
}

/// One route of a node's main table: traffic for `net` leaves by
/// `interface`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) interface: String,
    pub(crate) net: IpNet,
}

/// The `routes` section: `4 IFACE DST MASK` as /proc/net/route prints them
/// (hex, the host's byte order: little-endian on every node palisade
/// serves; a big-endian node's routes read as other networks, which only
/// ever leaves the interface unknown), and `6 IFACE DST LEN` as
/// /proc/net/ipv6_route does. A family marked `truncated` is dropped.
fn routes(lines: &[&str]) -> Vec<Route> {
    let mut out = Vec::new();
    let truncated = |fam: &str| {
        lines
            .iter()
            .any(|l| l.trim() == format!("{fam} {}", said::TRUNCATED))
    };
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let route = match words.as_slice() {
            ["4", interface, dst, mask] if !truncated("4") => {
                let (Ok(dst), Ok(mask)) = (u32::from_str_radix(dst, 16), u32::from_str_radix(mask, 16))
                else {
                    continue;
                };
                let mask = u32::from(std::net::Ipv4Addr::from(mask.to_le_bytes()));
                let len = mask.leading_ones();
                if mask.checked_shl(len).unwrap_or(0) != 0 {
                    continue; // not a prefix
                }
                let addr = std::net::Ipv4Addr::from(dst.to_le_bytes());
                ipnet::Ipv4Net::new(addr, len as u8)
                    .ok()
                    .map(|n| (interface, IpNet::V4(n.trunc())))
            }
            ["6", interface, dst, len] if !truncated("6") => {
                let (Ok(dst), Ok(len)) = (u128::from_str_radix(dst, 16), u8::from_str_radix(len, 16)) else {
                    continue;
                };
                ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(dst), len)
                    .ok()
                    .map(|n| (interface, IpNet::V6(n.trunc())))
            }
            _ => None,
        };
        if let Some((interface, net)) = route {
            out.push(Route {
                interface: (*interface).to_owned(),
                net,
            });
        }
    }
    out
}

impl Observed {
    /// The interface the node's main table sends traffic for `addr` by:
    /// the interface a connection from `addr` comes in on where routing is
    /// symmetric. None when no route (or only a default route) covers it.
    pub(crate) fn interface_to(&self, addr: IpAddr) -> Option<&str> {
        self.routes
            .iter()
            .filter(|r| r.net.prefix_len() > 0 && r.net.contains(&addr))
            .max_by_key(|r| r.net.prefix_len())
            .map(|r| r.interface.as_str())
    }
}

/// The controller's address as the node sees it, from the read script's
/// `origin` section (empty when the step was not given `SSH_CONNECTION`).
pub fn controller_address(text: &str) -> Option<IpAddr> {
    let mut lines = text.lines();
    lines.find(|l| l.strip_prefix(HEADER) == Some(section::ORIGIN))?;
    super::probe::origin_of(lines.next()?.strip_prefix(DATA)?)
}

/// Whether `line` opens (or closes) a quoted string that goes on past it:
/// an odd number of double quotes. iptables-save escapes `"` and `\` in a
/// quoted string with a backslash (`escapes`); `ipset save` has none to
/// escape, as ipset refuses `"` in a comment. Both print a newline in a
/// string as it is.
fn opens_quote(line: &str, escapes: bool) -> bool {
    let mut odd = false;
    let mut bytes = line.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' if escapes => {
                bytes.next();
            }
            b'"' => odd = !odd,
            _ => {}
        }
    }
    odd
}

pub(crate) fn backend_of(version: &str) -> Option<Backend> {
    if version.trim() == said::NFTABLES {
        Some(Backend::Nftables)
    } else if version.contains("nf_tables") {
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

/// `ipset save NAME`: the create line's type, and the `add` lines' members;
/// and whether a member's comment spans lines (which are then no members).
fn parse_set(lines: &[&str]) -> Result<(Option<SetFacts>, bool), ParseError> {
    let mut forged = false;
    let mut open = false;
    let mut own = Vec::new();
    for line in lines {
        if !open {
            own.push(*line);
        }
        if opens_quote(line, false) {
            open = !open;
            forged = true;
        }
    }
    let lines = own;
    let Some(create) = lines.iter().find(|l| l.starts_with("create ")) else {
        return Ok((None, forged));
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
    Ok((Some(SetFacts { kind, members }), forged))
}

/// Audit mode's set, as `ipset save` prints it (none when not said):
/// `create SET hash:ip,port family inet hashsize 1024 maxelem N timeout
/// 3600 counters comment ...`, then one line per flow, `add SET
/// ADDR,PROTO:PORT timeout LEFT packets P bytes B`. ipset names the
/// protocol (`tcp:9100`, `gre:0`), and for ICMP the message in place of
/// the port (`icmp:echo-request`): a flow without ports has port 0, as on
/// the nftables backend, so the messages of one source are one flow.
fn parse_audit(lines: &[&str]) -> Result<Option<AuditSetFacts>, ParseError> {
    let Some(create) = lines.iter().find(|l| l.starts_with("create ")) else {
        return Ok(None);
    };
    let words: Vec<&str> = create.split_whitespace().collect();
    let kind = match words.as_slice() {
        [_, _, kind, "family", fam, ..] => format!("{kind} family {fam}"),
        [_, _, kind, ..] => (*kind).to_owned(),
        _ => return Err(ParseError(format!("ipset create line {create:?}"))),
    };
    let after = |key: &str, words: &[&str]| {
        words
            .windows(2)
            .find(|w| w[0] == key)
            .and_then(|w| w[1].parse::<u64>().ok())
    };
    let timeout = after("timeout", &words);
    let mut facts = AuditSetFacts {
        kind,
        maxelem: after("maxelem", &words),
        timeout,
        counters: words.contains(&"counters"),
        flows: Vec::new(),
        elements: 0,
    };
    for line in lines.iter().filter(|l| l.starts_with("add ")) {
        facts.elements += 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = || {
            ParseError(format!(
                "ipset audit element {:?}",
                crate::text::shorten(line, 60)
            ))
        };
        let (addr, rest) = words.get(2).and_then(|w| w.split_once(',')).ok_or_else(bad)?;
        let (proto, port) = rest.split_once(':').ok_or_else(bad)?;
        let source: IpAddr = addr.parse().map_err(|_| bad())?;
        let proto = Proto::of(proto);
        let port = if proto.has_ports() {
            port.parse::<u16>().map_err(|_| bad())?
        } else {
            0
        };
        let left = after("timeout", &words).unwrap_or(0);
        let flow = Flow {
            source,
            proto,
            port,
            packets: after("packets", &words).unwrap_or(0),
            bytes: after("bytes", &words).unwrap_or(0),
            ago: Duration::from_secs(timeout.unwrap_or(AUDIT_TIMEOUT).saturating_sub(left)),
        };
        match facts
            .flows
            .iter_mut()
            .find(|f| (f.source, &f.proto, f.port) == (flow.source, &flow.proto, flow.port))
        {
            Some(same) => {
                same.packets += flow.packets;
                same.bytes += flow.bytes;
                same.ago = same.ago.min(flow.ago);
            }
            None => facts.flows.push(flow),
        }
    }
    Ok(Some(facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/observe/applied-old-layout.txt");

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// A node may print anything: lines cut, doubled, swapped or
        /// replaced by garbage (control characters, huge lines) never make
        /// the parser panic.
        #[test]
        fn any_node_output_parses_or_is_refused_without_a_panic(
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), 0u8..5, "(?s).{0,40}"),
                0..12,
            ),
            long in proptest::prelude::any::<bool>(),
        ) {
            let mut lines: Vec<String> = FIXTURE.lines().map(str::to_owned).collect();
            for (at, kind, text) in edits {
                let i = at.index(lines.len().max(1));
                match kind {
                    0 if i < lines.len() => lines[i] = format!("|{text}"),
                    1 => lines.insert(i.min(lines.len()), format!("|{text}")),
                    2 if i < lines.len() => { lines.remove(i); }
                    3 => lines.insert(i.min(lines.len()), text),
                    _ => lines.insert(i.min(lines.len()), format!("==> {text}")),
                }
            }
            if long {
                lines.insert(lines.len() / 2, format!("|{}", "\u{1b}[2J".repeat(100_000)));
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
        let text = FIXTURE.replacen("|-A INPUT -j PALISADE\n", "|-A INPUT -j PALISADE \n", 1);
        assert_ne!(text, FIXTURE);
        let o = parse(&text).unwrap();
        assert_eq!(o.v4.input[0], "-A INPUT -j PALISADE ");
    }

    #[test]
    fn an_untouched_node_has_nothing() {
        let text = "==> backend\n|iptables v1.8.9 (legacy)\n==> set-v4\n==> chain-v4\n==> input-v4\n|-P INPUT ACCEPT\n\
                    ==> docker-user-v4\n==> docker-chain-v4\n==> set-v6\n==> chain-v6\n==> input-v6\n|-P INPUT ACCEPT\n\
                    ==> docker-user-v6\n==> docker-chain-v6\n==> restore\n==> backend-file\n==> systemd\n|no\n\
                    ==> unit\n==> unit-enabled\n==> end\n";
        let o = parse(text).unwrap();
        assert_eq!(o.backend, Some(Backend::Legacy));
        assert_eq!(o.v4, FamilyFacts::default());
        assert_eq!(o.restore_digest, None);
    }

    /// A rollback that failed on the node is its own fact, not a pending
    /// change's countdown.
    #[test]
    fn the_routing_table_says_which_interface_leads_back_to_an_address() {
        // As /proc/net/route and /proc/net/ipv6_route print them on a
        // little-endian node (192.0.2.0/24 on eth0, 10.8.0.0/24 on wg0,
        // 10.8.0.128/25 on wg1, 2001:db8:8::/48 on wg0).
        let text = FIXTURE.replacen(
            "==> end",
            "==> routes\n|4 eth0 00000000 00000000\n|4 eth0 000200C0 00FFFFFF\n|4 wg0 0000080A 00FFFFFF\n\
             |4 wg1 8000080A 80FFFFFF\n|6 wg0 20010db8000800000000000000000000 30\n==> end",
            1,
        );
        let o = parse(&text).unwrap();
        let to = |a: &str| o.interface_to(a.parse().unwrap());
        assert_eq!(to("10.8.0.7"), Some("wg0"));
        assert_eq!(to("10.8.0.200"), Some("wg1"));
        assert_eq!(to("192.0.2.55"), Some("eth0"));
        assert_eq!(to("2001:db8:8::5"), Some("wg0"));
        // Only the default route covers it: not known.
        assert_eq!(to("203.0.113.1"), None);
        // A table cut short tells nothing for its family.
        let cut = text
            .replacen("==> end", "==> x\n==> end", 1)
            .replacen("|4 wg1", "|4 truncated\n|4 wg1", 1);
        let o = parse(&cut).unwrap();
        assert_eq!(o.interface_to("10.8.0.7".parse().unwrap()), None);
        assert_eq!(o.interface_to("2001:db8:8::5".parse().unwrap()), Some("wg0"));
    }

    /// Audit mode's set as ipset 7.17 saves it: protocols by name, ICMP
    /// messages in place of a port (one flow per source, port 0), other
    /// protocols with port 0; full at its bound, counted in elements.
    #[test]
    fn an_audit_set_is_read_as_flows() {
        let lines = [
            "create palisade4-aud hash:ip,port family inet hashsize 1024 maxelem 5 timeout 3600 counters comment bucketsize 12 initval 0xbc1940b9",
            "add palisade4-aud 198.18.0.2,tcp:9100 timeout 3500 packets 4 bytes 240",
            "add palisade4-aud 198.18.0.2,udp:53 timeout 3599 packets 1 bytes 30",
            "add palisade4-aud 198.18.0.2,icmp:echo-request timeout 3000 packets 2 bytes 56",
            "add palisade4-aud 198.18.0.2,icmp:port-unreachable timeout 3590 packets 1 bytes 28",
            "add palisade4-aud 198.18.0.2,gre:0 timeout 3599 packets 1 bytes 36",
        ];
        let facts = parse_audit(&lines).unwrap().unwrap();
        assert_eq!(facts.kind, "hash:ip,port family inet");
        assert_eq!(
            (facts.maxelem, facts.timeout, facts.counters),
            (Some(5), Some(3600), true)
        );
        assert!(facts.full(), "five elements, four flows");
        let got: Vec<(String, u16, u64, u64)> = facts
            .flows
            .iter()
            .map(|f| (f.proto.to_string(), f.port, f.packets, f.ago.as_secs()))
            .collect();
        assert_eq!(
            got,
            [
                ("tcp".to_owned(), 9100, 4, 100),
                ("udp".to_owned(), 53, 1, 1),
                ("icmp".to_owned(), 0, 3, 10),
                ("gre".to_owned(), 0, 1, 1),
            ]
        );
        assert!(
            !AuditSetFacts {
                elements: 4,
                ..facts.clone()
            }
            .full()
        );
        assert!(parse_audit(&["create x hash:ip,port", "add x 198.18.0.2"]).is_err());
        assert!(parse_audit(&["create x hash:ip,port", "add x nonsense,tcp:1"]).is_err());
        assert_eq!(parse_audit(&[]).unwrap(), None);
        // The guard in audit mode, and the sets as read, make the node's
        // record.
        let mut o = Observed::default();
        o.v4.guard = Some(vec![
            "-A PALISADE-GUARD -m set ! --match-set palisade4-aud src,dst -j SET --add-set palisade4-aud src,dst".into(),
        ]);
        o.v4.audit = Some(facts);
        let (mode, recorded) = o.ipt_audit();
        assert_eq!(mode, FirewallMode::Audit);
        assert_eq!((recorded.flows.len(), recorded.full), (4, vec![Family::V4]));
        assert_eq!(Observed::default().ipt_audit().0, FirewallMode::Enforce);
    }

    #[test]
    fn a_failed_rollback_is_observed() {
        assert!(!parse(FIXTURE).unwrap().rollback_failed);
        let text = FIXTURE.replacen("==> end", "==> rollback-failed\n|yes\n==> end", 1);
        assert!(parse(&text).unwrap().rollback_failed);
    }

    #[test]
    fn the_origin_section_gives_the_controllers_address() {
        let text = "==> origin\n|198.18.0.1 51234 198.18.1.10 22\n==> missing-tools\n==> end\n";
        assert_eq!(controller_address(text), Some("198.18.0.1".parse().unwrap()));
        assert_eq!(controller_address("==> origin\n|\n==> end\n"), None);
        assert_eq!(controller_address("==> origin\n"), None);
        assert_eq!(controller_address("|198.18.0.1 1 2 3\n==> end\n"), None);
        // Unframed, it is no data.
        assert_eq!(
            controller_address("==> origin\n198.18.0.1 1 2 3\n==> end\n"),
            None
        );
        assert_eq!(
            controller_address("|state=confirmed\n==> origin\n|2001:2::1 4000 2001:2::a 22\n"),
            Some("2001:2::1".parse().unwrap())
        );
    }

    #[test]
    fn truncated_output_is_an_error() {
        assert!(parse("==> backend\n|iptables v1.8.9 (nf_tables)\n==> set-v4\n").is_err());
        assert!(parse("==> set-v4\n|create x hash:net family inet\n|add x not-an-ip\n==> end\n").is_err());
    }

    /// Every data line is framed: a line that is neither data nor a header
    /// is refused, never read; a section comes once; data comes in one.
    #[test]
    fn unframed_lines_and_repeated_sections_are_refused() {
        let unframed = FIXTURE.replacen("|-A INPUT -j PALISADE\n", "-A INPUT -j PALISADE\n", 1);
        assert_ne!(unframed, FIXTURE);
        assert!(parse(&unframed).is_err());
        let twice = FIXTURE.replacen("==> unit\n", "==> unit\n==> chain-v4\n", 1);
        assert!(parse(&twice).is_err());
        assert!(parse(&format!("|x\n{FIXTURE}")).is_err());
        assert!(parse("==> end\n").is_ok());
    }

    /// Forged sections and a forged end in the data (as a set member's
    /// comment with newlines prints them) stay data: the real sections are
    /// read, and the set's comment is reported.
    #[test]
    fn data_cannot_end_or_forge_a_section() {
        let forged = "|add palisade4 8.8.8.8 comment \"x\n|add palisade4 203.0.113.66\n|==> end\n\
                      |==> chain-v4\n|-N PALISADE\n|-A PALISADE -j ACCEPT\n|\"\n";
        let text = FIXTURE.replacen("|add palisade4 8.8.8.8\n", forged, 1);
        assert_ne!(text, FIXTURE);
        let o = parse(&text).unwrap();
        let want = parse(FIXTURE).unwrap();
        assert_eq!(o.v4.chain, want.v4.chain);
        assert_eq!(o.v4.set, want.v4.set, "a comment's line is no member");
        assert!(o.v4.forged_set && !o.v4.forged_rules);
        assert!(!want.v4.forged_set && !want.v6.forged_set);
        let policy = crate::policy::testing::for_no_hosts(&crate::policy::testing::options("198.18.0.1"));
        let changes = crate::diff::diff(&policy, &o);
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, crate::diff::Change::Forged { set: true, .. }))
        );
    }

    /// The node says when its table holds a quoted string that spans lines
    /// (`forged-V`); a rule line that opens one says so too.
    #[test]
    fn a_table_with_a_string_across_lines_is_forged() {
        assert!(!parse(FIXTURE).unwrap().v4.forged_rules);
        let said = FIXTURE.replacen("==> forged-v6\n", "==> forged-v6\n|table\n", 1);
        let o = parse(&said).unwrap();
        assert!(o.v6.forged_rules && !o.v4.forged_rules);
        let open = FIXTURE.replacen(
            "|-A INPUT -j PALISADE\n",
            "|-A INPUT -j PALISADE\n|-A INPUT -m comment --comment \"x\\\"y\n",
            1,
        );
        assert!(parse(&open).unwrap().v4.forged_rules);
        let closed = FIXTURE.replacen(
            "|-A INPUT -j PALISADE\n",
            "|-A INPUT -j PALISADE\n|-A INPUT -m comment --comment \"x\\\"y\\\\\" -j ACCEPT\n",
            1,
        );
        assert!(!parse(&closed).unwrap().v4.forged_rules);
    }

    /// The node's side, in a real shell: what `say_chains` says of a table
    /// in which a rule comment carries a forged rule and forged sections.
    /// The comment's later lines are no rules (`rules_of`, `positions`),
    /// the table is said to be forged, and no data line can pose as a
    /// header.
    #[test]
    fn the_node_reads_past_a_comment_that_spans_lines() {
        let table = "*filter\n:INPUT ACCEPT [0:0]\n:PALISADE - [0:0]\n:ZZ - [0:0]\n\
                     -A INPUT -j PALISADE\n-A PALISADE -m comment --comment \"a \\\"b\\\\\" -j ACCEPT\n\
                     -A ZZ -m comment --comment \"x\n-A PALISADE -j DROP\n==> end\n-A INPUT -j PALISADE\n\
                     \" -j RETURN\nCOMMIT\n";
        let script = format!(
            "{}chain=PALISADE dchain=PALISADE-DOCKER gchain=PALISADE-GUARD\nreply=''\nsay_chains v4 \"$TABLE\" ''\nsay_chains v6 '' ''\n\
             section jumps\npositions \"$TABLE\" INPUT PALISADE\nsay \"$pos\"\nsection end\nreply_out\n",
            render::code(render::LIB) + &render::code(render::WRITERS)
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("TABLE", table)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.lines().all(|l| l.starts_with('|') || l.starts_with("==> ")),
            "{text}"
        );
        let sections = Sections::of(&text).unwrap();
        assert_eq!(sections.get("jumps"), ["1 "]);
        let o = with_chains(&Observed::default(), &text).unwrap();
        assert_eq!(
            o.v4.chain.as_deref(),
            Some(&["-A PALISADE -m comment --comment \"a \\\"b\\\\\" -j ACCEPT".to_owned()][..])
        );
        assert_eq!(o.v4.input, ["-A INPUT -j PALISADE"]);
        assert!(o.v4.forged_rules && !o.v6.forged_rules);
        let plain = table.replace("\"x\n-A PALISADE -j DROP\n==> end\n-A INPUT -j PALISADE\n\"", "x");
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("TABLE", &plain)
            .output()
            .unwrap();
        let o = with_chains(&Observed::default(), &String::from_utf8(out.stdout).unwrap()).unwrap();
        assert!(!o.v4.forged_rules);
    }
}
