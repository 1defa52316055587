//! `terraform output -json`, for operators who can share outputs but not the
//! state. Both shapes read the same: Terraform 0.11 prints
//! `{"name":{"sensitive":false,"type":"list","value":[…]}}` and 0.12+ prints
//! the same objects with a cty type (`["list","string"]`). The Packet DC/OS
//! Terraform joins addresses with commas into one string; newer ones output
//! lists. Outputs carry only the SSH address of each node, so hosts read
//! from them have that one address and a name made from role and position.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::{Error, Host, HostName, Origin, Role};

/// The outputs palisade reads, and the role each names.
const OUTPUTS: [(&str, Role); 4] = [
    ("master-ip", Role::Master),
    ("agent-ip", Role::Agent),
    ("agent-public-ip", Role::PublicAgent),
    ("bootstrap-ip", Role::Bootstrap),
];

pub(super) const NAMES: [&str; 4] = ["master-ip", "agent-ip", "agent-public-ip", "bootstrap-ip"];

pub(super) fn hosts(doc: &Value, origin: &Origin) -> Result<Vec<Host>, Error> {
    let mut out = Vec::new();
    for (output, role) in OUTPUTS {
        let Some(value) = doc.get(output).and_then(|o| o.get("value")) else {
            continue;
        };
        let location = format!("output {output}");
        let items: Vec<&str> = match value {
            Value::String(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
            Value::Array(list) => list
                .iter()
                .map(|v| {
                    v.as_str().map(str::trim).ok_or_else(|| {
                        Error::malformed(origin, &location, "list holds a value that is not a string")
                    })
                })
                .collect::<Result<_, _>>()?,
            Value::Null => Vec::new(),
            _ => {
                return Err(Error::malformed(
                    origin,
                    &location,
                    "value is neither a comma-separated string nor a list",
                ));
            }
        };
        for (i, text) in items.into_iter().enumerate() {
            let field = format!("{output}[{i}]");
            let bad = || Error::BadAddress {
                file: origin.to_string(),
                resource: format!("output {output}"),
                field: field.clone(),
                value: super::device::shorten(text),
                why: super::address::Unusable::NotAnAddress.says(),
            };
            let IpAddr::V4(v4) = text.parse::<IpAddr>().map_err(|_| bad())? else {
                return Err(Error::NoPublicIpv4 {
                    file: origin.to_string(),
                    resource: format!("output {field} ({text} is IPv6)"),
                });
            };
            let name = HostName::parse(&format!("{role}-{i:02}")).ok_or_else(bad)?;
            let address = IpAddr::V4(v4);
            out.push(Host::new(
                name,
                role,
                address,
                BTreeSet::new(),
                format!("output {field}"),
            ));
        }
    }
    Ok(out)
}
