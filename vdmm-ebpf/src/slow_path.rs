//! TC egress slow path: encapsulates what the kernel itself sends toward a bound home
//! address. The XDP fast path hands the kernel the packets it cannot finish (IPv4 without
//! DF that must be fragmented, next hops without a neighbour entry). The control plane
//! routes every home prefix into `vdmm0`, a NOARP dummy device, with the tunnel overhead
//! taken off the route's MTU; the kernel forwards such packets there (fragmenting IPv4
//! without DF to that MTU), this program adds the outer header on the device's egress and
//! hands the tunnel packet to `bpf_redirect_neigh` toward the locator, which resolves the
//! next hop's neighbour entry (queueing the packet meanwhile) for every tunnel kind.
//! Packets the gateway originates itself take the same path. The kernel has already
//! decremented the TTL.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::TC_ACT_REDIRECT,
    bindings::{
        __sk_buff, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6,
        BPF_F_ADJ_ROOM_FIXED_GSO, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    helpers::generated::{bpf_check_mtu, bpf_redirect_neigh},
    programs::TcContext,
};
use vdmm_common::{Action, Binding, Reason, TunnelKind};

use crate::{
    binding,
    counters::Verdict,
    forward::{self, Route},
    headers::*,
    packet::Frame,
    tunnel::{Inner, encap::OuterHeader},
};

/// Classifies an outgoing frame and encapsulates it when its destination is bound.
#[inline(always)]
pub fn egress(ctx: &TcContext) -> Verdict {
    // Make the headers linear for direct access (a short packet simply stays short).
    let _ = ctx.pull_data((ETH_HLEN + IPV6_HLEN) as u32);
    let frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let Some(eth) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::pass(Reason::NotIp);
    };
    match Eth(eth).ethertype() {
        ETH_P_IP => {
            let Some(ip) = frame.ptr(ETH_HLEN, IPV4_HLEN) else {
                return Verdict::drop(Reason::Malformed, TunnelKind::None);
            };
            match binding::for_v4(Ipv4(ip).dst_ptr()) {
                Some(b) => encapsulate::<false>(ctx.skb.skb, b),
                None => Verdict::pass(Reason::NoMatch),
            }
        }
        ETH_P_IPV6 => {
            let Some(ip) = frame.ptr(ETH_HLEN, IPV6_HLEN) else {
                return Verdict::drop(Reason::Malformed, TunnelKind::None);
            };
            match binding::for_v6(Ipv6(ip).dst_ptr()) {
                Some(b) => encapsulate::<true>(ctx.skb.skb, b),
                None => Verdict::pass(Reason::NoMatch),
            }
        }
        _ => Verdict::pass(Reason::NotIp),
    }
}

/// Adds the outer header for `binding` in front of the IP packet. One BPF subprogram per
/// inner family.
#[inline(never)]
fn encapsulate<const INNER_V6: bool>(skb: *mut __sk_buff, binding: *const Binding) -> Verdict {
    let ctx = &TcContext::new(skb);
    // SAFETY: a map value pointer from a successful look-up.
    let binding = unsafe { &*binding };
    let frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let outer_v6 = !binding.outer_is_v4();
    let kind = TunnelKind::of(INNER_V6, outer_v6);
    let (inner, inner_len) = if INNER_V6 {
        let Some(p) = frame.ptr(ETH_HLEN, IPV6_HLEN) else {
            return Verdict::drop(Reason::Malformed, kind);
        };
        let ip = Ipv6(p);
        (Inner::V6(ip), IPV6_HLEN + ip.payload_len() as usize)
    } else {
        let Some(p) = frame.ptr(ETH_HLEN, IPV4_HLEN) else {
            return Verdict::drop(Reason::Malformed, kind);
        };
        let ip = Ipv4(p);
        (Inner::V4(ip), ip.total_len() as usize)
    };
    let hdr = if outer_v6 { IPV6_HLEN } else { IPV4_HLEN };
    let outer = OuterHeader::new(&frame, &inner, inner_len, binding);
    let flags = if outer_v6 {
        BPF_F_ADJ_ROOM_ENCAP_L3_IPV6
    } else {
        BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
    };
    // A UDP GSO packet (UDP_SEGMENT) may only grow with its segment size kept: its
    // gso_size is the size of each datagram. The kernel refuses it otherwise (ENOTSUPP),
    // so a refused GSO packet is tried once more that way; the MTU check below then sees
    // the segments as they will leave.
    if ctx
        .adjust_room(hdr as i32, BPF_ADJ_ROOM_MAC, flags as u64)
        .is_err()
        && (unsafe { (*skb).gso_size } == 0
            || ctx
                .adjust_room(
                    hdr as i32,
                    BPF_ADJ_ROOM_MAC,
                    (flags | BPF_F_ADJ_ROOM_FIXED_GSO) as u64,
                )
                .is_err())
    {
        return Verdict::drop(Reason::AdjustFailed, kind);
    }
    let _ = ctx.pull_data((ETH_HLEN + IPV6_HLEN) as u32);
    let frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let Some(p) = frame.ptr(0, ETH_HLEN + IPV6_HLEN) else {
        return Verdict::drop(Reason::AdjustFailed, kind);
    };
    let ethertype = outer.write(unsafe { p.add(ETH_HLEN) }, binding);
    Eth(p).set_ethertype(ethertype);

    // Out toward the locator: the FIB names the interface, the neighbour subsystem the
    // MACs (resolving them if needed).
    let at = if outer_v6 { 0 } else { 12 };
    let (source, locator) = unsafe {
        (
            binding.source.addr.as_ptr().add(at),
            binding.locator.addr.as_ptr().add(at),
        )
    };
    let ifindex = unsafe { (*skb).ifindex };
    let (route, _) = forward::fib_lookup(skb as *mut c_void, ifindex, outer_v6, source, locator, 0);
    let egress = match route {
        Route::Resolved { ifindex, .. } | Route::NoNeighbour { ifindex } => ifindex,
        Route::Unreachable => return Verdict::drop(Reason::FibUnreachable, kind),
        Route::TooBig { .. } | Route::NotForwarded => {
            return Verdict::drop(Reason::FibNotForwarded, kind);
        }
    };
    let mut mtu_len = 0u32;
    if unsafe { bpf_check_mtu(skb as *mut _, egress, &mut mtu_len, 0, 0) } != 0 {
        return Verdict::drop(Reason::TooBig, kind);
    }
    if unsafe { bpf_redirect_neigh(egress, core::ptr::null_mut(), 0, 0) } as i64
        != TC_ACT_REDIRECT as i64
    {
        return Verdict::drop(Reason::FibNotForwarded, kind);
    }
    Verdict::new(Action::Redirect, Reason::Encap, kind)
}
