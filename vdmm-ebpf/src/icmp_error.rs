//! ICMP and ICMPv6 errors built in place from the offending packet and sent back out of
//! the interface it came in on (`XDP_TX`): time exceeded (RFC 792 / RFC 4443 3.3) and
//! fragmentation needed / packet too big (RFC 1191 / RFC 4443 3.2). The quoted packet is
//! cut to stay within 576 bytes (IPv4, RFC 1812 4.3.2.3) or 1280 bytes (IPv6).
//! No error is sent about an ICMP error or a non-first fragment (RFC 1812 4.3.2.7).

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use vdmm_common::{Action, Reason, TunnelKind};

use crate::{
    checksum::{fold, sum_region},
    counters::Verdict,
    headers::*,
    maps::config,
    packet::{Frame, frame_len, put16, put32},
    tunnel::Inner,
};

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
const ICMPV6_TIME_EXCEEDED: u8 = 3;
const ICMP_HLEN: usize = 8;
/// Quoted bytes at most: 576 - 20 - 8 (IPv4) and 1280 - 40 - 8 (IPv6).
const QUOTE_V4: usize = 548;
const QUOTE_V6: usize = 1232;
/// Largest ICMP message (header + quote) the checksum covers.
const ICMP_MAX: usize = ICMP_HLEN + QUOTE_V6;

/// The error to send.
#[derive(Clone, Copy)]
pub enum IcmpError {
    TimeExceeded,
    /// Fragmentation needed / packet too big, with the MTU to report.
    TooBig {
        mtu: u32,
    },
}

/// Outcome codes of [`build`].
const SENT: u32 = 0;
const NOT_ANSWERED: u32 = 1;
const NO_SOURCE: u32 = 2;
const RESIZE_FAILED: u32 = 3;
/// Bit of `build`'s `error` argument that means "too big" (the MTU is in the low bits).
const TOO_BIG: u32 = 1 << 31;

/// Replaces the frame (which holds `inner`, `inner_len` bytes, right after the Ethernet
/// header) with an ICMP error about it, addressed to its source, and returns `XDP_TX`.
/// Counted under `reason` (or `no_icmp_source`, or `adjust_failed`).
#[inline(always)]
pub fn reply(
    ctx: &XdpContext,
    inner: Inner,
    inner_len: usize,
    error: IcmpError,
    reason: Reason,
    kind: TunnelKind,
) -> Verdict {
    let error = match error {
        IcmpError::TimeExceeded => 0,
        IcmpError::TooBig { mtu } => TOO_BIG | (mtu & 0xffff),
    };
    match build(ctx.ctx, inner.is_v6() as u32, inner_len as u32, error) {
        SENT => Verdict::new(Action::Tx, reason, kind),
        NO_SOURCE => Verdict::drop(Reason::NoIcmpSource, kind),
        RESIZE_FAILED => Verdict::new(Action::Aborted, Reason::AdjustFailed, kind),
        _ => Verdict::drop(reason, kind),
    }
}

/// True when `inner` must not be answered with an ICMP error.
#[inline(always)]
fn must_not_answer(frame: &Frame, inner: &Inner) -> bool {
    match inner {
        Inner::V4(ip) => {
            if ip.is_later_fragment() {
                return true;
            }
            if ip.protocol() != IPPROTO_ICMP {
                return false;
            }
            match frame.ptr(ETH_HLEN + ip.ihl(), 1) {
                Some(t) => matches!(unsafe { *t }, 3 | 4 | 5 | 11 | 12),
                None => true,
            }
        }
        Inner::V6(ip) => {
            if ip.next_header() != IPPROTO_ICMPV6 {
                return false;
            }
            match frame.ptr(ETH_HLEN + IPV6_HLEN, 1) {
                Some(t) => (unsafe { *t }) < 128,
                None => true,
            }
        }
    }
}

/// The work of [`reply`], as one BPF subprogram shared by every caller (BPF calls take
/// at most five scalar arguments, hence the packing). Returns an outcome code.
#[inline(never)]
fn build(ctx: *mut xdp_md, v6: u32, inner_len: u32, error: u32) -> u32 {
    let ctx = XdpContext::new(ctx);
    let frame = Frame::new(&ctx);
    let v6 = v6 != 0;
    let inner_len = inner_len as usize;
    let inner = if v6 {
        match frame.ptr(ETH_HLEN, IPV6_HLEN) {
            Some(p) => Inner::V6(Ipv6(p)),
            None => return NOT_ANSWERED,
        }
    } else {
        match frame.ptr(ETH_HLEN, IPV4_HLEN) {
            Some(p) => Inner::V4(Ipv4(p)),
            None => return NOT_ANSWERED,
        }
    };
    if must_not_answer(&frame, &inner) {
        return NOT_ANSWERED;
    }
    let Some(cfg) = config() else {
        return NO_SOURCE;
    };
    let (hdr, quote_max) = if v6 {
        (IPV6_HLEN, QUOTE_V6)
    } else {
        (IPV4_HLEN, QUOTE_V4)
    };
    let source_unset = if v6 {
        cfg.icmp_source_v6 == [0u8; 16]
    } else {
        cfg.icmp_source_v4 == [0u8; 4]
    };
    if source_unset {
        return NO_SOURCE;
    }
    let quote = if inner_len < quote_max {
        inner_len
    } else {
        quote_max
    };

    // Resize: cut the frame to Ethernet + quote, then open room for IP + ICMP headers.
    // The received frame then starts `room` bytes in.
    let room = hdr + ICMP_HLEN;
    let tail = (ETH_HLEN + quote) as i32 - frame_len(&ctx) as i32;
    if tail < 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, tail) } != 0 {
        return RESIZE_FAILED;
    }
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(room as i32)) } != 0 {
        return RESIZE_FAILED;
    }
    let frame = Frame::new(&ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN + IPV6_HLEN + ICMP_HLEN) else {
        return RESIZE_FAILED;
    };
    // Old Ethernet header and the quoted packet's header, for MACs and the sender.
    let Some(old) = frame.ptr(room, ETH_HLEN + IPV6_HLEN) else {
        return RESIZE_FAILED;
    };
    let eth = Eth(p);
    let old_eth = Eth(old);
    let (their_mac, our_mac) = (old_eth.src(), old_eth.dst());
    eth.write(their_mac, our_mac, if v6 { ETH_P_IPV6 } else { ETH_P_IP });
    let sender = unsafe { old.add(ETH_HLEN + if v6 { 8 } else { 12 }) };
    let icmp_len = ICMP_HLEN + quote;
    let icmp = unsafe { p.add(ETH_HLEN + hdr) };
    let too_big = error & TOO_BIG != 0;
    let mtu = error & 0xffff;
    let (typ, code, rest) = match (too_big, v6) {
        (false, false) => (ICMP_TIME_EXCEEDED, 0, 0),
        (false, true) => (ICMPV6_TIME_EXCEEDED, 0, 0),
        (true, false) => (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu),
        (true, true) => (ICMPV6_PACKET_TOO_BIG, 0, mtu),
    };
    // The IP header goes first: it overwrites nothing the ICMP part still needs (the
    // sender address sits behind the ICMP header, in the quoted packet).
    let ip = unsafe { p.add(ETH_HLEN) };
    if v6 {
        Ipv6(ip).write(
            0,
            0,
            icmp_len as u16,
            IPPROTO_ICMPV6,
            64,
            cfg.icmp_source_v6.as_ptr(),
            sender,
        );
    } else {
        Ipv4(ip).write(
            0xc0,
            (IPV4_HLEN + icmp_len) as u16,
            0,
            0,
            64,
            IPPROTO_ICMP,
            cfg.icmp_source_v4.as_ptr(),
            sender,
        );
    }
    unsafe {
        *icmp = typ;
        *icmp.add(1) = code;
    }
    put16(unsafe { icmp.add(2) }, 0);
    put32(unsafe { icmp.add(4) }, rest);
    let Some(mut sum) = sum_region::<ICMP_MAX>(&ctx, &frame, ETH_HLEN + hdr, icmp_len) else {
        return RESIZE_FAILED;
    };
    if v6 {
        // Pseudo header: both addresses (now in the new IPv6 header), length, next header.
        let Some(s) = sum_region::<32>(&ctx, &frame, ETH_HLEN + 8, 32) else {
            return RESIZE_FAILED;
        };
        sum += s + icmp_len as u32 + IPPROTO_ICMPV6 as u32;
    }
    put16(unsafe { icmp.add(2) }, !fold(sum));
    SENT
}
