//! ICMP errors across the translator (RFC 7915 4.2/4.3 and 5.2/5.3): the outer message
//! gets the other family's type, code and MTU / pointer, and the packet inside it (the
//! one that caused the error) is translated too (addresses, header, its transport
//! checksum), so traceroute and path MTU discovery work across the translator. The error
//! is cut to 1280 bytes (ICMPv6, RFC 4443 2.4 (c)) / 576 bytes (ICMPv4, RFC 1812
//! 4.3.2.3) and its checksum computed over what is sent. An incoming error with a wrong
//! checksum is dropped rather than laundered.
//!
//! RFC 4884 extensions (RFC 7915 4.2 / 5.2 "ICMP Error Payload", laid out by
//! `icmp_extension_layout`, as Jool does): carried opaque behind the translated
//! original datagram field, which is cut to whole units of the new family (64-bit words
//! for ICMPv6, 32-bit for ICMPv4) and zero-padded to 128 bytes, with the length
//! attribute converted; removed (length 0) when the new type has no length attribute
//! (ICMPv6 parameter problem, packet too big) or when it does not fit the 1280 / 576
//! byte limit beside 128 bytes of datagram. The extension is copied out to the scratch
//! value before the frame is resized and written back at its new place.
//!
//! Layout: everything in front of the inner packet's payload is rewritten; that payload
//! stays where it is in memory and `bpf_xdp_adjust_head` opens or closes the room in
//! front of it.

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    programs::XdpContext,
};
use vdmm_common::{
    Action, Reason, TunnelKind,
    translate::{
        checksum::{fold, udp_mangle_zero, update},
        header::df_for_translated_ipv4,
        icmp::{
            ICMP_EXT_MIN_ORIGINAL, IPV6_MIN_MTU, IcmpMapping, frag_needed_mtu_6to4,
            icmp_extension_layout, icmp4_is_error, icmp4_to_icmp6, icmp6_is_error, icmp6_to_icmp4,
            ptb_mtu_4to6,
        },
        maps::{XLAT_RESET_TRAFFIC_CLASS, XlatConfig},
    },
};

use super::{
    EXT_MAX, FLAG_FIRST, ICMP_VERIFY_MAX, PROCEED, Scratch,
    addr::{map_4to6, map_6to4, sum4, sum6},
    resize_frame, sub,
    v6_to_v4::Walk,
    wire,
};
use crate::{
    checksum::words,
    counters::Verdict,
    forward,
    headers::*,
    packet::{Frame, get16, get32, put16, put32},
};

const ICMP_HLEN: usize = 8;
/// Largest translated ICMPv4 error (RFC 1812 4.3.2.3).
const ICMP4_ERROR_MAX: usize = 576;
/// ICMP message bytes summed after translation: 1280 - 40 and 576 - 20.
const ICMP6_SUM_MAX: usize = IPV6_MIN_MTU as usize - IPV6_HLEN;
const ICMP4_SUM_MAX: usize = ICMP4_ERROR_MAX - IPV4_HLEN;
/// Bytes a translated error may carry after its ICMP header: 1280 - 48, 576 - 28.
const ROOM6: usize = ICMP6_SUM_MAX - ICMP_HLEN;
const ROOM4: usize = ICMP4_SUM_MAX - ICMP_HLEN;

/// The RFC 4884 extension of the error in `s`: where it is in the received frame
/// (`from`, frame offset), how long it is, and the original datagram field as received
/// (`ipl` bytes from the packet in error's header, which is `in_hdr` bytes long).
/// Decides its layout in the translated error (`hdr_out`: the translated inner header's
/// size, `room` / `unit` as in `icmp_extension_layout`) into `s.ext_*` / `s.pad_*`
/// and returns the bytes of the inner payload that belong to the datagram and the
/// length attribute; the extension is removed (`s.ext_len` 0) when `keep` is false or
/// it does not fit.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn place_extension(
    s: &mut Scratch,
    from: usize,
    ext_len: usize,
    ipl: usize,
    in_hdr: usize,
    hdr_out: usize,
    room: usize,
    unit: usize,
    keep: bool,
) -> (usize, u8) {
    let orig_rest = ipl - in_hdr;
    s.ext_len = 0;
    if !keep || ext_len > EXT_MAX {
        return (orig_rest, 0);
    }
    match icmp_extension_layout(hdr_out + orig_rest, ext_len, room, unit) {
        Some((kept, pad)) => {
            s.ext_len = ext_len as u16;
            s.ext_from = from as u16;
            s.pad_at = (kept - hdr_out) as u16;
            s.pad_len = pad as u16;
            (orig_rest, ((kept + pad) / unit) as u8)
        }
        None => (orig_rest, 0),
    }
}

/// Copies the extension recorded in `s` out of the received frame into `s.ext`
/// (before the frame is resized). 0 when done (or none).
#[inline(always)]
fn save_extension(ctx: *mut xdp_md, s: &mut Scratch) -> u32 {
    let n = s.ext_len as u32 & 0x7ff;
    if n == 0 {
        return 0;
    }
    if n > EXT_MAX as u32 {
        return 1;
    }
    let from = s.ext_from as u32 & 0xfff;
    (unsafe { bpf_xdp_load_bytes(ctx, from, s.ext.as_mut_ptr() as *mut _, n) } != 0) as u32
}

/// Writes the zero padding and the extension recorded in `s` behind the translated
/// datagram, whose payload starts at frame offset `rest` (after the resize). 0 when
/// done (or none).
#[inline(always)]
fn restore_extension(ctx: *mut xdp_md, s: &Scratch, rest: usize) -> u32 {
    let n = s.ext_len as u32 & 0x7ff;
    if n == 0 {
        return 0;
    }
    if n > EXT_MAX as u32 {
        return 1;
    }
    let pad_at = (rest + (s.pad_at as usize & 0x7ff)) as u32;
    let pad = s.pad_len as u32 & 0xff;
    if pad != 0 {
        if pad > ICMP_EXT_MIN_ORIGINAL as u32 {
            return 1;
        }
        let zeros = s.zeros.as_ptr() as *mut _;
        if unsafe { bpf_xdp_store_bytes(ctx, pad_at, zeros, pad) } != 0 {
            return 1;
        }
    }
    let at = pad_at + pad;
    (unsafe { bpf_xdp_store_bytes(ctx, at, s.ext.as_ptr() as *mut _, n) } != 0) as u32
}

/// Ones'-complement difference: the unfolded sum `a` less the sum `b` (RFC 1624), folded.
#[inline(always)]
fn minus(a: u32, b: u32) -> u32 {
    fold(a + !fold(b) as u32) as u32
}

/// Before the inner transport checksum is patched: `s.msg_sum` (the received message)
/// becomes the sum of the inner payload at `rest_off` alone, less the ICMP header and
/// the inner header(s) in front of it (in line for the usual 28 / 48 bytes). 0 when done.
#[inline(always)]
fn payload_sum(ctx: *mut xdp_md, s: &mut Scratch, rest_off: usize) -> u32 {
    let at = s.icmp_at as usize & 0xfff;
    if rest_off < at {
        return 1;
    }
    let hl = rest_off - at;
    let frame = sub::frame_of(ctx);
    let headers = if hl == ICMP_HLEN + IPV4_HLEN {
        match frame.ptr(at, ICMP_HLEN + IPV4_HLEN) {
            Some(p) => words::<{ ICMP_HLEN + IPV4_HLEN }>(p),
            None => return 1,
        }
    } else if hl == ICMP_HLEN + IPV6_HLEN {
        match frame.ptr(at, ICMP_HLEN + IPV6_HLEN) {
            Some(p) => words::<{ ICMP_HLEN + IPV6_HLEN }>(p),
            None => return 1,
        }
    } else {
        let msg = s.msg_sum;
        if sub::sum::<ICMP_VERIFY_MAX>(ctx, s, at as u32, hl as u32) != 0 {
            return 1;
        }
        s.msg_sum = msg;
        s.sum
    };
    s.msg_sum = minus(s.msg_sum, headers);
    0
}

/// Writes `new` at `c` (a 16-bit word at an even offset of the inner payload) and keeps
/// `s.msg_sum` the payload's sum.
#[inline(always)]
fn patch16(s: &mut Scratch, c: *mut u8, new: u16) {
    let old = get16(c);
    s.msg_sum = fold(s.msg_sum + (!old) as u32 + new as u32) as u32;
    put16(c, new);
}

/// After the patches: `s.msg_sum` (the sum from `rest_off` to the end of the received
/// message) becomes the sum of the bytes the translated error carries: the first `kept`
/// of the `rest_len` bytes at `rest_off` (the original datagram field). What follows is
/// cut (the size limit, a removed RFC 4884 extension): subtracted, or the kept part
/// summed instead when it is the shorter. `kept` and `rest_len` are even, so the word
/// alignment of both parts matches the received message's. 0 when done.
#[inline(always)]
fn kept_sum(
    ctx: *mut xdp_md,
    s: &mut Scratch,
    rest_off: usize,
    rest_len: usize,
    kept: usize,
) -> u32 {
    let kept = if kept < rest_len { kept } else { rest_len };
    let cut_at = rest_off + kept;
    let end = s.msg_end as usize & 0xfff;
    if end <= cut_at {
        return 0;
    }
    let tail = end - cut_at;
    if tail <= kept {
        if sub::sum::<ICMP_VERIFY_MAX>(ctx, s, cut_at as u32, tail as u32) != 0 {
            return 1;
        }
        s.msg_sum = minus(s.msg_sum, s.sum);
    } else {
        if sub::sum::<ICMP_VERIFY_MAX>(ctx, s, rest_off as u32, kept as u32) != 0 {
            return 1;
        }
        s.msg_sum = fold(s.sum) as u32;
    }
    0
}

/// The ICMP checksum from the unfolded sum of everything it covers. The incremental sums
/// may arrive at 0 where a full pass arrives at 0xffff (the same value in ones'
/// complement): a message that is not all zero sums to 0xffff, so the checksum is the
/// same as a full pass gives.
#[inline(always)]
fn checksum_of(sum: u32) -> u16 {
    let f = fold(sum);
    !(if f == 0 { 0xffff } else { f })
}

/// The outcome of the FIB (`sub::route` code) for a translated error, stored in `s`
/// (forwarded, or passed to the kernel with the received MACs); `Some(verdict)` when it
/// ends here.
#[inline(always)]
fn route_exit(code: u32, kind: TunnelKind, s: &mut Scratch, rx: *mut u8) -> Option<u32> {
    let pass = |r: Reason| Verdict::new(Action::Pass, r, kind).0;
    match code {
        sub::ROUTE_RESOLVED => {
            s.resolved = 1;
            return None;
        }
        // An error of at most 576 / 1280 bytes: only an IPv4 link below 576 gets here; the
        // kernel fragments it (no DF on translated errors).
        sub::ROUTE_TOO_BIG => {
            if kind != TunnelKind::Xlat6to4 {
                return Some(Verdict::drop(Reason::XlatNeedsFragmentation, kind).0);
            }
            s.pass_verdict = pass(Reason::FragmentedByKernel);
        }
        sub::ROUTE_NO_NEIGHBOUR => s.pass_verdict = pass(Reason::FibNoNeighbour),
        sub::ROUTE_NOT_FORWARDED => s.pass_verdict = pass(Reason::FibNotForwarded),
        _ => return Some(Verdict::drop(Reason::FibUnreachable, kind).0),
    }
    s.resolved = 0;
    s.dmac = Eth(rx).dst();
    s.smac = Eth(rx).src();
    None
}

/// Before `error_4to6` / `error_6to4`: the sum of the whole ICMP message (at
/// `s.old_hdr` + 14, `s.payload` bytes) into `s.sum`, and for ICMPv6 the walk of the
/// inner packet's extension headers into `s.w_*`. Done by the caller so that the error
/// functions, whose frames are large, call no further subprogram (512 bytes of stack
/// for the whole call chain). 0 when done.
#[inline(never)]
pub fn before_error(ctx: *mut xdp_md, s: *mut Scratch, v6: u32) -> u32 {
    // SAFETY: the per-CPU scratch value.
    let l4 = ETH_HLEN as u32 + (unsafe { (*s).old_hdr } as u32 & 0xfff);
    let len = unsafe { (*s).payload } as u32;
    if sub::sum::<ICMP_VERIFY_MAX>(ctx, s, l4, len) != 0 {
        return 1;
    }
    // SAFETY: as above.
    unsafe {
        (*s).icmp_at = l4 as u16;
        (*s).msg_end = (l4 + len) as u16;
        (*s).msg_sum = (*s).sum;
    }
    if v6 == 0 {
        return 0;
    }
    let frame = sub::frame_of(ctx);
    let in_off = l4 as usize + ICMP_HLEN;
    let Some(q) = frame.ptr(in_off, IPV6_HLEN) else {
        return 1;
    };
    let nh = unsafe { *q.add(6) } as u32;
    if sub::walk_into(ctx, s, nh, (in_off + IPV6_HLEN) as u32) != sub::WALK_OK {
        return 1;
    }
    0
}

/// RFC 7915 4.2 + 4.3: an ICMPv4 error (outer header valid, source and destination
/// already mapped into `s.src6` / `s.dst6`, TTL checked) to ICMPv6.
#[inline(never)]
pub fn error_4to6(ctx: *mut xdp_md, cfg: &XlatConfig, s: &mut Scratch) -> u32 {
    const KIND: TunnelKind = TunnelKind::Xlat4to6;
    let drop = |r: Reason| Verdict::drop(r, KIND).0;
    let ctx = &XdpContext::new(ctx);
    let frame = sub::frame_of(ctx.ctx);
    let Some(p) = frame.ptr(ETH_HLEN, IPV4_HLEN) else {
        return drop(Reason::Malformed);
    };
    let ip = Ipv4(p);
    let ihl = ip.ihl();
    let total = ip.total_len() as usize;
    if total < ihl + ICMP_HLEN + IPV4_HLEN {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let icmp_off = ETH_HLEN + ihl;
    // `s.sum`: the whole ICMP message, summed by the caller (`verify_sum`).
    if fold(s.sum) != 0xffff {
        return drop(Reason::XlatIcmpBadChecksum);
    }
    let Some(h) = frame.ptr(icmp_off, ICMP_HLEN) else {
        return drop(Reason::Malformed);
    };
    let (ty, code) = unsafe { (*h, *h.add(1)) };
    let rest = get32(unsafe { h.add(4) });
    // RFC 4884 length attribute (destination unreachable, time exceeded, parameter
    // problem, 32-bit words): an extension follows the original datagram field, unless
    // the field is the whole message.
    let body_len = total - ihl - ICMP_HLEN;
    let ipl = if matches!(ty, 3 | 11 | 12) {
        (unsafe { *h.add(5) }) as usize * 4
    } else {
        0
    };
    if ipl > body_len {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let has_ext = ipl != 0 && ipl != body_len;

    // The packet in error (RFC 7915 4.3), cut short: lengths come from its header.
    let in_off = icmp_off + ICMP_HLEN;
    let Some(q) = frame.ptr(in_off, IPV4_HLEN) else {
        return drop(Reason::XlatIcmpUntranslatable);
    };
    let inner = Ipv4(q);
    let in_ihl = inner.ihl();
    let in_total = inner.total_len();
    if inner.version() != 4 || in_ihl < IPV4_HLEN || (in_total as usize) < in_ihl {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let in_fw = inner.frag_word();
    let in_off8 = in_fw & IP_OFFSET;
    let in_mf = in_fw & IP_MF != 0;
    let in_frag = in_mf || in_off8 != 0;
    let in_proto = inner.protocol();
    let rest_off = in_off + in_ihl;
    let end = ETH_HLEN + total;
    if rest_off > end || (has_ext && ipl < in_ihl) {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let mut rest_len = end - rest_off;
    let mut in_type_code = 0u16;
    let mut in_new_type_code = 0u16;
    if in_proto == IPPROTO_ICMP && in_off8 == 0 && rest_len >= 1 {
        let Some(t) = frame.ptr(rest_off, 2) else {
            return drop(Reason::XlatIcmpUntranslatable);
        };
        in_type_code = get16(t);
        let (t, c) = ((in_type_code >> 8) as u8, in_type_code as u8);
        // Only one level of embedded header: no error inside an error.
        if icmp4_is_error(t) {
            return drop(Reason::XlatIcmpUntranslatable);
        }
        match icmp4_to_icmp6(t, c, [0; 4]) {
            IcmpMapping::Info { ty, code } => in_new_type_code = ((ty as u16) << 8) | code as u16,
            _ => return drop(Reason::XlatIcmpUntranslatable),
        }
    }
    let isrc = inner.src_word();
    let idst = inner.dst_word();
    if !map_4to6(isrc, cfg, s.isrc6.as_mut_ptr()) || !map_4to6(idst, cfg, s.idst6.as_mut_ptr()) {
        return drop(Reason::XlatIcmpUntranslatable);
    }

    // RFC 7915 4.2: type, code, and the 4 bytes after the checksum.
    let (t6, c6, rest6) = match icmp4_to_icmp6(ty, code, rest.to_be_bytes()) {
        IcmpMapping::Error { ty, code, rest } => (ty, code, u32::from_be_bytes(rest)),
        IcmpMapping::TooBig { ty, code } => {
            let advertised = get16(unsafe { h.add(6) });
            (
                ty,
                code,
                ptb_mtu_4to6(advertised, in_total, u32::MAX, u32::MAX),
            )
        }
        _ => return drop(Reason::XlatIcmpUntranslatable),
    };

    let fh = if in_frag { 8 } else { 0 };
    s.ext_len = 0;
    let mut rest6 = rest6;
    if has_ext {
        // Only ICMPv6 destination unreachable and time exceeded have a length attribute
        // (RFC 4884): from parameter problem / packet too big the extension is removed.
        let (orig_rest, attr) = place_extension(
            s,
            in_off + ipl,
            body_len - ipl,
            ipl,
            in_ihl,
            IPV6_HLEN + fh,
            ROOM6,
            8,
            matches!(t6, 1 | 3),
        );
        rest_len = orig_rest;
        if matches!(t6, 1 | 3) {
            rest6 = (rest6 & 0x00ff_ffff) | ((attr as u32) << 24);
        }
    }
    let new_total = if s.ext_len != 0 {
        IPV6_HLEN
            + ICMP_HLEN
            + IPV6_HLEN
            + fh
            + (s.pad_at as usize + s.pad_len as usize + s.ext_len as usize)
    } else {
        IPV6_HLEN + ICMP_HLEN + IPV6_HLEN + fh + rest_len
    };
    let capped = if new_total > IPV6_MIN_MTU as usize {
        IPV6_MIN_MTU as usize
    } else {
        new_total
    };
    let reset = cfg.flags & XLAT_RESET_TRAFFIC_CLASS != 0;
    s.in_tos = if reset { 0 } else { inner.tos() };
    s.in_ttl = inner.ttl();
    s.next = in_proto;
    s.in_proto = if in_proto == IPPROTO_ICMP {
        IPPROTO_ICMPV6
    } else {
        in_proto
    };
    s.in_frag = in_frag as u8;
    s.in_frag_word = (in_off8 << 3) | in_mf as u16;
    s.in_id = get16(unsafe { q.add(4) }) as u32;
    s.in_len = (in_total as usize - in_ihl + fh) as u16;
    s.in_upper = (in_total as usize - in_ihl) as u16;
    s.in_tc_old = in_type_code;
    s.in_tc_new = in_new_type_code;
    s.isrc4 = isrc.to_be_bytes();
    s.idst4 = idst.to_be_bytes();
    s.flags = if in_off8 == 0 { FLAG_FIRST } else { 0 };
    s.tos = if reset { 0 } else { ip.tos() };
    s.hop = ip.ttl();
    s.icmp_tc = ((t6 as u16) << 8) | c6 as u16;
    s.icmp_rest = rest6;
    s.old_hdr = (rest_off - ETH_HLEN) as u16;
    s.payload = rest_len as u16;
    s.total4 = capped as u16;
    PROCEED
}

/// The route of a translated ICMPv6 error and the inner transport checksum (in place:
/// it does not move). [`PROCEED`] or a finished verdict.
#[inline(never)]
pub fn finish_4to6(ctx: *mut xdp_md, s: &mut Scratch) -> u32 {
    const KIND: TunnelKind = TunnelKind::Xlat4to6;
    let xdp = &XdpContext::new(ctx);
    let code = sub::route(ctx, s, 1, s.total4 as u32);
    let frame = Frame::new(xdp);
    let Some(rx) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, KIND).0;
    };
    if let Some(v) = route_exit(code, KIND, s, rx) {
        return v;
    }
    if s.resolved != 0 {
        s.hop -= 1;
    }
    let rest_off = ETH_HLEN + (s.old_hdr as usize & 0xfff);
    let rest_len = s.payload as usize;
    let untranslatable = Verdict::drop(Reason::XlatIcmpUntranslatable, KIND).0;
    if payload_sum(ctx, s, rest_off) != 0 {
        return untranslatable;
    }
    let frame = Frame::new(xdp);
    let old = sum4(u32::from_be_bytes(s.isrc4)) + sum4(u32::from_be_bytes(s.idst4));
    let new = sum6(s.isrc6.as_ptr()) + sum6(s.idst6.as_ptr());
    if s.flags & FLAG_FIRST != 0 {
        match s.next {
            IPPROTO_TCP if rest_len >= 18 => {
                if let Some(c) = frame.ptr(rest_off + 16, 2) {
                    patch16(s, c, update(get16(c), old, new));
                }
            }
            IPPROTO_UDP if rest_len >= 8 => {
                if let Some(c) = frame.ptr(rest_off + 6, 2) {
                    let v = get16(c);
                    // A zero checksum stays zero: the datagram is cut short.
                    if v != 0 {
                        patch16(s, c, udp_mangle_zero(update(v, old, new)));
                    }
                }
            }
            IPPROTO_ICMP if rest_len >= 8 => {
                if let Some(t) = frame.ptr(rest_off, 4) {
                    let pseudo = new + s.in_upper as u32 + IPPROTO_ICMPV6 as u32;
                    let c = update(
                        get16(unsafe { t.add(2) }),
                        s.in_tc_old as u32,
                        s.in_tc_new as u32 + pseudo,
                    );
                    patch16(s, t, s.in_tc_new);
                    patch16(s, unsafe { t.add(2) }, c);
                }
            }
            _ => {}
        }
    }
    // Without an extension the error carries the inner payload's first bytes up to the
    // 1280-byte limit: 40 + 8 + 40 (+ 8) bytes of headers in front of them.
    let fh = if s.in_frag != 0 { 8 } else { 0 };
    let headers = IPV6_HLEN + ICMP_HLEN + IPV6_HLEN + fh;
    let capped = s.total4 as usize;
    if s.ext_len == 0
        && capped >= headers
        && kept_sum(ctx, s, rest_off, rest_len, capped - headers) != 0
    {
        return untranslatable;
    }
    if save_extension(ctx, s) != 0 {
        return untranslatable;
    }
    PROCEED
}

/// Resizes the frame around the inner payload and writes Ethernet, IPv6, ICMPv6 and the
/// inner IPv6 (+ fragment) header from `s`, then the ICMPv6 checksum.
#[inline(never)]
pub fn rewrite_4to6(ctx: *mut xdp_md, s: &Scratch) -> u32 {
    const KIND: TunnelKind = TunnelKind::Xlat4to6;
    let aborted = Verdict::new(Action::Aborted, Reason::AdjustFailed, KIND).0;
    let ctx = &XdpContext::new(ctx);
    let fh = if s.in_frag != 0 { 8 } else { 0 };
    let capped = (s.total4 as usize) & 0x7ff;
    // The headers in front of the inner payload become 40 + 8 + 40 (+ 8) bytes; then the
    // end is cut to the 1280-byte limit (and any Ethernet padding).
    let delta = (s.old_hdr as i32 & 0xfff) - (IPV6_HLEN + ICMP_HLEN + IPV6_HLEN + fh) as i32;
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return aborted;
    }
    // Shorter: cut to the 1280-byte limit (and any Ethernet padding); longer only when an
    // RFC 4884 extension moves back behind padding.
    if !resize_frame(ctx, ETH_HLEN + capped) {
        return aborted;
    }
    if restore_extension(
        ctx.ctx,
        s,
        ETH_HLEN + IPV6_HLEN + ICMP_HLEN + IPV6_HLEN + fh,
    ) != 0
    {
        return aborted;
    }
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN + IPV6_HLEN + ICMP_HLEN + IPV6_HLEN) else {
        return aborted;
    };
    if capped < IPV6_HLEN + ICMP_HLEN + IPV6_HLEN {
        return aborted;
    }
    let icmp_len = capped - IPV6_HLEN;
    wire::put_ipv6(
        unsafe { p.add(ETH_HLEN) },
        s.tos,
        icmp_len as u16,
        IPPROTO_ICMPV6,
        s.hop,
        s.src6.as_ptr(),
        s.dst6.as_ptr(),
    );
    let icmp = unsafe { p.add(ETH_HLEN + IPV6_HLEN) };
    wire::put_icmp(icmp, s.icmp_tc, s.icmp_rest);
    wire::put_ipv6(
        unsafe { icmp.add(ICMP_HLEN) },
        s.in_tos,
        s.in_len,
        if s.in_frag != 0 {
            IPPROTO_FRAGMENT
        } else {
            s.in_proto
        },
        s.in_ttl,
        s.isrc6.as_ptr(),
        s.idst6.as_ptr(),
    );
    if s.in_frag != 0 {
        let Some(f) = frame.ptr(ETH_HLEN + IPV6_HLEN + ICMP_HLEN + IPV6_HLEN, 8) else {
            return aborted;
        };
        unsafe {
            *f = s.in_proto;
            *f.add(1) = 0;
        }
        put16(unsafe { f.add(2) }, s.in_frag_word);
        put32(unsafe { f.add(4) }, s.in_id);
    }
    let body = if s.ext_len == 0 {
        // The kept payload's sum (`finish_4to6`) and the headers just written.
        let mut body = s.msg_sum + wire::sum::<{ ICMP_HLEN + IPV6_HLEN }>(icmp);
        if s.in_frag != 0 {
            let Some(f) = frame.ptr(ETH_HLEN + IPV6_HLEN + ICMP_HLEN + IPV6_HLEN, 8) else {
                return aborted;
            };
            body += words::<8>(f);
        }
        body
    } else {
        if sub::sum::<ICMP6_SUM_MAX>(
            ctx.ctx,
            s as *const _ as *mut _,
            (ETH_HLEN + IPV6_HLEN) as u32,
            icmp_len as u32,
        ) != 0
        {
            return aborted;
        }
        s.sum
    };
    let frame = Frame::new(ctx);
    let sum = body
        + wire::sum_words::<16>(s.src6.as_ptr())
        + wire::sum_words::<16>(s.dst6.as_ptr())
        + icmp_len as u32
        + IPPROTO_ICMPV6 as u32;
    let Some(c) = frame.ptr(ETH_HLEN + IPV6_HLEN + 2, 2) else {
        return aborted;
    };
    wire::st16(c, checksum_of(sum));
    let Some(e) = frame.ptr(0, ETH_HLEN) else {
        return aborted;
    };
    wire::put_eth(e, s.dmac, s.smac, ETH_P_IPV6);
    if s.resolved != 0 {
        forward::out(ctx, s.ifindex, Reason::Translated, KIND).0
    } else {
        s.pass_verdict
    }
}

/// RFC 7915 5.2 + 5.3: an ICMPv6 error (source and destination already mapped into
/// `s.src4` / `s.dst4`, hop limit checked) to ICMPv4.
#[inline(never)]
pub fn error_6to4(ctx: *mut xdp_md, cfg: &XlatConfig, s: &mut Scratch, _l4: u32) -> u32 {
    const KIND: TunnelKind = TunnelKind::Xlat6to4;
    let drop = |r: Reason| Verdict::drop(r, KIND).0;
    let ctx = &XdpContext::new(ctx);
    let frame = sub::frame_of(ctx.ctx);
    let Some(p) = frame.ptr(ETH_HLEN, IPV6_HLEN) else {
        return drop(Reason::Malformed);
    };
    let ip = Ipv6(p);
    let end = ETH_HLEN + IPV6_HLEN + ip.payload_len() as usize;
    // The caller did the outer walk (`s.old_hdr`, outer id / fragment word in `s`), the
    // checksum sum (`s.sum`) and the inner walk (`s.w_*`).
    let l4 = ETH_HLEN + (s.old_hdr as usize & 0xfff);
    if l4 + ICMP_HLEN + IPV6_HLEN > end {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let icmp_len = end - l4;
    let old_outer = sum6(ip.src_ptr()) + sum6(ip.dst_ptr());
    if fold(s.sum + old_outer + icmp_len as u32 + IPPROTO_ICMPV6 as u32) != 0xffff {
        return drop(Reason::XlatIcmpBadChecksum);
    }
    let Some(h) = frame.ptr(l4, ICMP_HLEN) else {
        return drop(Reason::Malformed);
    };
    let (ty, code) = unsafe { (*h, *h.add(1)) };
    let rest = get32(unsafe { h.add(4) });
    // RFC 4884 length attribute (destination unreachable, time exceeded; 64-bit words).
    let body_len = icmp_len - ICMP_HLEN;
    let ipl = if matches!(ty, 1 | 3) {
        (unsafe { *h.add(4) }) as usize * 8
    } else {
        0
    };
    if ipl > body_len {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let has_ext = ipl != 0 && ipl != body_len;

    // The packet in error (RFC 7915 5.3).
    let in_off = l4 + ICMP_HLEN;
    let Some(q) = frame.ptr(in_off, IPV6_HLEN) else {
        return drop(Reason::XlatIcmpUntranslatable);
    };
    let inner = Ipv6(q);
    if inner.version() != 6 {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let iw = Walk::from_scratch(s);
    let rest_off = iw.upper;
    if rest_off > end {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let mut rest_len = end - rest_off;
    let in_ext = rest_off - in_off - IPV6_HLEN;
    if has_ext && ipl < IPV6_HLEN + in_ext {
        return drop(Reason::XlatIcmpUntranslatable);
    }
    let in_payload = inner.payload_len() as usize;
    let in_upper_len = if in_payload > in_ext {
        in_payload - in_ext
    } else {
        0
    };
    let in_first = iw.frag_word >> 3 == 0;
    let in_more = iw.frag_word & 1 != 0;
    let mut in_type_code = 0u16;
    let mut in_new_type_code = 0u16;
    if iw.proto == IPPROTO_ICMPV6 && in_first && rest_len >= 2 {
        let Some(t) = frame.ptr(rest_off, 2) else {
            return drop(Reason::XlatIcmpUntranslatable);
        };
        in_type_code = get16(t);
        let (t, c) = ((in_type_code >> 8) as u8, in_type_code as u8);
        if icmp6_is_error(t) {
            return drop(Reason::XlatIcmpUntranslatable);
        }
        match icmp6_to_icmp4(t, c, [0; 4]) {
            IcmpMapping::Info { ty, code } => in_new_type_code = ((ty as u16) << 8) | code as u16,
            _ => return drop(Reason::XlatIcmpUntranslatable),
        }
    }
    let (Some(isrc4), Some(idst4)) = (
        map_6to4(inner.src_ptr(), cfg),
        map_6to4(inner.dst_ptr(), cfg),
    ) else {
        return drop(Reason::XlatIcmpUntranslatable);
    };
    s.isrc4 = isrc4.to_be_bytes();
    s.idst4 = idst4.to_be_bytes();

    // RFC 7915 5.2: type, code, MTU / pointer.
    let (t4, c4, rest4) = match icmp6_to_icmp4(ty, code, rest.to_be_bytes()) {
        IcmpMapping::Error { ty, code, rest } => (ty, code, u32::from_be_bytes(rest)),
        IcmpMapping::TooBig { ty, code } => (
            ty,
            code,
            frag_needed_mtu_6to4(rest, u32::MAX, u32::MAX) as u32,
        ),
        _ => return drop(Reason::XlatIcmpUntranslatable),
    };

    s.ext_len = 0;
    let mut rest4 = rest4;
    if has_ext {
        // ICMPv4 destination unreachable and time exceeded both have a length attribute.
        let (orig_rest, attr) = place_extension(
            s,
            in_off + ipl,
            body_len - ipl,
            ipl,
            IPV6_HLEN + in_ext,
            IPV4_HLEN,
            ROOM4,
            4,
            true,
        );
        rest_len = orig_rest;
        rest4 = (rest4 & 0xff00_ffff) | ((attr as u32) << 16);
    }
    let new_total = if s.ext_len != 0 {
        IPV4_HLEN
            + ICMP_HLEN
            + IPV4_HLEN
            + (s.pad_at as usize + s.pad_len as usize + s.ext_len as usize)
    } else {
        IPV4_HLEN + ICMP_HLEN + IPV4_HLEN + rest_len
    };
    let capped = if new_total > ICMP4_ERROR_MAX {
        ICMP4_ERROR_MAX
    } else {
        new_total
    };
    let reset = cfg.flags & XLAT_RESET_TRAFFIC_CLASS != 0;
    let in_total = IPV4_HLEN + in_upper_len;
    s.sum = sum6(inner.src_ptr()) + sum6(inner.dst_ptr());
    s.in_tos = if reset { 0 } else { inner.traffic_class() };
    s.in_ttl = inner.hop_limit();
    s.next = iw.proto;
    s.in_proto = if iw.proto == IPPROTO_ICMPV6 {
        IPPROTO_ICMP
    } else {
        iw.proto
    };
    s.in_len = in_total as u16;
    s.in_upper = in_upper_len as u16;
    s.in_tc_old = in_type_code;
    s.in_tc_new = in_new_type_code;
    s.flags = if in_first { FLAG_FIRST } else { 0 };
    if iw.has_frag {
        s.in_id = iw.frag_id & 0xffff;
        s.in_frag_word = ((in_more as u16) << 13) | (iw.frag_word >> 3);
    } else {
        // The original identification is unknowable: zero (RFC 6864 4.1 for DF).
        s.in_id = 0;
        s.in_frag_word = if df_for_translated_ipv4(in_total as u32) {
            IP_DF
        } else {
            0
        };
    }
    s.tos = if reset { 0 } else { ip.traffic_class() };
    s.hop = ip.hop_limit();
    s.icmp_tc = ((t4 as u16) << 8) | c4 as u16;
    s.icmp_rest = rest4;
    s.old_hdr = (rest_off - ETH_HLEN) as u16;
    s.payload = rest_len as u16;
    s.total4 = capped as u16;
    PROCEED
}

/// The route of a translated ICMPv4 error and the inner transport checksum (in place).
/// [`PROCEED`] or a finished verdict.
#[inline(never)]
pub fn finish_6to4(ctx: *mut xdp_md, s: &mut Scratch) -> u32 {
    const KIND: TunnelKind = TunnelKind::Xlat6to4;
    let xdp = &XdpContext::new(ctx);
    let old = s.sum;
    let code = sub::route(ctx, s, 0, s.total4 as u32);
    let frame = Frame::new(xdp);
    let Some(rx) = frame.ptr(0, ETH_HLEN) else {
        return Verdict::drop(Reason::Malformed, KIND).0;
    };
    if let Some(v) = route_exit(code, KIND, s, rx) {
        return v;
    }
    if s.resolved != 0 {
        s.hop -= 1;
    }
    let rest_off = ETH_HLEN + (s.old_hdr as usize & 0xfff);
    let rest_len = s.payload as usize;
    let untranslatable = Verdict::drop(Reason::XlatIcmpUntranslatable, KIND).0;
    if payload_sum(ctx, s, rest_off) != 0 {
        return untranslatable;
    }
    let frame = Frame::new(xdp);
    let new = sum4(u32::from_be_bytes(s.isrc4)) + sum4(u32::from_be_bytes(s.idst4));
    if s.flags & FLAG_FIRST != 0 {
        match s.next {
            IPPROTO_TCP if rest_len >= 18 => {
                if let Some(c) = frame.ptr(rest_off + 16, 2) {
                    patch16(s, c, update(get16(c), old, new));
                }
            }
            IPPROTO_UDP if rest_len >= 8 => {
                if let Some(c) = frame.ptr(rest_off + 6, 2) {
                    patch16(s, c, udp_mangle_zero(update(get16(c), old, new)));
                }
            }
            IPPROTO_ICMPV6 if rest_len >= 8 => {
                if let Some(t) = frame.ptr(rest_off, 4) {
                    let pseudo = old + s.in_upper as u32 + IPPROTO_ICMPV6 as u32;
                    let c = update(
                        get16(unsafe { t.add(2) }),
                        s.in_tc_old as u32 + pseudo,
                        s.in_tc_new as u32,
                    );
                    patch16(s, t, s.in_tc_new);
                    patch16(s, unsafe { t.add(2) }, c);
                }
            }
            _ => {}
        }
    }
    // Without an extension the error carries the inner payload's first bytes up to the
    // 576-byte limit: 20 + 8 + 20 bytes of headers in front of them.
    let headers = IPV4_HLEN + ICMP_HLEN + IPV4_HLEN;
    let capped = s.total4 as usize;
    if s.ext_len == 0
        && capped >= headers
        && kept_sum(ctx, s, rest_off, rest_len, capped - headers) != 0
    {
        return untranslatable;
    }
    if save_extension(ctx, s) != 0 {
        return untranslatable;
    }
    PROCEED
}

/// Resizes the frame around the inner payload and writes Ethernet, IPv4, ICMPv4 and the
/// inner IPv4 header from `s`, then the ICMPv4 checksum.
#[inline(never)]
pub fn rewrite_6to4(ctx: *mut xdp_md, s: &Scratch) -> u32 {
    const KIND: TunnelKind = TunnelKind::Xlat6to4;
    let aborted = Verdict::new(Action::Aborted, Reason::AdjustFailed, KIND).0;
    let ctx = &XdpContext::new(ctx);
    let capped = (s.total4 as usize) & 0x3ff;
    let delta = (s.old_hdr as i32 & 0xfff) - (IPV4_HLEN + ICMP_HLEN + IPV4_HLEN) as i32;
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return aborted;
    }
    if !resize_frame(ctx, ETH_HLEN + capped) {
        return aborted;
    }
    if restore_extension(ctx.ctx, s, ETH_HLEN + IPV4_HLEN + ICMP_HLEN + IPV4_HLEN) != 0 {
        return aborted;
    }
    let frame = Frame::new(ctx);
    let Some(p) = frame.ptr(0, ETH_HLEN + IPV4_HLEN + ICMP_HLEN + IPV4_HLEN) else {
        return aborted;
    };
    if capped < IPV4_HLEN + ICMP_HLEN + IPV4_HLEN {
        return aborted;
    }
    let icmp = unsafe { p.add(ETH_HLEN + IPV4_HLEN) };
    wire::put_ipv4(
        unsafe { icmp.add(ICMP_HLEN) },
        s.in_tos,
        s.in_len,
        s.in_id as u16,
        s.in_frag_word,
        s.in_ttl,
        s.in_proto,
        s.isrc4.as_ptr(),
        s.idst4.as_ptr(),
    );
    wire::put_icmp(icmp, s.icmp_tc, s.icmp_rest);
    wire::put_ipv4(
        unsafe { p.add(ETH_HLEN) },
        s.tos,
        capped as u16,
        s.id as u16,
        s.frag_word,
        s.hop,
        IPPROTO_ICMP,
        s.src4.as_ptr(),
        s.dst4.as_ptr(),
    );
    let body = if s.ext_len == 0 {
        // The kept payload's sum (`finish_6to4`) and the headers just written.
        s.msg_sum + wire::sum::<{ ICMP_HLEN + IPV4_HLEN }>(icmp)
    } else {
        if sub::sum::<ICMP4_SUM_MAX>(
            ctx.ctx,
            s as *const _ as *mut _,
            (ETH_HLEN + IPV4_HLEN) as u32,
            (capped - IPV4_HLEN) as u32,
        ) != 0
        {
            return aborted;
        }
        s.sum
    };
    let frame = Frame::new(ctx);
    let Some(c) = frame.ptr(ETH_HLEN + IPV4_HLEN + 2, 2) else {
        return aborted;
    };
    wire::st16(c, checksum_of(body));
    let Some(e) = frame.ptr(0, ETH_HLEN) else {
        return aborted;
    };
    wire::put_eth(e, s.dmac, s.smac, ETH_P_IP);
    if s.resolved != 0 {
        forward::out(ctx, s.ifindex, Reason::Translated, KIND).0
    } else {
        s.pass_verdict
    }
}
