//! The legacy flatmap (state v3, and v4 `attributes_flat` after `terraform
//! state pull` of an upgraded state) turned back into nested objects, so
//! attribute paths read it as they read nested state.
//!
//! A flatmap writes a list as `name.# = "2"` plus `name.0.field`, a set the
//! same way with hash codes for indices (`ipv4.1893471093`), and a map as
//! `name.% = "2"` plus `name.KEY`. Map keys may themselves hold dots
//! (`tags.kubernetes.io/role`), so under a `%` the rest of the key is one
//! map key, never split further. Lists stay objects keyed by index or hash:
//! the keys are what the file says, and error messages quote them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How deeply a flatmap key may nest (names between dots). serde_json
/// refuses JSON nested deeper than 128, and no provider schema comes close;
/// a deeper key is hostile, and unflattening (then walking) it would
/// recurse once per dot.
pub(super) const MAX_DEPTH: usize = 128;

/// The nested form of a flatmap; the error is a key nested deeper than
/// [`MAX_DEPTH`], shortened for messages.
pub(super) fn unflatten(flat: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    if let Some(key) = flat.keys().find(|k| k.split('.').nth(MAX_DEPTH).is_some()) {
        return Err(crate::text::shorten(key, 64));
    }
    Ok(build(flat.iter().map(|(k, v)| (k.as_str(), v)).collect()))
}

fn build(entries: Vec<(&str, &Value)>) -> Map<String, Value> {
    let mut leaves: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut groups: BTreeMap<&str, Vec<(&str, &Value)>> = BTreeMap::new();
    for (key, value) in entries {
        match key.split_once('.') {
            None => {
                leaves.insert(key, value);
            }
            Some((head, rest)) => groups.entry(head).or_default().push((rest, value)),
        }
    }
    let mut out = Map::new();
    for (key, value) in leaves {
        out.insert(key.to_owned(), value.clone());
    }
    for (head, children) in groups {
        let node = if children.iter().any(|(k, _)| *k == "%") {
            children
                .into_iter()
                .filter(|(k, _)| *k != "%")
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect()
        } else {
            build(children.into_iter().filter(|(k, _)| *k != "#").collect())
        };
        out.insert(head.to_owned(), Value::Object(node));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_sets_and_maps() {
        let flat = json!({
            "hostname": "a",
            "network.#": "2",
            "network.0.address": "10.0.0.1",
            "network.0.public": "false",
            "network.1.address": "203.0.113.5",
            "ipv4.#": "1",
            "ipv4.1893471093": "203.0.113.9",
            "tags.%": "2",
            "tags.Name": "web",
            "tags.kubernetes.io/role": "master",
            "network_interface.#": "1",
            "network_interface.0.access_config.#": "1",
            "network_interface.0.access_config.0.nat_ip": "198.51.100.7",
            "network_interface.0.labels.%": "1",
            "network_interface.0.labels.a.b": "c",
            "empty.#": "0"
        });
        let nested = unflatten(flat.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(nested),
            json!({
                "hostname": "a",
                "network": {"0": {"address": "10.0.0.1", "public": "false"}, "1": {"address": "203.0.113.5"}},
                "ipv4": {"1893471093": "203.0.113.9"},
                "tags": {"Name": "web", "kubernetes.io/role": "master"},
                "network_interface": {"0": {"access_config": {"0": {"nat_ip": "198.51.100.7"}},
                                            "labels": {"a.b": "c"}}},
                "empty": {}
            })
        );
    }

    #[test]
    fn keys_nested_too_deeply_are_refused_not_recursed() {
        let deep = format!("{}y", "x.".repeat(200_000));
        let flat = json!({"public_ip": "203.0.113.1", deep: "1"});
        let err = unflatten(flat.as_object().unwrap()).unwrap_err();
        assert!(err.starts_with("x.x."), "{err}");
        assert!(err.chars().count() <= 65, "{err}");
        let ok = format!("{}y", "x.".repeat(MAX_DEPTH - 1));
        assert!(unflatten(json!({ ok: "1" }).as_object().unwrap()).is_ok());
        let bad = format!("{}y", "x.".repeat(MAX_DEPTH));
        assert!(unflatten(json!({ bad: "1" }).as_object().unwrap()).is_err());
    }
}
