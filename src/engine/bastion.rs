//! The operator's real path when palisade goes through bastions
//! (`--jump a,b`): the nodes see the last bastion connect, each bastion
//! sees the one before it (the first sees the operator), and the
//! operator's own sessions take the same path. When a bastion is a node of
//! the inventory, its new rules must still admit the address it sees its
//! client connect from, or the operator loses that bastion, and every node
//! behind it with it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::inventory::{Inventory, Role};
use crate::policy::{Packet, Policy};
use crate::transport;

use super::Refusal;

/// The bastions of a run, as the lockout check needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bastions {
    /// Each hop, first to last.
    pub(crate) hops: Vec<BastionHop>,
    /// Every node, by each of its addresses: a bastion is also the node
    /// whose address its connection actually went to, whatever a name in
    /// `--jump` resolved to. palisade resolves nothing itself: the system
    /// resolver (or the hop before) gave the connection its address, and
    /// that address decides.
    pub(crate) by_address: BTreeMap<IpAddr, Node>,
}

/// One bastion of the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BastionHop {
    /// Its SSH port: where the sessions to it go.
    pub(crate) port: u16,
    /// The node `--jump` names, by its inventory name or by an address of
    /// it written as one.
    pub(crate) named: Option<Node>,
}

/// A node of the inventory that is a bastion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) role: Role,
}

impl Bastions {
    /// The bastions of `path` against the whole inventory (not only the
    /// nodes `--limit` selects: a bastion outside the selection keeps the
    /// whitelist it has now, and gets this one on its next run).
    pub(crate) fn new(path: &transport::BastionPath, inv: &Inventory) -> Bastions {
        let mut by_address = BTreeMap::new();
        for host in &inv.hosts {
            let node = Node {
                name: host.name().to_string(),
                role: host.role(),
            };
            for addr in host.addresses() {
                by_address.entry(addr).or_insert_with(|| node.clone());
            }
        }
        let hops = path
            .hops
            .iter()
            .map(|hop| {
                // A name in --jump may end in the root's dot; DNS names
                // ignore case.
                let wanted = hop.host.strip_suffix('.').unwrap_or(&hop.host);
                let named = match hop.host.parse::<IpAddr>() {
                    Ok(addr) => by_address.get(&addr).cloned(),
                    Err(_) => inv
                        .hosts
                        .iter()
                        .find(|h| h.name().as_str().eq_ignore_ascii_case(wanted))
                        .map(|h| Node {
                            name: h.name().to_string(),
                            role: h.role(),
                        }),
                };
                BastionHop {
                    port: hop.port,
                    named,
                }
            })
            .collect();
        Bastions { hops, by_address }
    }

    /// The node hop `i` is, if it is one: named in `--jump`, or at the
    /// address its connection went to (`address`).
    pub(crate) fn node(&self, i: usize, address: Option<IpAddr>) -> Option<&Node> {
        self.hops
            .get(i)?
            .named
            .as_ref()
            .or_else(|| address.and_then(|a| self.by_address.get(&a)))
    }

    /// The node the connected hop `i` is, if it is one: the hop's address
    /// is asked only when `--jump` does not name a node (past the first
    /// hop it costs one exec on the hop, once per run).
    pub(crate) async fn node_of(&self, i: usize, hop: &transport::HopSession) -> Option<&Node> {
        let named = self.hops.get(i)?.named.is_some();
        let address = if named { None } else { hop.address().await };
        self.node(i, address)
    }
}

/// Every hop that is a node of the inventory must admit, by its own role's
/// policy in `policies`, the address it sees its client connect from
/// ([`admits_operator`]); the first hop that would not is the refusal.
pub(crate) async fn admit_every_hop(
    bastions: &Bastions,
    via: &transport::Bastion,
    policies: &BTreeMap<Role, Policy>,
) -> Result<(), Refusal> {
    for (i, (hop, conn)) in bastions.hops.iter().zip(via.hops()).enumerate() {
        let Some(node) = bastions.node_of(i, conn).await else {
            continue;
        };
        admits_operator(hop.port, node, policies.get(&node.role), conn.sees_us().await)?;
    }
    Ok(())
}

/// Whether some hop of the path is not a node of the inventory (its own
/// firewall is not palisade's to check).
pub(crate) async fn some_hop_outside(bastions: &Bastions, via: &transport::Bastion) -> bool {
    for (i, conn) in via.hops().iter().enumerate() {
        if bastions.node_of(i, conn).await.is_none() {
            return true;
        }
    }
    false
}

/// Whether the bastion node `node` still admits its client under its
/// role's `policy`: a new SSH connection from `sees_us` (the address the
/// bastion sees its client connect from: the controller's for the first
/// hop, the hop before's for the next) to the bastion's `port`. Every host
/// refuses alike, before any write: a bastion that locks the operator out
/// takes the whole fleet behind it out of reach.
pub(crate) fn admits_operator(
    port: u16,
    node: &Node,
    policy: Option<&Policy>,
    sees_us: Option<IpAddr>,
) -> Result<(), Refusal> {
    let bastion = node.name.clone();
    match (policy, sees_us) {
        (Some(policy), Some(seen)) if !policy.admits(&Packet::ssh(seen, port)) => {
            Err(Refusal::BastionWouldLockOut { bastion, seen })
        }
        (Some(_), Some(_)) => Ok(()),
        _ => Err(Refusal::BastionUnknown { bastion }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyOptions, testing};

    fn inventory() -> Inventory {
        crate::inventory::load(
            &crate::inventory::Source::Static(
                concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml").into(),
            ),
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_bastion_is_found_by_name_address_or_where_the_connection_went() {
        let inv = inventory();
        let master = &inv.hosts[0];
        let name = master.name().to_string();
        let addr = master.address();
        let bastions = |spec: &str| Bastions::new(&spec.parse().unwrap(), &inv);

        let by_name = bastions(&format!("core@{}.", name.to_uppercase()));
        assert_eq!(
            by_name.node(0, None).map(|n| n.name.as_str()),
            Some(name.as_str())
        );
        assert_eq!(by_name.node(0, None).map(|n| n.role), Some(master.role()));
        let by_address = bastions(&format!("core@{addr}:2222"));
        assert_eq!(by_address.hops[0].port, 2222);
        assert_eq!(
            by_address.node(0, None).map(|n| n.name.as_str()),
            Some(name.as_str())
        );
        // Any address of the node, not only its SSH one.
        let other = master.addresses().find(|a| *a != addr).unwrap();
        let by_other = bastions(&format!("core@{other}"));
        assert_eq!(
            by_other.node(0, None).map(|n| n.name.as_str()),
            Some(name.as_str())
        );

        // A name the inventory does not know is the node whose address the
        // connection went to, or no node.
        let dns = bastions("core@bastion.example");
        assert_eq!(
            dns.node(0, Some(addr)).map(|n| n.name.as_str()),
            Some(name.as_str())
        );
        assert_eq!(dns.node(0, Some("192.0.2.1".parse().unwrap())), None);
        assert_eq!(dns.node(0, None), None);
        assert_eq!(bastions("core@192.0.2.1").node(0, None), None);
    }

    #[test]
    fn a_bastion_node_must_admit_the_address_it_sees_us_from() {
        let inv = inventory();
        let bastions = Bastions::new(&format!("core@{}", inv.hosts[0].address()).parse().unwrap(), &inv);
        let node = bastions.node(0, None).unwrap().clone();
        let operator: IpAddr = "198.18.0.1".parse().unwrap();

        // Allowed: admitted. Not allowed: refused, naming the bastion and
        // the address to allow.
        let allowed = testing::for_sample_hosts(&testing::options("198.18.0.1"));
        assert!(admits_operator(bastions.hops[0].port, &node, Some(&allowed), Some(operator)).is_ok());
        let other = testing::for_sample_hosts(&testing::options("203.0.113.7"));
        let refusal =
            admits_operator(bastions.hops[0].port, &node, Some(&other), Some(operator)).unwrap_err();
        let text = refusal.to_string();
        assert!(
            text.contains(&format!(
                "the bastion {} sees palisade connecting from 198.18.0.1",
                node.name
            )) && text.contains("--allow 198.18.0.1"),
            "{text}"
        );
        // Port 22 open to everyone on the bastion's role admits the operator
        // there; open on another port, or another role, it does not.
        for (open, admitted) in [
            ("all=tcp/22", true),
            ("all=tcp/2222", false),
            ("agent=tcp/22", false),
        ] {
            let p = testing::for_sample_hosts(&PolicyOptions {
                open: vec![open.parse().unwrap()],
                ..testing::options("203.0.113.7")
            })
            .for_role(node.role);
            assert_eq!(
                admits_operator(bastions.hops[0].port, &node, Some(&p), Some(operator)).is_ok(),
                admitted,
                "{open}"
            );
        }
        // The bastion does not say where we come from: refused, not guessed.
        assert!(matches!(
            admits_operator(bastions.hops[0].port, &node, Some(&allowed), None),
            Err(Refusal::BastionUnknown { .. })
        ));
    }

    #[test]
    fn each_hop_of_a_path_is_found_on_its_own() {
        let inv = inventory();
        let master = &inv.hosts[0];
        let path: transport::BastionPath = format!("core@bastion.example,core@{}:2222", master.address())
            .parse()
            .unwrap();
        let bastions = Bastions::new(&path, &inv);
        assert_eq!(bastions.hops.len(), 2);
        assert_eq!(bastions.node(0, None), None);
        assert_eq!(
            bastions.node(1, None).map(|n| n.name.as_str()),
            Some(master.name().as_str())
        );
        assert_eq!(bastions.hops[1].port, 2222);
        // The first hop is a node by the address its connection went to.
        assert_eq!(
            bastions.node(0, Some(master.address())).map(|n| n.name.as_str()),
            Some(master.name().as_str())
        );
        assert_eq!(bastions.node(2, Some(master.address())), None);
    }
}
