//! What a node prints back, to the read script and to every order of the
//! one-exec apply: any text parses or is refused, never a panic, whatever
//! a hostile node sends; and a change id that parses is only digits and
//! dashes, since palisade sends it back to the node's shell.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::node::{self, parse};

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let before = parse(&text);
    let _ = node::controller_address(&text);
    let _ = node::settled(&text);
    let _ = node::fate(&text);
    let _ = node::aborted(&text);
    let base = before.unwrap_or_default();
    if let Ok(made) = node::made(&text, &base) {
        let id = made.id.to_string();
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'-'), "{id:?}");
        assert_eq!(
            node::Order::Confirm(made.id).text(),
            format!("confirm {id}\n")
        );
    }
});
