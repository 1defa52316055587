//! The operator's `~/.ssh/config`, read with OpenSSH's semantics for the
//! settings palisade can use.
//!
//! Written here rather than taken from a crate: russh-config knows neither
//! `Include` nor `!` patterns, and ssh2-config (the most complete) lets a
//! later value in a block win over an earlier one, reads the lines after a
//! `Match` as part of the block before it, keeps no file and line for a
//! setting (which `-v` reports) and reads included files unbounded. The
//! subset palisade needs is small: tokens, `Host` and `Match` patterns,
//! `Include`, first value wins.
//!
//! The file is parsed once into blocks; each host is then resolved the way
//! ssh(1) reads the file for one destination: a `Host` or `Match` line
//! decides whether the lines after it apply, and the first value of each
//! keyword wins.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{BastionPath, HostKeyChecking};

/// A file is a page or two of settings; 1 MiB is far past any real one.
const MAX_BYTES: u64 = 1 << 20;
/// OpenSSH's own limit on nested `Include`s (READCONF_MAX_DEPTH).
const MAX_DEPTH: usize = 16;
/// All files read through `Include`, together: a glob matching thousands of
/// files is a mistake, not a config.
const MAX_FILES: usize = 256;

/// Where a value was written: file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) file: Arc<Path>,
    pub(crate) line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug)]
enum Line {
    /// `Host PATTERN...`: the lines after it apply when a pattern matches.
    Host(Vec<String>),
    /// `Match` criteria, all of which must hold.
    Match(Vec<Criterion>),
    /// An included file's lines (every file a glob matched, in order).
    Include(Vec<Line>),
    /// `Keyword args...`, keyword in lower case.
    Set {
        key: String,
        args: Vec<String>,
        at: Origin,
    },
}

#[derive(Debug)]
enum Criterion {
    All,
    /// `host`/`originalhost` (the name or address palisade connects to).
    Host(String),
    User(String),
    LocalUser(String),
}

/// A parsed ssh_config with its includes.
#[derive(Debug)]
pub(crate) struct SshConfigFile {
    path: PathBuf,
    lines: Vec<Line>,
}

/// What the file says for one host: each keyword's first value and where
/// it was written.
#[derive(Debug, Default)]
pub(crate) struct HostSettings {
    values: BTreeMap<String, (Vec<String>, Origin)>,
    /// Every `IdentityFile` that applies, in order (they accumulate).
    pub(crate) identity_files: Vec<(String, Origin)>,
    /// Every `CertificateFile` that applies, in order (they accumulate too).
    pub(crate) certificate_files: Vec<(String, Origin)>,
}

impl HostSettings {
    /// The first value of `key` (lower case) and where it was written.
    pub(crate) fn get(&self, key: &str) -> Option<(&[String], &Origin)> {
        self.values.get(key).map(|(a, o)| (a.as_slice(), o))
    }

    /// The first value of `key` as one word.
    pub(crate) fn word(&self, key: &str) -> Option<(&str, &Origin)> {
        self.get(key)
            .and_then(|(a, o)| a.first().map(|w| (w.as_str(), o)))
    }
}

impl SshConfigFile {
    /// Reads `path` and everything it includes. `home` expands `~` and is
    /// where relative `Include`s are looked for (`~/.ssh`), as ssh(1) does
    /// for the user's own config.
    pub(crate) fn load(path: &Path, home: Option<&Path>) -> Result<SshConfigFile, String> {
        let mut reader = Reader {
            home: home.map(Path::to_path_buf),
            open: Vec::new(),
            files: 0,
        };
        let lines = reader.file(path, 0)?;
        Ok(SshConfigFile {
            path: path.to_path_buf(),
            lines,
        })
    }

    /// The settings for a host known by `names` (its address, its name):
    /// a pattern matching any of them matches the host. `user` is the user
    /// `Match user` sees when the file has set none before it.
    pub(crate) fn resolve(&self, names: &[&str], user: &str) -> Result<HostSettings, String> {
        let mut out = HostSettings::default();
        let mut active = true;
        walk(&self.lines, names, user, &mut active, &mut out)?;
        Ok(out)
    }
}

fn walk(
    lines: &[Line],
    names: &[&str],
    user: &str,
    active: &mut bool,
    out: &mut HostSettings,
) -> Result<(), String> {
    for line in lines {
        match line {
            Line::Host(patterns) => *active = host_matches(patterns, names),
            Line::Match(criteria) => {
                let user = out.word("user").map_or(user, |(u, _)| u).to_owned();
                *active = criteria.iter().all(|c| match c {
                    Criterion::All => true,
                    Criterion::Host(list) => list_matches(list, names),
                    Criterion::User(list) => list_matches(list, &[&user]),
                    Criterion::LocalUser(list) => list_matches(list, &[&local_user()]),
                });
            }
            Line::Include(inner) => {
                // An included file's Host lines decide within it; after it,
                // the including block goes on as it was.
                if *active {
                    let mut inner_active = true;
                    walk(inner, names, user, &mut inner_active, out)?;
                }
            }
            Line::Set { key, args, at } => {
                if !*active {
                    continue;
                }
                if key == "identityfile" {
                    if let Some(a) = args.first() {
                        out.identity_files.push((a.clone(), at.clone()));
                    }
                } else if key == "certificatefile" {
                    if let Some(a) = args.first() {
                        out.certificate_files.push((a.clone(), at.clone()));
                    }
                } else {
                    out.values
                        .entry(key.clone())
                        .or_insert_with(|| (args.clone(), at.clone()));
                }
            }
        }
    }
    Ok(())
}

/// The local login name, for `Match localuser` and as OpenSSH's default
/// user for a bastion.
pub(crate) fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
}

/// `Host` patterns, whitespace-separated: a `!pattern` that matches rules
/// the block out whatever else matches.
fn host_matches(patterns: &[String], names: &[&str]) -> bool {
    let mut hit = false;
    for p in patterns {
        let (negated, p) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p.as_str()),
        };
        if names.iter().any(|n| glob(p, n)) {
            if negated {
                return false;
            }
            hit = true;
        }
    }
    hit
}

/// A `Match` pattern list: comma-separated, same rules as `Host`.
fn list_matches(list: &str, names: &[&str]) -> bool {
    let patterns: Vec<String> = list.split(',').map(str::to_owned).collect();
    host_matches(&patterns, names)
}

/// OpenSSH's `match_pattern`, case-insensitive: `*` any run, `?` one
/// character.
fn glob(pattern: &str, name: &str) -> bool {
    glob_case(&pattern.to_lowercase(), &name.to_lowercase())
}

/// `glob` with case mattering, as glob(3) has it for file names.
fn glob_case(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

struct Reader {
    home: Option<PathBuf>,
    /// The files being read, outermost first: one seen again is a loop.
    open: Vec<PathBuf>,
    files: usize,
}

impl Reader {
    fn file(&mut self, path: &Path, depth: usize) -> Result<Vec<Line>, String> {
        let shown = path.display();
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.open.contains(&canonical) {
            return Err(format!("{shown}: Include loop: the file includes itself"));
        }
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(format!("{shown}: more than {MAX_FILES} files included"));
        }
        let bytes = crate::input::read(path, MAX_BYTES).map_err(|e| format!("{shown}: {e}"))?;
        let text = crate::input::text(&bytes).map_err(|e| format!("{shown}: {e}"))?;
        self.open.push(canonical);
        let file: Arc<Path> = Arc::from(path);
        let mut lines = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let at = Origin {
                file: file.clone(),
                line: n + 1,
            };
            let Some((key, args)) = tokens(raw).map_err(|e| format!("{at}: {e}"))? else {
                continue;
            };
            lines.push(match key.as_str() {
                "host" if args.is_empty() => return Err(format!("{at}: Host without a pattern")),
                "host" => Line::Host(args),
                "match" => Line::Match(criteria(&args).map_err(|e| format!("{at}: {e}"))?),
                "include" => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(format!("{at}: Include nested more than {MAX_DEPTH} deep"));
                    }
                    let mut inner = Vec::new();
                    for arg in &args {
                        for p in self.expand_include(arg).map_err(|e| format!("{at}: {e}"))? {
                            inner.extend(self.file(&p, depth + 1)?);
                        }
                    }
                    Line::Include(inner)
                }
                _ => Line::Set { key, args, at },
            });
        }
        self.open.pop();
        Ok(lines)
    }

    /// The files an `Include` argument names: `~` is the home directory, a
    /// relative path is under `~/.ssh`, and a glob in the last component
    /// matches files in sorted order. A path that names nothing is
    /// skipped, as ssh(1) skips it.
    fn expand_include(&self, arg: &str) -> Result<Vec<PathBuf>, String> {
        let path = match arg.strip_prefix("~/") {
            Some(rest) => self.home()?.join(rest),
            None if Path::new(arg).is_absolute() => PathBuf::from(arg),
            None => self.home()?.join(".ssh").join(arg),
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains(['*', '?']) {
            return Ok(if path.exists() { vec![path] } else { Vec::new() });
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        if dir.to_string_lossy().contains(['*', '?']) {
            return Err(format!("{arg:?}: a wildcard is only understood in the file name"));
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                !n.starts_with('.') && glob_case(name, &n)
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        Ok(found)
    }

    fn home(&self) -> Result<&Path, String> {
        self.home
            .as_deref()
            .ok_or_else(|| "no home directory (HOME) to expand the path in".to_owned())
    }
}

/// A line's keyword (lower case) and arguments: `Key value`, `Key=value`,
/// `"quoted words"`, `#` comments. `None` for a blank or comment line.
fn tokens(line: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '#' {
            break;
        }
        let mut arg = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => arg.push(c),
                    None => return Err("a quote without its closing quote".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                arg.push(c);
                chars.next();
            }
        }
        args.push(arg);
    }
    Ok(Some((key, args)))
}

/// `Match` criteria palisade can decide; anything else (`exec` above all:
/// palisade never runs a command from the file) is refused, since a
/// criterion read as true or false at random would apply the wrong block.
fn criteria(args: &[String]) -> Result<Vec<Criterion>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(word) = it.next() {
        let word = word.to_ascii_lowercase();
        if word == "all" {
            out.push(Criterion::All);
            continue;
        }
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("Match {word} without its patterns"))
        };
        out.push(match word.as_str() {
            "host" | "originalhost" => Criterion::Host(value()?),
            "user" => Criterion::User(value()?),
            "localuser" => Criterion::LocalUser(value()?),
            _ => {
                return Err(format!(
                    "Match {}: palisade understands Match all, host, originalhost, user and localuser only",
                    crate::text::shorten(&word, 40)
                ));
            }
        });
    }
    if out.is_empty() {
        return Err("Match without criteria".into());
    }
    Ok(out)
}

/// Which settings palisade's flags or `palisade.toml` already decided:
/// the file is not asked for those.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Given {
    pub(crate) user: bool,
    pub(crate) key: bool,
    pub(crate) certificate: bool,
    pub(crate) port: bool,
    pub(crate) jump: bool,
    pub(crate) known_hosts: bool,
    pub(crate) checking: bool,
    pub(crate) connect_timeout: bool,
}

/// A value from the file and where it was written.
pub(crate) type FromFile<T> = Option<(T, Origin)>;

/// What the file gives a run: palisade has one user, key, port and bastion
/// for all its hosts, so every host must resolve to the same values.
#[derive(Debug, Default)]
pub(crate) struct ForRun {
    pub(crate) user: FromFile<String>,
    pub(crate) key: FromFile<PathBuf>,
    /// `CertificateFile`: the first that is there.
    pub(crate) certificate: FromFile<PathBuf>,
    pub(crate) port: FromFile<u16>,
    /// `Some((None, _))`: `ProxyJump none`, no bastion even if palisade's
    /// default would have one.
    pub(crate) jump: FromFile<Option<BastionPath>>,
    pub(crate) known_hosts: FromFile<PathBuf>,
    pub(crate) checking: FromFile<HostKeyChecking>,
    pub(crate) connect_timeout: FromFile<Duration>,
    /// `ServerAliveInterval`; zero turns keepalives off.
    pub(crate) keepalive: FromFile<Duration>,
}

/// One host as the file sees it: its address (what palisade connects to)
/// and its name.
pub(crate) struct Named<'a> {
    pub(crate) address: String,
    pub(crate) name: &'a str,
}

impl SshConfigFile {
    /// The settings for the whole run. `user` is the user palisade would
    /// log in as without the file (for `Match user` and `%r`). Hosts that
    /// resolve to different values of a setting palisade has one of are
    /// refused, naming two of them.
    pub(crate) fn for_run(&self, hosts: &[Named<'_>], user: &str, given: Given) -> Result<ForRun, String> {
        let mut first: Option<(ForRun, &str)> = None;
        for host in hosts {
            let run = self.for_host(host, user, given)?;
            let Some((seen, seen_name)) = &first else {
                first = Some((run, host.name));
                continue;
            };
            let differ = |what: &str, one: &str, a: String, b: String, flag: &str| {
                format!(
                    "{}: {seen_name} and {} resolve to different {what} ({a} and {b}); palisade uses one {one} \
                     for a run: make the Host blocks agree, run the hosts apart with --limit, or give --{flag}",
                    self.path.display(),
                    host.name,
                )
            };
            fn shown<T: fmt::Debug>(v: &FromFile<T>) -> String {
                match v {
                    Some((v, at)) => format!("{v:?} at {at}"),
                    None => "unset".into(),
                }
            }
            macro_rules! same {
                ($field:ident, $what:literal, $one:literal, $flag:literal) => {
                    if seen.$field.as_ref().map(|v| &v.0) != run.$field.as_ref().map(|v| &v.0) {
                        return Err(differ(
                            $what,
                            $one,
                            shown(&seen.$field),
                            shown(&run.$field),
                            $flag,
                        ));
                    }
                };
            }
            same!(user, "users", "user", "user");
            same!(key, "keys", "key", "key");
            same!(certificate, "certificates", "certificate", "certificate");
            same!(port, "ports", "port", "port");
            same!(jump, "bastions (ProxyJump)", "bastion", "jump");
            same!(
                known_hosts,
                "known_hosts files",
                "known_hosts file",
                "known-hosts"
            );
            same!(
                checking,
                "StrictHostKeyChecking",
                "host key checking",
                "host-key-checking"
            );
            same!(
                connect_timeout,
                "connect timeouts",
                "connect timeout",
                "connect-timeout"
            );
            same!(
                keepalive,
                "ServerAliveInterval",
                "ServerAliveInterval",
                "ssh-config none"
            );
        }
        Ok(first.map(|(run, _)| run).unwrap_or_default())
    }

    fn for_host(&self, host: &Named<'_>, user: &str, given: Given) -> Result<ForRun, String> {
        let s = self.resolve(&[&host.address, host.name], user)?;
        if let Some((_, at)) = s.get("proxycommand") {
            return Err(format!(
                "{at}: ProxyCommand applies to {}: palisade runs no command from ssh_config; use ProxyJump",
                host.name
            ));
        }
        let remote_user = s.word("user").map_or(user, |(u, _)| u).to_owned();
        let expand = |arg: &str, at: &Origin| -> Result<PathBuf, String> {
            expand_path(arg, &host.address, &remote_user).map_err(|e| format!("{at}: {e}"))
        };
        if let Some((name, at)) = s.word("hostname") {
            let name = name.replace("%h", &host.address);
            if name != host.address && name != host.name {
                return Err(format!(
                    "{at}: HostName {} for {}: palisade connects to the inventory's address ({}); \
                     leave HostName out of the Host block that matches the nodes",
                    crate::text::shorten(&name, 60),
                    host.name,
                    host.address
                ));
            }
        }
        let mut run = ForRun::default();
        if !given.user {
            run.user = s.word("user").map(|(u, at)| (u.to_owned(), at.clone()));
        }
        if !given.port {
            run.port = s.word("port").map(|(p, at)| port(p, at)).transpose()?;
        }
        if !given.key {
            // ssh(1) tries each IdentityFile and skips the ones that are not
            // there; palisade uses one key, the first that is.
            for (arg, at) in &s.identity_files {
                let path = expand(arg, at)?;
                if path.exists() {
                    run.key = Some((path, at.clone()));
                    break;
                }
            }
        }
        if !given.certificate {
            // Like IdentityFile: each one that applies, the first that is
            // there (ssh(1) tries them all; palisade logs in with one).
            for (arg, at) in &s.certificate_files {
                let path = expand(arg, at)?;
                if path.exists() {
                    run.certificate = Some((path, at.clone()));
                    break;
                }
            }
        }
        if !given.known_hosts {
            run.known_hosts = s
                .word("userknownhostsfile")
                .map(|(f, at)| expand(f, at).map(|p| (p, at.clone())))
                .transpose()?;
        }
        if !given.checking {
            run.checking = s
                .word("stricthostkeychecking")
                .map(|(v, at)| {
                    let c = match v.to_ascii_lowercase().as_str() {
                        // palisade never prompts: `ask` is as strict as it gets.
                        "yes" | "ask" => HostKeyChecking::Strict,
                        "accept-new" => HostKeyChecking::AcceptNew,
                        "no" | "off" => HostKeyChecking::Off,
                        _ => {
                            return Err(format!(
                                "{at}: StrictHostKeyChecking is yes, accept-new, no, off or ask"
                            ));
                        }
                    };
                    Ok((c, at.clone()))
                })
                .transpose()?;
        }
        if !given.connect_timeout {
            run.connect_timeout = s
                .word("connecttimeout")
                .map(|(v, at)| seconds(v, at, 1).map(|d| (d, at.clone())))
                .transpose()?;
        }
        run.keepalive = s
            .word("serveraliveinterval")
            .map(|(v, at)| seconds(v, at, 0).map(|d| (d, at.clone())))
            .transpose()?;
        if !given.jump
            && let Some((args, at)) = s.get("proxyjump")
        {
            run.jump = Some((self.jump(&args.join(","), at)?, at.clone()));
        }
        Ok(run)
    }

    /// A `ProxyJump` value: `none`, or hops separated by commas, each
    /// `[user@]host[:port]` (or an `ssh://` URI) whose own Host block may
    /// give its HostName, User, Port and IdentityFile, as ssh(1) reads it
    /// for each hop. A hop's own ProxyJump is not followed: the list is the
    /// whole path.
    fn jump(&self, value: &str, at: &Origin) -> Result<Option<BastionPath>, String> {
        if value.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let parts: Vec<&str> = value.split(',').collect();
        let mut spelled = Vec::with_capacity(parts.len());
        let mut keys = Vec::with_capacity(parts.len());
        for part in &parts {
            let (hop, key) = self.hop(part)?;
            spelled.push(hop);
            keys.push(key);
        }
        let mut jump = spelled
            .join(",")
            .parse::<BastionPath>()
            .map_err(|e| format!("{at}: ProxyJump: {e}"))?;
        for (hop, key) in jump.hops.iter_mut().zip(keys) {
            hop.key = key;
        }
        Ok(Some(jump))
    }

    /// One hop of a `ProxyJump`, as `user@host:port`, with the hop's own
    /// key (the first of its IdentityFiles that is there).
    fn hop(&self, value: &str) -> Result<(String, Option<PathBuf>), String> {
        let spec = value.strip_prefix("ssh://").unwrap_or(value);
        let (user, rest) = match spec.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, spec),
        };
        let (alias, port) = match rest.strip_prefix('[') {
            Some(inner) => match inner.split_once(']') {
                Some((h, p)) => (h, p.strip_prefix(':')),
                None => (rest, None),
            },
            None => match rest.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                _ => (rest, None),
            },
        };
        let own = self.resolve(&[alias], user.unwrap_or(""))?;
        let host = own
            .word("hostname")
            .map_or(alias.to_owned(), |(h, _)| h.replace("%h", alias));
        let user = match user {
            Some(u) => u.to_owned(),
            None => own.word("user").map_or_else(local_user, |(u, _)| u.to_owned()),
        };
        let port = match port {
            Some(p) => p.to_owned(),
            None => own.word("port").map_or("22".to_owned(), |(p, _)| p.to_owned()),
        };
        let mut key = None;
        for (arg, at) in &own.identity_files {
            let path = expand_path(arg, &host, &user).map_err(|e| format!("{at}: {e}"))?;
            if path.exists() {
                key = Some(path);
                break;
            }
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok((format!("{user}@{host}:{port}"), key))
    }
}

fn port(p: &str, at: &Origin) -> Result<(u16, Origin), String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok((n, at.clone())),
        _ => Err(format!(
            "{at}: Port {}: not a port (1 to 65535)",
            crate::text::shorten(p, 20)
        )),
    }
}

/// Whole seconds, as ssh_config writes them, at least `min`.
fn seconds(v: &str, at: &Origin, min: u64) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(n) if n >= min && n <= 3600 => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "{at}: {} is not a number of seconds from {min} to 3600",
            crate::text::shorten(v, 20)
        )),
    }
}

/// `~` and the `%` tokens of a path in ssh_config that palisade knows
/// (`%d` home, `%h` host, `%r` remote user, `%u` local user, `%%`).
fn expand_path(arg: &str, host: &str, remote_user: &str) -> Result<PathBuf, String> {
    let home = std::env::var("HOME").unwrap_or_default();
    let arg = match arg.strip_prefix("~/") {
        Some(rest) => format!("{home}/{rest}"),
        None if arg == "~" => home.clone(),
        None => arg.to_owned(),
    };
    let mut out = String::new();
    let mut chars = arg.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home),
            Some('h') => out.push_str(host),
            Some('r') => out.push_str(remote_user),
            Some('u') => out.push_str(&local_user()),
            _ => {
                return Err(format!(
                    "{}: palisade knows the tokens %d %h %r %u and %% only",
                    crate::text::shorten(&arg, 60)
                ));
            }
        }
    }
    Ok(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &Path, text: &str) -> Result<SshConfigFile, String> {
        let path = dir.join("config");
        std::fs::write(&path, text).unwrap();
        SshConfigFile::load(&path, Some(dir))
    }

    fn user(cfg: &SshConfigFile, names: &[&str]) -> Option<String> {
        cfg.resolve(names, "me")
            .unwrap()
            .word("user")
            .map(|(u, _)| u.to_owned())
    }

    #[test]
    fn first_value_wins_within_and_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load(
            dir.path(),
            "Host 10.*\n  User first\n  User second\nHost *\n  User third\n  Port=2222\n",
        )
        .unwrap();
        assert_eq!(user(&cfg, &["10.0.0.1"]).as_deref(), Some("first"));
        assert_eq!(user(&cfg, &["192.0.2.1"]).as_deref(), Some("third"));
        let s = cfg.resolve(&["10.0.0.1"], "me").unwrap();
        let (port, at) = s.word("port").unwrap();
        assert_eq!((port, at.line), ("2222", 6));
    }

    #[test]
    fn patterns_wildcards_negation_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load(
            dir.path(),
            "Host 10.0.0.? !10.0.0.5 agent-*\n  User a\nHost *\n  User b\n",
        )
        .unwrap();
        assert_eq!(user(&cfg, &["10.0.0.1"]).as_deref(), Some("a"));
        assert_eq!(user(&cfg, &["10.0.0.5"]).as_deref(), Some("b"));
        assert_eq!(user(&cfg, &["10.0.0.10"]).as_deref(), Some("b"));
        assert_eq!(user(&cfg, &["198.18.1.1", "AGENT-01"]).as_deref(), Some("a"));
        // A negated match on the name rules the block out too.
        assert_eq!(user(&cfg, &["10.0.0.5", "agent-01"]).as_deref(), Some("b"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYc"));
        assert!(!glob("a*b", "aXc"));
    }

    #[test]
    fn match_host_user_and_refused_criteria() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load(
            dir.path(),
            "Host 10.*\n  User core\nMatch host 10.0.0.*,!10.0.0.9 user core\n  Port 2200\nMatch all\n  Port 22\n",
        )
        .unwrap();
        let port = |n: &str| {
            cfg.resolve(&[n], "me")
                .unwrap()
                .word("port")
                .map(|(p, _)| p.to_owned())
        };
        assert_eq!(port("10.0.0.1").as_deref(), Some("2200"));
        assert_eq!(port("10.0.0.9").as_deref(), Some("22"));
        assert_eq!(port("10.1.0.1").as_deref(), Some("22"));
        let e = load(dir.path(), "Match exec \"true\"\n  User x\n").unwrap_err();
        assert!(e.contains("config:1: Match exec: palisade understands"), "{e}");
        let e = load(dir.path(), "Match host\n").unwrap_err();
        assert!(e.contains("Match host without its patterns"), "{e}");
    }

    #[test]
    fn include_missing_is_skipped_loops_and_depth_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join(".ssh")).unwrap();
        std::fs::write(d.join(".ssh/a.conf"), "Host x\n  User from-a\n").unwrap();
        std::fs::write(d.join(".ssh/b.conf"), "Host x\n  User from-b\n").unwrap();
        let cfg = load(d, "Include nothing-here *.conf\nHost *\n  User last\n").unwrap();
        assert_eq!(user(&cfg, &["x"]).as_deref(), Some("from-a"));
        // Inside a Host block that does not match, the include adds nothing.
        let cfg = load(d, "Host y\n  Include a.conf\nHost *\n  User last\n").unwrap();
        assert_eq!(user(&cfg, &["x"]).as_deref(), Some("last"));
        std::fs::write(d.join(".ssh/loop"), "Include ~/.ssh/loop\n").unwrap();
        let e = load(d, "Include loop\n").unwrap_err();
        assert!(e.contains("Include loop"), "{e}");
        let e = load(d, "Host a\n  User \"unclosed\n").unwrap_err();
        assert!(e.ends_with("config:2: a quote without its closing quote"), "{e}");
    }

    #[test]
    fn big_files_unknown_keywords_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let big = "# padding\n".repeat(1 << 20);
        let e = load(dir.path(), &big).unwrap_err();
        assert!(e.contains("config"), "{e}");
        let cfg = load(dir.path(), "FrobnicateHarder yes\nUser \"a b\" # comment\n").unwrap();
        assert_eq!(user(&cfg, &["h"]).as_deref(), Some("a b"));
        assert_eq!(tokens("  ").unwrap(), None);
        assert_eq!(
            tokens("Port=22").unwrap(),
            Some(("port".into(), vec!["22".into()]))
        );
    }

    #[test]
    fn proxyjump_of_several_hops_takes_each_hops_own_block() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("b2_key");
        std::fs::write(&key, "not read here").unwrap();
        let cfg = load(
            dir.path(),
            &format!(
                "Host b1\n  HostName 198.18.1.1\n  User ops\n\
                 Host b2\n  HostName 2001:2::2\n  Port 2222\n  User core\n  IdentityFile {}/missing\n  \
                 IdentityFile {}\n\
                 Host 10.*\n  ProxyJump b1,root@b2:22\n",
                dir.path().display(),
                key.display()
            ),
        )
        .unwrap();
        let at = Origin {
            file: Arc::from(dir.path().join("config").as_path()),
            line: 5,
        };
        let jump = cfg.jump("b1,root@b2:22", &at).unwrap().unwrap();
        assert_eq!(jump.to_string(), "ops@198.18.1.1:22,root@[2001:2::2]:22");
        assert_eq!(jump.hops[0].key, None);
        assert_eq!(jump.hops[1].key.as_deref(), Some(key.as_path()));
        assert_eq!(cfg.jump("NONE", &at).unwrap(), None);
        let e = cfg.jump("b1,", &at).unwrap_err();
        assert!(e.contains("config:5: ProxyJump: hop 2 of 2"), "{e}");
    }

    #[test]
    fn certificate_file_is_the_first_that_is_there_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("id-cert.pub");
        std::fs::write(&cert, "not read here").unwrap();
        let d = dir.path().display();
        let cfg = load(
            dir.path(),
            &format!(
                "Host 10.*
  CertificateFile {d}/missing-cert.pub
Host *
  CertificateFile {d}/id-cert.pub
"
            ),
        )
        .unwrap();
        let host = Named {
            address: "10.0.0.1".into(),
            name: "node-1",
        };
        let run = cfg.for_run(&[host], "core", Given::default()).unwrap();
        let (path, at) = run.certificate.unwrap();
        assert_eq!((path.as_path(), at.line), (cert.as_path(), 4));
        let host = Named {
            address: "10.0.0.1".into(),
            name: "node-1",
        };
        let given = Given {
            certificate: true,
            ..Given::default()
        };
        assert!(cfg.for_run(&[host], "core", given).unwrap().certificate.is_none());
    }
}
