//! Why a host the engine reached did not converge, one variant per reason.

use crate::diff::Change;
use crate::inventory::Role;
use crate::observe::firewall::ParseError;
use crate::transport::HostError;

use super::Unconfirmed;

#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeError {
    #[error("no policy for role {0}")]
    NoPolicy(Role),
    #[error("missing on the node: {}", .0.join(", "))]
    MissingTools(Vec<String>),
    #[error(
        "the whitelist accepts interface {accepted}, which takes in {uplink}, this node's uplink: \
         it would admit everyone; name the container interfaces exactly (--interface)"
    )]
    WideInterface { accepted: String, uplink: String },
    #[error(transparent)]
    Unreadable(#[from] ParseError),
    #[error(
        "an earlier change on this node is not confirmed and rolls back by itself within {within}s; \
         try again after that"
    )]
    PendingEarlier { within: u64 },
    #[error("{reason}; the unconfirmed change stays pending and rolls back by itself")]
    PendingUnreached { reason: String },
    #[error("the pending change rolled back before it could be confirmed; run apply again")]
    PendingRolledBack,
    #[error(
        "the change was no longer pending on the node when palisade confirmed it (rebooted, or removed by \
         another run?); run apply again"
    )]
    Gone,
    #[error(
        "{link}; if the change reached the node, it was not confirmed and rolls back by itself within {secs}s"
    )]
    LinkLost { link: HostError, secs: u32 },
    #[error("the node still differed after the change ({}); palisade rolled it back", describe(.0))]
    StillDiffers(Vec<Change>),
    #[error("{why}; the node rolled back, but does not match its state before the change")]
    RollbackMismatch { why: Unconfirmed },
    #[error(
        "the rollback of an unconfirmed change failed on this node, which keeps trying it until it \
         succeeds; until then the node may still have that change's rules (see /run/palisade/rollback there)"
    )]
    RollbackFailed,
    #[error(
        "palisade's boot restore on this node was written by its nftables backend, not {wanted}: its table is \
         there, which this remove would leave; take it off with `palisade remove --backend nftables` (which \
         takes what the iptables backend left too), or move the node back with `apply --backend {wanted}`"
    )]
    OtherBackend {
        applied: crate::observe::probe::Backend,
        wanted: crate::policy::FirewallBackend,
    },
    #[error("palisade's objects are still on the node after remove")]
    RemoveIncomplete,
    #[error("palisade changes nothing on this node: {}", describe(.0))]
    Forged(Vec<Change>),
    #[error("the node ended the step before it said {expected}")]
    Silent { expected: &'static str },
}

/// The changes as one line, `; ` between them.
pub(super) fn describe(changes: &[Change]) -> String {
    let text: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    text.join("; ")
}

/// palisade's own refusal to change a host: never lock the operator out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(
        "refused to change this host: it sees palisade connecting from {seen}, which the whitelist does not \
         admit, so the change would lock you out; add it with --allow {seen}"
    )]
    WouldLockOut { seen: std::net::IpAddr },
    #[error("refused to change this host: it does not say which address palisade connects from")]
    ControllerUnknown,
    /// The bastion (`--jump`) is a node of the inventory, and its new rules
    /// would not admit the controller as the bastion sees it: the operator
    /// would lose the bastion and every node behind it, so no host changes.
    #[error(
        "refused to change this host: the bastion {bastion} sees palisade connecting from {seen}, which the          whitelist does not admit there, so the change would lock you out of the bastion and every node          behind it; add it with --allow {seen}"
    )]
    BastionWouldLockOut { bastion: String, seen: std::net::IpAddr },
    #[error(
        "refused to change this host: the bastion {bastion} is a node of the inventory, and it does not say          which address palisade connects to it from"
    )]
    BastionUnknown { bastion: String },
}

/// Why the engine's job on one host did not end as it should: the
/// connection or a step failed, or the node did not converge (a refusal is
/// an outcome, `Outcome::Refused`, not a failure).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(transparent)]
    Transport(#[from] HostError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Failure {
        Failure::Node(NodeError::Unreadable(e))
    }
}
