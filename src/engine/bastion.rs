//! The operator's real path when palisade goes through a bastion
//! (`--jump`): the nodes see the bastion connect, but the operator's own
//! sessions arrive at the bastion. When the bastion is a node of the
//! inventory, its new rules must still admit the address it sees the
//! controller connect from, or the operator loses the bastion, and every
//! node behind it with it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::inventory::{Inventory, Role};
use crate::policy::{Packet, Policy};
use crate::transport;

use super::Refusal;

/// The bastion of a run, as the lockout check needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jump {
    /// The bastion's SSH port: where the operator's sessions to it go.
    pub port: u16,
    /// The node `--jump` names, by its inventory name or by an address of
    /// it written as one.
    pub named: Option<Node>,
    /// Every node, by each of its addresses: the bastion is also the node
    /// whose address the controller actually connected to, whatever a name
    /// in `--jump` resolved to. palisade resolves nothing itself: the
    /// system resolver gave the connection its address, and that address
    /// decides.
    pub by_address: BTreeMap<IpAddr, Node>,
}

/// A node of the inventory that is the bastion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub role: Role,
}

impl Jump {
    /// The bastion `jump` against the whole inventory (not only the nodes
    /// `--limit` selects: a bastion outside the selection keeps the
    /// whitelist it has now, and gets this one on its next run).
    pub fn new(jump: &transport::Jump, inv: &Inventory) -> Jump {
        let mut by_address = BTreeMap::new();
        for host in &inv.hosts {
            let node = Node {
                name: host.name.to_string(),
                role: host.role,
            };
            for addr in host.addresses() {
                by_address.entry(addr).or_insert_with(|| node.clone());
            }
        }
        // A name in --jump may end in the root's dot; DNS names ignore case.
        let wanted = jump.host.strip_suffix('.').unwrap_or(&jump.host);
        let named = match jump.host.parse::<IpAddr>() {
            Ok(addr) => by_address.get(&addr).cloned(),
            Err(_) => inv
                .hosts
                .iter()
                .find(|h| h.name.as_str().eq_ignore_ascii_case(wanted))
                .map(|h| Node {
                    name: h.name.to_string(),
                    role: h.role,
                }),
        };
        Jump {
            port: jump.port,
            named,
            by_address,
        }
    }

    /// The node the bastion is, if it is one: named in `--jump`, or at the
    /// address the controller connected to (`peer`).
    pub fn node(&self, peer: Option<IpAddr>) -> Option<&Node> {
        self.named
            .as_ref()
            .or_else(|| peer.and_then(|p| self.by_address.get(&p)))
    }
}

/// Whether the bastion node `node` still admits the operator under its
/// role's `policy`: a new SSH connection from `sees_us` (the controller's
/// address as the bastion sees it) to the bastion's port. Every host
/// refuses alike, before any write: a bastion that locks the operator out
/// takes the whole fleet behind it out of reach.
pub fn admits_operator(
    jump: &Jump,
    node: &Node,
    policy: Option<&Policy>,
    sees_us: Option<IpAddr>,
) -> Result<(), Refusal> {
    let bastion = node.name.clone();
    match (policy, sees_us) {
        (Some(policy), Some(seen)) if !policy.admits(&Packet::ssh(seen, jump.port)) => {
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
        let name = master.name.to_string();
        let addr = master.address;
        let jump = |spec: &str| Jump::new(&spec.parse().unwrap(), &inv);

        let by_name = jump(&format!("core@{}.", name.to_uppercase()));
        assert_eq!(by_name.node(None).map(|n| n.name.as_str()), Some(name.as_str()));
        assert_eq!(by_name.node(None).map(|n| n.role), Some(master.role));
        let by_address = jump(&format!("core@{addr}:2222"));
        assert_eq!(by_address.port, 2222);
        assert_eq!(
            by_address.node(None).map(|n| n.name.as_str()),
            Some(name.as_str())
        );
        // Any address of the node, not only its SSH one.
        let other = master.addresses().find(|a| *a != addr).unwrap();
        let by_other = jump(&format!("core@{other}"));
        assert_eq!(by_other.node(None).map(|n| n.name.as_str()), Some(name.as_str()));

        // A name the inventory does not know is the node whose address the
        // connection went to, or no node.
        let dns = jump("core@bastion.example");
        assert_eq!(dns.node(Some(addr)).map(|n| n.name.as_str()), Some(name.as_str()));
        assert_eq!(dns.node(Some("192.0.2.1".parse().unwrap())), None);
        assert_eq!(dns.node(None), None);
        assert_eq!(jump("core@192.0.2.1").node(None), None);
    }

    #[test]
    fn a_bastion_node_must_admit_the_address_it_sees_us_from() {
        let inv = inventory();
        let jump = Jump::new(&format!("core@{}", inv.hosts[0].address).parse().unwrap(), &inv);
        let node = jump.node(None).unwrap().clone();
        let operator: IpAddr = "198.18.0.1".parse().unwrap();

        // Allowed: admitted. Not allowed: refused, naming the bastion and
        // the address to allow.
        let allowed = testing::for_sample_hosts(&testing::options("198.18.0.1"));
        assert!(admits_operator(&jump, &node, Some(&allowed), Some(operator)).is_ok());
        let other = testing::for_sample_hosts(&testing::options("203.0.113.7"));
        let refusal = admits_operator(&jump, &node, Some(&other), Some(operator)).unwrap_err();
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
                admits_operator(&jump, &node, Some(&p), Some(operator)).is_ok(),
                admitted,
                "{open}"
            );
        }
        // The bastion does not say where we come from: refused, not guessed.
        assert!(matches!(
            admits_operator(&jump, &node, Some(&allowed), None),
            Err(Refusal::BastionUnknown { .. })
        ));
    }
}
