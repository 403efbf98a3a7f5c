//! Header words for the translator's hot path: 16-bit loads and stores where the
//! alignment is known, instead of the byte-wise `packet::get16` / `put16` (LLVM's BPF
//! backend splits every access it cannot prove aligned into single bytes, so a 16-bit
//! field costs four instructions instead of two, an address four times that).
//!
//! Alignment: XDP frames start at an even address (drivers and `BPF_PROG_TEST_RUN` put
//! `data` behind an aligned headroom, and this program only moves it by multiples of 4),
//! so header fields at even frame offsets are 2-byte aligned; the `Scratch` address fields
//! are 4-byte aligned (checked at compile time in `translate`).
//!
//! Sums: the Internet checksum does not depend on the byte order it is computed in
//! (RFC 1071 2(B)), so words are summed as loaded (native order) and the folded sum is
//! swapped once, instead of swapping every word.

/// The big-endian 16-bit field at the even address `p`.
#[inline(always)]
pub fn ld16(p: *const u8) -> u16 {
    // SAFETY: `p` is 2-byte aligned and readable (checked by the caller).
    u16::from_be(unsafe { (p as *const u16).read() })
}

/// Writes the big-endian 16-bit field at the even address `p`.
#[inline(always)]
pub fn st16(p: *mut u8, v: u16) {
    // SAFETY: `p` is 2-byte aligned and writable (checked by the caller).
    unsafe { (p as *mut u16).write(v.to_be()) }
}

/// Folds a native-order running sum to 16 bits and returns it as the sum of the same
/// words read big-endian.
#[inline(always)]
fn be_sum(native: u32) -> u32 {
    crate::checksum::fold(native).swap_bytes() as u32
}

/// Sum (big-endian words, folded) of the `N` bytes at the even address `p`.
#[inline(always)]
pub fn sum<const N: usize>(p: *const u8) -> u32 {
    let mut native = 0u32;
    let mut i = 0;
    while i < N {
        // SAFETY: as in `ld16`.
        native += unsafe { (p.add(i) as *const u16).read() } as u32;
        i += 2;
    }
    be_sum(native)
}

/// Sum (big-endian words, folded) of the `N`-byte address at the 4-byte aligned `p`
/// (scratch memory).
#[inline(always)]
pub fn sum_words<const N: usize>(p: *const u8) -> u32 {
    let mut native = 0u64;
    let mut i = 0;
    while i < N {
        // SAFETY: `p` is 4-byte aligned, `N` bytes readable.
        native += unsafe { (p.add(i) as *const u32).read() } as u64;
        i += 4;
    }
    let folded = (native & 0xffff_ffff) + (native >> 32);
    be_sum(((folded & 0xffff_ffff) + (folded >> 32)) as u32 & 0xffff_ffff)
}

/// Copies the `N`-byte address at the 4-byte aligned `src` (scratch) to the even `dst`
/// (packet): a word load and two 16-bit stores per 4 bytes.
#[inline(always)]
pub fn put_addr<const N: usize>(dst: *mut u8, src: *const u8) {
    let mut i = 0;
    while i < N {
        // SAFETY: see the module docs; both regions hold `N` bytes.
        unsafe {
            let w = (src.add(i) as *const u32).read();
            (dst.add(i) as *mut u16).write(w as u16);
            (dst.add(i + 2) as *mut u16).write((w >> 16) as u16);
        }
        i += 4;
    }
}

/// Writes an ICMP / ICMPv6 header at the even address `p`: type << 8 | code, checksum
/// zero (summed later), and the 4 bytes after the checksum (`rest`, big-endian value).
#[inline(always)]
pub fn put_icmp(p: *mut u8, type_code: u16, rest: u32) {
    st16(p, type_code);
    st16(unsafe { p.add(2) }, 0);
    st16(unsafe { p.add(4) }, (rest >> 16) as u16);
    st16(unsafe { p.add(6) }, rest as u16);
}

/// Writes an Ethernet header at the even address `p` (MACs as held by `packet::get_mac`).
#[inline(always)]
pub fn put_eth(p: *mut u8, dst: u64, src: u64, ethertype: u16) {
    st16(p, (dst >> 32) as u16);
    st16(unsafe { p.add(2) }, (dst >> 16) as u16);
    st16(unsafe { p.add(4) }, dst as u16);
    st16(unsafe { p.add(6) }, (src >> 32) as u16);
    st16(unsafe { p.add(8) }, (src >> 16) as u16);
    st16(unsafe { p.add(10) }, src as u16);
    st16(unsafe { p.add(12) }, ethertype);
}

/// Writes the fixed IPv6 header at the even address `p` (flow label 0); `src` and `dst`
/// are 4-byte aligned scratch addresses.
#[inline(always)]
pub fn put_ipv6(
    p: *mut u8,
    traffic_class: u8,
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: *const u8,
    dst: *const u8,
) {
    st16(p, 0x6000 | ((traffic_class as u16) << 4));
    st16(unsafe { p.add(2) }, 0);
    st16(unsafe { p.add(4) }, payload_len);
    st16(
        unsafe { p.add(6) },
        ((next_header as u16) << 8) | hop_limit as u16,
    );
    put_addr::<16>(unsafe { p.add(8) }, src);
    put_addr::<16>(unsafe { p.add(24) }, dst);
}

/// Writes a 20-byte IPv4 header at the even address `p`, its checksum computed from the
/// values rather than read back; `src` and `dst` are 4-byte aligned scratch addresses.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn put_ipv4(
    p: *mut u8,
    tos: u8,
    total_len: u16,
    id: u16,
    frag_word: u16,
    ttl: u8,
    protocol: u8,
    src: *const u8,
    dst: *const u8,
) {
    let w0 = 0x4500 | tos as u16;
    let w4 = ((ttl as u16) << 8) | protocol as u16;
    st16(p, w0);
    st16(unsafe { p.add(2) }, total_len);
    st16(unsafe { p.add(4) }, id);
    st16(unsafe { p.add(6) }, frag_word);
    st16(unsafe { p.add(8) }, w4);
    put_addr::<4>(unsafe { p.add(12) }, src);
    put_addr::<4>(unsafe { p.add(16) }, dst);
    let sum = w0 as u32
        + total_len as u32
        + id as u32
        + frag_word as u32
        + w4 as u32
        + sum_words::<4>(src)
        + sum_words::<4>(dst);
    st16(unsafe { p.add(10) }, !crate::checksum::fold(sum));
}
