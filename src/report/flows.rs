//! What the nodes in audit mode recorded, from every node: `verify
//! --flows`. The flows are grouped by what would admit them (source,
//! protocol, port), the most packets first, so that the scraper seen on
//! forty agents is one line, with the flag that would let it through once
//! the whitelist is enforced. Grouping is pure ([`group`]); the words are
//! [`FlowGroup::line`], escaped where they reach a terminal.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::terminal::escape;
use crate::inventory::Role;
use crate::observe::nft::{Flow, Proto};

/// One (source, protocol, port) over every node that recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct FlowGroup {
    pub(crate) source: IpAddr,
    pub(crate) protocol: String,
    /// None for a protocol without ports (recorded as port 0).
    pub(crate) port: Option<u16>,
    /// The nodes that recorded it, by name, sorted.
    pub(crate) hosts: Vec<String>,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// Seconds since the latest packet on any of them.
    pub(crate) last_seen_secs: u64,
    /// The flags that would admit it: the source's, and for TCP and UDP
    /// the port's, for the nodes' role (`all` when they differ).
    pub(crate) admit: Vec<String>,
    /// The role the nodes share, for the words (not in `--json`, which
    /// names the hosts).
    #[serde(skip)]
    role: Option<Role>,
}

/// A node's flows, with its name and role.
pub(crate) struct NodeFlows<'a> {
    pub(crate) host: &'a str,
    pub(crate) role: Role,
    pub(crate) flows: &'a [Flow],
}

/// Every node's flows as groups, the most packets first (then by source,
/// protocol and port, so that the order is the same each run).
pub(crate) fn group(nodes: &[NodeFlows<'_>]) -> Vec<FlowGroup> {
    type Key = (IpAddr, Proto, u16);
    struct Acc<'a> {
        hosts: Vec<(&'a str, Role)>,
        packets: u64,
        bytes: u64,
        ago: Duration,
    }
    let mut by: BTreeMap<Key, Acc<'_>> = BTreeMap::new();
    for node in nodes {
        for f in node.flows {
            let acc = by
                .entry((f.source, f.proto.clone(), f.port))
                .or_insert_with(|| Acc {
                    hosts: Vec::new(),
                    packets: 0,
                    bytes: 0,
                    ago: f.ago,
                });
            if !acc.hosts.iter().any(|(h, _)| *h == node.host) {
                acc.hosts.push((node.host, node.role));
            }
            acc.packets = acc.packets.saturating_add(f.packets);
            acc.bytes = acc.bytes.saturating_add(f.bytes);
            acc.ago = acc.ago.min(f.ago);
        }
    }
    let mut out: Vec<FlowGroup> = by
        .into_iter()
        .map(|((source, proto, port), acc)| {
            let first = acc.hosts.first().map(|(_, r)| *r);
            let role = first.filter(|r| acc.hosts.iter().all(|(_, h)| h == r));
            let mut hosts: Vec<String> = acc.hosts.iter().map(|(h, _)| (*h).to_owned()).collect();
            hosts.sort();
            let ported = proto.has_ports();
            let mut admit = vec![format!("--extra {source}")];
            if matches!(proto, Proto::Tcp | Proto::Udp) && port != 0 {
                let nodes = role.map_or("all".to_owned(), |r| r.to_string());
                admit.push(format!("--open {nodes}={proto}/{port}"));
            }
            FlowGroup {
                source,
                protocol: proto.to_string(),
                port: ported.then_some(port),
                hosts,
                packets: acc.packets,
                bytes: acc.bytes,
                last_seen_secs: acc.ago.as_secs(),
                admit,
                role,
            }
        })
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.packets));
    out
}

impl FlowGroup {
    /// `198.51.100.9 -> tcp/9100 on 12 agents, 3,412 packets, last 2 min
    /// ago; admit with --extra 198.51.100.9 or --open agent=tcp/9100`,
    /// escaped.
    pub(crate) fn line(&self) -> String {
        let what = match self.port {
            Some(p) => format!("{}/{p}", self.protocol),
            None => self.protocol.clone(),
        };
        let n = self.hosts.len();
        let on = match self.role {
            Some(r) => format!("{n} {}", plural(r.as_str(), n)),
            None => format!("{n} {}", plural("node", n)),
        };
        let packets = self.packets;
        escape(&format!(
            "{} -> {what} on {on}, {} {}, last {} ago; admit with {}",
            self.source,
            thousands(packets),
            plural("packet", usize::try_from(packets).unwrap_or(usize::MAX)),
            ago(Duration::from_secs(self.last_seen_secs)),
            self.admit.join(" or ")
        ))
        .into_owned()
    }
}

fn plural(word: &str, n: usize) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// `3412` as `3,412`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time ago, rounded down to its largest unit: `12 s`, `2 min`, `1 h`.
pub(crate) fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// The section `verify --flows` prints after the table: a heading, one
/// line per group, and which nodes' sets were full.
pub(crate) fn section(groups: &[FlowGroup], full: &[String]) -> String {
    let mut out = String::new();
    if groups.is_empty() {
        out.push_str("would drop: nothing recorded by the nodes in audit mode\n");
    } else {
        out.push_str(&format!(
            "would drop ({} {} recorded in audit mode, the most packets first):\n",
            groups.len(),
            plural("flow", groups.len())
        ));
        for g in groups {
            out.push_str(&format!("  {}\n", g.line()));
        }
    }
    if !full.is_empty() {
        out.push_str(&format!(
            "audit set full on {}: flows beyond its size went unrecorded (a scan, or raise --audit-size)\n",
            escape(&full.join(", "))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(source: &str, proto: Proto, port: u16, packets: u64, ago: u64) -> Flow {
        Flow {
            source: source.parse().unwrap(),
            proto,
            port,
            packets,
            bytes: packets * 60,
            ago: Duration::from_secs(ago),
        }
    }

    #[test]
    fn flows_are_grouped_over_nodes_the_most_packets_first() {
        let a = [
            flow("198.51.100.9", Proto::Tcp, 9100, 3000, 300),
            flow("203.0.113.5", Proto::Udp, 53, 7, 10),
        ];
        let b = [
            flow("198.51.100.9", Proto::Tcp, 9100, 412, 120),
            flow("2001:db8::1", Proto::Icmp, 0, 9000, 3599),
        ];
        let c = [flow("203.0.113.5", Proto::Udp, 53, 1, 5)];
        let groups = group(&[
            NodeFlows {
                host: "agent-2",
                role: Role::Agent,
                flows: &b,
            },
            NodeFlows {
                host: "agent-1",
                role: Role::Agent,
                flows: &a,
            },
            NodeFlows {
                host: "master-1",
                role: Role::Master,
                flows: &c,
            },
        ]);
        let lines: Vec<String> = groups.iter().map(FlowGroup::line).collect();
        assert_eq!(
            lines,
            [
                "2001:db8::1 -> icmp on 1 agent, 9,000 packets, last 59 min ago; admit with --extra 2001:db8::1",
                "198.51.100.9 -> tcp/9100 on 2 agents, 3,412 packets, last 2 min ago; admit with --extra \
                 198.51.100.9 or --open agent=tcp/9100",
                "203.0.113.5 -> udp/53 on 2 nodes, 8 packets, last 5 s ago; admit with --extra 203.0.113.5 or \
                 --open all=udp/53",
            ]
        );
        assert_eq!(groups[1].hosts, ["agent-1", "agent-2"]);
        assert_eq!((groups[1].bytes, groups[0].port), (3412 * 60, None));
        let json = serde_json::to_value(&groups[1]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"source": "198.51.100.9", "protocol": "tcp", "port": 9100,
                "hosts": ["agent-1", "agent-2"], "packets": 3412, "bytes": 204720, "last_seen_secs": 120,
                "admit": ["--extra 198.51.100.9", "--open agent=tcp/9100"]})
        );
    }

    #[test]
    fn numbers_and_times_read_as_people_write_them() {
        assert_eq!(
            [0, 7, 999, 1000, 3412, 1_234_567].map(thousands),
            ["0", "7", "999", "1,000", "3,412", "1,234,567"]
        );
        assert_eq!(
            [0, 59, 60, 3599, 3600, 7300].map(|s| ago(Duration::from_secs(s))),
            ["0 s", "59 s", "1 min", "59 min", "1 h", "2 h"]
        );
    }

    #[test]
    fn what_a_node_named_cannot_reach_the_terminal_raw() {
        let f = [flow("198.51.100.9", Proto::Other("\u{1b}[31mx".into()), 0, 1, 1)];
        let groups = group(&[NodeFlows {
            host: "n",
            role: Role::Node,
            flows: &f,
        }]);
        assert!(!groups[0].line().contains('\u{1b}'));
        let text = section(&groups, &["n\u{1b}".into()]);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("audit set full on n"));
    }
}
