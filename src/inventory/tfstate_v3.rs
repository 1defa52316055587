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
            let Some(Key { rtype, name, index }) = split_key(key, origin)? else {
                continue;
            };
            let keyed = format!("resource {key:?}");
            let resource = shape::object(resource, origin, &keyed)?;
            let rtype = shape::opt_str(resource, "type", origin, &keyed)?.unwrap_or(rtype);
            if !rules.is_read(rtype) {
                super::census::skip(skipped, rtype, 1);
                continue;
            }
            let machine = Machine {
                address: resource_address(&module_addr, rtype, name, index.as_ref()),
                rtype,
                name,
            };
            machine.objects(resource, origin, &mut out)?;
        }
    }
    Ok(out)
}

/// What a resource key says.
struct Key<'k> {
    rtype: &'k str,
    name: &'k str,
    index: Option<Value>,
}

/// A resource key, `[data.]TYPE.NAME[.INDEX]`, as its type, name and index;
/// `None` for a data source, which is no machine.
fn split_key<'k>(key: &'k str, origin: &Origin) -> Result<Option<Key<'k>>, Error> {
    let parts: Vec<&str> = key.split('.').collect();
    let (rtype, name, index) = match parts.as_slice() {
        ["data", ..] => return Ok(None),
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
    Ok(Some(Key { rtype, name, index }))
}

/// A resource palisade reads machines from.
struct Machine<'r> {
    address: String,
    rtype: &'r str,
    name: &'r str,
}

impl Machine<'_> {
    /// Every object of the resource, each a machine: the `primary` (unless
    /// null), then the `deposed` ones.
    fn objects(
        &self,
        resource: &Value,
        origin: &Origin,
        out: &mut Vec<Device<'static>>,
    ) -> Result<(), Error> {
        let address = &self.address;
        if let Some(primary) = resource.get("primary").filter(|p| !p.is_null()) {
            let tainted = match primary {
                Value::Object(_) => shape::opt_bool(primary, "tainted", origin, address)?,
                _ => None,
            };
            let lifecycle = if tainted == Some(true) {
                Lifecycle::Tainted
            } else {
                Lifecycle::Current
            };
            out.push(self.device(primary, lifecycle, None, "primary", origin)?);
        }
        // A v3 deposed object has no key of its own (the upgrade to v4
        // draws random ones): its position in the list names it.
        let deposed = shape::opt_list(resource, "deposed", origin, address)?;
        for (i, object) in deposed.into_iter().flatten().enumerate() {
            out.push(self.device(
                object,
                Lifecycle::Deposed,
                Some(i.to_string()),
                &format!("deposed[{i}]"),
                origin,
            )?);
        }
        Ok(())
    }

    /// One object of the resource (`at` names it), with its flat attributes.
    fn device(
        &self,
        object: &Value,
        lifecycle: Lifecycle,
        deposed: Option<String>,
        at: &str,
        origin: &Origin,
    ) -> Result<Device<'static>, Error> {
        let address = &self.address;
        let object = shape::object(object, origin, &format!("{address}: {at}"))?;
        let attrs = shape::opt_object(object, "attributes", origin, &format!("{address}: {at}"))?
            .ok_or_else(|| Error::malformed(origin, address, format!("{at} has no \"attributes\" map")))?;
        Ok(Device {
            address: address.clone(),
            rtype: self.rtype.to_owned(),
            name: self.name.to_owned(),
            lifecycle,
            deposed,
            attrs: Attrs::flat(attrs, origin, address)?,
            // Version 3 predates sensitivity marks.
            sensitive: Default::default(),
        })
    }
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
