//! ICMPv4 <-> ICMPv6 type and code mapping (RFC 7915 sections 4.2 and 5.2), parameter
//! problem pointer tables (figures 3 and 6), and the MTU arithmetic of packet too big /
//! fragmentation needed (sections 4.2, 5.2, 5.1.1 and RFC 1191 section 7).
//!
//! Pure functions over scalars: the data plane calls them as they are.

use super::XlatReason;

pub const ICMP4_ECHO_REPLY: u8 = 0;
pub const ICMP4_DEST_UNREACH: u8 = 3;
pub const ICMP4_SOURCE_QUENCH: u8 = 4;
pub const ICMP4_REDIRECT: u8 = 5;
pub const ICMP4_ECHO_REQUEST: u8 = 8;
pub const ICMP4_TIME_EXCEEDED: u8 = 11;
pub const ICMP4_PARAM_PROBLEM: u8 = 12;

pub const ICMP6_DEST_UNREACH: u8 = 1;
pub const ICMP6_PACKET_TOO_BIG: u8 = 2;
pub const ICMP6_TIME_EXCEEDED: u8 = 3;
pub const ICMP6_PARAM_PROBLEM: u8 = 4;
pub const ICMP6_ECHO_REQUEST: u8 = 128;
pub const ICMP6_ECHO_REPLY: u8 = 129;

/// ICMPv4 error types (RFC 792, RFC 1122 3.2.2): an ICMP error is never sent about one.
#[inline(always)]
pub const fn icmp4_is_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 error types are 0..=127 (RFC 4443 section 2.1).
#[inline(always)]
pub const fn icmp6_is_error(ty: u8) -> bool {
    ty < 128
}

/// What a translated ICMP message becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpMapping {
    /// Informational (echo): new type and code; the rest of the message is unchanged and
    /// the checksum is updated incrementally.
    Info { ty: u8, code: u8 },
    /// Error: new type, code and 4-byte "rest of header" (pointer / MTU / unused). The
    /// packet inside is translated too and the checksum recomputed (sections 4.3, 5.3).
    Error { ty: u8, code: u8, rest: [u8; 4] },
    /// Packet too big (4->6) / fragmentation needed (6->4): an error whose MTU field the
    /// caller fills in with [`ptb_mtu_4to6`] / [`frag_needed_mtu_6to4`].
    TooBig { ty: u8, code: u8 },
    /// No counterpart: silently dropped.
    Drop(XlatReason),
}

/// RFC 7915 section 4.2 figure 3: the IPv6 pointer for an ICMPv4 parameter problem
/// pointer into the IPv4 header. `None` for "n/a" and unlisted values.
#[inline(always)]
pub const fn param_pointer_4to6(ptr: u8) -> Option<u8> {
    match ptr {
        0 => Some(0),        // Version/IHL -> Version/Traffic Class
        1 => Some(1),        // Type Of Service -> Traffic Class/Flow Label
        2 | 3 => Some(4),    // Total Length -> Payload Length
        8 => Some(7),        // Time to Live -> Hop Limit
        9 => Some(6),        // Protocol -> Next Header
        12..=15 => Some(8),  // Source Address
        16..=19 => Some(24), // Destination Address
        _ => None,           // Identification, Flags/Fragment Offset, Checksum, options
    }
}

/// RFC 7915 section 5.2 figure 6: the IPv4 pointer for an ICMPv6 parameter problem
/// pointer into the IPv6 header. `None` for "n/a" and unlisted values.
#[inline(always)]
pub const fn param_pointer_6to4(ptr: u32) -> Option<u8> {
    match ptr {
        0 => Some(0),        // Version/Traffic Class -> Version/IHL, Type Of Service
        1 => Some(1),        // Traffic Class/Flow Label -> Type Of Service
        4 | 5 => Some(2),    // Payload Length -> Total Length
        6 => Some(9),        // Next Header -> Protocol
        7 => Some(8),        // Hop Limit -> Time to Live
        8..=23 => Some(12),  // Source Address
        24..=39 => Some(16), // Destination Address
        _ => None,           // Flow Label (2, 3), beyond the fixed header
    }
}

/// RFC 7915 section 4.2: ICMPv4 type/code (and the 4 bytes after the checksum) to
/// ICMPv6.
pub const fn icmp4_to_icmp6(ty: u8, code: u8, rest: [u8; 4]) -> IcmpMapping {
    match ty {
        // Echo and Echo Reply (Type 8 and Type 0): types 128 and 129.
        ICMP4_ECHO_REQUEST => IcmpMapping::Info {
            ty: ICMP6_ECHO_REQUEST,
            code: 0,
        },
        ICMP4_ECHO_REPLY => IcmpMapping::Info {
            ty: ICMP6_ECHO_REPLY,
            code: 0,
        },
        ICMP4_DEST_UNREACH => match code {
            // Net / host unreachable, source route failed, 6, 7, 8, 11, 12 -> no route (0).
            0 | 1 | 5 | 6 | 7 | 8 | 11 | 12 => IcmpMapping::Error {
                ty: ICMP6_DEST_UNREACH,
                code: 0,
                rest: [0; 4],
            },
            // Protocol unreachable -> parameter problem code 1, pointer to Next Header (6).
            2 => IcmpMapping::Error {
                ty: ICMP6_PARAM_PROBLEM,
                code: 1,
                rest: [0, 0, 0, 6],
            },
            // Port unreachable -> port unreachable (4).
            3 => IcmpMapping::Error {
                ty: ICMP6_DEST_UNREACH,
                code: 4,
                rest: [0; 4],
            },
            // Fragmentation needed and DF set -> packet too big.
            4 => IcmpMapping::TooBig {
                ty: ICMP6_PACKET_TOO_BIG,
                code: 0,
            },
            // Administratively prohibited (9, 10, 13) and precedence cutoff (15) -> 1.
            9 | 10 | 13 | 15 => IcmpMapping::Error {
                ty: ICMP6_DEST_UNREACH,
                code: 1,
                rest: [0; 4],
            },
            // Host precedence violation (14) and unknown codes: silently drop.
            _ => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
        },
        // Time Exceeded (Type 11): type 3, code unchanged.
        ICMP4_TIME_EXCEEDED => IcmpMapping::Error {
            ty: ICMP6_TIME_EXCEEDED,
            code,
            rest: [0; 4],
        },
        ICMP4_PARAM_PROBLEM => match code {
            // Pointer indicates the error (0), bad length (2): code 0, pointer per figure 3.
            0 | 2 => match param_pointer_4to6(rest[0]) {
                Some(p) => IcmpMapping::Error {
                    ty: ICMP6_PARAM_PROBLEM,
                    code: 0,
                    rest: [0, 0, 0, p],
                },
                None => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
            },
            // Missing a required option (1) and others: silently drop.
            _ => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
        },
        // Source quench, redirect, alternative host address, timestamp, information and
        // address mask, router advertisement / solicitation, unknown: silently drop.
        _ => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
    }
}

/// RFC 7915 section 5.2: ICMPv6 type/code (and the 4 bytes after the checksum) to
/// ICMPv4.
pub const fn icmp6_to_icmp4(ty: u8, code: u8, rest: [u8; 4]) -> IcmpMapping {
    match ty {
        // Echo Request and Echo Reply (Type 128 and 129): types 8 and 0.
        ICMP6_ECHO_REQUEST => IcmpMapping::Info {
            ty: ICMP4_ECHO_REQUEST,
            code: 0,
        },
        ICMP6_ECHO_REPLY => IcmpMapping::Info {
            ty: ICMP4_ECHO_REPLY,
            code: 0,
        },
        ICMP6_DEST_UNREACH => match code {
            // No route (0), beyond scope (2), address unreachable (3) -> host unreachable (1).
            0 | 2 | 3 => IcmpMapping::Error {
                ty: ICMP4_DEST_UNREACH,
                code: 1,
                rest: [0; 4],
            },
            // Administratively prohibited (1) -> host administratively prohibited (10).
            1 => IcmpMapping::Error {
                ty: ICMP4_DEST_UNREACH,
                code: 10,
                rest: [0; 4],
            },
            // Port unreachable (4) -> port unreachable (3).
            4 => IcmpMapping::Error {
                ty: ICMP4_DEST_UNREACH,
                code: 3,
                rest: [0; 4],
            },
            _ => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
        },
        // Packet Too Big (Type 2) -> destination unreachable, fragmentation needed (3/4).
        ICMP6_PACKET_TOO_BIG => IcmpMapping::TooBig {
            ty: ICMP4_DEST_UNREACH,
            code: 4,
        },
        // Time Exceeded (Type 3): type 11, code unchanged.
        ICMP6_TIME_EXCEEDED => IcmpMapping::Error {
            ty: ICMP4_TIME_EXCEEDED,
            code,
            rest: [0; 4],
        },
        ICMP6_PARAM_PROBLEM => match code {
            // Erroneous header field (0): type 12 code 0, pointer per figure 6.
            0 => match param_pointer_6to4(u32::from_be_bytes(rest)) {
                Some(p) => IcmpMapping::Error {
                    ty: ICMP4_PARAM_PROBLEM,
                    code: 0,
                    rest: [p, 0, 0, 0],
                },
                None => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
            },
            // Unrecognized next header (1) -> protocol unreachable (3/2).
            1 => IcmpMapping::Error {
                ty: ICMP4_DEST_UNREACH,
                code: 2,
                rest: [0; 4],
            },
            // Unrecognized option (2) and others: silently drop.
            _ => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
        },
        // MLD (130-132), neighbour discovery (133-137), unknown: silently drop.
        _ => IcmpMapping::Drop(XlatReason::IcmpUntranslatable),
    }
}

/// RFC 1191 section 7 table 7-1 plateaus, largest first.
pub const RFC1191_PLATEAUS: [u16; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// RFC 1191 section 5: the greatest plateau less than `total_len` (the Total Length of
/// the packet that did not fit), 68 at worst.
#[inline(always)]
pub const fn plateau_below(total_len: u16) -> u16 {
    let mut i = 0;
    while i < RFC1191_PLATEAUS.len() {
        if RFC1191_PLATEAUS[i] < total_len {
            return RFC1191_PLATEAUS[i];
        }
        i += 1;
    }
    68
}

/// Smallest IPv6 MTU (RFC 8200 section 5).
pub const IPV6_MIN_MTU: u32 = 1280;

/// RFC 4884 section 4: the original datagram field of an ICMP error with an extension is
/// at least this long (zero-padded).
pub const ICMP_EXT_MIN_ORIGINAL: usize = 128;

/// RFC 4884 / RFC 7915 4.2 and 5.2 ("ICMP Error Payload"): where a translated ICMP error
/// that carries an extension of `ext` bytes puts it. `translated`: bytes of the
/// translated original datagram field (the packet in error as present); `room`: bytes
/// the error may carry after its ICMP header (1280 - 48 for ICMPv6, 576 - 28 for
/// ICMPv4); `unit`: the length attribute's unit in the new family (8 for ICMPv6, 4 for
/// ICMPv4). Returns the original datagram bytes kept (cut to a whole number of units,
/// to make room) and the zero padding after them (up to the 128 bytes RFC 4884 asks
/// for); the length attribute is their sum / `unit`. `None`: the extension does not fit
/// beside the first 128 bytes and is removed (length attribute 0, nothing padded), as
/// Jool does: the packet in error has priority over the extension, and the extension is
/// never cut.
#[inline(always)]
pub const fn icmp_extension_layout(
    translated: usize,
    ext: usize,
    room: usize,
    unit: usize,
) -> Option<(usize, usize)> {
    if ext + ICMP_EXT_MIN_ORIGINAL > room {
        return None;
    }
    let fit = room - ext;
    let ipl = (if translated < fit { translated } else { fit }) & !(unit - 1);
    let pad = ICMP_EXT_MIN_ORIGINAL.saturating_sub(ipl);
    Some((ipl, pad))
}

/// RFC 7915 section 4.2, fragmentation needed -> packet too big: the MTU is
/// `min(advertised + 20, MTU of the IPv6 next hop, MTU of the IPv4 next hop + 20)`,
/// where an advertised MTU of 0 (a router predating RFC 1191) is replaced by the
/// plateau below the inner packet's Total Length. Unknown next-hop MTUs are passed as
/// `u32::MAX`. The result is never below 1280: IPv6 nodes ignore smaller values (RFC
/// 8200 section 5, RFC 8021), so 1280 is the useful answer.
#[inline(always)]
pub const fn ptb_mtu_4to6(
    advertised: u16,
    inner_total_len: u16,
    nexthop6_mtu: u32,
    nexthop4_mtu: u32,
) -> u32 {
    let adv = if advertised == 0 {
        plateau_below(inner_total_len)
    } else {
        advertised
    };
    let mut m = adv as u32 + 20;
    if nexthop6_mtu < m {
        m = nexthop6_mtu;
    }
    let n4 = nexthop4_mtu.saturating_add(20);
    if n4 < m {
        m = n4;
    }
    if m < IPV6_MIN_MTU { IPV6_MIN_MTU } else { m }
}

/// RFC 7915 section 5.2, packet too big -> fragmentation needed: the MTU is
/// `min(advertised - 20, MTU of the IPv4 next hop, MTU of the IPv6 next hop - 20)`,
/// clamped to the 16-bit field. Unknown next-hop MTUs are passed as `u32::MAX`.
#[inline(always)]
pub const fn frag_needed_mtu_6to4(advertised: u32, nexthop4_mtu: u32, nexthop6_mtu: u32) -> u16 {
    let mut m = advertised.saturating_sub(20);
    if nexthop4_mtu < m {
        m = nexthop4_mtu;
    }
    let n6 = nexthop6_mtu.saturating_sub(20);
    if n6 < m {
        m = n6;
    }
    if m > 0xffff { 0xffff } else { m as u16 }
}

/// RFC 7915 section 5.1.1 (last paragraph): the MTU to put in the ICMPv6 packet too big
/// sent back when a translated IPv4 packet with DF would exceed the IPv4 next hop's MTU:
/// that MTU plus the 20 bytes the IPv6 header is larger, at least 1280.
#[inline(always)]
pub const fn ptb_mtu_for_ipv4_nexthop(nexthop4_mtu: u32) -> u32 {
    let m = nexthop4_mtu.saturating_add(20);
    if m < IPV6_MIN_MTU { IPV6_MIN_MTU } else { m }
}

/// RFC 7915 section 4 / RFC 1191: the next-hop MTU to put in the ICMPv4 fragmentation
/// needed sent back when a translated IPv4 packet with DF would exceed the IPv6 next
/// hop's MTU: that MTU less the 20 bytes the IPv6 header is larger (and the 8 of a
/// fragment header when one is added), at least 68 (RFC 791).
#[inline(always)]
pub const fn frag_needed_mtu_for_ipv6_nexthop(
    nexthop6_mtu: u32,
    adds_fragment_header: bool,
) -> u16 {
    let m = nexthop6_mtu.saturating_sub(if adds_fragment_header { 28 } else { 20 });
    if m < 68 {
        68
    } else if m > 0xffff {
        0xffff
    } else {
        m as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo() {
        assert_eq!(
            icmp4_to_icmp6(8, 0, [0; 4]),
            IcmpMapping::Info { ty: 128, code: 0 }
        );
        assert_eq!(
            icmp4_to_icmp6(0, 0, [0; 4]),
            IcmpMapping::Info { ty: 129, code: 0 }
        );
        assert_eq!(
            icmp6_to_icmp4(128, 0, [0; 4]),
            IcmpMapping::Info { ty: 8, code: 0 }
        );
        assert_eq!(
            icmp6_to_icmp4(129, 0, [0; 4]),
            IcmpMapping::Info { ty: 0, code: 0 }
        );
    }

    #[test]
    fn icmp4_dest_unreachable_codes() {
        let du = |code| icmp4_to_icmp6(3, code, [0; 4]);
        for c in [0, 1, 5, 6, 7, 8, 11, 12] {
            assert_eq!(
                du(c),
                IcmpMapping::Error {
                    ty: 1,
                    code: 0,
                    rest: [0; 4]
                },
                "code {c}"
            );
        }
        for c in [9, 10, 13, 15] {
            assert_eq!(
                du(c),
                IcmpMapping::Error {
                    ty: 1,
                    code: 1,
                    rest: [0; 4]
                },
                "code {c}"
            );
        }
        assert_eq!(
            du(2),
            IcmpMapping::Error {
                ty: 4,
                code: 1,
                rest: [0, 0, 0, 6]
            }
        );
        assert_eq!(
            du(3),
            IcmpMapping::Error {
                ty: 1,
                code: 4,
                rest: [0; 4]
            }
        );
        assert_eq!(du(4), IcmpMapping::TooBig { ty: 2, code: 0 });
        assert!(matches!(du(14), IcmpMapping::Drop(_)));
        assert!(matches!(du(16), IcmpMapping::Drop(_)));
    }

    #[test]
    fn icmp4_other_types() {
        assert_eq!(
            icmp4_to_icmp6(11, 0, [0; 4]),
            IcmpMapping::Error {
                ty: 3,
                code: 0,
                rest: [0; 4]
            }
        );
        assert_eq!(
            icmp4_to_icmp6(11, 1, [0; 4]),
            IcmpMapping::Error {
                ty: 3,
                code: 1,
                rest: [0; 4]
            }
        );
        for ty in [4u8, 5, 6, 9, 10, 13, 14, 15, 16, 17, 18, 30, 255] {
            assert!(
                matches!(icmp4_to_icmp6(ty, 0, [0; 4]), IcmpMapping::Drop(_)),
                "type {ty}"
            );
        }
        // Parameter problem: pointer table, code 1 dropped.
        assert_eq!(
            icmp4_to_icmp6(12, 0, [9, 0, 0, 0]),
            IcmpMapping::Error {
                ty: 4,
                code: 0,
                rest: [0, 0, 0, 6]
            }
        );
        assert_eq!(
            icmp4_to_icmp6(12, 2, [3, 0, 0, 0]),
            IcmpMapping::Error {
                ty: 4,
                code: 0,
                rest: [0, 0, 0, 4]
            }
        );
        assert!(matches!(
            icmp4_to_icmp6(12, 0, [4, 0, 0, 0]),
            IcmpMapping::Drop(_)
        ));
        assert!(matches!(
            icmp4_to_icmp6(12, 1, [0; 4]),
            IcmpMapping::Drop(_)
        ));
    }

    #[test]
    fn pointer_tables() {
        let expect4to6: [Option<u8>; 21] = [
            Some(0),
            Some(1),
            Some(4),
            Some(4),
            None,
            None,
            None,
            None,
            Some(7),
            Some(6),
            None,
            None,
            Some(8),
            Some(8),
            Some(8),
            Some(8),
            Some(24),
            Some(24),
            Some(24),
            Some(24),
            None,
        ];
        for (p, e) in expect4to6.iter().enumerate() {
            assert_eq!(param_pointer_4to6(p as u8), *e, "pointer {p}");
        }
        let expect6to4 = |p: u32| match p {
            0 => Some(0),
            1 => Some(1),
            2 | 3 => None,
            4 | 5 => Some(2),
            6 => Some(9),
            7 => Some(8),
            8..=23 => Some(12),
            24..=39 => Some(16),
            _ => None,
        };
        for p in 0..64u32 {
            assert_eq!(param_pointer_6to4(p), expect6to4(p), "pointer {p}");
        }
        assert_eq!(param_pointer_6to4(0x0100_0000), None);
    }

    #[test]
    fn icmp6_types() {
        let du = |code| icmp6_to_icmp4(1, code, [0; 4]);
        assert_eq!(
            du(0),
            IcmpMapping::Error {
                ty: 3,
                code: 1,
                rest: [0; 4]
            }
        );
        assert_eq!(
            du(1),
            IcmpMapping::Error {
                ty: 3,
                code: 10,
                rest: [0; 4]
            }
        );
        assert_eq!(
            du(2),
            IcmpMapping::Error {
                ty: 3,
                code: 1,
                rest: [0; 4]
            }
        );
        assert_eq!(
            du(3),
            IcmpMapping::Error {
                ty: 3,
                code: 1,
                rest: [0; 4]
            }
        );
        assert_eq!(
            du(4),
            IcmpMapping::Error {
                ty: 3,
                code: 3,
                rest: [0; 4]
            }
        );
        assert!(matches!(du(5), IcmpMapping::Drop(_)));
        assert_eq!(
            icmp6_to_icmp4(2, 0, [0, 0, 5, 0xdc]),
            IcmpMapping::TooBig { ty: 3, code: 4 }
        );
        assert_eq!(
            icmp6_to_icmp4(3, 1, [0; 4]),
            IcmpMapping::Error {
                ty: 11,
                code: 1,
                rest: [0; 4]
            }
        );
        assert_eq!(
            icmp6_to_icmp4(4, 0, [0, 0, 0, 7]),
            IcmpMapping::Error {
                ty: 12,
                code: 0,
                rest: [8, 0, 0, 0]
            }
        );
        assert_eq!(
            icmp6_to_icmp4(4, 0, [0, 0, 0, 30]),
            IcmpMapping::Error {
                ty: 12,
                code: 0,
                rest: [16, 0, 0, 0]
            }
        );
        assert!(matches!(
            icmp6_to_icmp4(4, 0, [0, 0, 0, 2]),
            IcmpMapping::Drop(_)
        ));
        assert_eq!(
            icmp6_to_icmp4(4, 1, [0, 0, 0, 40]),
            IcmpMapping::Error {
                ty: 3,
                code: 2,
                rest: [0; 4]
            }
        );
        assert!(matches!(icmp6_to_icmp4(4, 2, [0; 4]), IcmpMapping::Drop(_)));
        for ty in [130u8, 131, 132, 133, 134, 135, 136, 137, 200, 0, 5, 127] {
            assert!(
                matches!(icmp6_to_icmp4(ty, 0, [0; 4]), IcmpMapping::Drop(_)),
                "type {ty}"
            );
        }
    }

    #[test]
    fn extension_layout() {
        // Jool graybox ia/ib: 6->4, 128-byte field becomes 108 + 20 padding.
        assert_eq!(icmp_extension_layout(108, 20, 548, 4), Some((108, 20)));
        // 4->6: 148 translated bytes are cut to whole 64-bit words.
        assert_eq!(icmp_extension_layout(148, 20, 1232, 8), Some((144, 0)));
        // ic4 / ic5: 420 bytes of extension fit beside 128, 421 do not.
        assert_eq!(icmp_extension_layout(108, 420, 548, 4), Some((108, 20)));
        assert_eq!(icmp_extension_layout(108, 421, 548, 4), None);
        // ic1: the packet in error is cut to make room (576 - 28 - 40 = 508).
        assert_eq!(icmp_extension_layout(508, 40, 548, 4), Some((508, 0)));
        assert_eq!(icmp_extension_layout(1144, 40, 548, 4), Some((508, 0)));
        // idf: 1232 - 200 = 1032 bytes of the translated field.
        assert_eq!(icmp_extension_layout(1040, 200, 1232, 8), Some((1032, 0)));
    }

    #[test]
    fn mtu_rules() {
        // +20, bounded by the next hops.
        assert_eq!(ptb_mtu_4to6(1400, 1500, u32::MAX, u32::MAX), 1420);
        assert_eq!(ptb_mtu_4to6(1400, 1500, 1300, u32::MAX), 1300);
        assert_eq!(ptb_mtu_4to6(1400, 1500, u32::MAX, 1290), 1310);
        // Never below 1280.
        assert_eq!(ptb_mtu_4to6(576, 1500, u32::MAX, u32::MAX), 1280);
        // Advertised 0: the plateau below the total length (1492 below 1500), + 20.
        assert_eq!(ptb_mtu_4to6(0, 1500, u32::MAX, u32::MAX), 1512);
        assert_eq!(ptb_mtu_4to6(0, 1492, u32::MAX, u32::MAX), 1280);
        assert_eq!(plateau_below(1500), 1492);
        assert_eq!(plateau_below(1492), 1006);
        assert_eq!(plateau_below(68), 68);
        assert_eq!(plateau_below(65535), 32000);
        // -20, bounded by the next hops.
        assert_eq!(frag_needed_mtu_6to4(1500, u32::MAX, u32::MAX), 1480);
        assert_eq!(frag_needed_mtu_6to4(1500, 1400, u32::MAX), 1400);
        assert_eq!(frag_needed_mtu_6to4(1500, u32::MAX, 1320), 1300);
        assert_eq!(frag_needed_mtu_6to4(10, u32::MAX, u32::MAX), 0);
        assert_eq!(frag_needed_mtu_6to4(100_000, u32::MAX, u32::MAX), 0xffff);
        assert_eq!(ptb_mtu_for_ipv4_nexthop(1500), 1520);
        assert_eq!(ptb_mtu_for_ipv4_nexthop(576), 1280);
        assert_eq!(frag_needed_mtu_for_ipv6_nexthop(1500, false), 1480);
        assert_eq!(frag_needed_mtu_for_ipv6_nexthop(1500, true), 1472);
        assert_eq!(frag_needed_mtu_for_ipv6_nexthop(40, false), 68);
    }
}
