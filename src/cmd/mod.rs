//! One file per command: each turns settings into a run of the stages and an
//! [`ExitStatus`]. Nothing here parses flags; nothing below here prints.

mod docs;
mod firewall;
mod inventory;
mod monitor;
mod ping;
mod retry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::engine::Operation;
use crate::inventory::{Host, Inventory};
use crate::report::{self, ExitStatus};
use crate::transport::ssh_config::{ForRun, FromFile};
use crate::transport::{BastionPath, Credentials, HostKeyChecking, KnownHosts, SshOptions};

/// Runs the command `cli` names to its end: the status says which exit
/// code the run earned; an error is bad input, found before any node was
/// touched.
pub async fn run(cli: Cli) -> Result<ExitStatus> {
    match &cli.command {
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man(args) => docs::man(args.dir.as_deref()),
        Command::Inventory(_) => inventory::run(&settings(&cli)?),
        Command::Ping(_) => ping::run(&settings(&cli)?).await,
        Command::Plan(_) => firewall::run(&settings(&cli)?, Operation::Plan).await,
        Command::Apply(_) => firewall::run(&settings(&cli)?, Operation::Apply).await,
        Command::Verify(_) => firewall::run(&settings(&cli)?, Operation::Verify).await,
        Command::Remove(_) => firewall::run(&settings(&cli)?, Operation::Remove).await,
    }
}

/// A node is a target for the transport by its SSH address.
impl crate::transport::Target for Host {
    fn address(&self) -> std::net::IpAddr {
        self.address()
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
/// local check happens here, before any node is contacted. ssh_config fills
/// in what flags and palisade.toml left open, for the `hosts` of this run.
fn ssh_options(settings: &Settings, hosts: &[Host]) -> Result<SshOptions> {
    let mut file = ssh_config(settings, hosts)?;
    let login = Login::settle(settings, &mut file)?;
    let route = Route::settle(settings, file);
    let credentials = credentials(login.key.as_deref(), login.certificate.as_deref())?;
    let hop_credentials = hop_credentials(route.jump.as_ref(), login.key.as_deref(), &credentials)?;
    let known_hosts = KnownHosts::load(&route.known_hosts)
        .with_context(|| format!("{}: cannot read known_hosts", route.known_hosts.display()))?;
    Ok(SshOptions {
        user: login.user,
        port: route.port,
        credentials,
        known_hosts: Arc::new(known_hosts),
        checking: route.checking,
        connect_timeout: route.connect_timeout,
        step_timeout: settings.step_timeout,
        retries: settings.retries,
        forks: settings.forks,
        jump: route.jump,
        hop_credentials,
        keepalive: route.keepalive,
    })
}

/// One SSH setting: the flag or palisade.toml (`given` names which, and
/// `settled` holds its value), else ssh_config, else the default already in
/// `settled`. `-v` says which, so an operator can tell why a value won.
fn pick<T: std::fmt::Debug>(what: &str, given: &Option<String>, settled: T, file: FromFile<T>) -> T {
    let (value, from) = match (given, file) {
        (Some(from), _) => (settled, from.clone()),
        (None, Some((v, at))) => (v, format!("ssh_config {at}")),
        (None, None) => (settled, "default".to_owned()),
    };
    tracing::info!(
        "ssh {what}: {} (from {})",
        report::terminal::escape(&format!("{value:?}")),
        report::terminal::escape(&from)
    );
    value
}

/// Who the run logs in as: the user, and the key and certificate to prove
/// it with (none of them loaded yet).
struct Login {
    user: String,
    key: Option<PathBuf>,
    certificate: Option<PathBuf>,
}

impl Login {
    /// Picks user, key and certificate, taking them out of `file`; refuses a
    /// user name from ssh_config that is not one (flags and palisade.toml
    /// were checked when read).
    fn settle(settings: &Settings, file: &mut ForRun) -> Result<Login> {
        let g = &settings.ssh_given;
        let user = pick("user", &g.user, settings.user.clone(), file.user.take());
        if !crate::config::is_login(&user) {
            bail!(
                "ssh_config: User {:?} is not a user name (1 to 64 letters, digits, '.', '_', '-' or '@')",
                crate::text::shorten(&user, 40)
            );
        }
        let key = file.key.take().map(|(k, at)| (Some(k), at));
        let key = pick("key", &g.key, settings.key.clone(), key);
        let certificate = file.certificate.take().map(|(c, at)| (Some(c), at));
        let certificate = pick(
            "certificate",
            &g.certificate,
            settings.certificate.clone(),
            certificate,
        );
        Ok(Login {
            user,
            key,
            certificate,
        })
    }
}

/// How the run reaches the nodes and trusts them: port, bastion path, host
/// keys, timeouts.
struct Route {
    port: u16,
    jump: Option<BastionPath>,
    known_hosts: PathBuf,
    checking: HostKeyChecking,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
}

impl Route {
    /// Picks the rest of the settings, after [`Login::settle`] so that `-v`
    /// lists them in the same order as ever.
    fn settle(settings: &Settings, file: ForRun) -> Route {
        let g = &settings.ssh_given;
        let port = pick("port", &g.port, settings.port, file.port);
        let jump = pick("jump", &g.jump, settings.jump.clone(), file.jump);
        let known_hosts = pick(
            "known_hosts",
            &g.known_hosts,
            settings.known_hosts.clone(),
            file.known_hosts,
        );
        let checking = pick(
            "host key checking",
            &g.checking,
            settings.host_key_checking,
            file.checking,
        );
        let connect_timeout = pick(
            "connect timeout",
            &g.connect_timeout,
            settings.connect_timeout,
            file.connect_timeout,
        );
        Route {
            port,
            jump,
            known_hosts,
            checking,
            connect_timeout,
            keepalive: keepalive(file.keepalive),
        }
    }
}

/// ssh_config's `ServerAliveInterval`, the one setting with no flag: `-v`
/// says when the file sets it; `None` leaves palisade's default.
fn keepalive(file: FromFile<Duration>) -> Option<Duration> {
    file.map(|(every, at)| {
        tracing::info!(
            "ssh keepalive: {every:?} (from ssh_config {})",
            report::terminal::escape(&at.to_string())
        );
        every
    })
}

/// How the run proves who it is: the key (with its certificate, if any),
/// loaded now so a bad one fails before any connection; else the ssh-agent.
/// A certificate without its key is refused (the agent's are used as is).
fn credentials(key: Option<&Path>, certificate: Option<&Path>) -> Result<Credentials> {
    Ok(match key {
        Some(path) => crate::transport::load_credentials(path, certificate).map_err(anyhow::Error::msg)?,
        None if let Some(cert) = certificate => bail!(
            "{}: a certificate needs the key it certifies: give --key (or ssh.key, or IdentityFile in \
             ssh_config); a certificate the ssh-agent holds (ssh-add KEY adds KEY-cert.pub with it) is used \
             without one",
            cert.display()
        ),
        None => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(sock) if !sock.is_empty() => Credentials::Agent(PathBuf::from(sock)),
            _ => bail!(
                "no SSH key: give --key (or ssh.key in the config, or IdentityFile in ssh_config), \
                 or run an ssh-agent (SSH_AUTH_SOCK)"
            ),
        },
    })
}

/// How to log in to each hop of the path: with the hop's own key from
/// ssh_config when it has one (loaded here, before any connection, like
/// the run's), else as to the nodes. `-v` says the path and each hop's key.
fn hop_credentials(
    jump: Option<&BastionPath>,
    run_key: Option<&Path>,
    run: &Credentials,
) -> Result<Vec<Credentials>> {
    let Some(jump) = jump else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(jump.hops.len());
    for (i, hop) in jump.hops.iter().enumerate() {
        let (credentials, shown) = match &hop.key {
            Some(path) if Some(path.as_path()) != run_key => (
                crate::transport::load_credentials(path, None)
                    .map_err(|e| anyhow!("{}: {e}", jump.label(i)))?,
                format!("key {}", path.display()),
            ),
            _ => (run.clone(), "the run's key or agent".to_owned()),
        };
        tracing::info!(
            "ssh jump path: {}, as {}",
            report::terminal::escape(&jump.label(i)),
            report::terminal::escape(&shown)
        );
        out.push(credentials);
    }
    Ok(out)
}

/// What the operator's ssh_config says for this run's hosts; nothing when
/// there is none to read.
fn ssh_config(settings: &Settings, hosts: &[Host]) -> Result<ForRun> {
    use crate::transport::ssh_config::{Given, Named, SshConfigFile};
    let Some((path, named)) = &settings.ssh_config else {
        return Ok(Default::default());
    };
    if !named && !path.exists() {
        return Ok(Default::default());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = SshConfigFile::load(path, home.as_deref()).map_err(|e| anyhow!("ssh_config {e}"))?;
    tracing::info!(
        "reading ssh_config {}",
        report::terminal::escape(&path.display().to_string())
    );
    let g = &settings.ssh_given;
    let given = Given {
        user: g.user.is_some(),
        key: g.key.is_some(),
        certificate: g.certificate.is_some(),
        port: g.port.is_some(),
        jump: g.jump.is_some(),
        known_hosts: g.known_hosts.is_some(),
        checking: g.checking.is_some(),
        connect_timeout: g.connect_timeout.is_some(),
    };
    let named: Vec<Named<'_>> = hosts
        .iter()
        .map(|h| Named {
            address: h.address().to_string(),
            name: h.name().as_str(),
        })
        .collect();
    file.for_run(&named, &settings.user, given)
        .map_err(|e| anyhow!("ssh_config {e}"))
}
