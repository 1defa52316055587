//! Writing a command's result to stdout. A reader that goes away early
//! (`palisade man | head`, `... | grep -q`) is normal at a shell and ends
//! palisade quietly, as it ends other command-line tools; any other write
//! error (a full disk, `> /dev/full`) is one clear line and exit 1. Rust's
//! `print!` panics on both (exit 101), which is why nothing prints that way.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout and flushes it. A closed pipe is not an error
/// (the reader has what it wanted); any other failure is.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    print_bytes(text.as_bytes())
}

/// [`print()`] for bytes (a man page, a completion script).
pub(crate) fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    written(out.write_all(bytes).and_then(|()| out.flush()))
}

/// What a write's result means for the run.
fn written(result: std::io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot write to standard output: {e}")),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_ends_quietly_and_other_errors_are_said() {
        assert!(written(Err(ErrorKind::BrokenPipe.into())).is_ok());
        let full = written(Err(std::io::Error::from_raw_os_error(28))).unwrap_err();
        assert!(
            format!("{full:#}").starts_with("cannot write to standard output: No space left"),
            "{full:#}"
        );
    }
}
