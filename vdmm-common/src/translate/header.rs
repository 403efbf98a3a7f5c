//! Fixed-size header builders of RFC 7915 (sections 4.1, 5.1, 5.1.1): what the data plane
//! writes in front of a translated payload. All `const`, over arrays, panic-free.

/// IPv4 header without options.
pub const IPV4_HDR_LEN: usize = 20;
/// IPv6 fixed header.
pub const IPV6_HDR_LEN: usize = 40;
/// IPv6 fragment header (RFC 8200 section 4.5).
pub const FRAG_HDR_LEN: usize = 8;

pub const PROTO_HOPOPTS: u8 = 0;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ROUTING: u8 = 43;
pub const PROTO_FRAGMENT: u8 = 44;
pub const PROTO_ESP: u8 = 50;
pub const PROTO_AH: u8 = 51;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_NONE: u8 = 59;
pub const PROTO_DSTOPTS: u8 = 60;

/// RFC 7915 section 5.1: a translated IPv4 packet (without a fragment header on the IPv6
/// side) gets DF only when larger than 1260 bytes; smaller ones may be fragmented by
/// IPv4 routers (they will fit the 1280-byte IPv6 minimum MTU on the way back).
pub const IPV4_DF_THRESHOLD: u32 = 1260;

/// RFC 7915 section 5.1, Flags: DF for a translated packet of `total_len` bytes.
#[inline(always)]
pub const fn df_for_translated_ipv4(total_len: u32) -> bool {
    total_len > IPV4_DF_THRESHOLD
}

/// RFC 7915 section 4.1, Next Header: ICMPv4 (1) becomes ICMPv6 (58), every other
/// protocol number is copied.
#[inline(always)]
pub const fn protocol_4to6(p: u8) -> u8 {
    if p == PROTO_ICMP { PROTO_ICMPV6 } else { p }
}

/// RFC 7915 section 5.1, Protocol: ICMPv6 (58) becomes ICMPv4 (1), others are copied.
#[inline(always)]
pub const fn protocol_6to4(p: u8) -> u8 {
    if p == PROTO_ICMPV6 { PROTO_ICMP } else { p }
}

/// IPv6 extension headers in the sense of RFC 7915 section 5.1.1 (the IANA list of RFC
/// 7045 / RFC 8200 section 4): hop-by-hop, routing, fragment, destination options, AH,
/// mobility, HIP, shim6, experimental. ESP is not one of them here (5.1.1 excepts it).
#[inline(always)]
pub const fn is_ipv6_extension_header(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

/// RFC 7915 section 4.1: the IPv6 header of a translated IPv4 packet.
///
/// `traffic_class` is the IPv4 TOS octet (or 0 when configured to ignore it), the flow
/// label is zero, `next_header` is [`protocol_4to6`] of the IPv4 protocol or
/// [`PROTO_FRAGMENT`] when a fragment header follows.
#[inline(always)]
pub const fn build_ipv6_header(
    traffic_class: u8,
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: &[u8; 16],
    dst: &[u8; 16],
) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60 | (traffic_class >> 4);
    h[1] = traffic_class << 4; // flow label 0
    let pl = payload_len.to_be_bytes();
    h[4] = pl[0];
    h[5] = pl[1];
    h[6] = next_header;
    h[7] = hop_limit;
    let mut i = 0;
    while i < 16 {
        h[8 + i] = src[i];
        h[24 + i] = dst[i];
        i += 1;
    }
    h
}

/// RFC 7915 section 4.1: the fragment header of a translated IPv4 fragment.
/// `offset8` is the fragment offset in 8-byte units (the IPv4 field), `more` the MF
/// flag, `id` the IPv4 identification (the high 16 bits of the IPv6 one are zero).
#[inline(always)]
pub const fn build_fragment_header(next_header: u8, offset8: u16, more: bool, id: u16) -> [u8; 8] {
    let fo = ((offset8 & 0x1fff) << 3) | more as u16;
    let fo = fo.to_be_bytes();
    let id = (id as u32).to_be_bytes();
    [next_header, 0, fo[0], fo[1], id[0], id[1], id[2], id[3]]
}

/// RFC 7915 sections 5.1 and 5.1.1: the IPv4 header (no options, IHL 5) of a
/// translated IPv6 packet, with a valid header checksum.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub const fn build_ipv4_header(
    tos: u8,
    total_len: u16,
    id: u16,
    df: bool,
    mf: bool,
    offset8: u16,
    ttl: u8,
    protocol: u8,
    src: &[u8; 4],
    dst: &[u8; 4],
) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[1] = tos;
    let tl = total_len.to_be_bytes();
    h[2] = tl[0];
    h[3] = tl[1];
    let idb = id.to_be_bytes();
    h[4] = idb[0];
    h[5] = idb[1];
    let ff = ((df as u16) << 14 | (mf as u16) << 13 | (offset8 & 0x1fff)).to_be_bytes();
    h[6] = ff[0];
    h[7] = ff[1];
    h[8] = ttl;
    h[9] = protocol;
    let mut i = 0;
    while i < 4 {
        h[12 + i] = src[i];
        h[16 + i] = dst[i];
        i += 1;
    }
    let c = super::checksum::ipv4_header_checksum(&h).to_be_bytes();
    h[10] = c[0];
    h[11] = c[1];
    h
}

/// IPv4 option numbers of loose / strict source and record route (RFC 791).
const IPOPT_LSRR: u8 = 131;
const IPOPT_SSRR: u8 = 137;

/// Size of the buffer [`has_unexpired_source_route`] scans: the 40 bytes IPv4 options
/// can have, rounded up to a power of two so that indexes can be masked.
pub const IPV4_OPTIONS_BUF: usize = 64;

/// RFC 7915 section 4.1: true when the IPv4 options (`opts[..len]`, the bytes after the
/// 20-byte header, at most 40) hold an unexpired source route: a loose or strict source
/// route option whose pointer has not passed its length (RFC 791, "the source route is
/// empty (and the recorded route full) when the pointer exceeds the length").
/// Malformed option lists end the scan (nothing more to find). Indexes are masked to
/// the buffer so the compiler (and the eBPF verifier, which cannot bound `%`) sees no
/// out-of-bounds path (they are in range anyway).
#[inline(always)]
pub const fn has_unexpired_source_route(opts: &[u8; IPV4_OPTIONS_BUF], len: usize) -> bool {
    const M: usize = IPV4_OPTIONS_BUF - 1;
    let len = if len > 40 { 40 } else { len };
    let mut i = 0;
    // At most 40 iterations: every step advances by at least one byte.
    while i < len {
        let t = opts[i & M];
        if t == 0 {
            return false; // end of option list
        }
        if t == 1 {
            i += 1; // no-operation
            continue;
        }
        if i + 1 >= len {
            return false;
        }
        let olen = opts[(i + 1) & M] as usize;
        if olen < 2 || i + olen > len {
            return false;
        }
        if (t == IPOPT_LSRR || t == IPOPT_SSRR) && olen >= 3 {
            let ptr = opts[(i + 2) & M] as usize;
            return ptr <= olen;
        }
        i += olen;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_header_fields() {
        let h = build_ipv6_header(0xb8, 1288, 17, 63, &[1; 16], &[2; 16]);
        assert_eq!(&h[..8], &[0x6b, 0x80, 0, 0, 5, 8, 17, 63]);
        assert_eq!(&h[8..24], &[1; 16]);
        assert_eq!(&h[24..], &[2; 16]);
    }

    #[test]
    fn fragment_header_fields() {
        // From the vectors: offset 151 (x8 = 1208), MF, id 0x1234 -> 11 00 04 b9 00 00 12 34.
        assert_eq!(
            build_fragment_header(17, 151, true, 0x1234),
            [17, 0, 4, 0xb9, 0, 0, 0x12, 0x34]
        );
        assert_eq!(
            build_fragment_header(17, 301, false, 0x1234),
            [17, 0, 9, 0x68, 0, 0, 0x12, 0x34]
        );
    }

    #[test]
    fn ipv4_header_fields() {
        // From the vectors: 45 00 04 c4 43 21 20 97 3f 11 27 1a c0 00 02 21 c6 33 64 02
        let h = build_ipv4_header(
            0,
            1220,
            0x4321,
            false,
            true,
            0x97,
            63,
            17,
            &[192, 0, 2, 33],
            &[198, 51, 100, 2],
        );
        assert_eq!(
            h,
            [
                0x45, 0, 4, 0xc4, 0x43, 0x21, 0x20, 0x97, 0x3f, 0x11, 0x27, 0x1a, 0xc0, 0, 2, 0x21,
                0xc6, 0x33, 0x64, 2
            ]
        );
    }

    #[test]
    fn df_rule() {
        assert!(!df_for_translated_ipv4(1260));
        assert!(df_for_translated_ipv4(1261));
    }

    #[test]
    fn source_route_option() {
        let mut o = [0u8; IPV4_OPTIONS_BUF];
        // NOP, LSRR len 11 ptr 4 (two addresses left): unexpired.
        o[0] = 1;
        o[1] = 131;
        o[2] = 11;
        o[3] = 4;
        assert!(has_unexpired_source_route(&o, 12));
        // Pointer 12 > length 11: expired.
        o[3] = 12;
        assert!(!has_unexpired_source_route(&o, 12));
        // Record route (7) only: no source route.
        let mut r = [0u8; IPV4_OPTIONS_BUF];
        r[0] = 7;
        r[1] = 7;
        r[2] = 4;
        assert!(!has_unexpired_source_route(&r, 8));
        // SSRR after a timestamp option.
        let mut s = [0u8; IPV4_OPTIONS_BUF];
        s[0] = 68;
        s[1] = 4;
        s[2] = 5;
        s[4] = 137;
        s[5] = 7;
        s[6] = 4;
        assert!(has_unexpired_source_route(&s, 12));
        // Malformed: length 0 ends the scan.
        let mut m = [0u8; IPV4_OPTIONS_BUF];
        m[0] = 68;
        assert!(!has_unexpired_source_route(&m, 40));
    }
}
