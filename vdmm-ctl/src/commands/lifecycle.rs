//! `vdmm-ctl load|unload|status|reset`: the data plane's life in the kernel.

use vdmm_common::maps as names;

use crate::{
    cli::ModeArg,
    error::Result,
    loader::{self, LoadReport, Mode, ProgramState},
    pin::PinDir,
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
    match r.program {
        ProgramState::Loaded => out.push_str(&format!(
            "loaded the data plane into {}\n",
            pins.path().display()
        )),
        ProgramState::Reused if iface.is_none() => out.push_str(&format!(
            "the data plane is already loaded in {}\n",
            pins.path().display()
        )),
        ProgramState::Reused => {}
        ProgramState::Upgraded { interfaces } => out.push_str(&format!(
            "replaced the pinned program with this build's (switched {interfaces} interface(s))\n"
        )),
    }
    if let Some(iface) = iface {
        out.push_str(&format!("attached to {iface} ({} XDP)\n", mode.name()));
    }
    out
}

pub fn unload(pins: &PinDir, iface: &str) -> Result<String> {
    loader::unload(pins, iface)?;
    let left = pins.linked_interfaces()?;
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
    let removed = loader::reset(pins)?;
    Ok(if removed.is_empty() {
        format!("nothing pinned in {}\n", pins.path().display())
    } else {
        format!(
            "removed {} from {}\n",
            removed.join(", "),
            pins.path().display()
        )
    })
}

pub fn status(pins: &PinDir, json: bool) -> Result<String> {
    let entries = pins.entries()?;
    let maps: Vec<&str> = names::ALL
        .iter()
        .copied()
        .filter(|n| entries.iter().any(|e| e == n))
        .collect();
    let program = pins.program().exists();
    let ifaces = pins.linked_interfaces()?;
    let missing: Vec<&str> = ifaces
        .iter()
        .filter(|i| loader::if_index(i).is_err())
        .map(String::as_str)
        .collect();
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::json!({
                "pin_dir": pins.path().display().to_string(),
                "bpffs": pins.is_on_bpffs(),
                "maps": maps,
                "program": program,
                "interfaces": ifaces,
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
    out.push_str(&format!(
        "program: {}\n",
        if program { "pinned" } else { "not pinned" }
    ));
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
        "attached to: {}\n",
        if list.is_empty() {
            "nothing".to_string()
        } else {
            list.join(", ")
        }
    ));
    Ok(out)
}
