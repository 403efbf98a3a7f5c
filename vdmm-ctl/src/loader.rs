//! Loading the data plane into the kernel and attaching it to interfaces, so that it keeps
//! running after `vdmm-ctl` exits: everything lives as pins in the pin directory (see
//! [`crate::pin`]).
//!
//! - [`prepare`] creates (or reuses) the pinned maps and programs, and the slow path: the
//!   device `vdmm0` (see [`crate::device`]) with the TC egress program `vdmm_tc_egress` on
//!   its egress (a tcx link, `link_tc_vdmm0`). No interface that receives traffic is
//!   touched; configuration can be written before any traffic is.
//! - [`load`] does that and attaches the XDP program to one interface through a BPF link
//!   (`link_xdp_<iface>`). If a step fails, what this call did is undone: an XDP attach, a
//!   TC link, a device it created, and, when the pin directory held nothing of vdmm's
//!   before, the maps and programs it pinned.
//! - [`unload`] removes an interface's XDP link pin, which detaches the program from it.
//!   The maps, the programs, `vdmm0` and its TC link stay even when the last interface is
//!   unloaded: the bindings' routes still lead into `vdmm0`, and the configuration
//!   (endpoints, peers, bindings, settings) and the counters survive; a later `load` picks
//!   them up. [`reset`] removes everything, `vdmm0` included.
//!
//! An older vdmm-ctl attached the TC program to the egress of every loaded interface
//! (`link_tc_<iface>`); `load` removes such links once `vdmm0` has its own, and `unload`
//! removes an interface's.
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
    device::{self, DEVICE},
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

/// Which XDP program an interface runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `vdmm_xdp`: tunnels, translation, delivery to vAP clients (uplink / underlay side).
    Network,
    /// `vdmm_vap`: the client-facing interface of an AP host (see [`crate::vap`]).
    ClientFacing,
}

impl Role {
    fn program(self, pins: &PinDir) -> PathBuf {
        match self {
            Role::Network => pins.program(),
            Role::ClientFacing => pins.vap_program(),
        }
    }

    fn link(self, pins: &PinDir, iface: &str) -> PathBuf {
        match self {
            Role::Network => pins.link(iface),
            Role::ClientFacing => pins.vap_link(iface),
        }
    }

    fn linked_interfaces(self, pins: &PinDir) -> Result<Vec<String>> {
        match self {
            Role::Network => pins.linked_interfaces(),
            Role::ClientFacing => pins.vap_linked_interfaces(),
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
    /// The vAP program.
    pub vap_program: ProgramState,
    /// The XDP link pin, when an interface was attached to now.
    pub link: Option<PathBuf>,
    /// The slow path's device as it is now, and whether this call created it.
    pub device: device::Ensured,
    /// The TC egress link pin of `vdmm0`, when it was attached now.
    pub tc_link: Option<PathBuf>,
    /// Interfaces whose TC egress link (left by an older vdmm-ctl) was removed.
    pub legacy_tc_removed: Vec<String>,
}

/// Outcome of [`reset`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetReport {
    /// Names removed from the pin directory.
    pub removed: Vec<String>,
    /// True when `vdmm0` (this pin directory's) was deleted.
    pub device_deleted: bool,
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

/// True when the pin directory holds anything of vdmm's.
fn has_pins(pins: &PinDir) -> Result<bool> {
    Ok(pins.entries()?.iter().any(|n| PinDir::is_ours(n)))
}

/// Makes sure the maps and the programs are pinned under `pins` (mounting a bpffs when
/// needed) and the slow path is in place (`vdmm0` with the TC egress program), attaching
/// nothing to any other interface. On an error, the device and TC link made here are
/// removed again, and so is everything pinned here when the directory held nothing of
/// vdmm's before.
pub fn prepare(pins: &PinDir) -> Result<LoadReport> {
    let fresh = !has_pins(pins)?;
    let mut report = prepare_or_undo(pins, fresh)?;
    report.legacy_tc_removed = remove_legacy_tc_links(pins)?;
    Ok(report)
}

fn prepare_or_undo(pins: &PinDir, fresh: bool) -> Result<LoadReport> {
    let result = (|| {
        let mounted_bpffs = pins.ensure_bpffs()?;
        // Maps already pinned must have this build's layout; aya would silently reuse them.
        if names::ALL.iter().any(|n| pins.map(n).exists()) && Dataplane::is_pinned(pins) {
            Dataplane::open(pins)?;
        }
        let (program, tc_program, vap_program) = ensure_programs(pins)?;
        // Whatever the first-level caches held was cached from the tables as they were
        // before.
        for generation in [names::VAP_GEN, names::TUNNEL_GEN, names::XLAT_GEN] {
            crate::cache_gen::invalidate(&crate::cache_gen::open(pins, generation)?)?;
        }
        let (device, tc_link) = ensure_slow_path(pins)?;
        Ok(LoadReport {
            mounted_bpffs,
            program,
            tc_program,
            vap_program,
            link: None,
            device,
            tc_link,
            legacy_tc_removed: Vec::new(),
        })
    })();
    if result.is_err() && fresh {
        let _ = pins.reset();
    }
    result
}

/// Attaches the data plane to `iface` (loading and pinning it, and setting up the slow
/// path, first when needed; see [`prepare`]): the XDP program, through a pinned link. The
/// interface is checked before anything is touched; one that already has vdmm's XDP link
/// is refused. If the attach fails, what [`prepare`] did here is undone too.
pub fn load(pins: &PinDir, iface: &str, mode: Mode) -> Result<LoadReport> {
    load_as(pins, iface, mode, Role::Network)
}

/// Attaches the vAP program `vdmm_vap` to `iface`, the client-facing interface of an AP
/// host (link pin `link_vap_<iface>`), as [`load`] does the XDP program.
pub fn load_client_facing(pins: &PinDir, iface: &str, mode: Mode) -> Result<LoadReport> {
    load_as(pins, iface, mode, Role::ClientFacing)
}

fn load_as(pins: &PinDir, iface: &str, mode: Mode, role: Role) -> Result<LoadReport> {
    if iface == device::FRAG_TX || iface == device::FRAG_RX {
        return Err(Error::Conflict(format!(
            "{iface} belongs to the translator's fragmentation slow path, which `load` sets \
             up itself"
        )));
    }
    if iface == DEVICE {
        return Err(Error::Conflict(format!(
            "{DEVICE} is vdmm's slow-path device; attach XDP to the interfaces packets \
             arrive on"
        )));
    }
    let index = if_index(iface)?;
    let xdp_path = role.link(pins, iface);
    for path in [pins.link(iface), pins.vap_link(iface)] {
        if path.exists() {
            return Err(Error::AlreadyLoaded {
                iface: iface.to_string(),
                path,
            });
        }
    }
    let fresh = !has_pins(pins)?;
    let mut report = prepare_or_undo(pins, fresh)?;
    if let Err(e) = attach_xdp(&role.program(pins), iface, index, mode, &xdp_path) {
        undo_slow_path(&report);
        if fresh {
            let _ = pins.reset();
        }
        return Err(e);
    }
    if let Err(e) = ensure_frag_path(pins, mode) {
        let _ = fs::remove_file(&xdp_path);
        undo_slow_path(&report);
        if fresh {
            let _ = pins.reset();
        }
        return Err(e);
    }
    report.link = Some(xdp_path);
    report.legacy_tc_removed = remove_legacy_tc_links(pins)?;
    Ok(report)
}

/// The translator's fragmentation slow path (see [`crate::device`], "The translator's
/// fragmentation slow path"): the veth pair `vdmmx0` <-> `vdmmx1`, `vdmm_xdp` on
/// `vdmmx1` through the pinned link `link_xdp_vdmmx1` (attached again when the pair was
/// just created), and `vdmmx1`'s index in the translator settings (`frag_ifindex`).
fn ensure_frag_path(pins: &PinDir, mode: Mode) -> Result<()> {
    let pair = device::ensure_frag_pair(pins)?;
    let path = pins.link(device::FRAG_RX);
    if path.exists() && pair.created {
        fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove the stale {}", path.display()), e))?;
    }
    if !path.exists() {
        attach_xdp(&pins.program(), device::FRAG_RX, pair.rx_index, mode, &path)?;
    }
    crate::natpt::Translator::open(pins)?.set_frag_ifindex(pair.rx_index)
}

/// Makes sure `vdmm0` exists and runs the TC egress program through the pinned link
/// `link_tc_vdmm0` (re-attaching when the pin is stale: its link no longer feeds the
/// device, e.g. because `vdmm0` was deleted and created again). Returns the device and the
/// link pin when attached now. If the attach fails, a device created here is deleted.
fn ensure_slow_path(pins: &PinDir) -> Result<(device::Ensured, Option<PathBuf>)> {
    let dev = device::ensure(pins)?;
    let path = pins.tc_link(DEVICE);
    if path.exists() {
        if !dev.created && tc_link_attached(&path, DEVICE)? {
            return Ok((dev, None));
        }
        fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove the stale {}", path.display()), e))?;
    }
    if let Err(e) = attach_tc(pins, DEVICE, &path) {
        if dev.created {
            let _ = device::delete(dev.info.index);
        }
        return Err(e);
    }
    Ok((dev, Some(path)))
}

/// Undoes the slow-path part of a [`prepare`] that a later step of [`load`] failed after.
fn undo_slow_path(report: &LoadReport) {
    if let Some(path) = &report.tc_link {
        let _ = fs::remove_file(path);
    }
    if report.device.created {
        let _ = device::delete(report.device.info.index);
    }
}

/// True when the tcx link pinned at `path` feeds `iface`'s egress: its program is among
/// the interface's tcx egress programs. (A link whose interface was deleted stays pinned
/// but attached to nothing.)
pub fn tc_link_attached(path: &Path, iface: &str) -> Result<bool> {
    let link = open_link(path)?;
    let prog = link
        .info()
        .map_err(|e| Error::ebpf(format!("cannot read {}", path.display()), e))?
        .program_id();
    Ok(tc_egress_program_ids(iface)?.contains(&prog))
}

/// IDs of the tcx programs on `iface`'s egress (empty when there is no such interface).
pub fn tc_egress_program_ids(iface: &str) -> Result<Vec<u32>> {
    if if_index(iface).is_err() {
        return Ok(Vec::new());
    }
    let (_, progs) = SchedClassifier::query_tcx(iface, TcAttachType::Egress)
        .map_err(|e| Error::ebpf(format!("cannot list the TC egress programs of {iface}"), e))?;
    Ok(progs.iter().map(|p| p.id()).collect())
}

/// Removes the TC egress links an older vdmm-ctl left on interfaces other than `vdmm0`.
fn remove_legacy_tc_links(pins: &PinDir) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for iface in legacy_tc_interfaces(pins)? {
        let path = pins.tc_link(&iface);
        fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        removed.push(iface);
    }
    Ok(removed)
}

/// Interfaces other than `vdmm0` with a TC egress link pin (left by an older vdmm-ctl).
pub fn legacy_tc_interfaces(pins: &PinDir) -> Result<Vec<String>> {
    Ok(pins
        .tc_linked_interfaces()?
        .into_iter()
        .filter(|i| i != DEVICE)
        .collect())
}

fn attach_xdp(program: &Path, iface: &str, index: u32, mode: Mode, link_path: &Path) -> Result<()> {
    let mut prog = Xdp::from_pin(program, XdpAttachType::Interface)
        .map_err(|e| Error::ebpf(format!("cannot open {}", program.display()), e))?;
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

/// Attaches the TC egress program to `iface` (`vdmm0`) as a tcx link (kernel 6.6 and
/// later; no clsact qdisc needed), after any tcx program already there, and pins the link.
pub(crate) fn attach_tc(pins: &PinDir, iface: &str, link_path: &Path) -> Result<()> {
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

/// Detaches the data plane from `iface` by removing its XDP link pin (and a TC egress
/// link pin an older vdmm-ctl left there). The maps, the programs and the slow path
/// (`vdmm0` and its TC link) stay (configuration and counters survive). An interface that
/// no longer exists but still has link pins is cleaned up too.
pub fn unload(pins: &PinDir, iface: &str) -> Result<()> {
    if iface == DEVICE {
        return Err(Error::Conflict(format!(
            "{DEVICE} is vdmm's slow-path device, not an interface vdmm is loaded on; it \
             stays while bindings route into it, until `vdmm-ctl reset`"
        )));
    }
    let paths = [pins.link(iface), pins.tc_link(iface), pins.vap_link(iface)];
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

/// Removes every pin under the directory (detaching the programs from every interface and
/// from `vdmm0`, dropping all configuration and counters), then deletes `vdmm0` when it is
/// this pin directory's device (see [`crate::device`]). Removing the bindings' kernel
/// routes is the caller's job ([`crate::routes::remove_all`], while the bindings can still
/// be read); deleting the device takes any left with it.
pub fn reset(pins: &PinDir) -> Result<ResetReport> {
    // The device's alias names the pin directory, which may vanish with its pins.
    let alias = device::owner_alias(pins);
    let removed = pins.reset()?;
    let device_deleted = device::remove_owned_by(&alias)?;
    device::remove_frag_pair_owned_by(&alias)?;
    Ok(ResetReport {
        removed,
        device_deleted,
    })
}

/// Loads this build's programs (maps pinned by name under `pins`) and makes each program
/// pin point at an identical program; see the module documentation. Both programs are
/// loaded (verified) before any pin changes.
fn ensure_programs(pins: &PinDir) -> Result<(ProgramState, ProgramState, ProgramState)> {
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pins.path())
        .load(EBPF_OBJECT)
        .map_err(|e| Error::ebpf("cannot load the eBPF object", e))?;
    let xdp: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .ok_or(Error::MissingProgram(names::XDP_PROGRAM))?
        .try_into()
        .map_err(|e| Error::ebpf(format!("{} is not an XDP program", names::XDP_PROGRAM), e))?;
    crate::verifier::load_retrying(|| xdp.load()).map_err(|e| load_error(names::XDP_PROGRAM, e))?;
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
    crate::verifier::load_retrying(|| tc.load())
        .map_err(|e| load_error(names::TC_EGRESS_PROGRAM, e))?;

    let vap: &mut Xdp = ebpf
        .program_mut(names::VAP_PROGRAM)
        .ok_or(Error::MissingProgram(names::VAP_PROGRAM))?
        .try_into()
        .map_err(|e| Error::ebpf(format!("{} is not an XDP program", names::VAP_PROGRAM), e))?;
    crate::verifier::load_retrying(|| vap.load()).map_err(|e| load_error(names::VAP_PROGRAM, e))?;

    let xdp: &mut Xdp = ebpf
        .program_mut(names::XDP_PROGRAM)
        .expect("loaded above")
        .try_into()
        .expect("checked above");
    let xdp_state = ensure_xdp_pin(pins, xdp, Role::Network)?;
    let vap: &mut Xdp = ebpf
        .program_mut(names::VAP_PROGRAM)
        .expect("loaded above")
        .try_into()
        .expect("checked above");
    let vap_state = ensure_xdp_pin(pins, vap, Role::ClientFacing)?;
    let tc: &mut SchedClassifier = ebpf
        .program_mut(names::TC_EGRESS_PROGRAM)
        .expect("loaded above")
        .try_into()
        .expect("checked above");
    let tc_state = ensure_tc_pin(pins, tc)?;
    Ok((xdp_state, tc_state, vap_state))
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

/// Pins `prog` as the XDP program of `role`, reusing an identical pinned one, or
/// replacing a different one after switching every link of that role to `prog`.
fn ensure_xdp_pin(pins: &PinDir, prog: &mut Xdp, role: Role) -> Result<ProgramState> {
    let prog_path = role.program(pins);
    if !prog_path.exists() {
        pin_program(&prog_path, |p| prog.pin(p))?;
        return Ok(ProgramState::Loaded);
    }
    let pinned = Xdp::from_pin(&prog_path, XdpAttachType::Interface)
        .map_err(|e| Error::ebpf(format!("cannot open {}", prog_path.display()), e))?;
    if fingerprint(pinned.info())? == fingerprint(prog.info())? {
        return Ok(ProgramState::Reused);
    }
    let ifaces = role.linked_interfaces(pins)?;
    for iface in &ifaces {
        let path = role.link(pins, iface);
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
    let mut ifaces = pins.tc_linked_interfaces()?;
    // A stale link (its interface is gone) cannot be switched; `vdmm0`'s is replaced by
    // `ensure_slow_path`, an older vdmm-ctl's are removed.
    ifaces.retain(|i| tc_link_attached(&pins.tc_link(i), i).unwrap_or(false));
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
