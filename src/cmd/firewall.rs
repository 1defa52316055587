//! `palisade apply`, `plan`, `verify` and `remove`: one run of the per-host
//! job over the fleet, and its report.

use std::sync::Arc;

use anyhow::Result;

use super::converge::{self, Job, Mode};
use crate::config::Settings;
use crate::inventory;
use crate::policy::Policy;
use crate::report::Verdict;
use crate::report::hosts::Report;
use crate::report::progress::Progress;
use crate::transport;

pub async fn run(settings: &Settings, mode: Mode) -> Result<Verdict> {
    let inv = inventory::load(&settings.source, &settings.roles)?;
    let policy = Policy::desired(&inv, &settings.policy)?;
    let opts = Arc::new(super::ssh_options(settings)?);
    let verb = match mode {
        Mode::Plan => "plan",
        Mode::Apply => "apply",
        Mode::Verify => "verify",
        Mode::Remove => "remove",
    };
    let progress = if settings.json {
        Progress::silent()
    } else {
        Progress::new(inv.hosts.len(), verb)
    };
    let job = Arc::new(Job {
        policy,
        user: settings.user.clone(),
        mode,
    });
    let outcomes = transport::fan_out(&inv.hosts, opts, &progress, move |session, _host| {
        converge::run(session, job.clone())
    })
    .await;
    let report = Report::new(outcomes);
    if settings.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(report.verdict())
}
