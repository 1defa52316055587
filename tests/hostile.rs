//! Hostile and broken input, one table per kind of input (state, static
//! inventory, config, flags), each case with the message it must give; and
//! a property test that runs the binary on random mutations of valid
//! inputs. The contract for every case: exit 1 (or 0 for what is valid),
//! nothing on stdout when refused, the file named, no secret and no raw
//! control character anywhere, no line longer than a screen, and an answer
//! within a second.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

/// The secret every case plants: it must never be printed.
const SECRET: &str = "HUNTER2-do-not-print";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tfstate")
        .join(name)
}

/// Runs palisade in `dir` and checks what holds for every input: an answer
/// within `limit`, exit 0 or 1, no raw control character, no secret, no
/// line longer than 1,000 characters on stderr.
fn run(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 1)), "{args:?}: exit {code:?}: {stderr}");
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text.contains(SECRET),
            "{args:?}: {name} leaks the secret: {text}"
        );
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || invisible(c)),
            "{args:?}: {name} has a raw control or invisible character: {text:?}"
        );
    }
    // Bounded: a message may list what palisade looked for, but never
    // echoes a whole line of the input.
    for line in stderr.lines() {
        assert!(
            line.chars().count() <= 1000,
            "{args:?}: a {}-character line",
            line.chars().count()
        );
    }
    out
}

/// Code points that print as nothing or turn the text around (bidi
/// controls, zero-width and tag characters, the byte order mark): shown
/// only as escapes.
fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00ad | 0x061c | 0x180e | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff | 0xe0000..=0xe007f
    )
}

/// A refusal: exit 1, nothing on stdout, the file and `want` on stderr.
fn refused(dir: &Path, args: &[&str], file: &str, want: &str) {
    let out = run(dir, args, Duration::from_secs(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} was accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?}: stdout {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains(file), "{args:?}: does not name {file}: {stderr}");
    assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
}

fn device(name: &str, attrs: Value) -> Value {
    json!({"mode": "managed", "type": "packet_device", "name": name, "provider": "p",
           "instances": [{"index_key": 0, "attributes": attrs}]})
}

fn attrs(n: u8) -> Value {
    json!({"hostname": format!("node-{n}"), "access_public_ipv4": format!("147.75.0.{n}"),
           "access_private_ipv4": format!("10.0.0.{n}"), "root_password": SECRET,
           "user_data": format!("#cloud-config {SECRET}")})
}

fn v4(resources: Value) -> String {
    json!({"version": 4, "terraform_version": "1.5.0", "serial": 1, "lineage": "x", "resources": resources})
        .to_string()
}

fn with(mut attrs: Value, key: &str, value: Value) -> Value {
    attrs[key] = value;
    attrs
}

#[test]
fn states() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let utf16: Vec<u8> = v4(json!([device("dcos_master", attrs(1))]))
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("utf16", utf16, "is UTF-16LE text, not UTF-8"),
        (
            "latin1",
            b"{\"version\": 4, \"x\": \"caf\xe9\"}".to_vec(),
            "is not UTF-8 text",
        ),
        ("nul", b"{\"version\": 4}\0".to_vec(), "is binary"),
        (
            "dupkey",
            format!(
                "{{\"version\": 4, \"resources\": [], \"resources\": {}}}",
                json!([device("a", attrs(1))])
            )
            .into_bytes(),
            "the key \"resources\" appears twice",
        ),
        (
            "dupattr",
            v4(json!([device("dcos_master", attrs(1))]))
                .replace(
                    "\"hostname\"",
                    "\"access_public_ipv4\": \"147.75.9.9\", \"hostname\"",
                )
                .into_bytes(),
            "the key \"access_public_ipv4\" appears twice",
        ),
        (
            "toml",
            b"[[master]]\naddress = \"192.0.2.10\"\n".to_vec(),
            "this is TOML, not a Terraform JSON document",
        ),
        (
            "noinstances",
            v4(json!([{"mode": "managed", "type": "packet_device", "name": "a"}])).into_bytes(),
            "packet_device.a: has no \"instances\" list",
        ),
        (
            "nullinstances",
            v4(json!([{"mode": "managed", "type": "packet_device", "name": "a", "instances": null}]))
                .into_bytes(),
            "has no \"instances\" list",
        ),
        (
            "objinstances",
            v4(json!([{"mode": "managed", "type": "packet_device", "name": "a", "instances": {}}]))
                .into_bytes(),
            "\"instances\" is an object, not a list",
        ),
        (
            "instance-string",
            v4(json!([{"mode": "managed", "type": "packet_device", "name": "a", "instances": ["x"]}]))
                .into_bytes(),
            "instances[0]: is a string, not an object",
        ),
        (
            "mode-number",
            v4(json!([{"mode": 1, "type": "packet_device", "name": "a", "instances": []}])).into_bytes(),
            "\"mode\" is a number, not a string",
        ),
        (
            "attributes-list",
            v4(json!([{"mode": "managed", "type": "packet_device", "name": "a",
                       "instances": [{"attributes": [attrs(1)]}]}]))
            .into_bytes(),
            "\"attributes\" is a list, not an object",
        ),
        (
            "v3-primary",
            json!({"version": 3, "modules": [{"path": ["root"], "resources": {
                "packet_device.a": {"type": "packet_device", "primary": "x"}}}]})
            .to_string()
            .into_bytes(),
            "packet_device.a: primary: is a string, not an object",
        ),
        (
            "v3-resources",
            json!({"version": 3, "modules": [{"path": ["root"], "resources": []}]})
                .to_string()
                .into_bytes(),
            "modules[0]: \"resources\" is a list, not an object",
        ),
        (
            "v3-deposed",
            json!({"version": 3, "modules": [{"path": ["root"], "resources": {
                "packet_device.a": {"type": "packet_device", "primary": {"attributes": {
                    "access_public_ipv4": "147.75.0.1"}}, "deposed": {}}}}]})
            .to_string()
            .into_bytes(),
            "\"deposed\" is an object, not a list",
        ),
        (
            "show-tainted",
            std::fs::read_to_string(fixture("lifecycle-show.json"))
                .unwrap()
                .replace("\"tainted\": true", "\"tainted\": \"yes\"")
                .into_bytes(),
            "\"tainted\" is a string, not true or false",
        ),
        (
            "address-list",
            v4(json!([device(
                "dcos_master",
                with(attrs(1), "access_public_ipv4", json!(["147.75.0.1"]))
            )]))
            .into_bytes(),
            "field access_public_ipv4 holds a list or object, not an address",
        ),
        (
            "address-object",
            v4(json!([device(
                "dcos_master",
                with(attrs(1), "access_private_ipv4", json!({"a": 1}))
            )]))
            .into_bytes(),
            "field access_private_ipv4 holds a list or object",
        ),
        (
            "v4-in-v6",
            v4(json!([device(
                "dcos_master",
                with(attrs(1), "access_public_ipv6", json!("147.75.9.9"))
            )]))
            .into_bytes(),
            "field access_public_ipv6: \"147.75.9.9\" is not an IPv6 address",
        ),
        (
            "v6-in-v4",
            v4(json!([device(
                "dcos_master",
                with(attrs(1), "access_private_ipv4", json!("2001:db8::1"))
            )]))
            .into_bytes(),
            "field access_private_ipv4: \"2001:db8::1\" is not an IPv4 address",
        ),
        (
            "listed-twice",
            v4(json!([
                device("dcos_master", attrs(1)),
                device("dcos_master", attrs(1))
            ]))
            .into_bytes(),
            "packet_device.dcos_master[0] is listed twice",
        ),
        (
            "huge-address",
            v4(json!([device(
                "dcos_master",
                with(attrs(1), "access_public_ipv4", json!("9".repeat(10_000)))
            )]))
            .into_bytes(),
            "is not an IP address",
        ),
        (
            "loopback",
            // Loopback in state is no machine's own address: passed over.
            v4(json!([device(
                "dcos_master",
                with(attrs(1), "access_public_ipv4", json!("127.0.0.1"))
            )]))
            .into_bytes(),
            "no public IPv4 address",
        ),
    ];
    for (name, content, want) in cases {
        let path = d.join(format!("{name}.tfstate"));
        std::fs::write(&path, &content).unwrap();
        let file = path.to_str().unwrap();
        refused(d, &["inventory", "--state", file], file, want);
    }

    // Devices, directories, an empty path and a sparse file beyond the cap:
    // refused before a byte is read.
    refused(
        d,
        &["inventory", "--state", "/dev/zero"],
        "/dev/zero",
        "is a character device, not a file",
    );
    refused(
        d,
        &["inventory", "--state", "/dev/urandom"],
        "/dev/urandom",
        "is a character device",
    );
    refused(d, &["inventory", "--state", "/"], "/", "is a directory");
    let big = d.join("big.tfstate");
    std::fs::File::create(&big).unwrap().set_len(300 << 20).unwrap();
    refused(
        d,
        &["inventory", "--state", big.to_str().unwrap()],
        "big.tfstate",
        "is larger than 128 MiB",
    );

    // What is valid stays valid: a UTF-8 byte order mark, an IPv4-mapped
    // address in an IPv4 field (read as the IPv4 address it is).
    let bom = d.join("bom.tfstate");
    let mut content = b"\xef\xbb\xbf".to_vec();
    content.extend(v4(json!([device("dcos_master", attrs(1))])).into_bytes());
    std::fs::write(&bom, content).unwrap();
    let out = run(
        d,
        &["inventory", "--json", "--state", bom.to_str().unwrap()],
        Duration::from_secs(1),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mapped = d.join("mapped.tfstate");
    std::fs::write(
        &mapped,
        v4(json!([device(
            "dcos_master",
            with(attrs(1), "access_private_ipv4", json!("::ffff:10.100.0.1"))
        )])),
    )
    .unwrap();
    let out = run(
        d,
        &["inventory", "--json", "--state", mapped.to_str().unwrap()],
        Duration::from_secs(1),
    );
    let hosts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        hosts["hosts"][0]["ipv4"],
        json!(["10.100.0.1", "147.75.0.1"]),
        "{hosts}"
    );
    assert_eq!(hosts["hosts"][0]["ipv6"], json!([]), "{hosts}");
}

#[test]
fn static_inventories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let show_one_line =
        serde_json::from_str::<Value>(&std::fs::read_to_string(fixture("show.json")).unwrap())
            .unwrap()
            .to_string()
            .replace("S3CRET-root-password-do-not-print", SECRET);
    let long = "a".repeat(254);
    let cases: Vec<(&str, String, &str)> = vec![
        ("show", show_one_line, "this is JSON, not a TOML inventory"),
        (
            "secret-key",
            format!("[[master]]\naddress = \"147.75.0.1\"\nroot_password = \"{SECRET}\"\n"),
            "line 3, column 1: unknown field `root_password`",
        ),
        (
            "secret-key-broken",
            format!("[[master]]\naddress = \"147.75.0.1\"\nroot_password \"{SECRET}\"\n"),
            "line 3, column",
        ),
        (
            "long-line",
            format!("[[master]]\naddress = \"147.75.0.1\" {}\n", "x".repeat(200_000)),
            "line 2, column",
        ),
        (
            "dup-name",
            "[[master]]\nname = \"a\"\naddress = \"147.75.0.1\"\n[[agent]]\nname = \"a\"\naddress = \"147.75.0.2\"\n"
                .into(),
            "two hosts are named \"a\"",
        ),
        (
            "long-name",
            format!("[[master]]\nname = \"{long}\"\naddress = \"147.75.0.1\"\n"),
            "longer than 253 bytes",
        ),
        (
            "blank-name",
            "[[master]]\nname = \"a b\"\naddress = \"147.75.0.1\"\n".into(),
            "it holds blanks",
        ),
        (
            "huge-address",
            format!("[[master]]\naddress = \"{}\"\n", "1".repeat(10_000)),
            "is not an IP address",
        ),
        (
            "escape-name",
            "[[master]]\nname = \"evil\\u001b]0;pwned\\u0007\"\naddress = \"147.75.0.1\"\n".into(),
            "it holds control characters",
        ),
        (
            "loopback",
            "[[master]]\naddress = \"127.0.0.1\"\n".into(),
            "is a loopback address",
        ),
        (
            "this-network",
            "[[master]]\naddress = \"0.1.2.3\"\n".into(),
            "in 0.0.0.0/8",
        ),
        (
            "reserved",
            "[[master]]\naddress = \"240.0.0.1\"\n".into(),
            "in 240.0.0.0/4",
        ),
        (
            "mapped-loopback",
            "[[master]]\naddress = \"::ffff:127.0.0.1\"\n".into(),
            "is a loopback address",
        ),
    ];
    for (name, content, want) in cases {
        let path = d.join(format!("{name}.toml"));
        std::fs::write(&path, &content).unwrap();
        let file = path.to_str().unwrap();
        refused(d, &["inventory", "--inventory", file], file, want);
    }
    refused(
        d,
        &["inventory", "--inventory", "/dev/zero"],
        "/dev/zero",
        "is a character device",
    );
}

#[test]
fn configs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let state = d.join("terraform.tfstate");
    std::fs::write(&state, v4(json!([device("dcos_master", attrs(1))]))).unwrap();
    let show_one_line =
        serde_json::from_str::<Value>(&std::fs::read_to_string(fixture("show.json")).unwrap())
            .unwrap()
            .to_string()
            .replace("S3CRET-root-password-do-not-print", SECRET);
    let cases: Vec<(&str, String, &str)> = vec![
        ("show", show_one_line, "this is JSON, not palisade's TOML config"),
        ("empty-state", "state = \"\"\n".into(), "state: the path is empty"),
        (
            "empty-key",
            "[ssh]\nkey = \"\"\n".into(),
            "ssh.key: the path is empty",
        ),
        (
            "password",
            format!("[ssh]\npassword = \"{SECRET}\"\n"),
            "line 2, column 1: unknown field `password`",
        ),
        (
            "long",
            format!("state = \"x\" {}\n", "y".repeat(100_000)),
            "line 1, column",
        ),
        (
            "user",
            "[ssh]\nuser = \"root;reboot\"\n".into(),
            "ssh.user: \"root;reboot\" is not a user name",
        ),
        ("port", "[ssh]\nport = 0\n".into(), "ssh.port"),
    ];
    for (name, content, want) in cases {
        let path = d.join(format!("{name}.toml"));
        std::fs::write(&path, &content).unwrap();
        let file = path.to_str().unwrap();
        refused(
            d,
            &["inventory", "--config", file, "--state", state.to_str().unwrap()],
            file,
            want,
        );
    }
    refused(
        d,
        &["inventory", "--config", "/dev/zero"],
        "/dev/zero",
        "is a character device",
    );
}

#[test]
fn flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inventory = d.join("hosts.toml");
    std::fs::write(&inventory, "[[master]]\naddress = \"192.0.2.10\"\n").unwrap();
    let inv = inventory.to_str().unwrap();
    let key = d.join("key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let key = key.to_str().unwrap();
    // Each is refused before any node is contacted: exit 1 within a second
    // (a connection to the fixture's address would take longer, or fail
    // with exit 2).
    for (args, want) in [
        (vec!["ping", "--jump", "core@bastion:22:33"], "two ports"),
        (vec!["ping", "--jump", "core@bastion:0"], "port 0 is no port"),
        (
            vec!["ping", "--jump", "core@[bastion]:22"],
            "only an IPv6 address goes in brackets",
        ),
        (
            vec!["ping", "--jump", "core@h;reboot"],
            "neither an IP address nor a DNS name",
        ),
        (vec!["ping", "--port", "0"], "--port"),
        (vec!["ping", "--forks", "0"], "must be at least 1"),
        (
            vec!["ping", "--user", "root;reboot"],
            "--user: \"root;reboot\" is not a user name",
        ),
        (
            vec!["ping", "--key", "/dev/zero"],
            "/dev/zero: is a character device",
        ),
        (
            vec!["ping", "--key", key, "--known-hosts", "/dev/zero"],
            "is a character device",
        ),
        (vec!["plan", "--resolver", "8.8.8.8/8"], "has host bits set"),
        (vec!["plan", "--allow", "0.0.0.0/0"], "admits every address"),
    ] {
        let mut all = args.clone();
        all.extend(["--inventory", inv]);
        let out = run(d, &all, Duration::from_secs(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(stderr.contains(want), "{all:?}: want {want:?} in {stderr}");
    }
}

/// Mutations of a valid input: bytes flipped, inserted (control
/// characters, quotes, brackets, the secret's neighbours) and cut.
fn mutate(
    mut bytes: Vec<u8>,
    edits: &[(prop::sample::Index, u8, u8)],
    cut: Option<prop::sample::Index>,
) -> Vec<u8> {
    const INSERTS: &[u8] = b"\x1b\r\n\0\"{}[]=,:.\\ \x7f\xff";
    for (at, kind, byte) in edits {
        if bytes.is_empty() {
            break;
        }
        let i = at.index(bytes.len());
        match kind % 3 {
            0 => bytes[i] = *byte,
            1 => bytes.insert(i, INSERTS[*byte as usize % INSERTS.len()]),
            _ => {
                bytes.remove(i);
            }
        }
    }
    if let Some(cut) = cut {
        let end = cut.index(bytes.len() + 1);
        bytes.truncate(end);
    }
    bytes
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let state = v4(json!([
        device("dcos_master", attrs(1)),
        device(
            "dcos_agent",
            with(attrs(2), "hostname", json!("evil\u{1b}]0;x\u{7}"))
        ),
    ]));
    vec![
        ("--state", state.into_bytes()),
        (
            "--state",
            std::fs::read_to_string(fixture("show.json"))
                .unwrap()
                .replace("S3CRET-root-password-do-not-print", SECRET)
                .into_bytes(),
        ),
        (
            "--state",
            std::fs::read_to_string(fixture("v3-2016.tfstate"))
                .unwrap()
                .replace("S3CRET-root-password-do-not-print", SECRET)
                .into_bytes(),
        ),
        (
            "--inventory",
            format!(
                "[[master]]\nname = \"m\"\naddress = \"147.75.0.1\"\naddresses = [\"10.0.0.1\"]\nroot_password = \"{SECRET}\"\n"
            )
            .into_bytes(),
        ),
        (
            "--config",
            format!("state = \"terraform.tfstate\"\n[ssh]\nuser = \"core\"\npassword = \"{SECRET}\"\n[whitelist]\nallow = [\"203.0.113.7\"]\n")
                .into_bytes(),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a mutation makes of a state, an inventory or a config:
    /// exit 0 or 1 within a second, no secret, no raw control character,
    /// no overlong line (all checked by `run`).
    #[test]
    fn mutated_inputs_are_read_or_refused_cleanly(
        which in 0usize..5,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 0..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let seeds = seeds();
        let (flag, seed) = &seeds[which];
        let bytes = mutate(seed.clone(), &edits, cut);
        let path = dir.path().join("input");
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        let state = dir.path().join("terraform.tfstate");
        std::fs::write(&state, v4(json!([device("dcos_master", attrs(1))]))).unwrap();
        let file = path.to_str().unwrap();
        let args: Vec<&str> = match *flag {
            "--config" => vec!["inventory", "--config", file],
            flag => vec!["inventory", flag, file],
        };
        run(dir.path(), &args, Duration::from_secs(1));
    }

    /// Random bytes, as any of the three.
    #[test]
    fn random_bytes_are_refused_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..256), flag in 0usize..3) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, &bytes).unwrap();
        let flag = ["--state", "--inventory", "--config"][flag];
        run(dir.path(), &["inventory", flag, path.to_str().unwrap()], Duration::from_secs(1));
    }

    /// Whatever a config names, a value Terraform marks sensitive (state v4
    /// `sensitive_attributes`, show -json `sensitive_values`) never reaches
    /// stdout or stderr: not as an address, a name, a tag, nor inside a
    /// refusal. The marked value is random text, an address or a name.
    #[test]
    fn values_terraform_marks_sensitive_are_never_printed(
        value in prop_oneof![
            "[a-zA-Z0-9 ._:/-]{6,40}",
            (1u8..=254, 1u8..=254).prop_map(|(a, b)| format!("147.75.{a}.{b}")),
            (1u8..=254).prop_map(|a| format!("2604:1380::{a:x}7")),
            "[a-z]{6,12}".prop_map(|n| format!("node-{n}")),
        ],
        field in prop_oneof![Just("access_public_ipv4"), Just("access_private_ipv4"), Just("hostname"), Just("tags"), Just("extra")],
        show_json in any::<bool>(),
        nested in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut attrs = attrs(1);
        let planted = if field == "tags" { json!([format!("role:{value}")]) } else if nested { json!([{"address": value}]) } else { json!(value) };
        attrs[field] = planted.clone();
        let state = if show_json {
            let mut marks = json!({});
            marks[field] = if field == "tags" || nested { json!([true]) } else { json!(true) };
            json!({"format_version": "1.0", "values": {"root_module": {"resources": [{
                "address": "packet_device.dcos_master[0]", "mode": "managed", "type": "packet_device",
                "name": "dcos_master", "index": 0, "values": attrs, "sensitive_values": marks}]}}})
        } else {
            let mut path = vec![json!({"type": "get_attr", "value": field})];
            if field == "tags" || nested {
                path.push(json!({"type": "index", "value": {"value": 0, "type": "number"}}));
            }
            json!({"version": 4, "terraform_version": "1.5.0", "serial": 1, "lineage": "x", "resources": [{
                "mode": "managed", "type": "packet_device", "name": "dcos_master", "provider": "p",
                "instances": [{"index_key": 0, "attributes": attrs, "sensitive_attributes": [path]}]}]})
        };
        std::fs::write(dir.path().join("terraform.tfstate"), state.to_string()).unwrap();
        // A config that reads the marked field everywhere it can.
        let read = if nested { format!("{field}[*].address") } else { field.to_owned() };
        std::fs::write(
            dir.path().join("palisade.toml"),
            format!("[terraform.types.packet_device]\nlike = \"packet_device\"\naddresses = [\"{read}\"]\nname = [\"{read}\", \"hostname\"]\ntags = [\"{read}\"]\n"),
        ).unwrap();
        for args in [&["inventory"][..], &["inventory", "--json"][..], &["inventory", "--role-tag", "role"][..]] {
            let out = run(dir.path(), args, Duration::from_secs(1));
            let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            prop_assert!(!all.contains(&value), "{args:?} printed the sensitive {field} {value:?}: {all}");
        }
    }
}
