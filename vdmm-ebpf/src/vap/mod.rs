//! Virtual access points on an AP host (see `vdmm_common::vap`). The program `vdmm_vap`
//! runs on the client-facing interface and handles what clients send; the downlink
//! (packets for a client, also after decapsulation) is part of `vdmm_xdp`:
//!
//! - `report`: a frame from a MAC without a vAP is reported to the agent (ring buffer,
//!   rate-limited per MAC) and passed;
//! - `arp`, `nd`: ARP requests and IPv6 neighbour solicitations of a client for any
//!   address but its own are answered with the vAP MAC (`XDP_TX`);
//! - `uplink`: anti-spoofing (a client may only send from its own addresses), then frames
//!   to the vAP MAC are tunnelled toward the client's anchor or broken out locally;
//! - `deliver`: packets for a client's address get the vAP MAC as source and the client's
//!   as destination and are redirected to its interface, or, while the vAP forwards (a
//!   handover's grace period), tunnelled to the AP host the client moved to;
//! - `stats`: the per-vAP counters;
//! - `cache`: per-CPU first levels of the vAP tables, by client MAC and by address.

pub mod arp;
pub mod cache;
pub mod deliver;
pub mod nd;
pub mod report;
pub mod stats;
pub mod uplink;

use aya_ebpf::programs::XdpContext;
use vdmm_common::{Reason, TunnelKind};

use crate::{
    counters::Verdict,
    headers::{ETH_HLEN, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Eth},
    packet::Frame,
};

/// Handles a frame received on a client-facing interface (`frame_len` bytes on entry).
#[inline(always)]
pub fn from_client(ctx: &XdpContext, frame_len: u64) -> Verdict {
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let eth = Eth(p);
    let client = eth.src();
    let Some(vap) = cache::by_client(client) else {
        return report::unknown_client(ctx.ctx);
    };
    // SAFETY: a map value pointer from a successful look-up.
    let slot = unsafe { (*vap).slot };
    let verdict = match eth.ethertype() {
        ETH_P_ARP => arp::answer(ctx.ctx, vap),
        ETH_P_IP => uplink::ipv4(ctx.ctx, vap),
        ETH_P_IPV6 => uplink::ipv6(ctx.ctx, vap),
        _ => Verdict::pass(Reason::VapNotIp),
    };
    stats::add_from_client(slot, verdict, frame_len);
    verdict
}
