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
//! How: the old header fields are read into scalars and a per-CPU scratch map value
//! (addresses), the transport checksum is updated in place (RFC 1624, so a wrong
//! checksum stays wrong by the same amount), then `bpf_xdp_adjust_head` grows or shrinks
//! the room in front of the payload, which never moves, and the new headers are written
//! into it. ICMP errors get their inner packet translated the same way (`icmp`), and are
//! cut to 1280 bytes (ICMPv6) / 576 bytes (ICMPv4) with a full checksum.
//!
//! Exits (kind `xlat4to6` / `xlat6to4`): `translated` (tx/redirect); the FIB outcomes
//! `fib_no_neighbour` / `fib_not_forwarded` / `fragmented_by_kernel` pass the TRANSLATED
//! packet to the kernel with the received MACs and the TTL / hop limit unchanged (the
//! kernel decrements it when forwarding); `fib_unreachable` drops; TTL <= 1 ->
//! ICMP time exceeded (`ttl_expired`, tx) via `icmp_error`; too big with DF -> ICMP
//! fragmentation needed / packet too big (`too_big`, tx). What XDP cannot do: an IPv4
//! packet without DF (or a fragment) whose translation exceeds the lowest IPv6 MTU or
//! the next hop's must become several IPv6 fragments -> dropped, `xlat_needs_fragmentation`.
//! Not answered with ICMP (dropped and counted): untranslatable sources (the RFC's
//! ICMP 3/13 or 1/1), unsupported headers, UDP checksum zero by configuration.

mod addr;
mod csum;
mod sub;
pub use sub::{LocalKey, LocalValue};
mod icmp;
mod v4_to_v6;
mod v6_to_v4;

pub use v4_to_v6::from_ipv4;
pub use v6_to_v4::from_ipv6;

/// What a preparing step returns when the packet is to be rewritten (anything else is a
/// finished `Verdict`).
pub const PROCEED: u32 = 0xffff_fffe;
/// What a preparing step returns for an ICMP error (translated by `icmp`).
pub const ICMP_ERROR: u32 = 0xffff_fffd;
/// A preparing step asks for ICMP time exceeded about the received packet.
pub const SEND_TIME_EXCEEDED: u32 = 0xffff_fffc;
/// A preparing step asks for ICMP too big about the received packet (MTU in
/// `Scratch::icmp_rest`).
pub const SEND_TOO_BIG: u32 = 0xffff_fffb;

/// Per-CPU scratch value (`VDMM_XLAT_TMP`): what must survive `bpf_xdp_adjust_head` or
/// be passed by pointer (addresses for `bpf_fib_lookup`).
#[repr(C)]
pub struct Scratch {
    /// `bpf_fib_lookup` parameters (in map memory: the stack is too small for them at the
    /// depth the translator calls the FIB).
    pub fib: aya_ebpf::bindings::bpf_fib_lookup,
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
    pub _pad2: u16,
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
    pub w_segments_left: u8,
    pub _pad3: u8,
    /// IPv6 source / destination of the translated (4->6) packet.
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
    pub _pad4: u16,
}

/// `Scratch::flags`: DF set; UDP checksum zero to compute; first fragment (or whole).
pub const FLAG_DF: u8 = 1;
pub const FLAG_UDP_ZERO: u8 = 2;
pub const FLAG_FIRST: u8 = 4;

/// Largest UDP datagram whose checksum the translator computes (IPv4 UDP checksum zero).
pub const UDP_SUM_MAX: usize = 2048;
/// Largest ICMP error whose incoming checksum is verified (bigger ones are dropped).
pub const ICMP_VERIFY_MAX: usize = 2048;
