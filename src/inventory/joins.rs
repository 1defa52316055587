//! Addresses that live on other resources than their machine.
//!
//! Providers model an address that can move between machines as a resource
//! of its own that points at the machine: an AWS Elastic IP (`aws_eip.instance`
//! or an `aws_eip_association`), a DigitalOcean floating or reserved IP, a
//! Hetzner floating or primary IP, an OpenStack floating IP association, and
//! Azure's network interfaces and public IPs, which the machine points at.
//! Such an address is the one the machine is reached at, so it is joined to
//! its machine here, ahead of the machine's own attributes, and connected to.
//!
//! An AWS instance's own `public_ip` is the address it had before its
//! Elastic IP was attached (the provider's documentation says so): AWS
//! released it then, and it may be someone else's by now, so a joined
//! Elastic IP replaces it, with a warning, rather than standing beside it.

use std::collections::HashMap;
use std::net::IpAddr;

use super::address::{self, Class, Found};
use super::device::{Device, escape, shorten};
use super::path::{AttrPath, scalar};
use super::{Error, Lifecycle, Origin};

/// A resource that puts an address on the machine it names.
struct Points {
    types: &'static [&'static str],
    /// The attribute holding the machine's id (or its network interface's).
    machine: &'static str,
    /// Only when this attribute has this value (`assignee_type = server`).
    when: Option<(&'static str, &'static str)>,
    /// Where the address is.
    address: &'static str,
    class: Class,
    /// The machine's own attribute this address replaces, left stale in a
    /// state that has not been refreshed since the address moved.
    replaces: Option<&'static str>,
}

/// Attribute names from each provider's resource documentation.
const POINTS: &[Points] = &[
    // hashicorp/terraform-provider-aws website/docs/r/eip.html.markdown:
    // `instance`, or `network_interface` (the instance's primary ENI).
    Points {
        types: &["aws_eip"],
        machine: "instance",
        when: None,
        address: "public_ip",
        class: Class::Public,
        replaces: Some("public_ip"),
    },
    Points {
        types: &["aws_eip"],
        machine: "network_interface",
        when: None,
        address: "public_ip",
        class: Class::Public,
        replaces: Some("public_ip"),
    },
    // eip_association.html.markdown: `instance_id` or `network_interface_id`.
    Points {
        types: &["aws_eip_association"],
        machine: "instance_id",
        when: None,
        address: "public_ip",
        class: Class::Public,
        replaces: Some("public_ip"),
    },
    Points {
        types: &["aws_eip_association"],
        machine: "network_interface_id",
        when: None,
        address: "public_ip",
        class: Class::Public,
        replaces: Some("public_ip"),
    },
    // digitalocean/terraform-provider-digitalocean docs/resources/
    // floating_ip(_assignment).md and reserved_ip(_assignment).md.
    Points {
        types: &[
            "digitalocean_floating_ip",
            "digitalocean_floating_ip_assignment",
            "digitalocean_reserved_ip",
            "digitalocean_reserved_ip_assignment",
        ],
        machine: "droplet_id",
        when: None,
        address: "ip_address",
        class: Class::Public,
        replaces: None,
    },
    // hetznercloud/terraform-provider-hcloud docs/resources/floating_ip.md
    // and primary_ip.md.
    Points {
        types: &["hcloud_floating_ip"],
        machine: "server_id",
        when: None,
        address: "ip_address",
        class: Class::Public,
        replaces: None,
    },
    Points {
        types: &["hcloud_primary_ip"],
        machine: "assignee_id",
        when: Some(("assignee_type", "server")),
        address: "ip_address",
        class: Class::Public,
        replaces: None,
    },
    // terraform-provider-openstack compute_floatingip_associate_v2.
    Points {
        types: &["openstack_compute_floatingip_associate_v2"],
        machine: "instance_id",
        when: None,
        address: "floating_ip",
        class: Class::Public,
        replaces: None,
    },
];

/// Resources that only lead from one id to another: a Hetzner floating IP
/// assignment (the IP's id to the server's), an OpenStack port (its id to
/// the instance's, `device_id`).
struct Leads {
    rtype: &'static str,
    from: &'static str,
    to: &'static str,
}

const LEADS: &[Leads] = &[Leads {
    rtype: "openstack_networking_port_v2",
    from: "id",
    to: "device_id",
}];

/// Every resource type read for its addresses or its links.
const OTHER_TYPES: &[&str] = &[
    "hcloud_floating_ip_assignment",
    "openstack_networking_floatingip_associate_v2",
    "openstack_networking_port_v2",
    "azurerm_network_interface",
    "azurerm_public_ip",
];

/// Whether the readers should hand over resources of this type.
pub(super) fn is_source(rtype: &str) -> bool {
    POINTS.iter().any(|p| p.types.contains(&rtype)) || OTHER_TYPES.contains(&rtype)
}

/// An address found on another resource.
#[derive(Clone, Debug)]
pub(super) struct Joined {
    pub(crate) addr: IpAddr,
    pub(crate) class: Class,
    /// The resource it was found on, for messages.
    pub(crate) source: String,
    /// The machine attribute it replaces (see the module's doc).
    pub(crate) replaces: Option<&'static str>,
}

/// The rank of a joined address that stands beside the machine's own: after
/// every path of its type (ranks from 1), before addresses classified by
/// range (`device::addresses`, from 1000).
const BESIDE: usize = 999;

/// Every joined address, by the id it points at: a machine's `id`, or the
/// id of one of its network interfaces.
#[derive(Default)]
pub(super) struct Joins {
    by_id: HashMap<String, Vec<Joined>>,
}

/// The machine attributes an address can point at.
const MACHINE_KEYS: &[&str] = &[
    "id",
    // AWS: the instance's primary ENI.
    "primary_network_interface_id",
    // Azure: every VM type lists its NICs.
    "network_interface_ids[*]",
];

fn path(text: &str) -> AttrPath {
    // Every path here is a constant of this module, checked by its tests.
    AttrPath::parse(text).unwrap_or_else(|e| panic!("joins: bad built-in path {text}: {e}"))
}

/// The first scalar at `field`, as text; empty text counts as none.
fn one(device: &Device<'_>, field: &str) -> Option<String> {
    device
        .attrs
        .find(&path(field))
        .into_iter()
        .filter(|hit| !device.marked(&hit.field))
        .find_map(|hit| scalar(hit.value).filter(|t| !t.is_empty()))
}

fn all(device: &Device<'_>, field: &str) -> Vec<String> {
    device
        .attrs
        .find(&path(field))
        .into_iter()
        .filter(|hit| !device.marked(&hit.field))
        .filter_map(|hit| scalar(hit.value).filter(|t| !t.is_empty()))
        .collect()
}

/// Reads an address held by another resource, strictly as a machine's own.
fn read_address(device: &Device<'_>, field: &str, text: &str, origin: &Origin) -> Result<IpAddr, Error> {
    address::parse(text).map_err(|why| Error::BadAddress {
        file: origin.to_string(),
        resource: device.address.clone(),
        field: escape(field),
        value: shorten(text),
        why: why.says(),
    })
}

impl Joins {
    /// Reads every source resource. Deposed objects are passed over: their
    /// replacement holds the association now.
    pub(super) fn collect(sources: &[Device<'_>], origin: &Origin) -> Result<Joins, Error> {
        let sources: Vec<&Device<'_>> = sources
            .iter()
            .filter(|d| d.lifecycle != Lifecycle::Deposed)
            .collect();
        let of_type = |t: &'static str| sources.iter().copied().filter(move |d| d.rtype == t);
        let mut joins = Joins::default();

        // Links first: an id that leads to another (port -> instance).
        let mut leads: HashMap<String, String> = HashMap::new();
        for lead in LEADS {
            for d in of_type(lead.rtype) {
                if let (Some(from), Some(to)) = (one(d, lead.from), one(d, lead.to)) {
                    leads.insert(from, to);
                }
            }
        }
        let follow = |id: String| leads.get(&id).cloned().unwrap_or(id);

        for points in POINTS {
            for d in sources
                .iter()
                .filter(|d| points.types.contains(&d.rtype.as_str()))
            {
                if let Some((key, want)) = points.when
                    && one(d, key).as_deref() != Some(want)
                {
                    continue;
                }
                let (Some(machine), Some(text)) = (one(d, points.machine), one(d, points.address)) else {
                    continue;
                };
                let addr = read_address(d, points.address, &text, origin)?;
                joins.add(follow(machine), addr, points.class, d, points.replaces);
            }
        }

        // Hetzner: an assignment names the floating IP by id.
        let floating: HashMap<String, &Device<'_>> = of_type("hcloud_floating_ip")
            .filter_map(|d| Some((one(d, "id")?, d)))
            .collect();
        for d in of_type("hcloud_floating_ip_assignment") {
            let (Some(ip_id), Some(server)) = (one(d, "floating_ip_id"), one(d, "server_id")) else {
                continue;
            };
            if let Some(ip) = floating.get(&ip_id)
                && let Some(text) = one(ip, "ip_address")
            {
                let addr = read_address(ip, "ip_address", &text, origin)?;
                joins.add(server, addr, Class::Public, d, None);
            }
        }

        // OpenStack: a floating IP associated with a port of the instance.
        for d in of_type("openstack_networking_floatingip_associate_v2") {
            let (Some(text), Some(port)) = (one(d, "floating_ip"), one(d, "port_id")) else {
                continue;
            };
            let addr = read_address(d, "floating_ip", &text, origin)?;
            joins.add(follow(port), addr, Class::Public, d, None);
        }

        // Azure: the VM lists its NICs; a NIC holds private addresses and
        // points at its public IP resources.
        let public_ips: HashMap<String, &Device<'_>> = of_type("azurerm_public_ip")
            .filter_map(|d| Some((one(d, "id")?, d)))
            .collect();
        for nic in of_type("azurerm_network_interface") {
            let Some(nic_id) = one(nic, "id") else {
                continue;
            };
            for field in [
                "private_ip_address",
                "private_ip_addresses[*]",
                "ip_configuration[*].private_ip_address",
            ] {
                for text in all(nic, field) {
                    let addr = read_address(nic, field, &text, origin)?;
                    joins.add(nic_id.clone(), addr, Class::Private, nic, None);
                }
            }
            for ip_id in all(nic, "ip_configuration[*].public_ip_address_id") {
                if let Some(ip) = public_ips.get(&ip_id)
                    && let Some(text) = one(ip, "ip_address")
                {
                    let addr = read_address(ip, "ip_address", &text, origin)?;
                    joins.add(nic_id.clone(), addr, Class::Public, ip, None);
                }
            }
        }
        Ok(joins)
    }

    fn add(
        &mut self,
        id: String,
        addr: IpAddr,
        class: Class,
        source: &Device<'_>,
        replaces: Option<&'static str>,
    ) {
        let list = self.by_id.entry(id).or_default();
        if list.iter().any(|j| j.addr == addr) {
            return;
        }
        list.push(Joined {
            addr,
            class,
            source: source.address.clone(),
            replaces,
        });
    }

    /// The addresses other resources hold for `device`.
    pub(super) fn of(&self, device: &Device<'_>) -> Vec<Joined> {
        let mut out: Vec<Joined> = Vec::new();
        for key in MACHINE_KEYS {
            for id in all(device, key) {
                for j in self.by_id.get(&id).into_iter().flatten() {
                    if !out.iter().any(|o| o.addr == j.addr) {
                        out.push(j.clone());
                    }
                }
            }
        }
        out
    }

    /// Adds the joined addresses to the machine's own, and drops what a
    /// joined address replaces, saying so. An address that replaces the
    /// machine's own (an AWS Elastic IP) is the one to connect to (rank 0,
    /// ahead of every path of the type's); one that stands beside the
    /// machine's own (a floating IP, which a failover may move to another
    /// machine) is connected to only where the machine has no public
    /// address of its own (ranked after the type's paths).
    pub(super) fn apply(&self, device: &Device<'_>, found: &mut Vec<Found>, origin: &Origin) {
        let joined = self.of(device);
        if joined.is_empty() {
            return;
        }
        for j in joined.iter().filter(|j| j.addr.is_ipv4()) {
            let Some(field) = j.replaces else { continue };
            for stale in all(device, field) {
                let Ok(old) = address::parse(&stale) else { continue };
                if joined.iter().any(|k| k.addr == old) {
                    continue;
                }
                if let Some(at) = found.iter().position(|f| f.addr == old) {
                    found.remove(at);
                    tracing::warn!(
                        "{origin}: {}: {field} {old} is the address from before {} was attached; \
                         AWS released it then, so it is neither connected to nor whitelisted: \
                         refresh the state (terraform apply -refresh-only) to drop this warning",
                        device.address,
                        j.source
                    );
                }
            }
        }
        for f in found.iter_mut() {
            f.rank += 1;
        }
        for j in joined {
            if let Some(at) = found.iter().position(|f| f.addr == j.addr) {
                found.remove(at);
            }
            found.push(Found {
                addr: j.addr,
                class: j.class,
                rank: if j.replaces.is_some() { 0 } else { BESIDE },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_path_parses() {
        let fields = POINTS
            .iter()
            .flat_map(|p| [p.machine, p.address])
            .chain(POINTS.iter().filter_map(|p| p.replaces))
            .chain(LEADS.iter().flat_map(|l| [l.from, l.to]))
            .chain(MACHINE_KEYS.iter().copied());
        for field in fields {
            assert!(AttrPath::parse(field).is_ok(), "{field}");
        }
    }

    #[test]
    fn sources_are_never_machine_types() {
        let rules = super::super::RoleRules::new(&[], &[]).unwrap();
        for t in POINTS.iter().flat_map(|p| p.types).chain(OTHER_TYPES) {
            assert!(!rules.is_device(t), "{t}");
            assert!(is_source(t), "{t}");
        }
    }
}
