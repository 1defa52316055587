//! From one machine's attributes to a validated [`Host`].
//!
//! The format readers only find machine instances; this module reads them
//! through the type table (`types`), so every format and every provider gets
//! the same address rules and the same errors. Addresses are picked by
//! meaning, never by list position: 2016-era Packet state keeps `network` in
//! whatever order the API returned. Only the attributes the table names are
//! read, and those never include secrets (`root_password`, `user_data`, …).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::address::{self, Class, Found};
use super::joins::Joins;
use super::path::{AttrPath, Style, scalar};
use super::types::DeviceType;
use super::{Error, Host, HostName, Lifecycle, Origin, RoleRules, flatmap};

/// A machine resource instance, as a reader found it.
pub(super) struct Device<'a> {
    /// The resource address, as Terraform prints it:
    /// `module.dcos.packet_device.dcos_agent[3]`.
    pub address: String,
    /// The resource type (`packet_device`), which says where the addresses are.
    pub rtype: String,
    /// The resource name (`dcos_agent`), which decides the role by default.
    pub name: String,
    pub lifecycle: Lifecycle,
    /// A deposed object's key (`1a2b3c4d`; a v3 state's list position).
    pub deposed: Option<String>,
    pub attrs: Attrs<'a>,
    /// The top-level attributes Terraform marks sensitive (state v4
    /// `sensitive_attributes`, show -json `sensitive_values`): never read,
    /// so never printed, logged or quoted, whatever a config names.
    pub sensitive: BTreeSet<String>,
}

/// A machine's attributes in either of the two encodings Terraform uses.
pub(super) enum Attrs<'a> {
    /// JSON values as the provider schema types them (state v4, show -json).
    Nested(&'a Map<String, Value>),
    /// The legacy flatmap of strings (state v3, v4 `attributes_flat`),
    /// unflattened: `network.0.address` is `{"network":{"0":{"address":…}}}`.
    Flat(Map<String, Value>),
}

impl Attrs<'_> {
    /// A flatmap, unflattened; `address` names the resource in the error a
    /// key nested deeper than any schema gets.
    pub fn flat(map: &Map<String, Value>, origin: &Origin, address: &str) -> Result<Attrs<'static>, Error> {
        flatmap::unflatten(map).map(Attrs::Flat).map_err(|key| {
            Error::malformed(
                origin,
                address,
                format!(
                    "attribute key {key:?} is nested more than {} levels deep",
                    flatmap::MAX_DEPTH
                ),
            )
        })
    }

    pub(super) fn find<'s>(&'s self, path: &AttrPath) -> Vec<super::path::Hit<'s>> {
        match self {
            Attrs::Nested(m) => path.find(m, Style::Nested),
            Attrs::Flat(m) => path.find(m, Style::Flat),
        }
    }
}

impl Device<'_> {
    /// Whether the attribute a hit's `field` (`network.0.address`,
    /// `tags.role`) starts at is marked sensitive.
    pub(super) fn marked(&self, field: &str) -> bool {
        let top = field.split(['.', '[']).next().unwrap_or(field);
        self.sensitive.contains(top)
    }

    /// The instance as Terraform names it in its own messages.
    fn origin(&self) -> String {
        match &self.deposed {
            Some(key) => format!("{} (deposed object {key})", self.address),
            None => self.address.clone(),
        }
    }
}

/// Every device as a host. Names are unique afterwards: machines that share
/// a name (a Name tag copied by `count`) are named by resource address.
pub(super) fn hosts(
    devices: Vec<Device<'_>>,
    origin: &Origin,
    rules: &RoleRules,
    joins: &Joins,
) -> Result<Vec<Host>, Error> {
    let mut built = Vec::with_capacity(devices.len());
    for device in devices {
        let Some(kind) = rules.device_type(&device.rtype) else {
            continue;
        };
        let fallback = address_name(&device, origin)
            .ok()
            .map(|n| deposed_name(n, &device));
        built.push((host(&device, kind, origin, rules, joins)?, fallback));
    }
    let mut uses: HashMap<HostName, usize> = HashMap::new();
    for (host, _) in &built {
        *uses.entry(host.name.clone()).or_default() += 1;
    }
    Ok(built
        .into_iter()
        .map(|(mut host, fallback)| {
            if let Some(fallback) = fallback.filter(|_| uses.get(&host.name).copied().unwrap_or(0) > 1) {
                host.name = fallback;
            }
            host
        })
        .collect())
}

fn host(
    device: &Device<'_>,
    kind: &DeviceType,
    origin: &Origin,
    rules: &RoleRules,
    joins: &Joins,
) -> Result<Host, Error> {
    let mut found = addresses(device, kind, origin)?;
    joins.apply(device, &mut found, origin);
    let via = rules.connect_via();
    let ssh = address::pick(&found, via).ok_or_else(|| no_address(device, kind, origin, rules))?;
    let name = match named(device, kind, origin)? {
        Some(name) => deposed_name(name, device),
        None => deposed_name(address_name(device, origin)?, device),
    };
    let tagged = rules
        .role_tag()
        .and_then(|key| Some((key, tag_value(device, kind, key)?)));
    let from_tag = tagged.and_then(|(key, value)| {
        let role = rules.role_from_tag(&value);
        if role.is_none() {
            tracing::warn!(
                "{origin}: {}: tag {key:?} is {:?}, which names no role; \
                 the resource name decides",
                device.origin(),
                shorten(&value)
            );
        }
        role
    });
    let role = from_tag.unwrap_or_else(|| rules.role(&device.name));
    let all: BTreeSet<IpAddr> = found.iter().map(|f| f.addr).collect();
    let mut host = Host::new(name, role, ssh, all, device.origin());
    host.lifecycle = device.lifecycle;
    Ok(host)
}

/// Every address the type's paths find: explicitly public ones first, then
/// explicitly private ones, then the rest by range. An address found twice
/// keeps its first class.
fn addresses(device: &Device<'_>, kind: &DeviceType, origin: &Origin) -> Result<Vec<Found>, Error> {
    let classes = [
        (Some(Class::Public), &kind.public),
        (Some(Class::Private), &kind.private),
        (None, &kind.addresses),
    ];
    let mut found: Vec<Found> = Vec::new();
    let mut seen: HashSet<IpAddr> = HashSet::new();
    for (class, paths) in classes {
        for (rank, path) in paths.iter().enumerate() {
            for hit in device.attrs.find(path) {
                if device.marked(&hit.field) {
                    return Err(Error::Sensitive {
                        file: origin.to_string(),
                        resource: device.origin(),
                        field: escape(&hit.field),
                    });
                }
                let Some(text) = scalar(hit.value) else {
                    return Err(Error::malformed(
                        origin,
                        device.origin(),
                        format!(
                            "field {} holds a list or object, not an address",
                            escape(&hit.field)
                        ),
                    ));
                };
                if text.is_empty() {
                    continue; // layer-2 Packet devices carry empty access_* strings
                }
                let addr = address::parse(&text).map_err(|why| Error::BadAddress {
                    file: origin.to_string(),
                    resource: device.origin(),
                    field: escape(&hit.field),
                    // Printed with {:?}, so escaped; cut, so a whole script
                    // a path strayed into never reaches the terminal.
                    value: shorten(&text),
                    why: why.says(),
                })?;
                let addr = address::hcloud_own_ipv6(&device.rtype, &hit.field, addr);
                // Written as the field's family (`::ffff:a.b.c.d` in an IPv6
                // field), or mapped to it: the address is read as what it is.
                let written = if text.contains(':') {
                    address::Family::V6
                } else {
                    address::Family::V4
                };
                if let Some(want) = address::family_of_field(&hit.field)
                    && want != address::Family::of(addr)
                    && want != written
                {
                    return Err(Error::WrongFamily {
                        file: origin.to_string(),
                        resource: device.origin(),
                        field: escape(&hit.field),
                        value: shorten(&text),
                        want: want.as_str(),
                    });
                }
                if address::meaningless(addr) || (class.is_none() && address::shared_by_every_node(addr)) {
                    continue;
                }
                if !seen.insert(addr) {
                    continue;
                }
                found.push(Found {
                    addr,
                    class: class.unwrap_or_else(|| address::by_range(addr)),
                    // Addresses classified by range come after explicit ones.
                    rank: if class.is_some() { rank } else { 1000 + rank },
                });
            }
        }
    }
    Ok(found)
}

fn no_address(device: &Device<'_>, kind: &DeviceType, origin: &Origin, rules: &RoleRules) -> Error {
    use super::ConnectVia;
    let via = rules.connect_via();
    let paths: Vec<&AttrPath> = match via {
        ConnectVia::Public => kind.public.iter().chain(&kind.addresses).collect(),
        ConnectVia::Private => kind.private.iter().chain(&kind.addresses).collect(),
        ConnectVia::Ipv6 => kind
            .public
            .iter()
            .chain(&kind.private)
            .chain(&kind.addresses)
            .collect(),
    };
    let mut looked_at = paths.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    if looked_at.is_empty() {
        looked_at =
            "the addresses other resources hold for it (its network interfaces and public IPs)".into();
    }
    let mut hint = match via {
        ConnectVia::Public => "palisade connects to each machine's public IPv4; give --connect-via private \
                               (or ipv6) to connect over another network, every address is whitelisted either way"
            .to_owned(),
        _ => format!("--connect-via {} needs one on every machine", via.as_str()),
    };
    if kind.legacy {
        hint.push_str(&format!(
            "; {} comes from device_types, the old form that reads Packet-shaped attributes: \
             describe its attributes in a [terraform.types.{}] table instead",
            device.rtype, device.rtype
        ));
    }
    Error::NoAddress {
        file: origin.to_string(),
        resource: device.origin(),
        wanted: via.wanted(),
        looked_at,
        hint,
    }
}

/// The first usable name the type's name paths find. A name with control
/// characters is an error (a hostile state must not write escapes into a
/// report); one with blanks (an AWS Name tag, an OVH display name) cannot
/// sit in a table column and is passed over.
fn named(device: &Device<'_>, kind: &DeviceType, origin: &Origin) -> Result<Option<HostName>, Error> {
    for path in &kind.name {
        for hit in device.attrs.find(path) {
            if device.marked(&hit.field) {
                tracing::warn!(
                    "{origin}: {}: field {} is marked sensitive in the state: not used as the name",
                    device.origin(),
                    escape(&hit.field)
                );
                continue;
            }
            let Some(text) = scalar(hit.value).filter(|t| !t.is_empty()) else {
                continue;
            };
            if text.chars().any(char::is_control) {
                return Err(Error::BadName {
                    file: origin.to_string(),
                    resource: device.origin(),
                    field: escape(&hit.field),
                    value: shorten(&text),
                    why: "it holds control characters",
                });
            }
            if let Some(name) = HostName::parse(&text) {
                return Ok(Some(name));
            }
        }
    }
    Ok(None)
}

/// The resource address as a name. A for_each key may hold blanks
/// (`aws_instance.web["blue green"]`), which a name cannot: they are written as escapes (`\u{0020}`).
fn address_name(device: &Device<'_>, origin: &Origin) -> Result<HostName, Error> {
    // Spelled as an escape, not replaced: `["web server"]` and
    // `["web_server"]` are two machines with two names.
    let spelled: String = device
        .address
        .chars()
        .map(|c| {
            if c.is_whitespace() {
                format!("\\u{{{:04x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect();
    HostName::check(&spelled).map_err(|why| Error::BadName {
        file: origin.to_string(),
        resource: device.origin(),
        field: "resource address".into(),
        value: shorten(&device.address),
        why,
    })
}

/// A deposed object shares its address, and often its hostname, with its
/// replacement: its name says what it is and which object.
fn deposed_name(name: HostName, device: &Device<'_>) -> HostName {
    match &device.deposed {
        Some(key) => name.deposed(key),
        None => name,
    }
}

/// The value of tag `key`, wherever the type keeps tags: a map
/// (`{"role": "master"}`), a list of `KEY:VALUE` or `KEY=VALUE` strings
/// (DigitalOcean, Linode, Vultr, Scaleway tags), or `{name|key, value}`
/// objects (phoenixNAP). The value is only ever used to choose a role.
fn tag_value(device: &Device<'_>, kind: &DeviceType, key: &str) -> Option<String> {
    // `--role-tag user_data` must not make a secret a role (or a warning).
    if super::types::is_secret(key) {
        return None;
    }
    kind.tags
        .iter()
        .flat_map(|path| device.attrs.find(path))
        .filter(|hit| !device.marked(&hit.field))
        .find_map(|hit| in_tags(hit.value, key, true))
}

fn in_tags(node: &Value, key: &str, top: bool) -> Option<String> {
    match node {
        Value::String(s) => {
            let (k, v) = s.split_once(':').or_else(|| s.split_once('='))?;
            (k.trim() == key).then(|| v.trim().to_owned())
        }
        Value::Object(map) => {
            if let Some(value) = map.get(key).and_then(scalar) {
                return Some(value);
            }
            let label = map.get("name").or_else(|| map.get("key")).and_then(scalar);
            if label.as_deref() == Some(key) {
                return map.get("value").and_then(scalar);
            }
            // A flatmap list or set is an object keyed by index or hash: its
            // values are the elements.
            let list = map.keys().all(|k| k.bytes().all(|b| b.is_ascii_digit()));
            (top && list)
                .then(|| map.values().find_map(|v| in_tags(v, key, false)))
                .flatten()
        }
        Value::Array(items) if top => items.iter().find_map(|v| in_tags(v, key, false)),
        _ => None,
    }
}

/// Formats a resource address the way Terraform prints it. Control and
/// bidirectional characters, which no Terraform name holds but a hostile
/// file may, are escaped: the address is in every message about the
/// resource, and must not forge lines or recolour a terminal.
pub(super) fn resource_address(module: &str, rtype: &str, name: &str, index: Option<&Value>) -> String {
    let mut out = String::new();
    if !module.is_empty() {
        out.push_str(&escape(module));
        out.push('.');
    }
    out.push_str(&escape(rtype));
    out.push('.');
    out.push_str(&escape(name));
    match index {
        Some(Value::Number(n)) => out.push_str(&format!("[{n}]")),
        // JSON string escaping is what Terraform prints for string keys.
        // JSON escapes control characters but not bidi and invisible ones.
        Some(Value::String(s)) => {
            out.push_str(&format!("[{}]", escape(&Value::String(s.clone()).to_string())))
        }
        _ => {}
    }
    out
}

/// Text from the file as it may appear in a message: the one escaping
/// function every message and report uses ([`crate::text::escape`]).
pub(super) fn escape(text: &str) -> String {
    crate::text::escape(text).into_owned()
}

/// A value from the file cut to 64 characters for a message (which prints
/// it with `{:?}`, escaped).
pub(super) fn shorten(text: &str) -> String {
    crate::text::shorten(text, 64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tags_in_every_shape() {
        let key = "role";
        for (tags, want) in [
            (json!({"role": "master", "Name": "x"}), Some("master")),
            (json!(["env:prod", "role:agent"]), Some("agent")),
            (json!(["role=public-agent"]), Some("public-agent")),
            (json!({"0": "role:bootstrap"}), Some("bootstrap")),
            (json!([{"name": "role", "value": "master"}]), Some("master")),
            (json!({"key": "role", "value": "agent"}), Some("agent")),
            (json!("role:master"), Some("master")),
            (json!(["roles:master", "env=role"]), None),
            (json!({"Name": "role:master"}), None),
            (json!(null), None),
        ] {
            assert_eq!(in_tags(&tags, key, true).as_deref(), want, "{tags}");
        }
    }

    #[test]
    fn file_text_is_escaped_and_shortened_for_messages() {
        assert_eq!(escape("web"), "web");
        assert_eq!(
            escape("x\u{1b}]0;p\u{7}\nforged"),
            "x\\u{001b}]0;p\\u{0007}\\nforged"
        );
        assert_eq!(escape("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(
            resource_address("module.m\n", "aws_instance", "a\rb", Some(&json!("k"))),
            "module.m\\n.aws_instance.a\\rb[\"k\"]"
        );
        assert_eq!(shorten("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(shorten(&long), format!("{}…", "é".repeat(64)));
    }
}
