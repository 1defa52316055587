//! What the engine made of one host, typed: `report` words it and decides
//! its status, so the engine knows nothing of tables, colours or JSON.

use std::fmt;

use crate::diff::Change;

use super::Refusal;
use super::error::describe;

/// How one host's job ended, when it ended as palisade meant it to (a
/// failure is a [`super::Failure`]).
#[derive(Debug)]
pub(crate) enum Outcome {
    /// verify: the node is as the policy wants.
    Matches,
    /// verify: the node differs by these changes.
    Drift(Vec<Change>),
    /// verify, remove: none of palisade's objects is on the node.
    Absent,
    /// plan, apply: nothing to do.
    Unchanged,
    /// plan: apply would make these changes.
    WouldChange(Vec<Change>),
    /// apply: made these changes (none when it only confirmed an earlier
    /// run's), proved a new connection gets through, and confirmed them.
    Changed { changes: Vec<Change>, notes: Vec<Note> },
    /// remove: taken off, and checked.
    Removed,
    /// plan, apply: the change would lock the operator out, so apply
    /// refuses it (and plan says apply would).
    Refused { changes: Vec<Change>, refusal: Refusal },
    /// apply: the change was not confirmed, and palisade saw the node undo
    /// it by itself.
    RolledBack(Unconfirmed),
}

/// Something worth saying about a change that was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// The change confirmed was one another run had left pending: an
    /// interrupted one, or one at work on the node at the same time.
    ConfirmedLeftover,
    /// Before its change, the run rolled back what an interrupted run had
    /// left half undone.
    SettledRollback,
    /// The node has no systemd: the rules are in /var/lib/palisade, with no
    /// unit to restore them at boot.
    FilesOnly,
    /// The change is confirmed, but its boot files could not be written.
    BootRestoreFailed,
    /// The host was reached through a bastion that is not a node of the
    /// inventory: the host admits the bastion, but the bastion's own
    /// firewall, which the operator's sessions cross, is not palisade's.
    BastionOutside,
}

/// Why a change was not confirmed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unconfirmed {
    /// A new connection did not get through after the change (why, as the
    /// connection attempt said).
    NoNewConnection(String),
    /// The confirmation arrived after the node had started rolling back.
    TooLate,
    /// The change left the chains other than asked for, so palisade rolled
    /// it back at once.
    NotAsAsked(Vec<Change>),
}

impl fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unconfirmed::NoNewConnection(why) => f.write_str(why),
            Unconfirmed::TooLate => {
                f.write_str("the confirmation came too late: the node had started rolling back")
            }
            Unconfirmed::NotAsAsked(left) => {
                write!(f, "the node still differed after the change ({})", describe(left))
            }
        }
    }
}
