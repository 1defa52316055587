//! The one shape of every `--json` report that contacts nodes (ping, plan,
//! apply, verify, remove), as a precise checker: the README's "JSON output"
//! section in code. Shared, by `#[path]`, by the unit tests of the
//! serialisation (src/report) and by the lab tests that run every command
//! against real nodes, so both hold the output to the same rules.
//!
//! ```text
//! {"command": C, "hosts": [ROW...], "summary": SUMMARY, "whitelist"?: W, "flows"?: [FLOW...]}
//! ROW     = name, address, role, status, error, notes, elapsed_ms (every command)
//!           + changes (plan, apply, verify, remove)
//!           + controller_address, firewall, backend, ipset_version, iptables_version, systemd (ping)
//!           + timings (optional, any value)
//!           + mode, audit (verify, optional: the guard's mode; in audit mode what it recorded)
//! SUMMARY = total and one count per status word, zeros included
//! ```

use serde_json::{Map, Value};

/// Every status word; `summary` has exactly these keys and `total`.
pub(crate) const STATUSES: [&str; 12] = [
    "ok",
    "drift",
    "absent",
    "unchanged",
    "would-change",
    "changed",
    "removed",
    "refused",
    "rolled-back",
    "unreachable",
    "failed",
    "deposed",
];

const ROLES: [&str; 5] = ["master", "agent", "public-agent", "bootstrap", "node"];

/// The statuses a command can give a host.
fn statuses_of(command: &str) -> Option<&'static [&'static str]> {
    Some(match command {
        "ping" => &["ok", "failed", "unreachable"],
        "plan" => &[
            "unchanged",
            "would-change",
            "refused",
            "failed",
            "unreachable",
            "deposed",
        ],
        "apply" => &[
            "unchanged",
            "changed",
            "refused",
            "rolled-back",
            "failed",
            "unreachable",
            "deposed",
        ],
        "verify" => &["ok", "drift", "absent", "failed", "unreachable", "deposed"],
        "remove" => &["removed", "absent", "failed", "unreachable", "deposed"],
        _ => return None,
    })
}

/// `Ok` when `report` has the shape; else every way it does not.
pub(crate) fn check(report: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    check_report(report, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nin {report}", errs.join("\n")))
    }
}

fn check_report(report: &Value, errs: &mut Vec<String>) {
    let Some(top) = report.as_object() else {
        errs.push("the report is not an object".into());
        return;
    };
    let command = top.get("command").and_then(Value::as_str).unwrap_or_default();
    let Some(allowed) = statuses_of(command) else {
        errs.push(format!(
            "command {:?} is not one of ping, plan, apply, verify, remove",
            top.get("command")
        ));
        return;
    };
    let mut top_keys = vec!["command", "hosts", "summary"];
    if command == "plan" {
        top_keys.push("whitelist");
    }
    if command == "verify" {
        top_keys.push("flows");
    }
    keys(
        top,
        "the report",
        &["command", "hosts", "summary"],
        &top_keys,
        errs,
    );
    let hosts = match top.get("hosts").and_then(Value::as_array) {
        Some(h) => h,
        None => {
            errs.push("hosts is not an array".into());
            return;
        }
    };
    for (i, row) in hosts.iter().enumerate() {
        check_row(command, allowed, row, &format!("hosts[{i}]"), errs);
    }
    match top.get("summary").and_then(Value::as_object) {
        Some(summary) => {
            let mut want: Vec<&str> = STATUSES.to_vec();
            want.push("total");
            keys(summary, "summary", &want, &want, errs);
            count(summary, "total", hosts.len(), errs);
            for st in STATUSES {
                let n = hosts.iter().filter(|h| h["status"] == st).count();
                count(summary, st, n, errs);
            }
        }
        None => errs.push("summary is not an object".into()),
    }
    if let Some(w) = top.get("whitelist") {
        check_whitelist(w, errs);
    }
    if let Some(flows) = top.get("flows") {
        check_flows(flows, errs);
    }
}

/// verify --flows: `[{source, protocol, port, hosts, packets, bytes,
/// last_seen_secs, admit}]`, the most packets first.
fn check_flows(flows: &Value, errs: &mut Vec<String>) {
    let Some(flows) = flows.as_array() else {
        errs.push("flows is not an array".into());
        return;
    };
    let all = [
        "source",
        "protocol",
        "port",
        "hosts",
        "packets",
        "bytes",
        "last_seen_secs",
        "admit",
    ];
    let mut last = u64::MAX;
    for (i, f) in flows.iter().enumerate() {
        let at = format!("flows[{i}]");
        let Some(f) = f.as_object() else {
            errs.push(format!("{at} is not an object"));
            continue;
        };
        keys(f, &at, &all, &all, errs);
        if !is_ip(f.get("source")) {
            errs.push(format!("{at}.source is not an IP address"));
        }
        string(f, "protocol", &at, errs);
        if !f
            .get("port")
            .is_some_and(|p| p.is_null() || p.as_u64().is_some_and(|p| p <= 65535))
        {
            errs.push(format!("{at}.port is neither null nor a port"));
        }
        strings(f.get("hosts"), &format!("{at}.hosts"), errs);
        strings(f.get("admit"), &format!("{at}.admit"), errs);
        for k in ["packets", "bytes", "last_seen_secs"] {
            if !f.get(k).is_some_and(Value::is_u64) {
                errs.push(format!("{at}.{k} is not a count"));
            }
        }
        let packets = f.get("packets").and_then(Value::as_u64).unwrap_or_default();
        if packets > last {
            errs.push(format!("{at} has more packets than the flow before it"));
        }
        last = packets;
    }
}

fn check_row(command: &str, allowed: &[&str], row: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(row) = row.as_object() else {
        errs.push(format!("{at} is not an object"));
        return;
    };
    let common = [
        "name",
        "address",
        "role",
        "status",
        "error",
        "notes",
        "elapsed_ms",
    ];
    let own: &[&str] = if command == "ping" {
        &[
            "controller_address",
            "firewall",
            "backend",
            "ipset_version",
            "iptables_version",
            "systemd",
        ]
    } else {
        &["changes"]
    };
    let required: Vec<&str> = common.iter().chain(own).copied().collect();
    let mut known = required.clone();
    known.push("timings");
    if command == "verify" {
        known.extend(["mode", "audit"]);
        if !row.get("mode").is_none_or(|m| m == "enforce" || m == "audit") {
            errs.push(format!("{at}.mode is not enforce or audit"));
        }
        if let Some(a) = row.get("audit") {
            let ok = a.get("flows").is_some_and(Value::is_u64)
                && a.get("full")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.iter().all(|x| x == "ipv4" || x == "ipv6"))
                && a.as_object().is_some_and(|o| o.len() == 2)
                && row.get("mode").is_some_and(|m| m == "audit");
            if !ok {
                errs.push(format!(
                    "{at}.audit is not {{flows, full}} of a host in audit mode"
                ));
            }
        }
    }
    keys(row, at, &required, &known, errs);

    string(row, "name", at, errs);
    if !is_ip(row.get("address")) {
        errs.push(format!("{at}.address is not an IP address"));
    }
    if !row
        .get("role")
        .and_then(Value::as_str)
        .is_some_and(|r| ROLES.contains(&r))
    {
        errs.push(format!("{at}.role is not one of {ROLES:?}"));
    }
    let status = row.get("status").and_then(Value::as_str).unwrap_or_default();
    if !allowed.contains(&status) {
        errs.push(format!(
            "{at}.status {status:?} is not one of {command}'s: {allowed:?}"
        ));
    }
    // An error says why a host did not get where it should; nothing else has one.
    let failing = ["failed", "unreachable", "refused", "rolled-back"].contains(&status);
    match row.get("error") {
        Some(Value::String(e)) if failing && !e.is_empty() => {}
        Some(Value::Null) if !failing => {}
        other => errs.push(format!("{at}.error is {other:?} for status {status:?}")),
    }
    strings(row.get("notes"), &format!("{at}.notes"), errs);
    if !row.get("elapsed_ms").is_some_and(Value::is_u64) {
        errs.push(format!("{at}.elapsed_ms is not a count of milliseconds"));
    }
    if command == "ping" {
        if !row
            .get("controller_address")
            .is_some_and(|v| v.is_null() || v.as_str().is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok()))
        {
            errs.push(format!(
                "{at}.controller_address is neither null nor an IP address"
            ));
        }
        if !row
            .get("backend")
            .is_some_and(|v| v.is_null() || v == "nf_tables" || v == "legacy")
        {
            errs.push(format!("{at}.backend is not null, nf_tables or legacy"));
        }
        if !row
            .get("firewall")
            .is_some_and(|v| v == "iptables" || v == "nftables" || v == "auto")
        {
            errs.push(format!("{at}.firewall is not iptables, nftables or auto"));
        }
        for k in ["ipset_version", "iptables_version"] {
            if !row.get(k).is_some_and(|v| v.is_null() || v.is_string()) {
                errs.push(format!("{at}.{k} is neither null nor a string"));
            }
        }
        if !row.get("systemd").is_some_and(|v| v.is_null() || v.is_boolean()) {
            errs.push(format!("{at}.systemd is neither null nor a boolean"));
        }
        return;
    }
    let Some(changes) = row.get("changes").and_then(Value::as_array) else {
        errs.push(format!("{at}.changes is not an array"));
        return;
    };
    // Drift and a plan's change are their differences; a node that matches
    // or has nothing of palisade's has none.
    if ["drift", "would-change"].contains(&status) && changes.is_empty() {
        errs.push(format!("{at} is {status} with no changes"));
    }
    if ["ok", "unchanged", "absent", "removed", "deposed"].contains(&status) && !changes.is_empty() {
        errs.push(format!("{at} is {status} with changes"));
    }
    for (j, c) in changes.iter().enumerate() {
        let at = format!("{at}.changes[{j}]");
        let Some(c) = c.as_object() else {
            errs.push(format!("{at} is not an object"));
            continue;
        };
        let all = ["kind", "family", "message", "items"];
        keys(c, &at, &all, &all, errs);
        if !c
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| !k.is_empty() && k.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'))
        {
            errs.push(format!("{at}.kind is not a kebab-case word"));
        }
        if !c
            .get("family")
            .is_some_and(|f| f.is_null() || f == "ipv4" || f == "ipv6")
        {
            errs.push(format!("{at}.family is not null, ipv4 or ipv6"));
        }
        string(c, "message", &at, errs);
        strings(c.get("items"), &format!("{at}.items"), errs);
    }
}

fn check_whitelist(w: &Value, errs: &mut Vec<String>) {
    let Some(w) = w.as_object() else {
        errs.push("whitelist is not an object".into());
        return;
    };
    let all = ["ipv4", "ipv6", "interfaces", "open", "chain", "rules"];
    keys(w, "whitelist", &all, &all, errs);
    for k in ["ipv4", "ipv6", "interfaces"] {
        strings(w.get(k), &format!("whitelist.{k}"), errs);
    }
    string(w, "chain", "whitelist", errs);
    match w.get("open").and_then(Value::as_object) {
        Some(open) => {
            for (role, ports) in open {
                if !ROLES.contains(&role.as_str()) {
                    errs.push(format!("whitelist.open has role {role:?}"));
                }
                strings(Some(ports), &format!("whitelist.open.{role}"), errs);
            }
        }
        None => errs.push("whitelist.open is not an object".into()),
    }
    match w.get("rules").and_then(Value::as_object) {
        Some(rules) => {
            keys(
                rules,
                "whitelist.rules",
                &["ipv4", "ipv6"],
                &["ipv4", "ipv6"],
                errs,
            );
            for (family, list) in rules {
                strings(Some(list), &format!("whitelist.rules.{family}"), errs);
            }
        }
        None => errs.push("whitelist.rules is not an object".into()),
    }
}

fn is_ip(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok())
}

/// Every `required` key is there, and no key outside `known`.
fn keys(obj: &Map<String, Value>, at: &str, required: &[&str], known: &[&str], errs: &mut Vec<String>) {
    for k in required {
        if !obj.contains_key(*k) {
            errs.push(format!("{at} lacks {k:?}"));
        }
    }
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            errs.push(format!("{at} has an unknown key {k:?}"));
        }
    }
}

fn string(obj: &Map<String, Value>, key: &str, at: &str, errs: &mut Vec<String>) {
    if !obj.get(key).is_some_and(Value::is_string) {
        errs.push(format!("{at}.{key} is not a string"));
    }
}

fn strings(v: Option<&Value>, at: &str, errs: &mut Vec<String>) {
    if !v
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().all(Value::is_string))
    {
        errs.push(format!("{at} is not an array of strings"));
    }
}

fn count(summary: &Map<String, Value>, key: &str, want: usize, errs: &mut Vec<String>) {
    if summary.get(key).and_then(Value::as_u64) != Some(want as u64) {
        errs.push(format!(
            "summary.{key} is {:?}, the hosts say {want}",
            summary.get(key)
        ));
    }
}
