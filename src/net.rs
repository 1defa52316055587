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
/// equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net(IpNet);

/// Text that is neither an IP address nor an address/prefix pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an IP address or CIDR network")]
pub struct NetParseError {
    pub value: String,
}

impl Net {
    pub fn net(&self) -> IpNet {
        self.0
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
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
        let err = || NetParseError { value: s.into() };
        if s.contains('/') {
            s.parse::<IpNet>().map(Net::from).map_err(|_| err())
        } else {
            s.parse::<IpAddr>().map(Net::from).map_err(|_| err())
        }
    }
}

impl fmt::Display for Net {
    /// A single host prints as a bare address, as `ipset save` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
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
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
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
            pub fn as_str(&self) -> &str {
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
    /// `-new` suffix of the set it fills before the swap. `dcos-` is DC/OS's
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
        && ![
            "INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING", "ACCEPT", "DROP", "RETURN",
            "REJECT", "LOG", "QUEUE", "DOCKER", "DOCKER-USER",
        ]
        .contains(&s),
    "1 to 21 letters, digits, '_' or '-', not starting with '-', not a built-in chain or target"
);

impl ChainName {
    /// The chain palisade puts beside this one to guard Docker's published
    /// ports: `NAME-DOCKER`, within iptables' 28 bytes by the length rule above.
    pub fn docker_companion(&self) -> ChainName {
        ChainName(format!("{}-DOCKER", self.0))
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
        assert_eq!("10.1.1.5/24".parse::<Net>().unwrap().to_string(), "10.1.1.0/24");
        assert_eq!("10.1.1.5/32".parse::<Net>().unwrap().to_string(), "10.1.1.5");
        assert_eq!("2001:2::1/48".parse::<Net>().unwrap().to_string(), "2001:2::/48");
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
            assert_eq!(err.value, bad);
        }
    }
}
