//! `palisade inventory`: read the fleet and show it. Contacts no node.

use anyhow::Result;

use crate::config::Settings;
use crate::inventory;
use crate::report::{self, Verdict};

/// The table (or `--json`) on stdout; on stderr, how many machines of each
/// type were read and which resources of other types were skipped, so a
/// fleet palisade did not understand shows at once.
pub fn run(settings: &Settings) -> Result<Verdict> {
    let survey = inventory::survey(&settings.source, &settings.roles)?;
    if settings.json {
        println!("{}", report::inventory::survey_json(&survey));
    } else {
        print!("{}", report::inventory::table(&survey.inventory));
        eprint!("{}", report::inventory::census(&survey));
    }
    Ok(Verdict::Ok)
}
