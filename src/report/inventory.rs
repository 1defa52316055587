//! `palisade inventory`: the fleet as a table for people or JSON for tools.

use crate::inventory::Inventory;

/// `{"hosts":[{"name","role","address","ipv4":[…],"ipv6":[…]}]}` on one line.
pub fn json(inv: &Inventory) -> String {
    // Serialising plain strings, lists and maps cannot fail.
    serde_json::to_string(inv).unwrap_or_default()
}

pub fn table(inv: &Inventory) -> String {
    let rows: Vec<[String; 4]> = inv
        .hosts
        .iter()
        .map(|h| {
            let all: Vec<String> = h.addresses().map(|a| a.to_string()).collect();
            [
                h.role.to_string(),
                h.name.to_string(),
                h.address.to_string(),
                all.join(" "),
            ]
        })
        .collect();
    let header = ["ROLE", "NAME", "ADDRESS", "ADDRESSES"].map(String::from);
    let mut widths = [0usize; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (cell, w) in row.iter().zip(widths) {
            out.push_str(&format!("{cell:<w$}  "));
        }
        out.push_str(&row[3]);
        out.push('\n');
    }
    out
}
