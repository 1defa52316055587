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

/// A kind of address palisade connects to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ConnectVia {
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConnectVia::Public => "public",
            ConnectVia::Private => "private",
            ConnectVia::Ipv6 => "ipv6",
        }
    }

    /// What the machine lacks when it has no such address, for messages.
    pub(crate) fn wanted(self) -> &'static str {
        match self {
            ConnectVia::Public => "public IPv4",
            ConnectVia::Private => "private IPv4",
            ConnectVia::Ipv6 => "IPv6",
        }
    }
}

/// The kinds of address to connect to, in order of preference
/// (`--connect-via private,public`): each machine uses the first kind it
/// has, as Ansible's inventory plugins take a list of hostname sources. A
/// mixed fleet (most machines on the private network, a few with only a
/// public address) is then one run, not a refusal of the whole state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectOrder(Vec<ConnectVia>);

impl Default for ConnectOrder {
    fn default() -> Self {
        ConnectOrder(vec![ConnectVia::Public])
    }
}

impl ConnectOrder {
    /// The kinds, most wanted first; never empty, never one twice.
    pub(crate) fn kinds(&self) -> &[ConnectVia] {
        &self.0
    }

    /// What a machine lacks when it has none of the kinds, for messages:
    /// `private IPv4 or public IPv4`.
    pub(crate) fn wanted(&self) -> String {
        self.0.iter().map(|v| v.wanted()).collect::<Vec<_>>().join(" or ")
    }

    /// Whether only the default, the public IPv4, is wanted.
    pub(crate) fn is_public_only(&self) -> bool {
        self.0 == [ConnectVia::Public]
    }
}

impl std::fmt::Display for ConnectOrder {
    /// As the flag takes it: `private,public`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<&str> = self.0.iter().map(|v| v.as_str()).collect();
        f.write_str(&words.join(","))
    }
}

impl std::str::FromStr for ConnectOrder {
    type Err = String;

    /// `public`, `private`, `ipv6`, or several of them joined by commas.
    /// The error quotes a wrong word escaped and cut short: it may come
    /// from a config file.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut kinds = Vec::new();
        for word in s.split(',').map(str::trim) {
            let kind = match word {
                "public" => ConnectVia::Public,
                "private" => ConnectVia::Private,
                "ipv6" => ConnectVia::Ipv6,
                other => {
                    let quoted = format!("{:?}", crate::text::shorten(other, 40));
                    return Err(format!(
                        "unknown address kind {} (expected public, private or ipv6, or several \
                         joined by commas, tried in order: private,public)",
                        crate::text::escape(&quoted)
                    ));
                }
            };
            if kinds.contains(&kind) {
                return Err(format!("address kind {word} is listed twice"));
            }
            kinds.push(kind);
        }
        Ok(ConnectOrder(kinds))
    }
}

impl<'de> Deserialize<'de> for ConnectOrder {
    /// `connect_via = "private,public"` or `connect_via = ["private", "public"]`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spelled {
            One(String),
            List(Vec<String>),
        }
        let text = match Spelled::deserialize(d)? {
            Spelled::One(s) => s,
            Spelled::List(l) => l.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
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
    pub(crate) addr: IpAddr,
    pub(crate) class: Class,
    /// The position of its path among the type's paths: earlier paths win
    /// the SSH address.
    pub(crate) rank: usize,
}

/// Why state text is not a machine's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unusable {
    /// Not an IP address at all.
    NotAnAddress,
    /// A network (`147.75.200.0/24`): many machines' addresses, not one's.
    Network,
    /// `::a.b.c.d`, the IPv4-compatible form RFC 4291 deprecated: neither
    /// the IPv4 address nor an IPv6 one any machine is reached at.
    V4Compatible,
}

impl Unusable {
    /// What the value is, for the refusal that quotes it.
    pub(super) fn says(self) -> &'static str {
        match self {
            Unusable::NotAnAddress => "is not an IP address",
            Unusable::Network => "is a network, not a machine's address",
            Unusable::V4Compatible => {
                "is an IPv4-compatible IPv6 address (deprecated, RFC 4291): write the IPv4 address itself"
            }
        }
    }
}

/// State text to an address. Besides the plain forms this accepts an
/// interface address with its prefix (Linode's `ipv6` is `ADDR/128`, a
/// `10.0.0.5/24` is 10.0.0.5) and a bracketed IPv6 (early OpenStack
/// `access_ip_v6`), taking the address. A network written with its prefix
/// (no host bits) is refused: whitelisting its first address would admit a
/// machine that may not be this one, and leave this one out.
pub(super) fn parse(text: &str) -> Result<IpAddr, Unusable> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let (addr, len) = match bare.split_once('/') {
        None => (bare.parse::<IpAddr>().map_err(|_| Unusable::NotAnAddress)?, None),
        Some((addr, len)) => {
            let addr: IpAddr = addr.parse().map_err(|_| Unusable::NotAnAddress)?;
            let len: u8 = len.parse().map_err(|_| Unusable::NotAnAddress)?;
            (addr, Some(len))
        }
    };
    if let IpAddr::V6(v6) = addr
        && v6.to_ipv4_mapped().is_none()
        && v6.octets()[..12].iter().all(|b| *b == 0)
        && u32::from_be_bytes([v6.octets()[12], v6.octets()[13], v6.octets()[14], v6.octets()[15]]) > 1
    {
        return Err(Unusable::V4Compatible);
    }
    // An IPv4-mapped IPv6 address (`::ffff:203.0.113.5`) is the IPv4
    // address: canonical, so it is classified, picked and found twice as
    // the IPv4 it is.
    let canonical = addr.to_canonical();
    let Some(len) = len else {
        return Ok(canonical);
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(Unusable::NotAnAddress);
    }
    let net = ipnet::IpNet::new(addr, len).map_err(|_| Unusable::NotAnAddress)?;
    if len < max && net.network() == addr {
        return Err(Unusable::Network);
    }
    Ok(canonical)
}

/// Hetzner Cloud states written before provider 1.16 (February 2020,
/// terraform-provider-hcloud#148) hold the server's /64 network address in
/// `ipv6_address`, where later ones hold the server's own address, the
/// network's `::1`. Such a network address (the low 64 bits zero) read from
/// that field is taken for the server's own address.
pub(super) fn hcloud_own_ipv6(rtype: &str, field: &str, addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6)
            if rtype == "hcloud_server"
                && field == "ipv6_address"
                && u128::from(v6) & u128::from(u64::MAX) == 0 =>
        {
            IpAddr::V6((u128::from(v6) | 1).into())
        }
        other => other,
    }
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

/// The address to connect to: of the first kind in `order` the machine
/// has (see [`pick`]).
pub(super) fn pick_first(found: &[Found], order: &ConnectOrder) -> Option<IpAddr> {
    order.kinds().iter().find_map(|via| pick(found, *via))
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
        assert_eq!(parse("203.0.113.5"), Ok(ip("203.0.113.5")));
        assert_eq!(
            parse("2600:3c03::f03c:91ff:fe24:3a2f/128"),
            Ok(ip("2600:3c03::f03c:91ff:fe24:3a2f"))
        );
        assert_eq!(parse("10.0.0.5/24"), Ok(ip("10.0.0.5")));
        assert_eq!(parse("[fd00::1]"), Ok(ip("fd00::1")));
        assert_eq!(parse("::ffff:203.0.113.5"), Ok(ip("203.0.113.5")));
        assert_eq!(parse("::ffff:10.0.0.1/128"), Ok(ip("10.0.0.1")));
        assert_eq!(parse("::1"), Ok(ip("::1")));
        assert_eq!(by_range(parse("::ffff:10.0.0.1").unwrap()), Class::Private);
        for network in ["147.75.200.0/24", "2a01:4f8:c17:b8f::/64", "10.0.0.0/8"] {
            assert_eq!(parse(network), Err(Unusable::Network), "{network}");
        }
        for compat in ["::147.75.200.1", "::10.0.0.1/128"] {
            assert_eq!(parse(compat), Err(Unusable::V4Compatible), "{compat}");
        }
        for bad in [
            "",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/x",
            "::1/129",
            "host.example",
            "10.0.0.1; reboot",
        ] {
            assert_eq!(parse(bad), Err(Unusable::NotAnAddress), "{bad}");
        }
    }

    #[test]
    fn an_old_hcloud_state_s_ipv6_network_is_the_server_s_own_address() {
        let net = ip("2a01:4f8:c17:b8f::");
        assert_eq!(
            hcloud_own_ipv6("hcloud_server", "ipv6_address", net),
            ip("2a01:4f8:c17:b8f::1")
        );
        let own = ip("2a01:4f8:c17:b8f::1");
        assert_eq!(hcloud_own_ipv6("hcloud_server", "ipv6_address", own), own);
        assert_eq!(hcloud_own_ipv6("packet_device", "ipv6_address", net), net);
        assert_eq!(hcloud_own_ipv6("hcloud_server", "network.0.ip", net), net);
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
        // An ordered preference: the first kind the machine has.
        let order: ConnectOrder = "private,public".parse().unwrap();
        assert_eq!(pick_first(&found, &order), Some(ip("10.0.0.2")));
        assert_eq!(pick_first(&found[..3], &order), Some(ip("203.0.113.7")));
        assert_eq!(pick_first(&found[4..], &order), None);
        let order: ConnectOrder = "public, ipv6".parse().unwrap();
        assert_eq!(pick_first(&found[3..], &order), Some(ip("fd00::2")));
    }

    #[test]
    fn an_order_is_kinds_once_each_and_says_what_it_wants() {
        let order: ConnectOrder = "ipv6,private".parse().unwrap();
        assert_eq!(order.kinds(), [ConnectVia::Ipv6, ConnectVia::Private]);
        assert_eq!(order.wanted(), "IPv6 or private IPv4");
        assert_eq!(order.to_string(), "ipv6,private");
        assert!(!order.is_public_only());
        assert!(ConnectOrder::default().is_public_only());
        assert_eq!("public".parse::<ConnectOrder>(), Ok(ConnectOrder::default()));
        let err = "private,private".parse::<ConnectOrder>().unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
        let err = "public,\u{1b}[2J".parse::<ConnectOrder>().unwrap_err();
        assert!(err.contains("\"\\u{1b}[2J\""), "{err}");
        assert!("".parse::<ConnectOrder>().is_err());
        let err = "pub\u{202e}lic".parse::<ConnectOrder>().unwrap_err();
        assert!(
            err.contains("pub\\u{202e}lic") && !err.contains('\u{202e}'),
            "{err}"
        );
    }
}
