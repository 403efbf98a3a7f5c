//! Stateless IPv4/IPv6 translation (SIIT): RFC 7915 headers, RFC 6052 / RFC 7757
//! addresses, RFC 6791 ICMP sources, in XDP. The pure rules (address mapping, ICMP
//! type/code tables, MTU arithmetic, checksum updates) come from
//! `vdmm_common::translate`, the same code the host reference translator runs; this
//! module does the packet surgery around them.
//!
//! Which packets (after tunnel decap and binding encap had their chance, see `classify`):
//!
//! * IPv6 whose destination matches `VDMM_EAMT6` or the RFC 6052 prefix -> [`from_ipv6`].
//! * IPv4 whose destination matches `VDMM_EAMT4` -> [`from_ipv4`]; otherwise, with an
//!   RFC 6052 prefix set, every IPv4 packet whose destination the kernel would forward
//!   (`bpf_fib_lookup` does not say "not forwarded": no local address, and a route
//!   exists) and may be embedded under the prefix. Like Jool: the translator translates
//!   what is routed to it. Everything else: `XDP_PASS`, `no_match`.
//!
//! How: every check and decision is made first, with the results in a per-CPU scratch
//! map value ([`Scratch`]); the transport checksum is updated in place (RFC 1624, so a
//! wrong checksum stays wrong by the same amount); then `bpf_xdp_adjust_head` grows or
//! shrinks the room in front of the payload, which never moves, and the new headers are
//! written into it from the scratch value. ICMP errors get their inner packet translated
//! the same way (`icmp`), are cut to 1280 bytes (ICMPv6) / 576 bytes (ICMPv4), and get
//! a full checksum; an incoming error with a bad checksum is dropped.
//!
//! Verifier notes (why the code is shaped like this): the steps are BPF subprograms
//! (`select`, `prepare`, `finish`, and in `sub` the checksum sum and the IPv6 extension
//! header walk) that hand their results over in the scratch map, whose contents the
//! verifier does not track, so the paths of one step do not multiply the states of the
//! next (inline, the program exceeded 1M instructions). The ICMP error functions have
//! the largest frames and call no further subprogram, so the call chain stays within 512
//! bytes of stack. Each subprogram call costs time on every packet (see
//! docs/ebpf-notes.md), so what can be inline is: the final `rewrite` (nothing follows
//! it), the route and "forwarded?" look-ups (`sub::route`, `sub::v4_forwarded`), and
//! the walk when there is no extension header. Subprograms that only read the frame
//! take `data` / `data_end` with volatile loads (`sub::frame_of`): otherwise LLVM turns
//! the context argument into packet-pointer arguments, which the verifier rejects.
//!
//! Exits (kind `xlat4to6` / `xlat6to4`): `translated` (tx/redirect); the FIB outcomes
//! `fib_no_neighbour` / `fib_not_forwarded` / `fragmented_by_kernel` (6->4 without DF,
//! too big for the IPv4 next hop) pass the TRANSLATED packet to the kernel with the
//! received MACs and the TTL / hop limit unchanged (the kernel decrements it when it
//! forwards); `fib_unreachable` drops; TTL <= 1 -> ICMP time exceeded (`ttl_expired`,
//! tx) via `icmp_error`; too big with DF -> ICMP fragmentation needed (IPv6 MTU - 20) /
//! packet too big (IPv4 MTU + 20, at least 1280) (`too_big`, tx).
//!
//! An IPv4 packet without DF (or an IPv4 fragment) whose translation exceeds the lowest
//! IPv6 MTU or the next hop's needs several IPv6 fragments, which XDP cannot produce: it
//! is passed to the kernel unchanged (`xlat_fragmented_by_kernel`), which fragments it
//! along its route into the veth `vdmmx0` (MTU = lowest IPv6 MTU - 28); the fragments
//! arrive on `vdmmx1` ([`XlatConfig::frag_ifindex`](vdmm_common::translate::maps::XlatConfig))
//! and are translated there. On `vdmmx1` itself, or with no slow path set up, it is a
//! counted drop (`xlat_needs_fragmentation`).
//!
//! Refused packets are answered with the ICMP error RFC 7915 asks for (built by
//! `icmp_error`, which never answers an ICMP error or a source that is not one host's):
//! an unmappable source 3/13 / 1/1 (`xlat_source_untranslatable`), UDP checksum zero
//! that may not be computed 3/13, an unexpired IPv4 source route 3/5
//! (`xlat_source_route`), a routing header with segments left 4/0 at Segments Left
//! (`xlat_segments_left`), an extension header after the fragment header 1/1
//! (`xlat_unsupported_header`).
//!
//! ICMP errors with RFC 4884 extensions carry them through, with the length attribute
//! converted and the padding adjusted, or lose them where the new type has no length
//! attribute or they do not fit (see `icmp`).

use vdmm_common::Reason;

use crate::icmp_error::IcmpError;

pub(crate) mod addr;
mod sub;
pub use sub::{LocalKey, LocalValue};
mod icmp;
mod v4_to_v6;
mod v6_to_v4;
mod wire;

pub use v4_to_v6::from_ipv4;
pub use v6_to_v4::from_ipv6;

/// What a preparing step returns when the packet is to be rewritten (anything else is a
/// finished `Verdict`).
pub const PROCEED: u32 = 0xffff_fffe;
/// What a preparing step returns for an ICMP error (translated by `icmp`).
pub const ICMP_ERROR: u32 = 0xffff_fffd;
/// A preparing step asks for an ICMP error about the received packet (what and why in
/// `Scratch::err_*`, see [`send_error`]).
pub const SEND_ICMP: u32 = 0xffff_fffc;

/// `Scratch::err_kind` values.
const ERR_TIME_EXCEEDED: u8 = 0;
const ERR_TOO_BIG: u8 = 1;
const ERR_UNREACHABLE: u8 = 2;
const ERR_PARAM_PROBLEM: u8 = 3;

/// Records in `s` that the received packet is to be answered with `error`, counted
/// under `reason` (tx when sent, drop when it must not be answered), and returns
/// [`SEND_ICMP`].
#[inline(always)]
pub fn send_error(s: &mut Scratch, error: IcmpError, reason: Reason) -> u32 {
    let (kind, code, arg) = match error {
        IcmpError::TimeExceeded => (ERR_TIME_EXCEEDED, 0, 0),
        IcmpError::TooBig { mtu } => (ERR_TOO_BIG, 0, mtu),
        IcmpError::Unreachable { code } => (ERR_UNREACHABLE, code, 0),
        IcmpError::ParamProblem { code, pointer } => (ERR_PARAM_PROBLEM, code, pointer),
    };
    s.err_kind = kind;
    s.err_code = code;
    s.err_arg = arg;
    s.err_reason = reason as u32;
    SEND_ICMP
}

/// The error [`send_error`] recorded, and its reason.
#[inline(always)]
pub fn recorded_error(s: &Scratch) -> (IcmpError, Reason) {
    let error = match s.err_kind {
        ERR_TIME_EXCEEDED => IcmpError::TimeExceeded,
        ERR_TOO_BIG => IcmpError::TooBig { mtu: s.err_arg },
        ERR_UNREACHABLE => IcmpError::Unreachable { code: s.err_code },
        _ => IcmpError::ParamProblem {
            code: s.err_code,
            pointer: s.err_arg,
        },
    };
    let reason = match s.err_reason {
        r if r == Reason::TooBig as u32 => Reason::TooBig,
        r if r == Reason::XlatSourceUntranslatable as u32 => Reason::XlatSourceUntranslatable,
        r if r == Reason::XlatSourceRoute as u32 => Reason::XlatSourceRoute,
        r if r == Reason::XlatSegmentsLeft as u32 => Reason::XlatSegmentsLeft,
        r if r == Reason::XlatUnsupportedHeader as u32 => Reason::XlatUnsupportedHeader,
        r if r == Reason::XlatUdpZeroChecksum as u32 => Reason::XlatUdpZeroChecksum,
        _ => Reason::TtlExpired,
    };
    (error, reason)
}

/// Per-CPU scratch value (`VDMM_XLAT_TMP`): what must survive `bpf_xdp_adjust_head` or
/// be passed by pointer (addresses for `bpf_fib_lookup`).
#[repr(C)]
pub struct Scratch {
    /// `bpf_fib_lookup` parameters (in map memory: the stack is too small for them at the
    /// depth the translator calls the FIB).
    pub fib: aya_ebpf::bindings::bpf_fib_lookup,
    /// IPv6 source / destination of the translated (4->6) packet. The addresses come
    /// first, 4-byte aligned: `wire` reads them as words.
    pub src6: [u8; 16],
    pub dst6: [u8; 16],
    /// IPv6 addresses of the packet inside a translated ICMPv4 error.
    pub isrc6: [u8; 16],
    pub idst6: [u8; 16],
    /// IPv4 source / destination of the translated (6->4) packet.
    pub src4: [u8; 4],
    pub dst4: [u8; 4],
    /// IPv4 addresses of the packet inside a translated ICMPv6 error.
    pub isrc4: [u8; 4],
    pub idst4: [u8; 4],
    /// Ethernet addresses to write on the translated frame (the FIB's, or the received
    /// ones when the packet goes to the kernel).
    pub dmac: u64,
    pub smac: u64,
    /// Egress interface when `resolved`.
    pub ifindex: u32,
    /// `Verdict` (raw) when the translated packet is passed to the kernel.
    pub pass_verdict: u32,
    /// The new header, decided before the frame is resized. Values held in map memory
    /// are opaque to the verifier, which keeps the number of states it explores small.
    pub resolved: u8,
    pub tos: u8,
    pub hop: u8,
    pub next: u8,
    pub frag: u8,
    /// `FLAG_*` bits decided by the checks for the finishing step.
    pub flags: u8,
    pub frag_word: u16,
    pub id: u32,
    /// Bytes of headers in front of the payload in the received frame (IPv4 IHL, or
    /// IPv6 header + extension headers).
    pub old_hdr: u16,
    /// IP total length of the received packet, and of the upper layer.
    pub total: u16,
    pub payload: u16,
    pub total4: u16,
    /// New ICMP type << 8 | code, and the 4 bytes after the checksum (errors).
    pub icmp_tc: u16,
    /// Frame offset of the ICMP header of an error being translated.
    pub icmp_at: u16,
    pub icmp_rest: u32,
    /// Results of the subprograms below, read back by the caller (values in map memory
    /// are unknown to the verifier, so the caller's paths join again).
    pub sum: u32,
    pub mtu: u32,
    pub w_frag_id: u32,
    pub w_upper: u16,
    pub w_frag_word: u16,
    pub w_proto: u8,
    pub w_has_frag: u8,
    pub _pad3: u8,
    /// Frame offset of the Segments Left field of a routing header with segments left
    /// (0: none).
    pub w_segments_left_at: u16,
    /// The ICMP error to send about the received packet ([`send_error`]).
    pub err_kind: u8,
    pub err_code: u8,
    pub err_arg: u32,
    pub err_reason: u32,
    /// RFC 4884 extension of an ICMP error being translated (`icmp`): its length (0:
    /// none or removed) and frame offset as received; where the zero padding goes,
    /// relative to the inner payload (which does not move), and how long it is; a copy
    /// of the extension kept across the resize; and zeros to pad with (never written).
    pub ext_len: u16,
    pub ext_from: u16,
    pub pad_at: u16,
    pub pad_len: u16,
    pub ext: [u8; EXT_MAX],
    pub zeros: [u8; 128],
    /// IPv4 options of the received packet (RFC 7915 4.1 source route check).
    pub opts: [u8; vdmm_common::translate::header::IPV4_OPTIONS_BUF],
    /// Fields of an inner header (ICMP error), kept across the resize.
    pub in_tos: u8,
    pub in_ttl: u8,
    pub in_proto: u8,
    pub in_frag: u8,
    pub in_frag_word: u16,
    pub in_len: u16,
    pub in_id: u32,
    /// ICMP type/code word inside an error, before and after translation; the inner
    /// upper-layer length (ICMP pseudo-header).
    pub in_tc_old: u16,
    pub in_tc_new: u16,
    pub in_upper: u16,
    /// Frame offset of the end of the received ICMP error message.
    pub msg_end: u16,
    /// ICMP error being translated: the unfolded sum of the received message (from
    /// `icmp::before_error`), then of the inner payload the translated error keeps, so
    /// that its checksum needs no second pass over the payload (`icmp`).
    pub msg_sum: u32,
}

/// Makes the frame `want` bytes long (cuts Ethernet padding or what an ICMP error may not
/// carry; grows only behind an RFC 4884 extension). The usual case, a frame that already
/// has that length, is seen by a pointer comparison: no helper call. False when the
/// kernel refuses the change.
#[inline(always)]
pub fn resize_frame(ctx: &aya_ebpf::programs::XdpContext, want: usize) -> bool {
    let frame = crate::packet::Frame::new(ctx);
    if want <= crate::packet::MAX_OFFSET && frame.start + want == frame.end {
        return true;
    }
    let have = crate::packet::frame_len(ctx);
    unsafe {
        aya_ebpf::helpers::generated::bpf_xdp_adjust_tail(ctx.ctx, want as i32 - have as i32) == 0
    }
}

// `wire` reads and writes the addresses as aligned words.
const _: () = {
    use core::mem::offset_of;
    assert!(core::mem::align_of::<Scratch>() >= 4);
    assert!(offset_of!(Scratch, src6) % 4 == 0 && offset_of!(Scratch, dst6) % 4 == 0);
    assert!(offset_of!(Scratch, isrc6) % 4 == 0 && offset_of!(Scratch, idst6) % 4 == 0);
    assert!(offset_of!(Scratch, src4) % 4 == 0 && offset_of!(Scratch, dst4) % 4 == 0);
    assert!(offset_of!(Scratch, isrc4) % 4 == 0 && offset_of!(Scratch, idst4) % 4 == 0);
};

/// `Scratch::flags`: DF set; UDP checksum zero to compute; first fragment (or whole).
pub const FLAG_DF: u8 = 1;
pub const FLAG_UDP_ZERO: u8 = 2;
pub const FLAG_FIRST: u8 = 4;

/// Largest UDP datagram whose checksum the translator computes (IPv4 UDP checksum zero).
pub const UDP_SUM_MAX: usize = 2048;
/// Largest RFC 4884 extension carried: what fits a 1280-byte ICMPv6 error beside the
/// headers and 128 bytes of datagram.
pub const EXT_MAX: usize = 1280 - 48 - 128;

/// Largest ICMP error whose incoming checksum is verified (bigger ones are dropped).
pub const ICMP_VERIFY_MAX: usize = 2048;
