//! `palisade apply`, `plan`, `verify` and `remove`: one run of the per-host
//! job over the fleet, and its report. An interrupt (Ctrl-C, SIGTERM) stops
//! the run and says where every changed host stands: confirmed hosts keep
//! the new whitelist, unconfirmed ones roll back by themselves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::retry::Attempt;
use crate::config::Settings;
use crate::diff::Change;
use crate::engine::{self, Job, Operation, Phase, Phases};
use crate::inventory::{self, Host, Inventory, Lifecycle, Role};
use crate::policy::{self, FirewallBackend, Policy};
use crate::report::ExitStatus;
use crate::report::colour::{self, Paint, Stream};
use crate::report::hosts::{Report, Status};
use crate::report::progress::Progress;
use crate::report::terminal::{escape, escape_lines};
use crate::transport;

pub(crate) async fn run(settings: &Settings, operation: Operation) -> Result<ExitStatus> {
    let started = Instant::now();
    // First, so that a bad knob stops the run before anything else.
    let confirm_source = test_hook("PALISADE_TEST_CONFIRM_SOURCE")?;
    let hold_confirm = Duration::from_secs(test_hook("PALISADE_TEST_HOLD_CONFIRM")?.unwrap_or(0));
    super::monitor::check(&settings.monitor)?;
    let inv = inventory::load(&settings.source, &settings.roles)?;
    let (policy, policies) = whitelist(settings, &inv, operation)?;
    // Deposed objects are going away: every node admits them, none is changed.
    // --limit chooses the nodes worked on; the policy above admits them all.
    let (deposed, hosts): (Vec<Host>, Vec<Host>) = super::select(settings, &inv)?
        .into_iter()
        .partition(|h| h.lifecycle() == Lifecycle::Deposed);
    let opts = Arc::new(super::ssh_options(settings, &hosts)?);
    let progress = Progress::new(hosts.len(), operation.as_str(), settings.json);
    let job = Arc::new(Job {
        policies,
        user: settings.user.clone(),
        operation,
        confirm_timeout: settings.confirm_timeout,
        connect_timeout: settings.connect_timeout,
        phases: Arc::new(Mutex::new(Default::default())),
        choices: Arc::new(Mutex::new(Default::default())),
        audits: Arc::new(Mutex::new(Default::default())),
        confirm_source,
        hold_confirm,
        port: settings.port,
        // Matched against the whole inventory: a bastion may be a node
        // --limit leaves out, or a deposed one. The path the run takes,
        // from the flags or ssh_config.
        bastions: opts
            .jump
            .as_ref()
            .map(|j| engine::bastion::Bastions::new(j, &inv)),
    });
    let Some(outcomes) = work_on(&hosts, opts, &job, &progress).await else {
        return Ok(ExitStatus::HostsFailed);
    };
    let report = report(settings, &job, &policy, outcomes, deposed);
    publish(settings, operation, started, &report)
}

/// The whitelist, checked before any node is read: the policy, and each
/// role's.
fn whitelist(
    settings: &Settings,
    inv: &Inventory,
    operation: Operation,
) -> Result<(Policy, BTreeMap<Role, Policy>)> {
    let policy = Policy::desired(inv, &settings.policy)?;
    if policy.backend() == FirewallBackend::Nftables {
        crate::render::nft::check_names(&policy)?;
    }
    let policies = policy.by_role(inv);
    if matches!(operation, Operation::Plan | Operation::Apply) {
        // plan says what apply would do, and apply refuses this whitelist.
        if let Some(gap) = policy::private_gap(inv, &settings.policy) {
            if operation == Operation::Apply {
                bail!("{gap}; no node was changed");
            }
            bail!("{gap}; apply would refuse it, so plan read no node");
        }
        warn_closed_public_agents(inv, &policies);
    }
    Ok((policy, policies))
}

type Outcomes = Vec<transport::HostOutcome<Host, engine::Outcome, engine::Failure>>;

/// The job on every host, with the progress bar; `None` when an interrupt
/// stopped the run, having said where every changed host stands.
async fn work_on(
    hosts: &[Host],
    opts: Arc<transport::SshOptions>,
    job: &Arc<Job>,
    progress: &Progress,
) -> Option<Outcomes> {
    // The bar counts as failed what the exit code does: refused and rolled
    // back hosts too, not only the ones whose job failed.
    let done = |o: &transport::HostOutcome<Host, engine::Outcome, engine::Failure>| {
        let failed = o.result.as_ref().map_or(true, |r| Status::of_outcome(r).failed());
        progress.host_done(o, failed)
    };
    let work = transport::fan_out(hosts, opts, done, {
        let job = job.clone();
        move |session, host| engine::run(session, host, job.clone())
    });
    tokio::select! {
        outcomes = work => {
            progress.finish();
            Some(outcomes)
        }
        signal = interrupted() => {
            progress.finish();
            eprintln!("{}", escape_lines(&interrupt_report(signal, &job.phases, hosts.len())));
            None
        }
    }
}

/// The run's report: each host's outcome, what the nodes took under
/// `--backend auto` and, for verify, what their audit sets recorded; for a
/// plan of a first run, the whitelist too.
fn report(settings: &Settings, job: &Job, policy: &Policy, outcomes: Outcomes, deposed: Vec<Host>) -> Report {
    let operation = job.operation;
    let mut report = Report::new(operation.into(), outcomes, deposed);
    report.note_choices(&job.choices.lock().unwrap_or_else(|e| e.into_inner()));
    if operation == Operation::Verify {
        report.note_audits(
            &job.audits.lock().unwrap_or_else(|e| e.into_inner()),
            settings.flows,
        );
    }
    let first_run = report.hosts.iter().flat_map(|r| &r.changes).any(|c| {
        matches!(
            c,
            Change::SetMissing { .. } | Change::GuardMissing { .. } | Change::NftTableMissing
        )
    });
    if operation == Operation::Plan && first_run {
        report.whitelist = Some(policy.whitelist_summary(&job.policies));
    }
    report
}

/// Prints the report, and records the run in the retry file and the
/// monitoring files, which say what the run did even when its report
/// could not be written.
fn publish(
    settings: &Settings,
    operation: Operation,
    started: Instant,
    report: &Report,
) -> Result<ExitStatus> {
    let text = if settings.json {
        format!("{}\n", report.json())
    } else {
        report.table_with(
            Paint {
                on: colour::enabled(Stream::Stdout),
            },
            settings.verbose,
        )
    };
    let printed = crate::report::output::print(&text);
    let ran: Vec<Attempt> = report
        .hosts
        .iter()
        .filter(|h| h.status != Status::Deposed)
        .map(|h| Attempt {
            name: h.name.clone(),
            failed: h.status.failed(),
        })
        .collect();
    super::retry::record(settings, operation.as_str(), &ran);
    let run = crate::report::monitor::Run {
        ended: std::time::SystemTime::now(),
        duration: started.elapsed(),
        exit_code: report.exit_status().code(),
    };
    let monitored = super::monitor::write(&settings.monitor, report, &run);
    printed?;
    monitored?;
    Ok(report.exit_status())
}

/// Public agents exist to serve the world (Marathon-LB, Edge-LB on 80 and
/// 443): whitelisting them with nothing open takes a DC/OS cluster's public
/// services offline, so say so before it happens.
fn warn_closed_public_agents(inv: &Inventory, policies: &BTreeMap<Role, Policy>) {
    let public: Vec<&str> = inv
        .hosts
        .iter()
        .filter(|h| h.role() == Role::PublicAgent)
        .map(|h| h.name().as_str())
        .collect();
    let open = policies.get(&Role::PublicAgent).map_or(0, |p| p.open().len());
    if !public.is_empty() && open == 0 {
        eprintln!(
            "palisade: warning: nothing is open to everyone on the {} public agent(s) ({}): only the whitelist \
             will reach their services; to keep DC/OS public services up, add --open public-agent=tcp/80,tcp/443",
            public.len(),
            escape(&public.join(", "))
        );
    }
}

/// A knob for the lab tests only (they cannot otherwise make a confirmation
/// fail or land late); not part of the interface. Only a build with the
/// `lab-hooks` feature, which the lab's builds enable, reads it: in a build
/// for use, no variable in the environment can change what a run does.
#[cfg(feature = "lab-hooks")]
fn test_hook<T: std::str::FromStr>(name: &str) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    use anyhow::Context;
    match std::env::var(name) {
        Ok(v) => Ok(Some(v.parse().with_context(|| format!("{name}={v:?}"))?)),
        Err(_) => Ok(None),
    }
}

/// Without the `lab-hooks` feature, no test knob is read (see above).
#[cfg(not(feature = "lab-hooks"))]
fn test_hook<T>(_name: &str) -> Result<Option<T>> {
    Ok(None)
}

async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = term.recv() => "terminated",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "interrupted"
}

fn interrupt_report(signal: &str, phases: &Phases, total: usize) -> String {
    let phases = phases.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let named = |phase: Phase| -> Vec<&str> {
        phases
            .iter()
            .filter(|(_, p)| **p == phase)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let confirmed = named(Phase::Confirmed);
    let confirming = named(Phase::Confirming);
    let armed: Vec<String> = phases
        .iter()
        .filter_map(|(n, p)| match p {
            Phase::Armed(at) => {
                let left = at.saturating_duration_since(now).as_secs();
                Some(format!("{n} (in {left} s)"))
            }
            Phase::Confirming | Phase::Confirmed => None,
        })
        .collect();
    let mut out = format!("palisade: {signal}; stopped before finishing.\n");
    out += &format!("  confirmed, keep the new whitelist: {}\n", list(&confirmed));
    if !confirming.is_empty() {
        out += &format!(
            "  confirmation sent, answer not read: confirmed if it reached the node before its deadline \
             (check with verify): {}\n",
            list(&confirming)
        );
    }
    out += &format!(
        "  changed but not confirmed, roll back by themselves: {}\n",
        list(&armed)
    );
    out += &format!(
        "  not changed: {} host(s)\nRun the same command again to converge the fleet.",
        total.saturating_sub(phases.len())
    );
    out
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.iter().map(|i| i.as_ref()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_says_where_each_changed_host_stands() {
        let phases: Phases = Arc::new(Mutex::new(BTreeMap::from([
            ("a".to_owned(), Phase::Confirmed),
            ("b".to_owned(), Phase::Confirming),
            (
                "c".to_owned(),
                Phase::Armed(Instant::now() + Duration::from_secs(30)),
            ),
        ])));
        let text = interrupt_report("interrupted", &phases, 5);
        assert!(text.contains("confirmed, keep the new whitelist: a\n"), "{text}");
        // Sent, not yet answered: neither confirmed nor rolling back for sure.
        assert!(
            text.contains("confirmation sent, answer not read: confirmed if it reached the node before its deadline (check with verify): b\n"),
            "{text}"
        );
        assert!(
            text.contains("roll back by themselves: c (in 29 s)")
                || text.contains("roll back by themselves: c (in 30 s)"),
            "{text}"
        );
        assert!(text.contains("not changed: 2 host(s)"), "{text}");
    }
}
