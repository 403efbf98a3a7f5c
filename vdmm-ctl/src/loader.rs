//! Loading the data plane into the kernel and attaching it to interfaces, so that it keeps
//! running after `vdmm-ctl` exits: everything lives as pins in the pin directory (see
//! [`crate::pin`]).
//!
//! - [`prepare`] creates (or reuses) the pinned maps and the pinned program, attaching
//!   nothing; configuration can then be written before any traffic is touched.
//! - [`load`] does that and attaches both programs to one interface through BPF links:
//!   the XDP program (`link_xdp_<iface>`) and the TC egress slow path `vdmm_tc_egress`
//!   (a tcx link on the interface's egress, `link_tc_<iface>`). If the second attach fails
//!   the first is undone: an interface has both or neither.
//! - [`unload`] removes those link pins, which detaches the programs from the interface. The
//!   maps and the program stay pinned even when the last interface is unloaded, so the
//!   configuration (endpoints, peers, bindings, settings) and the counters survive; a later
//!   `load` picks them up. [`reset`] removes everything.
//!
//! Reusing the pinned programs: aya 0.14 can open a pinned program (`Xdp::from_pin`,
//! `SchedClassifier::from_pin`), so a second `load` attaches the *same* programs instead of
//! keeping second copies. To know that a pin was made by this build, `load` verifies the
//! embedded object once more and compares the kernel's program tag (a hash of the
//! instructions) and the maps it uses; the fresh copy is dropped when they match. When they
//! differ (vdmm-ctl was rebuilt with a changed data plane), the new program replaces the pin
//! and every attached interface is switched to it atomically (`bpf_link_update`), so all
//! interfaces always run one program. This is done for the XDP program and the TC egress
//! program alike.

use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use aya::{
    EbpfLoader,
    programs::{
        LinkOrder, ProgramError, ProgramInfo, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
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
    /// The XDP program.
    pub program: ProgramState,
    /// The TC egress program.
    pub tc_program: ProgramState,
    /// The XDP link pin, when an interface was attached to now.
    pub link: Option<PathBuf>,
    /// The TC egress link pin, when an interface was attached to now.
    pub tc_link: Option<PathBuf>,
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
    let (program, tc_program) = ensure_programs(pins)?;
    Ok(LoadReport {
        mounted_bpffs,
        program,
        tc_program,
        link: None,
        tc_link: None,
    })
}

/// Attaches the data plane to `iface` (loading and pinning it first when needed): the XDP
/// program and the TC egress program, each through a pinned link. The interface is checked
/// before anything is touched; an interface that already has both links is refused (one
/// with only the XDP link, as left by an older vdmm-ctl, gets the TC link). If the TC
/// attach fails, the XDP attach made here is undone.
pub fn load(pins: &PinDir, iface: &str, mode: Mode) -> Result<LoadReport> {
    let index = if_index(iface)?;
    let xdp_path = pins.link(iface);
    let tc_path = pins.tc_link(iface);
    if xdp_path.exists() && tc_path.exists() {
        return Err(Error::AlreadyLoaded {
            iface: iface.to_string(),
            path: xdp_path,
        });
    }
    let mut report = prepare(pins)?;
    if !xdp_path.exists() {
        attach_xdp(pins, iface, index, mode, &xdp_path)?;
        report.link = Some(xdp_path.clone());
    }
    if !tc_path.exists() {
        if let Err(e) = attach_tc(pins, iface, &tc_path) {
            if report.link.take().is_some() {
                // Removing the pin detaches the XDP program again.
                let _ = fs::remove_file(&xdp_path);
            }
            return Err(e);
        }
        report.tc_link = Some(tc_path);
    }
    Ok(report)
}

fn attach_xdp(pins: &PinDir, iface: &str, index: u32, mode: Mode, link_path: &Path) -> Result<()> {
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
        .pin(link_path)
        .map_err(|e| Error::ebpf(format!("cannot pin the link at {}", link_path.display()), e))?;
    Ok(())
}

/// Makes the next TC attaches fail (tests of the undo in [`load`]).
#[cfg(test)]
pub(crate) static FAIL_TC_ATTACH: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Attaches the TC egress program to `iface` as a tcx link (kernel 6.6 and later; no
/// clsact qdisc needed), after any tcx program already there, and pins the link.
fn attach_tc(pins: &PinDir, iface: &str, link_path: &Path) -> Result<()> {
    #[cfg(test)]
    if FAIL_TC_ATTACH.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Error::Conflict(format!(
            "test: TC attach to {iface} refused"
        )));
    }
    let prog_path = pins.tc_program();
    let mut prog = SchedClassifier::from_pin(&prog_path)
        .map_err(|e| Error::ebpf(format!("cannot open {}", prog_path.display()), e))?;
    let link_id = prog
        .attach_with_options(
            iface,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(|e| {
            Error::ebpf(
                format!(
                    "cannot attach {} to the egress of {iface} (tcx link)",
                    names::TC_EGRESS_PROGRAM
                ),
                e,
            )
        })?;
    let link = prog
        .take_link(link_id)
        .map_err(|e| Error::ebpf("cannot take the TC link", e))?;
    let fd_link = FdLink::try_from(link)
        .map_err(|e| Error::ebpf("the TC attachment is not a BPF link", e))?;
    fd_link
        .pin(link_path)
        .map_err(|e| Error::ebpf(format!("cannot pin the link at {}", link_path.display()), e))?;
    Ok(())
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

/// Detaches the data plane from `iface` by removing its link pins (XDP, then TC egress).
/// The maps and the programs stay pinned (configuration and counters survive). An
/// interface that no longer exists but still has link pins is cleaned up too.
pub fn unload(pins: &PinDir, iface: &str) -> Result<()> {
    let paths = [pins.link(iface), pins.tc_link(iface)];
    if !paths.iter().any(|p| p.exists()) {
        if_index(iface)?;
        return Err(Error::NotLoadedOnInterface {
            iface: iface.to_string(),
            path: paths[0].clone(),
        });
    }
    for path in paths.iter().filter(|p| p.exists()) {
        fs::remove_file(path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
    }
    Ok(())
}

/// Removes every pin under the directory: detaches the program from every interface and
/// drops all configuration and counters. Returns the names removed.
pub fn reset(pins: &PinDir) -> Result<Vec<String>> {
    pins.reset()
}

/// Loads this build's programs (maps pinned by name under `pins`) and makes each program
/// pin point at an identical program; see the module documentation. Both programs are
/// loaded (verified) before any pin changes.
fn ensure_programs(pins: &PinDir) -> Result<(ProgramState, ProgramState)> {
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pins.path())
        .load(EBPF_OBJECT)
        .map_err(|e| Error::ebpf("cannot load the eBPF object", e))?;
    let xdp: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .ok_or(Error::MissingProgram(names::XDP_PROGRAM))?
        .try_into()
        .map_err(|e| Error::ebpf(format!("{} is not an XDP program", names::XDP_PROGRAM), e))?;
    xdp.load().map_err(|e| load_error(names::XDP_PROGRAM, e))?;
    let tc: &mut SchedClassifier = ebpf
        .program_mut(names::TC_EGRESS_PROGRAM)
        .ok_or(Error::MissingProgram(names::TC_EGRESS_PROGRAM))?
        .try_into()
        .map_err(|e| {
            Error::ebpf(
                format!("{} is not a TC program", names::TC_EGRESS_PROGRAM),
                e,
            )
        })?;
    tc.load()
        .map_err(|e| load_error(names::TC_EGRESS_PROGRAM, e))?;

    let xdp: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .expect("loaded above")
        .try_into()
        .expect("checked above");
    let xdp_state = ensure_xdp_pin(pins, xdp)?;
    let tc: &mut SchedClassifier = ebpf
        .program_mut(names::TC_EGRESS_PROGRAM)
        .expect("loaded above")
        .try_into()
        .expect("checked above");
    let tc_state = ensure_tc_pin(pins, tc)?;
    Ok((xdp_state, tc_state))
}

fn pin_program(
    path: &Path,
    pin: impl FnOnce(&Path) -> Result<(), aya::pin::PinError>,
) -> Result<()> {
    pin(path).map_err(|e| Error::ebpf(format!("cannot pin the program at {}", path.display()), e))
}

fn replace_pin(
    path: &Path,
    pin: impl FnOnce(&Path) -> Result<(), aya::pin::PinError>,
) -> Result<()> {
    fs::remove_file(path).map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
    pin_program(path, pin)
}

fn open_link(path: &Path) -> Result<FdLink> {
    Ok(PinnedLink::from_pin(path)
        .map_err(|e| Error::ebpf(format!("cannot open {}", path.display()), e))?
        .into())
}

/// Pins `prog` as the XDP program, reusing an identical pinned one, or replacing a
/// different one after switching every XDP link to `prog`.
fn ensure_xdp_pin(pins: &PinDir, prog: &mut Xdp) -> Result<ProgramState> {
    let prog_path = pins.program();
    if !prog_path.exists() {
        pin_program(&prog_path, |p| prog.pin(p))?;
        return Ok(ProgramState::Loaded);
    }
    let pinned = Xdp::from_pin(&prog_path, XdpAttachType::Interface)
        .map_err(|e| Error::ebpf(format!("cannot open {}", prog_path.display()), e))?;
    if fingerprint(pinned.info())? == fingerprint(prog.info())? {
        return Ok(ProgramState::Reused);
    }
    let ifaces = pins.linked_interfaces()?;
    for iface in &ifaces {
        let path = pins.link(iface);
        let link = XdpLink::try_from(open_link(&path)?).map_err(|e: LinkError| {
            Error::ebpf(format!("{} is not an XDP link", path.display()), e)
        })?;
        let id = prog
            .attach_to_link(link)
            .map_err(|e| Error::ebpf(format!("cannot switch {iface} to the new program"), e))?;
        // Forget the link (closing our fd) so dropping the program does not detach it.
        drop(prog.take_link(id));
    }
    replace_pin(&prog_path, |p| prog.pin(p))?;
    Ok(ProgramState::Upgraded {
        interfaces: ifaces.len(),
    })
}

/// [`ensure_xdp_pin`] for the TC egress program and its tcx links.
fn ensure_tc_pin(pins: &PinDir, prog: &mut SchedClassifier) -> Result<ProgramState> {
    let prog_path = pins.tc_program();
    if !prog_path.exists() {
        pin_program(&prog_path, |p| prog.pin(p))?;
        return Ok(ProgramState::Loaded);
    }
    let pinned = SchedClassifier::from_pin(&prog_path)
        .map_err(|e| Error::ebpf(format!("cannot open {}", prog_path.display()), e))?;
    if fingerprint(pinned.info())? == fingerprint(prog.info())? {
        return Ok(ProgramState::Reused);
    }
    let ifaces = pins.tc_linked_interfaces()?;
    for iface in &ifaces {
        let path = pins.tc_link(iface);
        let link = SchedClassifierLink::try_from(open_link(&path)?).map_err(|e: LinkError| {
            Error::ebpf(format!("{} is not a tcx link", path.display()), e)
        })?;
        let id = prog
            .attach_to_link(link)
            .map_err(|e| Error::ebpf(format!("cannot switch {iface} to the new TC program"), e))?;
        drop(prog.take_link(id));
    }
    replace_pin(&prog_path, |p| prog.pin(p))?;
    Ok(ProgramState::Upgraded {
        interfaces: ifaces.len(),
    })
}

/// A one-line error for a refused program load; the whole verifier log goes to stderr when
/// `VDMM_VERIFIER_LOG` is set.
fn load_error(program: &'static str, e: ProgramError) -> Error {
    let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &e
    else {
        return Error::ebpf(format!("cannot load {program}"), e);
    };
    let log = verifier_log.to_string();
    if std::env::var_os("VDMM_VERIFIER_LOG").is_some() {
        eprintln!("{log}");
    }
    Error::Verifier {
        program,
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
fn fingerprint(info: Result<ProgramInfo, ProgramError>) -> Result<(u64, Vec<u32>)> {
    let info = info.map_err(|e| Error::ebpf("cannot read program information", e))?;
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
