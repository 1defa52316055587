//! A machine's addresses: reading them from state text, telling public from
//! private, and choosing the one palisade connects to.
//!
//! Every address goes into the whitelist whatever is chosen; the choice only
//! says where SSH goes. The default is the public IPv4, which reaches a fresh
//! cloud or bare-metal machine from an operator's laptop; a controller inside
//! the private network, or behind `--jump`, picks `private`, and an
//! IPv6-only path picks `ipv6`.

use std::net::IpAddr;

use serde::Deserialize;

/// Which address of each machine palisade connects to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectVia {
    /// The public IPv4 address.
    #[default]
    Public,
    /// The private IPv4 address.
    Private,
    /// The IPv6 address (a public one when the machine has one).
    Ipv6,
}

impl ConnectVia {
    /// As the flag and the config spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectVia::Public => "public",
            ConnectVia::Private => "private",
            ConnectVia::Ipv6 => "ipv6",
        }
    }

    /// What the machine lacks when it has no such address, for messages.
    pub fn wanted(self) -> &'static str {
        match self {
            ConnectVia::Public => "public IPv4",
            ConnectVia::Private => "private IPv4",
            ConnectVia::Ipv6 => "IPv6",
        }
    }
}

/// Whether an address faces the internet, as the provider's attribute says
/// or, for attributes that do not say, as its range says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Public,
    Private,
}

/// One address of a machine and where it was found.
#[derive(Clone, Debug)]
pub(super) struct Found {
    pub addr: IpAddr,
    pub class: Class,
    /// The position of its path among the type's paths: earlier paths win
    /// the SSH address.
    pub rank: usize,
}

/// State text to an address. Besides the plain forms this accepts an
/// interface address with its prefix (Linode's `ipv6` is `ADDR/128`) and a
/// bracketed IPv6 (early OpenStack `access_ip_v6`), taking the address.
pub(super) fn parse(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    // An IPv4-mapped IPv6 address (`::ffff:203.0.113.5`) is the IPv4
    // address: canonical, so it is classified, picked and found twice as
    // the IPv4 it is.
    if let Ok(addr) = bare.parse::<IpAddr>() {
        return Some(addr.to_canonical());
    }
    let (addr, len) = bare.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(addr.to_canonical())
}

/// An address family, as a field's name promises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The family a field's own name promises (`access_public_ipv6`,
/// `fixed_ip_v4`, `v6_main_ip`, Linode's `ipv4` list), if it names one: an
/// IPv4 address in an IPv6 field is a damaged or hand-edited state, and is
/// refused rather than whitelisted under the wrong family. An IPv4-mapped
/// IPv6 address reads as the IPv4 address it is.
pub(super) fn family_of_field(field: &str) -> Option<Family> {
    let name = field
        .rsplit(['.', '['])
        .map(|part| part.trim_end_matches(']'))
        .find(|part| !part.is_empty() && !part.bytes().all(|b| b.is_ascii_digit()))?
        .to_ascii_lowercase();
    let says = |v: &str| {
        name.contains(&format!("ip{v}"))
            || name == v
            || name.ends_with(&format!("_{v}"))
            || name.starts_with(&format!("{v}_"))
    };
    match (says("v4"), says("v6")) {
        (true, false) => Some(Family::V4),
        (false, true) => Some(Family::V6),
        _ => None,
    }
}

/// Addresses that mean nothing in a whitelist shared by many machines:
/// loopback, link-local, unspecified and multicast (guest agents report
/// them; two machines often carry the same ones).
pub(super) fn meaningless(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback() || a.is_link_local() || a.is_unspecified() || a.is_multicast(),
        IpAddr::V6(a) => {
            a.is_loopback() || a.is_unspecified() || a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Addresses that every node of a DC/OS fleet carries on a virtual
/// interface, so guest-agent reports (vSphere `guest_ip_addresses`) list
/// them on every machine: the Docker bridge (172.17.0.0/16), DC/OS DNS
/// (Spartan, 198.51.100.1-3), the DC/OS overlay (44.128.0.0/20, and
/// 9.0.0.0/8 for its virtual networks). They are no machine's own, and
/// would make the whole fleet fail as one address on two devices; only
/// addresses a provider does not classify are dropped by them.
pub(super) fn shared_by_every_node(addr: IpAddr) -> bool {
    let IpAddr::V4(a) = addr else {
        return false;
    };
    let [o1, o2, o3, _] = a.octets();
    (o1, o2) == (172, 17) || (o1, o2, o3) == (198, 51, 100) || (o1 == 44 && o2 == 128 && o3 < 16) || o1 == 9
}

/// RFC 1918, shared address space (RFC 6598) and unique local IPv6 are
/// private; everything else is public.
pub(super) fn by_range(addr: IpAddr) -> Class {
    let private = match addr {
        IpAddr::V4(a) => a.is_private() || (a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64),
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    };
    if private { Class::Private } else { Class::Public }
}

/// The address to connect to: of the wanted class and family, from the
/// earliest path, the lowest one (so the choice never depends on the order
/// an API listed them in).
pub(super) fn pick(found: &[Found], via: ConnectVia) -> Option<IpAddr> {
    let wanted = |f: &&Found| match via {
        ConnectVia::Public => f.class == Class::Public && f.addr.is_ipv4(),
        ConnectVia::Private => f.class == Class::Private && f.addr.is_ipv4(),
        ConnectVia::Ipv6 => f.addr.is_ipv6(),
    };
    found
        .iter()
        .filter(wanted)
        .min_by_key(|f| (f.class != Class::Public, f.rank, f.addr))
        .map(|f| f.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_plain_prefixed_and_bracketed_addresses() {
        assert_eq!(parse("203.0.113.5"), Some(ip("203.0.113.5")));
        assert_eq!(
            parse("2600:3c03::f03c:91ff:fe24:3a2f/128"),
            Some(ip("2600:3c03::f03c:91ff:fe24:3a2f"))
        );
        assert_eq!(parse("[fd00::1]"), Some(ip("fd00::1")));
        assert_eq!(parse("::ffff:203.0.113.5"), Some(ip("203.0.113.5")));
        assert_eq!(parse("::ffff:10.0.0.1/128"), Some(ip("10.0.0.1")));
        assert_eq!(by_range(parse("::ffff:10.0.0.1").unwrap()), Class::Private);
        for bad in [
            "",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/x",
            "::1/129",
            "host.example",
            "10.0.0.1; reboot",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_name_their_family() {
        for (field, want) in [
            ("access_public_ipv6", Some(Family::V6)),
            ("access_private_ipv4", Some(Family::V4)),
            (
                "network_interface[0].ipv6_access_config[0].external_ipv6",
                Some(Family::V6),
            ),
            ("network.0.fixed_ip_v4", Some(Family::V4)),
            ("v6_main_ip", Some(Family::V6)),
            ("ipv4[1]", Some(Family::V4)),
            ("ipv6_addresses.3", Some(Family::V6)),
            ("network[0].address", None),
            ("public_ip", None),
            ("main_ip", None),
            ("guest_ip_addresses[2]", None),
        ] {
            assert_eq!(family_of_field(field), want, "{field}");
        }
    }

    #[test]
    fn ranges() {
        for private in ["10.1.2.3", "172.16.0.1", "192.168.128.4", "100.64.0.1", "fd00::1"] {
            assert_eq!(by_range(ip(private)), Class::Private, "{private}");
        }
        for public in [
            "147.75.100.9",
            "203.0.113.5",
            "100.128.0.1",
            "2001:db8::1",
            "2604:1380::1",
        ] {
            assert_eq!(by_range(ip(public)), Class::Public, "{public}");
        }
        for nothing in [
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "ff02::1",
            "224.0.0.1",
        ] {
            assert!(meaningless(ip(nothing)), "{nothing}");
        }
        assert!(!meaningless(ip("10.0.0.1")));
        for shared in [
            "172.17.0.1",
            "198.51.100.1",
            "44.128.0.1",
            "44.128.15.255",
            "9.0.4.1",
        ] {
            assert!(shared_by_every_node(ip(shared)), "{shared}");
        }
        for own in [
            "172.18.0.1",
            "198.51.101.1",
            "44.128.16.1",
            "10.5.0.10",
            "2001:db8::1",
        ] {
            assert!(!shared_by_every_node(ip(own)), "{own}");
        }
    }

    #[test]
    fn picks_by_path_order_then_lowest() {
        let f = |addr: &str, class, rank| Found {
            addr: ip(addr),
            class,
            rank,
        };
        let found = [
            f("203.0.113.9", Class::Public, 2),
            f("203.0.113.7", Class::Public, 2),
            f("2001:db8::1", Class::Public, 1),
            f("10.0.0.2", Class::Private, 0),
            f("fd00::2", Class::Private, 0),
        ];
        assert_eq!(pick(&found, ConnectVia::Public), Some(ip("203.0.113.7")));
        assert_eq!(pick(&found, ConnectVia::Private), Some(ip("10.0.0.2")));
        assert_eq!(pick(&found, ConnectVia::Ipv6), Some(ip("2001:db8::1")));
        assert_eq!(pick(&found[3..], ConnectVia::Public), None);
        assert_eq!(pick(&found[4..], ConnectVia::Ipv6), Some(ip("fd00::2")));
    }
}
