//! What a node's read script prints back: any text parses or is refused,
//! never a panic, whatever a hostile node sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::observe::firewall::parse;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let _ = parse(&text);
});
