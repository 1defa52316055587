//! Raw state version 4, written by Terraform 0.12 and later (and by
//! `terraform state pull`).
//!
//! `resources[]` carry `module`, `mode`, `type`, `name` and `instances[]`
//! with an `index_key` (int for count, string for for_each). An instance
//! holds either nested `attributes`, or `attributes_flat` when the state was
//! upgraded from version 3 and not refreshed since.

use serde_json::Value;

use super::device::{Attrs, Device, resource_address};
use super::{Error, Origin, RoleRules};

pub(super) fn devices<'a>(
    doc: &'a Value,
    origin: &Origin,
    rules: &RoleRules,
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
        let field = |k: &str| resource.get(k).and_then(Value::as_str);
        if field("mode").unwrap_or("managed") != "managed" {
            continue;
        }
        let (Some(rtype), Some(name)) = (field("type"), field("name")) else {
            return Err(Error::malformed(
                origin,
                format!("resources[{r}]"),
                "has no \"type\" or \"name\"",
            ));
        };
        if !rules.is_device(rtype) {
            continue;
        }
        let module = field("module").unwrap_or("");
        let Some(instances) = resource.get("instances").and_then(Value::as_array) else {
            continue;
        };
        for instance in instances {
            let address = resource_address(module, rtype, name, instance.get("index_key"));
            if instance.get("deposed").is_some_and(|d| !d.is_null()) {
                tracing::warn!("{origin}: {address}: deposed object (being replaced); skipped");
                continue;
            }
            if instance.get("status").and_then(Value::as_str) == Some("tainted") {
                tracing::warn!("{origin}: {address}: tainted (Terraform will replace it); skipped");
                continue;
            }
            let attrs = if let Some(nested) = instance.get("attributes").and_then(Value::as_object) {
                Attrs::Nested(nested)
            } else if let Some(flat) = instance.get("attributes_flat").and_then(Value::as_object) {
                Attrs::Flat(flat)
            } else {
                return Err(Error::malformed(
                    origin,
                    &address,
                    "instance has neither \"attributes\" nor \"attributes_flat\"",
                ));
            };
            out.push(Device {
                address,
                name: name.to_owned(),
                attrs,
            });
        }
    }
    Ok(out)
}
