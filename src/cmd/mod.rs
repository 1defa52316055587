//! One file per command: each turns settings into a run of the stages and a
//! [`Verdict`]. Nothing here parses flags; nothing below here prints.

mod inventory;

use anyhow::{Result, bail};

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::report::Verdict;

pub async fn run(cli: Cli) -> Result<Verdict> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Inventory => inventory::run(&settings),
        Command::Ping => not_yet("ping"),
        Command::Plan => not_yet("plan"),
        Command::Apply => not_yet("apply"),
        Command::Verify => not_yet("verify"),
        Command::Remove => not_yet("remove"),
    }
}

fn not_yet(name: &str) -> Result<Verdict> {
    bail!("`palisade {name}` is not implemented yet; no node was contacted")
}
