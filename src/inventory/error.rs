//! Why a fleet could not be read. Every variant names the file, and where it
//! can the resource and field, so the operator can find the line to fix.
//! No variant ever carries an attribute value other than the one that is
//! wrong, so secrets held in state (`root_password`, `user_data`) cannot leak
//! through an error.

use std::net::IpAddr;

use super::Origin;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {why}")]
    Read {
        file: String,
        why: crate::input::ReadError,
    },
    #[error("{file}: the file is empty")]
    Empty { file: String },
    #[error("{file}: {why}")]
    Text {
        file: String,
        why: crate::input::TextError,
    },
    /// A document of the wrong kind: a state given as the inventory, a
    /// config given as the state.
    #[error("{file}: {detail}")]
    WrongKind { file: String, detail: &'static str },
    #[error("{file}: invalid JSON at line {line}, column {column}: {reason}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{file}: unsupported Terraform state version {version} (palisade reads versions 3 and 4)")]
    UnknownVersion { file: String, version: String },
    #[error("{file}: not a document palisade can read: {detail}")]
    UnknownShape { file: String, detail: String },
    #[error("{file}: {location}: {detail}")]
    Malformed {
        file: String,
        location: String,
        detail: String,
    },
    #[error("{file}: no devices found (looked for {looked_for})")]
    NoDevices { file: String, looked_for: String },
    #[error(
        "{file}: {resource}: field {field} is marked sensitive in the state; palisade never reads a \
         sensitive value (nor prints or logs one): take it out of [terraform.types] in palisade.toml"
    )]
    Sensitive {
        file: String,
        resource: String,
        field: String,
    },
    #[error("{file}: {resource}: field {field}: {value:?} {why}")]
    BadAddress {
        file: String,
        resource: String,
        field: String,
        value: String,
        /// What the value is instead (`is not an IP address`).
        why: &'static str,
    },
    #[error(
        "{file}: {resource}: field {field}: {value:?} is not an {want} address, as the field's name says it is"
    )]
    WrongFamily {
        file: String,
        resource: String,
        field: String,
        value: String,
        want: &'static str,
    },
    #[error("{file}: {resource}: field {field}: {value:?} is not a valid host name ({why})")]
    BadName {
        file: String,
        resource: String,
        field: String,
        value: String,
        why: &'static str,
    },
    #[error("{file}: two hosts are named {name:?}: {first} and {second}; names must be unique")]
    DuplicateName {
        file: String,
        name: String,
        first: String,
        second: String,
    },
    #[error("{file}: {resource} is listed twice")]
    ListedTwice { file: String, resource: String },
    #[error("{file}: {resource}: no public IPv4 address; palisade needs one to reach the node")]
    NoPublicIpv4 { file: String, resource: String },
    #[error("{file}: {resource}: no {wanted} address (looked at {looked_at}); {hint}")]
    NoAddress {
        file: String,
        resource: String,
        wanted: String,
        looked_at: String,
        /// What to do, then the other machines that lack one too (`; so do
        /// 2 more: …`): every one is named, so one run shows the whole gap.
        hint: String,
    },
    /// Machines the state holds no address for at all (a VM whose guest
    /// never reported one): no `--connect-via` helps, so the message says
    /// what does.
    #[error(
        "{file}: the state holds no address for {count} machine(s): {machines} (looked at {looked_at}); \
         refresh the state once they have one (terraform apply -refresh-only), leave them out with \
         --skip-addressless, or list the fleet in a static inventory (--inventory){hint}"
    )]
    NoAddressAtAll {
        file: String,
        count: usize,
        /// Every one, by resource address.
        machines: String,
        /// Where, per machine type.
        looked_at: String,
        hint: String,
    },
    /// An OpenTofu state written with state encryption: recognised by its
    /// shape, never quoted (what it holds is ciphertext and key metadata).
    #[error(
        "{file}: this is an OpenTofu state encrypted with state encryption; palisade does not decrypt \
         it: where the key is configured, read it with `tofu show -json | palisade inventory --state -`"
    )]
    Encrypted { file: String },
    #[error("{file}: address {address} belongs to two devices: {first} and {second}")]
    DuplicateAddress {
        file: String,
        address: IpAddr,
        first: String,
        second: String,
    },
    #[error("{file}: {detail}")]
    Toml { file: String, detail: String },
}

impl Error {
    /// serde_json's message ends in " at line L column C"; we say where
    /// ourselves, in the same words for every file.
    pub(crate) fn json(origin: &Origin, e: &serde_json::Error) -> Error {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let reason = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        Error::Json {
            file: origin.to_string(),
            line: e.line(),
            column: e.column(),
            reason,
        }
    }

    pub(crate) fn malformed(
        origin: &Origin,
        location: impl Into<String>,
        detail: impl Into<String>,
    ) -> Error {
        Error::Malformed {
            file: origin.to_string(),
            location: location.into(),
            detail: detail.into(),
        }
    }
}
