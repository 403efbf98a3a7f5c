//! Parsing and checking the addresses and prefixes the command line and the library take:
//! home prefixes (`HOME[/LEN]`, canonical only), locators, sources, endpoints and peers.
//! Pure code, no I/O, so every rule here is unit tested.

use std::{
    cmp::Ordering,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use crate::error::{Error, Result};

/// An address family, named the way the messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// "IPv4" / "IPv6".
    pub const fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// "ipv4" / "ipv6", as in JSON output.
    pub const fn key(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// Bits in an address of this family.
    pub const fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// Parses an IPv4 or IPv6 address.
pub fn parse_addr(text: &str) -> Result<IpAddr> {
    IpAddr::from_str(text.trim()).map_err(|_| Error::BadAddress(text.to_string()))
}

/// Checks that `addr` can be a tunnel endpoint, peer, locator or outer source: a unicast
/// address that is not unspecified, loopback, multicast, broadcast or IPv4-mapped IPv6 (the
/// maps store IPv4 as `::ffff:a.b.c.d`, so a mapped IPv6 address would alias an IPv4 one).
pub fn check_tunnel_addr(what: &'static str, addr: IpAddr) -> Result<()> {
    if let IpAddr::V6(a) = addr
        && let Some(v4) = a.to_ipv4_mapped()
    {
        return Err(Error::Conflict(format!(
            "{what} {addr} is an IPv4-mapped IPv6 address; write it as the IPv4 address {v4}"
        )));
    }
    let bad = match addr {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.to_ipv4_mapped().is_some()
        }
    };
    if bad {
        Err(Error::NotUnicast { what, addr })
    } else {
        Ok(())
    }
}

/// A canonical IP prefix: no bits set after `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix from an address and a length; errors when the length is out of range or
    /// host bits are set (the error names the canonical prefix).
    pub fn new(addr: IpAddr, len: u32) -> Result<Self> {
        let text = format!("{addr}/{len}");
        Self::checked(addr, len, &text)
    }

    fn checked(addr: IpAddr, len: u32, text: &str) -> Result<Self> {
        let family = Family::of(&addr);
        if len > family.bits() as u32 {
            return Err(Error::PrefixLengthOutOfRange {
                text: text.to_string(),
                len,
                max: family.bits(),
                family: family.name(),
            });
        }
        let len = len as u8;
        let canonical = Prefix {
            addr: mask(addr, len),
            len,
        };
        if canonical.addr != addr {
            return Err(Error::HostBitsSet {
                text: text.to_string(),
                canonical,
            });
        }
        Ok(canonical)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// True for a single address (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.len == self.family().bits()
    }

    /// True when `addr` falls inside this prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        Family::of(&addr) == self.family() && mask(addr, self.len) == self.addr
    }
}

impl FromStr for Prefix {
    type Err = Error;

    /// `ADDR` (a host prefix) or `ADDR/LEN`.
    fn from_str(text: &str) -> Result<Self> {
        let t = text.trim();
        let (addr_text, len_text) = match t.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (t, None),
        };
        let addr = IpAddr::from_str(addr_text).map_err(|_| Error::BadPrefix {
            text: text.to_string(),
            reason: format!("`{addr_text}` is not an IPv4 or IPv6 address"),
        })?;
        let len = match len_text {
            None => Family::of(&addr).bits() as u32,
            Some(l) => {
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::BadPrefix {
                        text: text.to_string(),
                        reason: format!("`{l}` is not a prefix length"),
                    });
                }
                // Long digit strings are out of range rather than unparsable.
                l.parse::<u32>().unwrap_or(u32::MAX)
            }
        };
        Self::checked(addr, len, text)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Prefix {
    /// What [`Ord`] compares, as integers: the agent's state keeps a million bindings
    /// in ordered maps, so this runs some twenty times per binding it changes.
    #[inline]
    fn order_key(&self) -> (bool, u128, u8) {
        match self.addr {
            IpAddr::V4(a) => (false, u128::from(a.to_bits()), self.len),
            IpAddr::V6(a) => (true, a.to_bits(), self.len),
        }
    }
}

impl Ord for Prefix {
    /// IPv4 before IPv6, then by address, then shorter prefixes first.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

impl PartialOrd for Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `addr` with every bit after `len` cleared.
/// An address or a prefix as text, the same as `Display` writes it, on the stack and
/// without `fmt` for IPv4 (the agent's store writes a million of them in a batch).
pub struct AddrText {
    buf: [u8; 64],
    len: usize,
}

impl AddrText {
    pub fn addr(a: IpAddr) -> Self {
        let mut t = AddrText {
            buf: [0; 64],
            len: 0,
        };
        match a {
            IpAddr::V4(a) => {
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    t.number(o.into());
                }
            }
            // IPv6's zero compression is std's to get right.
            IpAddr::V6(a) => fmt::Write::write_fmt(&mut t, format_args!("{a}"))
                .expect("an IPv6 address fits in 64 bytes"),
        }
        t
    }

    pub fn prefix(p: &Prefix) -> Self {
        let mut t = Self::addr(p.addr);
        t.push(b'/');
        t.number(p.len.into());
        t
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("ASCII only")
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// A number below 1000 in decimal.
    fn number(&mut self, n: u16) {
        if n >= 100 {
            self.push(b'0' + (n / 100) as u8);
        }
        if n >= 10 {
            self.push(b'0' + (n / 10 % 10) as u8);
        }
        self.push(b'0' + (n % 10) as u8);
    }
}

impl fmt::Write for AddrText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Prefix> {
        s.parse()
    }

    #[test]
    fn host_address_without_length_is_a_host_prefix() {
        let v4 = p("192.0.2.7").unwrap();
        assert_eq!(
            (v4.to_string().as_str(), v4.is_host()),
            ("192.0.2.7/32", true)
        );
        let v6 = p("2001:db8::7").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::7/128");
    }

    #[test]
    fn canonical_prefixes_parse() {
        assert_eq!(p("10.1.0.0/16").unwrap().to_string(), "10.1.0.0/16");
        assert_eq!(p("0.0.0.0/0").unwrap().prefix_len(), 0);
        assert_eq!(p("::/0").unwrap().to_string(), "::/0");
        assert_eq!(
            p(" 2001:db8:1::/48 ").unwrap().to_string(),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn host_bits_name_the_canonical_prefix() {
        let e = p("10.1.2.3/16").unwrap_err();
        assert!(matches!(e, Error::HostBitsSet { .. }));
        assert!(e.to_string().contains("did you mean 10.1.0.0/16"), "{e}");
        let e = p("2001:db8::1/64").unwrap_err();
        assert!(e.to_string().contains("2001:db8::/64"), "{e}");
    }

    #[test]
    fn lengths_out_of_range_are_refused() {
        for s in ["10.0.0.0/33", "::/129", "10.0.0.0/99999999999999"] {
            assert!(
                matches!(p(s).unwrap_err(), Error::PrefixLengthOutOfRange { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn malformed_prefixes_are_refused() {
        for s in [
            "",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/a",
            "fe80::1%eth0",
            "x/8",
        ] {
            assert!(matches!(p(s).unwrap_err(), Error::BadPrefix { .. }), "{s}");
        }
    }

    #[test]
    fn contains_respects_family_and_length() {
        let n = p("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.255.1".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(!n.contains("::a01:1".parse().unwrap()));
        assert!(p("::/0").unwrap().contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn ordering_is_v4_first_then_address_then_length() {
        let mut v: Vec<Prefix> = ["2001:db8::/32", "10.0.0.0/16", "10.0.0.0/8", "9.0.0.0/8"]
            .iter()
            .map(|s| p(s).unwrap())
            .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            s,
            ["9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "2001:db8::/32"]
        );
    }

    #[test]
    fn addr_text_is_what_display_writes() {
        for s in [
            "0.0.0.0/0",
            "9.0.0.0/8",
            "10.0.0.1/32",
            "100.64.10.0/24",
            "192.168.255.254/31",
            "255.255.255.255/32",
            "::/0",
            "2001:db8::/32",
            "2001:db8:0:1::7/128",
            "::ffff:192.0.2.1/128",
            "fe80::1:2:3:4/128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
        ] {
            let prefix = p(s).unwrap();
            assert_eq!(AddrText::prefix(&prefix).as_str(), prefix.to_string());
            assert_eq!(
                AddrText::addr(prefix.addr()).as_str(),
                prefix.addr().to_string()
            );
        }
        for i in 0..=255u8 {
            let a = IpAddr::V4(Ipv4Addr::new(i, 255 - i, i / 3, 10));
            assert_eq!(AddrText::addr(a).as_str(), a.to_string());
        }
    }

    #[test]
    fn tunnel_addresses_must_be_unicast() {
        for s in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::1",
            "::ffff:10.0.0.1",
        ] {
            let a = parse_addr(s).unwrap();
            assert!(check_tunnel_addr("locator", a).is_err(), "{s}");
        }
        assert!(check_tunnel_addr("locator", parse_addr("192.0.2.1").unwrap()).is_ok());
        assert!(check_tunnel_addr("locator", parse_addr("2001:db8::1").unwrap()).is_ok());
        assert!(matches!(
            parse_addr("10.0.0.256"),
            Err(Error::BadAddress(_))
        ));
    }
}
