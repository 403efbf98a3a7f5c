//! Address mapping in the data plane (RFC 7915 section 6): the EAMT (RFC 7757, longest
//! match = an LPM trie look-up, answered from the first level `mapping_cache` once asked)
//! first, then the RFC 6052 prefix. Same rules as
//! `vdmm_common::translate::eamt::address_4to6` / `address_6to4`.

use aya_ebpf::maps::lpm_trie::Key;
use vdmm_common::translate::{
    eamt::v4_mask,
    maps::{MAPPING_EAM, MAPPING_V4, MAPPING_V6, XlatConfig},
    rfc6052::translatable_v4,
};

use crate::{
    mapping_cache::{self, words_v4},
    maps::{EAMT_V4, EAMT_V6},
    packet::{copy, get16, get32, lpm_key_v6, put32, words16},
};

/// IPv4 `a` (big-endian value) through the EAMT: writes the IPv6 address to `out` (4-byte
/// aligned: a `Scratch` address field).
#[inline(always)]
pub fn eam_4to6(a: u32, out: *mut u8) -> bool {
    let Some(s) = mapping_cache::lookup(words_v4(a), MAPPING_V4) else {
        return eam_4to6_table(a, out);
    };
    if s.flags & MAPPING_EAM == 0 {
        return false;
    }
    let o = out as *mut u32;
    // SAFETY: `out` is 16 bytes, 4-byte aligned (see the doc comment).
    unsafe {
        *o = s.mapped[0];
        *o.add(1) = s.mapped[1];
        *o.add(2) = s.mapped[2];
        *o.add(3) = s.mapped[3];
    }
    true
}

/// The IPv6 address at `a` through the EAMT: the IPv4 address (big-endian value).
#[inline(always)]
fn eam_6to4(a: *const u8) -> Option<u32> {
    let Some(s) = mapping_cache::lookup(words16(a), MAPPING_V6) else {
        return eam_6to4_table(a);
    };
    if s.flags & MAPPING_EAM == 0 {
        return None;
    }
    Some(s.mapped[0])
}

/// [`eam_4to6`] from the trie (`mapping_cache` fills its slots with it).
#[inline(always)]
pub fn eam_4to6_table(a: u32, out: *mut u8) -> bool {
    let key = Key::new(32, a.to_be_bytes());
    match EAMT_V4.get(&key) {
        Some(e) => {
            copy::<16>(out, e.v6.as_ptr());
            let m = v4_mask(e.v4_len);
            let tail6 = get32(unsafe { e.v6.as_ptr().add(12) });
            put32(unsafe { out.add(12) }, (tail6 & m) | (a & !m));
            true
        }
        None => false,
    }
}

/// IPv4 `a` under the RFC 6052 prefix (section 2.2), if one is set and `a` may be
/// embedded (`rfc6052::translatable_v4`; not checked when `any`: the source of an ICMPv4
/// error, RFC 7915 4.1).
#[inline(always)]
pub fn pool6_4to6(a: u32, cfg: &XlatConfig, out: *mut u8, any: bool) -> bool {
    let len = cfg.pool6.len;
    let b = a.to_be_bytes();
    let pos: [usize; 4] = match len {
        32 => [4, 5, 6, 7],
        40 => [5, 6, 7, 9],
        48 => [6, 7, 9, 10],
        56 => [7, 9, 10, 11],
        64 => [9, 10, 11, 12],
        96 => [12, 13, 14, 15],
        _ => return false,
    };
    if !any && !translatable_v4(&cfg.pool6, &b) {
        return false;
    }
    let n = (len / 8) as usize;
    let mut i = 0;
    while i < 16 {
        let v = if i < n { cfg.pool6.addr[i] } else { 0 };
        unsafe { *out.add(i) = v };
        i += 1;
    }
    unsafe {
        *out.add(pos[0] & 15) = b[0];
        *out.add(pos[1] & 15) = b[1];
        *out.add(pos[2] & 15) = b[2];
        *out.add(pos[3] & 15) = b[3];
    }
    true
}

/// IPv4 -> IPv6, EAMT then prefix.
#[inline(always)]
pub fn map_4to6(a: u32, cfg: &XlatConfig, out: *mut u8) -> bool {
    eam_4to6(a, out) || pool6_4to6(a, cfg, out, false)
}

/// [`eam_6to4`] from the trie (`mapping_cache` fills its slots with it).
#[inline(always)]
pub fn eam_6to4_table(a: *const u8) -> Option<u32> {
    let key = lpm_key_v6(a);
    let tail = get32(unsafe { a.add(12) });
    let e = EAMT_V6.get(&key)?;
    let m = v4_mask(e.v4_len);
    Some((u32::from_be_bytes(e.v4) & m) | (tail & !m))
}

/// IPv6 address at `a` (16 bytes the caller checked) to IPv4, EAMT then prefix.
#[inline(always)]
pub fn map_6to4(a: *const u8, cfg: &XlatConfig) -> Option<u32> {
    if let Some(v4) = eam_6to4(a) {
        return Some(v4);
    }
    let len = cfg.pool6.len;
    let n = (len / 8) as usize;
    let pos: [usize; 4] = match len {
        32 => [4, 5, 6, 7],
        40 => [5, 6, 7, 9],
        48 => [6, 7, 9, 10],
        56 => [7, 9, 10, 11],
        64 => [9, 10, 11, 12],
        96 => [12, 13, 14, 15],
        _ => return None,
    };
    let mut i = 0;
    while i < 12 {
        if i < n && unsafe { *a.add(i) } != cfg.pool6.addr[i] {
            return None;
        }
        i += 1;
    }
    let b = unsafe {
        [
            *a.add(pos[0] & 15),
            *a.add(pos[1] & 15),
            *a.add(pos[2] & 15),
            *a.add(pos[3] & 15),
        ]
    };
    if !translatable_v4(&cfg.pool6, &b) {
        return None;
    }
    Some(u32::from_be_bytes(b))
}

/// RFC 7915 5.1: IPv6 sources never translated (unspecified, loopback, multicast).
#[inline(always)]
pub fn illegal_source6(a: *const u8) -> bool {
    let w0 = get32(a);
    let w3 = get32(unsafe { a.add(12) });
    let mid = get32(unsafe { a.add(4) }) | get32(unsafe { a.add(8) });
    (w0 >> 24) == 0xff || (w0 == 0 && mid == 0 && (w3 == 0 || w3 == 1))
}

/// Sum of the eight 16-bit words of the IPv6 address at `p`.
#[inline(always)]
pub fn sum6(p: *const u8) -> u32 {
    let mut s = 0u32;
    let mut i = 0;
    while i < 16 {
        s += get16(unsafe { p.add(i) }) as u32;
        i += 2;
    }
    s
}

/// Sum of the two 16-bit words of an IPv4 address (big-endian value).
#[inline(always)]
pub fn sum4(a: u32) -> u32 {
    (a >> 16) + (a & 0xffff)
}
