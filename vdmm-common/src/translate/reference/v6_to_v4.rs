//! RFC 7915 section 5: IPv6 -> IPv4.

extern crate alloc;
use alloc::vec::Vec;

use super::{
    Fail, IcmpReply, Outcome, attach_icmp_extension, be16, build_icmp6_error, fragment_ipv4,
    may_answer_v6, next_ipv4_id, put16, split_icmp_extension, sum_bytes,
};
use crate::translate::XlatReason;
use crate::translate::checksum;
use crate::translate::config::TranslatorConfig;
use crate::translate::header::{
    self, IPV4_HDR_LEN, IPV6_HDR_LEN, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};
use crate::translate::icmp::{self, IcmpMapping};

/// Most extension headers the translator walks (the data plane has a fixed bound too).
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// The fragment header fields (RFC 8200 section 4.5).
#[derive(Clone, Copy)]
struct Frag {
    offset8: u16,
    more: bool,
    id: u32,
}

/// An IPv6 packet as the translator sees it: fixed header plus the walk over the
/// extension headers (RFC 7915 5.1).
struct Ipv6<'a> {
    traffic_class: u8,
    /// Payload Length field (for an inner packet it may exceed the bytes present).
    payload_len: u16,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
    /// The upper-layer protocol after the extension headers.
    protocol: u8,
    /// Bytes of extension headers (fragment header included).
    ext_len: usize,
    frag: Option<Frag>,
    /// Offset (from the IPv6 header) of the Segments Left field of a routing header
    /// with segments left, if any.
    segments_left_at: Option<u32>,
    /// The upper-layer bytes present.
    upper: &'a [u8],
}

impl Ipv6<'_> {
    fn first_fragment(&self) -> bool {
        self.frag.is_none_or(|f| f.offset8 == 0)
    }
    fn is_icmp_error(&self) -> bool {
        self.protocol == PROTO_ICMPV6
            && self.first_fragment()
            && !self.upper.is_empty()
            && icmp::icmp6_is_error(self.upper[0])
    }
    /// Length of the upper-layer data as the header says (Payload Length minus the
    /// extension headers).
    fn upper_len(&self) -> usize {
        (self.payload_len as usize).saturating_sub(self.ext_len)
    }
}

/// RFC 8200 sections 3 and 4, RFC 7915 5.1 and 5.1.1: parse the header and walk the
/// extension headers. `inner`: the packet inside an ICMPv6 error, possibly cut short.
fn parse(pkt: &[u8], inner: bool) -> Result<Ipv6<'_>, Fail> {
    let bad = Fail::silent(if inner {
        XlatReason::IcmpInner
    } else {
        XlatReason::Malformed
    });
    if pkt.len() < IPV6_HDR_LEN || pkt[0] >> 4 != 6 {
        return Err(bad);
    }
    let payload_len = be16(pkt, 4);
    let end = IPV6_HDR_LEN + payload_len as usize;
    let data = if inner {
        // Everything present: the original datagram field may hold more than the inner
        // packet (padding), which is carried along like payload.
        pkt
    } else {
        if end > pkt.len() {
            return Err(bad);
        }
        &pkt[..end]
    };
    let mut nh = pkt[6];
    let mut off = IPV6_HDR_LEN;
    let mut frag = None;
    let mut segments_left_at = None;
    let mut n = 0;
    // RFC 7915 5.1: hop-by-hop, destination options and routing headers are skipped;
    // the walk stops at the fragment header or the first other header.
    loop {
        match nh {
            header::PROTO_HOPOPTS | header::PROTO_DSTOPTS | header::PROTO_ROUTING => {
                if n == MAX_EXTENSION_HEADERS {
                    return Err(if inner {
                        bad
                    } else {
                        Fail::icmp(XlatReason::ExtensionHeaders, 1, 1, [0; 4])
                    });
                }
                if data.len() < off + 8 {
                    return Err(bad);
                }
                if nh == header::PROTO_ROUTING && data[off + 3] != 0 && segments_left_at.is_none() {
                    segments_left_at = Some((off + 3) as u32);
                }
                let len = (data[off + 1] as usize + 1) * 8;
                nh = data[off];
                off += len;
                n += 1;
            }
            header::PROTO_FRAGMENT => {
                if data.len() < off + 8 {
                    return Err(bad);
                }
                let fo = be16(data, off + 2);
                frag = Some(Frag {
                    offset8: fo >> 3,
                    more: fo & 1 != 0,
                    id: u32::from_be_bytes(data[off + 4..off + 8].try_into().unwrap()),
                });
                nh = data[off];
                off += 8;
                // 5.1.1: an extension header (other than ESP) after the fragment header
                // is not translated: "the packet SHOULD be dropped and logged", with the
                // default ICMPv6 error of 5.4 (destination unreachable, administratively
                // prohibited).
                if header::is_ipv6_extension_header(nh) {
                    return Err(if inner {
                        bad
                    } else {
                        Fail::icmp(XlatReason::ExtensionHeaders, 1, 1, [0; 4])
                    });
                }
                break;
            }
            _ => break,
        }
    }
    if off > data.len() {
        return Err(bad);
    }
    if !inner && off > end {
        return Err(bad);
    }
    Ok(Ipv6 {
        traffic_class: (pkt[0] << 4) | (pkt[1] >> 4),
        payload_len,
        hop_limit: pkt[7],
        src: pkt[8..24].try_into().unwrap(),
        dst: pkt[24..40].try_into().unwrap(),
        protocol: nh,
        ext_len: off - IPV6_HDR_LEN,
        frag,
        segments_left_at,
        upper: &data[off..],
    })
}

/// RFC 7915 5.4: the ICMPv6 error for a dropped packet, unless it is an ICMPv6 error
/// itself or not from one host / to one host (RFC 4443 2.4 (e)).
fn reply(cfg: &TranslatorConfig, pkt: &[u8], ip: &Ipv6<'_>, f: Fail) -> Outcome {
    let icmp = match f.icmp {
        Some((ty, code, rest)) if !ip.is_icmp_error() && may_answer_v6(&ip.src, &ip.dst, ty) => {
            Some(IcmpReply {
                ty,
                code,
                rest,
                packet: cfg.icmp_source_v6.map(|s| {
                    build_icmp6_error(
                        s,
                        ip.src,
                        ty,
                        code,
                        rest,
                        &pkt[..IPV6_HDR_LEN + ip.payload_len as usize],
                    )
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

/// [`reply`] for a packet whose extension header chain is refused (the fixed header is
/// valid). Such a packet is never an ICMPv6 error: its chain ends in an extension
/// header, not in ICMPv6.
fn reply_unparsed(cfg: &TranslatorConfig, pkt: &[u8], f: Fail) -> Outcome {
    let Some((ty, code, rest)) = f.icmp else {
        return Outcome::drop(f.reason);
    };
    let src: [u8; 16] = pkt[8..24].try_into().unwrap();
    let dst: [u8; 16] = pkt[24..40].try_into().unwrap();
    if !may_answer_v6(&src, &dst, ty) {
        return Outcome::drop(f.reason);
    }
    let end = (IPV6_HDR_LEN + be16(pkt, 4) as usize).min(pkt.len());
    Outcome::Drop {
        reason: f.reason,
        icmp: Some(IcmpReply {
            ty,
            code,
            rest,
            packet: cfg
                .icmp_source_v6
                .map(|s| build_icmp6_error(s, src, ty, code, rest, &pkt[..end])),
        }),
    }
}

/// RFC 7915 5.1: source addresses that must not be translated (RFC 8200 / RFC 4291:
/// unspecified, loopback, multicast).
fn illegal_source(a: &[u8; 16]) -> bool {
    let mut loopback = [0u8; 16];
    loopback[15] = 1;
    a[0] == 0xff || *a == [0u8; 16] || *a == loopback
}

/// RFC 7915 section 5: translate one IPv6 packet (raw, from the IP header) to IPv4.
pub fn translate_6to4(pkt: &[u8], cfg: &TranslatorConfig) -> Outcome {
    // Step 2 first when the fixed header is valid: a packet that is not for the
    // translator (RFC 7915 5.6) is left alone whatever its extension headers or source.
    if pkt.len() >= IPV6_HDR_LEN
        && pkt[0] >> 4 == 6
        && IPV6_HDR_LEN + be16(pkt, 4) as usize <= pkt.len()
    {
        let dst: [u8; 16] = pkt[24..40].try_into().unwrap();
        if cfg.map_6to4(&dst).is_none() {
            return Outcome::Pass(XlatReason::NoMapping);
        }
    }
    // Step 1: RFC 8200 header and extension header walk (RFC 7915 5.1, 5.1.1).
    let ip = match parse(pkt, false) {
        Ok(ip) => ip,
        Err(f) => return reply_unparsed(cfg, pkt, f),
    };
    if illegal_source(&ip.src) {
        return Outcome::drop(XlatReason::IllegalSource);
    }

    // Step 2: RFC 7915 5.6, knowing when to translate: the destination must map.
    let Some((dst4, _)) = cfg.map_6to4(&ip.dst) else {
        return Outcome::Pass(XlatReason::NoMapping);
    };

    // Step 3: RFC 7915 5.1 / section 6, source. RFC 6791: an ICMPv6 error whose source
    // (a router in the IPv6 network) has no IPv4 mapping gets the configured address.
    // Anything else is refused: destination unreachable, administratively prohibited
    // (5.4).
    // Without an RFC 6791 address the translator's own IPv4 address is used (RFC 6791
    // section 4 leaves the pool optional; Linux would pick the egress address).
    let src4 = match cfg.map_6to4(&ip.src) {
        Some((a, _)) => a,
        None => match cfg.rfc6791_v4.or(cfg.icmp_source_v4) {
            Some(a) if ip.is_icmp_error() => a,
            _ => {
                return reply(
                    cfg,
                    pkt,
                    &ip,
                    Fail::icmp(XlatReason::SourceUntranslatable, 1, 1, [0; 4]),
                );
            }
        },
    };

    // Step 4a: RFC 7915 5.1, Time to Live: hop limit decremented, time exceeded at zero.
    if ip.hop_limit <= 1 {
        return reply(
            cfg,
            pkt,
            &ip,
            Fail::icmp(XlatReason::TtlExpired, 3, 0, [0; 4]),
        );
    }
    // Step 4b: RFC 7915 5.1: a routing header with segments left is not translated;
    // parameter problem, code 0, pointer to the Segments Left field.
    if let Some(at) = ip.segments_left_at {
        return reply(
            cfg,
            pkt,
            &ip,
            Fail::icmp(XlatReason::SegmentsLeft, 4, 0, at.to_be_bytes()),
        );
    }

    // Step 5: RFC 7915 5.2-5.5, the transport header / ICMP message.
    let mut payload = ip.upper.to_vec();
    let icmp_error = match transport(&ip, &src4, &dst4, cfg, false, &mut payload) {
        Ok(e) => e,
        Err(f) => return reply(cfg, pkt, &ip, f),
    };
    if icmp_error {
        // RFC 1812 4.3.2.3 (and the Jool behaviour the vectors encode): a translated
        // ICMPv4 error is at most 576 bytes; its checksum covers what is sent (5.3).
        payload.truncate(576 - IPV4_HDR_LEN);
        put16(&mut payload, 2, 0);
        let c = checksum::finish(sum_bytes(0, &payload));
        put16(&mut payload, 2, c);
    }

    // Step 6: RFC 7915 5.1 / 5.1.1, the IPv4 header.
    let total = IPV4_HDR_LEN + payload.len();
    let tos = if cfg.reset_traffic_class {
        0
    } else {
        ip.traffic_class
    };
    let protocol = header::protocol_6to4(ip.protocol);
    let (id, df, mf, offset8) = match ip.frag {
        // 5.1.1: identification from the low 16 bits, MF from M, DF clear, offset copied.
        Some(f) => (f.id as u16, false, f.more, f.offset8),
        // 5.1: DF only above 1260 bytes; an identification of our own otherwise (an
        // atomic DF datagram may carry zero, RFC 6864 4.1).
        None => {
            let df = header::df_for_translated_ipv4(total as u32);
            (if df { 0 } else { next_ipv4_id() }, df, false, 0)
        }
    };
    let hdr4 = header::build_ipv4_header(
        tos,
        total as u16,
        id,
        df,
        mf,
        offset8,
        ip.hop_limit - 1,
        protocol,
        &src4,
        &dst4,
    );

    // Step 7: 5.1.1 (last paragraph): DF and larger than the IPv4 next hop: packet too
    // big back to the sender with the MTU adjusted by the header difference.
    let nexthop4 = cfg.nexthop4();
    if total as u64 > nexthop4 as u64 {
        if df {
            let mtu = icmp::ptb_mtu_for_ipv4_nexthop(nexthop4);
            return reply(
                cfg,
                pkt,
                &ip,
                Fail::icmp(XlatReason::TooBig, 2, 0, mtu.to_be_bytes()),
            );
        }
        let mut whole = Vec::with_capacity(total);
        whole.extend_from_slice(&hdr4);
        whole.extend_from_slice(&payload);
        return Outcome::Translated {
            packets: fragment_ipv4(&whole, nexthop4),
            reason: XlatReason::Fragmented,
        };
    }

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&hdr4);
    out.extend_from_slice(&payload);
    Outcome::Translated {
        packets: alloc::vec![out],
        reason: XlatReason::Translated,
    }
}

/// RFC 7915 5.2-5.5 on `payload` (a copy of the upper-layer bytes, changed in place).
/// Returns true for an ICMP error (checksum finished by the caller after truncation).
fn transport(
    ip: &Ipv6<'_>,
    src4: &[u8; 4],
    dst4: &[u8; 4],
    cfg: &TranslatorConfig,
    inner: bool,
    payload: &mut Vec<u8>,
) -> Result<bool, Fail> {
    if !ip.first_fragment() {
        if ip.protocol == PROTO_ICMPV6 && !inner {
            return Err(Fail::silent(XlatReason::FragmentedIcmp));
        }
        return Ok(false);
    }
    match ip.protocol {
        // RFC 7915 5.5: TCP and UDP checksums, pseudo-header addresses replaced.
        PROTO_TCP => {
            if payload.len() < 18 {
                return if inner {
                    Ok(false)
                } else {
                    Err(Fail::silent(XlatReason::Malformed))
                };
            }
            let c = checksum::transport_6to4(be16(payload, 16), &ip.src, &ip.dst, src4, dst4);
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
            let c = checksum::transport_6to4(be16(payload, 6), &ip.src, &ip.dst, src4, dst4);
            put16(payload, 6, checksum::udp_mangle_zero(c));
            Ok(false)
        }
        PROTO_ICMPV6 => {
            if ip.frag.is_some_and(|f| f.more) && !inner {
                return Err(Fail::silent(XlatReason::FragmentedIcmp));
            }
            icmp_6to4(ip, cfg, inner, payload)
        }
        _ => Ok(false),
    }
}

/// RFC 7915 5.2 (ICMPv6 -> ICMPv4) and 5.3 (the packet inside an error).
fn icmp_6to4(
    ip: &Ipv6<'_>,
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
    match icmp::icmp6_to_icmp4(ty, code, rest) {
        IcmpMapping::Drop(r) => Err(Fail::silent(r)),
        IcmpMapping::Info { ty: t4, code: c4 } => {
            // Echo: type change, ICMPv6 pseudo-header removed, incrementally.
            let c = checksum::icmp_info_6to4(
                be16(payload, 2),
                u16::from_be_bytes([ty, code]),
                u16::from_be_bytes([t4, c4]),
                &ip.src,
                &ip.dst,
                ip.upper_len() as u32,
            );
            payload[0] = t4;
            payload[1] = c4;
            put16(payload, 2, c);
            Ok(false)
        }
        m @ (IcmpMapping::Error { .. } | IcmpMapping::TooBig { .. }) => {
            if inner {
                // RFC 7915 5.3: one level of embedded header only.
                return Err(Fail::silent(XlatReason::IcmpInner));
            }
            // The checksum is recomputed below: refuse to launder a corrupted message.
            let s = sum_bytes(
                checksum::pseudo_header_v6(&ip.src, &ip.dst, payload.len() as u32, PROTO_ICMPV6),
                payload,
            );
            if checksum::fold(s) != 0xffff {
                return Err(Fail::silent(XlatReason::IcmpBadChecksum));
            }
            // RFC 4884: ICMPv6 destination unreachable and time exceeded may carry an
            // extension after the original datagram (length in byte 4, 64-bit words).
            let attr = if matches!(ty, 1 | 3) { payload[4] } else { 0 };
            let (orig, ext) = split_icmp_extension(&payload[8..], attr, 8)?;
            // 5.3: translate the packet in error, addresses and checksums included.
            let inner_pkt = translate_inner(orig, cfg)?;
            let (t4, c4, mut rest4) = match m {
                IcmpMapping::Error { ty, code, rest } => (ty, code, rest),
                IcmpMapping::TooBig { ty, code } => {
                    // 5.2: MTU - 20, bounded by the next hops.
                    let mtu = icmp::frag_needed_mtu_6to4(
                        u32::from_be_bytes(rest),
                        cfg.nexthop4(),
                        cfg.nexthop6(),
                    );
                    let m = mtu.to_be_bytes();
                    (ty, code, [0, 0, m[0], m[1]])
                }
                IcmpMapping::Info { .. } | IcmpMapping::Drop(_) => unreachable!(),
            };
            // ICMPv4 destination unreachable, time exceeded and parameter problem have a
            // length attribute (byte 5, 32-bit words); the extension must fit in 576.
            let has_len = matches!(
                t4,
                icmp::ICMP4_DEST_UNREACH | icmp::ICMP4_TIME_EXCEEDED | icmp::ICMP4_PARAM_PROBLEM
            );
            let room = 576 - IPV4_HDR_LEN - 8;
            let (body, attr4) = attach_icmp_extension(inner_pkt, ext, room, 4, has_len);
            if has_len {
                rest4[1] = attr4;
            }
            payload.truncate(8);
            payload[0] = t4;
            payload[1] = c4;
            payload[4..8].copy_from_slice(&rest4);
            payload.extend_from_slice(&body);
            Ok(true)
        }
    }
}

/// RFC 7915 5.3: the IPv6 packet inside an ICMPv6 error, translated like a normal
/// packet except: hop limit not decremented, lengths from the inner header, the
/// routing header not checked, no ICMP error about it.
fn translate_inner(b: &[u8], cfg: &TranslatorConfig) -> Result<Vec<u8>, Fail> {
    let ip = parse(b, true).map_err(|_| Fail::silent(XlatReason::IcmpInner))?;
    if ip.is_icmp_error() {
        return Err(Fail::silent(XlatReason::IcmpInner));
    }
    let Some((src4, _)) = cfg.map_6to4(&ip.src) else {
        return Err(Fail::silent(XlatReason::IcmpInner));
    };
    let Some((dst4, _)) = cfg.map_6to4(&ip.dst) else {
        return Err(Fail::silent(XlatReason::IcmpInner));
    };
    let mut payload = ip.upper.to_vec();
    transport(&ip, &src4, &dst4, cfg, true, &mut payload)?;
    // Total Length as the original implies (Payload Length - extension headers + 20).
    let total = IPV4_HDR_LEN + ip.upper_len();
    let tos = if cfg.reset_traffic_class {
        0
    } else {
        ip.traffic_class
    };
    let (id, df, mf, offset8) = match ip.frag {
        Some(f) => (f.id as u16, false, f.more, f.offset8),
        // The original identification is unknowable: zero (RFC 6864 4.1 for DF).
        None => (0, header::df_for_translated_ipv4(total as u32), false, 0),
    };
    let protocol = header::protocol_6to4(ip.protocol);
    let mut out = Vec::with_capacity(IPV4_HDR_LEN + payload.len());
    out.extend_from_slice(&header::build_ipv4_header(
        tos,
        total as u16,
        id,
        df,
        mf,
        offset8,
        ip.hop_limit,
        protocol,
        &src4,
        &dst4,
    ));
    out.extend_from_slice(&payload);
    Ok(out)
}
