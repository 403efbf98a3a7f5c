//! Invalidation of the data plane's first-level caches of control-plane tables: after
//! every change to the vAPs (`VDMM_VAPS` / `VDMM_VAP_ADDRS`, cached by `vap::cache` in
//! vdmm-ebpf) the generation in `VDMM_VAP_GEN` is incremented, after every change to the
//! tunnel addresses (`VDMM_ENDPOINTS` / `VDMM_PEERS`, cached by `tunnel::addresses`) the
//! one in `VDMM_TUNNEL_GEN`, after every change to the bindings, the EAMT or the
//! translator's settings (cached by `mapping_cache`) the one in `VDMM_XLAT_GEN`; that makes
//! every cached entry of those tables on every CPU invalid at once. The increment is one atomic instruction on a shared mapping of the
//! array (`BPF_F_MMAPABLE`), so that two control-plane processes changing the tables at
//! the same time cannot both write the same new value (a read-modify-write through the map
//! syscalls could lose one of the increments and with it one invalidation).

use std::{
    os::fd::{AsFd, AsRawFd},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{Error, Result, pin::PinDir};
use aya::maps::MapData;

/// Opens the generation map `name` (`VDMM_VAP_GEN`, `VDMM_TUNNEL_GEN`, `VDMM_XLAT_GEN`)
/// pinned under `pins`.
pub fn open(pins: &PinDir, name: &str) -> Result<MapData> {
    let path = pins.map(name);
    if !path.exists() {
        return Err(Error::NotLoaded(pins.path().to_path_buf()));
    }
    MapData::from_pin(&path).map_err(|e| Error::ebpf(format!("cannot open {}", path.display()), e))
}

/// Increments the generation in `map` (an open generation map); returns the new value.
pub fn invalidate(map: &MapData) -> Result<u64> {
    increment(map).map_err(|e| {
        Error::io(
            "cannot map a cache generation (VDMM_VAP_GEN / VDMM_TUNNEL_GEN / VDMM_XLAT_GEN) to invalidate the data plane's caches",
            e,
        )
    })
}

/// [`invalidate`] with the plain I/O error (for callers that report `MapError`s).
pub fn increment(map: &MapData) -> std::io::Result<u64> {
    let fd = map.fd().as_fd().as_raw_fd();
    let len = std::mem::size_of::<u64>();
    // SAFETY: maps the array's value area (element 0 at offset 0) shared with the kernel;
    // checked for failure below and unmapped before returning.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the mapping is at least one page, 8-byte aligned, and the data plane only
    // reads the value; all writers use this atomic increment.
    let new = unsafe { &*(p as *const AtomicU64) }.fetch_add(1, Ordering::SeqCst) + 1;
    // SAFETY: the mapping made above, no longer referenced.
    unsafe { libc::munmap(p, len) };
    Ok(new)
}
