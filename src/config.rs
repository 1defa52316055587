//! `palisade.toml`, and the settings a run uses once flags are laid over it.
//!
//! Paths in the file are relative to the file, so a config committed next to
//! the Terraform works from any directory. A flag always wins over the file;
//! the list flags (`--allow`, `--extra`) add to the file's lists, because
//! silently dropping an operator's address from the whitelist is the one
//! surprise a firewall tool must not spring.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Deserialize;

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::cli::{
    DEFAULT_CHAIN, DEFAULT_CONFIG, DEFAULT_CONFIRM_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FORKS,
    DEFAULT_HOST_KEY_CHECKING, DEFAULT_PORT, DEFAULT_RETRIES, DEFAULT_SET4, DEFAULT_SET6, DEFAULT_STATE,
    DEFAULT_STEP_TIMEOUT, DEFAULT_USER, FirewallArgs, Flags, SshArgs, WhitelistArgs,
};
use crate::inventory::{RoleRule, RoleRules, Source};

use crate::net::{ChainName, IfName, Net, Port, SetName};
use crate::policy::{self, Opening, PolicyOptions};
use crate::transport::{BastionPath, HostKeyChecking};

/// A config is a page of settings: anything much bigger is the wrong file.
const CONFIG_MAX_BYTES: u64 = 1 << 20;

/// Host keys are kept per cluster, next to what describes the cluster:
/// reprovisioned bare-metal hosts reuse IPs, so the user's own known_hosts
/// would fill with stale keys.
fn default_known_hosts(source: &Source) -> PathBuf {
    let beside = match source {
        Source::Terraform(p) | Source::Static(p) if p.as_path() != Path::new("-") => p.parent(),
        _ => None,
    };
    beside
        .unwrap_or(Path::new(""))
        .join(".palisade")
        .join("known_hosts")
}

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub(crate) state: Option<PathBuf>,
    pub(crate) inventory: Option<PathBuf>,
    #[serde(default)]
    pub(crate) ssh: SshConfig,
    #[serde(default)]
    pub(crate) whitelist: WhitelistConfig,
    #[serde(default)]
    pub(crate) firewall: FirewallConfig,
    #[serde(default)]
    pub(crate) terraform: TerraformConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SshConfig {
    pub(crate) user: Option<String>,
    pub(crate) key: Option<PathBuf>,
    /// The user certificate for `key` (`--certificate`).
    pub(crate) certificate: Option<PathBuf>,
    pub(crate) port: Option<u16>,
    pub(crate) known_hosts: Option<PathBuf>,
    pub(crate) host_key_checking: Option<HostKeyChecking>,
    pub(crate) forks: Option<NonZeroUsize>,
    pub(crate) connect_timeout: Option<u64>,
    pub(crate) timeout: Option<u64>,
    pub(crate) retries: Option<u32>,
    #[serde(default, deserialize_with = "jump_from_str")]
    pub(crate) jump: Option<BastionPath>,
    /// The OpenSSH client config to read (`none`: none).
    pub(crate) ssh_config: Option<PathBuf>,
}

fn jump_from_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<BastionPath>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhitelistConfig {
    #[serde(default)]
    pub(crate) allow: Vec<Net>,
    #[serde(default)]
    pub(crate) extra: Vec<Net>,
    pub(crate) resolvers: Option<Vec<Net>>,
    pub(crate) interfaces: Option<Vec<IfName>>,
    /// Ports open to everyone, per role (`all` for every role):
    /// `public-agent = ["tcp/80", "tcp/443"]`.
    #[serde(default)]
    pub(crate) open: std::collections::BTreeMap<String, Vec<Port>>,
    /// Apply even when the inventory knows no private address for some
    /// nodes (`--public-only`).
    pub(crate) public_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FirewallConfig {
    pub(crate) set4: Option<SetName>,
    pub(crate) set6: Option<SetName>,
    pub(crate) chain: Option<ChainName>,
    /// Accepted, and without effect, for configs written for versions with
    /// a Docker guard in DOCKER-USER: the guard before DNAT covers every
    /// published port.
    #[serde(rename = "docker_user")]
    _docker_user: Option<bool>,
    pub(crate) persist: Option<bool>,
    pub(crate) confirm_timeout: Option<u64>,
    /// `iptables` or `nftables` (`--backend`).
    pub(crate) backend: Option<crate::policy::FirewallBackend>,
    /// `enforce` or `audit` (`--audit`).
    pub(crate) mode: Option<crate::policy::FirewallMode>,
    /// Audit mode's bound per family (`--audit-size`).
    pub(crate) audit_size: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TerraformConfig {
    /// The old form of `types`: resource types laid out like packet_device.
    #[serde(default)]
    pub(crate) device_types: Vec<String>,
    /// Machine types besides the built-in ones, or built-in ones read
    /// differently: `[terraform.types.NAME]` with attribute paths.
    #[serde(default)]
    pub(crate) types: std::collections::BTreeMap<String, crate::inventory::TypeSpec>,
    /// Which address palisade connects to (`public`, `private`, `ipv6`, or
    /// several, `"private,public"` or a list, tried in order per machine).
    pub(crate) connect_via: Option<crate::inventory::ConnectOrder>,
    /// The tag or label whose value is a machine's role.
    pub(crate) role_tag: Option<String>,
    /// Resource name patterns and their roles, tried before the built-in names.
    #[serde(default)]
    pub(crate) roles: Vec<RoleRule>,
}

impl Config {
    /// Reads the file; `explicit` says whether the operator named it (then it
    /// must exist) or we are looking for the default one.
    pub(crate) fn load(path: &Path, explicit: bool) -> Result<Config> {
        use crate::input::{self, ReadError};
        let shown = path.display();
        let bytes = match input::read(path, CONFIG_MAX_BYTES) {
            Ok(bytes) => bytes,
            Err(ReadError::Io(e)) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(e) => bail!("{shown}: {e}"),
        };
        let text = input::text(&bytes).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let mut config = Config::parse(text, &shown.to_string())?;
        let base = path.parent().unwrap_or(Path::new(""));
        for (key, p) in [
            ("state", &mut config.state),
            ("inventory", &mut config.inventory),
            ("ssh.key", &mut config.ssh.key),
            ("ssh.certificate", &mut config.ssh.certificate),
            ("ssh.known_hosts", &mut config.ssh.known_hosts),
            ("ssh.ssh_config", &mut config.ssh.ssh_config),
        ] {
            let Some(p) = p else { continue };
            if p.as_os_str().is_empty() {
                bail!("{shown}: {key}: the path is empty (leave the key out for the default)");
            }
            if p.as_path() != Path::new("-") && p.as_path() != Path::new("none") && p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Parses the text of a config named `shown` in messages. Public for
    /// fuzzing: it never panics, and its errors never quote a value.
    pub fn parse(text: &str, shown: &str) -> Result<Config> {
        use crate::input::{self, Looks};
        toml::from_str(text).map_err(|e| {
            if Looks::of(text) == Looks::Json {
                anyhow::anyhow!(
                    "{shown}: this is JSON, not palisade's TOML config: a Terraform state, \
                     `terraform show -json` or `terraform output -json` document is read with --state"
                )
            } else {
                anyhow::anyhow!("{shown}: {}", input::toml_error(&e, text))
            }
        })
    }
}

/// Where each SSH setting palisade has one of came from, when a flag or
/// `palisade.toml` set it.
#[derive(Debug, Default)]
pub(crate) struct SshGiven {
    pub(crate) user: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) certificate: Option<String>,
    pub(crate) port: Option<String>,
    pub(crate) jump: Option<String>,
    pub(crate) known_hosts: Option<String>,
    pub(crate) checking: Option<String>,
    pub(crate) connect_timeout: Option<String>,
}

/// What one run uses: the config with the flags laid over it.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) source: Source,
    pub(crate) roles: RoleRules,
    pub(crate) json: bool,
    /// `-v`: reports name every host of a shared change list.
    pub(crate) verbose: bool,
    pub(crate) user: String,
    pub(crate) key: Option<PathBuf>,
    /// The user certificate for `key`, when one is named.
    pub(crate) certificate: Option<PathBuf>,
    pub(crate) port: u16,
    pub(crate) known_hosts: PathBuf,
    pub(crate) host_key_checking: HostKeyChecking,
    pub(crate) forks: NonZeroUsize,
    pub(crate) connect_timeout: Duration,
    pub(crate) step_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) jump: Option<BastionPath>,
    /// The ssh_config to read, and whether the operator named it (then it
    /// must exist); `None` for `none`.
    pub(crate) ssh_config: Option<(PathBuf, bool)>,
    /// The SSH settings flags or the file decided, each with where it came
    /// from (`--user`, `palisade.toml: ssh.user`): ssh_config is not asked
    /// for those.
    pub(crate) ssh_given: SshGiven,
    pub(crate) confirm_timeout: Duration,
    /// Which hosts the run works on (`--limit`); all of them when `None`.
    pub(crate) limit: Option<crate::limit::Limit>,
    /// What the whitelist is made of, besides the inventory.
    pub(crate) policy: PolicyOptions,
    /// verify: the files for monitoring and CI (flags only).
    pub(crate) monitor: crate::cli::MonitorArgs,
    /// verify: list the flows nodes in audit mode recorded (`--flows`).
    pub(crate) flows: bool,
}

impl Settings {
    /// A flag group the command does not take counts as all its flags
    /// absent: the file and the defaults decide those settings. Each
    /// concern is resolved on its own, in the order its errors are reported.
    pub(crate) fn resolve(flags: &Flags<'_>) -> Result<Settings> {
        let (no_ssh, no_firewall, no_whitelist) = Default::default();
        let config_path = flags.global.config.as_deref();
        let raw = Raw {
            flags,
            ssh: flags.ssh.unwrap_or(&no_ssh),
            names: flags.firewall.unwrap_or(&no_firewall),
            whitelist: flags.whitelist.unwrap_or(&no_whitelist),
            config: match config_path {
                Some(path) => Config::load(path, true)?,
                None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
            },
            config_name: config_path
                .unwrap_or(Path::new(DEFAULT_CONFIG))
                .display()
                .to_string(),
        };
        let source = raw.source()?;
        let roles = raw.roles()?;
        let user = raw.user()?;
        let open = raw.open()?;
        let confirm_timeout = raw.confirm_timeout()?;
        let policy = raw.policy(open)?;
        let port = raw.port()?;
        let (ssh, file) = (raw.ssh, &raw.config.ssh);
        Ok(Settings {
            ssh_config: raw.ssh_config(),
            ssh_given: raw.ssh_given(),
            json: flags.global.json,
            verbose: flags.global.verbose > 0,
            user,
            key: ssh.key.clone().or(file.key.clone()),
            certificate: ssh.certificate.clone().or(file.certificate.clone()),
            port,
            known_hosts: ssh
                .known_hosts
                .clone()
                .or(file.known_hosts.clone())
                .unwrap_or_else(|| default_known_hosts(&source)),
            host_key_checking: ssh
                .host_key_checking
                .or(file.host_key_checking)
                .unwrap_or(DEFAULT_HOST_KEY_CHECKING),
            forks: ssh.forks.or(file.forks).unwrap_or(DEFAULT_FORKS),
            connect_timeout: raw.seconds(
                ssh.connect_timeout,
                file.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
                "connect-timeout",
                "ssh.connect_timeout",
            )?,
            step_timeout: raw.seconds(
                ssh.timeout,
                file.timeout,
                DEFAULT_STEP_TIMEOUT,
                "timeout",
                "ssh.timeout",
            )?,
            retries: raw.retries()?,
            jump: ssh.jump.clone().or(file.jump.clone()),
            confirm_timeout,
            limit: match flags.target.limit.is_empty() {
                true => None,
                false => Some(crate::limit::Limit::parse(&flags.target.limit)?),
            },
            source,
            roles,
            policy,
            monitor: flags.monitor.cloned().unwrap_or_default(),
            flows: flags.flows,
        })
    }
}

/// What one run's settings are made from, as given: the command's flags (a
/// group it does not take is all absent) and the config file.
struct Raw<'f, 'a> {
    flags: &'f Flags<'a>,
    ssh: &'f SshArgs,
    names: &'f FirewallArgs,
    whitelist: &'f WhitelistArgs,
    config: Config,
    /// How messages name the config file.
    config_name: String,
}

impl Raw<'_, '_> {
    /// Where a setting came from, for messages: the flag, or the file and key.
    fn from(&self, flag_given: bool, flag: &str, key: &str) -> String {
        if flag_given {
            format!("--{flag}")
        } else {
            format!("{}: {key}", self.config_name)
        }
    }

    /// Where a setting given by a flag or the file came from; `None` when
    /// neither gave it.
    fn given(&self, flag: bool, file: bool, name: &str, key: &str) -> Option<String> {
        (flag || file).then(|| self.from(flag, name, key))
    }

    /// The inventory: a flag, else the file's `state` or `inventory`, else
    /// `terraform.tfstate`.
    fn source(&self) -> Result<Source> {
        let args = self.flags.target;
        Ok(match (&args.state, &args.inventory) {
            (Some(state), _) => Source::Terraform(state.clone()),
            (None, Some(inv)) => Source::Static(inv.clone()),
            (None, None) => match (&self.config.state, &self.config.inventory) {
                (Some(_), Some(_)) => bail!(
                    "{}: set either `state` or `inventory`, not both",
                    self.config_name
                ),
                (Some(state), None) => Source::Terraform(state.clone()),
                (None, Some(inv)) => Source::Static(inv.clone()),
                (None, None) => Source::Terraform(PathBuf::from(DEFAULT_STATE)),
            },
        })
    }

    /// How the Terraform state's machines become nodes with roles: the
    /// file's types and rules with the flags' added (the flags' rules first).
    fn roles(&self) -> Result<RoleRules> {
        let (args, tf) = (self.flags.target, &self.config.terraform);
        let config_name = &self.config_name;
        let mut types = tf.device_types.clone();
        types.extend(args.device_types.iter().cloned());
        let mut rules = args.roles.clone();
        rules.extend(tf.roles.iter().cloned());
        Ok(RoleRules::new(&types, &rules)
            .map_err(|e| anyhow::anyhow!("{config_name} / --role: terraform.roles: {e}"))?
            .with_types(&tf.types)
            .map_err(|e| anyhow::anyhow!("{config_name}: {e}"))?
            .with_role_tag(args.role_tag.clone().or(tf.role_tag.clone()))
            .with_connect_via(
                args.connect_via
                    .clone()
                    .or(tf.connect_via.clone())
                    .unwrap_or_default(),
            )
            .with_skip_addressless(args.skip_addressless))
    }

    fn user(&self) -> Result<String> {
        let user = self
            .ssh
            .user
            .clone()
            .or(self.config.ssh.user.clone())
            .unwrap_or_else(|| DEFAULT_USER.into());
        if !is_login(&user) {
            bail!(
                "{}: {:?} is not a user name (1 to 64 letters, digits, '.', '_', '-' or '@')",
                self.from(self.ssh.user.is_some(), "user", "ssh.user"),
                crate::text::shorten(&user, 40)
            );
        }
        Ok(user)
    }

    /// The ports open to everyone: the file's, then the flags'.
    fn open(&self) -> Result<Vec<Opening>> {
        let mut open = Vec::new();
        for (role, ports) in &self.config.whitelist.open {
            let nodes = role
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: whitelist.open: {e}", self.config_name))?;
            open.push(Opening {
                nodes,
                ports: ports.clone(),
            });
        }
        open.extend(self.whitelist.open.iter().cloned());
        Ok(open)
    }

    fn confirm_timeout(&self) -> Result<Duration> {
        let flag = self.flags.confirm_timeout;
        let from = || self.from(flag.is_some(), "confirm-timeout", "firewall.confirm_timeout");
        match flag
            .or(self.config.firewall.confirm_timeout)
            .unwrap_or(DEFAULT_CONFIRM_TIMEOUT)
        {
            n if n < 5 => bail!("{} must be at least 5 seconds (got {n})", from()),
            n if n > 3600 => bail!("{} must be at most 3600 seconds (got {n})", from()),
            n => Ok(Duration::from_secs(n)),
        }
    }

    /// What the whitelist is made of besides the inventory, `open` included.
    fn policy(&self, open: Vec<Opening>) -> Result<PolicyOptions> {
        let (w, file) = (self.whitelist, &self.config.whitelist);
        let (names, fw) = (self.names, &self.config.firewall);
        let mut allow = file.allow.clone();
        allow.extend(w.allow.iter().copied());
        let mut extra = file.extra.clone();
        extra.extend(w.extra.iter().copied());
        let (set4, set6) = self.sets()?;
        Ok(PolicyOptions {
            public_only: self.flags.public_only || file.public_only.unwrap_or(false),
            open,
            allow,
            extra,
            resolvers: self.resolvers()?,
            interfaces: list_setting(
                &w.interfaces,
                file.interfaces.clone(),
                &policy::DEFAULT_INTERFACES,
            ),
            set4,
            set6,
            chain: names
                .chain
                .clone()
                .or(fw.chain.clone())
                .unwrap_or_else(|| name(DEFAULT_CHAIN)),
            persist: !w.no_persist && fw.persist.unwrap_or(true),
            backend: names
                .backend
                .or(self.flags.backend)
                .or(fw.backend)
                .unwrap_or_default(),
            mode: if w.audit {
                policy::FirewallMode::Audit
            } else {
                fw.mode.unwrap_or_default()
            },
            audit_size: match w.audit_size.or(fw.audit_size) {
                Some(n @ 1..=1_048_576) => n,
                Some(n) => bail!(
                    "{}: {n} is no audit set size (1 to 1048576 flows per family)",
                    self.from(w.audit_size.is_some(), "audit-size", "firewall.audit_size")
                ),
                None => policy::DEFAULT_AUDIT_SIZE,
            },
        })
    }

    /// The DNS resolvers the nodes use: single addresses only.
    fn resolvers(&self) -> Result<Vec<Net>> {
        let w = self.whitelist;
        let resolvers = list_setting(
            &w.resolvers,
            self.config.whitelist.resolvers.clone(),
            &policy::DEFAULT_RESOLVERS,
        );
        if let Some(net) = resolvers.iter().find(|r| !r.is_address()) {
            let from = self.from(!w.resolvers.is_empty(), "resolver", "whitelist.resolvers");
            bail!("{from}: {net} is a network; a DNS resolver is one address");
        }
        Ok(resolvers)
    }

    /// The IPv4 and IPv6 set names, which must not clash with each other or
    /// with the temporary set palisade makes beside the other.
    fn sets(&self) -> Result<(SetName, SetName)> {
        let (names, fw) = (self.names, &self.config.firewall);
        // Where a set's name came from: the flag, the file's key, or the default.
        let set_from = |flag: bool, file: bool, v: char| match (flag, file) {
            (true, _) => format!("--set{v}"),
            (false, true) => format!("{}: firewall.set{v}", self.config_name),
            (false, false) => format!("--set{v} (default)"),
        };
        let set4_from = set_from(names.set4.is_some(), fw.set4.is_some(), '4');
        let set6_from = set_from(names.set6.is_some(), fw.set6.is_some(), '6');
        let set4: SetName = names
            .set4
            .clone()
            .or(fw.set4.clone())
            .unwrap_or_else(|| name(DEFAULT_SET4));
        let set6: SetName = names
            .set6
            .clone()
            .or(fw.set6.clone())
            .unwrap_or_else(|| name(DEFAULT_SET6));
        match policy::set_clash(&set4, &set6) {
            None => Ok((set4, set6)),
            Some(policy::SetClash::Same(n)) => {
                bail!("{set4_from} and {set6_from} are both {n:?}: the IPv4 and IPv6 sets need a name each")
            }
            Some(policy::SetClash::Temporary {
                set,
                name,
                of,
                suffix,
            }) => {
                let (from, of_from) = match set {
                    policy::Family::V4 => (&set4_from, &set6_from),
                    policy::Family::V6 => (&set6_from, &set4_from),
                };
                bail!(
                    "{from}: {name:?} is the name palisade gives the temporary set ({suffix}) it makes beside {of_from} {of:?} \
                     while it changes or rolls back that set; choose another name"
                )
            }
        }
    }

    fn port(&self) -> Result<u16> {
        match self.ssh.port.or(self.config.ssh.port).unwrap_or(DEFAULT_PORT) {
            0 => bail!(
                "{}: port 0 is no port (1 to 65535)",
                self.from(self.ssh.port.is_some(), "port", "ssh.port")
            ),
            p => Ok(p),
        }
    }

    /// A timeout in whole seconds, from 1 to an hour: a step or a login that
    /// takes longer has hung.
    fn seconds(
        &self,
        flag: Option<u64>,
        file: Option<u64>,
        default: u64,
        name: &str,
        key: &str,
    ) -> Result<Duration> {
        match flag.or(file).unwrap_or(default) {
            0 => bail!(
                "{} must be at least 1 second",
                self.from(flag.is_some(), name, key)
            ),
            n if n > 3600 => bail!(
                "{} must be at most 3600 seconds (got {n})",
                self.from(flag.is_some(), name, key)
            ),
            n => Ok(Duration::from_secs(n)),
        }
    }

    fn retries(&self) -> Result<u32> {
        match self
            .ssh
            .retries
            .or(self.config.ssh.retries)
            .unwrap_or(DEFAULT_RETRIES)
        {
            // Each attempt backs off longer: ten is already minutes.
            n if n > 10 => bail!(
                "{} must be at most 10 (got {n})",
                self.from(self.ssh.retries.is_some(), "retries", "ssh.retries")
            ),
            n => Ok(n),
        }
    }

    /// The SSH settings flags or the file decided, each with where it came
    /// from: ssh_config is not asked for those.
    fn ssh_given(&self) -> SshGiven {
        let (ssh, file) = (self.ssh, &self.config.ssh);
        SshGiven {
            user: self.given(ssh.user.is_some(), file.user.is_some(), "user", "ssh.user"),
            key: self.given(ssh.key.is_some(), file.key.is_some(), "key", "ssh.key"),
            certificate: self.given(
                ssh.certificate.is_some(),
                file.certificate.is_some(),
                "certificate",
                "ssh.certificate",
            ),
            port: self.given(ssh.port.is_some(), file.port.is_some(), "port", "ssh.port"),
            jump: self.given(ssh.jump.is_some(), file.jump.is_some(), "jump", "ssh.jump"),
            known_hosts: self.given(
                ssh.known_hosts.is_some(),
                file.known_hosts.is_some(),
                "known-hosts",
                "ssh.known_hosts",
            ),
            checking: self.given(
                ssh.host_key_checking.is_some(),
                file.host_key_checking.is_some(),
                "host-key-checking",
                "ssh.host_key_checking",
            ),
            connect_timeout: self.given(
                ssh.connect_timeout.is_some(),
                file.connect_timeout.is_some(),
                "connect-timeout",
                "ssh.connect_timeout",
            ),
        }
    }

    /// The ssh_config to read: the one named (`none` for none), else
    /// `~/.ssh/config` if there is a home.
    fn ssh_config(&self) -> Option<(PathBuf, bool)> {
        match self.ssh.ssh_config.clone().or(self.config.ssh.ssh_config.clone()) {
            Some(p) if p.as_path() == Path::new("none") => None,
            Some(p) => Some((p, true)),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| (Path::new(&h).join(".ssh").join("config"), false)),
        }
    }
}

/// A login name as useradd(8) takes it, or a directory one
/// (`user@domain`, SSSD): the name is only ever sent to sshd and printed,
/// but a name no node can have is a typo.
pub(crate) fn is_login(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && !u.starts_with(['-', '@'])
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// A list setting: the flag's values when given (they replace the file's),
/// else the file's list, else palisade's defaults.
fn list_setting<T: Clone + std::str::FromStr>(flag: &[T], file: Option<Vec<T>>, default: &[&str]) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    if !flag.is_empty() {
        return flag.to_vec();
    }
    file.unwrap_or_else(|| default.iter().map(|d| name(d)).collect())
}

/// One of palisade's default names, which are valid by construction.
fn name<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    text.parse().expect("palisade's default names are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    /// Settings from `args` and a config file holding `toml`.
    fn resolve(toml: &str, args: &[&str]) -> Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("palisade.toml");
        std::fs::write(&config, toml).unwrap();
        let mut argv = vec![
            "palisade",
            "apply",
            "--config",
            config.to_str().unwrap(),
            "--inventory",
            "h.toml",
        ];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        Settings::resolve(&cli.flags().unwrap())
    }

    fn error(toml: &str, args: &[&str]) -> String {
        match resolve(toml, args) {
            Ok(_) => panic!("{toml:?} {args:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn numbers_are_checked_and_the_message_names_flag_or_key() {
        assert!(
            error("[ssh]\nport = 0\n", &[])
                .ends_with("palisade.toml: ssh.port: port 0 is no port (1 to 65535)")
        );
        let e = error("[firewall]\nconfirm_timeout = 4\n", &[]);
        assert!(
            e.ends_with("palisade.toml: firewall.confirm_timeout must be at least 5 seconds (got 4)"),
            "{e}"
        );
        let e = error("", &["--confirm-timeout", "4000"]);
        assert_eq!(e, "--confirm-timeout must be at most 3600 seconds (got 4000)");
        let e = error("[ssh]\ntimeout = 0\n", &[]);
        assert!(
            e.ends_with("palisade.toml: ssh.timeout must be at least 1 second"),
            "{e}"
        );
        let e = error("", &["--resolver", "8.8.8.0/24"]);
        assert_eq!(
            e,
            "--resolver: 8.8.8.0/24 is a network; a DNS resolver is one address"
        );
        let e = error("[whitelist]\nresolvers = [\"10.0.0.0/8\"]\n", &[]);
        assert!(
            e.ends_with(
                "palisade.toml: whitelist.resolvers: 10.0.0.0/8 is a network; a DNS resolver is one address"
            ),
            "{e}"
        );
        assert!(resolve("[ssh]\nport = 2222\n", &[]).is_ok_and(|s| s.port == 2222));
    }

    #[test]
    fn ssh_config_is_asked_only_for_what_flags_and_the_file_leave_open() {
        let s = resolve(
            "[ssh]\nuser = \"ops\"\nssh_config = \"ssh.conf\"\n",
            &["--port", "2222"],
        )
        .unwrap();
        assert!(
            s.ssh_given
                .user
                .as_deref()
                .is_some_and(|f| f.ends_with("palisade.toml: ssh.user"))
        );
        assert_eq!(s.ssh_given.port.as_deref(), Some("--port"));
        assert_eq!(s.ssh_given.key, None);
        // Relative to palisade.toml, and named: it must exist.
        let (path, named) = s.ssh_config.unwrap();
        assert!(
            path.ends_with("ssh.conf") && path.is_absolute() && named,
            "{path:?}"
        );
        // `none`, from the file or the flag, reads none.
        assert!(
            resolve("[ssh]\nssh_config = \"none\"\n", &[])
                .unwrap()
                .ssh_config
                .is_none()
        );
        assert!(
            resolve("", &["--ssh-config", "none"])
                .unwrap()
                .ssh_config
                .is_none()
        );
        let flag = resolve("[ssh]\nssh_config = \"none\"\n", &["--ssh-config", "/x"]).unwrap();
        assert_eq!(flag.ssh_config, Some((PathBuf::from("/x"), true)));
    }

    #[test]
    fn flags_refuse_zero_ports_and_forks() {
        for (flag, value, says) in [
            ("--port", "0", "0 is not in 1..=65535"),
            ("--forks", "0", "must be at least 1"),
        ] {
            let err = Cli::try_parse_from(["palisade", "ping", flag, value])
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{flag} {value}: {err}");
        }
    }
}
