//! `vdmm-ctl load|unload|status|reset`: the data plane's life in the kernel.

use vdmm_common::maps as names;

use crate::{
    cli::ModeArg,
    error::Result,
    loader::{self, LoadReport, Mode, ProgramState},
    maps::Dataplane,
    pin::PinDir,
    routes,
};

pub fn load(pins: &PinDir, iface: Option<&str>, mode: ModeArg) -> Result<String> {
    let mode = match mode {
        ModeArg::Native => Mode::Native,
        ModeArg::Generic => Mode::Generic,
    };
    let report = match iface {
        Some(iface) => loader::load(pins, iface, mode)?,
        None => loader::prepare(pins)?,
    };
    Ok(describe(pins, iface, mode, &report))
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
            for (state, what) in [(xdp, "XDP program"), (tc, "TC egress program")] {
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
    if let Some(iface) = iface {
        let mut parts = Vec::new();
        if r.link.is_some() {
            parts.push(format!("{} XDP", mode.name()));
        }
        if r.tc_link.is_some() {
            parts.push("TC egress".to_string());
        }
        out.push_str(&format!("attached to {iface} ({})\n", parts.join(", ")));
    }
    out
}

pub fn unload(pins: &PinDir, iface: &str) -> Result<String> {
    loader::unload(pins, iface)?;
    let mut left = pins.linked_interfaces()?;
    left.extend(pins.tc_linked_interfaces()?);
    Ok(if left.is_empty() {
        format!(
            "detached from {iface}; no interface left (configuration kept in {}; `vdmm-ctl reset` removes it)\n",
            pins.path().display()
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
    let removed = loader::reset(pins)?;
    out.push_str(&if removed.is_empty() {
        format!("nothing pinned in {}\n", pins.path().display())
    } else {
        format!(
            "removed {} from {}\n",
            removed.join(", "),
            pins.path().display()
        )
    });
    Ok(out)
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
    let ifaces = pins.linked_interfaces()?;
    let tc_ifaces = pins.tc_linked_interfaces()?;
    let mut all: Vec<&String> = ifaces.iter().chain(&tc_ifaces).collect();
    all.sort();
    all.dedup();
    let missing: Vec<&str> = all
        .iter()
        .filter(|i| loader::if_index(i).is_err())
        .map(|i| i.as_str())
        .collect();
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::json!({
                "pin_dir": pins.path().display().to_string(),
                "bpffs": pins.is_on_bpffs(),
                "maps": maps,
                "program": program,
                "tc_program": tc_program,
                "interfaces": ifaces,
                "tc_interfaces": tc_ifaces,
                "missing_interfaces": missing,
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
            format!("only {}", maps.join(", "))
        }
    ));
    let pinned = |p: bool| if p { "pinned" } else { "not pinned" };
    out.push_str(&format!(
        "programs: XDP {}, TC egress {}\n",
        pinned(program),
        pinned(tc_program)
    ));
    let list: Vec<String> = all
        .iter()
        .map(|i| {
            let hooks = match (ifaces.contains(i), tc_ifaces.contains(i)) {
                (true, true) => "XDP + TC egress",
                (true, false) => "XDP only; TC egress missing: unload and load again",
                _ => "TC egress only; XDP missing: unload and load again",
            };
            if missing.contains(&i.as_str()) {
                format!("{i} ({hooks}; no such interface in this network namespace)")
            } else {
                format!("{i} ({hooks})")
            }
        })
        .collect();
    out.push_str(&format!(
        "attached to: {}\n",
        if list.is_empty() {
            "nothing".to_string()
        } else {
            list.join(", ")
        }
    ));
    Ok(out)
}
