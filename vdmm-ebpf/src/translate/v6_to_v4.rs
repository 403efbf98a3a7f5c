//! RFC 7915 section 5: IPv6 -> IPv4 in XDP.

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_get_prandom_u32, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use vdmm_common::{
    Action, Reason, TunnelKind,
    translate::{
        checksum::{udp_mangle_zero, update},
        header::{df_for_translated_ipv4, is_ipv6_extension_header},
        icmp::{IcmpMapping, icmp6_is_error, icmp6_to_icmp4, ptb_mtu_for_ipv4_nexthop},
        maps::{XLAT_RESET_TRAFFIC_CLASS, XlatConfig},
    },
};

use super::{
    FLAG_DF, FLAG_FIRST, ICMP_ERROR, PROCEED, SEND_ICMP, Scratch,
    addr::{illegal_source6, map_6to4},
    icmp, recorded_error, resize_frame, send_error, sub, wire,
};
use crate::{
    classify::valid_ipv6,
    counters::Verdict,
    forward,
    headers::*,
    icmp_error::{self, IcmpError},
    maps::{XLAT_CONFIG, XLAT_SCRATCH, config},
    packet::{Frame, get16, get32},
    tunnel::Inner,
};

const KIND: TunnelKind = TunnelKind::Xlat6to4;

/// Extension headers walked in front of the upper layer (hop-by-hop, destination
/// options, routing), the fragment header not counted.
pub const MAX_EXTENSION_HEADERS: usize = 4;

#[inline(always)]
fn drop(reason: Reason) -> Verdict {
    Verdict::drop(reason, KIND)
}

#[inline(always)]
fn aborted() -> Verdict {
    Verdict::new(Action::Aborted, Reason::AdjustFailed, KIND)
}

/// The extension header walk of RFC 7915 5.1: where the upper layer starts and what
/// the fragment header said.
#[derive(Clone, Copy)]
pub struct Walk {
    /// Upper-layer protocol.
    pub proto: u8,
    /// Offset of the upper layer in the frame.
    pub upper: usize,
    pub has_frag: bool,
    /// Fragment offset / M word of the fragment header (offset << 3 | M).
    pub frag_word: u16,
    pub frag_id: u32,
    /// Frame offset of the Segments Left field of the first routing header with segments
    /// left (0: none).
    pub segments_left_at: u16,
}

impl Walk {
    /// The result of `sub::walk_into`.
    #[inline(always)]
    pub fn from_scratch(s: &Scratch) -> Self {
        Self {
            proto: s.w_proto,
            upper: s.w_upper as usize & 0xfff,
            has_frag: s.w_has_frag != 0,
            frag_word: s.w_frag_word,
            frag_id: s.w_frag_id,
            segments_left_at: s.w_segments_left_at,
        }
    }
}

/// Walks the extension headers from `off` (first next header `nh`). `None`: truncated;
/// `Some(Err(()))`: a chain the translator refuses (too long, or an extension header
/// after the fragment header, RFC 7915 5.1.1).
#[inline(always)]
pub fn walk(frame: &Frame, mut nh: u8, mut off: usize) -> Option<Result<Walk, ()>> {
    let mut w = Walk {
        proto: 0,
        upper: 0,
        has_frag: false,
        frag_word: 0,
        frag_id: 0,
        segments_left_at: 0,
    };
    let mut i = 0;
    while i <= MAX_EXTENSION_HEADERS {
        match nh {
            IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING => {
                if i == MAX_EXTENSION_HEADERS {
                    return Some(Err(()));
                }
                let p = frame.ptr(off, 8)?;
                let (next, len, left) = unsafe { (*p, *p.add(1), *p.add(3)) };
                if nh == IPPROTO_ROUTING && left != 0 && w.segments_left_at == 0 {
                    w.segments_left_at = (off + 3) as u16;
                }
                nh = next;
                off += (len as usize + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let p = frame.ptr(off, 8)?;
                w.has_frag = true;
                w.frag_word = get16(unsafe { p.add(2) });
                w.frag_id = get32(unsafe { p.add(4) });
                nh = unsafe { *p };
                off += 8;
                if is_ipv6_extension_header(nh) {
                    return Some(Err(()));
                }
                break;
            }
            _ => break,
        }
        i += 1;
    }
    w.proto = nh;
    w.upper = off;
    Some(Ok(w))
}

/// An IPv6 packet that no tunnel or binding claimed: translated to IPv4 when its
/// destination maps (EAMT or RFC 6052 prefix), else `pass no_match`.
#[inline(always)]
pub fn from_ipv6(ctx: *mut xdp_md) -> Verdict {
    let Some(cfg) = XLAT_CONFIG.get(0) else {
        return Verdict::pass(Reason::NoMatch);
    };
    let Some(s) = XLAT_SCRATCH.get_ptr_mut(0) else {
        return Verdict::pass(Reason::NoMatch);
    };
    // SAFETY: per-CPU map value, this program is its only user on this CPU.
    let s = unsafe { &mut *s };
    let v = prepare(ctx, cfg, s);
    if v == SEND_ICMP {
        return Verdict(send_icmp(ctx, s));
    }
    if v == ICMP_ERROR {
        if icmp::before_error(ctx, s, 1) != 0 {
            return drop(Reason::XlatIcmpUntranslatable);
        }
        let mut v = icmp::error_6to4(ctx, cfg, s, 0);
        if v == PROCEED {
            v = icmp::finish_6to4(ctx, s);
        }
        if v != PROCEED {
            return Verdict(v);
        }
        return Verdict(icmp::rewrite_6to4(ctx, s));
    }
    if v != PROCEED {
        return Verdict(v);
    }
    rewrite(ctx, s)
}

/// RFC 7915 5.6: the destination must map. [`PROCEED`] or `pass no_match` /
/// `drop malformed`.
#[inline(always)]
fn select(ctx: *mut xdp_md, cfg: &XlatConfig, s: &mut Scratch) -> u32 {
    let _xdp = &XdpContext::new(ctx);
    let frame = sub::frame_of(ctx);
    let Some((ip, total)) = valid_ipv6(&frame, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None).0;
    };
    let Some(dst4) = map_6to4(ip.dst_ptr(), cfg) else {
        return Verdict::pass(Reason::NoMatch).0;
    };
    s.dst4 = dst4.to_be_bytes();
    s.total = total as u16;
    PROCEED
}

/// The ICMPv6 error [`send_error`] recorded, about the received packet.
#[inline(never)]
fn send_icmp(ctx: *mut xdp_md, s: &Scratch) -> u32 {
    let xdp = &XdpContext::new(ctx);
    let frame = Frame::new(xdp);
    let Some(p) = frame.ptr(ETH_HLEN, IPV6_HLEN) else {
        return drop(Reason::Malformed).0;
    };
    let (error, reason) = recorded_error(s);
    icmp_error::reply(
        xdp,
        Inner::V6(Ipv6(p)),
        s.total as usize,
        error,
        reason,
        KIND,
    )
    .0
}

/// [`select`], then every check and decision, then [`finish`] (route, transport
/// checksum update in place); the new header's fields go to `s`. Returns [`PROCEED`]
/// (rewrite from `s`), [`SEND_ICMP`], [`ICMP_ERROR`] or a finished verdict
/// (`pass no_match` when the destination does not map). One subprogram for the three
/// steps: each call costs on every packet, and `select` holds nothing on the stack
/// since the EAMT answers come from `mapping_cache`.
#[inline(never)]
fn prepare(ctx: *mut xdp_md, cfg: &XlatConfig, s: &mut Scratch) -> u32 {
    let v = select(ctx, cfg, s);
    if v != PROCEED {
        return v;
    }
    let xdp = &XdpContext::new(ctx);
    let total = s.total as usize;
    let v = translate(xdp, cfg, s, total).0;
    if v != PROCEED {
        return v;
    }
    finish(ctx, s)
}

#[inline(always)]
fn translate(ctx: &XdpContext, cfg: &XlatConfig, s: &mut Scratch, total: usize) -> Verdict {
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(ETH_HLEN, IPV6_HLEN) else {
        return drop(Reason::Malformed);
    };
    let ip = Ipv6(p);
    let nh = ip.next_header();
    let walked = if matches!(
        nh,
        IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT
    ) {
        sub::walk_into(ctx.ctx, s, nh as u32, (ETH_HLEN + IPV6_HLEN) as u32)
    } else {
        // No extension header (the usual case): what the walk would find, without its
        // subprogram call.
        sub::no_extension_headers(s, nh, (ETH_HLEN + IPV6_HLEN) as u16)
    };
    match walked {
        sub::WALK_OK => {}
        // RFC 7915 5.1.1 / 5.4: an extension header after the fragment header (or too
        // many of them): administratively prohibited.
        sub::WALK_REFUSED => {
            return Verdict(send_error(
                s,
                IcmpError::Unreachable { code: 1 },
                Reason::XlatUnsupportedHeader,
            ));
        }
        _ => return drop(Reason::Malformed),
    }
    let w = Walk::from_scratch(s);
    let end = ETH_HLEN + total;
    if w.upper > end {
        return drop(Reason::Malformed);
    }
    let l4 = w.upper;
    let l4_len = end - l4;
    let first = w.frag_word >> 3 == 0;
    let more = w.frag_word & 1 != 0;

    let mut icmp_ty = 0u8;
    let mut icmp_code = 0u8;
    if w.proto == IPPROTO_ICMPV6 {
        // A fragmented ICMPv6 message cannot be translated piecewise.
        if !first || more {
            return drop(Reason::XlatIcmpUntranslatable);
        }
        let Some(h) = frame.ptr(l4, 8) else {
            return drop(Reason::Malformed);
        };
        icmp_ty = unsafe { *h };
        icmp_code = unsafe { *h.add(1) };
    }
    let icmp_error = w.proto == IPPROTO_ICMPV6 && icmp6_is_error(icmp_ty);

    // RFC 7915 5.1 / 6: the source; an ICMPv6 error from an unmapped router takes the
    // RFC 6791 address. Any other unmapped source: administratively prohibited (5.4;
    // never sent to a source that is not one host's).
    if illegal_source6(ip.src_ptr()) {
        return drop(Reason::XlatSourceUntranslatable);
    }
    match map_6to4(ip.src_ptr(), cfg) {
        Some(a) => s.src4 = a.to_be_bytes(),
        None => {
            if !icmp_error || !rfc6791_v4(cfg, s) {
                return Verdict(send_error(
                    s,
                    IcmpError::Unreachable { code: 1 },
                    Reason::XlatSourceUntranslatable,
                ));
            }
        }
    }
    // RFC 7915 5.1: hop limit.
    if ip.hop_limit() <= 1 {
        return Verdict(send_error(s, IcmpError::TimeExceeded, Reason::TtlExpired));
    }
    // RFC 7915 5.1: a routing header with segments left is not translated: parameter
    // problem 4/0 pointing at its Segments Left field.
    if w.segments_left_at != 0 {
        let pointer = (w.segments_left_at as usize).wrapping_sub(ETH_HLEN) as u32;
        return Verdict(send_error(
            s,
            IcmpError::ParamProblem { code: 0, pointer },
            Reason::XlatSegmentsLeft,
        ));
    }
    if icmp_error {
        s.old_hdr = (l4 - ETH_HLEN) as u16;
        s.payload = l4_len as u16;
        // The outer IPv4 identification: from the fragment header, else our own (a
        // translated error is at most 576 bytes, never DF).
        if w.has_frag {
            s.id = w.frag_id & 0xffff;
            s.frag_word = w.frag_word >> 3;
        } else {
            s.id = unsafe { bpf_get_prandom_u32() } & 0xffff;
            s.frag_word = 0;
        }
        return Verdict(ICMP_ERROR);
    }

    let mut new_type_code = 0u16;
    if first {
        match w.proto {
            IPPROTO_TCP => {
                if l4_len < 18 {
                    return drop(Reason::Malformed);
                }
            }
            IPPROTO_UDP => {
                if l4_len < 8 {
                    return drop(Reason::Malformed);
                }
            }
            IPPROTO_ICMPV6 => match icmp6_to_icmp4(icmp_ty, icmp_code, [0; 4]) {
                IcmpMapping::Info { ty, code } => new_type_code = ((ty as u16) << 8) | code as u16,
                _ => return drop(Reason::XlatIcmpUntranslatable),
            },
            _ => {}
        }
    }

    // RFC 7915 5.1 / 5.1.1: the IPv4 header fields.
    let total4 = IPV4_HLEN + l4_len;
    let (id, frag_word, df) = if w.has_frag {
        (
            w.frag_id as u16,
            ((more as u16) << 13) | (w.frag_word >> 3),
            false,
        )
    } else if df_for_translated_ipv4(total4 as u32) {
        (0, IP_DF, true)
    } else {
        (unsafe { bpf_get_prandom_u32() } as u16, 0, false)
    };

    // The rest is done by `finish`, from the scratch value.
    s.tos = if cfg.flags & XLAT_RESET_TRAFFIC_CLASS != 0 {
        0
    } else {
        ip.traffic_class()
    };
    s.hop = ip.hop_limit();
    s.next = w.proto;
    s.id = id as u32;
    s.frag_word = frag_word;
    s.flags = (df as u8 * FLAG_DF) | (first as u8 * FLAG_FIRST);
    s.old_hdr = (l4 - ETH_HLEN) as u16;
    s.payload = l4_len as u16;
    s.total4 = total4 as u16;
    s.icmp_tc = new_type_code;
    s.sum = wire::sum::<16>(ip.src_ptr()) + wire::sum::<16>(ip.dst_ptr());
    Verdict(PROCEED)
}

/// The route (RFC 7915 5.1.1), then the transport checksum update in place (RFC 7915
/// 5.5, 5.2) and the last header fields. [`PROCEED`], [`SEND_ICMP`] or a finished
/// verdict.
#[inline(always)]
fn finish(ctx: *mut xdp_md, s: &mut Scratch) -> u32 {
    let xdp = &XdpContext::new(ctx);
    let old = s.sum;
    let df = s.flags & FLAG_DF != 0;
    let l4 = ETH_HLEN + (s.old_hdr as usize & 0xfff);
    let l4_len = s.payload as usize;
    let pass = |r: Reason| Verdict::new(Action::Pass, r, KIND).0;
    match sub::route(ctx, s, 0, s.total4 as u32) {
        sub::ROUTE_RESOLVED => s.resolved = 1,
        sub::ROUTE_TOO_BIG => {
            if df {
                // RFC 7915 5.1.1: packet too big, MTU + 20 (at least 1280).
                let mtu = ptb_mtu_for_ipv4_nexthop(s.mtu);
                return send_error(s, IcmpError::TooBig { mtu }, Reason::TooBig);
            }
            // Without DF the kernel fragments the IPv4 packet when it forwards it.
            s.resolved = 0;
            s.pass_verdict = pass(Reason::FragmentedByKernel);
        }
        sub::ROUTE_NO_NEIGHBOUR => {
            s.resolved = 0;
            s.pass_verdict = pass(Reason::FibNoNeighbour);
        }
        sub::ROUTE_NOT_FORWARDED => {
            s.resolved = 0;
            s.pass_verdict = pass(Reason::FibNotForwarded);
        }
        _ => return drop(Reason::FibUnreachable).0,
    }

    let new = wire::sum_words::<4>(s.src4.as_ptr()) + wire::sum_words::<4>(s.dst4.as_ptr());
    let frame = Frame::new(xdp);
    if s.flags & FLAG_FIRST != 0 {
        match s.next {
            IPPROTO_TCP => {
                let Some(c) = frame.ptr(l4 + 16, 2) else {
                    return drop(Reason::Malformed).0;
                };
                wire::st16(c, update(wire::ld16(c), old, new));
            }
            IPPROTO_UDP => {
                let Some(c) = frame.ptr(l4 + 6, 2) else {
                    return drop(Reason::Malformed).0;
                };
                wire::st16(c, udp_mangle_zero(update(wire::ld16(c), old, new)));
            }
            IPPROTO_ICMPV6 => {
                let Some(h) = frame.ptr(l4, 4) else {
                    return drop(Reason::Malformed).0;
                };
                let old_tc = wire::ld16(h) as u32;
                let pseudo = old + l4_len as u32 + IPPROTO_ICMPV6 as u32;
                let c = update(
                    wire::ld16(unsafe { h.add(2) }),
                    old_tc + pseudo,
                    s.icmp_tc as u32,
                );
                wire::st16(h, s.icmp_tc);
                wire::st16(unsafe { h.add(2) }, c);
            }
            _ => {}
        }
    }

    // Passed to the kernel, the packet keeps its hop limit: the kernel decrements it.
    let Some(e) = frame.ptr(0, ETH_HLEN) else {
        return drop(Reason::Malformed).0;
    };
    if s.resolved == 0 {
        s.dmac = Eth(e).dst();
        s.smac = Eth(e).src();
    } else {
        s.hop -= 1;
    }
    if s.next == IPPROTO_ICMPV6 {
        s.next = IPPROTO_ICMP;
    }
    PROCEED
}

/// Resizes the frame and writes Ethernet and IPv4 headers from `s`.
#[inline(always)]
fn rewrite(ctx: *mut xdp_md, s: &Scratch) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let want = ETH_HLEN + s.total as usize;
    // Ethernet padding cut (the IP packet is inside the frame: `select` checked).
    if !resize_frame(ctx, want) {
        return aborted();
    }
    let delta = (s.old_hdr as i32 & 0xfff) - IPV4_HLEN as i32;
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return aborted();
    }
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN + IPV4_HLEN) else {
        return aborted();
    };
    wire::put_ipv4(
        unsafe { p.add(ETH_HLEN) },
        s.tos,
        s.total4,
        s.id as u16,
        s.frag_word,
        s.hop,
        s.next,
        s.src4.as_ptr(),
        s.dst4.as_ptr(),
    );
    wire::put_eth(p, s.dmac, s.smac, ETH_P_IP);
    if s.resolved != 0 {
        forward::out(ctx, s.ifindex, Reason::Translated, KIND)
    } else {
        Verdict(s.pass_verdict)
    }
}

/// RFC 6791: the IPv4 source of a translated ICMPv6 error from an unmapped router.
#[inline(always)]
fn rfc6791_v4(cfg: &XlatConfig, s: &mut Scratch) -> bool {
    if cfg.rfc6791_v4 != [0u8; 4] {
        s.src4 = cfg.rfc6791_v4;
        return true;
    }
    match config() {
        Some(t) if t.icmp_source_v4 != [0u8; 4] => {
            s.src4 = t.icmp_source_v4;
            true
        }
        _ => false,
    }
}
