//! Bounds-checked access to the frame. Every pointer into packet memory comes from
//! `Frame::ptr`, which checks the access against `data_end` the way the verifier wants to
//! see it. Offsets are bounded so the verifier can track them.

use aya_ebpf::{helpers::generated::bpf_xdp_get_buff_len, programs::XdpContext};

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
/// Length of the frame in bytes, as a number (the verifier forbids computing it from
/// `data_end`).
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    unsafe { bpf_xdp_get_buff_len(ctx.ctx) as usize }
}

/// The map key of the IPv4 address at `p` (see `vdmm_common::IpAddrKey`).
#[inline(always)]
pub fn key_v4(p: *const u8) -> vdmm_common::IpAddrKey {
    let mut key = vdmm_common::IpAddrKey::from_v4([0; 4]);
    copy::<4>(unsafe { key.addr.as_mut_ptr().add(12) }, p);
    key
}

/// The map key of the IPv6 address at `p`.
#[inline(always)]
pub fn key_v6(p: *const u8) -> vdmm_common::IpAddrKey {
    let mut key = vdmm_common::IpAddrKey::default();
    copy::<16>(key.addr.as_mut_ptr(), p);
    key
}
