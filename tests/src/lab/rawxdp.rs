//! Tiny XDP programs (an IPv4 drop sink; "write this frame, return XDP_TX") loaded straight
//! through the `bpf(2)` system call, and the kernel's XDP packet generator
//! (`BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`, what `xdp-trafficgen` uses).
//!
//! The forwarding benchmark needs a traffic source that hands frames to the first gateway
//! the way a NIC driver would (as XDP frames, not as socket buffers a sender's stack
//! already allocated), and a sink that costs the same whatever path delivered the
//! frames. `xdp-trafficgen` itself does not start on this kernel (it fails to attach its
//! `xdp_redirect_map_err` tracepoint), so this module does the same two system calls.
//! No eBPF toolchain is involved: the programs are literal instructions.

use std::{
    ffi::CString,
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

use anyhow::{Result, bail};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<libc::c_long> {
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// One eBPF instruction: opcode, dst and src registers, offset, immediate.
fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut i = [0u8; 8];
    i[0] = op;
    i[1] = (src << 4) | (dst & 0x0f);
    i[2..4].copy_from_slice(&off.to_le_bytes());
    i[4..8].copy_from_slice(&imm.to_le_bytes());
    i
}

/// Loads an XDP program that drops IPv4 frames and passes everything else (ARP, IPv6):
/// a traffic sink that still answers the neighbour resolution the kernel's forwarding
/// path needs.
pub fn load_ipv4_sink_program(name: &str) -> Result<OwnedFd> {
    let insns = [
        insn(0x61, 2, 1, 0, 0),      // r2 = ctx->data
        insn(0x61, 3, 1, 4, 0),      // r3 = ctx->data_end
        insn(0xbf, 4, 2, 0, 0),      // r4 = r2
        insn(0x07, 4, 0, 0, 14),     // r4 += 14
        insn(0x2d, 4, 3, 4, 0),      // if r4 > r3 goto pass
        insn(0x69, 5, 2, 12, 0),     // r5 = *(u16 *)(r2 + 12)  (ethertype, as stored)
        insn(0x55, 5, 0, 2, 0x0008), // if r5 != htons(0x0800) goto pass
        insn(0xb7, 0, 0, 0, XDP_DROP as i32),
        insn(0x95, 0, 0, 0, 0),
        insn(0xb7, 0, 0, 0, XDP_PASS as i32), // pass:
        insn(0x95, 0, 0, 0, 0),
    ]
    .concat();
    load(&insns, name)
}

/// Loads an XDP program that writes `frame` (length a multiple of 4, at most 128 bytes)
/// over the start of the packet and returns `XDP_TX`: a traffic generator for
/// [`generate`]. Writing the frame on every run matters: live-frame pages are recycled
/// without being re-initialised, so frames the forwarding path rewrote in place (MAC
/// addresses, TTL, pushed tunnel headers) would otherwise come round again.
pub fn load_frame_tx_program(frame: &[u8], name: &str) -> Result<OwnedFd> {
    if !frame.len().is_multiple_of(4) || frame.len() > 128 {
        bail!("generator frame must be a multiple of 4 bytes, at most 128");
    }
    let words = frame.len() / 4;
    let mut p: Vec<[u8; 8]> = vec![
        insn(0x61, 2, 1, 0, 0),                  // r2 = ctx->data
        insn(0x61, 3, 1, 4, 0),                  // r3 = ctx->data_end
        insn(0xbf, 4, 2, 0, 0),                  // r4 = r2
        insn(0x07, 4, 0, 0, frame.len() as i32), // r4 += len
        insn(0x2d, 4, 3, (words + 2) as i16, 0), // if r4 > r3 goto drop
    ];
    for (i, w) in frame.chunks(4).enumerate() {
        let v = i32::from_le_bytes(w.try_into().unwrap());
        p.push(insn(0x62, 2, 0, (i * 4) as i16, v)); // *(u32 *)(r2 + 4i) = word
    }
    p.push(insn(0xb7, 0, 0, 0, XDP_TX as i32));
    p.push(insn(0x95, 0, 0, 0, 0));
    p.push(insn(0xb7, 0, 0, 0, XDP_DROP as i32)); // drop:
    p.push(insn(0x95, 0, 0, 0, 0));
    load(&p.concat(), name)
}

fn load(insns: &[u8], name: &str) -> Result<OwnedFd> {
    let license = CString::new("GPL").unwrap();
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put32(&mut attr, 4, (insns.len() / 8) as u32);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    // prog_name at offset 48 (16 bytes, NUL-terminated)
    let n = name.as_bytes();
    let len = n.len().min(15);
    attr[48..48 + len].copy_from_slice(&n[..len]);
    let fd = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| anyhow::anyhow!("BPF_PROG_LOAD: {e}"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches `prog` to interface `ifindex` of the calling thread's network namespace
/// (native mode) through a BPF link; detached when the returned fd is closed.
pub fn attach(prog: &OwnedFd, ifindex: u32) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut attr = [0u8; 64];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, ifindex);
    put32(&mut attr, 8, BPF_XDP);
    put32(&mut attr, 12, XDP_FLAGS_DRV_MODE);
    let fd =
        bpf(BPF_LINK_CREATE, &mut attr).map_err(|e| anyhow::anyhow!("BPF_LINK_CREATE: {e}"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `repeat` copies of `frame` out of interface `ifindex` (of the calling thread's
/// namespace): the kernel runs `prog` (from [`load_frame_tx_program`]) on each copy in
/// live mode and transmits it, as a driver would after `XDP_TX`. Blocks until done.
/// Returns false when a signal interrupted the run part way (some copies were sent).
pub fn generate(prog: &OwnedFd, ifindex: u32, frame: &[u8], repeat: u32) -> Result<bool> {
    use std::os::fd::AsRawFd;
    // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }
    let mut ctx = [0u8; 24];
    put32(&mut ctx, 4, frame.len() as u32);
    put32(&mut ctx, 12, ifindex);
    let mut attr = [0u8; 80];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 8, frame.len() as u32);
    put64(&mut attr, 16, frame.as_ptr() as u64);
    put32(&mut attr, 32, repeat);
    put32(&mut attr, 40, ctx.len() as u32);
    put64(&mut attr, 48, ctx.as_ptr() as u64);
    put32(&mut attr, 64, BPF_F_TEST_XDP_LIVE_FRAMES);
    put32(&mut attr, 72, 64); // batch_size
    match bpf(BPF_PROG_TEST_RUN, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
        Err(e) => bail!("BPF_PROG_TEST_RUN (live frames) on ifindex {ifindex}: {e}"),
    }
}

/// The index of `dev` in the calling thread's network namespace.
pub fn ifindex(dev: &str) -> Result<u32> {
    let c = CString::new(dev)?;
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!("no interface {dev}");
    }
    Ok(i)
}
