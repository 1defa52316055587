//! `terraform show -json` of a state: `values.root_module` holds
//! `resources[]` (each with its full `address` and nested `values`) and
//! `child_modules[]`, nested to any depth. A tainted instance says
//! `"tainted": true`; a deposed object is listed as a resource of its own,
//! with the same address and a `deposed_key`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::device::{Attrs, Device, escape};
use super::{Error, Origin, RoleRules, shape};

pub(super) fn devices<'a>(
    doc: &'a Value,
    origin: &Origin,
    rules: &RoleRules,
    skipped: &mut BTreeMap<String, usize>,
) -> Result<Vec<Device<'a>>, Error> {
    let mut out = Vec::new();
    // An empty state prints no "values" at all.
    let values = shape::opt_object(doc, "values", origin, "the document")?;
    if let Some(root) = values.and_then(|v| v.get("root_module")).filter(|r| !r.is_null()) {
        let root = shape::object(root, origin, "values.root_module")?;
        let mut walk = Walk {
            origin,
            rules,
            skipped,
            out: &mut out,
        };
        walk.module(root, "values.root_module")?;
    }
    Ok(out)
}

struct Walk<'w, 'a> {
    origin: &'w Origin,
    rules: &'w RoleRules,
    skipped: &'w mut BTreeMap<String, usize>,
    out: &'w mut Vec<Device<'a>>,
}

impl<'a> Walk<'_, 'a> {
    fn module(&mut self, module: &'a Value, location: &str) -> Result<(), Error> {
        let origin = self.origin;
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
            let at = format!("{location}.resources[{i}]");
            let resource = shape::object(resource, origin, &at)?;
            let field = |k: &str| shape::opt_str(resource, k, origin, &at);
            if field("mode")?.unwrap_or("managed") != "managed" {
                continue;
            }
            let (Some(rtype), Some(name), Some(address)) =
                (field("type")?, field("name")?, field("address")?)
            else {
                return Err(Error::malformed(
                    origin,
                    format!("{location}.resources[{i}]"),
                    "has no \"type\", \"name\" or \"address\"",
                ));
            };
            if !self.rules.is_read(rtype) {
                super::census::skip(self.skipped, rtype, 1);
                continue;
            }
            // The address is the file's text, in every message about the
            // resource: escaped like the ones the other formats build.
            let address = escape(address);
            let tainted = shape::opt_bool(resource, "tainted", origin, &address)? == Some(true);
            let (lifecycle, deposed) =
                super::tfstate_v4::lifecycle(resource.get("deposed_key"), tainted, origin, &address)?;
            let values = shape::opt_object(resource, "values", origin, &address)?
                .ok_or_else(|| Error::malformed(origin, &address, "has no \"values\" object"))?;
            self.out.push(Device {
                address,
                rtype: rtype.to_owned(),
                name: name.to_owned(),
                lifecycle,
                deposed,
                attrs: Attrs::Nested(values),
                sensitive: sensitive_values(resource.get("sensitive_values")),
            });
        }
        for (i, child) in list("child_modules")?.iter().enumerate() {
            let at = format!("{location}.child_modules[{i}]");
            let child = shape::object(child, origin, &at)?;
            let child_location = match shape::opt_str(child, "address", origin, &at)? {
                Some(addr) => escape(addr),
                None => format!("{location}.child_modules[{i}]"),
            };
            self.module(child, &child_location)?;
        }
        Ok(())
    }
}

/// The top-level attributes `sensitive_values` marks: it mirrors `values`,
/// with `true` where a value is sensitive (internal/command/jsonstate); an
/// attribute with a mark anywhere inside it is marked whole.
fn sensitive_values(value: Option<&Value>) -> std::collections::BTreeSet<String> {
    fn any_true(v: &Value) -> bool {
        match v {
            Value::Bool(b) => *b,
            Value::Array(items) => items.iter().any(any_true),
            Value::Object(map) => map.values().any(any_true),
            _ => false,
        }
    }
    match value {
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(_, v)| any_true(v))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => Default::default(),
    }
}
