//! `palisade ping`: can palisade do its job on every node? Changes nothing.

use std::sync::Arc;

use anyhow::Result;

use super::retry::Attempt;
use crate::config::Settings;
use crate::inventory;
use crate::observe::probe;
use crate::report::ExitStatus;
use crate::report::colour::{self, Paint, Stream};
use crate::report::hosts::Status;
use crate::report::ping::Report;
use crate::report::progress::Progress;
use crate::timing::Stage;
use crate::transport;

pub(crate) async fn run(settings: &Settings) -> Result<ExitStatus> {
    let inv = inventory::load(&settings.source, &settings.roles)?;
    let hosts = super::select(settings, &inv)?;
    let opts = Arc::new(super::ssh_options(settings, &hosts)?);
    let progress = Progress::new(hosts.len(), "ping", settings.json);
    let user = opts.user.clone();
    let outcomes = transport::fan_out(
        &hosts,
        opts,
        |o| progress.host_done(o, o.result.is_err()),
        move |session, _host| {
            let user = user.clone();
            async move { session.timed(Stage::Probe, probe::run(&session, &user)).await }
        },
    )
    .await;
    progress.finish();
    let report = Report::new(outcomes, settings.policy.backend);
    let text = if settings.json {
        format!("{}\n", report.json())
    } else {
        report.table(Paint {
            on: colour::enabled(Stream::Stdout),
        })
    };
    let printed = crate::report::output::print(&text);
    let ran: Vec<Attempt> = report
        .hosts
        .iter()
        .map(|h| Attempt {
            name: h.name.clone(),
            failed: h.status != Status::Ok,
        })
        .collect();
    super::retry::record(settings, "ping", &ran);
    // The retry file says what the run did even when its report could not be
    // written.
    printed?;
    Ok(if report.all_ok() {
        ExitStatus::Ok
    } else {
        ExitStatus::HostsFailed
    })
}
