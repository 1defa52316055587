//! How palisade words the whitelist it computed: the summary `plan` shows
//! once for the fleet, and the refusal of a whitelist that would cut the
//! nodes' private network. `policy` computes them; the words live here.

use std::fmt;

use crate::net::{Net, Port};
use crate::policy::{PrivateGap, WhitelistSummary};

/// At most this many of the nodes without a private address are named.
const NAMED: usize = 8;

impl fmt::Display for PrivateGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<&str> = self.blind.iter().take(NAMED).map(|h| h.as_str()).collect();
        let more = if self.blind.len() > shown.len() {
            format!(" and {} more", self.blind.len() - shown.len())
        } else {
            String::new()
        };
        write!(
            f,
            "the inventory knows no private address for {} node(s) ({}{more}), so traffic between nodes over \
             the private network would be dropped; read the Terraform state rather than `terraform output`, \
             admit the private networks (e.g. --extra 10.0.0.0/8), or say --public-only if the nodes only \
             talk over the addresses listed",
            self.blind.len(),
            shown.join(", ")
        )
    }
}

impl fmt::Display for WhitelistSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(" ")
            }
        };
        let text = |v: &[Net]| join(v.iter().map(Net::to_string).collect());
        writeln!(f, "The whitelist every node gets:")?;
        writeln!(f, "  IPv4 ({}): {}", self.ipv4.len(), text(&self.ipv4))?;
        writeln!(f, "  IPv6 ({}): {}", self.ipv6.len(), text(&self.ipv6))?;
        let ifs = join(self.interfaces.iter().map(|i| i.to_string()).collect());
        writeln!(f, "  accepted interfaces: {ifs}")?;
        let any_open = self.open.values().any(|ports| !ports.is_empty());
        for (family, rules) in &self.rules {
            writeln!(f, "The {family} rules of chain {}:", self.chain)?;
            for rule in rules {
                if any_open && rule.contains(" -m set --match-set ") {
                    writeln!(f, "  (one RETURN per port the node's role opens, below)")?;
                }
                writeln!(f, "  {rule}")?;
            }
        }
        writeln!(f, "Open to everyone, per role:")?;
        for (role, ports) in &self.open {
            writeln!(
                f,
                "  {role}: {}",
                join(ports.iter().map(Port::to_string).collect())
            )?;
        }
        Ok(())
    }
}
