//! verify's `--prometheus` and `--junit` files. Each is written whole or
//! not at all: node_exporter reads its textfile directory at every scrape,
//! and a CI server reads the report when the job ends, so a half-written
//! file must never be seen. Whether the files can be written is tried
//! before any node is contacted; a file that cannot be written after the
//! run is an error (exit 1), so a job whose metrics went stale says why.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cli::MonitorArgs;
use crate::report::hosts::Report;
use crate::report::monitor::{self, Run};

/// node_exporter and CI servers run as users of their own: the files are
/// for everyone to read, like the metrics they hold.
const MODE: u32 = 0o644;

/// The files the run writes, each with the flag that asked for it.
fn files(args: &MonitorArgs) -> Vec<(&'static str, &Path)> {
    let mut out = Vec::new();
    if let Some(p) = &args.prometheus {
        out.push(("--prometheus", p.as_path()));
    }
    if let Some(p) = &args.junit {
        out.push(("--junit", p.as_path()));
    }
    out
}

/// Fails unless each file can be written where it is to go: a temporary
/// file is made beside it and removed, so a missing directory or one the
/// job may not write in stops the run before any node is contacted.
pub(crate) fn check(args: &MonitorArgs) -> Result<()> {
    if let (Some(p), Some(j)) = (&args.prometheus, &args.junit)
        && p == j
    {
        bail!("--prometheus and --junit name the same file, {}", p.display());
    }
    for (flag, path) in files(args) {
        let (tmp, file) = temporary(flag, path)?;
        drop(file);
        // Made here a moment ago: its removal cannot fail but by a race
        // that leaves one empty dotfile, never a wrong metric.
        let _ = fs::remove_file(&tmp);
    }
    Ok(())
}

/// Writes the files `args` asks for, each atomically. Both are tried; the
/// first failure is returned.
pub(crate) fn write(args: &MonitorArgs, report: &Report, run: &Run) -> Result<()> {
    let mut first = Ok(());
    for (flag, path) in files(args) {
        let text = match flag {
            "--prometheus" => monitor::prometheus(report, run, &args.prometheus_labels),
            _ => monitor::junit(report, run),
        };
        let written = atomically(flag, path, text.as_bytes());
        if first.is_ok() {
            first = written;
        }
    }
    first
}

/// A new file beside `path`, named so that node_exporter (which reads
/// `*.prom`) skips it: `.NAME.palisade-PID.tmp`.
fn temporary(flag: &str, path: &Path) -> Result<(PathBuf, File)> {
    let shown = path.display();
    let Some(name) = path.file_name() else {
        bail!("{flag} {shown}: not a file name");
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        bail!("{flag} {shown}: is a directory");
    }
    let tmp = dir.join(format!(
        ".{}.palisade-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A leftover of a killed run, by the same process id (palisade is
    // often process 1 of its container): no other process can own it.
    let _ = fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("{flag} {shown}: cannot write in {}: {e}", dir.display()))?;
    Ok((tmp, file))
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk,
/// and renames it over `path`: a reader sees the old file or the new one.
fn atomically(flag: &str, path: &Path, bytes: &[u8]) -> Result<()> {
    let (tmp, mut file) = temporary(flag, path)?;
    let written = (|| {
        file.write_all(bytes)?;
        // The umask may have taken bits off the mode the file was made with.
        file.set_permissions(fs::Permissions::from_mode(MODE))?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        bail!("{flag} {}: cannot write it: {e}", path.display());
    }
    // The rename itself, to disk: best effort, the file is in place.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_readable_by_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.prom");
        fs::write(&path, "old").unwrap();
        atomically("--prometheus", &path, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // Nothing left beside it.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_file_that_cannot_be_written_is_said_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let args = |p: PathBuf, j: Option<PathBuf>| MonitorArgs {
            prometheus: Some(p),
            prometheus_labels: Vec::new(),
            junit: j,
        };
        let missing = dir.path().join("nowhere/palisade.prom");
        let e = format!("{:#}", check(&args(missing, None)).unwrap_err());
        assert!(
            e.starts_with("--prometheus ") && e.contains("cannot write in"),
            "{e}"
        );
        let e = format!("{:#}", check(&args(dir.path().to_owned(), None)).unwrap_err());
        assert!(e.ends_with("is a directory"), "{e}");
        let same = dir.path().join("x");
        let e = format!("{:#}", check(&args(same.clone(), Some(same))).unwrap_err());
        assert!(e.contains("name the same file"), "{e}");
        let fine = args(dir.path().join("a.prom"), Some(dir.path().join("a.xml")));
        check(&fine).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
