//! The network values of flags and config: whitelist entries (`Net`), ports,
//! `--open` (`Opening`), set, chain and interface names. Whatever parses
//! prints back as text that parses to the same value.
#![no_main]

use std::fmt::Display;
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use palisade::{ChainName, IfName, Net, Nodes, Opening, Port, SetName};

fn round_trip<T>(text: &str)
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    if let Ok(value) = text.parse::<T>() {
        let shown = value.to_string();
        assert_eq!(
            shown.parse::<T>().ok().as_ref(),
            Some(&value),
            "{shown:?} from {text:?}"
        );
    }
}

/// `Opening` has no `Display`; this is how `--open` writes one.
fn opening(o: &Opening) -> String {
    let nodes = match o.nodes {
        Nodes::All => "all".to_owned(),
        Nodes::Role(role) => role.to_string(),
    };
    let ports: Vec<String> = o.ports.iter().map(Port::to_string).collect();
    format!("{nodes}={}", ports.join(","))
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    round_trip::<Net>(text);
    round_trip::<Port>(text);
    round_trip::<SetName>(text);
    round_trip::<ChainName>(text);
    round_trip::<IfName>(text);
    if let Ok(open) = text.parse::<Opening>() {
        let shown = opening(&open);
        assert_eq!(
            shown.parse::<Opening>().as_ref(),
            Ok(&open),
            "{shown:?} from {text:?}"
        );
    }
    if let Ok(net) = text.parse::<Net>() {
        assert_ne!(net.net().prefix_len(), 0, "{text:?} admits everything");
        assert_eq!(net.net().trunc(), net.net(), "{text:?} kept host bits");
    }
});
