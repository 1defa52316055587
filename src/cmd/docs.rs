//! `palisade completions` and `palisade man`: palisade describing itself,
//! from the same clap definition that parses its flags, so neither can
//! drift from the real command line. Neither reads a config or the fleet.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::report::{ExitStatus, output};

/// The completion script for `shell`, on stdout.
pub(crate) fn completions(shell: Shell) -> Result<ExitStatus> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "palisade", &mut script);
    output::print_bytes(&script)?;
    Ok(ExitStatus::Ok)
}

/// palisade(1) on stdout, or with `dir` one page per command written there
/// (palisade.1, palisade-apply.1, ...).
pub(crate) fn man(dir: Option<&Path>) -> Result<ExitStatus> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("cannot render the manual page")?;
            output::print_bytes(&page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("{}: cannot write the manual pages", dir.display()))?;
        }
    }
    Ok(ExitStatus::Ok)
}
