//! One authenticated SSH connection to one node, and running a step on it.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{
    Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use russh::{ChannelMsg, Disconnect, Preferred, kex};

use super::certs;
use super::known_hosts::{self, KeyMatch, KnownHosts};
use super::{Credentials, HostError, HostKeyChecking, Privilege, Script, SshOptions};
use crate::timing::{Stage, Timings};

/// At most this many agent identities are offered, so that OpenSSH's
/// MaxAuthTries (6) is not spent before the right one.
const MAX_AGENT_KEYS: usize = 5;

/// curve25519 first: the post-quantum hybrids cost several times the CPU on
/// both ends, which adds up over a fleet of hundreds.
const KEX_ORDER: &[kex::Name] = &[
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::MLKEM768X25519_SHA256,
    kex::DH_GEX_SHA256,
    kex::DH_G16_SHA512,
    kex::DH_G14_SHA256,
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// What a remote step printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: u32,
}

impl Output {
    /// The output of a step that must succeed, or why it did not.
    pub(crate) fn success(self) -> Result<Output, HostError> {
        if self.code == 0 {
            Ok(self)
        } else {
            Err(HostError::Exit {
                code: self.code,
                stderr: last_words(&self.stderr),
            })
        }
    }
}

/// The end of what a failed step printed, for its error: the last lines
/// say why, and a node that prints a megabyte must not fill the report.
fn last_words(stderr: &str) -> String {
    crate::text::tail(stderr.trim(), 2000)
}

/// The most one step may print: far above what palisade's scripts print
/// (an `iptables-save` of a busy node is some hundred kB), low enough that a
/// broken or hostile node cannot exhaust the controller's memory.
const MAX_OUTPUT: usize = 32 << 20;

/// What a remote step printed on stderr, for `-vv`: the node scripts say
/// there what they did and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StepLog {
    /// The stage the step ran in, when the job named one.
    pub(crate) stage: Option<Stage>,
    pub(crate) stderr: String,
}

/// What a session records as the job runs on it.
#[derive(Debug, Default)]
struct Record {
    timings: Timings,
    /// The stage `Session::timed` is measuring now.
    current: Option<Stage>,
    log: Vec<StepLog>,
}

/// An open connection. Cloning shares it.
#[derive(Clone)]
pub(crate) struct Session {
    handle: Arc<Handle<Client>>,
    /// The bastion connections this one tunnels through, kept alive with it.
    via: Option<Arc<Bastion>>,
    addr: IpAddr,
    port: u16,
    step_timeout: Duration,
    record: Arc<Mutex<Record>>,
}

impl Session {
    /// Connects and authenticates, retrying only the connection itself.
    /// Every attempt's connect, key exchange and authentication time goes
    /// into `timings` (a retry's wait counts as connecting), whether or not
    /// it succeeds.
    pub(crate) async fn open(
        addr: IpAddr,
        opts: &SshOptions,
        via: Option<Arc<Bastion>>,
        timings: &mut Timings,
    ) -> Result<Session, HostError> {
        let mut attempt = 0;
        loop {
            match connect(
                addr.to_string(),
                opts.port,
                &opts.user,
                &opts.credentials,
                opts,
                via.as_deref().and_then(|b| b.hops.last()).map(|h| &h.handle),
                timings,
            )
            .await
            {
                Ok((handle, _)) => {
                    return Ok(Session {
                        handle: Arc::new(handle),
                        via,
                        addr,
                        port: opts.port,
                        step_timeout: opts.step_timeout,
                        record: Arc::default(),
                    });
                }
                Err(e) if e.is_retryable() && attempt < opts.retries => {
                    let backoff = Duration::from_millis(250 << attempt.min(5));
                    tracing::debug!("{addr}: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    timings.add(Stage::Connect, backoff);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `work` (one or more steps on this session) as `stage`: its time
    /// adds to that stage, and what its steps print on stderr is kept under
    /// that name. Not nested: the job names its stages one after another.
    pub(crate) async fn timed<T>(&self, stage: Stage, work: impl Future<Output = T>) -> T {
        self.with_record(|r| r.current = Some(stage));
        let start = Instant::now();
        let out = work.await;
        let took = start.elapsed();
        self.with_record(|r| {
            r.timings.add(stage, took);
            r.current = None;
        });
        out
    }

    /// The stages the job named so far, and what its steps printed on
    /// stderr, in order.
    pub(crate) fn recorded(&self) -> (Timings, Vec<StepLog>) {
        self.with_record(|r| (r.timings.clone(), r.log.clone()))
    }

    /// The bastions this session tunnels through (`--jump`), if any.
    pub(crate) fn bastion(&self) -> Option<&Bastion> {
        self.via.as_deref()
    }

    fn with_record<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self.record.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs one script, with its constant command line, and waits for it.
    /// Any exit code is returned as data; a signal or a missing status is an
    /// error of its own.
    pub(crate) async fn run(&self, privilege: Privilege, script: &Script) -> Result<Output, HostError> {
        let after = self.step_timeout;
        tokio::time::timeout(after, self.run_inner(privilege, script))
            .await
            .map_err(|_| HostError::StepTimeout { after })?
    }

    async fn run_inner(&self, privilege: Privilege, script: &Script) -> Result<Output, HostError> {
        let mut talk = self.open_talk(privilege, script).await?;
        talk.ch.eof().await?;
        talk.read_to_close().await
    }

    /// Starts a step that talks back: its script runs while palisade reads
    /// what it prints ([`Conversation::until_line`]) and answers on its
    /// stdin ([`Conversation::say`]), all in one exec. The script's stdin
    /// stays open until [`Conversation::finish`] or the end of the
    /// connection.
    pub(crate) async fn converse(
        &self,
        privilege: Privilege,
        script: &Script,
    ) -> Result<Conversation, HostError> {
        let after = self.step_timeout;
        tokio::time::timeout(after, self.open_talk(privilege, script))
            .await
            .map_err(|_| HostError::StepTimeout { after })?
    }

    async fn open_talk(&self, privilege: Privilege, script: &Script) -> Result<Conversation, HostError> {
        let ch = self.handle.channel_open_session().await?;
        // No reply asked for: sshd's CHANNEL_SUCCESS would be a short packet
        // left unacknowledged when the script's first output comes, which
        // Nagle's algorithm then holds back a round trip (see
        // `quickack`). An exec sshd refuses ends in the step timeout,
        // as it did when the reply was asked for and not read.
        ch.exec(false, privilege.command()).await?;
        ch.data(script.as_str().as_bytes()).await?;
        Ok(Conversation {
            ch,
            out: Vec::new(),
            err: Vec::new(),
            heard: 0,
            scanned: 0,
            searched: 0,
            code: None,
            signal: None,
            closed: false,
            step_timeout: self.step_timeout,
            record: self.record.clone(),
        })
    }

    /// Proves that a *new* connection to the node's SSH port gets through,
    /// by reading the server's `SSH-2.0-` banner on it: the open session
    /// rides on the ESTABLISHED rule and proves nothing about new ones. The
    /// banner, not the TCP handshake alone: a port forwarder or a load
    /// balancer in front of the node completes the handshake whether or not
    /// the node admits it, and only the node's sshd speaks first.
    ///
    /// Through bastions it re-creates the path the operator's next session
    /// takes, one new connection into each hop and then the node, each from
    /// where the next session's would come: first a new TCP connection from
    /// here to the first bastion (its banner), since a tunnel alone reaches
    /// the node from inside the bastion (on the bastion itself, over `lo`)
    /// and says nothing of the operator's own link to it; then a new tunnel
    /// from each hop to the next (that hop's banner: a new connection from
    /// the hop before, as a new session's would be); then a new tunnel
    /// through the last hop to the node (the node's banner). Each leg is
    /// the same new connection, from the same address, that a session
    /// logged in afresh along the whole path would open, without a login
    /// on every hop for every host. When a hop is a node being changed, its
    /// leg is what proves its new rules still admit the hop before it (or
    /// the operator). `source` picks the local address of the connections
    /// made from here (tests use it to leave from outside the whitelist).
    pub(crate) async fn fresh_connection(
        &self,
        source: Option<IpAddr>,
        within: Duration,
    ) -> Result<(), String> {
        let target = std::net::SocketAddr::new(self.addr, self.port);
        let deadline = tokio::time::Instant::now() + within;
        let late = |to: String| {
            format!(
                "a new connection to {to} got no SSH banner within {}s",
                within.as_secs()
            )
        };
        let hops = self.via.as_deref().map_or(&[][..], |b| b.hops.as_slice());
        for (i, hop) in hops.iter().enumerate() {
            // The first hop by the address its connection went to; the next
            // by their names, which the hop before resolves.
            let to = match (i, hop.peer) {
                (0, Some(peer)) => format!("the bastion {peer}"),
                _ => format!("the bastion {}", hop.label),
            };
            let leg = async {
                let _permit = hop.proofs.acquire().await.map_err(|e| e.to_string())?;
                match (i.checked_sub(1).and_then(|before| hops.get(before)), hop.peer) {
                    (None, Some(peer)) => banner_over_tcp(peer, source).await,
                    (Some(before), _) => {
                        let ch = before
                            .handle
                            .channel_open_direct_tcpip(hop.host.clone(), u32::from(hop.port), "127.0.0.1", 0)
                            .await
                            .map_err(|e| {
                                format!("{} could not open a new tunnel to it: {e}", before.label)
                            })?;
                        banner(ch.into_stream()).await
                    }
                    (None, None) => Err("its address is not known".to_owned()),
                }
            };
            match tokio::time::timeout_at(deadline, leg).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("a new connection to {to} failed: {e}")),
                Err(_) => return Err(late(to)),
            }
        }
        let attempt = async {
            match hops.last() {
                Some(last) => {
                    let ch = last
                        .handle
                        .channel_open_direct_tcpip(
                            self.addr.to_string(),
                            u32::from(self.port),
                            "127.0.0.1",
                            0,
                        )
                        .await
                        .map_err(|e| {
                            format!("the bastion {} could not open a new tunnel: {e}", last.label)
                        })?;
                    banner(ch.into_stream()).await
                }
                None => banner_over_tcp(target, source).await,
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("a new connection to {target} failed: {e}")),
            Err(_) => Err(late(target.to_string())),
        }
    }

    /// Says goodbye politely; the connection closes either way.
    pub(crate) async fn close(&self) {
        let _ = self.handle.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

/// A new TCP connection to `to` (from `source`, if given), and the SSH
/// banner on it.
async fn banner_over_tcp(to: std::net::SocketAddr, source: Option<IpAddr>) -> Result<(), String> {
    let socket = match to {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(src) = source {
        socket
            .bind(std::net::SocketAddr::new(src, 0))
            .map_err(|e| format!("cannot bind {src}: {e}"))?;
    }
    banner(socket.connect(to).await.map_err(|e| e.to_string())?).await
}

/// Whether what `stream` says first is an SSH banner.
async fn banner(mut stream: impl tokio::io::AsyncRead + Unpin) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut banner = [0u8; 8];
    stream.read_exact(&mut banner).await.map_err(|e| e.to_string())?;
    if &banner == b"SSH-2.0-" {
        Ok(())
    } else {
        Err("the answer was not an SSH banner".to_owned())
    }
}

/// The one command run on a bastion, as its user, no sudo: the connection
/// as it sees it (`$SSH_CONNECTION`: its client's address, which the
/// operator's own sessions to it come from too, and its own). Constant,
/// like every remote command line.
const BASTION_ORIGIN: &str = r#"printf '%s\n' "$SSH_CONNECTION""#;

/// The bastions (`--jump`), connected once per run, each through the one
/// before, and shared by every host's tunnel.
pub(crate) struct Bastion {
    hops: Vec<HopSession>,
}

/// One connected hop of the path.
pub(crate) struct HopSession {
    handle: Handle<Client>,
    /// Its `user@host:port` (and place in the path), for errors.
    label: String,
    /// Where the hop before reaches it (the next leg of a proof goes there).
    host: String,
    port: u16,
    /// The first hop: the address and port its connection went to
    /// (whatever a name resolved to), where the operator's next session to
    /// it goes. The next hops are reached by name from the hop before.
    peer: Option<std::net::SocketAddr>,
    step_timeout: Duration,
    /// Its client's address and its own, as it sees the connection, asked
    /// once, when first needed (the lockout check of a hop that is a node).
    origin: tokio::sync::OnceCell<Option<(IpAddr, Option<IpAddr>)>>,
    /// Bounds the proofs' new connections to the hop open at once: they
    /// never log in, and sshd's MaxStartups (10 by default) starts dropping
    /// new connections beyond 10 unauthenticated ones, which would fail a
    /// confirmation and roll a good change back.
    proofs: tokio::sync::Semaphore,
}

/// How many proofs may hold a new connection to a bastion at once (below
/// sshd's default MaxStartups of 10, leaving room for the operator).
const BASTION_PROOFS: usize = 6;

impl Bastion {
    /// Connects and authenticates to each hop in turn, each through a
    /// tunnel of the one before. Its time is its own, not any host's. A
    /// failure names the hop: its label, and why.
    pub(super) async fn connect(
        jump: &super::BastionPath,
        opts: &SshOptions,
    ) -> Result<Bastion, (String, HostError)> {
        let mut hops: Vec<HopSession> = Vec::with_capacity(jump.hops.len());
        for (i, hop) in jump.hops.iter().enumerate() {
            let label = jump.label(i);
            let credentials = opts.hop_credentials.get(i).unwrap_or(&opts.credentials);
            let mut untimed = Timings::default();
            let via = hops.last().map(|h| &h.handle);
            let (handle, peer) = connect(
                hop.host.clone(),
                hop.port,
                &hop.user,
                credentials,
                opts,
                via,
                &mut untimed,
            )
            .await
            .map_err(|e| (label.clone(), e))?;
            if i == 0 && peer.is_none() {
                return Err((label, HostError::Ssh(russh::Error::Disconnect)));
            }
            tracing::debug!("connected to the bastion {label}");
            hops.push(HopSession {
                handle,
                label,
                host: hop.host.clone(),
                port: hop.port,
                peer,
                step_timeout: opts.step_timeout,
                origin: tokio::sync::OnceCell::new(),
                proofs: tokio::sync::Semaphore::new(BASTION_PROOFS),
            });
        }
        Ok(Bastion { hops })
    }

    /// The hops, first to last.
    pub(crate) fn hops(&self) -> &[HopSession] {
        &self.hops
    }
}

impl HopSession {
    /// The hop's own address as its client reached it: where the first
    /// hop's connection went, and for the next hops what they say (see
    /// [`HopSession::sees_us`]).
    pub(crate) async fn address(&self) -> Option<IpAddr> {
        match self.peer {
            Some(peer) => Some(peer.ip()),
            None => self.origin().await.and_then(|(_, own)| own),
        }
    }

    /// Its client's address as the hop sees it (after any NAT on the way):
    /// the controller's for the first hop, the hop before's for the next;
    /// None when the hop does not say (a user whose shell runs nothing, a
    /// step that times out).
    pub(crate) async fn sees_us(&self) -> Option<IpAddr> {
        self.origin().await.map(|(client, _)| client)
    }

    /// One exec of [`BASTION_ORIGIN`] as the hop's user, made once per run
    /// whoever asks.
    async fn origin(&self) -> Option<(IpAddr, Option<IpAddr>)> {
        *self
            .origin
            .get_or_init(|| async {
                let ask = async {
                    let mut ch = self.handle.channel_open_session().await.ok()?;
                    ch.exec(false, BASTION_ORIGIN).await.ok()?;
                    let _ = ch.eof().await;
                    let mut out = Vec::new();
                    while let Some(msg) = ch.wait().await {
                        if let ChannelMsg::Data { data } = msg {
                            out.extend_from_slice(&data);
                            if out.len() > 4096 {
                                return None;
                            }
                        }
                    }
                    let text = String::from_utf8_lossy(&out);
                    let client = super::origin_of(text.trim())?;
                    let own = text.split_whitespace().nth(2).and_then(|a| a.parse().ok());
                    Some((client, own))
                };
                tokio::time::timeout(self.step_timeout, ask).await.ok().flatten()
            })
            .await
    }
}

/// A step in progress whose script waits on its stdin for palisade's
/// answers (see [`Session::converse`]).
pub(crate) struct Conversation {
    ch: russh::Channel<client::Msg>,
    out: Vec<u8>,
    err: Vec<u8>,
    /// How much of `out` the caller has been given.
    heard: usize,
    /// Where the line being looked at starts (the end of the last whole
    /// line looked through), and how far its newline has been looked for:
    /// a node printing in many small packets costs a linear scan, not a
    /// quadratic one.
    scanned: usize,
    searched: usize,
    code: Option<u32>,
    signal: Option<String>,
    closed: bool,
    step_timeout: Duration,
    record: Arc<Mutex<Record>>,
}

/// What a talking step said next.
#[derive(Debug)]
pub(crate) enum Heard {
    /// Its stdout since the last answer, up to and including the line
    /// asked for.
    Said(String),
    /// It ended before it printed that line: all it printed, and how it
    /// ended.
    Ended(Output),
}

impl Conversation {
    /// Waits (at most the step timeout) until the script prints the line
    /// `line`, or ends.
    pub(crate) async fn until_line(&mut self, line: &str) -> Result<Heard, HostError> {
        let after = self.step_timeout;
        tokio::time::timeout(after, self.until_line_inner(line))
            .await
            .map_err(|_| HostError::StepTimeout { after })?
    }

    async fn until_line_inner(&mut self, line: &str) -> Result<Heard, HostError> {
        loop {
            if let Some(end) = self.line_end(line) {
                let said = String::from_utf8_lossy(&self.out[self.heard..end]).into_owned();
                self.heard = end;
                return Ok(Heard::Said(said));
            }
            if self.closed {
                let out = self.ended()?;
                return Ok(Heard::Ended(out));
            }
            self.receive().await?;
        }
    }

    /// Where the first `line` after what was heard ends (past its newline).
    /// Every byte is looked at once over all calls, however the node cuts
    /// its output into packets (callers ask for the same line each time).
    fn line_end(&mut self, line: &str) -> Option<usize> {
        let want = format!("{line}\n");
        loop {
            let start = self.scanned.max(self.heard);
            let from = self.searched.max(start);
            match self.out[from..].iter().position(|b| *b == b'\n') {
                None => {
                    self.searched = self.out.len();
                    return None;
                }
                Some(i) => {
                    let end = from + i + 1;
                    self.scanned = end;
                    self.searched = end;
                    if self.out[start..end] == *want.as_bytes() {
                        return Some(end);
                    }
                }
            }
        }
    }

    /// Writes `text` to the script's stdin, as it is.
    pub(crate) async fn say(&mut self, text: &str) -> Result<(), HostError> {
        self.ch.data(text.as_bytes()).await?;
        Ok(())
    }

    /// Ends the script's stdin and waits (at most the step timeout) for it
    /// to end: everything it printed after what was heard, and how it ended.
    pub(crate) async fn finish(mut self) -> Result<Output, HostError> {
        let after = self.step_timeout;
        // The script may be gone already: its stdin then is too.
        let _ = self.ch.eof().await;
        tokio::time::timeout(after, self.read_to_close())
            .await
            .map_err(|_| HostError::StepTimeout { after })?
    }

    async fn read_to_close(&mut self) -> Result<Output, HostError> {
        while !self.closed {
            self.receive().await?;
        }
        self.ended()
    }

    /// The next message from the node.
    async fn receive(&mut self) -> Result<(), HostError> {
        match self.ch.wait().await {
            None => self.closed = true,
            Some(ChannelMsg::Data { data }) => self.out.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => self.err.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => self.code = Some(exit_status),
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                self.signal = Some(format!("{signal_name:?}"))
            }
            Some(_) => {}
        }
        if self.out.len() + self.err.len() > MAX_OUTPUT {
            return Err(HostError::OutputTooLarge { limit: MAX_OUTPUT });
        }
        Ok(())
    }

    /// The step has ended: what it printed that was not heard yet, and how
    /// it ended. A signal or a missing status is an error of its own.
    fn ended(&mut self) -> Result<Output, HostError> {
        if let Some(signal) = self.signal.take() {
            return Err(HostError::Signal { signal });
        }
        let code = self.code.ok_or(HostError::NoExitStatus)?;
        let stderr = String::from_utf8_lossy(&self.err).into_owned();
        // Kept for `-vv` only, and only its end: a node that prints
        // megabytes in every step must not pile them up in memory.
        if !stderr.trim().is_empty() && tracing::enabled!(tracing::Level::DEBUG) {
            let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
            let stage = r.current;
            r.log.push(StepLog {
                stage,
                stderr: crate::text::tail(&stderr, 16 * 1024),
            });
        }
        let stdout = String::from_utf8_lossy(&self.out[self.heard..]).into_owned();
        self.heard = self.out.len();
        Ok(Output { stdout, stderr, code })
    }
}

/// Opens one authenticated connection to `host:port`, directly or through
/// `via`, adding the time of each part to `timings`.
pub(super) async fn connect(
    host: String,
    port: u16,
    user: &str,
    credentials: &Credentials,
    opts: &SshOptions,
    via: Option<&Handle<Client>>,
    timings: &mut Timings,
) -> Result<(Handle<Client>, Option<std::net::SocketAddr>), HostError> {
    let after = opts.connect_timeout;
    let problem = Arc::new(Mutex::new(None));
    let handler = Client {
        host: host.clone(),
        port,
        known_hosts: opts.known_hosts.clone(),
        checking: opts.checking,
        problem: problem.clone(),
    };
    let mut config = config_for(&opts.known_hosts, &host, port);
    if let Some(every) = opts.keepalive {
        config.keepalive_interval = (!every.is_zero()).then_some(every);
    }
    let config = Arc::new(config);
    let socket = target(&host, port);
    let start = Instant::now();
    // The TCP connection (or the tunnel) first, then the SSH handshake on
    // it, so that each shows in the timings; the same as `client::connect`.
    let mut kex_start = None;
    // Where a direct connection went, whatever the name resolved to.
    let mut peer = None;
    let handshake = async {
        match via {
            None => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                peer = tcp.peer_addr().ok();
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("{socket}: cannot set TCP_NODELAY: {e}");
                }
                kex_start = Some(Instant::now());
                client::connect_stream(config, super::quickack::QuickAck(tcp), handler).await
            }
            Some(bastion) => {
                let ch = bastion
                    .channel_open_direct_tcpip(host.clone(), u32::from(port), "127.0.0.1", 0)
                    .await?;
                kex_start = Some(Instant::now());
                client::connect_stream(config, ch.into_stream(), handler).await
            }
        }
    };
    let result = tokio::time::timeout(after, handshake).await;
    match kex_start {
        Some(kex) => {
            timings.add(Stage::Connect, kex - start);
            timings.add(Stage::Kex, kex.elapsed());
        }
        None => timings.add(Stage::Connect, start.elapsed()),
    }
    let taken = problem.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut handle = match result {
        Err(_) => {
            return Err(HostError::ConnectTimeout {
                addr: socket.clone(),
                after,
            });
        }
        Ok(Err(e)) => {
            return Err(match (taken, e) {
                (Some(problem), _) => problem,
                (None, russh::Error::IO(source)) => HostError::Connect {
                    addr: socket.clone(),
                    source,
                },
                (None, russh::Error::ChannelOpenFailure(reason)) => HostError::Connect {
                    addr: socket.clone(),
                    source: std::io::Error::other(format!(
                        "the jump host before it could not open a tunnel to it ({reason:?})"
                    )),
                },
                (None, e) => HostError::Ssh(e),
            });
        }
        Ok(Ok(handle)) => handle,
    };
    let start = Instant::now();
    let auth = tokio::time::timeout(after, authenticate(&mut handle, &socket, user, credentials)).await;
    timings.add(Stage::Auth, start.elapsed());
    auth.map_err(|_| HostError::ConnectTimeout { addr: socket, after })??;
    Ok((handle, peer))
}

/// `host:port`, with brackets around an IPv6 address.
fn target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn config_for(known_hosts: &KnownHosts, host: &str, port: u16) -> client::Config {
    let mut key = known_hosts.algorithms(host, port);
    for alg in Preferred::DEFAULT.key.iter() {
        // Never SHA-1 `ssh-rsa` host keys.
        let sha1_rsa = matches!(alg, russh::keys::Algorithm::Rsa { hash: None });
        if !sha1_rsa && !key.contains(alg) {
            key.push(alg.clone());
        }
    }
    // A server presents its host certificate only when asked for one; ask
    // when a `@cert-authority` line could vouch for it, as ssh(1) does.
    let host_key_certificates = match known_hosts.authorities(host, port).is_empty() {
        true => Cow::Borrowed(&[][..]),
        false => Cow::Owned(certs::host_certificate_algorithms()),
    };
    client::Config {
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        inactivity_timeout: None,
        preferred: Preferred {
            kex: Cow::Borrowed(KEX_ORDER),
            key: Cow::Owned(key),
            host_key_certificates,
            ..Preferred::DEFAULT
        },
        ..Default::default()
    }
}

/// Logs in to `host` (`host:port`, for `-v`) as `user`.
async fn authenticate(
    handle: &mut Handle<Client>,
    host: &str,
    user: &str,
    creds: &Credentials,
) -> Result<(), HostError> {
    match creds {
        Credentials::Key(key) => {
            if offer_key(handle, user, key).await? {
                return Ok(());
            }
            Err(HostError::Auth {
                user: user.into(),
                method: format!("key {}", known_hosts::describe(key.public_key())),
            })
        }
        Credentials::Certified { key, cert, file } => {
            with_certificate(handle, host, user, key, cert, file).await
        }
        Credentials::Agent(socket) => with_agent(handle, host, user, socket).await,
    }
}

/// Logs in with a key and its certificate; as ssh(1), with the bare key
/// when the server does not take the certificate.
async fn with_certificate(
    handle: &mut Handle<Client>,
    host: &str,
    user: &str,
    key: &Arc<PrivateKey>,
    cert: &Arc<Certificate>,
    file: &std::path::Path,
) -> Result<(), HostError> {
    let res = if key.algorithm().is_rsa() {
        let hash = rsa_hash(handle, key.public_key()).await?;
        let mut signer = certs::KeySigner(key.clone());
        handle
            .authenticate_certificate_with(user, (**cert).clone(), hash, &mut signer)
            .await
            .map_err(|e| HostError::Auth {
                user: user.into(),
                method: format!("certificate {}: cannot sign: {e}", file.display()),
            })?
    } else {
        handle
            .authenticate_openssh_cert(user, key.clone(), (**cert).clone())
            .await?
    };
    if res.success() {
        return Ok(());
    }
    // As ssh(1): a certificate the server does not take (its CA not
    // trusted there, no principal for the user) leaves the bare key.
    tracing::info!(
        "{}: the server refused the {} from {}; trying the bare key",
        crate::text::escape(host),
        crate::text::escape(&certs::label(cert)),
        crate::text::escape(&file.display().to_string())
    );
    if offer_key(handle, user, key).await? {
        return Ok(());
    }
    Err(HostError::Auth {
        user: user.into(),
        method: format!(
            "certificate {} and then the bare key {}",
            file.display(),
            known_hosts::describe(key.public_key())
        ),
    })
}

/// Logs in with the ssh-agent listening on `socket`: its certificates
/// first, then its keys, at most [`MAX_AGENT_KEYS`] offered in all.
async fn with_agent(
    handle: &mut Handle<Client>,
    host: &str,
    user: &str,
    socket: &std::path::Path,
) -> Result<(), HostError> {
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| HostError::Agent(format!("cannot connect to {}: {e}", socket.display())))?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| HostError::Agent(format!("cannot list keys: {e}")))?;
    let offered = match offer_agent_certificates(handle, host, user, &mut agent, &identities).await? {
        Offered::Taken => return Ok(()),
        Offered::Refused(n) => n,
    };
    let keys: Vec<PublicKey> = identities
        .into_iter()
        .filter_map(|id| match id {
            AgentIdentity::PublicKey { key, .. } => Some(key),
            AgentIdentity::Certificate { .. } => None,
        })
        .take(MAX_AGENT_KEYS - offered)
        .collect();
    if keys.is_empty() && offered == 0 {
        return Err(HostError::Agent("the agent holds no keys".into()));
    }
    for key in &keys {
        let hash = rsa_hash(handle, key).await?;
        let res = handle
            .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
            .await
            .map_err(|e| HostError::Agent(format!("signing failed: {e}")))?;
        if res.success() {
            return Ok(());
        }
    }
    Err(HostError::Auth {
        user: user.into(),
        method: match offered {
            0 => format!("{} ssh-agent key(s)", keys.len()),
            n => format!("{n} ssh-agent certificate(s) and {} key(s)", keys.len()),
        },
    })
}

/// What became of the agent's certificates.
enum Offered {
    /// The server took one.
    Taken,
    /// It took none of this many offered.
    Refused(usize),
}

/// Offers the agent's certificates, as ssh(1) does before its keys: one
/// outside its validity window would only spend one of sshd's
/// MaxAuthTries, so it is skipped.
async fn offer_agent_certificates(
    handle: &mut Handle<Client>,
    host: &str,
    user: &str,
    agent: &mut AgentClient<tokio::net::UnixStream>,
    identities: &[AgentIdentity],
) -> Result<Offered, HostError> {
    let now = certs::now();
    let mut offered = 0;
    for id in identities {
        let AgentIdentity::Certificate { certificate, .. } = id else {
            continue;
        };
        if let Some(why) = certs::outside_window(certificate, now) {
            tracing::info!(
                "ssh-agent: skipping the {}: it is {why}",
                crate::text::escape(&certs::label(certificate))
            );
            continue;
        }
        if offered == MAX_AGENT_KEYS {
            break;
        }
        offered += 1;
        let key = PublicKey::new(certificate.public_key().clone(), "");
        let hash = rsa_hash(handle, &key).await?;
        let res = handle
            .authenticate_certificate_with(user, certificate.clone(), hash, agent)
            .await
            .map_err(|e| HostError::Agent(format!("signing failed: {e}")))?;
        if res.success() {
            return Ok(Offered::Taken);
        }
        tracing::info!(
            "{}: the server refused the agent's {}",
            crate::text::escape(host),
            crate::text::escape(&certs::label(certificate))
        );
    }
    Ok(Offered::Refused(offered))
}

/// Offers a key in memory, signed at once; whether the server took it.
async fn offer_key(
    handle: &mut Handle<Client>,
    user: &str,
    key: &Arc<PrivateKey>,
) -> Result<bool, HostError> {
    let hash = rsa_hash(handle, key.public_key()).await?;
    let res = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
        .await?;
    Ok(res.success())
}

/// RSA keys sign with SHA-2: the best hash the server announces, and
/// rsa-sha2-256 when it announces none. Never SHA-1 `ssh-rsa`, which
/// OpenSSH 8.8+ refuses.
async fn rsa_hash(handle: &Handle<Client>, key: &PublicKey) -> Result<Option<HashAlg>, HostError> {
    if !key.algorithm().is_rsa() {
        return Ok(None);
    }
    let best = handle.best_supported_rsa_hash().await?.flatten();
    Ok(Some(best.unwrap_or(HashAlg::Sha256)))
}

/// The russh handler: decides about the server's host key.
pub(crate) struct Client {
    host: String,
    port: u16,
    known_hosts: Arc<KnownHosts>,
    checking: HostKeyChecking,
    /// Why a key was refused, for the error the connect call returns.
    problem: Arc<Mutex<Option<HostError>>>,
}

impl Client {
    fn refuse(&self, problem: HostError) -> Result<bool, russh::Error> {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(problem);
        Ok(false)
    }

    /// A host certificate is accepted when a `@cert-authority` line for the
    /// host names its CA, neither its key nor its CA's is `@revoked` for
    /// the host, and it vouches for the host now ([`certs::check_host_certificate`]).
    /// Nothing is learned from it. (The key exchange was signed with the
    /// certificate's key before this is asked.)
    fn check_certificate(&self, cert: &Certificate) -> Result<bool, russh::Error> {
        let file = self.known_hosts.path().display().to_string();
        let host = known_hosts::host_name(&self.host, self.port);
        let refuse = |reason: String| {
            self.refuse(HostError::HostCertificate {
                host: host.clone(),
                reason,
                file: file.clone(),
            })
        };
        let host_key = PublicKey::new(cert.public_key().clone(), "");
        let ca = PublicKey::new(cert.signature_key().clone(), "");
        if let Some(line) = self.known_hosts.revoked(&self.host, self.port, &host_key) {
            return refuse(format!(
                "its host key {} is revoked (line {line})",
                known_hosts::describe(&host_key)
            ));
        }
        if let Some(line) = self.known_hosts.revoked(&self.host, self.port, &ca) {
            return refuse(format!(
                "its CA {} is revoked (line {line})",
                known_hosts::describe(&ca)
            ));
        }
        let authorities = self.known_hosts.authorities(&self.host, self.port);
        let Some((line, trusted)) = authorities.iter().find(|(_, k)| k.key_data() == ca.key_data()) else {
            return refuse(match authorities.len() {
                0 => format!(
                    "it is signed by CA {}, and no @cert-authority line matches {host}",
                    known_hosts::describe(&ca)
                ),
                _ => format!(
                    "it is signed by an unknown CA {}: the @cert-authority lines for {host} ({}) name others",
                    known_hosts::describe(&ca),
                    authorities
                        .iter()
                        .map(|(l, _)| l.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        match certs::check_host_certificate(cert, trusted, &self.host, certs::now()) {
            Ok(()) => {
                tracing::debug!(
                    "{}: host {} trusted through @cert-authority line {line}",
                    crate::text::escape(&host),
                    crate::text::escape(&certs::label(cert))
                );
                Ok(true)
            }
            Err(why) => refuse(format!("{}: {why}", certs::label(cert))),
        }
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, server: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        if self.checking == HostKeyChecking::Off {
            return Ok(true);
        }
        let key = match server {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(cert) => return self.check_certificate(cert),
        };
        let file = self.known_hosts.path().display().to_string();
        let host = known_hosts::host_name(&self.host, self.port);
        let matched = self.known_hosts.check(&self.host, self.port, key);
        // A host a CA vouches for proves itself with a certificate: its
        // plain key is never learned, whatever the checking mode.
        if matched == KeyMatch::Unknown
            && let Some((line, _)) = self.known_hosts.authorities(&self.host, self.port).first()
        {
            return self.refuse(HostError::HostKeyNotCertified {
                host,
                presented: known_hosts::describe(key),
                file,
                line: *line,
            });
        }
        match matched {
            KeyMatch::Known => Ok(true),
            KeyMatch::Unknown if self.checking == HostKeyChecking::AcceptNew => {
                match self.known_hosts.learn(&self.host, self.port, key) {
                    Ok(()) => {
                        tracing::info!("{host}: learned host key {}", known_hosts::describe(key));
                        Ok(true)
                    }
                    Err(e) => self.refuse(HostError::HostKeyRecord {
                        host,
                        file,
                        reason: e.to_string(),
                    }),
                }
            }
            KeyMatch::Unknown => self.refuse(HostError::HostKeyUnknown {
                host,
                presented: known_hosts::describe(key),
                file,
            }),
            KeyMatch::Changed { known } => self.refuse(HostError::HostKeyChanged {
                host,
                presented: known_hosts::describe(key),
                known,
                file,
            }),
            KeyMatch::Revoked { line } => self.refuse(HostError::HostKeyRevoked { host, file, line }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_steps_error_keeps_only_the_end_of_what_it_printed() {
        let huge = format!("{}\nthe reason", "x".repeat(1 << 20));
        let kept = super::last_words(&huge);
        assert!(kept.len() < 2100, "{}", kept.len());
        assert!(kept.starts_with('…') && kept.ends_with("the reason"));
        assert_eq!(super::last_words("  short\n"), "short");
    }
}
