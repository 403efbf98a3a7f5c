//! Typed views over the headers the data plane reads and writes (in the manner of
//! smoltcp's `wire` module): field accessors over packet memory whose bounds the caller
//! checked with `Frame::ptr`. Constants name the protocol numbers used.

use crate::packet::{copy, get_mac, get16, get32, put_mac, put16, put32};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// IPv4 flags/fragment-offset word: Don't Fragment, More Fragments, offset mask.
pub const IP_DF: u16 = 0x4000;
pub const IP_MF: u16 = 0x2000;
pub const IP_OFFSET: u16 = 0x1fff;

/// ECN codepoints (RFC 3168).
pub const ECN_NOT_ECT: u8 = 0;
pub const ECN_ECT1: u8 = 1;
pub const ECN_ECT0: u8 = 2;
pub const ECN_CE: u8 = 3;

/// Ethernet II header.
#[derive(Clone, Copy)]
pub struct Eth(pub *mut u8);

impl Eth {
    #[inline(always)]
    pub fn dst(&self) -> u64 {
        get_mac(self.0)
    }
    #[inline(always)]
    pub fn src(&self) -> u64 {
        get_mac(unsafe { self.0.add(6) })
    }
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        get16(unsafe { self.0.add(12) })
    }
    #[inline(always)]
    pub fn set_ethertype(&self, ethertype: u16) {
        put16(unsafe { self.0.add(12) }, ethertype)
    }
    #[inline(always)]
    pub fn write(&self, dst: u64, src: u64, ethertype: u16) {
        put_mac(self.0, dst);
        put_mac(unsafe { self.0.add(6) }, src);
        self.set_ethertype(ethertype);
    }
}

/// IPv4 header (the fixed 20 bytes; options follow when `ihl() > 20`).
#[derive(Clone, Copy)]
pub struct Ipv4(pub *mut u8);

impl Ipv4 {
    #[inline(always)]
    fn at(&self, off: usize) -> *mut u8 {
        unsafe { self.0.add(off) }
    }
    #[inline(always)]
    pub fn version(&self) -> u8 {
        unsafe { *self.0 >> 4 }
    }
    /// The first byte: version and IHL.
    #[inline(always)]
    pub fn version_ihl(&self) -> u8 {
        unsafe { *self.0 }
    }
    /// Header length in bytes.
    #[inline(always)]
    pub fn ihl(&self) -> usize {
        (unsafe { *self.0 } & 0x0f) as usize * 4
    }
    #[inline(always)]
    pub fn tos(&self) -> u8 {
        unsafe { *self.at(1) }
    }
    #[inline(always)]
    pub fn set_tos(&self, tos: u8) {
        unsafe { *self.at(1) = tos }
    }
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        get16(self.at(2))
    }
    #[inline(always)]
    pub fn frag_word(&self) -> u16 {
        get16(self.at(6))
    }
    #[inline(always)]
    pub fn dont_fragment(&self) -> bool {
        self.frag_word() & IP_DF != 0
    }
    /// True for any fragment (first, middle or last).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.frag_word() & (IP_MF | IP_OFFSET) != 0
    }
    /// True for a fragment other than the first (no transport header inside).
    #[inline(always)]
    pub fn is_later_fragment(&self) -> bool {
        self.frag_word() & IP_OFFSET != 0
    }
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        unsafe { *self.at(8) }
    }
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        unsafe { *self.at(9) }
    }
    #[inline(always)]
    pub fn checksum_ptr(&self) -> *mut u8 {
        self.at(10)
    }
    /// Pointer to the source address (4 bytes).
    #[inline(always)]
    pub fn src_ptr(&self) -> *mut u8 {
        self.at(12)
    }
    /// Pointer to the destination address (4 bytes).
    #[inline(always)]
    pub fn dst_ptr(&self) -> *mut u8 {
        self.at(16)
    }
    #[inline(always)]
    pub fn src_word(&self) -> u32 {
        get32(self.at(12))
    }
    #[inline(always)]
    pub fn dst_word(&self) -> u32 {
        get32(self.at(16))
    }

    /// Decrements the TTL and patches the header checksum (as Linux `ip_decrease_ttl`).
    #[inline(always)]
    pub fn decrement_ttl(&self) {
        unsafe { *self.at(8) -= 1 };
        crate::checksum::add16(self.checksum_ptr(), 0x0100);
    }

    /// Writes a complete 20-byte header without options, checksum included; `src` and
    /// `dst` point to 4-byte addresses.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        tos: u8,
        total_len: u16,
        id: u16,
        frag_word: u16,
        ttl: u8,
        protocol: u8,
        src: *const u8,
        dst: *const u8,
    ) {
        unsafe {
            *self.0 = 0x45;
            *self.at(1) = tos;
        }
        put16(self.at(2), total_len);
        put16(self.at(4), id);
        put16(self.at(6), frag_word);
        unsafe {
            *self.at(8) = ttl;
            *self.at(9) = protocol;
        }
        put16(self.at(10), 0);
        copy::<4>(self.at(12), src);
        copy::<4>(self.at(16), dst);
        let sum = crate::checksum::ipv4_header(self.0);
        put16(self.at(10), sum);
    }
}

/// IPv6 fixed header.
#[derive(Clone, Copy)]
pub struct Ipv6(pub *mut u8);

impl Ipv6 {
    #[inline(always)]
    fn at(&self, off: usize) -> *mut u8 {
        unsafe { self.0.add(off) }
    }
    #[inline(always)]
    pub fn version(&self) -> u8 {
        unsafe { *self.0 >> 4 }
    }
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        ((get16(self.0) >> 4) & 0xff) as u8
    }
    /// Replaces the traffic class, keeping version and flow label.
    #[inline(always)]
    pub fn set_traffic_class(&self, tc: u8) {
        let w = get32(self.0);
        put32(self.0, (w & 0xf00f_ffff) | ((tc as u32) << 20));
    }
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        get16(self.at(4))
    }
    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        unsafe { *self.at(6) }
    }
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        unsafe { *self.at(7) }
    }
    #[inline(always)]
    pub fn decrement_hop_limit(&self) {
        unsafe { *self.at(7) -= 1 }
    }
    /// Pointer to the source address (16 bytes).
    #[inline(always)]
    pub fn src_ptr(&self) -> *mut u8 {
        self.at(8)
    }
    /// Pointer to the destination address (16 bytes).
    #[inline(always)]
    pub fn dst_ptr(&self) -> *mut u8 {
        self.at(24)
    }
    /// An address as four big-endian words (`at` is 8 for the source, 24 for the dest).
    #[inline(always)]
    pub fn addr_words(&self, at: usize) -> [u32; 4] {
        [
            get32(self.at(at)),
            get32(self.at(at + 4)),
            get32(self.at(at + 8)),
            get32(self.at(at + 12)),
        ]
    }

    /// Writes a complete header; `src` and `dst` point to 16-byte addresses.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        traffic_class: u8,
        flow_label: u32,
        payload_len: u16,
        next_header: u8,
        hop_limit: u8,
        src: *const u8,
        dst: *const u8,
    ) {
        put32(
            self.0,
            (6u32 << 28) | ((traffic_class as u32) << 20) | (flow_label & 0x000f_ffff),
        );
        put16(self.at(4), payload_len);
        unsafe {
            *self.at(6) = next_header;
            *self.at(7) = hop_limit;
        }
        copy::<16>(self.at(8), src);
        copy::<16>(self.at(24), dst);
    }
}
