//! The contract every fuzz target checks, in one place: what palisade says
//! about a document it refuses, and what it hands on from one it accepts.
//!
//! A refusal is printed to a terminal (through `report::terminal::escape`),
//! so its message must come out of the escape with no control character and
//! no direction-changing code point, no line longer than a screen or two,
//! and never a value of a secret-bearing key. The seed corpora plant the
//! marker [`MARKER`] as such values (`root_password = "HUNTER2"`); mutations
//! move it around, so the secret check applies only while every marker in
//! the input still stands as the whole value of a secret key (see
//! [`secrets_only_in_secret_keys`]). Anywhere else the marker is just text
//! palisade may rightly quote, such as a host name.

use std::collections::BTreeSet;
use std::net::IpAddr;

use palisade::{Inventory, escape};

/// The planted secret.
pub const MARKER: &str = "HUNTER2";

/// The longest line a refusal may print, in characters.
pub const MAX_LINE: usize = 1000;

/// Keys whose values are secrets in the providers' schemas (a subset of
/// palisade's own list, kept here so the fuzzers do not trust it).
const SECRET_KEYS: &[&str] = &[
    "root_password",
    "user_data",
    "custom_data",
    "password",
    "admin_pass",
    "admin_password",
    "root_pass",
    "private_key",
];

/// Checks a refusal's message against the document it refused: see
/// [`check_message`], and never a value of a secret-bearing key.
pub fn check_refusal(input: &[u8], message: &str) {
    check_message(message);
    if secrets_only_in_secret_keys(input) {
        assert!(
            !message.contains(MARKER),
            "the message quotes a secret-bearing key's value: {}",
            escape(message)
        );
    }
}

/// Checks a refusal's message alone, for a value that is no document (a
/// flag such as `--jump`, which the message rightly quotes, shortened):
/// once escaped, no control or direction-changing character; no line over
/// [`MAX_LINE`] characters.
pub fn check_message(message: &str) {
    let shown = escape(message);
    if let Some(c) = shown.chars().find(|&c| c.is_control() || bidi(c)) {
        panic!("escaped message still holds {c:?}: {shown}");
    }
    for line in message.lines() {
        let n = line.chars().count();
        assert!(
            n <= MAX_LINE,
            "a message line of {n} characters: {}",
            escape(line)
        );
    }
}

/// Checks what a reader accepted: every host has a clean, unique name and an
/// SSH address that can be a node, among its own addresses; no IPv4-mapped
/// address sits in the IPv6 set.
pub fn check_inventory(inventory: &Inventory) {
    let mut names = BTreeSet::new();
    for host in &inventory.hosts {
        let name = host.name().as_str();
        assert!(names.insert(name), "two hosts named {name:?}");
        assert!(
            !name.is_empty() && !name.chars().any(char::is_control),
            "name {name:?}"
        );
        assert!(
            host.addresses().any(|a| a == host.address()),
            "{name:?}: the SSH address {} is not among its addresses",
            host.address()
        );
        assert!(ssh_target(host.address()), "{name:?}: SSH address {}", host.address());
        for v6 in host.ipv6() {
            assert!(
                v6.to_ipv4_mapped().is_none(),
                "{name:?}: IPv4-mapped {v6} in the IPv6 set"
            );
        }
    }
}

/// Whether palisade may log in to `addr`: not loopback, unspecified,
/// broadcast, multicast or link-local (issue 13).
fn ssh_target(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(a) => {
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            !(a.is_loopback() || a.is_unspecified() || a.is_multicast() || a.is_unicast_link_local())
        }
    }
}

/// Right-to-left and left-to-right overrides, embeddings and isolates: the
/// code points that make text read differently from how it is stored.
fn bidi(c: char) -> bool {
    matches!(u32::from(c), 0x202a..=0x202e | 0x2066..=0x2069)
}

/// Whether every [`MARKER`] in `input` stands as the whole value of a
/// secret-bearing key: a piece of the input between separators (newline,
/// `{`, `,`) that reads `KEY = "…HUNTER2…"` or `"KEY": "…HUNTER2…"` (or
/// `KEY "…"`, the `=` forgotten), the value without quotes or backslashes
/// inside. A document with a multi-line
/// TOML string is never sure (a piece could be inside the string), so
/// there the answer is no, and so it is when no marker is left.
pub fn secrets_only_in_secret_keys(input: &[u8]) -> bool {
    let marker = MARKER.as_bytes();
    let count = |hay: &[u8]| hay.windows(marker.len()).filter(|w| *w == marker).count();
    let total = count(input);
    if total == 0 || contains(input, b"\"\"\"") || contains(input, b"'''") {
        return false;
    }
    let planted: usize = input
        .split(|&b| matches!(b, b'\n' | b'\r' | b'{' | b','))
        .filter(|piece| planted_value(piece).is_some())
        .map(count)
        .sum();
    planted == total
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The value of `piece` if it is `KEY = "VALUE"` or `"KEY": "VALUE"` (either
/// quote, each side matched) with a secret KEY, closed by nothing but blanks,
/// `}` or `]`.
fn planted_value(piece: &[u8]) -> Option<&[u8]> {
    let piece = piece.trim_ascii();
    let (key, rest) = quoted_or_bare_key(piece)?;
    if !secret_key(key) {
        return None;
    }
    let rest = rest.trim_ascii_start();
    // A missing `=` is a broken line, and still a secret.
    let rest = rest
        .strip_prefix(b":")
        .or_else(|| rest.strip_prefix(b"="))
        .unwrap_or(rest)
        .trim_ascii_start();
    let quote = *rest.first().filter(|q| matches!(q, b'"' | b'\''))?;
    let body = &rest[1..];
    let end = body.iter().position(|&b| b == quote)?;
    let (value, after) = (&body[..end], &body[end + 1..]);
    if value.iter().any(|&b| matches!(b, b'"' | b'\'' | b'\\')) {
        return None;
    }
    after
        .iter()
        .all(|b| b.is_ascii_whitespace() || matches!(b, b'}' | b']'))
        .then_some(value)
}

fn quoted_or_bare_key(piece: &[u8]) -> Option<(&[u8], &[u8])> {
    match piece.first()? {
        q @ (b'"' | b'\'') => {
            let end = piece[1..].iter().position(|b| b == q)?;
            Some((&piece[1..=end], &piece[end + 2..]))
        }
        _ => {
            let end = piece
                .iter()
                .position(|b| matches!(b, b'=' | b':' | b' ' | b'\t'))?;
            Some(piece.split_at(end))
        }
    }
}

/// A secret key, in any case, `-` or `_`, also as the last part of a dotted
/// (flatmap) key such as `metadata.user-data`.
fn secret_key(key: &[u8]) -> bool {
    let Ok(key) = std::str::from_utf8(key) else {
        return false;
    };
    let spelled = key.to_ascii_lowercase().replace('-', "_");
    let last = spelled.rsplit('.').next().unwrap_or(&spelled);
    SECRET_KEYS.contains(&last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_secrets_are_recognised() {
        assert!(secrets_only_in_secret_keys(
            b"[[master]]\nroot_password = \"HUNTER2\"\n"
        ));
        assert!(secrets_only_in_secret_keys(
            br#"{"a": 1, "user_data": "x HUNTER2 y"}"#
        ));
        assert!(secrets_only_in_secret_keys(
            b"\"metadata.user-data\": \"HUNTER2\",\n"
        ));
        assert!(secrets_only_in_secret_keys(b"x = { custom_data = 'HUNTER2' }"));
        assert!(secrets_only_in_secret_keys(
            b"[[master]]\nroot_password \"HUNTER2\"\n"
        ));
    }

    #[test]
    fn a_marker_elsewhere_is_not_a_secret() {
        assert!(!secrets_only_in_secret_keys(
            b"name = \"HUNTER2\"\nroot_password = \"HUNTER2\"\n"
        ));
        assert!(!secrets_only_in_secret_keys(b"root_password = \"HUNTER2\" # x\n"));
        assert!(!secrets_only_in_secret_keys(
            b"name = \"\"\"\nroot_password = \"HUNTER2\"\n\"\"\"\n"
        ));
        assert!(!secrets_only_in_secret_keys(b"root_password = \"\\\"HUNTER2\"\n"));
        assert!(!secrets_only_in_secret_keys(b"no marker at all"));
    }
}
