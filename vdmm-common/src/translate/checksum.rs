//! Internet checksum arithmetic (RFC 1071) and incremental update (RFC 1624), over
//! fixed-size arrays so the data plane can use it unchanged.
//!
//! A "sum" here is an unfolded ones' complement accumulator (`u32`): add 16-bit
//! big-endian words to it with [`add_word`] / [`sum_v4`] / [`sum_v6`], fold it with
//! [`fold`]. A checksum field holds the complement of the folded sum.
//!
//! Translation never recomputes a transport checksum from the payload: it removes what
//! changed (the old pseudo-header, old header words) and adds what replaced it, RFC 1624
//! equation 3, `HC' = ~(~HC + ~m + m')`. So a packet that arrived with a wrong checksum
//! leaves with a checksum wrong by exactly the same amount, and fragments (whose payload
//! the translator never sees whole) are handled like any other packet.

/// Adds one 16-bit word to an unfolded sum.
#[inline(always)]
pub const fn add_word(sum: u32, word: u16) -> u32 {
    // At most 2^16 words can be added before a u32 could overflow; callers add a few
    // dozen at a time and fold in between, so the wrapping add never actually wraps.
    sum.wrapping_add(word as u32)
}

/// Folds an unfolded sum to 16 bits with end-around carry (RFC 1071 section 4.1).
#[inline(always)]
pub const fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Sum of the two 16-bit words of an IPv4 address.
#[inline(always)]
pub const fn sum_v4(a: &[u8; 4]) -> u32 {
    ((a[0] as u32) << 8 | a[1] as u32) + ((a[2] as u32) << 8 | a[3] as u32)
}

/// Sum of the eight 16-bit words of an IPv6 address.
#[inline(always)]
pub const fn sum_v6(a: &[u8; 16]) -> u32 {
    let mut s = 0u32;
    let mut i = 0;
    while i < 16 {
        s += (a[i] as u32) << 8 | a[i + 1] as u32;
        i += 2;
    }
    s
}

/// RFC 1624 equation 3: the checksum field `check` after words summing to `removed`
/// were replaced by words summing to `added`. Both sums may be unfolded.
#[inline(always)]
pub const fn update(check: u16, removed: u32, added: u32) -> u16 {
    // ~HC + ~m + m'  (ones' complement: subtracting m is adding ~m)
    let s = (!check) as u32 + (!fold(removed)) as u32 + fold(added) as u32;
    !fold(s)
}

/// The checksum of a finished sum (the value to store in a checksum field).
#[inline(always)]
pub const fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// UDP (RFC 768): a computed checksum of zero is transmitted as all ones, because zero
/// means "no checksum" in IPv4 and is invalid in IPv6 (RFC 8200 section 8.1).
#[inline(always)]
pub const fn udp_mangle_zero(check: u16) -> u16 {
    if check == 0 { 0xffff } else { check }
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1): addresses, upper-layer packet
/// length (32 bits) and next header.
#[inline(always)]
pub const fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], len: u32, next_header: u8) -> u32 {
    sum_v6(src) + sum_v6(dst) + (len >> 16) + (len & 0xffff) + next_header as u32
}

/// Sum of the IPv4 pseudo-header (RFC 793 section 3.1, RFC 768).
#[inline(always)]
pub const fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], len: u16, protocol: u8) -> u32 {
    sum_v4(src) + sum_v4(dst) + len as u32 + protocol as u32
}

/// The header checksum of a 20-byte IPv4 header (RFC 791), ignoring whatever is in the
/// checksum field (bytes 10-11).
#[inline(always)]
pub const fn ipv4_header_checksum(h: &[u8; 20]) -> u16 {
    let mut s = 0u32;
    let mut i = 0;
    while i < 20 {
        if i != 10 {
            s += (h[i] as u32) << 8 | h[i + 1] as u32;
        }
        i += 2;
    }
    finish(s)
}

/// TCP/UDP checksum after RFC 7915 IPv4 -> IPv6 address translation (sections 4.5,
/// 5.5): only the pseudo-header addresses change; length and protocol number contribute
/// the same to both pseudo-headers (the upper-layer length is the same number, and
/// 6/17 sit in the low byte either way), so they cancel.
#[inline(always)]
pub const fn transport_4to6(
    check: u16,
    src4: &[u8; 4],
    dst4: &[u8; 4],
    src6: &[u8; 16],
    dst6: &[u8; 16],
) -> u16 {
    update(
        check,
        sum_v4(src4) + sum_v4(dst4),
        sum_v6(src6) + sum_v6(dst6),
    )
}

/// The reverse of [`transport_4to6`] (RFC 7915 section 5.5).
#[inline(always)]
pub const fn transport_6to4(
    check: u16,
    src6: &[u8; 16],
    dst6: &[u8; 16],
    src4: &[u8; 4],
    dst4: &[u8; 4],
) -> u16 {
    update(
        check,
        sum_v6(src6) + sum_v6(dst6),
        sum_v4(src4) + sum_v4(dst4),
    )
}

/// ICMPv4 -> ICMPv6 checksum of an informational message (RFC 7915 section 4.2, echo):
/// the type/code word changes and the ICMPv6 pseudo-header (which ICMPv4 lacks) is
/// added. `icmp_len` is the length of the whole ICMP message.
#[inline(always)]
pub const fn icmp_info_4to6(
    check: u16,
    old_type_code: u16,
    new_type_code: u16,
    src6: &[u8; 16],
    dst6: &[u8; 16],
    icmp_len: u32,
) -> u16 {
    update(
        check,
        old_type_code as u32,
        new_type_code as u32 + pseudo_header_v6(src6, dst6, icmp_len, 58),
    )
}

/// ICMPv6 -> ICMPv4 checksum of an informational message (RFC 7915 section 5.2, echo):
/// the type/code word changes and the ICMPv6 pseudo-header is removed.
#[inline(always)]
pub const fn icmp_info_6to4(
    check: u16,
    old_type_code: u16,
    new_type_code: u16,
    src6: &[u8; 16],
    dst6: &[u8; 16],
    icmp_len: u32,
) -> u16 {
    update(
        check,
        old_type_code as u32 + pseudo_header_v6(src6, dst6, icmp_len, 58),
        new_type_code as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full checksum of a byte string, the slow way, for comparison.
    fn full(words: &[u16]) -> u16 {
        let mut s: u64 = 0;
        for w in words {
            s += *w as u64;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 0001 f203 f4f5 f6f7 sums to ddf2.
        let s = add_word(
            add_word(add_word(add_word(0, 0x0001), 0xf203), 0xf4f5),
            0xf6f7,
        );
        assert_eq!(fold(s), 0xddf2);
        assert_eq!(finish(s), !0xddf2);
    }

    #[test]
    fn incremental_update_matches_recompute() {
        // Replace one word at a time in a message and compare with a full recompute.
        let mut msg: [u16; 8] = [
            0x4500, 0x0073, 0x0000, 0x4000, 0x4011, 0xc0a8, 0x0001, 0xc0a8,
        ];
        let mut check = full(&msg);
        for (i, new) in [(1usize, 0xffffu16), (3, 0x0000), (6, 0x1234), (0, 0xfffe)] {
            let old = msg[i];
            msg[i] = new;
            check = update(check, old as u32, new as u32);
            assert_eq!(check, full(&msg), "after replacing word {i}");
        }
    }

    #[test]
    fn wrong_checksum_stays_wrong_by_the_same_amount() {
        let src4 = [198, 51, 100, 2];
        let dst4 = [192, 0, 2, 33];
        let src6 = [
            0x20, 1, 0xd, 0xb8, 1, 0xc6, 0x33, 0x64, 0, 2, 0, 0, 0, 0, 0, 0,
        ];
        let dst6 = [0x20, 1, 0xd, 0xb8, 1, 0xc0, 0, 2, 0, 0x21, 0, 0, 0, 0, 0, 0];
        // From the conformance vectors: UDP 0x30d8 -> 0x8aae, off by one: 0x30d7 -> 0x8aad.
        assert_eq!(transport_4to6(0x30d8, &src4, &dst4, &src6, &dst6), 0x8aae);
        assert_eq!(transport_4to6(0x30d7, &src4, &dst4, &src6, &dst6), 0x8aad);
        assert_eq!(transport_6to4(0x8aae, &src6, &dst6, &src4, &dst4), 0x30d8);
    }

    #[test]
    fn icmp_echo_round_trip() {
        let src6 = [
            0x20, 1, 0xd, 0xb8, 1, 0xc6, 0x33, 0x64, 0, 2, 0, 0, 0, 0, 0, 0,
        ];
        let dst6 = [0x20, 1, 0xd, 0xb8, 1, 0xc0, 0, 2, 0, 0x21, 0, 0, 0, 0, 0, 0];
        // From the conformance vectors: echo request 0x36be (ICMPv4) <-> 0x26fa (ICMPv6),
        // message length 1288.
        let c6 = icmp_info_4to6(0x36be, 0x0800, 0x8000, &src6, &dst6, 1288);
        assert_eq!(c6, 0x26fa);
        assert_eq!(
            icmp_info_6to4(c6, 0x8000, 0x0800, &src6, &dst6, 1288),
            0x36be
        );
    }

    #[test]
    fn ipv4_header() {
        // A header from the vectors: 45 00 05 1c 12 34 40 00 40 11 [37 46] c6 33 64 02 c0 00 02 21
        let h = [
            0x45, 0, 5, 0x1c, 0x12, 0x34, 0x40, 0, 0x40, 0x11, 0, 0, 0xc6, 0x33, 0x64, 2, 0xc0, 0,
            2, 0x21,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0x3746);
    }

    #[test]
    fn udp_zero() {
        assert_eq!(udp_mangle_zero(0), 0xffff);
        assert_eq!(udp_mangle_zero(0x1234), 0x1234);
    }
}
