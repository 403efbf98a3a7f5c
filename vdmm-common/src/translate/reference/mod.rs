//! Host-side reference translator (RFC 7915), over byte buffers.
//!
//! [`translate_4to6`] and [`translate_6to4`] take one raw IP packet (from the IP header
//! on, no link header) and return an [`Outcome`]: the translated packet(s), a pass
//! (not for the translator), or a drop with the ICMP error to send back. Fragments are
//! translated one by one, never reassembled.
//!
//! The steps are written the way the XDP port runs them, in this order, each named
//! after its RFC section:
//!
//! 1. parse and validate the IP header (RFC 791 / RFC 1812 5.2.2, RFC 8200);
//! 2. "knowing when to translate" (RFC 7915 4.6 / 5.6): the destination must map;
//! 3. source mapping (section 6, RFC 7757, RFC 6791 for ICMP errors);
//! 4. TTL / hop limit (4.1 / 5.1), IPv4 source route (4.1), IPv6 routing header (5.1);
//! 5. transport: TCP/UDP checksums updated incrementally, ICMP translated (4.2-4.5 /
//!    5.2-5.5), the packet inside an ICMP error translated by the same code;
//! 6. the new IP header (4.1 / 5.1 / 5.1.1) in front of the payload;
//! 7. size: ICMP errors truncated (1280 for ICMPv6, RFC 4443 2.4(c); 576 for ICMPv4,
//!    RFC 1812 4.3.2.3), IPv4 without DF fragmented to the lowest IPv6 MTU (section 4),
//!    DF packets larger than the next hop answered with an ICMP error (5.1.1).
//!
//! The only allocation is the output buffer(s); the transforms themselves are the
//! `no_std` functions of the parent module.

extern crate alloc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::XlatReason;
use super::checksum;
use super::header::{self, FRAG_HDR_LEN, IPV4_HDR_LEN, IPV6_HDR_LEN};
use super::icmp;

mod v4_to_v6;
mod v6_to_v4;

pub mod conformance;
#[cfg(test)]
mod tests;

pub use v4_to_v6::translate_4to6;
pub use v6_to_v4::translate_6to4;

/// An ICMP error the translator sends back to the sender of a packet it dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpReply {
    pub ty: u8,
    pub code: u8,
    /// The 4 bytes after the checksum (pointer, MTU, unused).
    pub rest: [u8; 4],
    /// The whole ICMP error packet (IP header on), when the configuration has a source
    /// address of that family (`icmp_source_v4` / `icmp_source_v6`).
    pub packet: Option<Vec<u8>>,
}

/// What the translator does with one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Translated: the packet(s) to send (more than one when fragmented), raw IP.
    Translated {
        packets: Vec<Vec<u8>>,
        reason: XlatReason,
    },
    /// Not for the translator (the destination has no mapping): normal forwarding.
    Pass(XlatReason),
    /// Dropped, with the ICMP error to send back when the RFC asks for one.
    Drop {
        reason: XlatReason,
        icmp: Option<IcmpReply>,
    },
}

impl Outcome {
    /// The translated packets, if any.
    pub fn packets(&self) -> Option<&[Vec<u8>]> {
        match self {
            Outcome::Translated { packets, .. } => Some(packets),
            _ => None,
        }
    }

    /// The counter reason of this outcome.
    pub fn reason(&self) -> XlatReason {
        match self {
            Outcome::Translated { reason, .. } => *reason,
            Outcome::Pass(r) => *r,
            Outcome::Drop { reason, .. } => *reason,
        }
    }

    pub(crate) fn drop(reason: XlatReason) -> Self {
        Outcome::Drop { reason, icmp: None }
    }
}

impl core::fmt::Display for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Outcome::Translated { packets, reason } => {
                write!(f, "{} ({} packet(s):", reason.name(), packets.len())?;
                for p in packets {
                    write!(f, " {}B", p.len())?;
                }
                write!(f, ")")
            }
            Outcome::Pass(r) => write!(f, "pass {}", r.name()),
            Outcome::Drop { reason, icmp: None } => write!(f, "drop {}", reason.name()),
            Outcome::Drop {
                reason,
                icmp: Some(i),
            } => {
                write!(
                    f,
                    "drop {} with ICMP type {} code {}",
                    reason.name(),
                    i.ty,
                    i.code
                )
            }
        }
    }
}

/// Why a step failed: the reason, and the ICMP error (type, code, rest) the RFC asks
/// to send back, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fail {
    pub reason: XlatReason,
    pub icmp: Option<(u8, u8, [u8; 4])>,
}

impl Fail {
    pub(crate) const fn silent(reason: XlatReason) -> Self {
        Fail { reason, icmp: None }
    }
    pub(crate) const fn icmp(reason: XlatReason, ty: u8, code: u8, rest: [u8; 4]) -> Self {
        Fail {
            reason,
            icmp: Some((ty, code, rest)),
        }
    }
}

/// RFC 1812 4.3.2.7: an ICMPv4 error is not sent about a packet whose source does not
/// name one host (0/8, 127/8, 224/4 multicast, 240/4 with the broadcast address) or
/// whose destination is multicast or broadcast.
pub(crate) fn may_answer_v4(src: &[u8; 4], dst: &[u8; 4]) -> bool {
    !matches!(src[0], 0 | 127 | 224..=255) && dst[0] < 224
}

/// RFC 4443 2.4 (e): an ICMPv6 error (of type `ty`) is not sent about a packet from the
/// unspecified address, loopback or a multicast address, nor about one to a multicast
/// address unless it is packet too big.
pub(crate) fn may_answer_v6(src: &[u8; 16], dst: &[u8; 16], ty: u8) -> bool {
    let mut loopback = [0u8; 16];
    loopback[15] = 1;
    src[0] != 0xff && *src != [0u8; 16] && *src != loopback && (dst[0] != 0xff || ty == 2)
}

/// Reads a big-endian u16 at `off` (callers check the length first).
#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Writes a big-endian u16 at `off`.
#[inline]
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Ones' complement sum of a byte string (odd length padded with a zero byte).
pub(crate) fn sum_bytes(mut sum: u32, b: &[u8]) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        sum = checksum::add_word(sum, u16::from_be_bytes([c[0], c[1]]));
        // Fold now and then so the u32 never overflows, whatever the length.
        if sum > 0xffff_0000 {
            sum = checksum::fold(sum) as u32;
        }
    }
    if let [last] = chunks.remainder() {
        sum = checksum::add_word(sum, (*last as u16) << 8);
    }
    sum
}

/// RFC 4884 section 4 (and RFC 7915 4.2 / 5.2, "ICMP Error Payload"): splits the body
/// of an ICMP error (after its 8-byte header) into the original datagram field and the
/// extension structure, from the length attribute (`unit`: 4 bytes for ICMPv4, 8 for
/// ICMPv6). Length 0, or a length covering the whole body, means no extension. A field
/// shorter than the 128 bytes RFC 4884 asks for is accepted (some routers send them;
/// Jool issue 396) and padded on the way out; one longer than the body is refused.
pub(crate) fn split_icmp_extension(
    body: &[u8],
    length_attr: u8,
    unit: usize,
) -> Result<(&[u8], &[u8]), Fail> {
    let ipl = length_attr as usize * unit;
    if ipl == 0 || ipl == body.len() {
        return Ok((body, &[]));
    }
    if ipl > body.len() {
        return Err(Fail::silent(XlatReason::IcmpExtension));
    }
    Ok(body.split_at(ipl))
}

/// RFC 4884 section 4 / RFC 7915 4.2, 5.2: lays out the translated body of an ICMP
/// error ([`icmp::icmp_extension_layout`]): the translated original datagram, then
/// (when the extension fits the `room` left by the error size limit and the new type
/// has a length attribute) zero padding and the extension unchanged (opaque; addresses
/// inside are not translated). Returns the body and the new length attribute (0 without
/// an extension, which is then removed). The caller truncates to the limit.
pub(crate) fn attach_icmp_extension(
    mut translated: Vec<u8>,
    ext: &[u8],
    room: usize,
    unit: usize,
    has_length_attr: bool,
) -> (Vec<u8>, u8) {
    if ext.is_empty() {
        return (translated, 0);
    }
    let layout = if has_length_attr {
        icmp::icmp_extension_layout(translated.len(), ext.len(), room, unit)
    } else {
        None
    };
    let Some((ipl, pad)) = layout else {
        translated.truncate(room);
        return (translated, 0);
    };
    translated.truncate(ipl);
    translated.resize(ipl + pad, 0);
    let attr = (translated.len() / unit) as u8;
    translated.extend_from_slice(ext);
    (translated, attr)
}

/// IPv4 identification for a translated packet that has none to copy (RFC 7915 5.1,
/// "set according to a Fragment Identification algorithm at the translator"). The
/// reference uses a scrambled counter; the data plane uses `bpf_get_prandom_u32`.
pub(crate) fn next_ipv4_id() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0x2545_f491);
    let n = NEXT.fetch_add(0x9e37_79b9, Ordering::Relaxed);
    let h = n ^ (n >> 15);
    (h.wrapping_mul(0x2c1b_3c6d) >> 16) as u16
}

/// RFC 8200 section 4.5: splits the fragmentable part `data` (which starts at fragment
/// offset `offset8` * 8 of the original) into IPv6 fragments no larger than `mtu`, each
/// `hdr6` (with payload length and next header fixed up) + fragment header + chunk.
/// `more` is the M flag of the last fragment (the original's MF).
pub(crate) fn fragment_ipv6(
    hdr6: &[u8; 40],
    upper_protocol: u8,
    data: &[u8],
    offset8: u16,
    more: bool,
    id: u16,
    mtu: u32,
) -> Vec<Vec<u8>> {
    let room = (mtu as usize).saturating_sub(IPV6_HDR_LEN + FRAG_HDR_LEN) & !7;
    let room = room.max(8);
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() || (pos == 0 && data.is_empty()) {
        let end = (pos + room).min(data.len());
        let last = end == data.len();
        let mut p = Vec::with_capacity(IPV6_HDR_LEN + FRAG_HDR_LEN + end - pos);
        p.extend_from_slice(hdr6);
        p[6] = header::PROTO_FRAGMENT;
        put16(&mut p, 4, (FRAG_HDR_LEN + end - pos) as u16);
        let off = offset8 + (pos / 8) as u16;
        p.extend_from_slice(&header::build_fragment_header(
            upper_protocol,
            off,
            if last { more } else { true },
            id,
        ));
        p.extend_from_slice(&data[pos..end]);
        out.push(p);
        if last {
            break;
        }
        pos = end;
    }
    out
}

/// RFC 791 fragmentation of a translated IPv4 packet (20-byte header, no options) that
/// exceeds `mtu` without DF.
pub(crate) fn fragment_ipv4(pkt: &[u8], mtu: u32) -> Vec<Vec<u8>> {
    let hdr: [u8; 20] = pkt[..IPV4_HDR_LEN].try_into().expect("20-byte header");
    let data = &pkt[IPV4_HDR_LEN..];
    let room = ((mtu as usize).saturating_sub(IPV4_HDR_LEN) & !7).max(8);
    let ff = be16(&hdr, 6);
    let (base8, orig_mf) = (ff & 0x1fff, ff & 0x2000 != 0);
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        let end = (pos + room).min(data.len());
        let last = end == data.len();
        let src: [u8; 4] = hdr[12..16].try_into().unwrap();
        let dst: [u8; 4] = hdr[16..20].try_into().unwrap();
        let h = header::build_ipv4_header(
            hdr[1],
            (IPV4_HDR_LEN + end - pos) as u16,
            be16(&hdr, 4),
            false,
            if last { orig_mf } else { true },
            base8 + (pos / 8) as u16,
            hdr[8],
            hdr[9],
            &src,
            &dst,
        );
        let mut p = Vec::with_capacity(IPV4_HDR_LEN + end - pos);
        p.extend_from_slice(&h);
        p.extend_from_slice(&data[pos..end]);
        out.push(p);
        if last {
            break;
        }
        pos = end;
    }
    out
}

/// An ICMPv4 error from the translator (RFC 792 / RFC 1812 4.3.2): TOS 0xc0, TTL 64,
/// no DF, the first bytes of `original` so that the error is at most 576 bytes
/// (RFC 1812 4.3.2.3).
pub(crate) fn build_icmp4_error(
    src: [u8; 4],
    dst: [u8; 4],
    ty: u8,
    code: u8,
    rest: [u8; 4],
    original: &[u8],
) -> Vec<u8> {
    let body = &original[..original.len().min(576 - IPV4_HDR_LEN - 8)];
    let total = IPV4_HDR_LEN + 8 + body.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&header::build_ipv4_header(
        0xc0,
        total as u16,
        0,
        false,
        false,
        0,
        64,
        1,
        &src,
        &dst,
    ));
    p.extend_from_slice(&[ty, code, 0, 0]);
    p.extend_from_slice(&rest);
    p.extend_from_slice(body);
    let c = checksum::finish(sum_bytes(0, &p[IPV4_HDR_LEN..]));
    put16(&mut p, IPV4_HDR_LEN + 2, c);
    p
}

/// An ICMPv6 error from the translator (RFC 4443): hop limit 64, the first bytes of
/// `original` so that the error is at most 1280 bytes (section 2.4 (c)).
pub(crate) fn build_icmp6_error(
    src: [u8; 16],
    dst: [u8; 16],
    ty: u8,
    code: u8,
    rest: [u8; 4],
    original: &[u8],
) -> Vec<u8> {
    let body = &original[..original.len().min(1280 - IPV6_HDR_LEN - 8)];
    let len = 8 + body.len();
    let mut p = Vec::with_capacity(IPV6_HDR_LEN + len);
    p.extend_from_slice(&header::build_ipv6_header(
        0,
        len as u16,
        header::PROTO_ICMPV6,
        64,
        &src,
        &dst,
    ));
    p.extend_from_slice(&[ty, code, 0, 0]);
    p.extend_from_slice(&rest);
    p.extend_from_slice(body);
    let s = sum_bytes(
        checksum::pseudo_header_v6(&src, &dst, len as u32, 58),
        &p[IPV6_HDR_LEN..],
    );
    put16(&mut p, IPV6_HDR_LEN + 2, checksum::finish(s));
    p
}
