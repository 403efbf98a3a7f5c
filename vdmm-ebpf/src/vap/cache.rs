//! First-level caches of the vAP tables: per-CPU direct-mapped arrays in front of the
//! hash maps, one by client MAC (`VDMM_VAP_L1`, in front of `VDMM_VAPS`: the client side)
//! and one by client address (`VDMM_VAP_ADDR_L1`, in front of `VDMM_VAP_ADDRS` and
//! `VDMM_VAPS`: delivery; it also remembers that an address has no vAP, which every
//! packet `vdmm_xdp` encapsulates or decapsulates asks). A per-CPU array look-up is
//! inlined by the verifier; the hash look-ups it saves were most of the vAP paths' cost.
//!
//! Validity. Unlike the route caches (whose entries expire), a vAP is cached until the
//! control plane changes the vAP tables, and then at once: the control plane increments
//! the generation in `VDMM_VAP_GEN` (atomically, through a shared mapping of the array)
//! after every change. A slot holds its whole key and the generation read BEFORE the
//! hash look-ups that filled it, and is used only while both match, so a slot filled
//! from a table that changed after that read carries an old generation and is never
//! used again. A collision overwrites the slot; the hash maps still have the entry. The
//! returned `*const Vap` points into this CPU's slot, which nothing else writes while
//! the program runs. Slot layouts and indexes: `vdmm_common::vap::{VapMacSlot,
//! VapAddrSlot, mac_slot, addr_slot}` (the tests read the caches through them).

use vdmm_common::{
    IpAddrKey,
    vap::{Vap, addr_slot, mac_slot},
};

use crate::{
    l1_cache::same_words,
    maps::{VAP_ADDR_L1, VAP_ADDRS, VAP_GEN, VAP_L1, VAPS},
};

/// The stamp of slots filled now (see `l1_cache::stamp`).
#[inline(always)]
fn stamp() -> Option<u64> {
    crate::l1_cache::stamp(&VAP_GEN)
}

/// Copies a `Vap` word by word (volatile, so LLVM does not turn it into a call to the
/// object's byte-loop `memcpy`).
#[inline(always)]
fn copy_vap(dst: *mut Vap, src: *const Vap) {
    const WORDS: usize = core::mem::size_of::<Vap>() / 8;
    let (d, s) = (dst as *mut u64, src as *const u64);
    let mut i = 0;
    while i < WORDS {
        // SAFETY: both point to a whole `Vap` (8-byte aligned, a multiple of 8 bytes).
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

/// The vAP of the client with MAC `client`.
#[inline(always)]
pub fn by_client(client: u64) -> Option<*const Vap> {
    let slot = VAP_L1.get_ptr_mut(mac_slot(client));
    let (Some(slot), Some(stamp)) = (slot, stamp()) else {
        return VAPS.get_ptr(&client);
    };
    // SAFETY: per-CPU map value, this program is its only user on this CPU.
    let s = unsafe { &mut *slot };
    if s.stamp == stamp && s.client == client {
        return Some(&s.vap);
    }
    let v = VAPS.get_ptr(&client)?;
    copy_vap(&mut s.vap, v);
    s.client = client;
    s.stamp = stamp;
    Some(&s.vap)
}

/// The vAP whose client has the address `key`, if any.
#[inline(always)]
pub fn by_addr(key: &IpAddrKey) -> Option<*const Vap> {
    // SAFETY: [u8; 16] and [u32; 4] have the same size; the key is 4-byte aligned.
    let w = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(key.addr) };
    by_addr_words(w[0], w[1], w[2], w[3])
}

/// [`by_addr`] with the hit path in line in the caller (no subprogram call when the slot
/// answers): for `classify`, the top of the call chain. The decapsulator keeps
/// [`by_addr`]: in line there, its deepest call chain needed 528 bytes of stack.
#[inline(always)]
pub fn by_addr_in_line(key: &IpAddrKey) -> Option<*const Vap> {
    // SAFETY: [u8; 16] and [u32; 4] have the same size; the key is 4-byte aligned.
    let w = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(key.addr) };
    if let (Some(slot), Some(stamp)) = (VAP_ADDR_L1.get_ptr(addr_slot(w)), stamp()) {
        // SAFETY: per-CPU map value, this program is its only user on this CPU.
        let s = unsafe { &*slot };
        if s.stamp == stamp && same_words(&s.addr, &w) {
            return if s.found != 0 { Some(&s.vap) } else { None };
        }
    }
    by_addr_words(w[0], w[1], w[2], w[3])
}

/// [`by_addr`] with the key as its four words. A BPF subprogram of its own: the key a
/// hash look-up needs on the stack is then not in the frames of the decapsulator's
/// deep call chains (512 bytes for the whole chain).
#[inline(never)]
fn by_addr_words(w0: u32, w1: u32, w2: u32, w3: u32) -> Option<*const Vap> {
    let w = [w0, w1, w2, w3];
    let key = &IpAddrKey {
        // SAFETY: as above.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(w) },
    };
    let slot = VAP_ADDR_L1.get_ptr_mut(addr_slot(w));
    let (Some(slot), Some(stamp)) = (slot, stamp()) else {
        let addr = VAP_ADDRS.get_ptr(key)?;
        // SAFETY: map value of a successful look-up.
        return VAPS.get_ptr(&unsafe { (*addr).client_mac });
    };
    // SAFETY: per-CPU map value, this program is its only user on this CPU.
    let s = unsafe { &mut *slot };
    if s.stamp == stamp && same_words(&s.addr, &w) {
        return if s.found != 0 { Some(&s.vap) } else { None };
    }
    s.addr = w;
    s.stamp = stamp;
    // Found in both tables, or remembered as none (also an address whose vAP is half
    // created or deleted: the control plane increments the generation when it is done).
    let vap = VAP_ADDRS
        .get_ptr(key)
        // SAFETY: map value of a successful look-up.
        .and_then(|a| VAPS.get_ptr(&unsafe { (*a).client_mac }));
    match vap {
        Some(v) => {
            copy_vap(&mut s.vap, v);
            s.found = 1;
            Some(&s.vap)
        }
        None => {
            s.found = 0;
            None
        }
    }
}
