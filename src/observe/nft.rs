//! palisade's nftables table as a node shows it: `nft -j list table inet
//! T` (libnftables-json(5)), one JSON document, turned into typed facts.
//! Pure, and total: whatever the text, an answer or an error, never a
//! panic.
//!
//! Each rule is turned back into the text `render::nft` writes for it, so
//! a rule the node has equals the rule palisade wants exactly when they
//! are the same expressions. Forms palisade never writes are shown as `?`
//! and their compact JSON: a text no rendered rule can equal, so a rule
//! changed by hand is drift however it was changed. Every string read
//! from the node (names, comments, prefixes) is either of a few inert
//! characters or written JSON-quoted, so none can pose as more of a rule.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::firewall::ParseError;
use crate::net::Net;
use crate::policy::{Family, FirewallMode, MARK};
use crate::render::nft::{AUDIT_TIMEOUT, AUDIT4, AUDIT6, CHAIN, audit_set};

/// The table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NftTable {
    /// A rule of [`CHAIN`] carries palisade's mark as its comment (the
    /// first, as palisade writes it; anywhere, as for the iptables
    /// backend's chains, so that a rule inserted above it by hand is drift
    /// to repair, not a table to refuse): palisade made this table, and
    /// may replace it. It never replaces one it did not make.
    pub(crate) marked: bool,
    /// The table's flags (`dormant` turns the whole table off); palisade
    /// sets none. nft 1.0.6 prints a dormant table's flags wrongly
    /// (`"inet"`), but prints some.
    pub(crate) flags: Vec<String>,
    pub(crate) sets: BTreeMap<String, NftSet>,
    pub(crate) chains: BTreeMap<String, NftChain>,
    /// Objects palisade never makes (maps, named counters, quotas,
    /// flowtables, ...), as `KIND NAME`.
    pub(crate) others: Vec<String>,
}

impl NftTable {
    /// The guard's mode: audit when a rule of [`CHAIN`] updates an audit
    /// set (as only audit mode's rules do), else enforce.
    pub(crate) fn mode(&self) -> FirewallMode {
        let audits = |r: &String| {
            [AUDIT4, AUDIT6]
                .iter()
                .any(|s| r.contains(&format!(" update @{s} ")))
        };
        match self.chains.get(CHAIN) {
            Some(c) if c.rules.iter().any(audits) => FirewallMode::Audit,
            _ => FirewallMode::Enforce,
        }
    }

    /// The table without what its audit sets recorded: what a rollback
    /// puts back, and checks.
    pub(crate) fn unrecorded(&self) -> NftTable {
        let mut t = self.clone();
        for set in t.sets.values_mut() {
            set.flows.clear();
        }
        t
    }

    /// What the audit sets recorded, both families: the flows, and which
    /// sets are full (they hold their `size`: a flow more is not recorded).
    pub(crate) fn recorded(&self) -> Recorded {
        let mut out = Recorded::default();
        for family in Family::BOTH {
            let Some(set) = self.sets.get(audit_set(family)) else {
                continue;
            };
            out.flows.extend(set.flows.iter().cloned());
            if set.size.is_some_and(|size| set.flows.len() as u64 >= size) {
                out.full.push(family);
            }
        }
        out
    }
}

/// What a node in audit mode recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) flows: Vec<Flow>,
    /// The families whose audit set is full: flows beyond it went
    /// unrecorded.
    pub(crate) full: Vec<Family>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NftSet {
    /// `ipv4_addr`; a concatenation as `ipv4_addr . inet_service`.
    pub(crate) kind: String,
    pub(crate) flags: Vec<String>,
    /// The members, for a set of `ipv4_addr` or `ipv6_addr` (of other
    /// kinds, none are read).
    pub(crate) elements: Vec<Element>,
    /// The most elements it takes (`size`), when it has a bound.
    pub(crate) size: Option<u64>,
    /// Seconds an element lives unless refreshed (`timeout`), when set.
    pub(crate) timeout: Option<u64>,
    /// For an audit set (`ADDR . inet_proto . inet_service`): the flows it
    /// recorded (of other kinds, none are read).
    pub(crate) flows: Vec<Flow>,
}

/// A new connection audit mode let through and recorded: what enforce
/// mode would drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Flow {
    pub(crate) source: IpAddr,
    pub(crate) proto: Proto,
    /// The destination port the client asked for (before any DNAT); 0 for
    /// a protocol without ports.
    pub(crate) port: u16,
    /// Packets that reached the end of the guard: a connection's first
    /// (and any retried) ones, as later ones are established.
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// How long ago its last packet came (its timeout restarts with each).
    /// On the iptables backend, how long ago its first packet came (see
    /// `Policy::guard_rules`): the set forgets a flow an hour after that,
    /// and records it afresh at its next packet.
    pub(crate) ago: Duration,
}

/// A flow's protocol, as nft names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Proto {
    Tcp,
    Udp,
    Sctp,
    Dccp,
    UdpLite,
    Icmp,
    /// Any other, by nft's name for it (`esp`, `gre`) or its number: an
    /// inert word (see `bare`).
    Other(String),
}

impl Proto {
    pub(crate) fn of(name: &str) -> Proto {
        match name {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            "dccp" => Proto::Dccp,
            "udplite" => Proto::UdpLite,
            "icmp" => Proto::Icmp,
            other => Proto::Other(bare(other)),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Dccp => "dccp",
            Proto::UdpLite => "udplite",
            Proto::Icmp => "icmp",
            Proto::Other(name) => name,
        }
    }

    /// Whether its header has ports (the flow's port is one).
    pub(crate) fn has_ports(&self) -> bool {
        matches!(
            self,
            Proto::Tcp | Proto::Udp | Proto::Sctp | Proto::Dccp | Proto::UdpLite
        )
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of an address set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Element {
    Addr(IpAddr),
    Prefix(Net),
    /// First and last address, both in the range.
    Range(IpAddr, IpAddr),
}

impl Element {
    /// The first and last address, as numbers (see `render::nft::bounds`).
    pub(crate) fn bounds(&self) -> (u128, u128) {
        match self {
            Element::Addr(a) => crate::render::nft::bounds(&Net::from(*a)),
            Element::Prefix(n) => crate::render::nft::bounds(n),
            Element::Range(a, b) => {
                let (first, _) = crate::render::nft::bounds(&Net::from(*a));
                let (_, last) = crate::render::nft::bounds(&Net::from(*b));
                (first, last)
            }
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NftChain {
    /// None for a regular chain (one reached only by a jump).
    pub(crate) base: Option<BaseChain>,
    /// In order, as `render::nft::guard_rules` writes them.
    pub(crate) rules: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseChain {
    /// `filter`, `nat`, `route`.
    pub(crate) kind: String,
    pub(crate) hook: String,
    pub(crate) prio: i64,
    pub(crate) policy: String,
}

#[derive(Deserialize)]
struct Listing {
    nftables: Vec<Value>,
}

#[derive(Deserialize)]
struct RawTable {
    family: String,
    name: String,
    #[serde(default)]
    flags: Option<Value>,
}

#[derive(Deserialize)]
struct RawSet {
    family: String,
    table: String,
    name: String,
    #[serde(rename = "type")]
    kind: Value,
    #[serde(default)]
    flags: Option<Value>,
    #[serde(default)]
    elem: Option<Vec<Value>>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    timeout: Option<u64>,
}

#[derive(Deserialize)]
struct RawChain {
    family: String,
    table: String,
    name: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    prio: Option<i64>,
    #[serde(default)]
    policy: Option<String>,
}

#[derive(Deserialize)]
struct RawRule {
    family: String,
    table: String,
    chain: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    expr: Vec<Value>,
}

/// Table `inet T` in the JSON of `nft -j list table inet T`: None when the
/// listing does not hold it.
pub(crate) fn parse(json: &str, table: &str) -> Result<Option<NftTable>, ParseError> {
    let listing: Listing =
        serde_json::from_str(json).map_err(|e| ParseError::new(&format!("nft -j list: {e}")))?;
    let ours = |family: &str, name: &str| family == "inet" && name == table;
    let mut found: Option<NftTable> = None;
    let mut rules: Vec<RawRule> = Vec::new();
    for object in listing.nftables {
        let Value::Object(object) = object else {
            return Err(ParseError::new("nft -j list: an entry is not an object"));
        };
        for (key, value) in object {
            match key.as_str() {
                "metainfo" => {}
                "table" => {
                    let t: RawTable = read("table", value)?;
                    if ours(&t.family, &t.name) {
                        found.get_or_insert_with(NftTable::default).flags = words(t.flags.as_ref());
                    }
                }
                "set" => {
                    let s: RawSet = read("set", value)?;
                    if ours(&s.family, &s.table) {
                        let set = set(&s)?;
                        let t = found.get_or_insert_with(NftTable::default);
                        if t.sets.insert(s.name.clone(), set).is_some() {
                            return Err(ParseError::new("nft -j list: a set is listed twice"));
                        }
                    }
                }
                "chain" => {
                    let c: RawChain = read("chain", value)?;
                    if ours(&c.family, &c.table) {
                        let base = c.hook.map(|hook| BaseChain {
                            kind: c.kind.unwrap_or_default(),
                            hook,
                            prio: c.prio.unwrap_or_default(),
                            policy: c.policy.unwrap_or_else(|| "accept".to_owned()),
                        });
                        let t = found.get_or_insert_with(NftTable::default);
                        let chain = NftChain { base, rules: vec![] };
                        if t.chains.insert(c.name, chain).is_some() {
                            return Err(ParseError::new("nft -j list: a chain is listed twice"));
                        }
                    }
                }
                "rule" => {
                    let r: RawRule = read("rule", value)?;
                    if ours(&r.family, &r.table) {
                        rules.push(r);
                    }
                }
                // A map, named counter, quota, flowtable, ...: a `family`,
                // `table` and `name` of ours make it an object in the
                // table palisade does not make.
                other => {
                    let field = |f: &str| value.get(f).and_then(Value::as_str);
                    if let (Some(family), Some(t)) = (field("family"), field("table"))
                        && ours(family, t)
                    {
                        let name = field("name").unwrap_or("?");
                        found.get_or_insert_with(NftTable::default).others.push(format!(
                            "{} {}",
                            bare(other),
                            bare(name)
                        ));
                    }
                }
            }
        }
    }
    let Some(mut t) = found else {
        return Ok(None);
    };
    for r in rules {
        t.marked |= r.chain == CHAIN && r.comment.as_deref() == Some(MARK);
        let text = rule_text(&r.expr, r.comment.as_deref());
        let chain = t
            .chains
            .get_mut(&r.chain)
            .ok_or_else(|| ParseError::new("nft -j list: a rule of a chain that is not listed"))?;
        chain.rules.push(text);
    }
    Ok(Some(t))
}

fn read<T: for<'de> Deserialize<'de>>(what: &str, value: Value) -> Result<T, ParseError> {
    serde_json::from_value(value).map_err(|e| ParseError::new(&format!("nft -j list: a {what}: {e}")))
}

/// A flag or a list of flags (nft prints one either way).
fn words(value: Option<&Value>) -> Vec<String> {
    match value {
        None => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().map(scalar).collect(),
        Some(other) => vec![compact(other)],
    }
}

fn set(raw: &RawSet) -> Result<NftSet, ParseError> {
    let kind = match &raw.kind {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().map(scalar).collect::<Vec<_>>().join(" . "),
        other => compact(other),
    };
    let want_v4 = match kind.as_str() {
        "ipv4_addr" => Some(true),
        "ipv6_addr" => Some(false),
        _ => None,
    };
    let audit_v4 = match kind.as_str() {
        "ipv4_addr . inet_proto . inet_service" => Some(true),
        "ipv6_addr . inet_proto . inet_service" => Some(false),
        _ => None,
    };
    let mut flows = Vec::new();
    if let Some(v4) = audit_v4 {
        let timeout = raw.timeout.unwrap_or(AUDIT_TIMEOUT);
        for e in raw.elem.iter().flatten() {
            let f = flow(e, timeout).ok_or_else(|| ParseError::new("nft -j list: an audit set element"))?;
            if f.source.is_ipv4() != v4 {
                return Err(ParseError::new(
                    "nft -j list: a set element of the other address family",
                ));
            }
            flows.push(f);
        }
    }
    let mut elements = Vec::new();
    if let Some(v4) = want_v4 {
        for e in raw.elem.iter().flatten() {
            let e = element(e).ok_or_else(|| ParseError::new("nft -j list: a set element"))?;
            let family_v4 = match e {
                Element::Addr(a) | Element::Range(a, _) => a.is_ipv4(),
                Element::Prefix(n) => n.is_ipv4(),
            };
            if family_v4 != v4 {
                return Err(ParseError::new(
                    "nft -j list: a set element of the other address family",
                ));
            }
            elements.push(e);
        }
    }
    Ok(NftSet {
        kind,
        flags: words(raw.flags.as_ref()),
        elements,
        size: raw.size,
        timeout: raw.timeout,
        flows,
    })
}

/// One element of an audit set: `{"elem": {"val": {"concat": [ADDR,
/// PROTO, PORT]}, "expires": S, "counter": {"packets": P, "bytes": B}}}`
/// (`timeout`, the set's, when an element has none of its own). An
/// element without a counter or an expiry counts none and is as old as
/// the timeout allows.
fn flow(value: &Value, timeout: u64) -> Option<Flow> {
    let e = value.get("elem")?;
    let parts = e.get("val")?.get("concat")?.as_array()?;
    let [addr, proto, port] = parts.as_slice() else {
        return None;
    };
    let source: IpAddr = addr.as_str()?.parse().ok()?;
    let proto = match proto {
        Value::String(name) => Proto::of(name),
        Value::Number(n) => Proto::Other(u8::try_from(n.as_u64()?).ok()?.to_string()),
        _ => return None,
    };
    let port = u16::try_from(port.as_u64()?).ok()?;
    let timeout = e.get("timeout").and_then(Value::as_u64).unwrap_or(timeout);
    let expires = e.get("expires").and_then(Value::as_u64).unwrap_or(0);
    let counter = e.get("counter");
    let count = |k: &str| {
        counter
            .and_then(|c| c.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Some(Flow {
        source,
        proto,
        port,
        packets: count("packets"),
        bytes: count("bytes"),
        ago: Duration::from_secs(timeout.saturating_sub(expires)),
    })
}

/// An address, a prefix, a range, or one of them wrapped with its own
/// attributes (`{"elem": {"val": ..., "comment": ...}}`).
fn element(value: &Value) -> Option<Element> {
    let addr = |v: &Value| v.as_str().and_then(|s| s.parse::<IpAddr>().ok());
    match value {
        Value::String(_) => addr(value).map(Element::Addr),
        Value::Object(o) if o.len() == 1 => {
            if let Some(p) = o.get("prefix") {
                let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
                let net = IpNet::new(addr(p.get("addr")?)?, len).ok()?;
                Some(Element::Prefix(Net::from(net)))
            } else if let Some(Value::Array(r)) = o.get("range") {
                let [a, b] = r.as_slice() else { return None };
                let (a, b) = (addr(a)?, addr(b)?);
                let ok =
                    a.is_ipv4() == b.is_ipv4() && Element::Addr(a).bounds().0 <= Element::Addr(b).bounds().0;
                ok.then_some(Element::Range(a, b))
            } else if let Some(Value::Object(e)) = o.get("elem") {
                match e.get("val")? {
                    Value::Object(inner) if inner.contains_key("elem") => None,
                    val => element(val),
                }
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A rule's statements, as `render::nft` writes them, and its comment.
pub(crate) fn rule_text(expr: &[Value], comment: Option<&str>) -> String {
    let mut parts: Vec<String> = expr.iter().map(statement).collect();
    if let Some(c) = comment {
        parts.push(format!("comment {}", quoted(c)));
    }
    parts.join(" ")
}

/// One statement, or `? JSON` for a form palisade never writes.
fn statement(value: &Value) -> String {
    known(value).unwrap_or_else(|| format!("? {}", compact(value)))
}

fn known(value: &Value) -> Option<String> {
    let Value::Object(o) = value else { return None };
    if o.len() != 1 {
        return None;
    }
    let (key, body) = o.iter().next()?;
    match (key.as_str(), body) {
        // Every verdict without an argument, as nft prints it: the ones
        // palisade writes, and those a hand edit may add (`return`).
        ("accept" | "drop" | "return" | "continue", Value::Null) => Some(key.clone()),
        ("jump" | "goto", Value::Object(j)) if j.len() == 1 => {
            Some(format!("{key} {}", ident(j.get("target")?.as_str()?)?))
        }
        ("match", Value::Object(m)) => {
            if m.len() != 3 {
                return None;
            }
            let (left, quote) = selector(m.get("left")?)?;
            let op = match m.get("op")?.as_str()? {
                // nft writes both without an operator (`in` tests flags).
                "==" | "in" => String::new(),
                "!=" => "!= ".to_owned(),
                _ => return None,
            };
            Some(format!("{left} {op}{}", value_text(m.get("right")?, quote)?))
        }
        // Only the limit palisade writes: a number of packets per unit,
        // its burst spelt out.
        ("limit", Value::Object(l)) => {
            let rate = l.get("rate")?.as_u64()?;
            let per = ident(l.get("per")?.as_str()?)?;
            let burst = l.get("burst")?.as_u64()?;
            (l.len() == 3).then(|| format!("limit rate {rate}/{per} burst {burst} packets"))
        }
        // Only the update audit mode writes: a key of selectors (and a
        // constant 0) into a named set.
        ("set", Value::Object(u)) if u.len() == 3 => {
            let op = ident(u.get("op")?.as_str()?)?;
            let set = ident(u.get("set")?.as_str()?.strip_prefix('@')?)?;
            let parts = u.get("elem")?.get("concat")?.as_array()?;
            let key: Option<Vec<String>> = parts
                .iter()
                .map(|p| match p {
                    Value::Number(n) => Some(n.to_string()),
                    other => selector(other).map(|(s, _)| s),
                })
                .collect();
            Some(format!("{op} @{set} {{ {} }}", key?.join(" . ")))
        }
        ("log", Value::Object(l)) => {
            let prefix = l.get("prefix")?.as_str()?;
            (l.len() == 1).then(|| format!("log prefix {}", quoted(prefix)))
        }
        _ => None,
    }
}

/// The left side of a match, and whether its values are strings nft
/// quotes (interface names).
fn selector(value: &Value) -> Option<(String, bool)> {
    let Value::Object(o) = value else { return None };
    if o.len() != 1 {
        return None;
    }
    let (key, body) = o.iter().next()?;
    let Value::Object(b) = body else { return None };
    match key.as_str() {
        "meta" if b.len() == 1 => {
            let k = ident(b.get("key")?.as_str()?)?;
            match k {
                "iifname" | "oifname" => Some((k.to_owned(), true)),
                _ => Some((format!("meta {k}"), false)),
            }
        }
        "ct" if b.len() == 1 => Some((format!("ct {}", ident(b.get("key")?.as_str()?)?), false)),
        "payload" if b.len() == 2 => {
            let protocol = ident(b.get("protocol")?.as_str()?)?;
            let field = ident(b.get("field")?.as_str()?)?;
            Some((format!("{protocol} {field}"), false))
        }
        _ => None,
    }
}

/// The right side of a match.
fn value_text(value: &Value, quote: bool) -> Option<String> {
    match value {
        Value::String(s) if quote => Some(quoted(s)),
        Value::String(s) => match s.strip_prefix('@') {
            Some(set) => Some(format!("@{}", ident(set)?)),
            None => Some(bare(s)),
        },
        Value::Number(n) => Some(n.to_string()),
        // Flags, as nft writes them: `established,related`.
        Value::Array(items) => items
            .iter()
            .map(|i| value_text(i, quote).filter(|_| !i.is_array() && !i.is_object()))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        Value::Object(o) if o.len() == 1 => {
            if let Some(Value::Array(r)) = o.get("range") {
                let [a, b] = r.as_slice() else { return None };
                Some(format!("{}-{}", scalar_text(a, quote)?, scalar_text(b, quote)?))
            } else if let Some(p) = o.get("prefix") {
                let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
                Some(format!("{addr}/{}", p.get("len")?.as_u64()?))
            } else if let Some(Value::Array(items)) = o.get("set") {
                let items: Option<Vec<String>> = items.iter().map(|i| scalar_text(i, quote)).collect();
                Some(format!("{{ {} }}", items?.join(", ")))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn scalar_text(value: &Value, quote: bool) -> Option<String> {
    match value {
        Value::String(_) | Value::Number(_) => value_text(value, quote),
        _ => None,
    }
}

/// A name nft reads bare, or None.
fn ident(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b));
    ok.then_some(s)
}

/// A symbolic value (`established`, `ipv6-icmp`) bare; anything else
/// JSON-quoted, so that no value reads as more of the rule.
fn bare(s: &str) -> String {
    match ident(s) {
        Some(s) => s.to_owned(),
        None => quoted(s),
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

fn compact(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRESH: &str = include_str!("../../tests/fixtures/nft/fresh.json");

    #[test]
    fn a_fresh_table_reads_back_as_rendered() {
        let t = parse(FRESH, "palisade").unwrap().expect("the table is listed");
        assert!(t.marked);
        assert!(t.flags.is_empty() && t.others.is_empty());
        let guard = &t.chains[CHAIN];
        assert_eq!(
            guard.base,
            Some(BaseChain {
                kind: "filter".into(),
                hook: "prerouting".into(),
                prio: -150,
                policy: "accept".into()
            })
        );
        assert_eq!(guard.rules[0], "iifname \"lo\" accept comment \"palisade\"");
        let v4 = &t.sets["palisade4"];
        assert_eq!(
            (v4.kind.as_str(), v4.flags.as_slice()),
            ("ipv4_addr", &["interval".to_owned()][..])
        );
        assert!(v4.elements.contains(&Element::Addr("127.0.0.1".parse().unwrap())));
        assert_eq!(parse(FRESH, "other").unwrap(), None);
    }

    #[test]
    fn an_audit_table_reads_back_its_flows() {
        const AUDIT: &str = include_str!("../../tests/fixtures/nft/audit.json");
        let t = parse(AUDIT, "palisade").unwrap().expect("the table is listed");
        assert_eq!(t.mode(), FirewallMode::Audit);
        let rules = &t.chains[CHAIN].rules;
        assert_eq!(
            rules[rules.len() - 4..],
            [
                "meta l4proto { tcp, udp, dccp, sctp, udplite } update @audit4 { ip saddr . meta l4proto . th dport }",
                "meta l4proto != { tcp, udp, dccp, sctp, udplite } update @audit4 { ip saddr . meta l4proto . 0 }",
                "meta l4proto { tcp, udp, dccp, sctp, udplite } update @audit6 { ip6 saddr . meta l4proto . th dport }",
                "meta l4proto != { tcp, udp, dccp, sctp, udplite } update @audit6 { ip6 saddr . meta l4proto . 0 }",
            ]
        );
        let a4 = &t.sets[AUDIT4];
        assert_eq!((a4.size, a4.timeout), (Some(6), Some(3600)));
        let recorded = t.recorded();
        // Six in audit4 (full: the seventh, to 8080 or ICMP, came later
        // and went unrecorded), one in audit6.
        assert_eq!(recorded.full, [Family::V4]);
        assert_eq!(recorded.flows.len(), 7);
        let out: IpAddr = "198.18.9.9".parse().unwrap();
        let f = |proto: Proto, port| recorded.flows.iter().find(|f| f.proto == proto && f.port == port);
        let scrape = f(Proto::Tcp, 9100).expect("two SYNs to 9100");
        assert_eq!((scrape.source, scrape.packets, scrape.bytes), (out, 2, 120));
        assert!(scrape.ago <= Duration::from_secs(1), "{scrape:?}");
        let ping = f(Proto::Icmp, 0).expect("the echo, with port 0");
        assert_eq!((ping.source, ping.packets), (out, 1));
        let v6 = recorded.flows.iter().find(|f| f.source.is_ipv6()).unwrap();
        assert_eq!(
            (v6.source, v6.packets),
            ("2001:db8::9".parse::<IpAddr>().unwrap(), 0)
        );
        // An enforcing table records nothing and is in enforce mode.
        let fresh = parse(FRESH, "palisade").unwrap().unwrap();
        assert_eq!(
            (fresh.mode(), fresh.recorded()),
            (FirewallMode::Enforce, Recorded::default())
        );
    }

    #[test]
    fn audit_elements_palisade_cannot_read_are_errors() {
        let set = |elem: &str| {
            format!(
                r#"{{"nftables":[{{"set":{{"family":"inet","table":"palisade","name":"audit4","type":["ipv4_addr","inet_proto","inet_service"],"size":4,"timeout":3600,"elem":[{elem}]}}}}]}}"#
            )
        };
        let ok = parse(
            &set(r#"{"elem":{"val":{"concat":["192.0.2.1",47,0]},"expires":3000}}"#),
            "palisade",
        )
        .unwrap()
        .unwrap();
        let flow = &ok.sets[AUDIT4].flows[0];
        assert_eq!(
            (&flow.proto, flow.packets, flow.ago),
            (&Proto::Other("47".into()), 0, Duration::from_secs(600))
        );
        for bad in [
            r#"{"elem":{"val":{"concat":["::1","tcp",22]}}}"#,
            r#"{"elem":{"val":{"concat":["192.0.2.1","tcp",65536]}}}"#,
            r#"{"elem":{"val":{"concat":["192.0.2.1","tcp"]}}}"#,
            r#"{"elem":{"val":{"concat":["192.0.2.1",300,1]}}}"#,
            r#""192.0.2.1""#,
        ] {
            assert!(parse(&set(bad), "palisade").is_err(), "{bad}");
        }
        // A protocol name that could pose as more is quoted.
        let odd = parse(
            &set(r#"{"elem":{"val":{"concat":["192.0.2.1","x y",1]}}}"#),
            "palisade",
        )
        .unwrap()
        .unwrap();
        assert_eq!(odd.sets[AUDIT4].flows[0].proto, Proto::Other("\"x y\"".into()));
    }

    #[test]
    fn forms_palisade_never_writes_are_told_apart() {
        let rule = |json: &str, comment| {
            let expr: Vec<Value> = serde_json::from_str(json).unwrap();
            rule_text(&expr, comment)
        };
        assert_eq!(
            rule(
                r#"[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]"#,
                None
            ),
            "ct state established,related accept"
        );
        assert_eq!(
            rule(r#"[{"counter":{"packets":1,"bytes":2}},{"accept":null}]"#, None),
            "? {\"counter\":{\"bytes\":2,\"packets\":1}} accept"
        );
        // A value that would read as more of the rule is quoted.
        assert_eq!(
            rule(
                r#"[{"match":{"op":"==","left":{"ct":{"key":"state"}},"right":"established accept"}}]"#,
                None
            ),
            "ct state \"established accept\""
        );
        // A verdict added by hand reads as nft writes it.
        assert_eq!(rule(r#"[{"return":null}]"#, None), "return");
        assert_eq!(
            rule(r#"[{"drop":null}]"#, Some("a \"b\"\nc")),
            "drop comment \"a \\\"b\\\"\\nc\""
        );
        assert_eq!(
            rule(
                r#"[{"match":{"op":"==","left":{"meta":{"key":"iifname \"lo\" accept"}},"right":"x"}}]"#,
                None
            )
            .chars()
            .next(),
            Some('?')
        );
        assert_eq!(
            rule(r#"[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@a b"}}]"#, None)
                .chars()
                .next(),
            Some('?')
        );
    }

    #[test]
    fn hostile_listings_are_errors() {
        for json in [
            "",
            "[]",
            "{\"nftables\": 1}",
            "{\"nftables\": [1]}",
            r#"{"nftables":[{"table":{"family":"inet","name":"palisade"}},{"rule":{"family":"inet","table":"palisade","chain":"nope","expr":[]}}]}"#,
            r#"{"nftables":[{"set":{"family":"inet","table":"palisade","name":"s","type":"ipv4_addr","elem":["::1"]}}]}"#,
            r#"{"nftables":[{"set":{"family":"inet","table":"palisade","name":"s","type":"ipv4_addr","elem":[{"range":["10.0.0.9","10.0.0.1"]}]}}]}"#,
            r#"{"nftables":[{"set":{"family":"inet","table":"palisade","name":"s","type":"ipv4_addr","elem":[{"prefix":{"addr":"10.0.0.0","len":33}}]}}]}"#,
        ] {
            assert!(parse(json, "palisade").is_err(), "{json}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&format!("{{\"nftables\":{deep}}}"), "palisade").is_err());
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z@0-9 .:/\"*-]{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("10.0.0.0"),
                Just("::1"),
                Just("palisade"),
                Just("guard"),
                Just("inet"),
                Just("ipv4_addr")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            let keys = prop_oneof![
                Just("nftables"),
                Just("table"),
                Just("set"),
                Just("chain"),
                Just("rule"),
                Just("family"),
                Just("name"),
                Just("type"),
                Just("elem"),
                Just("prefix"),
                Just("range"),
                Just("expr"),
                Just("match"),
                Just("left"),
                Just("right"),
                Just("op"),
                Just("flags"),
                Just("hook"),
                Just("prio"),
                Just("comment"),
                Just("val"),
                Just("len"),
                Just("addr"),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(keys.prop_map(String::from), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_text_is_an_answer_or_an_error(text in any::<String>()) {
            let _ = parse(&text, "palisade");
        }

        #[test]
        fn any_json_is_an_answer_or_an_error(v in json_value(), table in json_value()) {
            let _ = parse(&v.to_string(), "palisade");
            let wrapped = serde_json::json!({"nftables": [{"table": {"family": "inet", "name": "palisade"}}, table, v]});
            let _ = parse(&wrapped.to_string(), "palisade");
            if let Value::Array(expr) = &v {
                let _ = rule_text(expr, Some("c"));
            }
        }
    }
}
