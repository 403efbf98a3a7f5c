//! First-level caches: small per-CPU direct-mapped arrays in front of the per-CPU LRU
//! hashes of the hot path (`VDMM_ROUTES`, `VDMM_XLAT_LOCAL`). A per-CPU array look-up is
//! inlined by the verifier (no helper call, no key hashing in the kernel, no LRU
//! bookkeeping), which saves about 30 ns per look-up on a warm path. A slot holds its
//! whole key and is only used when the key matches; entries keep the expiry time of the
//! look-up that produced them, so the first level never extends what the LRU map (and
//! the FIB behind it) said: it is the same cache, only closer. A collision overwrites
//! the slot; the LRU map still has the entry. The vAP tables and the tunnel address tables
//! have first levels of their own (`vap::cache`, `tunnel::addresses`), valid until the
//! control plane changes those tables: [`stamp`] is their validity check.

use aya_ebpf::{helpers::generated::bpf_jiffies64, maps::Array};
use vdmm_common::tunnel::{CachedRoute, RouteKey};

use crate::{
    maps::{ROUTES, ROUTES_L1, XLAT_LOCAL, XLAT_LOCAL_L1},
    translate::{LocalKey, LocalValue},
};

/// The clock of the route caches' expiry: `jiffies`. The verifier inlines
/// `bpf_jiffies64` as a load, where `bpf_ktime_get_coarse_ns` was a helper call on every
/// packet (see `vdmm_common::tunnel::ROUTE_CACHE_TTL_JIFFIES`).
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_jiffies64() }
}

/// The stamp of first-level slots filled now from tables whose generation is in `generation`
/// (`VDMM_VAP_GEN`, `VDMM_TUNNEL_GEN`): that generation + 1, read before any hash look-up
/// of the fill (a volatile load: not moved after the look-up's helper call). A slot is used
/// only while its stamp equals the current one, so a slot filled from a table that changed
/// after this read carries an old generation and is never used again.
#[inline(always)]
pub fn stamp(generation: &Array<u64>) -> Option<u64> {
    let g = generation.get_ptr(0)?;
    // SAFETY: map value of a successful look-up; the control plane changes it atomically.
    Some(unsafe { core::ptr::read_volatile(g) }.wrapping_add(1))
}

/// Slots per CPU of each first-level cache (a power of two).
pub const SLOTS: u32 = 256;

/// A `VDMM_ROUTES_L1` slot.
#[repr(C)]
pub struct RouteSlot {
    pub key: RouteKey,
    pub route: CachedRoute,
}

/// A `VDMM_XLAT_L1` slot.
#[repr(C)]
pub struct LocalSlot {
    pub key: LocalKey,
    pub value: LocalValue,
}

/// Slot index of a key given as words (multiplicative hashing, top bits).
#[inline(always)]
fn slot_of(mix: u32) -> u32 {
    mix.wrapping_mul(0x9e37_79b1) >> (32 - SLOTS.trailing_zeros())
}

/// The four address words of a route key (its bytes read as native words).
#[inline(always)]
fn addr_words(key: &RouteKey) -> [u32; 4] {
    // SAFETY: [u8; 16] and [u32; 4] have the same size; the key is 4-byte aligned.
    unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(key.addr) }
}

#[inline(always)]
fn route_slot(key: &RouteKey) -> u32 {
    let a = addr_words(key);
    slot_of(a[0] ^ a[1] ^ a[2] ^ a[3] ^ key.ingress_ifindex.rotate_left(16) ^ key.family)
}

#[inline(always)]
fn same_route_key(a: &RouteKey, b: &RouteKey) -> bool {
    let (x, y) = (addr_words(a), addr_words(b));
    a.ingress_ifindex == b.ingress_ifindex && a.family == b.family && same_words(&x, &y)
}

/// True when two 16-byte keys held as four words are equal: the key check of every first
/// level (word compares; an array `==` may become a `bcmp` call).
#[inline(always)]
pub fn same_words(a: &[u32; 4], b: &[u32; 4]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3]
}

/// The cached route for `key` that has not expired at `now`: the first level, else the
/// LRU map (then copied into the first level).
#[inline(always)]
pub fn route(key: &RouteKey, now: u64) -> Option<CachedRoute> {
    let slot = ROUTES_L1.get_ptr_mut(route_slot(key));
    if let Some(slot) = slot {
        // SAFETY: per-CPU map value, this program is its only user on this CPU.
        let slot = unsafe { &*slot };
        if now < slot.route.expires && same_route_key(&slot.key, key) {
            return Some(slot.route);
        }
    }
    let r = ROUTES.get_ptr(key)?;
    // SAFETY: map value of a successful look-up.
    let r = unsafe { *r };
    if now >= r.expires {
        return None;
    }
    if let Some(slot) = slot {
        // SAFETY: as above.
        unsafe { fill_route(&mut *slot, key, &r) };
    }
    Some(r)
}

/// Records a route the FIB resolved, in the LRU map and the first level.
#[inline(always)]
pub fn remember_route(key: &RouteKey, r: &CachedRoute) {
    let _ = ROUTES.insert(key, r, 0);
    if let Some(slot) = ROUTES_L1.get_ptr_mut(route_slot(key)) {
        // SAFETY: per-CPU map value, this program is its only user on this CPU.
        unsafe { fill_route(&mut *slot, key, r) };
    }
}

#[inline(always)]
fn fill_route(slot: &mut RouteSlot, key: &RouteKey, r: &CachedRoute) {
    slot.key.ingress_ifindex = key.ingress_ifindex;
    slot.key.family = key.family;
    // SAFETY: as in `addr_words`.
    slot.key.addr = unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(addr_words(key)) };
    slot.route = *r;
}

#[inline(always)]
fn local_slot(key: &LocalKey) -> u32 {
    slot_of(key.dst ^ key.ingress_ifindex.rotate_left(16))
}

/// The cached answer to "would the kernel forward IPv4 to `key.dst`" that has not
/// expired at `now` (first level, else the LRU map).
#[inline(always)]
pub fn local(key: &LocalKey, now: u64) -> Option<bool> {
    let slot = XLAT_LOCAL_L1.get_ptr_mut(local_slot(key));
    if let Some(slot) = slot {
        // SAFETY: per-CPU map value, this program is its only user on this CPU.
        let slot = unsafe { &*slot };
        if now < slot.value.expires
            && slot.key.dst == key.dst
            && slot.key.ingress_ifindex == key.ingress_ifindex
        {
            return Some(slot.value.forwarded != 0);
        }
    }
    let v = XLAT_LOCAL.get_ptr(key)?;
    // SAFETY: map value of a successful look-up.
    let (expires, forwarded) = unsafe { ((*v).expires, (*v).forwarded) };
    if now >= expires {
        return None;
    }
    if let Some(slot) = slot {
        // SAFETY: as above.
        let slot = unsafe { &mut *slot };
        slot.key.dst = key.dst;
        slot.key.ingress_ifindex = key.ingress_ifindex;
        slot.value.expires = expires;
        slot.value.forwarded = forwarded;
    }
    Some(forwarded != 0)
}

/// Records the answer for `key` in the LRU map and the first level.
#[inline(always)]
pub fn remember_local(key: &LocalKey, v: &LocalValue) {
    let _ = XLAT_LOCAL.insert(key, v, 0);
    if let Some(slot) = XLAT_LOCAL_L1.get_ptr_mut(local_slot(key)) {
        // SAFETY: per-CPU map value, this program is its only user on this CPU.
        let slot = unsafe { &mut *slot };
        slot.key.dst = key.dst;
        slot.key.ingress_ifindex = key.ingress_ifindex;
        slot.value.expires = v.expires;
        slot.value.forwarded = v.forwarded;
    }
}
