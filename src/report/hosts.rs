//! The per-host report of apply, plan, verify and remove.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::ExitStatus;
use super::changes;
use super::colour::{Paint, Tone};
use super::flows::{FlowGroup, NodeFlows, group};
use super::summary::{CommandName, Summary};
use super::terminal::{escape, escape_lines};
use crate::diff::Change;
use crate::engine::{Failure, Note, Outcome};
use crate::inventory::Host;
use crate::inventory::Role;
use crate::policy::FirewallMode;
use crate::policy::WhitelistSummary;
use crate::timing::Timings;
use crate::transport::{HostError, HostOutcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// verify, ping: the node matches, or can be managed.
    Ok,
    /// verify: the node differs.
    Drift,
    /// verify, remove: none of palisade's objects is on the node.
    Absent,
    /// apply, plan: nothing to do.
    Unchanged,
    /// plan: apply would change this node.
    WouldChange,
    /// apply: changed, and checked.
    Changed,
    /// remove: taken off, and checked.
    Removed,
    /// apply, plan: the change would lock the operator out, so apply
    /// refuses it (and plan says apply would).
    Refused,
    /// apply: the change was not confirmed and the node undid it.
    RolledBack,
    Failed,
    Unreachable,
    /// A deposed Terraform object: admitted by every node, never changed.
    Deposed,
}

impl Status {
    /// Every status, in the order a summary lists them.
    pub(crate) const ALL: [Status; 12] = [
        Status::Ok,
        Status::Drift,
        Status::Absent,
        Status::Unchanged,
        Status::WouldChange,
        Status::Changed,
        Status::Removed,
        Status::Refused,
        Status::RolledBack,
        Status::Unreachable,
        Status::Failed,
        Status::Deposed,
    ];

    /// How a host the transport failed is reported: never reached, or
    /// reached and failed.
    pub(crate) fn of_error(e: &HostError) -> Status {
        if e.is_unreachable() {
            Status::Unreachable
        } else {
            Status::Failed
        }
    }

    /// How a host whose job ended as palisade meant it to is reported.
    pub(crate) fn of_outcome(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Matches => Status::Ok,
            Outcome::Drift(_) => Status::Drift,
            Outcome::Absent => Status::Absent,
            Outcome::Unchanged => Status::Unchanged,
            Outcome::WouldChange(_) => Status::WouldChange,
            Outcome::Changed { .. } => Status::Changed,
            Outcome::Removed => Status::Removed,
            Outcome::Refused { .. } => Status::Refused,
            Outcome::RolledBack(_) => Status::RolledBack,
        }
    }

    /// How a host whose job failed is reported: as the transport's error
    /// says, or failed.
    pub(crate) fn of_failure(f: &Failure) -> Status {
        match f {
            Failure::Transport(e) => Status::of_error(e),
            Failure::Node(_) => Status::Failed,
        }
    }

    /// The host did not end as it should: the run exits 2, and the host
    /// goes into the retry file.
    pub(crate) fn failed(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Unreachable | Status::RolledBack | Status::Refused
        )
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Drift => "drift",
            Status::Absent => "absent",
            Status::Unchanged => "unchanged",
            Status::WouldChange => "would-change",
            Status::Changed => "changed",
            Status::Removed => "removed",
            Status::Refused => "refused",
            Status::RolledBack => "rolled-back",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::Deposed => "deposed",
        }
    }

    /// The colour the word gets on a terminal.
    pub(crate) fn tone(self) -> Tone {
        match self {
            Status::Ok | Status::Unchanged | Status::Changed | Status::Removed => Tone::Good,
            Status::Drift | Status::Absent | Status::WouldChange => Tone::Notice,
            Status::Refused | Status::RolledBack | Status::Failed | Status::Unreachable => Tone::Bad,
            Status::Deposed => Tone::Quiet,
        }
    }
}

/// What the job found on a host that was reached.
#[derive(Debug)]
pub(crate) struct HostResult {
    pub(crate) status: Status,
    pub(crate) changes: Vec<Change>,
    pub(crate) notes: Vec<String>,
    /// Why a host that was reached did not converge.
    pub(crate) error: Option<String>,
}

impl HostResult {
    pub(crate) fn new(status: Status, changes: Vec<Change>) -> HostResult {
        HostResult {
            status,
            changes,
            notes: Vec::new(),
            error: None,
        }
    }

    /// A host that is not contacted: Terraform is replacing it.
    fn deposed() -> HostResult {
        let mut r = HostResult::new(Status::Deposed, Vec::new());
        r.notes.push(
            "deposed (Terraform is replacing it): every node admits its addresses; it is not contacted or changed"
                .into(),
        );
        r
    }
}

/// How the engine's outcome reads in the report.
impl From<Outcome> for HostResult {
    fn from(outcome: Outcome) -> HostResult {
        let mut r = HostResult::new(Status::of_outcome(&outcome), Vec::new());
        match outcome {
            Outcome::Matches | Outcome::Absent | Outcome::Unchanged | Outcome::Removed => {}
            Outcome::Drift(changes) | Outcome::WouldChange(changes) => r.changes = changes,
            Outcome::Changed { changes, notes } => {
                r.changes = changes;
                r.notes = notes.into_iter().map(|n| note_text(n).to_owned()).collect();
            }
            // The same row from plan and from apply.
            Outcome::Refused { changes, refusal } => {
                r.changes = changes;
                r.error = Some(refusal.to_string());
            }
            Outcome::RolledBack(why) => {
                r.error = Some(format!("{why}; the node rolled back to its previous state"));
            }
        }
        r
    }
}

fn note_text(note: Note) -> &'static str {
    match note {
        Note::ConfirmedLeftover => {
            "confirmed a change another run had left unconfirmed (interrupted, or at work at the same time)"
        }
        Note::SettledRollback => "first rolled back a change an interrupted run had left half undone",
        Note::FilesOnly => "boot restore not installed (no systemd): rules written to /var/lib/palisade only",
        Note::BootRestoreFailed => {
            "the change is confirmed, but writing its boot restore failed: run apply again"
        }
        Note::BastionOutside => {
            "reached through a bastion outside the inventory: this node admits the bastion; the bastion's \
             own firewall is not palisade's to check"
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) address: IpAddr,
    pub(crate) role: Role,
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    pub(crate) notes: Vec<String>,
    pub(crate) changes: Vec<Change>,
    pub(crate) elapsed_ms: u128,
    /// Where the host's time went, in milliseconds per stage.
    pub(crate) timings: Timings,
    /// verify: the mode the node's guard is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mode: Option<FirewallMode>,
    /// verify, a node in audit mode: what it recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audit: Option<AuditRow>,
}

/// What a node in audit mode recorded, in short (`verify --flows` lists
/// the flows themselves).
#[derive(Debug, Serialize)]
pub(crate) struct AuditRow {
    /// The flows in its audit sets.
    pub(crate) flows: usize,
    /// The families whose set is full: flows beyond it went unrecorded.
    pub(crate) full: Vec<crate::policy::Family>,
}

/// The report of apply, plan, verify and remove. `--json` prints it as it
/// is: `command`, `hosts`, `summary` (the shape every command shares, see
/// the README), for a plan on a first run `whitelist`, and for `verify
/// --flows` `flows`.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) command: CommandName,
    pub(crate) hosts: Vec<Row>,
    pub(crate) summary: Summary,
    /// plan, on a first run: the whole whitelist it would push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) whitelist: Option<WhitelistSummary>,
    /// verify --flows: what the nodes in audit mode recorded, grouped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) flows: Option<Vec<FlowGroup>>,
}

impl Report {
    /// With `--backend auto`: a first note on each host that said, naming
    /// the backend it took and why (the node's words, escaped where shown).
    pub(crate) fn note_choices(
        &mut self,
        choices: &std::collections::BTreeMap<String, crate::observe::firewall::Chosen>,
    ) {
        for row in &mut self.hosts {
            if let Some(chosen) = choices.get(&row.name) {
                row.notes
                    .insert(0, format!("backend {}: {}", chosen.backend, chosen.why));
            }
        }
    }

    /// verify: each node's mode (and for one in audit mode, a note of what
    /// it recorded); with `--flows`, the flows of every node, grouped.
    pub(crate) fn note_audits(
        &mut self,
        audits: &std::collections::BTreeMap<String, crate::engine::Audit>,
        flows: bool,
    ) {
        for row in &mut self.hosts {
            let Some(a) = audits.get(&row.name) else {
                continue;
            };
            row.mode = Some(a.mode);
            if a.mode != FirewallMode::Audit {
                continue;
            }
            let n = a.recorded.flows.len();
            // The same words on every such node, so that a fleet's is one
            // note; the count is in --json (`audit.flows`).
            row.notes.push(
                "audit mode: drops nothing, records what it would drop (verify --flows lists it)".to_owned(),
            );
            for family in &a.recorded.full {
                row.notes.push(format!(
                    "audit mode: the {family} audit set is full: flows beyond its size went unrecorded"
                ));
            }
            row.audit = Some(AuditRow {
                flows: n,
                full: a.recorded.full.clone(),
            });
        }
        if flows {
            let nodes: Vec<NodeFlows<'_>> = self
                .hosts
                .iter()
                .filter_map(|row| {
                    let a = audits.get(&row.name)?;
                    Some(NodeFlows {
                        host: &row.name,
                        role: row.role,
                        flows: &a.recorded.flows,
                    })
                })
                .collect();
            self.flows = Some(group(&nodes));
        }
    }

    /// The report of the hosts worked on, then of the `deposed` ones (not
    /// contacted: Terraform is replacing them).
    pub(crate) fn new(
        command: CommandName,
        outcomes: Vec<HostOutcome<Host, Outcome, Failure>>,
        deposed: Vec<Host>,
    ) -> Report {
        let worked = outcomes.into_iter().map(|o| HostOutcome {
            host: o.host,
            result: o.result.map(HostResult::from),
            elapsed: o.elapsed,
            timings: o.timings,
            log: o.log,
        });
        let deposed = deposed.into_iter().map(|host| HostOutcome {
            host,
            result: Ok(HostResult::deposed()),
            elapsed: Duration::ZERO,
            timings: Timings::default(),
            log: Vec::new(),
        });
        Report::of_results(command, worked.chain(deposed).collect())
    }

    fn of_results(command: CommandName, outcomes: Vec<HostOutcome<Host, HostResult, Failure>>) -> Report {
        let hosts: Vec<Row> = outcomes
            .into_iter()
            .map(|o| {
                let (status, changes, error, notes) = match o.result {
                    Ok(r) => (r.status, r.changes, r.error, r.notes),
                    Err(e) => (
                        Status::of_failure(&e),
                        Vec::new(),
                        Some(e.to_string()),
                        Vec::new(),
                    ),
                };
                Row {
                    name: o.host.name().to_string(),
                    address: o.host.address(),
                    role: o.host.role(),
                    status,
                    error,
                    notes,
                    changes,
                    elapsed_ms: o.elapsed.as_millis(),
                    timings: o.timings,
                    mode: None,
                    audit: None,
                }
            })
            .collect();
        Report {
            command,
            summary: Summary::of(hosts.iter().map(|h| h.status)),
            hosts,
            whitelist: None,
            flows: None,
        }
    }

    /// Unreached, refused or failed hosts outrank drift: the audit is
    /// incomplete. A node without palisade is drift to verify, and what
    /// remove wants.
    pub(crate) fn exit_status(&self) -> ExitStatus {
        let any = |s: Status| self.hosts.iter().any(|h| h.status == s);
        if self.hosts.iter().any(|h| h.status.failed()) {
            ExitStatus::HostsFailed
        } else if any(Status::Drift) || (self.command == CommandName::Verify && any(Status::Absent)) {
            ExitStatus::Drift
        } else {
            ExitStatus::Ok
        }
    }

    pub(crate) fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// [`Self::table_with`] without `-v`.
    #[cfg(test)]
    pub(crate) fn table(&self, paint: Paint) -> String {
        self.table_with(paint, false)
    }

    /// The table: the whitelist (plan's first run), one row per host, then
    /// what several hosts share, each once with the hosts: their changes,
    /// their reasons, their notes; then the counts. A host whose changes
    /// are its own has them under its row, as a diff. `verbose` (`-v`)
    /// names every host of a shared list, where the table otherwise counts
    /// them by role.
    pub(crate) fn table_with(&self, paint: Paint, verbose: bool) -> String {
        let errors = Grouped::new(
            self.hosts
                .iter()
                .filter_map(|h| Some((h.name.as_str(), h.error.as_deref()?))),
        );
        let notes = Grouped::new(
            self.hosts
                .iter()
                .flat_map(|h| h.notes.iter().map(move |n| (h.name.as_str(), n.as_str()))),
        );
        let lists = ChangeLists::new(&self.hosts);
        let named = Naming {
            roles: self.hosts.iter().map(|h| (h.name.as_str(), h.role)).collect(),
            total: self.hosts.len(),
            verbose,
        };
        let rows: Vec<[String; 2]> = self
            .hosts
            .iter()
            .map(|h| [escape(&h.name).into_owned(), h.address.to_string()])
            .collect();
        let widths = [0, 1].map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0));
        let mut out = String::new();
        if let Some(w) = &self.whitelist {
            out.push_str(&format!("{}\n", escape_lines(&w.to_string())));
        }
        for (i, (row, h)) in rows.iter().zip(&self.hosts).enumerate() {
            out.push_str(&format!(
                "{:<w0$}  {:<w1$}  {}",
                row[0],
                row[1],
                paint.tone(h.status.tone(), h.status.as_str()),
                w0 = widths[0],
                w1 = widths[1]
            ));
            if let Some(e) = h.error.as_deref().filter(|e| !errors.shared(e)) {
                out.push_str(&format!(": {}", escape(e)));
            }
            match lists.shared_by(i) {
                Some(n) if lists.numbered() => out.push_str(&format!(" (changes list {n})")),
                _ => {}
            }
            out.push('\n');
            if lists.shared_by(i).is_none() {
                for line in h.changes.iter().flat_map(changes::lines) {
                    out.push_str(&line.show(paint));
                }
            }
            for n in h.notes.iter().filter(|n| !notes.shared(n)) {
                out.push_str(&format!("    note: {}\n", escape(n)));
            }
        }
        let shared_errors: Vec<_> = errors.shared_groups().collect();
        let shared_notes: Vec<_> = notes.shared_groups().collect();
        if lists.any_shared() || !shared_errors.is_empty() || !shared_notes.is_empty() {
            out.push('\n');
        }
        for (n, hosts) in lists.shared() {
            let names: Vec<&str> = hosts.iter().map(|i| self.hosts[*i].name.as_str()).collect();
            if lists.numbered() {
                out.push_str(&format!("changes list {n}, on {}:\n", named.who(&names)));
            } else {
                out.push_str(&format!("changes on {}:\n", named.who(&names)));
            }
            for line in self.hosts[hosts[0]].changes.iter().flat_map(changes::lines) {
                out.push_str(&line.show(paint));
            }
        }
        for (text, names) in shared_errors {
            out.push_str(&format!("{}: {}\n", named.who(&names), escape(text)));
        }
        for (text, names) in shared_notes {
            out.push_str(&format!("note for {}: {}\n", named.who(&names), escape(text)));
        }
        if let Some(groups) = &self.flows {
            let full: Vec<String> = self
                .hosts
                .iter()
                .filter(|h| h.audit.as_ref().is_some_and(|a| !a.full.is_empty()))
                .map(|h| h.name.clone())
                .collect();
            out.push('\n');
            out.push_str(&super::flows::section(groups, &full));
        }
        out.push('\n');
        out.push_str(&self.summary.line(paint));
        out
    }
}

/// Hosts with the same change lines, so that a fleet's first run (the same
/// eight lines on every node) prints them once, not once per node.
struct ChangeLists {
    /// The hosts (indices into the report) of each list more than one host
    /// has, in the order lists first appear; list `n` is `shared[n - 1]`.
    shared: Vec<Vec<usize>>,
    /// The number of the shared list each host's changes are, if any.
    of_host: Vec<Option<usize>>,
}

impl ChangeLists {
    fn new(hosts: &[Row]) -> ChangeLists {
        let mut by_text: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of = Vec::with_capacity(hosts.len());
        for (i, h) in hosts.iter().enumerate() {
            if h.changes.is_empty() {
                group_of.push(None);
                continue;
            }
            // The lines as printed, without colour: what the reader compares.
            let text: String = h
                .changes
                .iter()
                .flat_map(changes::lines)
                .map(|l| l.show(Paint::PLAIN))
                .collect();
            let g = *by_text.entry(text).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
            group_of.push(Some(g));
        }
        let mut number = vec![None; groups.len()];
        let mut shared = Vec::new();
        for (g, hosts) in groups.into_iter().enumerate() {
            if hosts.len() > 1 {
                shared.push(hosts);
                number[g] = Some(shared.len());
            }
        }
        let of_host = group_of.into_iter().map(|g| g.and_then(|g| number[g])).collect();
        ChangeLists { shared, of_host }
    }

    /// The shared lists, numbered from 1, with their hosts.
    fn shared(&self) -> impl Iterator<Item = (usize, &Vec<usize>)> {
        self.shared.iter().enumerate().map(|(n, g)| (n + 1, g))
    }

    fn any_shared(&self) -> bool {
        !self.shared.is_empty()
    }

    /// Whether the lists are told apart by number: there are several.
    fn numbered(&self) -> bool {
        self.shared.len() > 1
    }

    /// The number of the shared list host `i`'s changes are, if any.
    fn shared_by(&self, i: usize) -> Option<usize> {
        self.of_host.get(i).copied().flatten()
    }
}

/// How the hosts something is about are named.
struct Naming<'a> {
    roles: std::collections::HashMap<&'a str, Role>,
    total: usize,
    verbose: bool,
}

impl Naming<'_> {
    /// All of them; their names, when few (or with `-v`); else a count per
    /// role, which stays one line for a fleet of a thousand.
    fn who(&self, names: &[&str]) -> String {
        const NAMED: usize = 4;
        if names.len() == self.total {
            return format!("every host ({})", self.total);
        }
        if names.len() <= NAMED || self.verbose {
            return format!("{} hosts ({})", names.len(), escape(&names.join(", ")));
        }
        let mut counts: std::collections::BTreeMap<Role, usize> = std::collections::BTreeMap::new();
        for name in names {
            if let Some(role) = self.roles.get(name) {
                *counts.entry(*role).or_default() += 1;
            }
        }
        let counts: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
        format!("{} hosts ({}; -v names them)", names.len(), counts.join(", "))
    }
}

/// The same text on several hosts, in the order it first appears, so that a
/// long reason shared by a fleet is printed once, not once per host.
pub(crate) struct Grouped<'a> {
    groups: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> Grouped<'a> {
    pub(crate) fn new(items: impl Iterator<Item = (&'a str, &'a str)>) -> Grouped<'a> {
        let mut groups: Vec<(&'a str, Vec<&'a str>)> = Vec::new();
        for (name, text) in items {
            match groups.iter_mut().find(|(t, _)| *t == text) {
                Some((_, names)) => {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                None => groups.push((text, vec![name])),
            }
        }
        Grouped { groups }
    }

    /// Whether `text` is on more than one host.
    pub(crate) fn shared(&self, text: &str) -> bool {
        self.groups.iter().any(|(t, names)| *t == text && names.len() > 1)
    }

    /// Each text on more than one host, with those hosts.
    pub(crate) fn shared_groups(&self) -> impl Iterator<Item = (&'a str, Vec<&'a str>)> + '_ {
        self.groups
            .iter()
            .filter(|(_, names)| names.len() > 1)
            .map(|(t, names)| (*t, names.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::inventory::Host;
    use crate::policy::Family;
    use crate::report::report_shape;

    fn fleet() -> Vec<Host> {
        crate::inventory::load(
            &crate::inventory::Source::Static(
                concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml").into(),
            ),
            &Default::default(),
        )
        .unwrap()
        .hosts
    }

    /// A report of `command` with one host per result, in fleet order.
    fn report(command: CommandName, results: Vec<Result<HostResult, Failure>>) -> Report {
        let outcomes = fleet()
            .into_iter()
            .zip(results)
            .map(|(host, result)| HostOutcome {
                host,
                result,
                elapsed: Duration::from_millis(12),
                timings: Default::default(),
                log: Vec::new(),
            })
            .collect();
        Report::of_results(command, outcomes)
    }

    fn first_run() -> Vec<Change> {
        vec![
            Change::SetMissing { family: Family::V4 },
            Change::GuardMissing { family: Family::V4 },
            Change::GuardJumpMissing { family: Family::V4 },
        ]
    }

    fn lockout() -> crate::engine::Refusal {
        crate::engine::Refusal::WouldLockOut {
            seen: "198.18.0.1".parse().unwrap(),
        }
    }

    fn refused_plan() -> HostResult {
        let mut r = HostResult::new(Status::Refused, first_run());
        r.error = Some(lockout().to_string());
        r
    }

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
            mode: None,
            audit: None,
        };
        let report = Report {
            command: CommandName::Apply,
            summary: Summary::of([Status::Failed]),
            hosts: vec![row],
            whitelist: None,
            flows: None,
        };
        let table = report.table(Paint::PLAIN);
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'), "{table:?}");
        assert!(table.contains("node\\u{202e}00"), "{table}");
        assert!(
            table.contains("\\u{001b}]0;owned\\u{0007}\\r\\u{001b}[2Jgone"),
            "{table}"
        );
        assert!(table.contains("note: line one\\nline two\\u{0000}"), "{table}");
        // With colour on, the only escapes are palisade's own.
        let coloured = report.table(Paint { on: true });
        assert_eq!(coloured.matches('\u{1b}').count(), 4, "{coloured:?}");
        assert!(coloured.contains("\u{1b}[31mfailed\u{1b}[0m"), "{coloured:?}");
    }

    #[test]
    fn a_plan_shows_each_nodes_diff() {
        let r = report(
            CommandName::Plan,
            vec![
                Ok(HostResult::new(Status::WouldChange, first_run())),
                Ok(HostResult::new(Status::Unchanged, Vec::new())),
            ],
        );
        let table = r.table(Paint::PLAIN);
        assert_eq!(
            table,
            "packet-dcos-master-00  147.75.100.11  would-change\n\
             \x20   + IPv4 set, holding the whole whitelist\n\
             \x20   + IPv4 guard before DNAT (mangle), with the whitelist and this role's open ports\n\
             \x20   + IPv4 mangle PREROUTING rule 1: the jump to the guard\n\
             packet-dcos-agent-00   147.75.100.21  unchanged\n\
             \n\
             2 hosts: 1 unchanged, 1 would-change\n"
        );
        assert_eq!(r.exit_status(), ExitStatus::Ok);
    }

    /// A report of `n` agents and one master, all given `changes(i)`.
    fn fleet_of(n: usize, changes: impl Fn(usize) -> Vec<Change>) -> Report {
        let hosts: Vec<Row> = (0..=n)
            .map(|i| Row {
                name: format!("node-{i:03}"),
                address: format!("198.18.{}.{}", i / 250, i % 250 + 1).parse().unwrap(),
                role: if i == 0 { Role::Master } else { Role::Agent },
                status: Status::WouldChange,
                error: None,
                notes: Vec::new(),
                changes: changes(i),
                elapsed_ms: 1,
                timings: Timings::default(),
                mode: None,
                audit: None,
            })
            .collect();
        Report {
            command: CommandName::Plan,
            summary: Summary::of(hosts.iter().map(|h| h.status)),
            hosts,
            whitelist: None,
            flows: None,
        }
    }

    #[test]
    fn a_change_list_every_host_shares_is_printed_once() {
        let r = fleet_of(999, |_| first_run());
        let table = r.table(Paint::PLAIN);
        assert_eq!(
            table
                .matches("    + IPv4 set, holding the whole whitelist\n")
                .count(),
            1,
            "{table}"
        );
        assert!(
            table.contains(
                "node-999  198.18.3.250  would-change\n\nchanges on every host (1000):\n    + IPv4 set"
            ),
            "{table}"
        );
        // One line a host, the list, the counts.
        assert_eq!(table.lines().count(), 1000 + 1 + 1 + 3 + 2, "{table}");
        // --json keeps every host's changes.
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(json["hosts"][999]["changes"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn several_shared_lists_are_numbered_named_by_role_and_by_name_with_v() {
        // New nodes get everything; the old ones gain the new addresses; one
        // node has drifted its own way.
        let member = |n: &str| Change::MembersMissing {
            family: Family::V4,
            nets: vec![n.parse().unwrap()],
        };
        let r = fleet_of(10, |i| match i {
            0..=5 => vec![member("198.18.1.9/32")],
            6 => vec![member("192.0.2.1/32")],
            _ => first_run(),
        });
        let table = r.table(Paint::PLAIN);
        assert!(
            table.contains("node-000  198.18.0.1   would-change (changes list 1)\n"),
            "{table}"
        );
        assert!(
            table.contains("node-006  198.18.0.7   would-change\n    + IPv4 member 192.0.2.1\n"),
            "{table}"
        );
        assert!(
            table.contains("node-010  198.18.0.11  would-change (changes list 2)\n"),
            "{table}"
        );
        assert!(
            table.contains(
                "\nchanges list 1, on 6 hosts (master 1, agent 5; -v names them):\n    + IPv4 member 198.18.1.9\n\
                 changes list 2, on 4 hosts (node-007, node-008, node-009, node-010):\n    + IPv4 set"
            ),
            "{table}"
        );
        assert_eq!(table.matches("IPv4 member 198.18.1.9").count(), 1, "{table}");
        let verbose = r.table_with(Paint::PLAIN, true);
        assert!(
            verbose.contains(
                "changes list 1, on 6 hosts (node-000, node-001, node-002, node-003, node-004, node-005):"
            ),
            "{verbose}"
        );
        // Colour stays on the lines.
        let coloured = r.table(Paint { on: true });
        assert!(
            coloured.contains("\u{1b}[32m+ IPv4 member 198.18.1.9\u{1b}[0m"),
            "{coloured:?}"
        );
    }

    #[test]
    fn a_reason_many_hosts_share_is_printed_once_with_the_hosts() {
        let r = report(
            CommandName::Plan,
            vec![
                Ok(refused_plan()),
                Ok(refused_plan()),
                Ok(refused_plan()),
                Err(crate::engine::NodeError::MissingTools(vec!["ipset".into()]).into()),
            ],
        );
        let table = r.table(Paint::PLAIN);
        let reason = lockout().to_string();
        assert_eq!(table.matches(&reason).count(), 1, "{table}");
        assert!(
            table.contains(&format!(
                "\n3 hosts (packet-dcos-master-00, packet-dcos-agent-00, packet-dcos-agent-01): {reason}\n"
            )),
            "{table}"
        );
        // A reason of one host stays on its row.
        assert!(
            table.contains("147.75.100.31  failed: missing on the node: ipset\n"),
            "{table}"
        );
        assert!(
            table.contains("packet-dcos-master-00        147.75.100.11  refused\n"),
            "{table}"
        );
        assert_eq!(r.exit_status(), ExitStatus::HostsFailed);
        assert_eq!(r.summary.refused, 3);
    }

    #[test]
    fn a_note_every_host_has_is_printed_once() {
        let note = "boot restore not installed (no systemd): rules written to /var/lib/palisade only";
        let changed = || {
            let mut r = HostResult::new(Status::Changed, first_run());
            r.notes.push(note.into());
            r
        };
        let r = report(CommandName::Apply, vec![Ok(changed()), Ok(changed())]);
        let table = r.table(Paint::PLAIN);
        assert_eq!(table.matches(note).count(), 1, "{table}");
        assert!(
            table.contains(&format!("\nnote for every host (2): {note}\n")),
            "{table}"
        );
        assert!(!table.contains("    note:"), "{table}");
    }

    #[test]
    fn absent_is_drift_to_verify_and_fine_to_remove() {
        let absent = || Ok(HostResult::new(Status::Absent, Vec::new()));
        let verify = report(
            CommandName::Verify,
            vec![absent(), Ok(HostResult::new(Status::Ok, vec![]))],
        );
        assert_eq!(verify.exit_status(), ExitStatus::Drift);
        assert!(verify.table(Paint::PLAIN).contains("147.75.100.11  absent\n"));
        let remove = report(
            CommandName::Remove,
            vec![absent(), Ok(HostResult::new(Status::Removed, vec![]))],
        );
        assert_eq!(remove.exit_status(), ExitStatus::Ok);
        assert_eq!(remove.summary.absent, 1);
        assert_eq!(remove.summary.removed, 1);
    }

    #[test]
    fn every_command_serialises_to_the_one_shape() {
        let reports = [
            report(
                CommandName::Plan,
                vec![
                    Ok(HostResult::new(Status::WouldChange, first_run())),
                    Ok(refused_plan()),
                    Ok(HostResult::new(Status::Unchanged, vec![])),
                    Err(HostError::ConnectTimeout {
                        addr: "147.75.100.31:22".into(),
                        after: Duration::from_secs(5),
                    }
                    .into()),
                    Ok(HostResult::deposed()),
                ],
            ),
            report(
                CommandName::Apply,
                vec![
                    Ok(HostResult::new(Status::Changed, first_run())),
                    Ok(refused_plan()),
                    Ok(HostResult::new(Status::Unchanged, vec![])),
                ],
            ),
            report(
                CommandName::Verify,
                vec![
                    Ok(HostResult::new(Status::Ok, vec![])),
                    Ok(HostResult::new(Status::Drift, first_run())),
                    Ok(HostResult::new(Status::Absent, vec![])),
                ],
            ),
            report(
                CommandName::Remove,
                vec![
                    Ok(HostResult::new(Status::Removed, vec![])),
                    Ok(HostResult::new(Status::Absent, vec![])),
                ],
            ),
        ];
        for r in &reports {
            let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
            report_shape::check(&json).unwrap();
            assert_eq!(json["summary"]["total"], json["hosts"].as_array().unwrap().len());
        }
        let plan: serde_json::Value = serde_json::from_str(&reports[0].json()).unwrap();
        assert_eq!(plan["command"], "plan");
        assert_eq!(plan["summary"]["refused"], 1);
        assert_eq!(plan["summary"]["changed"], 0, "zero counts are there");
        assert_eq!(plan["hosts"][1]["status"], "refused");
        assert_eq!(plan["hosts"][1]["changes"][0]["kind"], "set-missing");
        let apply: serde_json::Value = serde_json::from_str(&reports[1].json()).unwrap();
        assert_eq!(apply["hosts"][1]["status"], "refused");
    }

    #[test]
    fn the_shape_checker_refuses_what_breaks_the_shape() {
        let good = report(
            CommandName::Verify,
            vec![Ok(HostResult::new(Status::Drift, first_run()))],
        );
        let good: serde_json::Value = serde_json::from_str(&good.json()).unwrap();
        report_shape::check(&good).unwrap();
        let broken = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            f(&mut v);
            report_shape::check(&v).unwrap_err()
        };
        let e = broken(&|v| {
            v["summary"].as_object_mut().unwrap().remove("absent");
        });
        assert!(e.contains("summary lacks \"absent\""), "{e}");
        let e = broken(&|v| v["summary"]["drift"] = 0.into());
        assert!(e.contains("summary.drift"), "{e}");
        let e = broken(&|v| v["hosts"][0]["status"] = "changed".into());
        assert!(e.contains("not one of verify's"), "{e}");
        let e = broken(&|v| v["hosts"][0]["changes"] = serde_json::json!([]));
        assert!(e.contains("drift with no changes"), "{e}");
        let e = broken(&|v| v["hosts"][0]["surprise"] = 1.into());
        assert!(e.contains("unknown key \"surprise\""), "{e}");
        let e = broken(&|v| v["hosts"][0]["error"] = "x".into());
        assert!(e.contains(".error is"), "{e}");
        let e = broken(&|v| v["command"] = "inventory".into());
        assert!(e.contains("command"), "{e}");
        let e = broken(&|v| v["whitelist"] = serde_json::json!({}));
        assert!(e.contains("unknown key \"whitelist\""), "{e}");
    }

    #[test]
    fn a_refusal_reads_the_same_from_plan_and_apply_and_keeps_its_change() {
        let refusal = || crate::engine::Refusal::WouldLockOut {
            seen: "198.18.0.1".parse().unwrap(),
        };
        let row = HostResult::from(Outcome::Refused {
            changes: vec![Change::PersistMissing],
            refusal: refusal(),
        });
        assert_eq!(row.status, Status::Refused);
        assert_eq!(row.changes, [Change::PersistMissing]);
        assert!(row.error.unwrap().contains("add it with --allow 198.18.0.1"));
    }

    #[test]
    fn every_outcome_has_its_status_and_notes_are_worded_here() {
        use crate::engine::Unconfirmed;
        let status = |o: Outcome| HostResult::from(o).status;
        assert_eq!(status(Outcome::Matches), Status::Ok);
        assert_eq!(status(Outcome::Drift(first_run())), Status::Drift);
        assert_eq!(status(Outcome::Absent), Status::Absent);
        assert_eq!(status(Outcome::Unchanged), Status::Unchanged);
        assert_eq!(status(Outcome::WouldChange(first_run())), Status::WouldChange);
        assert_eq!(status(Outcome::Removed), Status::Removed);
        let changed = HostResult::from(Outcome::Changed {
            changes: Vec::new(),
            notes: vec![Note::ConfirmedLeftover, Note::BootRestoreFailed],
        });
        assert_eq!(changed.status, Status::Changed);
        assert_eq!(
            changed.notes,
            [
                "confirmed a change another run had left unconfirmed (interrupted, or at work at the same time)",
                "the change is confirmed, but writing its boot restore failed: run apply again"
            ]
        );
        let back = HostResult::from(Outcome::RolledBack(Unconfirmed::TooLate));
        assert_eq!(back.status, Status::RolledBack);
        assert_eq!(
            back.error.as_deref(),
            Some(
                "the confirmation came too late: the node had started rolling back; the node rolled back to its previous state"
            )
        );
    }
}
