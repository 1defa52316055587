//! `palisade inventory`: the fleet as a table for people or JSON for tools.

use crate::inventory::Inventory;

/// `{"hosts":[{"name","role","address","ipv4":[…],"ipv6":[…]}]}` on one line.
pub fn json(inv: &Inventory) -> String {
    // Serialising plain strings, lists and maps cannot fail.
    serde_json::to_string(inv).unwrap_or_default()
}

pub fn table(inv: &Inventory) -> String {
    let mut rows = vec![["ROLE", "NAME", "ADDRESS", "ADDRESSES"].map(String::from)];
    for h in &inv.hosts {
        let all: Vec<String> = h.addresses().map(|a| a.to_string()).collect();
        rows.push([
            h.role.to_string(),
            h.name.to_string(),
            h.address.to_string(),
            all.join(" "),
        ]);
    }
    super::columns(&rows)
}
