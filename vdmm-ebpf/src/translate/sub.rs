//! The translator's heavy steps, whose results go to the scratch map (`Scratch`): a
//! checksum sum and the IPv6 extension header walk as BPF subprograms, a route look-up
//! inline in its callers (a subprogram call less per packet). Their internal paths (loop
//! exits, FIB outcomes) end with a small status code, and the caller reads the results
//! back from map memory, whose contents the verifier does not track: the caller's paths
//! join again instead of multiplying.

use aya_ebpf::{bindings::xdp_md, helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use vdmm_common::translate::header::has_unexpired_source_route;

use super::{Scratch, v6_to_v4::walk};
use vdmm_common::tunnel::{CachedRoute, ROUTE_CACHE_TTL_NS, RouteKey};

use crate::{
    checksum,
    headers::{ETH_HLEN, IPV4_HLEN},
    l1_cache,
    packet::{copy, get_mac, word, words16},
};

/// `s.sum` = unfolded sum of `len` bytes at `off` (at most `MAX`). 0 on success.
#[inline(never)]
pub fn sum<const MAX: usize>(ctx: *mut xdp_md, s: *mut Scratch, off: u32, len: u32) -> u32 {
    let xdp = &XdpContext::new(ctx);
    let frame = frame_of(ctx);
    // SAFETY: the per-CPU scratch value.
    let s = unsafe { &mut *s };
    match checksum::sum_region::<MAX>(xdp, &frame, off as usize & 0xfff, len as usize) {
        Some(v) => {
            s.sum = v;
            0
        }
        None => 1,
    }
}

/// Moved to `packet`, where the vAP program uses it too.
pub use crate::packet::frame_of;

pub const WALK_OK: u32 = 0;
pub const WALK_REFUSED: u32 = 1;
pub const WALK_TRUNCATED: u32 = 2;

/// The IPv6 extension header walk from `off` (next header `nh`) into `s.w_*`.
#[inline(never)]
pub fn walk_into(ctx: *mut xdp_md, s: *mut Scratch, nh: u32, off: u32) -> u32 {
    let frame = frame_of(ctx);
    // SAFETY: the per-CPU scratch value.
    let s = unsafe { &mut *s };
    match walk(&frame, nh as u8, off as usize & 0xfff) {
        Some(Ok(w)) => {
            s.w_proto = w.proto;
            s.w_upper = w.upper as u16;
            s.w_has_frag = w.has_frag as u8;
            s.w_frag_word = w.frag_word;
            s.w_frag_id = w.frag_id;
            s.w_segments_left_at = w.segments_left_at;
            WALK_OK
        }
        Some(Err(())) => WALK_REFUSED,
        None => WALK_TRUNCATED,
    }
}

/// The result of [`walk_into`] for a packet whose next header `nh` (at frame offset
/// `upper`) is not an extension header.
#[inline(always)]
pub fn no_extension_headers(s: &mut Scratch, nh: u8, upper: u16) -> u32 {
    s.w_proto = nh;
    s.w_upper = upper;
    s.w_has_frag = 0;
    s.w_frag_word = 0;
    s.w_frag_id = 0;
    s.w_segments_left_at = 0;
    WALK_OK
}

/// RFC 7915 4.1: 1 when the options of the received IPv4 header (`ihl` bytes) hold an
/// unexpired loose or strict source route (`header::has_unexpired_source_route`, run
/// over a copy in `s.opts`), else 0.
#[inline(never)]
pub fn source_route(ctx: *mut xdp_md, s: *mut Scratch, ihl: u32) -> u32 {
    // SAFETY: the per-CPU scratch value.
    let s = unsafe { &mut *s };
    let n = ihl.wrapping_sub(IPV4_HLEN as u32);
    if n == 0 || n > 40 {
        return 0;
    }
    let at = (ETH_HLEN + IPV4_HLEN) as u32;
    if unsafe { bpf_xdp_load_bytes(ctx, at, s.opts.as_mut_ptr() as *mut _, n) } != 0 {
        return 0;
    }
    has_unexpired_source_route(&s.opts, n as usize) as u32
}

/// The coarse clock for the route caches, read once per packet: `s.now` is zeroed when
/// the translator starts on a packet (`from_ipv4` / `from_ipv6`), and the first cache
/// look-up reads the clock into it (a helper call less when both the "forwarded?" and the
/// route cache are consulted).
#[inline(always)]
fn now(s: &mut Scratch) -> u64 {
    if s.now == 0 {
        s.now = unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_coarse_ns() };
    }
    s.now
}

pub const ROUTE_RESOLVED: u32 = 0;
pub const ROUTE_NO_NEIGHBOUR: u32 = 1;
pub const ROUTE_TOO_BIG: u32 = 2;
pub const ROUTE_UNREACHABLE: u32 = 3;
pub const ROUTE_NOT_FORWARDED: u32 = 4;

/// `bpf_fib_lookup` for `s.src6/dst6` (`v6`) or `s.src4/dst4`, a packet of `len` bytes
/// arriving on the ingress interface, with the parameters in the scratch map (the stack
/// is too small for them at the translator's call depth), behind the route cache the
/// tunnel path uses too (`l1_cache`). Resolved: `s.ifindex`, `s.smac`, `s.dmac`; too big: `s.mtu`. Returns a
/// `ROUTE_*` code.
#[inline(always)]
pub fn route(ctx: *mut xdp_md, s: *mut Scratch, v6: u32, len: u32) -> u32 {
    use aya_ebpf::{
        bindings::{
            BPF_FIB_LKUP_RET_BLACKHOLE, BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH,
            BPF_FIB_LKUP_RET_PROHIBIT, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LKUP_RET_UNREACHABLE,
        },
        helpers::generated::bpf_fib_lookup,
    };
    let xdp = &XdpContext::new(ctx);
    // SAFETY: the per-CPU scratch value.
    let s = unsafe { &mut *s };
    // The data plane's route cache first (same entries as `forward::lookup`: keyed by
    // ingress interface and destination, resolved routes only, 100 ms).
    // Built from words: a zeroed array and a byte copy become a `memset` call.
    let addr = if v6 != 0 {
        words16(s.dst6.as_ptr())
    } else {
        [word(s.dst4.as_ptr()), 0, 0, 0]
    };
    let key = RouteKey {
        ingress_ifindex: xdp.ingress_ifindex() as u32,
        family: if v6 != 0 { 6 } else { 4 },
        // SAFETY: [u32; 4] and [u8; 16] have the same size; any bytes are valid.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(addr) },
    };
    let now = now(s);
    if let Some(r) = l1_cache::route(&key, now) {
        if r.mtu != 0 && len > r.mtu {
            s.mtu = r.mtu;
            return ROUTE_TOO_BIG;
        }
        s.ifindex = r.ifindex;
        s.smac = r.smac;
        s.dmac = r.dmac;
        return ROUTE_RESOLVED;
    }
    let p = &mut s.fib as *mut _ as *mut u64;
    let mut i = 0;
    while i < core::mem::size_of::<aya_ebpf::bindings::bpf_fib_lookup>() / 8 {
        unsafe { *p.add(i) = 0 };
        i += 1;
    }
    s.fib.ifindex = xdp.ingress_ifindex() as u32;
    s.fib.__bindgen_anon_1.tot_len = len as u16;
    let psrc = &mut s.fib.__bindgen_anon_3 as *mut _ as *mut u8;
    let pdst = &mut s.fib.__bindgen_anon_4 as *mut _ as *mut u8;
    if v6 != 0 {
        s.fib.family = 10;
        copy::<16>(psrc, s.src6.as_ptr());
        copy::<16>(pdst, s.dst6.as_ptr());
    } else {
        s.fib.family = 2;
        copy::<4>(psrc, s.src4.as_ptr());
        copy::<4>(pdst, s.dst4.as_ptr());
    }
    let rc = unsafe {
        bpf_fib_lookup(
            ctx as *mut _,
            &mut s.fib as *mut _,
            core::mem::size_of::<aya_ebpf::bindings::bpf_fib_lookup>() as i32,
            0,
        )
    } as u32;
    match rc {
        // No Ethernet next hop (a NOARP device such as `vdmm0`, where the slow-path
        // routes of bound destinations lead): the kernel forwards it (see
        // `forward::noarp_next_hop`).
        BPF_FIB_LKUP_RET_SUCCESS if crate::forward::noarp_next_hop(&s.fib) => ROUTE_NOT_FORWARDED,
        BPF_FIB_LKUP_RET_SUCCESS => {
            s.ifindex = s.fib.ifindex;
            s.smac = get_mac(s.fib.smac.as_ptr());
            s.dmac = get_mac(s.fib.dmac.as_ptr());
            let cached = CachedRoute {
                expires_ns: now + ROUTE_CACHE_TTL_NS,
                smac: s.smac,
                dmac: s.dmac,
                ifindex: s.ifindex,
                mtu: unsafe { s.fib.__bindgen_anon_1.mtu_result } as u32,
            };
            l1_cache::remember_route(&key, &cached);
            ROUTE_RESOLVED
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => ROUTE_NO_NEIGHBOUR,
        BPF_FIB_LKUP_RET_FRAG_NEEDED => {
            s.mtu = unsafe { s.fib.__bindgen_anon_1.mtu_result } as u32;
            ROUTE_TOO_BIG
        }
        BPF_FIB_LKUP_RET_BLACKHOLE | BPF_FIB_LKUP_RET_UNREACHABLE | BPF_FIB_LKUP_RET_PROHIBIT => {
            ROUTE_UNREACHABLE
        }
        _ => ROUTE_NOT_FORWARDED,
    }
}

/// RFC 7915 4.6 through the RFC 6052 prefix: true when the kernel would forward the IPv4
/// packet to `s.dst4` (a route exists and the address is not local), so that the
/// translator takes it. The answer is cached per CPU for 100 ms (`VDMM_XLAT_LOCAL`):
/// otherwise every IPv4 packet would pay a FIB look-up for this question.
#[inline(always)]
pub fn v4_forwarded(ctx: *mut xdp_md, s: *mut Scratch, len: u32) -> bool {
    let xdp = &XdpContext::new(ctx);
    // SAFETY: the per-CPU scratch value.
    let dst = u32::from_ne_bytes(unsafe { (*s).dst4 });
    // SAFETY: as above.
    let now = now(unsafe { &mut *s });
    let key = LocalKey {
        ingress_ifindex: xdp.ingress_ifindex() as u32,
        dst,
    };
    if let Some(forwarded) = l1_cache::local(&key, now) {
        return forwarded;
    }
    let forwarded = route(ctx, s, 0, len) != ROUTE_NOT_FORWARDED;
    let v = LocalValue {
        expires_ns: now + ROUTE_CACHE_TTL_NS,
        forwarded: forwarded as u64,
    };
    l1_cache::remember_local(&key, &v);
    forwarded
}

/// Key of `VDMM_XLAT_LOCAL`: ingress interface and IPv4 destination.
#[repr(C)]
pub struct LocalKey {
    pub ingress_ifindex: u32,
    pub dst: u32,
}

/// Value of `VDMM_XLAT_LOCAL`.
#[repr(C)]
pub struct LocalValue {
    pub expires_ns: u64,
    pub forwarded: u64,
}
