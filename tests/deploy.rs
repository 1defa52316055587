//! The files in deploy/, checked by the tools that will read them: the
//! systemd units by `systemd-analyze verify`, the alert rules by promtool
//! (their syntax, and their own unit tests), the CronJob parsed and held to
//! what running verify unattended needs. Where a tool is missing its check
//! is skipped, except under CI, whose scripts/lab-deps installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

/// Whether `name` runs here; outside CI a missing tool skips its check.
fn have(name: &str, arg: &str) -> bool {
    let found = Command::new(name)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing; scripts/lab-deps installs it"
        );
        eprintln!("note: {name} is not installed here; its check is skipped");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

/// The YAML documents of `path`, as JSON, read by PyYAML.
fn yaml(path: &Path) -> Option<Vec<Value>> {
    if !have("python3", "--version") {
        return None;
    }
    let json = run(Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml\nprint(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path));
    Some(serde_json::from_str(&json).expect("JSON from python"))
}

#[test]
fn the_systemd_units_verify() {
    if !have("systemd-analyze", "--version") {
        return;
    }
    // The unit names palisade where it is installed; here, the one built.
    let dir = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(deploy("systemd/palisade-verify@.service")).unwrap();
    for want in [
        "User=palisade",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/prometheus/node-exporter",
        "--prometheus /var/lib/prometheus/node-exporter/palisade-%i.prom",
        "--prometheus-label cluster=%i",
        "--host-key-checking strict",
        "SuccessExitStatus=2 3",
    ] {
        assert!(service.contains(want), "the service lacks {want}");
    }
    assert!(!service.contains("DynamicUser="));
    std::fs::write(
        dir.path().join("palisade-verify@.service"),
        service.replace("/usr/local/bin/palisade", env!("CARGO_BIN_EXE_palisade")),
    )
    .unwrap();
    std::fs::copy(
        deploy("systemd/palisade-verify@.timer"),
        dir.path().join("palisade-verify@.timer"),
    )
    .unwrap();
    let said = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("palisade-verify@.service"))
        .arg(dir.path().join("palisade-verify@.timer")));
    // It warns without failing, for an unknown key or a bad value.
    assert!(said.trim().is_empty(), "systemd-analyze: {said}");
}

#[test]
fn the_alert_rules_load_and_pass_their_tests() {
    if !have("promtool", "--version") {
        return;
    }
    run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(deploy("prometheus/palisade.rules.yml")));
    run(Command::new("promtool")
        .args(["test", "rules"])
        .arg(deploy("prometheus/palisade.rules.test.yml")));
}

#[test]
fn the_cronjob_runs_one_verify_at_a_time_unprivileged_with_its_secrets_mounted() {
    let Some(docs) = yaml(&deploy("kubernetes/cronjob.yaml")) else {
        return;
    };
    assert_eq!(docs.len(), 1);
    let job = &docs[0];
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "CronJob");
    assert_eq!(job["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod[k].as_array().expect("containers"))
        .collect();
    for c in &containers {
        let sc = &c["securityContext"];
        assert_eq!(sc["privileged"], false, "{c}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{c}");
        assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{c}");
    }
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert!(volume("ssh")["secret"]["secretName"].is_string());
    assert!(volume("config")["configMap"]["name"].is_string());
    assert!(volume("work")["emptyDir"].is_object());
    let verify = containers
        .iter()
        .find(|c| c["name"] == "verify")
        .expect("the verify container");
    let script = verify["args"][0].as_str().expect("its script");
    for want in [
        "palisade verify",
        "--key /etc/palisade/ssh/ssh-key",
        "--known-hosts /work/known_hosts",
        "--prometheus /work/palisade.prom",
        "--host-key-checking strict",
    ] {
        assert!(script.contains(want), "the job lacks {want}: {script}");
    }
}

#[test]
fn the_alert_rules_name_the_metrics_verify_writes() {
    let Some(docs) = yaml(&deploy("prometheus/palisade.rules.yml")) else {
        return;
    };
    let rules = docs[0]["groups"][0]["rules"].as_array().expect("rules");
    let rule = |name: &str| {
        rules
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("no alert {name}"))
    };
    let drift = rule("PalisadeFirewallDrift");
    assert_eq!(drift["for"], "10m");
    assert!(drift["expr"].as_str().unwrap().contains("palisade_host_status"));
    let stale = rule("PalisadeVerifyStale")["expr"].as_str().unwrap().to_owned();
    assert!(
        stale.contains("palisade_verify_last_run_timestamp_seconds"),
        "{stale}"
    );
    assert!(
        rule("PalisadeHostUnreachable")["expr"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
}
