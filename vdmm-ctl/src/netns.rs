//! `--netns NAME`: run the command in a named network namespace (as created by
//! `ip netns add`) while staying in the caller's mount namespace. Unlike `ip netns exec`,
//! which also gives the command a private mount namespace, a bpffs that vdmm-ctl mounts
//! for its pin directory then stays visible after it exits.

use std::{fs::File, os::fd::AsRawFd, path::PathBuf};

use crate::error::{Error, Result};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Moves the calling thread into network namespace `name` (a name under
/// [`NETNS_RUN_DIR`] or a path such as `/proc/PID/ns/net`). Call it before starting
/// threads: only the calling thread moves.
pub fn enter(name: &str) -> Result<()> {
    let path = if name.contains('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from(NETNS_RUN_DIR).join(name)
    };
    let wrap = |source| Error::Netns {
        name: name.to_string(),
        source,
    };
    let f = File::open(&path).map_err(wrap)?;
    // SAFETY: `f` is an open namespace file; CLONE_NEWNET restricts it to a network ns.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(wrap(std::io::Error::last_os_error()));
    }
    Ok(())
}
