//! Which Terraform resources are nodes, and what role each plays.
//!
//! The Packet DC/OS Terraform names its devices `dcos_master`, `dcos_agent`,
//! … and forks rename them, so the mapping is data: rules from the config are
//! tried first, in order, then the built-in names. A device that matches no
//! rule is still a node (role `node`): it gets whitelisted and firewalled.

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use super::Role;

/// Resource types that are bare-metal devices, across the provider's renames
/// (Packet, then Equinix Metal, then the Equinix provider).
pub const DEVICE_TYPES: [&str; 3] = ["packet_device", "metal_device", "equinix_metal_device"];

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
pub struct RoleRule {
    /// A glob over the resource *name* (`dcos_master`, not the type).
    pub resource: String,
    pub role: Role,
}

/// The compiled mapping.
#[derive(Clone, Debug)]
pub struct RoleRules {
    types: Vec<String>,
    rules: Vec<(GlobMatcher, Role)>,
}

impl Default for RoleRules {
    fn default() -> Self {
        RoleRules {
            types: DEVICE_TYPES.iter().map(|t| t.to_string()).collect(),
            rules: Vec::new(),
        }
    }
}

impl RoleRules {
    /// The built-in mapping plus extra device types and rules from the
    /// config. A bad glob is reported with the pattern.
    pub fn new(extra_types: &[String], rules: &[RoleRule]) -> Result<RoleRules, String> {
        let mut out = RoleRules::default();
        for t in extra_types {
            if !out.types.contains(t) {
                out.types.push(t.clone());
            }
        }
        for rule in rules {
            let glob =
                Glob::new(&rule.resource).map_err(|e| format!("role pattern {:?}: {e}", rule.resource))?;
            out.rules.push((glob.compile_matcher(), rule.role));
        }
        Ok(out)
    }

    pub fn is_device(&self, resource_type: &str) -> bool {
        self.types.iter().any(|t| t == resource_type)
    }

    pub fn role(&self, resource_name: &str) -> Role {
        if let Some((_, role)) = self.rules.iter().find(|(g, _)| g.is_match(resource_name)) {
            return *role;
        }
        BUILTIN
            .iter()
            .find(|(name, _)| *name == resource_name)
            .map_or(Role::Node, |(_, role)| *role)
    }

    pub fn describe_types(&self) -> String {
        self.types.join(", ")
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
        assert!(!r.is_device("packet_ssh_key"));
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
        assert!(r.is_device("custom_device"));
        assert!(r.is_device("packet_device"));
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
