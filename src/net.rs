//! Validated network values.
//!
//! Everything that ends up in a remote script or a report as an address goes
//! through these types first: text that does not parse never leaves this module.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whitelist entry: one address or one network, stored as ipset stores it
/// (host bits cleared), so that what we compute and what a node reports compare
/// equal. Parsed from text, it refuses what would widen the whitelist without
/// a word: host bits (`203.0.113.7/2`, a typo for /32, would admit a quarter
/// of IPv4) and /0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net(IpNet);

/// Text that is not a whitelist entry, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetParseError {
    #[error("{value:?} is not an IP address or CIDR network")]
    Syntax { value: String },
    #[error("{value:?} has host bits set; did you mean {host}, or {network}?")]
    HostBits {
        value: String,
        host: String,
        network: String,
    },
    #[error(
        "{value:?} admits every address, which is no whitelist at all; to let everyone reach a port, \
         use --open ROLE=tcp/PORT (see palisade apply --help), or take palisade off with `palisade remove`"
    )]
    Everything { value: String },
}

impl NetParseError {
    /// The text that was refused.
    #[cfg(test)]
    pub(crate) fn value(&self) -> &str {
        match self {
            NetParseError::Syntax { value }
            | NetParseError::HostBits { value, .. }
            | NetParseError::Everything { value } => value,
        }
    }
}

impl Net {
    /// The network itself, host bits cleared and never `/0`.
    pub fn net(&self) -> IpNet {
        self.0
    }

    pub(crate) fn is_ipv4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }

    /// Whether it is one address (a /32 or a /128), not a network.
    pub(crate) fn is_address(&self) -> bool {
        self.0.prefix_len() == self.0.max_prefix_len()
    }
}

impl From<IpAddr> for Net {
    fn from(addr: IpAddr) -> Self {
        Net(IpNet::from(addr))
    }
}

impl From<IpNet> for Net {
    fn from(net: IpNet) -> Self {
        Net(net.trunc())
    }
}

impl FromStr for Net {
    type Err = NetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || NetParseError::Syntax { value: s.into() };
        if !s.contains('/') {
            return s.parse::<IpAddr>().map(Net::from).map_err(|_| syntax());
        }
        let net = s.parse::<IpNet>().map_err(|_| syntax())?;
        if net.prefix_len() == 0 {
            return Err(NetParseError::Everything { value: s.into() });
        }
        if net.trunc() != net {
            return Err(NetParseError::HostBits {
                value: s.into(),
                host: Net::from(net.addr()).to_string(),
                network: net.trunc().to_string(),
            });
        }
        Ok(Net(net))
    }
}

/// Address ranges that are not globally reachable, where nodes talk to each
/// other privately: RFC 1918, shared address space (RFC 6598), the
/// benchmarking range (RFC 2544, which the lab uses) and IPv6 unique local
/// and benchmarking addresses.
const PRIVATE: [&str; 7] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "198.18.0.0/15",
    "fc00::/7",
    "2001:2::/48",
];

fn private_ranges() -> impl Iterator<Item = IpNet> {
    PRIVATE.iter().filter_map(|r| r.parse().ok())
}

/// Whether `addr` is a private (not globally reachable) address.
pub(crate) fn is_private(addr: IpAddr) -> bool {
    private_ranges().any(|r| r.contains(&addr))
}

impl Net {
    /// Whether this entry covers private addresses (lies in, or holds, a
    /// private range).
    pub(crate) fn touches_private(&self) -> bool {
        private_ranges().any(|r| r.contains(&self.0) || self.0.contains(&r))
    }
}

/// A transport protocol a port can be opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port or a range of ports, TCP or UDP: `tcp/443`, `udp/10000-10100`.
/// Port 0 is refused (it is no port), and so is a range that runs backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    proto: Proto,
    first: u16,
    last: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a port: {why} (write tcp/443, udp/53 or tcp/10000-10100)")]
pub struct PortParseError {
    pub(crate) value: String,
    pub(crate) why: &'static str,
}

impl Port {
    pub(crate) fn proto(&self) -> Proto {
        self.proto
    }

    /// Whether this opening takes in `port` of `proto`.
    pub(crate) fn admits(&self, proto: Proto, port: u16) -> bool {
        self.proto == proto && (self.first..=self.last).contains(&port)
    }

    /// The ports as iptables writes a range: `80` or `10000:10100`.
    pub(crate) fn range(&self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}:{}", self.first, self.last)
        }
    }
}

impl FromStr for Port {
    type Err = PortParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| PortParseError { value: s.into(), why };
        let (proto, ports) = s.split_once('/').ok_or_else(|| err("no protocol"))?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(err("the protocol is not tcp or udp")),
        };
        let number = |t: &str| -> Result<u16, PortParseError> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("a port is not a number"));
            }
            match t.parse::<u16>() {
                Ok(0) => Err(err("port 0 is no port")),
                Ok(n) => Ok(n),
                Err(_) => Err(err("a port is above 65535")),
            }
        };
        let (first, last) = match ports.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(ports)?, number(ports)?),
        };
        if first > last {
            return Err(err("the range runs backwards"));
        }
        Ok(Port { proto, first, last })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.proto.as_str())?;
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Net {
    /// A single host prints as a bare address, as `ipset save` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_address() {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

impl Serialize for Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A name that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}: {rule}")]
pub struct NameError {
    pub(crate) what: &'static str,
    pub(crate) value: String,
    pub(crate) rule: &'static str,
}

/// Defines a validated name type: private field, `FromStr` the only way in,
/// `Display` writing it back, serde as a string.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl FromStr for $name {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(NameError { what: $what, value: s.to_owned(), rule: $rule })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl $name {
            pub(crate) fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

fn word(s: &str, max: usize, extra: &[u8]) -> bool {
    (1..=max).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

name_type!(
    /// An ipset set name. ipset allows 31 bytes; palisade keeps 4 for the
    /// suffixes of its temporary sets beside it, `-new` (filled before the
    /// swap) and `-old` (a rollback's). `dcos-` is DC/OS's
    /// own prefix (dcos-l4lb), never ours.
    SetName,
    "ipset set name",
    |s| word(s, 27, b"_.-") && !s.starts_with("dcos-"),
    "1 to 27 letters, digits, '_', '.' or '-', not starting with '-' or 'dcos-'"
);

name_type!(
    /// An iptables chain of palisade's own. 28 bytes is iptables' limit;
    /// palisade keeps 7 for the `-DOCKER` chain beside it. Built-in chains and
    /// targets are refused: replacing INPUT would wipe the node's rules.
    ChainName,
    "iptables chain name",
    |s| word(s, 21, b"_-")
        && !NOT_A_CHAIN.iter().any(|t| t.eq_ignore_ascii_case(s))
        && !FOREIGN_CHAIN_PREFIXES.iter().any(|p| s.starts_with(p)),
    "1 to 21 letters, digits, '_' or '-', not starting with '-', not a built-in chain or target, \
     and not in another tool's namespace (DOCKER, KUBE-, cali-, cilium, f2b-, ufw, ...)"
);

/// Names `-j` reads as something other than a chain of palisade's: the
/// built-in chains, the verdicts, and every target extension of
/// iptables-extensions(8) (`-j MASQUERADE` would jump to no chain of ours).
/// Refused in any case, so that no name reads as one of them.
const NOT_A_CHAIN: &[&str] = &[
    "INPUT",
    "OUTPUT",
    "FORWARD",
    "PREROUTING",
    "POSTROUTING",
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "CLUSTERIP",
    "CONNMARK",
    "CONNSECMARK",
    "CT",
    "DNAT",
    "DNPT",
    "DSCP",
    "ECN",
    "HL",
    "HMARK",
    "IDLETIMER",
    "LED",
    "LOG",
    "MARK",
    "MASQUERADE",
    "MIRROR",
    "NETMAP",
    "NFLOG",
    "NFQUEUE",
    "NOTRACK",
    "RATEEST",
    "REDIRECT",
    "REJECT",
    "SAME",
    "SECMARK",
    "SET",
    "SNAT",
    "SNPT",
    "SYNPROXY",
    "TCPMSS",
    "TCPOPTSTRIP",
    "TEE",
    "TOS",
    "TPROXY",
    "TRACE",
    "TTL",
    "ULOG",
];

/// Chain name prefixes other tools on a node own: Docker, Kubernetes
/// (kube-proxy, kubelet), Calico, Cilium, Weave, Flannel, fail2ban, ufw,
/// firewalld, CSF, libvirt, DC/OS. Palisade replaces its chain wholesale, so
/// a name here would replace another tool's rules.
const FOREIGN_CHAIN_PREFIXES: &[&str] = &[
    "DOCKER",
    "KUBE-",
    "cali-",
    "CILIUM",
    "cilium",
    "WEAVE",
    "FLANNEL",
    "f2b-",
    "fail2ban",
    "ufw",
    "ufw6",
    "IN_",
    "FWD_",
    "OUT_",
    "FINAL_",
    "LIBVIRT",
    "LOCALINPUT",
    "LOCALOUTPUT",
    "ALLOWIN",
    "DENYIN",
    "dcos",
    "DCOS",
    "CNI-",
    "ts-",
    "nixos-",
];

impl IfName {
    /// Whether iptables `-i` with this name matches interface `name`.
    pub(crate) fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('+') {
            Some(prefix) => name.starts_with(prefix),
            None => self.0 == name,
        }
    }
}

impl ChainName {
    /// The chain palisade puts beside this one to guard Docker's published
    /// ports: `NAME-DOCKER`, within iptables' 28 bytes by the length rule above.
    pub(crate) fn docker_companion(&self) -> ChainName {
        ChainName(format!("{}-DOCKER", self.0))
    }

    /// The guard before DNAT, in the mangle table: `NAME-GUARD`, within
    /// iptables' 28 bytes as `-DOCKER` is.
    pub(crate) fn guard_companion(&self) -> ChainName {
        ChainName(format!("{}-GUARD", self.0))
    }
}

name_type!(
    /// A network interface name as iptables `-i` takes it: up to 15 bytes; a
    /// trailing `+` matches every interface with that prefix.
    IfName,
    "interface name",
    |s| word(s.strip_suffix('+').unwrap_or(s), 15, b"_.-@") && s.len() <= 15,
    "1 to 15 letters, digits, '_', '.', '-' or '@', optionally ending in '+'"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!("palisade4".parse::<SetName>().is_ok());
        assert!("dcos-l4lb".parse::<SetName>().is_err());
        assert!("a".repeat(28).parse::<SetName>().is_err());
        assert!("set;reboot".parse::<SetName>().is_err());
        assert!("-x".parse::<SetName>().is_err());
        assert!("PALISADE".parse::<ChainName>().is_ok());
        assert!("INPUT".parse::<ChainName>().is_err());
        assert!("my chain".parse::<ChainName>().is_err());
        assert!("docker0".parse::<IfName>().is_ok());
        assert!("veth+".parse::<IfName>().is_ok());
        assert!("+".parse::<IfName>().is_err());
        assert!("a-very-long-interface".parse::<IfName>().is_err());
        assert!("eth0 -j ACCEPT".parse::<IfName>().is_err());
        let err = "INPUT".parse::<ChainName>().unwrap_err().to_string();
        assert!(
            err.contains("\"INPUT\" is not a valid iptables chain name"),
            "{err}"
        );
    }

    #[test]
    fn parses_addresses_and_networks() {
        assert_eq!("10.1.1.5".parse::<Net>().unwrap().to_string(), "10.1.1.5");
        assert_eq!("10.1.1.0/24".parse::<Net>().unwrap().to_string(), "10.1.1.0/24");
        assert_eq!("10.1.1.5/32".parse::<Net>().unwrap().to_string(), "10.1.1.5");
        assert_eq!("2001:2::/48".parse::<Net>().unwrap().to_string(), "2001:2::/48");
        assert!("2001:2::1".parse::<Net>().unwrap().net().addr().is_ipv6());
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "147.75.1.1; rm -rf /",
            "10.0.0.0/33",
            "host.example",
            " 10.0.0.1",
        ] {
            let err = bad.parse::<Net>().unwrap_err();
            assert_eq!(err.value(), bad);
        }
    }

    #[test]
    fn private_addresses() {
        for private in [
            "10.100.5.7",
            "172.20.0.1",
            "192.168.1.1",
            "100.64.0.9",
            "198.18.1.11",
            "fd00::1",
            "2001:2::a:1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["147.75.100.11", "8.8.8.8", "172.32.0.1", "2604:1380:1:4d00::b"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
        assert!("10.0.0.0/8".parse::<Net>().unwrap().touches_private());
        assert!("10.1.0.0/16".parse::<Net>().unwrap().touches_private());
        assert!("8.0.0.0/6".parse::<Net>().unwrap().touches_private());
        assert!(!"203.0.113.0/24".parse::<Net>().unwrap().touches_private());
    }

    #[test]
    fn ports() {
        let p: Port = "tcp/443".parse().unwrap();
        assert_eq!((p.to_string(), p.range()), ("tcp/443".into(), "443".into()));
        let p: Port = "udp/10000-10100".parse().unwrap();
        assert_eq!(
            (p.to_string(), p.range()),
            ("udp/10000-10100".into(), "10000:10100".into())
        );
        for bad in [
            "tcp/0",
            "tcp/65536",
            "sctp/80",
            "80",
            "tcp/",
            "tcp/90-80",
            "tcp/8 0",
            "tcp/+80",
            "tcp/-80",
        ] {
            assert!(bad.parse::<Port>().is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_what_widens_silently() {
        let err = "203.0.113.7/2".parse::<Net>().unwrap_err().to_string();
        assert_eq!(
            err,
            "\"203.0.113.7/2\" has host bits set; did you mean 203.0.113.7, or 192.0.0.0/2?"
        );
        let err = "2001:db8::1/32".parse::<Net>().unwrap_err().to_string();
        assert!(
            err.contains("did you mean 2001:db8::1, or 2001:db8::/32?"),
            "{err}"
        );
        for everything in ["0.0.0.0/0", "::/0", "10.0.0.0/0"] {
            let err = everything.parse::<Net>().unwrap_err();
            assert!(matches!(err, NetParseError::Everything { .. }), "{everything}");
            assert!(err.to_string().contains("--open"), "{err}");
        }
        assert_eq!("192.0.2.0/24".parse::<Net>().unwrap().to_string(), "192.0.2.0/24");
        for foreign in [
            "DOCKER-INGRESS",
            "KUBE-FIREWALL",
            "cali-INPUT",
            "f2b-sshd",
            "DOCKER-USER",
            "DOCKER",
        ] {
            assert!(foreign.parse::<ChainName>().is_err(), "{foreign}");
        }
        for target in [
            "MASQUERADE",
            "ACCEPT",
            "INPUT",
            "SNAT",
            "masquerade",
            "Log",
            "NFQUEUE",
            "CT",
        ] {
            let err = target.parse::<ChainName>().unwrap_err().to_string();
            assert!(err.contains("not a built-in chain or target"), "{target}: {err}");
        }
        assert!("PALISADE".parse::<ChainName>().is_ok());
    }
}
