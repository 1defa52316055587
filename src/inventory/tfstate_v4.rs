//! Raw state version 4, written by Terraform 0.12 and later (and by
//! `terraform state pull`).
//!
//! `resources[]` carry `module`, `mode`, `type`, `name` and `instances[]`
//! with an `index_key` (int for count, string for for_each). An instance
//! object is `status: "tainted"` when marked for replacement, and carries a
//! `deposed` key when it is an old object `create_before_destroy` keeps
//! beside its replacement; all of them are machines. An instance holds
//! either nested `attributes`, or `attributes_flat` when the state was
//! upgraded from version 3 and not refreshed since.

use std::collections::BTreeMap;

use serde_json::Value;

use super::device::{Attrs, Device, resource_address};
use super::{Error, Lifecycle, Origin, RoleRules, shape};

pub(super) fn devices<'a>(
    doc: &'a Value,
    origin: &Origin,
    rules: &RoleRules,
    skipped: &mut BTreeMap<String, usize>,
) -> Result<Vec<Device<'a>>, Error> {
    let resources = match doc.get("resources") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(Error::malformed(
                origin,
                "state version 4",
                "\"resources\" is not a list",
            ));
        }
    };
    let mut out = Vec::new();
    for (r, resource) in resources.iter().enumerate() {
        let at = format!("resources[{r}]");
        let resource = shape::object(resource, origin, &at)?;
        if shape::opt_str(resource, "mode", origin, &at)?.unwrap_or("managed") != "managed" {
            continue;
        }
        let (Some(rtype), Some(name)) = (
            shape::opt_str(resource, "type", origin, &at)?,
            shape::opt_str(resource, "name", origin, &at)?,
        ) else {
            return Err(Error::malformed(origin, at, "has no \"type\" or \"name\""));
        };
        if !rules.is_read(rtype) {
            let count = resource
                .get("instances")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            super::census::skip(skipped, rtype, count);
            continue;
        }
        let module = shape::opt_str(resource, "module", origin, &at)?.unwrap_or("");
        let at = resource_address(module, rtype, name, None);
        // Terraform writes `"instances": []` for a resource with none: a
        // machine resource without the list is a damaged state, not an
        // empty one.
        let instances = shape::opt_list(resource, "instances", origin, &at)?
            .ok_or_else(|| Error::malformed(origin, &at, "has no \"instances\" list"))?;
        let machine = Machine { module, rtype, name };
        for (i, instance) in instances.iter().enumerate() {
            let at = format!("{at}: instances[{i}]");
            out.push(machine.device(shape::object(instance, origin, &at)?, &at, origin)?);
        }
    }
    Ok(out)
}

/// A resource palisade reads machines from.
struct Machine<'a> {
    module: &'a str,
    rtype: &'a str,
    name: &'a str,
}

impl<'a> Machine<'a> {
    /// One instance of the resource (`at` names it), each a machine.
    fn device(&self, instance: &'a Value, at: &str, origin: &Origin) -> Result<Device<'a>, Error> {
        let index = match instance.get("index_key") {
            None | Some(Value::Null) => None,
            Some(key @ (Value::Number(_) | Value::String(_))) => Some(key),
            Some(other) => {
                return Err(Error::malformed(
                    origin,
                    at,
                    format!(
                        "\"index_key\" is {}, not a number (count) or a string (for_each)",
                        shape::kind(other)
                    ),
                ));
            }
        };
        let address = resource_address(self.module, self.rtype, self.name, index);
        let tainted = shape::opt_str(instance, "status", origin, &address)? == Some("tainted");
        let (lifecycle, deposed) = lifecycle(instance.get("deposed"), tainted, origin, &address)?;
        Ok(Device {
            attrs: attributes(instance, origin, &address)?,
            sensitive: sensitive_attributes(instance.get("sensitive_attributes")),
            address,
            rtype: self.rtype.to_owned(),
            name: self.name.to_owned(),
            lifecycle,
            deposed,
        })
    }
}

/// An instance's attributes: nested, or the flatmap of a state upgraded
/// from version 3 and not refreshed since.
fn attributes<'a>(instance: &'a Value, origin: &Origin, address: &str) -> Result<Attrs<'a>, Error> {
    if let Some(nested) = shape::opt_object(instance, "attributes", origin, address)? {
        Ok(Attrs::Nested(nested))
    } else if let Some(flat) = shape::opt_object(instance, "attributes_flat", origin, address)? {
        Attrs::flat(flat, origin, address)
    } else {
        Err(Error::malformed(
            origin,
            address,
            "instance has neither \"attributes\" nor \"attributes_flat\"",
        ))
    }
}

/// The top-level attributes an instance's `sensitive_attributes` marks:
/// each entry is a path of steps, the first `{"type": "get_attr", "value":
/// NAME}` (internal/states/statefile/version4.go). A nested mark marks its
/// whole top-level attribute: palisade reads less, never a marked value. A
/// shape it does not know marks nothing it could name, and is passed over.
fn sensitive_attributes(value: Option<&Value>) -> std::collections::BTreeSet<String> {
    let Some(Value::Array(paths)) = value else {
        return Default::default();
    };
    paths
        .iter()
        .filter_map(|path| {
            let first = match path {
                Value::Array(steps) => steps.first()?,
                step @ Value::Object(_) => step,
                _ => return None,
            };
            (first.get("type")?.as_str()? == "get_attr").then_some(())?;
            first.get("value")?.as_str().map(str::to_owned)
        })
        .collect()
}

/// Where an instance stands, from its deposed key (if any) and its tainted
/// mark: v4 state and `terraform show -json` say both, in their own words.
pub(super) fn lifecycle(
    deposed: Option<&Value>,
    tainted: bool,
    origin: &Origin,
    address: &str,
) -> Result<(Lifecycle, Option<String>), Error> {
    match deposed {
        None | Some(Value::Null) if tainted => Ok((Lifecycle::Tainted, None)),
        None | Some(Value::Null) => Ok((Lifecycle::Current, None)),
        Some(key) => Ok((Lifecycle::Deposed, Some(deposed_key(key, origin, address)?))),
    }
}

/// A deposed key as Terraform writes it: 8 hex digits. It becomes part of a
/// host's name, so nothing else is admitted.
fn deposed_key(key: &Value, origin: &Origin, address: &str) -> Result<String, Error> {
    key.as_str()
        .filter(|k| (1..=64).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::malformed(
                origin,
                address,
                format!(
                    "deposed key {} is not a Terraform deposed key",
                    super::device::shorten(&key.to_string())
                ),
            )
        })
}
