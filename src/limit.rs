//! `--limit`: which hosts of the fleet a run works on, the way Ansible's
//! `--limit` chooses them.
//!
//! A pattern matches a host by its role, its name or any of its addresses;
//! it may be a glob (`agent-*`, `198.18.0.*`), an address in any spelling
//! (`2001:db8::1`), or a network (`10.0.0.0/8`). `!PATTERN` excludes, and
//! `@FILE` reads patterns from a file, one a line (a retry file). The
//! selection is the union of the positive patterns (every host when there
//! are only exclusions) less the exclusions, as in Ansible.
//!
//! Only which nodes are contacted depends on the limit: the whitelist is
//! always computed from the whole inventory, so a limited run never takes a
//! node that was left out off the others' whitelists.

use std::net::IpAddr;
use std::path::PathBuf;

use globset::{Glob, GlobMatcher};
use ipnet::IpNet;

use crate::inventory::Host;

/// What a `--limit` cannot be.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// `@FILE` names a file that cannot be read.
    #[error("--limit @{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A pattern that is not a valid glob (an unclosed `[`, say).
    #[error("--limit: {pattern:?} is not a valid pattern: {reason}")]
    Pattern { pattern: String, reason: String },
    /// Nothing to match: `--limit ''`, `--limit !` or an empty file.
    #[error("--limit {limit:?} has no pattern")]
    Empty { limit: String },
    /// The patterns select no host: a run would do nothing, which is never
    /// what the operator meant.
    #[error("--limit {limit:?} matches no host of the inventory")]
    NoHost { limit: String },
}

/// A parsed `--limit`.
#[derive(Clone, Debug)]
pub(crate) struct Limit {
    /// The flags as given, for messages.
    text: String,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

#[derive(Clone, Debug)]
struct Pattern {
    text: String,
    matcher: Matcher,
}

#[derive(Clone, Debug)]
enum Matcher {
    /// An address, compared as an address: `2001:db8::1` matches
    /// `2001:db8:0::1`.
    Addr(IpAddr),
    /// Every address inside a network.
    Net(IpNet),
    /// Role, name or any address's text.
    Glob(GlobMatcher),
}

/// The hosts a limit selected.
#[derive(Debug)]
pub(crate) struct Selection {
    pub(crate) hosts: Vec<Host>,
    /// Positive patterns that matched no host: Ansible warns and goes on, so
    /// does palisade (a retry file may name a host since taken out).
    pub(crate) unmatched: Vec<String>,
}

impl Limit {
    /// Parses the values of every `--limit` flag: comma-separated patterns,
    /// `@FILE` read here (the only I/O), one pattern a line, blank lines and
    /// lines starting with `#` skipped.
    pub(crate) fn parse(values: &[String]) -> Result<Limit, Error> {
        let text = values.join(",");
        let mut words = Vec::new();
        for word in values.iter().flat_map(|v| v.split(',')) {
            let word = word.trim();
            match word.strip_prefix('@') {
                Some(path) => {
                    let path = PathBuf::from(path);
                    let content = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                        path: path.clone(),
                        source,
                    })?;
                    words.extend(
                        content
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(String::from),
                    );
                }
                None if word.is_empty() => {}
                None => words.push(word.to_owned()),
            }
        }
        let (mut include, mut exclude) = (Vec::new(), Vec::new());
        for word in words {
            match word.strip_prefix('!') {
                Some(rest) => exclude.push(Pattern::new(rest)?),
                None => include.push(Pattern::new(&word)?),
            }
        }
        if include.is_empty() && exclude.is_empty() {
            return Err(Error::Empty { limit: text });
        }
        Ok(Limit {
            text,
            include,
            exclude,
        })
    }

    /// The hosts of `hosts` the limit selects, in their order. An empty
    /// selection is an error that names the limit.
    pub(crate) fn select(&self, hosts: &[Host]) -> Result<Selection, Error> {
        let unmatched = self
            .include
            .iter()
            .filter(|p| !hosts.iter().any(|h| p.matches(h)))
            .map(|p| p.text.clone())
            .collect();
        let selected: Vec<Host> = hosts
            .iter()
            .filter(|h| self.include.is_empty() || self.include.iter().any(|p| p.matches(h)))
            .filter(|h| !self.exclude.iter().any(|p| p.matches(h)))
            .cloned()
            .collect();
        if selected.is_empty() {
            return Err(Error::NoHost {
                limit: self.text.clone(),
            });
        }
        Ok(Selection {
            hosts: selected,
            unmatched,
        })
    }
}

impl Pattern {
    fn new(text: &str) -> Result<Pattern, Error> {
        if text.is_empty() {
            return Err(Error::Pattern {
                pattern: format!("!{text}"),
                reason: "nothing after `!`".into(),
            });
        }
        let matcher = if let Ok(addr) = text.parse::<IpAddr>() {
            Matcher::Addr(addr)
        } else if let Ok(net) = text.parse::<IpNet>() {
            Matcher::Net(net.trunc())
        } else {
            let glob = Glob::new(text).map_err(|e| Error::Pattern {
                pattern: text.to_owned(),
                reason: e.kind().to_string(),
            })?;
            Matcher::Glob(glob.compile_matcher())
        };
        Ok(Pattern {
            text: text.to_owned(),
            matcher,
        })
    }

    fn matches(&self, host: &Host) -> bool {
        // The SSH address is among `addresses()`.
        match &self.matcher {
            Matcher::Addr(addr) => host.addresses().any(|a| a == *addr),
            Matcher::Net(net) => host.addresses().any(|a| net.contains(&a)),
            Matcher::Glob(glob) => {
                glob.is_match(host.role().as_str())
                    || glob.is_match(host.name().as_str())
                    || host.addresses().any(|a| glob.is_match(a.to_string()))
            }
        }
    }
}

/// A host name as a pattern that matches that name literally: glob
/// characters are escaped, and so is a leading `!` or `#`, so that a retry
/// file names exactly the hosts that failed.
pub(crate) fn literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for (i, c) in name.chars().enumerate() {
        let special =
            matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') || (i == 0 && matches!(c, '!' | '#' | '@'));
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{RoleRules, Source};

    fn fleet() -> Vec<Host> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/hosts.toml");
        crate::inventory::load(&Source::Static(path.into()), &RoleRules::default())
            .unwrap()
            .hosts
    }

    fn names(limit: &str) -> Vec<String> {
        let limit = Limit::parse(&[limit.to_owned()]).unwrap();
        let sel = limit.select(&fleet()).unwrap();
        sel.hosts.iter().map(|h| h.name().to_string()).collect()
    }

    #[test]
    fn role_name_glob_address_network_and_exclusion() {
        assert_eq!(names("agent"), ["packet-dcos-agent-00", "packet-dcos-agent-01"]);
        assert_eq!(names("master,public-agent").len(), 2);
        assert_eq!(names("packet-dcos-agent-0*"), names("agent"));
        assert_eq!(names("147.75.100.2*"), names("agent"));
        assert_eq!(names("10.100.5.21"), ["packet-dcos-agent-00"]);
        assert_eq!(names("2604:1380:1:4d00:0::15"), ["packet-dcos-agent-00"]);
        assert_eq!(
            names("10.100.5.20/30"),
            ["packet-dcos-agent-00", "packet-dcos-agent-01"]
        );
        assert_eq!(names("agent,!*-01"), ["packet-dcos-agent-00"]);
        let all = fleet().len();
        assert_eq!(names("!bootstrap").len(), all - 1);
        assert_eq!(names("!bootstrap,!master").len(), all - 2);
    }

    #[test]
    fn nothing_selected_is_an_error_naming_the_limit() {
        let limit = Limit::parse(&["agent-9*".into()]).unwrap();
        let err = limit.select(&fleet()).unwrap_err().to_string();
        assert_eq!(err, "--limit \"agent-9*\" matches no host of the inventory");
        let limit = Limit::parse(&["agent,!agent".into()]).unwrap();
        assert!(matches!(limit.select(&fleet()), Err(Error::NoHost { .. })));
        assert!(matches!(Limit::parse(&[",".into()]), Err(Error::Empty { .. })));
        assert!(matches!(Limit::parse(&["a[".into()]), Err(Error::Pattern { .. })));
        assert!(matches!(Limit::parse(&["!".into()]), Err(Error::Pattern { .. })));
    }

    #[test]
    fn unmatched_positive_patterns_are_reported_not_fatal() {
        let limit = Limit::parse(&["master,nobody".into()]).unwrap();
        let sel = limit.select(&fleet()).unwrap();
        assert_eq!(sel.hosts.len(), 1);
        assert_eq!(sel.unmatched, ["nobody"]);
    }

    #[test]
    fn a_file_of_patterns_and_literal_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("failed");
        let odd = ["web[1]", "!x", "#y", "a*b", "@z", "back\\slash"];
        let mut text = String::from("# palisade apply\n\n");
        for name in ["packet-dcos-master-00"].iter().chain(&odd) {
            text += &format!("{}\n", literal(name));
        }
        std::fs::write(&file, text).unwrap();
        let limit = Limit::parse(&[format!("@{}", file.display()), "bootstrap".into()]).unwrap();
        let sel = limit.select(&fleet()).unwrap();
        let got: Vec<&str> = sel.hosts.iter().map(|h| h.name().as_str()).collect();
        assert_eq!(got, ["packet-dcos-master-00", "packet-dcos-bootstrap-00"]);
        assert_eq!(sel.unmatched, odd.map(literal));
        // Each escaped name matches itself and nothing else.
        for name in odd {
            let p = Pattern::new(&literal(name)).unwrap();
            let Matcher::Glob(g) = &p.matcher else {
                panic!("{name}: not a glob")
            };
            assert!(g.is_match(name), "{name} -> {}", literal(name));
            assert!(!g.is_match(format!("{name}x")), "{name}");
        }
        let missing = Limit::parse(&["@/nonexistent/failed".into()]).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("--limit @/nonexistent/failed: cannot read")
        );
    }
}
