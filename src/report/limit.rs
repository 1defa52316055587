//! What `--limit` and the retry file say on stderr.

use std::path::Path;

use super::terminal::escape;

/// Under a limited run: how much of the fleet it works on, and that the
/// others are still admitted.
pub(crate) fn selected(selected: usize, total: usize) -> String {
    format!("palisade: --limit selects {selected} of {total} hosts; the whitelist still admits all {total}\n")
}

/// A positive pattern that matched nothing: Ansible warns and goes on.
pub(crate) fn unmatched(pattern: &str) -> String {
    format!(
        "palisade: warning: --limit pattern {} matches no host\n",
        escape(&format!("{pattern:?}"))
    )
}

/// After a run with failures: where their names are, and how to retry only
/// them.
pub(crate) fn retry_hint(failed: usize, path: &Path) -> String {
    let path = escape(&path.display().to_string()).into_owned();
    let hosts = if failed == 1 { "host" } else { "hosts" };
    format!(
        "palisade: {failed} {hosts} failed (listed in {path}); to retry only them, run the same command with --limit @{path}\n"
    )
}

/// The retry file could not be written or removed; the run's result stands.
pub(crate) fn retry_not_saved(path: &Path, error: &std::io::Error) -> String {
    let text = format!("{}: {error}", path.display());
    format!("palisade: warning: retry file not updated: {}\n", escape(&text))
}

/// The first line of a retry file: the command whose failures it lists,
/// as a comment (`--limit @FILE` skips lines starting with `#`).
pub(crate) fn retry_header(command: &str) -> String {
    format!("# palisade {command}: hosts that failed; retry with --limit @FILE\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_the_file_to_pass_and_escapes_it() {
        let hint = retry_hint(2, Path::new(".palisade/failed"));
        assert!(hint.ends_with("--limit @.palisade/failed\n"), "{hint}");
        assert!(hint.contains("2 hosts failed"), "{hint}");
        let odd = retry_hint(1, Path::new("dir\u{1b}[2J/failed"));
        assert!(!odd.trim_end().chars().any(char::is_control), "{odd:?}");
    }
}
