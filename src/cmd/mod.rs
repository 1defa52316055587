//! One file per command: each turns settings into a run of the stages and a
//! [`Verdict`]. Nothing here parses flags; nothing below here prints.

mod docs;
mod firewall;
mod inventory;
mod ping;
mod retry;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::engine::Mode;
use crate::inventory::{Host, Inventory};
use crate::report::{self, Verdict};
use crate::transport::{Credentials, KnownHosts, SshOptions};

pub async fn run(cli: Cli) -> Result<Verdict> {
    match &cli.command {
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man(args) => docs::man(args.dir.as_deref()),
        Command::Inventory(_) => inventory::run(&settings(&cli)?),
        Command::Ping(_) => ping::run(&settings(&cli)?).await,
        Command::Plan(_) => firewall::run(&settings(&cli)?, Mode::Plan).await,
        Command::Apply(_) => firewall::run(&settings(&cli)?, Mode::Apply).await,
        Command::Verify(_) => firewall::run(&settings(&cli)?, Mode::Verify).await,
        Command::Remove(_) => firewall::run(&settings(&cli)?, Mode::Remove).await,
    }
}

/// A node is a target for the transport by its SSH address.
impl crate::transport::Target for Host {
    fn address(&self) -> std::net::IpAddr {
        self.address
    }
}

/// The config file with the command's flags laid over it.
fn settings(cli: &Cli) -> Result<Settings> {
    let flags = cli
        .flags()
        .ok_or_else(|| anyhow!("this command reads no fleet"))?;
    Settings::resolve(&flags)
}

/// The hosts this run works on: the fleet, or what `--limit` selects of it.
/// The caller still computes the whitelist from the whole `inv`.
fn select(settings: &Settings, inv: &Inventory) -> Result<Vec<Host>> {
    let Some(limit) = &settings.limit else {
        return Ok(inv.hosts.clone());
    };
    let selection = limit.select(&inv.hosts)?;
    for pattern in &selection.unmatched {
        eprint!("{}", report::limit::unmatched(pattern));
    }
    if !settings.json {
        eprint!(
            "{}",
            report::limit::selected(selection.hosts.len(), inv.hosts.len())
        );
    }
    Ok(selection.hosts)
}

/// The transport's options, with the key loaded and known_hosts read: every
/// local check happens here, before any node is contacted.
fn ssh_options(settings: &Settings) -> Result<SshOptions> {
    let credentials = match &settings.key {
        Some(path) => Credentials::Key(Arc::new(
            crate::transport::load_key(path).map_err(anyhow::Error::msg)?,
        )),
        None => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(sock) if !sock.is_empty() => Credentials::Agent(PathBuf::from(sock)),
            _ => bail!(
                "no SSH key: give --key (or ssh.key in the config), or run an ssh-agent (SSH_AUTH_SOCK)"
            ),
        },
    };
    let known_hosts = KnownHosts::load(&settings.known_hosts)
        .with_context(|| format!("{}: cannot read known_hosts", settings.known_hosts.display()))?;
    Ok(SshOptions {
        user: settings.user.clone(),
        port: settings.port,
        credentials,
        known_hosts: Arc::new(known_hosts),
        checking: settings.host_key_checking,
        connect_timeout: settings.connect_timeout,
        step_timeout: settings.step_timeout,
        retries: settings.retries,
        forks: settings.forks,
        jump: settings.jump.clone(),
    })
}
