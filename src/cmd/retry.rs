//! The retry file: after a run in which hosts failed, their names, so that
//! the same command with `--limit @.palisade/failed` works on just them.
//!
//! It lives beside the cluster's known_hosts (`.palisade/failed` by
//! default), and lists the hosts whose last run of one command failed, were
//! unreachable or rolled back. A run of the command the file is for replaces
//! the entries of the hosts it worked on with its own failures and keeps the
//! rest; the file is removed once nothing is left in it, so a retry that
//! works cleans up after itself. A failing run of another command starts a
//! new file; a successful one leaves it alone (a `ping` that works is no
//! proof that an `apply` would). An interrupted run leaves it alone too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::limit::literal;
use crate::report::limit as say;

/// One host a run worked on, and whether it failed there.
pub(crate) struct Attempt {
    pub(crate) name: String,
    pub(crate) failed: bool,
}

/// Where the retry file of this cluster is.
pub(crate) fn path(settings: &Settings) -> PathBuf {
    settings.known_hosts.with_file_name("failed")
}

/// Updates the retry file after a run of `command` over `ran`, and says how
/// to retry (on stderr, not under `--json`). A file that cannot be written
/// is a warning: the run's own result stands.
pub(crate) fn record(settings: &Settings, command: &str, ran: &[Attempt]) {
    let path = path(settings);
    let failed = ran.iter().filter(|a| a.failed).count();
    let result = update(&path, command, ran);
    if let Err(e) = &result {
        eprint!("{}", say::retry_not_saved(&path, e));
    }
    if failed > 0 && result.is_ok() && !settings.json {
        eprint!("{}", say::retry_hint(failed, &path));
    }
}

fn update(path: &Path, command: &str, ran: &[Attempt]) -> std::io::Result<()> {
    let header = say::retry_header(command);
    let old = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let failed: BTreeSet<String> = ran
        .iter()
        .filter(|a| a.failed)
        .map(|a| literal(&a.name))
        .collect();
    let entries = match &old {
        Some(text) if text.starts_with(&header) => {
            let worked_on: BTreeSet<String> = ran.iter().map(|a| literal(&a.name)).collect();
            let kept = text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter(|l| !worked_on.contains(*l))
                .map(String::from);
            kept.chain(failed).collect::<BTreeSet<String>>()
        }
        // Another command's file, or none: only a failure writes one.
        _ if failed.is_empty() => return Ok(()),
        _ => failed,
    };
    if entries.is_empty() {
        return std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = header;
    for entry in entries {
        text.push_str(&entry);
        text.push('\n');
    }
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(hosts: &[(&str, bool)]) -> Vec<Attempt> {
        hosts
            .iter()
            .map(|(n, f)| Attempt {
                name: n.to_string(),
                failed: *f,
            })
            .collect()
    }

    fn names(path: &Path) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.lines().skip(1).map(String::from).collect())
    }

    #[test]
    fn failures_are_written_retries_clean_up_and_other_commands_keep_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".palisade/failed");
        update(&path, "apply", &ran(&[("a", false), ("b", true), ("c", true)])).unwrap();
        assert_eq!(names(&path).unwrap(), ["b", "c"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# palisade apply"), "{text}");
        // A retry of b alone that works: c is still to do.
        update(&path, "apply", &ran(&[("b", false)])).unwrap();
        assert_eq!(names(&path).unwrap(), ["c"]);
        // A ping that works says nothing about apply; one that fails starts over.
        update(&path, "ping", &ran(&[("c", false)])).unwrap();
        assert_eq!(names(&path).unwrap(), ["c"]);
        update(&path, "apply", &ran(&[("a", false), ("c", false)])).unwrap();
        assert_eq!(
            names(&path),
            None,
            "the file goes once every host in it succeeded"
        );
        update(&path, "apply", &ran(&[("a", false)])).unwrap();
        assert_eq!(names(&path), None, "a clean run writes nothing");
        update(&path, "ping", &ran(&[("web[1]", true)])).unwrap();
        assert_eq!(names(&path).unwrap(), ["web\\[1\\]"]);
        update(&path, "apply", &ran(&[("x", true)])).unwrap();
        assert_eq!(names(&path).unwrap(), ["x"]);
    }
}
