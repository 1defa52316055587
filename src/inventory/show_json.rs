//! `terraform show -json` of a state: `values.root_module` holds
//! `resources[]` (each with its full `address` and nested `values`) and
//! `child_modules[]`, nested to any depth.

use serde_json::Value;

use super::device::{Attrs, Device};
use super::{Error, Origin, RoleRules};

pub(super) fn devices<'a>(
    doc: &'a Value,
    origin: &Origin,
    rules: &RoleRules,
) -> Result<Vec<Device<'a>>, Error> {
    let mut out = Vec::new();
    // An empty state prints no "values" at all.
    if let Some(root) = doc.get("values").and_then(|v| v.get("root_module")) {
        walk(root, "values.root_module", origin, rules, &mut out)?;
    }
    Ok(out)
}

fn walk<'a>(
    module: &'a Value,
    location: &str,
    origin: &Origin,
    rules: &RoleRules,
    out: &mut Vec<Device<'a>>,
) -> Result<(), Error> {
    let list = |key: &str| -> Result<&'a [Value], Error> {
        match module.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => Ok(items.as_slice()),
            Some(_) => Err(Error::malformed(
                origin,
                location,
                format!("\"{key}\" is not a list"),
            )),
        }
    };
    for (i, resource) in list("resources")?.iter().enumerate() {
        let field = |k: &str| resource.get(k).and_then(Value::as_str);
        if field("mode").unwrap_or("managed") != "managed" {
            continue;
        }
        let (Some(rtype), Some(name), Some(address)) = (field("type"), field("name"), field("address"))
        else {
            return Err(Error::malformed(
                origin,
                format!("{location}.resources[{i}]"),
                "has no \"type\", \"name\" or \"address\"",
            ));
        };
        if !rules.is_device(rtype) {
            continue;
        }
        if field("deposed_key").is_some() {
            tracing::warn!("{origin}: {address}: deposed object (being replaced); skipped");
            continue;
        }
        if resource.get("tainted").and_then(Value::as_bool) == Some(true) {
            tracing::warn!("{origin}: {address}: tainted (Terraform will replace it); skipped");
            continue;
        }
        let values = resource
            .get("values")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::malformed(origin, address, "has no \"values\" object"))?;
        out.push(Device {
            address: address.to_owned(),
            name: name.to_owned(),
            attrs: Attrs::Nested(values),
        });
    }
    for (i, child) in list("child_modules")?.iter().enumerate() {
        let child_location = match child.get("address").and_then(Value::as_str) {
            Some(addr) => addr.to_owned(),
            None => format!("{location}.child_modules[{i}]"),
        };
        walk(child, &child_location, origin, rules, out)?;
    }
    Ok(())
}
