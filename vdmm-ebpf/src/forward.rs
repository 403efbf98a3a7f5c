//! Forwarding a packet the data plane rewrote: `bpf_fib_lookup` for the egress
//! interface and next-hop MAC, then `XDP_TX` (same interface) or `XDP_REDIRECT`. What the
//! FIB cannot resolve goes to the kernel with its own reason.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_BLACKHOLE, BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH,
        BPF_FIB_LKUP_RET_PROHIBIT, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LKUP_RET_UNREACHABLE,
        bpf_fib_lookup as FibParams,
    },
    helpers::generated::{bpf_fib_lookup, bpf_redirect},
    programs::XdpContext,
};
use vdmm_common::{
    Action, Reason, TunnelKind,
    tunnel::{CachedRoute, ROUTE_CACHE_TTL_JIFFIES, RouteKey},
};

use crate::{
    counters::Verdict,
    l1_cache,
    packet::{copy, get_mac, word, words16},
};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What the FIB said about a destination.
pub enum Route {
    /// Egress interface and the MACs to write.
    Resolved { ifindex: u32, smac: u64, dmac: u64 },
    /// Route found (egress interface given) but the next hop has no neighbour entry yet.
    NoNeighbour { ifindex: u32 },
    /// The packet (of the length asked about) exceeds the egress MTU, which is given.
    TooBig { mtu: u16 },
    /// No usable route (none, blackhole, unreachable, prohibit).
    Unreachable,
    /// The kernel would not forward it (forwarding off, local destination, ...).
    NotForwarded,
}

/// Looks up the route for an IPv4 (`v6` false) or IPv6 destination, as the packet of
/// `tot_len` bytes (IP header included) would take arriving on the ingress interface.
/// `src` and `dst` point to the addresses (4 or 16 bytes, in packet or map memory).
/// Resolved routes are cached per CPU for `ROUTE_CACHE_TTL_JIFFIES` (keyed by ingress
/// interface and destination; source-based policy routing is therefore not honoured
/// within that time).
#[inline(always)]
pub fn lookup(ctx: &XdpContext, v6: bool, src: *const u8, dst: *const u8, tot_len: u16) -> Route {
    let addr = if v6 {
        words16(dst)
    } else {
        [word(dst), 0, 0, 0]
    };
    let key = RouteKey {
        ingress_ifindex: ctx.ingress_ifindex() as u32,
        family: if v6 { 6 } else { 4 },
        // SAFETY: [u32; 4] and [u8; 16] have the same size; any bytes are valid.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(addr) },
    };
    let now = l1_cache::now();
    if let Some(r) = l1_cache::route(&key, now) {
        if r.mtu != 0 && tot_len as u32 > r.mtu {
            return Route::TooBig { mtu: r.mtu as u16 };
        }
        return Route::Resolved {
            ifindex: r.ifindex,
            smac: r.smac,
            dmac: r.dmac,
        };
    }
    let ingress = ctx.ingress_ifindex() as u32;
    let (route, mtu) = fib_lookup(ctx.ctx as *mut c_void, ingress, v6, src, dst, tot_len);
    if let Route::Resolved {
        ifindex,
        smac,
        dmac,
    } = route
    {
        let cached = CachedRoute {
            expires: now + ROUTE_CACHE_TTL_JIFFIES,
            smac,
            dmac,
            ifindex,
            mtu,
        };
        l1_cache::remember_route(&key, &cached);
    }
    route
}

/// `bpf_fib_lookup` itself, from an XDP or a TC context (`ctx`), as a packet arriving on
/// `ifindex` would be routed; with a resolved route comes the egress MTU (the kernel reports
/// it on success too). `tot_len` 0 skips the MTU check.
#[inline(always)]
pub fn fib_lookup(
    ctx: *mut c_void,
    ifindex: u32,
    v6: bool,
    src: *const u8,
    dst: *const u8,
    tot_len: u16,
) -> (Route, u32) {
    // SAFETY: plain-old-data kernel struct; all-zero is a valid initial state. Built from
    // words: `mem::zeroed` becomes a call to a byte-wise memset here.
    let mut p: FibParams = unsafe { core::mem::transmute([0u64; 8]) };
    p.ifindex = ifindex;
    p.__bindgen_anon_1.tot_len = tot_len;
    let psrc = &mut p.__bindgen_anon_3 as *mut _ as *mut u8;
    let pdst = &mut p.__bindgen_anon_4 as *mut _ as *mut u8;
    if v6 {
        p.family = AF_INET6;
        copy::<16>(psrc, src);
        copy::<16>(pdst, dst);
    } else {
        p.family = AF_INET;
        copy::<4>(psrc, src);
        copy::<4>(pdst, dst);
    }
    let rc = unsafe {
        bpf_fib_lookup(
            ctx,
            &mut p as *mut _,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    } as u32;
    let mtu = unsafe { p.__bindgen_anon_1.mtu_result };
    let route = match rc {
        // A next hop that is not an Ethernet neighbour (a NOARP device: vdmm's own
        // `vdmm0`, into which the slow-path routes lead, or a point-to-point link; the
        // kernel gives NOARP neighbours the device's own address, or none) cannot take a
        // redirected frame: the kernel forwards it.
        BPF_FIB_LKUP_RET_SUCCESS if noarp_next_hop(&p) => Route::NotForwarded,
        BPF_FIB_LKUP_RET_SUCCESS => Route::Resolved {
            ifindex: p.ifindex,
            smac: get_mac(p.smac.as_ptr()),
            dmac: get_mac(p.dmac.as_ptr()),
        },
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::NoNeighbour { ifindex: p.ifindex },
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Route::TooBig { mtu },
        BPF_FIB_LKUP_RET_BLACKHOLE | BPF_FIB_LKUP_RET_UNREACHABLE | BPF_FIB_LKUP_RET_PROHIBIT => {
            Route::Unreachable
        }
        _ => Route::NotForwarded,
    };
    (route, mtu as u32)
}

/// True when `bpf_fib_lookup` resolved the next hop to no Ethernet neighbour: the
/// destination MAC is zero or the egress device's own (what the kernel records for
/// neighbours on NOARP devices).
#[inline(always)]
pub fn noarp_next_hop(p: &FibParams) -> bool {
    let dmac = get_mac(p.dmac.as_ptr());
    dmac == 0 || dmac == get_mac(p.smac.as_ptr())
}

/// The verdict for a frame whose Ethernet header is already written for `ifindex`:
/// `XDP_TX` back out of the ingress interface, or `XDP_REDIRECT` to another.
#[inline(always)]
pub fn out(ctx: &XdpContext, ifindex: u32, reason: Reason, kind: TunnelKind) -> Verdict {
    if ifindex == ctx.ingress_ifindex() as u32 {
        return Verdict::new(Action::Tx, reason, kind);
    }
    if unsafe { bpf_redirect(ifindex, 0) } as u32 == Action::Redirect as u32 {
        Verdict::new(Action::Redirect, reason, kind)
    } else {
        Verdict::new(Action::Aborted, reason, kind)
    }
}
