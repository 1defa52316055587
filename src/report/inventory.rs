//! `palisade inventory`: the fleet as a table for people or JSON for tools,
//! and what the state held beside it (the census) so an operator sees at once
//! whether their fleet was understood.

use serde::Serialize;

use crate::inventory::{Census, Host, Inventory, Lifecycle, Survey};

/// `{"hosts":[{"name","role","address","ipv4":[…],"ipv6":[…]}]}` on one line;
/// `lifecycle` appears on tainted and deposed hosts only.
#[cfg(test)]
pub(crate) fn json(inv: &Inventory) -> String {
    // Serialising plain strings, lists and maps cannot fail.
    serde_json::to_string(inv).unwrap_or_default()
}

/// `json` plus, for a Terraform state, `"found":{TYPE:N}` (hosts per
/// machine type), `"skipped":{TYPE:N}` (managed resources of other
/// types) and, when `--skip-addressless` left machines out,
/// `"left_out":[RESOURCE…]`: the documented shape with keys added, never
/// changed.
pub fn survey_json(survey: &Survey) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        hosts: &'a [Host],
        #[serde(flatten)]
        census: Option<&'a Census>,
        /// Only when `--skip-addressless` left machines out.
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        left_out: &'a [String],
    }
    let out = Out {
        hosts: &survey.inventory.hosts,
        census: survey.census.as_ref(),
        left_out: &survey.left_out,
    };
    serde_json::to_string(&out).unwrap_or_default()
}

/// The table. A LIFECYCLE column appears when some host is tainted or
/// deposed, so the everyday table stays as it always was.
pub(crate) fn table(inv: &Inventory) -> String {
    let addresses = |h: &Host| h.addresses().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
    if inv.hosts.iter().all(|h| h.lifecycle().is_current()) {
        let mut rows = vec![["ROLE", "NAME", "ADDRESS", "ADDRESSES"].map(String::from)];
        for h in &inv.hosts {
            rows.push([
                h.role().to_string(),
                h.name().to_string(),
                h.address().to_string(),
                addresses(h),
            ]);
        }
        return super::columns(&rows);
    }
    let mut rows = vec![["ROLE", "NAME", "ADDRESS", "LIFECYCLE", "ADDRESSES"].map(String::from)];
    for h in &inv.hosts {
        rows.push([
            h.role().to_string(),
            h.name().to_string(),
            h.address().to_string(),
            lifecycle(h.lifecycle()).into(),
            addresses(h),
        ]);
    }
    super::columns(&rows)
}

fn lifecycle(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Current => "current",
        Lifecycle::Tainted => "tainted",
        Lifecycle::Deposed => "deposed",
    }
}

/// What the state held, for stderr under the table: hosts per machine type,
/// and the other resource types passed over. Empty for outputs and static
/// inventories.
pub fn census(survey: &Survey) -> String {
    let Some(census) = &survey.census else {
        return String::new();
    };
    let hosts = &survey.inventory.hosts;
    let count = |l: Lifecycle| hosts.iter().filter(|h| h.lifecycle() == l).count();
    let mut out = format!("{} hosts: {}", hosts.len(), Census::describe(&census.found));
    let (tainted, deposed) = (count(Lifecycle::Tainted), count(Lifecycle::Deposed));
    if tainted + deposed > 0 {
        out.push_str(&format!(" ({tainted} tainted, {deposed} deposed)"));
    }
    out.push('\n');
    if !census.skipped.is_empty() {
        out.push_str(&format!(
            "skipped resources of other types: {} (a machine type palisade does not know goes in \
             [terraform.types.NAME] in palisade.toml)\n",
            Census::describe(&census.skipped)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::{RoleRules, parse_terraform};

    fn fleet() -> Inventory {
        let state = include_str!("../../tests/fixtures/tfstate/v4-packet.tfstate");
        parse_terraform(state.as_bytes(), "v4-packet.tfstate", &RoleRules::default()).unwrap()
    }

    #[test]
    fn table_has_a_lifecycle_column_only_when_it_says_something() {
        let mut inv = fleet();
        assert!(table(&inv).starts_with("ROLE  "));
        assert!(!table(&inv).contains("LIFECYCLE"));
        inv.hosts[1].set_lifecycle(Lifecycle::Tainted);
        let text = table(&inv);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("LIFECYCLE"), "{text}");
        assert_eq!(lines[2].split_whitespace().nth(3), Some("tainted"), "{text}");
        assert_eq!(lines[1].split_whitespace().nth(3), Some("current"), "{text}");
    }

    #[test]
    fn survey_json_adds_keys_after_hosts() {
        let inventory = fleet();
        let plain = json(&inventory);
        let counts = Census {
            found: BTreeMap::from([("packet_device".into(), 9)]),
            skipped: BTreeMap::from([("packet_ssh_key".into(), 1)]),
        };
        let survey = Survey {
            inventory,
            census: Some(counts),
            left_out: Vec::new(),
        };
        let full = survey_json(&survey);
        let stem = plain.strip_suffix('}').unwrap();
        assert_eq!(
            full,
            format!("{stem},\"found\":{{\"packet_device\":9}},\"skipped\":{{\"packet_ssh_key\":1}}}}")
        );
        let text = census(&survey);
        assert!(text.starts_with("9 hosts: packet_device 9\n"), "{text}");
        assert!(
            text.contains("skipped resources of other types: packet_ssh_key 1"),
            "{text}"
        );
        let static_survey = Survey {
            census: None,
            ..survey
        };
        assert_eq!(survey_json(&static_survey), plain);
        assert_eq!(census(&static_survey), "");
    }
}
