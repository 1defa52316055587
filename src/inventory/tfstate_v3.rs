//! Raw state version 3, written by Terraform 0.7 to 0.11.
//!
//! `modules[]` each hold a `resources` map keyed `[data.]TYPE.NAME[.INDEX]`;
//! the index is absent when count is 1, so a single bootstrap is
//! `packet_device.dcos_bootstrap`. Each resource has a `primary` object
//! (`tainted` when marked for replacement) and a `deposed` list of the old
//! objects `create_before_destroy` keeps running; all of them are machines.
//! Attributes are a flatmap of strings.

use std::collections::BTreeMap;

use serde_json::Value;

use super::device::{Attrs, Device, resource_address};
use super::{Error, Lifecycle, Origin, RoleRules, shape};

pub(super) fn devices(
    doc: &Value,
    origin: &Origin,
    rules: &RoleRules,
    skipped: &mut BTreeMap<String, usize>,
) -> Result<Vec<Device<'static>>, Error> {
    let modules = doc
        .get("modules")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::malformed(origin, "state version 3", "has no \"modules\" list"))?;
    let mut out = Vec::new();
    for (m, module) in modules.iter().enumerate() {
        let at = format!("modules[{m}]");
        let module = shape::object(module, origin, &at)?;
        let module_addr = module_address(module.get("path"))
            .ok_or_else(|| Error::malformed(origin, &at, "\"path\" is not a list of names"))?;
        let Some(resources) = shape::opt_object(module, "resources", origin, &at)? else {
            continue;
        };
        for (key, resource) in resources {
            let parts: Vec<&str> = key.split('.').collect();
            let (rtype, name, index) = match parts.as_slice() {
                ["data", ..] => continue,
                [t, n] => (*t, *n, None),
                [t, n, i] => {
                    let i: u64 = i.parse().map_err(|_| {
                        Error::malformed(origin, format!("resource key {key:?}"), "index is not a number")
                    })?;
                    (*t, *n, Some(Value::from(i)))
                }
                _ => {
                    return Err(Error::malformed(
                        origin,
                        format!("resource key {key:?}"),
                        "expected TYPE.NAME or TYPE.NAME.INDEX",
                    ));
                }
            };
            let keyed = format!("resource {key:?}");
            let resource = shape::object(resource, origin, &keyed)?;
            let rtype = shape::opt_str(resource, "type", origin, &keyed)?.unwrap_or(rtype);
            if !rules.is_read(rtype) {
                super::census::skip(skipped, rtype, 1);
                continue;
            }
            let address = resource_address(&module_addr, rtype, name, index.as_ref());
            let device = |object: &Value, lifecycle, deposed: Option<String>, at: &str| {
                let object = shape::object(object, origin, &format!("{address}: {at}"))?;
                let attrs = shape::opt_object(object, "attributes", origin, &format!("{address}: {at}"))?
                    .ok_or_else(|| {
                        Error::malformed(origin, &address, format!("{at} has no \"attributes\" map"))
                    })?;
                Ok::<_, Error>(Device {
                    address: address.clone(),
                    rtype: rtype.to_owned(),
                    name: name.to_owned(),
                    lifecycle,
                    deposed,
                    attrs: Attrs::flat(attrs, origin, &address)?,
                    // Version 3 predates sensitivity marks.
                    sensitive: Default::default(),
                })
            };
            if let Some(primary) = resource.get("primary").filter(|p| !p.is_null()) {
                let tainted = match primary {
                    Value::Object(_) => shape::opt_bool(primary, "tainted", origin, &address)?,
                    _ => None,
                };
                let lifecycle = if tainted == Some(true) {
                    Lifecycle::Tainted
                } else {
                    Lifecycle::Current
                };
                out.push(device(primary, lifecycle, None, "primary")?);
            }
            // A v3 deposed object has no key of its own (the upgrade to v4
            // draws random ones): its position in the list names it.
            let deposed = shape::opt_list(resource, "deposed", origin, &address)?;
            for (i, object) in deposed.into_iter().flatten().enumerate() {
                out.push(device(
                    object,
                    Lifecycle::Deposed,
                    Some(i.to_string()),
                    &format!("deposed[{i}]"),
                )?);
            }
        }
    }
    Ok(out)
}

/// `["root", "dcos", "nodes"]` is `module.dcos.module.nodes`; the root is "".
fn module_address(path: Option<&Value>) -> Option<String> {
    let Some(path) = path else {
        return Some(String::new());
    };
    let names: Vec<&str> = path
        .as_array()?
        .iter()
        .map(Value::as_str)
        .collect::<Option<_>>()?;
    let children = names.strip_prefix(&["root"]).unwrap_or(&names);
    Some(
        children
            .iter()
            .map(|n| format!("module.{n}"))
            .collect::<Vec<_>>()
            .join("."),
    )
}
