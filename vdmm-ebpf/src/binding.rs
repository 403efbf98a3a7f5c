//! Binding lookup: which locator a destination's packets are tunnelled to. Host bindings
//! (/32, /128: one per mobile client, the bulk of a large table) sit in a hash map whose
//! lookup costs the same at a thousand entries as at a million; shorter home prefixes sit
//! in the LPM tries, walked only when the hash has no entry. A host entry is always the
//! longest match, so trying it first keeps longest-prefix semantics. Both are skipped for
//! an address the first level `mapping_cache` knows to be unbound (most packets that are
//! not encapsulated: translated ones, and those left to the kernel).

use vdmm_common::{
    Binding,
    translate::maps::{MAPPING_V4, MAPPING_V6},
};

use crate::{
    mapping_cache::{may_be_bound, words},
    maps::{BINDINGS_V4, BINDINGS_V6, HOST_BINDINGS},
    packet::{key_v4, key_v6, lpm_key_v4, lpm_key_v6},
};

/// The binding for the IPv4 address at `dst`, if any.
#[inline(always)]
pub fn for_v4(dst: *const u8) -> Option<&'static Binding> {
    let key = key_v4(dst);
    if !may_be_bound(words(&key), MAPPING_V4) {
        return None;
    }
    // SAFETY: the map's values are never removed while a program holds them (RCU).
    if let Some(b) = unsafe { HOST_BINDINGS.get(&key) } {
        return Some(b);
    }
    BINDINGS_V4.get(&lpm_key_v4(dst))
}

/// The binding for the IPv6 address at `dst`, if any.
#[inline(always)]
pub fn for_v6(dst: *const u8) -> Option<&'static Binding> {
    let key = key_v6(dst);
    if !may_be_bound(words(&key), MAPPING_V6) {
        return None;
    }
    // SAFETY: as in `for_v4`.
    if let Some(b) = unsafe { HOST_BINDINGS.get(&key) } {
        return Some(b);
    }
    BINDINGS_V6.get(&lpm_key_v6(dst))
}
