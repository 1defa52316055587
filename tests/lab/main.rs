//! Tests against real hosts: network namespaces on a bridge, each with its
//! own sshd and netfilter (see `harness.rs`). They need root. Without it they
//! skip with a message; under `CI=true` a lab that cannot be built fails.

mod firewall;
mod harness;
mod lockout;
mod ping;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

/// Builds a lab, or skips the test (panics under CI=true) when this machine
/// cannot.
#[macro_export]
macro_rules! lab {
    ($spec:expr) => {
        match $crate::harness::Lab::start($spec) {
            Ok(lab) => lab,
            Err($crate::harness::Unavailable(why)) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("CI=true and the lab cannot be built: {why}");
                }
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// The arguments every firewall command in the lab takes: the lab's
/// inventory, key and known_hosts, `--json` when asked, and the controller's
/// addresses in the allow list unless `allow` is false; then `extra`.
pub fn lab_args<'a>(cmd: &'a str, json: bool, allow: bool, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![cmd];
    if json {
        a.push("--json");
    }
    a.extend([
        "--inventory",
        "hosts.toml",
        "--key",
        "id_ed25519",
        "--known-hosts",
        "known_hosts",
    ]);
    if allow {
        a.extend(["--allow", CONTROLLER4_TEXT, "--allow", CONTROLLER6_TEXT]);
    }
    a.extend_from_slice(extra);
    a
}

const CONTROLLER4_TEXT: &str = "198.18.0.1";
const CONTROLLER6_TEXT: &str = "2001:2::1";

#[test]
fn controller_texts_match_the_lab() {
    assert_eq!(CONTROLLER4_TEXT, harness::CONTROLLER4.to_string());
    assert_eq!(CONTROLLER6_TEXT, harness::CONTROLLER6.to_string());
}

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_palisade"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses a `--json` report, with both streams in the message if it is not one.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): stdout {} stderr {}", stdout(out), stderr(out)))
}

/// The report row of the host called `name`.
pub fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .and_then(|hosts| hosts.iter().find(|h| h["name"] == name))
        .unwrap_or_else(|| panic!("no host {name} in {report}"))
}
