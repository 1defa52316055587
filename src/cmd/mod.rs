//! One file per command: each turns settings into a run of the stages and a
//! [`Verdict`]. Nothing here parses flags; nothing below here prints.

mod converge;
mod firewall;
mod inventory;
mod ping;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use self::converge::Mode;
use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::report::Verdict;
use crate::transport::{Credentials, KnownHosts, SshOptions};

pub async fn run(cli: Cli) -> Result<Verdict> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Inventory => inventory::run(&settings),
        Command::Ping => ping::run(&settings).await,
        Command::Plan => firewall::run(&settings, Mode::Plan).await,
        Command::Apply => firewall::run(&settings, Mode::Apply).await,
        Command::Verify => firewall::run(&settings, Mode::Verify).await,
        Command::Remove => firewall::run(&settings, Mode::Remove).await,
    }
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
