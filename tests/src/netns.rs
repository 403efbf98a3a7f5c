//! Network namespaces for tests: created with `ip netns add`, deleted when the guard is
//! dropped (also when the test panics), with helpers to run commands inside them and to
//! move the current thread into one (for `BPF_PROG_TEST_RUN`, whose FIB look-ups use the
//! calling thread's namespace).

use std::{
    fs::File,
    net::IpAddr,
    os::fd::AsRawFd,
    path::Path,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result, bail};

/// Fails with a clear message unless the process runs as root (namespaces, XDP and
/// BPF_PROG_TEST_RUN all need it).
pub fn require_root() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "this test needs root (network namespaces, BPF); run it through `cargo xtask test` as root"
        );
    }
    Ok(())
}

/// A network namespace that exists for the life of this value.
pub struct Netns {
    name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// Creates a namespace named `vdmmt-<tag>-<pid>-<n>` (unique across parallel tests)
    /// with its loopback up.
    pub fn new(tag: &str) -> Result<Self> {
        require_root()?;
        let name = format!(
            "vdmmt-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `cmd args...` inside the namespace; fails with its stderr on a non-zero exit.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Result<Output> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args))
    }

    /// Runs `ip args...` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Moves the calling thread into this namespace until the returned guard is dropped.
    pub fn enter(&self) -> Result<EnteredNetns> {
        let original = File::open("/proc/thread-self/ns/net").context("open own netns")?;
        let target = File::open(format!("/run/netns/{}", self.name))
            .with_context(|| format!("open netns {}", self.name))?;
        if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns({}): {}", self.name, std::io::Error::last_os_error());
        }
        Ok(EnteredNetns { original })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Returns the thread to the namespace it came from when dropped.
pub struct EnteredNetns {
    original: File,
}

impl Drop for EnteredNetns {
    fn drop(&mut self) {
        unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}

/// Runs a command; a non-zero exit is an error carrying the command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Small set-up helpers every lab uses

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// True when `dir` is on a bpffs.
pub fn is_bpffs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

/// Creates `dir` and mounts a private bpffs on it in the root mount namespace, where
/// `ip netns exec` (which only remounts /sys) still sees it and pins outlive vdmm-ctl.
pub fn mount_pin_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    if !is_bpffs(dir) {
        run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(dir))?;
    }
    Ok(())
}

/// Lazily unmounts and removes a pin directory made by [`mount_pin_dir`] (never leaves a
/// mount behind on error paths).
pub fn unmount_pin_dir(dir: &Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).output();
    let _ = std::fs::remove_dir(dir);
}

/// A veth pair `if1` (in `n1`) <-> `if2` (in `n2`).
pub fn veth(n1: &Netns, if1: &str, n2: &Netns, if2: &str) -> Result<()> {
    run(Command::new("ip").args([
        "link",
        "add",
        if1,
        "netns",
        n1.name(),
        "type",
        "veth",
        "peer",
        "name",
        if2,
        "netns",
        n2.name(),
    ]))?;
    Ok(())
}

/// `sysctl -qw` of `settings` (`key=value`) inside `ns`.
pub fn sysctl(ns: &Netns, settings: &[&str]) -> Result<()> {
    let mut args = vec!["-qw"];
    args.extend_from_slice(settings);
    ns.exec("sysctl", &args)?;
    Ok(())
}

/// Adds `a/len` to `dev` (IPv6 without duplicate address detection, so it is usable at
/// once).
pub fn addr(ns: &Netns, dev: &str, a: IpAddr, len: u8) -> Result<()> {
    let cidr = format!("{a}/{len}");
    if a.is_ipv6() {
        ns.ip(&["addr", "add", &cidr, "dev", dev, "nodad"])?;
    } else {
        ns.ip(&["addr", "add", &cidr, "dev", dev])?;
    }
    Ok(())
}

/// `ethtool -K dev features...` inside `ns`.
pub fn ethtool(ns: &Netns, dev: &str, features: &[&str]) -> Result<()> {
    let mut args = vec!["-K", dev];
    args.extend_from_slice(features);
    ns.exec("ethtool", &args)?;
    Ok(())
}
