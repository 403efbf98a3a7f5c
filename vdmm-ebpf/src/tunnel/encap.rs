//! Encapsulation toward a binding's locator. The locator's family picks the outer header,
//! the packet's own family the inner, so one binding table serves all four tunnel kinds.
//! The outer header copies DSCP and ECN (RFC 6040 normal mode) and, for IPv4 inner
//! packets, DF (RFC 2003 3.1); an IPv6 outer header gets a flow label hashed from the
//! inner flow (RFC 6438). The inner TTL / hop limit is decremented once, as by any
//! router. Packets that would exceed the egress MTU get an ICMP error, or, IPv4 without DF
//! over an IPv4 underlay, are handed to the kernel to fragment the outer packet.

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_get_prandom_u32, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use vdmm_common::{
    Action, Binding, Reason, TunnelKind,
    flow_hash::{flow_label_v4, flow_label_v6},
};

use super::Inner;
use crate::{
    classify::{valid_ipv4, valid_ipv6},
    counters::Verdict,
    forward::{self, Route},
    headers::*,
    icmp_error::{self, IcmpError},
    maps::outer_hop_limit,
    packet::{Frame, frame_len, get32},
};

/// Smallest MTU an IPv6 link may have (RFC 8200 5).
const IPV6_MIN_MTU: u32 = 1280;

/// Encapsulates the packet after the Ethernet header (IPv6 when `INNER_V6`) toward
/// `binding.locator` and forwards it, counted under `reason` (`encap`, or `reencap` for a
/// packet that arrived through a tunnel). A BPF subprogram of its own, one per inner
/// family.
#[inline(never)]
pub fn encapsulate<const INNER_V6: bool>(
    ctx: *mut xdp_md,
    binding: *const Binding,
    reason: Reason,
) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let frame = &Frame::new(ctx);
    // SAFETY: a map value pointer from a successful look-up.
    let binding = unsafe { &*binding };
    let inner_v6 = INNER_V6;
    let parsed = if INNER_V6 {
        valid_ipv6(frame, ETH_HLEN).map(|(ip, len)| (Inner::V6(ip), len))
    } else {
        valid_ipv4(frame, ETH_HLEN).map(|(ip, len)| (Inner::V4(ip), len))
    };
    let Some((inner, inner_len)) = parsed else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let outer_v6 = !binding.outer_is_v4();
    let kind = TunnelKind::of(inner_v6, outer_v6);
    if inner.hop_limit() <= 1 {
        return icmp_error::reply(
            ctx,
            inner,
            inner_len,
            IcmpError::TimeExceeded,
            Reason::TtlExpired,
            kind,
        );
    }
    let hdr = if outer_v6 { IPV6_HLEN } else { IPV4_HLEN };
    let outer_len = inner_len + hdr;
    if outer_len > 0xffff {
        return Verdict::drop(Reason::Malformed, kind);
    }
    let inner_df = match inner {
        Inner::V4(ip) => ip.dont_fragment(),
        Inner::V6(_) => true,
    };
    // IPv4 addresses sit in the last four bytes of an IpAddrKey.
    let at = if outer_v6 { 0 } else { 12 };
    let source = unsafe { binding.source.addr.as_ptr().add(at) };
    let locator = unsafe { binding.locator.addr.as_ptr().add(at) };
    let route = forward::lookup(ctx, outer_v6, source, locator, outer_len as u16);
    let (ifindex, smac, dmac) = match route {
        Route::Resolved {
            ifindex,
            smac,
            dmac,
        } => (ifindex, smac, dmac),
        Route::TooBig { mtu } => {
            if !inner_df {
                // IPv4 without DF may be fragmented (RFC 2003 5.1, RFC 2473 7.1): the
                // kernel fragments it along its route for the home prefix and the TC
                // egress program encapsulates every fragment, so the decapsulator gets
                // whole tunnel packets.
                return Verdict::new(Action::Pass, Reason::FragmentedByKernel, kind);
            }
            let room = (mtu as u32).saturating_sub(hdr as u32);
            let mtu = if inner_v6 && room < IPV6_MIN_MTU {
                IPV6_MIN_MTU
            } else {
                room
            };
            return icmp_error::reply(
                ctx,
                inner,
                inner_len,
                IcmpError::TooBig { mtu },
                Reason::TooBig,
                kind,
            );
        }
        // The kernel resolves the neighbour; its route for the home prefix and the TC
        // egress program carry this packet (and the next ones, until it is resolved).
        Route::NoNeighbour { .. } => {
            return Verdict::new(Action::Pass, Reason::FibNoNeighbour, kind);
        }
        Route::Unreachable => return Verdict::drop(Reason::FibUnreachable, kind),
        Route::NotForwarded => return Verdict::new(Action::Pass, Reason::FibNotForwarded, kind),
    };

    // Everything the outer header needs, read before the frame moves.
    let outer = OuterHeader::new(frame, &inner, inner_len, binding);
    inner.decrement_hop_limit();

    // Drop Ethernet padding behind the inner packet, then open room for the outer header.
    let excess = frame_len(ctx) - ETH_HLEN - inner_len;
    if excess > 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, -(excess as i32)) } != 0 {
        return Verdict::new(Action::Aborted, Reason::AdjustFailed, kind);
    }
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(hdr as i32)) } != 0 {
        return Verdict::new(Action::Aborted, Reason::AdjustFailed, kind);
    }
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN + IPV6_HLEN) else {
        return Verdict::new(Action::Aborted, Reason::AdjustFailed, kind);
    };
    let ethertype = outer.write(unsafe { p.add(ETH_HLEN) }, binding);
    Eth(p).write(dmac, smac, ethertype);
    forward::out(ctx, ifindex, reason, kind)
}

/// The outer header for one packet, computed from the inner packet before the frame is
/// resized. Shared by the XDP fast path and the TC slow path.
pub struct OuterHeader {
    traffic_class: u8,
    flow_label: u32,
    inner_len: u16,
    protocol: u8,
    outer_v6: bool,
    dont_fragment: bool,
}

impl OuterHeader {
    /// Copies DSCP and ECN (RFC 6040 normal mode), DF for IPv4 inner packets (RFC 2003
    /// 3.1; always set for IPv6 inner), and hashes the flow label (RFC 6438).
    #[inline(always)]
    pub fn new(frame: &Frame, inner: &Inner, inner_len: usize, binding: &Binding) -> Self {
        let outer_v6 = !binding.outer_is_v4();
        let (protocol, dont_fragment) = match inner {
            Inner::V4(ip) => (IPPROTO_IPIP, ip.dont_fragment()),
            Inner::V6(_) => (IPPROTO_IPV6, true),
        };
        Self {
            traffic_class: inner.traffic_class(),
            flow_label: if outer_v6 {
                flow_label(frame, inner)
            } else {
                0
            },
            inner_len: inner_len as u16,
            protocol,
            outer_v6,
            dont_fragment,
        }
    }

    /// Writes the outer IP header at `p` (room for it checked by the caller) and returns
    /// the ethertype for the frame.
    #[inline(always)]
    pub fn write(&self, p: *mut u8, binding: &Binding) -> u16 {
        let hop_limit = outer_hop_limit();
        if self.outer_v6 {
            Ipv6(p).write(
                self.traffic_class,
                self.flow_label,
                self.inner_len,
                self.protocol,
                hop_limit,
                binding.source.addr.as_ptr(),
                binding.locator.addr.as_ptr(),
            );
            ETH_P_IPV6
        } else {
            // RFC 6864: the identification only matters for packets that may be
            // fragmented.
            let (id, frag_word) = if self.dont_fragment {
                (0, IP_DF)
            } else {
                (unsafe { bpf_get_prandom_u32() } as u16, 0)
            };
            Ipv4(p).write(
                self.traffic_class,
                self.inner_len + IPV4_HLEN as u16,
                id,
                frag_word,
                hop_limit,
                self.protocol,
                unsafe { binding.source.addr.as_ptr().add(12) },
                unsafe { binding.locator.addr.as_ptr().add(12) },
            );
            ETH_P_IP
        }
    }
}

/// RFC 6438 flow label of the inner packet: addresses, protocol and, for unfragmented TCP
/// and UDP, the ports.
#[inline(always)]
fn flow_label(frame: &Frame, inner: &Inner) -> u32 {
    match inner {
        Inner::V4(ip) => {
            let protocol = ip.protocol();
            let ports = if (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) && !ip.is_fragment()
            {
                ports_at(frame, ETH_HLEN + ip.ihl())
            } else {
                0
            };
            flow_label_v4(ip.src_word(), ip.dst_word(), protocol, ports)
        }
        Inner::V6(ip) => {
            let nh = ip.next_header();
            let ports = if nh == IPPROTO_TCP || nh == IPPROTO_UDP {
                ports_at(frame, ETH_HLEN + IPV6_HLEN)
            } else {
                0
            };
            flow_label_v6(ip.addr_words(8), ip.addr_words(24), nh, ports)
        }
    }
}

/// Source and destination port as one word, or 0 if the transport header is cut off.
#[inline(always)]
fn ports_at(frame: &Frame, off: usize) -> u32 {
    match frame.ptr(off, 4) {
        Some(p) => get32(p),
        None => 0,
    }
}
