//! Tests against real hosts: network namespaces on a bridge, each with its
//! own sshd and netfilter (see `harness.rs`). They need root.
//!
//! This binary has its own harness (libtest-mimic, `harness = false`), so
//! that a test this machine cannot run is reported as ignored, never as
//! passed. Under `CI=true` such a test runs anyway, and fails saying why the
//! lab cannot be built.
//!
//! A lab test is a private `fn` listed in its module's `lab_tests!`; one left
//! out of the list is dead code, which clippy's `-D warnings` refuses.

mod agree;
mod audit;
mod backend;
mod bastion;
mod certs;
mod concurrent;
mod dcos;
mod firewall;
mod forged;
mod guard;
mod harness;
mod layout;
mod limit;
mod lockout;
mod monitor;
mod multihop;
mod nft_review;
mod nftables;
mod output;
mod ping;
mod rollback;
mod sshconfig;
mod systemd;
mod timings;
mod wayback;

/// The one JSON shape, as the unit tests check it too.
#[path = "../support/report_shape.rs"]
mod report_shape;

use std::path::Path;
use std::process::{ExitCode, Output};

use libtest_mimic::{Arguments, Trial};
use serde_json::Value;

use harness::{Needs, unavailable};

/// A lab test, as `lab_tests!` lists it.
#[derive(Clone, Copy)]
pub(crate) struct LabTest {
    /// `module_path!()` of the module the test is in.
    pub(crate) module: &'static str,
    pub(crate) name: &'static str,
    pub(crate) needs: Needs,
    pub(crate) run: fn(),
    /// Listed with `both`: it runs on the nftables backend too, as
    /// `module::nft::name` (see `backend.rs`).
    pub(crate) both: bool,
}

impl LabTest {
    /// The test as a trial named `module::name`, as libtest would name it,
    /// run in a thread of that name, as libtest does, so that a panic message
    /// says which test panicked. libtest-mimic reports a panic as a failure.
    fn trial(&self) -> Trial {
        self.trial_on(backend::Backend::Iptables)
    }

    /// The trial on `backend`: on nftables, named `module::nft::name`.
    fn trial_on(&self, on: backend::Backend) -> Trial {
        let module = self.module.split_once("::").map_or("", |(_, m)| m);
        let name = match on {
            backend::Backend::Iptables => format!("{module}::{}", self.name),
            backend::Backend::Nftables => format!("{module}::nft::{}", self.name),
        };
        let run = self.run;
        Trial::test(name.clone(), move || {
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    backend::set(on);
                    run()
                })
                .map_err(|e| format!("cannot start the test's thread: {e}"))?;
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
            Ok(())
        })
    }
}

/// A module's lab tests, as `pub(crate) const TESTS`: what each group needs, then
/// the test functions in it, e.g. `lab_tests![Needs::Plain => a, b];`. A group
/// written `Needs::Plain, both => c` runs on both firewall backends.
#[macro_export]
macro_rules! lab_tests {
    (@both) => { false };
    (@both both) => { true };
    ($($needs:expr $(, $both:ident)? => $($test:ident),+ $(,)?);+ $(;)?) => {
        /// This module's lab tests, for `main` to run, group by group.
        pub(crate) const TESTS: &[&[$crate::LabTest]] = &[$({
            const BOTH: bool = $crate::lab_tests!(@both $($both)?);
            &[$(
                $crate::LabTest {
                    module: module_path!(),
                    name: stringify!($test),
                    needs: $needs,
                    run: $test,
                    both: BOTH,
                },
            )+]
        },)+];
    };
}

/// Builds a lab for a test; a lab that cannot be built fails the test.
/// (`main` has already marked the test ignored when this machine cannot build
/// one, unless CI=true.)
#[macro_export]
macro_rules! lab {
    ($spec:expr) => {
        match $crate::harness::Lab::start($spec) {
            Ok(lab) => lab,
            Err($crate::harness::Unavailable(why)) => {
                panic!("the lab cannot be built: {why}")
            }
        }
    };
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let lab_tests = [
        agree::TESTS,
        audit::TESTS,
        bastion::TESTS,
        certs::TESTS,
        concurrent::TESTS,
        dcos::TESTS,
        firewall::TESTS,
        forged::TESTS,
        guard::TESTS,
        layout::TESTS,
        limit::TESTS,
        lockout::TESTS,
        monitor::TESTS,
        multihop::TESTS,
        nft_review::TESTS,
        nftables::TESTS,
        output::TESTS,
        ping::TESTS,
        rollback::TESTS,
        sshconfig::TESTS,
        systemd::TESTS,
        timings::TESTS,
        wayback::TESTS,
    ]
    .concat()
    .concat();

    let mut trials = vec![Trial::test("controller_texts_match_the_lab", || {
        controller_texts_match_the_lab();
        Ok(())
    })];
    for needs in [Needs::Plain, Needs::Systemd] {
        let why = unavailable(needs);
        let kind: Vec<Trial> = lab_tests
            .iter()
            .filter(|t| t.needs == needs)
            .flat_map(|t| {
                let nft = t.both.then(|| t.trial_on(backend::Backend::Nftables));
                std::iter::once(t.trial()).chain(nft)
            })
            .map(|t| t.with_ignored_flag(why.is_some() && !ci))
            .collect();
        let not_run = kind
            .iter()
            .filter(|t| !args.is_filtered_out(t) && args.is_ignored(t))
            .count();
        if let Some(why) = why
            && not_run > 0
            && !args.list
        {
            eprintln!("lab tests not run ({not_run} of them): {why}");
        }
        trials.extend(kind);
    }
    // In name order, as libtest lists and runs them.
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit_code()
}

/// The arguments every firewall command in the lab takes: the lab's
/// inventory, key and known_hosts, `--json` when asked, and the controller's
/// addresses in the allow list unless `allow` is false or the command takes
/// no whitelist flags (ping, remove), `--backend nftables` when the test
/// runs on that backend; then `extra`.
pub(crate) fn lab_args<'a>(cmd: &'a str, json: bool, allow: bool, extra: &[&'a str]) -> Vec<&'a str> {
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
    if allow && matches!(cmd, "plan" | "apply" | "verify") {
        a.extend(["--allow", CONTROLLER4_TEXT, "--allow", CONTROLLER6_TEXT]);
    }
    if matches!(cmd, "ping" | "plan" | "apply" | "verify" | "remove") {
        a.extend_from_slice(backend::flags());
    }
    a.extend_from_slice(extra);
    a
}

const CONTROLLER4_TEXT: &str = "198.18.0.1";
const CONTROLLER6_TEXT: &str = "2001:2::1";

fn controller_texts_match_the_lab() {
    assert_eq!(CONTROLLER4_TEXT, harness::CONTROLLER4.to_string());
    assert_eq!(CONTROLLER6_TEXT, harness::CONTROLLER6.to_string());
}

pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_palisade"))
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses a `--json` report, with both streams in the message if it is not
/// one, and checks it has the one shape every command's report shares.
pub(crate) fn json(out: &Output) -> Value {
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): stdout {} stderr {}", stdout(out), stderr(out)));
    if let Err(e) = report_shape::check(&report) {
        panic!("the report is not of the one shape: {e}\nstderr {}", stderr(out));
    }
    report
}

/// The report row of the host called `name`.
pub(crate) fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .and_then(|hosts| hosts.iter().find(|h| h["name"] == name))
        .unwrap_or_else(|| panic!("no host {name} in {report}"))
}

/// Checks a run's exit code, and returns its JSON report.
pub(crate) fn expect(out: Output, code: i32) -> Value {
    let report = json(&out);
    assert_eq!(out.status.code(), Some(code), "{report:#}\n{}", stderr(&out));
    report
}

/// The kinds of a host's changes, in the report's order.
pub(crate) fn kinds(report: &Value, name: &str) -> Vec<String> {
    host(report, name)["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no changes list in {report}"))
        .iter()
        .map(|c| c["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// New connections to port 22 from an address that already made one are
/// dropped in node `i`'s raw table (priority -300), before palisade's rules
/// and its guard see them: the session palisade opens gets in, its
/// confirmation connection does not.
pub(crate) fn drop_second_connections(lab: &harness::Lab, i: usize) {
    let ns = &lab.nodes[i].ns;
    for action in ["--rcheck", "--set"] {
        let mut rule = vec!["iptables", "-w", "-t", "raw", "-A", "PREROUTING", "-p", "tcp"];
        rule.extend(["--dport", "22", "--syn", "-m", "recent", "--name", "lab", action]);
        if action == "--rcheck" {
            rule.extend(["-j", "DROP"]);
        }
        lab.must(ns, &rule);
    }
}

/// Undoes [`drop_second_connections`] on node `i`: new connections to
/// port 22 get in again.
pub(crate) fn admit_connections_again(lab: &harness::Lab, i: usize) {
    lab.must(
        &lab.nodes[i].ns,
        &["iptables", "-w", "-t", "raw", "-F", "PREROUTING"],
    );
}

/// An apply (with `args`, and `--confirm-timeout 5`) whose confirmations
/// never arrive (`drop_second_connections` on the first `n` nodes): it
/// exits 2, those nodes are reported rolled back, and they take new
/// connections again once it is over.
pub(crate) fn unconfirmed_apply(lab: &harness::Lab, n: usize, args: &[&str]) {
    for i in 0..n {
        drop_second_connections(lab, i);
    }
    let mut all = vec!["--confirm-timeout", "5"];
    all.extend_from_slice(args);
    let out = lab.palisade(bin(), &lab_args("apply", true, true, &all));
    let report = json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}\n{}", stderr(&out));
    for i in 0..n {
        assert_eq!(
            host(&report, &lab.nodes[i].name)["status"],
            "rolled-back",
            "{report:#}"
        );
        admit_connections_again(lab, i);
    }
}

/// Each host's status, in the report's order.
pub(crate) fn statuses(report: &Value) -> Vec<&str> {
    report["hosts"]
        .as_array()
        .unwrap_or_else(|| panic!("no hosts in {report}"))
        .iter()
        .map(|h| h["status"].as_str().unwrap_or_default())
        .collect()
}

/// No palisade set, chain or jump on node `i`.
pub(crate) fn untouched(lab: &harness::Lab, i: usize) -> bool {
    let ns = &lab.nodes[i].ns;
    !lab.must(ns, &["iptables-save"]).contains("PALISADE")
        && !lab.must(ns, &["ip6tables-save"]).contains("PALISADE")
        && lab.must(ns, &["ipset", "list", "-n"]).is_empty()
}

/// Starts `palisade apply --json` in the background, holding every host's
/// confirmation back for a minute: the window in which it gets interrupted.
pub(crate) fn held_apply(lab: &harness::Lab, extra: &[&str]) -> std::process::Child {
    lab.spawn_palisade(
        bin(),
        &lab_args("apply", true, true, extra),
        &[("PALISADE_TEST_HOLD_CONFIRM", "60")],
    )
}

/// Waits for a condition, up to `secs`.
pub(crate) fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    f()
}
