//! The test lab: real hosts in Linux network namespaces.
//!
//! ```text
//!   controller (198.18.0.1, 2001:2::1)   palisade runs here
//!   outsider   (198.18.0.2, 2001:2::2)   never whitelisted
//!   node i     (198.18.1.10+i, 2001:2::a:i)  own sshd, own netfilter, own /run/palisade
//!          all on one bridge inside a "switch" namespace
//! ```
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
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a lab needs besides its nodes.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub nodes: usize,
    /// Nodes whose sudo asks `core` for a password.
    pub sudo_password: Vec<usize>,
    /// Every remote step on a node is logged with its start and end time,
    /// and held for this long, so tests can see which steps overlapped.
    pub record_steps: Option<Duration>,
    /// Every remote step on these nodes is killed by SIGKILL, so sshd reports
    /// an exit signal instead of an exit status.
    pub kill_steps: Vec<usize>,
    /// Nodes whose iptables is the legacy backend (older CoreOS and Flatcar).
    pub legacy: Vec<usize>,
}

pub struct Node {
    pub index: usize,
    pub name: String,
    pub ns: String,
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
    pub dir: PathBuf,
    /// Whether `iptables` on this node is the legacy backend.
    pub legacy: bool,
    sshd: Option<Child>,
}

pub struct Lab {
    pub id: String,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    pub controller: String,
    pub outsider: String,
    switch: String,
    pub nodes: Vec<Node>,
    /// ed25519 key that every node's `core` accepts.
    pub key: PathBuf,
    /// RSA key that every node's `core` accepts too.
    pub rsa_key: PathBuf,
    /// A key no node accepts.
    pub stranger_key: PathBuf,
    /// A static inventory of the nodes: node-00 is a master, the rest agents.
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
    spec: Spec,
    /// Namespaces made after the lab was built (containers), for teardown.
    extra_ns: Vec<String>,
}

pub const CONTROLLER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const OUTSIDER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const CONTROLLER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const OUTSIDER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

static SEQ: AtomicUsize = AtomicUsize::new(0);
static HOST_SETUP: Once = Once::new();

/// Why a lab cannot be built here.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl Lab {
    /// Builds the lab, or says why it cannot be built on this machine.
    pub fn start(spec: Spec) -> Result<Lab, Unavailable> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Unavailable(
                "the lab needs root (network namespaces, sshd)".into(),
            ));
        }
        for tool in [
            "ip",
            "/usr/sbin/sshd",
            "ssh-keygen",
            "ipset",
            "iptables",
            "sudo",
            "unshare",
        ] {
            let found = if tool.starts_with('/') {
                Path::new(tool).exists()
            } else {
                Command::new("sh")
                    .args(["-c", "command -v \"$1\" >/dev/null", "sh", tool])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !found {
                return Err(Unavailable(format!(
                    "{tool} is missing (apt-get install openssh-server ipset iptables iproute2 sudo)"
                )));
            }
        }
        HOST_SETUP.call_once(host_setup);
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
            nodes: (0..spec.nodes)
                .map(|i| Node {
                    index: i,
                    name: format!("node-{i:02}"),
                    ns: format!("{id}-n{i}"),
                    ip4: node_ip4(i),
                    ip6: node_ip6(i),
                    dir: dir.join(format!("node-{i:02}")),
                    legacy: spec.legacy.contains(&i),
                    sshd: None,
                })
                .collect(),
            id,
            dir,
            _tmp: tmp,
            spec,
            extra_ns: Vec::new(),
        };
        // From here on, Drop cleans up whatever was made.
        lab.build().map_err(Unavailable)?;
        Ok(lab)
    }

    /// For the demo and the benchmark: a lab of `nodes` hosts, or a message
    /// saying why not and exit code 1.
    pub fn start_or_exit(nodes: usize) -> Lab {
        Lab::start(Spec {
            nodes,
            ..Spec::default()
        })
        .unwrap_or_else(|Unavailable(why)| {
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
        if self.nodes.len() > 200 {
            raise_neighbour_limits(self.nodes.len());
        }

        let mut members = vec![
            (
                self.controller.clone(),
                vec![format!("{CONTROLLER4}/15"), format!("{CONTROLLER6}/64")],
            ),
            (
                self.outsider.clone(),
                vec![format!("{OUTSIDER4}/15"), format!("{OUTSIDER6}/64")],
            ),
        ];
        members.extend(self.node_members(0..self.nodes.len()));
        ip_batch(None, &format!("netns add {}\n", self.switch))?;
        ip_batch(
            Some(&self.switch),
            "link set lo up\nlink add br0 type bridge\nlink set br0 up\n",
        )?;
        self.attach(&members, 0)?;
        self.boot(0..self.nodes.len())
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
            let _ = writeln!(sw, "link add p{port} type veth peer name eth0 netns {ns}");
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

    /// Host keys, sshd configs and running sshds for these nodes.
    fn boot(&mut self, range: std::ops::Range<usize>) -> Result<(), String> {
        for i in range.clone() {
            let node = &self.nodes[i];
            for dir in [node.dir.clone(), node.dir.join("run"), node.dir.join("var-lib")] {
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                set_mode(&dir, 0o755);
            }
            keygen(&node.dir.join("host_ed25519"), "ed25519")?;
            self.write_sshd_config(i)?;
        }
        for i in range.clone() {
            self.spawn_sshd(i)?;
        }
        for i in range {
            self.wait_listening(i)?;
        }
        Ok(())
    }

    /// Grows the lab by `count` nodes (the inventory is left as it is).
    pub fn add_nodes(&mut self, count: usize) {
        let first = self.nodes.len();
        for i in first..first + count {
            self.nodes.push(Node {
                index: i,
                name: format!("node-{i:02}"),
                ns: format!("{}-n{i}", self.id),
                ip4: node_ip4(i),
                ip6: node_ip6(i),
                dir: self.dir.join(format!("node-{i:02}")),
                legacy: false,
                sshd: None,
            });
        }
        let members = self.node_members(first..first + count);
        // Switch ports 0 and 1 are the controller's and the outsider's.
        self.attach(&members, first + 2).unwrap_or_else(|e| panic!("{e}"));
        self.boot(first..first + count).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Writes the static inventory with just these nodes.
    pub fn inventory_of(&self, nodes: &[usize]) {
        let mut inv = String::new();
        for n in nodes.iter().map(|&i| &self.nodes[i]) {
            let role = if n.index == 0 { "master" } else { "agent" };
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
    pub fn ssh_reachable(&self, from: &str, to: std::net::IpAddr) -> bool {
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
             HostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {lab}/authorized_keys\nAllowUsers core\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin no\nUsePAM no\nStrictModes no\nUseDNS no\n\
             MaxStartups 1000:30:1000\nMaxSessions 100\nAllowTcpForwarding yes\nLogLevel VERBOSE\n",
            dir = node.dir.display(),
            lab = self.dir.display(),
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
        write(&node.dir.join("sshd_config"), &conf, 0o644)?;
        if self.spec.sudo_password.contains(&i) {
            write(&node.dir.join("sudoers"), "core ALL=(ALL) ALL\n", 0o440)?;
        }
        Ok(())
    }

    fn spawn_sshd(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let log = std::fs::File::create(node.dir.join("sshd.log")).map_err(|e| e.to_string())?;
        let sudoers = node.dir.join("sudoers");
        // `ip netns exec`, unshare and sh all exec: the child's pid is sshd's.
        let child = Command::new("ip")
            .args(["netns", "exec", &node.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount --bind \"$LAB_NODE_DIR/run\" /run/palisade && \
                 mount --bind \"$LAB_NODE_DIR/var-lib\" /var/lib/palisade && \
                 { [ ! -e \"$LAB_SUDOERS\" ] || mount --bind \"$LAB_SUDOERS\" /etc/sudoers.d/palisade-lab; } && \
                 { [ -z \"$LAB_LEGACY\" ] || mount --bind /usr/sbin/xtables-legacy-multi /usr/sbin/xtables-nft-multi; } && \
                 exec /usr/sbin/sshd -D -e -f \"$LAB_SSHD_CONFIG\"",
            )
            .env("LAB_SSHD_CONFIG", node.dir.join("sshd_config"))
            .env("LAB_LEGACY", if node.legacy { "1" } else { "" })
            .env("LAB_NODE_DIR", &node.dir)
            .env("LAB_SUDOERS", &sudoers)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start sshd on {}: {e}", node.name))?;
        self.nodes[i].sshd = Some(child);
        Ok(())
    }

    fn wait_listening(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let log = self.nodes[i].dir.join("sshd.log");
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("Server listening on").count() >= 2 {
                return Ok(());
            }
            let exited = self.nodes[i]
                .sshd
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(format!(
                    "sshd on {} exited ({status}): {text}",
                    self.nodes[i].name
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "sshd on {} did not start listening: {text}",
                    self.nodes[i].name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a node's sshd (connections are then refused).
    pub fn stop_sshd(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a node's sshd again, after `stop_sshd`.
    pub fn start_sshd(&mut self, i: usize) {
        self.stop_sshd(i);
        let log = self.nodes[i].dir.join("sshd.log");
        let _ = std::fs::remove_file(&log);
        self.spawn_sshd(i).unwrap_or_else(|e| panic!("{e}"));
        self.wait_listening(i).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Gives node `i` a Docker-like container: a namespace at 172.17.0.2
    /// behind the node's `docker0` (172.17.0.1), the node's TCP `port`
    /// published to the container's port 80 (DNAT, then FORWARD through
    /// DOCKER-USER), and masquerading for the container's own traffic out.
    /// Returns the container's namespace.
    pub fn add_container(&mut self, i: usize, port: u16) -> String {
        let node = self.nodes[i].ns.clone();
        let c = format!("{}-n{i}c", self.id);
        self.extra_ns.push(c.clone());
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
        let dnat = "172.17.0.2:80".to_string();
        let port = port.to_string();
        for rule in [
            &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"][..],
            &["iptables", "-w", "-N", "DOCKER-USER"],
            &["iptables", "-w", "-A", "DOCKER-USER", "-j", "RETURN"],
            &["iptables", "-w", "-A", "FORWARD", "-j", "DOCKER-USER"],
            &[
                "iptables",
                "-w",
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "DNAT",
                "--to-destination",
                &dnat,
            ],
            &[
                "iptables",
                "-w",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                "172.17.0.0/16",
                "!",
                "-o",
                "docker0",
                "-j",
                "MASQUERADE",
            ],
        ] {
            self.must(&node, rule);
        }
        c
    }

    /// A TCP socket listening on `port` inside namespace `ns`. The kernel
    /// completes handshakes for it, so connecting proves reachability; it
    /// closes when dropped.
    pub fn listen(&self, ns: &str, port: u16) -> std::net::TcpListener {
        in_netns(ns, move || {
            std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind")
        })
        .expect("cannot enter the namespace")
    }

    /// Whether a new TCP connection from namespace `from` to `to:port` is
    /// accepted within a second.
    pub fn tcp_connects(&self, from: &str, to: std::net::IpAddr, port: u16) -> bool {
        in_netns(from, move || {
            let addr = std::net::SocketAddr::new(to, port);
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        })
        .unwrap_or(false)
    }

    /// Switches a node's iptables backend (restarting its sshd), as an OS
    /// update can.
    pub fn set_legacy(&mut self, i: usize, legacy: bool) {
        self.nodes[i].legacy = legacy;
        self.start_sshd(i);
    }

    /// Gives a node a new host key, as reprovisioning does.
    pub fn new_host_key(&mut self, i: usize) {
        let key = self.nodes[i].dir.join("host_ed25519");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(&key, "ed25519").unwrap_or_else(|e| panic!("{e}"));
        self.start_sshd(i);
    }

    /// Runs a command inside a namespace of the lab.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {ns} {argv:?}: {e}"))
    }

    /// Runs a command in a namespace and insists that it succeeds.
    pub fn must(&self, ns: &str, argv: &[&str]) -> String {
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
    pub fn palisade(&self, bin: &Path, args: &[&str]) -> Output {
        self.palisade_with_env(bin, args, &[])
    }

    pub fn palisade_with_env(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.palisade_command(bin, args, env)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run palisade: {e}"))
    }

    /// palisade in the controller namespace, from the lab directory, with
    /// none of the caller's agent, log or passphrase settings.
    fn palisade_command(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.controller])
            .arg(bin)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUST_LOG")
            .env_remove("PALISADE_KEY_PASSPHRASE")
            .envs(env.iter().copied());
        cmd
    }

    /// Makes a new key pair in the lab directory (`ssh-keygen` arguments
    /// after the defaults) and lets every node's `core` log in with it.
    pub fn authorize_new_key(&self, name: &str, keygen_args: &[&str]) -> PathBuf {
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
    pub fn spawn_palisade(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
        self.palisade_command(bin, args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run palisade: {e}"))
    }

    /// The pid of node `i`'s sshd, whose namespaces are the node's.
    pub fn sshd_pid(&self, i: usize) -> String {
        self.nodes[i].sshd.as_ref().expect("sshd runs").id().to_string()
    }

    /// Whether a path exists in the node's own view of the file system (its
    /// private /run/palisade and /var/lib/palisade).
    pub fn node_has(&self, i: usize, path: &str) -> bool {
        Command::new("nsenter")
            .args(["-t", &self.sshd_pid(i), "-m", "--", "test", "-e", path])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs a command as root on the node, in its own network and mount
    /// namespaces (its private /run/palisade and /var/lib/palisade).
    pub fn on_node(&self, i: usize, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.sshd_pid(i), "-m", "-n", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// The processes in a namespace other than the node's sshd.
    pub fn other_processes(&self, i: usize) -> Vec<String> {
        let sshd = self.nodes[i]
            .sshd
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
    pub fn steps(&self, i: usize) -> Vec<(f64, f64)> {
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
    pub fn namespaces(&self) -> Vec<String> {
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

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_sshd(i);
        }
        remove_namespaces(&self.namespaces());
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

fn node_ip4(i: usize) -> Ipv4Addr {
    let n = 10 + i;
    Ipv4Addr::new(198, 18, 1 + (n / 250) as u8, (n % 250) as u8 + 1)
}

fn node_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0xa, i as u16 + 1)
}

/// Once per test process: the `core` user with key-only login and
/// passwordless sudo, and the directories sshd and palisade expect.
fn host_setup() {
    let sh = |script: &str| {
        let out = Command::new("sh").args(["-c", script]).output().expect("sh");
        assert!(
            out.status.success(),
            "lab host setup failed: {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A "*" password field, not useradd's "!": sshd refuses locked accounts.
    sh("id core >/dev/null 2>&1 || useradd --create-home --shell /bin/sh core; usermod -p '*' core");
    sh(
        "mkdir -p /etc/sudoers.d && printf 'core ALL=(ALL) NOPASSWD: ALL\\n' > /etc/sudoers.d/palisade-lab.tmp \
        && chmod 0440 /etc/sudoers.d/palisade-lab.tmp && mv /etc/sudoers.d/palisade-lab.tmp /etc/sudoers.d/palisade-lab",
    );
    sh("mkdir -p /run/sshd /run/palisade /var/lib/palisade && chmod 0755 /run/sshd");
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

/// The neighbour tables are global: a lab of hundreds of hosts on one
/// bridge outgrows the defaults. Only ever raised.
fn raise_neighbour_limits(hosts: usize) {
    let want = (hosts * 4).max(1024);
    for fam in ["ipv4", "ipv6"] {
        for (knob, value) in [
            ("gc_thresh1", want / 4),
            ("gc_thresh2", want / 2),
            ("gc_thresh3", want),
        ] {
            let path = format!("/proc/sys/net/{fam}/neigh/default/{knob}");
            let now: usize = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if now < value {
                let _ = std::fs::write(&path, value.to_string());
            }
        }
    }
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
