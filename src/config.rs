//! `palisade.toml`, and the settings a run uses once flags are laid over it.
//!
//! Paths in the file are relative to the file, so a config committed next to
//! the Terraform works from any directory. A flag always wins over the file;
//! the list flags (`--allow`, `--extra`) add to the file's lists, because
//! silently dropping an operator's address from the whitelist is the one
//! surprise a firewall tool must not spring.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::inventory::{RoleRule, RoleRules, Source};
use crate::net::Net;

pub const DEFAULT_CONFIG: &str = "palisade.toml";
pub const DEFAULT_STATE: &str = "terraform.tfstate";
pub const DEFAULT_USER: &str = "core";

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub state: Option<PathBuf>,
    pub inventory: Option<PathBuf>,
    #[serde(default)]
    pub ssh: SshConfig,
    #[serde(default)]
    pub whitelist: WhitelistConfig,
    #[serde(default)]
    pub terraform: TerraformConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    pub user: Option<String>,
    pub key: Option<PathBuf>,
    pub port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistConfig {
    #[serde(default)]
    pub allow: Vec<Net>,
    #[serde(default)]
    pub extra: Vec<Net>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerraformConfig {
    /// Resource types that are devices, besides the built-in three.
    #[serde(default)]
    pub device_types: Vec<String>,
    /// Resource name patterns and their roles, tried before the built-in names.
    #[serde(default)]
    pub roles: Vec<RoleRule>,
}

impl Config {
    /// Reads the file; `explicit` says whether the operator named it (then it
    /// must exist) or we are looking for the default one.
    pub fn load(path: &Path, explicit: bool) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read config", path.display())),
        };
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [&mut config.state, &mut config.inventory, &mut config.ssh.key]
            .into_iter()
            .flatten()
        {
            if p.as_path() != Path::new("-") && p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }
}

/// What one run uses: the config with the flags laid over it.
#[derive(Debug)]
pub struct Settings {
    pub source: Source,
    pub roles: RoleRules,
    pub json: bool,
    pub user: String,
    pub key: Option<PathBuf>,
    pub port: u16,
    /// Operator addresses, config first, then flags.
    pub allow: Vec<Net>,
    pub extra: Vec<Net>,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings> {
        let config = match &args.config {
            Some(path) => Config::load(path, true)?,
            None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
        };
        let config_name = args
            .config
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CONFIG))
            .display();
        let source = match (&args.state, &args.inventory) {
            (Some(state), _) => Source::Terraform(state.clone()),
            (None, Some(inv)) => Source::Static(inv.clone()),
            (None, None) => match (config.state, config.inventory) {
                (Some(_), Some(_)) => bail!("{config_name}: set either `state` or `inventory`, not both"),
                (Some(state), None) => Source::Terraform(state),
                (None, Some(inv)) => Source::Static(inv),
                (None, None) => Source::Terraform(PathBuf::from(DEFAULT_STATE)),
            },
        };
        let roles = RoleRules::new(&config.terraform.device_types, &config.terraform.roles)
            .map_err(|e| anyhow::anyhow!("{config_name}: terraform.roles: {e}"))?;
        let user = args
            .ssh
            .user
            .clone()
            .or(config.ssh.user)
            .unwrap_or_else(|| DEFAULT_USER.into());
        if user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
            bail!("ssh user {user:?} is not a valid user name");
        }
        let mut allow = config.whitelist.allow;
        allow.extend(args.whitelist.allow.iter().copied());
        let mut extra = config.whitelist.extra;
        extra.extend(args.whitelist.extra.iter().copied());
        Ok(Settings {
            source,
            roles,
            json: args.json,
            user,
            key: args.ssh.key.clone().or(config.ssh.key),
            port: args.ssh.port.or(config.ssh.port).unwrap_or(22),
            allow,
            extra,
        })
    }
}
