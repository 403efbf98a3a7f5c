//! What an address is to the tunnels: a local endpoint (`VDMM_ENDPOINTS`: tunnel packets to
//! it are decapsulated) or a peer (`VDMM_PEERS`: allowed to send them), asked for every
//! IP-in-IP packet. A per-CPU direct-mapped first level (`VDMM_TUNNEL_L1`) in front of the
//! two hash maps answers both for its address; its look-up is inlined by the verifier,
//! where each hash look-up was a call. Valid as the vAP caches are (`vap::cache`): for one
//! generation of the tables (`VDMM_TUNNEL_GEN`, incremented by the control plane after
//! every change; see `l1_cache::stamp`). A collision overwrites the slot.

use vdmm_common::{
    IpAddrKey,
    tunnel::{ADDR_IS_ENDPOINT, ADDR_IS_PEER, tunnel_addr_slot},
};

use crate::{
    l1_cache::{same_words, stamp},
    maps::{ENDPOINTS, PEERS, TUNNEL_GEN, TUNNEL_L1},
};

/// True when `key` is a local tunnel endpoint.
#[inline(always)]
pub fn is_endpoint(key: &IpAddrKey) -> bool {
    flags(key) & ADDR_IS_ENDPOINT != 0
}

/// True when `key` is a peer, allowed to send tunnel packets to the local endpoints.
#[inline(always)]
pub fn is_peer(key: &IpAddrKey) -> bool {
    flags(key) & ADDR_IS_PEER != 0
}

#[inline(always)]
fn flags(key: &IpAddrKey) -> u64 {
    // SAFETY: [u8; 16] and [u32; 4] have the same size; the key is 4-byte aligned.
    let w = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(key.addr) };
    flags_of_words(w[0], w[1], w[2], w[3])
}

/// [`flags`] with the key as its four words. A BPF subprogram of its own: the key the hash
/// look-ups of a miss need on the stack is then not in the frames of `vdmm_xdp` and the
/// decapsulator, whose deepest call chain is near the 512-byte limit.
#[inline(never)]
fn flags_of_words(w0: u32, w1: u32, w2: u32, w3: u32) -> u64 {
    let w = [w0, w1, w2, w3];
    let slot = TUNNEL_L1.get_ptr_mut(tunnel_addr_slot(w));
    let (Some(slot), Some(stamp)) = (slot, stamp(&TUNNEL_GEN)) else {
        return from_tables(w);
    };
    // SAFETY: per-CPU map value, this program is its only user on this CPU.
    let s = unsafe { &mut *slot };
    if s.stamp == stamp && same_words(&s.addr, &w) {
        return s.flags;
    }
    let flags = from_tables(w);
    s.addr = w;
    s.stamp = stamp;
    s.flags = flags;
    flags
}

/// Both answers from the hash maps.
#[inline(always)]
fn from_tables(w: [u32; 4]) -> u64 {
    let key = &IpAddrKey {
        // SAFETY: [u32; 4] and [u8; 16] have the same size; any bytes are valid.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(w) },
    };
    let mut flags = 0;
    if ENDPOINTS.get_ptr(key).is_some() {
        flags |= ADDR_IS_ENDPOINT;
    }
    if PEERS.get_ptr(key).is_some() {
        flags |= ADDR_IS_PEER;
    }
    flags
}
