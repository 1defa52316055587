//! Which Terraform resource types are machines, and where each keeps its
//! addresses, its name and its tags: one table, as data.
//!
//! Every provider names these attributes differently (`public_ip`,
//! `ipv4_address`, `main_ip`, `network_interface[*].access_config[*].nat_ip`),
//! so a type is a set of attribute paths (see `path`) by meaning:
//!
//! - `public`: public addresses. The SSH address is the first IPv4 the first
//!   of these paths yields (the lowest, when one path yields several);
//! - `private`: private addresses (used with `--connect-via private`);
//! - `addresses`: addresses the provider does not classify (guest-agent
//!   reports, OpenStack fixed IPs), public or private by their range;
//! - `name`: the node's name, first non-empty one wins, else the resource
//!   address;
//! - `tags`: maps, lists of `KEY:VALUE` / `KEY=VALUE` strings, or lists of
//!   `{name|key, value}` objects, where `--role-tag` looks.
//!
//! Every address found goes into the whitelist. Operators add or reshape
//! types with `[terraform.types.NAME]` in `palisade.toml` ([`TypeSpec`]).
//! Secret attributes are never named here, a configured path that names one
//! anywhere is refused, and `[*]` over a map passes secret keys over, so
//! palisade never reads (and cannot print) them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::path::AttrPath;

/// One row of the built-in table.
struct Builtin {
    /// Resource types sharing this layout.
    types: &'static [&'static str],
    public: &'static [&'static str],
    private: &'static [&'static str],
    addresses: &'static [&'static str],
    name: &'static [&'static str],
    tags: &'static [&'static str],
}

/// The Packet layout, which `device_types` (the old form) also means.
const PACKET: Builtin = Builtin {
    // packethost/terraform-provider-packet docs/resources/device.md and
    // equinix/terraform-provider-equinix docs/resources/equinix_metal_device.md:
    // access_* since 2017-09; before that only `network` entries, in API
    // order, told apart by `public` (and `family`, which the address says).
    types: &["packet_device", "metal_device", "equinix_metal_device"],
    public: &[
        "access_public_ipv4",
        "access_public_ipv6",
        "network[public=true].address",
    ],
    private: &["access_private_ipv4", "network[public=false].address"],
    // Entries without a `public` flag still belong to the node.
    addresses: &["network[*].address"],
    name: &["hostname"],
    tags: &["tags"],
};

const BUILTIN: &[Builtin] = &[
    PACKET,
    Builtin {
        // hashicorp/terraform-provider-aws website/docs/r/instance.html.markdown
        // and spot_instance_request.html.markdown (which exports the same
        // public_ip / private_ip). IPv6 addresses are global unicast as a rule,
        // so they are classified by range.
        types: &["aws_instance", "aws_spot_instance_request"],
        public: &["public_ip"],
        private: &["private_ip", "secondary_private_ips[*]"],
        addresses: &["ipv6_addresses[*]"],
        name: &["tags.Name", "tags_all.Name"],
        tags: &["tags", "tags_all"],
    },
    Builtin {
        // hashicorp/terraform-provider-google website/docs/r/compute_instance.html.markdown:
        // network_interface.N.network_ip, .access_config.N.nat_ip,
        // .ipv6_access_config.N.external_ipv6, .ipv6_address (internal IPv6);
        // `address` and `assigned_nat_ip` are the pre-2018 names.
        types: &["google_compute_instance"],
        public: &[
            "network_interface[*].access_config[*].nat_ip",
            "network_interface[*].access_config[*].assigned_nat_ip",
            "network_interface[*].ipv6_access_config[*].external_ipv6",
        ],
        private: &["network_interface[*].network_ip", "network_interface[*].address"],
        addresses: &["network_interface[*].ipv6_address"],
        name: &["name"],
        tags: &["labels", "effective_labels"],
    },
    Builtin {
        // hashicorp/terraform-provider-azurerm website/docs/r/linux_virtual_machine.html.markdown
        types: &["azurerm_linux_virtual_machine"],
        public: &["public_ip_address", "public_ip_addresses[*]"],
        private: &["private_ip_address", "private_ip_addresses[*]"],
        addresses: &[],
        name: &["computer_name", "name"],
        tags: &["tags"],
    },
    Builtin {
        // virtual_machine.html.markdown and windows_virtual_machine.html.markdown:
        // these hold no address themselves, only `network_interface_ids`;
        // the addresses are joined from the NICs and their public IPs
        // (`joins`).
        types: &["azurerm_virtual_machine", "azurerm_windows_virtual_machine"],
        public: &[],
        private: &[],
        addresses: &[],
        // (`os_profile` holds the admin password: never read.)
        name: &["computer_name", "name"],
        tags: &["tags"],
    },
    Builtin {
        // hetznercloud/terraform-provider-hcloud website/docs/r/server.html.md:
        // ipv4_address, ipv6_address (the first address of ipv6_network),
        // network[].ip and alias_ips for private networks.
        types: &["hcloud_server"],
        public: &["ipv4_address", "ipv6_address"],
        private: &["network[*].ip", "network[*].alias_ips[*]"],
        addresses: &[],
        name: &["name"],
        tags: &["labels"],
    },
    Builtin {
        // digitalocean/terraform-provider-digitalocean docs/resources/droplet.md
        // (`ipv6` is the boolean switch, not an address).
        types: &["digitalocean_droplet"],
        public: &["ipv4_address", "ipv6_address"],
        private: &["ipv4_address_private"],
        addresses: &[],
        name: &["name"],
        tags: &["tags"],
    },
    Builtin {
        // linode/terraform-provider-linode docs/resources/instance.md: ipv4 is
        // the set of every IPv4 (public and private); ipv6 is the SLAAC
        // address with its /128.
        types: &["linode_instance"],
        public: &["ip_address", "ipv6"],
        private: &["private_ip_address"],
        addresses: &["ipv4[*]"],
        name: &["label"],
        tags: &["tags"],
    },
    Builtin {
        // vultr/terraform-provider-vultr website/docs/r/instance.html.markdown
        // and bare_metal_server.html.markdown (`tag` is the older single tag).
        types: &["vultr_instance", "vultr_bare_metal_server"],
        public: &["main_ip", "v6_main_ip"],
        private: &["internal_ip"],
        addresses: &[],
        name: &["hostname", "label"],
        tags: &["tags", "tag"],
    },
    Builtin {
        // terraform-provider-openstack website/docs/r/compute_instance_v2.html.markdown:
        // access_ip_v4/v6 are "the first detected fixed address", which is a
        // tenant (private) or provider (public) address depending on the
        // cloud, so fixed addresses are classified by range; floating_ip (top
        // level and per network) is the pre-1.0 floating address.
        types: &["openstack_compute_instance_v2"],
        public: &["floating_ip", "network[*].floating_ip"],
        private: &[],
        addresses: &[
            "access_ip_v4",
            "access_ip_v6",
            "network[*].fixed_ip_v4",
            "network[*].fixed_ip_v6",
        ],
        name: &["name"],
        tags: &["tags", "metadata", "all_metadata"],
    },
    Builtin {
        // dmacvicar/terraform-provider-libvirt website/docs/r/domain.html.markdown
        // (provider 0.8 and earlier; 0.9 rewrote the schema and keeps no
        // addresses on the domain).
        types: &["libvirt_domain"],
        public: &[],
        private: &[],
        addresses: &["network_interface[*].addresses[*]"],
        name: &["name"],
        tags: &[],
    },
    Builtin {
        // hashicorp/terraform-provider-vsphere website/docs/r/virtual_machine.html.markdown:
        // what VMware Tools reports; its tags are tag IDs, not key/value.
        types: &["vsphere_virtual_machine"],
        public: &[],
        private: &[],
        addresses: &["default_ip_address", "guest_ip_addresses[*]"],
        name: &["name"],
        tags: &[],
    },
    Builtin {
        // scaleway/terraform-provider-scaleway docs/resources/instance_server.md
        // (public_ip, private_ip, ipv6_address) and internal/services/instance/server.go
        // (public_ips[].address with family inet/inet6, private_ips[].address).
        types: &["scaleway_instance_server"],
        public: &["public_ip", "public_ips[*].address", "ipv6_address"],
        private: &["private_ip", "private_ips[*].address"],
        addresses: &[],
        name: &["name"],
        tags: &["tags"],
    },
    Builtin {
        // latitudesh/terraform-provider-latitudesh docs/resources/server.md
        // (primary_ipv4; primary_ipv6 where the schema has it).
        types: &["latitudesh_server"],
        public: &["primary_ipv4", "primary_ipv6"],
        private: &[],
        addresses: &[],
        name: &["hostname"],
        tags: &["tags"],
    },
    Builtin {
        // cherryservers/terraform-provider-cherryservers: primary_ip and
        // private_ip (SDKv2 provider), ip_addresses[] with type primary-ip,
        // floating-ip, private-ip (docs/resources/server.md since 1.0).
        types: &["cherryservers_server"],
        public: &[
            "primary_ip",
            "ip_addresses[type=primary-ip].address",
            "ip_addresses[type=floating-ip].address",
        ],
        private: &["private_ip", "ip_addresses[type=private-ip].address"],
        addresses: &["ip_addresses[*].address"],
        name: &["hostname", "name"],
        tags: &["tags"],
    },
    Builtin {
        // phoenixnap/terraform-provider-pnap docs/resources/server.md: tags
        // are blocks holding a tag_assignment {name, value}.
        types: &["pnap_server"],
        public: &["public_ip_addresses[*]"],
        private: &["private_ip_addresses[*]"],
        addresses: &[],
        name: &["hostname"],
        tags: &["tags[*].tag_assignment"],
    },
    Builtin {
        // ovh/terraform-provider-ovh docs/resources/dedicated_server.md: `ip`
        // is the server's IPv4; tags live under iam.
        types: &["ovh_dedicated_server"],
        public: &["ip"],
        private: &[],
        addresses: &[],
        name: &["display_name", "name", "service_name"],
        tags: &["iam.tags"],
    },
];

/// Attributes (and map keys) that hold secrets in some provider's schema,
/// written with `_`: `user-data` and `startup-script` (instance metadata
/// keys) are the same names. No path may name one anywhere, and `[*]` over
/// a map passes them over: what palisade never reads, it can never print.
const SECRETS: &[&str] = &[
    "admin_pass",
    "admin_password",
    "bmc",
    "cloud_init",
    "config_drive_user_data",
    "custom_data",
    "customizations",
    "customize",
    "default_password",
    "extra_config",
    "metadata_startup_script",
    "netris_controller",
    "os_profile",
    "password",
    "password_data",
    "post_installation_script",
    "private_key",
    "root_pass",
    "root_password",
    "stackscript_data",
    "startup_script",
    "user_data",
    "user_data_base64",
    "vapp",
];

/// Whether an attribute or map key holds secrets in some provider's schema
/// (any case, `-` or `_`).
pub(crate) fn is_secret(name: &str) -> bool {
    let spelled = name.to_ascii_lowercase().replace('-', "_");
    SECRETS.contains(&spelled.as_str())
}

/// Where one machine type keeps what palisade reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceType {
    pub(crate) public: Vec<AttrPath>,
    pub(crate) private: Vec<AttrPath>,
    pub(crate) addresses: Vec<AttrPath>,
    pub(crate) name: Vec<AttrPath>,
    pub(crate) tags: Vec<AttrPath>,
    /// Came from `device_types`, the old form that assumes the Packet
    /// layout: errors then say how to describe the type properly.
    pub(crate) legacy: bool,
}

/// `[terraform.types.NAME]` in palisade.toml. `like` starts from a built-in
/// type's layout (a built-in type's own name starts from its own); every
/// list given replaces that field's paths.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct TypeSpec {
    pub(crate) like: Option<String>,
    pub(crate) public: Option<Vec<String>>,
    pub(crate) private: Option<Vec<String>>,
    pub(crate) addresses: Option<Vec<String>>,
    pub(crate) name: Option<Vec<String>>,
    pub(crate) tags: Option<Vec<String>>,
}

/// Every machine type a run knows, by resource type name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Types {
    by_name: BTreeMap<String, DeviceType>,
}

impl Default for Types {
    fn default() -> Self {
        let mut by_name = BTreeMap::new();
        for row in BUILTIN {
            let kind = builtin(row);
            for name in row.types {
                by_name.insert((*name).to_owned(), kind.clone());
            }
        }
        Types { by_name }
    }
}

fn builtin(row: &Builtin) -> DeviceType {
    let parse = |paths: &[&str]| -> Vec<AttrPath> {
        paths
            .iter()
            .map(|p| AttrPath::parse(p).expect("built-in paths are valid (unit-tested)"))
            .collect()
    };
    DeviceType {
        public: parse(row.public),
        private: parse(row.private),
        addresses: parse(row.addresses),
        name: parse(row.name),
        tags: parse(row.tags),
        legacy: false,
    }
}

impl Types {
    pub(crate) fn get(&self, resource_type: &str) -> Option<&DeviceType> {
        self.by_name.get(resource_type)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Adds `device_types` (the old form): each unknown name read as
    /// Packet-shaped. Built-in types keep their own layout.
    pub(crate) fn add_legacy(&mut self, names: &[String]) {
        for name in names {
            if !self.by_name.contains_key(name) {
                let mut kind = builtin(&PACKET);
                kind.legacy = true;
                self.by_name.insert(name.clone(), kind);
            }
        }
    }

    /// Adds or replaces types from `[terraform.types.NAME]` tables. Errors
    /// name the table and field: `terraform.types.my_vm.public[1]: ...`.
    pub(crate) fn add_specs(&mut self, specs: &BTreeMap<String, TypeSpec>) -> Result<(), String> {
        let builtins = Types::default();
        for (name, spec) in specs {
            let at = format!("terraform.types.{name}");
            // A built-in type's own name starts from its own layout.
            let like = spec.like.as_ref().or(builtins.get(name).map(|_| name));
            let mut kind = match like {
                None => DeviceType {
                    public: Vec::new(),
                    private: Vec::new(),
                    addresses: Vec::new(),
                    name: Vec::new(),
                    tags: Vec::new(),
                    legacy: false,
                },
                Some(like) => builtins
                    .get(like)
                    .cloned()
                    .ok_or_else(|| format!("{at}.like: {like:?} is not a built-in machine type"))?,
            };
            let fields = [
                ("public", &spec.public, &mut kind.public),
                ("private", &spec.private, &mut kind.private),
                ("addresses", &spec.addresses, &mut kind.addresses),
                ("name", &spec.name, &mut kind.name),
                ("tags", &spec.tags, &mut kind.tags),
            ];
            for (field, given, slot) in fields {
                if let Some(texts) = given {
                    *slot = configured(texts, &format!("{at}.{field}"))?;
                }
            }
            if kind.public.is_empty() && kind.private.is_empty() && kind.addresses.is_empty() {
                return Err(format!(
                    "{at}: no address paths (give public, private or addresses, or like = \"TYPE\")"
                ));
            }
            self.by_name.insert(name.clone(), kind);
        }
        Ok(())
    }
}

fn configured(texts: &[String], at: &str) -> Result<Vec<AttrPath>, String> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = AttrPath::parse(text).map_err(|e| format!("{at}[{i}]: {text:?}: {e}"))?;
            if let Some(secret) = path.names().find(|name| is_secret(name)) {
                return Err(format!(
                    "{at}[{i}]: {text:?} reads {secret:?}, which holds secrets in provider schemas; \
                     palisade never reads it"
                ));
            }
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_paths_parse_and_never_touch_secrets() {
        for row in BUILTIN {
            for list in [row.public, row.private, row.addresses, row.name, row.tags] {
                for text in list {
                    let path = AttrPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert!(!path.names().any(is_secret), "{text}");
                }
            }
            // Azure's older VM types hold their addresses on other
            // resources only (see `joins`).
            let joined_only = row
                .types
                .iter()
                .all(|t| t.starts_with("azurerm_") && !t.contains("linux"));
            assert!(
                joined_only || !(row.public.is_empty() && row.private.is_empty() && row.addresses.is_empty()),
                "{:?} has no address paths",
                row.types
            );
        }
        let types = Types::default();
        for name in [
            "packet_device",
            "metal_device",
            "equinix_metal_device",
            "aws_instance",
            "aws_spot_instance_request",
            "google_compute_instance",
            "azurerm_linux_virtual_machine",
            "azurerm_virtual_machine",
            "azurerm_windows_virtual_machine",
            "hcloud_server",
            "digitalocean_droplet",
            "linode_instance",
            "vultr_instance",
            "vultr_bare_metal_server",
            "openstack_compute_instance_v2",
            "libvirt_domain",
            "vsphere_virtual_machine",
            "scaleway_instance_server",
            "latitudesh_server",
            "cherryservers_server",
            "pnap_server",
            "ovh_dedicated_server",
        ] {
            assert!(types.get(name).is_some(), "{name}");
        }
    }

    #[test]
    fn specs_extend_replace_and_start_from_builtins() {
        let mut types = Types::default();
        let specs: BTreeMap<String, TypeSpec> = toml::from_str(
            r#"
            [my_vm]
            public = ["nics[*].public_ip"]
            name = ["fqdn"]
            [my_droplet]
            like = "digitalocean_droplet"
            tags = ["labels"]
            [aws_instance]
            public = ["public_ip", "ipv6_addresses[*]"]
            "#,
        )
        .unwrap();
        types.add_specs(&specs).unwrap();
        let vm = types.get("my_vm").unwrap();
        assert_eq!(vm.public[0].as_str(), "nics[*].public_ip");
        assert!(vm.private.is_empty());
        let droplet = types.get("my_droplet").unwrap();
        assert_eq!(droplet.public[0].as_str(), "ipv4_address");
        assert_eq!(droplet.tags[0].as_str(), "labels");
        assert_eq!(types.get("aws_instance").unwrap().public.len(), 2);
        assert_eq!(
            types.get("aws_instance").unwrap().private[0].as_str(),
            "private_ip"
        );
    }

    #[test]
    fn bad_specs_name_the_table_and_field() {
        let cases = [
            (
                "[x]\npublic = [\"a..b\"]\n",
                "terraform.types.x.public[0]: \"a..b\"",
            ),
            ("[x]\npublic = [\"root_password\"]\n", "holds secrets"),
            (
                "[x]\nname = [\"metadata.startup-script\"]\npublic = [\"ip\"]\n",
                "reads \"startup-script\", which holds secrets",
            ),
            (
                "[x]\nname = [\"os_profile.custom_data\"]\npublic = [\"ip\"]\n",
                "reads \"os_profile\"",
            ),
            (
                "[x]\npublic = [\"nics[User-Data=x].ip\"]\n",
                "reads \"User-Data\"",
            ),
            (
                "[x]\ntags = [\"user_data.role\"]\npublic = [\"ip\"]\n",
                "terraform.types.x.tags[0]",
            ),
            (
                "[x]\nname = [\"hostname\"]\n",
                "terraform.types.x: no address paths",
            ),
            (
                "[x]\nlike = \"nope\"\n",
                "terraform.types.x.like: \"nope\" is not a built-in",
            ),
        ];
        for (text, want) in cases {
            let specs: BTreeMap<String, TypeSpec> = toml::from_str(text).unwrap();
            let err = Types::default().add_specs(&specs).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        assert!(toml::from_str::<BTreeMap<String, TypeSpec>>("[x]\npublik = []\n").is_err());
    }

    #[test]
    fn legacy_device_types_are_packet_shaped_and_never_shadow_builtins() {
        let mut types = Types::default();
        types.add_legacy(&["custom_device".into(), "aws_instance".into()]);
        let custom = types.get("custom_device").unwrap();
        assert!(custom.legacy);
        assert_eq!(custom.public[0].as_str(), "access_public_ipv4");
        assert!(!types.get("aws_instance").unwrap().legacy);
    }
}
