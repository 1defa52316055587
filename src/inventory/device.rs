//! From one device's attributes to a validated [`Host`].
//!
//! The format readers only find devices; this module decides what a device's
//! addresses are, by meaning and never by list position: state written by
//! 2016-era providers keeps `network` in whatever order the API returned, and
//! `access_*` attributes only exist since 2017. Secrets in the same attribute
//! map (`root_password`, `user_data`, `custom_data`) are never read here.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value};

use super::{Error, Host, HostName, Origin, RoleRules};

/// A device resource instance, as a reader found it.
pub(super) struct Device<'a> {
    /// The resource address, as Terraform prints it:
    /// `module.dcos.packet_device.dcos_agent[3]`.
    pub address: String,
    /// The resource name (`dcos_agent`), which decides the role.
    pub name: String,
    pub attrs: Attrs<'a>,
}

/// A device's attributes in either of the two encodings Terraform uses.
#[derive(Clone, Copy)]
pub(super) enum Attrs<'a> {
    /// JSON values as the provider schema types them (state v4, show -json).
    Nested(&'a Map<String, Value>),
    /// The legacy flatmap of strings (state v3, v4 `attributes_flat`):
    /// `network.#`, `network.0.address`, `network.0.public = "true"`.
    Flat(&'a Map<String, Value>),
}

/// One entry of the `network` list.
struct NetEntry {
    address: String,
    public: bool,
    /// The field name as it appears in the file, for errors.
    field: String,
}

impl Attrs<'_> {
    /// A top-level scalar attribute as text; absent, null and "" are all None
    /// (layer-2 devices carry empty `access_*` strings).
    fn text(&self, key: &str) -> Option<String> {
        let map = match self {
            Attrs::Nested(m) | Attrs::Flat(m) => m,
        };
        scalar(map.get(key)?).filter(|s| !s.is_empty())
    }

    fn network(&self, origin: &Origin, resource: &str) -> Result<Vec<NetEntry>, Error> {
        match self {
            Attrs::Nested(m) => {
                let list = match m.get("network") {
                    None | Some(Value::Null) => return Ok(Vec::new()),
                    Some(Value::Array(list)) => list,
                    Some(_) => {
                        return Err(Error::malformed(origin, resource, "field network is not a list"));
                    }
                };
                list.iter()
                    .enumerate()
                    .map(|(i, entry)| {
                        let obj = entry.as_object().ok_or_else(|| {
                            Error::malformed(origin, resource, format!("field network[{i}] is not an object"))
                        })?;
                        Ok(NetEntry {
                            address: obj.get("address").and_then(scalar).unwrap_or_default(),
                            public: obj.get("public").is_some_and(truthy),
                            field: format!("network[{i}].address"),
                        })
                    })
                    .collect()
            }
            Attrs::Flat(m) => {
                // Indices come from the keys themselves, not from `network.#`,
                // which hand-edited or truncated state may get wrong.
                let indices: BTreeSet<u32> = m
                    .keys()
                    .filter_map(|k| k.strip_prefix("network."))
                    .filter_map(|rest| rest.split_once('.'))
                    .filter_map(|(n, _)| n.parse().ok())
                    .collect();
                Ok(indices
                    .into_iter()
                    .map(|i| NetEntry {
                        address: m
                            .get(&format!("network.{i}.address"))
                            .and_then(scalar)
                            .unwrap_or_default(),
                        public: m.get(&format!("network.{i}.public")).is_some_and(truthy),
                        field: format!("network.{i}.address"),
                    })
                    .collect())
            }
        }
    }
}

/// A JSON scalar as text: strings as they are, numbers and booleans printed.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `true`, `"true"` and `"1"` (flatmaps hold strings).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true" || s == "1",
        Value::Number(n) => n.as_u64() == Some(1),
        _ => false,
    }
}

pub(super) fn hosts(
    devices: Vec<Device<'_>>,
    origin: &Origin,
    rules: &RoleRules,
) -> Result<Vec<Host>, Error> {
    devices.into_iter().map(|d| host(d, origin, rules)).collect()
}

fn host(device: Device<'_>, origin: &Origin, rules: &RoleRules) -> Result<Host, Error> {
    let resource = device.address.as_str();
    let parse = |field: &str, value: &str| -> Result<IpAddr, Error> {
        value.parse::<IpAddr>().map_err(|_| Error::BadAddress {
            file: origin.to_string(),
            resource: resource.to_owned(),
            field: field.to_owned(),
            value: value.to_owned(),
        })
    };

    let mut all: BTreeSet<IpAddr> = BTreeSet::new();
    let mut ssh: Option<Ipv4Addr> = None;
    for field in ["access_public_ipv4", "access_private_ipv4", "access_public_ipv6"] {
        if let Some(text) = device.attrs.text(field) {
            let addr = parse(field, &text)?;
            if let (IpAddr::V4(v4), "access_public_ipv4") = (addr, field) {
                ssh = Some(v4);
            }
            all.insert(addr);
        }
    }
    let mut public_v4 = BTreeSet::new();
    for entry in device.attrs.network(origin, resource)? {
        let addr = parse(&entry.field, &entry.address)?;
        if let (IpAddr::V4(v4), true) = (addr, entry.public) {
            public_v4.insert(v4);
        }
        all.insert(addr);
    }
    // Several public IPv4s (elastic IPs) and no access_public_ipv4: the lowest
    // one, so the choice does not depend on the order the API listed them in.
    let address = ssh
        .or_else(|| public_v4.first().copied())
        .ok_or_else(|| Error::NoPublicIpv4 {
            file: origin.to_string(),
            resource: resource.to_owned(),
        })?;

    let name = match device.attrs.text("hostname") {
        Some(text) => HostName::parse(&text).ok_or_else(|| Error::BadName {
            file: origin.to_string(),
            resource: resource.to_owned(),
            field: "hostname".into(),
            value: text.clone(),
        })?,
        None => HostName::parse(resource).ok_or_else(|| Error::BadName {
            file: origin.to_string(),
            resource: resource.to_owned(),
            field: "resource address".into(),
            value: resource.to_owned(),
        })?,
    };

    let role = rules.role(&device.name);
    Ok(Host::new(name, role, IpAddr::V4(address), all, device.address))
}

/// Formats a resource address the way Terraform prints it.
pub(super) fn resource_address(module: &str, rtype: &str, name: &str, index: Option<&Value>) -> String {
    let mut out = String::new();
    if !module.is_empty() {
        out.push_str(module);
        out.push('.');
    }
    out.push_str(rtype);
    out.push('.');
    out.push_str(name);
    match index {
        Some(Value::Number(n)) => out.push_str(&format!("[{n}]")),
        // JSON string escaping is what Terraform prints for string keys.
        Some(Value::String(s)) => out.push_str(&format!("[{}]", Value::String(s.clone()))),
        _ => {}
    }
    out
}
