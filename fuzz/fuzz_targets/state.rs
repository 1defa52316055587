//! Terraform documents of every format (v3, v4, `terraform show -json`,
//! `terraform output -json`), with the built-in role rules and with a role
//! tag: a refusal passes `check_refusal`, an inventory `check_inventory`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::{RoleRules, parse_terraform};
use palisade_fuzz::{check_inventory, check_refusal};

fuzz_target!(|bytes: &[u8]| {
    for rules in [
        RoleRules::default(),
        RoleRules::default().with_role_tag(Some("role".into())),
    ] {
        match parse_terraform(bytes, "fuzz", &rules) {
            Ok(inventory) => check_inventory(&inventory),
            Err(e) => check_refusal(bytes, &e.to_string()),
        }
    }
});
