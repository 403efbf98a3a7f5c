//! What a client sends: anti-spoofing first (the source must be the client's own address;
//! the unspecified address, and for IPv6 a link-local one, only toward the link, never
//! routed), then frames to the vAP MAC leave toward the network: encapsulated toward the
//! client's home anchor (the tunnel code of `vdmm_xdp`, with the vAP's anchor as the
//! binding) or, with local breakout, routed by the AP host (`bpf_fib_lookup`). Frames to
//! other MACs are passed to the kernel and counted.
//!
//! Frames the FIB cannot finish here (no neighbour yet, not forwarded, IPv4 without DF
//! that needs fragmenting) are passed to the kernel with the AP host's own MAC as their
//! destination, so the kernel routes them by its own tables.

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use vdmm_common::{
    Action, Reason, TunnelKind,
    vap::{VAP_BREAKOUT, VAP_HAS_V4, VAP_HAS_V6, Vap, is_group},
};

use super::nd::{self, ICMPV6_NEIGHBOUR_SOLICITATION, is_link_local, is_unspecified, same16};
use crate::{
    classify::{valid_ipv4, valid_ipv6},
    counters::Verdict,
    forward::{self, Route},
    headers::*,
    icmp_error::{self, IcmpError},
    packet::{frame_of, word},
    tunnel::{Inner, encap::encapsulate},
};

/// An IPv4 frame from the vAP's client. A BPF subprogram of its own.
#[inline(never)]
pub fn ipv4(ctx: *mut xdp_md, vap: *const Vap) -> Verdict {
    let frame = frame_of(ctx);
    // SAFETY: a map value pointer from a successful look-up.
    let v = unsafe { &*vap };
    let (Some(eth), Some((ip, _))) = (frame.ptr(0, ETH_HLEN), valid_ipv4(&frame, ETH_HLEN)) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let dst_mac = Eth(eth).dst();
    let src = ip.src_word();
    if !(v.has(VAP_HAS_V4) && word(ip.src_ptr()) == word(v.ipv4.as_ptr())) {
        // DHCP and other link traffic from 0.0.0.0 is not routed; anything else is spoofed.
        if src == 0 && is_group(dst_mac) {
            return Verdict::pass(Reason::VapMulticast);
        }
        return Verdict::drop(Reason::VapSpoofed, TunnelKind::None);
    }
    if dst_mac != v.vap_mac {
        return link_traffic(dst_mac);
    }
    let verdict = if v.has(VAP_BREAKOUT) {
        breakout::<false>(ctx)
    } else {
        encapsulate::<false>(ctx, &v.anchor, Reason::VapUplink)
    };
    to_kernel_if_passed(ctx, vap, verdict)
}

/// An IPv6 frame from the vAP's client. A BPF subprogram of its own.
#[inline(never)]
pub fn ipv6(ctx: *mut xdp_md, vap: *const Vap) -> Verdict {
    let frame = frame_of(ctx);
    // SAFETY: a map value pointer from a successful look-up.
    let v = unsafe { &*vap };
    let (Some(eth), Some((ip, _))) = (frame.ptr(0, ETH_HLEN), valid_ipv6(&frame, ETH_HLEN)) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    if ip.next_header() == IPPROTO_ICMPV6
        && let Some(icmp) = frame.ptr(ETH_HLEN + IPV6_HLEN, 1)
        && unsafe { *icmp } == ICMPV6_NEIGHBOUR_SOLICITATION
    {
        return nd::answer(ctx, vap);
    }
    let dst_mac = Eth(eth).dst();
    let src = ip.src_ptr();
    let own = v.has(VAP_HAS_V6) && same16(src, v.ipv6.as_ptr());
    if !own {
        if !is_link_local(src) && !is_unspecified(src) {
            return Verdict::drop(Reason::VapSpoofed, TunnelKind::None);
        }
        if dst_mac == v.vap_mac {
            return Verdict::drop(Reason::VapLinkLocal, TunnelKind::None);
        }
        return link_traffic(dst_mac);
    }
    if dst_mac != v.vap_mac {
        return link_traffic(dst_mac);
    }
    let dst = ip.dst_ptr();
    if is_link_local(dst) || unsafe { *dst } == 0xff {
        return Verdict::drop(Reason::VapLinkLocal, TunnelKind::None);
    }
    let verdict = if v.has(VAP_BREAKOUT) {
        breakout::<true>(ctx)
    } else {
        encapsulate::<true>(ctx, &v.anchor, Reason::VapUplink)
    };
    to_kernel_if_passed(ctx, vap, verdict)
}

/// A frame from the client that is not for its vAP: multicast / broadcast, or unicast to
/// another MAC. Passed.
#[inline(always)]
fn link_traffic(dst_mac: u64) -> Verdict {
    if is_group(dst_mac) {
        Verdict::pass(Reason::VapMulticast)
    } else {
        Verdict::pass(Reason::VapPassed)
    }
}

/// A frame the uplink passes to the kernel still has the vAP MAC as its destination,
/// which the kernel would discard as another host's: it gets the AP host's MAC.
#[inline(always)]
fn to_kernel_if_passed(ctx: *mut xdp_md, vap: *const Vap, verdict: Verdict) -> Verdict {
    if verdict.action() != Action::Pass as u32 {
        return verdict;
    }
    let frame = frame_of(ctx);
    if let Some(eth) = frame.ptr(0, ETH_HLEN) {
        let eth = Eth(eth);
        // SAFETY: as above.
        let host_mac = unsafe { (*vap).host_mac };
        eth.write(host_mac, eth.src(), eth.ethertype());
    }
    verdict
}

/// Local breakout: the AP host routes the packet itself. A BPF subprogram per family.
#[inline(never)]
fn breakout<const V6: bool>(ctx: *mut xdp_md) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let frame = &frame_of(ctx.ctx);
    let parsed = if V6 {
        valid_ipv6(frame, ETH_HLEN).map(|(ip, len)| (Inner::V6(ip), len))
    } else {
        valid_ipv4(frame, ETH_HLEN).map(|(ip, len)| (Inner::V4(ip), len))
    };
    let Some((ip, len)) = parsed else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let kind = TunnelKind::None;
    if ip.hop_limit() <= 1 {
        return icmp_error::reply(
            ctx,
            ip,
            len,
            IcmpError::TimeExceeded,
            Reason::TtlExpired,
            kind,
        );
    }
    let (src, dst, df) = match ip {
        Inner::V4(h) => (h.src_ptr(), h.dst_ptr(), h.dont_fragment()),
        Inner::V6(h) => (h.src_ptr(), h.dst_ptr(), true),
    };
    match forward::lookup(ctx, V6, src, dst, len as u16) {
        Route::Resolved {
            ifindex,
            smac,
            dmac,
        } => {
            ip.decrement_hop_limit();
            let Some(eth) = frame.ptr(0, ETH_HLEN) else {
                return Verdict::drop(Reason::Malformed, kind);
            };
            let eth = Eth(eth);
            eth.write(dmac, smac, eth.ethertype());
            forward::out(ctx, ifindex, Reason::VapBreakout, kind)
        }
        Route::TooBig { mtu } if df => icmp_error::reply(
            ctx,
            ip,
            len,
            IcmpError::TooBig { mtu: mtu as u32 },
            Reason::TooBig,
            kind,
        ),
        Route::TooBig { .. } => Verdict::new(Action::Pass, Reason::TooBig, kind),
        Route::NoNeighbour { .. } => Verdict::new(Action::Pass, Reason::FibNoNeighbour, kind),
        Route::Unreachable => Verdict::drop(Reason::FibUnreachable, kind),
        Route::NotForwarded => Verdict::new(Action::Pass, Reason::FibNotForwarded, kind),
    }
}
