//! The pin directory: where vdmm keeps its kernel objects on a bpffs so they outlive
//! `vdmm-ctl` itself. Layout under the directory (default [`DEFAULT_PIN_DIR`]):
//!
//! - one file per map, named as in `vdmm_common::maps` (`VDMM_ENDPOINTS`, ...): the
//!   configuration and the counters;
//! - `prog_vdmm_xdp`: the loaded XDP program;
//! - `prog_vdmm_tc_egress`: the loaded TC egress program (the slow path);
//! - `link_xdp_<iface>`: one XDP link per interface the data plane is attached to;
//! - `prog_vdmm_vap`: the loaded vAP program (client-facing interfaces of an AP host);
//! - `link_vap_<iface>`: one XDP link per client-facing interface running it;
//! - `link_tc_vdmm0`: the TC egress (tcx) link of the slow path's device `vdmm0` (see
//!   [`crate::device`]); an older vdmm-ctl left `link_tc_<iface>` on every loaded
//!   interface instead.
//!
//! Removing a link file detaches that program from that interface.
//!
//! This module also mounts a bpffs when the directory is not on one.

use std::{
    ffi::CString,
    fs, io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

/// Where vdmm pins its objects unless told otherwise (`--pin-dir`, `VDMM_PIN_DIR`).
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/vdmm";
/// The conventional bpffs mount point.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// `statfs` `f_type` of a bpffs.
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// File name of the pinned XDP program.
pub const PROGRAM_PIN: &str = "prog_vdmm_xdp";
/// File name prefix of the per-interface XDP link pins.
pub const LINK_PIN_PREFIX: &str = "link_xdp_";
/// File name of the pinned vAP program.
pub const VAP_PROGRAM_PIN: &str = "prog_vdmm_vap";
/// File name prefix of the per-interface vAP program link pins.
pub const VAP_LINK_PIN_PREFIX: &str = "link_vap_";
/// File name of the pinned TC egress program.
pub const TC_PROGRAM_PIN: &str = "prog_vdmm_tc_egress";
/// File name prefix of the TC egress link pins (`link_tc_vdmm0`).
pub const TC_LINK_PIN_PREFIX: &str = "link_tc_";

/// A pin directory (which may not exist yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    dir: PathBuf,
}

impl PinDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Path of a pinned map.
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Path of the pinned XDP program.
    pub fn program(&self) -> PathBuf {
        self.dir.join(PROGRAM_PIN)
    }

    /// Path of the XDP link pin for `iface`.
    pub fn link(&self, iface: &str) -> PathBuf {
        self.dir.join(format!("{LINK_PIN_PREFIX}{iface}"))
    }

    /// Path of the pinned vAP program.
    pub fn vap_program(&self) -> PathBuf {
        self.dir.join(VAP_PROGRAM_PIN)
    }

    /// Path of the vAP program's link pin for the client-facing interface `iface`.
    pub fn vap_link(&self, iface: &str) -> PathBuf {
        self.dir.join(format!("{VAP_LINK_PIN_PREFIX}{iface}"))
    }

    /// Client-facing interfaces (with a vAP program link pin), sorted.
    pub fn vap_linked_interfaces(&self) -> Result<Vec<String>> {
        self.with_prefix(VAP_LINK_PIN_PREFIX)
    }

    /// Path of the pinned TC egress program.
    pub fn tc_program(&self) -> PathBuf {
        self.dir.join(TC_PROGRAM_PIN)
    }

    /// Path of the TC egress link pin for `iface` (`vdmm0`, or a legacy interface).
    pub fn tc_link(&self, iface: &str) -> PathBuf {
        self.dir.join(format!("{TC_LINK_PIN_PREFIX}{iface}"))
    }

    /// Interfaces with an XDP link pin, sorted.
    pub fn linked_interfaces(&self) -> Result<Vec<String>> {
        self.with_prefix(LINK_PIN_PREFIX)
    }

    /// Interfaces with a TC egress link pin, sorted.
    pub fn tc_linked_interfaces(&self) -> Result<Vec<String>> {
        self.with_prefix(TC_LINK_PIN_PREFIX)
    }

    fn with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.entries()? {
            if let Some(iface) = name.strip_prefix(prefix) {
                out.push(iface.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// File names directly under the directory (empty when it does not exist).
    pub fn entries(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot read {}", self.dir.display()), e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| Error::io(format!("cannot read {}", self.dir.display()), e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// True when the directory exists and is on a bpffs.
    pub fn is_on_bpffs(&self) -> bool {
        matches!(statfs_type(&self.dir), Ok(t) if t == BPF_FS_MAGIC)
    }

    /// Makes sure the directory exists on a bpffs, mounting one when needed: at
    /// [`BPFFS_ROOT`] when the directory lies under it (the default), otherwise on the
    /// directory itself (created first). Returns true when it mounted something.
    pub fn ensure_bpffs(&self) -> Result<bool> {
        let ancestor = nearest_existing(&self.dir);
        let on_bpffs = statfs_type(&ancestor)
            .map_err(|e| Error::io(format!("cannot statfs {}", ancestor.display()), e))?
            == BPF_FS_MAGIC;
        let mut mounted = false;
        if !on_bpffs {
            if in_private_mount_namespace() {
                return Err(Error::PrivateMountNamespace {
                    dir: self.dir.clone(),
                });
            }
            let root = Path::new(BPFFS_ROOT);
            let target = if self.dir.starts_with(root) && root.is_dir() {
                root.to_path_buf()
            } else {
                create_dir_all(&self.dir)?;
                self.dir.clone()
            };
            mount_bpffs(&target)?;
            mounted = true;
        }
        create_dir_all(&self.dir)?;
        Ok(mounted)
    }

    /// True for the names vdmm pins here (maps, program, links); other files (such as the
    /// kernel's `maps.debug` in a bpffs root) are left alone.
    pub fn is_ours(name: &str) -> bool {
        vdmm_common::maps::ALL.contains(&name)
            || name == PROGRAM_PIN
            || name == TC_PROGRAM_PIN
            || name == VAP_PROGRAM_PIN
            || Self::is_link(name)
    }

    fn is_link(name: &str) -> bool {
        name.starts_with(LINK_PIN_PREFIX)
            || name.starts_with(TC_LINK_PIN_PREFIX)
            || name.starts_with(VAP_LINK_PIN_PREFIX)
    }

    /// Removes every vdmm pin in the directory (maps, program, links: detaching the program
    /// everywhere and dropping all configuration and counters), then the directory itself
    /// when it is empty and not a mount point. Returns the names removed.
    pub fn reset(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        // Links first, so no interface runs a program whose maps are being removed.
        let mut names: Vec<String> = self
            .entries()?
            .into_iter()
            .filter(|n| Self::is_ours(n))
            .collect();
        names.sort_by_key(|n| !Self::is_link(n));
        for name in names {
            let path = self.dir.join(&name);
            fs::remove_file(&path)
                .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
            removed.push(name);
        }
        if self.dir.is_dir() && !is_mount_point(&self.dir) {
            // The directory is ours (created under a bpffs); a failure here is harmless.
            let _ = fs::remove_dir(&self.dir);
        }
        Ok(removed)
    }
}

fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}

/// The path itself or its closest existing ancestor.
fn nearest_existing(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `statfs(2)` `f_type` of the file system holding `path`.
fn statfs_type(path: &Path) -> io::Result<i64> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid C string and `buf` a properly sized out-parameter.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf.f_type as i64)
}

fn mount_bpffs(target: &Path) -> Result<()> {
    let wrap = |source| Error::Mount {
        path: target.to_path_buf(),
        source,
    };
    let t = cstring(target).map_err(wrap)?;
    // SAFETY: all arguments are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            t.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(wrap(io::Error::last_os_error()));
    }
    Ok(())
}

/// True when `path` is the root of a mount (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = path.parent() else {
        return true;
    };
    match (fs::metadata(path), fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// True when this process runs in a different mount namespace than its parent, as under
/// `ip netns exec` or `unshare -m`: a bpffs mounted here would disappear (with every pin
/// in it) when the command exits. Unknown (unreadable) counts as false.
fn in_private_mount_namespace() -> bool {
    let ppid = std::os::unix::process::parent_id();
    match (
        fs::read_link("/proc/self/ns/mnt"),
        fs::read_link(format!("/proc/{ppid}/ns/mnt")),
    ) {
        (Ok(a), Ok(b)) => a != b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d = PinDir::new("/run/vdmm/gw");
        assert_eq!(d.program(), Path::new("/run/vdmm/gw/prog_vdmm_xdp"));
        assert_eq!(d.link("veth0"), Path::new("/run/vdmm/gw/link_xdp_veth0"));
        assert_eq!(
            d.tc_program(),
            Path::new("/run/vdmm/gw/prog_vdmm_tc_egress")
        );
        assert_eq!(d.tc_link("veth0"), Path::new("/run/vdmm/gw/link_tc_veth0"));
        for name in [
            "prog_vdmm_tc_egress",
            "link_tc_x",
            "link_xdp_x",
            "VDMM_TC_STATS",
        ] {
            assert!(PinDir::is_ours(name), "{name}");
        }
        assert!(!PinDir::is_ours("maps.debug"));
        assert_eq!(d.map("VDMM_CONFIG"), Path::new("/run/vdmm/gw/VDMM_CONFIG"));
    }

    #[test]
    fn nearest_existing_walks_up() {
        assert_eq!(
            nearest_existing(Path::new("/proc/no/such/dir")),
            Path::new("/proc")
        );
        assert_eq!(nearest_existing(Path::new("/")), Path::new("/"));
    }

    #[test]
    fn missing_dir_has_no_entries() {
        let d = PinDir::new("/nonexistent/vdmm-test");
        assert!(d.entries().unwrap().is_empty());
        assert!(!d.is_on_bpffs());
    }
}
