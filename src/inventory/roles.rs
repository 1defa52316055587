//! How Terraform resources become nodes: which resource types are machines
//! (the type table), which address palisade connects to, and what role each
//! node plays. [`RoleRules`] carries all three because `load` needs all
//! three; it is named for the role mapping it started as.
//!
//! The Packet DC/OS Terraform names its devices `dcos_master`, `dcos_agent`,
//! … and forks rename them, so the mapping is data: rules from the config are
//! tried first, in order, then the built-in names. Fleets built by other
//! Terraform say the role in a tag or label instead (`--role-tag role`):
//! then the tag's value decides, and the name rule is the fallback for
//! machines without the tag. A node that matches nothing is still a node
//! (role `node`): it gets whitelisted and firewalled.

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use super::Role;
use super::address::ConnectOrder;
use super::types::{DeviceType, TypeSpec, Types};

const BUILTIN: [(&str, Role); 4] = [
    ("dcos_bootstrap", Role::Bootstrap),
    ("dcos_master", Role::Master),
    ("dcos_agent", Role::Agent),
    ("dcos_public_agent", Role::PublicAgent),
];

/// One configured rule, as written in `palisade.toml`:
/// `[[terraform.roles]] resource = "mesos_master*"  role = "master"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleRule {
    /// A glob over the resource *name* (`dcos_master`, not the type), or
    /// over the `--role-tag` value.
    pub(crate) resource: String,
    pub(crate) role: Role,
}

/// The compiled mapping, with the type table and the address choice.
#[derive(Clone, Debug, Default)]
pub struct RoleRules {
    types: Types,
    rules: Vec<(GlobMatcher, Role)>,
    role_tag: Option<String>,
    connect_via: ConnectOrder,
    /// `--skip-addressless`: machines the state holds no address for are
    /// left out (and named on stderr) instead of refusing the state.
    skip_addressless: bool,
}

impl RoleRules {
    /// The built-in mapping plus `device_types` (the old form: extra types
    /// read as Packet-shaped) and rules from the config. A bad glob is
    /// reported with the pattern.
    pub(crate) fn new(extra_types: &[String], rules: &[RoleRule]) -> Result<RoleRules, String> {
        let mut out = RoleRules::default();
        out.types.add_legacy(extra_types);
        for rule in rules {
            let glob =
                Glob::new(&rule.resource).map_err(|e| format!("role pattern {:?}: {e}", rule.resource))?;
            out.rules.push((glob.compile_matcher(), rule.role));
        }
        Ok(out)
    }

    /// Adds `[terraform.types.NAME]` tables; they win over built-in types
    /// and over `device_types` of the same name.
    pub(crate) fn with_types(mut self, specs: &BTreeMap<String, TypeSpec>) -> Result<RoleRules, String> {
        self.types.add_specs(specs)?;
        Ok(self)
    }

    /// Reads roles from this tag or label first (`--role-tag`).
    pub fn with_role_tag(mut self, key: Option<String>) -> RoleRules {
        self.role_tag = key.filter(|k| !k.is_empty());
        self
    }

    pub(crate) fn with_connect_via(mut self, via: ConnectOrder) -> RoleRules {
        self.connect_via = via;
        self
    }

    /// Leaves out machines the state holds no address for (`--skip-addressless`).
    pub(crate) fn with_skip_addressless(mut self, skip: bool) -> RoleRules {
        self.skip_addressless = skip;
        self
    }

    pub(crate) fn skip_addressless(&self) -> bool {
        self.skip_addressless
    }

    pub(super) fn device_type(&self, resource_type: &str) -> Option<&DeviceType> {
        self.types.get(resource_type)
    }

    pub(crate) fn is_device(&self, resource_type: &str) -> bool {
        self.types.get(resource_type).is_some()
    }

    /// Whether the format readers hand resources of this type over: the
    /// machine types, and the types that hold a machine's addresses
    /// elsewhere (`joins`).
    pub(super) fn is_read(&self, resource_type: &str) -> bool {
        self.is_device(resource_type) || super::joins::is_source(resource_type)
    }

    pub(crate) fn role_tag(&self) -> Option<&str> {
        self.role_tag.as_deref()
    }

    pub(crate) fn connect_via(&self) -> &ConnectOrder {
        &self.connect_via
    }

    /// The role a resource name gives: configured globs, then the DC/OS
    /// Terraform's names.
    pub(crate) fn role(&self, resource_name: &str) -> Role {
        if let Some((_, role)) = self.rules.iter().find(|(g, _)| g.is_match(resource_name)) {
            return *role;
        }
        BUILTIN
            .iter()
            .find(|(name, _)| *name == resource_name)
            .map_or(Role::Node, |(_, role)| *role)
    }

    /// The role a `--role-tag` value gives: configured globs, then a role's
    /// own name (any case, `_` or blanks for `-`), then the DC/OS
    /// Terraform's names. A value that names no role gives none: the
    /// caller falls back to the resource name (and says so), rather than
    /// making a tagged master a plain node.
    pub(crate) fn role_from_tag(&self, value: &str) -> Option<Role> {
        if let Some((_, role)) = self.rules.iter().find(|(g, _)| g.is_match(value)) {
            return Some(*role);
        }
        let spelled = value
            .split(|c: char| c == '_' || c == '-' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-")
            .to_ascii_lowercase();
        if let Ok(role) = spelled.parse() {
            return Some(role);
        }
        BUILTIN
            .iter()
            .find(|(name, _)| *name == value.trim())
            .map(|(_, role)| *role)
    }

    /// The configured rules (`--role`, `terraform.roles`) that match none
    /// of `tried` (the resource names and `--role-tag` values of a fleet),
    /// as `"GLOB" = ROLE`: a typo in a pattern otherwise leaves every
    /// machine it meant a plain node without a word.
    pub(crate) fn unmatched<'t>(&self, tried: impl Iterator<Item = &'t str> + Clone) -> Vec<String> {
        self.rules
            .iter()
            .filter(|(glob, _)| !tried.clone().any(|t| glob.is_match(t)))
            .map(|(glob, role)| format!("\"{}\"={role}", crate::text::escape(glob.glob().glob())))
            .collect()
    }

    /// Every machine type, for "looked for" messages.
    pub(crate) fn describe_types(&self) -> String {
        self.types.names().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_and_fallback() {
        let r = RoleRules::default();
        assert_eq!(r.role("dcos_master"), Role::Master);
        assert_eq!(r.role("dcos_public_agent"), Role::PublicAgent);
        assert_eq!(r.role("dcos_bootstrap"), Role::Bootstrap);
        assert_eq!(r.role("dcos_agent"), Role::Agent);
        assert_eq!(r.role("web"), Role::Node);
        assert!(r.is_device("equinix_metal_device"));
        assert!(r.is_device("hcloud_server"));
        assert!(!r.is_device("packet_ssh_key"));
        assert!(r.connect_via().is_public_only());
        assert_eq!(r.role_tag(), None);
    }

    #[test]
    fn configured_rules_win_and_types_extend() {
        let rules = [RoleRule {
            resource: "mesos_*master*".into(),
            role: Role::Master,
        }];
        let r = RoleRules::new(&["custom_device".into()], &rules).unwrap();
        assert_eq!(r.role("mesos_master"), Role::Master);
        assert_eq!(r.role("dcos_agent"), Role::Agent);
        assert_eq!(
            r.unmatched(["dcos_agent"].into_iter()),
            ["\"mesos_*master*\"=master"]
        );
        assert!(r.unmatched(["mesos_master"].into_iter()).is_empty());
        assert!(r.is_device("custom_device"));
        assert!(r.is_device("packet_device"));
    }

    #[test]
    fn tag_values_name_roles_or_match_rules() {
        let rules = [RoleRule {
            resource: "edge-*".into(),
            role: Role::PublicAgent,
        }];
        let r = RoleRules::new(&[], &rules)
            .unwrap()
            .with_role_tag(Some("role".into()));
        assert_eq!(r.role_tag(), Some("role"));
        assert_eq!(r.role_from_tag("master"), Some(Role::Master));
        assert_eq!(r.role_from_tag("Public_Agent"), Some(Role::PublicAgent));
        assert_eq!(r.role_from_tag("public-agent"), Some(Role::PublicAgent));
        assert_eq!(r.role_from_tag("Public Agent"), Some(Role::PublicAgent));
        assert_eq!(r.role_from_tag(" public  agent "), Some(Role::PublicAgent));
        assert_eq!(r.role_from_tag("edge-lb"), Some(Role::PublicAgent));
        assert_eq!(r.role_from_tag("dcos_bootstrap"), Some(Role::Bootstrap));
        assert_eq!(r.role_from_tag("node"), Some(Role::Node));
        assert_eq!(r.role_from_tag("database"), None);
        assert_eq!(r.role_from_tag("mastr\u{1b}[31m"), None);
        assert_eq!(
            RoleRules::default().with_role_tag(Some(String::new())).role_tag(),
            None
        );
    }

    #[test]
    fn bad_glob_names_the_pattern() {
        let rules = [RoleRule {
            resource: "a[".into(),
            role: Role::Master,
        }];
        let err = RoleRules::new(&[], &rules).unwrap_err();
        assert!(err.contains("\"a[\""), "{err}");
    }
}
