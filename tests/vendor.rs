//! vendor/russh is a russh release plus the patch series in vendor/patches,
//! and nothing else (vendor/README.md): `scripts/russh-update --check` says
//! so, with the release from ~/.cargo/registry where it is there and from
//! vendor/patches/base.sha256 where it is not (a clean clone offline). The
//! other tests hand the script releases it must tell apart: one that
//! already has a patch, one the series no longer fits, and a vendor/russh
//! with an edit no patch carries.
//!
//! The script needs bash and patch(1); where one is missing the tests say
//! so and pass, but not in CI (CI=true), where they must run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the script can run here; panics in CI when it cannot.
fn runnable() -> bool {
    let missing: Vec<&str> = ["bash", "patch"]
        .into_iter()
        .filter(|tool| {
            !Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "scripts/russh-update cannot run in CI: {missing:?} missing"
    );
    eprintln!("skipped: {missing:?} missing");
    false
}

/// scripts/russh-update from the checkout `at`, with `args` and `env`
/// (CARGO_HOME an empty directory: no registry; TMPDIR: where it works).
fn russh_update(at: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    Command::new("bash")
        .arg(at.join("scripts/russh-update"))
        .args(args)
        .current_dir(at)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The release vendor/russh is made from, as `--pristine` rebuilds it.
fn pristine(dir: &Path) -> PathBuf {
    let out = dir.join("russh");
    let run = russh_update(root(), &["--pristine", out.to_str().unwrap()], &[]);
    assert!(run.status.success(), "{}", text(&run));
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn edit(file: &Path, from: &str, to: &str) {
    let before = std::fs::read_to_string(file).unwrap();
    assert!(before.contains(from), "{from:?} not in {}", file.display());
    std::fs::write(file, before.replacen(from, to, 1)).unwrap();
}

#[test]
fn vendored_russh_is_its_release_plus_the_series() {
    if !runnable() {
        return;
    }
    let out = russh_update(root(), &["--check"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    // Offline, with no release in the registry: base.sha256 stands in.
    let empty = tempfile::tempdir().unwrap();
    let out = russh_update(root(), &["--check"], &[("CARGO_HOME", empty.path())]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("base.sha256"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_patch_upstream_already_has_is_told_apart_from_one_that_moved() {
    if !runnable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let release = pristine(dir.path());
    // A release with the first patch taken upstream, and three lines more
    // at the top of the file the second patch changes.
    let first = std::fs::read_dir(root().join("vendor/patches"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("0001-"))
        .unwrap();
    let applied = Command::new("patch")
        .args(["-s", "-p1", "-d"])
        .arg(&release)
        .arg("-i")
        .arg(&first)
        .status()
        .unwrap();
    assert!(applied.success());
    let file = release.join("src/client/encrypted.rs");
    let body = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("// one\n// two\n// three\n{body}")).unwrap();

    let out = russh_update(root(), &["--dry-run", release.to_str().unwrap()], &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        said.contains("ALREADY UPSTREAM: drop this patch"),
        "{}",
        text(&out)
    );
    assert!(said.contains("applied at offset 3"), "{}", text(&out));
    assert!(said.contains("dry run"), "{}", text(&out));
}

#[test]
fn a_release_the_series_no_longer_fits_fails() {
    if !runnable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let release = pristine(dir.path());
    // The line the second patch changes, changed upstream.
    edit(
        &release.join("src/client/encrypted.rs"),
        "                    }\n                    accepted\n",
        "                    }\n                    accepted && self.common.auth_user.is_empty()\n",
    );
    // The tree it keeps for porting goes in TMPDIR, removed with `dir`.
    let out = russh_update(
        root(),
        &["--dry-run", release.to_str().unwrap()],
        &[("TMPDIR", dir.path())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("hunk 1 (src/client/encrypted.rs, line 1113): FAILED"),
        "{}",
        text(&out)
    );
    assert!(said.contains("the tree as far as it got: "), "{}", text(&out));
}

#[test]
fn an_edit_no_patch_carries_fails_the_check() {
    if !runnable() {
        return;
    }
    // A copy of the checkout's script and vendor directory, edited.
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&root().join("scripts"), &dir.path().join("scripts"));
    copy_tree(&root().join("vendor"), &dir.path().join("vendor"));
    edit(
        &dir.path().join("vendor/russh/src/lib.rs"),
        "\n",
        "\n// an edit of vendor/russh that no patch carries\n",
    );
    let empty = tempfile::tempdir().unwrap();
    let out = russh_update(dir.path(), &["--check"], &[("CARGO_HOME", empty.path())]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("src/lib.rs"),
        "{}",
        text(&out)
    );
}
