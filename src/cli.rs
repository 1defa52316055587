//! The command line, as close to the flags as possible: parsing and nothing
//! else. `config::Settings` merges these with `palisade.toml`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use std::num::NonZeroUsize;

use crate::inventory::RoleRule;
use crate::net::{ChainName, IfName, Net, SetName};
use crate::policy::{DEFAULT_INTERFACES, DEFAULT_RESOLVERS, FirewallBackend, Opening};
use crate::transport::{BastionPath, HostKeyChecking};

// palisade's defaults, in one place: the flags' help text shows them, and
// `config::Settings::resolve` falls back to them (config reads the command
// line, never the other way round).
pub(crate) const DEFAULT_CONFIG: &str = "palisade.toml";

pub(crate) const DEFAULT_STATE: &str = "terraform.tfstate";
pub(crate) const DEFAULT_USER: &str = "core";
pub(crate) const DEFAULT_FORKS: NonZeroUsize = NonZeroUsize::new(64).expect("64 is not zero");
pub(crate) const DEFAULT_PORT: u16 = 22;
pub(crate) const DEFAULT_HOST_KEY_CHECKING: HostKeyChecking = HostKeyChecking::AcceptNew;
/// Seconds.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: u64 = 10;
/// Seconds.
pub(crate) const DEFAULT_STEP_TIMEOUT: u64 = 120;
pub(crate) const DEFAULT_RETRIES: u32 = 2;
/// Seconds.
pub(crate) const DEFAULT_CONFIRM_TIMEOUT: u64 = 60;
pub(crate) const DEFAULT_SET4: &str = "palisade4";
pub(crate) const DEFAULT_SET6: &str = "palisade6";
pub(crate) const DEFAULT_CHAIN: &str = "PALISADE";

/// Lock a bare-metal cluster down to an IP whitelist, over SSH, with no agent.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, propagate_version = true, after_help = MAIN_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    #[command(flatten)]
    /// The flags every command takes; `main` reads `-v` before a command runs.
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the fleet: every node, its role and all its addresses.
    #[command(after_help = INVENTORY_HELP)]
    Inventory(InventoryArgs),
    /// Check that every node is reachable, logs in, has sudo, ipset and iptables.
    #[command(after_help = PING_HELP)]
    Ping(PingArgs),
    /// Show what `apply` would change on each node, changing nothing.
    #[command(after_help = PLAN_HELP)]
    Plan(PlanArgs),
    /// Push the whitelist to every node.
    #[command(after_help = APPLY_HELP)]
    Apply(ApplyArgs),
    /// Audit every node against the whitelist; read-only.
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Take palisade's firewall off every node.
    #[command(after_help = REMOVE_HELP)]
    Remove(RemoveArgs),
    /// Print a shell completion script on stdout.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// Print the manual page, or write one page per command into a directory.
    #[command(after_help = MAN_HELP)]
    Man(ManArgs),
}

/// The flags a command takes, by group. A group the command does not take
/// is `None`: the config file and palisade's defaults fill it in.
#[derive(Debug)]
pub(crate) struct Flags<'a> {
    pub(crate) global: &'a GlobalArgs,
    pub(crate) target: &'a TargetArgs,
    pub(crate) ssh: Option<&'a SshArgs>,
    pub(crate) firewall: Option<&'a FirewallArgs>,
    pub(crate) whitelist: Option<&'a WhitelistArgs>,
    /// plan and apply: `--public-only`.
    pub(crate) public_only: bool,
    /// apply only.
    pub(crate) confirm_timeout: Option<u64>,
    /// verify only: the files a monitored run writes.
    pub(crate) monitor: Option<&'a MonitorArgs>,
    /// ping only: the backend whose tools to check (the other commands
    /// have it in `firewall`).
    pub(crate) backend: Option<crate::policy::FirewallBackend>,
    /// verify only: `--flows`.
    pub(crate) flows: bool,
}

impl Cli {
    /// The flags of a command that reads the fleet; `None` for the commands
    /// that only describe palisade itself (completions, man).
    pub(crate) fn flags(&self) -> Option<Flags<'_>> {
        let global = &self.global;
        let flags = |target, ssh| Flags {
            global,
            target,
            ssh,
            firewall: None,
            whitelist: None,
            public_only: false,
            confirm_timeout: None,
            monitor: None,
            backend: None,
            flows: false,
        };
        Some(match &self.command {
            Command::Inventory(a) => flags(&a.target, None),
            Command::Ping(a) => Flags {
                backend: a.backend,
                ..flags(&a.target, Some(&a.ssh))
            },
            Command::Plan(PlanArgs {
                check: a,
                public_only,
            }) => Flags {
                firewall: Some(&a.firewall),
                whitelist: Some(&a.whitelist),
                public_only: public_only.on,
                ..flags(&a.target, Some(&a.ssh))
            },
            Command::Verify(VerifyArgs {
                check: a,
                monitor,
                flows,
            }) => Flags {
                firewall: Some(&a.firewall),
                whitelist: Some(&a.whitelist),
                monitor: Some(monitor),
                flows: *flows,
                ..flags(&a.target, Some(&a.ssh))
            },
            Command::Apply(a) => Flags {
                firewall: Some(&a.firewall),
                whitelist: Some(&a.whitelist),
                public_only: a.public_only.on,
                confirm_timeout: a.confirm_timeout,
                ..flags(&a.target, Some(&a.ssh))
            },
            Command::Remove(a) => Flags {
                firewall: Some(&a.firewall),
                ..flags(&a.target, Some(&a.ssh))
            },
            Command::Completions(_) | Command::Man(_) => return None,
        })
    }
}

/// Flags every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    #[arg(long, global = true, value_name = "PATH",
          help = format!("Config file [default: ./{DEFAULT_CONFIG} when it exists]"))]
    pub(crate) config: Option<PathBuf>,
    /// Print a machine-readable JSON report on stdout, and nothing else.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub(crate) struct InventoryArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    #[arg(long, value_name = "iptables|nftables|auto", help_heading = "Firewall",
          help = format!("The backend whose tools each node is checked for: iptables, nftables, or auto \
                          (each node's as apply would pick it) [default: {}]", FirewallBackend::default().as_str()))]
    pub(crate) backend: Option<crate::policy::FirewallBackend>,
}

/// plan and verify: they read each node and compare it with the whitelist.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    #[command(flatten)]
    pub(crate) whitelist: WhitelistArgs,
    #[command(flatten)]
    pub(crate) firewall: FirewallArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) check: CheckArgs,
    #[command(flatten)]
    pub(crate) public_only: PublicOnly,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) check: CheckArgs,
    #[command(flatten)]
    pub(crate) monitor: MonitorArgs,
    /// Also list what the nodes in audit mode recorded: each source,
    /// protocol and port the whitelist would drop, over all nodes, the
    /// most packets first, with the flag that would admit it.
    #[arg(long)]
    pub(crate) flows: bool,
}

/// What verify leaves behind for a monitoring system or a CI server,
/// besides its report on stdout: a job run by a timer has no one reading
/// that.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Monitoring")]
pub(crate) struct MonitorArgs {
    /// Also write the result as Prometheus metrics to FILE (for
    /// node_exporter's textfile collector: name it *.prom in its
    /// directory), whole or not at all: a temporary file beside it is
    /// renamed over it.
    #[arg(long, value_name = "FILE")]
    pub(crate) prometheus: Option<PathBuf>,
    /// A label on every metric of --prometheus, as NAME=VALUE (cluster=eu-1,
    /// to tell the clusters one node_exporter reports apart); repeatable.
    #[arg(
        long = "prometheus-label",
        value_name = "NAME=VALUE",
        value_parser = parse_metric_label,
        requires = "prometheus"
    )]
    pub(crate) prometheus_labels: Vec<(String, String)>,
    /// Also write a JUnit XML report to FILE, one test case per host (a
    /// drifted host fails, an unreachable one errs), for a CI server;
    /// written like --prometheus.
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,
}

/// plan and apply check that the inventory knows a private address for
/// every node; this flag says the fleet needs none.
#[derive(Debug, Args)]
pub(crate) struct PublicOnly {
    /// The nodes talk to each other only over the addresses the inventory
    /// has: apply even when it knows no private address for some nodes
    /// (`terraform output -json`, a static host with one address).
    #[arg(long = "public-only", help_heading = "Whitelist")]
    pub(crate) on: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    #[command(flatten)]
    pub(crate) whitelist: WhitelistArgs,
    #[command(flatten)]
    pub(crate) firewall: FirewallArgs,
    #[command(flatten)]
    pub(crate) public_only: PublicOnly,
    #[arg(long, value_name = "SECONDS", help_heading = "Firewall",
          help = format!("Seconds a changed node waits for palisade to prove that new connections still get through, \
                          before it undoes the change by itself [default: {DEFAULT_CONFIRM_TIMEOUT}]"))]
    pub(crate) confirm_timeout: Option<u64>,
}

/// remove needs only the names of what it takes off.
#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    #[command(flatten)]
    pub(crate) firewall: FirewallArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete palisade's commands and flags in.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write palisade.1 and one page per command (palisade-apply.1, ...)
    /// into this directory instead of printing palisade(1).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// Where the fleet comes from, and which of its hosts a run works on.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Hosts")]
pub(crate) struct TargetArgs {
    #[arg(long, value_name = "PATH", conflicts_with = "inventory",
          help = format!("Terraform state, `terraform show -json` or `terraform output -json` document; \
                          `-` reads standard input [default: ./{DEFAULT_STATE}]"))]
    pub(crate) state: Option<PathBuf>,
    /// A static TOML inventory instead of Terraform state.
    #[arg(long, value_name = "PATH")]
    pub(crate) inventory: Option<PathBuf>,
    /// Work on these hosts only: a role, name or address, a glob
    /// (`agent-*`, `10.0.0.*`), a network (10.0.0.0/8), `!PATTERN` to leave
    /// hosts out, `@FILE` for patterns one a line (the retry file);
    /// comma-separated, repeatable. The whitelist still admits every host.
    #[arg(long, value_name = "PATTERN[,PATTERN...]")]
    pub(crate) limit: Vec<String>,
    /// Another Terraform resource type laid out like packet_device (the old
    /// form of `[terraform.types.NAME]`); repeatable, added to the config's
    /// `terraform.device_types`.
    #[arg(long = "device-type", value_name = "TYPE")]
    pub(crate) device_types: Vec<String>,
    /// A role for resources whose name (or --role-tag value) matches a glob,
    /// as GLOB=ROLE (role: master, agent, public-agent, bootstrap or node);
    /// repeatable, tried before the config's `terraform.roles`.
    #[arg(long = "role", value_name = "GLOB=ROLE", value_parser = parse_role_rule)]
    pub(crate) roles: Vec<RoleRule>,
    /// Read each machine's role from this tag or label: its value is a role
    /// (master, agent, public-agent, bootstrap, node) or matches a --role
    /// pattern; machines without it get the resource-name rule.
    #[arg(long = "role-tag", value_name = "KEY")]
    pub(crate) role_tag: Option<String>,
    /// Which address of each machine palisade connects to: public (IPv4),
    /// private (IPv4) or ipv6, or several joined by commas, of which each
    /// machine takes the first it has (private,public) [default: public];
    /// every address is whitelisted whichever is chosen.
    #[arg(long = "connect-via", value_name = "KIND[,KIND...]", value_parser = parse_connect_via)]
    pub(crate) connect_via: Option<crate::inventory::ConnectOrder>,
    /// Leave out the machines the state holds no address for (a VM whose
    /// guest never reported one), naming them on stderr, instead of
    /// refusing the state. They have no address to whitelist, so the
    /// whitelist loses nothing; they are not reached.
    #[arg(long = "skip-addressless")]
    pub(crate) skip_addressless: bool,
}

fn parse_connect_via(s: &str) -> Result<crate::inventory::ConnectOrder, String> {
    s.parse()
}

#[derive(Debug, Default, Args)]
#[command(next_help_heading = "SSH")]
pub(crate) struct SshArgs {
    #[arg(long, help = format!("Remote user [default: {DEFAULT_USER}]"))]
    pub(crate) user: Option<String>,
    /// Private key file [default: the ssh-agent at SSH_AUTH_SOCK].
    #[arg(long, value_name = "PATH")]
    pub(crate) key: Option<PathBuf>,
    /// OpenSSH user certificate for the key, offered before the bare key
    /// [default: KEY-cert.pub when it is there].
    #[arg(long, value_name = "PATH")]
    pub(crate) certificate: Option<PathBuf>,
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..),
          help = format!("SSH port [default: {DEFAULT_PORT}]"))]
    pub(crate) port: Option<u16>,
    /// The cluster's known_hosts file [default: .palisade/known_hosts next to
    /// the state or inventory].
    #[arg(long, value_name = "PATH")]
    pub(crate) known_hosts: Option<PathBuf>,
    #[arg(long, value_enum, help = format!(
        "What to do with unknown and changed host keys [default: {}]",
        clap::ValueEnum::to_possible_value(&DEFAULT_HOST_KEY_CHECKING)
            .expect("a visible value")
            .get_name()
    ))]
    pub(crate) host_key_checking: Option<HostKeyChecking>,
    #[arg(long, value_name = "N", value_parser = parse_forks,
          help = format!("How many hosts to work on at once [default: {DEFAULT_FORKS}]"))]
    pub(crate) forks: Option<NonZeroUsize>,
    #[arg(long, value_name = "SECONDS",
          help = format!("Seconds to wait for a connection and login [default: {DEFAULT_CONNECT_TIMEOUT}]"))]
    pub(crate) connect_timeout: Option<u64>,
    #[arg(long, value_name = "SECONDS",
          help = format!("Seconds one remote step may take [default: {DEFAULT_STEP_TIMEOUT}]"))]
    pub(crate) timeout: Option<u64>,
    #[arg(long, value_name = "N", help = format!(
        "Extra connection attempts, with backoff; a step that may have changed a host is never retried \
         [default: {DEFAULT_RETRIES}]"
    ))]
    pub(crate) retries: Option<u32>,
    // The help text's `[:port]` is clap's, not an intra-doc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Reach the nodes through this bastion: user@host[:port]; several,
    /// comma-separated, are hops in order (each through the one before).
    #[arg(long, value_name = "USER@HOST[:PORT][,...]")]
    pub(crate) jump: Option<BastionPath>,
    /// OpenSSH client config to read user, key, port, ProxyJump and more
    /// from, below flags and palisade.toml; `none` reads none
    /// [default: ~/.ssh/config when it exists].
    #[arg(long, value_name = "PATH|none")]
    pub(crate) ssh_config: Option<PathBuf>,
}

#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Whitelist")]
pub(crate) struct WhitelistArgs {
    /// An operator address or network to admit; repeatable, added to the
    /// config's `whitelist.allow`.
    #[arg(long, value_name = "IP|CIDR")]
    pub(crate) allow: Vec<Net>,
    /// Any other address or network to admit; repeatable, added to the
    /// config's `whitelist.extra`.
    #[arg(long, value_name = "IP|CIDR")]
    pub(crate) extra: Vec<Net>,
    /// Ports open to everyone on the nodes of a role (`all` for every
    /// role), whatever the whitelist: e.g. public-agent=tcp/80,tcp/443 for
    /// DC/OS public agents; repeatable, added to the config's
    /// `whitelist.open`.
    #[arg(long, value_name = "ROLE=PROTO/PORT[-PORT][,...]")]
    pub(crate) open: Vec<Opening>,
    #[arg(long = "resolver", value_name = "IP", help = format!(
        "A DNS resolver the nodes use; repeatable, replaces the config's list [default: {}]",
        DEFAULT_RESOLVERS.join(" ")
    ))]
    pub(crate) resolvers: Vec<Net>,
    #[arg(long = "interface", value_name = "NAME", help = format!(
        "An interface whose traffic is accepted (containers, overlay); repeatable, replaces the config's list \
         [default: {}]",
        DEFAULT_INTERFACES.join(" ")
    ))]
    pub(crate) interfaces: Vec<IfName>,
    /// No effect, kept for scripts written for versions with a Docker guard
    /// in DOCKER-USER: the guard before DNAT covers every published port.
    #[arg(long = "no-docker-user", hide = true)]
    _no_docker_user: bool,
    /// Do not write the boot restore script and unit.
    #[arg(long)]
    pub(crate) no_persist: bool,
    /// Audit mode: install the whole whitelist but drop nothing; record
    /// each new connection it would drop (source, protocol, port) on the
    /// node for `verify --flows` (nftables backend). Without it, a node in
    /// audit mode is switched to enforce.
    #[arg(long)]
    pub(crate) audit: bool,
    /// How many flows audit mode records per address family on a node; a
    /// scan fills the set to this and no further [default: 65536].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub(crate) audit_size: Option<u32>,
}

/// The names of palisade's objects on the nodes: every command that reads
/// or changes them needs the same ones.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Firewall")]
pub(crate) struct FirewallArgs {
    #[arg(long, value_name = "NAME", help = format!("The IPv4 ipset [default: {DEFAULT_SET4}]"))]
    pub(crate) set4: Option<SetName>,
    #[arg(long, value_name = "NAME", help = format!("The IPv6 ipset [default: {DEFAULT_SET6}]"))]
    pub(crate) set6: Option<SetName>,
    #[arg(long, value_name = "NAME", help = format!(
        "The iptables chain [default: {DEFAULT_CHAIN}]; with nftables, the table is its name in lower case"
    ))]
    pub(crate) chain: Option<ChainName>,
    #[arg(long, value_name = "iptables|nftables|auto", help = format!(
        "Where palisade keeps its objects on the nodes: ipset sets and iptables chains, one nftables table \
         (`inet palisade`) for nodes without ipset or xtables, or `auto`: nftables on each node where nft \
         takes the table, else iptables [default: {}]",
        FirewallBackend::default().as_str()
    ))]
    pub(crate) backend: Option<crate::policy::FirewallBackend>,
}

fn parse_forks(s: &str) -> Result<NonZeroUsize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (how many hosts to work on at once)".into()),
        Ok(n) => NonZeroUsize::new(n).ok_or_else(|| "must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a number of hosts")),
    }
}

/// A label name as Prometheus takes it, none of the ones palisade's own
/// metrics carry (a second `host` would make every series invalid), and a
/// value, which is escaped when written.
fn parse_metric_label(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid || name.starts_with("__") {
        return Err(format!(
            "{name:?} is not a label name (a letter or '_', then letters, digits and '_'; not '__' first)"
        ));
    }
    if crate::report::monitor::OWN_LABELS.contains(&name) {
        return Err(format!("{name:?} is a label palisade's metrics already have"));
    }
    if value.is_empty() {
        return Err(format!(
            "{s:?} has an empty value (Prometheus drops such a label)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_role_rule(s: &str) -> Result<RoleRule, String> {
    let (glob, role) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not GLOB=ROLE"))?;
    if glob.is_empty() {
        return Err(format!("{s:?} has an empty pattern"));
    }
    Ok(RoleRule {
        resource: glob.to_owned(),
        role: role.parse()?,
    })
}

// What each command's help ends with: examples, then the exit codes it can
// return (report::ExitStatus and report::EXIT_USAGE decide them).

macro_rules! exit_status {
    ($($extra:literal),* $(,)?) => {
        concat!(
            "Exit status:\n",
            "  0  success\n",
            "  1  bad input or usage; no node was touched\n",
            $($extra,)*
        )
    };
}

macro_rules! node_exit_status {
    ($($extra:literal),* $(,)?) => {
        exit_status!("  2  some hosts failed, were unreachable or rolled back; their names go to the retry file\n", $($extra),*)
    };
}

const MAIN_HELP: &str = concat!(
    "Examples:\n",
    "  palisade inventory                        the fleet, from ./terraform.tfstate\n",
    "  palisade ping                             can palisade work on every node? (SEES US AS: your address)\n",
    "  palisade plan --allow 203.0.113.7         what apply would change\n",
    "  palisade apply --allow 203.0.113.7        lock the fleet down, admitting your address\n",
    "  palisade apply --limit @.palisade/failed  retry the hosts that failed\n",
    "\n",
    "Each command's --help lists its flags. palisade reads ./palisade.toml when it exists; flags win.\n",
    "\n",
    node_exit_status!("  3  verify found a node that differs from the whitelist\n"),
);

const INVENTORY_HELP: &str = concat!(
    "Examples:\n",
    "  palisade inventory --state terraform.tfstate\n",
    "  palisade inventory --inventory inventory/hosts.toml --limit agent\n",
    "  terraform show -json | palisade inventory --state - --json\n",
    "\n",
    exit_status!(),
);

const PING_HELP: &str = concat!(
    "Examples:\n",
    "  palisade ping --key ~/.ssh/id_ed25519\n",
    "  palisade ping --inventory inventory/hosts.toml --user root\n",
    "  palisade ping --limit 'agent-*,!agent-03' --forks 8\n",
    "\n",
    "SEES US AS is the address the nodes see palisade connect from: put it in\n",
    "palisade.toml's [whitelist] allow (or pass --allow) before apply.\n",
    "\n",
    node_exit_status!(),
);

const PLAN_HELP: &str = concat!(
    "Examples:\n",
    "  palisade plan --allow 203.0.113.7\n",
    "  palisade plan --limit public-agent --open public-agent=tcp/80,tcp/443\n",
    "  palisade plan --json | jq '.hosts[] | select(.status == \"would-change\")'\n",
    "\n",
    node_exit_status!(),
);

const APPLY_HELP: &str = concat!(
    "Examples:\n",
    "  palisade apply --allow 203.0.113.7\n",
    "  palisade apply --limit agent               change the agents only; every node stays admitted\n",
    "  palisade apply --limit @.palisade/failed   retry the hosts the last run could not change\n",
    "  palisade apply --audit                     drop nothing yet: record what would be dropped\n",
    "\n",
    "A changed node undoes the change by itself unless palisade gets through\n",
    "again within --confirm-timeout (reported as rolled-back).\n",
    "\n",
    node_exit_status!(),
);

const VERIFY_HELP: &str = concat!(
    "Examples:\n",
    "  palisade verify\n",
    "  palisade verify --limit master --json\n",
    "  palisade verify --limit '!bootstrap'\n",
    "  palisade verify --prometheus /var/lib/prometheus/node-exporter/palisade.prom --junit verify.xml\n",
    "  palisade verify --audit --flows             what the whitelist would drop, from nodes in audit mode\n",
    "\n",
    node_exit_status!("  3  a node differs from the whitelist (drift)\n"),
);

const REMOVE_HELP: &str = concat!(
    "Examples:\n",
    "  palisade remove --limit agent-07\n",
    "  palisade remove\n",
    "\n",
    node_exit_status!(),
);

const COMPLETIONS_HELP: &str = concat!(
    "Examples:\n",
    "  palisade completions bash > ~/.local/share/bash-completion/completions/palisade\n",
    "  palisade completions zsh > \"${fpath[1]}/_palisade\"\n",
    "  palisade completions fish > ~/.config/fish/completions/palisade.fish\n",
    "\n",
    exit_status!(),
);

const MAN_HELP: &str = concat!(
    "Examples:\n",
    "  palisade man | man -l -\n",
    "  palisade man --dir /usr/local/share/man/man1\n",
    "\n",
    exit_status!(),
);
