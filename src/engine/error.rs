//! Why a host the engine reached did not converge, one variant per reason.

use crate::diff::Change;
use crate::inventory::Role;
use crate::observe::firewall::ParseError;
use crate::transport::HostError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
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
    #[error("the node still differs after the confirmed change: {}", describe(.0))]
    DiffersAfterConfirm(Vec<Change>),
    #[error("{reason}; the node rolled back, but does not match its state before the change")]
    RollbackMismatch { reason: String },
    #[error("palisade's objects are still on the node after remove")]
    RemoveIncomplete,
    #[error("the node ended the step before it said {expected}")]
    Silent { expected: &'static str },
}

fn describe(changes: &[Change]) -> String {
    let text: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    text.join("; ")
}

/// The report still takes one error type per host: the transport's, whose
/// `Remote` carries the node's reason in words.
impl From<NodeError> for HostError {
    fn from(e: NodeError) -> HostError {
        HostError::Remote(e.to_string())
    }
}
