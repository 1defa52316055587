//! What every `--json` report shares, whatever the command: which command
//! ran, and a `summary` with a count for every status, zeros included, so a
//! script reads `.summary.failed` without asking which command made it.

use serde::Serialize;

use super::hosts::Status;
use crate::engine::Operation;

/// The name of the command a report is about, as `--json` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CommandName {
    Ping,
    Plan,
    Apply,
    Verify,
    Remove,
}

/// A run of the engine is reported as the command that ran it.
impl From<Operation> for CommandName {
    fn from(operation: Operation) -> CommandName {
        match operation {
            Operation::Plan => CommandName::Plan,
            Operation::Apply => CommandName::Apply,
            Operation::Verify => CommandName::Verify,
            Operation::Remove => CommandName::Remove,
        }
    }
}

/// Hosts per status. The keys are the status words, the same for every
/// command; a status a command never gives counts 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Summary {
    pub(crate) total: usize,
    pub(crate) ok: usize,
    pub(crate) drift: usize,
    pub(crate) absent: usize,
    pub(crate) unchanged: usize,
    pub(crate) would_change: usize,
    pub(crate) changed: usize,
    pub(crate) removed: usize,
    pub(crate) refused: usize,
    pub(crate) rolled_back: usize,
    pub(crate) unreachable: usize,
    pub(crate) failed: usize,
    pub(crate) deposed: usize,
}

impl Summary {
    pub(crate) fn of(statuses: impl IntoIterator<Item = Status>) -> Summary {
        let mut s = Summary::default();
        for status in statuses {
            s.total += 1;
            // Exhaustive: a new status cannot go uncounted.
            let n = match status {
                Status::Ok => &mut s.ok,
                Status::Drift => &mut s.drift,
                Status::Absent => &mut s.absent,
                Status::Unchanged => &mut s.unchanged,
                Status::WouldChange => &mut s.would_change,
                Status::Changed => &mut s.changed,
                Status::Removed => &mut s.removed,
                Status::Refused => &mut s.refused,
                Status::RolledBack => &mut s.rolled_back,
                Status::Failed => &mut s.failed,
                Status::Unreachable => &mut s.unreachable,
                Status::Deposed => &mut s.deposed,
            };
            *n += 1;
        }
        s
    }

    /// Each status with its count, in the order of [`Status::ALL`].
    pub(crate) fn counts(&self) -> [(Status, usize); 12] {
        Status::ALL.map(|st| {
            let n = match st {
                Status::Ok => self.ok,
                Status::Drift => self.drift,
                Status::Absent => self.absent,
                Status::Unchanged => self.unchanged,
                Status::WouldChange => self.would_change,
                Status::Changed => self.changed,
                Status::Removed => self.removed,
                Status::Refused => self.refused,
                Status::RolledBack => self.rolled_back,
                Status::Failed => self.failed,
                Status::Unreachable => self.unreachable,
                Status::Deposed => self.deposed,
            };
            (st, n)
        })
    }

    /// The closing line of a table: `3 hosts: 2 changed, 1 failed`, the
    /// statuses that occurred only, coloured by what they mean.
    pub(crate) fn line(&self, paint: super::colour::Paint) -> String {
        let parts: Vec<String> = self
            .counts()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(st, n)| paint.tone(st.tone(), &format!("{n} {}", st.as_str())))
            .collect();
        let hosts = if self.total == 1 { "host" } else { "hosts" };
        if parts.is_empty() {
            format!("{} {hosts}\n", self.total)
        } else {
            format!("{} {hosts}: {}\n", self.total, parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::colour::Paint;

    #[test]
    fn every_status_is_a_key_zeros_included() {
        let s = Summary::of([Status::Changed, Status::Changed, Status::Failed]);
        let json = serde_json::to_value(&s).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        want.push("total");
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(json["changed"], 2);
        assert_eq!(json["failed"], 1);
        assert_eq!(json["would-change"], 0);
        assert_eq!(json["total"], 3);
        assert_eq!(s.line(Paint::PLAIN), "3 hosts: 2 changed, 1 failed\n");
        assert_eq!(Summary::of([]).line(Paint::PLAIN), "0 hosts\n");
    }

    #[test]
    fn counts_agree_with_of() {
        for st in Status::ALL {
            let s = Summary::of([st]);
            let counted: Vec<Status> = s
                .counts()
                .iter()
                .filter(|(_, n)| *n == 1)
                .map(|(st, _)| *st)
                .collect();
            assert_eq!(counted, [st]);
        }
    }
}
