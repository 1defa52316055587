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
    pub(crate) address: String,
    /// The resource type (`packet_device`), which says where the addresses are.
    pub(crate) rtype: String,
    /// The resource name (`dcos_agent`), which decides the role by default.
    pub(crate) name: String,
    pub(crate) lifecycle: Lifecycle,
    /// A deposed object's key (`1a2b3c4d`; a v3 state's list position).
    pub(crate) deposed: Option<String>,
    pub(crate) attrs: Attrs<'a>,
    /// The top-level attributes Terraform marks sensitive (state v4
    /// `sensitive_attributes`, show -json `sensitive_values`): never read,
    /// so never printed, logged or quoted, whatever a config names.
    pub(crate) sensitive: BTreeSet<String>,
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
    pub(crate) fn flat(
        map: &Map<String, Value>,
        origin: &Origin,
        address: &str,
    ) -> Result<Attrs<'static>, Error> {
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

/// The hosts of a state, and the machines `--skip-addressless` left out.
pub(super) struct Built {
    pub(crate) hosts: Vec<Host>,
    /// Resource addresses of the machines left out, in state order.
    pub(crate) left_out: Vec<String>,
}

/// Why a machine has no address to connect to.
enum Lack {
    /// The state holds no address for it at all.
    Nothing,
    /// It has addresses, none of a kind `--connect-via` names.
    Kind,
}

/// Every device as a host. Names are unique afterwards: machines that share
/// a name (a Name tag copied by `count`) are named by resource address.
/// Every machine without an address to connect to is named in one error,
/// so one run shows the whole gap; a value set aside (a name that cannot
/// be one, a role rule that matches nothing) is said once, on stderr.
pub(super) fn hosts(
    devices: Vec<Device<'_>>,
    origin: &Origin,
    rules: &RoleRules,
    joins: &Joins,
) -> Result<Built, Error> {
    let mut built = Vec::with_capacity(devices.len());
    let mut addressless: Vec<(&Device<'_>, &DeviceType)> = Vec::new();
    let mut lacking: Vec<(&Device<'_>, &DeviceType)> = Vec::new();
    // What the role rules were matched against, for the ones that match nothing.
    let mut tried: Vec<String> = Vec::new();
    for device in &devices {
        let Some(kind) = rules.device_type(&device.rtype) else {
            continue;
        };
        let fallback = address_name(device, origin).ok().map(|n| deposed_name(n, device));
        tried.push(device.name.clone());
        match host(device, kind, origin, rules, joins, &mut tried)? {
            Ok((host, aside)) => built.push((host, fallback, aside)),
            Err(Lack::Nothing) => addressless.push((device, kind)),
            Err(Lack::Kind) => lacking.push((device, kind)),
        }
    }
    let mut left_out = Vec::new();
    if !addressless.is_empty() {
        if !rules.skip_addressless() {
            return Err(no_address_at_all(&addressless, origin));
        }
        left_out = addressless.iter().map(|(d, _)| d.origin()).collect();
        tracing::warn!(
            "{origin}: left out {} machine(s) the state holds no address for (--skip-addressless): {}; \
             the whitelist loses nothing (they have no address in it), but palisade does not reach them",
            left_out.len(),
            left_out.join(", ")
        );
    }
    if let Some((device, kind)) = lacking.first() {
        return Err(no_address(device, kind, origin, rules, &lacking[1..]));
    }
    if !built.is_empty() {
        for rule in rules.unmatched(tried.iter().map(String::as_str)) {
            let what = if rules.role_tag().is_some() {
                "resource name or --role-tag value"
            } else {
                "resource name"
            };
            tracing::warn!(
                "{origin}: role rule {rule} (--role or terraform.roles) matches no machine's {what}"
            );
        }
    }
    let mut uses: HashMap<HostName, usize> = HashMap::new();
    for (host, _, _) in &built {
        *uses.entry(host.name.clone()).or_default() += 1;
    }
    let hosts = built
        .into_iter()
        .map(|(mut host, fallback, aside)| {
            let shared = uses.get(&host.name).copied().unwrap_or(0);
            match fallback.filter(|_| shared > 1) {
                Some(fallback) => {
                    tracing::warn!(
                        "{origin}: {}: name {} is shared by {shared} machines: named {fallback} \
                         (its resource address)",
                        host.origin,
                        escape(&format!("{:?}", host.name.as_str())),
                    );
                    host.name = fallback;
                }
                None => {
                    if let Some(aside) = aside {
                        tracing::warn!("{origin}: {}: {aside}: named {}", host.origin, host.name);
                    }
                }
            }
            host
        })
        .collect();
    Ok(Built { hosts, left_out })
}

/// The host, and what was said about a name value set aside; or why the
/// machine has no address to connect to.
fn host(
    device: &Device<'_>,
    kind: &DeviceType,
    origin: &Origin,
    rules: &RoleRules,
    joins: &Joins,
    tried: &mut Vec<String>,
) -> Result<Result<(Host, Option<String>), Lack>, Error> {
    let mut found = addresses(device, kind, origin)?;
    joins.apply(device, &mut found, origin);
    let Some(ssh) = address::pick_first(&found, rules.connect_via()) else {
        return Ok(Err(if found.is_empty() {
            Lack::Nothing
        } else {
            Lack::Kind
        }));
    };
    let (named, aside) = named(device, kind, origin)?;
    let name = match named {
        Some(name) => deposed_name(name, device),
        None => deposed_name(address_name(device, origin)?, device),
    };
    let tagged = rules
        .role_tag()
        .and_then(|key| Some((key, tag_value(device, kind, key)?)));
    if let Some((_, value)) = &tagged {
        tried.push(value.clone());
    }
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
    Ok(Ok((host, aside)))
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

/// The paths a type keeps addresses of one kind at, for messages.
fn paths_for(kind: &DeviceType, via: super::ConnectVia) -> Vec<&AttrPath> {
    use super::ConnectVia;
    match via {
        ConnectVia::Public => kind.public.iter().chain(&kind.addresses).collect(),
        ConnectVia::Private => kind.private.iter().chain(&kind.addresses).collect(),
        ConnectVia::Ipv6 => kind
            .public
            .iter()
            .chain(&kind.private)
            .chain(&kind.addresses)
            .collect(),
    }
}

/// Where a type keeps addresses of the kinds wanted, each path once.
fn looked_at(kind: &DeviceType, kinds: &[super::ConnectVia]) -> String {
    let mut paths: Vec<&str> = Vec::new();
    for via in kinds {
        for path in paths_for(kind, *via) {
            if !paths.contains(&path.as_str()) {
                paths.push(path.as_str());
            }
        }
    }
    if paths.is_empty() {
        "the addresses other resources hold for it (its network interfaces and public IPs)".into()
    } else {
        paths.join(", ")
    }
}

/// What a type from `device_types` (the old form) should become instead.
fn legacy_hint(rtype: &str) -> String {
    format!(
        "; {rtype} comes from device_types, the old form that reads Packet-shaped attributes: \
         describe its attributes in a [terraform.types.{rtype}] table instead"
    )
}

fn no_address(
    device: &Device<'_>,
    kind: &DeviceType,
    origin: &Origin,
    rules: &RoleRules,
    others: &[(&Device<'_>, &DeviceType)],
) -> Error {
    let order = rules.connect_via();
    let mut hint = if order.is_public_only() {
        "palisade connects to each machine's public IPv4; give --connect-via private (or ipv6) to \
         connect over another network, or a list such as public,private, which each machine takes \
         in order; every address is whitelisted either way"
            .to_owned()
    } else {
        format!(
            "--connect-via {order} needs one of them on every machine: add a kind it has to the list \
             (public, private, ipv6; each machine takes the first it has)"
        )
    };
    if kind.legacy {
        hint.push_str(&legacy_hint(&device.rtype));
    }
    if !others.is_empty() {
        let names: Vec<String> = others.iter().map(|(d, _)| d.origin()).collect();
        hint.push_str(&format!("; so do {} more: {}", names.len(), names.join(", ")));
    }
    Error::NoAddress {
        file: origin.to_string(),
        resource: device.origin(),
        wanted: order.wanted(),
        looked_at: looked_at(kind, order.kinds()),
        hint,
    }
}

/// Every machine the state holds no address for, in one error.
fn no_address_at_all(machines: &[(&Device<'_>, &DeviceType)], origin: &Origin) -> Error {
    use super::ConnectVia;
    let every = [ConnectVia::Public, ConnectVia::Private, ConnectVia::Ipv6];
    let mut by_type: Vec<(&str, String)> = Vec::new();
    let mut hint = String::new();
    for (device, kind) in machines {
        if by_type.iter().any(|(t, _)| *t == device.rtype) {
            continue;
        }
        by_type.push((&device.rtype, looked_at(kind, &every)));
        if kind.legacy {
            hint.push_str(&legacy_hint(&device.rtype));
        }
    }
    let looked_at = by_type
        .iter()
        .map(|(t, paths)| format!("{t}: {paths}"))
        .collect::<Vec<_>>()
        .join("; ");
    let names: Vec<String> = machines.iter().map(|(d, _)| d.origin()).collect();
    Error::NoAddressAtAll {
        file: origin.to_string(),
        count: names.len(),
        machines: names.join(", "),
        looked_at,
        hint,
    }
}

/// The first usable name the type's name paths find, and what was said
/// about the first value set aside on the way. A name with control
/// characters is an error (a hostile state must not write escapes into a
/// report); one that cannot be a name otherwise (blanks, as in an AWS Name
/// tag or an OVH display name; invisible characters; too long; a list) is
/// passed over, and the caller says so, so no machine is renamed silently.
fn named(
    device: &Device<'_>,
    kind: &DeviceType,
    origin: &Origin,
) -> Result<(Option<HostName>, Option<String>), Error> {
    let mut aside: Option<String> = None;
    for path in &kind.name {
        for hit in device.attrs.find(path) {
            let field = escape(&hit.field);
            if device.marked(&hit.field) {
                tracing::warn!(
                    "{origin}: {}: field {field} is marked sensitive in the state: not used as the name",
                    device.origin(),
                );
                continue;
            }
            let text = match hit.value {
                Value::String(text) => text.clone(),
                Value::Null => continue,
                other => {
                    let what = match other {
                        Value::Number(_) => "a number",
                        Value::Bool(_) => "a boolean",
                        _ => "a list or object",
                    };
                    aside.get_or_insert_with(|| {
                        format!("field {field} holds {what}, not a name, so it is set aside")
                    });
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            if text.chars().any(char::is_control) {
                return Err(Error::BadName {
                    file: origin.to_string(),
                    resource: device.origin(),
                    field,
                    value: shorten(&text),
                    why: "it holds control characters",
                });
            }
            match HostName::check(&text) {
                Ok(name) => return Ok((Some(name), aside)),
                Err(why) => {
                    aside.get_or_insert_with(|| {
                        let value = escape(&format!("{:?}", shorten(&text)));
                        format!(
                            "field {field} is {value}, which cannot be a name ({why}), so it is set aside"
                        )
                    });
                }
            }
        }
    }
    Ok((None, aside))
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
