//! Network namespaces for tests: created with `ip netns add`, deleted when the guard is
//! dropped (also when the test panics), with helpers to run commands inside them and to
//! move the current thread into one (for `BPF_PROG_TEST_RUN`, whose FIB look-ups use the
//! calling thread's namespace).

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result, bail};

/// Fails with a clear message unless the process runs as root (namespaces, XDP and
/// BPF_PROG_TEST_RUN all need it).
pub fn require_root() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("this test needs root (network namespaces, BPF); run it through `cargo xtask test` as root");
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
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
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
