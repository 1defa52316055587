//! Static TOML inventories: a refusal passes `check_refusal`, an inventory
//! `check_inventory`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::parse_static;
use palisade_fuzz::{check_inventory, check_refusal};

fuzz_target!(|bytes: &[u8]| {
    match parse_static(bytes, "fuzz") {
        Ok(survey) => check_inventory(&survey.inventory),
        Err(e) => check_refusal(bytes, &e.to_string()),
    }
});
