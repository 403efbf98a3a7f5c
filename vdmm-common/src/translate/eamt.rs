//! RFC 7757: the Explicit Address Mapping Table (EAMT) of SIIT-EAM.
//!
//! An entry maps an IPv4 prefix to an IPv6 prefix with the same number of suffix bits
//! (section 3.2: `32 - v4_len == 128 - v6_len`, so `v6_len >= 96`); an address under
//! one prefix maps to the address under the other prefix with the same suffix
//! (section 3.3). The longest matching prefix wins (section 3.3), and an EAMT match
//! wins over the RFC 6052 prefix (section 3.3 / RFC 7915 section 6).
//!
//! Everything here is pure and `const`, over fixed-size arrays, and cannot panic, for
//! use inside the eBPF data plane. There the longest match itself is an LPM-trie map
//! lookup; [`longest_match_v4`] / [`longest_match_v6`] give the same answer over a fixed
//! array of candidates (the host reference and the tests use them).

use super::rfc6052::{self, Prefix6};

/// One EAMT entry (RFC 7757 section 3.1): `v4/v4_len <-> v6/v6_len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EamEntry {
    pub v6: [u8; 16],
    pub v4: [u8; 4],
    pub v6_len: u8,
    pub v4_len: u8,
}

/// The mask byte for `bits` leading one bits of one byte (`bits` clamped to 0..=8).
#[inline(always)]
const fn byte_mask(bits: i32) -> u8 {
    if bits >= 8 {
        0xff
    } else if bits <= 0 {
        0
    } else {
        (0xff00u16 >> bits) as u8
    }
}

/// The IPv4 netmask of a prefix length (0..=32) as a big-endian `u32`.
#[inline(always)]
pub const fn v4_mask(len: u8) -> u32 {
    if len >= 32 {
        u32::MAX
    } else if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

/// True when `a` is under `prefix/len` (IPv4).
#[inline(always)]
pub const fn v4_in_prefix(prefix: &[u8; 4], len: u8, a: &[u8; 4]) -> bool {
    let m = v4_mask(len);
    (u32::from_be_bytes(*prefix) & m) == (u32::from_be_bytes(*a) & m)
}

/// True when `a` is under `prefix/len` (IPv6).
#[inline(always)]
pub const fn v6_in_prefix(prefix: &[u8; 16], len: u8, a: &[u8; 16]) -> bool {
    let mut i = 0;
    while i < 16 {
        let m = byte_mask(len as i32 - 8 * i as i32);
        if (prefix[i] ^ a[i]) & m != 0 {
            return false;
        }
        i += 1;
    }
    true
}

impl EamEntry {
    /// An entry with host bits cleared, or `None` when the lengths are out of range or
    /// the suffix lengths differ (RFC 7757 section 3.2).
    pub const fn new(v6: [u8; 16], v6_len: u8, v4: [u8; 4], v4_len: u8) -> Option<Self> {
        if v4_len > 32 || v6_len > 128 || 32 - v4_len as u32 != 128 - v6_len as u32 {
            return None;
        }
        let mut c6 = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            c6[i] = v6[i] & byte_mask(v6_len as i32 - 8 * i as i32);
            i += 1;
        }
        let c4 = (u32::from_be_bytes(v4) & v4_mask(v4_len)).to_be_bytes();
        Some(Self {
            v6: c6,
            v4: c4,
            v6_len,
            v4_len,
        })
    }

    /// True when the entry is well formed (what [`EamEntry::new`] guarantees).
    #[inline(always)]
    pub const fn is_valid(&self) -> bool {
        self.v4_len <= 32
            && self.v6_len <= 128
            && 32 - self.v4_len as u32 == 128 - self.v6_len as u32
    }

    /// True when the IPv4 address is under this entry's IPv4 prefix.
    #[inline(always)]
    pub const fn matches_v4(&self, a: &[u8; 4]) -> bool {
        self.is_valid() && v4_in_prefix(&self.v4, self.v4_len, a)
    }

    /// True when the IPv6 address is under this entry's IPv6 prefix.
    #[inline(always)]
    pub const fn matches_v6(&self, a: &[u8; 16]) -> bool {
        self.is_valid() && v6_in_prefix(&self.v6, self.v6_len, a)
    }

    /// RFC 7757 section 3.3, IPv4 -> IPv6: the IPv6 prefix followed by the IPv4
    /// address's suffix bits. `None` if `a` is not under the IPv4 prefix.
    #[inline(always)]
    pub const fn map_4to6(&self, a: &[u8; 4]) -> Option<[u8; 16]> {
        if !self.matches_v4(a) {
            return None;
        }
        // The suffix is at most 32 bits, so it lives in the last four bytes (v6_len >= 96).
        let m = v4_mask(self.v4_len);
        let tail6 = u32::from_be_bytes([self.v6[12], self.v6[13], self.v6[14], self.v6[15]]);
        let tail = ((tail6 & m) | (u32::from_be_bytes(*a) & !m)).to_be_bytes();
        let mut out = self.v6;
        out[12] = tail[0];
        out[13] = tail[1];
        out[14] = tail[2];
        out[15] = tail[3];
        Some(out)
    }

    /// RFC 7757 section 3.3, IPv6 -> IPv4: the IPv4 prefix followed by the IPv6
    /// address's suffix bits. `None` if `a` is not under the IPv6 prefix.
    #[inline(always)]
    pub const fn map_6to4(&self, a: &[u8; 16]) -> Option<[u8; 4]> {
        if !self.matches_v6(a) {
            return None;
        }
        let m = v4_mask(self.v4_len);
        let tail = u32::from_be_bytes([a[12], a[13], a[14], a[15]]);
        Some(((u32::from_be_bytes(self.v4) & m) | (tail & !m)).to_be_bytes())
    }
}

/// The entry among `cands` with the longest IPv4 prefix covering `a` (RFC 7757 section
/// 3.3), `None` when none does. Empty slots are `None`.
#[inline(always)]
pub fn longest_match_v4<const N: usize>(
    cands: &[Option<EamEntry>; N],
    a: &[u8; 4],
) -> Option<EamEntry> {
    let mut best: Option<EamEntry> = None;
    for c in cands.iter().flatten() {
        if c.matches_v4(a) {
            match best {
                Some(b) if b.v4_len >= c.v4_len => {}
                _ => best = Some(*c),
            }
        }
    }
    best
}

/// The entry among `cands` with the longest IPv6 prefix covering `a`.
#[inline(always)]
pub fn longest_match_v6<const N: usize>(
    cands: &[Option<EamEntry>; N],
    a: &[u8; 16],
) -> Option<EamEntry> {
    let mut best: Option<EamEntry> = None;
    for c in cands.iter().flatten() {
        if c.matches_v6(a) {
            match best {
                Some(b) if b.v6_len >= c.v6_len => {}
                _ => best = Some(*c),
            }
        }
    }
    best
}

/// How an address was mapped (for counters and for the RFC 6791 fallback).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappedBy {
    /// An EAMT entry (RFC 7757).
    Eam = 0,
    /// The RFC 6052 prefix.
    Rfc6052 = 1,
}

/// RFC 7757 section 3.3 / RFC 7915 section 6, IPv4 -> IPv6: the longest EAMT match
/// (`eam`, already selected, e.g. by an LPM lookup) if there is one, else the RFC 6052
/// prefix if configured and the address may be embedded ([`rfc6052::translatable_v4`]).
/// `None`: the address has no IPv6 representation.
#[inline(always)]
pub const fn address_4to6(
    eam: Option<&EamEntry>,
    pool6: Option<&Prefix6>,
    a: &[u8; 4],
) -> Option<([u8; 16], MappedBy)> {
    if let Some(e) = eam
        && let Some(m) = e.map_4to6(a)
    {
        return Some((m, MappedBy::Eam));
    }
    if let Some(p) = pool6
        && rfc6052::translatable_v4(p, a)
        && let Some(m) = rfc6052::embed(p, *a)
    {
        return Some((m, MappedBy::Rfc6052));
    }
    None
}

/// RFC 7757 section 3.3 / RFC 7915 section 6, IPv6 -> IPv4: the longest EAMT match
/// first, else extraction from the RFC 6052 prefix if the address is under it.
#[inline(always)]
pub const fn address_6to4(
    eam: Option<&EamEntry>,
    pool6: Option<&Prefix6>,
    a: &[u8; 16],
) -> Option<([u8; 4], MappedBy)> {
    if let Some(e) = eam
        && let Some(m) = e.map_6to4(a)
    {
        return Some((m, MappedBy::Eam));
    }
    if let Some(p) = pool6
        && let Some(m) = rfc6052::extract(p, a)
        && rfc6052::translatable_v4(p, &m)
    {
        return Some((m, MappedBy::Rfc6052));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    fn readme_eamt() -> [Option<EamEntry>; 4] {
        [
            EamEntry::new(v6("2001:db8:3::"), 120, [1, 0, 0, 0], 24),
            None,
            EamEntry::new(v6("2001:db8:2::"), 120, [10, 0, 0, 0], 24),
            None,
        ]
    }

    #[test]
    fn suffix_lengths_must_match() {
        assert!(EamEntry::new(v6("2001:db8::"), 120, [10, 0, 0, 0], 24).is_some());
        assert!(EamEntry::new(v6("2001:db8::"), 128, [10, 0, 0, 1], 32).is_some());
        assert!(EamEntry::new(v6("2001:db8::"), 96, [0, 0, 0, 0], 0).is_some());
        assert!(EamEntry::new(v6("2001:db8::"), 120, [10, 0, 0, 0], 16).is_none());
        assert!(EamEntry::new(v6("2001:db8::"), 64, [10, 0, 0, 0], 24).is_none());
        assert!(EamEntry::new(v6("2001:db8::"), 129, [10, 0, 0, 0], 33).is_none());
        // Host bits are cleared.
        let e = EamEntry::new(v6("2001:db8::1ff"), 120, [10, 0, 0, 77], 24).unwrap();
        assert_eq!((e.v6, e.v4), (v6("2001:db8::100"), [10, 0, 0, 0]));
    }

    #[test]
    fn readme_entries_map_both_ways() {
        let t = readme_eamt();
        let e = longest_match_v4(&t, &[10, 0, 0, 5]).unwrap();
        assert_eq!(e.map_4to6(&[10, 0, 0, 5]), Some(v6("2001:db8:2::5")));
        let e = longest_match_v6(&t, &v6("2001:db8:3::ff")).unwrap();
        assert_eq!(e.map_6to4(&v6("2001:db8:3::ff")), Some([1, 0, 0, 255]));
        assert_eq!(longest_match_v4(&t, &[10, 0, 1, 5]), None);
        assert_eq!(longest_match_v6(&t, &v6("2001:db8:3::1:0")), None);
    }

    #[test]
    fn rfc7757_section_3_3_examples() {
        // RFC 7757 section 3.3 / appendix A style: 192.0.2.1/32 <-> 2001:db8:aaaa::/128,
        // 192.0.2.0/24 <-> 2001:db8:bbbb::/120, 198.51.100.0/24 <-> 2001:db8:cccc::/120:
        // 192.0.2.1 takes the /32, 192.0.2.2 the /24.
        let t = [
            EamEntry::new(v6("2001:db8:bbbb::"), 120, [192, 0, 2, 0], 24),
            EamEntry::new(v6("2001:db8:aaaa::"), 128, [192, 0, 2, 1], 32),
            EamEntry::new(v6("2001:db8:cccc::"), 120, [198, 51, 100, 0], 24),
        ];
        let m = |a: [u8; 4]| longest_match_v4(&t, &a).and_then(|e| e.map_4to6(&a));
        assert_eq!(m([192, 0, 2, 1]), Some(v6("2001:db8:aaaa::")));
        assert_eq!(m([192, 0, 2, 2]), Some(v6("2001:db8:bbbb::2")));
        assert_eq!(m([198, 51, 100, 9]), Some(v6("2001:db8:cccc::9")));
        let r = |a: [u8; 16]| longest_match_v6(&t, &a).and_then(|e| e.map_6to4(&a));
        assert_eq!(r(v6("2001:db8:aaaa::")), Some([192, 0, 2, 1]));
        assert_eq!(r(v6("2001:db8:bbbb::fe")), Some([192, 0, 2, 254]));
        assert_eq!(r(v6("2001:db8:aaaa::1")), None);
    }

    #[test]
    fn odd_prefix_lengths() {
        // A /27 <-> /123 entry: 5 suffix bits.
        let e = EamEntry::new(v6("2001:db8::e0"), 123, [192, 0, 2, 224], 27).unwrap();
        assert_eq!(e.map_4to6(&[192, 0, 2, 225]), Some(v6("2001:db8::e1")));
        assert_eq!(e.map_4to6(&[192, 0, 2, 223]), None);
        assert_eq!(e.map_6to4(&v6("2001:db8::ff")), Some([192, 0, 2, 255]));
        assert_eq!(e.map_6to4(&v6("2001:db8::df")), None);
        // /0 <-> /96: everything.
        let e = EamEntry::new(v6("2001:db8:1:2:3:4::"), 96, [0, 0, 0, 0], 0).unwrap();
        assert_eq!(
            e.map_4to6(&[1, 2, 3, 4]),
            Some(v6("2001:db8:1:2:3:4:102:304"))
        );
        assert_eq!(
            e.map_6to4(&v6("2001:db8:1:2:3:4:102:304")),
            Some([1, 2, 3, 4])
        );
    }

    #[test]
    fn eam_wins_over_rfc6052() {
        let t = readme_eamt();
        let pool6 = Prefix6::new(v6("2001:db8:100::"), 40).unwrap();
        let a = [10, 0, 0, 7];
        let hit = longest_match_v4(&t, &a);
        assert_eq!(
            address_4to6(hit.as_ref(), Some(&pool6), &a),
            Some((v6("2001:db8:2::7"), MappedBy::Eam))
        );
        let a = [192, 0, 2, 33];
        let hit = longest_match_v4(&t, &a);
        assert_eq!(
            address_4to6(hit.as_ref(), Some(&pool6), &a),
            Some((v6("2001:db8:1c0:2:21::"), MappedBy::Rfc6052))
        );
        assert_eq!(address_4to6(None, None, &a), None);
        let b = v6("2001:db8:3::9");
        let hit = longest_match_v6(&t, &b);
        assert_eq!(
            address_6to4(hit.as_ref(), Some(&pool6), &b),
            Some(([1, 0, 0, 9], MappedBy::Eam))
        );
        let b = v6("2001:db8:1c6:3364:2::");
        assert_eq!(
            address_6to4(None, Some(&pool6), &b),
            Some(([198, 51, 100, 2], MappedBy::Rfc6052))
        );
        assert_eq!(address_6to4(None, Some(&pool6), &v6("2001:db8:4::1")), None);
        // Loopback / multicast never map through the prefix, in either direction.
        assert_eq!(address_4to6(None, Some(&pool6), &[127, 0, 0, 1]), None);
        assert_eq!(
            address_6to4(
                None,
                Some(&pool6),
                &rfc6052::embed(&pool6, [224, 0, 0, 5]).unwrap()
            ),
            None
        );
    }
}
