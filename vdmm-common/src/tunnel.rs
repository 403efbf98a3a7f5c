//! Map values of the tunnel data plane: bindings (home address or prefix -> locator) and
//! the tunnel-wide configuration.

use crate::IpAddrKey;

/// A binding: packets whose destination falls in the home prefix (the LPM key) are
/// encapsulated toward `locator`, with `source` as the outer source address. Both are of
/// the same family, and that family picks the tunnel kind (the inner family is the
/// packet's own).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// Outer destination: the node the home address is currently reachable through.
    pub locator: IpAddrKey,
    /// Outer source: a local tunnel endpoint of the locator's family.
    pub source: IpAddrKey,
    /// `BINDING_OUTER_V4` when the locator is IPv4 (saves the data plane a compare).
    pub flags: u32,
    pub _reserved: u32,
}

/// Slots per CPU of the data plane's first-level cache of tunnel addresses
/// (`VDMM_TUNNEL_L1`, see [`crate::maps::TUNNEL_L1`]); a power of two.
pub const TUNNEL_L1_SLOTS: u32 = 256;
/// [`TunnelAddrSlot::flags`]: the address is a local endpoint (`VDMM_ENDPOINTS`).
pub const ADDR_IS_ENDPOINT: u64 = 1;
/// [`TunnelAddrSlot::flags`]: the address is a peer (`VDMM_PEERS`).
pub const ADDR_IS_PEER: u64 = 2;

/// A slot of `VDMM_TUNNEL_L1`: what one address is, as the data plane cached it on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelAddrSlot {
    /// The [`IpAddrKey`] as four native-order words.
    pub addr: [u32; 4],
    /// The tunnel generation (`VDMM_TUNNEL_GEN`) + 1 when filled; 0 in a slot never filled.
    pub stamp: u64,
    /// [`ADDR_IS_ENDPOINT`] | [`ADDR_IS_PEER`], or 0.
    pub flags: u64,
}

/// The `VDMM_TUNNEL_L1` slot of an address given as the four native-order words of its
/// [`IpAddrKey`].
#[inline(always)]
pub const fn tunnel_addr_slot(w: [u32; 4]) -> u32 {
    crate::vap::cache_slot(w[0] ^ w[1] ^ w[2] ^ w[3], TUNNEL_L1_SLOTS)
}

/// [`Binding::flags`]: the outer header is IPv4.
pub const BINDING_OUTER_V4: u32 = 1;

impl Binding {
    /// A binding from a locator and a source of the same family (checked by the caller).
    pub fn new(locator: IpAddrKey, source: IpAddrKey) -> Self {
        let flags = if locator.is_v4() { BINDING_OUTER_V4 } else { 0 };
        Self {
            locator,
            source,
            flags,
            _reserved: 0,
        }
    }

    #[inline(always)]
    pub fn outer_is_v4(&self) -> bool {
        self.flags & BINDING_OUTER_V4 != 0
    }
}

/// Default outer TTL / hop limit (RFC 2003 and RFC 2473 leave it to the encapsulator;
/// 64 is the Linux default).
pub const DEFAULT_OUTER_HOP_LIMIT: u8 = 64;

/// Tunnel-wide settings, entry 0 of the config array. All-zero means defaults, so a freshly
/// loaded program works before the control plane writes anything.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Outer TTL / hop limit; 0 means [`DEFAULT_OUTER_HOP_LIMIT`].
    pub outer_hop_limit: u8,
    pub _reserved: [u8; 3],
    /// Source of ICMPv4 errors the data plane sends (time exceeded, fragmentation
    /// needed); all-zero means none can be sent and such packets are dropped and counted.
    pub icmp_source_v4: [u8; 4],
    /// Source of ICMPv6 errors (time exceeded, packet too big); all-zero means none.
    pub icmp_source_v6: [u8; 16],
}

impl TunnelConfig {
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        if self.outer_hop_limit == 0 {
            DEFAULT_OUTER_HOP_LIMIT
        } else {
            self.outer_hop_limit
        }
    }
}

/// Key of the per-CPU route cache: a destination as looked up from one ingress interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteKey {
    pub ingress_ifindex: u32,
    /// 4 or 6.
    pub family: u32,
    /// The destination: IPv4 in the first four bytes, the rest zero.
    pub addr: [u8; 16],
}

/// A route `bpf_fib_lookup` resolved, kept for [`ROUTE_CACHE_TTL_JIFFIES`] so that the hot path
/// does not pay for a FIB look-up (the most expensive step of a packet) every time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedRoute {
    /// `jiffies` (`bpf_jiffies64`) from which on the entry is looked up again.
    pub expires: u64,
    /// Source and destination MAC, low 48 bits.
    pub smac: u64,
    pub dmac: u64,
    pub ifindex: u32,
    /// Egress MTU the FIB reported (0: unknown).
    pub mtu: u32,
}

/// How long a cached route is trusted, in kernel ticks (`jiffies`): route and neighbour
/// changes reach the fast path within this time, 10 ms at `CONFIG_HZ=1000`, 40 ms at 250,
/// 100 ms at 100. The data plane reads `jiffies` because the verifier inlines
/// `bpf_jiffies64` (a load), where a clock helper is a call on every packet.
pub const ROUTE_CACHE_TTL_JIFFIES: u64 = 10;

/// Value of the endpoint and peer maps (the key is the address). Reserved for flags.
pub type AddressFlags = u32;

#[cfg(feature = "user")]
mod user {
    unsafe impl aya::Pod for super::Binding {}
    unsafe impl aya::Pod for super::TunnelConfig {}
    unsafe impl aya::Pod for super::RouteKey {}
    unsafe impl aya::Pod for super::CachedRoute {}
}
