//! The per-host report of apply, plan, verify and remove.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::Verdict;
use crate::diff::Change;
use crate::inventory::Role;
use crate::policy::Summary;
use crate::timing::Timings;
use crate::transport::{HostError, HostOutcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// verify: the node matches.
    Ok,
    /// verify: the node differs.
    Drift,
    /// apply, plan, remove: nothing to do.
    Unchanged,
    /// plan: apply would change this node.
    WouldChange,
    /// apply: changed, and checked.
    Changed,
    /// remove: taken off, and checked.
    Removed,
    /// apply: the change was not confirmed and the node undid it.
    RolledBack,
    Failed,
    Unreachable,
    /// A deposed Terraform object: admitted by every node, never changed.
    Deposed,
}

impl Status {
    /// How a host that failed is reported: never reached, or reached and failed.
    pub fn of_error(e: &HostError) -> Status {
        if e.is_unreachable() {
            Status::Unreachable
        } else {
            Status::Failed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Drift => "drift",
            Status::Unchanged => "unchanged",
            Status::WouldChange => "would-change",
            Status::Changed => "changed",
            Status::Removed => "removed",
            Status::RolledBack => "rolled-back",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::Deposed => "deposed",
        }
    }
}

/// What the job found on a host that was reached.
#[derive(Debug)]
pub struct HostResult {
    pub status: Status,
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
    /// Why a host that was reached did not converge.
    pub error: Option<String>,
}

impl HostResult {
    pub fn new(status: Status, changes: Vec<Change>) -> HostResult {
        HostResult {
            status,
            changes,
            notes: Vec::new(),
            error: None,
        }
    }

    /// A host that is not contacted: Terraform is replacing it.
    pub fn deposed() -> HostResult {
        let mut r = HostResult::new(Status::Deposed, Vec::new());
        r.notes.push(
            "deposed (Terraform is replacing it): every node admits its addresses; it is not contacted or changed"
                .into(),
        );
        r
    }
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub address: IpAddr,
    pub role: Role,
    pub status: Status,
    pub changes: Vec<Change>,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub elapsed_ms: u128,
    /// Where the host's time went, in milliseconds per phase.
    pub timings: Timings,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// plan, on a first run: the whole whitelist it would push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whitelist: Option<Summary>,
    pub hosts: Vec<Row>,
    pub summary: BTreeMap<&'static str, usize>,
}

impl Report {
    pub fn new(outcomes: Vec<HostOutcome<HostResult>>) -> Report {
        let hosts: Vec<Row> = outcomes
            .into_iter()
            .map(|o| {
                let (status, changes, error, notes) = match o.result {
                    Ok(r) => (r.status, r.changes, r.error, r.notes),
                    Err(e) => (Status::of_error(&e), Vec::new(), Some(e.to_string()), Vec::new()),
                };
                Row {
                    name: o.host.name.to_string(),
                    address: o.host.address,
                    role: o.host.role,
                    status,
                    changes,
                    error,
                    notes,
                    elapsed_ms: o.elapsed.as_millis(),
                    timings: o.timings,
                }
            })
            .collect();
        let mut summary = BTreeMap::from([("total", hosts.len())]);
        for h in &hosts {
            *summary.entry(h.status.as_str()).or_default() += 1;
        }
        Report {
            whitelist: None,
            hosts,
            summary,
        }
    }

    /// Unreached or failed hosts outrank drift: the audit is incomplete.
    pub fn verdict(&self) -> Verdict {
        let any = |s: Status| self.hosts.iter().any(|h| h.status == s);
        if any(Status::Failed) || any(Status::Unreachable) || any(Status::RolledBack) {
            Verdict::HostsFailed
        } else if any(Status::Drift) {
            Verdict::Drift
        } else {
            Verdict::Ok
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn table(&self) -> String {
        use super::terminal::escape;
        let rows: Vec<[String; 3]> = self
            .hosts
            .iter()
            .map(|h| {
                [
                    escape(&h.name).into_owned(),
                    h.address.to_string(),
                    h.status.as_str().to_owned(),
                ]
            })
            .collect();
        let widths = [0, 1].map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0));
        let mut out = String::new();
        if let Some(w) = &self.whitelist {
            out.push_str(&format!("{w}\n"));
        }
        for (row, h) in rows.iter().zip(&self.hosts) {
            out.push_str(&format!(
                "{:<w0$}  {:<w1$}  {}",
                row[0],
                row[1],
                row[2],
                w0 = widths[0],
                w1 = widths[1]
            ));
            if let Some(e) = &h.error {
                out.push_str(&format!(": {}", escape(e)));
            }
            out.push('\n');
            for c in &h.changes {
                out.push_str(&format!("    - {}\n", escape(&c.to_string())));
            }
            for n in &h.notes {
                out.push_str(&format!("    note: {}\n", escape(n)));
            }
        }
        let parts: Vec<String> = self
            .summary
            .iter()
            .filter(|(k, _)| **k != "total")
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        out.push_str(&format!("\n{} hosts: {}\n", self.hosts.len(), parts.join(", ")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_node_prints_back_never_reaches_the_terminal_raw() {
        let row = Row {
            name: "node\u{202e}00".into(),
            address: "198.18.1.11".parse().unwrap(),
            role: Role::Agent,
            status: Status::Failed,
            changes: Vec::new(),
            error: Some("remote step failed: \u{1b}]0;owned\u{7}\r\u{1b}[2Jgone".into()),
            notes: vec!["line one\nline two\u{0}".into()],
            elapsed_ms: 1,
            timings: Timings::default(),
        };
        let report = Report {
            whitelist: None,
            hosts: vec![row],
            summary: BTreeMap::from([("failed", 1), ("total", 1)]),
        };
        let table = report.table();
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'), "{table:?}");
        assert!(table.contains("node\\u{202e}00"), "{table}");
        assert!(
            table.contains("\\u{001b}]0;owned\\u{0007}\\r\\u{001b}[2Jgone"),
            "{table}"
        );
        assert!(table.contains("note: line one\\nline two\\u{0000}"), "{table}");
    }
}
