//! palisade.toml: a refusal (as `main` prints it, the whole chain) passes
//! `check_refusal`. Bytes that are not UTF-8 never reach `Config::parse`
//! (`Config::load` refuses them first), so they are skipped here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::Config;
use palisade_fuzz::check_refusal;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Err(e) = Config::parse(text, "fuzz") {
        check_refusal(bytes, &format!("{e:#}"));
    }
});
