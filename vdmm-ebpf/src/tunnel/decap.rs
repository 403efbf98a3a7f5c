//! Decapsulation of tunnel packets addressed to a local endpoint. Only configured peers
//! may send them (an open decapsulator lets anyone inject packets behind it,
//! CVE-2020-10136); fragments are not reassembled; the inner packet is validated, its
//! ECN combined per RFC 6040 and its TTL / hop limit decremented before it is forwarded.

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use vdmm_common::{Action, Reason, TunnelKind};

use super::{Inner, addresses::is_peer, ecn};
use crate::{
    binding,
    classify::{valid_ipv4, valid_ipv6},
    counters::Verdict,
    forward::{self, Route},
    headers::*,
    packet::{Frame, frame_len, key_v4, key_v6},
    vap::deliver::vap_of,
};

/// IPv6 extension headers walked in front of the tunnel header.
const MAX_EXTENSION_HEADERS: usize = 4;

/// A tunnel packet with an IPv4 outer header (protocol 4 or 41) for a local endpoint.
/// A BPF subprogram of its own (keeps the verifier's work and the stack per call small).
#[inline(never)]
pub fn from_ipv4(ctx: *mut xdp_md) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let frame = &Frame::new(ctx);
    let Some((outer, _)) = valid_ipv4(frame, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let inner_v6 = outer.protocol() == IPPROTO_IPV6;
    let kind = TunnelKind::of(inner_v6, false);
    if outer.is_fragment() {
        return Verdict::drop(Reason::OuterFragment, kind);
    }
    if !is_peer(&key_v4(outer.src_ptr())) {
        return Verdict::drop(Reason::NotPeer, kind);
    }
    let ihl = outer.ihl();
    let payload = outer.total_len() as usize - ihl;
    if inner_v6 {
        finish::<true>(ctx, frame, ETH_HLEN + ihl, payload, outer.tos(), kind)
    } else {
        finish::<false>(ctx, frame, ETH_HLEN + ihl, payload, outer.tos(), kind)
    }
}

/// What [`from_ipv6`] returns for a packet that turns out not to be a tunnel packet.
pub const NOT_A_TUNNEL: Verdict = Verdict(u32::MAX);
/// What the decapsulators return after stripping the outer header of a packet whose
/// inner (IPv4 / IPv6) destination has a binding: the caller encapsulates it again.
pub const REENCAP_V4: Verdict = Verdict(u32::MAX - 1);
pub const REENCAP_V6: Verdict = Verdict(u32::MAX - 2);

/// A packet with an IPv6 outer header for a local endpoint. Returns [`NOT_A_TUNNEL`] when
/// it turns out not to be a tunnel packet (after the extension headers comes something
/// else). A BPF subprogram of its own.
#[inline(never)]
pub fn from_ipv6(ctx: *mut xdp_md) -> Verdict {
    match from_ipv6_inner(ctx) {
        Some(v) => v,
        None => NOT_A_TUNNEL,
    }
}

#[inline(always)]
fn from_ipv6_inner(ctx: *mut xdp_md) -> Option<Verdict> {
    let ctx = &XdpContext::new(ctx);
    let frame = &Frame::new(ctx);
    let Some((outer, _)) = valid_ipv6(frame, ETH_HLEN) else {
        return Some(Verdict::drop(Reason::Malformed, TunnelKind::None));
    };
    let mut nh = outer.next_header();
    let mut off = ETH_HLEN + IPV6_HLEN;
    let mut i = 0;
    while i < MAX_EXTENSION_HEADERS {
        match nh {
            IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING => {
                let Some(p) = frame.ptr(off, 8) else {
                    return Some(Verdict::drop(Reason::Malformed, TunnelKind::None));
                };
                let (next, len, segments_left) = unsafe { (*p, *p.add(1), *p.add(3)) };
                if nh == IPPROTO_ROUTING && segments_left != 0 {
                    // Not the final destination: a routing header still steering the
                    // packet elsewhere is not ours to decapsulate.
                    return Some(Verdict::drop(
                        Reason::Ipv6ExtensionHeaders,
                        TunnelKind::None,
                    ));
                }
                nh = next;
                off += (len as usize + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some(p) = frame.ptr(off, 8) else {
                    return Some(Verdict::drop(Reason::Malformed, TunnelKind::None));
                };
                let next = unsafe { *p };
                if next == IPPROTO_IPIP || next == IPPROTO_IPV6 {
                    let kind = TunnelKind::of(next == IPPROTO_IPV6, true);
                    return Some(Verdict::drop(Reason::OuterFragment, kind));
                }
                return None;
            }
            _ => break,
        }
        i += 1;
    }
    let inner_v6 = match nh {
        IPPROTO_IPIP => false,
        IPPROTO_IPV6 => true,
        IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT => {
            return Some(Verdict::drop(
                Reason::Ipv6ExtensionHeaders,
                TunnelKind::None,
            ));
        }
        _ => return None,
    };
    let kind = TunnelKind::of(inner_v6, true);
    if !is_peer(&key_v6(outer.src_ptr())) {
        return Some(Verdict::drop(Reason::NotPeer, kind));
    }
    let end = ETH_HLEN + IPV6_HLEN + outer.payload_len() as usize;
    if off > end {
        return Some(Verdict::drop(Reason::Malformed, kind));
    }
    let tc = outer.traffic_class();
    Some(if inner_v6 {
        finish::<true>(ctx, frame, off, end - off, tc, kind)
    } else {
        finish::<false>(ctx, frame, off, end - off, tc, kind)
    })
}

/// Validates the inner packet at `off` (carried in `payload` bytes of outer payload),
/// applies RFC 6040 and the TTL decrement, strips everything in front of it and forwards.
/// One copy per inner family, so the verifier sees each family's bounds checks on its own
/// path.
#[inline(always)]
fn finish<const INNER_V6: bool>(
    ctx: &XdpContext,
    frame: &Frame,
    off: usize,
    payload: usize,
    outer_tc: u8,
    kind: TunnelKind,
) -> Verdict {
    let inner_v6 = INNER_V6;
    let parsed = if inner_v6 {
        valid_ipv6(frame, off).map(|(ip, len)| (Inner::V6(ip), len))
    } else {
        valid_ipv4(frame, off).map(|(ip, len)| (Inner::V4(ip), len))
    };
    let Some((inner, inner_len)) = parsed else {
        return Verdict::drop(Reason::Malformed, kind);
    };
    if inner_len > payload {
        return Verdict::drop(Reason::Malformed, kind);
    }
    let tc = inner.traffic_class();
    let Some(ecn) = ecn::decapsulate(outer_tc & 3, tc & 3) else {
        return Verdict::drop(Reason::EcnCeNotEct, kind);
    };
    if inner.hop_limit() <= 1 {
        return Verdict::drop(Reason::TtlExpired, kind);
    }
    let (src, dst) = match inner {
        Inner::V4(ip) => (ip.src_ptr(), ip.dst_ptr()),
        Inner::V6(ip) => (ip.src_ptr(), ip.dst_ptr()),
    };
    if ecn != tc & 3 {
        inner.set_traffic_class((tc & !3) | ecn);
    }
    // A vAP client's address: delivered (or forwarded) by the caller after the strip,
    // which looks the vAP up again (then in this CPU's first-level cache).
    let vap = if INNER_V6 {
        vap_of(&key_v6(dst)).is_some()
    } else {
        vap_of(&key_v4(dst)).is_some()
    };
    if vap {
        return match strip(ctx, off, inner_len, INNER_V6, kind) {
            Ok(()) => Verdict(crate::vap::deliver::DELIVER | (INNER_V6 as u32) << 4 | kind as u32),
            Err(v) => v,
        };
    }
    // Bound inner destination: re-encapsulation. Strip the outer header here; the
    // encapsulation that follows decrements the TTL once.
    let rebound = if INNER_V6 {
        binding::for_v6(dst).is_some()
    } else {
        binding::for_v4(dst).is_some()
    };
    if rebound {
        return match strip(ctx, off, inner_len, INNER_V6, kind) {
            Ok(()) => {
                if INNER_V6 {
                    REENCAP_V6
                } else {
                    REENCAP_V4
                }
            }
            Err(v) => v,
        };
    }
    let route = forward::lookup(ctx, inner_v6, src, dst, inner_len as u16);
    if let Route::Unreachable = route {
        return Verdict::drop(Reason::FibUnreachable, kind);
    }
    // Forwarded here: this router's TTL decrement. Passed up: the kernel's forwarding
    // decrements it (once).
    if let Route::Resolved { .. } = route {
        inner.decrement_hop_limit();
    }

    if let Err(v) = strip(ctx, off, inner_len, INNER_V6, kind) {
        return v;
    }
    let frame = Frame::new(ctx);
    let Some(eth) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::new(Action::Aborted, Reason::AdjustFailed, kind);
    };
    let eth = Eth(eth);
    match route {
        Route::Resolved {
            ifindex,
            smac,
            dmac,
        } => {
            eth.write(dmac, smac, eth.ethertype());
            forward::out(ctx, ifindex, Reason::Decap, kind)
        }
        _ => {
            // The received MACs stay, so the kernel takes the frame as addressed to
            // this host and forwards the inner packet itself.
            let reason = match route {
                // Larger than the egress MTU: the kernel fragments it or sends the ICMP
                // error toward the inner source.
                Route::TooBig { .. } => Reason::TooBig,
                Route::NoNeighbour { .. } => Reason::FibNoNeighbour,
                _ => Reason::FibNotForwarded,
            };
            Verdict::new(Action::Pass, reason, kind)
        }
    }
}

/// Removes everything between the Ethernet header and the inner packet at `off` (and any
/// padding behind the inner packet's `inner_len` bytes), keeping the received MACs and
/// setting the inner family's ethertype.
#[inline(always)]
fn strip(
    ctx: &XdpContext,
    off: usize,
    inner_len: usize,
    inner_v6: bool,
    kind: TunnelKind,
) -> Result<(), Verdict> {
    let frame = Frame::new(ctx);
    let Some(old) = frame.ptr(0, ETH_HLEN) else {
        return Err(Verdict::drop(Reason::Malformed, kind));
    };
    let (dmac, smac) = (Eth(old).dst(), Eth(old).src());
    let excess = frame_len(ctx) - off - inner_len;
    if excess > 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, -(excess as i32)) } != 0 {
        return Err(Verdict::new(Action::Aborted, Reason::AdjustFailed, kind));
    }
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, (off - ETH_HLEN) as i32) } != 0 {
        return Err(Verdict::new(Action::Aborted, Reason::AdjustFailed, kind));
    }
    let frame = Frame::new(ctx);
    let Some(eth) = frame.ptr(0, ETH_HLEN) else {
        return Err(Verdict::new(Action::Aborted, Reason::AdjustFailed, kind));
    };
    Eth(eth).write(dmac, smac, if inner_v6 { ETH_P_IPV6 } else { ETH_P_IP });
    Ok(())
}
