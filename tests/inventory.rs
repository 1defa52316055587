//! `palisade inventory` end to end: every Terraform format, the static
//! inventory, the config file, and every kind of bad input. Runs the real
//! binary so exit codes, stdout and stderr are what an operator sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use palisade::{RoleRules, parse_terraform};
use proptest::prelude::*;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tfstate");

/// Every fixture that holds the whole fleet with all its addresses.
const FULL_FORMATS: [&str; 8] = [
    "v3-2016.tfstate",
    "v3-0.11-module.tfstate",
    "v4-state-pull-flat.tfstate",
    "v4-packet.tfstate",
    "v4-packet-foreach.tfstate",
    "v4-metal-foreach.tfstate",
    "v4-equinix-foreach.tfstate",
    "show.json",
];

/// The roles of the fixture fleet, in report order.
const FLEET_ROLES: [&str; 9] = [
    "master",
    "master",
    "master",
    "agent",
    "agent",
    "agent",
    "agent",
    "public-agent",
    "bootstrap",
];

/// The roles in an inventory report, in order.
fn roles_of(doc: &Value) -> Vec<String> {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["role"].as_str().unwrap().to_owned())
        .collect()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// The `hosts` of an `inventory --json` report (the other keys, `found`
/// and `skipped`, depend on the format the fleet was read from).
fn hosts_of(out: &Output) -> Value {
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    doc["hosts"].clone()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Runs palisade in an empty directory, so no stray ./palisade.toml or
/// ./terraform.tfstate is picked up.
fn palisade(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), args, stdin)
}

fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `content` to a file in a fresh directory and runs
/// `palisade inventory --state FILE`; asserts the bad-input contract (exit 1,
/// nothing on stdout, no secret anywhere) and returns stderr.
fn refused(content: &[u8]) -> String {
    refused_with(content, &[])
}

/// [`refused`] with extra flags.
fn refused_with(content: &[u8], flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("terraform.tfstate");
    std::fs::write(&path, content).unwrap();
    let mut args = vec!["inventory", "--state", path.to_str().unwrap()];
    args.extend_from_slice(flags);
    let out = run_in(dir.path(), &args, None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert!(
        stderr.contains(path.to_str().unwrap()),
        "names the file: {stderr}"
    );
    assert!(!stderr.contains("SECRET"), "leaks a secret: {stderr}");
    stderr
}

#[test]
fn every_state_format_gives_the_same_inventory() {
    let expected = fixture_json("expected.json")["hosts"].clone();
    for name in FULL_FORMATS {
        let out = palisade(
            &["inventory", "--json", "--state", fixture(name).to_str().unwrap()],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert_eq!(hosts_of(&out), expected, "{name}");
    }
}

#[test]
fn json_is_exactly_the_documented_shape() {
    let out = palisade(
        &[
            "inventory",
            "--json",
            "--state",
            fixture("v4-packet.tfstate").to_str().unwrap(),
        ],
        None,
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["hosts"][0],
        json!({"name":"packet-dcos-master-00","role":"master","address":"147.75.100.11",
               "ipv4":["10.100.5.11","147.75.100.11"],"ipv6":["2604:1380:1:4d00::b"]})
    );
    assert_eq!(roles_of(&doc), FLEET_ROLES);
}

#[test]
fn state_from_stdin() {
    let bytes = std::fs::read(fixture("v3-2016.tfstate")).unwrap();
    let out = palisade(&["inventory", "--json", "--state", "-"], Some(&bytes));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = fixture_json("expected.json")["hosts"].clone();
    assert_eq!(hosts_of(&out), expected);
}

#[test]
fn default_state_path_is_terraform_tfstate_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("v4-packet.tfstate"), dir.path().join("terraform.tfstate")).unwrap();
    let out = run_in(dir.path(), &["inventory", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = fixture_json("expected.json")["hosts"].clone();
    assert_eq!(hosts_of(&out), expected);
}

#[test]
fn both_output_shapes_give_each_node_its_ssh_address_and_role() {
    let from_state: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let want: Vec<(String, String)> = from_state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["role"].to_string(), h["address"].to_string()))
        .collect();
    let mut outputs = Vec::new();
    for name in ["output-0.11.json", "output-0.12.json"] {
        let out = palisade(
            &["inventory", "--json", "--state", fixture(name).to_str().unwrap()],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let got: Vec<(String, String)> = doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["role"].to_string(), h["address"].to_string()))
            .collect();
        assert_eq!(got, want, "{name}");
        // Outputs hold one address per node: it is the only one listed.
        for h in doc["hosts"].as_array().unwrap() {
            assert_eq!(h["ipv4"], json!([h["address"]]));
            assert_eq!(h["ipv6"], json!([]));
        }
        outputs.push(out.stdout);
    }
    assert_eq!(outputs[0], outputs[1], "0.11 and 0.12 output shapes differ");
    // Outputs cannot say where else a node is reachable.
    let err = refused_with(
        &std::fs::read(fixture("output-0.12.json")).unwrap(),
        &["--connect-via", "private"],
    );
    assert!(
        err.contains("terraform output -json: no private IPv4 address"),
        "{err}"
    );
    assert!(err.contains("terraform state pull"), "{err}");
}

#[test]
fn table_lists_role_name_ssh_address_and_every_address() {
    let out = palisade(
        &[
            "inventory",
            "--state",
            fixture("v3-2016.tfstate").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{stdout}");
    assert!(lines[0].starts_with("ROLE"));
    let boot: Vec<&str> = lines[9].split_whitespace().collect();
    assert_eq!(
        boot,
        [
            "bootstrap",
            "packet-dcos-bootstrap-00",
            "147.75.100.9",
            "10.100.5.9",
            "147.75.100.9",
            "2604:1380:1:4d00::9"
        ]
    );
}

#[test]
fn secrets_in_state_never_reach_any_output() {
    for name in FULL_FORMATS {
        for args in [
            vec!["inventory"],
            vec!["inventory", "--json"],
            vec!["-vv", "inventory"],
        ] {
            let mut args = args.clone();
            let path = fixture(name);
            args.extend(["--state", path.to_str().unwrap()]);
            let out = palisade(&args, None);
            let all = text(&out.stdout) + &text(&out.stderr);
            assert!(!all.contains("SECRET"), "{name} {args:?}: {all}");
            assert!(!all.contains("cloud-config"), "{name} {args:?}: {all}");
        }
    }
}

#[test]
fn static_inventory_example() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml");
    let out = palisade(&["inventory", "--json", "--inventory", path], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 5);
    assert_eq!(
        hosts[4],
        json!({"name":"packet-dcos-bootstrap-00","role":"bootstrap","address":"147.75.100.9",
               "ipv4":["10.100.5.9","147.75.100.9"],"ipv6":["2604:1380:1:4d00::9"]})
    );
}

#[test]
fn example_config_parses_and_its_paths_are_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/palisade.toml");
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::copy(example, dir.path().join("conf/palisade.toml")).unwrap();
    // The example points at ../terraform.tfstate.
    std::fs::copy(fixture("v4-packet.tfstate"), dir.path().join("terraform.tfstate")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = dir.path().join("conf/palisade.toml");
    let out = run_in(
        elsewhere.path(),
        &["--config", config.to_str().unwrap(), "inventory", "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = fixture_json("expected.json")["hosts"].clone();
    assert_eq!(hosts_of(&out), expected);
    // A flag wins over the config's state path.
    let out = run_in(
        elsewhere.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "inventory",
            "--json",
            "--state",
            fixture("output-0.12.json").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"name\":\"master-00\""));
}

/// The fleet with its masters renamed `mesos_master` and its agents of a
/// custom resource type, as ./terraform.tfstate of a fresh directory.
fn renamed_fleet() -> tempfile::TempDir {
    let mut doc = fixture_json("v4-packet.tfstate");
    for r in doc["resources"].as_array_mut().unwrap() {
        if r["name"] == "dcos_master" {
            r["name"] = json!("mesos_master");
        }
        if r["name"] == "dcos_agent" {
            r["type"] = json!("custom_device");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("terraform.tfstate"), doc.to_string()).unwrap();
    dir
}

#[test]
fn role_mapping_and_device_types_come_from_the_config() {
    let dir = renamed_fleet();

    let out = run_in(dir.path(), &["inventory", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Unknown names are plain nodes, unknown types are not devices.
    assert_eq!(
        roles_of(&serde_json::from_slice(&out.stdout).unwrap()),
        ["public-agent", "bootstrap", "node", "node", "node"]
    );

    std::fs::write(
        dir.path().join("palisade.toml"),
        "[terraform]\ndevice_types = [\"custom_device\"]\n\
         [[terraform.roles]]\nresource = \"mesos_*\"\nrole = \"master\"\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["inventory", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        roles_of(&serde_json::from_slice(&out.stdout).unwrap()),
        FLEET_ROLES
    );
}

#[test]
fn role_mapping_and_device_types_from_flags() {
    let dir = renamed_fleet();
    let args = [
        "inventory",
        "--json",
        "--device-type",
        "custom_device",
        "--role",
        "mesos_*=master",
    ];
    let out = run_in(dir.path(), &args, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(roles_of(&doc), FLEET_ROLES);
    for bad in ["mesos_*", "=master", "mesos_*=captain"] {
        let out = run_in(dir.path(), &["inventory", "--role", bad], None);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            text(&out.stderr).contains("--role"),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn bad_config_is_refused_with_file_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("v4-packet.tfstate"), dir.path().join("terraform.tfstate")).unwrap();
    std::fs::write(
        dir.path().join("palisade.toml"),
        "[whitelist]\nallow = [\"10.0.0.1; reboot\"]\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["inventory"], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("palisade.toml"), "{stderr}");
    assert!(stderr.contains("allow"), "{stderr}");
    assert!(
        stderr.contains("\\\"10.0.0.1; reboot\\\"") || stderr.contains("\"10.0.0.1; reboot\""),
        "{stderr}"
    );

    std::fs::write(dir.path().join("palisade.toml"), "[ssh]\nusr = \"core\"\n").unwrap();
    let out = run_in(dir.path(), &["inventory"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("usr"), "{}", text(&out.stderr));

    let out = palisade(&["--config", "/nonexistent/palisade.toml", "inventory"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/palisade.toml"));
}

#[test]
fn usage_errors_exit_1() {
    let out = palisade(&["inventory", "--state", "a", "--inventory", "b"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = palisade(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = palisade(&["plan", "--allow", "not-an-ip"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not-an-ip"));
    // inventory takes no whitelist flags (each command takes only its own).
    let out = palisade(&["inventory", "--allow", "192.0.2.1"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--allow"));
    let out = palisade(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn invalid_json_names_line_and_column() {
    let err = refused(b"{\"version\": 4,\n  \"resources\": [}\n");
    assert!(err.contains("invalid JSON at line 2, column 17"), "{err}");
}

#[test]
fn unknown_versions_and_shapes() {
    let err = refused(br#"{"version": 5, "resources": []}"#);
    assert!(err.contains("unsupported Terraform state version 5"), "{err}");
    let err = refused(br#"{"version": "4"}"#);
    assert!(err.contains("unsupported Terraform state version \"4\""), "{err}");
    let err = refused(br#"[1, 2, 3]"#);
    assert!(err.contains("not a JSON object"), "{err}");
    let err = refused(br#"{"hello": "world"}"#);
    assert!(err.contains("expected a Terraform state"), "{err}");
    let err = refused(br#"{"format_version": "1.2", "planned_values": {}, "resource_changes": []}"#);
    assert!(err.contains("this is a plan"), "{err}");
    let err = refused(br#"{"version": 3, "modules": {}}"#);
    assert!(err.contains("has no \"modules\" list"), "{err}");
}

#[test]
fn a_state_with_no_devices() {
    let mut doc = fixture_json("v4-packet.tfstate");
    doc["resources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["type"] != "packet_device" || r["mode"] == "data");
    let err = refused(doc.to_string().as_bytes());
    assert!(err.contains("no devices found"), "{err}");
    for machine_type in [
        "packet_device",
        "metal_device",
        "equinix_metal_device",
        "hcloud_server",
    ] {
        assert!(err.contains(machine_type), "{err}");
    }
    // What the file held instead, so a type palisade does not know shows.
    assert!(err.contains("the file holds only packet_ssh_key 1"), "{err}");
    assert!(err.contains("[terraform.types.NAME]"), "{err}");
    let err = refused(br#"{"version": 4, "terraform_version": "1.5.7", "resources": []}"#);
    assert!(err.contains("no devices found"), "{err}");
    let err = refused(br#"{"format_version": "1.0"}"#);
    assert!(err.contains("no devices found"), "{err}");
    let err =
        refused(br#"{"Use this link to access DCOS": {"sensitive": false, "type": "string", "value": "x"}}"#);
    assert!(
        err.contains("no devices found (looked for outputs master-ip"),
        "{err}"
    );
}

#[test]
fn a_device_with_no_public_ipv4_is_named_by_resource_address() {
    let mut doc = fixture_json("v4-state-pull-flat.tfstate");
    let agents = dcos_agents(&mut doc);
    let attrs = agents["instances"][3]["attributes_flat"].as_object_mut().unwrap();
    attrs.insert("access_public_ipv4".into(), json!(""));
    attrs.insert("network.0.public".into(), json!("false"));
    let err = refused(doc.to_string().as_bytes());
    assert!(
        err.contains("module.dcos.packet_device.dcos_agent[3]: no public IPv4"),
        "{err}"
    );
}

#[test]
fn an_address_that_is_not_an_ip_is_refused_naming_resource_field_and_value() {
    let mut doc = fixture_json("v4-packet-foreach.tfstate");
    let agents = dcos_agents(&mut doc);
    agents["instances"][1]["attributes"]["access_public_ipv4"] = json!("147.75.1.1; rm -rf /");
    let err = refused(doc.to_string().as_bytes());
    assert!(
        err.contains(
            r#"module.dcos.packet_device.dcos_agent["01"]: field access_public_ipv4: "147.75.1.1; rm -rf /" is not an IP address"#
        ),
        "{err}"
    );

    // The same in a network entry of a v3 flatmap.
    let mut doc = fixture_json("v3-2016.tfstate");
    doc["modules"][0]["resources"]["packet_device.dcos_agent.2"]["primary"]["attributes"]["network.1.address"] =
        json!("$(reboot)");
    let err = refused(doc.to_string().as_bytes());
    assert!(
        err.contains(
            r#"packet_device.dcos_agent[2]: field network.1.address: "$(reboot)" is not an IP address"#
        ),
        "{err}"
    );
}

#[test]
fn a_network_or_an_ipv4_compatible_address_is_refused_naming_field_and_value() {
    for (value, says) in [
        ("147.75.200.0/24", "is a network, not a machine's address"),
        ("::147.75.200.7", "is an IPv4-compatible IPv6 address"),
    ] {
        let mut doc = fixture_json("v4-packet-foreach.tfstate");
        let agents = dcos_agents(&mut doc);
        let field = if value.contains(':') {
            "access_public_ipv6"
        } else {
            "access_public_ipv4"
        };
        agents["instances"][1]["attributes"][field] = json!(value);
        let err = refused(doc.to_string().as_bytes());
        assert!(
            err.contains(&format!(
                r#"module.dcos.packet_device.dcos_agent["01"]: field {field}: "{value}" {says}"#
            )),
            "{err}"
        );
    }
    // An interface address with its prefix is the address.
    let mut doc = fixture_json("v4-packet-foreach.tfstate");
    let agents = dcos_agents(&mut doc);
    agents["instances"][1]["attributes"]["access_private_ipv4"] = json!("10.100.5.23/25");
    let hosts = succeeded(&inventory_of(&doc, None, &[]));
    let agent = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "packet-dcos-agent-01")
        .unwrap();
    assert!(
        agent["ipv4"].as_array().unwrap().contains(&json!("10.100.5.23")),
        "{agent}"
    );
}

#[test]
fn an_hcloud_state_from_before_2020_admits_the_server_s_own_ipv6() {
    // Provider releases before terraform-provider-hcloud#148 wrote the
    // server's /64 network address in ipv6_address; the server's own
    // address is that network's ::1, as later releases write it.
    let server = |name: &str, v4: &str, v6: &str| json!({"attributes": {"name": name, "ipv4_address": v4, "ipv6_address": v6}});
    let doc = v4_state(json!([v4_resource(
        "hcloud_server",
        "node",
        json!([
            server("old", "203.0.113.10", "2a01:4f8:c17:b8f::"),
            server("new", "203.0.113.11", "2a01:4f8:c17:b90::1")
        ])
    )]));
    let hosts = succeeded(&inventory_of(&doc, None, &[]));
    let v6 = |name: &str| {
        hosts
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap()["ipv6"]
            .clone()
    };
    assert_eq!(v6("old"), json!(["2a01:4f8:c17:b8f::1"]));
    assert_eq!(v6("new"), json!(["2a01:4f8:c17:b90::1"]));
}

/// Addresses that live on other resources (AWS Elastic IPs, DigitalOcean
/// reserved IPs, Hetzner floating and primary IPs, OpenStack floating IPs,
/// Azure NICs and public IPs) are joined to their machine, in every format.
#[test]
fn addresses_on_other_resources_are_joined_to_their_machine() {
    let expected = [
        // (name, SSH address, every address)
        ("ceph-mon-0", "185.10.1.11", vec!["10.0.0.11", "185.10.1.11"]),
        ("ceph-osd-0", "185.10.1.12", vec!["10.0.0.12", "185.10.1.12"]),
        // A reserved IP stands beside the droplet's own, which SSH keeps.
        (
            "do-lb",
            "159.89.1.5",
            vec!["10.130.0.5", "159.89.1.5", "167.99.9.9"],
        ),
        ("k3s-server-0", "95.217.1.1", vec!["95.217.1.1", "95.217.200.7"]),
        ("nomad-0", "20.50.1.4", vec!["10.1.0.4", "20.50.1.4"]),
        ("web-assoc", "52.74.1.11", vec!["172.31.12.225", "52.74.1.11"]),
        // The Elastic IP replaces the stale public_ip: connected to, and
        // the released address is in no whitelist.
        ("web-eip", "52.74.1.10", vec!["172.31.12.224", "52.74.1.10"]),
        ("web-eni", "52.74.1.12", vec!["172.31.12.226", "52.74.1.12"]),
        ("win-0", "20.50.1.5", vec!["10.1.0.5", "20.50.1.5"]),
    ];
    for file in ["joins-v4.tfstate", "joins.show.json"] {
        let path = fixture(file);
        let out = palisade(&["inventory", "--json", "--state", path.to_str().unwrap()], None);
        let hosts = succeeded(&out);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        let got: Vec<(String, String, Vec<String>)> = hosts
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let strs = |k: &str| {
                    h[k].as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                };
                let mut all = strs("ipv4");
                all.extend(strs("ipv6").into_iter().filter(|a| !a.starts_with("2a01")));
                all.sort();
                (
                    h["name"].as_str().unwrap().into(),
                    h["address"].as_str().unwrap().into(),
                    all,
                )
            })
            .collect();
        let want: Vec<(String, String, Vec<String>)> = expected
            .iter()
            .map(|(n, a, all)| {
                let mut all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
                all.sort();
                (n.to_string(), a.to_string(), all)
            })
            .collect();
        assert_eq!(got, want, "{file}");
        assert!(
            !stdout.contains("18.143.194.24"),
            "{file}: the released address is whitelisted"
        );
        assert!(
            stderr.contains("aws_instance.eip_web: public_ip 18.143.194.24 is the address from before aws_eip.web was attached"),
            "{file}: {stderr}"
        );
        // An unassigned primary IP belongs to no machine.
        assert!(!stdout.contains("95.217.1.99"), "{file}");
        // What was read is neither a machine nor skipped.
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["skipped"].as_object().is_none_or(|s| s.is_empty()),
            "{file}: {doc}"
        );
        assert!(doc["found"].get("aws_eip").is_none(), "{file}: {doc}");
    }
    // The older Azure VM type in a v3 state, through its NIC's flatmap.
    let path = fixture("joins-v3.tfstate");
    let hosts = succeeded(&palisade(
        &["inventory", "--json", "--state", path.to_str().unwrap()],
        None,
    ));
    assert_eq!(hosts[0]["name"], "nomad-0");
    assert_eq!(hosts[0]["address"], "20.50.1.4");
    assert_eq!(hosts[0]["ipv4"], json!(["10.1.0.4", "20.50.1.4"]));
}

/// A real state (tests/fixtures/tfstate/real/README.md): a config that
/// names a key's fields as an address or a name field gets a refusal that
/// names the field and never quotes the value Terraform marks sensitive.
#[test]
fn values_terraform_marks_sensitive_are_never_read_or_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let state = fixture("real/aws-tlskey-v4.tfstate");
    std::fs::write(
        dir.path().join("palisade.toml"),
        "[terraform.types.tls_private_key]\npublic = [\"private_key_pem\"]\nname = [\"private_key_openssh\"]\n",
    )
    .unwrap();
    let out = run_in(
        dir.path(),
        &["inventory", "--state", state.to_str().unwrap()],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tls_private_key.example: field private_key_pem is marked sensitive in the state"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("REDACTED") && !text(&out.stdout).contains("REDACTED"),
        "{stderr}"
    );
    // The machine itself reads as before.
    let out = palisade(&["inventory", "--json", "--state", state.to_str().unwrap()], None);
    let hosts = succeeded(&out);
    assert_eq!(hosts[0]["address"], "18.143.194.24");
}

#[test]
fn the_same_address_on_two_devices_is_refused() {
    let mut doc = fixture_json("v4-packet.tfstate");
    let agents = dcos_agents(&mut doc);
    agents["instances"][2]["attributes"]["access_private_ipv4"] = json!("10.100.5.21");
    let err = refused(doc.to_string().as_bytes());
    assert!(
        err.contains("address 10.100.5.21 belongs to two devices: packet_device.dcos_agent[0] and packet_device.dcos_agent[2]"),
        "{err}"
    );
}

#[test]
fn a_hostile_hostname_is_refused() {
    let mut doc = fixture_json("v4-packet.tfstate");
    doc["resources"][0]["instances"][0]["attributes"]["hostname"] = json!("x\u{1b}[2J");
    let err = refused(doc.to_string().as_bytes());
    assert!(err.contains("field hostname"), "{err}");
    assert!(!err.contains('\u{1b}'), "prints the escape raw: {err:?}");
}

#[test]
fn a_tainted_instance_is_a_host_marked_tainted() {
    let mut doc = fixture_json("v4-packet.tfstate");
    let agents = dcos_agents(&mut doc);
    agents["instances"][3]["status"] = json!("tainted");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("terraform.tfstate"), doc.to_string()).unwrap();
    let out = run_in(dir.path(), &["inventory", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let agent = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "packet-dcos-agent-03")
        .unwrap();
    assert_eq!(agent["lifecycle"], "tainted");
    assert_eq!(roles_of(&doc), FLEET_ROLES, "still the whole fleet");
}

#[test]
fn empty_missing_and_directory() {
    let err = refused(b"");
    assert!(err.contains("the file is empty"), "{err}");
    let err = refused(b" \n\t\n");
    assert!(err.contains("the file is empty"), "{err}");

    let out = palisade(&["inventory", "--state", "/nonexistent/terraform.tfstate"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/terraform.tfstate: cannot read: No such file"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = palisade(&["inventory", "--state", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is a directory"),
        "{}",
        text(&out.stderr)
    );

    let out = palisade(&["inventory", "--state", "-"], Some(b""));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("<stdin>: the file is empty"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_static_inventories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.toml");
    let cases: [(&str, &str); 5] = [
        (
            "[[agent]]\naddress = \"10.0.0.1 && reboot\"\n",
            "[[agent]] entry 1: field address: \"10.0.0.1 && reboot\"",
        ),
        (
            "[[agent]]\naddress = \"10.0.0.1\"\naddresses = [\"10.0.0.2\", \"nope\"]\n",
            "field addresses[1]: \"nope\"",
        ),
        ("[[worker]]\naddress = \"10.0.0.1\"\n", "unknown field `worker`"),
        ("[[agent]]\nname = \"a\"\n", "missing field `address`"),
        ("", "the file is empty"),
    ];
    for (content, want) in cases {
        std::fs::write(&path, content).unwrap();
        let out = palisade(&["inventory", "--inventory", path.to_str().unwrap()], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{content}: {stderr}");
        assert!(stderr.contains(want), "{content}: want {want:?} in {stderr}");
        assert!(stderr.contains("hosts.toml"), "{stderr}");
    }
    std::fs::write(
        &path,
        "[[agent]]\naddress = \"10.0.0.1\"\n[[master]]\naddress = \"10.0.0.1\"\n",
    )
    .unwrap();
    let out = palisade(&["inventory", "--inventory", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("address 10.0.0.1 belongs to two devices"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ssh_commands_refuse_bad_local_input_before_contacting_anyone() {
    let inv = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml");
    let out = palisade(
        &["ping", "--inventory", inv, "--key", "/nonexistent/packet-key"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("/nonexistent/packet-key: cannot read the key"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let not_a_key = dir.path().join("key");
    std::fs::write(&not_a_key, "hello").unwrap();
    let out = palisade(
        &["ping", "--inventory", inv, "--key", not_a_key.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a private key palisade can use"),
        "{}",
        text(&out.stderr)
    );

    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["ping", "--inventory", inv])
        .current_dir(dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no SSH key"), "{}", text(&out.stderr));

    for bad in [
        &["--jump", "core@host;reboot"][..],
        &["--forks", "0"],
        &["--host-key-checking", "maybe"],
    ] {
        let mut args = vec!["ping", "--inventory", inv];
        args.extend_from_slice(bad);
        let out = palisade(&args, None);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {}", text(&out.stderr));
    }
}

/// The four encodings of a fixture family: v3 flatmap, v4 nested, v4
/// `attributes_flat` and `terraform show -json`.
const ENCODINGS: [&str; 4] = ["v3.tfstate", "v4.tfstate", "v4-flat.tfstate", "show.json"];

/// `palisade inventory --json` on a fixture, with extra flags; the hosts
/// sorted by name, as the *-expected.json files hold them.
fn hosts_by_name(name: &str, flags: &[&str]) -> Value {
    let path = fixture(name);
    let mut args = vec!["inventory", "--json", "--state", path.to_str().unwrap()];
    args.extend_from_slice(flags);
    let out = palisade(&args, None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name} {flags:?}: {}",
        text(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut hosts = doc["hosts"].as_array().unwrap().clone();
    hosts.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Value::Array(hosts)
}

#[test]
fn every_provider_in_every_state_format() {
    let expected = fixture_json("providers-expected.json");
    for encoding in ENCODINGS {
        let name = format!("providers-{encoding}");
        let hosts = hosts_by_name(&name, &["--role-tag", "role"]);
        assert_eq!(hosts, expected["hosts"], "{name}");
    }
}

#[test]
fn without_a_role_tag_roles_come_from_resource_names() {
    for encoding in ENCODINGS {
        let name = format!("providers-{encoding}");
        let hosts = hosts_by_name(&name, &[]);
        for host in hosts.as_array().unwrap() {
            let want = if host["name"] == "eq-bootstrap-00" {
                "bootstrap"
            } else {
                "node"
            };
            assert_eq!(host["role"], want, "{name}: {host}");
        }
    }
}

#[test]
fn role_tag_and_connect_via_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("private-v4.tfstate"),
        dir.path().join("terraform.tfstate"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("palisade.toml"),
        "[terraform]\nrole_tag = \"role\"\nconnect_via = \"private\"\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["inventory", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut hosts = doc["hosts"].as_array().unwrap().clone();
    hosts.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    assert_eq!(
        Value::Array(hosts),
        fixture_json("private-expected.json")["hosts"]
    );
    // A flag wins over the file.
    let out = run_in(dir.path(), &["inventory", "--connect-via", "public"], None);
    assert_eq!(out.status.code(), Some(1));
    std::fs::write(
        dir.path().join("palisade.toml"),
        "[terraform]\nconnect_via = \"sideways\"\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["inventory"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("sideways"), "{}", text(&out.stderr));
}

#[test]
fn machines_without_a_public_ipv4_are_refused_unless_connecting_privately() {
    let expected = fixture_json("private-expected.json");
    for encoding in ENCODINGS {
        let name = format!("private-{encoding}");
        let err = refused(&std::fs::read(fixture(&name)).unwrap());
        assert!(
            err.contains("aws_instance.agents[0]: no public IPv4 address (looked at public_ip"),
            "{name}: {err}"
        );
        assert!(err.contains("--connect-via private"), "{name}: {err}");
        let hosts = hosts_by_name(&name, &["--connect-via", "private", "--role-tag", "role"]);
        assert_eq!(hosts, expected["hosts"], "{name}");
    }
}

#[test]
fn connect_via_ipv6_picks_each_machines_ipv6_and_keeps_every_address() {
    for encoding in ENCODINGS {
        let name = format!("lifecycle-{encoding}");
        let hosts = hosts_by_name(&name, &["--connect-via", "ipv6"]);
        for host in hosts.as_array().unwrap() {
            assert!(host["address"].as_str().unwrap().contains(':'), "{name}: {host}");
            assert_eq!(host["ipv6"], json!([host["address"]]), "{name}: {host}");
            assert_eq!(host["ipv4"].as_array().unwrap().len(), 2, "{name}: {host}");
        }
    }
    // A machine with no IPv6 at all is named, with where palisade looked.
    let err = refused_with(
        &std::fs::read(fixture("providers-v4.tfstate")).unwrap(),
        &["--connect-via", "ipv6"],
    );
    assert!(
        err.contains(
            "aws_spot_instance_request.spot_agent: no IPv6 address (looked at public_ip, private_ip"
        ),
        "{err}"
    );
}

#[test]
fn tainted_and_deposed_instances_are_hosts_in_every_state_format() {
    let expected = fixture_json("lifecycle-expected.json");
    for encoding in ENCODINGS {
        let name = format!("lifecycle-{encoding}");
        let mut want = expected["hosts"].to_string();
        if encoding.starts_with("v3") {
            // A v3 state keeps deposed objects in a list, without keys.
            want = want
                .replace("(deposed 1a2b3c4d)", "(deposed 0)")
                .replace("(deposed 5e6f7a8b)", "(deposed 0)");
        }
        let mut want: Value = serde_json::from_str(&want).unwrap();
        want.as_array_mut()
            .unwrap()
            .sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        assert_eq!(hosts_by_name(&name, &[]), want, "{name}");

        // The table says which is which, in a column of its own.
        let path = fixture(&name);
        let out = palisade(&["inventory", "--state", path.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(0));
        let stdout = text(&out.stdout);
        assert!(stdout.lines().next().unwrap().contains("LIFECYCLE"), "{stdout}");
        let lifecycle_of = |host: &str| {
            stdout
                .lines()
                .find(|l| l.split("  ").any(|cell| cell.trim() == host))
                .and_then(|l| l.split_whitespace().rev().nth(3))
                .map(str::to_owned)
        };
        assert_eq!(
            lifecycle_of("packet-dcos-agent-01").as_deref(),
            Some("tainted"),
            "{stdout}"
        );
        assert_eq!(
            lifecycle_of("packet-dcos-agent-00").as_deref(),
            Some("current"),
            "{stdout}"
        );
    }
}

#[test]
fn a_deposed_object_sharing_an_address_with_its_replacement_is_refused() {
    let original = fixture_json("lifecycle-v4.tfstate");
    let with_deposed = |change: &dyn Fn(&mut Value)| {
        let mut doc = original.clone();
        let masters = doc["resources"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["name"] == "dcos_master")
            .unwrap();
        let deposed = masters["instances"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|i| i.get("deposed").is_some())
            .unwrap();
        change(deposed);
        doc.to_string()
    };
    let doc = with_deposed(&|d| d["attributes"]["access_private_ipv4"] = json!("10.100.5.11"));
    let err = refused(doc.as_bytes());
    assert!(
        err.contains(
            "address 10.100.5.11 belongs to two devices: packet_device.dcos_master[0] and \
             packet_device.dcos_master[0] (deposed object 1a2b3c4d)"
        ),
        "{err}"
    );
    // A deposed key is part of a name: only Terraform's own form is read.
    let doc = with_deposed(&|d| d["deposed"] = json!("\u{1b}[2J"));
    let err = refused(doc.as_bytes());
    assert!(err.contains("is not a Terraform deposed key"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn the_census_counts_hosts_per_type_and_skipped_resources_in_every_format() {
    use palisade::{census, survey_json, survey_terraform};
    let expected = fixture_json("providers-expected.json");
    let rules = RoleRules::default().with_role_tag(Some("role".into()));
    for encoding in ENCODINGS {
        let name = format!("providers-{encoding}");
        let survey = survey_terraform(&std::fs::read(fixture(&name)).unwrap(), &name, &rules).unwrap();
        let doc: Value = serde_json::from_str(&survey_json(&survey)).unwrap();
        assert_eq!(doc["found"], expected["found"], "{name}");
        assert_eq!(doc["skipped"], expected["skipped"], "{name}");
        let summary = census(&survey);
        assert!(
            summary.starts_with("24 hosts: aws_instance 3, aws_spot_instance_request 1,"),
            "{summary}"
        );
        assert!(
            summary.contains("skipped resources of other types: aws_security_group 1, google_compute_network 1, hcloud_ssh_key 2"),
            "{summary}"
        );
    }
    let survey = survey_terraform(
        &std::fs::read(fixture("lifecycle-v4.tfstate")).unwrap(),
        "lifecycle",
        &RoleRules::default(),
    )
    .unwrap();
    assert_eq!(
        census(&survey),
        "6 hosts: packet_device 6 (1 tainted, 2 deposed)\n"
    );
    // Type names come from the file: none reaches the terminal raw.
    let mut doc = fixture_json("v4-packet.tfstate");
    doc["resources"][5]["type"] = json!("evil\u{1b}[2J");
    let evil = survey_terraform(doc.to_string().as_bytes(), "evil", &RoleRules::default()).unwrap();
    let summary = census(&evil);
    assert!(summary.contains("evil\\u{001b}[2J 1"), "{summary:?}");
    assert!(!summary.contains('\u{1b}'), "{summary:?}");
    let outputs = survey_terraform(
        &std::fs::read(fixture("output-0.12.json")).unwrap(),
        "outputs",
        &RoleRules::default(),
    )
    .unwrap();
    assert_eq!(outputs.census, None);
    assert!(!survey_json(&outputs).contains("found"));
}

/// A copy of the provider fleet in which two machine types are ones palisade
/// does not know, as ./terraform.tfstate of a fresh directory.
fn unknown_types_fleet() -> tempfile::TempDir {
    let mut doc = fixture_json("providers-v4.tfstate");
    for r in doc["resources"].as_array_mut().unwrap() {
        if r["type"] == "hcloud_server" {
            r["type"] = json!("acme_server");
        }
        if r["type"] == "digitalocean_droplet" {
            r["type"] = json!("acme_droplet");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("terraform.tfstate"), doc.to_string()).unwrap();
    dir
}

#[test]
fn machine_types_come_from_the_config() {
    let dir = unknown_types_fleet();
    let names = |out: &Output| -> Vec<String> {
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let out = run_in(dir.path(), &["inventory", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(names(&out).len(), 21, "unknown types are not machines");

    std::fs::write(
        dir.path().join("palisade.toml"),
        "[terraform.types.acme_server]\n\
         public = [\"ipv4_address\", \"ipv6_address\"]\n\
         private = [\"network[*].ip\", \"network[*].alias_ips[*]\"]\n\
         name = [\"name\"]\n\
         tags = [\"labels\"]\n\
         [terraform.types.acme_droplet]\n\
         like = \"digitalocean_droplet\"\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["inventory", "--json", "--role-tag", "role"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut hosts: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout).unwrap()["hosts"]
        .as_array()
        .unwrap()
        .clone();
    hosts.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    assert_eq!(
        Value::Array(hosts),
        fixture_json("providers-expected.json")["hosts"]
    );

    for (config, want) in [
        (
            "[terraform.types.acme_server]\npublic = [\"network[*.ip\"]\n",
            "terraform.types.acme_server.public[0]: \"network[*.ip\"",
        ),
        (
            "[terraform.types.acme_server]\npublic = [\"root_password\"]\n",
            "holds secrets",
        ),
        ("[terraform.types.acme_server]\npublik = [\"ip\"]\n", "publik"),
        (
            "[terraform.types.acme_server]\nlike = \"acme\"\n",
            "\"acme\" is not a built-in machine type",
        ),
    ] {
        std::fs::write(dir.path().join("palisade.toml"), config).unwrap();
        let out = run_in(dir.path(), &["inventory"], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{config}: {stderr}");
        assert!(stderr.contains("palisade.toml"), "{config}: {stderr}");
        assert!(stderr.contains(want), "{config}: want {want:?} in {stderr}");
    }
}

#[test]
fn device_types_is_the_old_packet_shaped_form_and_says_so() {
    let dir = unknown_types_fleet();
    std::fs::write(
        dir.path().join("palisade.toml"),
        "[terraform]\ndevice_types = [\"acme_server\"]\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["inventory"], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the state holds no address for 2 machine(s): acme_server.agents[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("device_types, the old form"), "{stderr}");
    assert!(stderr.contains("[terraform.types.acme_server]"), "{stderr}");
    // A built-in type listed there keeps its own layout (the failure issue 12
    // was filed for).
    let out = palisade(
        &[
            "inventory",
            "--device-type",
            "aws_instance",
            "--state",
            fixture("providers-v4.tfstate").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn secrets_of_every_provider_never_reach_any_output() {
    let mut files: Vec<String> = Vec::new();
    for family in ["providers", "private", "lifecycle"] {
        files.extend(ENCODINGS.iter().map(|e| format!("{family}-{e}")));
    }
    for name in files {
        for flags in [
            &["inventory"][..],
            &["inventory", "--json"],
            &["-vv", "inventory", "--role-tag", "role"],
            &["inventory", "--connect-via", "ipv6"],
            &["inventory", "--connect-via", "private", "--json"],
        ] {
            let path = fixture(&name);
            let mut args = flags.to_vec();
            args.extend(["--state", path.to_str().unwrap()]);
            let out = palisade(&args, None);
            let all = text(&out.stdout) + &text(&out.stderr);
            assert!(!all.contains("SECRET"), "{name} {args:?}: {all}");
            assert!(!all.contains("cloud-config"), "{name} {args:?}: {all}");
        }
    }
}

/// Attribute names the fuzzer favours: the ones the type table reads, and
/// flatmap keys.
const FUZZED_KEYS: [&str; 23] = [
    "network",
    "network_interface",
    "access_config",
    "nat_ip",
    "public_ip",
    "tags",
    "tags.%",
    "tags.role",
    "role",
    "ip_addresses",
    "type",
    "tag_assignment",
    "ipv4",
    "0",
    "network.#",
    "network.0.address",
    "network.0.public",
    "access_public_ipv4",
    "hostname",
    "index_key",
    "address",
    "public",
    "name",
];

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("147.75.100.1"),
            Just("::1"),
            Just("true"),
            Just("4"),
            Just("")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(FUZZED_KEYS.to_vec()).prop_map(String::from),
            "[a-z_.0-9#%]{1,10}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_terraform(&bytes, "fuzz", &RoleRules::default());
    }

    #[test]
    fn parser_never_panics_on_mutated_fixtures(
        which in 0usize..FUZZED.len(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = std::fs::read(fixture(FUZZED[which])).unwrap();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let rules = fuzz_rules();
        let _ = parse_terraform(&bytes, "fuzz", &rules);
        let end = cut.index(bytes.len());
        let _ = parse_terraform(&bytes[..end], "fuzz", &rules);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_attributes(
        attrs in any_json(),
        index in any_json(),
        flat in any::<bool>(),
        machine_type in prop::sample::select(FUZZED_TYPES.to_vec()),
        deposed in any_json(),
    ) {
        let key = if flat { "attributes_flat" } else { "attributes" };
        let rules = fuzz_rules();
        let v4 = json!({"version": 4, "resources": [{"mode": "managed", "type": machine_type, "name": "dcos_agent",
            "module": "module.x", "instances": [{"index_key": index, key: attrs.clone()},
                                                {"deposed": deposed.clone(), key: attrs.clone()}]}]});
        let _ = parse_terraform(v4.to_string().as_bytes(), "fuzz", &rules);
        let v3 = json!({"version": 3, "modules": [{"path": ["root", "x"], "resources": {
            format!("{machine_type}.dcos_agent.1"): {"type": machine_type, "primary": {"attributes": attrs.clone()},
                                                     "deposed": [{"attributes": attrs.clone()}]}}}]});
        let _ = parse_terraform(v3.to_string().as_bytes(), "fuzz", &rules);
        let show = json!({"format_version": "1.0", "values": {"root_module": {"child_modules": [{"resources": [
            {"address": "x.a", "mode": "managed", "type": machine_type, "name": "a", "values": attrs,
             "deposed_key": deposed, "tainted": true}]}]}}});
        let _ = parse_terraform(show.to_string().as_bytes(), "fuzz", &rules);
    }
}

/// Fixtures the mutation fuzzer starts from.
const FUZZED: [&str; 6] = [
    "v3-2016.tfstate",
    "v4-state-pull-flat.tfstate",
    "providers-v3.tfstate",
    "providers-v4.tfstate",
    "providers-show.json",
    "lifecycle-v4.tfstate",
];

/// Machine types whose paths the attribute fuzzer exercises: filters, nested
/// lists, maps and tags of every shape.
const FUZZED_TYPES: [&str; 6] = [
    "packet_device",
    "aws_instance",
    "google_compute_instance",
    "cherryservers_server",
    "pnap_server",
    "linode_instance",
];

fn fuzz_rules() -> RoleRules {
    RoleRules::default().with_role_tag(Some("role".into()))
}

/// `terraform output -json` holds each node's public IPv4 only: applying a
/// whitelist from it would drop node-to-node traffic over the private
/// network. apply refuses before contacting any node (exit 1, nothing on
/// stdout), and plan, which says what apply would do, refuses alike. What
/// lifts the refusal (private networks in --extra, --public-only) is tested
/// in `policy`; running it here would contact the fixture's addresses.
#[test]
fn an_inventory_without_private_addresses_is_refused_by_plan_and_apply() {
    let state = fixture("output-0.12.json");
    let state = state.to_str().unwrap();
    let base = ["--state", state, "--allow", "203.0.113.7"];
    for (cmd, end) in [
        ("apply", "; no node was changed"),
        ("plan", "; apply would refuse it, so plan read no node"),
    ] {
        let mut args = vec![cmd, "--json"];
        args.extend_from_slice(&base);
        let out = palisade(&args, None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stderr}");
        assert!(out.stdout.is_empty(), "{cmd}: {}", text(&out.stdout));
        assert!(
            stderr.contains("the inventory knows no private address for 9 node(s)")
                && stderr.contains("--public-only")
                && stderr.contains(end),
            "{cmd}: {stderr}"
        );
    }
}

/// Runs `palisade inventory --json --state terraform.tfstate FLAGS` on
/// `state`, in a directory that holds `config` as palisade.toml if given.
fn inventory_of(state: &Value, config: Option<&str>, flags: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("terraform.tfstate"), state.to_string()).unwrap();
    if let Some(config) = config {
        std::fs::write(dir.path().join("palisade.toml"), config).unwrap();
    }
    let mut args = vec!["inventory", "--json", "--state", "terraform.tfstate"];
    args.extend_from_slice(flags);
    run_in(dir.path(), &args, None)
}

/// The `dcos_agent` resource of a version-4 fixture, to plant a value in.
fn dcos_agents(doc: &mut Value) -> &mut Value {
    doc["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "dcos_agent")
        .unwrap()
}

fn v4_state(resources: Value) -> Value {
    json!({"version": 4, "terraform_version": "1.5.0", "serial": 1, "lineage": "x", "resources": resources})
}

fn v4_resource(rtype: &str, name: &str, instances: Value) -> Value {
    json!({"mode": "managed", "type": rtype, "name": name, "provider": "p", "instances": instances})
}

fn v3_state(resources: Value) -> Value {
    json!({"version": 3, "terraform_version": "0.11.14", "serial": 1, "lineage": "x",
           "modules": [{"path": ["root"], "outputs": {}, "resources": resources}]})
}

fn succeeded(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    hosts_of(out)
}

#[test]
fn a_flatmap_key_nested_too_deeply_is_refused_not_a_stack_overflow() {
    for deep in [
        format!("{}y", "x.".repeat(200_000)),
        format!("network.{}address", "0.".repeat(200_000)),
    ] {
        let state = v3_state(json!({"packet_device.a": {"type": "packet_device",
            "primary": {"id": "i", "attributes": {"access_public_ipv4": "203.0.113.1", deep: "1.2.3.4"}},
            "deposed": []}}));
        let stderr = refused(state.to_string().as_bytes());
        assert!(
            stderr.contains("packet_device.a: attribute key \"")
                && stderr.contains("is nested more than 128 levels deep"),
            "{stderr}"
        );
        assert!(stderr.len() < 400, "the key is shortened: {stderr}");
    }
    // The same through a v4 `attributes_flat`.
    let deep = format!("{}y", "x.".repeat(200_000));
    let state = v4_state(json!([v4_resource(
        "aws_instance",
        "a",
        json!([{"schema_version": 1, "attributes_flat": {"public_ip": "203.0.113.1", deep: "1"}}])
    )]));
    let stderr = refused(state.to_string().as_bytes());
    assert!(stderr.contains("aws_instance.a: attribute key"), "{stderr}");
}

#[test]
fn configured_paths_never_read_a_secret_anywhere_along_them() {
    let gce = v4_state(json!([v4_resource(
        "google_compute_instance",
        "a",
        json!([{"schema_version": 1,
        "attributes": {"name": "g1",
            "network_interface": [{"network_ip": "10.0.0.11", "access_config": [{"nat_ip": "203.0.113.11"}]}],
            "metadata": {"startup-script": "export DB_PASSWORD=SECRET", "user-data": "SECRET"}}}])
    )]));
    // `[*]` over a map passes its secret keys over.
    let hosts = succeeded(&inventory_of(
        &gce,
        Some("[terraform.types.google_compute_instance]\naddresses = [\"metadata[*]\"]\n"),
        &[],
    ));
    assert_eq!(hosts[0]["name"], "g1");
    for (config, secret) in [
        (
            "[terraform.types.google_compute_instance]\nname = [\"metadata.startup-script\"]\n",
            "startup-script",
        ),
        (
            "[terraform.types.google_compute_instance]\nname = [\"metadata.user_data\"]\n",
            "user_data",
        ),
        (
            "[terraform.types.azurerm_linux_virtual_machine]\npublic = [\"os_profile[*]\"]\n",
            "os_profile",
        ),
        (
            "[terraform.types.azurerm_linux_virtual_machine]\nname = [\"os_profile.custom_data\"]\n",
            "os_profile",
        ),
        (
            "[terraform.types.vsphere_virtual_machine]\nname = [\"vapp[*].properties[*]\"]\n",
            "vapp",
        ),
    ] {
        let out = inventory_of(&gce, Some(config), &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{config}: {stderr}");
        assert!(
            stderr.contains(&format!("reads {secret:?}, which holds secrets")),
            "{config}: {stderr}"
        );
        assert!(!stderr.contains("SECRET"), "{stderr}");
    }
}

#[test]
fn a_value_that_is_not_an_address_is_shortened_and_escaped_in_the_error() {
    let long = format!("\u{1b}[2J{}", "a".repeat(5000));
    let state = v4_state(json!([v4_resource(
        "aws_instance",
        "a",
        json!([{"schema_version": 1, "attributes": {"public_ip": long, "private_ip": "10.0.0.1"}}])
    )]));
    let stderr = refused(state.to_string().as_bytes());
    assert!(stderr.contains("field public_ip: \"\\u{1b}[2Jaaaa"), "{stderr}");
    assert!(stderr.contains("…\" is not an IP address"), "{stderr}");
    assert!(stderr.len() < 400, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn container_and_overlay_addresses_every_dcos_node_reports_are_not_its_own() {
    let guest = |own: &str| {
        json!([
            own,
            "172.17.0.1",
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "44.128.0.1",
            "9.0.2.1",
            "fe80::1",
            "2001:db8::1:5"
        ])
    };
    let state = v4_state(json!([v4_resource(
        "vsphere_virtual_machine",
        "dcos_agent",
        json!([
            {"index_key": 0, "schema_version": 3,
             "attributes": {"name": "agent-0", "default_ip_address": "10.5.0.10", "guest_ip_addresses": guest("10.5.0.10")}},
            {"index_key": 1, "schema_version": 3,
             "attributes": {"name": "agent-1", "default_ip_address": "10.5.0.11", "guest_ip_addresses": guest("10.5.0.11")}}
        ])
    )]));
    // The two nodes still share an IPv6 address: that is a real conflict.
    let out = inventory_of(&state, None, &["--connect-via", "private"]);
    assert!(
        text(&out.stderr).contains("address 2001:db8::1:5 belongs to two devices"),
        "{}",
        text(&out.stderr)
    );
    let mut state = state;
    state["resources"][0]["instances"][1]["attributes"]["guest_ip_addresses"][8] = json!("2001:db8::1:6");
    let hosts = succeeded(&inventory_of(&state, None, &["--connect-via", "private"]));
    assert_eq!(hosts[0]["ipv4"], json!(["10.5.0.10"]));
    assert_eq!(hosts[1]["ipv4"], json!(["10.5.0.11"]));
    assert_eq!(hosts[0]["role"], "agent");
    // Addresses a provider classifies are kept whatever their range.
    let aws = v4_state(json!([v4_resource(
        "aws_instance",
        "a",
        json!([{"schema_version": 1, "attributes": {"public_ip": "9.1.2.3", "private_ip": "172.17.0.5"}}])
    )]));
    let hosts = succeeded(&inventory_of(&aws, None, &[]));
    assert_eq!(hosts[0]["address"], "9.1.2.3");
    assert_eq!(hosts[0]["ipv4"], json!(["9.1.2.3", "172.17.0.5"]));
}

#[test]
fn an_unknown_role_tag_value_falls_back_to_the_resource_name_and_warns() {
    let state = v4_state(json!([
        v4_resource(
            "aws_instance",
            "dcos_master",
            json!([{"schema_version": 1, "attributes":
            {"public_ip": "203.0.113.8", "private_ip": "10.0.0.8", "tags": {"role": "mastr\u{1b}[31m"}}}])
        ),
        v4_resource(
            "aws_instance",
            "web",
            json!([{"schema_version": 1, "attributes":
            {"public_ip": "203.0.113.9", "private_ip": "10.0.0.9", "tags": {"role": "Public Agent"}}}])
        ),
    ]));
    let out = inventory_of(&state, None, &["--role-tag", "role"]);
    let hosts = succeeded(&out);
    assert_eq!(roles_of(&json!({ "hosts": hosts })), ["master", "public-agent"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("aws_instance.dcos_master: tag \"role\" is \"mastr\\u{1b}[31m\", which names no role"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn an_ipv4_mapped_ipv6_address_is_the_ipv4_address() {
    let state = v4_state(json!([
        v4_resource(
            "aws_instance",
            "a",
            json!([{"schema_version": 1, "attributes":
            {"public_ip": "203.0.113.5", "private_ip": "10.0.0.5", "ipv6_addresses": ["::ffff:203.0.113.5"]}}])
        ),
        v4_resource(
            "aws_instance",
            "b",
            json!([{"schema_version": 1, "attributes":
            {"public_ip": "::ffff:203.0.113.6", "private_ip": "10.0.0.6"}}])
        ),
    ]));
    let hosts = succeeded(&inventory_of(&state, None, &[]));
    assert_eq!(hosts[0]["ipv4"], json!(["10.0.0.5", "203.0.113.5"]));
    assert_eq!(hosts[0]["ipv6"], json!([]));
    assert_eq!(hosts[1]["address"], "203.0.113.6");
    // Written both ways on two machines, it is one address on both.
    let mut state = state;
    state["resources"][1]["instances"][0]["attributes"]["public_ip"] = json!("203.0.113.5");
    let stderr = refused(state.to_string().as_bytes());
    assert!(
        stderr.contains("address 203.0.113.5 belongs to two devices"),
        "{stderr}"
    );
}

#[test]
fn a_for_each_key_with_blanks_names_the_host_by_its_address() {
    let state = v4_state(json!([v4_resource(
        "aws_instance",
        "web",
        json!([
            {"index_key": "blue green", "schema_version": 1,
             "attributes": {"public_ip": "203.0.113.7", "private_ip": "10.0.0.7"}},
            {"index_key": "red", "schema_version": 1,
             "attributes": {"public_ip": "203.0.113.8", "private_ip": "10.0.0.8"}}
        ])
    )]));
    let hosts = succeeded(&inventory_of(&state, None, &[]));
    assert_eq!(hosts[0]["name"], "aws_instance.web[\"blue\\u{0020}green\"]");
    assert_eq!(hosts[1]["name"], "aws_instance.web[\"red\"]");
}

#[test]
fn many_addresses_on_one_machine_are_read_in_linear_time() {
    let many: Vec<String> = (0..50_000).map(|i| format!("2001:db8::{i:x}")).collect();
    let state = v4_state(json!([v4_resource(
        "aws_instance",
        "a",
        json!([{"schema_version": 1,
        "attributes": {"public_ip": "203.0.113.1", "private_ip": "10.0.0.1", "ipv6_addresses": many}}])
    )]));
    let started = std::time::Instant::now();
    let hosts = succeeded(&inventory_of(&state, None, &[]));
    assert_eq!(hosts[0]["ipv6"].as_array().unwrap().len(), 50_000);
    // Quadratic deduplication took minutes here.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_block_stored_as_an_object_reads_like_a_list_of_one() {
    let state = v4_state(json!([v4_resource(
        "cherryservers_server",
        "c",
        json!([{"schema_version": 0,
        "attributes": {"hostname": "c1", "ip_addresses": {"type": "primary-ip", "address": "203.0.113.70"}}}])
    )]));
    let hosts = succeeded(&inventory_of(&state, None, &[]));
    assert_eq!(hosts[0]["address"], "203.0.113.70");
    let mut state = state;
    state["resources"][0]["instances"][0]["attributes"]["ip_addresses"]["type"] = json!("private-ip");
    state["resources"][0]["instances"][0]["attributes"]["ip_addresses"]["address"] = json!("10.0.0.70");
    let hosts = succeeded(&inventory_of(&state, None, &["--connect-via", "private"]));
    assert_eq!(hosts[0]["address"], "10.0.0.70");
}

#[test]
fn names_from_the_file_are_escaped_in_errors() {
    let state = v4_state(json!([{"mode": "managed", "type": "aws_instance",
        "name": "x\u{1b}]0;pwned\u{7}\nforged line", "module": "module.m\u{1b}[2J\u{202e}", "provider": "p",
        "instances": [{"schema_version": 1, "attributes": {"private_ip": "10.0.0.1"}}]}]));
    let stderr = refused(state.to_string().as_bytes());
    assert!(
        stderr.contains(
            "module.m\\u{001b}[2J\\u{202e}.aws_instance.x\\u{001b}]0;pwned\\u{0007}\\nforged line:"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(['\u{1b}', '\u{7}', '\u{202e}']), "{stderr}");
    // A flatmap key in a field name, too.
    let state = v3_state(
        json!({"aws_instance.a": {"type": "aws_instance", "primary": {"id": "i",
        "attributes": {"public_ip": "203.0.113.12", "private_ip": "10.0.0.12",
                       "ipv6_addresses.#": "1", "ipv6_addresses.0\u{1b}[2J": "nope"}}, "deposed": []}}),
    );
    let stderr = refused(state.to_string().as_bytes());
    assert!(
        stderr.contains("field ipv6_addresses.0\\u{001b}[2J: \"nope\""),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    // And `terraform show -json`, which spells the whole address itself.
    let show = json!({"format_version": "1.0", "terraform_version": "1.5.0", "values": {"root_module": {
        "resources": [{"address": "aws_instance.x\nforged line", "mode": "managed", "type": "aws_instance",
                       "name": "x", "values": {"private_ip": "10.0.0.1"}}]}}});
    let stderr = refused(show.to_string().as_bytes());
    assert!(
        stderr.contains("aws_instance.x\\nforged line: no public IPv4"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// An SSH address that cannot be a node is refused, whatever the format:
/// palisade would otherwise log in to the operator's own machine.
#[test]
fn ssh_addresses_that_cannot_be_a_node_are_refused() {
    for (address, says) in [
        ("127.0.0.1", "a loopback address"),
        ("0.0.0.0", "the unspecified address"),
        ("255.255.255.255", "the broadcast address"),
        ("224.0.0.1", "a multicast address"),
        ("169.254.1.1", "a link-local address"),
        ("::1", "a loopback address"),
        ("fe80::1", "a link-local address"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("hosts.toml");
        std::fs::write(
            &inv,
            format!("[[agent]]\nname = \"a\"\naddress = \"{address}\"\n"),
        )
        .unwrap();
        let out = palisade(&["inventory", "--inventory", inv.to_str().unwrap()], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{address}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.contains(address),
            "{address}: {stderr}"
        );
    }
    for fine in ["10.0.0.1", "100.64.0.1", "198.18.1.11", "147.75.100.11"] {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("hosts.toml");
        std::fs::write(&inv, format!("[[agent]]\nname = \"a\"\naddress = \"{fine}\"\n")).unwrap();
        let out = palisade(&["inventory", "--inventory", inv.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(0), "{fine}: {}", text(&out.stderr));
    }
}

/// The fleets of issue 23 (tests/fixtures/fleets): machines without any
/// address, a mixed fleet and an ordered --connect-via, names set aside,
/// OpenTofu's encrypted state; each case with its exit code, hosts, and
/// what stderr says and never says.
#[test]
fn real_fleets_shapes_read_as_their_expected_file_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fleets");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    for case in expected["cases"].as_array().unwrap() {
        let about = case["about"].as_str().unwrap();
        let state = dir.join(case["fixture"].as_str().unwrap());
        let flags = strings(&case["flags"]);
        let mut args = vec!["inventory", "--json", "--state", state.to_str().unwrap()];
        args.extend(flags.iter().map(String::as_str));
        let out = palisade(&args, None);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            case["exit"].as_i64().map(|c| c as i32),
            "{about}: {stderr}"
        );
        for want in strings(&case["stderr"]) {
            assert!(stderr.contains(&want), "{about}: wanted {want:?} in\n{stderr}");
        }
        for never in strings(&case["stderr_not"]) {
            assert!(!stderr.contains(&never), "{about}: {never:?} in\n{stderr}");
        }
        if let Some(n) = case["stderr_lines"].as_u64() {
            assert_eq!(stderr.lines().count() as u64, n, "{about}: {stderr}");
        }
        if out.status.code() != Some(0) {
            assert!(out.stdout.is_empty(), "{about}: {}", text(&out.stdout));
            continue;
        }
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        if let Some(hosts) = case.get("hosts") {
            let got: Vec<Value> = doc["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| json!({"name": h["name"], "role": h["role"], "address": h["address"]}))
                .collect();
            assert_eq!(&Value::Array(got), hosts, "{about}");
        }
        match case.get("left_out") {
            Some(left_out) => assert_eq!(&doc["left_out"], left_out, "{about}"),
            None => assert!(doc.get("left_out").is_none(), "{about}: {doc}"),
        }
        assert!(!text(&out.stdout).contains("SECRET"), "{about}");
    }
}

/// `terraform.connect_via` takes the ordered list too, as one string or a
/// TOML list; a flag still wins over it.
#[test]
fn an_ordered_connect_via_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fleets/mixed-v4.tfstate"),
        dir.path().join("terraform.tfstate"),
    )
    .unwrap();
    let address_of = |hosts: &Value, name: &str| {
        hosts
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["address"].clone())
            .unwrap()
    };
    for spelled in [
        "\"private,public\"",
        "[\"private\", \"public\"]",
        "\" private , public \"",
    ] {
        std::fs::write(
            dir.path().join("palisade.toml"),
            format!("[terraform]\nconnect_via = {spelled}\n"),
        )
        .unwrap();
        let hosts = succeeded(&run_in(dir.path(), &["inventory", "--json"], None));
        assert_eq!(address_of(&hosts, "mx-gateway-0"), "10.50.0.5", "{spelled}");
        assert_eq!(address_of(&hosts, "mx-edge-0"), "203.0.113.50", "{spelled}");
        let flag = ["inventory", "--json", "--connect-via", "public,private"];
        let hosts = succeeded(&run_in(dir.path(), &flag, None));
        assert_eq!(address_of(&hosts, "mx-gateway-0"), "203.0.113.51", "{spelled}");
    }
    for (bad, says) in [
        ("\"private,sideways\"", "unknown address kind \"sideways\""),
        ("[]", "unknown address kind \"\""),
        ("[\"ipv6\", \"ipv6\"]", "address kind ipv6 is listed twice"),
    ] {
        std::fs::write(
            dir.path().join("palisade.toml"),
            format!("[terraform]\nconnect_via = {bad}\n"),
        )
        .unwrap();
        let out = run_in(dir.path(), &["inventory"], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
}
