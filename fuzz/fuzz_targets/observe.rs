//! What a node prints back, to the read script and to every verdict of the
//! one-exec apply: any text parses or is refused, never a panic, whatever
//! a hostile node sends; and a change id that parses is only digits and
//! dashes, since palisade sends it back to the node's shell.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::engine::protocol;
use palisade::observe::firewall::{self, parse};

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let before = parse(&text);
    let _ = firewall::controller_address(&text);
    let _ = protocol::settled(&text);
    let _ = protocol::fate(&text);
    let _ = protocol::aborted(&text);
    let base = before.unwrap_or_default();
    if let Ok(made) = protocol::made(&text, &base) {
        let id = made.id.to_string();
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'-'), "{id:?}");
        assert_eq!(
            protocol::Verdict::Confirm(made.id).text(),
            format!("confirm {id}\n")
        );
    }
});
