//! Internet checksum (RFC 1071) arithmetic: full sums over headers and packet regions,
//! and incremental updates (RFC 1624) when a field changes.

use aya_ebpf::{
    helpers::generated::{bpf_csum_diff, bpf_xdp_load_bytes},
    programs::XdpContext,
};

use crate::packet::{Frame, get16, put16};

/// Folds a 32-bit running sum to 16 bits (end-around carry).
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds `delta` (a 16-bit word in host order of the big-endian value) to the checksum
/// at `p`, the way Linux `ip_decrease_ttl` does for a TTL decrement (`delta` = 0x0100).
#[inline(always)]
pub fn add16(p: *mut u8, delta: u16) {
    let check = get16(p) as u32 + delta as u32;
    put16(p, (check + (check >= 0xffff) as u32) as u16);
}

/// RFC 1624 equation 3: the checksum at `p` after a 16-bit word changed from `old` to
/// `new`.
#[inline(always)]
pub fn replace16(p: *mut u8, old: u16, new: u16) {
    let sum = (!get16(p)) as u32 + (!old) as u32 + new as u32;
    put16(p, !fold(sum));
}

/// Checksum of a 20-byte IPv4 header whose checksum field is zero.
#[inline(always)]
pub fn ipv4_header(p: *const u8) -> u16 {
    !fold(words::<20>(p))
}

/// Unfolded sum of the `N / 2` big-endian 16-bit words at `p` (`N` even, bounds checked
/// by the caller): a short fixed region summed in line, cheaper than a helper call.
#[inline(always)]
pub fn words<const N: usize>(p: *const u8) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < N {
        sum += get16(unsafe { p.add(i) }) as u32;
        i += 2;
    }
    sum
}

/// Ones'-complement sum of a packet region of any length (RFC 1071): `bpf_csum_diff` in
/// 1024-byte chunks (the kernel's limit per call) and then at most one each of 512, 256,
/// ..., 8 and 4 bytes, so few helper calls (a 1300-byte ICMP error takes four), and the
/// last 1..3 bytes read with `bpf_xdp_load_bytes`, so an odd length needs no one-byte
/// packet bounds check (LLVM rewrites `p + 1 > end` into `p >= end`, which the verifier
/// does not accept as proof of one readable byte).
/// Unfolded big-endian sum of `len` bytes of the frame from `off` (at most `MAX`; an odd
/// last byte padded with zero), `None` if the region is not inside the frame.
#[inline(always)]
pub fn sum_region<const MAX: usize>(
    ctx: &XdpContext,
    frame: &Frame,
    off: usize,
    len: usize,
) -> Option<u32> {
    if len > MAX {
        return None;
    }
    let mut native = 0u32;
    // Whole 1024-byte chunks, then one chunk for each remaining bit of the length from
    // 512 down to 4. Every chunk's offset is computed from `len` alone, not from the
    // chunks before it, so the verifier's states after an optional chunk are alike and
    // it prunes them (offsets carried from chunk to chunk multiply its paths).
    let mut i = 0;
    while i < MAX / 1024 {
        if (i + 1) * 1024 > len {
            break;
        }
        let p = frame.ptr(off + i * 1024, 1024)?;
        native =
            unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, 1024, native) } as u32;
        i += 1;
    }
    macro_rules! chunk {
        ($size:literal) => {
            if len & $size != 0 {
                let p = frame.ptr(off + (len & !(2 * $size - 1)), $size)?;
                native = unsafe {
                    bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, $size, native)
                } as u32;
            }
        };
    }
    chunk!(512);
    chunk!(256);
    chunk!(128);
    chunk!(64);
    chunk!(32);
    chunk!(16);
    chunk!(8);
    chunk!(4);
    let at = len & !3;
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
