//! The maps of the data plane. Layouts and names come from `vdmm_common`; all maps are
//! pinned by name so that the control plane finds them under its pin directory and a
//! reloaded program reuses them.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use vdmm_common::{
    Binding, CounterValue, IpAddrKey, TunnelConfig,
    counters::COUNTER_ENTRIES,
    maps as names,
    tunnel::{AddressFlags, CachedRoute, RouteKey, TUNNEL_L1_SLOTS, TunnelAddrSlot},
    vap::{
        MacKey, VAP_ADDR_L1_SLOTS, VAP_L1_SLOTS, Vap, VapAddr, VapAddrSlot, VapCounters, VapMacSlot,
    },
};

#[map(name = "VDMM_COUNTERS")]
pub static COUNTERS: PerCpuArray<CounterValue> = PerCpuArray::pinned(COUNTER_ENTRIES, 0);

#[map(name = "VDMM_TC_STATS")]
pub static TC_COUNTERS: PerCpuArray<CounterValue> = PerCpuArray::pinned(COUNTER_ENTRIES, 0);

#[map(name = "VDMM_ENDPOINTS")]
pub static ENDPOINTS: HashMap<IpAddrKey, AddressFlags> = HashMap::pinned(names::MAX_ENDPOINTS, 0);

#[map(name = "VDMM_PEERS")]
pub static PEERS: HashMap<IpAddrKey, AddressFlags> = HashMap::pinned(names::MAX_PEERS, 0);

/// Generation of `VDMM_ENDPOINTS` and `VDMM_PEERS`, incremented by the control plane after
/// every change to them (see `tunnel::addresses`); mappable, as `VDMM_VAP_GEN`.
#[map(name = "VDMM_TUNNEL_GEN")]
pub static TUNNEL_GEN: Array<u64> = Array::pinned(1, names::BPF_F_MMAPABLE);

/// First level of `VDMM_ENDPOINTS` and `VDMM_PEERS` (see `tunnel::addresses`).
#[map(name = "VDMM_TUNNEL_L1")]
pub static TUNNEL_L1: PerCpuArray<TunnelAddrSlot> = PerCpuArray::pinned(TUNNEL_L1_SLOTS, 0);

/// Generation of the bindings, the EAMT and the translator's settings, incremented by the
/// control plane after every change to them (see `mapping_cache`); mappable.
#[map(name = "VDMM_XLAT_GEN")]
pub static XLAT_GEN: Array<u64> = Array::pinned(1, names::BPF_F_MMAPABLE);

/// First level of the binding and EAMT look-ups by address (see `mapping_cache`).
#[map(name = "VDMM_MAPPING_L1")]
pub static MAPPING_L1: PerCpuArray<vdmm_common::translate::maps::MappingSlot> =
    PerCpuArray::pinned(vdmm_common::translate::maps::MAPPING_L1_SLOTS, 0);

#[map(name = "VDMM_HOSTS")]
pub static HOST_BINDINGS: HashMap<IpAddrKey, Binding> =
    HashMap::pinned(names::MAX_HOST_BINDINGS, names::BPF_F_NO_PREALLOC);

#[map(name = "VDMM_BINDINGS4")]
pub static BINDINGS_V4: LpmTrie<[u8; 4], Binding> = LpmTrie::pinned(names::MAX_BINDINGS, 0);

#[map(name = "VDMM_BINDINGS6")]
pub static BINDINGS_V6: LpmTrie<[u8; 16], Binding> = LpmTrie::pinned(names::MAX_BINDINGS, 0);

#[map(name = "VDMM_ROUTES")]
pub static ROUTES: LruPerCpuHashMap<RouteKey, CachedRoute> =
    LruPerCpuHashMap::pinned(names::MAX_CACHED_ROUTES, 0);

/// First level of `VDMM_ROUTES` (see `l1_cache`). Pinned like `VDMM_XLAT_TMP`.
#[map(name = "VDMM_ROUTES_L1")]
pub static ROUTES_L1: PerCpuArray<crate::l1_cache::RouteSlot> =
    PerCpuArray::pinned(crate::l1_cache::SLOTS, 0);

#[map(name = "VDMM_CONFIG")]
pub static CONFIG: Array<TunnelConfig> = Array::pinned(1, 0);

/// Outer TTL / hop limit from the configuration (default if none was written).
#[inline(always)]
pub fn outer_hop_limit() -> u8 {
    match CONFIG.get(0) {
        Some(c) => c.hop_limit(),
        None => vdmm_common::tunnel::DEFAULT_OUTER_HOP_LIMIT,
    }
}

/// The configuration entry (an array slot always exists; all-zero means defaults).
#[inline(always)]
pub fn config() -> Option<&'static TunnelConfig> {
    CONFIG.get(0)
}

// Stateless translation (see `vdmm_common::translate::maps` for the contract).

#[map(name = "VDMM_XLAT_CFG")]
pub static XLAT_CONFIG: Array<vdmm_common::translate::maps::XlatConfig> = Array::pinned(1, 0);

#[map(name = "VDMM_EAMT4")]
pub static EAMT_V4: LpmTrie<[u8; 4], vdmm_common::translate::EamEntry> =
    LpmTrie::pinned(names::MAX_EAMT, 0);

#[map(name = "VDMM_EAMT6")]
pub static EAMT_V6: LpmTrie<[u8; 16], vdmm_common::translate::EamEntry> =
    LpmTrie::pinned(names::MAX_EAMT, 0);

/// The transition gateway's IPv4 address pool (`vdmm_common::maps::POOL_V4`): IPv4
/// prefix -> flags. Written by `vdmm-ctl natpt pool`; allocations are EAMT entries, so
/// the data plane does not need to read it.
#[map(name = "VDMM_POOL4")]
pub static POOL_V4: LpmTrie<[u8; 4], u32> = LpmTrie::pinned(names::MAX_POOLS, 0);

/// IPv6 prefix of each IPv4 segment (`vdmm_common::maps::SEGMENTS`): IPv4 segment prefix
/// -> RFC 6052 prefix of the IPv6 care-of addresses of hosts in that segment. Written by
/// `vdmm-ctl natpt segment`; for tunnel re-encapsulation.
#[map(name = "VDMM_SEGMENTS")]
pub static SEGMENTS: LpmTrie<[u8; 4], vdmm_common::translate::Prefix6> =
    LpmTrie::pinned(names::MAX_SEGMENTS, 0);

/// Per-CPU scratch space of the translator (old header fields and new addresses held
/// across `bpf_xdp_adjust_head`). Nothing outside the program reads it; pinned so that
/// the control plane recognises a reloaded identical program by its maps.
#[map(name = "VDMM_XLAT_TMP")]
pub static XLAT_SCRATCH: PerCpuArray<crate::translate::Scratch> = PerCpuArray::pinned(1, 0);

/// The translator's answer to "would the kernel forward this IPv4 destination?" (the
/// RFC 6052 prefix catches every forwarded IPv4 packet), cached per CPU for 100 ms so
/// that IPv4 traffic does not pay a FIB look-up for it per packet. Pinned like
/// `VDMM_XLAT_TMP`.
#[map(name = "VDMM_XLAT_LOCAL")]
pub static XLAT_LOCAL: LruPerCpuHashMap<crate::translate::LocalKey, crate::translate::LocalValue> =
    LruPerCpuHashMap::pinned(names::MAX_XLAT_LOCAL, 0);

/// First level of `VDMM_XLAT_LOCAL` (see `l1_cache`). Pinned like `VDMM_XLAT_TMP`.
#[map(name = "VDMM_XLAT_L1")]
pub static XLAT_LOCAL_L1: PerCpuArray<crate::l1_cache::LocalSlot> =
    PerCpuArray::pinned(crate::l1_cache::SLOTS, 0);

// Virtual access points (see `vdmm_common::vap` and `vdmm_common::maps::VAPS`).

#[map(name = "VDMM_VAPS")]
pub static VAPS: HashMap<MacKey, Vap> = HashMap::pinned(names::MAX_VAPS, 0);

#[map(name = "VDMM_VAP_ADDRS")]
pub static VAP_ADDRS: HashMap<IpAddrKey, VapAddr> = HashMap::pinned(names::MAX_VAPS * 2, 0);

/// Generation of the vAP tables, incremented by the control plane after every change to
/// them (see `vap::cache`); mappable, so that the increment is one atomic operation.
#[map(name = "VDMM_VAP_GEN")]
pub static VAP_GEN: Array<u64> = Array::pinned(1, names::BPF_F_MMAPABLE);

/// First level of `VDMM_VAPS` by client MAC (see `vap::cache`).
#[map(name = "VDMM_VAP_L1")]
pub static VAP_L1: PerCpuArray<VapMacSlot> = PerCpuArray::pinned(VAP_L1_SLOTS, 0);

/// First level of `VDMM_VAP_ADDRS` and `VDMM_VAPS` by client address (see `vap::cache`).
#[map(name = "VDMM_VAP_ADDR_L1")]
pub static VAP_ADDR_L1: PerCpuArray<VapAddrSlot> = PerCpuArray::pinned(VAP_ADDR_L1_SLOTS, 0);

#[map(name = "VDMM_VAP_STATS")]
pub static VAP_STATS: PerCpuArray<VapCounters> = PerCpuArray::pinned(names::MAX_VAPS, 0);

#[map(name = "VDMM_VAP_EVENTS")]
pub static VAP_EVENTS: RingBuf = RingBuf::pinned(names::VAP_EVENTS_BYTES, 0);

#[map(name = "VDMM_VAP_SEEN")]
pub static VAP_SEEN: LruHashMap<MacKey, u64> = LruHashMap::pinned(names::MAX_VAP_SEEN, 0);
