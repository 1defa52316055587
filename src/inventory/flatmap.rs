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

pub(super) fn unflatten(flat: &Map<String, Value>) -> Map<String, Value> {
    build(flat.iter().map(|(k, v)| (k.as_str(), v)).collect())
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
        let nested = unflatten(flat.as_object().unwrap());
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
}
