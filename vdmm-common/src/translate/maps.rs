//! Map values of the stateless translator in the XDP data plane, and what the data plane
//! does with them: the contract `vdmm-ctl natpt ...` programs.
//!
//! # Maps (names in [`crate::maps`], all pinned by name beside the tunnel maps)
//!
//! * `VDMM_XLAT_CFG` ([`crate::maps::XLAT_CONFIG`]): `Array`, one entry (key `0u32`),
//!   value [`XlatConfig`]. All-zero (the state after loading) means: no RFC 6052 prefix,
//!   no RFC 6791 address, lowest IPv6 MTU 1280, UDP checksum zero computed. Written as a
//!   whole; the data plane reads it per packet, so a change applies to the next packet.
//! * `VDMM_EAMT4` ([`crate::maps::EAMT_V4`]): `LpmTrie<[u8; 4], EamEntry>`, the RFC 7757
//!   EAMT keyed by its IPv4 prefix: key = `Key::new(entry.v4_len, entry.v4)`.
//! * `VDMM_EAMT6` ([`crate::maps::EAMT_V6`]): `LpmTrie<[u8; 16], EamEntry>`, the same
//!   entries keyed by their IPv6 prefix: key = `Key::new(entry.v6_len, entry.v6)`.
//!
//! (The data plane also has two per-CPU maps of its own, `VDMM_XLAT_TMP` scratch space
//! and `VDMM_XLAT_LOCAL`, a 100 ms cache of "does the kernel forward this IPv4
//! destination"; they are pinned with the others but the control plane never writes
//! them. A change of the kernel's routes or local addresses reaches that cache within
//! 100 ms.)
//!
//! Every EAMT entry goes into BOTH tries with the same [`crate::translate::EamEntry`]
//! value, built with [`crate::translate::EamEntry::new`] (host bits cleared,
//! `32 - v4_len == 128 - v6_len`, RFC 7757 3.2).
//! `natpt eam add` inserts into both (refusing a prefix already present in either),
//! `natpt eam del` removes from both. The longest prefix wins in each direction (RFC 7757
//! 3.3), and an EAMT match wins over the RFC 6052 prefix.
//!
//! # What gets translated (order in `vdmm_xdp`: tunnel decap -> binding encap ->
//! translation -> pass)
//!
//! * IPv6 -> IPv4: an IPv6 packet whose destination is under an EAMT6 prefix or under the
//!   RFC 6052 prefix (and embeds a translatable IPv4 address).
//! * IPv4 -> IPv6: an IPv4 packet whose destination is under an EAMT4 prefix; otherwise,
//!   when an RFC 6052 prefix is set, EVERY IPv4 packet whose destination the kernel
//!   would forward (a `bpf_fib_lookup` that does not answer "not forwarded": not a local
//!   address, and some route exists, e.g. a default route) and that may be embedded
//!   (not 0/8, 127/8, 169.254/16, 224/3; under 64:ff9b::/96 not the private ranges).
//!   Like Jool, the translator translates what is routed to it: route the IPv4 space of
//!   the IPv6 side toward the translator, and keep the translator's own IPv4 addresses
//!   local.
//!
//! Source addresses map the same way (EAMT, then the prefix, no FIB check); an ICMP error
//! whose source does not map gets [`XlatConfig::rfc6791_v4`] (6->4; 0 = the tunnel
//! config's `icmp_source_v4`) or [`XlatConfig::rfc6791_v6`] (4->6; 0 = `icmp_source_v6`).
//! Other packets with an unmappable source are dropped (`xlat_source_untranslatable`).

use super::rfc6052::Prefix6;

/// [`XlatConfig::flags`]: drop IPv4 UDP datagrams with checksum zero instead of
/// computing the checksum (RFC 7915 4.5). Fragments with checksum zero are always dropped.
pub const XLAT_UDP_ZERO_DROP: u8 = 1;
/// [`XlatConfig::flags`]: set the traffic class / TOS to zero instead of copying it
/// (RFC 7915 4.1, 5.1 "configurable").
pub const XLAT_RESET_TRAFFIC_CLASS: u8 = 2;

/// Default of [`XlatConfig::lowest_ipv6_mtu`].
pub const DEFAULT_LOWEST_IPV6_MTU: u16 = 1280;

/// Entry 0 of `VDMM_XLAT_CFG` (44 bytes, no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XlatConfig {
    /// RFC 6052 prefix ("pool6"), built with [`Prefix6::new`] (length 32, 40, 48, 56, 64
    /// or 96, bits after the length zero). `len == 0`: no prefix (EAMT only).
    pub pool6: Prefix6,
    /// `XLAT_*` flags.
    pub flags: u8,
    /// RFC 7915 section 4 "lowest IPv6 MTU": IPv4 packets without DF are translated only
    /// when the IPv6 packet fits (else the kernel fragments them first,
    /// `xlat_fragmented_by_kernel`). 0 = 1280.
    pub lowest_ipv6_mtu: u16,
    /// RFC 6791 IPv4 source of ICMPv6 errors translated to ICMPv4 whose IPv6 source has
    /// no mapping. All-zero: the tunnel config's `icmp_source_v4`; both zero: dropped.
    pub rfc6791_v4: [u8; 4],
    /// The same for ICMPv4 errors translated to ICMPv6 (only reachable without a prefix).
    /// All-zero: the tunnel config's `icmp_source_v6`.
    pub rfc6791_v6: [u8; 16],
    /// Interface index of `vdmmx1`, the receiving end of the fragmentation slow path's
    /// veth pair (written by `vdmm-ctl load`; 0 = none). An IPv4 packet without DF whose
    /// translation does not fit is passed to the kernel (which fragments it into
    /// `vdmmx0`, see `xlat_fragmented_by_kernel`) unless it arrived on this interface:
    /// there it is dropped (`xlat_needs_fragmentation`), so nothing loops.
    pub frag_ifindex: u32,
}

impl XlatConfig {
    /// The lowest IPv6 MTU in effect.
    #[inline(always)]
    pub fn lowest_mtu(&self) -> u32 {
        if self.lowest_ipv6_mtu == 0 {
            DEFAULT_LOWEST_IPV6_MTU as u32
        } else {
            self.lowest_ipv6_mtu as u32
        }
    }
}

/// Slots per CPU of `VDMM_MAPPING_L1` ([`crate::maps::MAPPING_L1`]); a power of two.
pub const MAPPING_L1_SLOTS: u32 = 512;
/// [`MappingSlot::flags`]: a binding (host or prefix) covers the address, so the binding
/// tables must be asked; without it the address is certainly unbound.
pub const MAPPING_BOUND: u32 = 1;
/// [`MappingSlot::flags`]: an EAMT entry covers the address; [`MappingSlot::mapped`] holds
/// its translation.
pub const MAPPING_EAM: u32 = 2;
/// [`MappingSlot::family`] of an IPv6 address (an IPv4 one has 4).
pub const MAPPING_V6: u32 = 6;
/// [`MappingSlot::family`] of an IPv4 address.
pub const MAPPING_V4: u32 = 4;

/// A slot of `VDMM_MAPPING_L1`: what one address is to the translator, as the data plane
/// cached it on one CPU for one generation of its tables (`VDMM_XLAT_GEN`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappingSlot {
    /// The address as the four native-order words of its `IpAddrKey`.
    pub addr: [u32; 4],
    /// `VDMM_XLAT_GEN` + 1 when filled; 0 in a slot never filled.
    pub stamp: u64,
    /// [`MAPPING_V4`] or [`MAPPING_V6`].
    pub family: u32,
    /// [`MAPPING_BOUND`] | [`MAPPING_EAM`], or 0.
    pub flags: u32,
    /// With [`MAPPING_EAM`]: the EAMT translation, an IPv6 address (bytes in order) for an
    /// IPv4 address; for an IPv6 address the IPv4 one as a big-endian value in word 0.
    pub mapped: [u32; 4],
}

/// The `VDMM_MAPPING_L1` slot of an address of `family` given as the four native-order
/// words of its `IpAddrKey`.
#[inline(always)]
pub const fn mapping_slot(w: [u32; 4], family: u32) -> u32 {
    crate::vap::cache_slot(w[0] ^ w[1] ^ w[2] ^ w[3] ^ family, MAPPING_L1_SLOTS)
}

#[cfg(feature = "user")]
mod user {
    unsafe impl aya::Pod for super::XlatConfig {}
    unsafe impl aya::Pod for crate::translate::EamEntry {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout_has_no_padding() {
        assert_eq!(core::mem::size_of::<super::XlatConfig>(), 44);
        assert_eq!(core::mem::offset_of!(super::XlatConfig, frag_ifindex), 40);
        assert_eq!(core::mem::size_of::<crate::translate::EamEntry>(), 22);
    }
}
