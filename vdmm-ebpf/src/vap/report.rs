//! Reports of unknown clients: a frame from a MAC without a vAP on a client-facing
//! interface becomes a `VapEvent` in the ring buffer `VDMM_VAP_EVENTS`, at most one per
//! MAC and `VAP_REPORT_INTERVAL_NS` (`VDMM_VAP_SEEN` remembers when a MAC was last
//! reported), so that the agent can create a vAP for it. The frame itself is passed.

use aya_ebpf::{bindings::xdp_md, helpers::generated::bpf_ktime_get_ns, programs::XdpContext};
use vdmm_common::{
    IpAddrKey, Reason,
    vap::{VAP_EVENT_UNKNOWN_CLIENT, VAP_REPORT_INTERVAL_NS, VapEvent},
};

use crate::{
    counters::Verdict,
    headers::*,
    maps::{VAP_EVENTS, VAP_SEEN},
    packet::{frame_of, key_v4, key_v6},
};

/// Offset of the sender protocol address in an ARP packet for IPv4 over Ethernet.
const ARP_SPA: usize = 14;

/// Reports the frame's source MAC (when not reported within the interval) and passes the
/// frame. A BPF subprogram of its own.
#[inline(never)]
pub fn unknown_client(ctx: *mut xdp_md) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let frame = frame_of(ctx.ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::pass(Reason::VapUnknownClient);
    };
    let eth = Eth(p);
    let mac = eth.src();
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(last) = VAP_SEEN.get_ptr(&mac) {
        // SAFETY: map value of a successful look-up.
        if now.wrapping_sub(unsafe { *last }) < VAP_REPORT_INTERVAL_NS {
            return Verdict::pass(Reason::VapUnknownClient);
        }
    }
    let ethertype = eth.ethertype();
    let addr = match ethertype {
        ETH_P_IP => frame
            .ptr(ETH_HLEN, IPV4_HLEN)
            .map(|p| key_v4(Ipv4(p).src_ptr())),
        ETH_P_IPV6 => frame
            .ptr(ETH_HLEN, IPV6_HLEN)
            .map(|p| key_v6(Ipv6(p).src_ptr())),
        ETH_P_ARP => frame
            .ptr(ETH_HLEN + ARP_SPA, 4)
            .map(|p| key_v4(p as *const u8)),
        _ => None,
    };
    if let Some(mut entry) = VAP_EVENTS.reserve::<VapEvent>(0) {
        entry.write(VapEvent {
            time_ns: now,
            client_mac: mac,
            kind: VAP_EVENT_UNKNOWN_CLIENT,
            ifindex: ctx.ingress_ifindex() as u32,
            ethertype: ethertype as u32,
            _reserved: 0,
            addr: addr.unwrap_or(IpAddrKey { addr: [0; 16] }),
        });
        entry.submit(0);
        let _ = VAP_SEEN.insert(&mac, &now, 0);
    }
    Verdict::pass(Reason::VapUnknownClient)
}
