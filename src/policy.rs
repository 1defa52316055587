//! The desired state: what every node must admit, computed once on the
//! controller from the inventory and the settings. Pure.
//!
//! Every node gets the same whitelist: the operators' addresses, every
//! address of every node (so nodes reach each other on any port, as DC/OS
//! requires), the DNS resolvers, loopback, DC/OS's Spartan addresses and the
//! extra entries from config. Container traffic to the host (DNS to
//! 198.51.100.x, executors to the agent) arrives from container subnets on
//! container interfaces, so those interfaces are accepted rather than their
//! subnets listed.
//!
//! What differs between nodes is only the ports open to everyone, per role
//! (`--open public-agent=tcp/80,tcp/443`): a DC/OS public agent exists to
//! serve the world, so [`Policy::for_role`] gives each role its own.
//!
//! The rules are kept in the canonical form `iptables -S` prints, so the
//! same text feeds `iptables-restore` and is compared with what a node
//! reports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::str::FromStr;

use crate::inventory::{HostName, Inventory, Role};
use crate::net::{ChainName, IfName, Net, Port, Proto, SetName};

/// ipset's default `maxelem`, which palisade creates its sets with.
pub(crate) const MAX_MEMBERS: usize = 65536;

/// The comment on the first rule of palisade's chains: what tells a chain
/// palisade made from a same-named one of another tool's.
pub(crate) const MARK: &str = "palisade";

/// The prefix of dropped-packet log lines (iptables allows 29 characters).
pub(crate) const LOG_PREFIX: &str = "palisade-drop: ";

/// DC/OS's Spartan DNS addresses, on every node's `spartan` interface.
pub(crate) const SPARTAN: [&str; 3] = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];

pub(crate) const DEFAULT_RESOLVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Docker, DC/OS overlay (Docker and UCR bridges), UCR's default bridge and
/// the VXLAN endpoint.
pub(crate) const DEFAULT_INTERFACES: [&str; 5] = ["docker0", "d-dcos", "m-dcos", "ucr-br0", "vtep1024"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub(crate) enum Family {
    #[serde(rename = "ipv4")]
    V4,
    #[serde(rename = "ipv6")]
    V6,
}

impl Family {
    pub(crate) const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// ipset's `family` parameter.
    pub(crate) fn ipset_family(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }

    pub(crate) fn of(net: &Net) -> Family {
        if net.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Which nodes an [`Opening`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Nodes {
    /// Every node, whatever its role (`all=`).
    All,
    /// The nodes of one role (`public-agent=`).
    Role(Role),
}

impl FromStr for Nodes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Nodes::All);
        }
        s.parse().map(Nodes::Role).map_err(|_| {
            format!("unknown role {s:?} (expected all, master, agent, public-agent, bootstrap or node)")
        })
    }
}

/// Ports open to everyone on the nodes of a role, whatever the whitelist:
/// `public-agent=tcp/80,tcp/443,tcp/10000-10100`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    /// The nodes the ports are open on.
    pub nodes: Nodes,
    /// The ports open to everyone there.
    pub ports: Vec<Port>,
}

impl FromStr for Opening {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (nodes, ports) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not ROLE=PROTO/PORT[,...], e.g. public-agent=tcp/80,tcp/443"))?;
        let nodes = nodes.parse()?;
        let ports = ports
            .split(',')
            .map(|p| p.parse::<Port>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Opening { nodes, ports })
    }
}

/// The first packet of a new connection, as the node's INPUT chain sees it,
/// for [`Policy::admits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Packet {
    /// Where it comes from, after any NAT.
    pub(crate) source: IpAddr,
    pub(crate) proto: Proto,
    /// The port it goes to.
    pub(crate) port: u16,
    /// The interface it arrives on, when the caller knows it (None matches
    /// no interface rule, so an unknown interface never admits).
    pub(crate) interface: Option<String>,
}

impl Packet {
    /// A new SSH (TCP) connection from `source` to `port`, on an interface
    /// that is not known.
    pub(crate) fn ssh(source: IpAddr, port: u16) -> Packet {
        Packet {
            source,
            proto: Proto::Tcp,
            port,
            interface: None,
        }
    }
}

/// One thing a new connection is admitted by: the policy, backend-neutral
/// ([`Policy::admissions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit<'a> {
    /// Arrives on the loopback interface.
    Loopback,
    /// Belongs to a connection already admitted (or is related to one).
    Established,
    /// ICMPv6 (neighbour discovery).
    Icmpv6,
    /// Arrives on an accepted interface.
    Interface(&'a IfName),
    /// Goes to a port open to everyone.
    Port(Port),
    /// Comes from a member of the set.
    Set(&'a SetName),
}

impl Admit<'_> {
    /// The rule in `chain`, as `iptables -S` prints it, with `verdict`; the
    /// loopback rule (the first) carries palisade's mark.
    pub(crate) fn iptables(&self, chain: &ChainName, verdict: &str) -> String {
        match self {
            Admit::Loopback => format!("-A {chain} -i lo -m comment --comment {MARK} -j {verdict}"),
            Admit::Established => {
                format!("-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j {verdict}")
            }
            Admit::Icmpv6 => format!("-A {chain} -p ipv6-icmp -j {verdict}"),
            Admit::Interface(i) => format!("-A {chain} -i {i} -j {verdict}"),
            Admit::Port(p) => {
                let proto = p.proto().as_str();
                format!(
                    "-A {chain} -p {proto} -m {proto} --dport {} -j {verdict}",
                    p.range()
                )
            }
            Admit::Set(set) => format!("-A {chain} -m set --match-set {set} src -j {verdict}"),
        }
    }
}

/// Where palisade keeps its objects on a node: ipset sets and iptables
/// chains, or one nftables table (`--backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FirewallBackend {
    /// ipset sets matched by iptables rules (`iptables -m set`), in the
    /// filter and mangle tables of both families.
    #[default]
    Iptables,
    /// One `table inet` of palisade's own, replaced whole in one
    /// transaction: for nodes without ipset or xtables.
    Nftables,
    /// Each node picks: nftables where palisade's table is there or where
    /// `nft` takes such a table, else iptables. The engine resolves it per
    /// node, from what the node said, before anything is decided or
    /// rendered for that node but the first read.
    Auto,
}

impl FirewallBackend {
    /// The tools a node needs for this backend: what `ping` checks, and
    /// what plan, verify and apply refuse a node without (the read script's
    /// `tools`, in lib.sh and nft.sh, and `flock` and `head`, which every
    /// writer needs: a unit test holds the two lists together).
    pub(crate) fn tools(self) -> &'static [&'static str] {
        match self {
            FirewallBackend::Iptables => &[
                "ipset",
                "iptables",
                "ip6tables",
                "iptables-save",
                "ip6tables-save",
                "iptables-restore",
                "ip6tables-restore",
                "flock",
                "head",
            ],
            FirewallBackend::Nftables => &["nft", "flock", "head"],
            // Either list: `Probe::missing` picks as the node would.
            FirewallBackend::Auto => &[],
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FirewallBackend::Iptables => "iptables",
            FirewallBackend::Nftables => "nftables",
            FirewallBackend::Auto => "auto",
        }
    }
}

impl FromStr for FirewallBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "iptables" => Ok(FirewallBackend::Iptables),
            "nftables" => Ok(FirewallBackend::Nftables),
            "auto" => Ok(FirewallBackend::Auto),
            _ => Err(format!("{s:?} is not a backend: iptables, nftables or auto")),
        }
    }
}

impl std::fmt::Display for FirewallBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the guard does with a new connection the whitelist does not admit
/// (`--audit`, `firewall.mode`): drop it, or let it through and record it,
/// so that an operator learns what a whitelist would break before it
/// breaks it. Part of the desired state: a node in the other mode differs,
/// and switching is one protected change like any other.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FirewallMode {
    #[default]
    Enforce,
    /// Nothing is dropped: each new connection the whitelist would drop is
    /// counted in a bounded kernel set on the node, by source address,
    /// protocol and destination port (`verify --flows` collects them).
    Audit,
}

impl FirewallMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FirewallMode::Enforce => "enforce",
            FirewallMode::Audit => "audit",
        }
    }

    /// The other mode: what a node in this one is switched from.
    pub(crate) fn other(self) -> FirewallMode {
        match self {
            FirewallMode::Enforce => FirewallMode::Audit,
            FirewallMode::Audit => FirewallMode::Enforce,
        }
    }
}

impl std::fmt::Display for FirewallMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many flows audit mode records per address family on a node, unless
/// `--audit-size` says otherwise: a port scan fills the set to this and no
/// further (each element costs the kernel about a hundred bytes).
pub(crate) const DEFAULT_AUDIT_SIZE: u32 = 65536;

/// The settings the policy is made from.
#[derive(Clone, Debug)]
pub(crate) struct PolicyOptions {
    /// Apply even when the inventory knows no private address for some
    /// nodes.
    pub(crate) public_only: bool,
    /// Ports open to everyone, per role.
    pub(crate) open: Vec<Opening>,
    pub(crate) allow: Vec<Net>,
    pub(crate) extra: Vec<Net>,
    pub(crate) resolvers: Vec<Net>,
    pub(crate) interfaces: Vec<IfName>,
    pub(crate) set4: SetName,
    pub(crate) set6: SetName,
    pub(crate) chain: ChainName,
    pub(crate) persist: bool,
    pub(crate) backend: FirewallBackend,
    pub(crate) mode: FirewallMode,
    /// Audit mode's bound: flows recorded per family.
    pub(crate) audit_size: u32,
}

/// What every node must have. Its fields are private: only its
/// constructors ([`Policy::desired`], then [`Policy::for_role`],
/// [`Policy::with_backend`], [`Policy::with_mode`]) make one, so its set
/// names never collide ([`set_clash`]), each family holds at most
/// [`MAX_MEMBERS`], the Docker guard's and the guard's names are the
/// chain's companions, and the open ports are the role's openings. The
/// rest of palisade reads it through the accessors below.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    set4: SetName,
    set6: SetName,
    /// The name palisade's objects are named after (`--chain`): the INPUT
    /// chain of versions before the guard alone, found to be taken away;
    /// the guard's name (`CHAIN-GUARD`) and, lower-cased, the nftables
    /// table's.
    chain: ChainName,
    /// The Docker guard of versions before the guard alone (`CHAIN-DOCKER`,
    /// jumped to from DOCKER-USER): found, to be taken away.
    docker_chain: ChainName,
    /// The guard before DNAT, in the mangle table ([`Policy::guard_rules`]).
    guard_chain: ChainName,
    members: BTreeSet<Net>,
    interfaces: Vec<IfName>,
    /// Ports open to everyone on the node (its role's, by [`Policy::for_role`]).
    open: BTreeSet<Port>,
    /// Every opening, for [`Policy::for_role`].
    openings: Vec<Opening>,
    persist: bool,
    backend: FirewallBackend,
    mode: FirewallMode,
    /// Audit mode's bound: flows recorded per family.
    audit_size: u32,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    #[error("the {family} whitelist has {count} entries; ipset sets hold at most {MAX_MEMBERS}")]
    TooMany { family: Family, count: usize },
    #[error("set names must differ (set4 and set6 are both {0:?})")]
    SameSets(String),
    #[error("set names collide: {0}")]
    SetsCollide(SetClash),
}

/// The suffixes of the temporary sets palisade makes beside each of its
/// sets: SET-new is filled and swapped in by a change, SET-old is the copy
/// a rollback fills and swaps back. The node treats a set of such a name
/// as palisade's own (it flushes, swaps and destroys it), so no name may be
/// another's temporary one. [`crate::net::SetName`] leaves room for them
/// within ipset's 31 bytes.
pub(crate) const TEMP_SET_SUFFIXES: [&str; 2] = ["-new", "-old"];

/// The suffixes of the sets audit mode keeps beside each of palisade's sets
/// on the iptables backend: SET-aud records the flows the guard would drop
/// ([`Policy::audit_set`]); SET-aun is its temporary set, made and swapped
/// in when the bound changes. Like the temporary sets', no name may be
/// another's; four bytes, so that they too fit in ipset's 31.
pub(crate) const AUDIT_SET_SUFFIXES: [&str; 2] = ["-aud", "-aun"];

/// How the names of the two sets, and of their temporary sets, collide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SetClash {
    /// set4 and set6 are the same name.
    Same(String),
    /// The set of family `set` is named as the temporary set (`suffix`) of
    /// the other family's set, `of`.
    Temporary {
        set: Family,
        name: String,
        of: String,
        suffix: &'static str,
    },
}

impl std::fmt::Display for SetClash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetClash::Same(name) => write!(f, "set4 and set6 are both {name:?}"),
            SetClash::Temporary {
                set,
                name,
                of,
                suffix,
            } => write!(
                f,
                "the {set} set {name:?} has the name palisade gives its temporary set ({suffix}) beside the other set, {of:?}"
            ),
        }
    }
}

/// Whether any two of set4, set6 and their temporary sets
/// ([`TEMP_SET_SUFFIXES`]) would have the same name. (Two temporary sets
/// collide only when the sets do.)
pub(crate) fn set_clash(set4: &SetName, set6: &SetName) -> Option<SetClash> {
    if set4 == set6 {
        return Some(SetClash::Same(set4.to_string()));
    }
    for (set, name, of) in [(Family::V6, set6, set4), (Family::V4, set4, set6)] {
        for suffix in TEMP_SET_SUFFIXES.into_iter().chain(AUDIT_SET_SUFFIXES) {
            if name.as_str().strip_suffix(suffix) == Some(of.as_str()) {
                return Some(SetClash::Temporary {
                    set,
                    name: name.to_string(),
                    of: of.to_string(),
                    suffix,
                });
            }
        }
    }
    None
}

impl Policy {
    pub(crate) fn desired(inv: &Inventory, opts: &PolicyOptions) -> Result<Policy, PolicyError> {
        let mut members: BTreeSet<Net> = BTreeSet::new();
        members.extend(opts.allow.iter().copied());
        for host in &inv.hosts {
            members.extend(host.addresses().map(Net::from));
        }
        members.extend(opts.resolvers.iter().copied());
        members.extend(
            ["127.0.0.1", "::1"]
                .iter()
                .chain(SPARTAN.iter())
                .map(|a| fixed(a)),
        );
        members.extend(opts.extra.iter().copied());
        for family in Family::BOTH {
            let count = members.iter().filter(|m| Family::of(m) == family).count();
            if count > MAX_MEMBERS {
                return Err(PolicyError::TooMany { family, count });
            }
        }
        match set_clash(&opts.set4, &opts.set6) {
            Some(SetClash::Same(name)) => return Err(PolicyError::SameSets(name)),
            Some(clash) => return Err(PolicyError::SetsCollide(clash)),
            None => {}
        }
        Ok(Policy {
            set4: opts.set4.clone(),
            set6: opts.set6.clone(),
            chain: opts.chain.clone(),
            docker_chain: opts.chain.docker_companion(),
            guard_chain: opts.chain.guard_companion(),
            members,
            interfaces: opts.interfaces.clone(),
            open: BTreeSet::new(),
            openings: opts.open.clone(),
            persist: opts.persist,
            backend: opts.backend,
            mode: opts.mode,
            audit_size: opts.audit_size,
        })
    }

    /// The name palisade's objects are named after (`--chain`).
    pub(crate) fn chain(&self) -> &ChainName {
        &self.chain
    }

    /// The Docker guard of versions before the guard alone (`CHAIN-DOCKER`),
    /// derived from [`Policy::chain`].
    pub(crate) fn docker_chain(&self) -> &ChainName {
        &self.docker_chain
    }

    /// The guard before DNAT (`CHAIN-GUARD`), derived from [`Policy::chain`].
    pub(crate) fn guard_chain(&self) -> &ChainName {
        &self.guard_chain
    }

    /// The ports open to everyone on the node (its role's, by
    /// [`Policy::for_role`]).
    pub(crate) fn open(&self) -> &BTreeSet<Port> {
        &self.open
    }

    /// Whether the node restores the firewall at boot (off with
    /// `--no-persist`).
    pub(crate) fn persist(&self) -> bool {
        self.persist
    }

    /// The firewall backend (`--backend`), until resolved on a node
    /// ([`Policy::with_backend`]).
    pub(crate) fn backend(&self) -> FirewallBackend {
        self.backend
    }

    /// Whether the guard drops or records ([`Policy::with_mode`]).
    pub(crate) fn mode(&self) -> FirewallMode {
        self.mode
    }

    /// Audit mode's bound: flows recorded per family.
    pub(crate) fn audit_size(&self) -> u32 {
        self.audit_size
    }

    /// The same policy with `backend`: what `--backend auto` resolves to on
    /// one node.
    pub(crate) fn with_backend(&self, backend: FirewallBackend) -> Policy {
        Policy {
            backend,
            ..self.clone()
        }
    }

    /// The same policy in `mode`: what a node in the other mode is
    /// compared with, to tell a switch of mode from other drift.
    pub(crate) fn with_mode(&self, mode: FirewallMode) -> Policy {
        Policy { mode, ..self.clone() }
    }

    /// The policy of a node of `role`: the same whitelist, and the ports
    /// open to everyone on that role.
    pub(crate) fn for_role(&self, role: Role) -> Policy {
        let mut p = self.clone();
        p.open = self
            .openings
            .iter()
            .filter(|o| o.nodes == Nodes::All || o.nodes == Nodes::Role(role))
            .flat_map(|o| o.ports.iter().copied())
            .collect();
        p
    }

    /// One policy per role the fleet has.
    pub(crate) fn by_role(&self, inv: &Inventory) -> BTreeMap<Role, Policy> {
        inv.hosts
            .iter()
            .map(|h| h.role())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|role| (role, self.for_role(role)))
            .collect()
    }

    /// The IPv4 set's name (`--set4`).
    pub(crate) fn set4(&self) -> &SetName {
        &self.set4
    }

    /// The IPv6 set's name (`--set6`).
    pub(crate) fn set6(&self) -> &SetName {
        &self.set6
    }

    /// The set of `family`: [`Policy::set4`] or [`Policy::set6`].
    pub(crate) fn set(&self, family: Family) -> &SetName {
        match family {
            Family::V4 => &self.set4,
            Family::V6 => &self.set6,
        }
    }

    /// Audit mode's set of `family` on the iptables backend: an ipset
    /// `hash:ip,port` with counters and a timeout, bounded by
    /// `audit_size`, named after the family's set.
    pub(crate) fn audit_set(&self, family: Family) -> String {
        format!("{}{}", self.set(family), AUDIT_SET_SUFFIXES[0])
    }

    pub(crate) fn members(&self, family: Family) -> impl Iterator<Item = &Net> {
        self.members.iter().filter(move |m| Family::of(m) == family)
    }

    /// Whether a packet from `addr` would be admitted by the set.
    pub(crate) fn covers(&self, addr: IpAddr) -> bool {
        self.members.iter().any(|m| m.net().contains(&addr))
    }

    /// Whether the guard ([`Policy::guard_rules`]) would pass `packet`,
    /// the first packet of a new connection: the lockout check asks this of
    /// the operator's next SSH connection, so an operator admitted by an
    /// open port (`--open all=tcp/22`) or an accepted interface (a VPN) is
    /// not refused for being outside the set. The rules are taken in the
    /// chain's order; each one that matches accepts, and only the last
    /// drops. The established rule never matches a new connection, and
    /// ICMPv6 is no SSH.
    pub(crate) fn admits(&self, packet: &Packet) -> bool {
        let interface = packet.interface.as_deref();
        interface == Some("lo")
            || interface.is_some_and(|name| self.interfaces.iter().any(|i| i.matches(name)))
            || self.open.iter().any(|p| p.admits(packet.proto, packet.port))
            || self.covers(packet.source)
    }

    /// The accepted interfaces that would take in a node's uplink (one of
    /// `uplinks`), with the uplink: accepting it admits everyone.
    pub(crate) fn wide_interfaces<'a>(&'a self, uplinks: &'a [String]) -> Vec<(&'a IfName, &'a str)> {
        self.interfaces
            .iter()
            .flat_map(|i| {
                uplinks
                    .iter()
                    .filter(move |u| i.matches(u))
                    .map(move |u| (i, u.as_str()))
            })
            .collect()
    }

    /// The jump to palisade's INPUT chain, which versions before the guard
    /// alone made rule 1 of INPUT: found, to be taken away.
    pub(crate) fn jump(&self) -> String {
        format!("-A INPUT -j {}", self.chain)
    }

    /// The jump to the Docker guard of versions before the guard alone, at
    /// the top of DOCKER-USER: found, to be taken away.
    pub(crate) fn docker_jump(&self) -> String {
        format!("-A DOCKER-USER -j {}", self.docker_chain)
    }

    /// What a new connection is admitted by, in order, whatever the backend:
    /// the one policy the guard before DNAT carries, rendered by
    /// [`Admit::iptables`] for the iptables backend and by `render::nft`
    /// for the nftables one. What is not admitted is logged and dropped.
    pub(crate) fn admissions(&self, family: Family) -> Vec<Admit<'_>> {
        let mut out = vec![Admit::Loopback, Admit::Established];
        if family == Family::V6 {
            // Neighbour discovery is ICMPv6: without it IPv6 stops working.
            out.push(Admit::Icmpv6);
        }
        out.extend(self.interfaces.iter().map(Admit::Interface));
        out.extend(self.open.iter().copied().map(Admit::Port));
        out.push(Admit::Set(self.set(family)));
        out
    }

    /// The jump that must be the first rule of mangle PREROUTING.
    pub(crate) fn guard_jump(&self) -> String {
        format!("-A PREROUTING -j {}", self.guard_chain)
    }

    /// The guard before DNAT, in mangle PREROUTING (priority -150: after
    /// conntrack, before `nat PREROUTING`, where kube-proxy, CNI portmap,
    /// Docker, Podman and LXD rewrite published ports): every packet the
    /// node receives, for itself or to forward, meets the whitelist there,
    /// and a port open to everyone is matched as the client connected to
    /// it (the published port, not the pod's or container's). The rules
    /// for [`Policy::admissions`], each passing what it admits on (RETURN,
    /// so the rest of the table, and INPUT or FORWARD after it, still
    /// decide), then the log and the drop, as `iptables -S CHAIN` prints
    /// them (without `-N`). The first carries the mark: palisade replaces
    /// only a chain that carries it (or that it made before there was one).
    /// In audit mode, instead of the log and the drop, one rule records
    /// the flow in the audit set ([`Policy::audit_set`]) and drops nothing:
    /// a flow not yet there is added (its counters start at its first
    /// packet); one there is counted by the match, which moves its
    /// counters and, negated, adds nothing. (`--add-set --exist` on every
    /// packet would restart the timeout, but it sets the counters back to
    /// that one packet's: the counts are kept, and the timeout runs from
    /// the flow's first packet.)
    pub(crate) fn guard_rules(&self, family: Family) -> Vec<String> {
        let chain = &self.guard_chain;
        let mut out: Vec<String> = self
            .admissions(family)
            .iter()
            .map(|a| a.iptables(chain, "RETURN"))
            .collect();
        if self.mode == FirewallMode::Audit {
            let audit = self.audit_set(family);
            out.push(format!(
                "-A {chain} -m set ! --match-set {audit} src,dst -j SET --add-set {audit} src,dst"
            ));
            return out;
        }
        out.push(format!(
            "-A {chain} -m limit --limit 5/min -j LOG --log-prefix \"{LOG_PREFIX}\""
        ));
        out.push(format!("-A {chain} -j DROP"));
        out
    }
}

/// Nodes talk over their private network too (DC/OS uses whatever address
/// `ip-detect` picks). An inventory that knows no private address for a
/// node (`terraform output -json` holds public IPv4s only; a static host may
/// list one address) would drop that traffic everywhere. None when every
/// node has one, the operator admitted private networks with `--allow` or
/// `--extra`, or said `--public-only`; else the nodes without one (their
/// refusal is worded in `report`).
pub(crate) fn private_gap(inv: &Inventory, opts: &PolicyOptions) -> Option<PrivateGap> {
    let blind: Vec<HostName> = inv
        .hosts
        .iter()
        .filter(|h| !h.addresses().any(crate::net::is_private))
        .map(|h| h.name().clone())
        .collect();
    let admitted = opts.allow.iter().chain(&opts.extra).any(Net::touches_private);
    if blind.is_empty() || admitted || opts.public_only {
        return None;
    }
    Some(PrivateGap { blind })
}

/// Nodes the inventory knows no private address for ([`private_gap`]);
/// `report` words it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PrivateGap {
    /// The nodes, in inventory order; never empty.
    pub(crate) blind: Vec<HostName>,
}

/// The whole whitelist, as `plan` shows it on a first run: what every node
/// admits, the rules of palisade's guard, and what each role opens to
/// everyone. Shown once for the fleet, so that each node's diff can say "the
/// whole whitelist" rather than repeat it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct WhitelistSummary {
    pub(crate) ipv4: Vec<Net>,
    pub(crate) ipv6: Vec<Net>,
    pub(crate) interfaces: Vec<IfName>,
    pub(crate) open: BTreeMap<Role, Vec<Port>>,
    pub(crate) chain: ChainName,
    /// The chain's rules per family, as `iptables -S` prints them, for a
    /// node with no open port; a role's open ports add one RETURN rule each,
    /// right before the set match.
    pub(crate) rules: BTreeMap<Family, Vec<String>>,
}

impl Policy {
    pub(crate) fn whitelist_summary(&self, by_role: &BTreeMap<Role, Policy>) -> WhitelistSummary {
        let base = Policy {
            open: BTreeSet::new(),
            ..self.clone()
        };
        WhitelistSummary {
            ipv4: self.members(Family::V4).copied().collect(),
            ipv6: self.members(Family::V6).copied().collect(),
            interfaces: self.interfaces.clone(),
            open: by_role
                .iter()
                .map(|(role, p)| (*role, p.open.iter().copied().collect()))
                .collect(),
            chain: self.guard_chain.clone(),
            rules: Family::BOTH
                .into_iter()
                .map(|f| (f, base.guard_rules(f)))
                .collect(),
        }
    }
}

/// One of palisade's own constant addresses.
fn fixed(text: &str) -> Net {
    text.parse().expect("palisade's constant addresses parse")
}

/// Policies for the unit tests of the stages after this one (diff, render,
/// engine), built one way.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// palisade's default names, `allow` as the one operator address, and
    /// nothing else: a test sets what it needs with `..options(allow)`.
    pub(crate) fn options(allow: &str) -> PolicyOptions {
        PolicyOptions {
            public_only: false,
            open: vec![],
            allow: vec![allow.parse().unwrap()],
            extra: vec![],
            resolvers: vec![],
            interfaces: vec![],
            set4: "palisade4".parse().unwrap(),
            set6: "palisade6".parse().unwrap(),
            chain: "PALISADE".parse().unwrap(),
            persist: true,
            backend: FirewallBackend::Iptables,
            mode: FirewallMode::Enforce,
            audit_size: DEFAULT_AUDIT_SIZE,
        }
    }

    /// The policy for the sample inventory, `inventory/hosts.toml`.
    pub(crate) fn for_sample_hosts(opts: &PolicyOptions) -> Policy {
        let inv = crate::inventory::load(
            &crate::inventory::Source::Static(
                concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml").into(),
            ),
            &Default::default(),
        )
        .unwrap();
        Policy::desired(&inv, opts).unwrap()
    }

    /// The policy for an inventory of no hosts.
    pub(crate) fn for_no_hosts(opts: &PolicyOptions) -> Policy {
        Policy::desired(&Inventory { hosts: vec![] }, opts).unwrap()
    }

    /// What no constructor does, for the tests that need a policy no
    /// inventory and options give.
    impl Policy {
        /// The same policy with exactly `members` in its sets: without the
        /// constant addresses [`Policy::desired`] adds, and unchecked.
        pub(crate) fn with_members(self, members: impl IntoIterator<Item = Net>) -> Policy {
            Policy {
                members: members.into_iter().collect(),
                ..self
            }
        }

        /// Adds `member` to the sets.
        pub(crate) fn add_member(&mut self, member: Net) {
            self.members.insert(member);
        }

        /// Opens `port` to everyone on the node, beside its role's ports.
        pub(crate) fn open_port(&mut self, port: Port) {
            self.open.insert(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{RoleRules, parse_terraform};

    fn options() -> PolicyOptions {
        PolicyOptions {
            public_only: false,
            open: vec![
                "public-agent=tcp/80,tcp/443,udp/10000-10100".parse().unwrap(),
                "all=tcp/22".parse().unwrap(),
            ],
            allow: vec!["203.0.113.7".parse().unwrap()],
            extra: vec!["192.0.2.0/24".parse().unwrap()],
            resolvers: DEFAULT_RESOLVERS.iter().map(|r| r.parse().unwrap()).collect(),
            interfaces: DEFAULT_INTERFACES.iter().map(|i| i.parse().unwrap()).collect(),
            set4: "palisade4".parse().unwrap(),
            set6: "palisade6".parse().unwrap(),
            chain: "PALISADE".parse().unwrap(),
            persist: true,
            backend: FirewallBackend::Iptables,
            mode: FirewallMode::Enforce,
            audit_size: DEFAULT_AUDIT_SIZE,
        }
    }

    fn inventory() -> Inventory {
        let state = include_bytes!("../tests/fixtures/tfstate/v4-packet.tfstate");
        parse_terraform(state, "v4-packet.tfstate", &RoleRules::default()).unwrap()
    }

    #[test]
    fn members_are_everything_every_node_must_admit() {
        let p = Policy::desired(&inventory(), &options()).unwrap();
        let v4: Vec<String> = p.members(Family::V4).map(|m| m.to_string()).collect();
        for want in [
            "203.0.113.7",
            "147.75.100.9",
            "10.100.5.31",
            "8.8.8.8",
            "8.8.4.4",
            "127.0.0.1",
            "198.51.100.1",
            "198.51.100.3",
            "192.0.2.0/24",
        ] {
            assert!(v4.contains(&want.to_string()), "{want} missing from {v4:?}");
        }
        // 9 nodes x 2 + operator + 2 resolvers + loopback + 3 Spartan + extra
        assert_eq!(v4.len(), 18 + 1 + 2 + 1 + 3 + 1);
        let v6: Vec<String> = p.members(Family::V6).map(|m| m.to_string()).collect();
        assert_eq!(v6.len(), 9 + 1, "{v6:?}");
        assert!(v6.contains(&"2604:1380:1:4d00::1f".to_string()));
        assert!(p.covers("192.0.2.77".parse().unwrap()));
        assert!(!p.covers("192.0.3.1".parse().unwrap()));
    }

    #[test]
    fn rules_in_canonical_order() {
        let p = Policy::desired(&inventory(), &options()).unwrap();
        let v6 = p.guard_rules(Family::V6);
        assert_eq!(
            v6[0],
            "-A PALISADE-GUARD -i lo -m comment --comment palisade -j RETURN"
        );
        assert_eq!(v6[2], "-A PALISADE-GUARD -p ipv6-icmp -j RETURN");
        assert!(v6.contains(&"-A PALISADE-GUARD -m set --match-set palisade6 src -j RETURN".to_string()));
        assert_eq!(v6.last().unwrap(), "-A PALISADE-GUARD -j DROP");
        assert_eq!(p.guard_rules(Family::V4).len(), v6.len() - 1);
        // What earlier versions made, found by these names to be taken away.
        assert_eq!(p.docker_chain().to_string(), "PALISADE-DOCKER");
        assert_eq!(p.docker_jump(), "-A DOCKER-USER -j PALISADE-DOCKER");
        assert_eq!(p.jump(), "-A INPUT -j PALISADE");
        assert_eq!(p.guard_jump(), "-A PREROUTING -j PALISADE-GUARD");
    }

    /// In audit mode the guard ends by recording in the family's audit
    /// set, and drops nothing.
    #[test]
    fn audit_mode_records_instead_of_dropping() {
        let mut o = options();
        o.mode = FirewallMode::Audit;
        let p = Policy::desired(&inventory(), &o).unwrap();
        for (family, set) in [(Family::V4, "palisade4-aud"), (Family::V6, "palisade6-aud")] {
            assert_eq!(p.audit_set(family), set);
            let rules = p.guard_rules(family);
            assert_eq!(
                rules.last().unwrap(),
                &format!(
                    "-A PALISADE-GUARD -m set ! --match-set {set} src,dst -j SET --add-set {set} src,dst"
                )
            );
            assert!(
                !rules.iter().any(|r| r.contains("DROP") || r.contains("LOG")),
                "{rules:?}"
            );
            // The same admissions before it as in enforce mode.
            let enforce = p.with_mode(FirewallMode::Enforce).guard_rules(family);
            assert_eq!(rules[..rules.len() - 1], enforce[..enforce.len() - 2]);
        }
    }

    #[test]
    fn ports_open_per_role() {
        let p = Policy::desired(&inventory(), &options()).unwrap();
        let public = p.for_role(Role::PublicAgent);
        let rules = public.guard_rules(Family::V4);
        let set = rules.iter().position(|r| r.contains("--match-set")).unwrap();
        let open: Vec<&String> = rules.iter().filter(|r| r.contains("--dport")).collect();
        assert_eq!(
            open,
            [
                "-A PALISADE-GUARD -p tcp -m tcp --dport 22 -j RETURN",
                "-A PALISADE-GUARD -p tcp -m tcp --dport 80 -j RETURN",
                "-A PALISADE-GUARD -p tcp -m tcp --dport 443 -j RETURN",
                "-A PALISADE-GUARD -p udp -m udp --dport 10000:10100 -j RETURN",
            ]
        );
        assert!(rules.iter().position(|r| r.contains("--dport")).unwrap() < set);
        assert!(
            public
                .guard_rules(Family::V6)
                .iter()
                .any(|r| r.contains("--dport 443"))
        );
        let agent = p.for_role(Role::Agent);
        assert_eq!(agent.open().len(), 1, "only `all` applies to agents");
        assert_eq!(p.by_role(&inventory()).len(), 4);
        assert!("planet=tcp/80".parse::<Opening>().is_err());
        assert!("public-agent".parse::<Opening>().is_err());
        assert!("public-agent=tcp/80,".parse::<Opening>().is_err());
    }

    #[test]
    fn an_inventory_without_private_addresses_is_named() {
        let outputs = include_bytes!("../tests/fixtures/tfstate/output-0.12.json");
        let inv = parse_terraform(outputs, "output-0.12.json", &RoleRules::default()).unwrap();
        let mut o = options();
        o.extra = vec![];
        let gap = private_gap(&inv, &o)
            .expect("outputs hold public IPv4s only")
            .to_string();
        assert!(
            gap.contains("no private address for 9 node(s) (master-00, master-01"),
            "{gap}"
        );
        assert!(
            gap.contains("and 1 more") && gap.contains("--public-only"),
            "{gap}"
        );
        o.extra = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(private_gap(&inv, &o), None);
        o.extra = vec![];
        o.public_only = true;
        assert_eq!(private_gap(&inv, &o), None);
        assert_eq!(
            private_gap(&inventory(), &options()),
            None,
            "state has private addresses"
        );
    }

    #[test]
    fn the_summary_holds_members_rules_and_ports_once() {
        let inv = inventory();
        let p = Policy::desired(&inv, &options()).unwrap();
        let summary = p.whitelist_summary(&p.by_role(&inv));
        let text = summary.to_string();
        assert!(text.contains("  IPv4 (26): "), "{text}");
        assert!(
            text.contains("The IPv6 rules of chain PALISADE-GUARD:\n  -A PALISADE-GUARD -i lo"),
            "{text}"
        );
        assert!(
            text.contains(
                "  (one RETURN per port the node's role opens, below)\n  -A PALISADE-GUARD -m set --match-set palisade4 src -j RETURN"
            ),
            "{text}"
        );
        assert!(
            text.contains("  public-agent: tcp/22 tcp/80 tcp/443 udp/10000-10100"),
            "{text}"
        );
        assert!(
            !text.contains("--dport"),
            "open ports are listed per role, not as rules: {text}"
        );
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["chain"], "PALISADE-GUARD");
        assert_eq!(
            json["rules"]["ipv6"][2],
            "-A PALISADE-GUARD -p ipv6-icmp -j RETURN"
        );
        assert_eq!(json["open"]["agent"], serde_json::json!(["tcp/22"]));
    }

    #[test]
    fn a_new_connection_is_judged_by_the_whole_chain() {
        let mut o = options();
        o.allow = vec![];
        o.open = vec![
            "public-agent=tcp/22".parse().unwrap(),
            "all=udp/22".parse().unwrap(),
        ];
        o.interfaces = vec!["wg0".parse().unwrap(), "tun+".parse().unwrap()];
        let p = Policy::desired(&inventory(), &o).unwrap();
        let operator: IpAddr = "203.0.113.7".parse().unwrap();
        let ssh = Packet::ssh(operator, 22);
        // Outside the set, port 22 closed on agents (udp/22 is no SSH).
        assert!(!p.for_role(Role::Agent).admits(&ssh));
        // Open to everyone on public agents, but only that port.
        let public = p.for_role(Role::PublicAgent);
        assert!(public.admits(&ssh));
        assert!(!public.admits(&Packet::ssh(operator, 2222)));
        // Over an accepted interface (a VPN), exactly or by prefix; an
        // unknown interface admits nothing.
        let agent = p.for_role(Role::Agent);
        for (interface, admitted) in [("wg0", true), ("tun7", true), ("wg1", false), ("lo", true)] {
            let packet = Packet {
                interface: Some(interface.into()),
                ..ssh.clone()
            };
            assert_eq!(agent.admits(&packet), admitted, "{interface}");
        }
        // A member of the set, on any port.
        assert!(agent.admits(&Packet::ssh("147.75.100.9".parse().unwrap(), 2222)));
    }

    #[test]
    fn limits() {
        let mut o = options();
        o.set6 = o.set4.clone();
        assert!(Policy::desired(&inventory(), &o).is_err());
    }

    #[test]
    fn set_names_and_their_temporary_sets_never_collide() {
        let name = |s: &str| s.parse::<SetName>().unwrap();
        let clash = |a: &str, b: &str| set_clash(&name(a), &name(b));
        assert_eq!(clash("p4", "p6"), None);
        assert_eq!(clash("p", "p"), Some(SetClash::Same("p".into())));
        for suffix in TEMP_SET_SUFFIXES {
            let derived = format!("p4{suffix}");
            assert!(matches!(
                clash("p4", &derived),
                Some(SetClash::Temporary { set: Family::V6, .. })
            ));
            assert!(matches!(
                clash(&derived, "p4"),
                Some(SetClash::Temporary { set: Family::V4, .. })
            ));
        }
        // Audit mode's sets too.
        for suffix in AUDIT_SET_SUFFIXES {
            assert!(clash("p4", &format!("p4{suffix}")).is_some(), "{suffix}");
        }
        // Only the exact suffix: "p4-newer" and "p4new" are names of their own.
        assert_eq!(clash("p4", "p4-newer"), None);
        assert_eq!(clash("p4", "p4new"), None);
        let mut o = options();
        o.set6 = name(&format!("{}-new", o.set4));
        assert!(matches!(
            Policy::desired(&inventory(), &o),
            Err(PolicyError::SetsCollide(_))
        ));
        // The longest name leaves room for its temporary sets in ipset's 31
        // bytes.
        let longest = "s".repeat(27);
        for suffix in TEMP_SET_SUFFIXES.into_iter().chain(AUDIT_SET_SUFFIXES) {
            assert!(longest.len() + suffix.len() <= 31);
        }
        assert!(format!("{longest}s").parse::<SetName>().is_err());
    }
}
