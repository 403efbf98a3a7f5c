//! First look at a frame: Ethernet and IP header validation, then the choice of action:
//! a tunnel packet for a local endpoint is decapsulated, a packet for a bound home
//! address is encapsulated, a packet for a vAP client's address is delivered to it (see
//! `vap::deliver`), anything else is left to the kernel.

use aya_ebpf::programs::XdpContext;
use vdmm_common::{Reason, TunnelKind};

use crate::{
    binding,
    counters::Verdict,
    headers::*,
    packet::{Frame, key_v4, key_v6},
    translate,
    tunnel::{
        self,
        addresses::is_endpoint,
        decap::{NOT_A_TUNNEL, REENCAP_V4, REENCAP_V6},
    },
    vap::deliver::{self, DELIVER, vap_of, vap_of_in_line},
};

/// Classifies the frame and acts on it.
#[inline(always)]
pub fn process(ctx: &XdpContext) -> Verdict {
    let frame = Frame::new(ctx);
    let Some(eth) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    match Eth(eth).ethertype() {
        ETH_P_IP => ipv4(ctx, &frame),
        ETH_P_IPV6 => ipv6(ctx, &frame),
        ETH_P_8021Q | ETH_P_8021AD => Verdict::pass(Reason::VlanTagged),
        _ => Verdict::pass(Reason::NotIp),
    }
}

/// Validates an IPv4 header at `off`: version 4, IHL >= 5, header and total length
/// inside the frame. Returns the header view and its total length.
#[inline(always)]
pub fn valid_ipv4(frame: &Frame, off: usize) -> Option<(Ipv4, usize)> {
    let ip = Ipv4(frame.ptr(off, IPV4_HLEN)?);
    let ihl = ip.ihl();
    let total = ip.total_len() as usize;
    if ip.version() != 4 || ihl < IPV4_HLEN || total < ihl || !frame.has(off, total) {
        return None;
    }
    Some((ip, total))
}

/// Validates an IPv6 header at `off`: version 6, payload inside the frame. Returns the
/// header view and its total length (header + payload).
#[inline(always)]
pub fn valid_ipv6(frame: &Frame, off: usize) -> Option<(Ipv6, usize)> {
    let ip = Ipv6(frame.ptr(off, IPV6_HLEN)?);
    let total = IPV6_HLEN + ip.payload_len() as usize;
    if ip.version() != 6 || !frame.has(off, total) {
        return None;
    }
    Some((ip, total))
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, frame: &Frame) -> Verdict {
    let Some((ip, _)) = valid_ipv4(frame, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let protocol = ip.protocol();
    if (protocol == IPPROTO_IPIP || protocol == IPPROTO_IPV6) && is_endpoint(&key_v4(ip.dst_ptr()))
    {
        return reencapsulate(ctx, tunnel::decap::from_ipv4(ctx.ctx));
    }
    if let Some(vap) = vap_of_in_line(&key_v4(ip.dst_ptr())) {
        return deliver::to_client::<false>(ctx.ctx, vap, TunnelKind::None as u32);
    }
    match binding::for_v4(ip.dst_ptr()) {
        Some(binding) => tunnel::encap::encapsulate::<false>(ctx.ctx, binding, Reason::Encap),
        // Stateless translation (pass no_match when the destination does not map).
        None => translate::from_ipv4(ctx.ctx),
    }
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, frame: &Frame) -> Verdict {
    let Some((ip, _)) = valid_ipv6(frame, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let nh = ip.next_header();
    let maybe_tunnel = matches!(
        nh,
        IPPROTO_IPIP
            | IPPROTO_IPV6
            | IPPROTO_HOPOPTS
            | IPPROTO_DSTOPTS
            | IPPROTO_ROUTING
            | IPPROTO_FRAGMENT
    );
    if maybe_tunnel && is_endpoint(&key_v6(ip.dst_ptr())) {
        let v = tunnel::decap::from_ipv6(ctx.ctx);
        if v.0 != NOT_A_TUNNEL.0 {
            return reencapsulate(ctx, v);
        }
    }
    if let Some(vap) = vap_of_in_line(&key_v6(ip.dst_ptr())) {
        return deliver::to_client::<true>(ctx.ctx, vap, TunnelKind::None as u32);
    }
    match binding::for_v6(ip.dst_ptr()) {
        Some(binding) => tunnel::encap::encapsulate::<true>(ctx.ctx, binding, Reason::Encap),
        None => translate::from_ipv6(ctx.ctx),
    }
}

/// After decapsulation: a packet whose inner destination has a binding of its own (the
/// decapsulator stripped the outer header and said so) is encapsulated again toward that
/// binding's locator, possibly in the other family (the transition gateway's
/// re-encapsulation); one for a vAP client is delivered to it. Every other verdict is
/// returned as it is.
#[inline(always)]
fn reencapsulate(ctx: &XdpContext, decap: Verdict) -> Verdict {
    if decap.0 & 0xffff_ff00 == DELIVER {
        return deliver_decapsulated(ctx, decap.0 & 0x10 != 0, decap.0 & 0xf);
    }
    let inner_v6 = if decap.0 == REENCAP_V4.0 {
        false
    } else if decap.0 == REENCAP_V6.0 {
        true
    } else {
        return decap;
    };
    let frame = Frame::new(ctx);
    if inner_v6 {
        let Some(p) = frame.ptr(ETH_HLEN, IPV6_HLEN) else {
            return Verdict::drop(Reason::Malformed, TunnelKind::None);
        };
        match binding::for_v6(Ipv6(p).dst_ptr()) {
            Some(b) => tunnel::encap::encapsulate::<true>(ctx.ctx, b, Reason::Reencap),
            None => Verdict::drop(Reason::Malformed, TunnelKind::None),
        }
    } else {
        let Some(p) = frame.ptr(ETH_HLEN, IPV4_HLEN) else {
            return Verdict::drop(Reason::Malformed, TunnelKind::None);
        };
        match binding::for_v4(Ipv4(p).dst_ptr()) {
            Some(b) => tunnel::encap::encapsulate::<false>(ctx.ctx, b, Reason::Reencap),
            None => Verdict::drop(Reason::Malformed, TunnelKind::None),
        }
    }
}

/// After decapsulation of a packet for a vAP client (`kind` is the tunnel's).
#[inline(always)]
fn deliver_decapsulated(ctx: &XdpContext, inner_v6: bool, kind: u32) -> Verdict {
    let frame = Frame::new(ctx);
    let vap = if inner_v6 {
        frame
            .ptr(ETH_HLEN, IPV6_HLEN)
            .and_then(|p| vap_of(&key_v6(Ipv6(p).dst_ptr())))
    } else {
        frame
            .ptr(ETH_HLEN, IPV4_HLEN)
            .and_then(|p| vap_of(&key_v4(Ipv4(p).dst_ptr())))
    };
    match (vap, inner_v6) {
        (Some(v), true) => deliver::to_client::<true>(ctx.ctx, v, kind),
        (Some(v), false) => deliver::to_client::<false>(ctx.ctx, v, kind),
        // Removed between the two look-ups.
        (None, _) => Verdict::drop(Reason::Malformed, TunnelKind::None),
    }
}
