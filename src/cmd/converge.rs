//! The per-host job behind apply, plan, verify and remove: probe and observe
//! (one exec), compare, and (for apply and remove) change and check. One
//! connection per host; every step on it is a constant command with its
//! script on stdin.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::diff::{Change, diff};
use crate::inventory::{Host, Role};
use crate::observe::firewall::{self, Observed};
use crate::observe::probe;
use crate::policy::Policy;
use crate::render;
use crate::report::hosts::{HostResult, Status};
use crate::timing;
use crate::transport::{HostError, Privilege, Session};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
    Verify,
    Remove,
}

pub struct Job {
    /// The policy of each role the fleet has (the ports open differ).
    pub policies: BTreeMap<Role, Policy>,
    pub user: String,
    pub mode: Mode,
    /// How long a node waits for confirmation before rolling back.
    pub confirm_timeout: Duration,
    /// How long the fresh confirmation connection may take.
    pub connect_timeout: Duration,
    /// Where each host stands, for the report on Ctrl-C.
    pub phases: Phases,
    /// Test-only: the local address the confirmation connection leaves from.
    pub confirm_source: Option<IpAddr>,
    /// Test-only: a pause between the change and its confirmation.
    pub hold_confirm: Duration,
}

/// Where a changed host stands in the confirm protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Changed, not yet confirmed: it rolls back by itself at this time.
    Armed(SystemTime),
    Confirmed,
}

pub type Phases = Arc<Mutex<BTreeMap<String, Phase>>>;

pub async fn run(session: Session, host: Host, job: Arc<Job>) -> Result<HostResult, HostError> {
    let policy = job
        .policies
        .get(&host.role)
        .ok_or_else(|| HostError::Remote(format!("no policy for role {}", host.role)))?;
    // One exec: that sudo works, where we connect from, and the node's state.
    let read = firewall::script(policy);
    let first = session.run(Privilege::RootSeeingOrigin, &read);
    let first = probe::as_root(session.timed(timing::Phase::Observe, first).await?, &job.user)?;
    let seen = firewall::controller_address(&first.stdout);
    let before = firewall::parse(&first.stdout).map_err(|e| HostError::Remote(e.to_string()))?;
    if !before.missing_tools.is_empty() {
        let missing = before.missing_tools.join(", ");
        return Err(HostError::Remote(format!("missing on the node: {missing}")));
    }
    if job.mode != Mode::Remove
        && let Some((accepted, uplink)) = policy.wide_interfaces(&before.uplinks).first()
    {
        return Err(HostError::Remote(format!(
            "the whitelist accepts interface {accepted}, which takes in {uplink}, this node's uplink: \
             it would admit everyone; name the container interfaces exactly (--interface)"
        )));
    }
    match job.mode {
        Mode::Verify => {
            if nothing_there(policy, &before) {
                return Ok(HostResult::new(Status::Absent, Vec::new()));
            }
            let changes = diff(policy, &before);
            let status = if changes.is_empty() {
                Status::Ok
            } else {
                Status::Drift
            };
            Ok(HostResult::new(status, changes))
        }
        Mode::Plan => {
            let changes = diff(policy, &before);
            if changes.is_empty() {
                return Ok(HostResult::new(Status::Unchanged, changes));
            }
            if let Err(refusal) = admits_controller(policy, seen) {
                return Ok(refused(changes, &refusal));
            }
            Ok(HostResult::new(Status::WouldChange, changes))
        }
        Mode::Apply => {
            let changes = diff(policy, &before);
            if changes.is_empty() {
                return Ok(HostResult::new(Status::Unchanged, changes));
            }
            if let Err(refusal) = admits_controller(policy, seen) {
                return Ok(refused(changes, &refusal));
            }
            if let [Change::Unconfirmed { .. }] = changes.as_slice() {
                // An interrupted run left the node as wanted but unconfirmed:
                // confirm it now, while it is still there.
                let window = job.connect_timeout.min(Duration::from_secs(2));
                let fresh = session.fresh_banner(job.confirm_source, window);
                if let Err(reason) = session.timed(timing::Phase::FreshConnection, fresh).await {
                    return Err(HostError::Remote(format!(
                        "{reason}; the unconfirmed change stays pending and rolls back by itself"
                    )));
                }
                let script = firewall::confirm_and_read(policy);
                let confirm = session.run(Privilege::Root, &script);
                let confirmed = session.timed(timing::Phase::Confirm, confirm).await?.success()?;
                if !has_line(&confirmed.stdout, "state=confirmed") {
                    return Err(HostError::Remote(
                        "the pending change rolled back before it could be confirmed; run apply again".into(),
                    ));
                }
                job.set_phase(&host, Some(Phase::Confirmed));
                let after =
                    firewall::parse(&confirmed.stdout).map_err(|e| HostError::Remote(e.to_string()))?;
                let left = diff(policy, &after);
                if !left.is_empty() {
                    return Err(still_differs(&left));
                }
                let mut result = HostResult::new(Status::Changed, changes);
                result
                    .notes
                    .push("confirmed a change an interrupted run had left unconfirmed".into());
                return Ok(result);
            }
            let secs = u32::try_from(job.confirm_timeout.as_secs()).unwrap_or(u32::MAX);
            let deadline = SystemTime::now() + job.confirm_timeout;
            job.set_phase(&host, Some(Phase::Armed(deadline)));
            let script = render::apply(policy, secs);
            let apply = session.run(Privilege::Root, &script);
            let out = match session.timed(timing::Phase::Apply, apply).await {
                Ok(out) => match out.success() {
                    Ok(out) => out,
                    Err(e) => {
                        // The script failed and undid its own partial work.
                        job.set_phase(&host, None);
                        return Err(e);
                    }
                },
                // The link broke mid-step: the script carries on and arms its
                // rollback, so the host stays listed as rolling back.
                // (The node's own deadline counts from when it armed, after
                // preparing: the wait below measures from the step's end.)
                Err(e) => {
                    return Err(HostError::Remote(format!(
                        "{e}; if the change reached the node, it was not confirmed and rolls back by itself \
                         within {secs}s"
                    )));
                }
            };
            // The node armed its timer before the step ended: it rolls back
            // by this time at the latest.
            let latest = SystemTime::now() + job.confirm_timeout;
            if !job.hold_confirm.is_zero() {
                tokio::time::sleep(job.hold_confirm).await;
            }
            // Only a confirmation that lands before the deadline means
            // anything: a late one would race the rollback (a dropped SYN is
            // retried and gets through once the node has rolled back).
            let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
            let window = job
                .connect_timeout
                .min(left.saturating_sub(Duration::from_secs(2)));
            let fresh = session.fresh_banner(job.confirm_source, window);
            if let Err(reason) = session.timed(timing::Phase::FreshConnection, fresh).await {
                let wait = rolled_back(&session, policy, &before, latest, reason);
                return session.timed(timing::Phase::Rollback, wait).await;
            }
            let script = firewall::confirm_and_read(policy);
            let confirm = session.run(Privilege::Root, &script);
            let confirmed = session.timed(timing::Phase::Confirm, confirm).await?.success()?;
            if has_line(&confirmed.stdout, "state=rolled-back") {
                let reason = "the confirmation came too late: the node had started rolling back".to_owned();
                let wait = rolled_back(&session, policy, &before, latest, reason);
                return session.timed(timing::Phase::Rollback, wait).await;
            }
            if !has_line(&confirmed.stdout, "state=confirmed") {
                job.set_phase(&host, None);
                return Err(HostError::Remote(
                    "the change was no longer pending on the node when palisade confirmed it (rebooted, or \
                     removed by another run?); run apply again"
                        .into(),
                ));
            }
            job.set_phase(&host, Some(Phase::Confirmed));
            let after = firewall::parse(&confirmed.stdout).map_err(|e| HostError::Remote(e.to_string()))?;
            let left = diff(policy, &after);
            if !left.is_empty() {
                return Err(still_differs(&left));
            }
            let mut result = HostResult::new(Status::Changed, changes);
            if out.stdout.lines().any(|l| l == "persist=files") {
                result.notes.push(
                    "boot restore not installed (no systemd): rules written to /var/lib/palisade only".into(),
                );
            }
            Ok(result)
        }
        Mode::Remove => {
            if nothing_there(policy, &before) {
                return Ok(HostResult::new(Status::Absent, Vec::new()));
            }
            let script = render::remove(policy);
            let remove = session.run(Privilege::Root, &script);
            session.timed(timing::Phase::Remove, remove).await?.success()?;
            let after = session
                .timed(timing::Phase::Observe, observe(&session, policy))
                .await?;
            if !nothing_there(policy, &after) {
                return Err(HostError::Remote(
                    "palisade's objects are still on the node after remove".into(),
                ));
            }
            Ok(HostResult::new(Status::Removed, Vec::new()))
        }
    }
}

/// Never lock the operator out: the node must admit the address it sees
/// palisade connect from, after any NAT (`seen`, from the first step). apply
/// refuses a change that fails this, and plan reports the same refusal.
pub fn admits_controller(policy: &Policy, seen: Option<IpAddr>) -> Result<(), HostError> {
    match seen {
        Some(seen) if !policy.covers(seen) => Err(HostError::WouldLockOut { seen }),
        None => Err(HostError::ControllerUnknown),
        Some(_) => Ok(()),
    }
}

/// A host whose change palisade refuses, with the change it would have
/// made: the same row from plan and from apply.
fn refused(changes: Vec<Change>, refusal: &HostError) -> HostResult {
    let mut result = HostResult::new(Status::of_error(refusal), changes);
    result.error = Some(refusal.to_string());
    result
}

impl Job {
    fn set_phase(&self, host: &Host, phase: Option<Phase>) {
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        let name = host.name.to_string();
        match phase {
            Some(p) => phases.insert(name, p),
            None => phases.remove(&name),
        };
    }
}

/// The confirmation failed: the node rolls back by itself at `deadline`.
/// Wait for it over the session we still hold (the ESTABLISHED rule keeps
/// it), and check that the node is as it was.
async fn rolled_back(
    session: &Session,
    policy: &Policy,
    before: &Observed,
    deadline: SystemTime,
    reason: String,
) -> Result<HostResult, HostError> {
    let wait = deadline.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(500)).await;
    for _ in 0..60 {
        let st = session.run(Privilege::Root, &render::status()).await?.success()?;
        if st.stdout.contains("state=rolled-back") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = observe(session, policy).await?;
    if after != *before {
        return Err(HostError::Remote(format!(
            "{reason}; the node rolled back, but does not match its state before the change"
        )));
    }
    let mut result = HostResult::new(Status::RolledBack, Vec::new());
    result.error = Some(format!("{reason}; the node rolled back to its previous state"));
    Ok(result)
}

async fn observe(session: &Session, policy: &Policy) -> Result<Observed, HostError> {
    let out = session
        .run(Privilege::Root, &firewall::script(policy))
        .await?
        .success()?;
    firewall::parse(&out.stdout).map_err(|e| HostError::Remote(e.to_string()))
}

/// Whether none of palisade's objects is on the node.
fn nothing_there(policy: &Policy, o: &Observed) -> bool {
    let jump = policy.jump();
    let clean = |f: &firewall::FamilyFacts| {
        f.set.is_none() && f.chain.is_none() && f.docker_chain.is_none() && !f.input.contains(&jump)
    };
    o.restore_digest.is_none()
        && o.unit_digest.is_none()
        && o.pending_rollback.is_none()
        && clean(&o.v4)
        && clean(&o.v6)
}

/// Whether the step printed exactly this line.
fn has_line(stdout: &str, line: &str) -> bool {
    stdout.lines().any(|l| l == line)
}

fn still_differs(left: &[Change]) -> HostError {
    let text: Vec<String> = left.iter().map(|c| c.to_string()).collect();
    HostError::Remote(format!("the node still differs after apply: {}", text.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyOptions;

    fn policy(allow: &str) -> Policy {
        let inv = crate::inventory::load(
            &crate::inventory::Source::Static(
                concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml").into(),
            ),
            &Default::default(),
        )
        .unwrap();
        Policy::desired(
            &inv,
            &PolicyOptions {
                public_only: false,
                open: vec![],
                allow: vec![allow.parse().unwrap()],
                extra: vec![],
                resolvers: vec![],
                interfaces: vec![],
                set4: "palisade4".parse().unwrap(),
                set6: "palisade6".parse().unwrap(),
                chain: "PALISADE".parse().unwrap(),
                docker_user: false,
                persist: false,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_lockout_check_plan_and_apply_share() {
        let p = policy("203.0.113.0/24");
        assert!(admits_controller(&p, Some("203.0.113.9".parse().unwrap())).is_ok());
        let lockout = admits_controller(&p, Some("198.18.0.1".parse().unwrap())).unwrap_err();
        assert!(matches!(lockout, HostError::WouldLockOut { .. }));
        assert_eq!(Status::of_error(&lockout), Status::Refused);
        let unknown = admits_controller(&p, None).unwrap_err();
        assert_eq!(Status::of_error(&unknown), Status::Refused);
        // The row keeps the change it refused, and says why.
        let row = refused(vec![Change::PersistMissing], &refusal_of("198.18.0.1"));
        assert_eq!(row.status, Status::Refused);
        assert_eq!(row.changes, [Change::PersistMissing]);
        assert!(row.error.unwrap().contains("add it with --allow 198.18.0.1"));
    }

    fn refusal_of(seen: &str) -> HostError {
        HostError::WouldLockOut {
            seen: seen.parse().unwrap(),
        }
    }
}
