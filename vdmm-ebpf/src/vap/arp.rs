//! ARP (RFC 826) on the client side of a vAP: a request from the client for any IPv4
//! address but its own is answered with the vAP MAC, so whatever gateway address the
//! client was given resolves to its vAP. The sender fields must be the client's own (or
//! the unspecified address of an address probe, RFC 5227); anything else is dropped as
//! spoofed. Replies, probes and announcements for the client's own address are passed.

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use vdmm_common::{
    Action, Reason, TunnelKind,
    vap::{VAP_HAS_V4, Vap},
};

use crate::{
    counters::Verdict,
    headers::*,
    packet::{copy, frame_of, get_mac, get16, get32, put_mac, put16, word},
};

/// ARP for IPv4 over Ethernet: fixed 28 bytes.
const ARP_LEN: usize = 28;
const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
// Field offsets: sender hardware / protocol address, target hardware / protocol address.
const SHA: usize = 8;
const SPA: usize = 14;
const THA: usize = 18;
const TPA: usize = 24;

/// Answers or passes an ARP frame from the vAP's client. A BPF subprogram of its own.
#[inline(never)]
pub fn answer(ctx: *mut xdp_md, vap: *const Vap) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let frame = frame_of(ctx.ctx);
    // SAFETY: a map value pointer from a successful look-up.
    let vap = unsafe { &*vap };
    let Some(arp) = frame.ptr(ETH_HLEN, ARP_LEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let at = |off: usize| unsafe { arp.add(off) };
    let ipv4_over_ethernet = get32(arp) == ((ARP_HTYPE_ETHERNET as u32) << 16 | ETH_P_IP as u32)
        && get16(at(4)) == 0x0604;
    if !ipv4_over_ethernet {
        return Verdict::pass(Reason::VapPassed);
    }
    let sender = word(at(SPA));
    let own = word(vap.ipv4.as_ptr());
    let has_v4 = vap.has(VAP_HAS_V4);
    if get_mac(at(SHA)) != vap.client_mac || (sender != 0 && (!has_v4 || sender != own)) {
        return Verdict::drop(Reason::VapSpoofed, TunnelKind::None);
    }
    let target = word(at(TPA));
    if get16(at(6)) != ARP_REQUEST || sender == 0 || target == own || target == 0 {
        return Verdict::pass(Reason::VapPassed);
    }
    // The request becomes the reply in place: "target is at vap_mac", to the client.
    put16(at(6), ARP_REPLY);
    copy::<4>(at(TPA), at(SPA));
    put_mac(at(THA), vap.client_mac);
    copy::<4>(at(SPA), target.to_ne_bytes().as_ptr());
    put_mac(at(SHA), vap.vap_mac);
    let Some(p) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    Eth(p).write(vap.client_mac, vap.vap_mac, ETH_P_ARP);
    Verdict::new(Action::Tx, Reason::VapArpReply, TunnelKind::None)
}
