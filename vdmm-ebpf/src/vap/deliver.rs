//! The downlink of a vAP (in `vdmm_xdp`): a packet for a client's address, received
//! directly or decapsulated from the anchor's tunnel, gets the vAP MAC as its source and
//! the client's MAC as its destination, its TTL / hop limit decremented (the vAP is the
//! client's router), and is redirected to the client's interface. While the vAP forwards
//! (`VAP_FORWARD`, a handover's grace period) it is encapsulated toward the AP host the
//! client moved to instead.

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use vdmm_common::{
    Action, IpAddrKey, Reason, TunnelKind,
    vap::{VAP_FORWARD, Vap, VapCounter},
};

use super::stats;
use crate::{
    classify::{valid_ipv4, valid_ipv6},
    counters::Verdict,
    forward,
    headers::*,
    icmp_error::{self, IcmpError},
    packet::{frame_len, frame_of},
    tunnel::{Inner, encap::encapsulate},
};

/// What the decapsulator returns after stripping the outer header of a packet for a vAP
/// client: `DELIVER | inner_v6 << 4 | tunnel kind`; the caller calls [`to_client`].
pub const DELIVER: u32 = 0xffff_fe00;

/// The vAP whose client has the address `key`, if any (through the first-level cache).
#[inline(always)]
pub fn vap_of(key: &IpAddrKey) -> Option<*const Vap> {
    super::cache::by_addr(key)
}

/// [`vap_of`] with the cache's hit path in line (see `cache::by_addr_in_line`).
#[inline(always)]
pub fn vap_of_in_line(key: &IpAddrKey) -> Option<*const Vap> {
    super::cache::by_addr_in_line(key)
}

/// Delivers the packet after the Ethernet header (IPv6 when `V6`) to the vAP's client, or
/// forwards it; `kind` is the tunnel it arrived through. A BPF subprogram per family.
#[inline(never)]
pub fn to_client<const V6: bool>(ctx: *mut xdp_md, vap: *const Vap, kind: u32) -> Verdict {
    let xdp = &XdpContext::new(ctx);
    // SAFETY: a map value pointer from a successful look-up.
    let v = unsafe { &*vap };
    let kind = tunnel_kind(kind);
    let bytes = frame_len(xdp) as u64;
    if v.has(VAP_FORWARD) {
        let verdict = encapsulate::<V6>(ctx, &v.forward, Reason::VapForward);
        if verdict.reason() == Reason::VapForward as u32
            && verdict.action() != Action::Aborted as u32
        {
            stats::add(v.slot, VapCounter::Forwarded, bytes);
        }
        return verdict;
    }
    let frame = &frame_of(ctx);
    let parsed = if V6 {
        valid_ipv6(frame, ETH_HLEN).map(|(ip, len)| (Inner::V6(ip), len))
    } else {
        valid_ipv4(frame, ETH_HLEN).map(|(ip, len)| (Inner::V4(ip), len))
    };
    let Some((ip, len)) = parsed else {
        return Verdict::drop(Reason::Malformed, kind);
    };
    if ip.hop_limit() <= 1 {
        return icmp_error::reply(
            xdp,
            ip,
            len,
            IcmpError::TimeExceeded,
            Reason::TtlExpired,
            kind,
        );
    }
    ip.decrement_hop_limit();
    let Some(eth) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, kind);
    };
    Eth(eth).write(
        v.client_mac,
        v.vap_mac,
        if V6 { ETH_P_IPV6 } else { ETH_P_IP },
    );
    let verdict = forward::out(xdp, v.ifindex, Reason::VapDeliver, kind);
    if verdict.action() != Action::Aborted as u32 {
        stats::add(v.slot, VapCounter::Delivered, bytes);
    }
    verdict
}

#[inline(always)]
fn tunnel_kind(k: u32) -> TunnelKind {
    match k {
        1 => TunnelKind::Ip4in4,
        2 => TunnelKind::Ip6in4,
        3 => TunnelKind::Ip4in6,
        4 => TunnelKind::Ip6in6,
        _ => TunnelKind::None,
    }
}
