//! The test lab: real hosts in Linux network namespaces.
//!
//! ```text
//!   controller (198.18.0.1, 2001:2::1)   palisade runs here
//!   outsider   (198.18.0.2, 2001:2::2)   never whitelisted
//!   node i     (198.18.1.10+i, 2001:2::a:i)  own sshd, own netfilter, own /run/palisade
//!          all on one bridge inside a "switch" namespace
//! ```
//!
//! With `Spec::rtt`, the controller reaches the bridge through a delay line
//! (two TAP devices and a relay in this process, see [`DelayLine`]) instead
//! of its veth, so everything it sends or receives crosses an added round
//! trip time, as from a laptop to a datacenter.
//!
//! Nothing touches the host's own interfaces or firewall: the bridge lives in
//! a namespace of its own and every veth is created straight into its
//! namespaces. Each node runs `/usr/sbin/sshd` in a private mount namespace
//! where `/run/palisade` and `/var/lib/palisade` are directories of its own
//! (bind mounts from the lab directory), so what palisade leaves on one node
//! is invisible to the others, and survives a restart of that node's sshd as
//! it would on a real disk. Every namespace is named
//! `plab<pid>x<seq>-…`; `Drop` kills every process in them by pid and
//! deletes them by name, and a new lab first sweeps up labs whose test
//! process died without cleaning up.
//!
//! Shared by the lab tests and the demo (`examples/demo.rs`).

#![allow(dead_code)] // each user of the harness uses a part of it

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a lab needs besides its nodes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Spec {
    pub(crate) nodes: usize,
    /// Nodes whose sudo asks `core` for a password.
    pub(crate) sudo_password: Vec<usize>,
    /// Every remote step on a node is logged with its start and end time,
    /// and held for this long, so tests can see which steps overlapped.
    pub(crate) record_steps: Option<Duration>,
    /// Every remote step on these nodes is killed by SIGKILL, so sshd reports
    /// an exit signal instead of an exit status.
    pub(crate) kill_steps: Vec<usize>,
    /// Nodes whose iptables is the legacy backend (older CoreOS and Flatcar).
    pub(crate) legacy: Vec<usize>,
    /// Nodes that boot systemd (systemd-nspawn) instead of running a bare sshd.
    pub(crate) systemd: Vec<usize>,
    /// Every node's processes in a process group of their own, out of the
    /// terminal's reach: a lab the demo keeps must outlive the terminal
    /// session (Ctrl-C or a hangup there) that started it.
    pub(crate) detach: bool,
    /// A round trip time added between the controller and everything else
    /// (None: the controller is cabled straight to the switch). This kernel
    /// has no netem, so the lab builds a delay line in user space (see
    /// [`DelayLine`]); it lives in the process that built the lab, so a lab
    /// that is kept ([`Lab::keep`]) loses it when that process exits.
    pub(crate) rtt: Option<Duration>,
}

pub(crate) struct Node {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) ns: String,
    pub(crate) ip4: Ipv4Addr,
    pub(crate) ip6: Ipv6Addr,
    pub(crate) dir: PathBuf,
    /// Whether `iptables` on this node is the legacy backend.
    pub(crate) legacy: bool,
    /// Whether this node boots systemd (in systemd-nspawn) rather than
    /// running a bare sshd.
    pub(crate) systemd: bool,
    /// A plain node's sshd, or a systemd node's systemd-nspawn.
    proc: Option<Child>,
    /// A systemd node's PID 1, as the host sees it.
    init: Option<u32>,
}

impl Node {
    /// The node's additions to /etc: the upper layer of a plain node's /etc
    /// overlay, or the /etc of a systemd node's root overlay.
    fn etc(&self) -> PathBuf {
        if self.systemd {
            self.dir.join("upper/etc")
        } else {
            self.dir.join("etc")
        }
    }

    fn new(lab_id: &str, lab_dir: &Path, i: usize, spec: &Spec) -> Node {
        Node {
            index: i,
            name: format!("node-{i:02}"),
            ns: format!("{lab_id}-n{i}"),
            ip4: node_ip4(i),
            ip6: node_ip6(i),
            dir: lab_dir.join(format!("node-{i:02}")),
            legacy: spec.legacy.contains(&i),
            systemd: spec.systemd.contains(&i),
            proc: None,
            init: None,
        }
    }
}

pub(crate) struct Lab {
    pub(crate) id: String,
    pub(crate) dir: PathBuf,
    /// The lab directory, deleted with the lab unless it is kept.
    _tmp: Option<tempfile::TempDir>,
    pub(crate) controller: String,
    pub(crate) outsider: String,
    switch: String,
    pub(crate) nodes: Vec<Node>,
    /// ed25519 key that every node's `core` accepts.
    pub(crate) key: PathBuf,
    /// RSA key that every node's `core` accepts too.
    pub(crate) rsa_key: PathBuf,
    /// A key no node accepts.
    pub(crate) stranger_key: PathBuf,
    /// A static inventory of the nodes: node-00 is a master, the rest agents.
    pub(crate) inventory: PathBuf,
    pub(crate) known_hosts: PathBuf,
    spec: Spec,
    /// Namespaces made after the lab was built (containers), for teardown.
    extra_ns: Vec<String>,
    /// Left running on purpose ([`Lab::keep`]): Drop leaves it alone.
    kept: bool,
    /// The relay between the controller and the switch, with `Spec::rtt`.
    delay: Option<DelayLine>,
    /// The tmpfs mounts the lab made (plain nodes' /run/palisade).
    tmpfs: Vec<PathBuf>,
}

/// The stages a fresh apply goes through on every host, in order, as its
/// `--json` timings name them: what the lab checks and the bench reports.
pub(crate) const FRESH_APPLY_STAGES: &[&str] = &[
    "connect",
    "kex",
    "auth",
    "observe",
    "apply",
    "fresh_connection",
    "confirm",
    "total",
];

pub(crate) const CONTROLLER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub(crate) const OUTSIDER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub(crate) const CONTROLLER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub(crate) const OUTSIDER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Why a lab cannot be built here.
#[derive(Debug)]
pub(crate) struct Unavailable(pub String);

/// What a lab test needs of this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Network namespaces, sshd, netfilter tools, sudo: root.
    Plain,
    /// All of that, and systemd-nspawn to boot systemd nodes.
    Systemd,
}

/// Why lab tests that need `needs` cannot run on this machine, or None.
pub(crate) fn unavailable(needs: Needs) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the lab needs root (network namespaces, sshd)".into());
    }
    let mut tools = vec![
        "ip",
        "/usr/sbin/sshd",
        "ssh-keygen",
        "ipset",
        "iptables",
        "sudo",
        "unshare",
        "nsenter",
        "flock",
    ];
    if needs == Needs::Systemd {
        tools.extend(["systemd-nspawn", "/lib/systemd/systemd"]);
    }
    for tool in tools {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            Command::new("sh")
                .args(["-c", "command -v \"$1\" >/dev/null", "sh", tool])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !found {
            return Some(format!(
                "{tool} is missing (scripts/lab-deps installs what the lab needs)"
            ));
        }
    }
    None
}

impl Lab {
    /// Builds the lab, or says why it cannot be built on this machine.
    pub(crate) fn start(spec: Spec) -> Result<Lab, Unavailable> {
        let needs = if spec.systemd.is_empty() {
            Needs::Plain
        } else {
            Needs::Systemd
        };
        if let Some(why) = unavailable(needs) {
            return Err(Unavailable(why));
        }
        sweep_stale_labs();

        let id = format!(
            "plab{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{id}-"))
            .tempdir()
            .map_err(|e| Unavailable(format!("tempdir: {e}")))?;
        let dir = tmp.path().to_owned();
        // core reads authorized_keys and writes step logs under here.
        set_mode(&dir, 0o755);
        let mut lab = Lab {
            controller: format!("{id}-ctl"),
            outsider: format!("{id}-out"),
            switch: format!("{id}-sw"),
            key: dir.join("id_ed25519"),
            rsa_key: dir.join("id_rsa"),
            stranger_key: dir.join("id_stranger"),
            inventory: dir.join("hosts.toml"),
            known_hosts: dir.join("known_hosts"),
            nodes: (0..spec.nodes).map(|i| Node::new(&id, &dir, i, &spec)).collect(),
            id,
            dir,
            _tmp: Some(tmp),
            spec,
            extra_ns: Vec::new(),
            kept: false,
            delay: None,
            tmpfs: Vec::new(),
        };
        // From here on, Drop cleans up whatever was made.
        lab.build().map_err(Unavailable)?;
        Ok(lab)
    }

    /// For the demo and the benchmark: the lab `spec` asks for, or a message
    /// saying why not and exit code 1.
    pub(crate) fn start_or_exit(spec: Spec) -> Lab {
        Lab::start(spec).unwrap_or_else(|Unavailable(why)| {
            eprintln!("cannot build the lab: {why}");
            std::process::exit(1)
        })
    }

    fn build(&mut self) -> Result<(), String> {
        keygen(&self.key, "ed25519")?;
        keygen(&self.rsa_key, "rsa")?;
        keygen(&self.stranger_key, "ed25519")?;
        let mut authorized = String::new();
        for key in [&self.key, &self.rsa_key] {
            authorized += &read(&key.with_extension("pub"))?;
        }
        write(&self.dir.join("authorized_keys"), &authorized, 0o644)?;
        self.write_inventory()?;

        let controller = (
            self.controller.clone(),
            vec![format!("{CONTROLLER4}/15"), format!("{CONTROLLER6}/64")],
        );
        let mut members = vec![(
            self.outsider.clone(),
            vec![format!("{OUTSIDER4}/15"), format!("{OUTSIDER6}/64")],
        )];
        members.extend(self.node_members(0..self.nodes.len()));
        ip_batch(None, &format!("netns add {}\n", self.switch))?;
        ip_batch(
            Some(&self.switch),
            "link set lo up\nlink add br0 type bridge\nlink set br0 up\n",
        )?;
        // Switch port 0 is the controller's, by veth or by delay line.
        let first_port = match self.spec.rtt {
            None => {
                members.insert(0, controller);
                0
            }
            Some(rtt) => {
                self.delay = Some(self.delay_line(&controller, rtt)?);
                1
            }
        };
        self.attach(&members, first_port)?;
        self.pin_neighbours(0..self.nodes.len())?;
        self.boot(0..self.nodes.len())
    }

    /// In a lab of more than [`PINNED_ABOVE`] nodes, writes the controller's
    /// neighbour entry for each of these nodes, and each node's for the
    /// controller, as permanent ones. The kernel's neighbour tables are one
    /// for all namespaces, and their limit (`gc_thresh3`, 1024 by default)
    /// can be changed only outside the lab's throwaway namespace, which the
    /// lab never does; a thousand nodes talking to the controller at once
    /// need about two thousand entries, and a table past its limit drops
    /// packets. Permanent entries do not count against the limit. A node's
    /// MAC is fixed by its switch port, so the entries stay right across a
    /// reboot (which writes its own again).
    fn pin_neighbours(&self, range: std::ops::Range<usize>) -> Result<(), String> {
        if self.nodes.len() <= PINNED_ABOVE {
            return Ok(());
        }
        let mut controller = String::new();
        for i in range.clone() {
            let node = &self.nodes[i];
            let mac = port_mac(i + 2);
            let _ = writeln!(
                controller,
                "neigh replace {} lladdr {mac} dev eth0 nud permanent",
                node.ip4
            );
            let _ = writeln!(
                controller,
                "neigh replace {} lladdr {mac} dev eth0 nud permanent",
                node.ip6
            );
        }
        ip_batch(Some(&self.controller), &controller)?;
        let mac = port_mac(0);
        let own = format!(
            "neigh replace {CONTROLLER4} lladdr {mac} dev eth0 nud permanent\n\
             neigh replace {CONTROLLER6} lladdr {mac} dev eth0 nud permanent\n"
        );
        for i in range {
            ip_batch(Some(&self.nodes[i].ns), &own)?;
        }
        Ok(())
    }

    /// Cables the controller's namespace to switch port 0 through a delay
    /// line: a TAP device `eth0` in the controller's namespace, with its
    /// addresses and the MAC its veth would have had, a TAP device `p0` on
    /// the bridge, and the relay between them. Each TAP is made inside the
    /// namespace it belongs to (the kernel ties a TAP to the namespace of
    /// the process that creates it), so nothing is ever moved across.
    fn delay_line(&self, (ns, addrs): &(String, Vec<String>), rtt: Duration) -> Result<DelayLine, String> {
        ip_batch(None, &format!("netns add {ns}\n"))?;
        let inside = open_tap(ns, "eth0")?;
        let outside = open_tap(&self.switch, "p0")?;
        ip_batch(Some(&self.switch), "link set p0 master br0\nlink set p0 up\n")?;
        let mut b = format!(
            "link set lo up\nlink set eth0 address {}\nlink set eth0 up\n",
            port_mac(0)
        );
        for a in addrs {
            let extra = if a.contains(':') { " nodad" } else { "" };
            let _ = writeln!(b, "addr add {a} dev eth0{extra}");
        }
        ip_batch(Some(ns), &b)?;
        DelayLine::start(inside, outside, rtt / 2)
    }

    fn node_members(&self, range: std::ops::Range<usize>) -> Vec<(String, Vec<String>)> {
        self.nodes[range]
            .iter()
            .map(|n| {
                (
                    n.ns.clone(),
                    vec![format!("{}/15", n.ip4), format!("{}/64", n.ip6)],
                )
            })
            .collect()
    }

    /// Namespaces for `members`, each cabled to the switch (ports numbered
    /// from `first_port`) with its addresses.
    fn attach(&self, members: &[(String, Vec<String>)], first_port: usize) -> Result<(), String> {
        let batch: String = members
            .iter()
            .map(|(ns, _)| format!("netns add {ns}\n"))
            .collect();
        ip_batch(None, &batch)?;
        let mut sw = String::new();
        for (k, (ns, _)) in members.iter().enumerate() {
            let port = first_port + k;
            // A fixed MAC per port: a rebooted node comes back with the same
            // NIC, so its neighbours' ARP and ND caches stay right.
            let _ = writeln!(
                sw,
                "link add p{port} type veth peer name eth0 address {} netns {ns}",
                port_mac(port)
            );
            let _ = writeln!(sw, "link set p{port} master br0");
            let _ = writeln!(sw, "link set p{port} up");
        }
        ip_batch(Some(&self.switch), &sw)?;
        for (ns, addrs) in members {
            let mut b = String::from("link set lo up\nlink set eth0 up\n");
            for a in addrs {
                let extra = if a.contains(':') { " nodad" } else { "" };
                let _ = writeln!(b, "addr add {a} dev eth0{extra}");
            }
            ip_batch(Some(ns), &b)?;
        }
        Ok(())
    }

    /// Host keys, sshd configs and running nodes for these indices.
    fn boot(&mut self, range: std::ops::Range<usize>) -> Result<(), String> {
        for i in range.clone() {
            let node = &self.nodes[i];
            if !node.dir.join("host_ed25519").exists() {
                for dir in [
                    node.dir.clone(),
                    node.dir.join("run"),
                    node.etc().join("sudoers.d"),
                    node.dir.join("var-lib"),
                ] {
                    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                    set_mode(&dir, 0o755);
                }
                // A real node's /run is a tmpfs: so is a plain node's
                // /run/palisade (mounted here, in the lab's own mount
                // namespace, so that it outlives an sshd restart; unmounted
                // when the lab goes). On the lab's disk, every file a change
                // makes there would cost the nodes journalled writes a real
                // node never makes.
                if !node.systemd {
                    let run = node.dir.join("run");
                    let mounted = Command::new("mount")
                        .args(["-t", "tmpfs", "-o", "mode=0755", "lab-node-run"])
                        .arg(&run)
                        .status()
                        .map_err(|e| format!("mount: {e}"))?;
                    if !mounted.success() {
                        return Err(format!("cannot mount a tmpfs on {}", run.display()));
                    }
                    self.tmpfs.push(run);
                }
                keygen(&node.dir.join("host_ed25519"), "ed25519")?;
                self.write_sshd_config(i)?;
                self.write_etc(i)?;
            }
        }
        for i in range.clone() {
            if self.nodes[i].systemd {
                self.spawn_systemd(i)?;
            } else {
                self.spawn_sshd(i)?;
            }
        }
        for i in range {
            self.wait_listening(i)?;
        }
        Ok(())
    }

    /// What a node's /etc adds to the host's: the `core` user (key login,
    /// passwordless sudo unless the spec says otherwise). It is an overlay
    /// on the node only, so the lab never adds a user to the host; on a
    /// systemd node it is also the node's sshd config, hostname, machine id
    /// and boot target.
    fn write_etc(&self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let etc = node.etc();
        let (uid, gid) = free_ids()?;
        let others = |path: &str| -> Result<String, String> {
            Ok(read(Path::new(path))?
                .lines()
                .filter(|l| !l.starts_with("core:"))
                .map(|l| format!("{l}\n"))
                .collect())
        };
        let home = self.dir.display();
        let passwd = others("/etc/passwd")? + &format!("core:x:{uid}:{gid}:palisade lab:{home}:/bin/sh\n");
        write(&etc.join("passwd"), &passwd, 0o644)?;
        // A "*" password field, not useradd's "!": sshd refuses locked accounts.
        write(
            &etc.join("shadow"),
            &(others("/etc/shadow")? + "core:*:20000:0:99999:7:::\n"),
            0o640,
        )?;
        write(
            &etc.join("group"),
            &(others("/etc/group")? + &format!("core:x:{gid}:\n")),
            0o644,
        )?;
        let sudo = if self.spec.sudo_password.contains(&i) {
            "core ALL=(ALL) ALL\n"
        } else {
            "core ALL=(ALL) NOPASSWD: ALL\n"
        };
        write(&etc.join("sudoers.d/palisade-lab"), sudo, 0o440)?;
        if !node.systemd {
            return Ok(());
        }
        let hosts = read(Path::new("/etc/hosts")).unwrap_or_default() + &format!("127.0.1.1 {}\n", node.ns);
        write(&etc.join("hosts"), &hosts, 0o644)?;
        let id: String = read(Path::new("/proc/sys/kernel/random/uuid"))?
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect();
        write(&etc.join("machine-id"), &format!("{id}\n"), 0o444)?;
        std::fs::create_dir_all(etc.join("ssh")).map_err(|e| e.to_string())?;
        std::fs::copy(node.dir.join("sshd_config"), etc.join("ssh/sshd_config"))
            .map_err(|e| e.to_string())?;
        let units = etc.join("systemd/system");
        std::fs::create_dir_all(&units).map_err(|e| e.to_string())?;
        // Boot only what a node needs (basic.target, which palisade.service
        // is wanted by, the network targets a real node's network manager
        // pulls in, which order sshd after palisade.service, and sshd), not
        // every service the host has enabled.
        write(
            &units.join("palisade-lab.target"),
            "[Unit]\nDescription=palisade lab node\n\
             Requires=basic.target ssh.service\nWants=network-pre.target network.target\n\
             After=basic.target ssh.service network.target\nAllowIsolate=yes\n",
            0o644,
        )?;
        let _ = std::fs::remove_file(units.join("default.target"));
        std::os::unix::fs::symlink("palisade-lab.target", units.join("default.target"))
            .map_err(|e| e.to_string())
    }
    /// Grows the lab by `count` nodes (the inventory is left as it is).
    pub(crate) fn add_nodes(&mut self, count: usize) {
        let first = self.nodes.len();
        for i in first..first + count {
            let node = Node::new(&self.id, &self.dir, i, &Spec::default());
            self.nodes.push(node);
        }
        let members = self.node_members(first..first + count);
        // Switch ports 0 and 1 are the controller's and the outsider's.
        self.attach(&members, first + 2).unwrap_or_else(|e| panic!("{e}"));
        // A lab that grows past PINNED_ABOVE pins the nodes it had too.
        let pinned = if first > PINNED_ABOVE { first } else { 0 };
        self.pin_neighbours(pinned..first + count)
            .unwrap_or_else(|e| panic!("{e}"));
        self.boot(first..first + count).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Writes the static inventory with just these nodes: node-00 a master,
    /// the others agents.
    pub(crate) fn inventory_of(&self, nodes: &[usize]) {
        let roles: Vec<(usize, &str)> = nodes
            .iter()
            .map(|&i| (i, if i == 0 { "master" } else { "agent" }))
            .collect();
        self.inventory_roles(&roles);
    }

    /// Writes the static inventory with these nodes in these roles.
    pub(crate) fn inventory_roles(&self, nodes: &[(usize, &str)]) {
        let mut inv = String::new();
        for (n, role) in nodes.iter().map(|&(i, role)| (&self.nodes[i], role)) {
            let _ = writeln!(
                inv,
                "[[{role}]]\nname = \"{}\"\naddress = \"{}\"\naddresses = [\"{}\"]\n",
                n.name, n.ip4, n.ip6
            );
        }
        write(&self.inventory, &inv, 0o644).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Whether a new TCP connection from namespace `from` to `to` gets an
    /// SSH banner within a second: real packets through the node's netfilter.
    pub(crate) fn ssh_reachable(&self, from: &str, to: std::net::IpAddr) -> bool {
        in_netns(from, move || {
            use std::io::Read;
            let addr = std::net::SocketAddr::new(to, 22);
            let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                return false;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut banner = [0u8; 8];
            stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-"
        })
        .unwrap_or(false)
    }

    fn write_inventory(&self) -> Result<(), String> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.inventory_of(&all);
        Ok(())
    }

    fn write_sshd_config(&self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let mut conf = format!(
            "ListenAddress 0.0.0.0\nListenAddress ::\nPort 22\n\
             HostKey {dir}/host_ed25519\n{pidfile}\
             AuthorizedKeysFile {lab}/authorized_keys\nAllowUsers core\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin no\nUsePAM no\nStrictModes no\nUseDNS no\n\
             MaxStartups 1000:30:1000\nMaxSessions 100\nAllowTcpForwarding yes\nLogLevel VERBOSE\n",
            dir = node.dir.display(),
            lab = self.dir.display(),
            // A systemd node's sshd keeps its pid in its own /run.
            pidfile = if node.systemd {
                String::new()
            } else {
                format!("PidFile {}/sshd.pid\n", node.dir.display())
            },
        );
        if self.spec.kill_steps.contains(&i) {
            // The shell sshd runs the command with kills itself: sshd then
            // reports an exit signal, not a status.
            conf += "ForceCommand kill -9 $$\n";
        } else if let Some(hold) = self.spec.record_steps {
            let wrapper = node.dir.join("step-wrapper");
            let log = node.dir.join("steps.log");
            write(&log, "", 0o666)?;
            let script = format!(
                "#!/bin/sh\nprintf 'start %s\\n' \"$(date +%s.%N)\" >> '{log}'\nsleep {hold}\n\
                 sh -c \"$SSH_ORIGINAL_COMMAND\"\nrc=$?\nprintf 'end %s\\n' \"$(date +%s.%N)\" >> '{log}'\nexit $rc\n",
                log = log.display(),
                hold = hold.as_secs_f32(),
            );
            write(&wrapper, &script, 0o755)?;
            conf += &format!("ForceCommand {}\n", wrapper.display());
        }
        write(&node.dir.join("sshd_config"), &conf, 0o644)
    }

    /// A plain node: sshd in a private mount namespace where /etc is the
    /// host's with the node's additions over it, /run starts empty (so no
    /// systemd of the host's is in sight), and /run/palisade and
    /// /var/lib/palisade are the node's own and outlive an sshd restart.
    fn spawn_sshd(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let log = std::fs::File::create(node.dir.join("sshd.log")).map_err(|e| e.to_string())?;
        // `ip netns exec`, unshare and sh all exec: the child's pid is sshd's.
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "set -e; n=$LAB_NODE_DIR; mkdir -p \"$n/etc-work\" \"$n/var-lib-up/palisade\" \"$n/var-lib-work\"; \
                 mount -t overlay lab-etc -o \"lowerdir=/etc,upperdir=$n/etc,workdir=$n/etc-work\" /etc; \
                 mount -t overlay lab-var-lib -o \"lowerdir=/var/lib,upperdir=$n/var-lib-up,workdir=$n/var-lib-work\" /var/lib; \
                 mount --bind \"$n/var-lib\" /var/lib/palisade; \
                 mount -t tmpfs -o mode=0755 lab-run /run; \
                 mkdir -p /run/sshd /run/palisade; \
                 mount --bind \"$n/run\" /run/palisade; \
                 [ -z \"$LAB_LEGACY\" ] || mount --bind /usr/sbin/xtables-legacy-multi /usr/sbin/xtables-nft-multi; \
                 exec /usr/sbin/sshd -D -e -f \"$n/sshd_config\"",
            )
            .env("LAB_LEGACY", if node.legacy { "1" } else { "" })
            .env("LAB_NODE_DIR", &node.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if self.spec.detach {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start sshd on {}: {e}", node.name))?;
        self.nodes[i].proc = Some(child);
        Ok(())
    }

    /// A systemd node: systemd as PID 1 in `systemd-nspawn`, on an overlay of
    /// the host's root (the node's own upper directory keeps /etc and /var
    /// across reboots; /run starts empty at every boot), in the node's
    /// network namespace. sshd runs as the node's `ssh.service`. The lab
    /// directory is bound in at the same path (keys, authorized_keys).
    fn spawn_systemd(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        for d in ["root", "work"] {
            std::fs::create_dir_all(node.dir.join(d)).map_err(|e| e.to_string())?;
        }
        let log = std::fs::File::create(node.dir.join("console.log")).map_err(|e| e.to_string())?;
        // unshare, sh and exec: the child's pid is systemd-nspawn's, and the
        // overlay mount goes away with it.
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "set -e; n=$LAB_NODE_DIR; \
                 mount -t overlay lab-root -o \"lowerdir=/,upperdir=$n/upper,workdir=$n/work\" \"$n/root\"; \
                 exec systemd-nspawn --quiet --boot --directory=\"$n/root\" --machine=\"$LAB_NS\" \
                   --network-namespace-path=\"/run/netns/$LAB_NS\" --register=no --keep-unit --link-journal=no \
                   --capability=CAP_NET_ADMIN,CAP_NET_RAW --console=read-only --bind=\"$LAB_DIR\"",
            )
            .env("LAB_NODE_DIR", &node.dir)
            .env("LAB_NS", &node.ns)
            .env("LAB_DIR", &self.dir)
            .env("SYSTEMD_NSPAWN_TMPFS_TMP", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if self.spec.detach {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start systemd-nspawn for {}: {e}", node.name))?;
        self.nodes[i].proc = Some(child);
        Ok(())
    }

    /// Waits until the node's sshd answers with its banner (on a systemd
    /// node: until it has booted that far), or its process has died.
    fn wait_listening(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let (log, secs) = if node.systemd {
            (node.dir.join("console.log"), 120)
        } else {
            (node.dir.join("sshd.log"), 15)
        };
        let deadline = Instant::now() + Duration::from_secs(secs);
        let ns = node.ns.clone();
        loop {
            if self.ssh_reachable(&ns, IpAddr::V4(Ipv4Addr::LOCALHOST)) {
                if self.nodes[i].systemd {
                    let init = container_init(&ns).ok_or_else(|| format!("{ns}: no PID 1 found"))?;
                    self.nodes[i].init = Some(init);
                }
                return Ok(());
            }
            let exited = self.nodes[i]
                .proc
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            let text = || tail(&std::fs::read_to_string(&log).unwrap_or_default(), 40);
            if let Some(status) = exited {
                return Err(format!("{} exited ({status}): {}", self.nodes[i].name, text()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "sshd on {} did not answer within {secs}s: {}",
                    self.nodes[i].name,
                    text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops a node's sshd (connections are then refused).
    pub(crate) fn stop_sshd(&mut self, i: usize) {
        if self.nodes[i].systemd {
            let out = self.on_node(i, &["systemctl", "stop", "ssh.service"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            return;
        }
        if let Some(mut child) = self.nodes[i].proc.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a node's sshd again, after `stop_sshd`.
    pub(crate) fn start_sshd(&mut self, i: usize) {
        self.stop_sshd(i);
        if self.nodes[i].systemd {
            let out = self.on_node(i, &["systemctl", "start", "ssh.service"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        } else {
            let log = self.nodes[i].dir.join("sshd.log");
            let _ = std::fs::remove_file(&log);
            self.spawn_sshd(i).unwrap_or_else(|e| panic!("{e}"));
        }
        self.wait_listening(i).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Shuts a systemd node down cleanly (SIGRTMIN+4 to its PID 1, as
    /// `systemctl poweroff` does) and boots it again on the same disk: /etc
    /// and /var stay, /run and the kernel's state (netfilter, sets) start
    /// empty, as on a real reboot.
    pub(crate) fn reboot(&mut self, i: usize) {
        self.power_off(i, libc::SIGRTMIN() + 4);
        self.power_on(i);
    }

    /// Pulls the plug on a systemd node (SIGKILL to its PID 1: nothing runs
    /// on the way down) and boots it again on the same disk.
    pub(crate) fn crash(&mut self, i: usize) {
        self.power_off(i, libc::SIGKILL);
        self.power_on(i);
    }

    fn power_off(&mut self, i: usize, signal: i32) {
        assert!(self.nodes[i].systemd, "only a systemd node can reboot");
        if let Some(init) = self.nodes[i].init.take() {
            // SAFETY: kill(2) on the PID 1 of a container this lab booted.
            unsafe { libc::kill(init as i32, signal) };
        }
        let Some(mut child) = self.nodes[i].proc.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                remove_namespaces(std::slice::from_ref(&self.nodes[i].ns));
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }

    /// A fresh network namespace (the kernel's state a reboot empties),
    /// cabled to the same switch port, and the node booted in it.
    fn power_on(&mut self, i: usize) {
        // Deleting a namespace frees its devices later, in the background;
        // deleting the switch's end of the cable frees both ends now.
        let port = i + 2;
        let _ = ip_batch(Some(&self.switch), &format!("link del p{port}\n"));
        remove_namespaces(std::slice::from_ref(&self.nodes[i].ns));
        let members = self.node_members(i..i + 1);
        // Switch ports 0 and 1 are the controller's and the outsider's.
        self.attach(&members, port).unwrap_or_else(|e| panic!("{e}"));
        self.pin_neighbours(i..i + 1).unwrap_or_else(|e| panic!("{e}"));
        self.boot(i..i + 1).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Gives node `i` a Docker-like container: a namespace at 172.17.0.2
    /// behind the node's `docker0` (172.17.0.1), the node's TCP `port`
    /// published to the container's port 80 (DNAT, then FORWARD through
    /// DOCKER-USER), and masquerading for the container's own traffic out.
    /// Its DOCKER-USER handling is Docker's own: an existing chain is kept
    /// as it is (a RETURN added when missing), and FORWARD jumps to it
    /// first. Called again after a reboot, it is Docker starting again.
    /// Returns the container's namespace.
    pub(crate) fn add_container(&mut self, i: usize, port: u16) -> String {
        let node = self.nodes[i].ns.clone();
        let c = format!("{}-n{i}c", self.id);
        if self.extra_ns.contains(&c) {
            remove_namespaces(std::slice::from_ref(&c));
        } else {
            self.extra_ns.push(c.clone());
        }
        ip_batch(None, &format!("netns add {c}\n")).unwrap_or_else(|e| panic!("{e}"));
        ip_batch(
            Some(&node),
            &format!("link add docker0 type veth peer name eth0 netns {c}\naddr add 172.17.0.1/16 dev docker0\nlink set docker0 up\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        ip_batch(
            Some(&c),
            "link set lo up\naddr add 172.17.0.2/16 dev eth0\nlink set eth0 up\nroute add default via 172.17.0.1\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let docker = format!(
            "set -e\n\
             sysctl -q -w net.ipv4.ip_forward=1\n\
             iptables -w -n -L DOCKER-USER >/dev/null 2>&1 || iptables -w -N DOCKER-USER\n\
             iptables -w -C DOCKER-USER -j RETURN 2>/dev/null || iptables -w -A DOCKER-USER -j RETURN\n\
             iptables -w -D FORWARD -j DOCKER-USER 2>/dev/null || true\n\
             iptables -w -I FORWARD -j DOCKER-USER\n\
             iptables -w -t nat -A PREROUTING -p tcp --dport {port} -j DNAT --to-destination 172.17.0.2:80\n\
             iptables -w -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n"
        );
        self.must(&node, &["sh", "-c", &docker]);
        c
    }

    /// A TCP socket listening on `port` inside namespace `ns`. The kernel
    /// completes handshakes for it, so connecting proves reachability; it
    /// closes when dropped.
    pub(crate) fn listen(&self, ns: &str, port: u16) -> std::net::TcpListener {
        // `::` takes IPv4 too (v4-mapped), as most servers do.
        in_netns(ns, move || {
            std::net::TcpListener::bind(("::", port)).expect("bind")
        })
        .expect("cannot enter the namespace")
    }

    /// A UDP socket bound to `port` (IPv4 and IPv6) inside namespace `ns`.
    pub(crate) fn udp_listen(&self, ns: &str, port: u16) -> std::net::UdpSocket {
        in_netns(ns, move || {
            let socket = std::net::UdpSocket::bind(("::", port)).expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            socket
        })
        .expect("cannot enter the namespace")
    }

    /// Whether a datagram from namespace `from` to `to:port` reaches
    /// `socket` (bound there by `udp_listen`) within a second.
    pub(crate) fn udp_delivered(
        &self,
        from: &str,
        to: IpAddr,
        port: u16,
        socket: &std::net::UdpSocket,
    ) -> bool {
        let sent = in_netns(from, move || {
            let local: IpAddr = if to.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            };
            let s = std::net::UdpSocket::bind((local, 0)).ok()?;
            s.send_to(b"palisade-lab", (to, port)).ok()
        })
        .flatten()
        .is_some();
        let mut buf = [0u8; 64];
        sent && matches!(socket.recv_from(&mut buf), Ok((12, _)))
    }

    /// The round trip time from namespace `from` to `to`, as the median of
    /// five TCP handshakes with its sshd (a SYN out and the SYN-ACK back is
    /// one round trip), or None when one does not complete within a second.
    /// It needs no tool of its own, so the benchmark can check its delay
    /// line on any machine the lab runs on.
    pub(crate) fn round_trip(&self, from: &str, to: IpAddr) -> Option<Duration> {
        in_netns(from, move || {
            let addr = std::net::SocketAddr::new(to, 22);
            let mut times = Vec::new();
            for _ in 0..5 {
                let start = Instant::now();
                let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
                times.push(start.elapsed());
                drop(stream);
            }
            times.sort();
            Some(times[times.len() / 2])
        })
        .flatten()
    }

    /// Whether a new TCP connection from namespace `from` to `to:port` is
    /// accepted within a second.
    pub(crate) fn tcp_connects(&self, from: &str, to: std::net::IpAddr, port: u16) -> bool {
        in_netns(from, move || {
            let addr = std::net::SocketAddr::new(to, port);
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        })
        .unwrap_or(false)
    }

    /// Switches a node's iptables backend (restarting its sshd), as an OS
    /// update can.
    pub(crate) fn set_legacy(&mut self, i: usize, legacy: bool) {
        self.nodes[i].legacy = legacy;
        self.start_sshd(i);
    }

    /// Gives plain node `i` the lab's sshd_config with `extra` after it, and
    /// restarts its sshd. sshd keeps a keyword's first value, so `extra`
    /// overrides a keyword the lab's config sets only in a `Match all`
    /// block at its end.
    pub(crate) fn sshd_extra(&mut self, i: usize, extra: &str) {
        self.write_sshd_config(i).unwrap_or_else(|e| panic!("{e}"));
        let path = self.nodes[i].dir.join("sshd_config");
        let conf = read(&path).unwrap_or_else(|e| panic!("{e}")) + extra;
        write(&path, &conf, 0o644).unwrap_or_else(|e| panic!("{e}"));
        self.start_sshd(i);
    }

    /// Gives a node a new host key, as reprovisioning does.
    pub(crate) fn new_host_key(&mut self, i: usize) {
        let key = self.nodes[i].dir.join("host_ed25519");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(&key, "ed25519").unwrap_or_else(|e| panic!("{e}"));
        self.start_sshd(i);
    }

    /// Runs a command inside a namespace of the lab.
    pub(crate) fn exec(&self, ns: &str, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {ns} {argv:?}: {e}"))
    }

    /// Runs a command in a namespace and insists that it succeeds.
    pub(crate) fn must(&self, ns: &str, argv: &[&str]) -> String {
        let out = self.exec(ns, argv);
        assert!(
            out.status.success(),
            "{ns}: {argv:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs palisade (the binary at `bin`) inside the controller namespace,
    /// from the lab directory.
    pub(crate) fn palisade(&self, bin: &Path, args: &[&str]) -> Output {
        self.palisade_with_env(bin, args, &[])
    }

    pub(crate) fn palisade_with_env(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.palisade_to(bin, args, env, Stdio::piped())
    }

    /// [`Lab::palisade_with_env`], its stdout going to `stdout` (a closed
    /// pipe, /dev/full) rather than captured.
    pub(crate) fn palisade_to(
        &self,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdio,
    ) -> Output {
        self.palisade_command(bin, args, env)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("cannot run palisade: {e}"))
    }

    /// palisade in the controller namespace, from the lab directory, with
    /// none of the caller's agent, log, passphrase or colour settings.
    fn palisade_command(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        // Only a palisade built with the lab-hooks feature reads its test
        // knobs: without it, a test that sets one would test nothing.
        if let Some((knob, _)) = env.iter().find(|(k, _)| k.starts_with("PALISADE_TEST_"))
            && !cfg!(feature = "lab-hooks")
        {
            panic!(
                "this test sets {knob}, which only a palisade built with the lab-hooks feature reads: \
                 cargo test --features lab-hooks --test lab"
            );
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.controller])
            .arg(bin)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUST_LOG")
            .env_remove("PALISADE_KEY_PASSPHRASE")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            // No ssh_config of the machine's user: HOME is the lab's own
            // (a test that wants one writes it there, or sets HOME).
            .env("HOME", &self.dir)
            .envs(env.iter().copied());
        cmd
    }

    /// Makes a new key pair in the lab directory (`ssh-keygen` arguments
    /// after the defaults) and lets every node's `core` log in with it.
    pub(crate) fn authorize_new_key(&self, name: &str, keygen_args: &[&str]) -> PathBuf {
        let path = self.dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", "palisade-lab"])
            .args(keygen_args)
            .arg("-f")
            .arg(&path)
            .output()
            .expect("ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = read(&path.with_extension("pub")).unwrap_or_else(|e| panic!("{e}"));
        let authorized = self.dir.join("authorized_keys");
        let all = read(&authorized).unwrap_or_else(|e| panic!("{e}")) + &public;
        write(&authorized, &all, 0o644).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// Starts palisade in the controller namespace without waiting for it.
    pub(crate) fn spawn_palisade(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
        self.palisade_command(bin, args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run palisade: {e}"))
    }

    /// The pid of node `i`'s sshd, whose namespaces are the node's.
    pub(crate) fn sshd_pid(&self, i: usize) -> String {
        let node = &self.nodes[i];
        match (node.systemd, node.init, &node.proc) {
            (true, Some(init), _) => init.to_string(),
            (false, _, Some(sshd)) => sshd.id().to_string(),
            _ => panic!("{} is not running", node.name),
        }
    }

    /// Whether a path exists in the node's own view of the file system (its
    /// private /run/palisade and /var/lib/palisade).
    pub(crate) fn node_has(&self, i: usize, path: &str) -> bool {
        Command::new("nsenter")
            .args(["-t", &self.sshd_pid(i), "-m", "--", "test", "-e", path])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs a command as root on the node, in its own network and mount
    /// namespaces (its private /run/palisade and /var/lib/palisade).
    pub(crate) fn on_node(&self, i: usize, argv: &[&str]) -> Output {
        // A systemd node's own systemctl talks to its PID 1 only from
        // inside its pid namespace.
        let spaces: &[&str] = if self.nodes[i].systemd {
            &["-m", "-n", "-p", "-u", "-i"]
        } else {
            &["-m", "-n"]
        };
        Command::new("nsenter")
            .args(["-t", &self.sshd_pid(i)])
            .args(spaces)
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// What a finished palisade run must not leave running on node `i`: on
    /// a plain node, any process in its namespace but its sshd; on a systemd
    /// node, a loaded palisade-rollback timer or service.
    pub(crate) fn other_processes(&self, i: usize) -> Vec<String> {
        if self.nodes[i].systemd {
            let out = self.on_node(
                i,
                &[
                    "systemctl",
                    "list-units",
                    "--all",
                    "--plain",
                    "--no-legend",
                    "palisade-rollback*",
                ],
            );
            return String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .filter(|l| !l.trim().is_empty())
                .collect();
        }
        let sshd = self.nodes[i]
            .proc
            .as_ref()
            .map(|c| c.id().to_string())
            .unwrap_or_default();
        let out = Command::new("ip")
            .args(["netns", "pids", &self.nodes[i].ns])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|p| *p != sshd)
            .map(|p| {
                let cmd = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
                format!("{p}: {}", cmd.replace('\0', " "))
            })
            .collect()
    }

    /// The start and end times of the remote steps on a node (with
    /// `Spec::record_steps`), in seconds since the epoch.
    pub(crate) fn steps(&self, i: usize) -> Vec<(f64, f64)> {
        let text = std::fs::read_to_string(self.nodes[i].dir.join("steps.log")).unwrap_or_default();
        let times = |tag: &str| -> Vec<f64> {
            text.lines()
                .filter_map(|l| l.strip_prefix(tag))
                .filter_map(|t| t.trim().parse().ok())
                .collect()
        };
        times("start ").into_iter().zip(times("end ")).collect()
    }
}

impl Lab {
    /// Every namespace this lab made, by name.
    pub(crate) fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.nodes.iter().map(|n| n.ns.clone()).collect();
        names.extend(self.extra_ns.iter().cloned());
        names.extend([
            self.controller.clone(),
            self.outsider.clone(),
            self.switch.clone(),
        ]);
        names
    }
}

/// A lab left running by [`Lab::keep`]: what is needed to use it, and to
/// take it down.
pub(crate) struct Kept {
    pub(crate) dir: PathBuf,
    pub(crate) controller: String,
    pub(crate) outsider: String,
    pub(crate) namespaces: Vec<String>,
    /// The processes the lab started (sshd, systemd-nspawn), as the host
    /// sees them.
    pub(crate) pids: Vec<u32>,
}

impl Lab {
    /// Leaves the lab running: its processes, namespaces and directory stay
    /// when this handle goes away. Whoever keeps it takes it down (the demo:
    /// `scripts/demo --down`).
    pub(crate) fn keep(mut self) -> Kept {
        let pids = self
            .nodes
            .iter()
            .filter_map(|n| n.proc.as_ref().map(Child::id))
            .collect();
        let kept = Kept {
            dir: self._tmp.take().map_or_else(|| self.dir.clone(), |t| t.keep()),
            controller: self.controller.clone(),
            outsider: self.outsider.clone(),
            namespaces: self.namespaces(),
            pids,
        };
        self.kept = true;
        kept
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].systemd {
                self.power_off(i, libc::SIGKILL);
            } else if let Some(mut sshd) = self.nodes[i].proc.take() {
                let _ = sshd.kill();
                let _ = sshd.wait();
            }
        }
        // Its threads end and its TAP devices go with their descriptors.
        drop(self.delay.take());
        remove_namespaces(&self.namespaces());
        for dir in self.tmpfs.drain(..) {
            if let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) {
                // SAFETY: a NUL-terminated path we mounted ourselves.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Runs `f` on a thread inside the network namespace `ns`: sockets it makes
/// live there. None when the namespace cannot be entered.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let netns = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&netns).ok()?;
        // SAFETY: setns on this thread only, with a namespace fd we opened.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        Some(f())
    })
    .join()
    .ok()
    .flatten()
}

/// Opens a TAP device named `name` (no packet-information header: every
/// read and write is one Ethernet frame) inside the network namespace `ns`.
/// The device lives as long as the returned descriptor.
fn open_tap(ns: &str, name: &str) -> Result<std::fs::File, String> {
    let name = name.to_owned();
    let what = format!("TAP {name} in {ns}");
    in_netns(ns, move || -> Result<std::fs::File, String> {
        use std::os::fd::AsRawFd;
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| format!("/dev/net/tun: {e}"))?;
        // SAFETY: an all-zero ifreq is a valid value (empty name, no flags).
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= req.ifr_name.len() {
            return Err(format!("interface name {name} is too long"));
        }
        for (slot, byte) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which outlives the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
            return Err(format!("TUNSETIFF {name}: {}", std::io::Error::last_os_error()));
        }
        Ok(tun)
    })
    .ok_or_else(|| format!("{what}: cannot enter the namespace"))?
}

/// A wire that is `hold` long each way, between two TAP devices: every
/// frame read from one is written to the other `hold` after it was read.
///
/// The relay is four threads of the process that built the lab (per
/// direction, a reader that stamps each frame with its release time and a
/// writer that waits for it), not a process of its own: the harness is a
/// module compiled into each of its users, with no binary of its own to
/// start, and threads holding the two descriptors need no pid to track,
/// cannot outlive the lab's process, and take the TAP devices with them
/// when they end. The delay is the same for every frame, so a FIFO per
/// direction, in the order the frames were read, releases them in time and
/// in order. The FIFO is bounded (`DelayLine::QUEUE` frames, about 12 MiB
/// of full frames per direction, far above what an 80 ms wire carries in
/// the lab): when it is full the reader waits, the TAP's own queue fills,
/// and the kernel drops there, as a congested link would.
pub(crate) struct DelayLine {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl DelayLine {
    /// Frames held at once in one direction.
    const QUEUE: usize = 8192;
    /// How often a reader with nothing to read looks at the stop flag.
    const POLL_MS: libc::c_int = 50;

    fn start(a: std::fs::File, b: std::fs::File, hold: Duration) -> Result<DelayLine, String> {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let (a, b) = (Arc::new(a), Arc::new(b));
        let mut line = DelayLine {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        for (from, to, name) in [(&a, &b, "delay-out"), (&b, &a, "delay-in")] {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Vec<u8>)>(Self::QUEUE);
            let (from, to) = (Arc::clone(from), Arc::clone(to));
            let stop = Arc::clone(&line.stop);
            let reader = std::thread::Builder::new()
                .name(format!("{name}-read"))
                .spawn(move || Self::read(&from, &tx, hold, &stop));
            // Until both threads of a direction run, the line is not whole:
            // Drop stops whatever started.
            line.threads
                .push(reader.map_err(|e| format!("delay line thread: {e}"))?);
            let stop = Arc::clone(&line.stop);
            let writer = std::thread::Builder::new()
                .name(format!("{name}-write"))
                .spawn(move || Self::write(&to, &rx, &stop));
            line.threads
                .push(writer.map_err(|e| format!("delay line thread: {e}"))?);
        }
        Ok(line)
    }

    /// Puts the calling relay thread ahead of everything the lab runs
    /// (real-time FIFO scheduling, at a low real-time priority): the lab
    /// keeps every core busy (a hundred sshd, the controller), and a relay
    /// thread waiting there for a core would stretch the delay with the
    /// load, where a wire's delay does not move. Each wakeup does a frame's
    /// worth of work, so this takes no core from the lab for long. Best
    /// effort: where it is refused (no CAP_SYS_NICE, a cgroup without
    /// real-time time), the line still works, only less steady under load.
    fn before_the_load() {
        let param = libc::sched_param { sched_priority: 10 };
        // SAFETY: sets this thread's own policy, from a valid sched_param.
        let _ = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    }

    /// Reads frames from `tap` into the FIFO, each due `hold` from now,
    /// until stopped (or the writer is gone).
    fn read(
        tap: &std::fs::File,
        fifo: &std::sync::mpsc::SyncSender<(Instant, Vec<u8>)>,
        hold: Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let mut tap: &std::fs::File = tap;
        Self::before_the_load();
        // Larger than any frame: without IFF_VNET_HDR the kernel hands a
        // TAP no frame above its MTU.
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd: tap.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polls one descriptor we hold, for a bounded time.
            let ready = unsafe { libc::poll(&mut pfd, 1, Self::POLL_MS) };
            if ready <= 0 {
                continue;
            }
            match tap.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if fifo.send((Instant::now() + hold, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Writes each frame from the FIFO to `tap` once it is due, until
    /// stopped (or the reader is gone and the FIFO empty).
    fn write(
        tap: &std::fs::File,
        fifo: &std::sync::mpsc::Receiver<(Instant, Vec<u8>)>,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        use std::io::Write;
        let mut tap: &std::fs::File = tap;
        Self::before_the_load();
        let wait = Duration::from_millis(Self::POLL_MS as u64);
        loop {
            let (due, frame) = match fifo.recv_timeout(wait) {
                Ok(next) => next,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            };
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            // A frame the kernel refuses (the device going down as the lab
            // is taken apart) is lost, as on a wire.
            let _ = tap.write(&frame);
        }
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn node_ip4(i: usize) -> Ipv4Addr {
    let n = 10 + i;
    Ipv4Addr::new(198, 18, 1 + (n / 250) as u8, (n % 250) as u8 + 1)
}

fn node_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0xa, i as u16 + 1)
}

/// A uid and gid that the host's /etc/passwd and /etc/group do not use,
/// for the nodes' `core` user.
fn free_ids() -> Result<(u32, u32), String> {
    let used = |path: &str| -> Result<Vec<u32>, String> {
        Ok(read(Path::new(path))?
            .lines()
            .filter(|l| !l.starts_with("core:"))
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect())
    };
    let (users, groups) = (used("/etc/passwd")?, used("/etc/group")?);
    (4200..60000)
        .find(|id| !users.contains(id) && !groups.contains(id))
        .map(|id| (id, id))
        .ok_or_else(|| "no free uid for core".to_string())
}

/// The PID 1 of the container whose network namespace is `ns`.
fn container_init(ns: &str) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let want = std::fs::metadata(format!("/run/netns/{ns}")).ok()?.ino();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let nspid: Vec<&str> = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_whitespace()
            .collect();
        let net = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?.ino();
        (nspid.len() == 2 && nspid[1] == "1" && net == want).then_some(pid)
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Labs whose test process is gone (killed before Drop ran).
fn sweep_stale_labs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let mut stale = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix("plab") else {
            continue;
        };
        let pid: u32 = rest.split('x').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if pid != 0 && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            stale.push(name.to_owned());
        }
    }
    if !stale.is_empty() {
        remove_namespaces(&stale);
    }
}

/// Kills every process left in the namespaces, by pid, then deletes them.
fn remove_namespaces(names: &[String]) {
    for _ in 0..3 {
        let mut any = false;
        for ns in names {
            let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
                continue;
            };
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    any = true;
                    // SAFETY: kill(2) on a pid found in our own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if !any {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let batch: String = names.iter().map(|n| format!("netns del {n}\n")).collect();
    let _ = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut stdin) = c.stdin.take() {
                stdin.write_all(batch.as_bytes())?;
            }
            c.wait()
        });
}

fn ip_batch(ns: Option<&str>, batch: &str) -> Result<(), String> {
    use std::io::Write;
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(batch.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip -batch in {ns:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Above this many nodes a lab pins its neighbour entries
/// ([`Lab::pin_neighbours`]).
const PINNED_ABOVE: usize = 200;

/// The MAC of the device cabled to switch port `port`: fixed, so a rebooted
/// node comes back with the same NIC.
fn port_mac(port: usize) -> String {
    format!("02:00:c6:12:{:02x}:{:02x}", port >> 8, port & 0xff)
}

fn keygen(path: &Path, kind: &str) -> Result<(), String> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "palisade-lab", "-f"])
        .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd.output().map_err(|e| format!("ssh-keygen: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    set_mode(path, mode);
    Ok(())
}

fn set_mode(path: &Path, mode: u32) {
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}
