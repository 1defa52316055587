//! What the one-exec apply (`render/converge.sh`) and palisade say to each
//! other on its stdin and stdout, typed and parsed here and nowhere else.
//!
//! The node prints sections (`==> NAME` lines), each reply ending with
//! `==> end`, and every data line behind a `|` (lib.sh's `say`), so that
//! nothing the node reads can pose as a section or end a reply early;
//! palisade answers with one order line. The first reply is the
//! observation (`observe::firewall::parse`); the ones after it are parsed
//! below. Every word of it, both ways, is a constant of `render::wire`,
//! whose tests hold the node-side scripts to them.

use crate::diff::Change;
use crate::observe::firewall::{self, ChangeId, Observed, ParseError, Sections};
use crate::policy::FirewallBackend;
use crate::render::wire::{change, order, section, settled, state};

/// The line that ends every reply.
pub(crate) use crate::render::wire::END;

/// What palisade tells the waiting script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Order {
    /// Make the change, armed to roll back by itself: this code (the rest
    /// of the script, `render::change_code`) follows the line.
    Apply(String),
    /// Keep the pending change with this id (this run's, or an earlier
    /// run's), and no other.
    Confirm(ChangeId),
    /// Roll this run's change back now.
    Abort,
}

impl Order {
    /// What goes on the script's stdin: one line, and for `apply` the code
    /// after it, whose length in bytes the line gives (the script reads
    /// exactly that much with `head -c`, and its next order after it).
    pub fn text(&self) -> String {
        match self {
            Order::Apply(code) => format!("{} {}\n{code}", order::APPLY, code.len()),
            Order::Confirm(id) => format!("{} {id}\n", order::CONFIRM),
            Order::Abort => format!("{}\n", order::ABORT),
        }
    }
}

/// How the node will roll the change back unless confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// A transient systemd timer.
    Systemd,
    /// A detached sleeper (no systemd).
    Setsid,
}

/// Where the change's boot restore goes once confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persisted {
    /// A systemd unit runs the restore script at boot.
    Systemd,
    /// No systemd: the script is written to /var/lib/palisade only.
    Files,
}

/// The reply to [`Order::Apply`]: the change is made and armed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    /// The node's name for the change, which the confirmation gives back.
    pub id: ChangeId,
    pub(crate) trigger: Option<Trigger>,
    pub(crate) persisted: Option<Persisted>,
    /// The node as the commit left it: `before` with the chains read again.
    /// The sets and boot files are what the commit wrote (one `ipset
    /// restore` and files that exited 0), so only the chains, which another
    /// tool may touch at the same time, are read back.
    pub(crate) after: Observed,
}

/// What became of a change palisade confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Kept: it is now what the node boots into.
    Confirmed { boot_failed: bool },
    /// The rollback took it first.
    RolledBack,
    /// There was no pending change (rebooted, or removed by another run).
    Gone,
}

/// What the script finished, before it read the node, of an earlier run
/// that died half way (the `settled` section of its first reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// A confirmation that died after it had won: the change is kept.
    Confirmed,
    /// A rollback that died half way, or one whose trigger never fired:
    /// the node is back to its state before that change.
    RolledBack,
}

/// What the node's first reply says it finished of an earlier run that died
/// half way (its `settled` section); `None` when it finished nothing.
pub fn settled(first: &str) -> Option<Settled> {
    let sections = Sections::of(first).ok()?;
    match *sections.get(section::SETTLED).first()? {
        settled::CONFIRM => Some(Settled::Confirmed),
        settled::ROLLBACK | settled::EXPIRED => Some(Settled::RolledBack),
        _ => None,
    }
}

/// Parses the reply to [`Order::Apply`].
pub fn made(text: &str, before: &Observed) -> Result<Made, ParseError> {
    let sections = Sections::of(text)?;
    if !sections.has(section::CHANGE) {
        return Err(ParseError::new("the change step said nothing"));
    }
    let mut trigger = None;
    let mut persisted = None;
    let mut id = None;
    for &line in sections.get(section::CHANGE) {
        if let Some(word) = line.strip_prefix(change::ID) {
            id = Some(word.parse()?);
        }
        match line.strip_prefix(change::ARMED) {
            Some(change::SYSTEMD) => trigger = Some(Trigger::Systemd),
            Some(change::SETSID) => trigger = Some(Trigger::Setsid),
            _ => {}
        }
        match line.strip_prefix(change::PERSIST) {
            Some(change::SYSTEMD) => persisted = Some(Persisted::Systemd),
            Some(change::FILES) => persisted = Some(Persisted::Files),
            _ => {}
        }
    }
    let after = firewall::with_chains(before, text)?;
    let id = id.ok_or_else(|| ParseError::new("the change step did not name the change"))?;
    Ok(Made {
        id,
        trigger,
        persisted,
        after,
    })
}

/// The word of a reply's `state=` line: how the confirmation, the abort and
/// the status step each say where the change stands. A reply with a line
/// that is neither framed data nor a header is refused.
fn state_word(text: &str) -> Result<Option<&str>, ParseError> {
    Ok(firewall::data_lines(text)?
        .into_iter()
        .find_map(|l| l.strip_prefix(state::KEY)))
}

/// Parses the reply to [`Order::Confirm`].
pub fn fate(text: &str) -> Result<Fate, ParseError> {
    let boot_failed = firewall::data_lines(text)?
        .iter()
        .any(|l| l.strip_prefix(state::BOOT) == Some(state::FAILED));
    match state_word(text)? {
        Some(state::CONFIRMED) => Ok(Fate::Confirmed { boot_failed }),
        Some(state::ROLLED_BACK) => Ok(Fate::RolledBack),
        Some(state::NONE) => Ok(Fate::Gone),
        _ => Err(ParseError::new(
            "the confirmation did not say what became of the change",
        )),
    }
}

/// Parses the reply to [`Order::Abort`]: whether the node is back as it
/// was.
pub fn aborted(text: &str) -> Result<bool, ParseError> {
    match state_word(text)? {
        Some(state::ROLLED_BACK) => Ok(true),
        Some(state::ROLLBACK_FAILED) => Ok(false),
        _ => Err(ParseError::new("the rollback did not say how it went")),
    }
}

/// Where a node's last change stands, as `render::status` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// No change is pending, or none was ever made.
    None,
    /// Armed: it rolls back by itself unless confirmed.
    Armed,
    /// A confirmation is under way.
    Confirming,
    /// Its rollback is under way.
    RollingBack,
    /// It was rolled back.
    RolledBack,
    /// Its rollback failed (the node is not back as it was), and the node
    /// tries it again.
    RollbackFailed,
}

/// Parses what `render::status` prints.
pub(crate) fn pending(text: &str) -> Result<Pending, ParseError> {
    match state_word(text)? {
        Some(state::NONE) => Ok(Pending::None),
        Some(state::ARMED) => Ok(Pending::Armed),
        Some(state::CONFIRMING) => Ok(Pending::Confirming),
        Some(state::ROLLING_BACK) => Ok(Pending::RollingBack),
        Some(state::ROLLED_BACK) => Ok(Pending::RolledBack),
        Some(state::ROLLBACK_FAILED) => Ok(Pending::RollbackFailed),
        _ => Err(ParseError::new(
            "the status step did not say where the change stands",
        )),
    }
}

/// The differences a commit must leave none of: with iptables, those in
/// the chains and jumps (the sets and boot files are checked by the
/// commands that wrote them); with nftables, any in the table, which is
/// read back whole, sets included.
pub(crate) fn left_in_chains(changes: Vec<Change>, backend: FirewallBackend) -> Vec<Change> {
    changes
        .into_iter()
        .filter(|c| {
            if backend == FirewallBackend::Nftables {
                return c.in_table();
            }
            c.family().is_some()
                && !matches!(
                    c,
                    Change::SetMissing { .. }
                        | Change::SetWrongType { .. }
                        | Change::MembersMissing { .. }
                        | Change::MembersExtra { .. }
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_reply_says_how_it_is_armed_and_what_the_chains_are() {
        let before = Observed::default();
        let text = "==> change\n|id=123-45\n|armed=systemd\n|persist=files\n==> chain-v4\n|-N PALISADE\n\
                    |-A PALISADE -j DROP\n==> input-v4\n|-N INPUT\n|-A INPUT -j PALISADE\n==> docker-user-v4\n\
                    ==> docker-chain-v4\n==> forged-v4\n==> chain-v6\n==> input-v6\n==> docker-user-v6\n\
                    ==> docker-chain-v6\n==> forged-v6\n==> end\n";
        let made = made(text, &before).unwrap();
        assert_eq!(made.trigger, Some(Trigger::Systemd));
        assert_eq!(made.id.to_string(), "123-45");
        assert_eq!(Order::Confirm(made.id.clone()).text(), "confirm 123-45\n");
        assert_eq!(Order::Apply("x=1\n".into()).text(), "apply 4\nx=1\n");
        let no_id = text.replace("|id=123-45\n", "");
        assert!(super::made(&no_id, &before).is_err());
        let bad_id = text.replace("id=123-45", "id=1;reboot");
        assert!(super::made(&bad_id, &before).is_err());
        assert_eq!(made.persisted, Some(Persisted::Files));
        assert_eq!(made.after.v4.input, ["-A INPUT -j PALISADE"]);
        assert_eq!(
            made.after.v4.chain.as_deref(),
            Some(&["-A PALISADE -j DROP".to_owned()][..])
        );
        assert_eq!(made.after.v6.chain, None);
        assert!(super::made("==> end\n", &before).is_err());
        assert!(super::made("==> change\n==> chain-v4\n", &before).is_err());
        // Only the change section names the change; no line of the chains'
        // can, nor can an unframed line.
        let forged = text
            .replace("|id=123-45\n", "")
            .replace("|-N INPUT\n", "|-N INPUT\n|id=666-1\n");
        assert!(super::made(&forged, &before).is_err());
        assert!(super::made(&text.replace("|id=", "id="), &before).is_err());
        // The tables the commit left hold a comment across lines: that is
        // what was not asked for, and the change is rolled back.
        let after = super::made(
            &text.replace("==> forged-v6\n", "==> forged-v6\n|table\n"),
            &before,
        )
        .unwrap();
        assert!(after.after.v6.forged_rules);
    }

    #[test]
    fn the_status_reply_says_where_the_change_stands() {
        assert_eq!(pending("|state=rolled-back\n").unwrap(), Pending::RolledBack);
        assert_eq!(pending("|state=armed\n|id=1-2\n").unwrap(), Pending::Armed);
        assert_eq!(pending("|state=confirming\n").unwrap(), Pending::Confirming);
        assert_eq!(pending("|state=rolling-back\n").unwrap(), Pending::RollingBack);
        assert_eq!(pending("|state=none\n").unwrap(), Pending::None);
        assert!(pending("|state=rolled-back-ish\n").is_err());
        assert_eq!(
            pending("|state=rollback-failed\n").unwrap(),
            Pending::RollbackFailed
        );
        assert!(pending("").is_err());
        assert!(pending("state=none\n").is_err());
    }

    #[test]
    fn the_confirm_reply_names_the_fate() {
        assert_eq!(
            fate("==> confirm\n|state=confirmed\n|boot=ok\n==> end\n").unwrap(),
            Fate::Confirmed { boot_failed: false }
        );
        assert_eq!(
            fate("==> confirm\n|state=confirmed\n|boot=failed\n==> end\n").unwrap(),
            Fate::Confirmed { boot_failed: true }
        );
        assert_eq!(fate("|state=rolled-back\n").unwrap(), Fate::RolledBack);
        assert_eq!(fate("|state=none\n").unwrap(), Fate::Gone);
        assert!(fate("==> confirm\n==> end\n").is_err());
        // Unframed: no word of it is read.
        assert!(fate("==> confirm\nstate=confirmed\n==> end\n").is_err());
        assert!(aborted("==> abort\nstate=rolled-back\n==> end\n").is_err());
        assert!(aborted("==> abort\n|state=rolled-back\n==> end\n").unwrap());
    }

    #[test]
    fn the_settled_section_says_what_was_finished() {
        let first = "==> start\n==> settled\n|confirm\n==> origin\n|\n==> end\n";
        assert_eq!(settled(first), Some(Settled::Confirmed));
        assert_eq!(
            settled(&first.replace("|confirm", "|expired")),
            Some(Settled::RolledBack)
        );
        assert_eq!(settled(&first.replace("|confirm", "confirm")), None);
        assert_eq!(settled("==> start\n==> origin\n|\n==> end\n"), None);
    }

    proptest::proptest! {
        /// Whatever a node prints (a broken, hostile or future one), the
        /// parsers answer with a value or an error, and never panic.
        #[test]
        fn no_reply_makes_a_parser_panic(text in "(==> [a-z-]{0,12}\n|\\|?[a-z]{0,8}=[ -~]{0,24}\n|\\|?[ -~]{0,40}\n){0,24}") {
            let before = Observed::default();
            let _ = made(&text, &before);
            let _ = fate(&text);
            let _ = aborted(&text);
            let _ = pending(&text);
            let _ = settled(&text);
        }

        /// `apply N` counts the bytes that follow it, which `head -c`
        /// reads on the node.
        #[test]
        fn apply_says_how_many_bytes_follow(code in "[ -~\n]{0,200}") {
            let text = Order::Apply(code.clone()).text();
            let (head, rest) = text.split_once('\n').unwrap();
            proptest::prop_assert_eq!(head, format!("apply {}", rest.len()));
            proptest::prop_assert_eq!(rest, code);
        }
    }
}
