//! The nftables backend's table, rendered from the policy. Pure: the same
//! policy always gives the same bytes.
//!
//! palisade owns one table, `inet T` (T: the chain name, lowercased), and
//! nothing else: two typed sets, one per family ([`SetShape`]: a plain set
//! of addresses, or with `flags interval` when a network is among them),
//! and one base chain, [`CHAIN`], before DNAT. One
//! `nft -f` of [`ruleset`] swaps the whole table, sets included, in one
//! transaction. What [`guard_rules`] gives is the chain's rules in the text
//! `observe::nft` reads back from `nft -j`, so that a node's rules compare
//! equal to them exactly when they do the same.

use std::net::IpAddr;

use crate::net::Net;
use crate::policy::{Admit, Family, FirewallMode, LOG_PREFIX, MARK, Policy};

/// The base chain in palisade's table: the guard in front of everything,
/// at the priority of iptables' mangle PREROUTING (-150: after conntrack,
/// before any DNAT rewrites a published port).
pub(crate) const CHAIN: &str = "guard";

/// The hook, priority and policy [`CHAIN`] is made with, as `nft -j`
/// reports them.
pub(crate) const HOOK: &str = "prerouting";
pub(crate) const PRIORITY: i64 = -150;

/// The one rate the dropped-packet log is limited to, with its burst
/// spelt out: nft versions print a default burst differently, an explicit
/// one the same.
const LOG_LIMIT: &str = "limit rate 5/minute burst 5 packets";

/// Audit mode's sets: the flows the guard would drop, per family, keyed
/// by source address, protocol and destination port (the port the client
/// asked for: the guard runs before any DNAT). Fixed names, refused as
/// set4/set6 (`check_names`).
pub(crate) const AUDIT4: &str = "audit4";
pub(crate) const AUDIT6: &str = "audit6";

/// How long an audit set keeps a flow no packet has refreshed, in seconds:
/// `update` restarts an element's timeout, so its last packet was
/// `AUDIT_TIMEOUT - expires` seconds ago. Bounded in age as in size.
pub(crate) const AUDIT_TIMEOUT: u64 = 3600;

/// The protocols whose transport header starts with ports (`th dport`
/// reads them). nft prints such a set in protocol number order, so it is
/// written so. Any other protocol (ICMP, ESP, GRE, ...) has no port: it is
/// recorded with port 0, which no port rule could admit.
const PORTED: &str = "{ tcp, udp, dccp, sctp, udplite }";

/// The audit set of `family`.
pub(crate) fn audit_set(family: Family) -> &'static str {
    match family {
        Family::V4 => AUDIT4,
        Family::V6 => AUDIT6,
    }
}

/// The audit set's type, as `observe::nft` reads it back.
pub(crate) fn audit_kind(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4_addr . inet_proto . inet_service",
        Family::V6 => "ipv6_addr . inet_proto . inet_service",
    }
}

/// Words nft's parser reads as keywords where a table or set name goes
/// (`table inet drop`, `@ll`): the keywords of the scanner outside any
/// start condition, in every release from 0.9.3 (RHEL 8) to 1.1.6, taken
/// together, so a name that loads with one nft loads with all. nft 1.0.6
/// refuses every one of its own as a table name; it takes no quoted name
/// there either, so such a name is refused here, before any node is
/// touched.
const KEYWORDS: &str = "accept ackseq add addr ah all and arp auto-merge avgpkt bridge burst bypass bytes \
    cfi cgroup chain chains checksum classid code comment comp constant continue count counter counters \
    cpi cpu create ct daddr day dccp define delete describe destroy device devices direction dnat doff \
    dport drop dscp dst dup dynamic echo ecn element elements eol eq esp ether event exists expectation \
    expiration expires export exthdr fanout fib flags flow flowlabel flowtable flowtables flush frag \
    frag-off fully-random fwd gateway gc-interval ge geneve get goto gre gretap group gt handle hbh \
    hdrlength helper helpers hlen hook hoplimit hour htype ibriport ibrname icmp icmpv6 icmpx id igmp \
    iif iifgroup iifname iiftype import in inc include index inet insert interval ip ip6 ipsec jhash \
    json jump kind l3proto label last last-entry le left length level limit limits list ll log lshift \
    lsrr lt map maps mark masquerade max-delay maxseg memory meta meter meters mh microsecond \
    millisecond minute missing mod mode monitor more-fragments mrt mss mtu name nanosecond ne netdev \
    nexthdr nexthop nftrace nh noop nop not notrack num numgen obriport obrname offload offset oif \
    oifgroup oifname oiftype operation option options or original osf out over packets param-problem \
    pcp performance persistent pkttype plen policy port position prefix priority proto-dst proto-src \
    protocol ptr ptype queue queue-threshold quota quotas ra random rate redefine redirect reject \
    rename replace reply reqid reserved reserved2 reset return right rr rshift rt rt0 rt2 rtclassid \
    rule rules ruleset sack sack-perm sack-permitted sack0 sack1 sack2 sack3 saddr sctp secmark \
    secmarks second seed seg-left sequence set sets sid size skgid skuid snaplen snat socket spi spnum \
    sport srh ssrr state status symhash synproxy synproxys table tables tag tcp th time timeout \
    timestamp to tproxy trace transparent transport tsecr tsval ttl tunnel type typeof udp udplite \
    undefine until update urgptr used value version vlan vm vmap vni vtag vxlan week wildcard window \
    with wscale xml xor xt zone";

/// A chain or set name nft cannot take as palisade would write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} cannot name an nftables {what} ({why}); choose another {option} for nodes on the nftables backend"
)]
pub(crate) struct NftNameError {
    /// `table` or `set`.
    pub(crate) what: &'static str,
    pub(crate) name: String,
    pub(crate) why: &'static str,
    /// The option that gave the name.
    pub(crate) option: &'static str,
}

/// palisade's table: the chain name, lowercased (`PALISADE` -> `palisade`).
pub(crate) fn table_name(policy: &Policy) -> String {
    policy.chain().as_str().to_ascii_lowercase()
}

/// Whether nft takes the table's and the sets' names unquoted (it takes no
/// quoted ones there): a name must start with a letter, `_` or `.`, and
/// must be no keyword. [`ruleset`] of a policy this refuses does not load.
pub(crate) fn check_names(policy: &Policy) -> Result<(), NftNameError> {
    let names = [
        ("table", table_name(policy), "--chain"),
        ("set", policy.set4().to_string(), "--set4"),
        ("set", policy.set6().to_string(), "--set6"),
    ];
    for (name, option) in [(policy.set4(), "--set4"), (policy.set6(), "--set6")] {
        if [AUDIT4, AUDIT6].contains(&name.as_str()) {
            return Err(NftNameError {
                what: "set",
                name: name.to_string(),
                why: "audit mode's set has that name",
                option,
            });
        }
    }
    for (what, name, option) in names {
        let refuse = |why| NftNameError {
            what,
            name: name.clone(),
            why,
            option,
        };
        if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '.') {
            return Err(refuse(
                "nft reads a name only when it starts with a letter, '_' or '.'",
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
        {
            return Err(refuse(
                "nft reads a name only of letters, digits, '_', '.', '-' and '/'",
            ));
        }
        if KEYWORDS.split_ascii_whitespace().any(|k| k == name) {
            return Err(refuse("it is an nft keyword"));
        }
    }
    Ok(())
}

/// The family's whitelist as the set holds it: an interval set refuses
/// members that overlap ("conflicting intervals specified"), and between
/// networks that means one inside another, so a member inside another is
/// left out (the outer one admits it). Sorted.
pub(crate) fn elements(policy: &Policy, family: Family) -> Vec<Net> {
    let mut members: Vec<(u128, u128, Net)> = policy
        .members(family)
        .map(|m| {
            let (first, last) = bounds(m);
            (first, last, *m)
        })
        .collect();
    // By first address, the widest first: a member inside another comes
    // after it, before any member beyond it.
    members.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out: Vec<Net> = Vec::new();
    let mut reach: Option<u128> = None;
    for (_, last, net) in members {
        if reach.is_some_and(|r| last <= r) {
            continue;
        }
        reach = Some(reach.map_or(last, |r| r.max(last)));
        out.push(net);
    }
    out
}

/// The first and last address of a network, as numbers (an IPv4 address
/// is its 32 bits).
pub(crate) fn bounds(net: &Net) -> (u128, u128) {
    let n = net.net();
    (number(n.network()), number(n.broadcast()))
}

fn number(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// One admission as a rule of [`CHAIN`], accepting; `family` says which
/// address family a set match is for (the one inet chain matches both).
/// The loopback rule, the first, carries palisade's mark.
pub(crate) fn admit_rule(admit: &Admit<'_>, family: Family) -> String {
    match admit {
        Admit::Loopback => format!("iifname \"lo\" accept comment \"{MARK}\""),
        Admit::Established => "ct state established,related accept".to_owned(),
        Admit::Icmpv6 => "meta l4proto ipv6-icmp accept".to_owned(),
        // iptables' trailing `+` wildcard is nft's `*`.
        Admit::Interface(i) => {
            let name = i.as_str();
            let name = match name.strip_suffix('+') {
                Some(prefix) => format!("{prefix}*"),
                None => name.to_owned(),
            };
            format!("iifname \"{name}\" accept")
        }
        Admit::Port(p) => format!(
            "{} dport {} accept",
            p.proto().as_str(),
            p.range().replace(':', "-")
        ),
        Admit::Set(set) => {
            let ip = match family {
                Family::V4 => "ip",
                Family::V6 => "ip6",
            };
            format!("{ip} saddr @{set} accept")
        }
    }
}

/// The rules of [`CHAIN`]: the admissions of both families in the
/// iptables backend's order (ICMPv6 once, the IPv4 set's match before the
/// IPv6 set's), then the rate-limited log and the drop; in audit mode,
/// instead of them, the updates of the audit sets, and no drop. A member's
/// packet never reaches them: its set's match accepts it first.
pub(crate) fn guard_rules(policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    for admit in policy.admissions(Family::V6) {
        match admit {
            Admit::Set(_) => {
                for family in Family::BOTH {
                    out.push(admit_rule(&Admit::Set(policy.set(family)), family));
                }
            }
            other => out.push(admit_rule(&other, Family::V6)),
        }
    }
    match policy.mode() {
        FirewallMode::Enforce => {
            out.push(format!("{LOG_LIMIT} log prefix \"{LOG_PREFIX}\""));
            out.push("drop".to_owned());
        }
        FirewallMode::Audit => {
            for family in Family::BOTH {
                let (ip, set) = match family {
                    Family::V4 => ("ip", AUDIT4),
                    Family::V6 => ("ip6", AUDIT6),
                };
                out.push(format!(
                    "meta l4proto {PORTED} update @{set} {{ {ip} saddr . meta l4proto . th dport }}"
                ));
                out.push(format!(
                    "meta l4proto != {PORTED} update @{set} {{ {ip} saddr . meta l4proto . 0 }}"
                ));
            }
        }
    }
    out
}

/// How a family's set is made. A whitelist is mostly single addresses
/// (every node's), and a set of addresses alone is a plain one, which the
/// kernel keeps in a hash table: a thousand hosts' set, written, read back
/// and read again, costs a node some 6 ms less of `nft` and of the kernel
/// than the same members in an interval set (a tree of ranges, whose
/// overlaps both nft and the kernel check on every write). A network
/// among them makes it an interval set, which holds both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetShape {
    /// `type ipv4_addr;` (or ipv6), no flags: single addresses only.
    Addresses,
    /// `flags interval;`: addresses and networks.
    Intervals,
}

impl SetShape {
    /// The set's flags, as `nft -j` lists them.
    pub(crate) fn flags(self) -> &'static [&'static str] {
        match self {
            SetShape::Addresses => &[],
            SetShape::Intervals => &["interval"],
        }
    }
}

/// The shape of `family`'s set under `policy`: see [`SetShape`].
pub(crate) fn shape(policy: &Policy, family: Family) -> SetShape {
    if policy.members(family).all(Net::is_address) {
        SetShape::Addresses
    } else {
        SetShape::Intervals
    }
}

/// The table, as `nft -f` loads it. An empty set has no `elements` line:
/// nft refuses `elements = { }`.
pub(crate) fn ruleset(policy: &Policy) -> String {
    let mut s = format!("table inet {} {{\n", table_name(policy));
    for family in Family::BOTH {
        let kind = match family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        let flags = match shape(policy, family) {
            SetShape::Addresses => "",
            SetShape::Intervals => " flags interval;",
        };
        s.push_str(&format!("\tset {} {{ type {kind};{flags}", policy.set(family)));
        let members = elements(policy, family);
        if !members.is_empty() {
            let list: Vec<String> = members.iter().map(Net::to_string).collect();
            s.push_str(&format!(" elements = {{ {} }}", list.join(", ")));
        }
        s.push_str(" }\n");
    }
    if policy.mode() == FirewallMode::Audit {
        // Bounded in size and age; a counter on each element. A full set
        // takes no more (the update fails, the packet goes on).
        for family in Family::BOTH {
            s.push_str(&format!(
                "\tset {} {{ type {}; size {}; flags dynamic,timeout; timeout {AUDIT_TIMEOUT}s; counter; }}\n",
                audit_set(family),
                audit_kind(family),
                policy.audit_size()
            ));
        }
    }
    s.push_str(&format!(
        "\tchain {CHAIN} {{\n\t\ttype filter hook {HOOK} priority {PRIORITY}; policy accept;\n"
    ));
    for rule in guard_rules(policy) {
        s.push_str(&format!("\t\t{rule}\n"));
    }
    s.push_str("\t}\n}\n");
    s
}

/// The whole table replaced in one transaction: made if it is not there
/// (so that the delete cannot fail), deleted with its sets, and written
/// afresh.
#[cfg(test)]
pub(crate) fn replace(policy: &Policy) -> String {
    let t = table_name(policy);
    format!("add table inet {t}\ndelete table inet {t}\n{}", ruleset(policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::policy::{PolicyOptions, testing};

    /// The options of [`policy`].
    fn options() -> PolicyOptions {
        PolicyOptions {
            open: vec!["all=tcp/30080,udp/30000-32767".parse().unwrap()],
            extra: vec!["10.0.0.0/8".parse().unwrap(), "10.1.2.3".parse().unwrap()],
            interfaces: vec!["cni0".parse().unwrap(), "cali+".parse().unwrap()],
            ..testing::options("198.18.0.1")
        }
    }

    /// The policy of `opts` on a node of any role (the ports of [`options`]
    /// are open on all).
    fn policy_of(opts: &PolicyOptions) -> Policy {
        testing::for_no_hosts(opts).for_role(Role::Node)
    }

    fn policy() -> Policy {
        policy_of(&options())
    }

    #[test]
    fn the_table_is_the_policy_in_nft_words() {
        let text = ruleset(&policy());
        assert_eq!(
            text,
            "table inet palisade {\n\
             \tset palisade4 { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 127.0.0.1, \
             198.18.0.1, 198.51.100.1, 198.51.100.2, 198.51.100.3 } }\n\
             \tset palisade6 { type ipv6_addr; elements = { ::1 } }\n\
             \tchain guard {\n\
             \t\ttype filter hook prerouting priority -150; policy accept;\n\
             \t\tiifname \"lo\" accept comment \"palisade\"\n\
             \t\tct state established,related accept\n\
             \t\tmeta l4proto ipv6-icmp accept\n\
             \t\tiifname \"cni0\" accept\n\
             \t\tiifname \"cali*\" accept\n\
             \t\ttcp dport 30080 accept\n\
             \t\tudp dport 30000-32767 accept\n\
             \t\tip saddr @palisade4 accept\n\
             \t\tip6 saddr @palisade6 accept\n\
             \t\tlimit rate 5/minute burst 5 packets log prefix \"palisade-drop: \"\n\
             \t\tdrop\n\
             \t}\n\
             }\n"
        );
        assert!(
            replace(&policy())
                .starts_with("add table inet palisade\ndelete table inet palisade\ntable inet palisade {\n")
        );
    }

    #[test]
    fn audit_mode_records_instead_of_dropping() {
        let audit = PolicyOptions {
            mode: FirewallMode::Audit,
            audit_size: 100,
            ..options()
        };
        let p = policy_of(&audit);
        let text = ruleset(&p);
        assert!(text.contains(
            "\tset audit4 { type ipv4_addr . inet_proto . inet_service; size 100; flags dynamic,timeout; \
             timeout 3600s; counter; }\n\tset audit6 { type ipv6_addr . inet_proto . inet_service; size 100; \
             flags dynamic,timeout; timeout 3600s; counter; }\n\tchain guard {\n"
        ));
        assert!(!text.contains("drop") && !text.contains("log prefix"), "{text}");
        let rules = guard_rules(&p);
        // The admissions as in enforce mode, the sets' matches before the
        // updates: a member is accepted before it could be recorded.
        let enforce = guard_rules(&policy());
        assert_eq!(rules[..enforce.len() - 2], enforce[..enforce.len() - 2]);
        assert_eq!(
            rules[enforce.len() - 2..],
            [
                "meta l4proto { tcp, udp, dccp, sctp, udplite } update @audit4 { ip saddr . meta l4proto . th dport }",
                "meta l4proto != { tcp, udp, dccp, sctp, udplite } update @audit4 { ip saddr . meta l4proto . 0 }",
                "meta l4proto { tcp, udp, dccp, sctp, udplite } update @audit6 { ip6 saddr . meta l4proto . th dport }",
                "meta l4proto != { tcp, udp, dccp, sctp, udplite } update @audit6 { ip6 saddr . meta l4proto . 0 }",
            ]
        );
        let p = policy_of(&PolicyOptions {
            set6: "audit6".parse().unwrap(),
            ..audit
        });
        assert!(check_names(&p).is_err(), "a set named as audit mode's");
    }

    #[test]
    fn members_inside_others_are_left_out() {
        let p = policy().with_members(
            [
                "10.0.0.0/8",
                "10.1.2.3",
                "10.0.0.0/8",
                "10.2.0.0/16",
                "11.0.0.0/8",
                "9.255.255.255",
                "0.0.0.0/1",
                "128.0.0.1",
                "2001:2::/48",
                "2001:2::1",
                "::1",
            ]
            .iter()
            .map(|m| {
                m.parse()
                    .unwrap_or_else(|_| Net::from(m.parse::<ipnet::IpNet>().unwrap()))
            }),
        );
        let shown = |f| elements(&p, f).iter().map(Net::to_string).collect::<Vec<_>>();
        assert_eq!(shown(Family::V4), ["0.0.0.0/1", "128.0.0.1"]);
        assert_eq!(shown(Family::V6), ["::1", "2001:2::/48"]);
        let v6: Vec<Net> = p.members(Family::V6).copied().collect();
        let p = p.with_members(v6);
        assert!(elements(&p, Family::V4).is_empty());
        assert!(
            ruleset(&p).contains("\tset palisade4 { type ipv4_addr; }\n"),
            "an empty set has no elements line"
        );
    }

    #[test]
    fn a_set_of_addresses_alone_is_a_plain_one() {
        let mut p = policy().with_members(
            ["198.18.0.1", "198.18.0.2", "2001:2::1", "2001:2::/64"].map(|m| m.parse::<Net>().unwrap()),
        );
        assert_eq!(shape(&p, Family::V4), SetShape::Addresses);
        assert_eq!(shape(&p, Family::V6), SetShape::Intervals);
        let text = ruleset(&p);
        assert!(text.contains("\tset palisade4 { type ipv4_addr; elements = { 198.18.0.1, 198.18.0.2 } }\n"));
        assert!(
            text.contains("\tset palisade6 { type ipv6_addr; flags interval; elements = { 2001:2::/64 } }\n")
        );
        // A /32 is an address, however it was written.
        p.add_member("198.18.0.3/32".parse().unwrap());
        assert_eq!(shape(&p, Family::V4), SetShape::Addresses);
        p.add_member("198.18.4.0/31".parse().unwrap());
        assert_eq!(shape(&p, Family::V4), SetShape::Intervals);
    }

    #[test]
    fn names_nft_cannot_read_are_refused() {
        assert_eq!(check_names(&policy()), Ok(()));
        for (chain, ok) in [
            ("PALISADE", true),
            ("pal-isade_2", true),
            ("_x", true),
            ("9lives", false),
            ("META", false),
            ("tcp", false),
            ("filter", true),
            ("ll", false),
        ] {
            let p = policy_of(&PolicyOptions {
                chain: chain.parse().unwrap(),
                ..options()
            });
            assert_eq!(check_names(&p).is_ok(), ok, "{chain}");
        }
        let with_set6 = |name: &str| {
            policy_of(&PolicyOptions {
                set6: name.parse().unwrap(),
                ..options()
            })
        };
        let err = check_names(&with_set6("6pal")).unwrap_err();
        assert_eq!((err.what, err.option), ("set", "--set6"));
        assert!(
            err.to_string()
                .starts_with("\"6pal\" cannot name an nftables set"),
            "{err}"
        );
        // nft keywords are lowercase: a set (not lowercased) may be `DROP`.
        assert_eq!(check_names(&with_set6("DROP")), Ok(()));
        assert!(
            check_names(&with_set6("nh")).is_err(),
            "`@nh` is a keyword after the @"
        );
    }
}
