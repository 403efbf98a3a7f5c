//! Names and sizes of the maps the data plane declares and the control plane pins under
//! its pin directory (default `/sys/fs/bpf/vdmm`). Both sides use these constants, so a
//! rename cannot split them. Names are at most 15 bytes (the kernel's limit).

/// Per-CPU array of [`crate::CounterValue`], indexed by [`crate::counters::counter_index`].
pub const COUNTERS: &str = "VDMM_COUNTERS";
/// Per-CPU array of [`crate::CounterValue`] like [`COUNTERS`], for the TC egress slow path.
pub const TC_COUNTERS: &str = "VDMM_TC_STATS";
/// Hash map [`crate::IpAddrKey`] -> [`crate::tunnel::AddressFlags`]: local tunnel endpoints.
pub const ENDPOINTS: &str = "VDMM_ENDPOINTS";
/// Hash map [`crate::IpAddrKey`] -> [`crate::tunnel::AddressFlags`]: peers allowed to send
/// tunnel packets to a local endpoint.
pub const PEERS: &str = "VDMM_PEERS";
/// Hash map [`crate::IpAddrKey`] (a /32 or /128 home address) -> [`crate::Binding`]:
/// host bindings, looked up before the tries (constant cost at any table size).
pub const HOST_BINDINGS: &str = "VDMM_HOSTS";
/// LPM trie (IPv4 home prefix shorter than /32, `[u8; 4]`) -> [`crate::Binding`].
pub const BINDINGS_V4: &str = "VDMM_BINDINGS4";
/// LPM trie (IPv6 home prefix shorter than /128, `[u8; 16]`) -> [`crate::Binding`].
pub const BINDINGS_V6: &str = "VDMM_BINDINGS6";
/// Per-CPU LRU hash [`crate::tunnel::RouteKey`] -> [`crate::tunnel::CachedRoute`]: routes
/// `bpf_fib_lookup` resolved, reused for `ROUTE_CACHE_TTL_JIFFIES`.
pub const ROUTES: &str = "VDMM_ROUTES";
pub const MAX_CACHED_ROUTES: u32 = 16384;
/// Per-CPU array: a direct-mapped first level in front of [`ROUTES`] (data plane
/// internal, pinned like [`XLAT_SCRATCH`]).
pub const ROUTES_L1: &str = "VDMM_ROUTES_L1";
/// Array with one [`crate::TunnelConfig`].
pub const CONFIG: &str = "VDMM_CONFIG";

/// Array with one [`crate::translate::maps::XlatConfig`]: the stateless translator's
/// settings (RFC 6052 prefix, RFC 6791 address, lowest IPv6 MTU, flags).
pub const XLAT_CONFIG: &str = "VDMM_XLAT_CFG";
/// LPM trie (IPv4 prefix, `[u8; 4]`) -> [`crate::translate::EamEntry`]: RFC 7757 EAMT
/// looked up by IPv4 address. See [`crate::translate::maps`].
pub const EAMT_V4: &str = "VDMM_EAMT4";
/// LPM trie (IPv6 prefix, `[u8; 16]`) -> [`crate::translate::EamEntry`]: the same EAMT
/// looked up by IPv6 address.
pub const EAMT_V6: &str = "VDMM_EAMT6";

/// Per-CPU array, one entry: the translator's scratch space (data plane internal; pinned
/// only so that a reloaded identical program is recognised by its maps).
pub const XLAT_SCRATCH: &str = "VDMM_XLAT_TMP";
/// Per-CPU LRU hash: the translator's 100 ms cache of "does the kernel forward this IPv4
/// destination" (data plane internal, pinned like [`XLAT_SCRATCH`]).
pub const XLAT_LOCAL: &str = "VDMM_XLAT_LOCAL";
pub const MAX_XLAT_LOCAL: u32 = 4096;
/// Per-CPU array: a direct-mapped first level in front of [`XLAT_LOCAL`] (data plane
/// internal, pinned like [`XLAT_SCRATCH`]).
pub const XLAT_LOCAL_L1: &str = "VDMM_XLAT_L1";

/// LPM trie (IPv4 prefix, `[u8; 4]`) -> `u32` flags (0; reserved): the transition
/// gateway's IPv4 address pool, from which `vdmm-ctl natpt pool alloc` hands out IPv4
/// (care-of) addresses to IPv6 hosts. An allocation is an RFC 7757 EAMT entry
/// `ADDR4/32 <-> ADDR6/128` in [`EAMT_V4`] and [`EAMT_V6`] whose IPv4 address lies in a
/// pool prefix: the EAMT is the only record of allocations. Control plane only: the data
/// plane translates allocated addresses through the EAMT and need not read this map.
pub const POOL_V4: &str = "VDMM_POOL4";
pub const MAX_POOLS: u32 = 4096;
/// LPM trie (IPv4 segment prefix, `[u8; 4]`) -> [`crate::translate::Prefix6`]: the IPv6
/// prefix (an RFC 6052 prefix: /32, /40, /48, /56, /64 or /96) of each IPv4 segment. A
/// host that moved into the IPv4 segment with IPv4 care-of address `A` has the IPv6
/// care-of address `rfc6052::embed(&prefix6, A)`, with `prefix6` the value of the longest
/// match of `A` (`vdmm-ctl natpt segment coa A`). For tunnel re-encapsulation.
pub const SEGMENTS: &str = "VDMM_SEGMENTS";
pub const MAX_SEGMENTS: u32 = 4096;

/// Hash map [`crate::vap::MacKey`] (client MAC) -> [`crate::vap::Vap`]: the vAPs of this
/// AP host.
pub const VAPS: &str = "VDMM_VAPS";
pub const MAX_VAPS: u32 = 4096;
/// Hash map [`crate::IpAddrKey`] (a client address) -> [`crate::vap::VapAddr`]: whose
/// address it is (downlink delivery).
pub const VAP_ADDRS: &str = "VDMM_VAP_ADDRS";
/// Per-CPU array of [`crate::vap::VapCounters`], indexed by [`crate::vap::Vap::slot`]
/// ([`MAX_VAPS`] entries).
pub const VAP_STATS: &str = "VDMM_VAP_STATS";
/// Ring buffer of [`crate::vap::VapEvent`]s: new client MACs on client-facing interfaces.
pub const VAP_EVENTS: &str = "VDMM_VAP_EVENTS";
pub const VAP_EVENTS_BYTES: u32 = 64 * 1024;
/// LRU hash [`crate::vap::MacKey`] -> `u64` (`bpf_ktime_get_ns` of the last report):
/// rate limit of the reports of unknown MACs (data plane internal).
pub const VAP_SEEN: &str = "VDMM_VAP_SEEN";
pub const MAX_VAP_SEEN: u32 = 4096;
/// Array of one `u64`, mappable ([`BPF_F_MMAPABLE`]): the generation of the vAP tables
/// ([`VAPS`], [`VAP_ADDRS`]). Whoever changes them increments it atomically afterwards
/// (`vdmm_ctl::cache_gen::invalidate`): the data plane's first-level caches of vAPs are
/// valid only for the generation they were filled in.
pub const VAP_GEN: &str = "VDMM_VAP_GEN";
/// Array of one `u64`, mappable ([`BPF_F_MMAPABLE`]): the generation of the tunnel address
/// tables ([`ENDPOINTS`], [`PEERS`]), incremented after every change to them
/// (`vdmm_ctl::cache_gen::invalidate`), as [`VAP_GEN`] is for the vAPs.
pub const TUNNEL_GEN: &str = "VDMM_TUNNEL_GEN";
/// Per-CPU first-level cache of [`ENDPOINTS`] and [`PEERS`]: what an address is (data plane
/// internal, emptied by incrementing [`TUNNEL_GEN`]).
pub const TUNNEL_L1: &str = "VDMM_TUNNEL_L1";
/// Array of one `u64`, mappable ([`BPF_F_MMAPABLE`]): the generation of everything the
/// translator's first level caches ([`MAPPING_L1`]): the bindings ([`HOST_BINDINGS`],
/// [`BINDINGS_V4`], [`BINDINGS_V6`]), the EAMT ([`EAMT_V4`], [`EAMT_V6`]) and the
/// translator's settings, pools and segments; incremented after every change to them
/// (`vdmm_ctl::cache_gen::invalidate`), as [`VAP_GEN`] is for the vAPs.
pub const XLAT_GEN: &str = "VDMM_XLAT_GEN";
/// Per-CPU first-level cache of what an address is to the translator: bound or not, and
/// its EAMT mapping (see [`crate::translate::maps::MappingSlot`]; data plane internal,
/// emptied by incrementing [`XLAT_GEN`]).
pub const MAPPING_L1: &str = "VDMM_MAPPING_L1";
/// Per-CPU first-level caches of the vAP tables, by client MAC and by client address
/// (data plane internal, emptied by incrementing [`VAP_GEN`]).
pub const VAP_L1: &str = "VDMM_VAP_L1";
pub const VAP_ADDR_L1: &str = "VDMM_VAP_ADDR_L1";

/// Every map the control plane pins, in a stable order.
pub const ALL: [&str; 30] = [
    COUNTERS,
    TC_COUNTERS,
    ENDPOINTS,
    PEERS,
    HOST_BINDINGS,
    BINDINGS_V4,
    BINDINGS_V6,
    CONFIG,
    ROUTES,
    XLAT_CONFIG,
    EAMT_V4,
    EAMT_V6,
    XLAT_SCRATCH,
    XLAT_LOCAL,
    POOL_V4,
    SEGMENTS,
    VAPS,
    VAP_ADDRS,
    VAP_STATS,
    VAP_EVENTS,
    VAP_SEEN,
    ROUTES_L1,
    XLAT_LOCAL_L1,
    VAP_GEN,
    VAP_L1,
    VAP_ADDR_L1,
    TUNNEL_GEN,
    TUNNEL_L1,
    XLAT_GEN,
    MAPPING_L1,
];

pub const MAX_ENDPOINTS: u32 = 64;
pub const MAX_PEERS: u32 = 4096;
/// Bindings per family. LPM tries allocate per entry, so the bound costs nothing unused.
pub const MAX_BINDINGS: u32 = 1 << 20;
/// Host bindings of both families ([`HOST_BINDINGS`], allocated per entry too).
pub const MAX_HOST_BINDINGS: u32 = 2 * MAX_BINDINGS;
/// `BPF_F_NO_PREALLOC`: a hash map that allocates its entries as they are added.
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_F_MMAPABLE`: an array user space can map into its memory.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// EAMT entries per family (each entry is in both tries).
pub const MAX_EAMT: u32 = 1 << 16;

// The segments' value type, read and written by the control plane.
#[cfg(feature = "user")]
unsafe impl aya::Pod for crate::translate::Prefix6 {}

/// The XDP program that does all of vdmm's packet work.
pub const XDP_PROGRAM: &str = "vdmm_xdp";
/// An XDP program that only returns `XDP_PASS`: the baseline benchmarks compare against.
pub const EMPTY_PROGRAM: &str = "vdmm_empty";
/// The XDP program of an AP host's client-facing interface: the vAPs' uplink side (ARP
/// and neighbour answers, anti-spoofing, tunnel or breakout toward the network, reports
/// of unknown clients).
pub const VAP_PROGRAM: &str = "vdmm_vap";
/// The TC egress program (clsact egress) that encapsulates what the kernel forwards or
/// originates toward a bound home address: the slow path behind [`XDP_PROGRAM`].
pub const TC_EGRESS_PROGRAM: &str = "vdmm_tc_egress";
