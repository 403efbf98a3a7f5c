//! RFC 6052: IPv4-embedded IPv6 addresses (the "pool6" translation prefix of SIIT).
//!
//! Section 2.2: with a prefix of length 32, 40, 48, 56, 64 or 96 bits, the 32 bits of
//! the IPv4 address follow the prefix, except that bits 64..71 (the "u" octet, byte 8)
//! are skipped and always zero; the suffix after the IPv4 address is zero.
//!
//! ```text
//!  +--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//!  |PL| 0-------------32--40--48--56--64--72--80--88--96--104---------|
//!  +--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//!  |32|     prefix    |v4(32)         | u | suffix                    |
//!  |40|     prefix        |v4(24)     | u |(8)| suffix                |
//!  |48|     prefix            |v4(16) | u | (16)  | suffix            |
//!  |56|     prefix                |(8)| u |  v4(24)   | suffix        |
//!  |64|     prefix                    | u |   v4(32)      | suffix    |
//!  |96|     prefix                                    |    v4(32)     |
//!  +--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//! ```
//!
//! Everything here is `const`, works on fixed-size arrays and cannot panic (byte
//! positions come from a fixed table and are masked to the array size), so the eBPF
//! data plane can call it directly.

/// An IPv6 translation prefix: the address bytes (only the first `len / 8` are used)
/// and its length in bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Prefix6 {
    pub addr: [u8; 16],
    pub len: u8,
}

/// Byte positions (within the IPv6 address) of the four IPv4 address bytes for each
/// allowed prefix length, RFC 6052 section 2.2 figure 1. `None` for any other length.
#[inline(always)]
pub const fn v4_byte_positions(len: u8) -> Option<[usize; 4]> {
    match len {
        32 => Some([4, 5, 6, 7]),
        40 => Some([5, 6, 7, 9]),
        48 => Some([6, 7, 9, 10]),
        56 => Some([7, 9, 10, 11]),
        64 => Some([9, 10, 11, 12]),
        96 => Some([12, 13, 14, 15]),
        _ => None,
    }
}

/// True for the prefix lengths RFC 6052 section 2.2 allows.
#[inline(always)]
pub const fn valid_prefix_len(len: u8) -> bool {
    v4_byte_positions(len).is_some()
}

impl Prefix6 {
    /// A prefix with the bits after `len` cleared. `None` if `len` is not an RFC 6052
    /// length, or if the prefix has non-zero bits in the "u" octet (bits 64..71 must be
    /// zero, section 2.2; only a /96 prefix covers them).
    pub const fn new(addr: [u8; 16], len: u8) -> Option<Self> {
        if !valid_prefix_len(len) {
            return None;
        }
        let mut clean = [0u8; 16];
        let n = (len / 8) as usize;
        let mut i = 0;
        while i < 16 {
            if i < n {
                clean[i] = addr[i];
            }
            i += 1;
        }
        if len == 96 && clean[8] != 0 {
            return None;
        }
        Some(Self { addr: clean, len })
    }

    /// True when `a` starts with this prefix.
    #[inline(always)]
    pub const fn contains(&self, a: &[u8; 16]) -> bool {
        let n = (self.len / 8) as usize;
        let mut i = 0;
        while i < 16 {
            if i < n && a[i] != self.addr[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

/// RFC 6052 section 2.3, address translation IPv4 -> IPv6: the IPv4-embedded IPv6
/// address of `v4` under `prefix`. `None` if the prefix length is not allowed.
#[inline(always)]
pub const fn embed(prefix: &Prefix6, v4: [u8; 4]) -> Option<[u8; 16]> {
    let pos = match v4_byte_positions(prefix.len) {
        Some(p) => p,
        None => return None,
    };
    // Prefix bytes, then zeros (u octet and suffix, section 2.2).
    let n = (prefix.len / 8) as usize;
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        if i < n {
            out[i] = prefix.addr[i];
        }
        i += 1;
    }
    out[pos[0] & 15] = v4[0];
    out[pos[1] & 15] = v4[1];
    out[pos[2] & 15] = v4[2];
    out[pos[3] & 15] = v4[3];
    Some(out)
}

/// RFC 6052 section 2.3, address translation IPv6 -> IPv4: the IPv4 address embedded
/// in `a`, or `None` if `a` is not under `prefix` (or the length is not allowed).
///
/// The "u" octet and the suffix are not checked: section 2.3 extracts the IPv4 bits
/// from their positions and says nothing of the rest.
#[inline(always)]
pub const fn extract(prefix: &Prefix6, a: &[u8; 16]) -> Option<[u8; 4]> {
    let pos = match v4_byte_positions(prefix.len) {
        Some(p) => p,
        None => return None,
    };
    if !prefix.contains(a) {
        return None;
    }
    Some([
        a[pos[0] & 15],
        a[pos[1] & 15],
        a[pos[2] & 15],
        a[pos[3] & 15],
    ])
}

/// The Well-Known Prefix 64:ff9b::/96 (RFC 6052 section 2.1).
pub const WELL_KNOWN_PREFIX: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Whether `a` may be represented under `prefix` at all. Never: "this network"
/// 0.0.0.0/8, loopback 127.0.0.0/8, link-local 169.254.0.0/16, multicast 224.0.0.0/4
/// and reserved/broadcast 240.0.0.0/4 (RFC 6890: not forwardable or not global, a
/// translator must not invent IPv6 twins for them). Under the Well-Known Prefix also
/// not the other non-global ranges (RFC 6052 section 3.1): 10/8, 100.64/10, 172.16/12,
/// 192.0.0/24, 192.168/16, 198.18/15. EAMT entries are explicit and not subject to this.
#[inline(always)]
pub const fn translatable_v4(prefix: &Prefix6, a: &[u8; 4]) -> bool {
    let special = a[0] == 0 || a[0] == 127 || (a[0] == 169 && a[1] == 254) || a[0] >= 224;
    if special {
        return false;
    }
    let mut wkp = prefix.len == 96;
    let mut i = 0;
    while i < 12 {
        if prefix.addr[i] != WELL_KNOWN_PREFIX[i] {
            wkp = false;
        }
        i += 1;
    }
    if wkp {
        let private = a[0] == 10
            || (a[0] == 100 && a[1] & 0xc0 == 64)
            || (a[0] == 172 && a[1] & 0xf0 == 16)
            || (a[0] == 192 && a[1] == 0 && a[2] == 0)
            || (a[0] == 192 && a[1] == 168)
            || (a[0] == 198 && a[1] & 0xfe == 18);
        return !private;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> [u8; 16] {
        extern crate std;
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    /// RFC 6052 section 2.4, table 1: 192.0.2.33 under 2001:db8::/PL for every length.
    const TABLE: [(&str, u8, &str); 6] = [
        ("2001:db8::", 32, "2001:db8:c000:221::"),
        ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
        ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::", 96, "2001:db8:122:344::192.0.2.33"),
    ];

    #[test]
    fn rfc6052_section_2_4_table() {
        for (prefix, len, expected) in TABLE {
            let p = Prefix6::new(v6(prefix), len).unwrap();
            assert_eq!(embed(&p, [192, 0, 2, 33]), Some(v6(expected)), "/{len}");
            assert_eq!(extract(&p, &v6(expected)), Some([192, 0, 2, 33]), "/{len}");
            // The u octet stays zero (for /96 it is prefix, zero here too).
            assert_eq!(embed(&p, [255, 255, 255, 255]).unwrap()[8], 0);
        }
    }

    #[test]
    fn well_known_prefix() {
        // RFC 6052 section 2.4: 64:ff9b::/96 and 192.0.2.33 -> 64:ff9b::192.0.2.33.
        let p = Prefix6::new(v6("64:ff9b::"), 96).unwrap();
        assert_eq!(embed(&p, [192, 0, 2, 33]), Some(v6("64:ff9b::c000:221")));
    }

    #[test]
    fn conformance_configuration() {
        // The siit-pktgen README: pool6 2001:db8:100::/40.
        let p = Prefix6::new(v6("2001:db8:100::"), 40).unwrap();
        assert_eq!(
            embed(&p, [198, 51, 100, 2]),
            Some(v6("2001:db8:1c6:3364:2::"))
        );
        assert_eq!(
            extract(&p, &v6("2001:db8:1c0:2:21::")),
            Some([192, 0, 2, 33])
        );
    }

    #[test]
    fn special_ipv4_addresses_are_not_embedded() {
        let nsp = Prefix6::new(v6("2001:db8:100::"), 40).unwrap();
        let wkp = Prefix6::new(v6("64:ff9b::"), 96).unwrap();
        for a in [
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [169, 254, 1, 1],
            [224, 0, 0, 1],
            [239, 1, 1, 1],
            [255; 4],
        ] {
            assert!(!translatable_v4(&nsp, &a), "{a:?}");
            assert!(!translatable_v4(&wkp, &a), "{a:?}");
        }
        for a in [
            [10, 1, 1, 1],
            [172, 16, 0, 1],
            [192, 168, 1, 1],
            [100, 64, 0, 1],
            [198, 18, 0, 1],
        ] {
            assert!(
                translatable_v4(&nsp, &a),
                "{a:?} under a network-specific prefix"
            );
            assert!(
                !translatable_v4(&wkp, &a),
                "{a:?} under the well-known prefix"
            );
        }
        assert!(translatable_v4(&wkp, &[192, 0, 2, 33]));
        assert!(translatable_v4(&wkp, &[172, 32, 0, 1]));
    }

    #[test]
    fn outside_the_prefix() {
        let p = Prefix6::new(v6("2001:db8:100::"), 40).unwrap();
        assert_eq!(extract(&p, &v6("2001:db8:200::1")), None);
        assert_eq!(extract(&p, &v6("2001:db9:100::1")), None);
    }

    #[test]
    fn invalid_lengths() {
        for len in [0u8, 8, 16, 24, 33, 63, 65, 72, 80, 88, 95, 97, 128, 255] {
            assert!(Prefix6::new([0; 16], len).is_none(), "/{len}");
            let p = Prefix6 { addr: [0; 16], len };
            assert_eq!(embed(&p, [1, 2, 3, 4]), None);
            assert_eq!(extract(&p, &[0; 16]), None);
        }
        // A /96 prefix must keep the u octet zero.
        let mut a = [0u8; 16];
        a[8] = 1;
        assert!(Prefix6::new(a, 96).is_none());
        // Bits after the length are cleared.
        let p = Prefix6::new(v6("2001:db8:1ff:ffff::1"), 40).unwrap();
        assert_eq!(p.addr, v6("2001:db8:100::"));
    }

    #[test]
    fn every_length_round_trips() {
        for len in [32u8, 40, 48, 56, 64, 96] {
            // Byte 8 (the u octet) of the prefix is zero, as a /96 requires.
            let p = Prefix6::new(v6("2001:db8:aaaa:bbbb:ff:dddd::"), len).unwrap();
            for v4 in [
                [0, 0, 0, 0],
                [10, 0, 0, 1],
                [255, 254, 253, 252],
                [192, 0, 2, 33],
            ] {
                let a = embed(&p, v4).unwrap();
                assert!(p.contains(&a));
                if len != 96 {
                    assert_eq!(a[8], 0, "u octet at /{len}");
                }
                assert_eq!(extract(&p, &a), Some(v4));
            }
        }
    }
}
