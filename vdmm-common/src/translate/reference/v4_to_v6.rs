//! RFC 7915 section 4: IPv4 -> IPv6.

extern crate alloc;
use alloc::vec::Vec;

use super::{
    Fail, IcmpReply, Outcome, attach_icmp_extension, be16, build_icmp4_error, fragment_ipv6,
    may_answer_v4, put16, split_icmp_extension, sum_bytes,
};
use crate::translate::XlatReason;
use crate::translate::checksum;
use crate::translate::config::{TranslatorConfig, UdpZeroChecksum};
use crate::translate::header::{
    self, FRAG_HDR_LEN, IPV6_HDR_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP,
};
use crate::translate::icmp::{self, IcmpMapping};

/// An IPv4 packet as the translator sees it.
struct Ipv4<'a> {
    tos: u8,
    /// Total Length field (for an inner packet it may exceed the bytes present).
    total_len: u16,
    id: u16,
    df: bool,
    mf: bool,
    offset8: u16,
    ttl: u8,
    protocol: u8,
    src: [u8; 4],
    dst: [u8; 4],
    /// Header length (IHL * 4).
    ihl: usize,
    /// Options (bytes 20..ihl).
    options: &'a [u8],
    /// The payload bytes: up to Total Length for a packet, everything present for the
    /// packet inside an ICMP error (cut short, or followed by padding).
    payload: &'a [u8],
}

impl Ipv4<'_> {
    /// RFC 7915 4.1: "the packet is a fragment" (MF set or a non-zero offset).
    fn is_fragment(&self) -> bool {
        self.mf || self.offset8 != 0
    }
    /// An ICMP error message (the header is present: first fragment with a type byte).
    fn is_icmp_error(&self) -> bool {
        self.protocol == PROTO_ICMP
            && self.offset8 == 0
            && !self.payload.is_empty()
            && icmp::icmp4_is_error(self.payload[0])
    }
}

/// RFC 791 / RFC 1812 5.2.2: parse and validate. `inner`: the packet inside an ICMP
/// error, which may be cut short (Total Length is kept as the original's) and whose
/// header checksum is not checked.
fn parse(pkt: &[u8], inner: bool) -> Result<Ipv4<'_>, XlatReason> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return Err(XlatReason::Malformed);
    }
    let ihl = ((pkt[0] & 0x0f) as usize) * 4;
    let total_len = be16(pkt, 2);
    if ihl < 20 || pkt.len() < ihl || (total_len as usize) < ihl {
        return Err(XlatReason::Malformed);
    }
    let end = if inner {
        // Everything present: the original datagram field may hold more than the
        // inner packet (padding), which is carried along like payload.
        pkt.len()
    } else {
        if (total_len as usize) > pkt.len() {
            return Err(XlatReason::Malformed);
        }
        // RFC 1812 5.2.2: a router verifies the header checksum.
        if checksum::fold(sum_bytes(0, &pkt[..ihl])) != 0xffff {
            return Err(XlatReason::Malformed);
        }
        total_len as usize
    };
    let ff = be16(pkt, 6);
    Ok(Ipv4 {
        tos: pkt[1],
        total_len,
        id: be16(pkt, 4),
        df: ff & 0x4000 != 0,
        mf: ff & 0x2000 != 0,
        offset8: ff & 0x1fff,
        ttl: pkt[8],
        protocol: pkt[9],
        src: pkt[12..16].try_into().unwrap(),
        dst: pkt[16..20].try_into().unwrap(),
        ihl,
        options: &pkt[20..ihl],
        payload: &pkt[ihl..end],
    })
}

/// RFC 7915 4.4: the ICMPv4 error for a dropped packet, unless the packet is itself an
/// ICMP error, a non-first fragment, or not from one host / to one host (RFC 1812
/// 4.3.2.7).
fn reply(cfg: &TranslatorConfig, pkt: &[u8], ip: &Ipv4<'_>, f: Fail) -> Outcome {
    let icmp = match f.icmp {
        Some((ty, code, rest))
            if !ip.is_icmp_error() && ip.offset8 == 0 && may_answer_v4(&ip.src, &ip.dst) =>
        {
            Some(IcmpReply {
                ty,
                code,
                rest,
                packet: cfg.icmp_source_v4.map(|s| {
                    build_icmp4_error(s, ip.src, ty, code, rest, &pkt[..ip.total_len as usize])
                }),
            })
        }
        _ => None,
    };
    Outcome::Drop {
        reason: f.reason,
        icmp,
    }
}

/// RFC 7915 section 4: translate one IPv4 packet (raw, from the IP header) to IPv6.
pub fn translate_4to6(pkt: &[u8], cfg: &TranslatorConfig) -> Outcome {
    // Step 1: RFC 791 / RFC 1812 5.2.2 header validation.
    let ip = match parse(pkt, false) {
        Ok(ip) => ip,
        Err(r) => return Outcome::drop(r),
    };

    // Step 2: RFC 7915 4.6, knowing when to translate: the destination must map
    // (RFC 7757 EAMT longest match, then the RFC 6052 prefix).
    let Some((dst6, _)) = cfg.map_4to6(&ip.dst) else {
        return Outcome::Pass(XlatReason::NoMapping);
    };

    // Step 3: RFC 7915 4.1 / section 6, source address. An ICMPv4 error from a router
    // without a mapping may use the RFC 6791 address; anything else without a mapping
    // is refused with destination unreachable, administratively prohibited (4.4).
    let mapped = if ip.is_icmp_error() {
        cfg.map_4to6_icmp_source(&ip.src)
    } else {
        cfg.map_4to6(&ip.src)
    };
    let src6 = match mapped {
        Some((a, _)) => a,
        None => match cfg.rfc6791_v6.or(cfg.icmp_source_v6) {
            Some(a) if ip.is_icmp_error() => a,
            _ => {
                return reply(
                    cfg,
                    pkt,
                    &ip,
                    Fail::icmp(XlatReason::SourceUntranslatable, 3, 13, [0; 4]),
                );
            }
        },
    };

    // Step 4a: RFC 7915 4.1, Hop Limit: the translator is a router and decrements the
    // TTL; at zero it answers time exceeded in transit (RFC 792 type 11 code 0).
    if ip.ttl <= 1 {
        return reply(
            cfg,
            pkt,
            &ip,
            Fail::icmp(XlatReason::TtlExpired, 11, 0, [0; 4]),
        );
    }

    // Step 4b: RFC 7915 4.1: options are ignored, but an unexpired source route drops the
    // packet with destination unreachable, source route failed (type 3 code 5).
    if !ip.options.is_empty() {
        let mut opts = [0u8; header::IPV4_OPTIONS_BUF];
        opts[..ip.options.len()].copy_from_slice(ip.options);
        if header::has_unexpired_source_route(&opts, ip.options.len()) {
            return reply(
                cfg,
                pkt,
                &ip,
                Fail::icmp(XlatReason::SourceRoute, 3, 5, [0; 4]),
            );
        }
    }

    // Step 5: RFC 7915 4.2-4.5, the transport header / ICMP message.
    let mut payload = ip.payload.to_vec();
    let icmp_error = match transport(&ip, &src6, &dst6, cfg, false, &mut payload) {
        Ok(e) => e,
        Err(f) => return reply(cfg, pkt, &ip, f),
    };

    // Step 6: RFC 7915 4.1, the IPv6 header (and fragment header for a fragment).
    let frag = ip.is_fragment();
    let tc = if cfg.reset_traffic_class { 0 } else { ip.tos };
    let hop = ip.ttl - 1;
    let upper = header::protocol_4to6(ip.protocol);
    let hdr_len = IPV6_HDR_LEN + if frag { FRAG_HDR_LEN } else { 0 };

    if icmp_error {
        // RFC 4443 2.4 (c) (the README's "truncated to 1280"): the ICMPv6 error is cut
        // to the minimum IPv6 MTU, and its checksum computed over what is sent (4.3).
        // (Fragmented ICMP never gets here: `transport` drops it.)
        payload.truncate(icmp::IPV6_MIN_MTU as usize - hdr_len);
        put16(&mut payload, 2, 0);
        let s = sum_bytes(
            checksum::pseudo_header_v6(&src6, &dst6, payload.len() as u32, 58),
            &payload,
        );
        put16(&mut payload, 2, checksum::finish(s));
    }

    let hdr6 = header::build_ipv6_header(
        tc,
        (payload.len() + hdr_len - IPV6_HDR_LEN) as u16,
        if frag { header::PROTO_FRAGMENT } else { upper },
        hop,
        &src6,
        &dst6,
    );
    let out_len = hdr_len + payload.len();

    // Step 7: sizes (RFC 7915 section 4 introduction and 4.1).
    // DF set (a fragment too: Jool graybox "ca") and "the MTU of the next-hop interface
    // is less than the total length value of the IPv4 packet plus 20": fragmentation
    // needed back to the sender, with that MTU - 20.
    if ip.df && ip.total_len as u64 + 20 > cfg.nexthop6() as u64 {
        let mtu = icmp::frag_needed_mtu_for_ipv6_nexthop(cfg.nexthop6(), false).to_be_bytes();
        return reply(
            cfg,
            pkt,
            &ip,
            Fail::icmp(XlatReason::TooBig, 3, 4, [0, 0, mtu[0], mtu[1]]),
        );
    }
    // Without DF the IPv6 packets must fit the lowest IPv6 MTU (4.1; it does not apply
    // with DF) and the next hop: fragmented, with fragment headers (a fragment
    // further: graybox "cf"). With DF only a fragment whose fragment header tips it
    // over the next hop gets here.
    let limit = if ip.df {
        cfg.nexthop6()
    } else {
        cfg.lowest_ipv6_mtu.min(cfg.nexthop6())
    }
    .max(icmp::IPV6_MIN_MTU);
    if out_len as u64 > limit as u64 {
        let packets = fragment_ipv6(&hdr6, upper, &payload, ip.offset8, ip.mf, ip.id, limit);
        return Outcome::Translated {
            packets,
            reason: XlatReason::Fragmented,
        };
    }

    let mut out = Vec::with_capacity(out_len);
    out.extend_from_slice(&hdr6);
    if frag {
        out.extend_from_slice(&header::build_fragment_header(
            upper, ip.offset8, ip.mf, ip.id,
        ));
    }
    out.extend_from_slice(&payload);
    Outcome::Translated {
        packets: alloc::vec![out],
        reason: XlatReason::Translated,
    }
}

/// RFC 7915 4.2-4.5 on `payload` (a copy of the IPv4 payload, changed in place).
/// Returns true when the message is an ICMP error (its checksum is then finished by the
/// caller after truncation). `inner`: the packet inside an ICMP error (no checks that
/// need the whole packet; fields may be cut off).
fn transport(
    ip: &Ipv4<'_>,
    src6: &[u8; 16],
    dst6: &[u8; 16],
    cfg: &TranslatorConfig,
    inner: bool,
    payload: &mut Vec<u8>,
) -> Result<bool, Fail> {
    if ip.offset8 != 0 {
        // A non-first fragment carries no transport header: nothing to update (4.5),
        // except that ICMP cannot be translated fragment by fragment.
        if ip.protocol == PROTO_ICMP && !inner {
            return Err(Fail::silent(XlatReason::FragmentedIcmp));
        }
        return Ok(false);
    }
    match ip.protocol {
        // RFC 7915 4.5: TCP checksum, pseudo-header addresses replaced.
        PROTO_TCP => {
            if payload.len() < 18 {
                return if inner {
                    Ok(false)
                } else {
                    Err(Fail::silent(XlatReason::Malformed))
                };
            }
            let c = checksum::transport_4to6(be16(payload, 16), &ip.src, &ip.dst, src6, dst6);
            put16(payload, 16, c);
            Ok(false)
        }
        PROTO_UDP => {
            if payload.len() < 8 {
                return if inner {
                    Ok(false)
                } else {
                    Err(Fail::silent(XlatReason::Malformed))
                };
            }
            let old = be16(payload, 6);
            if old != 0 {
                // RFC 7915 4.5: UDP with a checksum, updated like TCP; zero is sent as
                // all ones (RFC 768).
                let c = checksum::transport_4to6(old, &ip.src, &ip.dst, src6, dst6);
                put16(payload, 6, checksum::udp_mangle_zero(c));
            } else if !inner {
                // RFC 7915 4.5: checksum zero. A fragment cannot be summed (the datagram
                // is never whole here): drop. Otherwise compute or drop by configuration.
                if ip.mf || cfg.udp_zero_checksum == UdpZeroChecksum::Drop {
                    return Err(Fail::icmp(XlatReason::UdpZeroChecksum, 3, 13, [0; 4]));
                }
                let s = sum_bytes(
                    checksum::pseudo_header_v6(src6, dst6, payload.len() as u32, PROTO_UDP),
                    payload,
                );
                put16(payload, 6, checksum::udp_mangle_zero(checksum::finish(s)));
            }
            // An inner UDP header with checksum zero stays zero (it is a copy; the
            // datagram is cut short and cannot be summed).
            Ok(false)
        }
        PROTO_ICMP => {
            if ip.mf && !inner {
                return Err(Fail::silent(XlatReason::FragmentedIcmp));
            }
            icmp_4to6(ip, src6, dst6, cfg, inner, payload)
        }
        // RFC 7915 4.5: all other protocols are forwarded unchanged.
        _ => Ok(false),
    }
}

/// RFC 7915 4.2 (ICMPv4 -> ICMPv6) and 4.3 (the packet inside an error).
fn icmp_4to6(
    ip: &Ipv4<'_>,
    src6: &[u8; 16],
    dst6: &[u8; 16],
    cfg: &TranslatorConfig,
    inner: bool,
    payload: &mut Vec<u8>,
) -> Result<bool, Fail> {
    if payload.len() < 8 {
        return if inner {
            Ok(false)
        } else {
            Err(Fail::silent(XlatReason::Malformed))
        };
    }
    let (ty, code) = (payload[0], payload[1]);
    let rest: [u8; 4] = payload[4..8].try_into().unwrap();
    match icmp::icmp4_to_icmp6(ty, code, rest) {
        IcmpMapping::Drop(r) => Err(Fail::silent(r)),
        IcmpMapping::Info { ty: t6, code: c6 } => {
            // Echo: type change plus the ICMPv6 pseudo-header, incrementally. The length
            // is the whole ICMP message's (from Total Length for an inner packet).
            let icmp_len = ip.total_len as u32 - ip.ihl as u32;
            let c = checksum::icmp_info_4to6(
                be16(payload, 2),
                u16::from_be_bytes([ty, code]),
                u16::from_be_bytes([t6, c6]),
                src6,
                dst6,
                icmp_len,
            );
            payload[0] = t6;
            payload[1] = c6;
            put16(payload, 2, c);
            Ok(false)
        }
        m @ (IcmpMapping::Error { .. } | IcmpMapping::TooBig { .. }) => {
            if inner {
                // RFC 7915 4.3: only one level of embedded header; an error inside an
                // error is dropped.
                return Err(Fail::silent(XlatReason::IcmpInner));
            }
            // The checksum is recomputed below: refuse to launder a corrupted message.
            if checksum::fold(sum_bytes(0, payload)) != 0xffff {
                return Err(Fail::silent(XlatReason::IcmpBadChecksum));
            }
            // RFC 4884: destination unreachable, time exceeded and parameter problem
            // may carry an extension after the original datagram (length in byte 5).
            let attr = if matches!(ty, 3 | 11 | 12) {
                payload[5]
            } else {
                0
            };
            let (orig, ext) = split_icmp_extension(&payload[8..], attr, 4)?;
            // 4.3: translate the packet in error, addresses and checksums included.
            let inner_pkt = translate_inner(orig, cfg)?;
            let (t6, c6, mut rest6) = match m {
                IcmpMapping::Error { ty, code, rest } => (ty, code, rest),
                IcmpMapping::TooBig { ty, code } => {
                    // 4.2: MTU + 20, next hops, RFC 1191 plateau when the router said 0.
                    let inner_total = if payload.len() >= 12 {
                        be16(payload, 10)
                    } else {
                        0
                    };
                    let mtu = icmp::ptb_mtu_4to6(
                        be16(payload, 6),
                        inner_total,
                        cfg.nexthop6(),
                        cfg.nexthop4(),
                    );
                    (ty, code, mtu.to_be_bytes())
                }
                IcmpMapping::Info { .. } | IcmpMapping::Drop(_) => unreachable!(),
            };
            // ICMPv6 destination unreachable and time exceeded have a length attribute
            // (byte 4, 64-bit words); the extension must fit the 1280-byte error.
            let has_len = matches!(t6, icmp::ICMP6_DEST_UNREACH | icmp::ICMP6_TIME_EXCEEDED);
            let room = icmp::IPV6_MIN_MTU as usize - IPV6_HDR_LEN - 8;
            let (body, attr6) = attach_icmp_extension(inner_pkt, ext, room, 8, has_len);
            if has_len {
                rest6[0] = attr6;
            }
            payload.truncate(8);
            payload[0] = t6;
            payload[1] = c6;
            payload[4..8].copy_from_slice(&rest6);
            payload.extend_from_slice(&body);
            Ok(true)
        }
    }
}

/// RFC 7915 4.3: the IPv4 packet inside an ICMPv4 error, translated "just like a
/// normal IP packet" except: the TTL is not decremented, lengths come from the inner
/// header (the bytes are cut short), and no ICMP error is generated about it.
fn translate_inner(b: &[u8], cfg: &TranslatorConfig) -> Result<Vec<u8>, Fail> {
    let ip = parse(b, true).map_err(|_| Fail::silent(XlatReason::IcmpInner))?;
    if ip.is_icmp_error() {
        return Err(Fail::silent(XlatReason::IcmpInner));
    }
    let Some((src6, _)) = cfg.map_4to6(&ip.src) else {
        return Err(Fail::silent(XlatReason::IcmpInner));
    };
    let Some((dst6, _)) = cfg.map_4to6(&ip.dst) else {
        return Err(Fail::silent(XlatReason::IcmpInner));
    };
    let mut payload = ip.payload.to_vec();
    transport(&ip, &src6, &dst6, cfg, true, &mut payload)?;
    let frag = ip.is_fragment();
    let upper = header::protocol_4to6(ip.protocol);
    let tc = if cfg.reset_traffic_class { 0 } else { ip.tos };
    // Payload Length as the original said (Total Length - IHL), not what is left of it.
    let plen = ip.total_len as usize - ip.ihl + if frag { FRAG_HDR_LEN } else { 0 };
    let mut out = Vec::with_capacity(IPV6_HDR_LEN + FRAG_HDR_LEN + payload.len());
    out.extend_from_slice(&header::build_ipv6_header(
        tc,
        plen as u16,
        if frag { header::PROTO_FRAGMENT } else { upper },
        ip.ttl,
        &src6,
        &dst6,
    ));
    if frag {
        out.extend_from_slice(&header::build_fragment_header(
            upper, ip.offset8, ip.mf, ip.id,
        ));
    }
    out.extend_from_slice(&payload);
    Ok(out)
}
