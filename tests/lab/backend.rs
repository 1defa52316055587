//! The firewall backend a lab test runs on (issue 22: every firewall,
//! lockout, DC/OS and DNAT test runs on both), and what a test reads or
//! changes on a node by hand, said once per backend: palisade's sets and
//! chain in ipset and iptables, or its one `table inet palisade`.
//!
//! A test listed with `both` in `lab_tests!` runs twice: as
//! `module::name` on the iptables backend, and as `module::nft::name`
//! with this thread's backend set to nftables, so that `lab_args` passes
//! `--backend nftables` and these helpers look at the table.

use std::cell::Cell;

use serde_json::Value;

use crate::harness::Lab;

/// Where palisade keeps its objects on the nodes of a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Iptables,
    Nftables,
}

thread_local! {
    /// Set by the trial, in the test's own thread, before the test runs.
    static CURRENT: Cell<Backend> = const { Cell::new(Backend::Iptables) };
}

/// The backend of the test running in this thread.
pub(crate) fn current() -> Backend {
    CURRENT.with(Cell::get)
}

/// Runs the test in this thread on `backend`.
pub(crate) fn set(backend: Backend) {
    CURRENT.with(|c| c.set(backend));
}

/// Whether this test runs on the nftables backend.
pub(crate) fn nft() -> bool {
    current() == Backend::Nftables
}

/// `iptables` on the iptables backend, `nftables` on the other: a drift
/// word, a kind list, a message, whatever differs between them.
pub(crate) fn pick<T>(iptables: T, nftables: T) -> T {
    match current() {
        Backend::Iptables => iptables,
        Backend::Nftables => nftables,
    }
}

/// The flags that choose this test's backend: none for the default.
pub(crate) fn flags() -> &'static [&'static str] {
    pick(&[], &["--backend", "nftables"])
}

/// palisade's table on node `i` as `nft -s list table` prints it
/// (counters aside), or empty when there is none.
pub(crate) fn table(lab: &Lab, i: usize) -> String {
    let out = lab.exec(
        &lab.nodes[i].ns,
        &["nft", "-s", "list", "table", "inet", "palisade"],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ipt -w -t mangle ARGS` on `ns` (`ipt`: `iptables`, `ip6tables` or a
/// `-legacy` one), which must succeed: what it prints. palisade's guard
/// and its jump live in the mangle table; the tests read and edit them by
/// hand through this.
pub(crate) fn mangle(lab: &Lab, ns: &str, ipt: &str, args: &[&str]) -> String {
    lab.must(ns, &[&[ipt, "-w", "-t", "mangle"][..], args].concat())
}

/// The lines of `save -t table` on `ns` (`save`: `iptables-save` or
/// `ip6tables-save`), comments and counters aside.
pub(crate) fn saved(lab: &Lab, ns: &str, save: &str, table: &str) -> Vec<String> {
    lab.must(ns, &[save, "-t", table])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(" [").next().unwrap_or(l).to_owned())
        .collect()
}

/// The lines of `ipset save` on `ns`, sorted, each set's seed aside
/// (`initval` differs every time a set is made; ipset lists sets in the
/// order they were made and members in hash order).
pub(crate) fn ipsets_saved(lab: &Lab, ns: &str) -> Vec<String> {
    let mut sets: Vec<String> = lab
        .must(ns, &["ipset", "save"])
        .lines()
        .map(|l| l.split(" initval").next().unwrap_or(l).to_owned())
        .collect();
    sets.sort();
    sets
}

/// Deletes `member` from the set `set` of `table inet palisade` on `ns` by
/// hand.
pub(crate) fn nft_delete_element(lab: &Lab, ns: &str, set: &str, member: &str) {
    let element = format!("{{ {member} }}");
    lab.must(
        ns,
        &["nft", "delete", "element", "inet", "palisade", set, &element],
    );
}

/// The set of `family` (4 or 6).
fn set_name(family: u8) -> &'static str {
    if family == 4 { "palisade4" } else { "palisade6" }
}

/// The members of node `i`'s set of `family` (4 or 6), one text each as
/// the node lists it (`198.18.0.1`, `192.0.2.0/24`; a run nft shows as a
/// range `a-b`), sorted. Empty when there is no such set.
pub(crate) fn members(lab: &Lab, i: usize, family: u8) -> Vec<String> {
    let ns = &lab.nodes[i].ns;
    let set = set_name(family);
    let mut out: Vec<String> = match current() {
        Backend::Iptables => {
            let text = String::from_utf8_lossy(&lab.exec(ns, &["ipset", "list", set]).stdout).into_owned();
            text.lines()
                .skip_while(|l| !l.starts_with("Members:"))
                .skip(1)
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect()
        }
        Backend::Nftables => {
            let out = lab.exec(ns, &["nft", "-j", "list", "set", "inet", "palisade", set]);
            let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            json["nftables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["set"]["elem"].as_array())
                .flatten()
                .map(element)
                .collect()
        }
    };
    out.sort();
    out
}

/// One element of a set as `nft -j` lists it, as text.
fn element(e: &Value) -> String {
    if let Some(s) = e.as_str() {
        return s.to_owned();
    }
    if let Some(inner) = e.get("elem") {
        return element(&inner["val"]);
    }
    if let Some(p) = e.get("prefix") {
        return format!("{}/{}", element(&p["addr"]), p["len"]);
    }
    if let Some(r) = e.get("range").and_then(Value::as_array) {
        let ends: Vec<String> = r.iter().map(element).collect();
        return ends.join("-");
    }
    e.to_string()
}

/// Deletes `member` from node `i`'s set of `family` by hand.
pub(crate) fn delete_member(lab: &Lab, i: usize, family: u8, member: &str) {
    let ns = &lab.nodes[i].ns;
    let set = set_name(family);
    match current() {
        Backend::Iptables => {
            lab.must(ns, &["ipset", "del", set, member]);
        }
        Backend::Nftables => nft_delete_element(lab, ns, set, member),
    }
}

/// Whether node `i` filters through palisade's guard: the jump to
/// PALISADE-GUARD in mangle PREROUTING, or palisade's table.
pub(crate) fn guard_present(lab: &Lab, i: usize) -> bool {
    match current() {
        Backend::Iptables => lab
            .must(&lab.nodes[i].ns, &["iptables-save", "-t", "mangle"])
            .contains("-A PREROUTING -j PALISADE-GUARD"),
        Backend::Nftables => table(lab, i).contains("chain guard"),
    }
}

/// No palisade set, chain, jump or table on node `i`, on either backend.
pub(crate) fn untouched(lab: &Lab, i: usize) -> bool {
    crate::untouched(lab, i) && table(lab, i).is_empty()
}

/// What palisade keeps on node `i`, counters aside, for comparing before
/// and after: the mangle tables and the sets (their lines sorted: ipset
/// lists members in hash order), or the table.
pub(crate) fn state(lab: &Lab, i: usize) -> String {
    let ns = &lab.nodes[i].ns;
    match current() {
        Backend::Iptables => {
            let mut lines = Vec::new();
            for save in ["iptables-save", "ip6tables-save"] {
                lines.extend(saved(lab, ns, save, "mangle"));
            }
            lines.extend(ipsets_saved(lab, ns));
            lines.join("\n")
        }
        Backend::Nftables => table(lab, i),
    }
}

/// Adds a rule of nobody's at the end of node `i`'s guard, after the
/// drop; returns how verify names it (the item of its drift).
pub(crate) fn add_foreign_rule(lab: &Lab, i: usize) -> &'static str {
    let ns = &lab.nodes[i].ns;
    match current() {
        Backend::Iptables => {
            mangle(lab, ns, "iptables", &["-A", "PALISADE-GUARD", "-j", "RETURN"]);
            "unexpected: -A PALISADE-GUARD -j RETURN"
        }
        // (An accept rather than the `return` iptables gets: either is
        // drift, and this one also reads as a hole in the guard.)
        Backend::Nftables => {
            lab.must(
                ns,
                &[
                    "nft", "add", "rule", "inet", "palisade", "guard", "tcp", "dport", "9999", "accept",
                ],
            );
            "unexpected: tcp dport 9999 accept"
        }
    }
}

/// Cuts node `i` off its guard by hand, keeping the sets and rules: the
/// jump to it deleted (iptables), or the table made dormant (nftables has
/// no jump to lose; a dormant table filters nothing); returns the drift
/// word verify gives it and the line its human output shows.
pub(crate) fn break_guard(lab: &Lab, i: usize) -> (&'static str, &'static str) {
    let ns = &lab.nodes[i].ns;
    match current() {
        Backend::Iptables => {
            mangle(lab, ns, "iptables", &["-D", "PREROUTING", "-j", "PALISADE-GUARD"]);
            (
                "guard-jump-missing",
                "\n    + IPv4 mangle PREROUTING rule 1: the jump to the guard\n",
            )
        }
        Backend::Nftables => {
            lab.must(
                ns,
                &["nft", "add", "table", "inet", "palisade", "{ flags dormant; }"],
            );
            (
                "nft-table-flags",
                // (nft 1.0.6 lists a dormant table's flags as some other
                // word: src/observe/nft.rs.)
                "\n    ~ nftables table, made afresh without its flags (",
            )
        }
    }
}

/// Empties node `i` of palisade's netfilter objects as a reboot does
/// (the boot files stay).
pub(crate) fn wipe(lab: &Lab, i: usize) {
    let ns = &lab.nodes[i].ns;
    match current() {
        Backend::Iptables => {
            for ipt in ["iptables", "ip6tables"] {
                for table in ["filter", "mangle"] {
                    lab.must(ns, &[ipt, "-w", "-t", table, "-F"]);
                    lab.must(ns, &[ipt, "-w", "-t", table, "-X"]);
                }
            }
            lab.must(ns, &["ipset", "destroy"]);
        }
        Backend::Nftables => {
            lab.must(ns, &["nft", "delete", "table", "inet", "palisade"]);
        }
    }
}

/// The packets of `family` (4 or 6) dropped by palisade's guard on node
/// `i` so far. iptables counts them on the guard's DROP rule; palisade's
/// nft drop has no counter, so the lab counts in a table of its own
/// (`inet lab_count`) what enters the prerouting hook just before the
/// guard (priority -151) and what leaves it just after (-149): an accept
/// in one base chain goes on to the next, so the difference is what the
/// guard dropped. The first call makes that table and counts from then.
pub(crate) fn drop_count(lab: &Lab, i: usize, family: u8) -> u64 {
    let ns = &lab.nodes[i].ns;
    match current() {
        Backend::Iptables => {
            let ipt = if family == 4 { "iptables" } else { "ip6tables" };
            let out = mangle(lab, ns, ipt, &["-L", "PALISADE-GUARD", "-v", "-x", "-n"]);
            out.lines()
                .filter(|l| l.contains("DROP"))
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        }
        Backend::Nftables => {
            let listed = lab.exec(ns, &["nft", "-j", "list", "table", "inet", "lab_count"]);
            if !listed.status.success() {
                let file = lab.dir.join(format!("lab_count{i}.nft"));
                let chain = |name: &str, prio: &str| {
                    format!(
                        "\tchain {name} {{ type filter hook prerouting priority {prio}; policy accept; \
                         meta nfproto ipv4 counter; meta nfproto ipv6 counter; }}\n"
                    )
                };
                let text = format!(
                    "table inet lab_count {{\n{}{}}}\n",
                    chain("before", "-151"),
                    chain("after", "-149")
                );
                std::fs::write(&file, text).unwrap();
                lab.must(ns, &["nft", "-f", file.to_str().unwrap()]);
                return 0;
            }
            let json: Value = serde_json::from_slice(&listed.stdout).unwrap_or(Value::Null);
            let proto = if family == 4 { "ipv4" } else { "ipv6" };
            let count = |chain: &str| -> u64 {
                json["nftables"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.get("rule"))
                    .filter(|r| r["chain"] == chain && r.to_string().contains(proto))
                    .filter_map(|r| {
                        r["expr"]
                            .as_array()?
                            .iter()
                            .find_map(|e| e["counter"]["packets"].as_u64())
                    })
                    .sum()
            };
            count("before").saturating_sub(count("after"))
        }
    }
}
