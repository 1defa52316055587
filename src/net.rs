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

#[cfg(test)]
mod tests {
    use super::*;

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
