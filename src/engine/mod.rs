//! The per-host engine behind apply, plan, verify and remove, and the
//! lockout protocol: read the node, compare, and (for apply and remove)
//! change and check. One connection per host; every step on it is a
//! constant command with its script on stdin. An apply is one exec: the
//! script reads the node, then waits on its stdin for palisade's orders
//! (see [`protocol`]), so sudo runs once and no step waits for a new one.

pub(crate) mod bastion;
mod error;
mod outcome;
pub(crate) mod protocol;

pub(crate) use error::{Failure, NodeError, Refusal};
pub(crate) use outcome::{Note, Outcome, Unconfirmed};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::diff::{Change, diff, plan};
use crate::inventory::{Host, Role};
use crate::observe::firewall::{self, ChangeId, Observed};
use crate::observe::probe;
use crate::policy::{FirewallBackend, Packet, Policy};
use crate::render::{self, Fix};
use crate::timing;
use crate::transport::Heard;
use crate::transport::{Conversation, HostError, Privilege, Session};

use self::protocol::{END, Fate, Made, Order};

/// What the engine does on each node: the four commands that run the job.
/// Its own enum rather than `cli::Command`, whose variants carry each
/// command's flags (clap), and which the engine must not depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Plan,
    Apply,
    Verify,
    Remove,
}

impl Operation {
    /// The command's name, as the progress bar and the retry file give it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Operation::Plan => "plan",
            Operation::Apply => "apply",
            Operation::Verify => "verify",
            Operation::Remove => "remove",
        }
    }
}

pub(crate) struct Job {
    /// The policy of each role the fleet has (the ports open differ).
    pub(crate) policies: BTreeMap<Role, Policy>,
    pub(crate) user: String,
    pub(crate) operation: Operation,
    /// How long a node waits for confirmation before rolling back.
    pub(crate) confirm_timeout: Duration,
    /// How long the fresh confirmation connection may take.
    pub(crate) connect_timeout: Duration,
    /// Where each host stands, for the report on Ctrl-C.
    pub(crate) phases: Phases,
    /// Test-only: the local address the confirmation connection leaves from.
    pub(crate) confirm_source: Option<IpAddr>,
    /// Test-only: a pause before each confirmation (of a change this run
    /// made, or of one it found pending).
    pub(crate) hold_confirm: Duration,
    /// The nodes' SSH port (`--port`): the lockout check asks whether a
    /// new connection to it gets in.
    pub(crate) port: u16,
    /// What each node took under `--backend auto`, by host name, for the
    /// report.
    pub(crate) choices: Choices,
    /// The bastions (`--jump`, or ssh_config's ProxyJump), when there are.
    pub(crate) bastions: Option<bastion::Bastions>,
    /// verify: the mode each node's guard is in, and what a node in audit
    /// mode recorded, by host name, for the report.
    pub(crate) audits: Audits,
}

/// What verify saw of a node's mode (see [`Job::audits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Audit {
    pub(crate) mode: crate::policy::FirewallMode,
    pub(crate) recorded: crate::observe::nft::Recorded,
}

pub(crate) type Audits = Arc<Mutex<BTreeMap<String, Audit>>>;

/// Where a changed host stands in the confirm protocol. Times are on the
/// monotonic clock: a wall-clock step (NTP, an operator) moves neither the
/// node's deadline (on its /proc/uptime) nor palisade's count of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Changed, not yet confirmed: it rolls back by itself at this time.
    Armed(Instant),
    /// The confirmation is on its way, its answer not yet read: the change
    /// is kept unless the confirmation reached the node after its deadline.
    Confirming,
    Confirmed,
}

pub(crate) type Phases = Arc<Mutex<BTreeMap<String, Phase>>>;

pub(crate) type Choices = Arc<Mutex<BTreeMap<String, firewall::Chosen>>>;

/// What the node's first reply says, understood: its state, the address it
/// sees palisade connect from, and the policy for it.
struct Node<'a> {
    before: Observed,
    seen: Option<IpAddr>,
    /// With `--backend auto`, the backend the node took; else the role's
    /// policy itself.
    policy: Cow<'a, Policy>,
}

/// Understands the node's first reply (`text`), and refuses to go on with
/// a node [`check_node`] refuses.
fn understand<'a>(job: &Job, host: &Host, policy: &'a Policy, text: &str) -> Result<Node<'a>, Failure> {
    let seen = firewall::controller_address(text);
    let before = firewall::parse(text).map_err(NodeError::from)?;
    let policy = resolve(job, host, policy, &before)?;
    check_node(job, &policy, &before)?;
    Ok(Node { before, seen, policy })
}

/// The policy for this node: with `--backend auto`, the backend the node
/// took (recorded for the report); else `policy` itself.
fn resolve<'a>(
    job: &Job,
    host: &Host,
    policy: &'a Policy,
    before: &Observed,
) -> Result<Cow<'a, Policy>, NodeError> {
    if policy.backend() != FirewallBackend::Auto {
        return Ok(Cow::Borrowed(policy));
    }
    let chosen = before.chosen.clone().ok_or(NodeError::Silent {
        expected: "which backend it takes",
    })?;
    let backend = chosen.backend;
    job.choices
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(host.name().to_string(), chosen);
    Ok(Cow::Owned(policy.with_backend(backend)))
}

pub(crate) async fn run(session: Session, host: Host, job: Arc<Job>) -> Result<Outcome, Failure> {
    let policy = job
        .policies
        .get(&host.role())
        .ok_or_else(|| NodeError::NoPolicy(host.role()))?;
    if job.operation == Operation::Apply {
        return apply(&session, &host, &job, policy).await;
    }
    let node = read(&session, &host, &job, policy).await?;
    match job.operation {
        Operation::Verify => Ok(verify(&host, &job, &node)),
        Operation::Plan => would_change(&session, &job, &node).await,
        Operation::Remove => remove(&session, &node).await,
        Operation::Apply => unreachable!("apply returned above"),
    }
}

/// plan, verify and remove: one exec, that sudo works, where we connect
/// from, and the node's state.
async fn read<'a>(
    session: &Session,
    host: &Host,
    job: &Job,
    policy: &'a Policy,
) -> Result<Node<'a>, Failure> {
    let script = firewall::script(policy);
    let first = session.run(Privilege::RootSeeingOrigin, &script);
    let first = probe::as_root(session.timed(timing::Stage::Observe, first).await?, &job.user)?;
    understand(job, host, policy, &first.stdout)
}

/// verify: whether the node is as the policy wants (and, for the report,
/// the mode its guard is in).
fn verify(host: &Host, job: &Job, node: &Node<'_>) -> Outcome {
    if nothing_there(&node.policy, &node.before) {
        return Outcome::Absent;
    }
    job.note_audit(host, &node.before);
    let changes = diff(&node.policy, &node.before);
    if changes.is_empty() {
        Outcome::Matches
    } else {
        Outcome::Drift(changes)
    }
}

/// plan: what apply would do on this node, decided as apply decides it.
async fn would_change(session: &Session, job: &Job, node: &Node<'_>) -> Result<Outcome, Failure> {
    let changes = diff(&node.policy, &node.before);
    let lockout = lockout_check(session, job, node, &changes).await;
    Ok(match decide(&node.before, changes, lockout) {
        Decision::Nothing => Outcome::Unchanged,
        Decision::Refuse(changes, refusal) => Outcome::Refused { changes, refusal },
        Decision::Fail(e) => return Err(e.into()),
        Decision::Change(changes) | Decision::ConfirmPending(changes) => Outcome::WouldChange(changes),
    })
}

/// remove: takes palisade's objects away, and checks that none is left.
async fn remove(session: &Session, node: &Node<'_>) -> Result<Outcome, Failure> {
    let policy = &*node.policy;
    if nothing_there(policy, &node.before) {
        return Ok(Outcome::Absent);
    }
    let script = render::remove(policy);
    let remove = session.run(Privilege::Root, &script);
    session.timed(timing::Stage::Remove, remove).await?.success()?;
    let after = session
        .timed(timing::Stage::Observe, observe(session, policy))
        .await?;
    if !nothing_there(policy, &after) {
        return Err(NodeError::RemoveIncomplete.into());
    }
    Ok(Outcome::Removed)
}

/// What plan reports and apply does, decided once for both from what the
/// node showed, so the two cannot disagree.
enum Decision {
    /// Already as wanted.
    Nothing,
    /// A change palisade will not make (it would lock the operator out).
    Refuse(Vec<Change>, Refusal),
    /// A change palisade cannot make now.
    Fail(NodeError),
    /// Make these changes.
    Change(Vec<Change>),
    /// Only an earlier run's change, made but never confirmed: confirm it.
    ConfirmPending(Vec<Change>),
}

/// `lockout` is [`lockout_check`]'s verdict on these changes.
fn decide(before: &Observed, changes: Vec<Change>, lockout: Result<(), Refusal>) -> Decision {
    if changes.is_empty() {
        return Decision::Nothing;
    }
    // Lines that could pose as rules or members: the tables a change would
    // be decided from (and the jumps it counts) cannot be trusted.
    let forged: Vec<Change> = changes
        .iter()
        .filter(|c| matches!(c, Change::Forged { .. }))
        .cloned()
        .collect();
    if !forged.is_empty() {
        return Decision::Fail(NodeError::Forged(forged));
    }
    // Another tool's table of palisade's name is never replaced.
    if changes.contains(&Change::NftTableForeign) {
        return Decision::Fail(NodeError::Forged(vec![Change::NftTableForeign]));
    }
    if let Err(refusal) = lockout {
        return Decision::Refuse(changes, refusal);
    }
    match (before.pending_rollback, changes.as_slice()) {
        (Some(_), [Change::Unconfirmed { .. }]) => Decision::ConfirmPending(changes),
        (Some(within), _) => Decision::Fail(NodeError::PendingEarlier { within }),
        (None, _) => Decision::Change(changes),
    }
}

/// What every operation refuses to go on with: missing tools, and (but for
/// remove) a rollback that failed on the node, or a whitelist that would
/// admit the node's uplink.
fn check_node(job: &Job, policy: &Policy, before: &Observed) -> Result<(), NodeError> {
    if !before.missing_tools.is_empty() {
        return Err(NodeError::MissingTools(before.missing_tools.clone()));
    }
    // Boot files written by the nftables backend, and the iptables
    // backend's remove asked for: the table is on the node, which that
    // remove neither reads nor takes away. (Its apply does: the way back,
    // diff's NftTableLeft. The other way round, the nftables backend takes
    // the iptables backend's objects away itself.)
    if let Some(applied) = before.applied_backend
        && applied == probe::Backend::Nftables
        && policy.backend() == FirewallBackend::Iptables
        && job.operation == Operation::Remove
    {
        return Err(NodeError::OtherBackend {
            applied,
            wanted: policy.backend(),
        });
    }
    // Loud on every command but remove (which takes over the failed
    // rollback, and takes everything away).
    if before.rollback_failed && job.operation != Operation::Remove {
        return Err(NodeError::RollbackFailed);
    }
    if job.operation != Operation::Remove
        && let Some((accepted, uplink)) = policy.wide_interfaces(&before.uplinks).first()
    {
        return Err(NodeError::WideInterface {
            accepted: accepted.to_string(),
            uplink: uplink.to_string(),
        });
    }
    Ok(())
}

/// apply, in one exec: read; then, as the node needs, change and arm, prove
/// a new connection gets through, and confirm; or confirm an earlier run's
/// pending change. Nothing to do costs one exec that only reads.
async fn apply(session: &Session, host: &Host, job: &Job, policy: &Policy) -> Result<Outcome, Failure> {
    let (mut talk, first) = first_flight(session, job, policy).await?;
    let node = understand(job, host, policy, &first)?;
    let (changes, fix) = plan(&node.policy, &node.before);
    let settled = protocol::settled(&first);
    let lockout = lockout_check(session, job, &node, &changes).await;
    let steps = Applying {
        session,
        job,
        host,
        policy: &node.policy,
        before: &node.before,
    };
    match decide(&node.before, changes, lockout) {
        // The script stops at the end of its stdin, having changed nothing
        // (but what it settled).
        Decision::Nothing if settled == Some(protocol::Settled::Confirmed) => Ok(Outcome::Changed {
            changes: Vec::new(),
            notes: vec![Note::ConfirmedLeftover],
        }),
        Decision::Nothing => Ok(Outcome::Unchanged),
        Decision::Refuse(changes, refusal) => Ok(Outcome::Refused { changes, refusal }),
        Decision::Fail(e) => Err(e.into()),
        Decision::ConfirmPending(changes) => steps.confirm_pending(&mut talk, changes).await,
        Decision::Change(changes) => steps.change(talk, &fix, changes, settled).await,
    }
}

/// The confirm timeout as the node's script takes it, in whole seconds.
fn confirm_secs(job: &Job) -> u32 {
    u32::try_from(job.confirm_timeout.as_secs()).unwrap_or(u32::MAX)
}

/// apply's first flight: the script reads the node and says what it has,
/// then waits on its stdin for palisade's orders.
async fn first_flight(
    session: &Session,
    job: &Job,
    policy: &Policy,
) -> Result<(Conversation, String), Failure> {
    let script = render::converge(policy, confirm_secs(job));
    let reading = async {
        let mut talk = session.converse(Privilege::RootSeeingOrigin, &script).await?;
        match talk.until_line(END).await? {
            Heard::Said(text) => Ok::<_, Failure>((talk, text)),
            Heard::Ended(out) => {
                probe::as_root(out, &job.user)?.success()?;
                Err(NodeError::Silent {
                    expected: "what the node has",
                }
                .into())
            }
        }
    };
    session.timed(timing::Stage::Observe, reading).await
}

/// apply's steps after the read, on a node that needs a change, or a
/// pending one confirmed.
///
/// Each step says where the host stands in [`Job::phases`], for the
/// interrupt report, and takes it off only where the node is known to have
/// no change of this run's pending (undone, or gone). There is no guard
/// that clears the phase on drop: an error leaves the host listed where it
/// stood (the node may still hold the armed change, and roll it back by
/// itself), and so must an interrupt, which drops the job mid-step.
#[derive(Clone, Copy)]
struct Applying<'a> {
    session: &'a Session,
    job: &'a Job,
    host: &'a Host,
    policy: &'a Policy,
    before: &'a Observed,
}

impl Applying<'_> {
    /// Another run (interrupted, or still at work) left the node as wanted
    /// but unconfirmed: confirm it now, while it is still there.
    async fn confirm_pending(
        self,
        talk: &mut Conversation,
        changes: Vec<Change>,
    ) -> Result<Outcome, Failure> {
        let window = self.job.connect_timeout.min(Duration::from_secs(2));
        if let Err(reason) = self.prove_new_connection(window).await {
            return Err(NodeError::PendingUnreached { reason }.into());
        }
        let Some(id) = self.before.pending_id.clone() else {
            return Err(NodeError::Silent {
                expected: "which change is pending",
            }
            .into());
        };
        self.hold().await;
        // Pending: it rolls back by itself unless this confirms it in time.
        let boot_failed = match self.confirm(talk, id).await? {
            Fate::Confirmed { boot_failed } => boot_failed,
            Fate::RolledBack => {
                self.unlisted();
                return Err(NodeError::PendingRolledBack.into());
            }
            // Not rolled back: no change of that id is pending (and none
            // was confirmed: the node says `confirmed` for one that was).
            Fate::Gone => {
                self.unlisted();
                return Err(NodeError::Gone.into());
            }
        };
        self.listed(Phase::Confirmed);
        let mut notes = vec![Note::ConfirmedLeftover];
        if boot_failed {
            notes.push(Note::BootRestoreFailed);
        }
        notes.extend(bastion_outside(self.session, self.job).await);
        Ok(Outcome::Changed { changes, notes })
    }

    /// This run's change: make it, armed; check it is as asked; prove a new
    /// connection gets through; confirm it.
    async fn change(
        self,
        mut talk: Conversation,
        fix: &Fix,
        changes: Vec<Change>,
        settled: Option<protocol::Settled>,
    ) -> Result<Outcome, Failure> {
        let deadline = Instant::now() + self.job.confirm_timeout;
        let made = self.make_armed(&mut talk, fix, deadline).await?;
        // The node armed its timer before it answered: it rolls back by
        // this time at the latest.
        let latest = Instant::now() + self.job.confirm_timeout;
        self.check_as_asked(&mut talk, &made).await?;
        self.hold().await;
        // Only a confirmation that lands before the deadline means anything:
        // a late one would race the rollback (a dropped SYN is retried and
        // gets through once the node has rolled back).
        let left = deadline.saturating_duration_since(Instant::now());
        let window = self
            .job
            .connect_timeout
            .min(left.saturating_sub(Duration::from_secs(2)));
        if let Err(reason) = self.prove_new_connection(window).await {
            // The script stops at the end of its stdin; the change rolls
            // back by itself.
            let _ = talk.finish().await;
            return self
                .rolled_back(latest, Unconfirmed::NoNewConnection(reason))
                .await;
        }
        let boot_failed = match self.confirm(&mut talk, made.id.clone()).await? {
            Fate::Confirmed { boot_failed } => boot_failed,
            Fate::RolledBack => {
                self.listed(Phase::Armed(latest));
                return self.rolled_back(latest, Unconfirmed::TooLate).await;
            }
            Fate::Gone => {
                self.unlisted();
                return Err(NodeError::Gone.into());
            }
        };
        self.listed(Phase::Confirmed);
        let notes = self.notes(settled, &made, boot_failed).await;
        Ok(Outcome::Changed { changes, notes })
    }

    /// Makes the change, armed to roll back by itself by `deadline`: from
    /// here the host is listed as rolling back, until the node is known to
    /// be as it was. A reply that cannot be read is never confirmed: the
    /// change is rolled back at once.
    async fn make_armed(
        &self,
        talk: &mut Conversation,
        fix: &Fix,
        deadline: Instant,
    ) -> Result<Made, Failure> {
        self.listed(Phase::Armed(deadline));
        let order = Order::Apply(render::change_code(self.policy, fix));
        let text = match self
            .session
            .timed(timing::Stage::Apply, talk_for(talk, order))
            .await
        {
            Ok(Heard::Said(text)) => text,
            Ok(Heard::Ended(out)) => {
                // The script failed and undid its own partial work.
                self.unlisted();
                out.success()?;
                return Err(NodeError::Silent {
                    expected: "what it changed",
                }
                .into());
            }
            // The link broke mid-step: the script carries on and arms its
            // rollback, so the host stays listed as rolling back.
            Err(link) => {
                let secs = confirm_secs(self.job);
                return Err(NodeError::LinkLost { link, secs }.into());
            }
        };
        match protocol::made(&text, self.before) {
            Ok(made) => Ok(made),
            Err(e) => {
                // Never confirm what cannot be read: roll it back now.
                if abort(talk).await.unwrap_or(false) {
                    self.unlisted();
                }
                Err(NodeError::from(e).into())
            }
        }
    }

    /// Never confirm what is not what was asked for: a change that left the
    /// chains other than asked is rolled back now.
    async fn check_as_asked(&self, talk: &mut Conversation, made: &Made) -> Result<(), Failure> {
        let left = protocol::left_in_chains(diff(self.policy, &made.after), self.policy.backend());
        if left.is_empty() {
            return Ok(());
        }
        if !abort(talk).await? {
            return Err(NodeError::RollbackMismatch {
                why: Unconfirmed::NotAsAsked(left),
            }
            .into());
        }
        self.unlisted();
        Err(NodeError::StillDiffers(left).into())
    }

    /// Proves a new connection gets through, within `window`.
    async fn prove_new_connection(&self, window: Duration) -> Result<(), String> {
        let fresh = self.session.fresh_connection(self.job.confirm_source, window);
        self.session.timed(timing::Stage::FreshConnection, fresh).await
    }

    /// Test-only: the pause before a confirmation ([`Job::hold_confirm`]).
    async fn hold(&self) {
        if !self.job.hold_confirm.is_zero() {
            tokio::time::sleep(self.job.hold_confirm).await;
        }
    }

    /// Confirms the pending change `id`, and reads what became of it: the
    /// host is listed as confirming until its caller says where it stands.
    async fn confirm(&self, talk: &mut Conversation, id: ChangeId) -> Result<Fate, Failure> {
        self.listed(Phase::Confirming);
        let fate = self
            .session
            .timed(timing::Stage::Confirm, tell(talk, Order::Confirm(id)))
            .await?;
        Ok(protocol::fate(&fate).map_err(NodeError::from)?)
    }

    /// What is worth saying about this run's change, once confirmed.
    async fn notes(&self, settled: Option<protocol::Settled>, made: &Made, boot_failed: bool) -> Vec<Note> {
        let mut notes = Vec::new();
        if settled == Some(protocol::Settled::RolledBack) {
            notes.push(Note::SettledRollback);
        }
        if made.persisted == Some(protocol::Persisted::Files) {
            notes.push(Note::FilesOnly);
        }
        if boot_failed {
            notes.push(Note::BootRestoreFailed);
        }
        notes.extend(bastion_outside(self.session, self.job).await);
        notes
    }

    /// The confirmation failed: the node rolls back by itself at `deadline`.
    /// Wait for it over the session we still hold (the ESTABLISHED rule
    /// keeps it), as the rollback stage, and check that the node is as it
    /// was; once it is, the host is no longer listed as rolling back.
    async fn rolled_back(&self, deadline: Instant, why: Unconfirmed) -> Result<Outcome, Failure> {
        let wait = waited_out(self.session, self.policy, self.before, deadline, why);
        let result = self.session.timed(timing::Stage::Rollback, wait).await;
        if result.is_ok() {
            self.unlisted();
        }
        result
    }

    /// Lists the host at `phase` in [`Job::phases`].
    fn listed(&self, phase: Phase) {
        self.job.set_phase(self.host, Some(phase));
    }

    /// Takes the host off [`Job::phases`]: the node has no change of this
    /// run's pending.
    fn unlisted(&self) {
        self.job.set_phase(self.host, None);
    }
}

/// Tells the script to roll this run's change back now: whether the node
/// says it is back as it was.
async fn abort(talk: &mut Conversation) -> Result<bool, Failure> {
    let reply = tell(talk, Order::Abort).await?;
    Ok(protocol::aborted(&reply).map_err(NodeError::from)?)
}

/// Gives the waiting script an order and reads its reply.
async fn talk_for(talk: &mut Conversation, order: Order) -> Result<Heard, HostError> {
    talk.say(&order.text()).await?;
    talk.until_line(END).await
}

/// As [`talk_for`], for a reply the node must give: its text.
async fn tell(talk: &mut Conversation, order: Order) -> Result<String, Failure> {
    match talk_for(talk, order).await? {
        Heard::Said(text) => Ok(text),
        Heard::Ended(out) => {
            out.success()?;
            Err(NodeError::Silent {
                expected: "what became of the change",
            }
            .into())
        }
    }
}

/// Never lock the operator out: the node must admit the address it sees
/// palisade connect from, after any NAT (`seen`, from the first step), on
/// its SSH `port`, arriving on `interface` (the interface the node's main
/// table routes `seen` by, when it has a route for it: see
/// [`Observed::interface_to`]). Its whole chain decides, not the set alone:
/// an operator outside the set whom a port open on the node's role, or an
/// accepted interface (a VPN), admits is not locked out. An interface that
/// is not known admits nobody here. The new-connection proof stands behind
/// this check whatever it says: a change whose next connection fails rolls
/// back. apply refuses a change that fails this, and plan reports the same
/// refusal.
pub(crate) fn admits_controller(
    policy: &Policy,
    seen: Option<IpAddr>,
    port: u16,
    interface: Option<&str>,
) -> Result<(), Refusal> {
    let packet = |seen| Packet {
        interface: interface.map(str::to_owned),
        ..Packet::ssh(seen, port)
    };
    match seen {
        Some(seen) if !policy.admits(&packet(seen)) => Err(Refusal::WouldLockOut { seen }),
        None => Err(Refusal::ControllerUnknown),
        Some(_) => Ok(()),
    }
}

/// The lockout check plan and apply share, for a host whose `changes` are
/// not empty (nothing to change locks nobody out, and costs no question to
/// the bastions): the node must admit where it sees palisade connect from
/// ([`admits_controller`]); with bastions, each one that is a node of the
/// inventory must also admit, by its own role policy, its client as it
/// sees it (the controller for the first, the hop before for the next), on
/// its port ([`bastion::admit_every_hop`]). Every host checks the
/// bastions, so a bastion that would lock the operator out stops the whole
/// fleet before any write. A bastion outside the inventory is only checked
/// as the next one (or the nodes) see it.
async fn lockout_check(
    session: &Session,
    job: &Job,
    node: &Node<'_>,
    changes: &[Change],
) -> Result<(), Refusal> {
    if changes.is_empty() {
        return Ok(());
    }
    let seen = node.seen;
    let interface = seen.and_then(|seen| node.before.interface_to(seen));
    admits_controller(&node.policy, seen, job.port, interface)?;
    let (Some(bastions), Some(via)) = (&job.bastions, session.bastion()) else {
        return Ok(());
    };
    bastion::admit_every_hop(bastions, via, &job.policies).await
}

/// The note for a host reached through a bastion outside the inventory.
async fn bastion_outside(session: &Session, job: &Job) -> Option<Note> {
    let (bastions, via) = (job.bastions.as_ref()?, session.bastion()?);
    bastion::some_hop_outside(bastions, via)
        .await
        .then_some(Note::BastionOutside)
}

impl Job {
    /// Records the node's mode, and what its audit sets hold (the table,
    /// or the sets, verify read: no process more on the node).
    fn note_audit(&self, host: &Host, before: &Observed) {
        let audit = match &before.nft {
            Some(table) => Audit {
                mode: table.mode(),
                recorded: table.recorded(),
            },
            None => {
                let (mode, recorded) = before.ipt_audit();
                Audit { mode, recorded }
            }
        };
        self.audits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.name().to_string(), audit);
    }

    fn set_phase(&self, host: &Host, phase: Option<Phase>) {
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        let name = host.name().to_string();
        match phase {
            Some(p) => phases.insert(name, p),
            None => phases.remove(&name),
        };
    }
}

async fn waited_out(
    session: &Session,
    policy: &Policy,
    before: &Observed,
    deadline: Instant,
    why: Unconfirmed,
) -> Result<Outcome, Failure> {
    let wait = deadline.saturating_duration_since(Instant::now());
    tokio::time::sleep(wait + Duration::from_millis(500)).await;
    for _ in 0..60 {
        let st = session.run(Privilege::Root, &render::status()).await?.success()?;
        match protocol::pending(&st.stdout).map_err(NodeError::from)? {
            protocol::Pending::RolledBack => break,
            // Only a checked rollback says rolled-back; a failed one is
            // tried again on the node, and said at once.
            protocol::Pending::RollbackFailed => return Err(NodeError::RollbackFailed.into()),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = observe(session, policy).await?;
    if !same_firewall(&after, before) {
        return Err(NodeError::RollbackMismatch { why }.into());
    }
    Ok(Outcome::RolledBack(why))
}

async fn observe(session: &Session, policy: &Policy) -> Result<Observed, Failure> {
    let out = session
        .run(Privilege::Root, &firewall::script(policy))
        .await?
        .success()?;
    firewall::parse(&out.stdout).map_err(|e| NodeError::from(e).into())
}

/// Whether the node's netfilter and boot files are as they were (a
/// rollback's check): the same sets, chains and files. What audit mode's
/// sets recorded is the traffic's, not the change's: packets move it.
fn same_firewall(a: &Observed, b: &Observed) -> bool {
    let table = |o: &Observed| o.nft.as_ref().map(crate::observe::nft::NftTable::unrecorded);
    a.v4.unrecorded() == b.v4.unrecorded()
        && a.v6.unrecorded() == b.v6.unrecorded()
        && table(a) == table(b)
        && a.restore_digest == b.restore_digest
        && a.unit_digest == b.unit_digest
        && a.unit_enabled == b.unit_enabled
}

/// Whether none of palisade's objects is on the node.
fn nothing_there(policy: &Policy, o: &Observed) -> bool {
    let (jump, guard) = (policy.jump(), policy.guard_jump());
    let clean = |f: &firewall::FamilyFacts| {
        f.set.is_none()
            && f.chain.is_none()
            && f.docker_chain.is_none()
            && f.guard.is_none()
            && !f.input.contains(&jump)
            && !f.prerouting.contains(&guard)
    };
    o.restore_digest.is_none()
        && o.unit_digest.is_none()
        && o.pending_rollback.is_none()
        && o.nft.is_none()
        && clean(&o.v4)
        && clean(&o.v6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyOptions, testing};

    fn policy(allow: &str) -> Policy {
        testing::for_sample_hosts(&PolicyOptions {
            persist: false,
            ..testing::options(allow)
        })
    }

    #[test]
    fn the_lockout_check_plan_and_apply_share() {
        let p = policy("203.0.113.0/24");
        assert!(admits_controller(&p, Some("203.0.113.9".parse().unwrap()), 22, None).is_ok());
        let lockout = admits_controller(&p, Some("198.18.0.1".parse().unwrap()), 22, None).unwrap_err();
        assert!(matches!(lockout, Refusal::WouldLockOut { .. }));
        assert!(matches!(
            admits_controller(&p, None, 22, None),
            Err(Refusal::ControllerUnknown)
        ));
        // plan and apply refuse alike, and keep the change they refused.
        let seen = Some("198.18.0.1".parse().unwrap());
        let refused = decide(
            &Observed::default(),
            vec![Change::PersistMissing],
            admits_controller(&p, seen, 22, None),
        );
        assert!(matches!(
            refused,
            Decision::Refuse(ref changes, Refusal::WouldLockOut { .. }) if changes == &[Change::PersistMissing]
        ));
        assert!(matches!(
            decide(
                &Observed::default(),
                Vec::new(),
                admits_controller(&p, seen, 22, None)
            ),
            Decision::Nothing
        ));
    }

    #[test]
    fn an_operator_a_port_open_to_everyone_admits_is_not_refused() {
        // Outside the set, but SSH is open to everyone on every role: the
        // operator's next connection gets in, so nothing is refused; on
        // another port it would not.
        let open = testing::for_sample_hosts(&PolicyOptions {
            open: vec!["all=tcp/22".parse().unwrap()],
            ..testing::options("203.0.113.0/24")
        })
        .for_role(Role::Agent);
        let seen = Some("198.18.0.1".parse().unwrap());
        assert!(admits_controller(&open, seen, 22, None).is_ok());
        assert!(matches!(
            admits_controller(&open, seen, 2222, None),
            Err(Refusal::WouldLockOut { .. })
        ));
    }

    #[test]
    fn an_operator_on_an_accepted_interface_is_not_refused() {
        // A VPN: the operator's address is in no list, but the node routes
        // it by wg0, which the whitelist accepts.
        let vpn = testing::for_sample_hosts(&PolicyOptions {
            interfaces: vec!["wg+".parse().unwrap()],
            ..testing::options("203.0.113.0/24")
        })
        .for_role(Role::Agent);
        let seen: IpAddr = "10.8.0.2".parse().unwrap();
        let node = Observed {
            routes: vec![
                firewall::Route {
                    interface: "eth0".into(),
                    net: "0.0.0.0/0".parse().unwrap(),
                },
                firewall::Route {
                    interface: "wg0".into(),
                    net: "10.8.0.0/24".parse().unwrap(),
                },
            ],
            ..Observed::default()
        };
        let interface = node.interface_to(seen);
        assert_eq!(interface, Some("wg0"));
        assert!(admits_controller(&vpn, Some(seen), 22, interface).is_ok());
        // Routed by the uplink (the default route only): not known, refused.
        let outside: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(node.interface_to(outside), None);
        assert!(admits_controller(&vpn, Some(outside), 22, node.interface_to(outside)).is_err());
    }
}
