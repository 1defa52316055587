//! The command line, as close to the flags as possible: parsing and nothing
//! else. `config::Settings` merges these with `palisade.toml`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use std::num::NonZeroUsize;

use crate::inventory::RoleRule;
use crate::net::{ChainName, IfName, Net, SetName};
use crate::policy::Opening;
use crate::transport::{HostKeyChecking, Jump};

/// Lock a bare-metal cluster down to an IP whitelist, over SSH, with no agent.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the fleet: every node, its role and all its addresses.
    Inventory,
    /// Check that every node is reachable, logs in, has sudo, ipset and iptables.
    Ping,
    /// Show what `apply` would change on each node, changing nothing.
    Plan,
    /// Push the whitelist to every node.
    Apply,
    /// Audit every node against the whitelist; read-only.
    Verify,
    /// Take palisade's firewall off every node.
    Remove,
}

/// Flags every command takes. Each one overrides the same setting in the
/// config file.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file [default: ./palisade.toml when it exists].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Terraform state, `terraform show -json` or `terraform output -json`
    /// document; `-` reads standard input [default: ./terraform.tfstate].
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "inventory")]
    pub state: Option<PathBuf>,
    /// A static TOML inventory instead of Terraform state.
    #[arg(long, global = true, value_name = "PATH")]
    pub inventory: Option<PathBuf>,
    /// Another Terraform resource type laid out like packet_device (the old
    /// form of `[terraform.types.NAME]`); repeatable, added to the config's
    /// `terraform.device_types`.
    #[arg(long = "device-type", global = true, value_name = "TYPE")]
    pub device_types: Vec<String>,
    /// A role for resources whose name (or --role-tag value) matches a glob,
    /// as GLOB=ROLE (role: master, agent, public-agent, bootstrap or node);
    /// repeatable, tried before the config's `terraform.roles`.
    #[arg(long = "role", global = true, value_name = "GLOB=ROLE", value_parser = parse_role_rule)]
    pub roles: Vec<RoleRule>,
    /// Read each machine's role from this tag or label: its value is a role
    /// (master, agent, public-agent, bootstrap, node) or matches a --role
    /// pattern; machines without it get the resource-name rule.
    #[arg(long = "role-tag", global = true, value_name = "KEY")]
    pub role_tag: Option<String>,
    /// Which address of each machine palisade connects to [default: public
    /// IPv4]; every address is whitelisted whichever is chosen.
    #[arg(long = "connect-via", global = true, value_enum)]
    pub connect_via: Option<crate::inventory::ConnectVia>,
    /// Print a machine-readable JSON report on stdout, and nothing else.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub whitelist: WhitelistArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "SSH")]
pub struct SshArgs {
    /// Remote user [default: core].
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Private key file [default: the ssh-agent at SSH_AUTH_SOCK].
    #[arg(long, global = true, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// SSH port [default: 22].
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// The cluster's known_hosts file [default: .palisade/known_hosts next to
    /// the state or inventory].
    #[arg(long, global = true, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// What to do with unknown and changed host keys [default: accept-new].
    #[arg(long, global = true, value_enum)]
    pub host_key_checking: Option<HostKeyChecking>,
    /// How many hosts to work on at once [default: 64].
    #[arg(long, global = true, value_name = "N", value_parser = parse_forks)]
    pub forks: Option<NonZeroUsize>,
    /// Seconds to wait for a connection and login [default: 10].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub connect_timeout: Option<u64>,
    /// Seconds one remote step may take [default: 120].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Extra connection attempts, with backoff; a step that may have changed
    /// a host is never retried [default: 2].
    #[arg(long, global = true, value_name = "N")]
    pub retries: Option<u32>,
    /// Reach the nodes through this bastion: user@host[:port].
    #[arg(long, global = true, value_name = "USER@HOST[:PORT]")]
    pub jump: Option<Jump>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Whitelist")]
pub struct WhitelistArgs {
    /// An operator address or network to admit; repeatable, added to the
    /// config's `whitelist.allow`.
    #[arg(long, global = true, value_name = "IP|CIDR")]
    pub allow: Vec<Net>,
    /// Any other address or network to admit; repeatable, added to the
    /// config's `whitelist.extra`.
    #[arg(long, global = true, value_name = "IP|CIDR")]
    pub extra: Vec<Net>,
    /// Ports open to everyone on the nodes of a role (`all` for every
    /// role), whatever the whitelist: e.g. public-agent=tcp/80,tcp/443 for
    /// DC/OS public agents; repeatable, added to the config's
    /// `whitelist.open`.
    #[arg(long, global = true, value_name = "ROLE=PROTO/PORT[-PORT][,...]")]
    pub open: Vec<Opening>,
    /// A DNS resolver the nodes use; repeatable, replaces the config's list
    /// [default: 8.8.8.8 8.8.4.4].
    #[arg(long = "resolver", global = true, value_name = "IP")]
    pub resolvers: Vec<Net>,
    /// An interface whose traffic is accepted (containers, overlay);
    /// repeatable, replaces the config's list [default: docker0 d-dcos m-dcos
    /// ucr-br0 vtep1024].
    #[arg(long = "interface", global = true, value_name = "NAME")]
    pub interfaces: Vec<IfName>,
    /// The IPv4 ipset [default: palisade4].
    #[arg(long, global = true, value_name = "NAME")]
    pub set4: Option<SetName>,
    /// The IPv6 ipset [default: palisade6].
    #[arg(long, global = true, value_name = "NAME")]
    pub set6: Option<SetName>,
    /// The iptables chain [default: PALISADE].
    #[arg(long, global = true, value_name = "NAME")]
    pub chain: Option<ChainName>,
    /// Leave Docker's published ports alone (no guard in DOCKER-USER).
    #[arg(long, global = true)]
    pub no_docker_user: bool,
    /// Do not write the boot restore script and unit.
    #[arg(long, global = true)]
    pub no_persist: bool,
    /// The nodes talk to each other only over the addresses the inventory
    /// has: apply even when it knows no private address for some nodes
    /// (`terraform output -json`, a static host with one address).
    #[arg(long, global = true)]
    pub public_only: bool,
    /// Seconds a changed node waits for palisade to prove that new
    /// connections still get through, before it undoes the change by itself
    /// [default: 60].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub confirm_timeout: Option<u64>,
}

fn parse_forks(s: &str) -> Result<NonZeroUsize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (how many hosts to work on at once)".into()),
        Ok(n) => NonZeroUsize::new(n).ok_or_else(|| "must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a number of hosts")),
    }
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
