//! `vdmm-ctl load|unload|status|reset`: the data plane's life in the kernel.

use aya::programs::{SchedClassifier, TcAttachType};
use vdmm_common::maps as names;

use crate::{
    cli::ModeArg,
    device,
    error::Result,
    loader::{self, LoadReport, Mode, ProgramState},
    maps::Dataplane,
    pin::PinDir,
    routes,
};

pub fn load(
    pins: &PinDir,
    iface: Option<&str>,
    client_facing: Option<&str>,
    mode: ModeArg,
) -> Result<String> {
    let mode = match mode {
        ModeArg::Native => Mode::Native,
        ModeArg::Generic => Mode::Generic,
    };
    let report = match (iface, client_facing) {
        (Some(iface), _) => loader::load(pins, iface, mode)?,
        (None, Some(iface)) => loader::load_client_facing(pins, iface, mode)?,
        (None, None) => loader::prepare(pins)?,
    };
    let out = describe(pins, iface.or(client_facing), mode, &report);
    Ok(match client_facing {
        // The attach line names the program a client-facing interface runs.
        Some(cf) if report.link.is_some() => out.replace(
            &format!("attached to {cf} ("),
            &format!("attached the vAP program {} to {cf} (", names::VAP_PROGRAM),
        ),
        _ => out,
    })
}

fn describe(pins: &PinDir, iface: Option<&str>, mode: Mode, r: &LoadReport) -> String {
    let mut out = String::new();
    if r.mounted_bpffs {
        out.push_str(&format!("mounted a bpffs for {}\n", pins.path().display()));
    }
    match (r.program, r.tc_program) {
        (ProgramState::Loaded, ProgramState::Loaded) => out.push_str(&format!(
            "loaded the data plane into {}\n",
            pins.path().display()
        )),
        (ProgramState::Reused, ProgramState::Reused) if iface.is_none() => out.push_str(&format!(
            "the data plane is already loaded in {}\n",
            pins.path().display()
        )),
        (xdp, tc) => {
            for (state, what) in [
                (xdp, "XDP program"),
                (tc, "TC egress program"),
                (r.vap_program, "vAP program"),
            ] {
                match state {
                    ProgramState::Loaded => {
                        out.push_str(&format!("loaded and pinned the {what}\n"))
                    }
                    ProgramState::Reused => {}
                    ProgramState::Upgraded { interfaces } => out.push_str(&format!(
                        "replaced the pinned {what} with this build's (switched {interfaces} interface(s))\n"
                    )),
                }
            }
        }
    }
    let dev = &r.device.info;
    if r.device.created {
        out.push_str(&format!(
            "created the slow-path device {} ({}, NOARP, mtu {}, forwarding on)\n",
            device::DEVICE,
            dev.kind.as_deref().unwrap_or("?"),
            dev.mtu
        ));
    }
    if r.tc_link.is_some() {
        out.push_str(&format!(
            "attached {} to the egress of {}\n",
            names::TC_EGRESS_PROGRAM,
            device::DEVICE
        ));
    }
    if !r.legacy_tc_removed.is_empty() {
        out.push_str(&format!(
            "removed the TC egress link of {} (left by an older vdmm-ctl; the slow path now \
             runs on {})\n",
            r.legacy_tc_removed.join(", "),
            device::DEVICE
        ));
    }
    if let (Some(iface), Some(_)) = (iface, &r.link) {
        out.push_str(&format!("attached to {iface} ({} XDP)\n", mode.name()));
    }
    out
}

pub fn unload(pins: &PinDir, iface: &str) -> Result<String> {
    loader::unload(pins, iface)?;
    Ok(if user_interfaces(pins)?.0.is_empty() {
        format!(
            "detached from {iface}; no interface left (configuration kept in {}, and {} with \
             the bindings' routes; `vdmm-ctl reset` removes them)\n",
            pins.path().display(),
            device::DEVICE
        )
    } else {
        format!("detached from {iface}\n")
    })
}

pub fn reset(pins: &PinDir) -> Result<String> {
    let mut out = String::new();
    // The bindings' kernel routes go first, while the bindings can still be read.
    if Dataplane::is_pinned(pins) {
        match Dataplane::open(pins).and_then(|dp| routes::remove_all(&dp)) {
            Ok(homes) if homes.is_empty() => {}
            Ok(homes) => {
                let list: Vec<String> = homes.iter().map(|h| h.to_string()).collect();
                out.push_str(&format!(
                    "removed the kernel routes for {}\n",
                    list.join(", ")
                ));
            }
            Err(e) => out.push_str(&format!(
                "warning: kernel routes of the bindings not removed ({e}); `ip route show proto {}` lists them\n",
                routes::RTPROT_VDMM
            )),
        }
    }
    let r = loader::reset(pins)?;
    out.push_str(&if r.removed.is_empty() {
        format!("nothing pinned in {}\n", pins.path().display())
    } else {
        format!(
            "removed {} from {}\n",
            r.removed.join(", "),
            pins.path().display()
        )
    });
    if r.device_deleted {
        out.push_str(&format!("deleted {}\n", device::DEVICE));
    }
    Ok(out)
}

/// The slow path as `status` reports it.
struct SlowPathStatus {
    device: Option<device::DeviceInfo>,
    ours: bool,
    forwarding: device::Forwarding,
    link_pinned: bool,
    /// The pinned link feeds the device's egress.
    attached: bool,
    /// Names of every tcx program on the device's egress.
    programs: Vec<String>,
}

impl SlowPathStatus {
    fn read(pins: &PinDir) -> Result<Self> {
        let device = device::find()?;
        let path = pins.tc_link(device::DEVICE);
        let link_pinned = path.exists();
        let exists = device.is_some();
        let attached = exists
            && link_pinned
            && loader::tc_link_attached(&path, device::DEVICE).unwrap_or(false);
        let programs = if exists {
            SchedClassifier::query_tcx(device::DEVICE, TcAttachType::Egress)
                .map(|(_, ps)| {
                    ps.iter()
                        .map(|p| p.name_as_str().unwrap_or("?").to_string())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Self {
            ours: device.as_ref().is_some_and(|d| d.is_owned_by(pins)),
            forwarding: device::forwarding(),
            device,
            link_pinned,
            attached,
            programs,
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "device": device::DEVICE,
            "exists": self.device.is_some(),
            "kind": self.device.as_ref().and_then(|d| d.kind.clone()),
            "ifindex": self.device.as_ref().map(|d| d.index),
            "mtu": self.device.as_ref().map(|d| d.mtu),
            "up": self.device.as_ref().map(|d| d.up),
            "noarp": self.device.as_ref().map(|d| d.noarp),
            "owner": self.device.as_ref().and_then(|d| d.owner().map(str::to_string)),
            "ours": self.ours,
            "forwarding_ipv4": self.forwarding.v4,
            "forwarding_ipv6": self.forwarding.v6,
            "tc_link_pinned": self.link_pinned,
            "tc_attached": self.attached,
            "tc_programs": self.programs,
        })
    }

    /// One line: the device and its TC attachment, with what is wrong.
    fn text(&self) -> String {
        let Some(d) = &self.device else {
            return format!(
                "slow path: {} missing (`vdmm-ctl load` creates it)",
                device::DEVICE
            );
        };
        let mut parts = vec![
            d.kind.clone().unwrap_or_else(|| "no kind".into()),
            format!("ifindex {}", d.index),
            format!("mtu {}", d.mtu),
            if d.up { "up" } else { "DOWN" }.to_string(),
            if d.noarp {
                "NOARP"
            } else {
                "ARP (should be NOARP)"
            }
            .to_string(),
            self.forwarding.to_string(),
        ];
        match d.owner() {
            _ if self.ours => {}
            Some(other) => parts.push(format!("belongs to the pin directory {other}")),
            None => parts.push("not created by vdmm".into()),
        }
        let tc = match (self.link_pinned, self.attached) {
            (true, true) => format!("TC egress {} attached", self.programs.join(", ")),
            (true, false) => {
                "TC egress link pinned but not attached to it (`vdmm-ctl load` repairs it)"
                    .to_string()
            }
            (false, _) => "no TC egress link (`vdmm-ctl load` attaches it)".to_string(),
        };
        format!("slow path: {} ({}); {tc}", device::DEVICE, parts.join(", "))
    }
}

/// The interfaces with vdmm's XDP link, without `vdmmx1` (the translator's fragmentation
/// slow path, which `load` attaches itself), and whether `vdmmx1` has one.
fn user_interfaces(pins: &PinDir) -> Result<(Vec<String>, bool)> {
    let mut ifaces = pins.linked_interfaces()?;
    let before = ifaces.len();
    ifaces.retain(|i| i != device::FRAG_RX);
    let frag = ifaces.len() != before;
    Ok((ifaces, frag))
}

pub fn status(pins: &PinDir, json: bool) -> Result<String> {
    let entries = pins.entries()?;
    let maps: Vec<&str> = names::ALL
        .iter()
        .copied()
        .filter(|n| entries.iter().any(|e| e == n))
        .collect();
    let program = pins.program().exists();
    let tc_program = pins.tc_program().exists();
    let vap_program = pins.vap_program().exists();
    let client_facing = pins.vap_linked_interfaces()?;
    let (ifaces, frag_path) = user_interfaces(pins)?;
    let legacy = loader::legacy_tc_interfaces(pins)?;
    let missing: Vec<&str> = ifaces
        .iter()
        .filter(|i| loader::if_index(i).is_err())
        .map(|i| i.as_str())
        .collect();
    let slow = SlowPathStatus::read(pins)?;
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::json!({
                "pin_dir": pins.path().display().to_string(),
                "bpffs": pins.is_on_bpffs(),
                "maps": maps,
                "program": program,
                "tc_program": tc_program,
                "vap_program": vap_program,
                "interfaces": ifaces,
                "client_facing_interfaces": client_facing,
                "missing_interfaces": missing,
                "slow_path": slow.json(),
                "frag_path": frag_path,
                "legacy_tc_interfaces": legacy,
            })
        ));
    }
    let mut out = format!("pin directory: {}", pins.path().display());
    out.push_str(if pins.is_on_bpffs() {
        "\n"
    } else {
        " (not on a bpffs)\n"
    });
    out.push_str(&format!(
        "maps: {}\n",
        if maps.len() == names::ALL.len() {
            "all pinned".to_string()
        } else if maps.is_empty() {
            "none (not loaded)".to_string()
        } else {
            let absent: Vec<&str> = names::ALL
                .iter()
                .copied()
                .filter(|n| !maps.contains(n))
                .collect();
            format!(
                "all but {} (`vdmm-ctl load` adds missing maps and keeps the others)",
                absent.join(", ")
            )
        }
    ));
    let pinned = |p: bool| if p { "pinned" } else { "not pinned" };
    out.push_str(&format!(
        "programs: XDP {}, TC egress {}, vAP {}\n",
        pinned(program),
        pinned(tc_program),
        pinned(vap_program)
    ));
    if !client_facing.is_empty() {
        out.push_str(&format!(
            "client-facing interfaces (vAP program): {}\n",
            client_facing.join(", ")
        ));
    }
    let list: Vec<String> = ifaces
        .iter()
        .map(|i| {
            if missing.contains(&i.as_str()) {
                format!("{i} (no such interface in this network namespace)")
            } else {
                i.clone()
            }
        })
        .collect();
    out.push_str(&format!(
        "XDP attached to: {}\n",
        if list.is_empty() {
            "nothing".to_string()
        } else {
            list.join(", ")
        }
    ));
    out.push_str(&slow.text());
    out.push('\n');
    if frag_path {
        out.push_str(&format!(
            "translator fragmentation slow path: {} <-> {}, XDP attached to {}\n",
            device::FRAG_TX,
            device::FRAG_RX,
            device::FRAG_RX
        ));
    }
    if !legacy.is_empty() {
        out.push_str(&format!(
            "TC egress also on {} (left by an older vdmm-ctl; `vdmm-ctl load` removes it)\n",
            legacy.join(", ")
        ));
    }
    Ok(out)
}
