//! Typed reads of the JSON fields the readers walk. A field may be absent or
//! null (Terraform writes null for what is unset); a field of another type
//! is an error naming where it is, never read as absent: a state whose
//! `instances` is an object must not quietly lose its machines.

use serde_json::{Map, Value};

use super::{Error, Origin};

/// What a JSON value is, as a message says it (never the value itself,
/// which may be a secret).
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrong(origin: &Origin, location: &str, key: &str, want: &str, got: &Value) -> Error {
    Error::malformed(
        origin,
        location,
        format!("\"{key}\" is {}, not {want}", kind(got)),
    )
}

pub(super) fn opt_str<'a>(
    v: &'a Value,
    key: &str,
    origin: &Origin,
    location: &str,
) -> Result<Option<&'a str>, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(origin, location, key, "a string", other)),
    }
}

pub(super) fn opt_bool(v: &Value, key: &str, origin: &Origin, location: &str) -> Result<Option<bool>, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong(origin, location, key, "true or false", other)),
    }
}

pub(super) fn opt_list<'a>(
    v: &'a Value,
    key: &str,
    origin: &Origin,
    location: &str,
) -> Result<Option<&'a [Value]>, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(wrong(origin, location, key, "a list", other)),
    }
}

pub(super) fn opt_object<'a>(
    v: &'a Value,
    key: &str,
    origin: &Origin,
    location: &str,
) -> Result<Option<&'a Map<String, Value>>, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(wrong(origin, location, key, "an object", other)),
    }
}

/// A list element or map value that must itself be an object.
pub(super) fn object<'a>(v: &'a Value, origin: &Origin, location: &str) -> Result<&'a Value, Error> {
    match v {
        Value::Object(_) => Ok(v),
        other => Err(Error::malformed(
            origin,
            location,
            format!("is {}, not an object", kind(other)),
        )),
    }
}
