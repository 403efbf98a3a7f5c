//! IPv6 neighbour discovery (RFC 4861) on the client side of a vAP: a neighbour
//! solicitation from the client for any address but its own is answered with a
//! neighbour advertisement (router, solicited, override) whose target link-layer address
//! is the vAP MAC, so the client's gateway, whatever its address, resolves to its vAP.
//! Solicitations for the client's own address (duplicate address detection, from the
//! unspecified address) are passed. The source must be the client's own address or a
//! link-local one; anything else is dropped as spoofed.

use aya_ebpf::{bindings::xdp_md, helpers::generated::bpf_xdp_adjust_tail, programs::XdpContext};
use vdmm_common::{
    Action, Reason, TunnelKind,
    vap::{VAP_HAS_V6, Vap},
};

use crate::{
    checksum::fold,
    counters::Verdict,
    headers::*,
    packet::{copy, frame_len, frame_of, get16, put_mac, put16, put32, words16},
};

pub const ICMPV6_NEIGHBOUR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// Type, code, checksum, reserved, target address.
const ND_HLEN: usize = 24;
/// Router, solicited and override flags of an advertisement.
const NA_FLAGS: u32 = 0xe000_0000;
/// Option "target link-layer address" (type 2, length 1 unit of 8 bytes).
const OPT_TARGET_LLADDR: u16 = 0x0201;
/// The advertisement: IPv6 header, ICMPv6 header with target, one option.
const NA_PAYLOAD: usize = ND_HLEN + 8;
const NA_FRAME: usize = ETH_HLEN + IPV6_HLEN + NA_PAYLOAD;
const ICMP_OFF: usize = ETH_HLEN + IPV6_HLEN;

/// True for fe80::/10.
#[inline(always)]
pub fn is_link_local(p: *const u8) -> bool {
    get16(p) & 0xffc0 == 0xfe80
}

/// True for ::.
#[inline(always)]
pub fn is_unspecified(p: *const u8) -> bool {
    let w = words16(p);
    w[0] | w[1] | w[2] | w[3] == 0
}

/// True when the 16 bytes at `a` and `b` are equal.
#[inline(always)]
pub fn same16(a: *const u8, b: *const u8) -> bool {
    let (x, y) = (words16(a), words16(b));
    (x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) == 0
}

/// Answers or passes a neighbour solicitation from the vAP's client (the caller checked
/// that the IPv6 header is followed by an ICMPv6 solicitation). A BPF subprogram.
#[inline(never)]
pub fn answer(ctx: *mut xdp_md, vap: *const Vap) -> Verdict {
    let ctx = &XdpContext::new(ctx);
    let frame = frame_of(ctx.ctx);
    // SAFETY: a map value pointer from a successful look-up.
    let vap = unsafe { &*vap };
    let Some(p) = frame.ptr(ETH_HLEN, IPV6_HLEN + ND_HLEN) else {
        return Verdict::drop(Reason::Malformed, TunnelKind::None);
    };
    let ip = Ipv6(p);
    let icmp = unsafe { p.add(IPV6_HLEN) };
    let target = unsafe { icmp.add(8) };
    let src = ip.src_ptr();
    let own = vap.has(VAP_HAS_V6) && same16(src, vap.ipv6.as_ptr());
    if is_unspecified(src) {
        // Duplicate address detection: not the vAP's to answer.
        return Verdict::pass(Reason::VapPassed);
    }
    if !own && !is_link_local(src) {
        return Verdict::drop(Reason::VapSpoofed, TunnelKind::None);
    }
    // RFC 4861 7.1.1: hop limit 255, code 0, at least 24 bytes.
    if ip.hop_limit() != 255
        || unsafe { *icmp.add(1) } != 0
        || (ip.payload_len() as usize) < ND_HLEN
        || (vap.has(VAP_HAS_V6) && same16(target, vap.ipv6.as_ptr()))
        || is_multicast_or_unspecified(target)
    {
        return Verdict::pass(Reason::VapPassed);
    }
    // In place: the advertisement goes back to the solicitation's source, from the
    // address asked about; the target field stays where it is.
    copy::<16>(ip.dst_ptr(), src);
    copy::<16>(src, target);
    let delta = NA_FRAME as i32 - frame_len(ctx) as i32;
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Verdict::new(Action::Aborted, Reason::AdjustFailed, TunnelKind::None);
    }
    let frame = frame_of(ctx.ctx);
    let Some(f) = frame.ptr(0, NA_FRAME) else {
        return Verdict::new(Action::Aborted, Reason::AdjustFailed, TunnelKind::None);
    };
    let ip = Ipv6(unsafe { f.add(ETH_HLEN) });
    let icmp = unsafe { f.add(ICMP_OFF) };
    put32(ip.0, 6 << 28);
    put16(unsafe { ip.0.add(4) }, NA_PAYLOAD as u16);
    unsafe {
        *ip.0.add(6) = IPPROTO_ICMPV6;
        *ip.0.add(7) = 255;
        *icmp = ICMPV6_NEIGHBOUR_ADVERTISEMENT;
        *icmp.add(1) = 0;
    }
    put16(unsafe { icmp.add(2) }, 0);
    put32(unsafe { icmp.add(4) }, NA_FLAGS);
    put16(unsafe { icmp.add(ND_HLEN) }, OPT_TARGET_LLADDR);
    put_mac(unsafe { icmp.add(ND_HLEN + 2) }, vap.vap_mac);
    // Checksum over the pseudo-header (addresses, length, next header) and the message.
    let mut sum = NA_PAYLOAD as u32 + IPPROTO_ICMPV6 as u32;
    let mut i = 0;
    while i < 32 {
        sum += get16(unsafe { ip.0.add(8 + i) }) as u32;
        i += 2;
    }
    let mut i = 0;
    while i < NA_PAYLOAD {
        sum += get16(unsafe { icmp.add(i) }) as u32;
        i += 2;
    }
    put16(unsafe { icmp.add(2) }, !fold(sum));
    Eth(f).write(vap.client_mac, vap.vap_mac, ETH_P_IPV6);
    Verdict::new(Action::Tx, Reason::VapNdReply, TunnelKind::None)
}

/// Targets no advertisement is sent for: multicast (ff00::/8) and the unspecified
/// address.
#[inline(always)]
fn is_multicast_or_unspecified(p: *const u8) -> bool {
    (unsafe { *p } == 0xff) || is_unspecified(p)
}
