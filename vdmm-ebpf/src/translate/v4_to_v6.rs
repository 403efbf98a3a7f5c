//! RFC 7915 section 4: IPv4 -> IPv6 in XDP.

use aya_ebpf::{bindings::xdp_md, helpers::generated::bpf_xdp_adjust_head, programs::XdpContext};
use vdmm_common::{
    Action, Reason, TunnelKind,
    translate::{
        checksum::{fold, udp_mangle_zero, update},
        icmp::{IcmpMapping, frag_needed_mtu_for_ipv6_nexthop, icmp4_is_error, icmp4_to_icmp6},
        maps::{XLAT_RESET_TRAFFIC_CLASS, XLAT_UDP_ZERO_DROP, XlatConfig},
    },
};

use super::{
    FLAG_DF, FLAG_FIRST, FLAG_UDP_ZERO, ICMP_ERROR, PROCEED, SEND_ICMP, Scratch, UDP_SUM_MAX,
    addr::{eam_4to6, map_4to6, pool6_4to6},
    icmp, recorded_error, resize_frame, send_error, sub, wire,
};
use crate::{
    classify::valid_ipv4,
    counters::Verdict,
    forward,
    headers::*,
    icmp_error::{self, IcmpError},
    maps::{XLAT_CONFIG, XLAT_SCRATCH, config},
    packet::{Frame, get16, put16, put32},
    tunnel::Inner,
};

const KIND: TunnelKind = TunnelKind::Xlat4to6;

#[inline(always)]
fn drop(reason: Reason) -> Verdict {
    Verdict::drop(reason, KIND)
}

#[inline(always)]
fn aborted() -> Verdict {
    Verdict::new(Action::Aborted, Reason::AdjustFailed, KIND)
}

/// An IPv4 packet that no tunnel or binding claimed: translated to IPv6 when its
/// destination maps (see the module docs of `translate`), else `pass no_match`.
#[inline(always)]
pub fn from_ipv4(ctx: *mut xdp_md) -> Verdict {
    let Some(cfg) = XLAT_CONFIG.get(0) else {
        return Verdict::pass(Reason::NoMatch);
    };
    let Some(s) = XLAT_SCRATCH.get_ptr_mut(0) else {
        return Verdict::pass(Reason::NoMatch);
    };
    // SAFETY: per-CPU map value, this program is its only user on this CPU.
    let s = unsafe { &mut *s };
    // In line in `vdmm_xdp`, so each step is a subprogram: this frame stays small (the
    // stack is 512 bytes for the whole call chain).
    let v = prepare(ctx, cfg, s);
    // Not taken on `vdmmx1`: the kernel would route it into `vdmmx0` again.
    if v == Verdict::pass(Reason::NoMatch).0 && from_frag_path(&XdpContext::new(ctx), cfg) {
        return drop(Reason::XlatFragPathUntranslated);
    }
    if v == SEND_ICMP {
        return Verdict(send_icmp(ctx, s));
    }
    if v == ICMP_ERROR {
        if icmp::before_error(ctx, s, 0) != 0 {
            return drop(Reason::XlatIcmpUntranslatable);
        }
        let mut v = icmp::error_4to6(ctx, cfg, s);
        if v == PROCEED {
            v = icmp::finish_4to6(ctx, s);
        }
        if v != PROCEED {
            return Verdict(v);
        }
        return Verdict(icmp::rewrite_4to6(ctx, s));
    }
    if v != PROCEED {
        return Verdict(v);
    }
    rewrite(ctx, s)
}

/// RFC 7915 4.6 / RFC 7757: the destination must map; through the prefix only what the
/// kernel would forward (not local, routed): Jool's "translate what is routed to the
/// translator". [`PROCEED`] or `pass no_match` / `drop malformed`.
#[inline(always)]
fn select(ctx: *mut xdp_md, cfg: &XlatConfig, s: &mut Scratch) -> u32 {
    let _xdp = &XdpContext::new(ctx);
    let frame = sub::frame_of(ctx);
    let Some((ip, total)) = valid_ipv4(&frame, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None).0;
    };
    let dst = ip.dst_word();
    s.src4 = ip.src_word().to_be_bytes();
    s.dst4 = dst.to_be_bytes();
    s.total = total as u16;
    if !eam_4to6(dst, s.dst6.as_mut_ptr()) {
        if !pool6_4to6(dst, cfg, s.dst6.as_mut_ptr(), false)
            || !sub::v4_forwarded(ctx, s, total as u32)
        {
            return Verdict::pass(Reason::NoMatch).0;
        }
    }
    PROCEED
}

/// The ICMP error [`send_error`] recorded, about the received packet.
#[inline(never)]
fn send_icmp(ctx: *mut xdp_md, s: &Scratch) -> u32 {
    let xdp = &XdpContext::new(ctx);
    let frame = Frame::new(xdp);
    let Some(p) = frame.ptr(ETH_HLEN, IPV4_HLEN) else {
        return drop(Reason::Malformed).0;
    };
    let (error, reason) = recorded_error(s);
    icmp_error::reply(
        xdp,
        Inner::V4(Ipv4(p)),
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
    if total > 0xffff {
        return drop(Reason::Malformed);
    }
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(ETH_HLEN, IPV4_HLEN) else {
        return drop(Reason::Malformed);
    };
    let ip = Ipv4(p);
    let ihl = ip.ihl();
    // RFC 1812 5.2.2: a router verifies the header checksum (in line without options).
    let header_sum = if ihl == IPV4_HLEN {
        wire::sum::<IPV4_HLEN>(p)
    } else if sub::sum::<60>(ctx.ctx, s, ETH_HLEN as u32, ihl as u32) == 0 {
        s.sum
    } else {
        return drop(Reason::Malformed);
    };
    if fold(header_sum) != 0xffff {
        return drop(Reason::Malformed);
    }
    let src = ip.src_word();
    let _dst = ip.dst_word();
    let proto = ip.protocol();
    let fw = ip.frag_word();
    let offset8 = fw & IP_OFFSET;
    let mf = fw & IP_MF != 0;
    let df = fw & IP_DF != 0;
    let frag = mf || offset8 != 0;
    let l4 = ETH_HLEN + ihl;
    if total < ihl {
        return drop(Reason::Malformed);
    }
    let l4_len = total - ihl;

    // ICMP: a fragmented message cannot be translated (the ICMPv6 checksum covers a
    // pseudo-header with the whole length); an error is translated with its inner packet.
    let mut icmp_ty = 0u8;
    let mut icmp_code = 0u8;
    if proto == IPPROTO_ICMP {
        if frag {
            return drop(Reason::XlatIcmpUntranslatable);
        }
        let Some(h) = frame.ptr(l4, 8) else {
            return drop(Reason::Malformed);
        };
        icmp_ty = unsafe { *h };
        icmp_code = unsafe { *h.add(1) };
    }
    let icmp_error = proto == IPPROTO_ICMP && icmp4_is_error(icmp_ty);

    // RFC 7915 4.1 / 6: the source. That of an ICMP error is embedded under the prefix
    // even when "illegal" (127.0.0.1, ...: "for the purpose of trouble shooting"), else
    // takes the RFC 6791 address. Any other unmapped source: administratively prohibited
    // (4.4).
    if !map_4to6(src, cfg, s.src6.as_mut_ptr()) {
        let icmp_source =
            icmp_error && (pool6_4to6(src, cfg, s.src6.as_mut_ptr(), true) || rfc6791_v6(cfg, s));
        if !icmp_source {
            return Verdict(send_error(
                s,
                IcmpError::Unreachable { code: 13 },
                Reason::XlatSourceUntranslatable,
            ));
        }
    }
    // RFC 7915 4.1: a router decrements the TTL; at zero, time exceeded. (Fragments made
    // by the kernel's fragmentation slow path arrive on `vdmmx1` already decremented.)
    if ip.ttl() <= 1 && !from_frag_path(ctx, cfg) {
        return Verdict(send_error(s, IcmpError::TimeExceeded, Reason::TtlExpired));
    }
    // RFC 7915 4.1: options are not translated, but an unexpired source route is
    // refused: destination unreachable, source route failed (3/5).
    if ihl > IPV4_HLEN && sub::source_route(ctx.ctx, s, ihl as u32) != 0 {
        return Verdict(send_error(
            s,
            IcmpError::Unreachable { code: 5 },
            Reason::XlatSourceRoute,
        ));
    }
    if icmp_error {
        if total < ihl + 8 + IPV4_HLEN {
            return drop(Reason::XlatIcmpUntranslatable);
        }
        s.old_hdr = ihl as u16;
        s.payload = l4_len as u16;
        return Verdict(ICMP_ERROR);
    }

    // Transport, read-only checks first (the packet may still be answered with an ICMP
    // error, which quotes it unchanged).
    let mut udp_zero = false;
    let mut new_type_code = 0u16;
    if offset8 == 0 {
        match proto {
            IPPROTO_TCP => {
                if l4_len < 18 {
                    return drop(Reason::Malformed);
                }
            }
            IPPROTO_UDP => {
                let Some(u) = frame.ptr(l4, 8) else {
                    return drop(Reason::Malformed);
                };
                if l4_len < 8 {
                    return drop(Reason::Malformed);
                }
                if get16(unsafe { u.add(6) }) == 0 {
                    // RFC 7915 4.5: compute it, unless configured to drop; a fragment
                    // cannot be summed.
                    if mf || cfg.flags & XLAT_UDP_ZERO_DROP != 0 || l4_len > UDP_SUM_MAX {
                        return Verdict(send_error(
                            s,
                            IcmpError::Unreachable { code: 13 },
                            Reason::XlatUdpZeroChecksum,
                        ));
                    }
                    udp_zero = true;
                }
            }
            IPPROTO_ICMP => match icmp4_to_icmp6(icmp_ty, icmp_code, [0; 4]) {
                IcmpMapping::Info { ty, code } => {
                    new_type_code = ((ty as u16) << 8) | code as u16;
                }
                _ => return drop(Reason::XlatIcmpUntranslatable),
            },
            _ => {}
        }
    }

    // Sizes (RFC 7915 section 4): without DF the IPv6 packet must fit the lowest IPv6
    // MTU, or it is fragmented (the slow path); it does not apply with DF.
    let fh = if frag { 8 } else { 0 };
    let out_len = IPV6_HLEN + fh + l4_len;
    if !df && out_len as u32 > cfg.lowest_mtu() {
        return Verdict(needs_fragmentation(ctx, cfg));
    }
    // The rest is done by `finish`, from the scratch value.
    s.tos = if cfg.flags & XLAT_RESET_TRAFFIC_CLASS != 0 {
        0
    } else {
        ip.tos()
    };
    s.hop = ip.ttl();
    s.id = get16(unsafe { p.add(4) }) as u32;
    s.next = proto;
    s.frag = frag as u8;
    s.frag_word = (offset8 << 3) | mf as u16;
    s.flags = (df as u8 * FLAG_DF)
        | (udp_zero as u8 * FLAG_UDP_ZERO)
        | ((offset8 == 0) as u8 * FLAG_FIRST);
    s.old_hdr = ihl as u16;
    s.payload = l4_len as u16;
    s.icmp_tc = new_type_code;
    Verdict(PROCEED)
}

/// The route (RFC 7915 section 4 sizes), then the transport checksum update in place
/// (RFC 7915 4.5, 4.2: the pseudo-header addresses change; ICMPv6 adds a pseudo-header
/// ICMPv4 does not have) and the last header fields. [`PROCEED`], [`SEND_ICMP`] or a
/// finished verdict.
#[inline(always)]
fn finish(ctx: *mut xdp_md, s: &mut Scratch) -> u32 {
    let xdp = &XdpContext::new(ctx);
    let frag = s.frag != 0;
    let df = s.flags & FLAG_DF != 0;
    let ihl = s.old_hdr as usize & 0x3f;
    let l4 = ETH_HLEN + ihl;
    let l4_len = s.payload as usize;
    let fh = if frag { 8 } else { 0 };
    let out_len = IPV6_HLEN + fh + l4_len;
    let pass = |r: Reason| Verdict::new(Action::Pass, r, KIND).0;
    match sub::route(ctx, s, 1, out_len as u32) {
        sub::ROUTE_RESOLVED => s.resolved = 1,
        sub::ROUTE_TOO_BIG => {
            // RFC 7915 4.1: DF set (a fragment too) and "the MTU of the next-hop interface
            // is less than the total length value of the IPv4 packet plus 20":
            // fragmentation needed, MTU - 20. A DF fragment that only its fragment header
            // tips over goes to the kernel, which answers with the route's MTU.
            if df && s.total as u32 + 20 > s.mtu {
                let mtu = frag_needed_mtu_for_ipv6_nexthop(s.mtu, false) as u32;
                return send_error(s, IcmpError::TooBig { mtu }, Reason::TooBig);
            }
            return match XLAT_CONFIG.get(0) {
                Some(cfg) => needs_fragmentation(xdp, cfg),
                None => drop(Reason::XlatNeedsFragmentation).0,
            };
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

    let old = wire::sum_words::<4>(s.src4.as_ptr()) + wire::sum_words::<4>(s.dst4.as_ptr());
    let new = wire::sum_words::<16>(s.src6.as_ptr()) + wire::sum_words::<16>(s.dst6.as_ptr());
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
                if s.flags & FLAG_UDP_ZERO != 0 {
                    if sub::sum::<UDP_SUM_MAX>(ctx, s, l4 as u32, l4_len as u32) != 0 {
                        return drop(Reason::XlatUdpZeroChecksum).0;
                    }
                    let sum = s.sum + new + l4_len as u32 + IPPROTO_UDP as u32;
                    let frame = Frame::new(xdp);
                    let Some(c) = frame.ptr(l4 + 6, 2) else {
                        return drop(Reason::Malformed).0;
                    };
                    put16(c, udp_mangle_zero(!fold(sum)));
                } else {
                    let Some(c) = frame.ptr(l4 + 6, 2) else {
                        return drop(Reason::Malformed).0;
                    };
                    wire::st16(c, udp_mangle_zero(update(wire::ld16(c), old, new)));
                }
            }
            IPPROTO_ICMP => {
                let Some(h) = frame.ptr(l4, 4) else {
                    return drop(Reason::Malformed).0;
                };
                let old_tc = wire::ld16(h) as u32;
                let pseudo = new + l4_len as u32 + IPPROTO_ICMPV6 as u32;
                let c = update(
                    wire::ld16(unsafe { h.add(2) }),
                    old_tc,
                    s.icmp_tc as u32 + pseudo,
                );
                wire::st16(h, s.icmp_tc);
                wire::st16(unsafe { h.add(2) }, c);
            }
            _ => {}
        }
    }

    // Passed to the kernel, the packet keeps its TTL: the kernel decrements it when it
    // forwards.
    let frame = Frame::new(xdp);
    let Some(e) = frame.ptr(0, ETH_HLEN) else {
        return drop(Reason::Malformed).0;
    };
    if s.resolved == 0 {
        s.dmac = Eth(e).dst();
        s.smac = Eth(e).src();
    } else if !XLAT_CONFIG
        .get(0)
        .is_some_and(|cfg| from_frag_path(xdp, cfg))
    {
        s.hop -= 1;
    }
    if s.next == IPPROTO_ICMP {
        s.next = IPPROTO_ICMPV6;
    }
    PROCEED
}

/// An IPv4 packet without DF (or an IPv4 fragment) whose translation does not fit: the
/// fragmentation slow path. XDP cannot turn one packet into two, so the ORIGINAL packet,
/// still unchanged (TTL included), goes to the kernel, which routes it into `vdmmx0`
/// (routes with MTU = lowest IPv6 MTU - 28, installed by `vdmm-ctl natpt`) and fragments
/// it on the way; the fragments arrive on `vdmmx1`, where this program translates each
/// (they fit by construction). One arriving on `vdmmx1` itself that still does not fit
/// (an IPv6 next hop below the lowest IPv6 MTU), or any such packet while no slow path
/// is set up (`frag_ifindex` 0), is dropped: nothing loops, nothing leaks untranslated.
#[inline(always)]
fn needs_fragmentation(ctx: &XdpContext, cfg: &XlatConfig) -> u32 {
    let slow_path = cfg.frag_ifindex;
    if slow_path != 0 && ctx.ingress_ifindex() as u32 != slow_path {
        Verdict::new(Action::Pass, Reason::XlatFragmentedByKernel, KIND).0
    } else {
        drop(Reason::XlatNeedsFragmentation).0
    }
}

/// True for a packet arriving on `vdmmx1`: a fragment the kernel made (and forwarded,
/// decrementing the TTL once already) on the fragmentation slow path.
#[inline(always)]
fn from_frag_path(ctx: &XdpContext, cfg: &XlatConfig) -> bool {
    let slow_path = cfg.frag_ifindex;
    slow_path != 0 && ctx.ingress_ifindex() as u32 == slow_path
}

/// Resizes the frame and writes Ethernet, IPv6 (and fragment) headers from `s`.
#[inline(always)]
fn rewrite(ctx: *mut xdp_md, s: &Scratch) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let fh = if s.frag != 0 { 8 } else { 0 };
    let want = ETH_HLEN + s.total as usize;
    // Ethernet padding cut (the IP packet is inside the frame: `select` checked).
    if !resize_frame(ctx, want) {
        return aborted();
    }
    let delta = (s.old_hdr as i32 & 0xff) - (IPV6_HLEN + fh) as i32;
    if delta != 0 && unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return aborted();
    }
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN + IPV6_HLEN) else {
        return aborted();
    };
    wire::put_ipv6(
        unsafe { p.add(ETH_HLEN) },
        s.tos,
        (fh + s.payload as usize) as u16,
        if s.frag != 0 {
            IPPROTO_FRAGMENT
        } else {
            s.next
        },
        s.hop,
        s.src6.as_ptr(),
        s.dst6.as_ptr(),
    );
    if s.frag != 0 {
        // RFC 7915 4.1: fragment header from the IPv4 fragment fields.
        let Some(f) = frame.ptr(ETH_HLEN + IPV6_HLEN, 8) else {
            return aborted();
        };
        unsafe {
            *f = s.next;
            *f.add(1) = 0;
        }
        put16(unsafe { f.add(2) }, s.frag_word);
        put32(unsafe { f.add(4) }, s.id);
    }
    wire::put_eth(p, s.dmac, s.smac, ETH_P_IPV6);
    if s.resolved != 0 {
        forward::out(ctx, s.ifindex, Reason::Translated, KIND)
    } else {
        Verdict(s.pass_verdict)
    }
}

/// RFC 6791 (here for IPv6): the source of a translated ICMP error from an unmapped
/// IPv4 router: the configured address, else the tunnel config's ICMPv6 source.
#[inline(always)]
fn rfc6791_v6(cfg: &XlatConfig, s: &mut Scratch) -> bool {
    let mut src = cfg.rfc6791_v6.as_ptr();
    if cfg.rfc6791_v6 == [0u8; 16] {
        match config() {
            Some(t) if t.icmp_source_v6 != [0u8; 16] => src = t.icmp_source_v6.as_ptr(),
            _ => return false,
        }
    }
    crate::packet::copy::<16>(s.src6.as_mut_ptr(), src);
    true
}
