//! Loading the data plane into the kernel and attaching it to interfaces, so that it keeps
//! running after `vdmm-ctl` exits: everything lives as pins in the pin directory (see
//! [`crate::pin`]).
//!
//! - [`prepare`] creates (or reuses) the pinned maps and the pinned program, attaching
//!   nothing; configuration can then be written before any traffic is touched.
//! - [`load`] does that and attaches the program to one interface through a BPF link
//!   pinned as `link_xdp_<iface>`.
//! - [`unload`] removes that link pin, which detaches the program from the interface. The
//!   maps and the program stay pinned even when the last interface is unloaded, so the
//!   configuration (endpoints, peers, bindings, settings) and the counters survive; a later
//!   `load` picks them up. [`reset`] removes everything.
//!
//! Reusing the pinned program: aya 0.14 can open a pinned program (`Xdp::from_pin`), so a
//! second `load` attaches the *same* program instead of keeping a second copy. To know that
//! the pin was made by this build, `load` verifies the embedded object once more and compares
//! the kernel's program tag (a hash of the instructions) and the maps it uses; the fresh copy
//! is dropped when they match. When they differ (vdmm-ctl was rebuilt with a changed data
//! plane), the new program replaces the pin and every attached interface is switched to it
//! atomically (`bpf_link_update`), so all interfaces always run one program.

use std::{ffi::CString, fs, path::PathBuf};

use aya::{
    EbpfLoader,
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        xdp::XdpLink,
    },
};
use aya_obj::programs::XdpAttachType;
use vdmm_common::maps as names;

use crate::{
    EBPF_OBJECT,
    error::{Error, Result},
    maps::Dataplane,
    pin::PinDir,
};

/// How the XDP program is attached to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// In the driver, before any socket buffer is allocated (veth supports it).
    #[default]
    Native,
    /// In the kernel's generic network stack (any interface, slower).
    Generic,
}

impl Mode {
    fn xdp(self) -> XdpMode {
        match self {
            Mode::Native => XdpMode::Driver,
            Mode::Generic => XdpMode::Skb,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
        }
    }
}

/// What happened to the pinned program during [`prepare`] or [`load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramState {
    /// No program was pinned: this build's program was loaded and pinned.
    Loaded,
    /// The pinned program is this build's: reused.
    Reused,
    /// The pinned program differed from this build's: replaced, and the listed number of
    /// attached interfaces switched to the new one.
    Upgraded { interfaces: usize },
}

/// Outcome of [`prepare`] / [`load`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    /// True when a bpffs had to be mounted for the pin directory.
    pub mounted_bpffs: bool,
    pub program: ProgramState,
    /// The link pin, when an interface was attached.
    pub link: Option<PathBuf>,
}

/// The index of `iface` in the current network namespace.
pub fn if_index(iface: &str) -> Result<u32> {
    let unknown = || Error::UnknownInterface(iface.to_string());
    if iface.is_empty() || iface.contains('/') {
        return Err(unknown());
    }
    let c = CString::new(iface).map_err(|_| unknown())?;
    // SAFETY: `c` is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(unknown()),
        i => Ok(i),
    }
}

/// Makes sure the maps and the program are pinned under `pins` (mounting a bpffs when
/// needed), attaching nothing.
pub fn prepare(pins: &PinDir) -> Result<LoadReport> {
    let mounted_bpffs = pins.ensure_bpffs()?;
    // Maps already pinned must have this build's layout; aya would silently reuse them.
    if names::ALL.iter().any(|n| pins.map(n).exists()) && Dataplane::is_pinned(pins) {
        Dataplane::open(pins)?;
    }
    let program = ensure_program(pins)?;
    Ok(LoadReport {
        mounted_bpffs,
        program,
        link: None,
    })
}

/// Attaches the data plane to `iface` (loading and pinning it first when needed). The
/// interface is checked before anything is touched; an interface that already has our
/// link is refused.
pub fn load(pins: &PinDir, iface: &str, mode: Mode) -> Result<LoadReport> {
    let index = if_index(iface)?;
    let link_path = pins.link(iface);
    if link_path.exists() {
        return Err(Error::AlreadyLoaded {
            iface: iface.to_string(),
            path: link_path,
        });
    }
    let mut report = prepare(pins)?;
    let mut prog = Xdp::from_pin(pins.program(), XdpAttachType::Interface)
        .map_err(|e| Error::ebpf(format!("cannot open {}", pins.program().display()), e))?;
    let link_id = prog
        .attach_to_if_index(index, mode.xdp())
        .map_err(|e| attach_error(iface, mode, e))?;
    let link = prog
        .take_link(link_id)
        .map_err(|e| Error::ebpf("cannot take the XDP link", e))?;
    let fd_link = FdLink::try_from(link).map_err(|_| {
        Error::Conflict(format!(
            "the kernel attached XDP to {iface} through netlink, not a BPF link, so the \
             attachment cannot be pinned (kernel too old?)"
        ))
    })?;
    // Dropping the returned PinnedLink closes our fd; the pin keeps the link attached.
    fd_link
        .pin(&link_path)
        .map_err(|e| Error::ebpf(format!("cannot pin the link at {}", link_path.display()), e))?;
    report.link = Some(link_path);
    Ok(report)
}

fn attach_error(iface: &str, mode: Mode, e: ProgramError) -> Error {
    let errno = match &e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(libc::EBUSY) | Some(libc::EEXIST) => Error::Conflict(format!(
            "{iface} already has another XDP program attached (not through this pin directory); \
             detach it first (`ip link set dev {iface} xdp off`)"
        )),
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) if mode == Mode::Native => Error::Conflict(
            format!("{iface} does not support native XDP; try `--mode generic`"),
        ),
        _ => Error::ebpf(
            format!("cannot attach XDP to {iface} ({} mode)", mode.name()),
            e,
        ),
    }
}

/// Detaches the data plane from `iface` by removing its link pin. The maps and the program
/// stay pinned (configuration and counters survive). An interface that no longer exists
/// but still has a link pin is cleaned up too.
pub fn unload(pins: &PinDir, iface: &str) -> Result<()> {
    let link_path = pins.link(iface);
    if !link_path.exists() {
        if_index(iface)?;
        return Err(Error::NotLoadedOnInterface {
            iface: iface.to_string(),
            path: link_path,
        });
    }
    fs::remove_file(&link_path)
        .map_err(|e| Error::io(format!("cannot remove {}", link_path.display()), e))
}

/// Removes every pin under the directory: detaches the program from every interface and
/// drops all configuration and counters. Returns the names removed.
pub fn reset(pins: &PinDir) -> Result<Vec<String>> {
    pins.reset()
}

/// Loads this build's program (maps pinned by name under `pins`) and makes the program pin
/// point at an identical program; see the module documentation.
fn ensure_program(pins: &PinDir) -> Result<ProgramState> {
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pins.path())
        .load(EBPF_OBJECT)
        .map_err(|e| Error::ebpf("cannot load the eBPF object", e))?;
    let prog: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .ok_or(Error::MissingProgram(names::XDP_PROGRAM))?
        .try_into()
        .map_err(|e| Error::ebpf(format!("{} is not an XDP program", names::XDP_PROGRAM), e))?;
    prog.load().map_err(load_error)?;

    let prog_path = pins.program();
    if !prog_path.exists() {
        prog.pin(&prog_path).map_err(|e| {
            Error::ebpf(
                format!("cannot pin the program at {}", prog_path.display()),
                e,
            )
        })?;
        return Ok(ProgramState::Loaded);
    }

    let pinned = Xdp::from_pin(&prog_path, XdpAttachType::Interface)
        .map_err(|e| Error::ebpf(format!("cannot open {}", prog_path.display()), e))?;
    if fingerprint(&pinned)? == fingerprint(prog)? {
        return Ok(ProgramState::Reused);
    }

    // A different program is pinned: switch every attached interface to this one, then
    // replace the pin.
    let ifaces = pins.linked_interfaces()?;
    for iface in &ifaces {
        let path = pins.link(iface);
        let fd_link: FdLink = PinnedLink::from_pin(&path)
            .map_err(|e| Error::ebpf(format!("cannot open {}", path.display()), e))?
            .into();
        let link = XdpLink::try_from(fd_link).map_err(|e: LinkError| {
            Error::ebpf(format!("{} is not an XDP link", path.display()), e)
        })?;
        let id = prog
            .attach_to_link(link)
            .map_err(|e| Error::ebpf(format!("cannot switch {iface} to the new program"), e))?;
        // Forget the link (closing our fd) so dropping the program does not detach it.
        drop(prog.take_link(id));
    }
    fs::remove_file(&prog_path)
        .map_err(|e| Error::io(format!("cannot remove {}", prog_path.display()), e))?;
    prog.pin(&prog_path).map_err(|e| {
        Error::ebpf(
            format!("cannot pin the program at {}", prog_path.display()),
            e,
        )
    })?;
    Ok(ProgramState::Upgraded {
        interfaces: ifaces.len(),
    })
}

/// A one-line error for a refused program load; the whole verifier log goes to stderr when
/// `VDMM_VERIFIER_LOG` is set.
fn load_error(e: ProgramError) -> Error {
    let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &e
    else {
        return Error::ebpf(format!("cannot load {}", names::XDP_PROGRAM), e);
    };
    let log = verifier_log.to_string();
    if std::env::var_os("VDMM_VERIFIER_LOG").is_some() {
        eprintln!("{log}");
    }
    Error::Verifier {
        program: names::XDP_PROGRAM,
        reason: io_error.to_string(),
        summary: verifier_summary(&log),
    }
}

/// The verifier's verdict: the last log line that is not statistics.
fn verifier_summary(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .rev()
        .find(|l| {
            !l.is_empty()
                && !l.starts_with(':')
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with("processed ")
        })
        .unwrap_or("no verifier output")
        .to_string()
}

/// What identifies a loaded program for reuse: its tag and the maps it uses.
fn fingerprint(prog: &Xdp) -> Result<(u64, Vec<u32>)> {
    let info = prog
        .info()
        .map_err(|e| Error::ebpf("cannot read program information", e))?;
    let mut maps = info
        .map_ids()
        .map_err(|e| Error::ebpf("cannot read program information", e))?
        .unwrap_or_default();
    maps.sort_unstable();
    Ok((info.tag(), maps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_summary_is_the_verdict_line() {
        let log = "0: (61) r7 = *(u32 *)(r1 +4)\n38: (4f) r6 |= r0\nR6 pointer |= pointer prohibited\n\
                   verification time 774 usec\nstack depth 40+0\nprocessed 201 insns (limit 1000000)\n";
        assert_eq!(verifier_summary(log), "R6 pointer |= pointer prohibited");
        assert_eq!(verifier_summary(""), "no verifier output");
    }

    #[test]
    fn unknown_interfaces_are_refused_before_anything_happens() {
        for name in ["", "no-such-if0", "a/b", "x\0y"] {
            assert!(
                matches!(if_index(name), Err(Error::UnknownInterface(_))),
                "{name:?}"
            );
        }
        assert!(if_index("lo").is_ok());
    }
}
