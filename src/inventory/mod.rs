//! The fleet: which nodes exist, what role each plays and every address it has.
//!
//! Terraform has written its state in several shapes over the years and
//! operators hand us whichever they have, so [`load`] sniffs the document and
//! hands it to the matching reader (`tfstate_v3`, `tfstate_v4`, `show_json`,
//! `outputs`). Each reader only walks its own shape and yields raw
//! [`device::Device`] records of the machine types the type table (`types`)
//! knows; `device` reads their addresses, names and tags through that table
//! and turns them into validated [`Host`]s in one place, so every format and
//! every provider gets the same address rules and the same errors. A static
//! TOML inventory (`static_file`) serves fleets without Terraform.

mod address;
mod census;
mod device;
mod error;
mod flatmap;
mod joins;
mod outputs;
mod path;
mod roles;
mod shape;
mod show_json;
mod static_file;
mod tfstate_v3;
mod tfstate_v4;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use address::{ConnectOrder, ConnectVia};
pub(crate) use census::{Census, Survey};
pub(crate) use error::Error;
pub(crate) use roles::RoleRule;
pub use roles::RoleRules;
pub(crate) use types::TypeSpec;

/// What a node does in the cluster. The order of the variants is the order of
/// reports: masters first, as operators list a DC/OS cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Master,
    Agent,
    PublicAgent,
    Bootstrap,
    /// A device palisade knows nothing more about.
    Node,
}

impl Role {
    pub(crate) const ALL: [Role; 5] = [
        Role::Master,
        Role::Agent,
        Role::PublicAgent,
        Role::Bootstrap,
        Role::Node,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Agent => "agent",
            Role::PublicAgent => "public-agent",
            Role::Bootstrap => "bootstrap",
            Role::Node => "node",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            format!("unknown role {s:?} (expected master, agent, public-agent, bootstrap or node)")
        })
    }
}

/// A node's display name. Only printable, non-blank text without control
/// characters is admitted, so a hostile state file cannot write terminal
/// escapes into a report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct HostName(String);

impl HostName {
    pub(crate) fn parse(s: &str) -> Option<HostName> {
        HostName::check(s).ok()
    }

    /// [`HostName::parse`], saying what is wrong with a name it refuses.
    pub(crate) fn check(s: &str) -> Result<HostName, &'static str> {
        if s.is_empty() {
            Err("it is empty")
        } else if s.len() > 253 {
            Err("longer than 253 bytes")
        } else if s.chars().any(char::is_control) {
            Err("it holds control characters")
        } else if s.chars().any(char::is_whitespace) {
            Err("it holds blanks")
        } else if matches!(crate::text::escape(s), std::borrow::Cow::Owned(_)) {
            // Zero-width and direction-changing code points make two names
            // look alike (what is left after control characters and blanks).
            Err("it holds invisible or direction-changing characters")
        } else {
            Ok(HostName(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A deposed object's name: its own, marked with its deposed key, so it
    /// never collides with its replacement's (which usually has the same
    /// hostname). The one blank in a name is the one palisade puts there.
    pub(crate) fn deposed(&self, key: &str) -> HostName {
        HostName(format!("{} (deposed {key})", self.0))
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a Terraform instance stands in its life. Every one of them is a
/// running machine, so every one is admitted by the whitelist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Lifecycle {
    /// The instance Terraform keeps (and every host of a static inventory).
    #[default]
    Current,
    /// Marked for replacement by the next apply; still running, and managed
    /// like the others.
    Tainted,
    /// An old object `create_before_destroy` keeps running until its
    /// replacement is up: admitted, but never changed (it is going away).
    Deposed,
}

/// One node of the fleet.
///
/// Its fields are private so that every host is built by [`Host::new`],
/// which keeps the SSH address among the node's addresses; the rest of the
/// crate reads them through the accessors below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    name: HostName,
    role: Role,
    /// Where palisade connects: the node's public IPv4 for Terraform fleets.
    address: IpAddr,
    /// Every IPv4 address of the node, the SSH address included.
    ipv4: BTreeSet<Ipv4Addr>,
    /// Every IPv6 address of the node.
    ipv6: BTreeSet<Ipv6Addr>,
    #[serde(skip_serializing_if = "Lifecycle::is_current")]
    lifecycle: Lifecycle,
    /// Where the host came from (a Terraform resource address or a file
    /// entry), for error messages; not part of any report.
    #[serde(skip)]
    origin: String,
}

impl Host {
    /// A host from all of its addresses; the SSH address is always among them.
    pub(crate) fn new(
        name: HostName,
        role: Role,
        address: IpAddr,
        mut all: BTreeSet<IpAddr>,
        origin: String,
    ) -> Host {
        all.insert(address);
        let (mut ipv4, mut ipv6) = (BTreeSet::new(), BTreeSet::new());
        for addr in all {
            match addr {
                IpAddr::V4(v4) => ipv4.insert(v4),
                IpAddr::V6(v6) => ipv6.insert(v6),
            };
        }
        Host {
            name,
            role,
            address,
            ipv4,
            ipv6,
            lifecycle: Lifecycle::Current,
            origin,
        }
    }

    /// The node's name, unique in its inventory: how reports and `--limit`
    /// name it.
    pub fn name(&self) -> &HostName {
        &self.name
    }

    /// The node's role, which decides its place in reports and what the
    /// policy opens to it.
    pub(crate) fn role(&self) -> Role {
        self.role
    }

    /// Where palisade connects over SSH; always among [`Host::addresses`].
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Every IPv6 address of the node, the SSH address included when it is
    /// one (the v4 ones are in [`Host::addresses`]).
    pub fn ipv6(&self) -> &BTreeSet<Ipv6Addr> {
        &self.ipv6
    }

    /// Where the instance stands in Terraform's life cycle: a deposed one
    /// is admitted but never changed.
    pub(crate) fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Marks the host tainted or deposed, for tests of how reports show it
    /// (the readers set it from the state).
    #[cfg(test)]
    pub(crate) fn set_lifecycle(&mut self, lifecycle: Lifecycle) {
        self.lifecycle = lifecycle;
    }

    /// Every address of the node, v4 first.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.ipv4.iter().copied().map(IpAddr::V4);
        v4.chain(self.ipv6.iter().copied().map(IpAddr::V6))
    }
}

impl Lifecycle {
    pub(crate) fn is_current(&self) -> bool {
        *self == Lifecycle::Current
    }
}

/// The whole fleet, sorted by role and then by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// Every host, each built by `Host::new`, names unique.
    pub hosts: Vec<Host>,
}

/// Where to read the fleet from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A Terraform document in any format; `-` is standard input.
    Terraform(PathBuf),
    /// A static TOML inventory.
    Static(PathBuf),
}

/// Reads the fleet. Nothing is contacted: this only reads local files.
pub(crate) fn load(source: &Source, rules: &RoleRules) -> Result<Inventory, Error> {
    survey(source, rules).map(|s| s.inventory)
}

/// Reads the fleet and, for a Terraform state, what else the state held
/// (`palisade inventory` shows it).
pub(crate) fn survey(source: &Source, rules: &RoleRules) -> Result<Survey, Error> {
    match source {
        Source::Terraform(path) => {
            let origin = Origin::of(path);
            let bytes = read(path, &origin, crate::input::MAX_BYTES)?;
            from_terraform(&bytes, &origin, rules)
        }
        Source::Static(path) => {
            let origin = Origin::of(path);
            let bytes = read(path, &origin, crate::input::MAX_INVENTORY_BYTES)?;
            let survey = parse_static(&bytes, &origin.to_string())?;
            Ok(survey)
        }
    }
}

/// Parses a static TOML inventory. Public for tests and fuzzing: it never
/// panics, whatever the bytes.
pub fn parse_static(bytes: &[u8], file: &str) -> Result<Survey, Error> {
    let origin = Origin(file.into());
    let text = text(bytes, &origin)?;
    let hosts = static_file::parse(text, &origin)?;
    let inventory = finish(hosts, &origin, || {
        "hosts under [[master]], [[agent]], [[public-agent]], [[bootstrap]] or [[node]]".into()
    })?;
    Ok(Survey {
        inventory,
        census: None,
        left_out: Vec::new(),
    })
}

/// The name of the document being read, as error messages show it.
#[derive(Clone, Debug)]
pub(crate) struct Origin(String);

impl Origin {
    fn of(path: &Path) -> Origin {
        if path == Path::new("-") {
            Origin("<stdin>".into())
        } else {
            Origin(path.display().to_string())
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn read(path: &Path, origin: &Origin, cap: u64) -> Result<Vec<u8>, Error> {
    crate::input::read(path, cap).map_err(|why| Error::Read {
        file: origin.to_string(),
        why,
    })
}

/// The document as text: UTF-8 (a byte order mark is dropped), not empty.
fn text<'b>(bytes: &'b [u8], origin: &Origin) -> Result<&'b str, Error> {
    let text = crate::input::text(bytes).map_err(|why| Error::Text {
        file: origin.to_string(),
        why,
    })?;
    if text.trim().is_empty() {
        return Err(Error::Empty {
            file: origin.to_string(),
        });
    }
    Ok(text)
}

/// Parses a Terraform document of any supported format. Public for tests and
/// fuzzing: it never panics, whatever the bytes.
pub fn parse_terraform(bytes: &[u8], file: &str, rules: &RoleRules) -> Result<Inventory, Error> {
    survey_terraform(bytes, file, rules).map(|s| s.inventory)
}

/// [`parse_terraform`] with the census.
pub fn survey_terraform(bytes: &[u8], file: &str, rules: &RoleRules) -> Result<Survey, Error> {
    from_terraform(bytes, &Origin(file.into()), rules)
}

fn from_terraform(bytes: &[u8], origin: &Origin, rules: &RoleRules) -> Result<Survey, Error> {
    let text = text(bytes, origin)?;
    let doc: Value = crate::input::json(text).map_err(|e| {
        if crate::input::Looks::of(text) == crate::input::Looks::Toml {
            Error::WrongKind {
                file: origin.to_string(),
                detail: "this is TOML, not a Terraform JSON document: a static inventory is read \
                         with --inventory, palisade's config with --config",
            }
        } else {
            Error::json(origin, &e)
        }
    })?;
    let format = Format::sniff(&doc, origin)?;
    let mut skipped = BTreeMap::new();
    let devices = match format {
        Format::StateV3 => tfstate_v3::devices(&doc, origin, rules, &mut skipped)?,
        Format::StateV4 => tfstate_v4::devices(&doc, origin, rules, &mut skipped)?,
        Format::ShowJson => show_json::devices(&doc, origin, rules, &mut skipped)?,
        Format::Outputs => return from_outputs(&doc, origin, rules),
    };
    let (machines, sources): (Vec<_>, Vec<_>) = devices.into_iter().partition(|d| rules.is_device(&d.rtype));
    let joins = joins::Joins::collect(&sources, origin)?;
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for device in &machines {
        *found.entry(device.rtype.clone()).or_default() += 1;
    }
    let built = device::hosts(machines, origin, rules, &joins)?;
    let inventory = finish(built.hosts, origin, || {
        let mut looked_for = format!("managed resources of a machine type: {}", rules.describe_types());
        if !skipped.is_empty() {
            looked_for.push_str(&format!(
                "; the file holds only {}: a machine type palisade does not know is described \
                 in a [terraform.types.NAME] table in palisade.toml",
                Census::describe(&skipped)
            ));
        }
        looked_for
    })?;
    Ok(Survey {
        inventory,
        census: Some(Census { found, skipped }),
        left_out: built.left_out,
    })
}

/// `terraform output -json`: public IPv4s only, so no other address to
/// connect to, and no resource types to count.
fn from_outputs(doc: &Value, origin: &Origin, rules: &RoleRules) -> Result<Survey, Error> {
    if !rules.connect_via().kinds().contains(&ConnectVia::Public) {
        return Err(Error::NoAddress {
            file: origin.to_string(),
            resource: "terraform output -json".into(),
            wanted: rules.connect_via().wanted(),
            looked_at: outputs::NAMES.join(", "),
            hint: "outputs hold only each node's public IPv4: read the state itself \
                   (terraform state pull | palisade inventory --state -)"
                .into(),
        });
    }
    let hosts = outputs::hosts(doc, origin)?;
    let inventory = finish(hosts, origin, || format!("outputs {}", outputs::NAMES.join(", ")))?;
    Ok(Survey {
        inventory,
        census: None,
        left_out: Vec::new(),
    })
}

/// The Terraform document formats palisade reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Raw state, version 3 (Terraform 0.7 to 0.11).
    StateV3,
    /// Raw state, version 4 (Terraform 0.12 and later, `terraform state pull`).
    StateV4,
    /// `terraform show -json`.
    ShowJson,
    /// `terraform output -json`.
    Outputs,
}

impl Format {
    fn sniff(doc: &Value, origin: &Origin) -> Result<Format, Error> {
        let file = origin.to_string();
        let Some(obj) = doc.as_object() else {
            return Err(Error::UnknownShape {
                file,
                detail: "the document is not a JSON object".into(),
            });
        };
        // OpenTofu's state encryption (opentofu internal/encryption,
        // `basedata`) writes {"meta", "encrypted_data", "encryption_version"}
        // in place of the state: said so, with how to read it, and none of
        // it quoted.
        if obj.contains_key("encryption_version") && obj.contains_key("encrypted_data") {
            return Err(Error::Encrypted { file });
        }
        if let Some(version) = obj.get("version") {
            return match version.as_u64() {
                Some(3) => Ok(Format::StateV3),
                Some(4) => Ok(Format::StateV4),
                _ => Err(Error::UnknownVersion {
                    file,
                    version: version.to_string(),
                }),
            };
        }
        if obj.contains_key("format_version") {
            if obj.contains_key("planned_values") || obj.contains_key("resource_changes") {
                return Err(Error::UnknownShape {
                    file,
                    detail: "this is a plan (terraform show -json of a plan file), not a state".into(),
                });
            }
            return Ok(Format::ShowJson);
        }
        let all_outputs = !obj.is_empty()
            && obj
                .values()
                .all(|v| v.as_object().is_some_and(|o| o.contains_key("value")));
        if all_outputs {
            return Ok(Format::Outputs);
        }
        Err(Error::UnknownShape {
            file,
            detail: "expected a Terraform state (\"version\" 3 or 4), `terraform show -json` \
                     (\"format_version\") or `terraform output -json`"
                .into(),
        })
    }
}

/// Checks what holds across the whole fleet and puts hosts in report order.
fn finish(
    mut hosts: Vec<Host>,
    origin: &Origin,
    looked_for: impl FnOnce() -> String,
) -> Result<Inventory, Error> {
    if hosts.is_empty() {
        return Err(Error::NoDevices {
            file: origin.to_string(),
            looked_for: looked_for(),
        });
    }
    for host in &hosts {
        if let Some(what) = not_a_node(host.address) {
            return Err(Error::Malformed {
                file: origin.to_string(),
                location: host.origin.clone(),
                detail: format!(
                    "the address palisade would connect to, {}, is {what}, never a node's",
                    host.address
                ),
            });
        }
    }
    let mut seen: HashMap<IpAddr, &str> = HashMap::new();
    for host in &hosts {
        for addr in host.addresses() {
            if let Some(first) = seen.insert(addr, &host.origin) {
                if first == host.origin {
                    return Err(Error::ListedTwice {
                        file: origin.to_string(),
                        resource: first.to_owned(),
                    });
                }
                return Err(Error::DuplicateAddress {
                    file: origin.to_string(),
                    address: addr,
                    first: first.to_owned(),
                    second: host.origin.clone(),
                });
            }
        }
    }
    // Reports, progress and the Ctrl-C report are keyed by name.
    let mut names: HashMap<&HostName, &str> = HashMap::new();
    for host in &hosts {
        if let Some(first) = names.insert(&host.name, &host.origin) {
            if first == host.origin {
                return Err(Error::ListedTwice {
                    file: origin.to_string(),
                    resource: first.to_owned(),
                });
            }
            return Err(Error::DuplicateName {
                file: origin.to_string(),
                name: host.name.to_string(),
                first: first.to_owned(),
                second: host.origin.clone(),
            });
        }
    }
    hosts.sort_by(|a, b| {
        a.role
            .cmp(&b.role)
            .then_with(|| natural_cmp(a.name.as_str(), b.name.as_str()))
            .then_with(|| a.address.cmp(&b.address))
    });
    Ok(Inventory { hosts })
}

/// What an SSH address is when it cannot be a node: palisade would log in
/// to the operator's own machine (loopback), nowhere (unspecified), every
/// host of a segment (broadcast, multicast), or a link's neighbour only
/// (link-local). Private, shared (100.64/10) and benchmarking (198.18/15)
/// addresses are nodes' addresses like any other.
fn not_a_node(addr: IpAddr) -> Option<&'static str> {
    match addr.to_canonical() {
        IpAddr::V4(a) if a.is_loopback() => Some("a loopback address (this machine)"),
        IpAddr::V4(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(a) if a.octets()[0] == 0 => Some("in 0.0.0.0/8, which names this network, not a host"),
        IpAddr::V4(a) if a.octets()[0] >= 240 => Some("in 240.0.0.0/4, reserved and never routed"),
        IpAddr::V4(a) if a.is_multicast() => Some("a multicast address"),
        IpAddr::V4(a) if a.is_link_local() => Some("a link-local address"),
        IpAddr::V6(a) if a.is_loopback() => Some("a loopback address (this machine)"),
        IpAddr::V6(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(a) if a.is_multicast() => Some("a multicast address"),
        IpAddr::V6(a) if a.is_unicast_link_local() => Some("a link-local address"),
        _ => None,
    }
}

/// Orders names as people do: `agent-9` before `agent-10`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            let boundary = i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit();
            if boundary {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, sa), (db, sb)) in ca.iter().zip(cb.iter()) {
        let ord = if *da && *db {
            let (ta, tb) = (sa.trim_start_matches('0'), sb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec!["agent-10", "agent-9", "agent-09", "agent-1", "a", "agent"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec!["a", "agent", "agent-1", "agent-09", "agent-9", "agent-10"]
        );
    }

    #[test]
    fn host_names_refuse_control_characters() {
        assert!(HostName::parse("packet-dcos-agent-00").is_some());
        assert!(HostName::parse("evil\x1b[2J").is_none());
        assert!(HostName::parse("two words").is_none());
        assert_eq!(
            HostName::check("node\u{202e}00"),
            Err("it holds invisible or direction-changing characters")
        );
        assert!(HostName::parse("web\u{200b}01").is_none());
        assert!(HostName::parse("café-01").is_some());
        assert!(HostName::parse("").is_none());
    }
}
