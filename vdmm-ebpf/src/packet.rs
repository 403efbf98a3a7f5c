//! Bounds-checked access to the frame. Every pointer into packet memory comes from
//! `Frame::ptr`, which checks the access against `data_end` the way the verifier wants to
//! see it. Offsets are bounded so the verifier can track them.

use aya_ebpf::{bindings::xdp_md, maps::lpm_trie::Key, programs::XdpContext};
use vdmm_common::IpAddrKey;

/// Largest offset any access uses: XDP frames are at most a page, and this bound lets the
/// verifier track offsets computed from header fields.
pub const MAX_OFFSET: usize = 0xfff;

/// A view of the frame between `data` and `data_end`, valid until the next
/// `bpf_xdp_adjust_*` call (take a new one after resizing).
#[derive(Clone, Copy)]
pub struct Frame {
    pub start: usize,
    pub end: usize,
}

impl Frame {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// True when `len` bytes at `off` lie inside the frame (a pointer comparison, which
    /// the verifier accepts; arithmetic on `data_end` it does not).
    #[inline(always)]
    pub fn has(&self, off: usize, len: usize) -> bool {
        off <= MAX_OFFSET && len <= 0xffff && self.start + off + len <= self.end
    }

    /// A pointer to `len` bytes at `off`, or `None` if the frame is shorter.
    #[inline(always)]
    pub fn ptr(&self, off: usize, len: usize) -> Option<*mut u8> {
        if off > MAX_OFFSET {
            return None;
        }
        let p = self.start + off;
        if p + len > self.end {
            return None;
        }
        Some(p as *mut u8)
    }
}

/// The frame of `ctx`, read with volatile loads so that LLVM cannot turn the context
/// argument of a subprogram into `data` / `data_end` arguments (argument promotion),
/// which the verifier rejects (it forbids arithmetic on `data_end`).
#[inline(always)]
pub fn frame_of(ctx: *mut xdp_md) -> Frame {
    unsafe {
        Frame {
            start: core::ptr::read_volatile(&(*ctx).data) as usize,
            end: core::ptr::read_volatile(&(*ctx).data_end) as usize,
        }
    }
}

/// Reads a big-endian u16 at `p` (no alignment needed).
#[inline(always)]
pub fn get16(p: *const u8) -> u16 {
    unsafe { u16::from_be_bytes([*p, *p.add(1)]) }
}

/// Writes a big-endian u16 at `p`.
#[inline(always)]
pub fn put16(p: *mut u8, v: u16) {
    let b = v.to_be_bytes();
    unsafe {
        *p = b[0];
        *p.add(1) = b[1];
    }
}

/// Reads a big-endian u32 at `p`.
#[inline(always)]
pub fn get32(p: *const u8) -> u32 {
    unsafe { u32::from_be_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]) }
}

/// Writes a big-endian u32 at `p`.
#[inline(always)]
pub fn put32(p: *mut u8, v: u32) {
    let b = v.to_be_bytes();
    unsafe {
        *p = b[0];
        *p.add(1) = b[1];
        *p.add(2) = b[2];
        *p.add(3) = b[3];
    }
}

/// Copies `N` bytes from `src` to `dst` (packet or map memory), byte by byte so no
/// alignment is assumed and nothing is held on the stack.
#[inline(always)]
pub fn copy<const N: usize>(dst: *mut u8, src: *const u8) {
    let mut i = 0;
    while i < N {
        unsafe { *dst.add(i) = *src.add(i) };
        i += 1;
    }
}

/// Reads a MAC address (6 bytes) as the low 48 bits of a u64, so that it lives in one
/// register (or one stack slot) rather than six.
#[inline(always)]
pub fn get_mac(p: *const u8) -> u64 {
    ((get16(p) as u64) << 32) | get32(unsafe { p.add(2) }) as u64
}

/// Writes a MAC address held as by [`get_mac`].
#[inline(always)]
pub fn put_mac(p: *mut u8, mac: u64) {
    put16(p, (mac >> 32) as u16);
    put32(unsafe { p.add(2) }, mac as u32);
}
/// Length of the frame in bytes. The programs are not multi-buffer (`xdp.frags`) ones, so
/// a frame is one linear buffer and its length is `data_end - data`: a pointer
/// subtraction the verifier allows a privileged loader, and no helper call (the
/// `bpf_xdp_get_buff_len` call this replaced was measurable on the hot paths).
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    let f = frame_of(ctx.ctx);
    let len = f.end - f.start;
    // A round trip through the stack: without it LLVM folds the caller's arithmetic into
    // `data_end` (`data_end - 14 - ...`), which the verifier rejects.
    // SAFETY: a local variable.
    unsafe { core::ptr::read_volatile(&len) }
}

/// Four bytes at `p` as one word in memory order (byte loads; no alignment assumed).
#[inline(always)]
pub fn word(p: *const u8) -> u32 {
    unsafe { u32::from_ne_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]) }
}

/// Sixteen bytes at `p` as four words in memory order. Building keys from words keeps
/// them in four registers: copied byte by byte, LLVM gives every byte its own stack slot
/// and zero-fills the rest with a call to `memset`.
#[inline(always)]
pub fn words16(p: *const u8) -> [u32; 4] {
    unsafe { [word(p), word(p.add(4)), word(p.add(8)), word(p.add(12))] }
}

/// The map key of the IPv4 address at `p` (see `vdmm_common::IpAddrKey`).
#[inline(always)]
pub fn key_v4(p: *const u8) -> IpAddrKey {
    let mapped = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
    IpAddrKey {
        // SAFETY: [u32; 4] and [u8; 16] have the same size; any bytes are valid.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>([0, 0, mapped, word(p)]) },
    }
}

/// The map key of the IPv6 address at `p`.
#[inline(always)]
pub fn key_v6(p: *const u8) -> IpAddrKey {
    IpAddrKey {
        // SAFETY: as in `key_v4`.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(words16(p)) },
    }
}

/// The longest-prefix-match key of the IPv4 address at `p` (all 32 bits).
#[inline(always)]
pub fn lpm_key_v4(p: *const u8) -> Key<[u8; 4]> {
    Key::new(32, word(p).to_ne_bytes())
}

/// The longest-prefix-match key of the IPv6 address at `p` (all 128 bits).
#[inline(always)]
pub fn lpm_key_v6(p: *const u8) -> Key<[u8; 16]> {
    // SAFETY: as in `key_v4`.
    Key::new(128, unsafe {
        core::mem::transmute::<[u32; 4], [u8; 16]>(words16(p))
    })
}
