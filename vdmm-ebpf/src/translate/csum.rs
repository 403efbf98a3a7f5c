//! Ones'-complement sums over packet regions of any length (RFC 1071), for the
//! translator's checksums: like `checksum::sum_region` (bpf_csum_diff in 256/64/4-byte
//! chunks), but the last 1..3 bytes are read with `bpf_xdp_load_bytes`, so an odd
//! length needs no one-byte packet bounds check (LLVM rewrites `p + 1 > end` into
//! `p >= end`, which the verifier does not accept as proof of one readable byte).

use aya_ebpf::{
    helpers::generated::{bpf_csum_diff, bpf_xdp_load_bytes},
    programs::XdpContext,
};

use crate::{checksum::fold, packet::Frame};

/// Unfolded big-endian sum of `len` bytes of the frame from `off` (at most `MAX`; an odd
/// last byte padded with zero), `None` if the region is not inside the frame.
#[inline(always)]
pub fn sum<const MAX: usize>(
    ctx: &XdpContext,
    frame: &Frame,
    off: usize,
    len: usize,
) -> Option<u32> {
    if len > MAX {
        return None;
    }
    let mut native = 0u32;
    let mut at = 0usize;
    macro_rules! chunks {
        ($size:literal, $times:expr) => {
            let mut i = 0;
            while i < $times {
                if at + $size > len {
                    break;
                }
                let p = frame.ptr(off + at, $size)?;
                native = unsafe {
                    bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, $size, native)
                } as u32;
                at += $size;
                i += 1;
            }
        };
    }
    chunks!(256, MAX / 256);
    chunks!(64, 3);
    chunks!(4, 15);
    let mut s = fold(native).swap_bytes() as u32;
    let rest = len - at;
    if rest > 0 {
        let mut b = [0u8; 4];
        let at32 = (off + at) as u32;
        let buf = b.as_mut_ptr() as *mut _;
        // Constant sizes: the verifier wants to see a non-zero length.
        let rc = unsafe {
            match rest {
                1 => bpf_xdp_load_bytes(ctx.ctx, at32, buf, 1),
                2 => bpf_xdp_load_bytes(ctx.ctx, at32, buf, 2),
                _ => bpf_xdp_load_bytes(ctx.ctx, at32, buf, 3),
            }
        };
        if rc != 0 {
            return None;
        }
        s += ((b[0] as u32) << 8) | b[1] as u32;
        s += (b[2] as u32) << 8;
    }
    Some(s)
}
