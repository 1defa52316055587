//! A static inventory for fleets without Terraform: hosts listed by role in
//! TOML.
//!
//! ```toml
//! [[master]]
//! name = "packet-dcos-master-00"               # optional, defaults to the address
//! address = "147.75.100.11"                    # where palisade connects
//! addresses = ["10.100.5.9", "2604:1380:1:4d00::11"]  # every other address
//! ```

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Error, Host, HostName, Origin, Role, address};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    master: Vec<Entry>,
    #[serde(default)]
    agent: Vec<Entry>,
    #[serde(default, rename = "public-agent")]
    public_agent: Vec<Entry>,
    #[serde(default)]
    bootstrap: Vec<Entry>,
    #[serde(default)]
    node: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    address: String,
    #[serde(default)]
    addresses: Vec<String>,
}

pub(super) fn parse(text: &str, origin: &Origin) -> Result<Vec<Host>, Error> {
    let file: File = toml::from_str(text).map_err(|e| {
        if crate::input::Looks::of(text) == crate::input::Looks::Json {
            return Error::WrongKind {
                file: origin.to_string(),
                detail: "this is JSON, not a TOML inventory: a Terraform state, `terraform show \
                         -json` or `terraform output -json` document is read with --state",
            };
        }
        Error::Toml {
            file: origin.to_string(),
            detail: crate::input::toml_error(&e, text),
        }
    })?;
    let groups = [
        (Role::Master, file.master),
        (Role::Agent, file.agent),
        (Role::PublicAgent, file.public_agent),
        (Role::Bootstrap, file.bootstrap),
        (Role::Node, file.node),
    ];
    let mut hosts = Vec::new();
    for (role, entries) in groups {
        for (i, entry) in entries.into_iter().enumerate() {
            hosts.push(host(role, i, entry, origin)?);
        }
    }
    Ok(hosts)
}

fn host(role: Role, i: usize, entry: Entry, origin: &Origin) -> Result<Host, Error> {
    let location = format!("[[{role}]] entry {}", i + 1);
    // Read as in state (an IPv4-mapped IPv6 address is the IPv4 address it
    // maps; an IPv4-compatible one is refused), but a bare address only.
    let parse = |field: String, value: &str| {
        let read = if value.contains('/') {
            Err(address::Unusable::NotAnAddress)
        } else {
            address::parse(value)
        };
        read.map_err(|why| Error::BadAddress {
            file: origin.to_string(),
            resource: location.clone(),
            field,
            value: super::device::shorten(value),
            why: why.says(),
        })
    };
    let address = parse("address".into(), &entry.address)?;
    let mut all = BTreeSet::from([address]);
    for (j, text) in entry.addresses.iter().enumerate() {
        all.insert(parse(format!("addresses[{j}]"), text)?);
    }
    let name_text = entry.name.unwrap_or_else(|| address.to_string());
    let name = HostName::check(&name_text).map_err(|why| Error::BadName {
        file: origin.to_string(),
        resource: location.clone(),
        field: "name".into(),
        value: super::device::shorten(&name_text),
        why,
    })?;
    Ok(Host::new(
        name,
        role,
        address,
        all,
        format!("{location} ({name_text})"),
    ))
}
