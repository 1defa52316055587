//! Host keys, with OpenSSH's `known_hosts` format and meaning, in a file of
//! the cluster's own.
//!
//! We match lines ourselves rather than use russh's checker: that one rejects
//! a host as soon as *any* line of the same key type differs, even when a
//! later line matches, which is exactly what a reprovisioned bare-metal fleet
//! (same IPs, new keys, old lines left behind) produces. Here any matching
//! line accepts; plain, wildcard (`*`, `?`), negated (`!`) and hashed
//! (`|1|salt|hash`) host patterns all work; `@revoked` keys are refused, and
//! `@cert-authority` lines name the CAs whose host certificates are
//! trusted for the hosts they match (see `certs`).
//!
//! A host that already has keys on record but presents another one is
//! refused as changed, whatever its type: palisade asks for the recorded
//! algorithms first (as OpenSSH does), so an honest server presents a known
//! key and only a different machine presents an unknown one.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;

/// What the file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyMatch {
    /// A line for this host holds this key.
    Known,
    /// No line names this host.
    Unknown,
    /// Lines name this host, none with this key.
    Changed {
        /// `line N: SHA256:…` for each key on record.
        known: Vec<String>,
    },
    /// The key is marked `@revoked`.
    Revoked { line: usize },
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    patterns: String,
    key: PublicKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// One known_hosts file, loaded once per run and appended to as new hosts
/// are learned. Appends are serialised within the process by a mutex and
/// across processes by `flock`.
#[derive(Debug)]
pub(crate) struct KnownHosts {
    path: PathBuf,
    entries: Mutex<Vec<Entry>>,
}

impl KnownHosts {
    /// Reads the file; a missing file is an empty one. Lines that do not
    /// parse are skipped, as OpenSSH skips them.
    pub(crate) fn load(path: &Path) -> std::io::Result<KnownHosts> {
        use crate::input::{self, ReadError};
        // Bounded, and never a device or a silent pipe: `--known-hosts`
        // names any file.
        let bytes = match input::read(path, 64 << 20) {
            Ok(bytes) => bytes,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(ReadError::Io(e)) => return Err(e),
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        };
        let text = input::text(&bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(KnownHosts {
            path: path.to_owned(),
            entries: Mutex::new(parse(text)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn check(&self, host: &str, port: u16, key: &PublicKey) -> KeyMatch {
        let name = host_name(host, port);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut known = Vec::new();
        for e in entries.iter().filter(|e| host_matches(&e.patterns, &name)) {
            match e.marker {
                Marker::CertAuthority => {}
                Marker::Revoked if same_key(&e.key, key) => return KeyMatch::Revoked { line: e.line },
                Marker::Revoked => {}
                Marker::None if same_key(&e.key, key) => return KeyMatch::Known,
                Marker::None => known.push(format!("line {}: {}", e.line, describe(&e.key))),
            }
        }
        if known.is_empty() {
            KeyMatch::Unknown
        } else {
            KeyMatch::Changed { known }
        }
    }

    /// The `@cert-authority` lines that match the host: their line
    /// numbers and CA keys.
    pub(crate) fn authorities(&self, host: &str, port: u16) -> Vec<(usize, PublicKey)> {
        let name = host_name(host, port);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter(|e| e.marker == Marker::CertAuthority && host_matches(&e.patterns, &name))
            .map(|e| (e.line, e.key.clone()))
            .collect()
    }

    /// The line of a `@revoked` entry for the host that holds `key`, if
    /// any: a host certificate is refused when its key or its CA's is.
    pub(crate) fn revoked(&self, host: &str, port: u16, key: &PublicKey) -> Option<usize> {
        let name = host_name(host, port);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| {
                e.marker == Marker::Revoked && same_key(&e.key, key) && host_matches(&e.patterns, &name)
            })
            .map(|e| e.line)
    }

    /// Host key algorithms on record for the host, to ask the server for
    /// first (OpenSSH's "known host reordering").
    pub(crate) fn algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_name(host, port);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Algorithm> = Vec::new();
        for e in entries.iter() {
            if e.marker == Marker::None && host_matches(&e.patterns, &name) {
                let algs = match e.key.algorithm() {
                    Algorithm::Rsa { .. } => vec![
                        Algorithm::Rsa {
                            hash: Some(HashAlg::Sha512),
                        },
                        Algorithm::Rsa {
                            hash: Some(HashAlg::Sha256),
                        },
                    ],
                    other => vec![other],
                };
                for a in algs {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    /// Records a newly seen host key (accept-new).
    pub(crate) fn learn(&self, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
        let name = host_name(host, port);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut plain = key.clone();
        plain.set_comment("");
        let encoded = plain
            .to_openssh()
            .map_err(|e| std::io::Error::other(format!("cannot encode host key: {e}")))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        let _lock = Flock::exclusive(&file)?;
        // Another palisade may have appended meanwhile: count lines afresh.
        let lines = std::fs::read_to_string(&self.path)?.lines().count();
        // `&File` writes too, so the lock's borrow of the file can stay.
        writeln!(&mut &file, "{name} {}", encoded.trim_end())?;
        file.sync_data()?;
        entries.push(Entry {
            line: lines + 1,
            marker: Marker::None,
            patterns: name,
            key: plain,
        });
        Ok(())
    }
}

/// `SHA256:… (ssh-ed25519)`, as people compare keys.
pub(crate) fn describe(key: &PublicKey) -> String {
    format!("{} ({})", key.fingerprint(HashAlg::Sha256), key.algorithm())
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// OpenSSH names a host on another port `[host]:port`.
pub(crate) fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next().unwrap_or_default();
        }
        let (Some(kind), Some(data)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(key) = PublicKey::from_openssh(&format!("{kind} {data}")) else {
            tracing::debug!("known_hosts line {}: unreadable key, skipped", i + 1);
            continue;
        };
        out.push(Entry {
            line: i + 1,
            marker,
            patterns: first.to_owned(),
            key,
        });
    }
    out
}

/// Whether a comma-separated pattern list names `host`: a negated pattern
/// that matches vetoes the line, as in OpenSSH.
fn host_matches(patterns: &str, host: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_matches(hashed, host);
    }
    let mut hit = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, host) {
                return false;
            }
        } else if wildcard(p, host) {
            hit = true;
        }
    }
    hit
}

fn hashed_matches(salt_and_hash: &str, host: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt.as_bytes()), BASE64.decode(hash.as_bytes())) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(host.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` globbing, case-insensitive as OpenSSH's host matching is.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// An advisory lock held for as long as the value lives.
struct Flock<'a>(&'a std::fs::File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a std::fs::File) -> std::io::Result<Flock<'a>> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own, for the lifetime of `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Flock(file))
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above; unlocking cannot fail in a way we could act on.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMPajwsG/HEj4RgIc4zsOskHO760XpMFggu1A4ufMRro";
    const ED_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMzMmV1Gapiz6cPjK0KPcchjrdfrXZG6c3YoGk8HU2dM";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn hosts(text: &str) -> KnownHosts {
        KnownHosts {
            path: PathBuf::from("/dev/null"),
            entries: Mutex::new(parse(text)),
        }
    }

    #[test]
    fn any_matching_line_accepts() {
        // An old line for the same address, left over from before the node was
        // reprovisioned, must not veto the line that matches.
        let kh = hosts(&format!("198.18.1.10 {ED_B}\n198.18.1.10 {ED_A}\n"));
        assert_eq!(kh.check("198.18.1.10", 22, &key(ED_A)), KeyMatch::Known);
    }

    #[test]
    fn a_different_key_is_a_change_and_names_the_lines() {
        let kh = hosts(&format!("# comment\n198.18.1.10 {ED_B}\n"));
        match kh.check("198.18.1.10", 22, &key(ED_A)) {
            KeyMatch::Changed { known } => {
                assert_eq!(known.len(), 1);
                assert!(known[0].starts_with("line 2: SHA256:"), "{known:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(kh.check("198.18.1.11", 22, &key(ED_A)), KeyMatch::Unknown);
    }

    #[test]
    fn ports_patterns_and_negation() {
        let kh = hosts(&format!(
            "[198.18.1.10]:2222 {ED_A}\n198.18.2.*,!198.18.2.7 {ED_A}\nNODE-? {ED_A}\n"
        ));
        assert_eq!(kh.check("198.18.1.10", 2222, &key(ED_A)), KeyMatch::Known);
        assert_eq!(kh.check("198.18.1.10", 22, &key(ED_A)), KeyMatch::Unknown);
        assert_eq!(kh.check("198.18.2.99", 22, &key(ED_A)), KeyMatch::Known);
        assert_eq!(kh.check("198.18.2.7", 22, &key(ED_A)), KeyMatch::Unknown);
        assert_eq!(kh.check("node-1", 22, &key(ED_A)), KeyMatch::Known);
    }

    #[test]
    fn hashed_entries() {
        // From `ssh-keygen -H`: |1|salt|HMAC-SHA1(salt, "198.18.1.10").
        let salt = [7u8; 20];
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt).unwrap();
        mac.update(b"198.18.1.10");
        let hash = mac.finalize().into_bytes();
        let line = format!("|1|{}|{} {ED_A}\n", BASE64.encode(&salt), BASE64.encode(&hash));
        let kh = hosts(&line);
        assert_eq!(kh.check("198.18.1.10", 22, &key(ED_A)), KeyMatch::Known);
        assert!(matches!(
            kh.check("198.18.1.10", 22, &key(ED_B)),
            KeyMatch::Changed { .. }
        ));
        assert_eq!(kh.check("198.18.1.11", 22, &key(ED_A)), KeyMatch::Unknown);
    }

    #[test]
    fn revoked_and_cert_authority_markers() {
        let kh = hosts(&format!("@revoked * {ED_B}\n@cert-authority * {ED_A}\n"));
        assert_eq!(
            kh.check("198.18.1.10", 22, &key(ED_B)),
            KeyMatch::Revoked { line: 1 }
        );
        assert_eq!(kh.check("198.18.1.10", 22, &key(ED_A)), KeyMatch::Unknown);
    }

    #[test]
    fn cert_authority_lines_name_the_cas_of_the_hosts_they_match() {
        let salt = [9u8; 20];
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt).unwrap();
        mac.update(b"[198.18.1.12]:2222");
        let hashed = format!(
            "|1|{}|{}",
            BASE64.encode(&salt),
            BASE64.encode(&mac.finalize().into_bytes())
        );
        let kh = hosts(&format!(
            "@cert-authority 198.18.1.*,!198.18.1.99 {ED_A}\n\
             @cert-authority {hashed} {ED_B}\n\
             198.18.1.10 {ED_B}\n\
             @revoked 198.18.1.11 {ED_A}\n"
        ));
        assert_eq!(kh.authorities("198.18.1.10", 22), vec![(1, key(ED_A))]);
        assert_eq!(kh.authorities("198.18.1.99", 22), vec![]);
        assert_eq!(kh.authorities("198.18.2.1", 22), vec![]);
        // `[host]:port` for another port, hashed names too, as OpenSSH.
        assert_eq!(kh.authorities("198.18.1.12", 2222), vec![(2, key(ED_B))]);
        assert_eq!(kh.authorities("198.18.1.12", 22), vec![(1, key(ED_A))]);
        // A plain line is no CA, and a CA line vouches for no plain key.
        assert_eq!(kh.check("198.18.1.12", 22, &key(ED_A)), KeyMatch::Unknown);
        assert_eq!(kh.revoked("198.18.1.11", 22, &key(ED_A)), Some(4));
        assert_eq!(kh.revoked("198.18.1.10", 22, &key(ED_A)), None);
        assert_eq!(kh.revoked("198.18.1.11", 22, &key(ED_B)), None);
    }

    #[test]
    fn learn_appends_and_remembers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let kh = KnownHosts::load(&path).unwrap();
        kh.learn("198.18.1.10", 22, &key(ED_A)).unwrap();
        kh.learn("198.18.1.11", 2222, &key(ED_B)).unwrap();
        assert_eq!(kh.check("198.18.1.10", 22, &key(ED_A)), KeyMatch::Known);
        let again = KnownHosts::load(&path).unwrap();
        assert_eq!(again.check("198.18.1.11", 2222, &key(ED_B)), KeyMatch::Known);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("198.18.1.10 ssh-ed25519 "), "{text}");
        assert!(text.contains("[198.18.1.11]:2222 ssh-ed25519 "), "{text}");
        assert_eq!(again.algorithms("198.18.1.10", 22), vec![Algorithm::Ed25519]);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "x"));
        assert!(wildcard("a*c", "abbbc"));
        assert!(!wildcard("a*c", "abbbd"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
    }
}
