//! ICMP and ICMPv6 errors built in place from the offending packet and sent back out of
//! the interface it came in on (`XDP_TX`): time exceeded (RFC 792 / RFC 4443 3.3),
//! fragmentation needed / packet too big (RFC 1191 / RFC 4443 3.2), and for the
//! translator destination unreachable (RFC 7915 4.4 / 5.4: 3/13, 3/5, ICMPv6 1/1) and
//! ICMPv6 parameter problem (RFC 7915 5.1: 4/0 at a routing header's Segments Left). The
//! quoted packet is cut to stay within 576 bytes (IPv4, RFC 1812 4.3.2.3) or 1280 bytes
//! (IPv6).
//!
//! Never answered (RFC 1812 4.3.2.7, RFC 4443 2.4 (e)), counted as a drop under the
//! caller's reason: an ICMP / ICMPv6 error (found behind IPv6 extension headers too), a
//! non-first IPv4 fragment, a source that does not name one host (IPv4 0/8, 127/8,
//! 224/4 multicast, 240/4 incl. broadcast; IPv6 unspecified, loopback, multicast), an
//! IPv4 multicast or broadcast destination, an IPv6 multicast destination (except for
//! packet too big, RFC 4443 2.4 (e.2)).

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
    packet::{Frame, frame_len, get16, get32, put16, put32},
    tunnel::Inner,
};

const ICMP_HLEN: usize = 8;
/// Quoted bytes at most: 576 - 20 - 8 (IPv4) and 1280 - 40 - 8 (IPv6).
const QUOTE_V4: usize = 548;
const QUOTE_V6: usize = 1232;
/// Largest ICMP message (header + quote) the checksum covers.
const ICMP_MAX: usize = ICMP_HLEN + QUOTE_V6;
/// IPv6 extension headers walked to find out whether a packet is an ICMPv6 error.
const MAX_WALK: usize = 6;

/// The error to send; the family of the packet in error picks the ICMP flavour.
#[derive(Clone, Copy)]
pub enum IcmpError {
    /// ICMP 11/0, ICMPv6 3/0.
    TimeExceeded,
    /// Fragmentation needed (ICMP 3/4) / packet too big (ICMPv6 2/0), with the MTU.
    TooBig { mtu: u32 },
    /// Destination unreachable with this code (ICMP type 3, ICMPv6 type 1).
    Unreachable { code: u8 },
    /// Parameter problem with this code and pointer (ICMP type 12 with the pointer in
    /// the first byte, ICMPv6 type 4 with a 32-bit pointer).
    ParamProblem { code: u8, pointer: u32 },
}

impl IcmpError {
    /// (type << 8 | code, the 4 bytes after the checksum) for an IPv4 (`v6` false) or
    /// IPv6 packet in error.
    #[inline(always)]
    fn encode(self, v6: bool) -> (u32, u32) {
        let (ty, code, rest) = match (self, v6) {
            (IcmpError::TimeExceeded, false) => (11, 0, 0),
            (IcmpError::TimeExceeded, true) => (3, 0, 0),
            (IcmpError::TooBig { mtu }, false) => (3, 4, mtu & 0xffff),
            (IcmpError::TooBig { mtu }, true) => (2, 0, mtu),
            (IcmpError::Unreachable { code }, false) => (3, code, 0),
            (IcmpError::Unreachable { code }, true) => (1, code, 0),
            (IcmpError::ParamProblem { code, pointer }, false) => (12, code, pointer << 24),
            (IcmpError::ParamProblem { code, pointer }, true) => (4, code, pointer),
        };
        (((ty as u32) << 8) | code as u32, rest)
    }
}

/// Outcome codes of [`build`].
const SENT: u32 = 0;
const NOT_ANSWERED: u32 = 1;
const NO_SOURCE: u32 = 2;
const RESIZE_FAILED: u32 = 3;
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
    let v6 = inner.is_v6();
    let (type_code, rest) = error.encode(v6);
    match build(ctx.ctx, v6 as u32, inner_len as u32, type_code, rest) {
        SENT => Verdict::new(Action::Tx, reason, kind),
        NO_SOURCE => Verdict::drop(Reason::NoIcmpSource, kind),
        RESIZE_FAILED => Verdict::new(Action::Aborted, Reason::AdjustFailed, kind),
        _ => Verdict::drop(reason, kind),
    }
}

/// True when `inner` must not be answered with an ICMP error of type `ty` (see the
/// module docs).
#[inline(always)]
fn must_not_answer(frame: &Frame, inner: &Inner, ty: u8) -> bool {
    match inner {
        Inner::V4(ip) => {
            let src = ip.src_word() >> 24;
            let dst = ip.dst_word() >> 24;
            if ip.is_later_fragment() || src == 0 || src == 127 || src >= 224 || dst >= 224 {
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
            let src = ip.src_ptr();
            let w0 = get32(src);
            let rest = get32(unsafe { src.add(4) })
                | get32(unsafe { src.add(8) })
                | (get32(unsafe { src.add(12) }) >> 1);
            let dst_multicast = unsafe { *ip.dst_ptr() } == 0xff;
            if w0 >> 24 == 0xff || (w0 == 0 && rest == 0) || (dst_multicast && ty != 2) {
                return true;
            }
            icmp6_error_behind(frame, ip.next_header())
        }
    }
}

/// True when the IPv6 packet at the start of the frame carries an ICMPv6 error behind
/// at most [`MAX_WALK`] extension headers, or when the chain cannot be followed (then
/// it might be one). A non-first fragment carries no upper-layer header: false.
#[inline(always)]
fn icmp6_error_behind(frame: &Frame, first: u8) -> bool {
    let mut nh = first;
    let mut off = ETH_HLEN + IPV6_HLEN;
    let mut i = 0;
    while i < MAX_WALK {
        match nh {
            IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING => {
                let Some(p) = frame.ptr(off, 2) else {
                    return true;
                };
                nh = unsafe { *p };
                off += (unsafe { *p.add(1) } as usize + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some(p) = frame.ptr(off, 4) else {
                    return true;
                };
                if get16(unsafe { p.add(2) }) & 0xfff8 != 0 {
                    return false;
                }
                nh = unsafe { *p };
                off += 8;
            }
            IPPROTO_ICMPV6 => {
                // Two bytes: a one-byte check compiles into `p >= end`, which the
                // verifier does not accept (docs/ebpf-notes.md).
                return match frame.ptr(off, 2) {
                    Some(t) => (unsafe { *t }) < 128,
                    None => true,
                };
            }
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The work of [`reply`], as one BPF subprogram shared by every caller (BPF calls take
/// at most five scalar arguments, hence the packing). Returns an outcome code.
#[inline(never)]
fn build(ctx: *mut xdp_md, v6: u32, inner_len: u32, type_code: u32, rest: u32) -> u32 {
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
    if must_not_answer(&frame, &inner, (type_code >> 8) as u8) {
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
    let (typ, code) = ((type_code >> 8) as u8, type_code as u8);
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
