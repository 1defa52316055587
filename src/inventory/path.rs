//! Attribute paths: where in a resource's attributes a value lives, written
//! once and read the same way from every state format.
//!
//! Providers nest addresses in lists of blocks (`network_interface[*].
//! access_config[*].nat_ip`), some lists must be picked by meaning rather than
//! position (`network[public=true].address`), and the legacy flatmap stores
//! the same data as `network.1.address` strings. A path names the data by
//! meaning; `flatmap` turns a flatmap into the nested shape first, so one
//! walker serves v3, v4, `attributes_flat` and `terraform show -json` alike.
//!
//! Syntax: names separated by dots. `name[*]` is every element of a list or
//! set (or every value of a map); `name[key=value]` only the elements whose
//! field `key` reads `value`; a bare `*` is every element of what came before.
//! A name applied to a list applies to each element, so a block Terraform
//! stores as a one-element list (SDKv2) or as an object (plugin framework)
//! reads the same; `[*]` and `[key=value]` treat such an object as a list of
//! one. Names that hold secrets (`types::is_secret`) are never read, not
//! even as the values `[*]` yields from a map.

use std::fmt;

use serde_json::{Map, Value};

use super::types::is_secret;

/// A parsed attribute path. Its text is kept for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttrPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// A field of an object (a map key in the flatmap).
    Key(String),
    /// Every element of a list or set, every value of a map.
    Each,
    /// The elements whose field `key` reads `value`.
    Where { key: String, value: String },
}

/// How field names are written in messages: as Terraform's own references
/// (`network[1].address`) or as the flatmap key the file holds
/// (`network.1.address`), so the operator can find the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    Nested,
    Flat,
}

/// A value found at a path, and where it was.
#[derive(Debug)]
pub(super) struct Hit<'a> {
    pub(crate) value: &'a Value,
    pub(crate) field: String,
}

impl AttrPath {
    /// Parses a path; the error says what is wrong, without the path
    /// (callers say which setting it came from).
    pub(crate) fn parse(text: &str) -> Result<AttrPath, String> {
        let mut steps = Vec::new();
        for (i, segment) in text.split('.').enumerate() {
            if segment == "*" {
                if i == 0 {
                    return Err("a path starts with an attribute name, not *".into());
                }
                steps.push(Step::Each);
                continue;
            }
            let (name, selector) = match segment.split_once('[') {
                None => (segment, None),
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix(']')
                        .ok_or_else(|| format!("{segment:?}: a [ without its closing ]"))?;
                    (name, Some(inner))
                }
            };
            if !valid_name(name) {
                return Err(format!(
                    "{segment:?}: expected an attribute name (no blanks, dots, brackets or =)"
                ));
            }
            steps.push(Step::Key(name.to_owned()));
            match selector {
                None => {}
                Some("*") => steps.push(Step::Each),
                Some(filter) => {
                    let (key, value) = filter
                        .split_once('=')
                        .filter(|(k, v)| valid_name(k) && !v.is_empty() && !v.contains(['[', ']']))
                        .ok_or_else(|| format!("{segment:?}: expected [*] or [field=value]"))?;
                    steps.push(Step::Where {
                        key: key.to_owned(),
                        value: value.to_owned(),
                    });
                }
            }
        }
        Ok(AttrPath {
            text: text.to_owned(),
            steps,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Every value at this path, in the order the file holds them. Missing
    /// attributes, nulls and shapes that do not fit yield nothing: a path
    /// says where a value may be, not that it must be there.
    pub(super) fn find<'a>(&self, attrs: &'a Map<String, Value>, style: Style) -> Vec<Hit<'a>> {
        let Some((Step::Key(first), rest)) = self.steps.split_first() else {
            return Vec::new();
        };
        let Some(start) = attrs.get(first) else {
            return Vec::new();
        };
        let mut hits = vec![Hit {
            value: start,
            field: first.clone(),
        }];
        for (i, step) in rest.iter().enumerate() {
            let next = rest.get(i + 1);
            hits = hits
                .into_iter()
                .flat_map(|hit| apply(step, next, hit, style, 0))
                .collect();
        }
        hits.retain(|h| !h.value.is_null());
        hits
    }

    /// Every attribute name the path reads (fields and filter keys), for
    /// the secret check.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|step| match step {
            Step::Key(name) | Step::Where { key: name, .. } => Some(name.as_str()),
            Step::Each => None,
        })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '.' | '[' | ']' | '=' | '*'))
}

/// How deeply one step may descend through lists of lists. Values are
/// nested at most 128 deep (serde_json's limit, and `flatmap`'s), so this
/// only bounds recursion should that ever change.
const MAX_DEPTH: usize = 128;

fn apply<'a>(step: &Step, next: Option<&Step>, hit: Hit<'a>, style: Style, depth: usize) -> Vec<Hit<'a>> {
    if depth > MAX_DEPTH {
        return Vec::new();
    }
    match (step, hit.value) {
        // What holds secrets is never read, whatever a path says.
        (Step::Key(key), _) if is_secret(key) => Vec::new(),
        (Step::Key(key), Value::Object(map)) if map.contains_key(key) || !flat_list(map, style) => map
            .get(key)
            .map(|value| Hit {
                value,
                field: format!("{}.{key}", hit.field),
            })
            .into_iter()
            .collect(),
        (Step::Key(_), Value::Array(_) | Value::Object(_)) => elements(hit, style)
            .into_iter()
            .flat_map(|element| apply(step, next, element, style, depth + 1))
            .collect(),
        (Step::Key(_), _) => Vec::new(),
        // A block stored as an object (plugin framework) is its own only
        // element: `ip_addresses[*].address` reads `{"address": …}` as it
        // reads `[{"address": …}]`. It is told from a map by holding the
        // field the path reads next.
        (Step::Each, Value::Object(map))
            if !flat_list(map, style) && matches!(next, Some(Step::Key(k)) if map.contains_key(k)) =>
        {
            vec![hit]
        }
        (Step::Each, Value::Object(_) | Value::Array(_)) => elements(hit, style),
        // A single value where a list was expected (a `tag` string beside a
        // `tags` list): it is its own only element.
        (Step::Each, _) => vec![hit],
        (Step::Where { key, value }, Value::Object(map))
            if !flat_list(map, style) && map.get(key).and_then(scalar).is_some() =>
        {
            let matches = map.get(key).and_then(scalar).as_deref() == Some(value.as_str());
            if matches { vec![hit] } else { Vec::new() }
        }
        (Step::Where { key, value }, Value::Object(_) | Value::Array(_)) => elements(hit, style)
            .into_iter()
            .filter(|e| e.value.get(key).and_then(scalar).as_deref() == Some(value.as_str()))
            .collect(),
        (Step::Where { .. }, _) => Vec::new(),
    }
}

/// A flatmap list or set (an object keyed by index or hash), which a name
/// applies to element by element as it does to a list.
fn flat_list(map: &Map<String, Value>, style: Style) -> bool {
    style == Style::Flat && !map.is_empty() && map.keys().all(|k| k.bytes().all(|b| b.is_ascii_digit()))
}

/// The elements of a list (or of a flatmap list, which `flatmap` keeps as
/// an object keyed by index or set hash) and the values of a map.
fn elements(hit: Hit<'_>, style: Style) -> Vec<Hit<'_>> {
    match hit.value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, value)| Hit {
                value,
                field: match style {
                    Style::Nested => format!("{}[{i}]", hit.field),
                    Style::Flat => format!("{}.{i}", hit.field),
                },
            })
            .collect(),
        // A map's secret entries (`metadata.startup-script`) are passed
        // over: `metadata[*]` reads every other value.
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| !is_secret(key))
            .map(|(key, value)| Hit {
                value,
                field: format!("{}.{key}", hit.field),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A JSON scalar as text: strings as they are, numbers and booleans printed
/// (the flatmap holds `"true"` where nested state holds `true`).
pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn texts(path: &str, doc: &Value, style: Style) -> Vec<(String, String)> {
        let path = AttrPath::parse(path).unwrap();
        path.find(doc.as_object().unwrap(), style)
            .into_iter()
            .map(|h| (h.field, scalar(h.value).unwrap_or_else(|| "<not scalar>".into())))
            .collect()
    }

    #[test]
    fn names_lists_and_filters() {
        let doc = json!({
            "public_ip": "203.0.113.5",
            "network": [
                {"address": "10.0.0.1", "public": false},
                {"address": "203.0.113.5", "public": true},
                {"address": "2001:db8::5", "public": true}
            ],
            "network_interface": [{"access_config": [{"nat_ip": "198.51.100.7"}], "network_ip": "10.1.0.2"}],
            "tags": {"Name": "web-1", "kubernetes.io/role": "x"},
            "iam": {"tags": {"role": "master"}},
            "nothing": null
        });
        assert_eq!(
            texts("public_ip", &doc, Style::Nested),
            [("public_ip".into(), "203.0.113.5".into())]
        );
        assert_eq!(
            texts("network[public=true].address", &doc, Style::Nested),
            [
                ("network[1].address".into(), "203.0.113.5".into()),
                ("network[2].address".into(), "2001:db8::5".into())
            ]
        );
        assert_eq!(
            texts(
                "network_interface[*].access_config[*].nat_ip",
                &doc,
                Style::Nested
            ),
            [(
                "network_interface[0].access_config[0].nat_ip".into(),
                "198.51.100.7".into()
            )]
        );
        // A name applied to a list applies to each element.
        assert_eq!(
            texts("network_interface.network_ip", &doc, Style::Nested),
            [("network_interface[0].network_ip".into(), "10.1.0.2".into())]
        );
        assert_eq!(
            texts("tags.Name", &doc, Style::Nested),
            [("tags.Name".into(), "web-1".into())]
        );
        assert_eq!(
            texts("iam.tags.role", &doc, Style::Nested),
            [("iam.tags.role".into(), "master".into())]
        );
        assert!(texts("nothing", &doc, Style::Nested).is_empty());
        assert!(texts("absent[*].x", &doc, Style::Nested).is_empty());
        assert!(texts("public_ip.deeper", &doc, Style::Nested).is_empty());
        // A single value read as a list is its own element.
        assert_eq!(texts("public_ip[*]", &doc, Style::Nested).len(), 1);
    }

    #[test]
    fn flat_style_names_fields_as_the_flatmap_does() {
        let doc = json!({"network": {"0": {"address": "10.0.0.1", "public": "false"},
                                     "1": {"address": "203.0.113.5", "public": "true"}},
                         "iam": {"0": {"tags": {"role": "master"}}}});
        assert_eq!(
            texts("network[public=true].address", &doc, Style::Flat),
            [("network.1.address".into(), "203.0.113.5".into())]
        );
        // A block stored as a list of one reads like the object it is.
        assert_eq!(
            texts("iam.tags.role", &doc, Style::Flat),
            [("iam.0.tags.role".into(), "master".into())]
        );
        assert!(texts("iam.tags.role", &doc, Style::Nested).is_empty());
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in [
            "", "a..b", "*.a", "a[", "a[x]", "a[=v]", "a[k=]", "a b", "a.b]", "a[*]b", "a[k=v",
        ] {
            assert!(AttrPath::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "a",
            "a.b",
            "a[*]",
            "a.*",
            "a[k=v].b",
            "a[type=primary-ip].address",
        ] {
            assert!(AttrPath::parse(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            AttrPath::parse("network[public=true].address")
                .unwrap()
                .names()
                .collect::<Vec<_>>(),
            ["network", "public", "address"]
        );
    }

    #[test]
    fn a_block_stored_as_an_object_reads_like_a_list_of_one() {
        let doc = json!({"ip_addresses": {"type": "primary-ip", "address": "203.0.113.70"},
                         "other": {"type": "private-ip", "address": "10.0.0.1"}});
        assert_eq!(
            texts("ip_addresses[type=primary-ip].address", &doc, Style::Nested),
            [("ip_addresses.address".into(), "203.0.113.70".into())]
        );
        assert_eq!(
            texts("ip_addresses[*].address", &doc, Style::Nested),
            [("ip_addresses.address".into(), "203.0.113.70".into())]
        );
        assert!(texts("other[type=primary-ip].address", &doc, Style::Nested).is_empty());
        // A map is still every value.
        assert_eq!(texts("ip_addresses[*]", &doc, Style::Nested).len(), 2);
    }

    #[test]
    fn secrets_are_never_read_even_through_a_wildcard() {
        let doc = json!({"metadata": {"startup-script": "SECRET", "User_Data": "SECRET", "role": "master"},
                         "os_profile": [{"custom_data": "SECRET"}]});
        assert_eq!(
            texts("metadata[*]", &doc, Style::Nested),
            [("metadata.role".into(), "master".into())]
        );
        assert!(texts("metadata.startup-script", &doc, Style::Nested).is_empty());
        assert!(texts("os_profile[*].custom_data", &doc, Style::Nested).is_empty());
    }

    #[test]
    fn deeply_nested_lists_end_the_walk_instead_of_the_stack() {
        let mut doc = json!("10.0.0.1");
        for _ in 0..MAX_DEPTH + 10 {
            doc = json!([doc]);
        }
        let doc = json!({"a": doc});
        assert!(texts("a.b", &doc, Style::Nested).is_empty());
    }
}
