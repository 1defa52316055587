//! `palisade inventory`: read the fleet and show it. Contacts no node.

use anyhow::Result;

use crate::config::Settings;
use crate::inventory;
use crate::report::{self, Verdict};

pub fn run(settings: &Settings) -> Result<Verdict> {
    let inv = inventory::load(&settings.source, &settings.roles)?;
    if settings.json {
        println!("{}", report::inventory::json(&inv));
    } else {
        print!("{}", report::inventory::table(&inv));
    }
    Ok(Verdict::Ok)
}
