//! Which target addresses Herald may connect to. By default only public unicast addresses;
//! `HERALD_ALLOW_PRIVATE_TARGETS` (CIDRs, or `all`) opens more. The worker checks the addresses it
//! actually connects to (so DNS rebinding does not get through); the API checks literal hosts at
//! endpoint creation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// The connection refused because of where it would go.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to addresses Herald does not deliver to (allow them with HERALD_ALLOW_PRIVATE_TARGETS)")]
pub struct BlockedTarget(pub String);

/// The addresses `host` resolves to that `allow` permits: what every HTTP client of Herald's
/// (the worker's, the Slack notices') connects to, so that the check applies to the addresses
/// actually connected to (a name that rebinds to 127.0.0.1 gets nothing). None: [`BlockedTarget`].
pub async fn resolve_allowed(
    host: &str,
    allow: &AllowList,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| allow.permits(a.ip())).collect();
    if allowed.is_empty() {
        return Err(Box::new(BlockedTarget(host.to_string())));
    }
    Ok(allowed)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    all: bool,
    nets: Vec<IpNet>,
}

impl AllowList {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn all() -> Self {
        Self { all: true, nets: Vec::new() }
    }

    /// Loopback only: what tests and `make run` use.
    pub fn loopback() -> Self {
        "127.0.0.0/8,::1/128".parse().expect("loopback CIDRs parse")
    }

    /// Whether Herald may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.all || is_public(ip) || self.nets.iter().any(|n| n.contains(&ip))
    }
}

impl FromStr for AllowList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Self::all());
        }
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{part}` is not a CIDR (like 127.0.0.0/8 or ::1/128) or `all`"))?;
            nets.push(net);
        }
        Ok(Self { all: false, nets })
    }
}

/// An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A globally routable unicast address: not loopback, private, link-local, shared (CGNAT),
/// multicast, broadcast, unspecified, documentation, benchmarking or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] != 9 && o[3] != 10) // 192.0.0.0/24 protocol assignments, but for the PCP and TURN anycast addresses
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation 3fff::/20
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 and 64:ff9b:1::/48: can reach private IPv4
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        || (s[0] == 0x2002) // 6to4 2002::/16 can embed private IPv4
        || (s[0] == 0x2001 && s[1] < 0x0200 && !ietf_global(ip)) // IETF protocol assignments 2001::/23: Teredo, benchmarking, ORCHID
        || s[0] == 0x5f00 // segment routing SIDs 5f00::/16
        || s[0] == 0) // ::/16 other reserved, IPv4-compatible
}

/// The globally reachable blocks inside 2001::/23 (IANA's IPv6 special-purpose registry): the
/// PCP, TURN and DNS-SD SRP anycast addresses, AMT, AS112-v6 and Drone Remote ID. ORCHIDv2
/// (2001:20::/28), which the registry also marks reachable, names identifiers, not hosts: refused.
fn ietf_global(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip == Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 1)
        || ip == Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 2)
        || ip == Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 3)
        || s[1] == 3 // AMT 2001:3::/32
        || (s[1] == 4 && s[2] == 0x0112) // AS112-v6 2001:4:112::/48
        || (s[1] & 0xfff0) == 0x0030 // Drone Remote ID 2001:30::/28
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        let none = AllowList::none();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "0.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b:1::a00:1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "2001:db8::1",
            "3fff::1",
            "2002:a00:1::1",
            "5f00::1",
            "fec0::1",
            "ff0e::1",
        ] {
            assert!(!none.permits(ip(bad)), "{bad} must be refused");
        }
        for good in
            ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2001:4:112::1", "2001:1::1", "192.0.0.9"]
        {
            assert!(none.permits(ip(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn allow_list_opens_named_ranges_only() {
        let lo = AllowList::loopback();
        assert!(lo.permits(ip("127.0.0.1")) && lo.permits(ip("::1")));
        assert!(!lo.permits(ip("10.0.0.1")));
        assert!("all".parse::<AllowList>().unwrap().permits(ip("10.0.0.1")));
        assert!("10.0.0.0/8, 192.168.1.7".parse::<AllowList>().unwrap().permits(ip("192.168.1.7")));
        assert!("nonsense".parse::<AllowList>().is_err());
    }
}
