//! The per-host job behind apply, plan, verify and remove: probe, observe,
//! compare, and (for apply and remove) change and check. One connection per
//! host; every step on it is a constant command with its script on stdin.

use std::sync::Arc;

use crate::diff::{Change, diff};
use crate::observe::firewall::{self, Observed};
use crate::observe::probe;
use crate::policy::Policy;
use crate::render;
use crate::report::hosts::{HostResult, Status};
use crate::transport::{HostError, Privilege, Session};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
    Verify,
    Remove,
}

pub struct Job {
    pub policy: Policy,
    pub user: String,
    pub mode: Mode,
}

pub async fn run(session: Session, job: Arc<Job>) -> Result<HostResult, HostError> {
    let probe = probe::run(&session, &job.user).await?;
    let missing = probe.missing();
    if !missing.is_empty() {
        return Err(HostError::Remote(format!(
            "missing on the node: {}",
            missing.join(", ")
        )));
    }
    let policy = &job.policy;
    let before = observe(&session, policy).await?;
    match job.mode {
        Mode::Verify | Mode::Plan => {
            let changes = diff(policy, &before);
            let status = match (job.mode, changes.is_empty()) {
                (Mode::Verify, true) => Status::Ok,
                (Mode::Verify, false) => Status::Drift,
                (_, true) => Status::Unchanged,
                (_, false) => Status::WouldChange,
            };
            Ok(HostResult::new(status, changes))
        }
        Mode::Apply => {
            let changes = diff(policy, &before);
            if changes.is_empty() {
                return Ok(HostResult::new(Status::Unchanged, changes));
            }
            // Never lock the operator out: the node must admit the address it
            // sees us connect from, after any NAT.
            match probe.controller_address {
                Some(seen) if !policy.covers(seen) => return Err(HostError::WouldLockOut { seen }),
                None => return Err(HostError::ControllerUnknown),
                Some(_) => {}
            }
            let out = session
                .run(Privilege::Root, &render::apply(policy))
                .await?
                .success()?;
            let after = observe(&session, policy).await?;
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
                return Ok(HostResult::new(Status::Unchanged, Vec::new()));
            }
            session
                .run(Privilege::Root, &render::remove(policy))
                .await?
                .success()?;
            let after = observe(&session, policy).await?;
            if !nothing_there(policy, &after) {
                return Err(HostError::Remote(
                    "palisade's objects are still on the node after remove".into(),
                ));
            }
            Ok(HostResult::new(Status::Removed, Vec::new()))
        }
    }
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
    o.restore_digest.is_none() && o.unit_digest.is_none() && clean(&o.v4) && clean(&o.v6)
}

fn still_differs(left: &[Change]) -> HostError {
    let text: Vec<String> = left.iter().map(|c| c.to_string()).collect();
    HostError::Remote(format!("the node still differs after apply: {}", text.join("; ")))
}
