//! What an address is to the translator, cached: whether a binding covers it (the
//! translator only sees unbound packets, so every packet it translates first missed the
//! host binding hash and the binding LPM trie) and its EAMT translation (an LPM trie walk
//! per address and direction). A per-CPU direct-mapped first level (`VDMM_MAPPING_L1`)
//! answers both, with a look-up the verifier inlines, where the tables cost a call each.
//! Negative answers (unbound, no EAMT entry) are cached as well: they are the common case.
//!
//! Valid as the vAP and tunnel address caches are (`vap::cache`, `tunnel::addresses`): a
//! slot is used only for the generation of the tables it was filled from
//! (`VDMM_XLAT_GEN`, read before the look-ups of the fill; see `l1_cache::stamp`), which
//! the control plane increments after every change to the bindings, the EAMT and the
//! translator's settings. A collision overwrites the slot. Slot layout and index:
//! `vdmm_common::translate::maps::{MappingSlot, mapping_slot}`.

use aya_ebpf::maps::lpm_trie::Key;
use vdmm_common::{
    IpAddrKey,
    translate::maps::{
        MAPPING_BOUND, MAPPING_EAM, MAPPING_V4, MAPPING_V6, MappingSlot, mapping_slot,
    },
};

use crate::{
    l1_cache::{same_words, stamp},
    maps::{BINDINGS_V4, BINDINGS_V6, HOST_BINDINGS, MAPPING_L1, XLAT_GEN},
    translate::addr::{eam_4to6_table, eam_6to4_table},
};

/// The key words of the IPv4 address `a` (a big-endian value), as `packet::key_v4` has them.
#[inline(always)]
pub fn words_v4(a: u32) -> [u32; 4] {
    [
        0,
        0,
        u32::from_ne_bytes([0, 0, 0xff, 0xff]),
        u32::from_ne_bytes(a.to_be_bytes()),
    ]
}

/// The key words of an `IpAddrKey`.
#[inline(always)]
pub fn words(key: &IpAddrKey) -> [u32; 4] {
    // SAFETY: [u8; 16] and [u32; 4] have the same size; the key is 4-byte aligned.
    unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(key.addr) }
}

/// The slot for the address `w` of `family`, current or filled now. `None` only if the
/// per-CPU array had no slot (it always has): callers then ask the tables themselves.
/// The slot is read at once: a later look-up may reuse it for another address.
#[inline(always)]
pub fn lookup(w: [u32; 4], family: u32) -> Option<&'static MappingSlot> {
    if let (Some(slot), Some(stamp)) = (
        MAPPING_L1.get_ptr(mapping_slot(w, family)),
        stamp(&XLAT_GEN),
    ) {
        // SAFETY: per-CPU map value, this program is its only user on this CPU.
        let s = unsafe { &*slot };
        if s.stamp == stamp && s.family == family && same_words(&s.addr, &w) {
            return Some(s);
        }
    }
    let filled = if family == MAPPING_V6 {
        fill_v6(w[0], w[1], w[2], w[3])
    } else {
        fill_v4(w[3])
    };
    // SAFETY: null or a slot of this CPU's array.
    unsafe { filled.as_ref() }
}

/// False when no binding covers the address (certain); true when the binding tables
/// must be asked.
#[inline(always)]
pub fn may_be_bound(w: [u32; 4], family: u32) -> bool {
    match lookup(w, family) {
        Some(s) => s.flags & MAPPING_BOUND != 0,
        None => true,
    }
}

/// The slot of the address `w` of `family` to fill, with the stamp to fill it with: read
/// before the look-ups, so that a table changed after this read leaves an old stamp.
#[inline(always)]
fn to_fill(w: [u32; 4], family: u32) -> Option<(&'static mut MappingSlot, u64)> {
    let slot = MAPPING_L1.get_ptr_mut(mapping_slot(w, family))?;
    // SAFETY: per-CPU map value, this program is its only user on this CPU.
    Some((unsafe { &mut *slot }, stamp(&XLAT_GEN).unwrap_or(0)))
}

/// Whether the host binding hash holds the address `w`.
#[inline(always)]
fn host_bound(w: [u32; 4]) -> bool {
    let key = IpAddrKey {
        // SAFETY: [u32; 4] and [u8; 16] have the same size; any bytes are valid.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(w) },
    };
    // SAFETY: the value is only tested for presence.
    unsafe { HOST_BINDINGS.get(&key) }.is_some()
}

/// Completes a slot: key and answers, the stamp last.
#[inline(always)]
fn store(s: &mut MappingSlot, w: [u32; 4], family: u32, bound: bool, flags: u32, stamp: u64) {
    s.addr = w;
    s.family = family;
    s.flags = flags | if bound { MAPPING_BOUND } else { 0 };
    s.stamp = stamp;
}

/// Fills the slot of the IPv4 address whose key word is `w3` from the tables (null if
/// there is no slot). A BPF subprogram of its own, as [`fill_v6`]: the keys the look-ups
/// need on the stack are then not in the frames of the translator's steps (512 bytes of
/// stack for the whole call chain), and the hit path, in line in the callers, stays small.
#[inline(never)]
fn fill_v4(w3: u32) -> *const MappingSlot {
    let w = words_v4(u32::from_be_bytes(w3.to_ne_bytes()));
    let Some((s, stamp)) = to_fill(w, MAPPING_V4) else {
        return core::ptr::null();
    };
    let bound = host_bound(w) || BINDINGS_V4.get(&Key::new(32, w3.to_ne_bytes())).is_some();
    let a = u32::from_be_bytes(w3.to_ne_bytes());
    let eam = eam_4to6_table(a, s.mapped.as_mut_ptr() as *mut u8);
    store(s, w, MAPPING_V4, bound, eam as u32 * MAPPING_EAM, stamp);
    s
}

/// [`fill_v4`] for the IPv6 address `w0..w3`.
#[inline(never)]
fn fill_v6(w0: u32, w1: u32, w2: u32, w3: u32) -> *const MappingSlot {
    let w = [w0, w1, w2, w3];
    let Some((s, stamp)) = to_fill(w, MAPPING_V6) else {
        return core::ptr::null();
    };
    // SAFETY: [u32; 4] and [u8; 16] have the same size; any bytes are valid.
    let addr = unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(w) };
    let bound = host_bound(w) || BINDINGS_V6.get(&Key::new(128, addr)).is_some();
    let mut eam = 0;
    if let Some(a) = eam_6to4_table(addr.as_ptr()) {
        s.mapped[0] = a;
        eam = MAPPING_EAM;
    }
    store(s, w, MAPPING_V6, bound, eam, stamp);
    s
}
