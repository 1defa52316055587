//! `palisade inventory`: read the fleet and show it (with `--limit`, the
//! hosts a run with the same limit would work on). Contacts no node.

use anyhow::Result;

use crate::config::Settings;
use crate::inventory;
use crate::report::{self, ExitStatus};

/// The table (or `--json`) on stdout; on stderr, how many machines of each
/// type were read and which resources of other types were skipped, so a
/// fleet palisade did not understand shows at once.
pub(crate) fn run(settings: &Settings) -> Result<ExitStatus> {
    let mut survey = inventory::survey(&settings.source, &settings.roles)?;
    // The census below counts the whole state; the list shows the selection.
    let census = report::inventory::census(&survey);
    survey.inventory.hosts = super::select(settings, &survey.inventory)?;
    if settings.json {
        report::output::print(&format!("{}\n", report::inventory::survey_json(&survey)))?;
    } else {
        report::output::print(&report::inventory::table(&survey.inventory))?;
        eprint!("{census}");
    }
    Ok(ExitStatus::Ok)
}
