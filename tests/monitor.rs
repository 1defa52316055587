//! `palisade verify --prometheus FILE --junit FILE`, run for real against
//! hosts that cannot be reached (through a bastion on loopback, on a port
//! nothing listens on: no packet leaves the machine, no lab is needed),
//! and the files checked by the tools that read them:
//! promtool (Debian's `prometheus` package) for the metrics, Python's XML
//! parser for the JUnit report. Where a tool is missing the check is
//! skipped, except under CI, whose scripts/lab-deps installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn palisade(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .env_remove("SSH_AUTH_SOCK")
        .env("HOME", dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("palisade runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tool the checks need, or `None` (and a note) where it is missing
/// outside CI.
fn tool(name: &str) -> Option<&str> {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing; scripts/lab-deps installs it"
        );
        eprintln!("note: {name} is not installed here; its check is skipped");
        return None;
    }
    Some(name)
}

/// A directory with an inventory of three lab hosts (one with a name that
/// needs escaping in both formats) and an SSH key, and a loopback port
/// nothing listens on, for the bastion that never answers.
fn fleet() -> (tempfile::TempDir, PathBuf, u16) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("hosts.toml"),
        concat!(
            "[[master]]\nname = \"m-1\"\naddress = \"198.18.1.11\"\n",
            "[[agent]]\nname = \"a-\\\"1\\\"<&>\"\naddress = \"198.18.1.12\"\n",
            "[[agent]]\nname = \"a-2\"\naddress = \"198.18.1.13\"\n",
        ),
    )
    .unwrap();
    let key = d.join("key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    // Bound and let go: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (dir, key, port)
}

#[test]
fn unreachable_hosts_are_errors_in_both_files_and_the_run_exits_2() {
    let (dir, key, port) = fleet();
    let d = dir.path();
    let out_dir = d.join("textfile");
    std::fs::create_dir(&out_dir).unwrap();
    let prom = out_dir.join("palisade.prom");
    let junit = d.join("verify.xml");
    let jump = format!("core@127.0.0.1:{port}");
    let out = palisade(
        d,
        &[
            "verify",
            "--json",
            "--inventory",
            "hosts.toml",
            "--key",
            key.to_str().unwrap(),
            "--jump",
            &jump,
            "--retries",
            "0",
            "--connect-timeout",
            "5",
            "--prometheus",
            prom.to_str().unwrap(),
            "--prometheus-label",
            "cluster=lab \"one\"",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // --json still prints its report, and only it, on stdout.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["summary"]["unreachable"], 3, "{json}");

    let text = std::fs::read_to_string(&prom).unwrap();
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o644);
    // Only the file: no temporary one left beside it for node_exporter.
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1);
    let c = "cluster=\"lab \\\"one\\\"\"";
    for want in [
        format!("palisade_verify_exit_code{{{c}}} 2\n"),
        format!("palisade_verify_hosts{{{c}}} 3\n"),
        format!("palisade_host_status{{{c},host=\"m-1\",role=\"master\",status=\"unreachable\"}} 1\n"),
        format!("palisade_host_status{{{c},host=\"m-1\",role=\"master\",status=\"ok\"}} 0\n"),
        format!("palisade_host_up{{{c},host=\"a-\\\"1\\\"<&>\",role=\"agent\"}} 0\n"),
        format!("palisade_host_drift_items{{{c},host=\"a-2\",role=\"agent\"}} 0\n"),
        "# TYPE palisade_verify_last_run_timestamp_seconds gauge\n".to_owned(),
    ] {
        assert!(text.contains(&want), "lacks {want:?}:\n{text}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let stamp: f64 = text
        .lines()
        .find(|l| l.starts_with("palisade_verify_last_run_timestamp_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("a timestamp");
    assert!((now - stamp).abs() < 60.0, "{stamp} is not now ({now})");
    if let Some(promtool) = tool("promtool") {
        let checked = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&prom).unwrap())
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&checked.stdout),
            stderr(&checked)
        );
    }

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(
            "<testsuite name=\"palisade verify\" tests=\"3\" failures=\"0\" errors=\"3\" skipped=\"0\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"agent\" name=\"a-&quot;1&quot;&lt;&amp;&gt;\""),
        "{xml}"
    );
    assert!(xml.contains("<error message=\""), "{xml}");
    if let Some(python) = tool("python3") {
        // Well-formed, and what a JUnit reader would count.
        let read = Command::new(python)
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E\n\
                 s = E.parse(sys.argv[1]).getroot().find('testsuite')\n\
                 cases = s.findall('testcase')\n\
                 print(s.get('tests'), s.get('errors'), len(cases), len([c for c in cases if c.find('error') is not None]))\n\
                 print('|'.join(sorted(c.get('name') for c in cases)))",
            ])
            .arg(&junit)
            .output()
            .unwrap();
        assert!(read.status.success(), "{}", stderr(&read));
        assert_eq!(
            String::from_utf8_lossy(&read.stdout),
            "3 3 3 3\na-\"1\"<&>|a-2|m-1\n",
            "{xml}"
        );
    }
}

#[test]
fn a_file_that_cannot_be_written_stops_the_run_before_any_host() {
    let (dir, key, port) = fleet();
    let d = dir.path();
    let jump = format!("core@127.0.0.1:{port}");
    let out = palisade(
        d,
        &[
            "verify",
            "--inventory",
            "hosts.toml",
            "--key",
            key.to_str().unwrap(),
            "--jump",
            &jump,
            "--prometheus",
            "no/such/dir/palisade.prom",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("palisade: --prometheus no/such/dir/palisade.prom: cannot write in no/such/dir:"),
        "{}",
        stderr(&out)
    );
    // No host was worked on: the retry file is not there.
    assert!(!d.join(".palisade/failed").exists());
    // A label that would clash with palisade's own, or a bad name.
    for (label, says) in [
        ("host=x", "\"host\" is a label palisade's metrics already have"),
        ("9lives=x", "\"9lives\" is not a label name"),
        ("__name__=x", "is not a label name"),
        ("cluster=", "has an empty value"),
    ] {
        let out = palisade(
            d,
            &[
                "verify",
                "--inventory",
                "hosts.toml",
                "--prometheus",
                "x.prom",
                "--prometheus-label",
                label,
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{label}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{label}: {}", stderr(&out));
    }
    // The monitoring flags are verify's alone.
    let out = palisade(d, &["plan", "--prometheus", "x.prom"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unexpected argument '--prometheus'"));
    let out = palisade(d, &["verify", "--prometheus-label", "cluster=a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--prometheus <FILE>"), "{}", stderr(&out));
}
