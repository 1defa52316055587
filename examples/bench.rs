//! The benchmark behind `scripts/bench`: palisade against the floor of
//! issue #10, what an operator would otherwise run at raw OpenSSH speed,
//! measured in the same run on the same lab. The machine is shared and
//! noisy, so the rounds are interleaved (one of each command per round),
//! every figure is a median over the rounds, and times are read as ratios
//! to the floor.
//!
//! The floor: OpenSSH's client fanned out with `xargs -P`, curve25519, and
//! the seed's recipe on stdin to `sudo -n sh -s` (an `ipset restore` of a
//! temporary set and a swap, then the three INPUT rules, each added when
//! `iptables -C` does not find it). The old baseline (default key exchange,
//! two `sudo` commands that only read) stays beside it for comparison.
//!
//! Besides time it reports, per command, the controller's CPU time and peak
//! RSS (from `wait4`'s rusage of the command's process tree: for the floor
//! that is every `ssh` and `sh`, for palisade the one process), and the
//! processes each command makes on one node, counted from the node's side:
//! `strace -f -e trace=process` attached to that node's sshd (a plain node's
//! sshd is the root of everything a connection runs there: its
//! per-connection sshd, the login shell, sudo, the script and all it forks,
//! a detached rollback sleeper included), in a separate untimed pass, so the
//! tracing costs no measured time. Every process that forks, execs or exits
//! makes a system call of that class, so the distinct pids in the trace are
//! the processes; the listening sshd itself is not counted.
//!
//! Last, where the CPU goes: one more untimed pass of the floor, a fresh
//! apply and a no-op apply under `perf record` on every CPU (one sample per
//! millisecond of CPU), reported in milliseconds per host by program name.
//! On this lab every CPU is busy for the whole run, so time follows CPU,
//! and this says which process a ratio is made of.
//!
//! With RTT_MS, the controller reaches the nodes through the lab's delay
//! line (`Spec::rtt`: every frame held for half that each way, as netem
//! would, which this kernel lacks), and every row is measured across it:
//! the header gives the added round trip and the one measured by TCP
//! handshakes with node 0 before the first round.
//!
//! Both backends are measured in the same run, against the same floor:
//! each round runs the floor, the old baseline and `ping` (which reads no
//! firewall object, so it is measured once), then a fresh apply, a no-op
//! apply and a verify with `--backend iptables` and with `--backend
//! nftables`, the two backends' turns alternating from round to round so
//! that neither always runs on the machine the other just warmed. After
//! each backend's turn `palisade remove --backend` that backend clears the
//! nodes, so the other never meets its objects (palisade refuses a node
//! whose boot restore the other backend wrote) and every fresh apply
//! starts from nothing. BENCH_BACKENDS (`iptables`, `nftables` or both,
//! comma-separated; both by default) measures one backend only.
//!
//! BENCH_TIMED_ONLY=1 leaves out the two untimed passes (the process count
//! and perf), each of which runs every command once more over the whole
//! fleet: at 1,000 hosts they double the run, and what they measure is per
//! node, the same at any fleet size (a run of 30 hosts gives it).
//!
//! BENCH_EXTRA=N adds N more addresses to the whitelist, half IPv4 and
//! half IPv6, none of which any lab host has (198.19.0.0/16 and
//! 2001:2:0:ff::/64, every other address, so that no two make one range):
//! palisade gets them as `--extra`, the floor's set the IPv4 half (its set
//! has no IPv6). A small lab then carries a large fleet's whitelist, which
//! every node writes, reads back and says: what the whitelist's size costs
//! a node, apart from what the fleet's size costs the machine.
//!
//! Usage: bench PATH-TO-PALISADE [NODES] [RUNS] [RTT_MS]

#[path = "../tests/lab/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{CONTROLLER4, Lab, Spec};

/// One measured command: wall time, and its process tree's CPU and peak RSS.
#[derive(Clone, Copy, Debug)]
struct Run {
    wall: Duration,
    cpu: Duration,
    /// Peak resident set of the largest single process, in KiB.
    max_rss_kib: i64,
    /// The CPU every node spent on it (see [`node_cpu`]).
    node_cpu: Duration,
    /// The CPU the whole machine spent while it ran (see [`machine_busy`]).
    all_cpu: Duration,
}

/// Runs `cmd` (stdout discarded) with `input` on its stdin, and waits for
/// it with `wait4`, which gives the rusage of its whole tree.
fn measure(cmd: &mut Command, input: Option<&[u8]>, what: &str) -> Run {
    let errfile = tempfile::tempfile().expect("temp file");
    cmd.stdout(Stdio::null())
        .stderr(errfile.try_clone().expect("dup"))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let start = Instant::now();
    // Reaped by wait4 below, which std's wait cannot replace: it gives
    // the rusage of the command's whole tree.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input).expect("write stdin");
    }
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which std never waits for after this.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(got, pid, "wait4 on {what}");
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        use std::io::{Read, Seek};
        let mut err = String::new();
        let mut f = errfile;
        let _ = f.rewind();
        let _ = f.read_to_string(&mut err);
        panic!("{what} failed ({status:#x}): {err}");
    }
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Run {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        node_cpu: Duration::ZERO,
        all_cpu: Duration::ZERO,
    }
}

/// The processes a command makes on one node: what `strace` saw under the
/// node's sshd while `work` ran, by program name (`fork` for processes that
/// never exec), with the total.
struct Census {
    total: usize,
    execs: BTreeMap<String, usize>,
}

fn census(lab: &Lab, node: usize, dir: &Path, work: impl FnOnce()) -> Census {
    let sshd = lab.sshd_pid(node);
    let trace = dir.join("census.trace");
    let _ = std::fs::remove_file(&trace);
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=process", "-e", "signal=none", "-o"])
        .arg(&trace)
        .args(["-p", &sshd])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (apt-get install strace)");
    // strace creates its output file once it has attached.
    let until = Instant::now() + Duration::from_secs(10);
    while !trace.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    work();
    // Let the last exits reach the trace, then detach.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signals our own child by its pid.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    let _ = strace.wait();
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    if let Ok(keep) = std::env::var("BENCH_KEEP_TRACES") {
        let n = std::fs::read_dir(&keep).map_or(0, |d| d.count());
        let _ = std::fs::copy(&trace, Path::new(&keep).join(format!("census-{n}.trace")));
    }
    let mut pids = BTreeSet::new();
    // A shell's PATH search fails before an exec succeeds; strace splits a
    // call another process interrupts into `<unfinished ...>` and
    // `<... execve resumed>` lines.
    let mut trying: BTreeMap<&str, String> = BTreeMap::new();
    let mut exec_of: BTreeMap<&str, String> = BTreeMap::new();
    for line in text.lines() {
        // strace pads the pid column: a pid under five digits is followed by
        // more than one space.
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if pid == sshd || pid.parse::<u32>().is_err() {
            continue;
        }
        pids.insert(pid);
        if let Some(path) = rest.strip_prefix("execve(\"") {
            let path = path.split('"').next().unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or(path).to_owned();
            if rest.ends_with("= 0") {
                exec_of.insert(pid, name);
            } else if rest.contains("<unfinished") {
                trying.insert(pid, name);
            }
        } else if rest.starts_with("<... execve resumed>")
            && rest.ends_with("= 0")
            && let Some(name) = trying.remove(pid)
        {
            exec_of.insert(pid, name);
        }
    }
    let mut execs = BTreeMap::new();
    for pid in &pids {
        let name = exec_of.get(pid).cloned().unwrap_or_else(|| "fork".into());
        *execs.entry(name).or_insert(0) += 1;
    }
    Census {
        total: pids.len(),
        execs,
    }
}

/// A running `perf record`: stopped with SIGINT (so that it writes its
/// data), and killed if it is dropped running, whatever went wrong.
struct Recorder(std::process::Child);

impl Recorder {
    /// Stops it: perf writes its data, then dies of the SIGINT it caught.
    fn stop(&mut self) -> Option<()> {
        use std::os::unix::process::ExitStatusExt;
        // SAFETY: signals our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let status = self.0.wait().ok()?;
        (status.success() || status.signal() == Some(libc::SIGINT)).then_some(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Where a command's CPU goes, by program: `perf record` on every CPU (so
/// every process on the machine, the lab's and any other), sampling once
/// per millisecond of CPU time, enabled only while `work` runs; each sample
/// is a millisecond spent by a process of that name (the
/// kernel's work for a process counts as its, and an interrupt's as that of
/// the process it interrupted; an idle CPU counts for nothing). None when
/// `perf` is missing or fails. With BENCH_PERF_KEEP=DIR the recording is
/// kept as `DIR/<label>.perf.data`, for `perf report --comm NAME --sort
/// dso,sym -i ...`: which function of a program the milliseconds are.
fn cpu_by_program(dir: &Path, label: &str, work: impl FnOnce()) -> Option<BTreeMap<String, u64>> {
    let data = dir.join("perf.data");
    let (ctl, ack) = (dir.join("perf.ctl"), dir.join("perf.ack"));
    for fifo in [&ctl, &ack] {
        let _ = std::fs::remove_file(fifo);
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: a NUL-terminated path we own.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return None;
        }
    }
    let control = format!("fifo:{},{}", ctl.display(), ack.display());
    let perf = Command::new("perf")
        .args("record -a -e cpu-clock -c 1000000 --delay=-1 -q -o".split(' '))
        .arg(&data)
        .args(["--control", &control])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut perf = Recorder(perf);
    // perf opens the control fifo (for reading and writing) as it starts,
    // then the ack fifo for writing, and acknowledges each command once
    // done. Neither open here blocks: a perf that dies or never gets that
    // far (an old perf without --control) ends this with None, not a hang.
    let until = Instant::now() + Duration::from_secs(10);
    let mut to = loop {
        use std::os::unix::fs::OpenOptionsExt;
        let open = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ctl);
        match open {
            Ok(file) => break file,
            Err(_) if Instant::now() < until && matches!(perf.0.try_wait(), Ok(None)) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    };
    let mut from = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ack)
            .ok()?
    };
    let mut say = |cmd: &[u8]| -> Option<()> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        to.write_all(cmd).ok()?;
        let mut poll = libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, ours, for the call's length.
        let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
        let mut answer = [0u8; 16];
        (ready == 1 && from.read(&mut answer).ok()? > 0).then_some(())
    };
    say(b"enable\n")?;
    work();
    say(b"disable\n")?;
    perf.stop()?;
    let report = Command::new("perf")
        .args("report --stdio --no-children --sort comm -g none --show-nr-samples -i".split(' '))
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if let Some(keep) = std::env::var_os("BENCH_PERF_KEEP") {
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::rename(&data, Path::new(&keep).join(format!("{name}.perf.data")));
    }
    for file in [&data, &ctl, &ack] {
        let _ = std::fs::remove_file(file);
    }
    // Lines as `    42.83%         10731  sshd`.
    let mut by = BTreeMap::new();
    for line in String::from_utf8_lossy(&report.stdout).lines() {
        let mut words = line.split_whitespace();
        let (Some(pct), Some(n), Some(_)) = (words.next(), words.next(), words.clone().next()) else {
            continue;
        };
        let name = words.collect::<Vec<_>>().join(" ");
        // `swapper` is the idle task: a CPU with nothing to run.
        if let (true, Ok(n), false) = (pct.ends_with('%'), n.parse::<u64>(), name == "swapper") {
            *by.entry(name).or_insert(0) += n;
        }
    }
    Some(by)
}

fn median(mut v: Vec<Run>) -> Run {
    v.sort_by_key(|r| r.wall);
    let mid = v[v.len() / 2];
    let mut cpu: Vec<Duration> = v.iter().map(|r| r.cpu).collect();
    cpu.sort();
    let mut node: Vec<Duration> = v.iter().map(|r| r.node_cpu).collect();
    node.sort();
    let mut all: Vec<Duration> = v.iter().map(|r| r.all_cpu).collect();
    all.sort();
    Run {
        wall: mid.wall,
        cpu: cpu[cpu.len() / 2],
        max_rss_kib: v.iter().map(|r| r.max_rss_kib).max().unwrap_or(0),
        node_cpu: node[node.len() / 2],
        all_cpu: all[all.len() / 2],
    }
}

/// The CPU time the whole machine has spent busy so far (every CPU's user,
/// nice, system, irq and softirq time, from /proc/stat): over a command, it
/// counts what `node_cpu` cannot see (the listening sshds' forks, the
/// kernel's work for the lab's network, connections still ending), and
/// whatever else the shared machine ran meanwhile.
fn machine_busy() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq (steal and guest excluded).
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    Duration::from_millis(busy * 1000 / tick)
}

/// The CPU the nodes have spent on connections so far: the user and
/// system time of every reaped descendant of every node's sshd (its
/// `cutime` and `cstime`), which is everything a connection runs there but
/// a detached rollback sleeper. The difference over a command is what the
/// command cost the nodes: on a small lab their CPU is the bottleneck.
fn node_cpu(lab: &Lab) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut ticks = 0u64;
    for i in 0..lab.nodes.len() {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", lab.sshd_pid(i))).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        for idx in [13, 14] {
            ticks += fields.get(idx).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Duration::from_millis(ticks * 1000 / tick)
}

/// The median over hosts of each stage in a report's `timings`, in the
/// order a run goes through them.
fn stage_medians(json: &[u8]) -> String {
    let report: serde_json::Value = serde_json::from_slice(json).expect("apply --json");
    let mut parts = Vec::new();
    for &stage in harness::FRESH_APPLY_STAGES {
        let mut v: Vec<u64> = report["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["timings"][stage].as_u64())
            .collect();
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        parts.push(format!("{stage} {}", v[v.len() / 2]));
    }
    parts.join(", ")
}

/// The rows measured for each backend, in the order a round runs them.
/// The row of backend `i`'s first command: after the floor, the old
/// baseline and ping.
fn row_of(i: usize) -> usize {
    3 + PER_BACKEND.len() * i
}

const PER_BACKEND: [&str; 3] = [
    "palisade apply, fresh (every host changes)",
    "palisade apply, nothing to do",
    "palisade verify",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: [BENCH_BACKENDS=iptables,nftables] bench PATH-TO-PALISADE [NODES] [RUNS] [RTT_MS]");
        std::process::exit(1);
    };
    let Some(bin) = args.get(1).and_then(|b| std::fs::canonicalize(b).ok()) else {
        usage()
    };
    let nodes: usize = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
        .clamp(1, 1000);
    let runs: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(3).clamp(1, 50);
    // A wrong delay would measure the wrong thing: refused, not defaulted.
    let rtt = match args.get(4).map(|ms| ms.parse::<u64>()) {
        None => None,
        Some(Ok(ms)) if ms <= 10_000 => Some(Duration::from_millis(ms)),
        Some(_) => usage(),
    };
    // The backends to measure: a misspelt name is refused, not skipped, or
    // the run would leave out what it was asked for.
    let backends: Vec<&str> = match std::env::var("BENCH_BACKENDS") {
        Err(_) => vec!["iptables", "nftables"],
        Ok(list) => {
            let mut chosen: Vec<&str> = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let name = match name {
                    "iptables" => "iptables",
                    "nftables" => "nftables",
                    _ => {
                        eprintln!("BENCH_BACKENDS: {name:?} is not iptables or nftables");
                        std::process::exit(1);
                    }
                };
                if !chosen.contains(&name) {
                    chosen.push(name);
                }
            }
            if chosen.is_empty() {
                usage();
            }
            chosen
        }
    };
    let extra = extra_addresses();
    if !extra.is_empty() {
        println!(
            "the whitelist carries {} more addresses than the fleet's (BENCH_EXTRA)",
            extra.len()
        );
    }
    // One connection per node at once, for palisade and OpenSSH alike.
    let forks = nodes.min(200).to_string();
    let lab = Lab::start_or_exit(Spec {
        nodes,
        rtt,
        ..Spec::default()
    });
    // What the delay line really adds, before anything is measured across it.
    let measured_rtt = rtt.map(|_| {
        lab.round_trip(&lab.controller, lab.nodes[0].ip4.into())
            .unwrap_or_else(|| {
                panic!(
                    "no TCP handshake with {} across the delay line",
                    lab.nodes[0].name
                )
            })
    });
    let c = CONTROLLER4.to_string();
    let palisade_cmd = |cmd: &str, backend: Option<&str>| {
        let mut argv = vec![
            cmd,
            "--json",
            "--inventory",
            "hosts.toml",
            "--key",
            "id_ed25519",
            "--forks",
            &forks,
        ];
        // ping and remove take no whitelist flags.
        if matches!(cmd, "apply" | "plan" | "verify") {
            argv.extend(["--allow", &c]);
            for a in &extra {
                argv.extend(["--extra", a]);
            }
        }
        // ping has no --backend (it reads no firewall object): measured once.
        if let Some(backend) = backend {
            argv.extend(["--backend", backend]);
        }
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &lab.controller])
            .arg(&bin)
            .args(&argv)
            .current_dir(&lab.dir)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        command
    };
    let palisade = |cmd: &str, backend: Option<&str>| {
        let what = match backend {
            Some(b) => format!("palisade {cmd} --backend {b}"),
            None => format!("palisade {cmd}"),
        };
        measure(&mut palisade_cmd(cmd, backend), None, &what)
    };
    // Learn host keys once, so every measured run does the same work.
    palisade("ping", None);

    let hosts: String = lab.nodes.iter().map(|n| format!("{}\n", n.ip4)).collect();
    // The floor's whitelist: the controller and every node, as palisade's.
    let mut recipe = String::from(
        "set -e\nipset -exist create floor4 hash:net family inet\nipset -exist restore <<'EOF'\n\
         create floor4-tmp hash:net family inet\nflush floor4-tmp\n",
    );
    recipe += &format!("add floor4-tmp {c}\n");
    for n in &lab.nodes {
        recipe += &format!("add floor4-tmp {}\n", n.ip4);
    }
    for a in extra.iter().filter(|a| !a.contains(':')) {
        recipe += &format!("add floor4-tmp {a}\n");
    }
    recipe += "EOF\nipset swap floor4-tmp floor4\nipset destroy floor4-tmp\n";
    for rule in [
        "-i lo -j ACCEPT",
        "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-m set --match-set floor4 src -j ACCEPT",
    ] {
        recipe += &format!("iptables -w -C INPUT {rule} 2>/dev/null || iptables -w -A INPUT {rule}\n");
    }
    std::fs::write(lab.dir.join("floor.sh"), &recipe).expect("floor.sh");
    let ssh = "ssh -q -i id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=no \
               -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
    // xargs gives its children /dev/null for stdin: each ssh gets the
    // recipe from a file through `sh -c`, which execs it.
    let floor_script = format!(
        "xargs -P {forks} -I{{}} sh -c 'exec {ssh} -o KexAlgorithms=curve25519-sha256 core@$1 \"sudo -n sh -s\" <floor.sh' _ {{}}"
    );
    let baseline_script = format!(
        "xargs -P {forks} -I{{}} {ssh} -n core@{{}} 'sudo -n iptables -w -S INPUT >/dev/null && sudo -n ipset list -n >/dev/null'"
    );
    let fan_out_cmd = |script: &str| {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &lab.controller, "sh", "-c", script])
            .current_dir(&lab.dir);
        command
    };
    let fan_out = |script: &str, what: &str| measure(&mut fan_out_cmd(script), Some(hosts.as_bytes()), what);

    // The rows: three that do not depend on the backend, then three per
    // backend measured, named as before with the backend after the name,
    // so that the iptables rows read as the older figures did.
    let mut names: Vec<String> = [
        "floor: OpenSSH + xargs, curve25519, the recipe",
        "old baseline: OpenSSH + xargs, default kex, reads",
        "palisade ping",
    ]
    .map(String::from)
    .to_vec();
    for b in &backends {
        for row in PER_BACKEND {
            names.push(format!("{row} [{b}]"));
        }
    }
    // Where backend `i`'s three rows start.
    let mut got: Vec<Vec<Run>> = vec![Vec::new(); names.len()];
    for round in 0..runs {
        eprintln!("round {} of {runs}", round + 1);
        let with_nodes = |work: &dyn Fn() -> Run| {
            let before = node_cpu(&lab);
            let busy = machine_busy();
            let mut run = work();
            run.all_cpu = machine_busy().saturating_sub(busy);
            run.node_cpu = node_cpu(&lab).saturating_sub(before);
            run
        };
        got[0].push(with_nodes(&|| fan_out(&floor_script, "the floor")));
        got[1].push(with_nodes(&|| fan_out(&baseline_script, "the old baseline")));
        got[2].push(with_nodes(&|| palisade("ping", None)));
        // The backends take turns: the first one this round goes last the next.
        for k in 0..backends.len() {
            let i = (k + round) % backends.len();
            let b = Some(backends[i]);
            let row = row_of(i);
            got[row].push(with_nodes(&|| palisade("apply", b)));
            got[row + 1].push(with_nodes(&|| palisade("apply", b)));
            got[row + 2].push(with_nodes(&|| palisade("verify", b)));
            // Clean for the other backend, and for this one's next fresh apply.
            palisade("remove", b);
        }
    }
    let med: Vec<Run> = got.into_iter().map(median).collect();

    // Where a fresh apply's time goes, per host: its `--json` timings, in
    // an untimed pass per backend (the nodes are clean: see the rounds).
    let stages: Vec<String> = backends
        .iter()
        .map(|&b| {
            let out = palisade_cmd("apply", Some(b))
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .expect("palisade apply");
            palisade("remove", Some(b));
            stage_medians(&out.stdout)
        })
        .collect();

    // The timed table, with the processes on one node where they were counted.
    let table = |procs: &[Option<usize>]| {
        print_table(&TableArgs {
            nodes,
            forks: &forks,
            latency: &latency(rtt, measured_rtt),
            runs,
            names: &names,
            med: &med,
            procs,
            backends: &backends,
            stages: &stages,
        });
    };
    let timed_only = std::env::var_os("BENCH_TIMED_ONLY").is_some_and(|v| v == "1");
    if timed_only {
        table(&vec![None; names.len()]);
        println!("\nprocesses and CPU by program: not measured (BENCH_TIMED_ONLY=1)");
        return;
    }

    // Processes on node 0, in an untimed pass with strace attached.
    eprintln!("counting processes on {}", lab.nodes[0].name);
    let one_host = format!("{}\n", lab.nodes[0].ip4);
    let mut counts = vec![
        census(&lab, 0, &lab.dir, || {
            measure(
                &mut fan_out_cmd(&floor_script),
                Some(one_host.as_bytes()),
                "the floor",
            );
        }),
        census(&lab, 0, &lab.dir, || {
            measure(
                &mut fan_out_cmd(&baseline_script),
                Some(one_host.as_bytes()),
                "the baseline",
            );
        }),
        census(&lab, 0, &lab.dir, || {
            palisade("ping", None);
        }),
    ];
    for &b in &backends {
        for cmd in ["apply", "apply", "verify"] {
            counts.push(census(&lab, 0, &lab.dir, || {
                palisade(cmd, Some(b));
            }));
        }
        palisade("remove", Some(b));
    }

    // Where the CPU goes, by program, in one more untimed pass of the
    // floor and of each backend's two applies.
    eprintln!("profiling the floor and the applies");
    let mut profiled = vec![names[0].clone()];
    let mut profiles = vec![cpu_by_program(&lab.dir, "floor", || {
        measure(
            &mut fan_out_cmd(&floor_script),
            Some(hosts.as_bytes()),
            "the floor",
        );
    })];
    for (i, &b) in backends.iter().enumerate() {
        for k in 0..2 {
            profiled.push(names[row_of(i) + k].clone());
            let label = format!("{}-{}", ["fresh", "noop"][k], b);
            profiles.push(cpu_by_program(&lab.dir, &label, || {
                palisade("apply", Some(b));
            }));
        }
        palisade("remove", Some(b));
    }

    let procs: Vec<Option<usize>> = counts.iter().map(|c| Some(c.total)).collect();
    table(&procs);
    println!("\nprocesses on one node, by program (fork: a subshell that never execs):");
    for (name, census) in names.iter().zip(&counts) {
        let mut by: Vec<(&String, &usize)> = census.execs.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = by.iter().map(|(n, k)| format!("{k} {n}")).collect();
        println!("  {name}: {}", list.join(", "));
    }
    if profiles.iter().any(Option::is_none) {
        println!("\nno CPU by program: perf is missing or failed (apt-get install linux-perf)");
        return;
    }
    println!(
        "\nwhere the CPU goes, ms per host, by program (perf on every CPU, one untimed pass;\n\
         the kernel's work for a process counts as the process's, an interrupt's as the interrupted one's):"
    );
    for (name, by) in profiled.iter().zip(profiles.iter().flatten()) {
        let mut list: Vec<(&String, &u64)> = by.iter().collect();
        list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let per_host = |ms: u64| ms as f64 / nodes as f64;
        let total: u64 = by.values().sum();
        let top: Vec<String> = list
            .iter()
            .take(14)
            .map(|(n, ms)| format!("{n} {:.1}", per_host(**ms)))
            .collect();
        let rest: u64 = list.iter().skip(14).map(|(_, ms)| **ms).sum();
        println!(
            "  {name}: all {:.1} = {}, the rest {:.1}",
            per_host(total),
            top.join(", "),
            per_host(rest)
        );
    }
}

/// What the table of timed rows is printed from.
struct TableArgs<'a> {
    nodes: usize,
    forks: &'a str,
    latency: &'a str,
    runs: usize,
    names: &'a [String],
    med: &'a [Run],
    /// Processes on one node per row, when they were counted.
    procs: &'a [Option<usize>],
    backends: &'a [&'a str],
    stages: &'a [String],
}

/// The header's words for the added round trip, if any.
fn latency(rtt: Option<Duration>, measured: Option<Duration>) -> String {
    match (rtt, measured) {
        (Some(rtt), Some(measured)) => format!(
            ", {} ms round trip added (delay line; {:.1} ms measured)",
            rtt.as_millis(),
            measured.as_secs_f64() * 1000.0
        ),
        _ => String::new(),
    }
}

/// BENCH_EXTRA's addresses (see the top of this file): refused, not
/// defaulted, when it is not a number up to 60,000.
fn extra_addresses() -> Vec<String> {
    let n = match std::env::var("BENCH_EXTRA") {
        Err(_) => 0,
        Ok(v) => match v.parse::<u32>() {
            Ok(n) if n <= 60_000 => n,
            _ => {
                eprintln!("BENCH_EXTRA: {v:?} is not a number of addresses up to 60000");
                std::process::exit(1);
            }
        },
    };
    (0..n)
        .map(|i| {
            let k = i / 2 * 2;
            if i % 2 == 0 {
                format!("198.19.{}.{}", k / 256, k % 256)
            } else {
                format!("2001:2:0:ff::{:x}", k + 2)
            }
        })
        .collect()
}

/// The timed rows as ratios to the floor, where a fresh apply's time goes,
/// and issue 22's targets.
fn print_table(t: &TableArgs<'_>) {
    let TableArgs {
        nodes,
        forks,
        latency,
        runs,
        names,
        med,
        procs,
        backends,
        stages,
    } = *t;
    let floor = med[0].wall.as_secs_f64();
    println!(
        "{nodes} hosts, {forks} at once{latency}, median of {runs} rounds; ratio = time / the floor (lower is better);\n\
         controller CPU and peak RSS from wait4; node CPU: all nodes' sshd descendants (cutime + cstime);\n\
         all CPU: the whole machine's busy time while the command ran (/proc/stat);\n\
         processes on one node, counted by strace on its sshd; [iptables], [nftables]: palisade's --backend\n"
    );
    println!(
        "{:<56} {:>8} {:>6} {:>9} {:>8} {:>10} {:>9} {:>6}",
        "", "seconds", "ratio", "ctl CPU s", "RSS MiB", "node CPU s", "all CPU s", "procs"
    );
    for ((name, run), procs) in names.iter().zip(med).zip(procs) {
        println!(
            "{name:<56} {:>8.3} {:>6.2} {:>9.3} {:>8.1} {:>10.3} {:>9.2} {:>6}",
            run.wall.as_secs_f64(),
            run.wall.as_secs_f64() / floor,
            run.cpu.as_secs_f64(),
            run.max_rss_kib as f64 / 1024.0,
            run.node_cpu.as_secs_f64(),
            run.all_cpu.as_secs_f64(),
            procs.map_or("-".to_owned(), |n| n.to_string()),
        );
    }
    for (b, stages) in backends.iter().zip(stages) {
        println!("\nfresh apply [{b}], median per host (ms): {stages}");
    }
    // Issue 22's targets for an nftables node, against this run's floor.
    if let Some(i) = backends.iter().position(|&b| b == "nftables") {
        println!("\nissue 22's targets, nftables (median / floor, this run):");
        for (k, limit) in [1.0, 0.7, 0.7].into_iter().enumerate() {
            let ratio = med[row_of(i) + k].wall.as_secs_f64() / floor;
            let met = if ratio <= limit { "met" } else { "not met" };
            println!("  {}: {ratio:.2} (target <= {limit:.1}x): {met}", PER_BACKEND[k]);
        }
    }
}
